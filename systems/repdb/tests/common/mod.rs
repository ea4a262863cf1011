//! The run every simulation test shares: clients running list-append or rw-register
//! transactions against random replicas under a fault plan, then healing, then reading every
//! replica's apply log and state; and the checks that judge it: the transactional checker
//! at the model the mode claims, `checkers::one_copy` on the apply logs, and convergence.

#![allow(dead_code)]

use checkers::history::{History, OpType, Process, Value};
use checkers::one_copy;
use checkers::txn::{self, Model, Workload};
use checkers::verdict::{Validity, Verdict};
use machine::NodeId;
use repdb::json::{mops_to_json, val_to_json};
use repdb::proto::{Key, Mop, Refusal, Request, Response, TxnId, Val};
use repdb::{Bugs, Mode, RepdbConfig, Replica};
use serde_json::json;
use sim::{ClientConfig, ClientIo, FaultConfig, Sim, SimClient, SimConfig};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Replicas, unless a setup says otherwise.
pub const NODES: u32 = 3;
/// Keys the workload touches: few, so transactions conflict.
pub const KEYS: u64 = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// A reliable network, no faults.
    Quiet,
    /// The simulator's random plan (crashes with torn writes, partitions of a minority and
    /// of random links, pauses, clock jumps, loss bursts) on a flaky network, stopped at
    /// [`CHAOS_STOP_MS`]; then every fault is healed.
    Chaos,
}

/// When the chaos plan stops starting faults.
pub const CHAOS_STOP_MS: u64 = 6_000;

/// One run's setup.
#[derive(Clone, Debug)]
pub struct Setup {
    pub nodes: u32,
    pub mode: Mode,
    pub read_sets: bool,
    pub bugs: Bugs,
    pub workload: Workload,
    pub plan: Plan,
    pub clients: usize,
    /// Most transactions each client invokes.
    pub txns_per_client: u32,
    /// Clients invoke nothing after this virtual time.
    pub run_ms: u64,
    /// The model to check the history against, instead of the one the mode claims.
    pub checked_as: Option<Model>,
}

impl Setup {
    pub fn new(mode: Mode, workload: Workload, plan: Plan) -> Setup {
        Setup {
            nodes: NODES,
            mode,
            read_sets: true,
            bugs: Bugs::default(),
            workload,
            plan,
            clients: 5,
            txns_per_client: match plan {
                Plan::Quiet => 60,
                Plan::Chaos => 400,
            },
            // Under chaos, through the whole fault plan and a little after.
            run_ms: match plan {
                Plan::Quiet => 3_000,
                Plan::Chaos => CHAOS_STOP_MS + 1_000,
            },
            checked_as: None,
        }
    }

    pub fn without_read_sets(self) -> Setup {
        Setup {
            read_sets: false,
            ..self
        }
    }

    pub fn with_bug(self, bug: &str) -> Setup {
        Setup {
            bugs: Bugs::parse([bug]).expect("a known bug"),
            ..self
        }
    }

    /// The model the mode claims, as the checker takes it; serializable for lazy, to show
    /// what it breaks.
    pub fn model(&self) -> Model {
        if let Some(m) = self.checked_as {
            return m;
        }
        let config = self.config();
        match config.claimed_model() {
            Some("snapshot-isolation") => Model::SnapshotIsolation,
            _ => Model::Serializable,
        }
    }

    pub fn with_nodes(self, nodes: u32) -> Setup {
        Setup { nodes, ..self }
    }

    pub fn checked_as(self, model: Model) -> Setup {
        Setup {
            checked_as: Some(model),
            ..self
        }
    }

    /// Whether replicas must agree at every step: eager modes without planted bugs.
    pub fn one_copy_claimed(&self) -> bool {
        self.mode != Mode::Lazy && self.bugs == Bugs::default()
    }

