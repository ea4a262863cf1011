//! Faultline's coord for the benchmark: three `faultline-node coord` processes, and a
//! minimal pipelined connection speaking coord's client protocol (`coord::server::proto`,
//! framed by `machine::wire`: 4-byte little-endian length + postcard). Processes rather
//! than in-process nodes, so that coord pays for its own process and scheduling as
//! ZooKeeper's JVMs do.

use coord::api::{ErrorCode, Reply, Request};
use coord::server::proto::{ClientMsg, ServerMsg};
use machine::wire;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Session timeout the load generator asks for; pings go every fifth of it.
const SESSION_TIMEOUT_MS: u64 = 30_000;
/// Most requests in flight per connection (coord closes a connection beyond 1000).
const MAX_IN_FLIGHT: usize = 512;
/// How long one request may take before the benchmark counts it failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Three coord nodes; dropping the cluster kills them.
pub struct Cluster {
    pub clients: Vec<SocketAddr>,
    children: Vec<Child>,
}

impl Cluster {
    /// The server processes' ids, server 1 first.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Builds (or finds up to date) the release node binary next to this benchmark's.
pub fn node_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "-p", "faultline-node"])
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    let bin = release.join("faultline-node");
    if !status.success() || !bin.exists() {
        return Err(format!(
            "cargo build --release -p faultline-node failed; {} missing",
            bin.display()
        ));
    }
    Ok(bin)
}

impl Cluster {
    pub fn start(bin: &Path, dir: &Path, n: usize) -> Result<Cluster, String> {
        let listeners: Vec<TcpListener> = (0..2 * n)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        drop(listeners);
        let (peers, clients) = addrs.split_at(n);
        let peer_list: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect();
        let mut children = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let data = dir.join(format!("n{}", i + 1));
            std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
            let log = std::fs::File::create(dir.join(format!("n{}.log", i + 1)))
                .map_err(|e| e.to_string())?;
            let child = Command::new(bin)
                .args([
                    "coord",
                    "--id",
                    &(i + 1).to_string(),
                    "--peers",
                    &peer_list.join(","),
                ])
                .args(["--client-listen", &client.to_string(), "--cluster", "bench"])
                .arg("--data")
                .arg(&data)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("starting {}: {e}", bin.display()))?;
            children.push(child);
        }
        Ok(Cluster {
            clients: clients.to_vec(),
            children,
        })
    }
}

type Waiter = oneshot::Sender<Result<Reply, ErrorCode>>;

/// One session on one coord server, with requests pipelined.
pub struct Conn {
    frames: mpsc::Sender<Vec<u8>>,
    pending: Arc<Mutex<HashMap<u64, Waiter>>>,
    next_xid: Mutex<u64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Conn {
    /// Opens a session on `addr`, retrying while the cluster elects a leader.
    pub async fn open(addr: SocketAddr, deadline: Instant) -> Result<Conn, String> {
        loop {
            match Conn::try_open(addr).await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() > deadline => return Err(format!("coord {addr}: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn try_open(addr: SocketAddr) -> Result<Conn, String> {
        let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timeout".to_string())?
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let hello = ClientMsg::Connect {
            session: None,
            timeout_ms: SESSION_TIMEOUT_MS,
            last_zxid: 0,
        };
        stream
            .write_all(&wire::encode(&hello).map_err(|e| e.to_string())?)
            .await
            .map_err(|e| e.to_string())?;
        let reply = tokio::time::timeout(Duration::from_secs(2), read_msg(&mut stream))
            .await
            .map_err(|_| "handshake timeout".to_string())??;
        let ServerMsg::Connected { .. } = reply else {
            return Err(format!("refused: {reply:?}"));
        };
        let (mut read, mut write) = stream.into_split();
        let (frames, mut rx) = mpsc::channel::<Vec<u8>>(MAX_IN_FLIGHT + 16);
        let pending: Arc<Mutex<HashMap<u64, Waiter>>> = Arc::default();
        let writer = tokio::spawn(async move {
            let ping = wire::encode(&ClientMsg::Ping).expect("a ping encodes");
            let mut tick = tokio::time::interval(Duration::from_millis(SESSION_TIMEOUT_MS / 5));
            let mut batch = Vec::new();
            loop {
                tokio::select! {
                    f = rx.recv() => match f { Some(f) => batch.extend_from_slice(&f), None => return },
                    _ = tick.tick() => batch.extend_from_slice(&ping),
                }
                while let Ok(f) = rx.try_recv() {
                    batch.extend_from_slice(&f);
                    if batch.len() > 64 * 1024 {
                        break;
                    }
                }
                if write.write_all(&batch).await.is_err() {
                    return;
                }
                batch.clear();
            }
        });
        let routes = pending.clone();
        let reader = tokio::spawn(async move {
            while let Ok(msg) = read_msg(&mut read).await {
                if let ServerMsg::Reply { xid, result, .. } = msg {
                    if let Some(w) = routes.lock().unwrap().remove(&xid) {
                        let _ = w.send(result);
                    }
                }
            }
            routes.lock().unwrap().clear();
        });
        Ok(Conn {
            frames,
            pending,
            next_xid: Mutex::new(0),
            tasks: vec![writer, reader],
        })
    }

    pub async fn call(&self, request: Request) -> Result<Reply, String> {
        let (tx, rx) = oneshot::channel();
        let xid = {
            let mut next = self.next_xid.lock().unwrap();
            *next += 1;
            *next
        };
        let frame = wire::encode(&ClientMsg::Op { xid, request }).map_err(|e| e.to_string())?;
        self.pending.lock().unwrap().insert(xid, tx);
        self.frames
            .send(frame)
            .await
            .map_err(|_| "connection closed".to_string())?;
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(code))) => Err(code.to_string()),
            Ok(Err(_)) => Err("connection lost".into()),
            Err(_) => {
                self.pending.lock().unwrap().remove(&xid);
                Err("timeout".into())
            }
        }
    }
}

async fn read_msg<R: AsyncReadExt + Unpin>(read: &mut R) -> Result<ServerMsg, String> {
    let mut header = [0u8; wire::HEADER_BYTES];
    read.read_exact(&mut header)
        .await
        .map_err(|e| e.to_string())?;
    let mut body = vec![0; wire::body_len(header).map_err(|e| e.to_string())?];
    read.read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    wire::decode(&body).map_err(|e| e.to_string())
}
