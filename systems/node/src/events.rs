//! The node's event log: every event the core records (`Effects::record`) as one JSON line,
//! appended to a file that the harness collects for the event-log checkers
//! (`checkers::atomic_commit` defines the format).
//!
//! A line is the core's event (a JSON object) with `time` and `node` put first:
//! `{"time":1732633200123456789,"node":"n2","event":"vote","txn":7,"vote":"yes"}`.
//! - `time` is wall-clock nanoseconds since the Unix epoch, not the core's clock: that one
//!   moves under clock faults, and the checkers order events by time. The wall clock may
//!   step back (NTP), and the checkers refuse a log whose time decreases, so a line never
//!   gets a time below the one before it, across restarts too (the last line is read back on
//!   open).
//! - Events that serialize to `null` (the `()` of cores that record nothing) are not written.
//!   Anything else that is not an object, or an object with its own `time` or `node`, stops
//!   the node: a log missing events would mislead the checkers.
//!
//! Lines are written whole: a step's lines are buffered (at most
//! [`MAX_PENDING_EVENT_BYTES`], flushed early past that, always at a line boundary) and
//! written with one `write_all` on a file opened with `O_APPEND` before the step's sends and
//! replies are dispatched (see `driver`). A killed node therefore leaves whole lines; should a
//! line be torn anyway (a full disk, a filesystem that dropped unsynced data), the next open
//! cuts it off. The file is not fsynced: the log is an observation, not the node's state. One
//! file per node.

use machine::NodeId;
use serde::Serialize;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of lines buffered before they are written; a step that records more is written in
/// several whole-line pieces.
pub const MAX_PENDING_EVENT_BYTES: usize = 1 << 20;

pub use machine::event_line::MAX_EVENT_LINE_BYTES;

/// How much of the file is read at a time when looking for its last line on open.
const TAIL_CHUNK_BYTES: u64 = 64 * 1024;

/// How much of an event's `Debug` text an error quotes.
const MAX_QUOTED_CHARS: usize = 300;

/// Why the event log stopped the node.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("event log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The text completes "the core recorded an event that ...".
    #[error("the core recorded an event that {problem}: {event}")]
    BadEvent { problem: String, event: String },
}

/// The open event log of one node.
pub struct EventLog {
    path: PathBuf,
    file: File,
    node: NodeId,
    pending: Vec<u8>,
    last_time_ns: u64,
}

impl EventLog {
    /// Opens (creating) `path` for appending the events of `node`, cutting a torn last line
    /// and reading the last line's time, so that times never decrease in the file.
    pub fn open(path: &Path, node: NodeId) -> Result<EventLog, EventLogError> {
        let io_err = |source| EventLogError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err)?;
        let last_time_ns = recover_tail(&file, path).map_err(io_err)?;
        Ok(EventLog {
            path: path.to_path_buf(),
            file,
            node,
            pending: Vec::new(),
            last_time_ns,
        })
    }

    /// Appends one step's events, stamped now, and writes them out.
    pub fn write_step<E: Serialize + Debug>(
        &mut self,
        events: Vec<E>,
    ) -> Result<(), EventLogError> {
        if events.is_empty() {
            return Ok(());
        }
        let time_ns = self.now_ns();
        for event in events {
            let line = match event_line(&event, time_ns, self.node) {
                Ok(Some(line)) => line,
                Ok(None) => continue,
                Err(problem) => {
                    return Err(EventLogError::BadEvent {
                        problem,
                        event: quote(&event),
                    })
                }
            };
            if self.pending.len() + line.len() > MAX_PENDING_EVENT_BYTES {
                self.flush()?;
            }
            self.pending.extend_from_slice(line.as_bytes());
        }
        self.flush()
    }

    /// Writes the buffered lines with one `write_all`.
    fn flush(&mut self) -> Result<(), EventLogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.pending);
        self.pending.clear();
        result.map_err(|source| EventLogError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Wall-clock nanoseconds since the epoch, never below the last line's time.
    fn now_ns(&mut self) -> u64 {
        let wall_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.last_time_ns = self.last_time_ns.max(wall_ns);
        self.last_time_ns
    }
}

