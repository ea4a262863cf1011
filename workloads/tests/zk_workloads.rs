//! The coordination workloads' ZooKeeper clients against a real 3-server Apache ZooKeeper
//! 3.8 ensemble on 127.0.0.1 (Debian's `zookeeper` package, which these tests need:
//! without it they fail naming it). Concurrent workers draw operations from the coord
//! workloads' own generators, a history is recorded as the harness's runner records one
//! (a process that got `info` is retired), the final operations run until they succeed,
//! and the coord workloads' own checkers (linearizability for `register`) judge it.

use checkers::history::{jsonl, History, Op, OpType, Process, Value};
use checkers::linearizable::Validity;
use checkers::rng::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workloads::client::{Client, Outcome};
use workloads::coord::workload::{self, ClientContext};
use workloads::register::RegisterWorkload;
use workloads::zookeeper::ensemble::{Ensemble, EnsembleConfig};
use workloads::zookeeper::workloads::{self as zk_workloads, ReadMode};

/// ZooKeeper's tick in these tests, as the harness runs it: sessions of 0.5 to 5 s, so
/// the lock session's 1 s lease is granted as asked.
const TICK_MS: u32 = 250;
/// Attempts at each final operation before the test gives up on it.
const FINAL_ATTEMPTS: u32 = 10;

fn ensemble() -> (tempfile::TempDir, Ensemble) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = EnsembleConfig::for_tests(3, dir.path());
    config.tick_ms = TICK_MS;
    // A missing package is an error naming it (`zookeeper`, `default-jre-headless`).
    let zk = Ensemble::start(config).unwrap_or_else(|e| panic!("{e}"));
    (dir, zk)
}

fn addrs(zk: &Ensemble) -> Vec<SocketAddr> {
    zk.client_addrs()
        .iter()
        .map(|a| a.parse().expect("a client address"))
        .collect()
}

/// Worker `worker`'s context: bound to server `worker mod 3`, as the harness spreads them.
fn ctx(nodes: &[SocketAddr], worker: u32, op_timeout_ms: u64) -> ClientContext {
    ClientContext {
        node: nodes[worker as usize % nodes.len()],
        nodes: nodes.to_vec(),
        worker,
        op_timeout_ms,
        focus: Default::default(),
    }
}

/// A history recorded as the runner records one: every event appended as it happens.
struct Recorder {
    ops: Mutex<Vec<Op>>,
    started: Instant,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            ops: Mutex::new(Vec::new()),
            started: Instant::now(),
        }
    }

    fn push(&self, process: u64, op_type: OpType, f: &str, value: Value, out: Option<&Outcome>) {
        let mut ops = self.ops.lock().unwrap();
        let index = ops.len() as u64;
        let mut op = Op::new(index, op_type, Process::Client(process), f, value);
        op.time = Some(self.started.elapsed().as_nanos() as u64);
        if let Some(o) = out {
            op.error = o.error.clone();
            op.node = o.node.clone();
            op.extra = o.extra.clone();
        }
        ops.push(op);
    }

    /// Invokes `f` with `client` as process `process`, recording both events.
    async fn call(&self, client: &mut impl Client, process: u64, f: &str, value: Value) -> Outcome {
        self.push(process, OpType::Invoke, f, value.clone(), None);
        let out = client.invoke(f, &value).await;
        self.push(process, out.op_type, f, out.value.clone(), Some(&out));
        out
    }

    /// The history, through the JSON-lines writer and reader the harness uses.
    fn history(&self) -> History {
        let text = jsonl::write(&self.ops.lock().unwrap());
        jsonl::read("history.jsonl", &text).expect("a valid history")
    }

    /// How many completions of each `"<f> <type>"`.
    fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for op in self.ops.lock().unwrap().iter() {
            if op.op_type != OpType::Invoke {
                *counts
                    .entry(format!("{} {}", op.f, op.op_type.as_str()))
                    .or_default() += 1;
            }
        }
        counts
    }
}

/// Where workers draw operations from: one source for all, as the runner's generator is.
type OpSource = Arc<Mutex<Box<dyn FnMut() -> (String, Value) + Send>>>;

/// What one run does.
struct Run {
    name: &'static str,
    workers: u32,
    ops_per_worker: u32,
    op_timeout_ms: u64,
    reads: ReadMode,
    /// Workers stop drawing operations this long after they started, if given.
    duration: Option<Duration>,
}

