//! [`CoordClient`]: an async client of the coordination service, one session per client.
//!
//! A background task owns the session (see [`session`]): it keeps one connection open at
//! a time, pipelines requests on it (the server answers them in order), pings at a third
//! of the session timeout, dispatches watch events in order with the answers, and moves to
//! another server when the connection breaks, resuming the session without going back in
//! time. Handles are cheap clones sharing that task; dropping the last one closes the
//! session (if it is connected then; otherwise the session is left to expire).
//!
//! Outcomes follow Jepsen: an error is *definite* when the operation certainly did not
//! take effect ([`CoordError::is_definite`]); a request in flight when a connection breaks
//! fails with `ConnectionLoss` and may have been applied, so callers decide how to find
//! out (the recipes look for their own nodes). `SessionExpired` is terminal: make a new
//! client.

mod conn;
mod error;
mod options;
mod session;
mod watch;

pub use error::{CoordError, ErrorKind, Server};
pub use options::{ConnectOptions, MAX_IN_FLIGHT, MAX_SERVERS, MAX_WATCHES};
pub use session::{Answer, ClientState};
pub use watch::{Watch, WatchKind, WatchResult};

use coord::api::{
    validate_path, validate_sequential_prefix, Acl, CreateFlags, CreateRequest, DeleteRequest,
    MultiOp, OpResult, Reply, Request, SessionId, SetDataRequest, Stat, Zxid, MAX_ACL_ENTRIES,
    MAX_DATA_BYTES, MAX_MULTI_OPS,
};
use session::{Command, Pending, SessionTask, Shared, WatchReg};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// A session with the coordination service. Clones share the session.
#[derive(Clone, Debug)]
pub struct CoordClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    opts: ConnectOptions,
}

type Result<T> = std::result::Result<T, CoordError>;

/// A value read, and the watch it set if one was asked for.
type Read<T> = Result<(T, Option<Watch>)>;

impl CoordClient {
    /// Opens a session on one of `servers`, trying them in turn (shuffled by
    /// `opts.seed`) for up to `opts.connect_timeout_ms`.
    pub async fn connect(servers: Vec<SocketAddr>, opts: ConnectOptions) -> Result<CoordClient> {
        let invalid = |why: String| CoordError::new("connect", None, ErrorKind::Invalid(why));
        opts.validate().map_err(invalid)?;
        if servers.is_empty() || servers.len() > MAX_SERVERS {
            let why = format!("{} servers, not 1..={MAX_SERVERS}", servers.len());
            return Err(invalid(why));
        }
        let servers = options::server_order(servers, opts.seed);
        let shared = Arc::new(Shared::new());
        let (tx, rx) = mpsc::channel(opts.max_in_flight);
        let mut task = SessionTask::new(servers, opts.clone(), shared.clone(), rx);
        let conn = task
            .establish()
            .await
            .map_err(|kind| CoordError::new("connect", None, kind))?;
        tokio::spawn(task.run(conn));
        let inner = Inner {
            commands: tx,
            shared,
            opts,
        };
        Ok(CoordClient {
            inner: Arc::new(inner),
        })
    }

    /// The session's id, as the server named it (the `ephemeral_owner` of its nodes).
    pub fn session_id(&self) -> SessionId {
        self.inner.shared.session()
    }

    /// The newest zxid this client has seen; a server it moves to must have applied it.
    pub fn last_zxid(&self) -> Zxid {
        self.inner.shared.last_zxid.load(Ordering::Acquire)
    }

    pub fn state(&self) -> ClientState {
        *self.inner.shared.state.borrow()
    }

    /// The server the session is connected to now, if any.
    pub fn server(&self) -> Option<SocketAddr> {
        match self.state() {
            ClientState::Connected(addr) => Some(addr),
            _ => None,
        }
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.inner.opts
    }

