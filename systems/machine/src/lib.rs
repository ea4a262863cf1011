//! The contract between a reference system's protocol core and whatever drives it.
//!
//! A core is a deterministic state machine: peer messages, client requests, timer ticks and
//! disk completions go in; messages to send, durable writes and replies come out. It never
//! touches a socket, a file or a clock. Two runtimes drive the same core: the tokio driver
//! in `faultline-node` (real TCP, real files, real fsync) and the seeded simulator in
//! `faultline-sim` (a virtual network and disk that drop, delay, reorder, partition, crash
//! and lose unsynced writes). Because the core is the same code in both, a bug the
//! simulator finds is a bug in the deployed node, and a failing seed replays exactly.
//!
//! Rules both runtimes keep, and cores may rely on:
//! - `step` calls for one node never overlap, and `now_ms` is the node's clock when the input
//!   arrived. It may jump either way (clock faults), so cores measure intervals with
//!   saturating arithmetic and never assume it is monotonic.
//! - Disk writes are carried out in the order they were emitted. `Input::Persisted(token)`
//!   arrives only once that write, and every write emitted before it, is durable. A write is
//!   not atomic: a crash keeps a prefix of the ops not yet reported persisted, across writes,
//!   logs and blobs, and may tear the first op it loses (a prefix of an append's records,
//!   a tail cut at some length at or above the one asked for). Recovery never yields
//!   anything but such a prefix.
//! - Messages between two nodes may be lost, delayed, duplicated or reordered, and are
//!   framed with [`wire`] (postcard) within `MAX_MESSAGE_BYTES`. A reply is delivered to its
//!   client at most once, in emission order, while it stays connected. `Disconnected`
//!   reports a connection the client or the network closed, never one the core closed.
//! - Ticks come every `TICK_MS` of the node's clock while it runs; ticks missed during a
//!   pause are not replayed.
//! - On restart a node is booted afresh from `Durable`, what its disk held; nothing else of
//!   its memory survives.

pub mod event_line;
pub mod wire;

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// A cluster member. Nodes are numbered from 1 (`n1`, `n2`, ...) as the harness names them.
pub type NodeId = u32;

/// One client connection to one node, numbered by the runtime. A reconnecting client gets a
/// new id; sessions that outlive connections are the protocol's business.
pub type ClientId = u64;

/// How often the runtimes deliver `Input::Tick`. Timeouts are multiples of it.
pub const TICK_MS: u64 = 10;

/// Upper bound of one log record or peer message, so a corrupt length prefix or a hostile
/// peer cannot make a node allocate without limit.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

/// Upper bound of one peer message or client frame on the wire.
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// Upper bound of one blob (snapshots, metadata).
pub const MAX_BLOB_BYTES: usize = 256 << 20;

/// Upper bound of the length of a log or blob name (they become file names).
pub const MAX_NAME_LEN: usize = 32;

/// A deterministic protocol core.
pub trait Machine: Sized {
    /// Settings fixed for a node's life: timeouts, bug switches.
    type Config: Clone + Debug;
    /// What nodes say to each other.
    type Peer: Clone + Debug + Serialize + DeserializeOwned;
    /// What clients ask.
    type Request: Clone + Debug + Serialize + DeserializeOwned;
    /// What nodes tell clients: replies and pushed events such as watch notifications.
    type Response: Clone + Debug + Serialize + DeserializeOwned;
    /// What a node records for checkers that read a system's own event log (votes,
    /// decisions, forced log records, checkpoints, messages). Each serializes to a JSON
    /// object; the runtime adds `time` and `node`. Cores with nothing to record use `()`,
    /// which the runtimes never write.
    type Event: Clone + Debug + Serialize;

    /// Starts a node from what its disk holds (nothing on first boot). Fails when the disk
    /// holds something the core cannot trust; the runtime then refuses to start the node.
    fn boot(
        boot: Boot<'_, Self::Config>,
        durable: Durable,
        out: &mut Effects<Self>,
    ) -> Result<Self, BootError>;

    /// Handles one input at `now_ms`, appending what it causes to `out`.
    fn step(&mut self, now_ms: u64, input: Input<Self>, out: &mut Effects<Self>);
}

/// What a node knows when it starts.
#[derive(Clone, Debug)]
pub struct Boot<'a, C> {
    pub id: NodeId,
    /// Every member of the cluster, this node included, in ascending order.
    pub members: &'a [NodeId],
    pub config: &'a C,
    /// The node's own seed, for randomized timeouts; derived from the run's seed.
    pub seed: u64,
    pub now_ms: u64,
}

/// Why a node refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot boot from this disk: {0}")]
pub struct BootError(pub String);

