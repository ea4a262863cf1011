//! Transactions: what the leader broadcasts and every replica applies.
//!
//! A request names what the client wants ("create `/lock-` sequential"); a transaction
//! says exactly what happens ("create `/lock-0000000007`, and the parent's cversion becomes
//! 8"). The leader alone decides this ([`prepare`](super::prepare())), against its committed
//! tree plus the changes it has proposed but not yet seen commit. Replicas then only
//! [`apply`](super::apply()) it: no choice is left to them, so they cannot diverge, and the
//! outcome does not depend on when a replica applies it. This is ZooKeeper's split between
//! `PrepRequestProcessor` (requests into idempotent txns) and `DataTree.processTxn`.
//!
//! Every value a transaction sets is carried whole (the new version, the parent's new
//! cversion), never as "+1", so that applying it cannot drift. The zxid is not carried: it
//! is the transaction's position in the log, given to `apply` alongside.

use crate::api::{Acl, ErrorCode, OpResult, Reply, SessionId};
use serde::{Deserialize, Serialize};

/// A transaction with the leader's clock when it prepared it. Every replica stamps ctime
/// and mtime from here, never from its own clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub time_ms: u64,
    pub op: TxnOp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// Records a new session and its negotiated timeout.
    CreateSession {
        session: SessionId,
        timeout_ms: u64,
    },
    /// Ends a session and deletes the ephemerals listed. The leader lists them when it
    /// prepares the close (as ZooKeeper 3.6's `CloseSessionTxn`), so every replica deletes
    /// the same set even if it would compute another. An empty list with ephemerals left
    /// is the "skip ephemeral cleanup" bug: they stay as orphans.
    CloseSession {
        session: SessionId,
        ephemerals: Vec<String>,
    },
    Create(CreateTxn),
    Delete(DeleteTxn),
    SetData(SetDataTxn),
    SetAcl(SetAclTxn),
    /// Every op applies, in order, at the same zxid.
    Multi(Vec<MultiTxnOp>),
    /// A multi that failed at prepare: changes nothing, and carries the per-op results for
    /// the reply. Broadcast like any other txn (ZooKeeper logs its error multi too), so
    /// that the reply reaches the client in order with its earlier writes.
    MultiError(Vec<OpResult>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTxn {
    /// The final path: a sequential create's suffix is already appended.
    pub path: String,
    pub data: Vec<u8>,
    /// Already fixed up: `auth` expanded, duplicates dropped.
    pub acl: Vec<Acl>,
    /// The owning session for an ephemeral, 0 for a persistent node.
    pub ephemeral_owner: SessionId,
    /// The parent's cversion after this create (ZooKeeper's `CreateTxn.parentCVersion`).
    pub parent_cversion: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTxn {
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetDataTxn {
    pub path: String,
    pub data: Vec<u8>,
    /// The data version after this write.
    pub version: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAclTxn {
    pub path: String,
    pub acl: Vec<Acl>,
    /// The ACL version after this write.
    pub aversion: i32,
}

/// A multi's version check: it passed at prepare, so applying it changes nothing; it is
/// kept so that the multi's results line up with its ops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckTxn {
    pub path: String,
}

/// The ops a multi may hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MultiTxnOp {
    Check(CheckTxn),
    Create(CreateTxn),
    Delete(DeleteTxn),
    SetData(SetDataTxn),
}

impl MultiTxnOp {
    /// The same change as a top-level op, so that one code path stages and applies both.
    pub fn as_op(&self) -> TxnOpRef<'_> {
        match self {
            MultiTxnOp::Check(t) => TxnOpRef::Check(t),
            MultiTxnOp::Create(t) => TxnOpRef::Create(t),
            MultiTxnOp::Delete(t) => TxnOpRef::Delete(t),
            MultiTxnOp::SetData(t) => TxnOpRef::SetData(t),
        }
    }
}

/// One node-level change, borrowed from a [`TxnOp`] or a [`MultiTxnOp`].
#[derive(Clone, Copy, Debug)]
pub enum TxnOpRef<'a> {
    Check(&'a CheckTxn),
    Create(&'a CreateTxn),
    Delete(&'a DeleteTxn),
    SetData(&'a SetDataTxn),
    SetAcl(&'a SetAclTxn),
}

/// What applying a transaction produced, for the server to pass on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnResult {
    /// A data op's reply, for the client that asked, if it is connected here. A failed
    /// multi is a `Reply::Multi` with errors in it.
    Reply(Reply),
    SessionCreated {
        session: SessionId,
    },
    /// The ephemerals actually deleted.
    SessionClosed {
        session: SessionId,
        deleted: Vec<String>,
    },
    /// The transaction did not fit the tree and changed nothing. Never happens to a
    /// transaction prepared against this tree's history; every replica reaches the same
    /// verdict, so they stay equal even then.
    Failed(ErrorCode),
}

impl TxnResult {
    /// The reply to the client, if the result is one: data ops' replies and errors.
    pub fn into_reply(self) -> Option<Result<Reply, ErrorCode>> {
        match self {
            TxnResult::Reply(reply) => Some(Ok(reply)),
            TxnResult::Failed(code) => Some(Err(code)),
            TxnResult::SessionCreated { .. } | TxnResult::SessionClosed { .. } => None,
        }
    }
}

/// The results of a multi whose op `failed_at` failed with `code`, as ZooKeeper reports
/// them: ops before it rolled back, ops after it not tried.
pub(crate) fn failed_multi_results(ops: usize, failed_at: usize, code: ErrorCode) -> Vec<OpResult> {
    assert!(failed_at < ops);
    (0..ops)
        .map(|i| match i.cmp(&failed_at) {
            std::cmp::Ordering::Less => OpResult::RolledBack,
            std::cmp::Ordering::Equal => OpResult::Error(code),
            std::cmp::Ordering::Greater => OpResult::Error(ErrorCode::RuntimeInconsistency),
        })
        .collect()
}
