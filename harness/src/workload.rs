//! Binds workloads from the `workloads` crate to the harness: their operations as generators,
//! their final reads, their clients per worker, and the checker that judges a stored run.
//!
//! A stored run is re-checked from `test.json` alone ([`check_options`]), so everything the
//! checker needs must follow from the workload's name.

use crate::generator::{self, Context, Gen, Generator, Next};
use checkers::history::Value;
use checkers::linearizable::Options;
use checkers::model::ModelKind;
use checkers::rng::Rng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workloads::client::{BoxClient, Client, Outcome};
use workloads::coord::workload::{self as coord_workload, ClientContext, CoordWorkload};
use workloads::focus::Focus;
use workloads::register::{
    CoordRegisterClient, RegisterClient, RegisterOps, RegisterWorkload, StaleCacheClient,
};
use workloads::repdb::workload::{self as repdb_workload, RepdbWorkload};
use workloads::twopc::workload::{self as twopc_workload, TwoPcWorkload};
use workloads::zookeeper::workloads::{self as zk_workloads, ReadMode};

pub mod custom;
pub mod postgres;

/// The workloads `faultline test --workload` knows: `register` on etcd and coord, the
/// coordination service's own, the two-phase-commit store's, PostgreSQL's and the
/// replicated database's.
pub fn names() -> Vec<&'static str> {
    let mut names = vec![RegisterWorkload::NAME];
    names.extend_from_slice(coord_workload::names());
    names.extend_from_slice(twopc_workload::NAMES);
    for w in workloads::postgres::NAMES
        .iter()
        .chain(repdb_workload::NAMES)
    {
        if !names.contains(w) {
            names.push(w);
        }
    }
    names
}

/// Whether `workload` runs on `system`; the error says what runs where.
pub fn check_pairing(system: &str, workload: &str) -> Result<(), String> {
    if crate::db::custom::is_system_file(system) {
        // Its file lists its workloads; `faultline test` checked the name against them.
        return Ok(());
    }
    if let Some(verdict) = postgres::pairing(system, workload) {
        return verdict;
    }
    if system == "zookeeper" {
        if zk_workloads::NAMES.contains(&workload) {
            return Ok(());
        }
        return Err(format!(
            "the {workload} workload does not run on zookeeper; zookeeper runs {}",
            zk_workloads::NAMES.join(", ")
        ));
    }
    if system == "twopc-postgres" {
        // Snapshots need consistent-cut markers, which PostgreSQL participants do not take.
        return match workload {
            "bank" | "recovery" => Ok(()),
            _ => Err(format!(
                "the {workload} workload does not run on twopc-postgres; twopc-postgres runs bank, recovery"
            )),
        };
    }
    if system == "repdb" {
        if repdb_workload::NAMES.contains(&workload) {
            return Ok(());
        }
        return Err(format!(
            "the {workload} workload does not run on repdb; repdb runs {}",
            repdb_workload::NAMES.join(", ")
        ));
    }
    let twopc = twopc_workload::NAMES.contains(&workload);
    let ok = match system {
        "twopc" => twopc,
        "coord" => !twopc,
        _ => workload == RegisterWorkload::NAME,
    };
    if ok {
        return Ok(());
    }
    Err(match system {
        "twopc" => format!(
            "the {workload} workload does not run on twopc; twopc runs {}",
            twopc_workload::NAMES.join(", ")
        ),
        _ if twopc => format!("the {workload} workload runs on twopc only"),
        _ => format!("the {workload} workload runs on coord only; {system} runs register"),
    })
}

/// Attempts at each setup operation before the run gives up on it (and tests nothing).
const MAX_SETUP_ATTEMPTS: u64 = 100;
/// The deliberately broken clients `--client-bug` knows, and the system whose clients they
/// are: etcd's caches reads; ZooKeeper's reads without `sync` first (plain reads, which
/// ZooKeeper allows to be stale) and with `sync` but unconfirmed (sync reads, stale when
/// the leader was deposed and has not noticed: ZOOKEEPER-1675).
pub const CLIENT_BUGS: &[(&str, &str)] = &[
    ("stale-cache", "etcd"),
    ("plain-reads", "zookeeper"),
    ("sync-reads", "zookeeper"),
];