    pub fn config(&self) -> RepdbConfig {
        RepdbConfig {
            mode: self.mode,
            read_sets: self.read_sets,
            bugs: self.bugs.clone(),
            // Small, so snapshots, log compaction and snapshot transfer happen in a short run.
            snapshot_every: 25,
            ..RepdbConfig::default()
        }
    }
}

/// What a run produced, for assertions beyond validity.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    /// Committed update transactions in the replicas' (common) apply log.
    pub applied: usize,
    /// Anomaly types each checker reported: `txn` (list-append / rw-register) and
    /// `one-copy`.
    pub txn_anomalies: Vec<String>,
    pub one_copy_anomalies: Vec<String>,
    /// Replicas whose apply log or state differs from n1's after healing.
    pub diverged: Vec<NodeId>,
    pub steps: u64,
    /// How often each error ended a transaction (`fail` and `info`), by its text's start.
    pub errors: BTreeMap<String, usize>,
    /// The history (with `txn-id`s) as `faultline check` reads it, and the apply logs as
    /// `checkers::one_copy` reads them.
    pub history_jsonl: String,
    pub apply_logs_jsonl: String,
}

impl Outcome {
    pub fn anomalies(&self) -> Vec<String> {
        let mut all = self.txn_anomalies.clone();
        all.extend(self.one_copy_anomalies.iter().cloned());
        all
    }

    /// Whether the run shows the named anomaly (or divergence, named `divergent-replicas`).
    pub fn shows(&self, anomaly: &str) -> bool {
        self.anomalies().iter().any(|a| a == anomaly)
            || (anomaly == "divergent-replicas" && !self.diverged.is_empty())
    }
}

/// What every transactional client shares: fresh values and ids, and the log of
/// invocations that links the history to the replicas' apply logs.
#[derive(Default)]
pub struct Shared {
    next_value: Cell<i64>,
    next_id: Cell<TxnId>,
    /// Each `txn` invocation in order: its id, its value, whether it writes.
    invoked: RefCell<Vec<(TxnId, Value, bool)>>,
}

/// Random transactions of 1 to 4 micro-ops over a few keys, each write a fresh value.
struct TxnClient {
    shared: Rc<Shared>,
    workload: Workload,
    left: u32,
    until_ms: u64,
    open: Option<TxnId>,
}

impl TxnClient {
    fn next_txn(&mut self, io: &mut ClientIo<'_, Replica>) -> Vec<Mop> {
        let rng = io.rng();
        let len = 1 + rng.below(4);
        let mut ops = Vec::new();
        for _ in 0..len {
            let key = rng.below(KEYS);
            if rng.below(2) == 0 {
                ops.push(Mop::Read { key, value: None });
                continue;
            }
            let value = self.shared.next_value.get() + 1;
            self.shared.next_value.set(value);
            ops.push(match self.workload {
                Workload::ListAppend => Mop::Append { key, value },
                Workload::RwRegister => Mop::Write { key, value },
            });
        }
        ops
    }

    /// Moves to another random replica now and then, so every replica delegates.
    fn maybe_move(&mut self, io: &mut ClientIo<'_, Replica>) {
        if io.rng().below(4) == 0 {
            io.reconnect(None);
        }
    }
}

impl SimClient<Replica> for TxnClient {
    fn on_idle(&mut self, io: &mut ClientIo<'_, Replica>) {
        if self.left == 0 || io.now_ms() >= self.until_ms {
            return io.stop();
        }
        self.left -= 1;
        let ops = self.next_txn(io);
        let id = self.shared.next_id.get() + 1;
        self.shared.next_id.set(id);
        let value = mops_to_json(&ops);
        let writes = ops.iter().any(Mop::is_write);
        self.shared
            .invoked
            .borrow_mut()
            .push((id, value.clone(), writes));
        self.open = Some(id);
        io.invoke("txn", value, Request::Txn { id, ops });
    }

