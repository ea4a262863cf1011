//! Faultline's own history format: one JSON object per line, Jepsen's op map.
//!
//! `op_from_map` and `write_op` are also the conversion every other reader goes through, so the
//! field rules (required fields, types, what is kept in `extra`) live in exactly one place.

use super::{Format, History, HistoryError, Op, OpType, Process, Value, MAX_DEPTH, MAX_OPS};
use serde_json::Map;
use std::fmt::Write as _;

/// Longest line we accept; a longer one is almost certainly not a history.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// How strictly `op_from_map` treats fields that Faultline always writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// Faultline's JSON lines: `type`, `process` and `f` are required.
    Native,
    /// Foreign formats (Elle, Knossos, elle-cli): `process` may be absent (one implicit process),
    /// and `f` may be absent for transactions (it becomes `txn`).
    Foreign,
}

/// Parses JSON lines. Blank lines are allowed; anything else that is not an op map is an error.
pub fn read(file: &str, text: &str) -> Result<History, HistoryError> {
    let (ops, lines) = read_lean(file, text, |op| op)?;
    History::new(file, Format::JsonLines, ops, lines)
}

/// Reads Faultline's JSON lines, handing each op to `lean` as soon as it is parsed, and returns
/// what `lean` made of each with its source line. A checker that needs only part of each op
/// (a transaction's micro-ops, say) never holds the whole history's JSON values this way.
///
/// Lines are independent, so large files are parsed in chunks on every core; the chunks are
/// joined in file order and the first error in file order wins, as if read serially.
pub fn read_lean<T: Send>(
    file: &str,
    text: &str,
    lean: impl Fn(Op) -> T + Sync,
) -> Result<(Vec<T>, Vec<usize>), HistoryError> {
    use rayon::prelude::*;
    let chunks = chunks_at_lines(text, PARALLEL_CHUNK_BYTES);
    let parsed: Vec<Chunk<T>> = chunks
        .par_iter()
        .map(|&(first_line, chunk)| read_chunk(file, chunk, first_line, &lean))
        .collect();
    let total: usize = parsed
        .iter()
        .map(|p| p.as_ref().map_or(0, |(o, _)| o.len()))
        .sum();
    if total > MAX_OPS {
        return Err(HistoryError::Whole {
            file: file.to_string(),
            problem: format!("{total} events exceed the limit of {MAX_OPS}"),
        });
    }
    let mut ops = Vec::with_capacity(total);
    let mut lines = Vec::with_capacity(total);
    for part in parsed {
        let (o, l) = part?;
        ops.extend(o);
        lines.extend(l);
    }
    Ok((ops, lines))
}

/// One chunk's mapped ops and their lines, or its first error.
type Chunk<T> = Result<(Vec<T>, Vec<usize>), HistoryError>;

/// Chunks of a parallel parse; small enough to balance two to a few dozen cores.
const PARALLEL_CHUNK_BYTES: usize = 8 << 20;

/// Splits `text` into pieces of about `size` bytes that end at line ends, each with the
/// 1-based number of its first line.
fn chunks_at_lines(text: &str, size: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while !rest.is_empty() {
        let mut end = rest.len().min(size);
        while end < rest.len() && !rest.is_char_boundary(end) {
            end += 1;
        }
        let cut = match rest[end..].find('\n') {
            Some(i) if end < rest.len() => end + i + 1,
            _ => rest.len(),
        };
        let (chunk, tail) = rest.split_at(cut);
        out.push((line, chunk));
        line += chunk.bytes().filter(|&b| b == b'\n').count();
        rest = tail;
    }
    out
}

fn read_chunk<T>(file: &str, text: &str, first_line: usize, lean: &impl Fn(Op) -> T) -> Chunk<T> {
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = first_line + i;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.len() > MAX_LINE_BYTES {
            return Err(HistoryError::at(file, line, "line longer than 64 MiB"));
        }
        if !trimmed.starts_with('{') {
            return Err(HistoryError::at(
                file,
                line,
                "expected a JSON object (an op map)",
            ));
        }
        let fields: Fields = serde_json::from_str(trimmed)
            .map_err(|e| HistoryError::at(file, line, format!("not valid JSON: {e}")))?;
        ops.push(lean(op_from_fields(
            fields,
            Strictness::Native,
            file,
            line,
        )?));
        lines.push(line);
        if ops.len() > MAX_OPS {
            return Err(HistoryError::at(
                file,
                line,
                format!("more than {MAX_OPS} events"),
            ));
        }
    }
    Ok((ops, lines))
}

/// Converts one op map to an [`Op`]. Keys are field names without a leading colon.
pub fn op_from_map(
    map: Map<String, Value>,
    strictness: Strictness,
    file: &str,
    line: usize,
) -> Result<Op, HistoryError> {
    op_from_fields(Fields::from_map(map), strictness, file, line)
}