/// Cuts a torn last line off `file` and returns the time of its last whole line (0 if none,
/// or if that line was not written by an event log).
fn recover_tail(file: &File, path: &Path) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let end = line_start(file, len)?;
    if end < len {
        tracing::warn!(path = %path.display(), bytes = len - end, "cut a torn last line off the event log");
        file.set_len(end)?;
    }
    if end == 0 {
        return Ok(0);
    }
    let start = line_start(file, end - 1)?;
    let mut head = [0u8; 40];
    let n = head.len().min((end - start) as usize);
    file.read_exact_at(&mut head[..n], start)?;
    Ok(leading_time_ns(&head[..n]).unwrap_or(0))
}

/// The offset just past the last newline before `end`, or 0: where the line that `end`
/// ends (or cuts) begins.
fn line_start(file: &File, end: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; TAIL_CHUNK_BYTES as usize];
    let mut hi = end;
    while hi > 0 {
        let lo = hi.saturating_sub(TAIL_CHUNK_BYTES);
        let chunk = &mut buf[..(hi - lo) as usize];
        file.read_exact_at(chunk, lo)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(lo + i as u64 + 1);
        }
        hi = lo;
    }
    Ok(0)
}

/// The time of a line that starts as this module writes them: `{"time":<digits>`.
fn leading_time_ns(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"time\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// `event` as one line (newline included) at `time_ns` on `node`, or `None` for `null`.
/// `Err` says what is wrong with it.
pub fn event_line<E: Serialize>(
    event: &E,
    time_ns: u64,
    node: NodeId,
) -> Result<Option<String>, String> {
    machine::event_line::event_line(event, time_ns, node).map_err(|e| e.to_string())
}

/// `event`'s `Debug` text, cut to `MAX_QUOTED_CHARS` characters.
fn quote(event: &impl Debug) -> String {
    let text = format!("{event:?}");
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_put_time_and_node_first_and_skip_null() {
        let ev = json!({"event": "decide", "txn": 7, "decision": "commit"});
        let line = event_line(&ev, 12, 3).unwrap().unwrap();
        assert!(line.starts_with("{\"time\":12,\"node\":\"n3\","), "{line}");
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        let whole =
            json!({"time": 12, "node": "n3", "event": "decide", "txn": 7, "decision": "commit"});
        assert_eq!(parsed, whole);
        assert_eq!(
            event_line(&json!({}), 4, 1),
            Ok(Some("{\"time\":4,\"node\":\"n1\"}\n".into()))
        );
        assert_eq!(event_line(&(), 1, 1), Ok(None));
        assert!(event_line(&7, 1, 1).unwrap_err().contains("not an object"));
        let own = json!({"event": "crash", "time": 5});
        assert!(event_line(&own, 1, 1).unwrap_err().contains("\"time\""));
    }

    #[test]
    fn reopening_cuts_a_torn_line_and_keeps_time_from_going_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let future_ns = u64::MAX / 2;
        std::fs::write(
            &path,
            format!("{{\"time\":5,\"node\":\"n1\"}}\n{{\"time\":{future_ns},\"node\":\"n1\",\"event\":\"crash\"}}\n{{\"time\":9,\"no"),
        )
        .unwrap();
        let mut log = EventLog::open(&path, 1).unwrap();
        log.write_step(vec![json!({"event": "recover"})]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let last = text.lines().last().unwrap();
        assert_eq!(
            last,
            format!("{{\"time\":{future_ns},\"node\":\"n1\",\"event\":\"recover\"}}")
        );
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    #[test]
    fn a_file_without_a_newline_is_cut_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "x".repeat(3 * TAIL_CHUNK_BYTES as usize)).unwrap();
        let log = EventLog::open(&path, 1).unwrap();
        assert_eq!(log.last_time_ns, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn a_big_step_is_written_in_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut log = EventLog::open(&path, 2).unwrap();
        let pad = "p".repeat(100_000);
        let events: Vec<_> = (0..30)
            .map(|i| json!({"event": "x", "i": i, "pad": pad}))
            .collect();
        log.write_step(events).unwrap();
        assert!(log.pending.is_empty());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 30);
        assert!(text
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }
}
