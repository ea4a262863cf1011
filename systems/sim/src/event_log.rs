//! The event log: what the cores record with `Effects::record`, plus the crashes, recoveries,
//! faults and heals the simulator causes, as the JSON lines that
//! `checkers::atomic_commit::parse_events` reads.
//!
//! Each line is the core's event (a JSON object) with `time` (virtual nanoseconds) and `node`
//! (`"n<id>"`) put first: `{"time":5000000,"node":"n2","event":"vote","txn":7,"vote":"yes"}`.
//! Time is the simulator's virtual time, not the node's skewed clock, so it never decreases in
//! log order, which the checkers require. Events that serialize to `null` (the `()` of cores
//! that record nothing) are skipped; anything else that is not an object is refused, as are
//! objects that carry their own `time` or `node`, because the runtime owns those fields.

pub use machine::event_line::{event_line, own_line, MAX_EVENT_LINE_BYTES};

// The runtimes' line limit is the checkers' line limit.
const _: () = assert!(MAX_EVENT_LINE_BYTES == checkers::atomic_commit::MAX_LINE_BYTES);

/// The log is at one of its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFull {
    Events,
    Bytes,
}

/// The lines so far. The limits are passed to each push, so that `Sim::limits_mut` applies
/// to a run in progress.
#[derive(Default)]
pub(crate) struct EventLog {
    text: String,
    lines: usize,
}

impl EventLog {
    /// Appends one whole line (ending in a newline), unless the log would then hold more
    /// than `max_lines` lines or `max_bytes` bytes.
    pub fn push(&mut self, line: &str, max_lines: usize, max_bytes: usize) -> Result<(), LogFull> {
        debug_assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        if self.lines >= max_lines {
            return Err(LogFull::Events);
        }
        if self.text.len().saturating_add(line.len()) > max_bytes {
            return Err(LogFull::Bytes);
        }
        self.text.push_str(line);
        self.lines += 1;
        Ok(())
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn len(&self) -> usize {
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_stops_at_its_limits() {
        let mut log = EventLog::default();
        log.push("{}\n", 2, 100).unwrap();
        log.push("{}\n", 2, 100).unwrap();
        assert_eq!(log.push("{}\n", 2, 100), Err(LogFull::Events));
        let mut log = EventLog::default();
        log.push("{}\n", 10, 5).unwrap();
        assert_eq!(log.push("{}\n", 10, 5), Err(LogFull::Bytes));
        assert_eq!((log.len(), log.text()), (1, "{}\n"));
    }
}
