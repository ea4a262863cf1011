//! The driver with a small core of its own over real TCP and real files: a tally that
//! persists every addition before acknowledging it, gossips its total to its peers and records
//! events (a checkpoint at boot, a forced record and a commit per durable addition).

use machine::{wire, Boot, BootError, ClientId, DiskOp, Durable, Effects, Input, Machine, NodeId};
use node::{driver, NodeOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[derive(Debug)]
struct Tally {
    id: NodeId,
    members: Vec<NodeId>,
    total: u64,
    pending: Vec<(u64, ClientId, u64)>,
    next_token: u64,
    heard: BTreeMap<NodeId, u64>,
    ticks: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Gossip(u64);

/// What the tally records: an event of the checkers' log, or `Nothing`, which serializes to
/// `null` (as `()` does) and must not be written.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
enum Recorded {
    Event(TallyEvent),
    Nothing,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
enum TallyEvent {
    Checkpoint { id: String },
    Log { txn: u64, record: &'static str },
    Commit { txn: u64 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Req {
    Add(u64),
    Get,
    Now,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Resp {
    Total(u64),
    Heard(BTreeMap<NodeId, u64>),
    Now(u64),
}

impl Machine for Tally {
    type Config = ();
    type Event = Recorded;
    type Peer = Gossip;
    type Request = Req;
    type Response = Resp;

    fn boot(
        boot: Boot<'_, ()>,
        durable: Durable,
        out: &mut Effects<Self>,
    ) -> Result<Self, BootError> {
        let mut total = 0u64;
        let adds = durable.logs.get("adds").map_or(0, |l| l.records.len());
        out.record(Recorded::Event(TallyEvent::Checkpoint {
            id: format!("adds-{adds}"),
        }));
        if let Some(log) = durable.logs.get("adds") {
            for r in &log.records {
                let bytes: [u8; 8] = r
                    .as_slice()
                    .try_into()
                    .map_err(|_| BootError("a record is not 8 bytes".into()))?;
                total += u64::from_le_bytes(bytes);
            }
        }
        Ok(Tally {
            id: boot.id,
            members: boot.members.to_vec(),
            total,
            pending: Vec::new(),
            next_token: 1,
            heard: BTreeMap::new(),
            ticks: 0,
        })
    }

    fn step(&mut self, now_ms: u64, input: Input<Self>, out: &mut Effects<Self>) {
        match input {
            Input::Request {
                client,
                req: Req::Add(n),
            } => {
                self.total += n;
                let token = self.next_token;
                self.next_token += 1;
                out.write(
                    token,
                    vec![DiskOp::Append {
                        log: "adds".into(),
                        records: vec![n.to_le_bytes().to_vec()],
                    }],
                );
                self.pending.push((token, client, self.total));
            }
            Input::Request {
                client,
                req: Req::Get,
            } => {
                out.reply(client, Resp::Total(self.total));
                out.reply(client, Resp::Heard(self.heard.clone()));
            }
            Input::Request {
                client,
                req: Req::Now,
            } => out.reply(client, Resp::Now(now_ms)),
            Input::Persisted { token } => {
                let done = self
                    .pending
                    .iter()
                    .take_while(|(t, ..)| *t <= token)
                    .count();
                for (txn, client, total) in self.pending.drain(..done) {
                    out.reply(client, Resp::Total(total));
                    out.record(Recorded::Event(TallyEvent::Log {
                        txn,
                        record: "commit",
                    }));
                    out.record(Recorded::Event(TallyEvent::Commit { txn }));
                }
            }
            Input::Peer { from, msg } => {
                self.heard.insert(from, msg.0);
            }
            Input::Tick => {
                self.ticks += 1;
                out.record(Recorded::Nothing);
                if self.ticks % 5 == 0 {
                    for &m in &self.members {
                        if m != self.id {
                            out.send(m, Gossip(self.total));
                        }
                    }
                }
            }
            Input::Disconnected { .. } => {}
        }
    }
}

struct Running {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    client_addr: SocketAddr,
}

impl Running {
    fn stop(mut self) -> Result<(), String> {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

fn bind() -> (std::net::TcpListener, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// Starts a node on its own runtime thread with listeners bound beforehand.
fn start(
    id: NodeId,
    peers: BTreeMap<NodeId, SocketAddr>,
    peer_listener: std::net::TcpListener,
    dir: &Path,
    cluster: &str,
    offset_file: Option<&Path>,
    events_file: Option<&Path>,
) -> Running {
    let (client_listener, client_addr) = bind();
    let opts = NodeOptions {
        id,
        peers,
        data_dir: dir.to_path_buf(),
        seed: 1,
        cluster: cluster.into(),
        clock_offset_file: offset_file.map(Path::to_path_buf),
        events_file: events_file.map(Path::to_path_buf),
        limits: storage::Limits::default(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            peer_listener.set_nonblocking(true).unwrap();
            client_listener.set_nonblocking(true).unwrap();
            let pl = TcpListener::from_std(peer_listener).unwrap();
            let cl = TcpListener::from_std(client_listener).unwrap();
            driver::run::<Tally>((), opts, pl, cl, async {
                let _ = rx.await;
            })
            .await
            .map_err(|e| e.to_string())
        })
    });
    Running {
        stop: Some(tx),
        thread: Some(thread),
        client_addr,
    }
}

fn single(dir: &Path, offset_file: Option<&Path>) -> Running {
    let (pl, pa) = bind();
    start(
        1,
        BTreeMap::from([(1, pa)]),
        pl,
        dir,
        "t",
        offset_file,
        None,
    )
}

struct Client(TcpStream);

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpStream::connect(addr) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    return Client(s);
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot connect to {addr}: {e}"),
            }
        }
    }

    fn send(&mut self, req: &Req) {
        self.0.write_all(&wire::encode(req).unwrap()).unwrap();
    }

    fn recv(&mut self) -> Resp {
        let mut h = [0u8; 4];
        self.0.read_exact(&mut h).unwrap();
        let mut body = vec![0; wire::body_len(h).unwrap()];
        self.0.read_exact(&mut body).unwrap();
        wire::decode(&body).unwrap()
    }
}

#[test]
fn acknowledged_additions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path(), None);
    let mut c = Client::connect(node.client_addr);
    for n in 1..=100 {
        c.send(&Req::Add(n));
    }
    let mut last = Resp::Total(0);
    for _ in 1..=100 {
        last = c.recv();
    }
    assert_eq!(
        last,
        Resp::Total(5050),
        "replies come in order, after fsync"
    );
    node.stop().unwrap();

    let node = single(dir.path(), None);
    let mut c = Client::connect(node.client_addr);
    c.send(&Req::Get);
    assert_eq!(
        c.recv(),
        Resp::Total(5050),
        "the total was rebuilt from the log"
    );
    node.stop().unwrap();
}

#[test]
fn garbage_on_the_client_port_closes_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path(), None);
    let mut bad = Client::connect(node.client_addr);
    let mut good = Client::connect(node.client_addr);
    bad.0.write_all(b"\xff\xff\xff\x7fnot a frame").unwrap();
    let mut buf = [0u8; 16];
    let n = bad.0.read(&mut buf).unwrap_or(0);
    assert_eq!(
        n, 0,
        "the node closed the connection that sent an oversized frame"
    );
    good.send(&Req::Add(7));
    assert_eq!(good.recv(), Resp::Total(7));
    node.stop().unwrap();
}

