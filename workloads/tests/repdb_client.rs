//! The replicated database's client against three real replicas in-process (the node
//! driver over real TCP and real files): workers spread over the replicas record a history
//! as the harness's runner would, the final `settle` and `apply-log` operations read every
//! replica back, and the run is judged by the txn checker, `one-copy` and `convergence`.
//! A stopped replica's clients fail definitely, then move on.

use checkers::history::{jsonl, History, Op, OpType, Process, Value};
use checkers::rng::Rng;
use checkers::txn::Model;
use checkers::verdict::Validity;
use machine::NodeId;
use node::{driver, NodeOptions};
use repdb::{Mode, RepdbConfig, Replica};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use workloads::client::{Client, Outcome};
use workloads::repdb::check;
use workloads::repdb::workload::{by_name, ClientContext, RepdbWorkload};

struct Running {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

/// Three replicas, each on its own thread and runtime.
struct Cluster {
    clients: Vec<SocketAddr>,
    nodes: Vec<Option<Running>>,
    _dir: tempfile::TempDir,
}

fn bind() -> (std::net::TcpListener, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let a = l.local_addr().expect("its address");
    l.set_nonblocking(true).expect("nonblocking");
    (l, a)
}

impl Cluster {
    fn start(config: RepdbConfig) -> Cluster {
        let n = 3;
        let dir = tempfile::tempdir().expect("a temp dir");
        let peer: Vec<_> = (0..n).map(|_| bind()).collect();
        let client: Vec<_> = (0..n).map(|_| bind()).collect();
        let peers: BTreeMap<NodeId, SocketAddr> = peer
            .iter()
            .enumerate()
            .map(|(i, (_, a))| (i as NodeId + 1, *a))
            .collect();
        let clients = client.iter().map(|(_, a)| *a).collect();
        let nodes = peer
            .into_iter()
            .zip(client)
            .enumerate()
            .map(|(i, ((pl, _), (cl, _)))| {
                let opts = NodeOptions {
                    id: i as NodeId + 1,
                    peers: peers.clone(),
                    data_dir: dir.path().join(format!("n{}", i + 1)),
                    seed: i as u64,
                    cluster: "repdb-client-tests".into(),
                    clock_offset_file: None,
                    events_file: None,
                    limits: storage::Limits::default(),
                };
                Some(run_node(config.clone(), opts, pl, cl))
            })
            .collect();
        Cluster {
            clients,
            nodes,
            _dir: dir,
        }
    }

    fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            let _ = node.stop.send(());
            node.thread.join().expect("node thread").expect("node ran");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i);
        }
    }
}

fn run_node(
    config: RepdbConfig,
    opts: NodeOptions,
    peer: std::net::TcpListener,
    client: std::net::TcpListener,
) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let pl = TcpListener::from_std(peer).map_err(|e| e.to_string())?;
            let cl = TcpListener::from_std(client).map_err(|e| e.to_string())?;
            let shutdown = async {
                let _ = stopped.await;
            };
            driver::run::<Replica>(config, opts, pl, cl, shutdown)
                .await
                .map_err(|e| e.to_string())
        })
    });
    Running { stop, thread }
}

/// A history recorded as the runner records one: every event appended as it happens.
#[derive(Default)]
struct Recorder {
    ops: Mutex<Vec<Op>>,
    started: Option<Instant>,
}

impl Recorder {
    fn push(&self, process: u64, op_type: OpType, f: &str, value: Value, out: Option<&Outcome>) {
        let mut ops = self.ops.lock().unwrap();
        let mut op = Op::new(
            ops.len() as u64,
            op_type,
            Process::Client(process),
            f,
            value,
        );
        op.time = self.started.map(|s| s.elapsed().as_nanos() as u64);
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

    fn history(&self) -> History {
        let text = jsonl::write(&self.ops.lock().unwrap());
        jsonl::read("history.jsonl", &text).expect("a valid history")
    }
}

/// Waits (up to 20 s) until every replica serves, as the harness's `wait_ready` does.
async fn wait_serving(cluster: &Cluster, workload: &RepdbWorkload) {
    let mut client = workload.client(ctx(cluster, 0));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = client.invoke("settle", &Value::Null).await;
        if out.op_type == OpType::Ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas never served: {out:?}"
        );
    }
}

fn ctx(cluster: &Cluster, worker: u32) -> ClientContext {
    ClientContext {
        nodes: cluster.clients.clone(),
        worker,
        op_timeout_ms: 4_000,
    }
}

