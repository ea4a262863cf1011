//! Three real `faultline-node coord` processes on loopback: sessions, writes through any
//! server, sync + read, a SIGKILLed node that restarts from its disk, bad arguments.

use coord::api::{Acl, CreateFlags, CreateRequest, ErrorCode, Reply, Request, SetDataRequest};
use coord::server::proto::{ClientMsg, ServerMsg};
use machine::wire;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_faultline-node");

/// A port that is free now, below Linux's ephemeral range (32768 and up). A node that is
/// killed and started again binds its port again; a port handed out by binding port 0 is an
/// ephemeral one, which any outgoing connection may take in between (a CI run failed so).
fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const PORTS: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Spread test binaries apart by pid; within one, hand out ports in turn.
    let base = (std::process::id() % u32::from(PORTS)) as u16;
    for _ in 0..PORTS {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (base.wrapping_add(k.wrapping_mul(7)) % PORTS);
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().unwrap();
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + PORTS);
}

struct Cluster {
    peers: Vec<SocketAddr>,
    clients: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let mut c = Cluster {
            peers: (0..n).map(|_| free_addr()).collect(),
            clients: (0..n).map(|_| free_addr()).collect(),
            children: (0..n).map(|_| None).collect(),
            dir: tempfile::tempdir().unwrap(),
        };
        for i in 0..n {
            c.spawn(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let peers: Vec<String> = self
            .peers
            .iter()
            .enumerate()
            .map(|(j, a)| format!("{}={a}", j + 1))
            .collect();
        let log = std::fs::File::create(self.dir.path().join(format!("n{}.log", i + 1))).unwrap();
        let child = Command::new(NODE)
            .args([
                "coord",
                "--id",
                &(i + 1).to_string(),
                "--peers",
                &peers.join(","),
            ])
            .args(["--client-listen", &self.clients[i].to_string()])
            .arg("--data")
            .arg(self.dir.path().join(format!("n{}", i + 1)))
            .args(["--cluster", "test"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{}.log", i + 1))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

struct Session {
    stream: TcpStream,
    xid: u64,
}

impl Session {
    /// Opens a session on node `addr`, retrying while the cluster elects a leader.
    fn open(addr: SocketAddr, deadline: Instant) -> Session {
        loop {
            if let Some(s) = Session::try_open(addr) {
                return s;
            }
            assert!(Instant::now() < deadline, "no session from {addr} in time");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_open(addr: SocketAddr) -> Option<Session> {
        let stream = TcpStream::connect(addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut s = Session { stream, xid: 0 };
        s.send(&ClientMsg::Connect {
            session: None,
            timeout_ms: 5_000,
            last_zxid: 0,
        })
        .ok()?;
        match s.recv()? {
            ServerMsg::Connected { .. } => Some(s),
            _ => None,
        }
    }

    fn send(&mut self, msg: &ClientMsg) -> std::io::Result<()> {
        self.stream.write_all(&wire::encode(msg).unwrap())
    }

    fn recv(&mut self) -> Option<ServerMsg> {
        let mut h = [0u8; 4];
        self.stream.read_exact(&mut h).ok()?;
        let mut body = vec![0; wire::body_len(h).ok()?];
        self.stream.read_exact(&mut body).ok()?;
        wire::decode(&body).ok()
    }

    fn call(&mut self, request: Request) -> Result<Reply, ErrorCode> {
        self.xid += 1;
        let xid = self.xid;
        self.send(&ClientMsg::Op { xid, request }).unwrap();
        loop {
            match self.recv().expect("a reply") {
                ServerMsg::Reply { xid: x, result, .. } if x == xid => return result,
                ServerMsg::Watch { .. } => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// Asks a node about its role, without a session.
fn status(addr: SocketAddr) -> ServerMsg {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut s = Session { stream, xid: 0 };
    s.send(&ClientMsg::Status).unwrap();
    s.recv().expect("a status")
}

fn create(path: &str, data: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: data.as_bytes().to_vec(),
        acl: Acl::open(),
        flags: CreateFlags::PERSISTENT,
    })
}

fn read(s: &mut Session, path: &str) -> String {
    s.call(Request::Sync { path: path.into() }).unwrap();
    match s.call(Request::GetData {
        path: path.into(),
        watch: false,
    }) {
        Ok(Reply::GetData { data, .. }) => String::from_utf8(data).unwrap(),
        other => panic!("getData {path}: {other:?}"),
    }
}

#[test]
fn writes_through_any_server_survive_a_killed_node() {
    let mut c = Cluster::start(3);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut s1 = Session::open(c.clients[0], deadline);
    let mut s3 = Session::open(c.clients[2], deadline);
    s1.call(create("/a", "1")).unwrap();
    // A follower may still be syncing right after the quorum formed: wait for all three.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (statuses, leaders) = loop {
        let statuses: Vec<ServerMsg> = c.clients.iter().map(|a| status(*a)).collect();
        let leaders: Vec<_> = statuses
            .iter()
            .filter_map(|s| match s {
                ServerMsg::Status {
                    leader,
                    serving: true,
                    ..
                } => Some(*leader),
                _ => None,
            })
            .collect();
        if leaders.len() == 3 || Instant::now() > deadline {
            break (statuses, leaders);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(leaders.len(), 3, "all serve: {statuses:?}");
    assert!(
        leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]),
        "{statuses:?}"
    );
    assert_eq!(
        read(&mut s3, "/a"),
        "1",
        "sync + read on another server sees the write"
    );
    assert_eq!(s3.call(create("/a", "2")), Err(ErrorCode::NodeExists));
    let set = Request::SetData(SetDataRequest {
        path: "/a".into(),
        data: b"2".to_vec(),
        version: 0,
    });
    assert!(matches!(s3.call(set), Ok(Reply::SetData { stat }) if stat.version == 1));

    // SIGKILL node 1; the other two keep a quorum and serve.
    c.kill(0);
    let mut s2 = Session::open(c.clients[1], Instant::now() + Duration::from_secs(20));
    s2.call(create("/b", "after-kill")).unwrap();
    // Node 1 restarts from its disk and catches up.
    c.spawn(0);
    let mut s1 = Session::open(c.clients[0], Instant::now() + Duration::from_secs(20));
    assert_eq!(read(&mut s1, "/a"), "2");
    assert_eq!(read(&mut s1, "/b"), "after-kill");
    assert!(c.log(0).contains("starting"), "{}", c.log(0));
}

#[test]
fn requests_pipelined_behind_connect_are_answered_once_the_session_opens() {
    let c = Cluster::start(1);
    // Wait for the node to serve, then pipeline without waiting for Connected.
    drop(Session::open(
        c.clients[0],
        Instant::now() + Duration::from_secs(20),
    ));
    let stream = TcpStream::connect(c.clients[0]).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut s = Session { stream, xid: 0 };
    s.send(&ClientMsg::Connect {
        session: None,
        timeout_ms: 5_000,
        last_zxid: 0,
    })
    .unwrap();
    s.send(&ClientMsg::Op {
        xid: 1,
        request: create("/early", "x"),
    })
    .unwrap();
    assert!(matches!(s.recv(), Some(ServerMsg::Connected { .. })));
    match s.recv() {
        Some(ServerMsg::Reply { xid: 1, result, .. }) => assert!(result.is_ok(), "{result:?}"),
        other => panic!("the pipelined create was answered: {other:?}"),
    }
}

#[test]
fn garbage_on_the_client_port_is_refused_and_the_node_serves_on() {
    let c = Cluster::start(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut s = Session::open(c.clients[0], deadline);
    let mut bad = TcpStream::connect(c.clients[0]).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        bad.read(&mut buf).unwrap_or(0),
        0,
        "the node closed the garbage connection"
    );
    s.call(create("/still", "up")).unwrap();
    let log = c.log(0);
    assert!(
        log.contains("closed a client connection"),
        "the log names it: {log}"
    );
}

#[test]
fn bad_arguments_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(NODE).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let data = dir.path().join("d");
    let data = data.to_str().unwrap();
    let base = [
        "coord",
        "--client-listen",
        "127.0.0.1:0",
        "--data",
        data,
        "--cluster",
        "x",
    ];
    let (code, err) = run(&[&base[..], &["--id", "4", "--peers", "1=127.0.0.1:1"]].concat());
    assert_eq!(code, Some(2));
    assert!(err.contains("--id 4 is not among --peers"), "{err}");
    let (code, err) = run(&[&base[..], &["--id", "1", "--peers", "1=nowhere"]].concat());
    assert_eq!(code, Some(2));
    assert!(err.contains("\"nowhere\" is not HOST:PORT"), "{err}");
    let (code, err) = run(&[
        &base[..],
        &["--id", "1", "--peers", "1=127.0.0.1:1", "--bug", "typo"],
    ]
    .concat());
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown bug \"typo\""), "{err}");
    assert!(
        !Path::new(data).exists(),
        "nothing was created for a refused start"
    );
}
