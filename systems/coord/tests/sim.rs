//! The coordination service in the seeded simulator: whole servers (Zab, tree, sessions)
//! under partitions, crashes with lost unsynced writes, pauses, clock jumps and message
//! loss, with clients whose histories go to the linearizability checker.

use checkers::model::ModelKind;
use coord::api::{
    Acl, CreateFlags, CreateRequest, ErrorCode, Reply, Request, SessionId, SetDataRequest,
};
use coord::server::config::{Bugs, CoordConfig};
use coord::server::proto::{ClientMsg, ServerMsg};
use coord::server::CoordServer;
use coord::zab::Zxid;
use serde_json::Value;
use sim::{
    check_linearizable, sweep, ClientIo, FaultConfig, FaultWeights, Latency, Sim, SimClient,
    SimConfig,
};
use std::time::Duration;

const PATH: &str = "/r";
const SESSION_TIMEOUT_MS: u64 = 4_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Write(u64),
    Create(u64),
    ReadSync,
    ReadGet,
    CasSync(u64, u64),
    CasGet(u64, u64),
    CasSet(u64, u64),
}

/// A client of one register znode: write = setData (create if missing); read = sync then
/// getData; cas = sync, getData, and setData at the version read.
struct RegisterClient {
    ops_left: u64,
    /// Refusals in a row; a client refused too often starts over as a new one.
    refusals: u32,
    session: Option<SessionId>,
    last_zxid: Zxid,
    ready: bool,
    xid: u64,
    step: Option<Step>,
}

impl RegisterClient {
    fn new(ops: u64) -> Self {
        RegisterClient {
            ops_left: ops,
            refusals: 0,
            session: None,
            last_zxid: 0,
            ready: false,
            xid: 0,
            step: None,
        }
    }

    fn op(&mut self, io: &mut ClientIo<'_, CoordServer>, step: Step, request: Request) {
        self.xid += 1;
        self.step = Some(step);
        io.send(ClientMsg::Op {
            xid: self.xid,
            request,
        });
    }

    fn set(v: u64, version: i32) -> Request {
        Request::SetData(SetDataRequest {
            path: PATH.into(),
            data: v.to_string().into_bytes(),
            version,
        })
    }

    fn end_with_error(
        &mut self,
        io: &mut ClientIo<'_, CoordServer>,
        code: ErrorCode,
        is_write: bool,
    ) {
        self.step = None;
        if is_write && !code.is_definite() {
            io.info(&code.to_string());
        } else {
            io.fail(&code.to_string());
        }
    }

    fn on_reply(&mut self, io: &mut ClientIo<'_, CoordServer>, result: Result<Reply, ErrorCode>) {
        let Some(step) = self.step.take() else {
            return;
        };
        match (step, result) {
            (Step::Write(v) | Step::Create(v), Ok(_)) => io.ok(Value::from(v)),
            (Step::Write(v), Err(ErrorCode::NoNode)) => {
                let create = Request::Create(CreateRequest {
                    path: PATH.into(),
                    data: v.to_string().into_bytes(),
                    acl: Acl::open(),
                    flags: CreateFlags::PERSISTENT,
                });
                self.op(io, Step::Create(v), create);
            }
            (Step::Create(v), Err(ErrorCode::NodeExists)) => {
                self.op(io, Step::Write(v), Self::set(v, -1))
            }
            (Step::Write(_) | Step::Create(_), Err(code)) => self.end_with_error(io, code, true),
            (Step::ReadSync, Ok(_)) => self.op(io, Step::ReadGet, get()),
            (Step::ReadGet, Ok(Reply::GetData { data, .. })) => io.ok(parse(&data)),
            (Step::ReadGet, Err(ErrorCode::NoNode)) => io.ok(Value::Null),
            (Step::CasSync(a, b), Ok(_)) => self.op(io, Step::CasGet(a, b), get()),
            (Step::CasGet(a, b), Ok(Reply::GetData { data, stat })) => {
                if parse(&data) == a {
                    self.op(io, Step::CasSet(a, b), Self::set(b, stat.version));
                } else {
                    io.fail("value differs");
                }
            }
            (Step::CasSet(a, b), Ok(_)) => io.ok(Value::from(vec![a, b])),
            (Step::CasSet(..), Err(code)) => self.end_with_error(io, code, true),
            (_, Err(code)) => self.end_with_error(io, code, false),
            (step, Ok(reply)) => panic!("{step:?} got {reply:?}"),
        }
    }
}

fn get() -> Request {
    Request::GetData {
        path: PATH.into(),
        watch: false,
    }
}

fn parse(data: &[u8]) -> Value {
    let text = std::str::from_utf8(data).expect("the register holds decimal text");
    Value::from(text.parse::<u64>().expect("a number"))
}

