//! What clients ask and are told, and what replicas broadcast and say to each other.
//!
//! A client sends a whole transaction in one request: micro-ops in Jepsen/Elle's shapes
//! (`[r k nil]`, `[w k v]`, `[append k v]`, see [`crate::json`] for the JSON form) and an id
//! of its own choosing, so that a history can name the transaction before any replica
//! answered (the one-copy checker links replicas' apply logs to the history by that id). The
//! replica it sent it to (the *delegate*) answers exactly once, with one of:
//! - [`Response::Committed`]: applied; the ops come back with read values filled in;
//! - [`Response::Aborted`]: certainly not applied anywhere, and why;
//! - [`Response::Unknown`]: it may or may not commit (the delegate lost its leader while the
//!   transaction was being broadcast);
//! - [`Response::Refused`]: not even started (not serving, malformed, too busy).
//!
//! Every answer names the replica that gave it, so a history says which node answered.

use machine::NodeId;
use serde::{Deserialize, Serialize};
use zab::ZabMsg;

pub type Key = u64;
/// A transaction's id, chosen by its client and unique within a run.
pub type TxnId = u64;
/// The database's version: how many update transactions it has committed. Every replica
/// that has applied the same prefix of the total order is at the same version, so a
/// snapshot named by its version means the same state everywhere.
pub type Version = u64;

/// A key's value: a list for list-append keys, an integer for rw-register keys. A key takes
/// the type of its first write; a later write of the other type aborts its transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Val {
    Int(i64),
    List(Vec<i64>),
}

/// One micro-op. Reads are sent with `value: None` and come back with what they read
/// (`None`: the key has never been written).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mop {
    Read { key: Key, value: Option<Val> },
    Write { key: Key, value: i64 },
    Append { key: Key, value: i64 },
}

impl Mop {
    pub fn key(&self) -> Key {
        match self {
            Mop::Read { key, .. } | Mop::Write { key, .. } | Mop::Append { key, .. } => *key,
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, Mop::Read { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Txn {
        id: TxnId,
        ops: Vec<Mop>,
    },
    /// A page of the replica's apply log from position `from` (positions count every
    /// transaction it ever applied).
    ApplyLog {
        from: u64,
    },
    /// A page of the replica's latest state, keys from `from_key` up.
    State {
        from_key: Key,
    },
    /// The replica's role and progress; answered even while it does not serve.
    Status,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Committed {
        id: TxnId,
        replica: NodeId,
        ops: Vec<Mop>,
    },
    Aborted {
        id: TxnId,
        replica: NodeId,
        reason: AbortReason,
    },
    Unknown {
        id: TxnId,
        replica: NodeId,
        why: Indeterminate,
    },
    Refused {
        /// The transaction refused, when the request was one.
        id: Option<TxnId>,
        replica: NodeId,
        why: Refusal,
    },
    ApplyLog {
        replica: NodeId,
        /// The position of `ids[0]`; below `start` the replica has forgotten its log.
        from: u64,
        start: u64,
        ids: Vec<TxnId>,
        /// The position after the last transaction applied: the log's length.
        end: u64,
    },
    State {
        replica: NodeId,
        version: Version,
        entries: Vec<(Key, Val)>,
        /// Where the next page starts; `None`: this was the last.
        next_key: Option<Key>,
    },
    Status {
        replica: NodeId,
        mode: String,
        leader: Option<NodeId>,
        serving: bool,
        version: Version,
        applied: u64,
    },
}

/// Why a transaction certainly did not commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AbortReason {
    #[error(
        "key {key} was read at a snapshot that a later commit overwrote (read-set validation)"
    )]
    ReadConflict { key: Key },
    #[error("key {key} was written by a transaction that committed first (first-committer-wins)")]
    WriteConflict { key: Key },
    #[error("key {key} holds the other type (a list and a register)")]
    WrongType { key: Key },
    #[error("the list at key {key} would exceed {max} elements")]
    ListTooLong { key: Key, max: usize },
    #[error("the database would exceed {max} keys")]
    TooManyKeys { max: usize },
    #[error("the database would exceed {max} elements")]
    TooLarge { max: usize },
    #[error("the snapshot's version of key {key} was garbage-collected")]
    SnapshotTooOld { key: Key },
    #[error("another transaction already used this id")]
    DuplicateId,
    #[error("the delegate did not decide in time; the leader aborted it")]
    DelegateSilent,
    #[error("too many transactions wait for a decision")]
    QueueFull,
    #[error("the leader refused to broadcast it: {0}")]
    NotBroadcast(String),
    #[error("the replica stopped serving before it was broadcast")]
    NotServing,
    #[error("a replica-local abort (planted bug nondeterministic-certification)")]
    LocalAbort,
    #[error("malformed: {0}")]
    Malformed(String),
}

