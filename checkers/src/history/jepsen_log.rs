//! Jepsen `jepsen.util` log lines, as in Porcupine's etcd data:
//! `INFO  jepsen.util - 3 :invoke :cas [1 4]` (fields separated by tabs or spaces).
//!
//! Only lines containing `jepsen.util - ` are read; everything else in a `jepsen.log` (other
//! loggers, timestamps before the marker) is skipped. After the marker come PROC TYPE F VALUE
//! and an optional error, each an EDN form. An `:info` or `:fail` whose value is a keyword
//! (`:timed-out`) never learnt its result: the keyword becomes the op's `error` and its `value`
//! is the invocation's, as Jepsen itself would record the op.

use super::edn::{foreign_op, Parser};
use super::{Format, History, HistoryError, Op, OpType, Process, Value, MAX_OPS};
use rustc_hash::FxHashMap;
use serde_json::Map;

const MARKER: &str = "jepsen.util - ";

/// Parses the op lines of a Jepsen log.
pub fn read(file: &str, text: &str) -> Result<History, HistoryError> {
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    let mut invoked: FxHashMap<Process, Value> = FxHashMap::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let Some(at) = raw.find(MARKER) else {
            continue;
        };
        let rest = raw.get(at + MARKER.len()..).unwrap_or("");
        let Some(fields) = parse_fields(file, line, rest)? else {
            continue;
        };
        if ops.len() >= MAX_OPS {
            let problem = format!("more than {MAX_OPS} events");
            return Err(HistoryError::Whole {
                file: file.to_string(),
                problem,
            });
        }
        let op = fields.into_op(ops.len(), file, line, &mut invoked)?;
        ops.push(op);
        lines.push(line);
    }
    History::new(file, Format::JepsenLog, ops, lines)
}

/// The EDN forms of one op line.
struct Fields {
    process: Value,
    op_type: Value,
    f: Value,
    value: Value,
    /// The value was a keyword such as `:timed-out` rather than data.
    value_is_keyword: bool,
    error: Option<Value>,
}

impl Fields {
    fn into_op(
        self,
        position: usize,
        file: &str,
        line: usize,
        invoked: &mut FxHashMap<Process, Value>,
    ) -> Result<Op, HistoryError> {
        let mut map = Map::new();
        map.insert("process".into(), self.process);
        map.insert("type".into(), self.op_type);
        map.insert("f".into(), self.f);
        map.insert("value".into(), self.value);
        if let Some(error) = self.error {
            map.insert("error".into(), error);
        }
        let mut op = foreign_op(map, position, file, line)?;
        if op.op_type == OpType::Invoke {
            invoked.insert(op.process.clone(), op.value.clone());
            return Ok(op);
        }
        let invocation_value = invoked.remove(&op.process);
        let unknown = matches!(op.op_type, OpType::Info | OpType::Fail) && self.value_is_keyword;
        if unknown {
            let reason = std::mem::replace(&mut op.value, invocation_value.unwrap_or(Value::Null));
            op.error.get_or_insert(reason);
        }
        Ok(op)
    }
}

/// Parses what follows the marker; `None` when it is some other message, not an op.
fn parse_fields(file: &str, line: usize, rest: &str) -> Result<Option<Fields>, HistoryError> {
    if !looks_like_op(rest) {
        return Ok(None);
    }
    let mut p = Parser::new(file, rest, line);
    let process = form(&mut p)?;
    let op_type = form(&mut p)?;
    let f = form(&mut p)?;
    p.skip_ws(0).map_err(|fault| p.fail(fault))?;
    let value_is_keyword = p.peek() == Some(b':');
    let value = if p.at_end() {
        Value::Null
    } else {
        form(&mut p)?
    };
    let error = trailing_error(&mut p);
    Ok(Some(Fields {
        process,
        op_type,
        f,
        value,
        value_is_keyword,
        error,
    }))
}

/// Op lines start with a process id (an integer, or a keyword such as `:nemesis`) and a `:type`
/// keyword; other jepsen.util messages start with words.
fn looks_like_op(rest: &str) -> bool {
    let mut words = rest.split_whitespace();
    let process = words.next().unwrap_or("");
    let is_process = process.starts_with(':')
        || (!process.is_empty() && process.bytes().all(|b| b.is_ascii_digit()));
    is_process && words.next().is_some_and(|t| t.starts_with(':'))
}

/// The next EDN form of the line.
fn form(p: &mut Parser) -> Result<Value, HistoryError> {
    p.skip_ws(0).map_err(|f| p.fail(f))?;
    p.parse_value(0).map_err(|f| p.fail(f))
}

/// Newer Jepsen logs an op's error after its value: as EDN when it reads as one form, else as
/// the raw text.
fn trailing_error(p: &mut Parser) -> Option<Value> {
    if p.skip_ws(0).is_err() {
        return Some(Value::String(p.rest().trim().to_string()));
    }
    if p.at_end() {
        return None;
    }
    let raw = p.rest().trim_end().to_string();
    match p.parse_value(0) {
        Ok(v) if p.skip_ws(0).is_ok() && p.at_end() => Some(v),
        _ => Some(Value::String(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timed_out_keeps_the_invocation_value() {
        let text = "noise\nINFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]\n2015-01-01 INFO jepsen.util - 3 :info :cas :timed-out\nINFO jepsen.util - Running test\nINFO jepsen.util - 2 nodes up\n";
        let h = read("j.log", text).unwrap();
        assert_eq!(h.lines, vec![2, 3]);
        assert_eq!(h.ops[1].value, json!([1, 4]));
        assert_eq!(h.ops[1].error, Some(json!("timed-out")));
        assert_eq!(h.ops[1].process, Process::Client(3));
    }

    #[test]
    fn bad_type_names_the_line() {
        let e = read("j.log", "\nINFO jepsen.util - 0 :maybe :read nil").unwrap_err();
        assert_eq!(
            e.to_string(),
            "j.log:2: unknown type \"maybe\": expected invoke, ok, fail or info"
        );
        let e = read("j.log", "INFO jepsen.util - 0 :invoke :read [1").unwrap_err();
        assert!(
            e.to_string().starts_with("j.log:1: unterminated vector"),
            "{e}"
        );
    }
}