    fn on_response(&mut self, io: &mut ClientIo<'_, Replica>, resp: Response) {
        let Some(open) = self.open else {
            return;
        };
        let node = io.node();
        let answered = |replica: NodeId| Some(replica) == node;
        match resp {
            Response::Committed { id, replica, ops } if id == open && answered(replica) => {
                io.ok(mops_to_json(&ops));
            }
            Response::Aborted {
                id,
                replica,
                reason,
            } if id == open && answered(replica) => {
                io.fail(&reason.to_string());
            }
            Response::Refused { replica, why, .. } if answered(replica) => {
                io.fail(&why.to_string());
                if matches!(why, Refusal::NotServing | Refusal::Broken(_)) {
                    self.open = None;
                    return io.reconnect(None);
                }
            }
            Response::Unknown { why, .. } => {
                io.info(&why.to_string());
                self.open = None;
                return io.reconnect(None);
            }
            other => io.info(&format!("unexpected answer {other:?}")),
        }
        self.open = None;
        self.maybe_move(io);
    }

    fn on_disconnect(&mut self, _io: &mut ClientIo<'_, Replica>) {
        self.open = None;
    }
}

/// One replica's apply log and state, read through the client protocol after healing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dump {
    pub start: u64,
    pub applied: Vec<TxnId>,
    pub state: BTreeMap<Key, Val>,
    pub version: u64,
}

/// Reads one replica's whole apply log, then its whole state, page by page, retrying while
/// the replica does not serve.
struct Dumper {
    node: NodeId,
    out: Rc<RefCell<BTreeMap<NodeId, Dump>>>,
    dump: Dump,
    log_done: bool,
    waiting: bool,
    next_key: Key,
}

impl Dumper {
    fn ask(&mut self, io: &mut ClientIo<'_, Replica>) {
        self.waiting = true;
        if self.log_done {
            io.send(Request::State {
                from_key: self.next_key,
            });
        } else {
            let from = self.dump.start + self.dump.applied.len() as u64;
            io.send(Request::ApplyLog { from });
        }
    }
}

impl SimClient<Replica> for Dumper {
    fn on_idle(&mut self, io: &mut ClientIo<'_, Replica>) {
        if !self.waiting {
            self.ask(io);
        }
    }

    fn on_response(&mut self, io: &mut ClientIo<'_, Replica>, resp: Response) {
        self.waiting = false;
        match resp {
            Response::ApplyLog {
                from,
                start,
                ids,
                end,
                ..
            } => {
                if self.dump.applied.is_empty() {
                    self.dump.start = start;
                }
                if from == self.dump.start + self.dump.applied.len() as u64 {
                    self.dump.applied.extend(ids);
                }
                self.log_done = self.dump.start + self.dump.applied.len() as u64 >= end;
                self.ask(io);
            }
            Response::State {
                version,
                entries,
                next_key,
                ..
            } => {
                self.dump.version = version;
                self.dump.state.extend(entries);
                match next_key {
                    Some(k) => {
                        self.next_key = k;
                        self.ask(io);
                    }
                    None => {
                        self.out
                            .borrow_mut()
                            .insert(self.node, std::mem::take(&mut self.dump));
                        io.stop();
                    }
                }
            }
            // Not serving yet: ask again after the think time.
            _ => {}
        }
    }

    fn on_disconnect(&mut self, _io: &mut ClientIo<'_, Replica>) {
        self.waiting = false;
        self.dump = Dump::default();
        self.log_done = false;
        self.next_key = 0;
    }
}

pub fn sim_config(plan: Plan, nodes: u32) -> SimConfig {
    let client = ClientConfig {
        node: None,
        timeout_ms: 3_000,
        think_ms: (0, 20),
        reconnect_ms: (10, 100),
    };
    match plan {
        Plan::Quiet => SimConfig {
            nodes,
            client,
            ..SimConfig::default()
        },
        Plan::Chaos => SimConfig {
            client,
            faults: FaultConfig {
                stop_ms: Some(CHAOS_STOP_MS),
                ..FaultConfig::chaos()
            },
            ..SimConfig::chaos(nodes)
        },
    }
}

