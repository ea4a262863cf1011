//! The task that owns a client's session: one connection at a time, requests pipelined on
//! it and matched to their answers in order, pings, watch dispatch, and the move to
//! another server when the connection breaks.
//!
//! The server answers a connection's requests in the order they were sent, so answers are
//! matched to the oldest request in flight; an answer with another xid is a protocol
//! violation and ends the connection. Watch events arrive on the same stream, between
//! answers, and are dispatched in that order (see [`super::watch`]).
//!
//! On a broken connection every request in flight fails with `ConnectionLoss` (it may or
//! may not have been applied); the task then tries the servers in turn, resuming the
//! session with the newest zxid it has seen so that it never sees an older state, and
//! carries its watches to the new server before anything else (see [`super::watch`]).
//! Requests made meanwhile wait, in a bounded backlog, for the next connection. A server
//! answering `SessionExpired` ends the session for good.

use super::conn::{self, AttemptError, Conn, Granted, Hello};
use super::error::ErrorKind;
use super::options::{ConnectOptions, MAX_BACKOFF_MS, MIN_BACKOFF_MS};
use super::watch::{WatchKind, WatchResult, WatchTable};
use super::CoordError;
use coord::api::{Reply, Request, SessionId, SetWatchesRequest, Zxid};
use coord::server::proto::{ClientMsg, ServerMsg};
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch as state_channel};
use tokio::time::Instant;

/// Where a client's session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Between connections: requests wait for the next one.
    Connecting,
    Connected(SocketAddr),
    /// The server said the session is gone. Terminal.
    Expired,
    /// Closed by the client. Terminal.
    Closed,
}

/// A request's successful answer, with the zxid of the server's state when it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub reply: Reply,
    pub zxid: Zxid,
    pub server: SocketAddr,
}

/// Why the task could not answer a request.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub kind: ErrorKind,
    pub server: Option<SocketAddr>,
}

/// A watch to register if the read that asks for it succeeds.
pub(crate) struct WatchReg {
    pub kind: WatchKind,
    pub path: String,
    pub tx: oneshot::Sender<WatchResult>,
}

pub(crate) struct Pending {
    pub request: Request,
    pub watch: Option<WatchReg>,
    pub reply: oneshot::Sender<Result<Answer, Failure>>,
}

/// Where the outcome of a close goes.
pub(crate) type CloseReply = oneshot::Sender<Result<(), Failure>>;

pub(crate) enum Command {
    Op(Pending),
    Close(CloseReply),
}

/// What the client handles and the task share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub session: AtomicU64,
    pub last_zxid: AtomicU64,
    pub state: state_channel::Sender<ClientState>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            session: AtomicU64::new(0),
            last_zxid: AtomicU64::new(0),
            state: state_channel::Sender::new(ClientState::Connecting),
        }
    }

    pub fn session(&self) -> SessionId {
        self.session.load(Ordering::Acquire)
    }

    fn saw(&self, zxid: Zxid) {
        self.last_zxid.fetch_max(zxid, Ordering::AcqRel);
    }

    fn last_zxid(&self) -> Zxid {
        self.last_zxid.load(Ordering::Acquire)
    }
}

struct InFlight {
    xid: u64,
    watch: Option<WatchReg>,
    /// None for the task's own `SetWatches`.
    reply: Option<oneshot::Sender<Result<Answer, Failure>>>,
}

/// How serving one connection ended.
enum Ended {
    Lost(String),
    Expired,
    /// Closed by `close` (answered) or by dropping every handle.
    Closed,
}

pub(crate) struct SessionTask {
    /// In the order they are tried; `next` is the one tried next.
    servers: Vec<SocketAddr>,
    next: usize,
    opts: ConnectOptions,
    /// The timeout the server granted, which paces pings.
    timeout_ms: u64,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    /// Requests taken while no connection was open, sent on the next one.
    backlog: VecDeque<Pending>,
    in_flight: VecDeque<InFlight>,
    /// The xid of a `Close` sent, and who waits for it.
    closing: Option<(u64, Option<CloseReply>)>,
    /// Every handle has been dropped: close the session.
    orphaned: bool,
    watches: WatchTable,
    /// While the watches are being carried to a new server: the zxid they are carried
    /// with, and how many `SetWatches` await their answer. A connection lost meanwhile
    /// carries them again from the same zxid, not from what the new server granted.
    carrying: Option<(Zxid, usize)>,
    /// `SetWatches` to send first on the next connection.
    carry: Vec<SetWatchesRequest>,
    next_xid: u64,
}

