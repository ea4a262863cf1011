//! The etcd client and the register workload against a real single-node etcd.
//!
//! Each test starts its own etcd (Debian's `etcd-server`, 3.4) on free loopback ports with a
//! fresh data directory and kills it on drop, so the tests run in parallel and leave nothing
//! behind. A missing etcd is a failure that says how to install it, never a silent skip.

use checkers::history::{jsonl, Format, History, Op, OpType, Process, Value};
use checkers::linearizable::Validity;
use checkers::rng::Rng;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workloads::client::{Client, Outcome};
use workloads::etcd::EtcdClient;
use workloads::register::{RegisterConfig, RegisterOps, RegisterWorkload};

/// How long a fresh etcd may take to elect itself and serve a linearizable read.
const STARTUP_TIMEOUT_MS: u64 = 20_000;
/// Ports are picked by binding and releasing them, so another process can take one before
/// etcd binds it; starting again with new ports recovers from that.
const START_ATTEMPTS: usize = 3;

/// A running etcd, killed and its data removed on drop.
struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client_addr: SocketAddr,
}

impl Etcd {
    async fn start() -> Etcd {
        let binary = etcd_binary();
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let mut etcd = Etcd::spawn(&binary);
            match etcd.wait_ready().await {
                Ok(()) => return etcd,
                Err(log) => last_log = log,
            }
        }
        panic!("etcd did not start in {START_ATTEMPTS} attempts; its last log:\n{last_log}");
    }

    fn spawn(binary: &Path) -> Etcd {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        // tmpfs when there is one: etcd fsyncs every write, and a disk makes that the bottleneck.
        let base = Some(PathBuf::from("/dev/shm"))
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "faultline-etcd-test-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the etcd test directory");
        let (client_port, peer_port) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.join("etcd.log")).expect("create the etcd log");
        let child = Command::new(binary)
            .arg("--name=n1")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=n1={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", binary.display()));
        Etcd {
            child: Some(child),
            dir,
            client_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, client_port)),
        }
    }

    /// Ready once a linearizable read succeeds: that needs a leader and an applied index.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_millis(STARTUP_TIMEOUT_MS);
        let mut client = EtcdClient::new(self.client_addr);
        loop {
            let last = match client.get("faultline/ready-probe").await {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            };
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "{}\n(exit: {exited:?}; last probe error: {last})",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn etcd_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file());
    on_path
        .or_else(|| Some(PathBuf::from("/usr/bin/etcd")).filter(|p| p.is_file()))
        .expect(
            "etcd is not installed (not on PATH, not at /usr/bin/etcd): \
             install Debian's etcd-server (apt-get install etcd-server) to run these tests",
        )
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_put_cas_follow_etcd_semantics() {
    let etcd = Etcd::start().await;
    let mut c = EtcdClient::new(etcd.client_addr);
    assert_eq!(c.get("a").await.unwrap(), None);
    c.put("a", "1").await.unwrap();
    assert_eq!(c.get("a").await.unwrap().as_deref(), Some("1"));
    assert!(
        !c.cas("a", "2", "3").await.unwrap(),
        "cas with a wrong old value"
    );
    assert_eq!(c.get("a").await.unwrap().as_deref(), Some("1"));
    assert!(c.cas("a", "1", "3").await.unwrap());
    assert_eq!(c.get("a").await.unwrap().as_deref(), Some("3"));
    // An unset key matches no old value, not even the empty one.
    assert!(!c.cas("unset", "", "x").await.unwrap());
    assert_eq!(c.get("unset").await.unwrap(), None);
    // The gateway omits empty values from its JSON; they still read back as set.
    c.put("empty", "").await.unwrap();
    assert_eq!(c.get("empty").await.unwrap().as_deref(), Some(""));
    // Keys and values are bytes: anything UTF-8 survives the base64 round trip.
    c.put("k/ü 1", "v\n\"ü\"").await.unwrap();
    assert_eq!(c.get("k/ü 1").await.unwrap().as_deref(), Some("v\n\"ü\""));
    assert_eq!(
        c.get("k/ü").await.unwrap(),
        None,
        "a range is one exact key"
    );

    let members = c.members().await.unwrap();
    assert_eq!(members.len(), 1, "{members:?}");
    let m = &members[0];
    assert_eq!(m.name, "n1");
    assert!(
        m.id.parse::<u64>().is_ok(),
        "member id {:?} is a decimal u64",
        m.id
    );
    assert_eq!(m.client_urls, vec![format!("http://{}", etcd.client_addr)]);
    assert_eq!(m.peer_urls.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_etcd_gives_definite_errors() {
    let mut etcd = Etcd::start().await;
    let mut used = EtcdClient::new(etcd.client_addr);
    used.put("k", "1").await.unwrap();
    etcd.stop();
    // Give the kernel's FIN time to reach the idle keep-alive connection.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut fresh = EtcdClient::new(etcd.client_addr);
    let e = fresh.put("k", "2").await.unwrap_err();
    assert!(e.is_definite(), "{e}");
    assert!(e.to_string().contains("connecting to 127.0.0.1:"), "{e}");
    // The client that had a connection notices it closed before sending, so it too knows
    // the write was not delivered.
    let e = used.cas("k", "1", "2").await.unwrap_err();
    assert!(e.is_definite(), "{e}");

    let mut client = RegisterWorkload::default().client(etcd.client_addr);
    let write = client.invoke("write", &serde_json::json!([0, 1])).await;
    assert_eq!(write.op_type, OpType::Fail, "{write:?}");
    let read = client.invoke("read", &serde_json::json!([0, null])).await;
    assert_eq!(read.op_type, OpType::Fail, "{read:?}");
    assert_eq!(read.value, serde_json::json!([0, null]));
}

/// What one workload run recorded.
struct Run {
    history: History,
    ok: usize,
    fail: usize,
    info: usize,
}

/// Everything the workers share: the op source, its RNG and the history, under one lock so
/// that the history's order is the real-time order of invocations and completions.
struct Recorder {
    ops: RegisterOps,
    rng: Rng,
    history: Vec<Op>,
    started: Instant,
    issued: usize,
}

impl Recorder {
    fn record(&mut self, op_type: OpType, process: u64, f: &str, outcome: Outcome) {
        let mut op = Op::new(
            self.history.len() as u64,
            op_type,
            Process::Client(process),
            f,
            outcome.value,
        );
        op.time = Some(self.started.elapsed().as_nanos() as u64);
        op.error = outcome.error;
        self.history.push(op);
    }
}

/// Drives `clients` concurrently, one worker each, until `max_ops` invocations or `max_time`,
/// retiring a worker's process id when its op ends `info`, as Jepsen's runner does.
async fn run_workload<C: Client>(
    clients: Vec<C>,
    config: RegisterConfig,
    seed: u64,
    max_ops: usize,
    max_time: Duration,
) -> Run {
    let concurrency = clients.len() as u64;
    let shared = Arc::new(Mutex::new(Recorder {
        ops: RegisterOps::new(config).unwrap(),
        rng: Rng::new(seed),
        history: Vec::new(),
        started: Instant::now(),
        issued: 0,
    }));
    let mut workers = Vec::new();
    for (worker, mut client) in clients.into_iter().enumerate() {
        let shared = shared.clone();
        workers.push(tokio::spawn(async move {
            let mut process = worker as u64;
            loop {
                let (f, value) = {
                    let mut guard = shared.lock().unwrap();
                    let r = &mut *guard;
                    if r.issued >= max_ops || r.started.elapsed() >= max_time {
                        return;
                    }
                    r.issued += 1;
                    let (f, value) = r.ops.next(&mut r.rng);
                    r.record(OpType::Invoke, process, &f, Outcome::ok(value.clone()));
                    (f, value)
                };
                let outcome = client.invoke(&f, &value).await;
                let op_type = outcome.op_type;
                shared.lock().unwrap().record(op_type, process, &f, outcome);
                if op_type == OpType::Info {
                    process += concurrency;
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("a worker panicked");
    }
    let ops = std::mem::take(&mut shared.lock().unwrap().history);
    let count = |t: OpType| ops.iter().filter(|o| o.op_type == t).count();
    let (ok, fail, info) = (count(OpType::Ok), count(OpType::Fail), count(OpType::Info));
    let lines = (1..=ops.len()).collect();
    let history = History::new("etcd-register.jsonl", Format::JsonLines, ops, lines)
        .expect("the recorder writes well-formed histories");
    Run {
        history,
        ok,
        fail,
        info,
    }
}

/// Saves a history for a failed assertion's message, so the failure can be re-checked with
/// `faultline check --model kv`.
fn save(history: &History, name: &str) -> String {
    let path = std::env::temp_dir().join(format!("faultline-{name}-{}.jsonl", std::process::id()));
    match std::fs::write(&path, jsonl::write(&history.ops)) {
        Ok(()) => format!("history saved to {}", path.display()),
        Err(e) => format!("could not save the history to {}: {e}", path.display()),
    }
}

const CONCURRENCY: usize = 10;
const MAX_OPS: usize = 2_000;
const MAX_TIME: Duration = Duration::from_secs(2);
const CHECK_TIME_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_client_histories_are_linearizable() {
    let etcd = Etcd::start().await;
    let workload = RegisterWorkload::new("test/register/");
    let clients = (0..CONCURRENCY)
        .map(|_| workload.client(etcd.client_addr))
        .collect();
    let run = run_workload(clients, workload.config.clone(), 1, MAX_OPS, MAX_TIME).await;
    let outcome = workload
        .check(&run.history, CHECK_TIME_LIMIT)
        .expect("register histories fit the kv model");
    let summary = format!(
        "{} events: {} ok, {} fail, {} info\n{}",
        run.history.len(),
        run.ok,
        run.fail,
        run.info,
        outcome.explain(&run.history)
    );
    eprintln!("{summary}");
    assert!(
        run.ok >= 200,
        "too few ops completed to mean anything: {summary}"
    );
    assert_eq!(
        run.info, 0,
        "a healthy local etcd should answer every op: {summary}"
    );
    assert!(outcome.partitions >= 3, "{summary}");
    if outcome.valid != Validity::Valid {
        panic!("{summary}\n{}", save(&run.history, "register"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cache_histories_are_not_linearizable() {
    let etcd = Etcd::start().await;
    let workload = RegisterWorkload {
        // Two keys shared by ten clients: every client caches both early, and the others
        // overwrite them long before the keys retire, so stale reads are all but certain.
        config: RegisterConfig {
            active_keys: 2,
            ..RegisterConfig::default()
        },
        key_prefix: "test/stale/".to_string(),
    };
    let clients = (0..CONCURRENCY)
        .map(|_| workload.stale_cache_client(etcd.client_addr))
        .collect();
    let run = run_workload(clients, workload.config.clone(), 2, MAX_OPS, MAX_TIME).await;
    let outcome = workload
        .check(&run.history, CHECK_TIME_LIMIT)
        .expect("register histories fit the kv model");
    let explanation = outcome.explain(&run.history);
    eprintln!(
        "{} events: {} ok, {} fail, {} info\n{explanation}",
        run.history.len(),
        run.ok,
        run.fail,
        run.info
    );
    if outcome.valid != Validity::Invalid {
        panic!(
            "a stale cache must not pass: {explanation}\n{}",
            save(&run.history, "stale-cache")
        );
    }
    let failure = outcome
        .failure
        .as_ref()
        .expect("an invalid verdict explains itself");
    // The search gets stuck at an op that observes the value: usually the stale read itself,
    // but when the stale reads pin an order first, a cas they make impossible (a blind write
    // can always be placed, so it is never the stuck op).
    assert!(
        ["read", "cas"].contains(&failure.op.f.as_str()),
        "{explanation}"
    );
    assert!(failure.key.is_some(), "{explanation}");
    assert!(explanation.contains("not linearizable"), "{explanation}");
    assert!(!failure.prefixes.is_empty(), "{explanation}");
}

#[test]
fn the_workload_describes_itself() {
    let w = RegisterWorkload::default();
    assert_eq!(w.name(), "register");
    assert_eq!(w.model(), checkers::model::ModelKind::Kv);
    assert_eq!(w.semantics().initial, Value::Null);
    assert!(w.ops().is_ok());
}