    /// Waits up to `timeout` for a state satisfying `pred`; the state reached, or `None`.
    pub async fn wait_for_state(
        &self,
        pred: impl FnMut(&ClientState) -> bool,
        timeout: Duration,
    ) -> Option<ClientState> {
        let mut rx = self.inner.shared.state.subscribe();
        let reached = match tokio::time::timeout(timeout, rx.wait_for(pred)).await {
            Ok(Ok(state)) => Some(*state),
            _ => None,
        };
        reached
    }

    /// Sends any request and returns the raw answer with the server's zxid. The typed
    /// methods below are built on it.
    pub async fn request(&self, request: Request) -> Result<Answer> {
        let op = describe(&request);
        check(&request).map_err(|why| CoordError::new(&op, None, ErrorKind::Invalid(why)))?;
        self.call(op, request, None).await.map(|(answer, _)| answer)
    }

    /// Creates a node; returns its path (with the sequence suffix, if any) and Stat.
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        flags: CreateFlags,
    ) -> Result<(String, Stat)> {
        let request = Request::Create(CreateRequest {
            path: path.to_string(),
            data: data.to_vec(),
            acl: acl.to_vec(),
            flags,
        });
        self.ask(request, None, |r| match r {
            Reply::Create { path, stat } => Ok((path, stat)),
            r => Err(r),
        })
        .await
        .map(|(v, _)| v)
    }

    /// Deletes a node if its data version is `version` (-1: any).
    pub async fn delete(&self, path: &str, version: i32) -> Result<()> {
        let request = Request::Delete(DeleteRequest {
            path: path.to_string(),
            version,
        });
        let deleted = self.ask(request, None, |r| match r {
            Reply::Delete => Ok(()),
            r => Err(r),
        });
        deleted.await.map(|(v, _)| v)
    }

    /// Replaces a node's data if its version is `version` (-1: any); returns the new Stat.
    pub async fn set_data(&self, path: &str, data: &[u8], version: i32) -> Result<Stat> {
        let request = Request::SetData(SetDataRequest {
            path: path.to_string(),
            data: data.to_vec(),
            version,
        });
        self.ask(request, None, stat_of).await.map(|(v, _)| v)
    }

    pub async fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat)> {
        let ((data, stat), _) = self.get_data_inner(path, None).await?;
        Ok((data, stat))
    }

    /// Reads a node and leaves a data watch on it: the watch fires at its next change
    /// (data changed, deleted).
    pub async fn get_data_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch)> {
        let ((data, stat), watch) = self.get_data_inner(path, Some(WatchKind::Data)).await?;
        Ok((data, stat, watch.expect("asked for")))
    }

    /// The node's Stat, `None` if it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        Ok(self.exists_inner(path, None).await?.0)
    }

    /// As `exists`, leaving a data watch even on a missing node: it fires when the node is
    /// created, changed or deleted.
    pub async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, Watch)> {
        let (stat, watch) = self.exists_inner(path, Some(WatchKind::Data)).await?;
        Ok((stat, watch.expect("asked for")))
    }

    /// The children's names, sorted, and the node's Stat.
    pub async fn get_children(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        Ok(self.get_children_inner(path, None).await?.0)
    }

    /// As `get_children`, leaving a child watch: it fires when a child is created or
    /// deleted, or the node itself is deleted.
    pub async fn get_children_watch(&self, path: &str) -> Result<(Vec<String>, Stat, Watch)> {
        let watch = Some(WatchKind::Child);
        let ((children, stat), watch) = self.get_children_inner(path, watch).await?;
        Ok((children, stat, watch.expect("asked for")))
    }

    /// Returns once the server has applied every write committed before the sync: a read
    /// after it sees them all.
    pub async fn sync(&self, path: &str) -> Result<()> {
        let request = Request::Sync {
            path: path.to_string(),
        };
        let synced = self.ask(request, None, |r| match r {
            Reply::Sync { .. } => Ok(()),
            r => Err(r),
        });
        synced.await.map(|(v, _)| v)
    }

    /// Applies all of `ops` at one zxid, or none. A failed multi is an error with the
    /// code of the first op that failed.
    pub async fn multi(&self, ops: Vec<MultiOp>) -> Result<Vec<OpResult>> {
        let n = ops.len();
        let answer = self.request(Request::Multi { ops }).await?;
        let op = format!("multi of {n}");
        match answer.reply {
            Reply::Multi { results } => match coord::api::multi_error(&results) {
                None => Ok(results),
                Some(code) => Err(CoordError::new(
                    op,
                    Some(answer.server),
                    ErrorKind::Server(code),
                )),
            },
            reply => Err(unexpected(op, reply, answer.server)),
        }
    }

    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat)> {
        let request = Request::GetAcl {
            path: path.to_string(),
        };
        let read = self.ask(request, None, |r| match r {
            Reply::GetAcl { acl, stat } => Ok((acl, stat)),
            r => Err(r),
        });
        read.await.map(|(v, _)| v)
    }

    /// Replaces a node's ACL if its ACL version is `version` (-1: any).
    pub async fn set_acl(&self, path: &str, acl: &[Acl], version: i32) -> Result<Stat> {
        let request = Request::SetAcl {
            path: path.to_string(),
            acl: acl.to_vec(),
            version,
        };
        self.ask(request, None, stat_of).await.map(|(v, _)| v)
    }

    /// Adds an identity to this connection, e.g. `("digest", b"user:password")`.
    ///
    /// Identities belong to the connection on the server: after the client moves to
    /// another server they are gone, as in ZooKeeper before it re-sends them; callers
    /// relying on them call this again after a `ConnectionLoss`.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<()> {
        let request = Request::AddAuth {
            scheme: scheme.to_string(),
            auth: auth.to_vec(),
        };
        let added = self.ask(request, None, |r| match r {
            Reply::AddAuth => Ok(()),
            r => Err(r),
        });
        added.await.map(|(v, _)| v)
    }

    /// Ends the session: its ephemeral nodes are deleted and its watches fail with
    /// `Closed`. Requests already sent are answered first.
    pub async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let deadline = Instant::now() + self.inner.opts.op_timeout();
        let timeout_ms = self.inner.opts.op_timeout_ms;
        let sent = tokio::time::timeout_at(deadline, self.inner.commands.send(Command::Close(tx)));
        match sent.await {
            Err(_) => return Err(self.error("close", ErrorKind::Busy(timeout_ms))),
            Ok(Err(_)) => return self.closed_already("close"),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => Err(self.error("close", ErrorKind::Timeout(timeout_ms))),
            Ok(Err(_)) => self.closed_already("close"),
            Ok(Ok(Err(f))) => Err(CoordError::new("close", f.server, f.kind)),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }

    /// Closing a closed client is fine; closing an expired one says so.
    fn closed_already(&self, op: &str) -> Result<()> {
        match self.terminal(op) {
            CoordError {
                kind: ErrorKind::Closed,
                ..
            } => Ok(()),
            e => Err(e),
        }
    }

    async fn get_data_inner(&self, path: &str, watch: Option<WatchKind>) -> Read<(Vec<u8>, Stat)> {
        let request = Request::GetData {
            path: path.to_string(),
            watch: watch.is_some(),
        };
        self.ask(request, watch, |r| match r {
            Reply::GetData { data, stat } => Ok((data, stat)),
            r => Err(r),
        })
        .await
    }

    async fn exists_inner(&self, path: &str, watch: Option<WatchKind>) -> Read<Option<Stat>> {
        let request = Request::Exists {
            path: path.to_string(),
            watch: watch.is_some(),
        };
        self.ask(request, watch, |r| match r {
            Reply::Exists { stat } => Ok(stat),
            r => Err(r),
        })
        .await
    }

    async fn get_children_inner(
        &self,
        path: &str,
        watch: Option<WatchKind>,
    ) -> Read<(Vec<String>, Stat)> {
        let request = Request::GetChildren {
            path: path.to_string(),
            watch: watch.is_some(),
        };
        self.ask(request, watch, |r| match r {
            Reply::GetChildren { children, stat } => Ok((children, stat)),
            r => Err(r),
        })
        .await
    }

    /// Checks and sends a request, then takes what `extract` expects from the reply; a
    /// reply of another kind is the server's protocol violation.
    async fn ask<T>(
        &self,
        request: Request,
        watch: Option<WatchKind>,
        extract: fn(Reply) -> std::result::Result<T, Reply>,
    ) -> Read<T> {
        let op = describe(&request);
        check(&request).map_err(|why| CoordError::new(&op, None, ErrorKind::Invalid(why)))?;
        let (answer, watch) = self.call(op.clone(), request, watch).await?;
        match extract(answer.reply) {
            Ok(value) => Ok((value, watch)),
            Err(reply) => Err(unexpected(op, reply, answer.server)),
        }
    }

    /// Hands a request to the session task and waits for its answer, all within the op
    /// timeout. `watch` asks for a watch on the request's path, registered if it succeeds.
    async fn call(
        &self,
        op: String,
        request: Request,
        watch: Option<WatchKind>,
    ) -> Result<(Answer, Option<Watch>)> {
        let deadline = Instant::now() + self.inner.opts.op_timeout();
        let timeout_ms = self.inner.opts.op_timeout_ms;
        let (watch, reg) = match (watch, request_path(&request)) {
            (Some(kind), Some(path)) => {
                let (w, tx) = Watch::new(path);
                let path = path.to_string();
                (Some(w), Some(WatchReg { kind, path, tx }))
            }
            _ => (None, None),
        };
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            request,
            watch: reg,
            reply: tx,
        };
        let sent =
            tokio::time::timeout_at(deadline, self.inner.commands.send(Command::Op(pending)));
        match sent.await {
            Err(_) => return Err(self.error(&op, ErrorKind::Busy(timeout_ms))),
            Ok(Err(_)) => return Err(self.terminal(&op)),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => Err(self.error(&op, ErrorKind::Timeout(timeout_ms))),
            Ok(Err(_)) => Err(self.terminal(&op)),
            Ok(Ok(Err(f))) => Err(CoordError::new(op, f.server, f.kind)),
            Ok(Ok(Ok(answer))) => Ok((answer, watch)),
        }
    }

    fn error(&self, op: &str, kind: ErrorKind) -> CoordError {
        CoordError::new(op, self.server(), kind)
    }

    /// The error for a request the session task will never answer.
    fn terminal(&self, op: &str) -> CoordError {
        match self.state() {
            ClientState::Expired => self.error(op, ErrorKind::SessionExpired(self.session_id())),
            _ => self.error(op, ErrorKind::Closed),
        }
    }
}