/// Attempts at each final read before giving up on it (the check then sees only failures).
const MAX_FINAL_READ_ATTEMPTS: u64 = 100;

/// Attempts at the replicated database's `settle` (each up to the client's operation
/// timeout) before its apply logs are read anyway, and judged as possibly unfinished.
const MAX_SETTLE_ATTEMPTS: u64 = 12;

/// How long the checker may take on a run before answering unknown.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(300);

/// How the transactional workloads (list-append and rw-register, on repdb and on
/// PostgreSQL) draw transactions, where `faultline test` is told to: fewer keys, more
/// conflicts. Unset fields keep the workload's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxnShape {
    /// Keys in use at once.
    pub key_count: Option<usize>,
    /// Micro-ops per transaction, from 1 to this.
    pub max_txn_length: Option<u64>,
}

impl TxnShape {
    pub fn is_default(&self) -> bool {
        *self == TxnShape::default()
    }

    /// Whether `workload` on `system` takes a shape, and the shape's bounds; the error
    /// names the flag.
    pub fn validate(&self, system: &str, workload: &str) -> Result<(), String> {
        if self.is_default() {
            return Ok(());
        }
        let shaped = (matches!(system, "repdb" | "postgres")
            || crate::db::custom::is_system_file(system))
            && matches!(workload, "list-append" | "rw-register");
        if !shaped {
            return Err(format!(
                "--key-count and --max-txn-length shape the list-append and rw-register \
                 transactions of repdb and postgres, not {system}'s {workload}"
            ));
        }
        use workloads::repdb::ops::{MAX_ACTIVE_KEYS, MAX_MOPS};
        if let Some(k) = self
            .key_count
            .filter(|k| !(1..=MAX_ACTIVE_KEYS).contains(k))
        {
            return Err(format!(
                "--key-count must be 1 to {MAX_ACTIVE_KEYS}, not {k}"
            ));
        }
        if let Some(n) = self.max_txn_length.filter(|n| !(1..=MAX_MOPS).contains(n)) {
            return Err(format!("--max-txn-length must be 1 to {MAX_MOPS}, not {n}"));
        }
        Ok(())
    }
}

/// Which system's clients a workload uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Etcd,
    Coord,
    TwoPc,
    Postgres,
    Repdb,
    /// Apache ZooKeeper, through Faultline's ZooKeeper client.
    Zookeeper,
    /// A system described by a file: JSON lines over TCP or through client processes.
    Custom,
}

impl Target {
    pub fn of_system(system: &str) -> anyhow::Result<Target> {
        match system {
            "etcd" => Ok(Target::Etcd),
            "coord" => Ok(Target::Coord),
            "twopc" | "twopc-postgres" => Ok(Target::TwoPc),
            "postgres" => Ok(Target::Postgres),
            "repdb" => Ok(Target::Repdb),
            "zookeeper" => Ok(Target::Zookeeper),
            other if crate::db::custom::is_system_file(other) => Ok(Target::Custom),
            other => anyhow::bail!("no clients for system {other:?}"),
        }
    }

    /// The system whose clients these are.
    pub fn system(self) -> &'static str {
        match self {
            Target::Etcd => "etcd",
            Target::Coord => "coord",
            Target::TwoPc => "twopc",
            Target::Postgres => "postgres",
            Target::Repdb => "repdb",
            Target::Zookeeper => "zookeeper",
            Target::Custom => "custom",
        }
    }
}

/// A workload ready to run.
pub struct Workload {
    /// Set for the coordination service's own workloads; `register` otherwise.
    coord: Option<Arc<dyn CoordWorkload>>,
    /// Set for the two-phase-commit store's workloads.
    twopc: Option<Arc<TwoPcWorkload>>,
    /// Set for the replicated database's workloads.
    repdb: Option<Arc<RepdbWorkload>>,
    /// Set for PostgreSQL's workloads ([`Workload::postgres`]).
    postgres: Option<Arc<workloads::postgres::workload::PgWorkload>>,
    register: RegisterWorkload,
    ops: Arc<Mutex<RegisterOps>>,
    stale_cache: bool,
    /// How ZooKeeper's register client reads (`--client-bug plain-reads`, `sync-reads`).
    zk_reads: ReadMode,
    target: Target,
    /// Clients give up on an operation a little before the runner records it `info`.
    client_timeout_ms: u64,
    /// A system file's client processes, when it has them ([`Workload::stdio_clients`]).
    stdio: Option<custom::StdioClients>,
    /// Where lock clients say the lock is held, for `--nemesis-targets holder`.
    focus: Focus,
}

