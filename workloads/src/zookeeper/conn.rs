//! One TCP connection of a session to one ZooKeeper server.
//!
//! The server answers a connection's requests in the order it received them, so replies
//! are matched against a FIFO queue of requests in flight, and a reply whose xid is not the
//! oldest one's is a protocol error, as in ZooKeeper's own client. A writer task batches
//! frames and pings every third of the session timeout; a reader task decodes replies,
//! fires watches, and gives up when the server is silent for two thirds of it. Whatever
//! ends the connection (an I/O error, garbage, silence, the server closing) fails every
//! request in flight with `ConnectionLoss`: they may or may not have been applied.

use super::error::{Error, ErrorCode};
use super::jute::Reader;
use super::proto::{
    self, ConnectRequest, ConnectResponse, ReplyHeader, Request, Response, WatchedEvent,
    JUTE_MAX_BUFFER_BYTES, MAX_FRAME_BYTES,
};
use super::watches::{WatchKind, Watches};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Most requests in flight on one connection; callers wait for room (within their own
/// timeout) beyond it. ZooKeeper's server throttles a connection at 1000 by default.
pub const MAX_IN_FLIGHT: usize = 1000;

/// Most bytes the writer coalesces into one write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// What a session shares with each of its connections.
#[derive(Debug)]
pub struct Shared {
    /// The newest zxid seen in any reply: sent on reconnection, so that no server behind
    /// what the client saw accepts the session.
    pub last_zxid: AtomicI64,
    pub watches: Mutex<Watches>,
    next_xid: AtomicI32,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            last_zxid: AtomicI64::new(0),
            watches: Mutex::new(Watches::default()),
            next_xid: AtomicI32::new(1),
        }
    }
}

impl Shared {
    /// Xids count up from 1 and wrap before the negative ones ZooKeeper reserves.
    fn xid(&self) -> i32 {
        let xid = self.next_xid.fetch_add(1, Ordering::Relaxed);
        if xid <= 0 {
            self.next_xid.store(2, Ordering::Relaxed);
            return 1;
        }
        xid
    }

    fn saw_zxid(&self, zxid: i64) {
        self.last_zxid.fetch_max(zxid, Ordering::Relaxed);
    }
}

/// The outcome a reply delivers to its caller.
pub type Outcome = Result<Response, Error>;

struct InFlight {
    xid: i32,
    request: Request,
    reply: oneshot::Sender<Outcome>,
    watch: Option<(WatchKind, oneshot::Sender<WatchedEvent>)>,
    _permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Queue {
    in_flight: VecDeque<InFlight>,
    /// Why the connection ended, once it has.
    closed: Option<String>,
}

/// Timeouts of one connection, all derived from the session's.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// How long the server may stay silent: ZooKeeper's client uses 2/3 of the session
    /// timeout, so that it moves to another server before the session can expire.
    pub read: Duration,
    pub ping: Duration,
}

impl Timeouts {
    pub fn for_session(session_timeout: Duration, connect: Duration) -> Timeouts {
        Timeouts {
            connect,
            read: session_timeout * 2 / 3,
            ping: session_timeout / 3,
        }
    }
}

/// A live connection. Dropping it stops its tasks and closes the socket.
pub struct Conn {
    server: String,
    shared: Arc<Shared>,
    queue: Arc<Mutex<Queue>>,
    frames: mpsc::Sender<Vec<u8>>,
    room: Arc<Semaphore>,
    closed: watch::Receiver<Option<String>>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("server", &self.server)
            .finish()
    }
}

impl Conn {
    /// Connects to `server` and performs the handshake, all within `connect_timeout`.
    /// A server that answers a resumption with a timeout of 0 says the session expired.
    pub async fn open(
        server: &str,
        connect: &ConnectRequest,
        connect_timeout: Duration,
    ) -> Result<(TcpStream, ConnectResponse), Error> {
        let handshake = async {
            let mut stream = TcpStream::connect(server)
                .await
                .map_err(|e| lost(server, e))?;
            stream.set_nodelay(true).map_err(|e| lost(server, e))?;
            stream
                .write_all(&connect.frame())
                .await
                .map_err(|e| lost(server, e))?;
            let body = read_frame(&mut stream, server).await?;
            let resp = ConnectResponse::decode(&body).map_err(|e| garbage(server, e))?;
            Ok::<_, Error>((stream, resp))
        };
        let (stream, resp) = tokio::time::timeout(connect_timeout, handshake)
            .await
            .map_err(|_| Error::Timeout {
                what: "connecting".into(),
                server: server.into(),
                timeout_ms: connect_timeout.as_millis() as u64,
            })??;
        if resp.timeout_ms <= 0 {
            return Err(Error::SessionExpired {
                server: server.into(),
                session: connect.session_id,
            });
        }
        Ok((stream, resp))
    }

