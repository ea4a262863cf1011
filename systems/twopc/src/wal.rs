//! Group commit over the `machine` write contract: records appended while a write is in
//! flight wait and go out together in the next one, so a busy node pays one fsync for
//! many records. Each record may carry an action to run once it is durable.
//!
//! Records nobody waits for (a participant's copy of a decision, the coordinator's `end`
//! and `start`) are *lazy*: they ride along with the next urgent record or go out at the
//! next tick, so they never put an fsync in front of a vote or a decision.

use machine::{DiskOp, Effects, Machine};
use std::collections::VecDeque;

/// Writes a node keeps in flight at once; 1 gives classic group commit.
pub const MAX_IN_FLIGHT: usize = 1;
/// Records waiting for the next write; beyond it the batch goes out regardless.
pub const MAX_BATCH_RECORDS: usize = 4096;

pub struct Wal<A> {
    log: &'static str,
    /// The position the next appended record takes.
    next_pos: u64,
    next_token: u64,
    pending: Vec<Vec<u8>>,
    pending_then: Vec<A>,
    /// Some pending record is waited for: send it as soon as the window allows.
    urgent: bool,
    in_flight: VecDeque<(u64, Vec<A>)>,
}

impl<A> Wal<A> {
    /// A log whose next record goes at `next_pos`; tokens start after `first_token`.
    pub fn new(log: &'static str, next_pos: u64, first_token: u64) -> Wal<A> {
        Wal {
            log,
            next_pos,
            next_token: first_token,
            pending: Vec::new(),
            pending_then: Vec::new(),
            urgent: false,
            in_flight: VecDeque::new(),
        }
    }

    pub fn next_pos(&self) -> u64 {
        self.next_pos
    }

    /// Appends a record somebody waits for; `then` runs when it (and everything before it)
    /// is durable. Returns the record's position.
    pub fn append(&mut self, record: Vec<u8>, then: Option<A>) -> u64 {
        self.urgent = true;
        self.append_lazy(record, then)
    }

    /// Appends a record nobody waits for: it goes out with the next urgent one, or at the
    /// next [`Wal::flush_lazy`].
    pub fn append_lazy(&mut self, record: Vec<u8>, then: Option<A>) -> u64 {
        let pos = self.next_pos;
        self.next_pos += 1;
        self.pending.push(record);
        self.pending_then.extend(then);
        pos
    }

    /// Sends the pending batch if it holds an urgent record and the in-flight window
    /// allows (call after every step).
    pub fn flush<M: Machine>(&mut self, out: &mut Effects<M>) {
        let full = self.pending.len() >= MAX_BATCH_RECORDS;
        let open = self.in_flight.len() < MAX_IN_FLIGHT;
        if !self.pending.is_empty() && ((self.urgent && open) || full) {
            self.force(out);
        }
    }

    /// Sends lazy records too, if the window allows (call on ticks).
    pub fn flush_lazy<M: Machine>(&mut self, out: &mut Effects<M>) {
        if !self.pending.is_empty() && self.in_flight.len() < MAX_IN_FLIGHT {
            self.force(out);
        }
    }

    /// Appends a record and sends it at once with everything pending, window or not;
    /// returns the write's token (for callers that hold inputs until it is durable).
    pub fn append_now<M: Machine>(
        &mut self,
        record: Vec<u8>,
        then: A,
        out: &mut Effects<M>,
    ) -> u64 {
        self.append(record, Some(then));
        self.force(out).expect("a record is pending")
    }

    /// Sends the pending batch now, window or not.
    fn force<M: Machine>(&mut self, out: &mut Effects<M>) -> Option<u64> {
        if self.pending.is_empty() && self.pending_then.is_empty() {
            return None;
        }
        self.urgent = false;
        let records = std::mem::take(&mut self.pending);
        let ops = if records.is_empty() {
            Vec::new()
        } else {
            vec![DiskOp::Append {
                log: self.log.to_string(),
                records,
            }]
        };
        let then = std::mem::take(&mut self.pending_then);
        Some(self.submit(ops, then, out))
    }

    /// Writes `ops` after every record appended so far; `then` runs when they are durable.
    /// Returns the write's token.
    pub fn write_after_log<M: Machine>(
        &mut self,
        ops: Vec<DiskOp>,
        then: A,
        out: &mut Effects<M>,
    ) -> u64 {
        self.force(out);
        self.submit(ops, vec![then], out)
    }

    fn submit<M: Machine>(&mut self, ops: Vec<DiskOp>, then: Vec<A>, out: &mut Effects<M>) -> u64 {
        self.next_token += 1;
        let token = self.next_token;
        out.write(token, ops);
        self.in_flight.push_back((token, then));
        token
    }

    /// The actions of every write up to `token`, in order: they are durable now.
    pub fn persisted(&mut self, token: u64) -> Vec<A> {
        let mut done = Vec::new();
        while let Some((t, _)) = self.in_flight.front() {
            if *t > token {
                break;
            }
            let (_, then) = self.in_flight.pop_front().expect("front exists");
            done.extend(then);
        }
        done
    }

    /// The log name, for prefix drops after a checkpoint.
    pub fn log(&self) -> &'static str {
        self.log
    }
}