/// Runs `setup` on `seed` and judges it. `Err` says what went wrong with the run itself
/// (the simulator failed, replicas never answered); anomalies are in the `Outcome`.
pub fn run(seed: u64, setup: &Setup) -> Result<Outcome, String> {
    let (mut sim, shared) = start(seed, setup)?;
    finish(&mut sim, setup, &shared)
}

/// The cluster booted with the workload's clients added, not yet run.
pub fn start(seed: u64, setup: &Setup) -> Result<(Sim<Replica>, Rc<Shared>), String> {
    start_with(seed, setup, setup.config())
}

/// [`start`] with the replicas' config changed beyond what a [`Setup`] says.
pub fn start_with(
    seed: u64,
    setup: &Setup,
    config: RepdbConfig,
) -> Result<(Sim<Replica>, Rc<Shared>), String> {
    let mut sim: Sim<Replica> =
        Sim::new(seed, sim_config(setup.plan, setup.nodes), config).map_err(|e| e.to_string())?;
    let shared = Rc::new(Shared::default());
    for _ in 0..setup.clients {
        sim.add_client(TxnClient {
            shared: shared.clone(),
            workload: setup.workload,
            left: setup.txns_per_client,
            until_ms: setup.run_ms,
            open: None,
        });
    }
    if setup.one_copy_claimed() {
        sim.set_invariant(apply_logs_are_prefixes);
    }
    Ok((sim, shared))
}

/// Runs the clients to their end, stops and heals every fault, lets the replicas settle,
/// reads every replica back and judges the run.
pub fn finish(sim: &mut Sim<Replica>, setup: &Setup, shared: &Shared) -> Result<Outcome, String> {
    sim.run_until(|s| s.clients_done(), 120_000)
        .map_err(|e| e.to_string())?;
    sim.stop_faults();
    sim.heal_all();
    settle(sim)?;
    let dumps = dump_all(sim)?;
    judge(sim, setup, shared, &dumps)
}

/// How long replicas get after healing to agree again. Zab's timeouts read the node's
/// clock, so a follower whose clock jumped back keeps serving from a dead leader's link
/// (stale, but a prefix of the order) until its clock catches up: up to the largest jump
/// (`FaultConfig::max_clock_jump_ms`, 10 s) plus a sync limit and an election.
pub const SETTLE_MS: u64 = 20_000;