impl SessionTask {
    pub fn new(
        servers: Vec<SocketAddr>,
        opts: ConnectOptions,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Command>,
    ) -> SessionTask {
        SessionTask {
            servers,
            next: 0,
            timeout_ms: opts.session_timeout_ms,
            opts,
            shared,
            commands,
            backlog: VecDeque::new(),
            in_flight: VecDeque::new(),
            closing: None,
            orphaned: false,
            watches: WatchTable::default(),
            carrying: None,
            carry: Vec::new(),
            next_xid: 1,
        }
    }

    fn rotate(&mut self) -> SocketAddr {
        let addr = self.servers[self.next % self.servers.len()];
        self.next = (self.next + 1) % self.servers.len();
        addr
    }

    fn hello(&self) -> Hello {
        let session = self.shared.session();
        Hello {
            session: (session != 0).then_some(session),
            timeout_ms: self.opts.session_timeout_ms,
            last_zxid: self.shared.last_zxid(),
        }
    }

    fn granted(&mut self, granted: Granted, addr: SocketAddr) {
        self.shared
            .session
            .store(granted.session, Ordering::Release);
        self.shared.saw(granted.zxid);
        self.timeout_ms = granted.timeout_ms.max(3);
        self.shared.state.send_replace(ClientState::Connected(addr));
    }

    /// Opens the session, trying every server in turn until one grants it or the connect
    /// timeout passes.
    pub async fn establish(&mut self) -> Result<Conn, ErrorKind> {
        let deadline = Instant::now() + self.opts.connect_timeout();
        let mut backoff = Duration::from_millis(MIN_BACKOFF_MS);
        let mut last = String::from("no attempt");
        loop {
            for _ in 0..self.servers.len() {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                let addr = self.rotate();
                match conn::open(addr, self.hello(), remaining).await {
                    Ok((conn, granted)) => {
                        self.granted(granted, addr);
                        return Ok(conn);
                    }
                    Err(AttemptError::Retry(why)) => last = why,
                    Err(AttemptError::Expired) => last = format!("{addr}: session expired"),
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ErrorKind::NoSession {
                    timeout_ms: self.opts.connect_timeout_ms,
                    servers: self.servers.len(),
                    last,
                });
            }
            tokio::time::sleep(backoff.min(remaining)).await;
            backoff = (backoff * 2).min(Duration::from_millis(MAX_BACKOFF_MS));
        }
    }

    /// Serves connections until the session ends.
    pub async fn run(mut self, mut conn: Conn) {
        loop {
            let ended = self.serve(&mut conn).await;
            let addr = conn.addr;
            drop(conn);
            match ended {
                Ended::Lost(_why) if self.closing.is_none() && !self.orphaned => {
                    let seen = match self.carrying {
                        Some((since, _)) => since,
                        None => self.shared.last_zxid(),
                    };
                    self.lost(addr);
                    match self.reconnect().await {
                        Ok(next) => conn = next,
                        Err(end) => return self.finish(end, Some(addr)),
                    }
                    self.carry = self.watches.carry(seen);
                    self.carrying = (!self.carry.is_empty()).then_some((seen, self.carry.len()));
                }
                Ended::Lost(_) => return self.finish(Ended::Closed, Some(addr)),
                end => return self.finish(end, Some(addr)),
            }
        }
    }

