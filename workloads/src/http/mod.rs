//! A minimal keep-alive HTTP/1.1 client: one connection, one request at a time, POST only.
//!
//! It exists so that clients of HTTP-speaking systems (etcd's JSON gateway) need no HTTP or
//! gRPC stack. What a test harness needs from it, beyond a plain client, is to know whether a
//! failed request may have reached the server: every [`HttpError`] says so through
//! [`HttpError::delivery`], and clients turn that into `fail` (certainly not delivered) or `info`
//! (maybe delivered). It never retries, since a retried write could apply twice.

pub mod parse;

pub use parse::{Limits, ParseError, Response};

use parse::Parsed;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

/// Timeouts and size limits for one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    pub connect_timeout_ms: u64,
    /// From the first byte written until the whole response is in.
    pub request_timeout_ms: u64,
    /// The request line, headers and body together.
    pub max_request_bytes: usize,
    pub limits: Limits,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            connect_timeout_ms: 1_000,
            request_timeout_ms: 5_000,
            max_request_bytes: 2 * 1024 * 1024,
            limits: Limits::default(),
        }
    }
}

/// Whether a failed request may have reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The request was never completely written, so the server cannot have acted on it.
    NotSent,
    /// The request was written and the answer was lost: the server may have acted on it.
    MaybeSent,
}

/// A failed request, naming the peer and the stage where it failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("request to {addr} is not sendable: {problem}")]
    BadRequest { addr: SocketAddr, problem: String },
    #[error("connecting to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {addr} took longer than {timeout_ms} ms")]
    ConnectTimeout { addr: SocketAddr, timeout_ms: u64 },
    #[error("writing the request to {addr} failed before it was complete: {source}")]
    Write {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("writing the request to {addr} did not finish within {timeout_ms} ms")]
    WriteTimeout { addr: SocketAddr, timeout_ms: u64 },
    #[error("reading the response from {addr} failed after sending the request: {source}")]
    Read {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("{addr} closed the connection after sending {received_bytes} bytes of the response")]
    Closed {
        addr: SocketAddr,
        received_bytes: usize,
    },
    #[error("no complete response from {addr} within {timeout_ms} ms of sending the request")]
    ResponseTimeout { addr: SocketAddr, timeout_ms: u64 },
    #[error("malformed response from {addr}: {source}")]
    Malformed {
        addr: SocketAddr,
        #[source]
        source: ParseError,
    },
}

impl HttpError {
    pub fn delivery(&self) -> Delivery {
        match self {
            HttpError::BadRequest { .. }
            | HttpError::Connect { .. }
            | HttpError::ConnectTimeout { .. }
            | HttpError::Write { .. }
            | HttpError::WriteTimeout { .. } => Delivery::NotSent,
            HttpError::Read { .. }
            | HttpError::Closed { .. }
            | HttpError::ResponseTimeout { .. }
            | HttpError::Malformed { .. } => Delivery::MaybeSent,
        }
    }
}

/// A client of one server address. Not shared: give each worker its own.
#[derive(Debug)]
pub struct HttpClient {
    addr: SocketAddr,
    config: HttpConfig,
    /// The idle keep-alive connection, if the last exchange left one that is safe to reuse.
    idle: Option<TcpStream>,
}

/// How much one read asks for; small enough to keep overshoot past the response cap small.
const READ_CHUNK_BYTES: usize = 16 * 1024;