impl SimClient<CoordServer> for RegisterClient {
    fn on_connect(&mut self, io: &mut ClientIo<'_, CoordServer>) {
        self.ready = false;
        self.step = None;
        io.send(ClientMsg::Connect {
            session: self.session,
            timeout_ms: SESSION_TIMEOUT_MS,
            last_zxid: self.last_zxid,
        });
    }

    fn on_idle(&mut self, io: &mut ClientIo<'_, CoordServer>) {
        if !self.ready || self.step.is_some() {
            return;
        }
        if self.ops_left == 0 {
            io.stop();
            return;
        }
        self.ops_left -= 1;
        let dice = io.rng().below(10);
        let a = io.rng().below(5);
        let b = io.rng().below(5);
        self.xid += 1;
        let xid = self.xid;
        let (f, value, step, request) = match dice {
            0..=3 => (
                "read",
                Value::Null,
                Step::ReadSync,
                Request::Sync { path: PATH.into() },
            ),
            4..=7 => ("write", Value::from(a), Step::Write(a), Self::set(a, -1)),
            _ => (
                "cas",
                Value::from(vec![a, b]),
                Step::CasSync(a, b),
                Request::Sync { path: PATH.into() },
            ),
        };
        self.step = Some(step);
        io.invoke(f, value, ClientMsg::Op { xid, request });
    }

    fn on_response(&mut self, io: &mut ClientIo<'_, CoordServer>, resp: ServerMsg) {
        match resp {
            ServerMsg::Connected { session, zxid, .. } => {
                self.refusals = 0;
                self.session = Some(session);
                self.last_zxid = self.last_zxid.max(zxid);
                self.ready = true;
            }
            ServerMsg::Refused { code } => {
                self.refusals += 1;
                // ZooKeeper's client never goes back in time, so a cluster that lost what
                // it saw refuses it forever; a new client (a new process) does not know.
                if code == ErrorCode::SessionExpired || self.refusals >= 5 {
                    self.session = None;
                    self.last_zxid = 0;
                    self.refusals = 0;
                }
                io.reconnect(None);
            }
            ServerMsg::Reply { xid, zxid, result } => {
                self.last_zxid = self.last_zxid.max(zxid);
                if xid == self.xid && io.open().is_some() {
                    self.on_reply(io, result);
                }
            }
            ServerMsg::Watch { .. }
            | ServerMsg::Pong { .. }
            | ServerMsg::Closed { .. }
            | ServerMsg::Status { .. } => {}
        }
    }

    fn on_disconnect(&mut self, _io: &mut ClientIo<'_, CoordServer>) {
        self.ready = false;
        self.step = None;
    }
}

fn chaos() -> SimConfig {
    let mut c = SimConfig::chaos(3);
    c.disk.latency = Latency::Uniform {
        min_ms: 1,
        max_ms: 10,
    };
    c.client.timeout_ms = 2_000;
    c.faults = FaultConfig {
        interval_ms: (200, 1_500),
        duration_ms: (100, 1_500),
        max_clock_jump_ms: 1_000,
        ..FaultConfig::chaos()
    };
    c
}

const CLIENTS: u64 = 5;
const OPS: u64 = 60;

/// Runs clients on the register under faults, checking after every step that replicas
/// that applied the same zxid hold the same tree; then checks the history.
fn register_run(seed: u64, config: SimConfig, bugs: Bugs) -> Result<usize, String> {
    register_run_with(seed, config, bugs, false)
}

/// `power_loss`: every 0.15 to 0.6 s the whole cluster loses power at once (every node
/// crashes, losing what it had not fsynced) and comes back.
fn register_run_with(
    seed: u64,
    config: SimConfig,
    bugs: Bugs,
    power_loss: bool,
) -> Result<usize, String> {
    register_run_cfg(seed, config, CoordConfig::with_bugs(bugs), power_loss)
}

