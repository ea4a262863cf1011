//! The async client of the two-phase-commit store: one request at a time over one TCP
//! connection, framed as `machine::wire` (4-byte little-endian length, then postcard), with
//! a deadline per request and errors that say whether the request certainly did not apply.
//!
//! The store answers a client's requests in order, one `Response` per `Request`. Whatever
//! goes wrong once a request may have left (a write or read error, the deadline, garbage)
//! drops the connection, so that a late answer is never taken for the next request's, and
//! the error is *indefinite*: a `Txn` the coordinator received runs to its decision even if
//! its client has gone. Only an error before anything was written is *definite*.

use machine::wire;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use twopc::proto::{Request, Response};

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
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn { addr, stream: None }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req` and waits for its response, all within `timeout`.
    pub async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response, CallError> {
        let deadline = Instant::now() + timeout;
        let mut sent = false;
        let result = match timeout_at(deadline, self.exchange(req, &mut sent)).await {
            Ok(result) => result,
            Err(_) => {
                let what = format!(
                    "{}: no response within {} ms",
                    self.addr,
                    timeout.as_millis()
                );
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

    async fn exchange(&mut self, req: &Request, sent: &mut bool) -> Result<Response, CallError> {
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

/// One request on a connection of its own (state queries to participants, which are rare).
pub async fn call_once(
    addr: SocketAddr,
    req: &Request,
    timeout: Duration,
) -> Result<Response, CallError> {
    Conn::new(addr).call(req, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A server that answers every request with `answer`, or reads and stays silent.
    async fn server(answer: Option<Response>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let answer = answer.clone();
                tokio::spawn(async move {
                    loop {
                        let mut h = [0u8; 4];
                        if s.read_exact(&mut h).await.is_err() {
                            return;
                        }
                        let mut b = vec![0u8; wire::body_len(h).unwrap()];
                        s.read_exact(&mut b).await.unwrap();
                        let _: Request = wire::decode(&b).unwrap();
                        if let Some(a) = &answer {
                            s.write_all(&wire::encode(a).unwrap()).await.unwrap();
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn answers_come_back_and_the_connection_is_reused() {
        rt().block_on(async {
            let resp = Response::Refused { why: "no".into() };
            let mut c = Conn::new(server(Some(resp.clone())).await);
            for _ in 0..3 {
                let got = c.call(&Request::State, Duration::from_secs(2)).await;
                assert_eq!(got, Ok(resp.clone()));
            }
        });
    }

    #[test]
    fn a_refused_connection_is_definite_and_silence_is_indefinite() {
        rt().block_on(async {
            let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let dead = unused.local_addr().unwrap();
            drop(unused);
            let err = call_once(dead, &Request::Snapshot, Duration::from_secs(2))
                .await
                .unwrap_err();
            assert!(err.is_definite(), "{err}");
            let silent = server(None).await;
            let err = call_once(silent, &Request::Snapshot, Duration::from_millis(200))
                .await
                .unwrap_err();
            assert!(!err.is_definite(), "{err}");
            assert!(err.message().contains("no response within 200 ms"), "{err}");
        });
    }
}
