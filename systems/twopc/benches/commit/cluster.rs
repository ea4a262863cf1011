//! Four twopc nodes in this process, each `node::driver::run::<TwoPc>` on a runtime of its
//! own thread (as separate processes would have), with real TCP between them and real
//! fsynced data directories; and a client speaking the nodes' framed protocol.

use crate::STEP_TIMEOUT;
use machine::NodeId;
use node::{driver, frame, NodeOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::io::BufReader;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use twopc::proto::{Request, Response};
use twopc::{TwoPc, TwoPcConfig};

/// How long a node may take to stop once asked.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

struct Node {
    id: NodeId,
    client_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    /// The driver's result, sent when its thread ends.
    done: std_mpsc::Receiver<Result<(), String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts nodes 1..=n with data under `dir/n<id>`; node 1 coordinates.
    pub fn start(dir: &Path, n: usize, config: &TwoPcConfig) -> Result<Cluster, String> {
        let bind = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            let addr = l.local_addr().map_err(|e| e.to_string())?;
            Ok::<_, String>((l, addr))
        };
        let mut listeners = Vec::new();
        let mut peers = BTreeMap::new();
        for i in 1..=n as NodeId {
            let (pl, pa) = bind()?;
            let (cl, ca) = bind()?;
            peers.insert(i, pa);
            listeners.push((i, pl, cl, ca));
        }
        let mut nodes = Vec::new();
        for (id, pl, cl, client_addr) in listeners {
            let data_dir = dir.join(format!("n{id}"));
            std::fs::create_dir_all(&data_dir)
                .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
            let opts = NodeOptions {
                id,
                peers: peers.clone(),
                data_dir,
                seed: u64::from(id),
                cluster: "twopc-commit-bench".into(),
                clock_offset_file: None,
                events_file: None,
                limits: storage::Limits::default(),
            };
            let (stop, stopped) = oneshot::channel::<()>();
            let (done_tx, done) = std_mpsc::channel();
            let config = config.clone();
            let thread = std::thread::Builder::new()
                .name(format!("node-{id}"))
                .spawn(move || {
                    let result = run_node(config, opts, pl, cl, stopped);
                    let _ = done_tx.send(result);
                })
                .map_err(|e| format!("spawning node {id}: {e}"))?;
            nodes.push(Node {
                id,
                client_addr,
                stop: Some(stop),
                done,
                thread: Some(thread),
            });
        }
        Ok(Cluster { nodes })
    }

    pub fn client_addr(&self, id: NodeId) -> SocketAddr {
        self.nodes[id as usize - 1].client_addr
    }

    pub fn participants(&self) -> Vec<NodeId> {
        self.nodes.iter().skip(1).map(|n| n.id).collect()
    }

    /// Fails if any node has stopped on its own (a disk failure, a boot error).
    pub fn check_alive(&self) -> Result<(), String> {
        for n in &self.nodes {
            match n.done.try_recv() {
                Err(std_mpsc::TryRecvError::Empty) => {}
                Ok(Ok(())) => return Err(format!("node {} stopped unasked", n.id)),
                Ok(Err(e)) => return Err(format!("node {} failed: {e}", n.id)),
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    return Err(format!("node {} stopped (its thread ended)", n.id))
                }
            }
        }
        Ok(())
    }

    /// Asks every node to stop and waits for each, within a bound.
    pub fn shutdown(mut self) -> Result<(), String> {
        for n in &mut self.nodes {
            if let Some(stop) = n.stop.take() {
                let _ = stop.send(());
            }
        }
        let mut errors = Vec::new();
        for n in &mut self.nodes {
            match n.done.recv_timeout(STOP_TIMEOUT) {
                Ok(Ok(())) => {
                    if let Some(t) = n.thread.take() {
                        let _ = t.join();
                    }
                }
                Ok(Err(e)) => errors.push(format!("node {} failed: {e}", n.id)),
                Err(_) => errors.push(format!(
                    "node {} did not stop within {STOP_TIMEOUT:?}",
                    n.id
                )),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

impl Drop for Cluster {
    /// On an early return: ask the nodes to stop, and leave their threads to the process.
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(stop) = n.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

fn run_node(
    config: TwoPcConfig,
    opts: NodeOptions,
    peer: std::net::TcpListener,
    client: std::net::TcpListener,
    stopped: oneshot::Receiver<()>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("node runtime: {e}"))?;
    rt.block_on(async move {
        let pl = TcpListener::from_std(peer).map_err(|e| e.to_string())?;
        let cl = TcpListener::from_std(client).map_err(|e| e.to_string())?;
        let shutdown = async {
            let _ = stopped.await;
        };
        driver::run::<TwoPc>(config, opts, pl, cl, shutdown)
            .await
            .map_err(|e| e.to_string())
    })
}

/// One client connection; one request outstanding at a time.
pub struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    s.set_nodelay(true).map_err(|e| e.to_string())?;
                    let (r, w) = s.into_split();
                    return Ok(Client {
                        r: BufReader::new(r),
                        w,
                    });
                }
                Ok(Err(e)) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(Err(e)) => return Err(format!("connecting to {addr}: {e}")),
                Err(_) => return Err(format!("connecting to {addr} timed out")),
            }
        }
    }

    /// Sends `req` and waits for its response, failing after `STEP_TIMEOUT`.
    pub async fn call(&mut self, req: &Request) -> Result<Response, String> {
        let call = async {
            frame::write(&mut self.w, req)
                .await
                .map_err(|e| format!("sending: {e}"))?;
            match frame::read::<Response>(&mut self.r).await {
                Ok(Some(resp)) => Ok(resp),
                Ok(None) => Err("the node closed the connection".to_string()),
                Err(e) => Err(format!("reading the response: {e}")),
            }
        };
        tokio::time::timeout(STEP_TIMEOUT, call)
            .await
            .map_err(|_| format!("no response within {STEP_TIMEOUT:?}: a node is stuck"))?
    }
}
