//! Real components for the coordination client's tests: three `faultline-node` cores
//! running in-process over real TCP and real files, and a TCP proxy that can freeze,
//! hold replies or cut connections, to make partitions and connection losses on demand.

#![allow(dead_code)] // Each test file uses a part.

use coord::server::config::CoordConfig;
use coord::server::CoordServer;
use machine::NodeId;
use node::{driver, NodeOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use workloads::coord::{ConnectOptions, CoordClient};

/// Bounds every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

struct Running {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

/// Three (or `n`) coordination servers, each on its own thread and runtime.
pub struct Cluster {
    pub clients: Vec<SocketAddr>,
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
    pub fn start(n: usize) -> Cluster {
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
                    cluster: "coord-client-tests".into(),
                    clock_offset_file: None,
                    events_file: None,
                    limits: storage::Limits::default(),
                };
                Some(run_node(opts, pl, cl))
            })
            .collect();
        Cluster {
            clients,
            nodes,
            _dir: dir,
        }
    }

    /// Stops node `i` (0-based): its connections close, as when a process dies.
    pub fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            let _ = node.stop.send(());
            node.thread.join().expect("node thread").expect("node ran");
        }
    }

    /// Which node `addr` is (0-based).
    pub fn index_of(&self, addr: SocketAddr) -> usize {
        self.clients
            .iter()
            .position(|a| *a == addr)
            .expect("a node's client address")
    }

    /// The node that leads now (0-based), asked with the sessionless Status request.
    pub async fn leader(&self) -> usize {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(leader) = self.ask_leader().await {
                return leader;
            }
            assert!(tokio::time::Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ask_leader(&self) -> Option<usize> {
        use coord::server::proto::{ClientMsg, ServerMsg};
        let mut s = TcpStream::connect(self.clients[0]).await.ok()?;
        s.write_all(&machine::wire::encode(&ClientMsg::Status).ok()?)
            .await
            .ok()?;
        let mut header = [0u8; 4];
        tokio::time::timeout(WAIT, s.read_exact(&mut header))
            .await
            .ok()?
            .ok()?;
        let mut body = vec![0u8; machine::wire::body_len(header).ok()?];
        s.read_exact(&mut body).await.ok()?;
        match machine::wire::decode(&body).ok()? {
            ServerMsg::Status {
                leader: Some(id),
                serving: true,
                ..
            } => Some(id as usize - 1),
            _ => None,
        }
    }

    /// A client of the whole cluster, with short timeouts fit for tests.
    pub async fn client(&self, session_timeout_ms: u64) -> CoordClient {
        connect(self.clients.clone(), session_timeout_ms).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i);
        }
    }
}

pub fn options(session_timeout_ms: u64) -> ConnectOptions {
    ConnectOptions {
        session_timeout_ms,
        connect_timeout_ms: 10_000,
        op_timeout_ms: 5_000,
        ..ConnectOptions::default()
    }
}

pub async fn connect(servers: Vec<SocketAddr>, session_timeout_ms: u64) -> CoordClient {
    CoordClient::connect(servers, options(session_timeout_ms))
        .await
        .expect("a session")
}

fn run_node(
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
            driver::run::<CoordServer>(CoordConfig::default(), opts, pl, cl, shutdown)
                .await
                .map_err(|e| e.to_string())
        })
    });
    Running { stop, thread }
}

/// What a proxy lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Open,
    /// Nothing passes either way; connections stay open (a partition, or a paused peer).
    Frozen,
    /// Requests reach the server, answers stay in the proxy until it opens or cuts.
    HoldReplies,
}

/// A TCP proxy in front of one server, on the test's runtime.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    cuts: Arc<watch::Sender<u64>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mode = Arc::new(watch::Sender::new(Mode::Open));
        let cuts = Arc::new(watch::Sender::new(0u64));
        tokio::spawn(accept(listener, target, mode.clone(), cuts.clone()));
        Proxy { addr, mode, cuts }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Closes every connection through the proxy; new ones are accepted.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    cuts: Arc<watch::Sender<u64>>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let Ok(server) = TcpStream::connect(target).await else {
            continue;
        };
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        tokio::spawn(pump(cr, sw, mode.subscribe(), cuts.subscribe(), false));
        tokio::spawn(pump(sr, cw, mode.subscribe(), cuts.subscribe(), true));
    }
}

/// Copies one direction, waiting while the mode stops it, until either side closes or
/// the proxy cuts its connections.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    mut cuts: watch::Receiver<u64>,
    replies: bool,
) {
    let passes = move |m: &Mode| match m {
        Mode::Open => true,
        Mode::Frozen => false,
        Mode::HoldReplies => !replies,
    };
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let copied = async {
            mode.wait_for(passes).await.ok()?;
            let n = from.read(&mut buf).await.ok().filter(|n| *n > 0)?;
            mode.wait_for(passes).await.ok()?;
            to.write_all(&buf[..n]).await.ok()
        };
        tokio::select! {
            biased; // A cut wins over bytes a mode change released at the same moment.
            _ = cuts.changed() => return,
            done = copied => if done.is_none() { return },
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `WAIT` passes; for conditions on another
/// process's state that no watch reports (e.g. a node has stopped serving).
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
