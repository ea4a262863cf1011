//! What the store keeps on stable storage: the log records each role forces and the
//! checkpoint blobs. postcard-encoded; the storage layer frames, checksums and fsyncs them
//! and cuts a torn tail, so a record is either whole or absent after a crash.

use crate::proto::{Key, Mop, SnapshotId, SnapshotPart, TxnId, Value};
use machine::NodeId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The log both roles append to.
pub const LOG: &str = "txn";
/// The latest checkpoint: the role's state and where in the log replay starts.
pub const CHECKPOINT: &str = "checkpoint";
/// The boot counter, so message ids of different lives never collide.
pub const INCARNATION: &str = "incarnation";
/// A snapshot part a new participant starts from (copied from another cluster's
/// `snapshot-<id>` blob).
pub const RESTORE: &str = "restore";

/// The blob holding this node's part of snapshot `id`.
pub fn snapshot_blob(id: SnapshotId) -> String {
    format!("snapshot-{id}")
}

/// The snapshot id a blob name holds, if it is a snapshot part.
pub fn snapshot_of_blob(name: &str) -> Option<SnapshotId> {
    name.strip_prefix("snapshot-")?.parse().ok()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordRecord {
    Start {
        txn: TxnId,
        participants: Vec<NodeId>,
    },
    Commit {
        txn: TxnId,
        txn_marker: Option<SnapshotId>,
    },
    Abort {
        txn: TxnId,
    },
    /// Every participant acknowledged the decision: nobody needs this transaction again.
    End {
        txn: TxnId,
    },
    SnapshotBegin {
        snapshot: SnapshotId,
    },
    /// Written at boot: ids of life `incarnation` at or past log position `from` never had
    /// a durable `start` (the crash took them), so they cannot have been decided.
    Lost {
        incarnation: u32,
        from: u64,
    },
}

/// What a participant locked for a prepared transaction, and what it will write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    pub participants: Vec<NodeId>,
    /// Keys and whether the lock is exclusive.
    pub locks: Vec<(Key, bool)>,
    /// Final values, computed under the locks at prepare (a redo record).
    pub writes: Vec<(Key, Value)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartRecord {
    Yes {
        txn: TxnId,
        prepared: Prepared,
    },
    Commit {
        txn: TxnId,
    },
    Abort {
        txn: TxnId,
    },
    /// Ignite's ConsistentCutStartRecord: this node joined snapshot `snapshot` here. After
    /// a crash the node never joins it again (its part is lost; the snapshot fails).
    CutStart {
        snapshot: SnapshotId,
    },
}

/// A coordinator transaction as a checkpoint keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordTxnState {
    pub txn: TxnId,
    pub participants: Vec<NodeId>,
    /// `(commit, txn_marker)` once the decision record was appended.
    pub decision: Option<(bool, Option<SnapshotId>)>,
    pub acked: Vec<NodeId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordState {
    pub txns: Vec<CoordTxnState>,
    pub next_snapshot: SnapshotId,
    /// Per earlier life, the first log position its crash lost (see `CoordRecord::Lost`).
    pub lost: Vec<(u32, u64)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartState {
    pub kv: Vec<(Key, Value)>,
    pub applied: Vec<TxnId>,
    pub applied_truncated: bool,
    /// Decisions remembered for duplicates and the termination protocol.
    pub decided: Vec<(TxnId, bool)>,
    pub prepared: Vec<(TxnId, Prepared)>,
    /// Transactions below it were acknowledged by everyone (the coordinator says so).
    pub horizon: TxnId,
    pub last_snapshot: SnapshotId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoleState {
    Coordinator(CoordState),
    Participant(PartState),
}

/// One checkpoint: the state when it was taken, its index (communication-induced
/// checkpointing) and the log position replay starts from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub index: u64,
    pub log_pos: u64,
    pub state: RoleState,
}

/// Encodes a record or blob; our own types always encode.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("postcard encodes plain data")
}

/// Decodes what the disk held, naming it in the error.
pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("{what} is undecodable: {e}"))
}

/// The ops of a transaction a participant must run, split by shard. Keys are placed by
/// `key % participants`, so every node computes the same owner without a directory.
pub fn shard_of(key: Key, participants: &[NodeId]) -> NodeId {
    debug_assert!(!participants.is_empty());
    participants[(key % participants.len() as u64) as usize]
}

/// Groups `ops` by owning participant, keeping each shard's ops in request order.
pub fn split_by_shard(ops: &[Mop], participants: &[NodeId]) -> Vec<(NodeId, Vec<Mop>)> {
    let mut out: Vec<(NodeId, Vec<Mop>)> = Vec::new();
    for op in ops {
        let owner = shard_of(op.key(), participants);
        match out.iter_mut().find(|(n, _)| *n == owner) {
            Some((_, v)) => v.push(op.clone()),
            None => out.push((owner, vec![op.clone()])),
        }
    }
    out.sort_by_key(|(n, _)| *n);
    out
}

impl From<&SnapshotPart> for PartState {
    /// A restored shard: the snapshot's contents and nothing else.
    fn from(part: &SnapshotPart) -> PartState {
        PartState {
            kv: part.kv.clone(),
            ..PartState::default()
        }
    }
}
