//! Client connections: each gets an id, a reader that turns frames into requests, and a
//! writer fed by a bounded queue of responses. Garbage from a client closes that client's
//! connection with an error in the log naming it; nothing else is affected.

use crate::driver::Inbound;
use crate::{frame, MAX_CLIENTS, MAX_CLIENT_QUEUE};
use machine::{ClientId, Machine};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Accepts client connections and feeds them to the driver.
pub async fn accept<M: Machine + 'static>(listener: TcpListener, inputs: mpsc::Sender<Inbound<M>>)
where
    M::Peer: Send + Sync + 'static,
    M::Request: Send + Sync + 'static,
    M::Response: Send + Sync + 'static,
{
    let open = Arc::new(AtomicUsize::new(0));
    let mut next_id: ClientId = 1;
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        if open.load(Ordering::Relaxed) >= MAX_CLIENTS {
            tracing::warn!(client = %addr, "refused a client: {MAX_CLIENTS} are connected");
            continue;
        }
        let id = next_id;
        next_id += 1;
        open.fetch_add(1, Ordering::Relaxed);
        let inputs = inputs.clone();
        let open = open.clone();
        tokio::spawn(async move {
            if let Err(e) = serve::<M>(id, stream, inputs.clone()).await {
                tracing::warn!(client = %addr, error = %e, "closed a client connection");
            }
            let _ = inputs.send(Inbound::Disconnected(id)).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn serve<M: Machine + 'static>(
    id: ClientId,
    stream: TcpStream,
    inputs: mpsc::Sender<Inbound<M>>,
) -> Result<(), String>
where
    M::Response: Send + Sync + 'static,
{
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let (tx, rx) = mpsc::channel::<M::Response>(MAX_CLIENT_QUEUE);
    if inputs.send(Inbound::Connected(id, tx)).await.is_err() {
        return Ok(());
    }
    let writer = tokio::spawn(write_responses::<M>(w, rx));
    let mut r = tokio::io::BufReader::new(r);
    let result = loop {
        match frame::read::<M::Request>(&mut r).await {
            Ok(Some(req)) => {
                if inputs.send(Inbound::Request(id, req)).await.is_err() {
                    break Ok(());
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(format!("client {id}: {e}")),
        }
    };
    writer.abort();
    result
}

async fn write_responses<M: Machine + 'static>(
    w: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<M::Response>,
) {
    let mut w = tokio::io::BufWriter::new(w);
    while let Some(resp) = rx.recv().await {
        if frame::write(&mut w, &resp).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if frame::write(&mut w, &more).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}
