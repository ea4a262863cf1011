//! One event-log line: a core's recorded event (a JSON object) with `time` and `node` put
//! first, `{"time":5000000,"node":"n2","event":"vote","txn":7,"vote":"yes"}`, the format
//! `checkers::atomic_commit` reads. Both runtimes (the simulator and the node driver) write
//! lines with this one function, so the log a test judges is the log a deployment writes.
//! Events that serialize to `null` (the `()` of cores that record nothing) give no line;
//! anything else that is not an object is refused, as are objects that carry their own
//! `time` or `node`, because the runtime owns those fields.

use crate::NodeId;
use serde::Serialize;
use serde_json::Value;

/// The longest line the checkers read (`checkers::atomic_commit::MAX_LINE_BYTES`).
pub const MAX_EVENT_LINE_BYTES: usize = 64 << 20;

/// Why an event cannot become a line. The text completes "n2 recorded an event that ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
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
pub fn event_line<E: Serialize>(
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
pub fn own_line(name: &str, time_ns: u64, node: Option<NodeId>) -> String {
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
}