impl Run {
    fn client(&self, nodes: &[SocketAddr], worker: u32) -> workloads::client::BoxClient {
        let ctx = ctx(nodes, worker, self.op_timeout_ms);
        zk_workloads::client(self.name, ctx, self.reads)
            .unwrap_or_else(|| panic!("no ZooKeeper client for {}", self.name))
    }

    /// Every worker runs its operations concurrently, a process retired after each `info`.
    /// Returns the clients, whose sessions live on through the final operations as the
    /// runner's do.
    async fn workers(
        &self,
        nodes: &[SocketAddr],
        source: OpSource,
        rec: Arc<Recorder>,
    ) -> Vec<workloads::client::BoxClient> {
        let mut tasks = Vec::new();
        for w in 0..self.workers {
            let (source, rec) = (source.clone(), rec.clone());
            let mut client = self.client(nodes, w);
            let (workers, ops) = (u64::from(self.workers), self.ops_per_worker);
            let deadline = self.duration.map(|d| Instant::now() + d);
            tasks.push(tokio::spawn(async move {
                let mut process = u64::from(w);
                for _ in 0..ops {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let (f, value) = (source.lock().unwrap())();
                    let out = rec.call(&mut client, process, &f, value).await;
                    if out.op_type == OpType::Info {
                        process += workers;
                    }
                }
                client
            }));
        }
        let mut clients = Vec::new();
        for t in tasks {
            clients.push(t.await.expect("a worker panicked"));
        }
        clients
    }