/// The fields of one op map as they came, before any is checked. Faultline's own lines
/// deserialize straight into this (no map of owned keys); other readers go through a map.
#[derive(Default)]
pub struct Fields {
    op_type: Option<Value>,
    process: Option<Value>,
    f: Option<Value>,
    value: Option<Value>,
    time: Option<Value>,
    index: Option<Value>,
    node: Option<Value>,
    error: Option<Value>,
    extra: Map<String, Value>,
}

impl Fields {
    fn from_map(mut map: Map<String, Value>) -> Fields {
        Fields {
            op_type: map.remove("type"),
            process: map.remove("process"),
            f: map.remove("f"),
            value: map.remove("value"),
            time: map.remove("time"),
            index: map.remove("index"),
            node: map.remove("node"),
            error: map.remove("error"),
            extra: map,
        }
    }

    fn slot(&mut self, key: &str) -> Option<&mut Option<Value>> {
        Some(match key {
            "type" => &mut self.op_type,
            "process" => &mut self.process,
            "f" => &mut self.f,
            "value" => &mut self.value,
            "time" => &mut self.time,
            "index" => &mut self.index,
            "node" => &mut self.node,
            "error" => &mut self.error,
            _ => return None,
        })
    }
}

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object (an op map)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Fields, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = m.next_key::<Key<'de>>()? {
            let name: &str = match &key {
                Key::Borrowed(k) => k,
                Key::Owned(k) => k,
            };
            match fields.slot(name) {
                Some(slot) => *slot = Some(m.next_value()?),
                None => {
                    let v = m.next_value()?;
                    fields.extra.insert(name.to_string(), v);
                }
            }
        }
        Ok(fields)
    }
}

/// A map key, borrowed from the input when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_string()))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Checks and converts the fields of one op map to an [`Op`].
fn op_from_fields(
    mut map: Fields,
    strictness: Strictness,
    file: &str,
    line: usize,
) -> Result<Op, HistoryError> {
    let bad = |problem: String| HistoryError::at(file, line, problem);
    let op_type = match map.op_type.take() {
        Some(Value::String(s)) => OpType::parse(&s).ok_or_else(|| {
            bad(format!(
                "unknown type {s:?}: expected invoke, ok, fail or info"
            ))
        })?,
        Some(other) => return Err(bad(format!("type must be a string, got {other}"))),
        None => return Err(bad("missing field \"type\"".into())),
    };
    let process = match map.process.take() {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(p) => Process::Client(p),
            None => {
                return Err(bad(format!(
                    "process must be a non-negative integer or a name, got {n}"
                )))
            }
        },
        Some(Value::String(s)) => Process::Named(s),
        None | Some(Value::Null) if strictness == Strictness::Foreign => {
            Process::Named("nil".into())
        }
        Some(other) => {
            return Err(bad(format!(
                "process must be a non-negative integer or a name, got {other}"
            )))
        }
        None => return Err(bad("missing field \"process\"".into())),
    };
    let value = map.value.take().unwrap_or(Value::Null);
    check_depth(&value, 0)
        .map_err(|_| bad(format!("value nested deeper than {MAX_DEPTH} levels")))?;
    let f = match map.f.take() {
        Some(Value::String(s)) => s,
        Some(other) => return Err(bad(format!("f must be a string, got {other}"))),
        None if strictness == Strictness::Foreign && looks_like_txn(&value) => "txn".to_string(),
        None => return Err(bad("missing field \"f\"".into())),
    };
    let time = match map.time.take() {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| bad(format!("time must be a non-negative integer (ns), got {n}")))?,
        ),
        Some(other) => return Err(bad(format!("time must be an integer (ns), got {other}"))),
    };
    let index = match map.index.take() {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| bad(format!("index must be a non-negative integer, got {n}")))?,
        ),
        Some(other) => return Err(bad(format!("index must be an integer, got {other}"))),
    };
    if strictness == Strictness::Foreign {
        // Foreign indices may start at 1 or have gaps; we renumber densely and keep theirs.
        if let Some(i) = index {
            map.extra.insert("source-index".to_string(), Value::from(i));
        }
    }
    let node = match map.node.take() {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => return Err(bad(format!("node must be a string, got {other}"))),
    };
    let error = map.error.take();
    Ok(Op {
        index: index.unwrap_or(0),
        time,
        op_type,
        process,
        f,
        value,
        node,
        error,
        extra: map.extra,
    })
}

/// Elle's histories omit `:f` on transactions: a vector of `[f k v]` micro-ops.
fn looks_like_txn(value: &Value) -> bool {
    match value {
        Value::Array(mops) => {
            !mops.is_empty()
                && mops.iter().all(|m| matches!(m, Value::Array(parts) if matches!(parts.first(), Some(Value::String(_)))))
        }
        _ => false,
    }
}

fn check_depth(v: &Value, depth: usize) -> Result<(), ()> {
    if depth > MAX_DEPTH {
        return Err(());
    }
    // Scalars are leaves: only containers need a call (read lists hold millions of numbers).
    let child = |x: &Value| match x {
        Value::Array(_) | Value::Object(_) => check_depth(x, depth + 1),
        _ if depth + 1 > MAX_DEPTH => Err(()),
        _ => Ok(()),
    };
    match v {
        Value::Array(a) => a.iter().try_for_each(child),
        Value::Object(m) => m.values().try_for_each(child),
        _ => Ok(()),
    }
}