impl Workload {
    /// The workload `name` for `target`'s clients on a cluster of `nodes` nodes.
    pub fn new(
        name: &str,
        client_bug: Option<&str>,
        target: Target,
        op_timeout_ms: u64,
        nodes: usize,
    ) -> anyhow::Result<Workload> {
        check_pairing(target.system(), name).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            target != Target::Postgres,
            "postgres workloads run at an isolation level: Workload::postgres"
        );
        let twopc = twopc_workload::by_name(name, nodes).map(Arc::new);
        let repdb = repdb_workload::by_name(name, nodes).map(Arc::new);
        let coord = match name {
            _ if twopc.is_some() || repdb.is_some() => None,
            RegisterWorkload::NAME => None,
            other => {
                let w = coord_workload::by_name(other)
                    .ok_or_else(|| anyhow::anyhow!("unknown workload {other:?}"))?;
                anyhow::ensure!(
                    target == Target::Coord
                        || (target == Target::Zookeeper && zk_workloads::NAMES.contains(&other)),
                    "the {other} workload runs on coord only"
                );
                Some(w)
            }
        };
        let register = RegisterWorkload::default();
        let ops = register
            .ops()
            .map_err(|e| anyhow::anyhow!("register workload: {e}"))?;
        Ok(Workload {
            coord,
            twopc,
            repdb,
            postgres: None,
            register,
            ops: Arc::new(Mutex::new(ops)),
            stale_cache: client_bug == Some("stale-cache"),
            zk_reads: match client_bug {
                Some("plain-reads") => ReadMode::Plain,
                Some("sync-reads") => ReadMode::Sync,
                _ => ReadMode::Confirmed,
            },
            target,
            client_timeout_ms: op_timeout_ms.saturating_sub(op_timeout_ms / 10).max(1),
            stdio: None,
            focus: Focus::default(),
        })
    }

    /// Where the run's lock clients say the lock is held now (shared: the nemesis reads it).
    pub fn focus(&self) -> Focus {
        self.focus.clone()
    }

    /// The same workload with a system file's clients going through `stdio`'s processes
    /// rather than TCP (a no-op for None).
    pub fn stdio_clients(mut self, stdio: Option<custom::StdioClients>) -> Workload {
        self.stdio = stdio;
        self
    }

    /// The same workload drawing transactions as `shape` says (a no-op for the default).
    pub fn shaped(mut self, shape: TxnShape) -> anyhow::Result<Workload> {
        if shape.is_default() {
            return Ok(self);
        }
        if let Some(w) = &self.repdb {
            let mut config = workloads::repdb::ops::TxnConfig::new(w.workload);
            config.active_keys = shape.key_count.unwrap_or(config.active_keys);
            config.max_mops = shape.max_txn_length.unwrap_or(config.max_mops);
            let replicas = w.replicas();
            self.repdb = Some(Arc::new(RepdbWorkload::new(config, replicas)?));
            return Ok(self);
        }
        if let Some(w) = &self.postgres {
            let mut pg_shape = w.shape.clone();
            pg_shape.active_keys = shape.key_count.unwrap_or(pg_shape.active_keys);
            pg_shape.max_txn_len = shape.max_txn_length.unwrap_or(pg_shape.max_txn_len);
            let fresh =
                workloads::postgres::workload::PgWorkload::new(w.kind, w.isolation, pg_shape);
            self.postgres = Some(Arc::new(fresh));
            return Ok(self);
        }
        anyhow::bail!("only repdb's and postgres's transactional workloads take a shape")
    }

    /// Operations that run before the nemesis starts, each until it succeeds (the bank's
    /// initial balances); None for workloads without any.
    pub fn setup(&self) -> Option<Gen> {
        let w = self.twopc.as_ref()?;
        Some(until_ok_serially(w.setup_ops(), MAX_SETUP_ATTEMPTS))
    }

    /// Whether the run restores its last snapshot into a new cluster afterwards.
    pub fn restores_snapshots(&self) -> bool {
        self.twopc
            .as_ref()
            .is_some_and(|w| w.kind == twopc_workload::Kind::Snapshot)
    }

    /// For workloads whose workers each keep their own pace (the lock workloads): a maker of
    /// one worker's operation stream. A lock's holder and its waiters then work at the same
    /// rate; shared, the rate went to whichever worker was free, which is the holder while
    /// the waiters block, so a holder whose lease expired had let go long before anyone
    /// took over, and unfenced locks showed nothing.
    pub fn per_worker_ops(&self) -> Option<Box<dyn Fn() -> Gen + Send>> {
        let w = self.coord.clone()?;
        if !matches!(w.name(), "lock" | "lock-unfenced") {
            return None;
        }
        Some(Box::new(move || {
            let w = w.clone();
            generator::from_fn(move |rng| w.next_op(rng))
        }))
    }

    /// The endless stream of client operations. The RNG is the runner's, seeded by the run.
    pub fn ops(&self) -> Gen {
        if let Some(w) = &self.postgres {
            return postgres::ops(w);
        }
        if let Some(w) = &self.repdb {
            let w = w.clone();
            return generator::from_fn(move |rng| w.next_op(rng));
        }
        if let Some(w) = &self.twopc {
            let w = w.clone();
            return generator::from_fn(move |rng| w.next_op(rng));
        }
        if let Some(w) = &self.coord {
            let w = w.clone();
            return generator::from_fn(move |rng| w.next_op(rng));
        }
        let ops = self.ops.clone();
        generator::from_fn(move |rng| ops.lock().unwrap_or_else(|p| p.into_inner()).next(rng))
    }

    /// After healing: one successful read of every key the run wrote, so that a lost write
    /// shows up even when nobody read that key during the faults.
    pub fn final_reads(&self) -> Gen {
        if let Some(w) = &self.postgres {
            return postgres::final_reads(w, MAX_FINAL_READ_ATTEMPTS);
        }
        if let Some(w) = &self.repdb {
            return generator::phases(vec![
                until_ok_serially(w.settle_ops(), MAX_SETTLE_ATTEMPTS),
                until_ok_serially(w.dump_ops(), MAX_FINAL_READ_ATTEMPTS),
            ]);
        }
        if let Some(w) = &self.twopc {
            let quiet_ns = twopc_workload::FINAL_QUIET_MS * 1_000_000;
            return generator::phases(vec![
                until_ok_serially(w.final_reads(), MAX_FINAL_READ_ATTEMPTS),
                generator::sleep(quiet_ns),
                until_ok_serially(w.final_queries(), MAX_FINAL_READ_ATTEMPTS),
            ]);
        }
        if let Some(w) = &self.coord {
            return until_ok_each(w.final_ops(), MAX_FINAL_READ_ATTEMPTS);
        }
        Box::new(FinalReads {
            ops: self.ops.clone(),
            reads: None,
        })
    }

    /// The client for worker `w`, bound to the node at `addr` of `nodes`.
    pub fn client(&self, addr: SocketAddr, nodes: &[SocketAddr], w: u32) -> AnyClient {
        // A system file's clients carry any workload's operations as they are.
        if self.target == Target::Custom {
            return AnyClient::Dyn(custom::client(
                self.stdio.as_ref(),
                addr,
                nodes,
                w,
                self.client_timeout_ms,
            ));
        }
        if let Some(workload) = &self.postgres {
            return postgres::client(workload, addr, self.client_timeout_ms);
        }
        if let Some(workload) = &self.repdb {
            return AnyClient::Dyn(workload.client(repdb_workload::ClientContext {
                nodes: nodes.to_vec(),
                worker: w,
                op_timeout_ms: self.client_timeout_ms,
            }));
        }
        if let Some(workload) = &self.twopc {
            return AnyClient::Dyn(workload.client(twopc_workload::ClientContext {
                nodes: nodes.to_vec(),
                worker: w,
                op_timeout_ms: self.client_timeout_ms,
            }));
        }
        if let Some(workload) = self.coord.as_ref().filter(|_| self.target == Target::Coord) {
            return AnyClient::Dyn(workload.client(ClientContext {
                node: addr,
                nodes: nodes.to_vec(),
                worker: w,
                op_timeout_ms: self.client_timeout_ms,
                focus: self.focus.clone(),
            }));
        }
        if self.target == Target::Zookeeper {
            let name = self
                .coord
                .as_ref()
                .map_or(RegisterWorkload::NAME, |w| w.name());
            let ctx = ClientContext {
                node: addr,
                nodes: nodes.to_vec(),
                worker: w,
                op_timeout_ms: self.client_timeout_ms,
                focus: self.focus.clone(),
            };
            let client = zk_workloads::client(name, ctx, self.zk_reads)
                .expect("check_pairing admitted only workloads with a ZooKeeper client");
            return AnyClient::Dyn(client);
        }
        if self.target == Target::Coord {
            return AnyClient::Coord(CoordRegisterClient::new(addr, self.client_timeout_ms));
        }
        if self.stale_cache {
            AnyClient::StaleCache(self.register.stale_cache_client(addr))
        } else {
            AnyClient::Register(self.register.client(addr))
        }
    }
}