#[test]
fn peers_gossip_and_a_node_of_another_cluster_is_refused() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (l1, a1) = bind();
    let (l2, a2) = bind();
    let (l3, a3) = bind();
    let peers = BTreeMap::from([(1, a1), (2, a2)]);
    let n1 = start(1, peers.clone(), l1, dirs[0].path(), "blue", None, None);
    let n2 = start(2, peers, l2, dirs[1].path(), "blue", None, None);
    // Node 3 believes it is node 2 of a cluster that shares node 1's address.
    let n3 = start(
        2,
        BTreeMap::from([(1, a1), (2, a3)]),
        l3,
        dirs[2].path(),
        "green",
        None,
        None,
    );
    let mut c2 = Client::connect(n2.client_addr);
    c2.send(&Req::Add(42));
    assert_eq!(c2.recv(), Resp::Total(42));
    let mut c3 = Client::connect(n3.client_addr);
    c3.send(&Req::Add(1000));
    assert_eq!(c3.recv(), Resp::Total(1000));

    let mut c1 = Client::connect(n1.client_addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    let heard = loop {
        c1.send(&Req::Get);
        let _ = c1.recv();
        let Resp::Heard(heard) = c1.recv() else {
            panic!("Heard follows Total")
        };
        if heard.get(&2) == Some(&42) || Instant::now() > deadline {
            break heard;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        heard,
        BTreeMap::from([(2, 42)]),
        "only its own cluster's node 2 got through"
    );
    for n in [n1, n2, n3] {
        n.stop().unwrap();
    }
}

#[test]
fn the_clock_offset_file_moves_the_cores_clock() {
    let dir = tempfile::tempdir().unwrap();
    let offset = dir.path().join("clock-offset");
    let node = single(&dir.path().join("data"), Some(&offset));
    let mut c = Client::connect(node.client_addr);
    c.send(&Req::Now);
    let Resp::Now(before) = c.recv() else {
        panic!()
    };
    std::fs::write(&offset, "+3600").unwrap();
    std::thread::sleep(Duration::from_millis(250));
    c.send(&Req::Now);
    let Resp::Now(after) = c.recv() else { panic!() };
    assert!(after >= before + 3_600_000, "{before} -> {after}");
    node.stop().unwrap();
}

#[test]
fn a_node_missing_from_its_peer_list_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (pl, pa) = bind();
    let node = start(
        3,
        BTreeMap::from([(1, pa)]),
        pl,
        dir.path(),
        "t",
        None,
        None,
    );
    let err = node.stop().unwrap_err();
    assert!(err.contains("node 3 is not among the peers"), "{err}");
}

fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Node 2, alone, with an events file and a clock offset of an hour.
fn evented(dir: &Path) -> Running {
    let (pl, pa) = bind();
    let offset = dir.join("clock-offset");
    std::fs::write(&offset, "+3600").unwrap();
    let events = dir.join("n2.events.jsonl");
    let peers = BTreeMap::from([(2, pa)]);
    start(
        2,
        peers,
        pl,
        &dir.join("data"),
        "t",
        Some(&offset),
        Some(&events),
    )
}

#[test]
fn events_are_appended_as_whole_json_lines_with_wall_clock_time_and_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n2.events.jsonl");
    let before_ns = wall_ns();
    let node = evented(dir.path());
    let mut c = Client::connect(node.client_addr);
    for n in [5, 7] {
        c.send(&Req::Add(n));
        assert!(matches!(c.recv(), Resp::Total(_)));
    }
    std::thread::sleep(Duration::from_millis(100)); // ticks record only nulls
    node.stop().unwrap();
    let node = evented(dir.path());
    node.stop().unwrap();
    let after_ns = wall_ns();

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'), "whole lines: {text:?}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let mut last_ns = before_ns;
    for l in &lines {
        assert_eq!(l["node"], "n2", "{l}");
        let time_ns = l["time"].as_u64().expect("integer nanoseconds");
        // Wall-clock time, untouched by the core's clock offset, and never going back.
        assert!((last_ns..=after_ns).contains(&time_ns), "{l}");
        last_ns = time_ns;
    }
    let shape: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            let mut fields = l.as_object().unwrap().clone();
            fields.remove("time");
            fields.remove("node");
            serde_json::Value::Object(fields)
        })
        .collect();
    assert_eq!(
        shape,
        [
            json!({"event": "checkpoint", "id": "adds-0"}),
            json!({"event": "log", "txn": 1, "record": "commit"}),
            json!({"event": "commit", "txn": 1}),
            json!({"event": "log", "txn": 2, "record": "commit"}),
            json!({"event": "commit", "txn": 2}),
            json!({"event": "checkpoint", "id": "adds-2"}),
        ]
    );
    let events = checkers::atomic_commit::parse_events("n2.events.jsonl", &text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (events.events.len(), events.nodes.as_slice()),
        (6, &["n2".to_string()][..])
    );
}

#[test]
fn an_events_file_that_cannot_be_opened_stops_the_node_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (pl, pa) = bind();
    let events = dir.path().join("missing").join("n1.events.jsonl");
    let peers = BTreeMap::from([(1, pa)]);
    let node = start(1, peers, pl, dir.path(), "t", None, Some(&events));
    let err = node.stop().unwrap_err();
    assert!(
        err.contains("event log") && err.contains("missing"),
        "{err}"
    );
}
