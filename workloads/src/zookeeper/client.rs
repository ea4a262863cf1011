//! A ZooKeeper session: connection management, reconnection with session resumption, and
//! the data API.
//!
//! The client connects to the configured servers in order. When a connection ends it
//! tries the next ones, presenting the session id and password and the last zxid it saw,
//! and re-registers its watches there; requests in flight on the old connection fail with
//! `ConnectionLoss` (their effect is unknown) and are never retried behind the caller's
//! back. The session ends when a server says it expired, when the client is closed, or
//! when the client is dropped (then, as after a crash, the servers expire it).

use super::conn::{Conn, Shared, Timeouts};
use super::error::{Error, ErrorCode};
use super::proto::{
    multi_error, Acl, ConnectRequest, CreateMode, KeeperState, MultiOp, OpResult, Request,
    Response, Stat, MAX_MULTI_OPS,
};
use super::watches::{Watch, WatchKind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Most servers one client may be given.
pub const MAX_SERVERS: usize = 64;

/// How a client connects and how long it waits.
#[derive(Clone, Debug)]
pub struct Config {
    /// `host:port` client addresses, tried in this order.
    pub servers: Vec<String>,
    /// The session timeout asked for; the server clamps it to [2, 20] ticks.
    pub session_timeout: Duration,
    /// Per server, for the TCP connection and the handshake together.
    pub connect_timeout: Duration,
    /// How long a call waits for a connection and for its reply.
    pub request_timeout: Duration,
}

impl Config {
    pub fn new(servers: &[String]) -> Config {
        Config {
            servers: servers.to_vec(),
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Where the session stands.
#[derive(Clone, Debug)]
enum Link {
    Up(Arc<Conn>),
    /// Between connections.
    Down,
    /// For good.
    Ended(Error),
}

#[derive(Clone, Debug, Default)]
struct Session {
    id: i64,
    passwd: Vec<u8>,
    timeout: Duration,
    /// Index in `servers` of the server last connected to.
    server: usize,
}

struct Inner {
    config: Config,
    shared: Arc<Shared>,
    session: Mutex<Session>,
    link: watch::Sender<Link>,
}

/// A ZooKeeper session. Cheap to share behind an `Arc`; calls may run concurrently and
/// are pipelined on one connection.
pub struct Client {
    inner: Arc<Inner>,
    supervisor: JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.supervisor.abort();
        self.inner.link.send_replace(Link::Ended(Error::Closed));
    }
}

impl Client {
    /// Opens a new session on the first server that accepts one.
    pub async fn connect(config: Config) -> Result<Client, Error> {
        Client::start(config, Session::default()).await
    }

    /// Resumes an existing session, e.g. one another client process opened.
    pub async fn resume(config: Config, session_id: i64, passwd: Vec<u8>) -> Result<Client, Error> {
        let session = Session {
            id: session_id,
            passwd,
            ..Session::default()
        };
        Client::start(config, session).await
    }

    async fn start(config: Config, session: Session) -> Result<Client, Error> {
        if config.servers.is_empty() || config.servers.len() > MAX_SERVERS {
            return Err(Error::Protocol {
                server: "-".into(),
                why: format!(
                    "{} servers given, 1..={MAX_SERVERS} allowed",
                    config.servers.len()
                ),
            });
        }
        let (link, _) = watch::channel(Link::Down);
        let inner = Arc::new(Inner {
            config,
            shared: Arc::new(Shared::default()),
            session: Mutex::new(session),
            link,
        });
        let first = inner.connect_round(0).await?;
        inner.link.send_replace(Link::Up(first));
        let supervisor = tokio::spawn(supervise(inner.clone()));
        Ok(Client { inner, supervisor })
    }

    pub fn session_id(&self) -> i64 {
        self.inner.session.lock().expect("session lock").id
    }

    pub fn session_passwd(&self) -> Vec<u8> {
        self.inner
            .session
            .lock()
            .expect("session lock")
            .passwd
            .clone()
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.inner.session.lock().expect("session lock").timeout
    }

    /// The server of the current connection, if connected.
    pub fn server(&self) -> Option<String> {
        match &*self.inner.link.borrow() {
            Link::Up(conn) => Some(conn.server().to_string()),
            _ => None,
        }
    }

    /// Whether the session is over for good (expired, or this client closed): what a
    /// client knows without asking a server. A session that expired while its client was
    /// cut off shows as over only once a server has said so.
    pub fn is_ended(&self) -> bool {
        matches!(&*self.inner.link.borrow(), Link::Ended(_))
    }

    /// The newest zxid any reply carried.
    pub fn last_zxid(&self) -> i64 {
        self.inner.shared.last_zxid.load(Ordering::Relaxed)
    }

    /// Creates a node with an open ACL; returns its path (with any sequence suffix).
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<(String, Stat), Error> {
        self.create_with_acl(path, data, Acl::open(), mode).await
    }

    pub async fn create_with_acl(
        &self,
        path: &str,
        data: &[u8],
        acl: Vec<Acl>,
        mode: CreateMode,
    ) -> Result<(String, Stat), Error> {
        let request = Request::Create {
            path: path.into(),
            data: data.to_vec(),
            acl,
            mode,
        };
        match self.call(request).await? {
            Response::Created { path, stat } => Ok((path, stat)),
            other => Err(unexpected("create", other)),
        }
    }

    /// Deletes a node at `version` (-1: any).
    pub async fn delete(&self, path: &str, version: i32) -> Result<(), Error> {
        let request = Request::Delete {
            path: path.into(),
            version,
        };
        self.call(request).await.map(|_| ())
    }

    /// The node's Stat, or `None` if it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>, Error> {
        let request = Request::Exists {
            path: path.into(),
            watch: false,
        };
        exists_outcome(self.call(request).await)
    }

    /// As [`Client::exists`], leaving a watch that fires when the node is created, changed
    /// or deleted.
    pub async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, Watch), Error> {
        let request = Request::Exists {
            path: path.into(),
            watch: true,
        };
        let (outcome, watch) = self.call_watching(request, WatchKind::Data).await;
        Ok((exists_outcome(outcome)?, watch))
    }

    pub async fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), Error> {
        let request = Request::GetData {
            path: path.into(),
            watch: false,
        };
        data_outcome(self.call(request).await)
    }

    /// As [`Client::get_data`], leaving a watch for the node's next change or deletion.
    pub async fn get_data_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch), Error> {
        let request = Request::GetData {
            path: path.into(),
            watch: true,
        };
        let (outcome, watch) = self.call_watching(request, WatchKind::Data).await;
        let (data, stat) = data_outcome(outcome)?;
        Ok((data, stat, watch))
    }

    /// Writes the node's data if its version is `version` (-1: any).
    pub async fn set_data(&self, path: &str, data: &[u8], version: i32) -> Result<Stat, Error> {
        let request = Request::SetData {
            path: path.into(),
            data: data.to_vec(),
            version,
        };
        match self.call(request).await? {
            Response::Stat(stat) => Ok(stat),
            other => Err(unexpected("setData", other)),
        }
    }

    /// Children's names, in the server's order, and the parent's Stat.
    pub async fn get_children(&self, path: &str) -> Result<(Vec<String>, Stat), Error> {
        let request = Request::GetChildren {
            path: path.into(),
            watch: false,
        };
        children_outcome(self.call(request).await)
    }

    /// As [`Client::get_children`], leaving a watch for a child's creation or deletion (or
    /// the node's deletion).
    pub async fn get_children_watch(
        &self,
        path: &str,
    ) -> Result<(Vec<String>, Stat, Watch), Error> {
        let request = Request::GetChildren {
            path: path.into(),
            watch: true,
        };
        let (outcome, watch) = self.call_watching(request, WatchKind::Child).await;
        let (children, stat) = children_outcome(outcome)?;
        Ok((children, stat, watch))
    }

    /// Returns once the connected server has caught up with the leader as of the call: a
    /// read after it sees every write committed before.
    pub async fn sync(&self, path: &str) -> Result<String, Error> {
        match self.call(Request::Sync { path: path.into() }).await? {
            Response::Synced { path } => Ok(path),
            other => Err(unexpected("sync", other)),
        }
    }

    /// Applies all ops at one zxid, or none. A failed multi is `Error::Keeper` with the
    /// first failing op's code; [`Client::multi_results`] shows every op's outcome.
    pub async fn multi(&self, ops: Vec<MultiOp>) -> Result<Vec<OpResult>, Error> {
        let results = self.multi_results(ops).await?;
        match multi_error(&results) {
            None => Ok(results),
            Some(code) => Err(Error::Keeper {
                code,
                server: self.server().unwrap_or_default(),
                op: "multi",
                path: String::new(),
            }),
        }
    }

    /// Every op's outcome, the failed multi's included (`RolledBack` before the failing
    /// op, `RuntimeInconsistency` after it).
    pub async fn multi_results(&self, ops: Vec<MultiOp>) -> Result<Vec<OpResult>, Error> {
        if ops.len() > MAX_MULTI_OPS {
            return Err(Error::TooLarge {
                what: "multi (ops)",
                len: ops.len(),
                max: MAX_MULTI_OPS,
            });
        }
        match self.call(Request::Multi(ops)).await? {
            Response::Multi(results) => Ok(results),
            other => Err(unexpected("multi", other)),
        }
    }

    /// Ends the session: the servers delete its ephemerals at once. Every watch resolves
    /// with state `Closed`.
    pub async fn close(self) -> Result<(), Error> {
        let outcome = self.call(Request::CloseSession).await.map(|_| ());
        self.supervisor.abort();
        self.inner.link.send_replace(Link::Ended(Error::Closed));
        let mut watches = self.inner.shared.watches.lock().expect("watch lock");
        watches.end_session(KeeperState::Closed);
        outcome
    }

    /// Sends a request on the current connection and waits for its reply.
    pub async fn call(&self, request: Request) -> Result<Response, Error> {
        self.exchange(request, None).await
    }

    async fn call_watching(
        &self,
        request: Request,
        kind: WatchKind,
    ) -> (Result<Response, Error>, Watch) {
        let (tx, rx) = oneshot::channel();
        let watch = Watch {
            rx,
            path: request.path().to_string(),
        };
        let full = self
            .inner
            .shared
            .watches
            .lock()
            .expect("watch lock")
            .is_full();
        if full {
            let err = Error::TooLarge {
                what: "watch table (watches)",
                len: super::watches::MAX_WATCHES,
                max: super::watches::MAX_WATCHES,
            };
            return (Err(err), watch);
        }
        (self.exchange(request, Some((kind, tx))).await, watch)
    }

    async fn exchange(
        &self,
        request: Request,
        watch: Option<(WatchKind, oneshot::Sender<super::proto::WatchedEvent>)>,
    ) -> Result<Response, Error> {
        let timeout = self.inner.config.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let conn = self.inner.connection(timeout).await?;
        let reply = conn.send(request, watch, timeout).await?;
        match tokio::time::timeout_at(deadline, reply).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::ConnectionLoss {
                server: conn.server().into(),
                why: "the connection dropped the request".into(),
            }),
            Err(_) => Err(Error::Timeout {
                what: "waiting for a reply".into(),
                server: conn.server().into(),
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }
}