    /// Each final operation on a fresh worker's client, repeated until it succeeds.
    async fn finals(&self, nodes: &[SocketAddr], finals: Vec<(String, Value)>, rec: &Recorder) {
        let mut client = self.client(nodes, self.workers);
        let mut process = 1_000;
        for (f, value) in finals {
            let mut attempts = 0;
            loop {
                let out = rec.call(&mut client, process, &f, value.clone()).await;
                match out.op_type {
                    OpType::Ok => break,
                    OpType::Info => process += 1,
                    _ => {}
                }
                attempts += 1;
                assert!(
                    attempts < FINAL_ATTEMPTS,
                    "final {f} never succeeded: {out:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Runs coord workload `run.name`'s generator and final ops on the ZooKeeper clients and
/// returns the history, judged valid by the workload's own checker, and the counts.
fn run_coord_workload(run: Run, seed: u64) -> (History, BTreeMap<String, u64>) {
    let (_dir, zk) = ensemble();
    let nodes = addrs(&zk);
    let w = workload::by_name(run.name).expect("a coord workload");
    let generator = w.clone();
    let mut rng = Rng::new(seed);
    let source: OpSource = Arc::new(Mutex::new(Box::new(move || generator.next_op(&mut rng))));
    let rec = Arc::new(Recorder::new());
    runtime().block_on(async {
        let _clients = run.workers(&nodes, source, rec.clone()).await;
        run.finals(&nodes, w.final_ops(), &rec).await;
    });
    let history = rec.history();
    let verdict = w.check(&history);
    assert_eq!(
        verdict.valid,
        Validity::Valid,
        "{}: {}\n{}\n{}",
        run.name,
        verdict.summary,
        verdict.explanation,
        verdict.details
    );
    (history, rec.counts())
}

fn count(counts: &BTreeMap<String, u64>, key: &str) -> u64 {
    counts.get(key).copied().unwrap_or(0)
}

/// The completion values of `f` that are `ok`.
fn ok_values<'a>(history: &'a History, f: &'a str) -> impl Iterator<Item = &'a Value> {
    history
        .ops
        .iter()
        .filter(move |op| op.f == f && op.op_type == OpType::Ok)
        .map(|op| &op.value)
}

fn assert_lock_run(name: &'static str) {
    // For a fixed time, not a fixed count: a worker done with its count while holding
    // the lock would leave the others waiting to the end.
    let run = Run {
        name,
        workers: 5,
        ops_per_worker: 100_000,
        op_timeout_ms: 3_000,
        reads: ReadMode::Confirmed,
        duration: Some(Duration::from_secs(6)),
    };
    let (history, counts) = run_coord_workload(run, 7);
    let acquired = count(&counts, "acquire ok");
    let written = count(&counts, "write ok");
    assert!(acquired >= 10, "{name}: few acquires ok: {counts:?}");
    assert!(written >= 10, "{name}: few writes ok: {counts:?}");
    assert!(count(&counts, "release ok") >= 5, "{name}: {counts:?}");
    // Tokens are czxids: positive, distinct per grant, and the store's log has every
    // `ok` write (the checker's lost-write rule; counted here so that the check is not
    // vacuous).
    let tokens: Vec<u64> = ok_values(&history, "acquire")
        .map(|v| v["token"].as_u64().expect("a non-negative integer token"))
        .collect();
    assert!(tokens.iter().all(|t| *t > 0), "{tokens:?}");
    let log = ok_values(&history, "read")
        .last()
        .expect("a final read")
        .get("log")
        .and_then(Value::as_array)
        .expect("a log")
        .len() as u64;
    assert!(log >= written, "{name}: log {log} < {written} ok writes");
}

#[test]
fn lock_on_zookeeper_grants_rising_tokens_and_the_store_accepts_fenced_writes() {
    assert_lock_run("lock");
}

#[test]
fn lock_unfenced_on_zookeeper_without_faults_is_valid() {
    assert_lock_run("lock-unfenced");
}

/// The scenario fencing exists for, on real ZooKeeper: worker 0 holds the lock and
/// writes; its server is killed, so its lock session (bound to that server) expires
/// behind its back while it still believes it holds the lock; worker 1 acquires with a
/// newer token and writes; then worker 0 writes again through its store session, which
/// moved to a live server. Returns the history (with the final read) and the verdict.
fn stale_holder(name: &'static str) -> (History, workloads::verdict::Verdict) {
    let (_dir, mut zk) = ensemble();
    let nodes = addrs(&zk);
    let w = workload::by_name(name).expect("a coord workload");
    let run = Run {
        name,
        workers: 2,
        ops_per_worker: 0,
        // Waits of 4 s: past the lock session's 1 s lease and its expiry's tick.
        op_timeout_ms: 8_000,
        reads: ReadMode::Confirmed,
        duration: None,
    };
    let rec = Recorder::new();
    let expect = |out: &Outcome, t: OpType, what: &str| {
        assert_eq!(out.op_type, t, "{what}: {out:?}");
    };
    runtime().block_on(async {
        let (mut a, mut b) = (run.client(&nodes, 0), run.client(&nodes, 1));
        let out = rec.call(&mut a, 0, "acquire", Value::Null).await;
        expect(&out, OpType::Ok, "worker 0 acquires");
        let out = rec.call(&mut a, 0, "write", Value::Null).await;
        expect(&out, OpType::Ok, "worker 0 writes");
        zk.kill(0);
        let out = rec.call(&mut b, 1, "acquire", Value::Null).await;
        expect(
            &out,
            OpType::Ok,
            "worker 1 acquires once worker 0's session expired",
        );
        let out = rec.call(&mut b, 1, "write", Value::Null).await;
        expect(&out, OpType::Ok, "worker 1 writes");
        rec.call(&mut a, 0, "write", Value::Null).await;
        run.finals(&nodes[1..], w.final_ops(), &rec).await;
    });
    let history = rec.history();
    let verdict = w.check(&history);
    (history, verdict)
}

#[test]
fn lock_on_zookeeper_fences_off_a_holder_whose_session_expired_behind_its_back() {
    let (history, verdict) = stale_holder("lock");
    assert_eq!(verdict.valid, Validity::Valid, "{}", verdict.explanation);
    let stale = history
        .ops
        .iter()
        .rfind(|op| op.f == "write" && op.process == Process::Client(0))
        .expect("worker 0's last write");
    assert_eq!(stale.op_type, OpType::Fail, "{stale:?}");
    let (token, highest) = (
        stale.value["token"].as_u64(),
        stale.value["highest"].as_u64(),
    );
    assert!(token < highest, "refused for an older token: {stale:?}");
    assert_eq!(verdict.details["accepted"], 2, "{}", verdict.details);
}

#[test]
fn lock_unfenced_on_zookeeper_accepts_the_stale_holder_and_the_checker_sees_it() {
    let (history, verdict) = stale_holder("lock-unfenced");
    let stale = history
        .ops
        .iter()
        .rfind(|op| op.f == "write" && op.process == Process::Client(0))
        .expect("worker 0's last write");
    assert_eq!(stale.op_type, OpType::Ok, "{stale:?}");
    assert_eq!(verdict.valid, Validity::Invalid, "{}", verdict.summary);
    let kinds: Vec<&str> = verdict.details["reported"]
        .as_array()
        .expect("reported violations")
        .iter()
        .filter_map(|v| v["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["stale-write"], "{}", verdict.explanation);
}

/// Watches set by reads fire before the same session reads the newer value, once each.
/// ZooKeeper 3.8's notifications carry no zxid, so every one is recorded with a null zxid
/// and the check counts them unordered.
#[test]
fn watch_on_zookeeper_fires_before_the_newer_value_once() {
    let run = Run {
        name: "watch",
        workers: 6,
        ops_per_worker: 60,
        op_timeout_ms: 4_000,
        reads: ReadMode::Confirmed,
        duration: None,
    };
    let (history, counts) = run_coord_workload(run, 5);
    assert!(count(&counts, "read ok") >= 100, "{counts:?}");
    assert!(count(&counts, "write ok") >= 100, "{counts:?}");
    let fired: Vec<&Value> = history
        .ops
        .iter()
        .filter(|op| op.op_type == OpType::Ok)
        .flat_map(|op| op.value["fired"].as_array().into_iter().flatten())
        .collect();
    assert!(fired.len() >= 20, "watches fired: {counts:?}");
    assert!(
        fired
            .iter()
            .all(|f| f["zxid"].is_null() && f["id"].is_string()),
        "3.8 sends no zxid: {fired:?}"
    );
    let verdict = workload::by_name("watch").unwrap().check(&history);
    assert_eq!(
        verdict.details["fired_without_zxid"],
        fired.len(),
        "{verdict:?}"
    );
}

#[test]
fn sequential_on_zookeeper_numbers_creates_uniquely_in_order() {
    let run = Run {
        name: "sequential",
        workers: 6,
        ops_per_worker: 50,
        op_timeout_ms: 4_000,
        reads: ReadMode::Confirmed,
        duration: None,
    };
    let (history, counts) = run_coord_workload(run, 11);
    assert!(count(&counts, "create ok") >= 250, "{counts:?}");
    let lists: Vec<&Value> = ok_values(&history, "list").collect();
    assert_eq!(lists.len(), 3, "one final list per parent");
    let listed: usize = lists
        .iter()
        .map(|l| l["children"].as_array().expect("children").len())
        .sum();
    assert!(lists
        .iter()
        .all(|l| !l["children"].as_array().unwrap().is_empty()));
    // Every `ok` create is listed; an `info` one may be.
    let (ok, info) = (count(&counts, "create ok"), count(&counts, "create info"));
    assert!(
        (ok..=ok + info).contains(&(listed as u64)),
        "{listed} listed: {counts:?}"
    );
}

#[test]
fn election_on_zookeeper_has_one_leader_per_epoch() {
    // For a fixed time, as the lock's run (a leader done with its count would stay).
    let run = Run {
        name: "election",
        workers: 5,
        ops_per_worker: 100_000,
        op_timeout_ms: 3_000,
        reads: ReadMode::Confirmed,
        duration: Some(Duration::from_secs(6)),
    };
    let (history, counts) = run_coord_workload(run, 5);
    assert!(count(&counts, "volunteer ok") >= 10, "{counts:?}");
    assert!(count(&counts, "lead ok") >= 10, "{counts:?}");
    assert!(count(&counts, "resign ok") >= 5, "{counts:?}");
    let leaders: Vec<&Value> = ok_values(&history, "observe")
        .map(|v| &v["leader"])
        .filter(|l| !l.is_null())
        .collect();
    assert!(leaders.len() >= 10, "observers saw leaders: {counts:?}");
    for l in leaders {
        let token = l["token"].as_u64().expect("a non-negative integer token");
        assert!(token > 0 && l["session"].as_u64().is_some(), "{l}");
        assert!(l["path"]
            .as_str()
            .unwrap()
            .starts_with("/faultline/election/n-"));
    }
}

#[test]
fn membership_on_zookeeper_expires_ghosts_and_keeps_live_members() {
    // Long enough that the final listing, after the settling pause, comes past the
    // checker's deadline (timeout + slack) for the early ghosts and closes.
    let run = Run {
        name: "membership",
        workers: 5,
        ops_per_worker: 100_000,
        op_timeout_ms: 4_000,
        reads: ReadMode::Confirmed,
        duration: Some(Duration::from_secs(5)),
    };
    let (history, counts) = run_coord_workload(run, 9);
    for f in ["join", "leave", "members", "ghost", "close"] {
        assert!(count(&counts, &format!("{f} ok")) >= 10, "{f}: {counts:?}");
    }
    let (listing_at_ns, last) = history
        .ops
        .iter()
        .enumerate()
        .rfind(|(_, op)| op.f == "final-members" && op.op_type == OpType::Ok)
        .map(|(i, op)| {
            let invoke = &history.ops[history.partner[i].expect("an invocation")];
            (invoke.time.expect("a time"), &op.value)
        })
        .expect("a final listing");
    let members: Vec<&str> = last["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m.as_str().expect("a name"))
        .collect();
    // The ghosts the checker judged (due before the final listing began) are all gone.
    let slack_ns = workloads::coord::workloads::membership::EXPIRY_SLACK_MS * 1_000_000;
    let judged: Vec<&str> = history
        .ops
        .iter()
        .filter(|op| op.f == "ghost" && op.op_type == OpType::Ok)
        .filter(|op| {
            let timeout_ns = op.value["timeout_ms"].as_u64().expect("a timeout") * 1_000_000;
            op.time.expect("a time") + timeout_ns + slack_ns <= listing_at_ns
        })
        .map(|op| op.value["member"].as_str().expect("a member"))
        .collect();
    assert!(
        judged.len() >= 5,
        "ghosts due before the final listing: {judged:?}"
    );
    assert!(judged.iter().all(|g| !members.contains(g)), "{last}");
    // Every worker's session was probed alive, and the joined ones are listed.
    let alive: Vec<u64> = last["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .filter(|p| p["alive"] == true)
        .map(|p| p["session"].as_u64().expect("a session"))
        .collect();
    assert!(alive.len() >= 5, "{last}");
    let listed_alive = alive
        .iter()
        .filter(|s| {
            members.contains(&workloads::coord::workloads::membership::member_name(**s).as_str())
        })
        .count();
    assert!(listed_alive >= 1, "live members are listed: {last}");
}

/// Register workers on the ZooKeeper clients, the linearizability verdict, and the counts.
/// With `kill_leader_after` ops completed, the leader is killed then, and the workers run
/// for a fixed time instead (those bound to the dead server spend each op waiting).
fn run_register(kill_leader_after: Option<usize>) -> BTreeMap<String, u64> {
    let (_dir, mut zk) = ensemble();
    let nodes = addrs(&zk);
    let register = RegisterWorkload::default();
    let mut ops = register.ops().expect("the default config");
    let mut rng = Rng::new(3);
    let source: OpSource = Arc::new(Mutex::new(Box::new(move || ops.next(&mut rng))));
    let rec = Arc::new(Recorder::new());
    let run = Run {
        name: "register",
        workers: 6,
        ops_per_worker: if kill_leader_after.is_some() {
            10_000
        } else {
            150
        },
        op_timeout_ms: 1_500,
        reads: ReadMode::Confirmed,
        duration: kill_leader_after.map(|_| Duration::from_secs(8)),
    };
    let rt = runtime();
    let leader = zk.leader().expect("an elected leader");
    let workers = {
        let (nodes, source, rec) = (nodes.clone(), source.clone(), rec.clone());
        rt.spawn(async move {
            run.workers(&nodes, source, rec).await;
        })
    };
    let mut killed_at = None;
    if let Some(after) = kill_leader_after {
        // Each op is two events.
        while rec.ops.lock().unwrap().len() < 2 * after {
            std::thread::sleep(Duration::from_millis(10));
        }
        zk.kill(leader);
        killed_at = Some(rec.started.elapsed().as_nanos() as u64);
    }
    rt.block_on(workers).expect("the workers ran");
    let history = rec.history();
    let outcome = register
        .check(&history, Duration::from_secs(20))
        .expect("a checkable history");
    assert_eq!(outcome.valid, Validity::Valid, "{outcome:?}");
    let mut counts = rec.counts();
    if let Some(at) = killed_at {
        let after_kill = history
            .ops
            .iter()
            .filter(|op| op.op_type == OpType::Ok && op.time.unwrap_or(0) > at)
            .count() as u64;
        counts.insert("ok after the kill".into(), after_kill);
    }
    counts
}

#[test]
fn register_on_zookeeper_with_confirmed_reads_is_linearizable() {
    let counts = run_register(None);
    for f in ["read", "write"] {
        assert!(count(&counts, &format!("{f} ok")) >= 100, "{f}: {counts:?}");
    }
    // A cas expects one of the last few values written, so most find another.
    assert!(count(&counts, "cas ok") >= 10, "{counts:?}");
    assert!(
        count(&counts, "cas fail") > 0,
        "some cas found another value: {counts:?}"
    );
}

#[test]
fn register_on_zookeeper_stays_linearizable_when_the_leader_is_killed() {
    let counts = run_register(Some(300));
    assert!(count(&counts, "write ok") >= 20, "{counts:?}");
    assert!(
        count(&counts, "ok after the kill") >= 50,
        "the surviving servers kept serving: {counts:?}"
    );
}

#[test]
fn names_and_clients_cover_the_coord_workloads_by_their_names() {
    let nodes: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().unwrap()];
    for name in zk_workloads::NAMES {
        assert!(
            *name == "register" || workload::by_name(name).is_some(),
            "{name} is not a coord workload"
        );
        assert!(zk_workloads::client(name, ctx(&nodes, 0, 100), ReadMode::default()).is_some());
    }
    assert!(zk_workloads::client("no-such", ctx(&nodes, 0, 100), ReadMode::default()).is_none());
}

/// The zxid ZooKeeper gives the next write: one past every transaction committed so far.
async fn next_write_zxid(raw: &workloads::zookeeper::Client) -> i64 {
    raw.set_data("/probe", b"", -1)
        .await
        .expect("the probe is written")
        .mzxid
}

/// A read of the register as `mode` performs it, and the transactions it committed.
async fn read_and_count_txns(
    nodes: &[SocketAddr],
    raw: &workloads::zookeeper::Client,
    mode: ReadMode,
    key: i64,
) -> (Outcome, i64) {
    let mut client = zk_workloads::client("register", ctx(nodes, 0, 3_000), mode).unwrap();
    // Opening the session is a transaction too: open it on another key first.
    let warm = client.invoke("read", &serde_json::json!([99, null])).await;
    assert_eq!(warm.op_type, OpType::Ok, "{warm:?}");
    let before = next_write_zxid(raw).await;
    let outcome = client.invoke("read", &serde_json::json!([key, null])).await;
    let after = next_write_zxid(raw).await;
    (outcome, after - before - 1)
}

/// ZooKeeper's `sync` is not a quorum operation, so the default read confirms what it read
/// with a `check` that Zab commits (one transaction), and reads a missing key by creating
/// it empty (one transaction, the value still null). The `sync-reads` client bug commits
/// nothing. Counted through zxids: a write's mzxid is one past the last transaction.
#[test]
fn confirmed_reads_commit_a_transaction_and_sync_reads_do_not() {
    let (_dir, zk) = ensemble();
    let nodes = addrs(&zk);
    runtime().block_on(async {
        let mut config = workloads::zookeeper::Config::new(&zk.client_addrs());
        config.connect_timeout = Duration::from_secs(5);
        let raw = workloads::zookeeper::Client::connect(config).await.unwrap();
        raw.create("/probe", b"", workloads::zookeeper::CreateMode::Persistent)
            .await
            .unwrap();
        let (missing, txns) = read_and_count_txns(&nodes, &raw, ReadMode::Confirmed, 7).await;
        assert_eq!(missing.value, serde_json::json!([7, null]), "{missing:?}");
        assert_eq!(txns, 1, "the missing node was created");
        let (data, _) = raw.get_data("/register-7").await.expect("created empty");
        assert!(data.is_empty(), "{data:?}");
        raw.set_data("/register-7", b"42", -1).await.unwrap();
        let (read, txns) = read_and_count_txns(&nodes, &raw, ReadMode::Confirmed, 7).await;
        assert_eq!(read.value, serde_json::json!([7, 42]), "{read:?}");
        assert_eq!(txns, 1, "the version read was checked through Zab");
        let (read, txns) = read_and_count_txns(&nodes, &raw, ReadMode::Sync, 7).await;
        assert_eq!(read.value, serde_json::json!([7, 42]), "{read:?}");
        assert_eq!(txns, 0, "sync commits nothing");
    });
}