/// An answer of the wrong kind: the server broke the protocol, and the outcome is unknown.
fn unexpected(op: String, reply: Reply, server: SocketAddr) -> CoordError {
    let why = format!("answered with {reply:?}");
    CoordError::new(op, Some(server), ErrorKind::Unexpected(why))
}

fn stat_of(reply: Reply) -> std::result::Result<Stat, Reply> {
    match reply {
        Reply::SetData { stat } | Reply::SetAcl { stat } => Ok(stat),
        r => Err(r),
    }
}

/// Names a request for errors: the operation and its path.
fn describe(request: &Request) -> String {
    let name = match request {
        Request::Create(_) => "create",
        Request::Delete(_) => "delete",
        Request::SetData(_) => "set_data",
        Request::GetData { .. } => "get_data",
        Request::Exists { .. } => "exists",
        Request::GetChildren { .. } => "get_children",
        Request::Sync { .. } => "sync",
        Request::Multi { ops } => return format!("multi of {}", ops.len()),
        Request::GetAcl { .. } => "get_acl",
        Request::SetAcl { .. } => "set_acl",
        Request::AddAuth { scheme, .. } => return format!("add_auth {scheme}"),
        Request::SetWatches(w) => return format!("set_watches of {}", w.len()),
    };
    format!("{name} {}", request_path(request).unwrap_or(""))
}

