//! Peer connections. Each node dials every peer and keeps one outbound connection per peer
//! for what it sends; what it receives arrives on the connections its peers dialled. A
//! broken connection loses what was in flight, which the protocols' links detect, and is
//! redialled with backoff. Messages queued while a peer is unreachable are dropped, not
//! hoarded: a partition must not turn into unbounded memory.
//!
//! The peer never writes on an outbound connection, so the sender watches it for reading:
//! anything readable means the peer (or a proxy between) closed it, and the sender redials
//! at once instead of writing the next message into a dead connection, where it would be
//! lost long after the fault that broke it. A connection that ends right after it was
//! made (the peer is down behind a proxy) counts as a failed dial.

use crate::driver::Inbound;
use crate::{frame, HELLO_TIMEOUT_MS, MAX_PEER_QUEUE};
use machine::{Machine, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const DIAL_TIMEOUT_MS: u64 = 1_000;
const BACKOFF_MIN_MS: u64 = 20;
/// Low, because what a node sends while its peer is down waits out the rest of the backoff
/// once the peer is up: nodes started a second apart left a twopc participant's first vote
/// queued 650 ms behind a 640 ms backoff, past the coordinator's 500 ms vote timeout, and the
/// abort had no fault to blame. A dial to a peer that is down costs little; five a second is
/// nothing.
const BACKOFF_MAX_MS: u64 = 200;
/// A connection that ended sooner than this after it was made was never really up.
const STABLE_MS: u64 = 500;

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
    dial_peer(me, addr, cluster)
}

/// [`dial`] for any message type: for programs that speak a core's peer protocol without
/// running the core (a participant whose shard lives in another database).
pub fn dial_peer<P: Serialize + Send + Sync + 'static>(
    me: NodeId,
    addr: SocketAddr,
    cluster: String,
) -> mpsc::Sender<P> {
    let (tx, mut rx) = mpsc::channel::<P>(MAX_PEER_QUEUE);
    tokio::spawn(async move {
        let mut backoff_ms = BACKOFF_MIN_MS;
        loop {
            let dialled = tokio::time::timeout(
                Duration::from_millis(DIAL_TIMEOUT_MS),
                TcpStream::connect(addr),
            )
            .await;
            if let Ok(Ok(stream)) = dialled {
                let connected = Instant::now();
                let _ = stream.set_nodelay(true);
                let (r, w) = stream.into_split();
                let mut w = BufWriter::new(w);
                let hello = Hello {
                    cluster: cluster.clone(),
                    from: me,
                };
                if send_all(&mut w, r, &hello, &mut rx).await.is_none() {
                    return; // The driver is gone.
                }
                if connected.elapsed() >= Duration::from_millis(STABLE_MS) {
                    backoff_ms = BACKOFF_MIN_MS;
                    continue; // It was up: redial at once, keeping what waits.
                }
            }
            while rx.try_recv().is_ok() {} // Unreachable: drop what waits.
            if rx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
        }
    });
    tx
}

/// Sends the hello, then queued messages until the connection breaks or the peer closes
/// it (`Some`), or the queue closes (`None`).
async fn send_all<P: Serialize>(
    w: &mut BufWriter<OwnedWriteHalf>,
    mut r: OwnedReadHalf,
    hello: &Hello,
    rx: &mut mpsc::Receiver<P>,
) -> Option<()> {
    use tokio::io::AsyncWriteExt;
    if frame::write(w, hello).await.is_err() || w.flush().await.is_err() {
        return Some(());
    }
    let mut probe = [0u8; 64];
    loop {
        let msg = tokio::select! {
            biased;
            // Readable: closed (or garbage from something that is not a peer).
            _ = r.read(&mut probe) => return Some(()),
            msg = rx.recv() => msg?,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts one connection and reads its hello.
    async fn accept_hello(l: &TcpListener) -> TcpStream {
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), l.accept())
            .await
            .expect("the sender dialled again in time")
            .unwrap();
        let hello: Hello = frame::read(&mut s).await.unwrap().unwrap();
        assert_eq!((hello.from, hello.cluster.as_str()), (7, "c"));
        s
    }

    #[test]
    fn a_connection_the_peer_closed_is_redialled_before_anything_is_written_into_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let tx = dial_peer::<String>(7, l.local_addr().unwrap(), "c".into());
            let first = accept_hello(&l).await;
            tokio::time::sleep(Duration::from_millis(STABLE_MS + 100)).await;
            drop(first); // The peer restarts, say.
                         // Redialled on its own, with nothing sent yet: no message meets the dead one.
            let mut second = accept_hello(&l).await;
            tx.send("after".to_string()).await.unwrap();
            let got: Option<String> = frame::read(&mut second).await.unwrap();
            assert_eq!(got.as_deref(), Some("after"));
        });
    }
}
