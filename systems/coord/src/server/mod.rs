//! The coordination server: Zab below, the data tree above, and client connections with
//! sessions, FIFO order and watches in between. This is the `Machine` the node binary and
//! the simulator run.
//!
//! How a request travels:
//! - **Reads** are answered from this server's tree once every earlier request of the same
//!   connection is answered, so a client reads its own writes and nothing older than what
//!   it saw (ZooKeeper's FIFO client order). Other clients' writes may not be here yet: reads
//!   are serializable, not linearizable.
//! - **Writes** go to the leader (directly, or forwarded over the Zab link), which prepares
//!   them against its tree plus outstanding proposals and broadcasts the transaction. Every
//!   server applies it at commit; the server that received the request answers it then.
//! - **Sync** goes to the leader like a write and is broadcast as a no-op: when this server
//!   applies it, it has applied everything committed before it, and its commit proves the
//!   leader still led (see `proto::Body::Sync`).
//! - **Sessions** are created and closed by transactions. The leader tracks their deadlines
//!   from the touches followers forward, and proposes the close of any it stops hearing of.
//!
//! A server that is not current (no leader, or syncing) refuses clients and closes those it
//! had: their outstanding requests are indeterminate, and they reconnect elsewhere.

pub mod config;
pub mod proto;
pub mod sessions;

use crate::api::{ErrorCode, Id, Reply, Request, RequestKind, SessionId};
use crate::tree::{
    self, prepare, prepare_close_session, prepare_create_session, Cleanup, Outstanding, Tree,
    TxnResult, Watches,
};
use crate::zab::{history::Entry, RoleChange, Zab, ZabEvent, ZabOut, Zxid};
use config::CoordConfig;
use machine::{Boot, BootError, ClientId, Durable, Effects, Input, Machine, NodeId};
use proto::{AppMsg, Body, ClientMsg, CoordTxn, Origin, PeerMsg, ServerMsg};
use sessions::Sessions;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// One request of a connection, waiting for its turn to be answered.
#[derive(Debug)]
enum Pending {
    Read {
        xid: u64,
        request: Request,
    },
    Auth {
        xid: u64,
        scheme: String,
        auth: Vec<u8>,
    },
    Write {
        xid: u64,
        req: u64,
        done: Option<Result<Reply, ErrorCode>>,
    },
    Sync {
        xid: u64,
        req: u64,
        path: String,
        done: bool,
    },
    Close {
        xid: u64,
        req: u64,
        done: bool,
    },
}

#[derive(Debug)]
enum ConnState {
    /// Its session's creation is under way (request id).
    Opening(u64),
    /// Resuming a session: waits until this server has applied `zxid`.
    CatchingUp {
        session: SessionId,
        zxid: Zxid,
        deadline_ms: u64,
    },
    Open(SessionId),
}

#[derive(Debug)]
struct Conn {
    state: ConnState,
    timeout_ms: u64,
    auth: Vec<Id>,
    queue: VecDeque<Pending>,
    /// Requests pipelined behind `Connect`, held until the session is open.
    early: VecDeque<(u64, Request)>,
}

/// One server of the coordination service.
#[derive(Debug)]
pub struct CoordServer {
    id: NodeId,
    cfg: CoordConfig,
    zab: Zab<CoordTxn, AppMsg>,
    tree: Tree,
    outstanding: Outstanding,
    watches: Watches<ClientId>,
    conns: BTreeMap<ClientId, Conn>,
    /// Request ids of this server's requests in flight, to the connection waiting.
    reqs: BTreeMap<u64, ClientId>,
    next_req: u64,
    sessions: Sessions,
    /// Sessions heard from since the last touch sent to the leader.
    touched: BTreeSet<SessionId>,
    touched_at_ms: u64,
    commits_since_snapshot: u64,
    /// This server's own requests the leader (this node) refused, to answer after the step.
    pending_failures: Vec<(u64, ErrorCode)>,
    /// Connections whose session just opened, with requests waiting in `early`.
    opened: Vec<ClientId>,
    /// Why this server can no longer be trusted to serve, if it cannot.
    broken: Option<String>,
    now_ms: u64,
}