fn register_run_cfg(
    seed: u64,
    config: SimConfig,
    cfg: CoordConfig,
    power_loss: bool,
) -> Result<usize, String> {
    let nodes_for_loss = config.nodes;
    let mut sim: Sim<CoordServer> = Sim::new(seed, config, cfg).map_err(|e| e.to_string())?;
    for _ in 0..CLIENTS {
        sim.add_client(RegisterClient::new(OPS));
    }
    let mut commit_points: std::collections::BTreeSet<Zxid> = Default::default();
    let mut last_committed: std::collections::BTreeMap<u32, Zxid> = Default::default();
    let mut was_leading: std::collections::BTreeMap<u32, bool> = Default::default();
    sim.set_invariant(move |cluster| {
        // Zab's promise: a leader, once established, holds every zxid committed anywhere.
        for (id, server) in cluster.live() {
            let zab = server.zab();
            let c = zab.committed();
            if last_committed.insert(id, c) != Some(c) && c > 0 {
                commit_points.insert(c);
            }
            let leading = zab.is_leading() && zab.is_serving();
            if leading && was_leading.insert(id, true) != Some(true) {
                if let Some(z) = commit_points.iter().find(|&&z| zab.holds(z) == Some(false)) {
                    return Err(format!("n{id} leads without the committed zxid {z:#x}"));
                }
            }
            if !leading {
                was_leading.insert(id, false);
            }
        }
        let mut seen: std::collections::BTreeMap<Zxid, (u32, u64)> = Default::default();
        for (id, server) in cluster.live() {
            let t = server.tree();
            if let Some((other, digest)) = seen.insert(t.last_zxid(), (id, t.digest())) {
                if digest != t.digest() {
                    return Err(format!(
                        "n{id} and n{other} differ at zxid {:#x}",
                        t.last_zxid()
                    ));
                }
            }
        }
        Ok(())
    });
    let nodes = nodes_for_loss;
    if power_loss {
        let mut rng = checkers::rng::Rng::new(seed ^ 0x9013);
        while !sim.clients_done() && sim.now_ms() < 300_000 {
            sim.run_for(150 + rng.below(450))
                .map_err(|e| e.to_string())?;
            for n in 1..=nodes {
                sim.crash(n);
            }
            sim.run_for(20).map_err(|e| e.to_string())?;
            for n in 1..=nodes {
                sim.restart(n);
            }
        }
    }
    sim.run_until(|s| s.clients_done(), 300_000)
        .map_err(|e| e.to_string())?;
    let history = sim.history().map_err(|e| e.to_string())?;
    let oks = sim
        .history_ops()
        .iter()
        .filter(|op| op.op_type == checkers::history::OpType::Ok && op.f != "nemesis")
        .count();
    check_linearizable(&history, ModelKind::CasRegister, Duration::from_secs(30))
        .map_err(|why| format!("not linearizable (seed {seed}):\n{why}"))?;
    Ok(oks)
}

#[test]
fn the_register_is_linearizable_under_chaos() {
    let mut oks = 0;
    sweep(6, |seed| {
        oks += register_run(seed, chaos(), Bugs::default())?;
        Ok::<(), String>(())
    })
    .unwrap_or_else(|f| panic!("{f}"));
    assert!(oks > 6 * 100, "clients made progress: {oks} ok ops");
}

/// Crashes that may take down every node at once, on slow disks: what it takes for
/// unsynced acknowledgements and stale leaders to lose committed writes.
fn crashes() -> SimConfig {
    let mut c = chaos();
    c.disk.latency = Latency::Uniform {
        min_ms: 2,
        max_ms: 20,
    };
    c.faults.weights = FaultWeights {
        crash: 8,
        ..FaultWeights::default()
    };
    c.faults.max_down = Some(3);
    c
}

/// Fsync slower than the network (a loaded disk): acknowledging before it matters.
fn slow_disks() -> SimConfig {
    let mut c = chaos();
    c.disk.latency = Latency::Uniform {
        min_ms: 10,
        max_ms: 60,
    };
    c.disk.crash_loss = sim::CrashLoss::AllPending;
    c
}

/// Five nodes, crash-heavy: a node can fall behind while four others go on.
fn crashes5() -> SimConfig {
    let mut c = crashes();
    c.nodes = 5;
    c.faults.max_down = Some(5);
    c
}

fn bug_is_caught(name: &str, config: fn() -> SimConfig, power_loss: bool) {
    let bugs = Bugs::parse([name]).unwrap();
    let run = |seed: u64, bugs: Bugs| register_run_with(seed, config(), bugs, power_loss);
    let failure = sweep(40, |seed| run(seed, bugs.clone()).map(|_| ()))
        .expect_err(&format!("the sweep missed the bug {name}"));
    eprintln!(
        "{name}: found after {} seed(s): {}",
        failure.seeds_run, failure.message
    );
    assert!(
        failure.message.contains("not linearizable")
            || failure.message.contains("differ")
            || failure.message.contains("leads without"),
        "{failure}"
    );
    assert!(run(failure.seed, bugs).is_err(), "the failing seed replays");
}

#[test]
fn the_register_survives_whole_cluster_crashes() {
    sweep(6, |seed| {
        register_run(seed, crashes(), Bugs::default()).map(|_| ())
    })
    .unwrap_or_else(|f| panic!("{f}"));
}

