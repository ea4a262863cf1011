//! Micro-ops in Jepsen/Elle's JSON shapes: `["r", k, null]` (with the value read once it
//! completed: a list, an integer or `null`), `["w", k, v]`, `["append", k, v]`. Histories
//! record transactions this way (`f: "txn"`, the value an array of micro-ops), and a client
//! that speaks JSON sends them this way.

use crate::proto::{Key, Mop, Val};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("micro-op {index}: {problem}")]
pub struct MopError {
    pub index: usize,
    pub problem: String,
}

pub fn val_to_json(v: &Val) -> Value {
    match v {
        Val::Int(i) => Value::from(*i),
        Val::List(l) => Value::from(l.clone()),
    }
}

pub fn mop_to_json(m: &Mop) -> Value {
    match m {
        Mop::Read { key, value } => Value::from(vec![
            Value::from("r"),
            Value::from(*key),
            value.as_ref().map_or(Value::Null, val_to_json),
        ]),
        Mop::Write { key, value } => Value::from(vec![
            Value::from("w"),
            Value::from(*key),
            Value::from(*value),
        ]),
        Mop::Append { key, value } => Value::from(vec![
            Value::from("append"),
            Value::from(*key),
            Value::from(*value),
        ]),
    }
}

pub fn mops_to_json(ops: &[Mop]) -> Value {
    Value::from(ops.iter().map(mop_to_json).collect::<Vec<_>>())
}

/// Reads one micro-op; a read may carry what it read (a completion) or `null` (a request).
pub fn mop_from_json(index: usize, v: &Value) -> Result<Mop, MopError> {
    let bad = |problem: &str| MopError {
        index,
        problem: problem.to_string(),
    };
    let parts = v
        .as_array()
        .filter(|a| a.len() == 3)
        .ok_or_else(|| bad("expected [f, key, value]"))?;
    let key: Key = parts[1]
        .as_u64()
        .ok_or_else(|| bad("the key must be an unsigned integer"))?;
    let int = |v: &Value| {
        v.as_i64()
            .ok_or_else(|| bad("the value must be an integer"))
    };
    match parts[0].as_str() {
        Some("r") => {
            let value = match &parts[2] {
                Value::Null => None,
                Value::Array(items) => {
                    Some(Val::List(items.iter().map(int).collect::<Result<_, _>>()?))
                }
                other => Some(Val::Int(int(other)?)),
            };
            Ok(Mop::Read { key, value })
        }
        Some("w") => Ok(Mop::Write {
            key,
            value: int(&parts[2])?,
        }),
        Some("append") => Ok(Mop::Append {
            key,
            value: int(&parts[2])?,
        }),
        _ => Err(bad("f must be \"r\", \"w\" or \"append\"")),
    }
}

pub fn mops_from_json(v: &Value) -> Result<Vec<Mop>, MopError> {
    let items = v.as_array().ok_or_else(|| MopError {
        index: 0,
        problem: "a transaction is an array of micro-ops".into(),
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, m)| mop_from_json(i, m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn micro_ops_round_trip_in_elles_shapes() {
        let v = json!([
            ["r", 1, null],
            ["append", 1, 3],
            ["r", 1, [1, 3]],
            ["w", 2, -4],
            ["r", 2, 5]
        ]);
        let ops = mops_from_json(&v).unwrap();
        assert_eq!(
            ops[2],
            Mop::Read {
                key: 1,
                value: Some(Val::List(vec![1, 3]))
            }
        );
        assert_eq!(
            ops[4],
            Mop::Read {
                key: 2,
                value: Some(Val::Int(5))
            }
        );
        assert_eq!(mops_to_json(&ops), v);
        for bad in [
            json!([["x", 1, 2]]),
            json!([["w", -1, 2]]),
            json!([["w", 1]]),
            json!({}),
        ] {
            assert!(mops_from_json(&bad).is_err(), "{bad}");
        }
    }
}