/// Why a transaction's outcome is unknown to the replica that answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Indeterminate {
    #[error("the replica lost its leader while the transaction was being broadcast")]
    LeaderChanged,
}

/// Why a request was not even started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("not serving: no established leader, or catching up")]
    NotServing,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("too many transactions in progress at this replica ({max})")]
    Busy { max: usize },
    #[error("a transaction with this id is already in progress here")]
    DuplicatePending,
    #[error("the replica cannot trust its state: {0}")]
    Broken(String),
}

/// One change to one key, as broadcast in a write set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// A register write: the transaction's last value for the key.
    Set(i64),
    /// List appends, in the order the transaction made them; applied to the list as it is
    /// when the transaction commits.
    Append(Vec<i64>),
}

/// What a transaction changes, sorted by key, each key once.
pub type WriteSet = Vec<(Key, Update)>;

/// An executed transaction, ready to be certified: the certification and weak-voting
/// modes' broadcast.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certify {
    pub id: TxnId,
    pub delegate: NodeId,
    /// The version it read.
    pub snapshot: Version,
    /// Keys it read, sorted; empty when read sets are off (snapshot isolation).
    pub reads: Vec<Key>,
    pub writes: WriteSet,
}

/// What goes through the total order (Zab's transaction type).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Broadcast {
    /// certification: every replica certifies on delivery, deterministically.
    Certify(Certify),
    /// active: the whole transaction; every replica executes it on delivery.
    Execute {
        id: TxnId,
        delegate: NodeId,
        ops: Vec<Mop>,
    },
    /// weak-voting, first phase: the write set, held in delivery order until decided.
    Vote(Certify),
    /// weak-voting, second phase: the delegate's decision (or the leader's abort of a
    /// transaction whose delegate went silent). The first delivered for an id counts.
    Decision {
        id: TxnId,
        commit: bool,
        reason: Option<AbortReason>,
    },
    /// primary-copy: the primary's result, applied in order by everyone.
    Apply {
        id: TxnId,
        delegate: NodeId,
        writes: WriteSet,
        ops: Vec<Mop>,
    },
    /// lazy: a transaction the origin already committed, propagated afterwards.
    Lazy {
        id: TxnId,
        origin: NodeId,
        writes: WriteSet,
    },
}

impl Broadcast {
    pub fn id(&self) -> TxnId {
        match self {
            Broadcast::Certify(c) | Broadcast::Vote(c) => c.id,
            Broadcast::Execute { id, .. }
            | Broadcast::Decision { id, .. }
            | Broadcast::Apply { id, .. }
            | Broadcast::Lazy { id, .. } => *id,
        }
    }
}

/// What a follower and its leader say besides Zab's own messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppMsg {
    /// Follower to leader: put this into the total order.
    Propose(Broadcast),
    /// Follower to primary (primary-copy): execute this transaction for me.
    Execute { id: TxnId, ops: Vec<Mop> },
    /// Leader to follower: that transaction was not broadcast and never will be.
    Refused { id: TxnId, reason: AbortReason },
}

/// What replicas send each other: Zab carrying [`Broadcast`]s and [`AppMsg`]s.
pub type PeerMsg = ZabMsg<Broadcast, AppMsg>;
