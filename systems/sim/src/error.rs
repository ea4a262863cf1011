//! Why a run stopped early. Every failure carries the seed, the step and the virtual time, and
//! says how to replay it, because a failure that cannot be replayed cannot be debugged.

use machine::{BootError, NodeId};
use std::fmt;

/// What went wrong, without the where and when ([`SimError`] adds those).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    /// The test's invariant hook returned an error.
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// A node refused to boot from what its disk held: usually a recovery bug.
    #[error("n{node} failed to boot: {error}")]
    Boot { node: NodeId, error: BootError },
    /// A core emitted a message larger than `machine::MAX_MESSAGE_BYTES` on the wire.
    #[error(
        "{what} from n{node} is at least {bytes} bytes on the wire, over the limit of {limit}"
    )]
    MessageTooLarge {
        what: &'static str,
        node: NodeId,
        bytes: usize,
        limit: usize,
    },
    /// A core emitted a message its serializer rejects; the real runtime could not send it.
    #[error("{what} from n{node} cannot be serialized: {error}")]
    Unserializable {
        what: &'static str,
        node: NodeId,
        error: String,
    },
    /// A core addressed a node that is not a member.
    #[error("n{from} sent a message to n{to}, which is not a member")]
    UnknownNode { from: NodeId, to: NodeId },
    #[error("event queue exceeded its limit of {limit} events (a message storm?)")]
    QueueFull { limit: usize },
    #[error("n{node} has more than {limit} disk writes pending")]
    PendingWritesFull { node: NodeId, limit: usize },
    #[error("the run exceeded its limit of {limit} steps")]
    StepLimit { limit: u64 },
    #[error("the run exceeded its limit of {limit_ms} ms of virtual time")]
    TimeLimit { limit_ms: u64 },
    #[error("the condition did not hold within {max_ms} ms of virtual time")]
    Deadline { max_ms: u64 },
    #[error("the history exceeded its limit of {limit} events")]
    HistoryFull { limit: usize },
    #[error("the event log exceeded its limit of {limit} events")]
    EventLogFull { limit: usize },
    #[error("the event log exceeded its limit of {limit_bytes} bytes")]
    EventLogTooLarge { limit_bytes: usize },
    /// A core recorded an event the log cannot hold: not a JSON object, or one that sets
    /// `time` or `node` itself. The real runtime could not write it either.
    #[error("n{node} recorded an event that {problem}: {event}")]
    BadEvent {
        node: NodeId,
        problem: String,
        /// The event's `Debug` text, shortened.
        event: String,
    },
    /// A core recorded an event while `SimConfig::record_events` is off. Refused rather than
    /// dropped, so that a checker never judges an empty or crash-less log by mistake.
    #[error(
        "n{node} recorded an event ({event}), but SimConfig::record_events is off: turn it on \
         for systems that record events, so the log also holds the crashes and faults"
    )]
    EventsOff { node: NodeId, event: String },
}

/// A run that stopped: what happened, and the coordinates to replay it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimError(Box<Failure>);

#[derive(Debug, Clone, PartialEq)]
struct Failure {
    kind: ErrorKind,
    seed: u64,
    step: u64,
    time_ms: u64,
    trace_tail: Vec<String>,
}

impl SimError {
    pub(crate) fn new(
        kind: ErrorKind,
        seed: u64,
        step: u64,
        time_ms: u64,
        trace_tail: Vec<String>,
    ) -> SimError {
        SimError(Box::new(Failure {
            kind,
            seed,
            step,
            time_ms,
            trace_tail,
        }))
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    pub fn seed(&self) -> u64 {
        self.0.seed
    }

    /// How many events the run had delivered when it stopped.
    pub fn step(&self) -> u64 {
        self.0.step
    }

    pub fn time_ms(&self) -> u64 {
        self.0.time_ms
    }

    /// The last events before the failure, oldest first (empty unless the trace keeps a tail).
    pub fn trace_tail(&self) -> &[String] {
        &self.0.trace_tail
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        writeln!(f, "{}", e.kind)?;
        writeln!(
            f,
            "  at seed {}, step {}, t={}ms",
            e.seed, e.step, e.time_ms
        )?;
        write!(f, "  replay: {}", crate::seeds::replay_hint(e.seed))?;
        if !e.trace_tail.is_empty() {
            write!(f, "\n  last {} events:", e.trace_tail.len())?;
            for line in &e.trace_tail {
                write!(f, "\n    {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for SimError {}