    /// Starts the reader and writer of an open connection.
    pub fn start(server: &str, stream: TcpStream, shared: Arc<Shared>, timeouts: Timeouts) -> Conn {
        let (read, write) = stream.into_split();
        let (frames_tx, frames_rx) = mpsc::channel(MAX_IN_FLIGHT + 64);
        let (closed_tx, closed_rx) = watch::channel(None);
        let queue = Arc::new(Mutex::new(Queue::default()));
        let ender = Ender {
            server: server.to_string(),
            queue: queue.clone(),
            closed: Arc::new(closed_tx),
        };
        let writer = tokio::spawn(write_loop(write, frames_rx, timeouts.ping, ender.clone()));
        let reader = Receiver {
            server: server.to_string(),
            shared: shared.clone(),
            queue: queue.clone(),
        };
        let reader = tokio::spawn(reader.run(read, timeouts.read, ender));
        Conn {
            server: server.to_string(),
            shared,
            queue,
            frames: frames_tx,
            room: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            closed: closed_rx,
            tasks: [writer, reader],
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends a frame outside the request queue (SetWatches after a reconnection).
    pub fn send_raw(&self, frame: Vec<u8>) -> Result<(), Error> {
        self.frames
            .try_send(frame)
            .map_err(|_| Error::ConnectionLoss {
                server: self.server.clone(),
                why: "the writer is gone or full".into(),
            })
    }

    /// Queues a request, waiting at most `timeout` for room. The reply arrives on the
    /// returned channel; the caller bounds that wait too.
    pub async fn send(
        &self,
        request: Request,
        watch: Option<(WatchKind, oneshot::Sender<WatchedEvent>)>,
        timeout: Duration,
    ) -> Result<oneshot::Receiver<Outcome>, Error> {
        let mut frame = request.frame(0);
        if frame.len() - 4 > JUTE_MAX_BUFFER_BYTES {
            return Err(Error::TooLarge {
                what: "request",
                len: frame.len() - 4,
                max: JUTE_MAX_BUFFER_BYTES,
            });
        }
        let permit = tokio::time::timeout(timeout, self.room.clone().acquire_owned())
            .await
            .map_err(|_| self.timeout("waiting for room to send", timeout))?
            .map_err(|_| self.lost("closed"))?;
        let (reply, rx) = oneshot::channel();
        let mut queue = self.queue.lock().expect("queue lock");
        if let Some(why) = &queue.closed {
            return Err(self.lost(why));
        }
        let xid = self.shared.xid();
        frame[4..8].copy_from_slice(&xid.to_be_bytes());
        self.frames
            .try_send(frame)
            .map_err(|_| self.lost("writer gone"))?;
        queue.in_flight.push_back(InFlight {
            xid,
            request,
            reply,
            watch,
            _permit: permit,
        });
        Ok(rx)
    }

    /// Resolves with the reason once the connection has ended.
    pub async fn closed(&self) -> String {
        let mut rx = self.closed.clone();
        let why = rx.wait_for(Option::is_some).await;
        match why {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => "connection tasks ended".into(),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    fn lost(&self, why: &str) -> Error {
        Error::ConnectionLoss {
            server: self.server.clone(),
            why: why.into(),
        }
    }

    fn timeout(&self, what: &str, timeout: Duration) -> Error {
        Error::Timeout {
            what: what.into(),
            server: self.server.clone(),
            timeout_ms: timeout.as_millis() as u64,
        }
    }
}

/// Ends a connection once: records why and fails every request in flight.
#[derive(Clone)]
struct Ender {
    server: String,
    queue: Arc<Mutex<Queue>>,
    closed: Arc<watch::Sender<Option<String>>>,
}

impl Ender {
    fn end(&self, why: String) {
        let drained: Vec<InFlight> = {
            let mut q = self.queue.lock().expect("queue lock");
            if q.closed.is_some() {
                return;
            }
            q.closed = Some(why.clone());
            q.in_flight.drain(..).collect()
        };
        for f in drained {
            let _ = f.reply.send(Err(Error::ConnectionLoss {
                server: self.server.clone(),
                why: why.clone(),
            }));
        }
        self.closed.send_replace(Some(why));
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut frames: mpsc::Receiver<Vec<u8>>,
    ping_every: Duration,
    ender: Ender,
) {
    let mut ping = tokio::time::interval(ping_every.max(Duration::from_millis(10)));
    ping.tick().await;
    let mut batch = Vec::with_capacity(WRITE_BATCH_BYTES);
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => batch.extend_from_slice(&frame),
                None => return,
            },
            _ = ping.tick() => batch.extend_from_slice(&proto::ping_frame()),
        }
        while batch.len() < WRITE_BATCH_BYTES {
            match frames.try_recv() {
                Ok(frame) => batch.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        if let Err(e) = write.write_all(&batch).await {
            ender.end(format!("write failed: {e}"));
            return;
        }
        batch.clear();
    }
}

/// Decodes what the server sends and routes it.
struct Receiver {
    server: String,
    shared: Arc<Shared>,
    queue: Arc<Mutex<Queue>>,
}

impl Receiver {
    async fn run(self, mut read: OwnedReadHalf, silence: Duration, ender: Ender) {
        let why = loop {
            let body =
                match tokio::time::timeout(silence, read_frame(&mut read, &self.server)).await {
                    Err(_) => break format!("no message for {} ms", silence.as_millis()),
                    Ok(Err(e)) => break e.to_string(),
                    Ok(Ok(body)) => body,
                };
            if let Err(e) = self.handle(&body) {
                break e.to_string();
            }
        };
        ender.end(why);
    }

    fn handle(&self, body: &[u8]) -> Result<(), Error> {
        let mut r = Reader::new(body);
        let header = ReplyHeader::read(&mut r).map_err(|e| garbage(&self.server, e))?;
        if header.zxid > 0 {
            self.shared.saw_zxid(header.zxid);
        }
        match header.xid {
            proto::xid::NOTIFICATION => {
                let event = WatchedEvent::decode(header.zxid, &mut r)
                    .map_err(|e| garbage(&self.server, e))?;
                self.shared.watches.lock().expect("watch lock").fire(&event);
                Ok(())
            }
            proto::xid::PING | proto::xid::SET_WATCHES => Ok(()),
            xid => self.reply(xid, header.err, &mut r),
        }
    }

    /// Completes the oldest request in flight, which this reply must answer.
    fn reply(&self, xid: i32, err: i32, r: &mut Reader<'_>) -> Result<(), Error> {
        let front = self.queue.lock().expect("queue lock").in_flight.pop_front();
        let Some(f) = front else {
            return Err(self.protocol(format!("reply with xid {xid} to no request")));
        };
        if f.xid != xid {
            let why = format!("reply xid {xid} out of order (expected {})", f.xid);
            let _ = f.reply.send(Err(self.protocol(why.clone())));
            return Err(self.protocol(why));
        }
        let code = ErrorCode::from_code(err);
        let outcome = match code {
            // A failed multi still carries its per-op results.
            Some(_) if !matches!(f.request, Request::Multi(_)) || r.remaining() == 0 => {
                Err(self.keeper(code.expect("an error"), &f.request))
            }
            _ => Response::decode(&f.request, r).map_err(|e| garbage(&self.server, e)),
        };
        if let Err(Error::Protocol { why, .. }) = &outcome {
            let why = why.clone();
            let _ = f.reply.send(outcome);
            return Err(self.protocol(why));
        }
        self.register_watch(f.watch, &f.request, code);
        let _ = f.reply.send(outcome);
        Ok(())
    }

    /// A watch counts from the reply that set it: on success, and for exists also when
    /// the node does not exist (then it waits for the node's creation).
    fn register_watch(
        &self,
        watch: Option<(WatchKind, oneshot::Sender<WatchedEvent>)>,
        request: &Request,
        code: Option<ErrorCode>,
    ) {
        let Some((kind, tx)) = watch else { return };
        let kind = match (kind, code) {
            (WatchKind::Data, Some(ErrorCode::NoNode))
                if matches!(request, Request::Exists { .. }) =>
            {
                WatchKind::Exist
            }
            (kind, None) => kind,
            _ => return,
        };
        let mut watches = self.shared.watches.lock().expect("watch lock");
        watches.add(kind, request.path(), tx);
    }

    fn keeper(&self, code: ErrorCode, request: &Request) -> Error {
        Error::Keeper {
            code,
            server: self.server.clone(),
            op: request.name(),
            path: request.path().to_string(),
        }
    }

    fn protocol(&self, why: String) -> Error {
        Error::Protocol {
            server: self.server.clone(),
            why,
        }
    }
}

/// Reads one frame's body, refusing a length that is negative or over the limit before
/// allocating anything.
async fn read_frame<R: AsyncReadExt + Unpin>(read: &mut R, server: &str) -> Result<Vec<u8>, Error> {
    let mut header = [0u8; 4];
    read.read_exact(&mut header)
        .await
        .map_err(|e| lost(server, e))?;
    let len = i32::from_be_bytes(header);
    let len = usize::try_from(len)
        .ok()
        .filter(|n| *n <= MAX_FRAME_BYTES)
        .ok_or_else(|| Error::Protocol {
            server: server.into(),
            why: format!("frame length {len} is outside 0..={MAX_FRAME_BYTES}"),
        })?;
    let mut body = vec![0u8; len];
    read.read_exact(&mut body)
        .await
        .map_err(|e| lost(server, e))?;
    Ok(body)
}

fn lost(server: &str, e: std::io::Error) -> Error {
    let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "the server closed the connection".to_string()
    } else {
        e.to_string()
    };
    Error::ConnectionLoss {
        server: server.into(),
        why,
    }
}

fn garbage(server: &str, e: super::jute::JuteError) -> Error {
    Error::Protocol {
        server: server.into(),
        why: e.to_string(),
    }
}
