//! The generic client protocol's lines, whatever carries them: the request line, reading one
//! bounded response line, and what a response line means for the operation.
//!
//! ```text
//! → {"id": 7, "worker": 3, "f": "write", "value": ["k1", 4]}
//! ← {"id": 7, "type": "ok", "value": ["k1", 4]}
//! ← {"id": 7, "type": "fail", "error": "not leader"}
//! ```
//!
//! `type` is the history's: `ok` took effect, `fail` certainly did not, `info` may have.
//! `value` is the completed op's value (a read's result); when absent, the request's value
//! stands. `error` is any JSON.

use crate::client::Outcome;
use checkers::history::{OpType, Value};
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Longest response line read; a longer one is garbage, and reading stops there so that a
/// peer cannot make the harness buffer without end.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// How much of a bad line an error quotes.
const SHOWN_CHARS: usize = 200;

/// The request line for operation `f` on `value`, newline included.
pub fn request_line(id: u64, worker: u64, f: &str, value: &Value) -> Vec<u8> {
    let mut line = json!({"id": id, "worker": worker, "f": f, "value": value}).to_string();
    line.push('\n');
    line.into_bytes()
}

/// What reading a response line came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, newline included (or the last bytes before the end).
    Line(Vec<u8>),
    /// Nothing more will come: the peer closed its side.
    Closed,
    /// More than [`MAX_LINE_BYTES`] without a newline.
    TooLong,
}

/// Reads one line of at most `max_bytes` (newline included) from `reader`.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    // One byte more than allowed tells a line of exactly `max_bytes` from a longer one.
    let mut limited = reader.take(max_bytes as u64 + 1);
    limited.read_until(b'\n', &mut line).await?;
    Ok(match line.len() {
        0 => Line::Closed,
        n if n > max_bytes => Line::TooLong,
        _ => Line::Line(line),
    })
}

/// The outcome a response line gives for request `id` with `value`; the error says what
/// is wrong with a line that is not such a response.
pub fn parse_response(line: &[u8], id: u64, value: &Value) -> Result<Outcome, String> {
    let text = std::str::from_utf8(line).map_err(|_| "a response that is not UTF-8".to_string())?;
    let shown: String = text.trim_end().chars().take(SHOWN_CHARS).collect();
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("a response that is not JSON ({e}): {shown}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("a response that is not an object: {shown}"))?;
    match obj.get("id").and_then(Value::as_u64) {
        Some(got) if got == id => {}
        Some(got) => return Err(format!("a response to request {got}, not {id}")),
        None => return Err(format!("a response without a numeric id: {shown}")),
    }
    let op_type = match obj.get("type").and_then(Value::as_str) {
        Some("ok") => OpType::Ok,
        Some("fail") => OpType::Fail,
        Some("info") => OpType::Info,
        _ => {
            return Err(format!(
                "a response whose type is not ok, fail or info: {shown}"
            ))
        }
    };
    let value = obj.get("value").cloned().unwrap_or_else(|| value.clone());
    let mut outcome = match op_type {
        OpType::Ok => Outcome::ok(value),
        OpType::Fail => Outcome::fail(value, ""),
        _ => Outcome::info(value, ""),
    };
    outcome.error = obj.get("error").cloned().filter(|e| !e.is_null());
    if op_type != OpType::Ok && outcome.error.is_none() {
        outcome.error = Some(Value::from(op_type.as_str()));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_object_per_line() {
        let line = request_line(7, 3, "cas", &json!(["k", [1, 2]]));
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            json!({"id": 7, "worker": 3, "f": "cas", "value": ["k", [1, 2]]})
        );
        // A newline inside a value is escaped, so it cannot split the request.
        let line = request_line(1, 0, "write", &json!(["k", "a\nb"]));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[tokio::test]
    async fn lines_are_read_one_at_a_time_and_bounded() {
        let mut input: &[u8] = b"{\"a\":1}\nsecond\nlast without newline";
        assert_eq!(
            read_line(&mut input, 100).await.unwrap(),
            Line::Line(b"{\"a\":1}\n".to_vec())
        );
        assert_eq!(
            read_line(&mut input, 100).await.unwrap(),
            Line::Line(b"second\n".to_vec())
        );
        assert_eq!(
            read_line(&mut input, 100).await.unwrap(),
            Line::Line(b"last without newline".to_vec())
        );
        assert_eq!(read_line(&mut input, 100).await.unwrap(), Line::Closed);
        // Exactly at the limit (newline included) is a line; one byte more is not.
        let mut exact: &[u8] = b"abcd\n";
        assert!(matches!(
            read_line(&mut exact, 5).await.unwrap(),
            Line::Line(_)
        ));
        let mut long: &[u8] = b"abcde\n";
        assert_eq!(read_line(&mut long, 5).await.unwrap(), Line::TooLong);
    }

    #[test]
    fn responses_map_to_outcomes_and_garbage_is_named() {
        let v = json!(["k", 1]);
        let o = parse_response(br#"{"id":3,"type":"ok","value":["k",5]}"#, 3, &v).unwrap();
        assert_eq!((o.op_type, o.value), (OpType::Ok, json!(["k", 5])));
        let o = parse_response(br#"{"id":3,"type":"fail","error":"not leader"}"#, 3, &v).unwrap();
        assert_eq!(
            (o.op_type, o.value, o.error),
            (OpType::Fail, v.clone(), Some(json!("not leader")))
        );
        let o = parse_response(br#"{"id":3,"type":"info"}"#, 3, &v).unwrap();
        assert_eq!((o.op_type, o.error), (OpType::Info, Some(json!("info"))));
        for (line, want) in [
            (&b"hello"[..], "not JSON"),
            (br#"[1]"#, "not an object"),
            (br#"{"id":2,"type":"ok"}"#, "a response to request 2, not 3"),
            (br#"{"type":"ok"}"#, "without a numeric id"),
            (br#"{"id":3,"type":"maybe"}"#, "not ok, fail or info"),
            (b"\xff\xfe", "not UTF-8"),
        ] {
            let e = parse_response(line, 3, &v).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        // A quoted bad line is cut short.
        let long = format!("x{}", "y".repeat(1000));
        let e = parse_response(long.as_bytes(), 3, &v).unwrap_err();
        assert!(e.len() < SHOWN_CHARS + 100, "{e}");
    }
}
