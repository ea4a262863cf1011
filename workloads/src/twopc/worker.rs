//! The client one worker of a two-phase-commit workload runs: each history operation as
//! requests to the store, and how each answer is recorded (`ok`, `fail`: certainly not
//! applied, `info`: maybe applied).
//!
//! Transactions and snapshots go to the coordinator over one kept connection; state and
//! snapshot-part queries go to each participant on a connection of their own. A read or a
//! query changes nothing, so one that got no answer is `fail`; a `setup`, `transfer` or
//! `snapshot` that may have reached the coordinator is `info`.

use super::client::{call_once, CallError, Conn};
use super::workload::{ClientContext, Shared};
use super::ACCOUNTS;
use crate::client::{Client, Outcome};
use checkers::history::Value;
use serde_json::{json, Map};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use twopc::participant::MAX_PARTS_KEPT;
use twopc::proto::{node_name, Key, Mop, Request, Response, SnapshotPart};

/// Snapshot ids one `snapshot-parts` asks each participant about: the newest taken ones a
/// participant keeps, and failed ones between them, at most this many.
pub const MAX_FETCHED_SNAPSHOTS: u64 = 64;

/// One worker's client.
pub struct TwoPcClient {
    coordinator: Conn,
    /// Each participant's name (`n2`, ...) and client address.
    participants: Vec<(String, SocketAddr)>,
    timeout: Duration,
    shared: Arc<Shared>,
}

impl TwoPcClient {
    pub fn new(ctx: ClientContext, shared: Arc<Shared>) -> TwoPcClient {
        let coordinator = ctx
            .nodes
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let participants = ctx
            .nodes
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, addr)| (node_name(i as u32 + 1), *addr))
            .collect();
        TwoPcClient {
            coordinator: Conn::new(coordinator),
            participants,
            timeout: Duration::from_millis(ctx.op_timeout_ms.max(1)),
            shared,
        }
    }

    /// Runs a transaction; `ok` makes the ok value from the txn id and the reads.
    async fn txn(
        &mut self,
        value: &Value,
        ops: Vec<Mop>,
        indefinite_is_info: bool,
        ok: impl FnOnce(u64, Vec<(Key, Option<i64>)>) -> Value,
    ) -> Outcome {
        match self
            .coordinator
            .call(&Request::Txn { ops }, self.timeout)
            .await
        {
            Ok(Response::Committed { txn, reads }) => Outcome::ok(ok(txn, reads)),
            Ok(Response::Aborted { txn, cause }) => {
                Outcome::fail(value.clone(), format!("txn {txn} aborted: {cause:?}"))
            }
            Ok(Response::Refused { why }) => {
                Outcome::fail(value.clone(), format!("refused: {why}"))
            }
            Ok(other) => unexpected(value, indefinite_is_info, &other),
            Err(e) => call_failed(value, indefinite_is_info, &e),
        }
    }

    async fn setup(&mut self, value: &Value) -> Outcome {
        let balances = match parse_balances(&value["balances"]) {
            Ok(b) => b,
            Err(why) => return Outcome::fail(value.clone(), why),
        };
        let ops = balances
            .iter()
            .map(|&(key, value)| Mop::Write { key, value })
            .collect();
        let v = value.clone();
        self.txn(value, ops, true, move |txn, _| with_txn(&v, txn))
            .await
    }

    async fn transfer(&mut self, value: &Value) -> Outcome {
        let parsed = (
            value["from"].as_u64(),
            value["to"].as_u64(),
            value["amount"].as_i64(),
        );
        let (Some(from), Some(to), Some(amount)) = parsed else {
            return Outcome::fail(
                value.clone(),
                "a transfer is {from, to, amount} with account numbers and an integer amount",
            );
        };
        if from == to || amount <= 0 {
            return Outcome::fail(
                value.clone(),
                "a transfer moves a positive amount between two accounts",
            );
        }
        let ops = vec![
            Mop::Add {
                key: from,
                delta: -amount,
            },
            Mop::Add {
                key: to,
                delta: amount,
            },
        ];
        let v = value.clone();
        self.txn(value, ops, true, move |txn, _| with_txn(&v, txn))
            .await
    }

    async fn read(&mut self, value: &Value) -> Outcome {
        let ops = (0..ACCOUNTS).map(|key| Mop::Read { key }).collect();
        self.txn(value, ops, false, |_, reads| {
            let m: Map<String, Value> = reads
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            Value::Object(m)
        })
        .await
    }

    async fn snapshot(&mut self, value: &Value) -> Outcome {
        match self
            .coordinator
            .call(&Request::Snapshot, self.timeout)
            .await
        {
            Ok(Response::SnapshotTaken { snapshot }) => {
                self.shared.taken(snapshot);
                Outcome::ok(json!({ "snapshot": snapshot }))
            }
            Ok(Response::SnapshotFailed { snapshot, why }) => {
                self.shared.seen(snapshot);
                Outcome::fail(json!({ "snapshot": snapshot }), why)
            }
            Ok(Response::Refused { why }) => {
                Outcome::fail(value.clone(), format!("refused: {why}"))
            }
            Ok(other) => unexpected(value, true, &other),
            Err(e) => call_failed(value, true, &e),
        }
    }

    /// Every participant's state (each records its `final-state`).
    async fn final_state(&mut self, value: &Value) -> Outcome {
        let deadline = Instant::now() + self.timeout;
        let mut out = Map::new();
        for (name, addr) in &self.participants {
            match call_once(*addr, &Request::State, left(deadline)).await {
                Ok(Response::State {
                    kv,
                    applied,
                    applied_truncated,
                }) => {
                    let kv: Map<String, Value> = kv
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), json!(v)))
                        .collect();
                    out.insert(
                        name.clone(),
                        json!({"kv": kv, "applied": applied.len(), "applied_truncated": applied_truncated}),
                    );
                }
                Ok(other) => {
                    return Outcome::fail(value.clone(), format!("{name} answered {other:?}"))
                }
                Err(e) => return Outcome::fail(value.clone(), format!("{name}: {e}")),
            }
        }
        Outcome::ok(Value::Object(out))
    }

    /// The parts of the newest snapshots taken (and of failed ones among them) from every
    /// participant.
    async fn snapshot_parts(&mut self, value: &Value) -> Outcome {
        let (taken, highest) = self.shared.snapshots();
        let ids = fetch_window(&taken, highest);
        let deadline = Instant::now() + self.timeout;
        let mut parts = Vec::new();
        for &snapshot in &ids {
            for (name, addr) in &self.participants {
                let req = Request::SnapshotState { snapshot };
                match call_once(*addr, &req, left(deadline)).await {
                    Ok(Response::SnapshotState { part, .. }) => parts.push(json!({
                        "snapshot": snapshot,
                        "node": name,
                        "part": part.as_ref().map(part_json),
                    })),
                    Ok(other) => {
                        return Outcome::fail(value.clone(), format!("{name} answered {other:?}"))
                    }
                    Err(e) => return Outcome::fail(value.clone(), format!("{name}: {e}")),
                }
            }
        }
        Outcome::ok(json!({ "taken": taken, "parts": parts }))
    }
}