/// Each of `ops` in turn, each repeated until it succeeds (at most `attempts` times), on
/// every free worker at once.
fn until_ok_each(ops: Vec<(String, Value)>, attempts: u64) -> Gen {
    until_ok_phases(ops, attempts, |g| g)
}

/// [`until_ok_each`] with one attempt in flight at a time: for operations that conflict
/// with themselves (a setup transaction) or that need doing once (final queries).
fn until_ok_serially(ops: Vec<(String, Value)>, attempts: u64) -> Gen {
    until_ok_phases(ops, attempts, generator::one_at_a_time)
}

fn until_ok_phases(ops: Vec<(String, Value)>, attempts: u64, wrap: fn(Gen) -> Gen) -> Gen {
    let each = ops
        .into_iter()
        .map(|(f, value)| {
            generator::until_ok(generator::limit(
                attempts,
                wrap(generator::from_fn(move |_| (f.clone(), value.clone()))),
            ))
        })
        .collect();
    generator::phases(each)
}

/// Every client type a workload may hand the runner.
pub enum AnyClient {
    Register(RegisterClient),
    StaleCache(StaleCacheClient),
    Coord(CoordRegisterClient),
    Dyn(BoxClient),
}

impl Client for AnyClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        match self {
            AnyClient::Register(c) => c.invoke(f, value).await,
            AnyClient::StaleCache(c) => c.invoke(f, value).await,
            AnyClient::Coord(c) => c.invoke(f, value).await,
            AnyClient::Dyn(c) => c.invoke(f, value).await,
        }
    }
}

