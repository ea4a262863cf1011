//! Clients that perform register operations on etcd: the honest one, and one that is broken on
//! purpose so that tests can show the harness catches a non-linearizable system.
//!
//! Each key `k` is the etcd key `<prefix><k>`, holding the value as a decimal string. The rule
//! that matters is Jepsen's: an operation is reported `fail` only when it certainly did not take
//! effect. Reads change nothing, so they may always fail; a write or cas fails only on an error
//! that etcd or the transport guarantees was not applied, and is `info` otherwise.

use crate::client::{Client, Outcome};
use crate::etcd::{EtcdClient, EtcdError};
use checkers::history::Value;
use serde_json::json;
use std::collections::HashMap;

/// An operation as the register workload writes it in histories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    Read { key: i64 },
    Write { key: i64, value: i64 },
    Cas { key: i64, old: i64, new: i64 },
}

/// An invocation the register clients cannot perform; nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("the register workload has no operation {0:?}; it knows read, write and cas")]
    UnknownF(String),
    #[error("a {f} value must be {shape} with integers, got {value}")]
    Shape {
        f: &'static str,
        shape: &'static str,
        value: String,
    },
}

impl RegisterOp {
    /// Reads `read [k, null]`, `write [k, v]` and `cas [k, [old, new]]`.
    pub fn parse(f: &str, value: &Value) -> Result<RegisterOp, OpError> {
        let int = |v: &Value| v.as_i64();
        let parsed = match f {
            "read" => value
                .as_array()
                .filter(|a| a.len() == 2)
                .and_then(|a| Some(RegisterOp::Read { key: int(&a[0])? })),
            "write" => value.as_array().filter(|a| a.len() == 2).and_then(|a| {
                Some(RegisterOp::Write {
                    key: int(&a[0])?,
                    value: int(&a[1])?,
                })
            }),
            "cas" => value.as_array().filter(|a| a.len() == 2).and_then(|a| {
                let pair = a[1].as_array().filter(|p| p.len() == 2)?;
                Some(RegisterOp::Cas {
                    key: int(&a[0])?,
                    old: int(&pair[0])?,
                    new: int(&pair[1])?,
                })
            }),
            other => return Err(OpError::UnknownF(other.to_string())),
        };
        parsed.ok_or_else(|| {
            let (f, shape) = match f {
                "read" => ("read", "[key, null]"),
                "write" => ("write", "[key, value]"),
                _ => ("cas", "[key, [old, new]]"),
            };
            const SHOWN_CHARS: usize = 200;
            let text = value.to_string();
            let mut shown: String = text.chars().take(SHOWN_CHARS).collect();
            if shown.len() < text.len() {
                shown.push_str("...");
            }
            OpError::Shape {
                f,
                shape,
                value: shown,
            }
        })
    }
}

/// The register workload's client: linearizable reads, plain puts, and cas as a transaction.
#[derive(Debug)]
pub struct RegisterClient {
    etcd: EtcdClient,
    key_prefix: String,
}

impl RegisterClient {
    pub fn new(etcd: EtcdClient, key_prefix: impl Into<String>) -> RegisterClient {
        RegisterClient {
            etcd,
            key_prefix: key_prefix.into(),
        }
    }

    fn etcd_key(&self, key: i64) -> String {
        format!("{}{key}", self.key_prefix)
    }

    async fn perform(&mut self, op: RegisterOp, value: &Value) -> Outcome {
        match op {
            RegisterOp::Read { key } => match self.etcd.get(&self.etcd_key(key)).await {
                Ok(read) => Outcome::ok(json!([key, read.as_deref().map(register_value)])),
                // A read that did not return changed nothing.
                Err(e) => Outcome::fail(value.clone(), e.to_string()),
            },
            RegisterOp::Write { key, value: v } => {
                match self.etcd.put(&self.etcd_key(key), &v.to_string()).await {
                    Ok(()) => Outcome::ok(value.clone()),
                    Err(e) => write_error(value, e),
                }
            }
            RegisterOp::Cas { key, old, new } => {
                let k = self.etcd_key(key);
                match self.etcd.cas(&k, &old.to_string(), &new.to_string()).await {
                    Ok(true) => Outcome::ok(value.clone()),
                    // The compare ran and did not match, so the put did not happen.
                    Ok(false) => Outcome::fail(value.clone(), format!("the value was not {old}")),
                    Err(e) => write_error(value, e),
                }
            }
        }
    }
}

