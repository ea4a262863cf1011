//! The async client connection to one replica: one request at a time over one TCP
//! connection, framed as `machine::wire` (4-byte little-endian length, then postcard), with a
//! deadline per request and errors that say whether the request may have applied.
//!
//! A replica answers each request once, in order. Whatever goes wrong once a request may have
//! left (a write or read error, the deadline, garbage) drops the connection, so a late answer
//! is never taken for the next request's, and the error is *indefinite*: a transaction the
//! replica received may commit after its client has gone (its delegate only forgets the
//! client; the broadcast goes on). Only an error before anything was written is *definite*.

use repdb::proto::{Request, Response};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

pub use crate::framed::CallError;

/// A connection to one replica.
pub type Conn = crate::framed::Conn<Request, Response>;

/// One request on a connection of its own, within `timeout`.
pub async fn call_once(
    addr: SocketAddr,
    req: &Request,
    timeout: Duration,
) -> Result<Response, CallError> {
    Conn::new(addr).call(req, timeout).await
}

/// Time left before `deadline`, at least a millisecond (so a call fails cleanly).
pub fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// The shared [`crate::framed::Conn`] as every reference system's client uses it, on
/// repdb's protocol.
#[cfg(test)]
mod tests {
    use super::*;
    use machine::wire;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::time::Instant;

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

    fn status() -> Response {
        Response::Status {
            replica: 2,
            mode: "certification".into(),
            leader: Some(1),
            serving: true,
            version: 3,
            applied: 3,
        }
    }

    #[test]
    fn answers_come_back_and_the_connection_is_reused() {
        rt().block_on(async {
            let mut c = Conn::new(server(Some(status())).await);
            for _ in 0..3 {
                let deadline = Instant::now() + Duration::from_secs(2);
                assert_eq!(c.call_until(&Request::Status, deadline).await, Ok(status()));
            }
        });
    }

    #[test]
    fn a_refused_connection_is_definite_and_silence_is_indefinite() {
        rt().block_on(async {
            let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let dead = unused.local_addr().unwrap();
            drop(unused);
            let err = call_once(dead, &Request::Status, Duration::from_secs(2))
                .await
                .unwrap_err();
            assert!(err.is_definite(), "{err}");
            let silent = server(None).await;
            let err = call_once(silent, &Request::Status, Duration::from_millis(200))
                .await
                .unwrap_err();
            assert!(!err.is_definite(), "{err}");
            assert!(
                err.to_string().contains("no response within 200 ms"),
                "{err}"
            );
        });
    }
}
