//! Porcupine's key-value logs (MIT 6.824 lab histories), one EDN map per line:
//! `{:process 0, :type :invoke, :f :put, :key "4", :value "x 0 1 y"}`.
//!
//! Faultline's multi-key shape keeps `f` (get, put, append) and makes `value` the pair
//! `[key, value]`, so per-key models can partition on the first element.

use super::edn::{foreign_op, read_ops, Parser};
use super::{Format, History, HistoryError, Value};

/// Parses a Porcupine kv log.
pub fn read(file: &str, text: &str) -> Result<History, HistoryError> {
    let (ops, lines) = read_ops(file, text, |mut map, position, line| {
        let Some(key) = map.remove("key") else {
            return Err(HistoryError::at(file, line, "missing field \"key\""));
        };
        let value = map.remove("value").unwrap_or(Value::Null);
        map.insert("value".to_string(), Value::Array(vec![key, value]));
        foreign_op(map, position, file, line)
    })?;
    History::new(file, Format::PorcupineKv, ops, lines)
}

/// Whether a history's first line is a Porcupine kv op: an EDN map with a `:key` and an `:f` of
/// get, put or append.
pub fn looks_like(first_line: &str) -> bool {
    if !first_line.contains(":key") {
        return false;
    }
    let mut parser = Parser::new("", first_line, 1);
    let Ok(Value::Object(map)) = parser.parse_value(0) else {
        return false;
    };
    let kv_f = matches!(map.get("f"), Some(Value::String(f)) if matches!(f.as_str(), "get" | "put" | "append"));
    kv_f && map.contains_key("key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn value_becomes_key_value_pair() {
        let text = "{:process 0, :type :invoke, :f :get, :key \"5\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"5\", :value \"\"}\n";
        assert!(looks_like(text.lines().next().unwrap()));
        let h = read("kv.txt", text).unwrap();
        assert_eq!(h.ops[0].value, json!(["5", null]));
        assert_eq!(h.ops[1].value, json!(["5", ""]));
        assert_eq!(h.ops[1].f, "get");
    }

    #[test]
    fn missing_key_names_the_line() {
        let e = read("kv.txt", "\n{:process 0, :type :invoke, :f :get}").unwrap_err();
        assert_eq!(e.to_string(), "kv.txt:2: missing field \"key\"");
        assert!(!looks_like(
            "{:process 0, :type :invoke, :f :read, :value nil}"
        ));
    }
}
