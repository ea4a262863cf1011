//! Peer connections. Each node dials every peer and keeps one outbound connection per peer
//! for what it sends; what it receives arrives on the connections its peers dialled. A
//! broken connection loses what was in flight, which the protocols' links detect, and is
//! redialled with backoff. Messages queued while a peer is unreachable are dropped, not
//! hoarded: a partition must not turn into unbounded memory.

use crate::driver::Inbound;
use crate::{frame, HELLO_TIMEOUT_MS, MAX_PEER_QUEUE};
use machine::{Machine, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::BufWriter;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const DIAL_TIMEOUT_MS: u64 = 1_000;
const BACKOFF_MIN_MS: u64 = 20;
const BACKOFF_MAX_MS: u64 = 1_000;

/// The first frame on a peer connection.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub cluster: String,
    pub from: NodeId,
}

/// Starts the sender to one peer; the returned queue feeds it.
pub fn dial<M: Machine + 'static>(
    me: NodeId,
    addr: SocketAddr,
    cluster: String,
) -> mpsc::Sender<M::Peer>
where
    M::Peer: Send + Sync + 'static,
{
    let (tx, mut rx) = mpsc::channel::<M::Peer>(MAX_PEER_QUEUE);
    tokio::spawn(async move {
        let mut backoff_ms = BACKOFF_MIN_MS;
        loop {
            let dialled = tokio::time::timeout(
                Duration::from_millis(DIAL_TIMEOUT_MS),
                TcpStream::connect(addr),
            )
            .await;
            let stream = match dialled {
                Ok(Ok(s)) => s,
                _ => {
                    while rx.try_recv().is_ok() {} // Unreachable: drop what waits.
                    if rx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
                    continue;
                }
            };
            backoff_ms = BACKOFF_MIN_MS;
            let _ = stream.set_nodelay(true);
            let mut w = BufWriter::new(stream);
            let hello = Hello {
                cluster: cluster.clone(),
                from: me,
            };
            if send_all(&mut w, &hello, &mut rx).await.is_none() {
                return; // The driver is gone.
            }
        }
    });
    tx
}

/// Sends the hello, then queued messages until the connection breaks (`Some`) or the
/// queue closes (`None`).
async fn send_all<P: Serialize>(
    w: &mut BufWriter<TcpStream>,
    hello: &Hello,
    rx: &mut mpsc::Receiver<P>,
) -> Option<()> {
    use tokio::io::AsyncWriteExt;
    if frame::write(w, hello).await.is_err() || w.flush().await.is_err() {
        return Some(());
    }
    loop {
        let msg = rx.recv().await?;
        if let Err(e) = frame::write(w, &msg).await {
            tracing::debug!(error = %e, "peer connection broke");
            return Some(());
        }
        // Batch what is already queued into one flush.
        while let Ok(more) = rx.try_recv() {
            if frame::write(w, &more).await.is_err() {
                return Some(());
            }
        }
        if w.flush().await.is_err() {
            return Some(());
        }
    }
}

/// Accepts peer connections and feeds what they carry to the driver.
pub async fn accept<M: Machine + 'static>(
    listener: TcpListener,
    members: BTreeSet<NodeId>,
    cluster: String,
    inputs: mpsc::Sender<Inbound<M>>,
) where
    M::Peer: Send + Sync + 'static,
    M::Request: Send + Sync + 'static,
    M::Response: Send + Sync + 'static,
{
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let members = members.clone();
        let cluster = cluster.clone();
        let inputs = inputs.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_peer::<M>(stream, &members, &cluster, inputs).await {
                tracing::warn!(peer = %addr, error = %e, "closed a peer connection");
            }
        });
    }
}

async fn serve_peer<M: Machine + 'static>(
    mut stream: TcpStream,
    members: &BTreeSet<NodeId>,
    cluster: &str,
    inputs: mpsc::Sender<Inbound<M>>,
) -> Result<(), String> {
    let hello = tokio::time::timeout(
        Duration::from_millis(HELLO_TIMEOUT_MS),
        frame::read::<Hello>(&mut stream),
    )
    .await
    .map_err(|_| "no hello in time".to_string())?
    .map_err(|e| format!("bad hello: {e}"))?
    .ok_or("closed before its hello")?;
    if hello.cluster != cluster {
        return Err(format!(
            "belongs to cluster {:?}, not {cluster:?}",
            hello.cluster
        ));
    }
    if !members.contains(&hello.from) {
        return Err(format!("claims to be node {}, not a member", hello.from));
    }
    let mut r = tokio::io::BufReader::new(stream);
    loop {
        match frame::read::<M::Peer>(&mut r).await {
            Ok(Some(msg)) => {
                if inputs.send(Inbound::Peer(hello.from, msg)).await.is_err() {
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("node {}: {e}", hello.from)),
        }
    }
}
