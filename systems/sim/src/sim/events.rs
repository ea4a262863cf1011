//! The event log's lines: what cores record in each step, and the crashes, recoveries, faults
//! and heals the simulator itself causes.
//!
//! The simulator's own lines are written only with `SimConfig::record_events`, which tests of
//! systems that record events turn on (a `Machine::Event` of `()` records nothing, and its
//! runs keep no log). They follow the checkers' meaning (`checkers::atomic_commit`):
//! - `crash` (node): the node stopped; `recover` (node): it is booting from its disk again,
//!   written before anything its new life records.
//! - `fault`: something began that can make a correct node time out on another: a partition
//!   that blocks links, a loss burst, a pause (to its peers a frozen node looks cut off) or
//!   a clock jump (timeouts fire early or late). A jump is over as soon as it happens, so
//!   `heal` may follow at once.
//! - `heal`: after a `fault`, `crash` or pause, nothing remains in effect: no blocked link,
//!   no loss burst, every node up and running.

use super::Sim;
use crate::error::ErrorKind;
use crate::event_log::{event_line, own_line, LogFull};
use machine::{Machine, NodeId};
use std::fmt::Debug;

/// How much of an event's `Debug` text an error quotes.
const MAX_QUOTED_CHARS: usize = 300;

impl<M: Machine> Sim<M> {
    /// Logs what `id`'s core recorded in this step, in order, at the current virtual time.
    pub(super) fn log_core_events(&mut self, id: NodeId, events: &mut Vec<M::Event>) {
        let time_ns = self.time_ns();
        for event in events.drain(..) {
            match event_line(&event, time_ns, id) {
                Ok(None) => {}
                Ok(Some(_)) if !self.config.record_events => self.fail(ErrorKind::EventsOff {
                    node: id,
                    event: quote(&event),
                }),
                Ok(Some(line)) => self.push_line(&line),
                Err(e) => self.fail(ErrorKind::BadEvent {
                    node: id,
                    problem: e.to_string(),
                    event: quote(&event),
                }),
            }
        }
    }

    pub(super) fn log_crash(&mut self, id: NodeId) {
        self.log_own("crash", Some(id));
        self.unhealed = true;
    }

    pub(super) fn log_recover(&mut self, id: NodeId) {
        self.log_own("recover", Some(id));
    }

    pub(super) fn log_fault(&mut self) {
        self.log_own("fault", None);
        self.unhealed = true;
    }

    /// Logs `heal` if a fault, crash or pause was logged since the last one and nothing of
    /// the kind remains in effect.
    pub(super) fn log_heal_if_clear(&mut self) {
        let clear = self.links.is_empty()
            && self.burst_loss.is_none()
            && self.nodes.iter().all(|n| n.is_running());
        if self.unhealed && clear {
            self.log_own("heal", None);
            self.unhealed = false;
        }
    }

    fn log_own(&mut self, name: &str, node: Option<NodeId>) {
        if self.config.record_events {
            let line = own_line(name, self.time_ns(), node);
            self.push_line(&line);
        }
    }

    fn push_line(&mut self, line: &str) {
        let limits = &self.config.limits;
        let kind = match self
            .events
            .push(line, limits.max_events, limits.max_event_bytes)
        {
            Ok(()) => return,
            Err(LogFull::Events) => ErrorKind::EventLogFull {
                limit: limits.max_events,
            },
            Err(LogFull::Bytes) => ErrorKind::EventLogTooLarge {
                limit_bytes: limits.max_event_bytes,
            },
        };
        self.fail(kind);
    }

    /// Virtual time in nanoseconds, the unit of the log's `time`.
    fn time_ns(&self) -> u64 {
        self.now_ms.saturating_mul(1_000_000)
    }
}

/// `event`'s `Debug` text, cut to `MAX_QUOTED_CHARS` characters.
fn quote(event: &impl Debug) -> String {
    let text = format!("{event:?}");
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}
