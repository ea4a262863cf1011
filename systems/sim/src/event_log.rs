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

use machine::NodeId;
use serde::Serialize;
use serde_json::Value;

/// The longest line the checkers read (`checkers::atomic_commit::MAX_LINE_BYTES`).
pub const MAX_EVENT_LINE_BYTES: usize = checkers::atomic_commit::MAX_LINE_BYTES;

/// Why an event cannot become a line. The text completes "n2 recorded an event that ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LineError {
    #[error("cannot be serialized to JSON: {0}")]
    Unserializable(String),
    #[error("serializes to a JSON {0}, not an object")]
    NotAnObject(&'static str),
    #[error("has its own {0:?} field, which the runtime adds")]
    ReservedField(&'static str),
    #[error("is {bytes} bytes as a line, over the limit of {limit}")]
    TooLong { bytes: usize, limit: usize },
}

/// `event` as one line (newline included) at `time_ns` on `node`, or `None` for `null`.
pub(crate) fn event_line<E: Serialize>(
    event: &E,
    time_ns: u64,
    node: NodeId,
) -> Result<Option<String>, LineError> {
    let fields = match serde_json::to_value(event) {
        Ok(Value::Object(fields)) => fields,
        Ok(Value::Null) => return Ok(None),
        Ok(other) => return Err(LineError::NotAnObject(json_kind(&other))),
        Err(e) => return Err(LineError::Unserializable(e.to_string())),
    };
    for reserved in ["time", "node"] {
        if fields.contains_key(reserved) {
            return Err(LineError::ReservedField(reserved));
        }
    }
    let body =
        serde_json::to_string(&fields).map_err(|e| LineError::Unserializable(e.to_string()))?;
    let line = join(time_ns, Some(node), &body);
    if line.len() > MAX_EVENT_LINE_BYTES {
        return Err(LineError::TooLong {
            bytes: line.len(),
            limit: MAX_EVENT_LINE_BYTES,
        });
    }
    Ok(Some(line))
}

/// A line the simulator writes itself: `{"time":..,"node":"n2","event":"crash"}`, or without
/// `node` for the cluster-wide `fault` and `heal`.
pub(crate) fn own_line(name: &str, time_ns: u64, node: Option<NodeId>) -> String {
    join(time_ns, node, &format!("{{\"event\":\"{name}\"}}"))
}

/// `time` and `node`, then the fields of the serialized object `body` (`{...}`).
fn join(time_ns: u64, node: Option<NodeId>, body: &str) -> String {
    let mut line = format!("{{\"time\":{time_ns}");
    if let Some(n) = node {
        line.push_str(&format!(",\"node\":\"n{n}\""));
    }
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .unwrap_or("");
    if !inner.is_empty() {
        line.push(',');
        line.push_str(inner);
    }
    line.push_str("}\n");
    line
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

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
    use serde_json::json;

    #[test]
    fn time_and_node_come_first_and_null_is_skipped() {
        let ev = json!({"event": "vote", "txn": 7, "vote": "yes"});
        let line = event_line(&ev, 5_000_000, 2).unwrap().unwrap();
        assert_eq!(
            line,
            "{\"time\":5000000,\"node\":\"n2\",\"event\":\"vote\",\"txn\":7,\"vote\":\"yes\"}\n"
        );
        assert_eq!(event_line(&(), 1, 1), Ok(None));
        assert_eq!(
            event_line(&json!({}), 1, 1).unwrap().unwrap(),
            "{\"time\":1,\"node\":\"n1\"}\n"
        );
        assert_eq!(
            own_line("heal", 3, None),
            "{\"time\":3,\"event\":\"heal\"}\n"
        );
    }

    #[test]
    fn non_objects_and_reserved_fields_are_refused() {
        assert_eq!(
            event_line(&json!([1]), 1, 1),
            Err(LineError::NotAnObject("array"))
        );
        assert_eq!(
            event_line(&"crash", 1, 1),
            Err(LineError::NotAnObject("string"))
        );
        assert_eq!(
            event_line(&json!({"event": "crash", "node": "n9"}), 1, 1),
            Err(LineError::ReservedField("node"))
        );
        let map = std::collections::BTreeMap::from([((1, 2), 3)]);
        assert!(matches!(
            event_line(&map, 1, 1),
            Err(LineError::Unserializable(_))
        ));
    }

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