impl Machine for CoordServer {
    type Config = CoordConfig;
    type Peer = PeerMsg;
    type Request = ClientMsg;
    type Response = ServerMsg;
    type Event = ();

    fn boot(
        boot: Boot<'_, CoordConfig>,
        durable: Durable,
        out: &mut Effects<Self>,
    ) -> Result<Self, BootError> {
        let mut zout = ZabOut::default();
        let (zab, _zxid, snapshot) = Zab::boot(
            boot.id,
            boot.members,
            boot.config.zab.clone(),
            boot.seed,
            &durable,
            boot.now_ms,
            &mut zout,
        )?;
        let tree = restore(&snapshot).map_err(|e| BootError(format!("snapshot: {e}")))?;
        let mut server = CoordServer {
            id: boot.id,
            cfg: boot.config.clone(),
            zab,
            tree,
            outstanding: Outstanding::new(),
            watches: Watches::new(),
            conns: BTreeMap::new(),
            reqs: BTreeMap::new(),
            next_req: 1,
            sessions: Sessions::default(),
            touched: BTreeSet::new(),
            touched_at_ms: boot.now_ms,
            commits_since_snapshot: 0,
            pending_failures: Vec::new(),
            opened: Vec::new(),
            broken: None,
            now_ms: boot.now_ms,
        };
        server.absorb(zout, out);
        Ok(server)
    }

    fn step(&mut self, now_ms: u64, input: Input<Self>, out: &mut Effects<Self>) {
        self.now_ms = now_ms;
        let mut zout = ZabOut::default();
        match input {
            Input::Peer { from, msg } => self.zab.step(now_ms, from, msg, &mut zout),
            Input::Persisted { token } => self.zab.persisted(now_ms, token, &mut zout),
            Input::Tick => {
                self.zab.tick(now_ms, &mut zout);
                self.absorb(zout, out);
                zout = ZabOut::default();
                self.on_tick(&mut zout, out);
            }
            Input::Request { client, req } => self.on_client(client, req, &mut zout, out),
            Input::Disconnected { client } => {
                self.conns.remove(&client);
                self.watches.remove_watcher(&client);
            }
        }
        self.absorb(zout, out);
    }
}

impl CoordServer {
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    pub fn zab(&self) -> &Zab<CoordTxn, AppMsg> {
        &self.zab
    }

    fn new_req(&mut self, client: ClientId) -> u64 {
        let req = self.next_req;
        self.next_req += 1;
        self.reqs.insert(req, client);
        req
    }

    fn origin(&self, req: u64) -> Origin {
        Origin {
            server: self.id,
            req,
        }
    }

    /// Carries out what Zab asked for and reacts to what it reported, in order.
    fn absorb(&mut self, zout: ZabOut<CoordTxn, AppMsg>, out: &mut Effects<Self>) {
        let ZabOut {
            sends,
            writes,
            events,
        } = zout;
        out.sends.extend(sends);
        out.writes.extend(writes);
        let mut more = ZabOut::default();
        let mut committed = false;
        for ev in events {
            match ev {
                ZabEvent::Commit(entry) => {
                    self.apply_commit(entry, out);
                    committed = true;
                }
                ZabEvent::Restore { bytes, .. } => match restore(&bytes) {
                    Ok(tree) => self.tree = tree,
                    Err(e) => {
                        // Untrustworthy state: stop serving rather than answer from it. The
                        // bad snapshot is on disk too, so a restart refuses to boot.
                        self.broken = Some(format!("the leader sent an unreadable snapshot: {e}"));
                        for client in std::mem::take(&mut self.conns).into_keys() {
                            out.close(client);
                        }
                    }
                },
                ZabEvent::App { from, msg } => self.on_app(from, msg, &mut more, out),
                ZabEvent::Role(change) => self.on_role(change, out),
            }
        }
        if committed {
            self.after_commits(&mut more, out);
        }
        for (req, code) in std::mem::take(&mut self.pending_failures) {
            self.complete(req, TxnResult::Failed(code), out);
        }
        for client in std::mem::take(&mut self.opened) {
            let early = match self.conns.get_mut(&client) {
                Some(conn) => std::mem::take(&mut conn.early),
                None => continue,
            };
            for (xid, request) in early {
                self.on_op(client, xid, request, &mut more, out);
            }
            self.flush(client, out);
        }
        if !(more.sends.is_empty() && more.writes.is_empty() && more.events.is_empty()) {
            self.absorb(more, out);
        }
    }