fn request_path(request: &Request) -> Option<&str> {
    match request {
        Request::Create(c) => Some(&c.path),
        Request::Delete(d) => Some(&d.path),
        Request::SetData(s) => Some(&s.path),
        Request::GetData { path, .. }
        | Request::Exists { path, .. }
        | Request::GetChildren { path, .. }
        | Request::Sync { path }
        | Request::GetAcl { path }
        | Request::SetAcl { path, .. } => Some(path),
        Request::Multi { .. } | Request::AddAuth { .. } | Request::SetWatches(_) => None,
    }
}

/// Refuses, before sending, what the server would certainly refuse: bad paths, data or
/// ACLs over the limits. Saves a round trip and names the problem precisely.
fn check(request: &Request) -> std::result::Result<(), String> {
    match request {
        Request::Create(c) => check_create(c),
        Request::SetData(s) => check_data(&s.data).and(check_path(&s.path)),
        Request::SetAcl { path, acl, .. } => check_acl(acl).and(check_path(path)),
        Request::Multi { ops } => check_multi(ops),
        other => request_path(other).map_or(Ok(()), check_path),
    }
}

fn check_create(c: &CreateRequest) -> std::result::Result<(), String> {
    let path = if c.flags.sequence {
        validate_sequential_prefix(&c.path)
    } else {
        validate_path(&c.path)
    };
    path.map_err(|e| format!("path {:?}: {e}", c.path))?;
    check_data(&c.data)?;
    check_acl(&c.acl)
}