/// One input to a core.
#[derive(Debug)]
pub enum Input<M: Machine> {
    Peer {
        from: NodeId,
        msg: M::Peer,
    },
    Request {
        client: ClientId,
        req: M::Request,
    },
    /// The client's connection closed; replies to it are dropped from now on.
    Disconnected {
        client: ClientId,
    },
    Tick,
    /// The write with this token, and all before it, are durable.
    Persisted {
        token: u64,
    },
}

/// What one step asks the runtime to do.
#[derive(Debug)]
pub struct Effects<M: Machine> {
    pub sends: Vec<(NodeId, M::Peer)>,
    pub replies: Vec<(ClientId, M::Response)>,
    pub writes: Vec<Write>,
    /// Connections the core wants closed (after their pending replies).
    pub closes: Vec<ClientId>,
    /// Things that happened, in order, for the node's event log.
    pub events: Vec<M::Event>,
}

impl<M: Machine> Default for Effects<M> {
    fn default() -> Self {
        Effects {
            sends: Vec::new(),
            replies: Vec::new(),
            writes: Vec::new(),
            closes: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl<M: Machine> Effects<M> {
    pub fn send(&mut self, to: NodeId, msg: M::Peer) {
        self.sends.push((to, msg));
    }

    pub fn reply(&mut self, client: ClientId, resp: M::Response) {
        self.replies.push((client, resp));
    }

    /// Asks for `ops` to be made durable; `Input::Persisted { token }` follows when they are.
    pub fn write(&mut self, token: u64, ops: Vec<DiskOp>) {
        debug_assert!(ops.iter().all(DiskOp::is_valid), "invalid disk op: {ops:?}");
        self.writes.push(Write { token, ops });
    }

    pub fn close(&mut self, client: ClientId) {
        self.closes.push(client);
    }

    pub fn record(&mut self, event: M::Event) {
        self.events.push(event);
    }

    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
            && self.replies.is_empty()
            && self.writes.is_empty()
            && self.closes.is_empty()
            && self.events.is_empty()
    }

    /// Takes everything out, leaving `self` empty for the next step.
    pub fn take(&mut self) -> Effects<M> {
        std::mem::take(self)
    }
}

/// A batch of disk operations made durable together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub token: u64,
    pub ops: Vec<DiskOp>,
}

/// One durable change. Logs are append-only sequences of opaque records addressed by
/// absolute position (which survives `DropPrefix`); blobs are named byte strings replaced
/// whole and atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskOp {
    Append {
        log: String,
        records: Vec<Vec<u8>>,
    },
    /// Keeps records at positions below `len`: protocols cut a diverged tail this way.
    TruncateTail {
        log: String,
        len: u64,
    },
    /// Forgets records at positions below `first`, after a snapshot covers them.
    DropPrefix {
        log: String,
        first: u64,
    },
    Put {
        name: String,
        bytes: Vec<u8>,
    },
    Delete {
        name: String,
    },
}

impl DiskOp {
    /// Whether names are usable as file names and sizes are within limits.
    pub fn is_valid(&self) -> bool {
        match self {
            DiskOp::Append { log, records } => {
                valid_name(log) && records.iter().all(|r| r.len() <= MAX_RECORD_BYTES)
            }
            DiskOp::TruncateTail { log, .. } | DiskOp::DropPrefix { log, .. } => valid_name(log),
            DiskOp::Put { name, bytes } => valid_name(name) && bytes.len() <= MAX_BLOB_BYTES,
            DiskOp::Delete { name } => valid_name(name),
        }
    }
}

