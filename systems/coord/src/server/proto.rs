//! What clients and servers say on a client connection, and what servers say to each
//! other besides Zab's own messages.
//!
//! A client opens or resumes a session with `Connect`, then sends operations tagged with
//! its own `xid`; the server answers each exactly once, in the order they were sent (FIFO
//! client order), and pushes watch notifications in between. Every answer carries the
//! zxid of the server's state, so a client can refuse to go back in time when it moves to
//! another server.

use crate::api::{ErrorCode, Id, Reply, Request, SessionId, WatchEvent};
use crate::tree::Txn;
use crate::zab::{ZabMsg, Zxid};
use machine::NodeId;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// Opens a session (`session: None`) or resumes one. `last_zxid` is the newest state
    /// the client has seen; the server waits until it has applied that much.
    Connect {
        session: Option<SessionId>,
        timeout_ms: u64,
        last_zxid: Zxid,
    },
    Op {
        xid: u64,
        request: Request,
    },
    /// Keeps the session alive while the client is idle.
    Ping,
    /// Ends the session: its ephemerals are deleted.
    Close {
        xid: u64,
    },
    /// Asks the server about its role, without a session: for the harness's probes
    /// (readiness, which node leads). Answered even while the server is not current.
    Status,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    Connected {
        session: SessionId,
        timeout_ms: u64,
        zxid: Zxid,
    },
    /// The connection is refused; the server closes it. `ConnectionLoss`: try another
    /// server. `SessionExpired`: the session is gone for good.
    Refused {
        code: ErrorCode,
    },
    Reply {
        xid: u64,
        zxid: Zxid,
        result: Result<Reply, ErrorCode>,
    },
    Watch {
        event: WatchEvent,
    },
    Pong {
        zxid: Zxid,
    },
    Closed {
        xid: u64,
    },
    Status {
        id: NodeId,
        /// The leader this server follows or is, once known.
        leader: Option<NodeId>,
        /// Whether it is current and accepts clients.
        serving: bool,
        zxid: Zxid,
        epoch: u32,
    },
}

/// Which server's request a transaction answers: the server that will reply to its client
/// when it applies the commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub server: NodeId,
    pub req: u64,
}

/// What Zab broadcasts, and who asked for it (none for the leader's own, such as session
/// expiry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordTxn {
    pub origin: Option<Origin>,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A change to the tree.
    Tree(Txn),
    /// A sync: changes nothing, but commits only through a quorum of the leader's epoch,
    /// after everything proposed before it. So a read after it sees every write completed
    /// before the sync, even if the node answering thought it led but no longer did (a
    /// sync answered from the leader's memory alone would be stale there).
    Sync,
}

/// Server-to-server traffic on Zab's FIFO links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppMsg {
    /// A follower passes a client's write to the leader.
    Forward {
        req: u64,
        session: SessionId,
        auth: Vec<Id>,
        request: Request,
    },
    OpenSession {
        req: u64,
        timeout_ms: u64,
    },
    CloseSession {
        req: u64,
        session: SessionId,
    },
    /// The leader refused a forwarded request; nothing was proposed.
    Failed {
        req: u64,
        code: ErrorCode,
    },
    /// ZooKeeper's sync: the leader proposes a `Body::Sync` for it.
    Sync {
        req: u64,
    },
    /// Sessions whose clients were heard from, so the leader keeps them alive.
    Touch {
        sessions: Vec<SessionId>,
    },
}

/// What nodes of the coordination service send each other.
pub type PeerMsg = ZabMsg<CoordTxn, AppMsg>;