/// `workers` workers each run `txns` transactions, retiring a process after `info` as the
/// runner does; then one worker settles the cluster and reads every replica.
fn drive(cluster: &Cluster, workload: Arc<RepdbWorkload>, workers: u32, txns: u32) -> History {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rec = Arc::new(Recorder {
        started: Some(Instant::now()),
        ..Recorder::default()
    });
    let rng = Arc::new(Mutex::new(Rng::new(11)));
    rt.block_on(async {
        wait_serving(cluster, &workload).await;
        let mut tasks = Vec::new();
        for w in 0..workers {
            let (rec, rng, workload) = (rec.clone(), rng.clone(), workload.clone());
            let mut client = workload.client(ctx(cluster, w));
            tasks.push(tokio::spawn(async move {
                let mut process = w as u64;
                for _ in 0..txns {
                    let (f, value) = workload.next_op(&mut rng.lock().unwrap());
                    let out = rec.call(&mut client, process, &f, value).await;
                    if out.op_type == OpType::Info {
                        process += workers as u64;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut client = workload.client(ctx(cluster, 0));
        let process = 1_000;
        for (f, value) in workload.settle_ops().into_iter().chain(workload.dump_ops()) {
            let out = rec.call(&mut client, process, &f, value).await;
            assert_eq!(out.op_type, OpType::Ok, "{f}: {out:?}");
        }
    });
    rec.history()
}

fn assert_valid(history: &History, workload: &RepdbWorkload, model: Model) -> check::Judged {
    let j = check::judge(history, workload.workload, model, Duration::from_secs(30)).unwrap();
    for v in &j.verdicts {
        assert_eq!(v.valid, Validity::Valid, "{}: {}", v.checker, v.explain());
    }
    j
}

#[test]
fn certification_commits_from_every_replica_and_the_replicas_agree() {
    let cluster = Cluster::start(RepdbConfig::new(Mode::Certification));
    let workload = Arc::new(by_name("list-append", 3).unwrap());
    let history = drive(&cluster, workload.clone(), 6, 40);
    let j = assert_valid(&history, &workload, Model::Serializable);
    assert!(
        j.summary["committed_writes"].as_u64().unwrap() > 20,
        "{}",
        j.summary
    );
    let answered = j.summary["answered_by"].as_object().unwrap();
    assert_eq!(answered.len(), 3, "every replica answered: {answered:?}");
    let one_copy = &j.verdicts[1];
    assert_eq!(one_copy.details["finished_replicas"], 3, "{one_copy:?}");
    assert!(j.apply_logs.lines().count() == 3);
}

#[test]
fn snapshot_isolation_without_read_sets_on_rw_registers() {
    let mut config = RepdbConfig::new(Mode::Certification);
    config.read_sets = false;
    let cluster = Cluster::start(config);
    let workload = Arc::new(by_name("rw-register", 3).unwrap());
    let history = drive(&cluster, workload.clone(), 6, 30);
    assert_valid(&history, &workload, Model::SnapshotIsolation);
}

#[test]
fn a_stopped_replica_fails_its_clients_definitely_and_they_move_on() {
    let mut cluster = Cluster::start(RepdbConfig::new(Mode::Active));
    let workload = by_name("list-append", 3).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(wait_serving(&cluster, &workload));
    // Worker 2 starts at n3.
    let mut client = workload.client(ctx(&cluster, 2));
    let append = serde_json::json!([["append", 1, 1]]);
    let first = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = client.invoke("txn", &append).await;
            if out.op_type == OpType::Ok || Instant::now() > deadline {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(first.op_type, OpType::Ok, "{first:?}");
    cluster.stop(2);
    let (down, next) = rt.block_on(async {
        let down = client
            .invoke("txn", &serde_json::json!([["append", 1, 2]]))
            .await;
        // n3 may have led: the others commit once they elected another leader.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut tries = Vec::new();
        for value in 3.. {
            let append = serde_json::json!([["append", 1, value]]);
            let out = client.invoke("txn", &append).await;
            tries.push(out.clone());
            if out.op_type == OpType::Ok || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (down, tries)
    });
    assert_eq!(down.op_type, OpType::Fail, "connection refused: {down:?}");
    assert_eq!(down.node.as_deref(), Some("n3"));
    assert_eq!(down.extra["txn-id"], 2);
    assert_eq!(
        next[0].node.as_deref(),
        Some("n1"),
        "moved to the next replica"
    );
    let last = next.last().unwrap();
    assert_eq!(last.op_type, OpType::Ok, "{next:?}");
    assert_ne!(last.node.as_deref(), Some("n3"));
}
