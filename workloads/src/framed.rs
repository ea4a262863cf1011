//! The async client connection the reference systems share: one request at a time over one
//! TCP connection, framed as `machine::wire` (4-byte little-endian length, then postcard),
//! with a deadline per request and errors that say whether the request may have applied.
//!
//! The reference systems answer a connection's requests once each, in order. Whatever goes
//! wrong once a request may have left (a write or read error, the deadline, garbage) drops
//! the connection, so that a late answer is never taken for the next request's, and the
//! error is *indefinite*: what a node received runs on even if its client has gone. Only an
//! error before anything was written is *definite*.

use machine::wire;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Why a request got no response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Nothing was sent: the request certainly did not apply.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have reached the node: it may apply, or may have.
    #[error("outcome unknown: {0}")]
    Indefinite(String),
}

impl CallError {
    pub fn is_definite(&self) -> bool {
        matches!(self, CallError::NotSent(_))
    }

    pub fn message(&self) -> &str {
        match self {
            CallError::NotSent(m) | CallError::Indefinite(m) => m,
        }
    }
}

/// A connection to one node, opened on first use and reopened after any error.
pub struct Conn<Req, Resp> {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    kinds: PhantomData<fn(&Req) -> Resp>,
}

impl<Req: Serialize, Resp: DeserializeOwned> Conn<Req, Resp> {
    pub fn new(addr: SocketAddr) -> Self {
        Conn {
            addr,
            stream: None,
            kinds: PhantomData,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req` and waits for its response, all within `timeout`.
    pub async fn call(&mut self, req: &Req, timeout: Duration) -> Result<Resp, CallError> {
        let within = format!("within {} ms", timeout.as_millis());
        self.call_by(req, Instant::now() + timeout, &within).await
    }

    /// Sends `req` and waits for its response, all before `deadline`.
    pub async fn call_until(&mut self, req: &Req, deadline: Instant) -> Result<Resp, CallError> {
        self.call_by(req, deadline, "in time").await
    }

    async fn call_by(
        &mut self,
        req: &Req,
        deadline: Instant,
        within: &str,
    ) -> Result<Resp, CallError> {
        let mut sent = false;
        let result = match timeout_at(deadline, self.exchange(req, &mut sent)).await {
            Ok(result) => result,
            Err(_) => {
                let what = format!("{}: no response {within}", self.addr);
                Err(if sent {
                    CallError::Indefinite(what)
                } else {
                    CallError::NotSent(what)
                })
            }
        };
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, req: &Req, sent: &mut bool) -> Result<Resp, CallError> {
        let addr = self.addr;
        let frame = wire::encode(req).map_err(|e| CallError::NotSent(e.to_string()))?;
        let stream = self.open().await?;
        *sent = true;
        let lost = |e: std::io::Error| CallError::Indefinite(format!("{addr}: {e}"));
        stream.write_all(&frame).await.map_err(lost)?;
        let mut header = [0u8; wire::HEADER_BYTES];
        stream.read_exact(&mut header).await.map_err(lost)?;
        let len = wire::body_len(header)
            .map_err(|e| CallError::Indefinite(format!("{addr}: bad response frame: {e}")))?;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.map_err(lost)?;
        wire::decode(&body).map_err(|e| CallError::Indefinite(format!("{addr}: bad response: {e}")))
    }

    /// The open connection, after making sure the node has not closed it while it was idle
    /// (a restarted node did): a request is never written into a connection known dead.
    async fn open(&mut self) -> Result<&mut TcpStream, CallError> {
        if let Some(s) = &self.stream {
            let mut probe = [0u8; 1];
            match s.try_read(&mut probe) {
                // Idle and alive: nothing to read.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // Closed, failed, or bytes nobody asked for: start over.
                _ => self.stream = None,
            }
        }
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)
                .await
                .map_err(|e| CallError::NotSent(format!("{}: cannot connect: {e}", self.addr)))?;
            let _ = s.set_nodelay(true);
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("just opened"))
    }
}