/// Runs until every replica is up, serves, has committed the same prefix of the total order
/// and has no write set waiting for a decision (weak voting);
/// `Err` if that takes longer than [`SETTLE_MS`].
pub fn settle(sim: &mut Sim<Replica>) -> Result<(), String> {
    let agreed = |sim: &Sim<Replica>| {
        let mut committed = sim.members().iter().map(|&n| {
            sim.node(n)
                .filter(|r| r.is_serving() && r.db().voting().next().is_none())
                .map(|r| r.zab().committed())
        });
        let first = committed.next().flatten();
        first.is_some() && committed.all(|c| c == first)
    };
    let deadline = sim.now_ms() + SETTLE_MS;
    sim.run_for(2_000).map_err(|e| e.to_string())?;
    while !agreed(sim) {
        if sim.now_ms() >= deadline {
            let states: Vec<String> = sim
                .members()
                .iter()
                .map(|&n| match sim.node(n) {
                    Some(r) => format!(
                        "n{n}: serving {}, leader {:?}, committed {:#x}",
                        r.is_serving(),
                        r.zab().leader(),
                        r.zab().committed()
                    ),
                    None => format!("n{n}: down"),
                })
                .collect();
            return Err(format!(
                "replicas did not agree within {SETTLE_MS} ms of healing: {}",
                states.join("; ")
            ));
        }
        sim.run_for(100).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One-copy serializability at every step, not only at the end: of any two running
/// replicas' apply logs, one is a prefix of the other.
pub fn apply_logs_are_prefixes(cluster: &sim::Cluster<'_, Replica>) -> Result<(), String> {
    let logs: Vec<(NodeId, Vec<TxnId>)> = cluster
        .live()
        .map(|(id, r)| (id, r.db().applied().collect()))
        .collect();
    for (i, (a, la)) in logs.iter().enumerate() {
        for (b, lb) in &logs[i + 1..] {
            let n = la.len().min(lb.len());
            if la[..n] != lb[..n] {
                let at = (0..n).find(|&k| la[k] != lb[k]).unwrap_or(n);
                return Err(format!(
                    "the apply logs of n{a} and n{b} differ at position {at}: {} vs {}",
                    la[at], lb[at]
                ));
            }
        }
    }
    Ok(())
}

/// Every replica's apply log and state, through the client protocol.
pub fn dump_all(sim: &mut Sim<Replica>) -> Result<BTreeMap<NodeId, Dump>, String> {
    let out = Rc::new(RefCell::new(BTreeMap::new()));
    for node in 1..=sim.members().len() as NodeId {
        let cfg = ClientConfig {
            node: Some(node),
            think_ms: (50, 100),
            ..sim.config().client.clone()
        };
        sim.add_client_with(
            Dumper {
                node,
                out: out.clone(),
                dump: Dump::default(),
                log_done: false,
                waiting: false,
                next_key: 0,
            },
            cfg,
        );
    }
    sim.run_until(|s| s.clients_done(), 20_000)
        .map_err(|e| format!("replicas did not all answer after healing: {e}"))?;
    let dumps = out.borrow().clone();
    Ok(dumps)
}

/// The history with each update transaction's `txn-id` on its invocation, in the order the
/// clients invoked them (which is the order the simulator recorded them).
pub fn history_with_ids(sim: &Sim<Replica>, shared: &Shared) -> Result<History, String> {
    let mut history = sim.history().map_err(|e| e.to_string())?;
    let invoked = shared.invoked.borrow();
    let mut next = invoked.iter();
    for op in history.ops.iter_mut() {
        if op.op_type != OpType::Invoke || op.f != "txn" || op.process == Process::nemesis() {
            continue;
        }
        let (id, value, writes) = next
            .next()
            .ok_or("more txn invocations recorded than clients made")?;
        if *value != op.value {
            return Err(format!(
                "invocation {} is {}, but the client invoked {value}",
                op.index, op.value
            ));
        }
        if *writes {
            op.extra.insert(one_copy::TXN_ID_FIELD.into(), json!(id));
        }
    }
    Ok(history)
}

/// The apply logs as `checkers::one_copy` reads them: every replica finished (healed and
/// caught up), with its final state.
pub fn apply_logs_text(dumps: &BTreeMap<NodeId, Dump>) -> String {
    let mut text = String::new();
    for (node, d) in dumps {
        let state: serde_json::Map<String, Value> = d
            .state
            .iter()
            .map(|(k, v)| (k.to_string(), val_to_json(v)))
            .collect();
        let line = json!({
            "replica": format!("n{node}"),
            "applied": d.applied,
            "finished": true,
            "state": state,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    text
}

fn error_counts(history: &History) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for op in &history.ops {
        if op.f != "txn" || !matches!(op.op_type, OpType::Fail | OpType::Info) {
            continue;
        }
        let text = op.error.as_ref().and_then(Value::as_str).unwrap_or("?");
        let short: String = text
            .split(':')
            .next()
            .unwrap_or(text)
            .chars()
            .take(40)
            .collect();
        *counts.entry(short).or_insert(0) += 1;
    }
    counts
}

fn anomaly_types(v: &Verdict) -> Vec<String> {
    v.anomaly_types.clone()
}

fn judge(
    sim: &Sim<Replica>,
    setup: &Setup,
    shared: &Shared,
    dumps: &BTreeMap<NodeId, Dump>,
) -> Result<Outcome, String> {
    let history = history_with_ids(sim, shared)?;
    let mut options = txn::Options::new(setup.workload);
    options.models = vec![setup.model()];
    options.time_limit = Some(Duration::from_secs(20));
    let txn_verdict = txn::check(&history, &options)
        .map_err(|e| e.to_string())?
        .verdict;
    if txn_verdict.valid == Validity::Unknown {
        return Err(format!("the txn checker gave up: {:?}", txn_verdict.cause));
    }
    let apply_logs_jsonl = apply_logs_text(dumps);
    let logs = one_copy::parse_apply_logs("apply-logs.jsonl", &apply_logs_jsonl)
        .map_err(|e| e.to_string())?;
    let one_copy_verdict = one_copy::check(&history, &logs).map_err(|e| e.to_string())?;
    let reference = dumps.get(&1).ok_or("n1 gave no dump")?;
    if dumps.len() != sim.members().len() {
        return Err(format!("only {} replicas gave dumps", dumps.len()));
    }
    let mut diverged = Vec::new();
    for (node, d) in dumps {
        assert_eq!(d.start, 0, "n{node} forgot part of its apply log");
        if d.applied != reference.applied
            || d.state != reference.state
            || d.version != reference.version
        {
            diverged.push(*node);
        }
    }
    let count = |t: OpType| {
        history
            .ops
            .iter()
            .filter(|op| op.f == "txn" && op.op_type == t)
            .count()
    };
    Ok(Outcome {
        ok: count(OpType::Ok),
        fail: count(OpType::Fail),
        info: count(OpType::Info),
        applied: reference.applied.len(),
        txn_anomalies: anomaly_types(&txn_verdict),
        one_copy_anomalies: anomaly_types(&one_copy_verdict),
        diverged,
        steps: sim.steps(),
        errors: error_counts(&history),
        history_jsonl: checkers::history::jsonl::write(&history.ops),
        apply_logs_jsonl,
    })
}

/// A run that must be clean: no anomaly from either checker and converged replicas.
pub fn run_clean(seed: u64, setup: &Setup) -> Result<Outcome, String> {
    let out = run(seed, setup)?;
    if !out.anomalies().is_empty() || !out.diverged.is_empty() {
        return Err(format!(
            "{:?} {:?} {:?} on {} replicas: anomalies {:?}, diverged replicas {:?}; \
             ok {}, fail {}, info {}, errors {:?}; history and apply logs kept in {}",
            setup.mode,
            setup.workload,
            setup.plan,
            setup.nodes,
            out.anomalies(),
            out.diverged,
            out.ok,
            out.fail,
            out.info,
            out.errors,
            keep(seed, setup, &out)
        ));
    }
    Ok(out)
}

/// Writes a failed run's history and apply logs where a developer can check them again
/// (`faultline check`); returns where.
fn keep(seed: u64, setup: &Setup, out: &Outcome) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("repdb-sim-failures")
        .join(format!(
            "seed-{seed}-{}-{}-{}",
            setup.mode.name(),
            setup.workload.name(),
            setup.nodes
        ));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("history.jsonl"), &out.history_jsonl))
        .and_then(|()| std::fs::write(dir.join("apply-logs.jsonl"), &out.apply_logs_jsonl));
    match written {
        Ok(()) => dir.display().to_string(),
        Err(e) => format!("nowhere ({e})"),
    }
}

/// Runs seeds of `setup` until one shows `anomaly`; panics, listing what each seed showed,
/// if none of `seeds` does. Returns the seed that did.
pub fn caught(setup: &Setup, anomaly: &str, seeds: u64) -> u64 {
    let mut seen = Vec::new();
    for seed in sim::sweep_seeds(seeds) {
        match run(seed, setup) {
            Ok(out) if out.shows(anomaly) => return seed,
            Ok(out) => seen.push(format!(
                "seed {seed}: {:?} diverged {:?}",
                out.anomalies(),
                out.diverged
            )),
            Err(e) => seen.push(format!("seed {seed}: {e}")),
        }
    }
    panic!(
        "{:?} {:?} was never caught as {anomaly} in {seeds} seeds:\n{}",
        setup.mode,
        setup.bugs,
        seen.join("\n")
    );
}
