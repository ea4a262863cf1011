//! The participant's listeners: peers (the store's peer protocol: a `Hello`, then
//! `Envelope` frames) and clients (`Request` frames, answered in order). Both speak
//! `machine::wire` frames, so the coordinator and the store's clients cannot tell this
//! participant from the store's own.

use crate::participant::Participant;
use machine::NodeId;
use node::frame;
use node::peers::Hello;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use twopc::proto::{Envelope, Request};

/// Peer messages being handled at once; a reader waits beyond it (backpressure).
pub const MAX_INFLIGHT_MESSAGES: usize = 512;
/// Client connections open at once; more are closed on accept.
pub const MAX_CLIENTS: usize = 256;

/// Accepts peer connections forever, handling each message in a task of its own so that a
/// transaction waiting on a lock does not hold up the others.
pub async fn peers(
    listener: TcpListener,
    p: Arc<Participant>,
    members: BTreeSet<NodeId>,
    cluster: String,
) {
    let inflight = Arc::new(Semaphore::new(MAX_INFLIGHT_MESSAGES));
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let (p, members, cluster, inflight) = (
            p.clone(),
            members.clone(),
            cluster.clone(),
            inflight.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = serve_peer(stream, p, &members, &cluster, inflight).await {
                tracing::warn!(peer = %addr, error = %e, "closed a peer connection");
            }
        });
    }
}

async fn serve_peer(
    mut stream: TcpStream,
    p: Arc<Participant>,
    members: &BTreeSet<NodeId>,
    cluster: &str,
    inflight: Arc<Semaphore>,
) -> Result<(), String> {
    let hello = tokio::time::timeout(
        Duration::from_millis(node::HELLO_TIMEOUT_MS),
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
    if !members.contains(&hello.from) || hello.from == p.id() {
        return Err(format!("claims to be node {}, not a peer", hello.from));
    }
    let mut r = BufReader::new(stream);
    loop {
        match frame::read::<Envelope>(&mut r).await {
            Ok(Some(env)) => {
                let permit = inflight
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("never closed");
                let p = p.clone();
                tokio::spawn(async move {
                    p.on_envelope(hello.from, env).await;
                    drop(permit);
                });
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("node {}: {e}", hello.from)),
        }
    }
}

/// Accepts client connections forever; each is served by one task, requests in order.
pub async fn clients(listener: TcpListener, p: Arc<Participant>) {
    let open = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(client = %addr, "too many clients: closed");
            continue;
        };
        let p = p.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_client(stream, &p).await {
                tracing::debug!(client = %addr, error = %e, "client connection ended");
            }
            drop(permit);
        });
    }
}

async fn serve_client(stream: TcpStream, p: &Participant) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let req = match frame::read::<Request>(&mut r).await {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let resp = p.on_request(req).await;
        frame::write(&mut w, &resp)
            .await
            .map_err(|e| e.to_string())?;
        w.flush().await.map_err(|e| e.to_string())?;
    }
}
