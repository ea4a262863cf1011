//! What clients, nodes and the event log say: the client protocol, the peer messages (2PC,
//! the termination protocol, snapshot markers, checkpoint indices) and the recorded events.

use machine::NodeId;
use serde::{Deserialize, Serialize};

pub type Key = u64;
pub type Value = i64;
/// A transaction's id: the coordinator's boot count, then the log position of its `start`
/// record ([`txn_id`]). Ids grow with time and never repeat, even when a crash loses a
/// `start` record whose position the next life reuses, and need no counter of their own.
pub type TxnId = u64;

/// The boot count a transaction id carries.
pub fn txn_incarnation(txn: TxnId) -> u32 {
    (txn >> TXN_POSITION_BITS) as u32
}

/// The log position a transaction id carries.
pub fn txn_position(txn: TxnId) -> u64 {
    txn & ((1 << TXN_POSITION_BITS) - 1)
}

/// Bits of a transaction id that hold the log position.
pub const TXN_POSITION_BITS: u32 = 32;
/// Boots a coordinator may have: ids stay below 2^53, exact in every JSON reader.
pub const MAX_INCARNATION: u32 = (1 << (53 - TXN_POSITION_BITS)) - 1;

/// The id of the transaction whose `start` record sits at `position` in the log of the
/// coordinator's `incarnation`-th life; `None` past the position space.
pub fn txn_id(incarnation: u32, position: u64) -> Option<TxnId> {
    (position < 1 << TXN_POSITION_BITS && incarnation <= MAX_INCARNATION)
        .then(|| (u64::from(incarnation) << TXN_POSITION_BITS) | position)
}
pub type SnapshotId = u64;

/// One operation of a transaction. All of a transaction's operations are known when it
/// starts (one-shot transactions), so each shard runs its part in the prepare phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mop {
    Read {
        key: Key,
    },
    Write {
        key: Key,
        value: Value,
    },
    /// Adds `delta` to the key's value (absent counts as 0). A result below zero makes the
    /// shard vote no: a bank transfer cannot overdraw.
    Add {
        key: Key,
        delta: Value,
    },
}

impl Mop {
    pub fn key(&self) -> Key {
        match self {
            Mop::Read { key } | Mop::Write { key, .. } | Mop::Add { key, .. } => *key,
        }
    }
}

/// What clients ask. Transactions and snapshots go to the coordinator (node 1); state
/// queries go to the participant whose shard they concern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Txn {
        ops: Vec<Mop>,
    },
    /// Take a consistent-cut snapshot of every shard.
    Snapshot,
    /// This shard's contents and the transactions committed on it (also recorded as the
    /// node's `final-state` event).
    State,
    /// This shard's part of a finished snapshot, as it would be restored.
    SnapshotState {
        snapshot: SnapshotId,
    },
}

/// Why a transaction aborted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AbortCause {
    /// A participant voted no (lock conflict, overdraft, full, stale).
    VotedNo { node: NodeId, why: String },
    /// Some vote did not arrive in time.
    VoteTimeout,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Durably committed. `reads` answers the `Read`s in order.
    Committed {
        txn: TxnId,
        reads: Vec<(Key, Option<Value>)>,
    },
    /// Durably aborted: none of its effects exist anywhere, ever.
    Aborted {
        txn: TxnId,
        cause: AbortCause,
    },
    /// Not run at all (busy, malformed, wrong node).
    Refused {
        why: String,
    },
    SnapshotTaken {
        snapshot: SnapshotId,
    },
    /// The snapshot was abandoned (a node crashed during it, or it timed out).
    SnapshotFailed {
        snapshot: SnapshotId,
        why: String,
    },
    State {
        kv: Vec<(Key, Value)>,
        applied: Vec<TxnId>,
        /// More transactions committed than `TwoPcConfig::max_applied_listed`.
        applied_truncated: bool,
    },
    SnapshotState {
        snapshot: SnapshotId,
        /// `None`: this node has no finished part of that snapshot.
        part: Option<SnapshotPart>,
    },
}

/// One shard's part of a snapshot: what a restore loads, and the cut's two sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPart {
    pub kv: Vec<(Key, Value)>,
    pub before: Vec<TxnId>,
    pub after: Vec<TxnId>,
}

/// A message id, unique over the run: sender, its boot count, a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgId {
    pub node: NodeId,
    pub incarnation: u32,
    pub seq: u64,
}

impl std::fmt::Display for MsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}.{}.{}", self.node, self.incarnation, self.seq)
    }
}

/// Every peer message: the body, plus what recovery-line and checkpoint bookkeeping need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: MsgId,
    /// The sender's checkpoint index when it sent this (communication-induced
    /// checkpointing: a receiver behind takes a forced checkpoint before delivery).
    pub ckpt: u64,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// VOTE_REQ, with this shard's operations.
    Prepare {
        txn: TxnId,
        participants: Vec<NodeId>,
        ops: Vec<Mop>,
        horizon: TxnId,
        /// The running snapshot (Ignite's ConsistentCutMarker).
        marker: Option<SnapshotId>,
    },
    Vote {
        txn: TxnId,
        yes: bool,
        reads: Vec<(Key, Option<Value>)>,
        why: String,
    },
    /// COMMIT or ABORT.
    Decision {
        txn: TxnId,
        commit: bool,
        horizon: TxnId,
        marker: Option<SnapshotId>,
        /// The snapshot running when the coordinator decided: which side of its cut the
        /// transaction falls on.
        txn_marker: Option<SnapshotId>,
    },
    Ack {
        txn: TxnId,
    },
    /// The termination protocol: an in-doubt participant asks (naming the participants, so
    /// a coordinator that lost the transaction can abort it with all of them).
    DecisionReq {
        txn: TxnId,
        participants: Vec<NodeId>,
    },
    DecisionResp {
        txn: TxnId,
        commit: bool,
        txn_marker: Option<SnapshotId>,
    },
    /// The snapshot's broadcast (Ignite's discovery message), repeated until all finish.
    SnapshotStart {
        snapshot: SnapshotId,
        horizon: TxnId,
    },
    SnapshotFinished {
        snapshot: SnapshotId,
        ok: bool,
    },
}

/// A forced log record's name in the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordName {
    Start,
    Yes,
    Abort,
    Commit,
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VoteName {
    Yes,
    No,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Commit,
    Abort,
}

impl Decision {
    pub fn of(commit: bool) -> Decision {
        if commit {
            Decision::Commit
        } else {
            Decision::Abort
        }
    }
}

/// What a node records, in the event log format of `checkers::atomic_commit` (the runtime
/// adds `time` and `node`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Participants {
        txn: TxnId,
        nodes: Vec<String>,
    },
    Log {
        txn: TxnId,
        record: RecordName,
    },
    Vote {
        txn: TxnId,
        vote: VoteName,
    },
    Decide {
        txn: TxnId,
        decision: Decision,
    },
    /// A participant applied its part of a committed transaction.
    Commit {
        txn: TxnId,
    },
    SnapshotStart {
        snapshot: SnapshotId,
    },
    SnapshotFinish {
        snapshot: SnapshotId,
        before: Vec<TxnId>,
        after: Vec<TxnId>,
    },
    Checkpoint {
        id: u64,
    },
    Send {
        msg: String,
        to: String,
    },
    Receive {
        msg: String,
    },
    FinalState {
        applied: Vec<TxnId>,
    },
}

pub fn node_name(id: NodeId) -> String {
    format!("n{id}")
}