impl Inner {
    /// The current connection, waiting up to `timeout` for one.
    async fn connection(&self, timeout: Duration) -> Result<Arc<Conn>, Error> {
        let mut rx = self.link.subscribe();
        let wait = rx.wait_for(|l| !matches!(l, Link::Down));
        let link = match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(link)) => link.clone(),
            Ok(Err(_)) => return Err(Error::Closed),
            Err(_) => {
                return Err(Error::Timeout {
                    what: "waiting for a connection".into(),
                    server: self.config.servers.join(","),
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        };
        match link {
            Link::Up(conn) => Ok(conn),
            Link::Ended(e) => Err(e),
            Link::Down => unreachable!("waited for another state"),
        }
    }

    /// Tries every server once, starting with `servers[first]`. An expired session ends
    /// the round at once; otherwise the last server's error is returned.
    async fn connect_round(&self, first: usize) -> Result<Arc<Conn>, Error> {
        let n = self.config.servers.len();
        let mut last = None;
        for i in 0..n {
            let index = (first + i) % n;
            match self.connect_to(index).await {
                Ok(conn) => return Ok(conn),
                Err(e @ Error::SessionExpired { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one server"))
    }

    async fn connect_to(&self, index: usize) -> Result<Arc<Conn>, Error> {
        let server = &self.config.servers[index];
        let session = self.session.lock().expect("session lock").clone();
        let request = ConnectRequest {
            last_zxid_seen: self.shared.last_zxid.load(Ordering::Relaxed),
            timeout_ms: self
                .config
                .session_timeout
                .as_millis()
                .min(i32::MAX as u128) as i32,
            session_id: session.id,
            passwd: session.passwd,
            read_only: false,
        };
        let (stream, resp) = Conn::open(server, &request, self.config.connect_timeout).await?;
        let granted = Duration::from_millis(resp.timeout_ms as u64);
        let timeouts = Timeouts::for_session(granted, self.config.connect_timeout);
        let conn = Conn::start(server, stream, self.shared.clone(), timeouts);
        *self.session.lock().expect("session lock") = Session {
            id: resp.session_id,
            passwd: resp.passwd,
            timeout: granted,
            server: index,
        };
        let relative = self.shared.last_zxid.load(Ordering::Relaxed);
        let resets = self
            .shared
            .watches
            .lock()
            .expect("watch lock")
            .set_watches(relative);
        for set in resets {
            conn.send_raw(set.frame())?;
        }
        Ok(Arc::new(conn))
    }
}

/// Waits for the connection to end, then reconnects, until the session ends.
async fn supervise(inner: Arc<Inner>) {
    loop {
        let conn = match &*inner.link.borrow() {
            Link::Up(conn) => conn.clone(),
            _ => return,
        };
        conn.closed().await;
        inner.link.send_replace(Link::Down);
        let next = inner.session.lock().expect("session lock").server + 1;
        drop(conn);
        match reconnect(&inner, next).await {
            Ok(conn) => {
                inner.link.send_replace(Link::Up(conn));
            }
            Err(e) => {
                inner
                    .shared
                    .watches
                    .lock()
                    .expect("watch lock")
                    .end_session(KeeperState::Expired);
                inner.link.send_replace(Link::Ended(e));
                return;
            }
        }
    }
}

/// Rounds over the servers with a growing pause, until one takes the session back or
/// says it expired. Only expiry gives up: the servers decide when a session is over.
async fn reconnect(inner: &Inner, first: usize) -> Result<Arc<Conn>, Error> {
    let mut pause = Duration::from_millis(50);
    loop {
        match inner.connect_round(first).await {
            Ok(conn) => return Ok(conn),
            Err(e @ Error::SessionExpired { .. }) => return Err(e),
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn exists_outcome(outcome: Result<Response, Error>) -> Result<Option<Stat>, Error> {
    match outcome {
        Ok(Response::Stat(stat)) => Ok(Some(stat)),
        Err(Error::Keeper {
            code: ErrorCode::NoNode,
            ..
        }) => Ok(None),
        Ok(other) => Err(unexpected("exists", other)),
        Err(e) => Err(e),
    }
}

fn data_outcome(outcome: Result<Response, Error>) -> Result<(Vec<u8>, Stat), Error> {
    match outcome? {
        Response::Data { data, stat } => Ok((data, stat)),
        other => Err(unexpected("getData", other)),
    }
}

fn children_outcome(outcome: Result<Response, Error>) -> Result<(Vec<String>, Stat), Error> {
    match outcome? {
        Response::Children { children, stat } => Ok((children, stat)),
        other => Err(unexpected("getChildren", other)),
    }
}

/// Cannot happen: replies are decoded by the request they answer.
fn unexpected(op: &str, response: Response) -> Error {
    Error::Protocol {
        server: "-".into(),
        why: format!("{op} answered with {response:?}"),
    }
}