impl HttpClient {
    pub fn new(addr: SocketAddr, config: HttpConfig) -> HttpClient {
        HttpClient {
            addr,
            config,
            idle: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// POSTs `body` (JSON) to `path` and returns the response, whatever its status.
    ///
    /// The connection is taken out of the client for the exchange and put back only after a
    /// clean, complete response. So after any error, and if this future is dropped midway (a
    /// caller's timeout), the next request starts on a fresh connection rather than reading
    /// the stale tail of an abandoned exchange.
    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> Result<Response, HttpError> {
        let request = self.encode_request(path, body)?;
        let mut stream = match self.idle.take().filter(still_open) {
            Some(stream) => stream,
            None => self.connect().await?,
        };
        let timeout_ms = self.config.request_timeout_ms;
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let addr = self.addr;
        match timeout_at(deadline, stream.write_all(&request)).await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(HttpError::Write { addr, source }),
            Err(_) => return Err(HttpError::WriteTimeout { addr, timeout_ms }),
        }
        let mut buf = Vec::with_capacity(READ_CHUNK_BYTES);
        loop {
            match parse::parse_response(&buf, &self.config.limits) {
                Ok(Parsed::Complete { response, consumed }) => {
                    // Bytes beyond the response were never asked for: the stream is out of step.
                    if response.keep_alive && consumed == buf.len() {
                        self.idle = Some(stream);
                    }
                    return Ok(response);
                }
                Ok(Parsed::Incomplete) => {}
                Err(source) => return Err(HttpError::Malformed { addr, source }),
            }
            let old_len = buf.len();
            buf.resize(old_len + READ_CHUNK_BYTES, 0);
            let n = match timeout_at(deadline, stream.read(&mut buf[old_len..])).await {
                Ok(Ok(n)) => n,
                Ok(Err(source)) => return Err(HttpError::Read { addr, source }),
                Err(_) => return Err(HttpError::ResponseTimeout { addr, timeout_ms }),
            };
            buf.truncate(old_len + n);
            if n == 0 {
                return Err(HttpError::Closed {
                    addr,
                    received_bytes: old_len,
                });
            }
        }
    }

    fn encode_request(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, HttpError> {
        let bad = |problem: String| HttpError::BadRequest {
            addr: self.addr,
            problem,
        };
        // A path with spaces or line breaks would corrupt the request line or inject headers.
        if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(format!(
                "path {path:?} is not an absolute path of visible ASCII"
            )));
        }
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let len = head.len() + body.len();
        if len > self.config.max_request_bytes {
            return Err(bad(format!(
                "{len} bytes exceed the {}-byte request limit",
                self.config.max_request_bytes
            )));
        }
        let mut request = Vec::with_capacity(len);
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        Ok(request)
    }

    async fn connect(&self) -> Result<TcpStream, HttpError> {
        let addr = self.addr;
        let timeout_ms = self.config.connect_timeout_ms;
        let stream =
            match timeout(Duration::from_millis(timeout_ms), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(source)) => return Err(HttpError::Connect { addr, source }),
                Err(_) => return Err(HttpError::ConnectTimeout { addr, timeout_ms }),
            };
        // Requests are small and each waits for its answer: Nagle would only add latency.
        stream
            .set_nodelay(true)
            .map_err(|source| HttpError::Connect { addr, source })?;
        Ok(stream)
    }
}