impl Client for TwoPcClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        match f {
            "setup" => self.setup(value).await,
            "transfer" => self.transfer(value).await,
            "read" => self.read(value).await,
            "snapshot" => self.snapshot(value).await,
            "final-state" => self.final_state(value).await,
            "snapshot-parts" => self.snapshot_parts(value).await,
            other => Outcome::fail(
                value.clone(),
                format!("unknown operation {other:?} for the two-phase-commit store"),
            ),
        }
    }
}

/// The snapshot ids to fetch: from the oldest of the newest [`MAX_PARTS_KEPT`] taken to
/// the highest id seen, at most [`MAX_FETCHED_SNAPSHOTS`] of them (the newest).
pub fn fetch_window(taken: &[u64], highest: u64) -> Vec<u64> {
    let Some(&newest) = taken.iter().max() else {
        return Vec::new();
    };
    let mut sorted = taken.to_vec();
    sorted.sort_unstable();
    let keep = sorted.len().saturating_sub(MAX_PARTS_KEPT);
    let hi = highest.max(newest);
    let lo = sorted[keep].max(hi.saturating_sub(MAX_FETCHED_SNAPSHOTS - 1));
    (lo..=hi).collect()
}

/// A part as the history records it (its serde form: `{"kv": [[k, v]], "before", "after"}`).
pub fn part_json(part: &SnapshotPart) -> Value {
    serde_json::to_value(part).unwrap_or(Value::Null)
}

/// Time left before `deadline` (at least a millisecond, so the call fails cleanly).
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// `value` (an object) with the committed transaction's id added.
fn with_txn(value: &Value, txn: u64) -> Value {
    let mut v = value.clone();
    if let Value::Object(m) = &mut v {
        m.insert("txn".into(), json!(txn));
    }
    v
}

/// `{"0": 100, ...}` as (account, balance) pairs.
fn parse_balances(v: &Value) -> Result<Vec<(Key, i64)>, String> {
    let Value::Object(m) = v else {
        return Err(format!(
            "setup balances must be a map account -> balance, not {v}"
        ));
    };
    m.iter()
        .map(|(k, b)| match (k.parse::<Key>(), b.as_i64()) {
            (Ok(k), Some(b)) => Ok((k, b)),
            _ => Err(format!(
                "setup balance {k:?}: {b} is not account -> integer"
            )),
        })
        .collect()
}

fn call_failed(value: &Value, indefinite_is_info: bool, e: &CallError) -> Outcome {
    if e.is_definite() || !indefinite_is_info {
        Outcome::fail(value.clone(), e.to_string())
    } else {
        Outcome::info(value.clone(), e.to_string())
    }
}

fn unexpected(value: &Value, indefinite_is_info: bool, resp: &Response) -> Outcome {
    let e = CallError::Indefinite(format!("unexpected response {resp:?}"));
    call_failed(value, indefinite_is_info, &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_window_covers_the_newest_kept_snapshots_and_failures_between() {
        assert!(fetch_window(&[], 5).is_empty());
        assert_eq!(fetch_window(&[2, 4], 6), vec![2, 3, 4, 5, 6]);
        let many: Vec<u64> = (1..=20).collect();
        assert_eq!(fetch_window(&many, 20), (13..=20).collect::<Vec<_>>());
        let w = fetch_window(&[1, 500], 1000);
        assert_eq!(w.len() as u64, MAX_FETCHED_SNAPSHOTS);
        assert_eq!(*w.last().unwrap(), 1000);
    }

    #[test]
    fn bad_setup_balances_are_named() {
        assert!(parse_balances(&json!({"0": 1, "x": 2}))
            .unwrap_err()
            .contains("\"x\""));
        assert_eq!(parse_balances(&json!({"3": 7})).unwrap(), vec![(3, 7)]);
    }
}