/// Reads every key used so far until each read succeeds; the key list is taken when the
/// phase starts, after the main phase has written everything it will.
struct FinalReads {
    ops: Arc<Mutex<RegisterOps>>,
    reads: Option<Gen>,
}

impl Generator for FinalReads {
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
        let ops = &self.ops;
        self.reads
            .get_or_insert_with(|| {
                let keys = ops.lock().unwrap_or_else(|p| p.into_inner()).keys_used();
                generator::phases(
                    keys.map(|k| {
                        generator::until_ok(generator::limit(
                            MAX_FINAL_READ_ATTEMPTS,
                            generator::from_fn(move |_| {
                                ("read".into(), serde_json::json!([k, null]))
                            }),
                        ))
                    })
                    .collect(),
                )
            })
            .next(ctx, rng)
    }

    fn completed(&mut self, c: &generator::Completion) {
        if let Some(g) = &mut self.reads {
            g.completed(c);
        }
    }
}

/// The model and options that judge a workload's history.
pub fn check_options(name: &str) -> anyhow::Result<(ModelKind, Options)> {
    anyhow::ensure!(
        name == RegisterWorkload::NAME,
        "no checker for workload {name:?}"
    );
    let w = RegisterWorkload::default();
    let mut options = Options::new(w.semantics());
    options.time_limit = Some(CHECK_TIME_LIMIT);
    Ok((w.model(), options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lock_workloads_pace_each_worker() {
        for (name, target, paced) in [
            ("lock", Target::Coord, true),
            ("lock-unfenced", Target::Zookeeper, true),
            ("election", Target::Coord, false),
            ("register", Target::Etcd, false),
            ("bank", Target::TwoPc, false),
        ] {
            let w = Workload::new(name, None, target, 1_000, 3).unwrap();
            assert_eq!(w.per_worker_ops().is_some(), paced, "{name}");
        }
    }
}