fn check_path(path: &str) -> std::result::Result<(), String> {
    validate_path(path).map_err(|e| format!("path {path:?}: {e}"))
}

fn check_data(data: &[u8]) -> std::result::Result<(), String> {
    if data.len() > MAX_DATA_BYTES {
        return Err(format!(
            "{} bytes of data, over {MAX_DATA_BYTES}",
            data.len()
        ));
    }
    Ok(())
}

fn check_acl(acl: &[Acl]) -> std::result::Result<(), String> {
    if acl.is_empty() || acl.len() > MAX_ACL_ENTRIES {
        return Err(format!(
            "{} ACL entries, not 1..={MAX_ACL_ENTRIES}",
            acl.len()
        ));
    }
    Ok(())
}

fn check_multi(ops: &[MultiOp]) -> std::result::Result<(), String> {
    if ops.len() > MAX_MULTI_OPS {
        return Err(format!("{} ops, over {MAX_MULTI_OPS}", ops.len()));
    }
    for op in ops {
        match op {
            MultiOp::Check(c) => check_path(&c.path)?,
            MultiOp::Create(c) => check_create(c)?,
            MultiOp::Delete(d) => check_path(&d.path)?,
            MultiOp::SetData(s) => check_data(&s.data).and(check_path(&s.path))?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_the_server_would_refuse_are_refused_before_sending() {
        let create = |path: &str, flags| {
            Request::Create(CreateRequest {
                path: path.into(),
                data: vec![],
                acl: Acl::open(),
                flags,
            })
        };
        assert!(check(&create("/a/", CreateFlags::SEQUENCE)).is_ok());
        assert!(check(&create("/a/", CreateFlags::PERSISTENT))
            .unwrap_err()
            .contains("\"/a/\""));
        let big = Request::SetData(SetDataRequest {
            path: "/a".into(),
            data: vec![0; MAX_DATA_BYTES + 1],
            version: -1,
        });
        assert!(check(&big).unwrap_err().contains("bytes of data"));
        let no_acl = Request::SetAcl {
            path: "/a".into(),
            acl: vec![],
            version: -1,
        };
        assert!(check(&no_acl).unwrap_err().contains("ACL entries"));
        assert_eq!(describe(&create("/x", CreateFlags::EPHEMERAL)), "create /x");
    }
}