/// Appends one op as a JSON line (with its newline) in Faultline's field order.
pub fn write_op(out: &mut String, op: &Op) {
    let _ = write!(out, "{{\"index\":{}", op.index);
    if let Some(t) = op.time {
        let _ = write!(out, ",\"time\":{t}");
    }
    let _ = write!(out, ",\"type\":\"{}\",\"process\":", op.op_type.as_str());
    match &op.process {
        Process::Client(p) => {
            let _ = write!(out, "{p}");
        }
        Process::Named(n) => push_json(out, &Value::String(n.clone())),
    }
    out.push_str(",\"f\":");
    push_json(out, &Value::String(op.f.clone()));
    out.push_str(",\"value\":");
    push_json(out, &op.value);
    if let Some(node) = &op.node {
        out.push_str(",\"node\":");
        push_json(out, &Value::String(node.clone()));
    }
    if let Some(error) = &op.error {
        out.push_str(",\"error\":");
        push_json(out, error);
    }
    for (k, v) in &op.extra {
        out.push(',');
        push_json(out, &Value::String(k.clone()));
        out.push(':');
        push_json(out, v);
    }
    out.push_str("}\n");
}

fn push_json(out: &mut String, v: &Value) {
    // serde_json writing to a String cannot fail.
    out.push_str(&serde_json::to_string(v).expect("JSON values always serialize"));
}

/// Writes a whole history as JSON lines.
pub fn write(ops: &[Op]) -> String {
    let mut out = String::with_capacity(ops.len() * 96);
    for op in ops {
        write_op(&mut out, op);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_the_contract() {
        let text = concat!(
            "{\"index\":0,\"time\":5,\"type\":\"invoke\",\"process\":0,\"f\":\"cas\",\"value\":[1,2],\"node\":\"n1\"}\n",
            "{\"index\":1,\"time\":9,\"type\":\"fail\",\"process\":0,\"f\":\"cas\",\"value\":[1,2],\"error\":\"mismatch\",\"note\":7}\n",
            "{\"index\":2,\"time\":10,\"type\":\"info\",\"process\":\"nemesis\",\"f\":\"start\",\"value\":{\"partition\":[[\"n1\"],[\"n2\"]]}}\n",
        );
        let h = read("t.jsonl", text).unwrap();
        assert_eq!(h.ops.len(), 3);
        assert_eq!(h.ops[1].error, Some(Value::from("mismatch")));
        assert_eq!(h.ops[1].extra.get("note"), Some(&Value::from(7)));
        assert_eq!(h.ops[2].process, Process::nemesis());
        assert_eq!(write(&h.ops), text);
    }

    #[test]
    fn unknown_type_names_file_line_and_problem() {
        let text = "{\"index\":0,\"time\":1,\"type\":\"maybe\",\"process\":0,\"f\":\"read\",\"value\":null}\n";
        let e = read("x.jsonl", text).unwrap_err().to_string();
        assert_eq!(
            e,
            "x.jsonl:1: unknown type \"maybe\": expected invoke, ok, fail or info"
        );
    }

    #[test]
    fn malformed_json_is_an_error() {
        let e = read("x.jsonl", "\n{\"index\":0,").unwrap_err().to_string();
        assert!(e.starts_with("x.jsonl:2: not valid JSON"), "{e}");
    }

    #[test]
    fn missing_process_is_an_error_in_native_format() {
        let e = read("x.jsonl", "{\"type\":\"invoke\",\"f\":\"read\"}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field \"process\""), "{e}");
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    #[test]
    fn chunks_cover_the_text_and_know_their_first_line() {
        let text = "a\nbb\nccc\n\ndddd\ne";
        let chunks = chunks_at_lines(text, 3);
        let joined: String = chunks.iter().map(|c| c.1).collect();
        assert_eq!(joined, text);
        for &(line, chunk) in &chunks {
            let first = text.lines().nth(line - 1).unwrap_or("");
            assert_eq!(chunk.lines().next().unwrap_or(""), first, "chunk {chunk:?}");
            assert!(chunk.ends_with('\n') || chunk.ends_with('e'));
        }
        assert!(chunks.len() > 2);
    }

    #[test]
    fn an_error_in_a_later_chunk_names_its_line() {
        let good = r#"{"type":"invoke","process":0,"f":"read","value":null}"#;
        let mut text = String::new();
        for _ in 0..3 {
            text.push_str(good);
            text.push('\n');
        }
        text.push_str("not json\n");
        let chunks = chunks_at_lines(&text, 10);
        let err = chunks
            .iter()
            .map(|&(l, c)| read_chunk("f", c, l, &|op| op))
            .find_map(Result::err)
            .unwrap();
        assert!(err.to_string().contains(":4:"), "{err}");
    }
}