    fn on_role(&mut self, change: RoleChange, out: &mut Effects<Self>) {
        match change {
            RoleChange::Serving => {
                if self.zab.is_leading() {
                    self.sessions.reset(self.tree.sessions(), self.now_ms);
                }
            }
            RoleChange::Looking | RoleChange::Following { .. } | RoleChange::Leading { .. } => {
                // Whatever was in flight is indeterminate now: clients learn it by losing
                // their connection, and resume their sessions on a current server.
                for client in std::mem::take(&mut self.conns).into_keys() {
                    self.watches.remove_watcher(&client);
                    out.close(client);
                }
                self.reqs.clear();
                self.outstanding.clear();
            }
        }
    }

    fn apply_commit(&mut self, entry: Entry<CoordTxn>, out: &mut Effects<Self>) {
        if self.broken.is_some() {
            return;
        }
        let txn = match entry.txn.body {
            Body::Tree(txn) => txn,
            Body::Sync => {
                tree::skip(&mut self.tree, entry.zxid);
                if let Some(origin) = entry.txn.origin.filter(|o| o.server == self.id) {
                    self.sync_done(origin.req, out);
                }
                return;
            }
        };
        let (result, events) = tree::apply(&mut self.tree, entry.zxid, &txn);
        if self.zab.is_leading() {
            self.outstanding.commit(entry.zxid);
        }
        match &result {
            TxnResult::SessionCreated { session } => {
                let timeout = self.tree.session_timeout_ms(*session).unwrap_or(0);
                self.sessions.opened(*session, timeout, self.now_ms);
            }
            TxnResult::SessionClosed { session, .. } => {
                self.sessions.closed(*session);
                self.drop_session_conns(*session, entry.txn.origin, out);
            }
            _ => {}
        }
        // Notifications go out before any reply that could show the new value (ZooKeeper's
        // "a client sees the event before the change"): the writer's own reply, and reads
        // queued behind it, are flushed by `complete` below.
        for event in events {
            for client in self.watches.trigger(&event) {
                out.reply(
                    client,
                    ServerMsg::Watch {
                        event: event.clone(),
                    },
                );
            }
        }
        if let Some(origin) = entry.txn.origin.filter(|o| o.server == self.id) {
            self.complete(origin.req, result, out);
        }
        self.commits_since_snapshot += 1;
    }