/// Snapshots every few commits and a short log tail kept below them: restarts restore the
/// tree from a snapshot, and followers far behind are brought up by SNAP.
#[test]
fn the_register_survives_crashes_with_frequent_snapshots() {
    let mut cfg = CoordConfig {
        snapshot_every: 7,
        ..CoordConfig::default()
    };
    cfg.zab.log_retain = 3;
    sweep(6, |seed| {
        register_run_cfg(seed, crashes(), cfg.clone(), false)?;
        register_run_cfg(seed, chaos(), cfg.clone(), true).map(|_| ())
    })
    .unwrap_or_else(|f| panic!("{f}"));
}

#[test]
fn the_register_survives_repeated_power_loss() {
    sweep(6, |seed| {
        register_run_with(seed, chaos(), Bugs::default(), true).map(|_| ())
    })
    .unwrap_or_else(|f| panic!("{f}"));
}

#[test]
fn answering_sync_without_the_leader_is_caught() {
    bug_is_caught("stale-sync", chaos, false);
}

#[test]
fn acknowledging_before_fsync_is_caught() {
    bug_is_caught("ack-before-fsync", slow_disks, true);
}

#[test]
fn electing_a_stale_leader_is_caught() {
    bug_is_caught("stale-leader", crashes5, true);
}

/// Creates one ephemeral znode, then falls silent: its session must expire.
struct Member {
    name: String,
    created: bool,
}

impl SimClient<CoordServer> for Member {
    fn on_connect(&mut self, io: &mut ClientIo<'_, CoordServer>) {
        if !self.created {
            io.send(ClientMsg::Connect {
                session: None,
                timeout_ms: 1_000,
                last_zxid: 0,
            });
        }
    }

    fn on_idle(&mut self, _io: &mut ClientIo<'_, CoordServer>) {}

    fn on_response(&mut self, io: &mut ClientIo<'_, CoordServer>, resp: ServerMsg) {
        match resp {
            ServerMsg::Connected { .. } => {
                let create = Request::Create(CreateRequest {
                    path: format!("/{}", self.name),
                    data: Vec::new(),
                    acl: Acl::open(),
                    flags: CreateFlags::EPHEMERAL,
                });
                io.invoke(
                    "join",
                    Value::from(self.name.clone()),
                    ClientMsg::Op {
                        xid: 1,
                        request: create,
                    },
                );
            }
            ServerMsg::Reply { result, .. } => {
                match result {
                    Ok(_) => io.ok(Value::from(self.name.clone())),
                    Err(code) => io.info(&code.to_string()),
                }
                self.created = true;
                io.stop();
            }
            ServerMsg::Refused { .. } => io.reconnect(None),
            _ => {}
        }
    }
}

/// Runs members that join and fall silent, then checks every server: ephemerals whose
/// owner's session is gone are orphans.
fn membership_run(seed: u64, bugs: Bugs) -> Result<usize, String> {
    let config = SimConfig {
        nodes: 3,
        ..SimConfig::default()
    };
    let mut sim: Sim<CoordServer> =
        Sim::new(seed, config, CoordConfig::with_bugs(bugs)).map_err(|e| e.to_string())?;
    for i in 0..5 {
        sim.add_client(Member {
            name: format!("member-{i}"),
            created: false,
        });
    }
    sim.run_until(|s| s.clients_done(), 30_000)
        .map_err(|e| e.to_string())?;
    let joined = sim
        .history_ops()
        .iter()
        .filter(|op| op.op_type == checkers::history::OpType::Ok)
        .count();
    // Well past the 1 s session timeout (clamped up to the 400 ms minimum at most).
    sim.run_for(5_000).map_err(|e| e.to_string())?;
    for id in 1..=3 {
        let Some(server) = sim.node(id) else { continue };
        let tree = server.tree();
        for path in tree.paths() {
            let owner = tree.stat(path).map_or(0, |s| s.ephemeral_owner);
            if owner != 0 && tree.session_timeout_ms(owner).is_none() {
                return Err(format!(
                    "n{id} keeps {path}, an orphan of expired session {owner:#x}"
                ));
            }
        }
        if tree.session_count() != 0 {
            return Err(format!("n{id} still has {} sessions", tree.session_count()));
        }
    }
    Ok(joined)
}

#[test]
fn expired_sessions_lose_their_ephemerals_on_every_server() {
    let mut joined = 0;
    sweep(5, |seed| {
        joined += membership_run(seed, Bugs::default())?;
        Ok::<(), String>(())
    })
    .unwrap_or_else(|f| panic!("{f}"));
    assert!(joined >= 20, "members joined before expiring: {joined}");
}

#[test]
fn skipping_ephemeral_cleanup_leaves_orphans() {
    let bugs = Bugs::parse(["skip-ephemeral-cleanup"]).unwrap();
    let err = membership_run(0, bugs).expect_err("orphans are found");
    assert!(err.contains("orphan of expired session"), "{err}");
}