    /// Serves one connection: sends what callers ask, matches answers, pings, and notices
    /// a server gone silent.
    async fn serve(&mut self, conn: &mut Conn) -> Ended {
        for set in std::mem::take(&mut self.carry) {
            if let Err(why) = self.send_set_watches(conn, set).await {
                return Ended::Lost(why);
            }
        }
        while let Some(p) = self.backlog.pop_front() {
            if let Err(why) = self.send_op(conn, p).await {
                return Ended::Lost(why);
            }
        }
        let ping_every = Duration::from_millis(self.timeout_ms / 3);
        let silence = Duration::from_millis(self.timeout_ms * 2 / 3);
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        loop {
            let room = self.in_flight.len() < self.opts.max_in_flight
                && self.closing.is_none()
                && !self.orphaned;
            let step = tokio::select! {
                biased;
                msg = conn.recv() => {
                    heard = Instant::now();
                    match msg {
                        Ok(msg) => self.on_message(msg, conn.addr),
                        Err(why) => Err(Ended::Lost(why)),
                    }
                }
                cmd = self.commands.recv(), if room => self.on_command(conn, cmd).await,
                _ = ping.tick() => self.write(conn, &ClientMsg::Ping).await.map_err(Ended::Lost),
                _ = tokio::time::sleep_until(heard + silence) => Err(Ended::Lost(format!(
                    "nothing heard for {} ms", silence.as_millis()
                ))),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn on_command(&mut self, conn: &mut Conn, cmd: Option<Command>) -> Result<(), Ended> {
        match cmd {
            Some(Command::Op(p)) => self.send_op(conn, p).await.map_err(Ended::Lost),
            Some(Command::Close(tx)) => self.send_close(conn, Some(tx)).await,
            None => {
                self.orphaned = true;
                self.send_close(conn, None).await
            }
        }
    }

    async fn send_close(&mut self, conn: &mut Conn, tx: Option<CloseReply>) -> Result<(), Ended> {
        let xid = self.take_xid();
        self.closing = Some((xid, tx));
        self.write(conn, &ClientMsg::Close { xid })
            .await
            .map_err(Ended::Lost)
    }

    fn take_xid(&mut self) -> u64 {
        let xid = self.next_xid;
        self.next_xid += 1;
        xid
    }

    /// Sends a request, unless its caller has given up waiting (then it was never sent,
    /// which is the better outcome for an operation reported as timed out).
    async fn send_op(&mut self, conn: &mut Conn, p: Pending) -> Result<(), String> {
        if p.reply.is_closed() {
            return Ok(());
        }
        let xid = self.take_xid();
        let msg = ClientMsg::Op {
            xid,
            request: p.request,
        };
        self.in_flight.push_back(InFlight {
            xid,
            watch: p.watch,
            reply: Some(p.reply),
        });
        self.write(conn, &msg).await
    }

    /// Sends the task's own `SetWatches`, ahead of every caller's request.
    async fn send_set_watches(
        &mut self,
        conn: &mut Conn,
        set: SetWatchesRequest,
    ) -> Result<(), String> {
        let xid = self.take_xid();
        let msg = ClientMsg::Op {
            xid,
            request: Request::SetWatches(set),
        };
        self.in_flight.push_back(InFlight {
            xid,
            watch: None,
            reply: None,
        });
        self.write(conn, &msg).await
    }

    async fn write(&mut self, conn: &mut Conn, msg: &ClientMsg) -> Result<(), String> {
        match tokio::time::timeout(self.opts.op_timeout(), conn.write(msg)).await {
            Ok(result) => result,
            Err(_) => Err(format!("a write took over {} ms", self.opts.op_timeout_ms)),
        }
    }

    fn on_message(&mut self, msg: ServerMsg, server: SocketAddr) -> Result<(), Ended> {
        match msg {
            ServerMsg::Reply { xid, zxid, result } => self.on_reply(xid, zxid, result, server),
            ServerMsg::Watch { event } => {
                self.shared.saw(event.zxid);
                self.watches.fire(&event);
                Ok(())
            }
            ServerMsg::Pong { .. } => Ok(()),
            ServerMsg::Closed { xid } => match self.closing.take() {
                Some((x, tx)) if x == xid => {
                    if let Some(tx) = tx {
                        let _ = tx.send(Ok(()));
                    }
                    Err(Ended::Closed)
                }
                other => {
                    self.closing = other;
                    Err(Ended::Lost(format!("unexpected Closed for xid {xid}")))
                }
            },
            ServerMsg::Refused {
                code: coord::api::ErrorCode::SessionExpired,
            } => Err(Ended::Expired),
            ServerMsg::Refused { code } => Err(Ended::Lost(format!("refused: {code}"))),
            other => Err(Ended::Lost(format!("unexpected {other:?}"))),
        }
    }

    fn on_reply(
        &mut self,
        xid: u64,
        zxid: Zxid,
        result: Result<Reply, coord::api::ErrorCode>,
        server: SocketAddr,
    ) -> Result<(), Ended> {
        let expected = self.in_flight.front().map(|f| f.xid);
        if expected != Some(xid) {
            return Err(Ended::Lost(format!(
                "answer for xid {xid} while {expected:?} was due"
            )));
        }
        let f = self.in_flight.pop_front().expect("checked above");
        self.shared.saw(zxid);
        let Some(reply_to) = f.reply else {
            self.carried(result, server);
            return Ok(());
        };
        let answer = match result {
            Ok(reply) => {
                if let Some(w) = f.watch {
                    let absent = matches!(reply, Reply::Exists { stat: None });
                    self.watches.register(w.kind, w.path, absent, w.tx, server);
                }
                Ok(Answer {
                    reply,
                    zxid,
                    server,
                })
            }
            Err(code) => Err(Failure {
                kind: ErrorKind::Server(code),
                server: Some(server),
            }),
        };
        let _ = reply_to.send(answer);
        Ok(())
    }

    /// A `SetWatches` was answered. If the server refused it, the watches it carried
    /// cannot be trusted to fire: they fail, and their callers read again.
    fn carried(&mut self, result: Result<Reply, coord::api::ErrorCode>, server: SocketAddr) {
        if let Err(code) = result {
            self.watches.fail_all(|path| {
                CoordError::new(
                    format!("watch {path}"),
                    Some(server),
                    ErrorKind::Server(code),
                )
            });
            self.carrying = None;
            return;
        }
        self.carrying = match self.carrying {
            Some((since, n)) if n > 1 => Some((since, n - 1)),
            _ => None,
        };
    }

    /// A connection to `server` broke: what was in flight there fails; the watches wait
    /// for the next server.
    fn lost(&mut self, server: SocketAddr) {
        self.shared.state.send_replace(ClientState::Connecting);
        self.fail_in_flight(ErrorKind::ConnectionLoss, Some(server));
    }

    fn fail_in_flight(&mut self, kind: ErrorKind, server: Option<SocketAddr>) {
        for f in self.in_flight.drain(..) {
            let failure = Failure {
                kind: kind.clone(),
                server,
            };
            if let Some(reply) = f.reply {
                let _ = reply.send(Err(failure));
            }
        }
    }

    /// Tries the servers in turn, without end, until one resumes the session or says it
    /// expired, or the client is closed. Requests made meanwhile wait in the backlog.
    async fn reconnect(&mut self) -> Result<Conn, Ended> {
        let mut backoff = Duration::from_millis(MIN_BACKOFF_MS);
        loop {
            for _ in 0..self.servers.len() {
                let addr = self.rotate();
                let attempt = conn::open(addr, self.hello(), self.opts.connect_timeout());
                match self.taking_commands(attempt).await? {
                    Ok((conn, granted)) => {
                        self.granted(granted, addr);
                        return Ok(conn);
                    }
                    Err(AttemptError::Expired) => return Err(Ended::Expired),
                    Err(AttemptError::Retry(_)) => {}
                }
            }
            self.taking_commands(tokio::time::sleep(backoff)).await?;
            backoff = (backoff * 2).min(Duration::from_millis(MAX_BACKOFF_MS));
        }
    }

    /// Runs `fut` while queueing the requests that arrive meanwhile; a close, or every
    /// handle dropped, ends the session here (it will expire on the servers).
    async fn taking_commands<T>(&mut self, fut: impl Future<Output = T>) -> Result<T, Ended> {
        tokio::pin!(fut);
        loop {
            let room = self.backlog.len() < self.opts.max_in_flight;
            tokio::select! {
                out = &mut fut => return Ok(out),
                cmd = self.commands.recv(), if room => match cmd {
                    Some(Command::Op(p)) => self.backlog.push_back(p),
                    Some(Command::Close(tx)) => {
                        let _ = tx.send(Ok(()));
                        return Err(Ended::Closed);
                    }
                    None => return Err(Ended::Closed),
                }
            }
        }
    }

    /// Ends the session: everything still waiting fails with the reason, and later
    /// requests are refused.
    fn finish(mut self, end: Ended, server: Option<SocketAddr>) {
        let (state, kind) = match end {
            Ended::Expired => (
                ClientState::Expired,
                ErrorKind::SessionExpired(self.shared.session()),
            ),
            Ended::Closed | Ended::Lost(_) => (ClientState::Closed, ErrorKind::Closed),
        };
        self.shared.state.send_replace(state);
        if let Some((_, Some(tx))) = self.closing.take() {
            // The connection broke before the server confirmed the close.
            let _ = tx.send(Err(Failure {
                kind: ErrorKind::ConnectionLoss,
                server,
            }));
        }
        let in_flight_kind = match kind {
            ErrorKind::SessionExpired(_) => kind.clone(),
            _ => ErrorKind::ConnectionLoss,
        };
        self.fail_in_flight(in_flight_kind, server);
        self.commands.close();
        let waiting = self.backlog.drain(..).collect::<Vec<_>>();
        let queued = std::iter::from_fn(|| match self.commands.try_recv() {
            Ok(Command::Op(p)) => Some(Some(p)),
            Ok(Command::Close(tx)) => {
                let _ = tx.send(Ok(()));
                Some(None)
            }
            Err(_) => None,
        })
        .flatten()
        .collect::<Vec<_>>();
        for p in waiting.into_iter().chain(queued) {
            let failure = Failure {
                kind: kind.clone(),
                server: None,
            };
            let _ = p.reply.send(Err(failure));
        }
        self.watches
            .fail_all(|path| CoordError::new(format!("watch {path}"), server, kind.clone()));
    }
}