impl Client for RegisterClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        match RegisterOp::parse(f, value) {
            Ok(op) => self.perform(op, value).await,
            Err(e) => Outcome::fail(value.clone(), e.to_string()),
        }
    }
}

/// A write's error: `fail` only if it certainly did not apply.
fn write_error(value: &Value, e: EtcdError) -> Outcome {
    if e.is_definite() {
        Outcome::fail(value.clone(), e.to_string())
    } else {
        Outcome::info(value.clone(), e.to_string())
    }
}

/// What a read saw: the integer we wrote, or the raw text if someone else wrote the key, so
/// that the checker reports the surprise instead of the client hiding it.
fn register_value(stored: &str) -> Value {
    match stored.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(stored),
    }
}

/// A cache this size is cleared rather than grown: the workload retires keys, so old entries
/// are dead weight.
const MAX_CACHED_KEYS: usize = 10_000;

/// Deliberately broken: serves reads from a per-client cache filled on the client's first read
/// of a key and refreshed only by its own successful writes and cas. Other clients' writes are
/// invisible to it, so concurrent histories contain stale reads that no linearization
/// explains. It exists to test that the harness and checker catch such a system.
#[derive(Debug)]
pub struct StaleCacheClient {
    inner: RegisterClient,
    cache: HashMap<i64, Value>,
}

impl StaleCacheClient {
    pub fn new(etcd: EtcdClient, key_prefix: impl Into<String>) -> StaleCacheClient {
        StaleCacheClient {
            inner: RegisterClient::new(etcd, key_prefix),
            cache: HashMap::new(),
        }
    }

    fn remember(&mut self, key: i64, value: Value) {
        if self.cache.len() >= MAX_CACHED_KEYS && !self.cache.contains_key(&key) {
            self.cache.clear();
        }
        self.cache.insert(key, value);
    }
}

impl Client for StaleCacheClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        let op = match RegisterOp::parse(f, value) {
            Ok(op) => op,
            Err(e) => return Outcome::fail(value.clone(), e.to_string()),
        };
        if let RegisterOp::Read { key } = op {
            if let Some(cached) = self.cache.get(&key) {
                return Outcome::ok(json!([key, cached]));
            }
        }
        let outcome = self.inner.perform(op, value).await;
        if outcome.op_type == checkers::history::OpType::Ok {
            match op {
                RegisterOp::Read { key } => self.remember(key, outcome.value[1].clone()),
                RegisterOp::Write { key, value } => self.remember(key, Value::from(value)),
                RegisterOp::Cas { key, new, .. } => self.remember(key, Value::from(new)),
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_history_shapes() {
        assert_eq!(
            RegisterOp::parse("read", &json!([3, null])),
            Ok(RegisterOp::Read { key: 3 })
        );
        assert_eq!(
            RegisterOp::parse("write", &json!([3, 7])),
            Ok(RegisterOp::Write { key: 3, value: 7 })
        );
        assert_eq!(
            RegisterOp::parse("cas", &json!([3, [7, 8]])),
            Ok(RegisterOp::Cas {
                key: 3,
                old: 7,
                new: 8
            })
        );
    }

    #[test]
    fn bad_invocations_name_the_problem() {
        let e = RegisterOp::parse("append", &json!([1, 2])).unwrap_err();
        assert!(e.to_string().contains("no operation \"append\""), "{e}");
        let e = RegisterOp::parse("cas", &json!([1, 2])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a cas value must be [key, [old, new]] with integers, got [1,2]"
        );
        assert!(RegisterOp::parse("write", &json!(["a", 2])).is_err());
        let long = json!([1, "x".repeat(1000)]);
        assert!(
            RegisterOp::parse("write", &long)
                .unwrap_err()
                .to_string()
                .len()
                < 300
        );
    }

    #[test]
    fn foreign_values_are_shown_as_text() {
        assert_eq!(register_value("42"), json!(42));
        assert_eq!(register_value("forty-two"), json!("forty-two"));
    }
}