/// Whether an idle connection can carry another request. A server that closed it (idle
/// timeout, restart) has sent FIN, which shows as end-of-file; catching that before writing
/// keeps a harmless reconnect from being reported as "maybe delivered". Best effort: a close
/// racing with our write is still reported as `MaybeSent`, which is the safe answer.
fn still_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A real server on a loopback socket that answers each connection with a script.
    async fn serve(
        script: impl Fn(usize, TcpStream) -> tokio::task::JoinHandle<()> + Send + 'static,
    ) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for n in 0.. {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                script(n, stream);
            }
        });
        addr
    }

    /// Reads one request (head and Content-Length body) off the stream.
    async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8(buf.clone()).ok()?;
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))?
            .parse()
            .ok()?;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.ok()?;
        buf.extend_from_slice(&body);
        Some(buf)
    }

    fn client(addr: SocketAddr) -> HttpClient {
        HttpClient::new(
            addr,
            HttpConfig {
                request_timeout_ms: 2_000,
                ..HttpConfig::default()
            },
        )
    }

    /// Answers every request on the connection by echoing its body, chunked.
    fn echo(_: usize, mut stream: TcpStream) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(req) = read_request(&mut stream).await {
                let body = &req[req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
                let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for piece in body.chunks(3) {
                    out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                // Byte by byte, so the client's reassembly across reads is exercised.
                for b in out {
                    if stream.write_all(&[b]).await.is_err() {
                        return;
                    }
                }
            }
        })
    }

    #[tokio::test]
    async fn keep_alive_reuses_one_connection() {
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = connections.clone();
        let addr = serve(move |n, s| {
            seen.store(n + 1, std::sync::atomic::Ordering::SeqCst);
            echo(n, s)
        })
        .await;
        let mut c = client(addr);
        for i in 0..5 {
            let body = format!("{{\"n\":{i}}}");
            let r = c.post_json("/v3/kv/range", body.as_bytes()).await.unwrap();
            assert_eq!((r.status, r.body), (200, body.into_bytes()));
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn reconnects_when_the_server_closed_the_idle_connection() {
        // Answers one request per connection and closes it without saying so.
        let addr = serve(|_, mut stream| {
            tokio::spawn(async move {
                if read_request(&mut stream).await.is_some() {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                }
            })
        })
        .await;
        let mut c = client(addr);
        for _ in 0..3 {
            assert_eq!(c.post_json("/", b"{}").await.unwrap().body, b"ok");
            // Let the FIN arrive, as it would on an idle connection between operations.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn refused_connection_is_not_delivered() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = client(addr).post_json("/", b"{}").await.unwrap_err();
        assert_eq!(e.delivery(), Delivery::NotSent, "{e}");
        assert!(e.to_string().contains("connecting to 127.0.0.1:"), "{e}");
    }

    #[tokio::test]
    async fn lost_answer_is_maybe_delivered_and_the_next_request_reconnects() {
        // The first connection swallows the request and hangs up; later ones echo.
        let addr = serve(|n, mut stream| {
            if n == 0 {
                tokio::spawn(async move {
                    read_request(&mut stream).await;
                })
            } else {
                echo(n, stream)
            }
        })
        .await;
        let mut c = client(addr);
        let e = c.post_json("/", b"{}").await.unwrap_err();
        assert_eq!(e.delivery(), Delivery::MaybeSent, "{e}");
        assert!(
            e.to_string()
                .contains("closed the connection after sending 0 bytes"),
            "{e}"
        );
        assert_eq!(c.post_json("/", b"[1]").await.unwrap().body, b"[1]");
    }

    #[tokio::test]
    async fn silent_server_times_out_as_maybe_delivered() {
        let addr = serve(|_, mut stream| {
            tokio::spawn(async move {
                read_request(&mut stream).await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            })
        })
        .await;
        let mut c = HttpClient::new(
            addr,
            HttpConfig {
                request_timeout_ms: 100,
                ..HttpConfig::default()
            },
        );
        let e = c.post_json("/", b"{}").await.unwrap_err();
        assert!(
            matches!(
                e,
                HttpError::ResponseTimeout {
                    timeout_ms: 100,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.delivery(), Delivery::MaybeSent);
    }

    #[tokio::test]
    async fn oversize_and_garbage_responses_are_errors() {
        let addr = serve(|n, mut stream| {
            tokio::spawn(async move {
                read_request(&mut stream).await;
                let reply: &[u8] = if n == 0 {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n"
                } else {
                    b"SSH-2.0-OpenSSH\r\n\r\n"
                };
                let _ = stream.write_all(reply).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            })
        })
        .await;
        let mut c = client(addr);
        let e = c.post_json("/", b"{}").await.unwrap_err();
        assert!(
            e.to_string().contains("longer than the 4194304-byte limit"),
            "{e}"
        );
        assert_eq!(e.delivery(), Delivery::MaybeSent);
        let e = c.post_json("/", b"{}").await.unwrap_err();
        assert!(e.to_string().contains("bad status line"), "{e}");
    }

    #[tokio::test]
    async fn unsendable_requests_are_refused_before_connecting() {
        // Nothing listens here, so getting BadRequest proves no connection was attempted first.
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut c = client(addr);
        let e = c.post_json("/a b", b"{}").await.unwrap_err();
        assert!(matches!(e, HttpError::BadRequest { .. }), "{e}");
        let big = vec![b' '; 3 * 1024 * 1024];
        let e = c.post_json("/", &big).await.unwrap_err();
        assert!(e.to_string().contains("request limit"), "{e}");
        assert_eq!(e.delivery(), Delivery::NotSent);
    }
}
