//! The client for systems Faultline does not know: the generic JSON-lines protocol
//! ([`protocol`]), so a system in any language can be tested without writing Rust (README,
//! "Bring your own system"). The lines travel one of two ways:
//!
//! - over TCP to the node's client port ([`JsonlClient::tcp`]), when the system speaks the
//!   protocol itself;
//! - through a client process on the controller ([`JsonlClient::child`]), one per worker,
//!   which reads requests on its stdin and writes responses on its stdout, and talks to the
//!   system however it likes (its own client library, say).
//!
//! Each operation is one request line and one response line on one channel, in order. A
//! request that could not be sent at all (no connection, no process) is `fail`. Whatever
//! goes wrong once it may have left (the channel closes, the deadline passes, the line is not
//! such a response, answers another id or is too long) is `info`, and so is an `info`
//! answer; after any `info` the channel is dropped (the process killed) and the next
//! operation opens a fresh one, so a late answer is never taken for another request's.

pub mod protocol;
mod stdio;
mod tcp;

pub use protocol::MAX_LINE_BYTES;
pub use stdio::ChildCommand;

use crate::client::{Client, Outcome};
use checkers::history::{OpType, Value};
use protocol::Line;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

/// One worker's client: its channel to the system, opened when needed.
pub struct JsonlClient {
    transport: Transport,
    /// The harness's worker this client serves (its processes change after each `info`).
    worker: u64,
    timeout: Duration,
    next_id: u64,
    /// Idle between operations; `None` until opened and after anything went wrong.
    conn: Option<Channel>,
}

/// How a client reaches the system.
enum Transport {
    Tcp(SocketAddr),
    Child(stdio::Spawner),
}

impl JsonlClient {
    /// Lines over a TCP connection to `addr`.
    pub fn tcp(addr: SocketAddr, worker: u64, timeout_ms: u64) -> JsonlClient {
        JsonlClient::new(Transport::Tcp(addr), worker, timeout_ms)
    }

    /// Lines through the stdin and stdout of a process `command` starts.
    pub fn child(command: ChildCommand, worker: u64, timeout_ms: u64) -> JsonlClient {
        JsonlClient::new(
            Transport::Child(stdio::Spawner::new(command)),
            worker,
            timeout_ms,
        )
    }

    fn new(transport: Transport, worker: u64, timeout_ms: u64) -> JsonlClient {
        JsonlClient {
            transport,
            worker,
            timeout: Duration::from_millis(timeout_ms.max(1)),
            next_id: 0,
            conn: None,
        }
    }

    async fn call(&mut self, f: &str, value: &Value) -> Outcome {
        let deadline = Instant::now() + self.timeout;
        self.next_id += 1;
        let id = self.next_id;
        // The channel is taken out for the exchange and put back only when it ends cleanly:
        // a call cut short (the runner's own timeout drops it mid-way) leaves no channel
        // with an answer still owed on it.
        let idle = match self.conn.take() {
            Some(mut c) => c.is_idle().await.then_some(c),
            None => None,
        };
        let mut conn = match idle {
            Some(c) => c,
            None => match self.transport.open(deadline).await {
                Ok(c) => c,
                Err(e) => return Outcome::fail(value.clone(), e),
            },
        };
        let request = protocol::request_line(id, self.worker, f, value);
        let reply = match timeout_at(deadline, conn.exchange(&request)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(why)) => {
                let why = conn.explain(why, deadline).await;
                return Outcome::info(value.clone(), why);
            }
            Err(_) => return Outcome::info(value.clone(), "timed out"),
        };
        match protocol::parse_response(&reply, id, value) {
            Ok(outcome) => {
                if outcome.op_type != OpType::Info {
                    self.conn = Some(conn);
                }
                outcome
            }
            Err(why) => Outcome::info(value.clone(), why),
        }
    }
}

impl Client for JsonlClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        self.call(f, value).await
    }
}

impl Transport {
    /// A fresh channel, or why there is none (nothing was sent).
    async fn open(&self, deadline: Instant) -> Result<Channel, String> {
        match self {
            Transport::Tcp(addr) => tcp::open(*addr, deadline).await,
            Transport::Child(spawner) => spawner.open(),
        }
    }
}

/// A line channel to the system: a connection, or a client process's pipes.
struct Channel {
    reader: Box<dyn AsyncBufRead + Send + Unpin>,
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    /// What the error says when the reader ends.
    closed: &'static str,
    /// The client process behind a stdio channel: killed, with everything it started, when
    /// the channel is dropped.
    child: Option<stdio::Child>,
}

impl Channel {
    /// Whether nothing arrived since the last answer and the peer has not closed: anything
    /// else (a closed connection, a process that exited, bytes nobody asked for) retires it
    /// before a request is risked on it.
    async fn is_idle(&mut self) -> bool {
        let reader = &mut self.reader;
        std::future::poll_fn(|cx| {
            Poll::Ready(Pin::new(&mut *reader).poll_fill_buf(cx).is_pending())
        })
        .await
    }

    /// Sends `request` and reads one response line; the error says what went wrong.
    async fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, String> {
        let sent = async {
            self.writer.write_all(request).await?;
            self.writer.flush().await
        };
        sent.await.map_err(|e| format!("send: {e}"))?;
        match protocol::read_line(&mut self.reader, MAX_LINE_BYTES).await {
            Ok(Line::Line(line)) => Ok(line),
            Ok(Line::Closed) => Err(self.closed.to_string()),
            Ok(Line::TooLong) => Err(format!(
                "a response line longer than {MAX_LINE_BYTES} bytes"
            )),
            Err(e) => Err(format!("receive: {e}")),
        }
    }

    /// `why` the channel broke, with what its client process came to, if it has one.
    async fn explain(&mut self, why: String, deadline: Instant) -> String {
        match &mut self.child {
            Some(child) => child.explain(why, deadline).await,
            None => why,
        }
    }
}