/// A system's planted bugs by name, as `--bug` takes them: each entry switches one on.
pub type BugTable<B> = [(&'static str, fn(&mut B))];

/// Parses `--bug` names against `table`; an unknown name is an error listing the known ones.
pub fn parse_bugs<'a, B: Default>(
    names: impl IntoIterator<Item = &'a str>,
    table: &BugTable<B>,
) -> Result<B, String> {
    let mut bugs = B::default();
    for name in names {
        match table.iter().find(|(known, _)| *known == name) {
            Some((_, switch_on)) => switch_on(&mut bugs),
            None => {
                let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown bug {name:?}; known bugs: {}",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(bugs)
}

/// Log and blob names: 1 to `MAX_NAME_LEN` of `[a-z0-9_-]`, so they are safe file names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// What a node's disk holds when it boots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durable {
    pub logs: BTreeMap<String, Log>,
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// The surviving records of one log: `records[i]` sits at position `first + i`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    pub first: u64,
    pub records: Vec<Vec<u8>>,
}

impl Log {
    /// The position the next appended record takes.
    pub fn end(&self) -> u64 {
        self.first + self.records.len() as u64
    }
}

/// The blob that says the store cut a damaged tail from `log` when it opened: the records
/// the log held last are gone, and they may have been acknowledged (a crash tears only
/// what was never synced, but a disk that loses or corrupts synced data looks the same).
/// It stays until the machine deletes it, having learned again what the log lost.
pub fn repaired_blob(log: &str) -> String {
    let mut name = format!("repaired-{log}");
    name.truncate(MAX_NAME_LEN);
    name
}

impl Durable {
    /// Whether the store cut a damaged tail from `log` since the machine last said it had
    /// recovered what the log lost ([`repaired_blob`]).
    pub fn repaired(&self, log: &str) -> bool {
        self.blobs.contains_key(&repaired_blob(log))
    }

    /// Applies `op` as a disk would: the in-memory model the simulator and the tests share
    /// with the file-backed store. Positions past the end are clamped, as files would be.
    pub fn apply(&mut self, op: &DiskOp) {
        match op {
            DiskOp::Append { log, records } => {
                let l = self.logs.entry(log.clone()).or_default();
                l.records.extend(records.iter().cloned());
            }
            DiskOp::TruncateTail { log, len } => {
                if let Some(l) = self.logs.get_mut(log) {
                    let keep = len.saturating_sub(l.first).min(l.records.len() as u64);
                    l.records.truncate(keep as usize);
                    if *len < l.first {
                        // Cutting below the first kept record empties the log from `len` on.
                        l.first = *len;
                    }
                }
            }
            DiskOp::DropPrefix { log, first } => {
                let l = self.logs.entry(log.clone()).or_default();
                if *first > l.first {
                    let drop = (first - l.first).min(l.records.len() as u64) as usize;
                    l.records.drain(..drop);
                    l.first = *first;
                }
            }
            DiskOp::Put { name, bytes } => {
                self.blobs.insert(name.clone(), bytes.clone());
            }
            DiskOp::Delete { name } => {
                self.blobs.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(log: &str, recs: &[&[u8]]) -> DiskOp {
        DiskOp::Append {
            log: log.into(),
            records: recs.iter().map(|r| r.to_vec()).collect(),
        }
    }

    #[test]
    fn positions_survive_prefix_drops_and_tail_cuts() {
        let mut d = Durable::default();
        d.apply(&append("txn", &[b"a", b"b", b"c", b"d"]));
        d.apply(&DiskOp::DropPrefix {
            log: "txn".into(),
            first: 2,
        });
        let l = &d.logs["txn"];
        assert_eq!((l.first, l.end()), (2, 4));
        assert_eq!(l.records, vec![b"c".to_vec(), b"d".to_vec()]);
        d.apply(&DiskOp::TruncateTail {
            log: "txn".into(),
            len: 3,
        });
        d.apply(&append("txn", &[b"x"]));
        let l = &d.logs["txn"];
        assert_eq!(l.records, vec![b"c".to_vec(), b"x".to_vec()]);
        assert_eq!(l.end(), 4);
    }

    #[test]
    fn a_cut_below_the_first_record_empties_the_log_at_that_position() {
        let mut d = Durable::default();
        d.apply(&append("txn", &[b"a", b"b"]));
        d.apply(&DiskOp::DropPrefix {
            log: "txn".into(),
            first: 5,
        });
        assert_eq!((d.logs["txn"].first, d.logs["txn"].end()), (5, 5));
        d.apply(&DiskOp::TruncateTail {
            log: "txn".into(),
            len: 3,
        });
        assert_eq!((d.logs["txn"].first, d.logs["txn"].end()), (3, 3));
    }

    #[test]
    fn blobs_are_replaced_whole_and_deleted() {
        let mut d = Durable::default();
        d.apply(&DiskOp::Put {
            name: "epoch".into(),
            bytes: vec![1],
        });
        d.apply(&DiskOp::Put {
            name: "epoch".into(),
            bytes: vec![2, 2],
        });
        assert_eq!(d.blobs["epoch"], vec![2, 2]);
        d.apply(&DiskOp::Delete {
            name: "epoch".into(),
        });
        assert!(d.blobs.is_empty());
    }

    #[test]
    fn bugs_parse_by_name_and_unknown_names_list_the_known() {
        #[derive(Default, Debug, PartialEq)]
        struct Bugs {
            a: bool,
            b: bool,
        }
        let table: &BugTable<Bugs> = &[("a", |b| b.a = true), ("b", |b| b.b = true)];
        assert_eq!(parse_bugs(["b"], table), Ok(Bugs { a: false, b: true }));
        let err = parse_bugs(["a", "zz"], table).unwrap_err();
        assert_eq!(err, "unknown bug \"zz\"; known bugs: a, b");
    }

    #[test]
    fn names_must_be_safe_file_names() {
        assert!(valid_name("txn-log_2"));
        for bad in [
            "",
            "../x",
            "Upper",
            "a/b",
            "x.y",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(!valid_name(bad), "{bad:?} accepted");
        }
        assert!(!DiskOp::Append {
            log: "ok".into(),
            records: vec![vec![0; MAX_RECORD_BYTES + 1]]
        }
        .is_valid());
    }
}
