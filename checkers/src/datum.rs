//! A hashable, totally ordered value for model states and operation inputs.
//!
//! `serde_json::Value` has neither `Hash` nor `Ord`; models need both to intern states and to
//! keep set-like states canonical. Conversion is lossless for everything histories contain.

use serde_json::Value;
use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Datum {
    Null,
    Bool(bool),
    Int(i64),
    /// Numbers that are not i64 (large unsigned, floats), kept by their JSON text.
    Num(Box<str>),
    Str(Box<str>),
    List(Box<[Datum]>),
    /// Sorted by key, so equal maps compare equal.
    Map(Box<[(Datum, Datum)]>),
}

impl Datum {
    pub fn from_json(v: &Value) -> Datum {
        match v {
            Value::Null => Datum::Null,
            Value::Bool(b) => Datum::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Datum::Int(i),
                None => Datum::Num(n.to_string().into()),
            },
            Value::String(s) => Datum::Str(s.as_str().into()),
            Value::Array(a) => Datum::List(a.iter().map(Datum::from_json).collect()),
            Value::Object(m) => {
                let mut entries: Vec<(Datum, Datum)> = m
                    .iter()
                    .map(|(k, v)| (Datum::Str(k.as_str().into()), Datum::from_json(v)))
                    .collect();
                entries.sort();
                Datum::Map(entries.into())
            }
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Datum::Null => Value::Null,
            Datum::Bool(b) => Value::Bool(*b),
            Datum::Int(i) => Value::from(*i),
            Datum::Num(s) => {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
            }
            Datum::Str(s) => Value::String(s.to_string()),
            Datum::List(l) => Value::Array(l.iter().map(Datum::to_json).collect()),
            Datum::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| match k {
                        Datum::Str(s) => (s.to_string(), v.to_json()),
                        other => (other.to_string(), v.to_json()),
                    })
                    .collect(),
            ),
        }
    }

    /// Heap and inline bytes, roughly: what interning this value costs.
    pub fn approx_bytes(&self) -> usize {
        let inline = std::mem::size_of::<Datum>();
        match self {
            Datum::Num(s) | Datum::Str(s) => inline + s.len(),
            Datum::List(l) => inline + l.iter().map(Datum::approx_bytes).sum::<usize>(),
            Datum::Map(m) => {
                inline
                    + m.iter()
                        .map(|(k, v)| k.approx_bytes() + v.approx_bytes())
                        .sum::<usize>()
            }
            _ => inline,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }
}

impl fmt::Display for Datum {
    /// Compact JSON, as explanations show values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl fmt::Debug for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_canonicalises_maps() {
        let a = Datum::from_json(&json!({"b": 1, "a": [1, "x", null, 1.5]}));
        let b = Datum::from_json(&json!({"a": [1, "x", null, 1.5], "b": 1}));
        assert_eq!(a, b);
        assert_eq!(a.to_json(), json!({"a": [1, "x", null, 1.5], "b": 1}));
        assert_eq!(
            Datum::from_json(&json!(u64::MAX)).to_json(),
            json!(u64::MAX)
        );
    }
}