    /// After a batch of commits: resume catching-up connections, snapshot.
    fn after_commits(&mut self, zout: &mut ZabOut<CoordTxn, AppMsg>, out: &mut Effects<Self>) {
        let committed = self.zab.committed();
        let catching: Vec<ClientId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.state, ConnState::CatchingUp { .. }))
            .map(|(id, _)| *id)
            .collect();
        for client in catching {
            self.try_resume(client, out);
        }
        if self.commits_since_snapshot >= self.cfg.snapshot_every {
            self.commits_since_snapshot = 0;
            debug_assert_eq!(self.tree.last_zxid(), committed);
            self.zab.take_snapshot(self.tree.to_snapshot(), zout);
        }
    }

    /// Closes the connections of a session that ended, except the one that closed it
    /// (it gets its answer first).
    fn drop_session_conns(
        &mut self,
        session: SessionId,
        origin: Option<Origin>,
        out: &mut Effects<Self>,
    ) {
        let asker = origin
            .filter(|o| o.server == self.id)
            .and_then(|o| self.reqs.get(&o.req).copied());
        let gone: Vec<ClientId> = self
            .conns
            .iter()
            .filter(|(id, c)| {
                matches!(c.state, ConnState::Open(s) if s == session) && Some(**id) != asker
            })
            .map(|(id, _)| *id)
            .collect();
        for client in gone {
            self.conns.remove(&client);
            self.watches.remove_watcher(&client);
            out.close(client);
        }
    }

    /// This server's request `req` got its outcome: mark it done and answer what can be.
    fn complete(&mut self, req: u64, result: TxnResult, out: &mut Effects<Self>) {
        let Some(client) = self.reqs.remove(&req) else {
            return; // Its client has gone.
        };
        let Some(conn) = self.conns.get_mut(&client) else {
            return;
        };
        if let ConnState::Opening(r) = conn.state {
            if r == req {
                match result {
                    TxnResult::SessionCreated { session } => {
                        conn.state = ConnState::Open(session);
                        self.opened.push(client);
                        let msg = ServerMsg::Connected {
                            session,
                            timeout_ms: conn.timeout_ms,
                            zxid: self.tree.last_zxid(),
                        };
                        out.reply(client, msg);
                    }
                    other => {
                        let code = match other {
                            TxnResult::Failed(code) => code,
                            _ => ErrorCode::SystemError,
                        };
                        self.refuse(client, code, out);
                    }
                }
                return;
            }
        }
        let outcome = match result {
            TxnResult::Reply(r) => Ok(r),
            TxnResult::Failed(code) => Err(code),
            TxnResult::SessionClosed { .. } => Ok(Reply::Delete),
            TxnResult::SessionCreated { .. } => Err(ErrorCode::SystemError),
        };
        // Answers may arrive out of order (a refusal overtakes an earlier write's commit);
        // the queue puts them back in order.
        let conn = self.conns.get_mut(&client).expect("checked above");
        for p in conn.queue.iter_mut() {
            match p {
                Pending::Write { req: r, done, .. } if *r == req => {
                    *done = Some(outcome);
                    break;
                }
                Pending::Close { req: r, done, .. } if *r == req => {
                    *done = true;
                    break;
                }
                _ => {}
            }
        }
        self.flush(client, out);
    }

    /// Answers, in order, every request at the head of the connection's queue that can be.
    fn flush(&mut self, client: ClientId, out: &mut Effects<Self>) {
        let zxid = self.tree.last_zxid();
        loop {
            let Some(conn) = self.conns.get_mut(&client) else {
                return;
            };
            let Some(head) = conn.queue.front() else {
                return;
            };
            let msg = match head {
                Pending::Read {
                    xid,
                    request: Request::SetWatches(set),
                } => {
                    let result =
                        match tree::set_watches(&self.tree, &mut self.watches, &client, set) {
                            Ok(fired) => {
                                for event in fired {
                                    out.reply(client, ServerMsg::Watch { event });
                                }
                                Ok(Reply::SetWatches)
                            }
                            Err(code) => Err(code),
                        };
                    ServerMsg::Reply {
                        xid: *xid,
                        zxid,
                        result,
                    }
                }
                Pending::Read { xid, request } => {
                    let result =
                        tree::read(&self.tree, &mut self.watches, &client, &conn.auth, request);
                    ServerMsg::Reply {
                        xid: *xid,
                        zxid,
                        result,
                    }
                }
                Pending::Auth { xid, scheme, auth } => {
                    let result = tree::acl::authenticate(scheme, auth, None).map(|ids| {
                        conn.auth.extend(ids);
                        Reply::AddAuth
                    });
                    ServerMsg::Reply {
                        xid: *xid,
                        zxid,
                        result,
                    }
                }
                Pending::Write {
                    xid,
                    done: Some(result),
                    ..
                } => ServerMsg::Reply {
                    xid: *xid,
                    zxid,
                    result: result.clone(),
                },
                Pending::Sync {
                    xid,
                    path,
                    done: true,
                    ..
                } => ServerMsg::Reply {
                    xid: *xid,
                    zxid,
                    result: Ok(Reply::Sync { path: path.clone() }),
                },
                Pending::Close {
                    xid, done: true, ..
                } => {
                    let xid = *xid;
                    out.reply(client, ServerMsg::Closed { xid });
                    out.close(client);
                    self.conns.remove(&client);
                    self.watches.remove_watcher(&client);
                    return;
                }
                _ => return,
            };
            conn.queue.pop_front();
            out.reply(client, msg);
        }
    }

    fn refuse(&mut self, client: ClientId, code: ErrorCode, out: &mut Effects<Self>) {
        out.reply(client, ServerMsg::Refused { code });
        out.close(client);
        self.conns.remove(&client);
        self.watches.remove_watcher(&client);
    }

    fn on_client(
        &mut self,
        client: ClientId,
        msg: ClientMsg,
        zout: &mut ZabOut<CoordTxn, AppMsg>,
        out: &mut Effects<Self>,
    ) {
        if msg == ClientMsg::Status {
            let status = ServerMsg::Status {
                id: self.id,
                leader: self.zab.leader(),
                serving: self.zab.is_serving() && self.broken.is_none(),
                zxid: self.tree.last_zxid(),
                epoch: self.zab.current_epoch(),
            };
            return out.reply(client, status);
        }
        if !self.zab.is_serving() || self.broken.is_some() {
            return self.refuse(client, ErrorCode::ConnectionLoss, out);
        }
        match msg {
            ClientMsg::Connect {
                session,
                timeout_ms,
                last_zxid,
            } => self.on_connect(client, session, timeout_ms, last_zxid, zout, out),
            ClientMsg::Ping => {
                if let Some(s) = self.open_session(client) {
                    self.touch(s);
                }
                let zxid = self.tree.last_zxid();
                out.reply(client, ServerMsg::Pong { zxid });
            }
            ClientMsg::Op { xid, request } => self.on_op(client, xid, request, zout, out),
            ClientMsg::Status => unreachable!("answered above"),
            ClientMsg::Close { xid } => {
                let Some(session) = self.open_session(client) else {
                    return self.refuse(client, ErrorCode::SessionExpired, out);
                };
                let req = self.new_req(client);
                self.push(
                    client,
                    Pending::Close {
                        xid,
                        req,
                        done: false,
                    },
                    out,
                );
                let origin = self.origin(req);
                if self.zab.is_leading() {
                    self.lead_close(origin, session, Cleanup::DeleteEphemerals, zout);
                } else {
                    self.forward(origin, AppMsg::CloseSession { req, session }, zout);
                }
            }
        }
        self.flush(client, out);
    }

    fn open_session(&self, client: ClientId) -> Option<SessionId> {
        match self.conns.get(&client)?.state {
            ConnState::Open(s) => Some(s),
            _ => None,
        }
    }

    fn push(&mut self, client: ClientId, p: Pending, out: &mut Effects<Self>) {
        let limit = self.cfg.max_pending_per_client;
        let Some(conn) = self.conns.get_mut(&client) else {
            return;
        };
        if conn.queue.len() >= limit {
            // Answering out of order would break FIFO order; the client must slow down.
            return self.refuse(client, ErrorCode::Throttled, out);
        }
        conn.queue.push_back(p);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_connect(
        &mut self,
        client: ClientId,
        session: Option<SessionId>,
        timeout_ms: u64,
        last_zxid: Zxid,
        zout: &mut ZabOut<CoordTxn, AppMsg>,
        out: &mut Effects<Self>,
    ) {
        if self.conns.contains_key(&client) {
            return self.refuse(client, ErrorCode::BadArguments, out);
        }
        let timeout_ms = timeout_ms.clamp(
            self.cfg.min_session_timeout_ms,
            self.cfg.max_session_timeout_ms,
        );
        let state = match session {
            None => {
                let req = self.new_req(client);
                ConnState::Opening(req)
            }
            Some(session) => ConnState::CatchingUp {
                session,
                zxid: last_zxid,
                deadline_ms: self.now_ms + timeout_ms,
            },
        };
        let opening = match state {
            ConnState::Opening(req) => Some(req),
            _ => None,
        };
        self.conns.insert(
            client,
            Conn {
                state,
                timeout_ms,
                auth: Vec::new(),
                queue: VecDeque::new(),
                early: VecDeque::new(),
            },
        );
        match opening {
            Some(req) => {
                let origin = self.origin(req);
                if self.zab.is_leading() {
                    self.lead_open(origin, timeout_ms, zout);
                } else {
                    self.forward(origin, AppMsg::OpenSession { req, timeout_ms }, zout);
                }
            }
            None => self.try_resume(client, out),
        }
    }

    /// A resuming client waits until this server has seen what it saw.
    fn try_resume(&mut self, client: ClientId, out: &mut Effects<Self>) {
        let Some(conn) = self.conns.get_mut(&client) else {
            return;
        };
        let ConnState::CatchingUp {
            session,
            zxid,
            deadline_ms,
        } = conn.state
        else {
            return;
        };
        if self.tree.last_zxid() < zxid {
            if self.now_ms > deadline_ms {
                self.refuse(client, ErrorCode::ConnectionLoss, out);
            }
            return;
        }
        match self.tree.session_timeout_ms(session) {
            None => self.refuse(client, ErrorCode::SessionExpired, out),
            Some(timeout_ms) => {
                conn.state = ConnState::Open(session);
                conn.timeout_ms = timeout_ms;
                self.opened.push(client);
                let zxid = self.tree.last_zxid();
                out.reply(
                    client,
                    ServerMsg::Connected {
                        session,
                        timeout_ms,
                        zxid,
                    },
                );
                self.touch(session);
            }
        }
    }

    fn on_op(
        &mut self,
        client: ClientId,
        xid: u64,
        request: Request,
        zout: &mut ZabOut<CoordTxn, AppMsg>,
        out: &mut Effects<Self>,
    ) {
        let limit = self.cfg.max_pending_per_client;
        let session = match self.conns.get_mut(&client) {
            Some(Conn {
                state: ConnState::Open(s),
                ..
            }) => *s,
            Some(conn) if conn.early.len() < limit => {
                // Sent right behind Connect: answered once the session is open.
                return conn.early.push_back((xid, request));
            }
            _ => return self.refuse(client, ErrorCode::SessionExpired, out),
        };
        self.touch(session);
        match request.kind() {
            RequestKind::Read => self.push(client, Pending::Read { xid, request }, out),
            RequestKind::Auth => {
                let Request::AddAuth { scheme, auth } = request else {
                    unreachable!("kind() says auth")
                };
                self.push(client, Pending::Auth { xid, scheme, auth }, out);
            }
            RequestKind::Sync => {
                let Request::Sync { path } = request else {
                    unreachable!("kind() says sync")
                };
                let stale = self.cfg.bugs.stale_sync;
                let req = self.new_req(client);
                let pending = Pending::Sync {
                    xid,
                    req,
                    path,
                    done: stale,
                };
                self.push(client, pending, out);
                if stale {
                    self.reqs.remove(&req);
                    return;
                }
                let origin = self.origin(req);
                if self.zab.is_leading() {
                    self.propose(Some(origin), Body::Sync, zout);
                } else {
                    self.forward(origin, AppMsg::Sync { req }, zout);
                }
            }
            RequestKind::Write => {
                let req = self.new_req(client);
                self.push(
                    client,
                    Pending::Write {
                        xid,
                        req,
                        done: None,
                    },
                    out,
                );
                let auth = self
                    .conns
                    .get(&client)
                    .map(|c| c.auth.clone())
                    .unwrap_or_default();
                let origin = self.origin(req);
                if self.zab.is_leading() {
                    self.lead_write(origin, session, &auth, &request, zout);
                } else {
                    let msg = AppMsg::Forward {
                        req,
                        session,
                        auth,
                        request,
                    };
                    self.forward(origin, msg, zout);
                }
            }
        }
    }

    /// Sends a request to the leader; without a link to one, it fails as a lost connection.
    fn forward(&mut self, origin: Origin, msg: AppMsg, zout: &mut ZabOut<CoordTxn, AppMsg>) {
        let sent = match self.zab.leader() {
            Some(leader) => self.zab.send_app(leader, msg, zout),
            None => false,
        };
        if !sent {
            self.fail(origin, ErrorCode::ConnectionLoss, zout);
        }
    }

    fn touch(&mut self, session: SessionId) {
        if self.zab.is_leading() {
            self.sessions.touch(session, self.now_ms);
        } else {
            self.touched.insert(session);
        }
    }

    fn on_tick(&mut self, zout: &mut ZabOut<CoordTxn, AppMsg>, out: &mut Effects<Self>) {
        let now = self.now_ms;
        if self.zab.is_leading() && self.zab.is_serving() {
            let cleanup = if self.cfg.bugs.skip_ephemeral_cleanup {
                Cleanup::KeepEphemerals
            } else {
                Cleanup::DeleteEphemerals
            };
            for session in self.sessions.expire(now) {
                if !self.lead_close_expired(session, cleanup, zout) {
                    self.sessions.retry(session);
                }
            }
        } else if now.saturating_sub(self.touched_at_ms) >= self.cfg.touch_interval_ms {
            self.touched_at_ms = now;
            if let (Some(leader), false) = (self.zab.leader(), self.touched.is_empty()) {
                let sessions: Vec<SessionId> =
                    std::mem::take(&mut self.touched).into_iter().collect();
                self.zab.send_app(leader, AppMsg::Touch { sessions }, zout);
            }
        }
        let catching: Vec<ClientId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.state, ConnState::CatchingUp { .. }))
            .map(|(id, _)| *id)
            .collect();
        for client in catching {
            self.try_resume(client, out);
        }
    }

    // ---- Leader side --------------------------------------------------------------------

    fn on_app(
        &mut self,
        from: NodeId,
        msg: AppMsg,
        zout: &mut ZabOut<CoordTxn, AppMsg>,
        out: &mut Effects<Self>,
    ) {
        match msg {
            AppMsg::Forward {
                req,
                session,
                auth,
                request,
            } => {
                let origin = Origin { server: from, req };
                self.lead_write(origin, session, &auth, &request, zout);
            }
            AppMsg::OpenSession { req, timeout_ms } => {
                self.lead_open(Origin { server: from, req }, timeout_ms, zout);
            }
            AppMsg::CloseSession { req, session } => {
                let origin = Origin { server: from, req };
                self.lead_close(origin, session, Cleanup::DeleteEphemerals, zout);
            }
            AppMsg::Sync { req } => {
                self.propose(Some(Origin { server: from, req }), Body::Sync, zout);
            }
            AppMsg::Touch { sessions } => {
                for s in sessions {
                    self.sessions.touch(s, self.now_ms);
                }
            }
            AppMsg::Failed { req, code } => self.complete(req, TxnResult::Failed(code), out),
        }
    }

    fn lead_write(
        &mut self,
        origin: Origin,
        session: SessionId,
        auth: &[Id],
        request: &Request,
        zout: &mut ZabOut<CoordTxn, AppMsg>,
    ) {
        let Some(zxid) = self.zab.next_zxid() else {
            return self.fail(origin, ErrorCode::ConnectionLoss, zout);
        };
        let prepared = prepare(
            &self.tree,
            &self.outstanding,
            session,
            auth,
            request,
            zxid,
            self.now_ms,
        );
        self.propose_prepared(origin, prepared, zout);
    }

    fn lead_open(&mut self, origin: Origin, timeout_ms: u64, zout: &mut ZabOut<CoordTxn, AppMsg>) {
        let Some(zxid) = self.zab.next_zxid() else {
            return self.fail(origin, ErrorCode::ConnectionLoss, zout);
        };
        // The zxid of its creation names the session: unique, and the same on every replica.
        self.propose_prepared(
            origin,
            prepare_create_session(&self.tree, &self.outstanding, zxid, timeout_ms, self.now_ms),
            zout,
        );
    }

    fn lead_close(
        &mut self,
        origin: Origin,
        session: SessionId,
        cleanup: Cleanup,
        zout: &mut ZabOut<CoordTxn, AppMsg>,
    ) {
        self.propose_prepared(
            origin,
            prepare_close_session(&self.tree, &self.outstanding, session, cleanup, self.now_ms),
            zout,
        );
    }

    /// Proposes the close of an expired session; false if it could not be proposed now.
    fn lead_close_expired(
        &mut self,
        session: SessionId,
        cleanup: Cleanup,
        zout: &mut ZabOut<CoordTxn, AppMsg>,
    ) -> bool {
        match prepare_close_session(&self.tree, &self.outstanding, session, cleanup, self.now_ms) {
            Ok(txn) => self.propose(None, Body::Tree(txn), zout),
            Err(_) => false,
        }
    }

    /// Proposes what `prepare` made of a request, or answers its refusal.
    fn propose_prepared(
        &mut self,
        origin: Origin,
        prepared: Result<crate::tree::Txn, ErrorCode>,
        zout: &mut ZabOut<CoordTxn, AppMsg>,
    ) {
        match prepared {
            Ok(txn) => {
                self.propose(Some(origin), Body::Tree(txn), zout);
            }
            Err(code) => self.fail(origin, code, zout),
        }
    }

    fn propose(
        &mut self,
        origin: Option<Origin>,
        body: Body,
        zout: &mut ZabOut<CoordTxn, AppMsg>,
    ) -> bool {
        let entry = CoordTxn { origin, body };
        match self.zab.propose(entry.clone(), zout) {
            Ok(zxid) => {
                if let Body::Tree(txn) = &entry.body {
                    if let Err(code) = self.outstanding.propose(&self.tree, zxid, txn) {
                        // Prepared against this very view: only a bug in prepare gets here.
                        panic!(
                            "node {}: a freshly prepared txn does not fit: {code}",
                            self.id
                        );
                    }
                }
                true
            }
            Err(e) => {
                let code = match e {
                    crate::zab::ProposeError::Busy => ErrorCode::Throttled,
                    _ => ErrorCode::ConnectionLoss,
                };
                if let Some(origin) = origin {
                    self.fail(origin, code, zout);
                }
                false
            }
        }
    }

    fn fail(&mut self, origin: Origin, code: ErrorCode, zout: &mut ZabOut<CoordTxn, AppMsg>) {
        if origin.server == self.id {
            // Answered after this step's effects, through the connection's queue.
            self.pending_failures.push((origin.req, code));
        } else {
            self.zab.send_app(
                origin.server,
                AppMsg::Failed {
                    req: origin.req,
                    code,
                },
                zout,
            );
        }
    }

    fn sync_done(&mut self, req: u64, out: &mut Effects<Self>) {
        let Some(client) = self.reqs.remove(&req) else {
            return;
        };
        if let Some(conn) = self.conns.get_mut(&client) {
            let waiting = conn
                .queue
                .iter_mut()
                .find(|p| matches!(p, Pending::Sync { req: r, .. } if *r == req));
            if let Some(Pending::Sync { done, .. }) = waiting {
                *done = true;
            }
        }
        self.flush(client, out);
    }
}

fn restore(bytes: &[u8]) -> Result<Tree, String> {
    if bytes.is_empty() {
        return Ok(Tree::new());
    }
    Tree::from_snapshot(bytes).map_err(|e| e.to_string())
}
