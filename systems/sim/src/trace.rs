//! The run's fingerprint: a running hash over every delivered event, and optionally the last K
//! events as text for failure reports.
//!
//! Two runs from the same seed must produce the same hash; a test pins that. The hash covers
//! the delivery time, what was delivered to whom, and each message's content (the digest of its
//! wire form, see `wire`), so a divergence anywhere shows up even if the timing happens to agree.

use machine::{ClientId, NodeId};
use std::collections::VecDeque;
use std::fmt;

/// How much of the run to keep as text.
#[derive(Clone, Debug)]
pub struct TraceConfig {
    /// How many of the last events to keep for failure reports (0: none, the fastest).
    pub keep_last: usize,
    /// Whether kept events include each message's `Debug` text. Costly: formats every message.
    pub debug_messages: bool,
}

impl Default for TraceConfig {
    fn default() -> TraceConfig {
        TraceConfig {
            keep_last: 64,
            debug_messages: false,
        }
    }
}

/// Upper bound of `keep_last`, so a typo cannot keep a whole run in memory.
pub const MAX_KEEP_LAST: usize = 1 << 20;

/// What one delivered event was, compactly, for the hash and the text tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    Boot {
        node: NodeId,
    },
    Tick {
        node: NodeId,
    },
    Peer {
        from: NodeId,
        to: NodeId,
        digest: u64,
    },
    Request {
        client: ClientId,
        node: NodeId,
        digest: u64,
    },
    Disconnected {
        client: ClientId,
        node: NodeId,
    },
    Persisted {
        node: NodeId,
        token: u64,
    },
    Response {
        client: ClientId,
        digest: u64,
    },
    ClientClosed {
        client: ClientId,
    },
    ClientWake {
        index: usize,
    },
    Fault {
        digest: u64,
    },
}

impl Note {
    /// The words hashed for this note: a tag plus up to three fields.
    fn words(self) -> [u64; 4] {
        match self {
            Note::Boot { node } => [1, node.into(), 0, 0],
            Note::Tick { node } => [2, node.into(), 0, 0],
            Note::Peer { from, to, digest } => [3, from.into(), to.into(), digest],
            Note::Request {
                client,
                node,
                digest,
            } => [4, client, node.into(), digest],
            Note::Disconnected { client, node } => [5, client, node.into(), 0],
            Note::Persisted { node, token } => [6, node.into(), token, 0],
            Note::Response { client, digest } => [7, client, digest, 0],
            Note::ClientClosed { client } => [8, client, 0, 0],
            Note::ClientWake { index } => [9, index as u64, 0, 0],
            Note::Fault { digest } => [10, digest, 0, 0],
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Note::Boot { node } => write!(f, "n{node} boots"),
            Note::Tick { node } => write!(f, "n{node} tick"),
            Note::Peer { from, to, digest } => write!(f, "n{from} -> n{to} peer #{digest:016x}"),
            Note::Request {
                client,
                node,
                digest,
            } => write!(f, "c{client} -> n{node} request #{digest:016x}"),
            Note::Disconnected { client, node } => write!(f, "c{client} -x n{node} disconnected"),
            Note::Persisted { node, token } => write!(f, "n{node} persisted token {token}"),
            Note::Response { client, digest } => write!(f, "c{client} <- response #{digest:016x}"),
            Note::ClientClosed { client } => write!(f, "c{client} connection closed"),
            Note::ClientWake { index } => write!(f, "client #{index} wakes"),
            Note::Fault { .. } => write!(f, "nemesis"),
        }
    }
}

struct Line {
    step: u64,
    time_ms: u64,
    note: Note,
    detail: Option<String>,
}

/// The running hash and the bounded text tail.
pub(crate) struct Trace {
    hash: u64,
    config: TraceConfig,
    tail: VecDeque<Line>,
}

impl Trace {
    pub fn new(config: TraceConfig) -> Trace {
        assert!(
            config.keep_last <= MAX_KEEP_LAST,
            "trace keep_last {} exceeds {MAX_KEEP_LAST}",
            config.keep_last
        );
        Trace {
            hash: 0x243f_6a88_85a3_08d3,
            tail: VecDeque::with_capacity(config.keep_last),
            config,
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Whether callers should build `Debug` detail for the tail.
    pub fn wants_detail(&self) -> bool {
        self.config.keep_last > 0 && self.config.debug_messages
    }

    /// Folds one delivered event into the hash and the tail. `detail` is only built by callers
    /// when [`Trace::wants_detail`] (or for rare events such as faults).
    pub fn record(&mut self, step: u64, time_ms: u64, note: Note, detail: Option<String>) {
        let mut h = mix(self.hash, time_ms);
        for w in note.words() {
            h = mix(h, w);
        }
        self.hash = h;
        if self.config.keep_last == 0 {
            return;
        }
        if self.tail.len() == self.config.keep_last {
            self.tail.pop_front();
        }
        self.tail.push_back(Line {
            step,
            time_ms,
            note,
            detail,
        });
    }

    /// The kept events as text, oldest first.
    pub fn tail_text(&self) -> Vec<String> {
        self.tail
            .iter()
            .map(|l| match &l.detail {
                Some(d) => format!("#{} t={}ms {}: {d}", l.step, l.time_ms, l.note),
                None => format!("#{} t={}ms {}", l.step, l.time_ms, l.note),
            })
            .collect()
    }
}

/// One round of a 64-bit mixer (SplitMix64's finalizer over the folded word): cheap, and every
/// input bit affects every output bit, so reordered or changed events change the hash.
pub(crate) fn mix(h: u64, x: u64) -> u64 {
    let mut z = h.rotate_left(23) ^ x;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A digest of a string, for fault descriptions.
pub(crate) fn digest_str(s: &str) -> u64 {
    s.bytes().fold(0, |h, b| mix(h, b.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_content_change_the_hash() {
        let a = Note::Tick { node: 1 };
        let b = Note::Tick { node: 2 };
        let run = |notes: &[Note]| {
            let mut t = Trace::new(TraceConfig::default());
            for (i, n) in notes.iter().enumerate() {
                t.record(i as u64, 10, *n, None);
            }
            t.hash()
        };
        assert_eq!(run(&[a, b]), run(&[a, b]));
        assert_ne!(run(&[a, b]), run(&[b, a]));
        assert_ne!(run(&[a]), run(&[b]));
    }

    #[test]
    fn the_tail_keeps_only_the_last_events() {
        let mut t = Trace::new(TraceConfig {
            keep_last: 2,
            debug_messages: false,
        });
        for node in 1..=5 {
            t.record(node.into(), 0, Note::Tick { node }, None);
        }
        let tail = t.tail_text();
        assert_eq!(tail.len(), 2);
        assert!(
            tail[0].contains("n4 tick") && tail[1].contains("n5 tick"),
            "{tail:?}"
        );
    }
}
