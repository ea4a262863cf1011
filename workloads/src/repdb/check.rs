//! The verdicts of a recorded run of the replicated database, each under its checker's
//! name:
//! - the transactional checker (`list-append` or `rw-register`) at the model the
//!   replication mode claims ([`model_for`]); lazy claims none and is checked as
//!   serializable, so that its anomalies are reported;
//! - `one-copy` (`checkers::one_copy`): the replicas' apply logs against the history;
//! - `convergence`: once healed and settled, every replica holds the same apply log and the
//!   same state.
//!
//! The history holds more than transactions (the final `settle` and `apply-log`), so the
//! checkers get [`txn_history`]: the `txn` ops and the nemesis's, each transaction that
//! writes named by its `txn-id`. The final ops come after every transaction, so its indices
//! are the stored history's.

use super::dump::Dump;
use super::{txn_id_of_value, TXN_ID_FIELD};
use checkers::history::{History, Op, OpType, Value};
use checkers::one_copy;
use checkers::txn::{self, render::CycleView, Model, Workload};
use checkers::verdict::{BadHistory, Verdict};
use repdb::json::mop_from_json;
use repdb::proto::{Key, Val};
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::time::Duration;

/// The convergence checker's name in verdicts.
pub const CONVERGENCE: &str = "convergence";

/// The model a replication mode claims for its client histories, as the txn checker takes
/// it; serializable for lazy, which claims none, so that what it breaks is reported.
pub fn model_for(replication: &str, no_read_sets: bool) -> Result<Model, String> {
    let config =
        repdb::RepdbConfig::from_flags(replication, no_read_sets, []).map_err(|e| e.to_string())?;
    let name = config.claimed_model().unwrap_or("serializable");
    Model::from_name(name).ok_or_else(|| format!("the checker knows no model {name:?}"))
}

/// Everything a run's judgement produced.
pub struct Judged {
    /// The txn checker's, `one-copy`'s and `convergence`'s verdicts, in that order.
    pub verdicts: Vec<Verdict>,
    /// The cycles behind the txn checker's verdict, for pictures.
    pub cycles: Vec<CycleView>,
    /// The transactions, as `faultline check --checker one-copy` reads them.
    pub txns: History,
    /// The apply logs, as `checkers::one_copy` (and `--apply-logs`) reads them.
    pub apply_logs: String,
    /// Counts of what clients saw, and which replicas answered them.
    pub summary: Value,
}

/// Judges a recorded run of `workload` at `model`.
pub fn judge(
    history: &History,
    workload: Workload,
    model: Model,
    time_limit: Duration,
) -> Result<Judged, BadHistory> {
    let txns = txn_history(history)?;
    let mut options = txn::Options::new(workload);
    options.models = vec![model];
    options.time_limit = Some(time_limit);
    let outcome = txn::check(&txns, &options)?;
    let finals = Finals::read(history)?;
    let apply_logs = finals.apply_logs_text();
    let one_copy = match finals.forgetful() {
        Some(why) => {
            let mut v = Verdict::new(one_copy::CHECKER);
            v.give_up(why);
            v
        }
        None => {
            let logs = one_copy::parse_apply_logs("apply-logs.jsonl", &apply_logs)?;
            one_copy::check(&txns, &logs)?
        }
    };
    let convergence = finals.convergence();
    Ok(Judged {
        verdicts: vec![outcome.verdict, one_copy, convergence],
        cycles: outcome.cycles,
        summary: summary(&txns),
        txns,
        apply_logs,
    })
}

/// The `txn` ops and the nemesis's events of `history`, each invocation of a transaction
/// that writes given its `txn-id` (the same rule the client names it by).
pub fn txn_history(history: &History) -> Result<History, BadHistory> {
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    for (i, op) in history.ops.iter().enumerate() {
        if op.process.is_client() && op.f != "txn" {
            continue;
        }
        let mut op = op.clone();
        if op.process.is_client() && op.op_type == OpType::Invoke {
            if let Some(id) = txn_id_of_value(&op.value) {
                op.extra.entry(TXN_ID_FIELD).or_insert(json!(id));
            }
        }
        ops.push(op);
        lines.push(history.lines.get(i).copied().unwrap_or(i + 1));
    }
    Ok(History::new(&history.file, history.format, ops, lines)?)
}

/// Counts of the transactions' outcomes and of the replicas that answered them.
pub fn summary(txns: &History) -> Value {
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut answered_by: BTreeMap<String, usize> = BTreeMap::new();
    let mut committed_writes = 0usize;
    for op in txns.ops.iter().filter(|op| op.process.is_client()) {
        if op.op_type == OpType::Invoke {
            continue;
        }
        *by_type.entry(op.op_type.as_str()).or_default() += 1;
        if let Some(node) = &op.node {
            *answered_by.entry(node.clone()).or_default() += 1;
        }
        if op.op_type == OpType::Ok && op.extra.contains_key(TXN_ID_FIELD) {
            committed_writes += 1;
        }
    }
    json!({
        "completions": by_type,
        "committed_writes": committed_writes,
        "answered_by": answered_by,
    })
}

/// What the final operations recorded: whether the replicas settled, and each replica's
/// dump.
struct Finals {
    /// Every replica an `apply-log` asked for, in order.
    asked: Vec<String>,
    settled: bool,
    dumps: BTreeMap<String, Dump>,
}

impl Finals {
    fn read(history: &History) -> Result<Finals, BadHistory> {
        let mut finals = Finals {
            asked: Vec::new(),
            settled: false,
            dumps: BTreeMap::new(),
        };
        for (i, op) in history.ops.iter().enumerate() {
            if !op.process.is_client() {
                continue;
            }
            match (op.f.as_str(), op.op_type) {
                ("settle", OpType::Ok) => finals.settled = true,
                ("settle", OpType::Fail | OpType::Info) => finals.settled = false,
                ("apply-log", OpType::Invoke) => {
                    if let Some(r) = op.value["replica"].as_str() {
                        if !finals.asked.iter().any(|a| a == r) {
                            finals.asked.push(r.to_string());
                        }
                    }
                }
                ("apply-log", OpType::Ok) => {
                    let dump = parse_dump(op).map_err(|why| BadHistory::at_op(history, i, why))?;
                    finals.dumps.insert(dump.replica.clone(), dump);
                }
                _ => {}
            }
        }
        Ok(finals)
    }

    /// Why the logs cannot be compared with the history from their start, if they cannot.
    fn forgetful(&self) -> Option<String> {
        self.dumps.values().find(|d| d.start > 0).map(|d| {
            format!(
                "{} forgot the first {} entries of its apply log: the logs no longer cover the run",
                d.replica, d.start
            )
        })
    }

    /// The dumps as `checkers::one_copy` reads apply logs: finished when they were read
    /// after the replicas settled.
    fn apply_logs_text(&self) -> String {
        let mut text = String::new();
        for d in self.dumps.values() {
            let state: Map<String, Value> = d
                .state
                .iter()
                .map(|(k, v)| (k.to_string(), repdb::json::val_to_json(v)))
                .collect();
            let line = json!({
                "replica": d.replica,
                "applied": d.applied,
                "finished": self.settled,
                "state": state,
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        text
    }

    /// Whether every replica ended with the same apply log and state.
    fn convergence(&self) -> Verdict {
        let mut v = Verdict::new(CONVERGENCE);
        v.detail("settled", self.settled);
        v.detail("replicas", self.asked.len());
        let ends: Map<String, Value> = self
            .dumps
            .values()
            .map(|d| (d.replica.clone(), json!(d.end)))
            .collect();
        v.detail("applied", ends);
        let missing: Vec<&str> = self
            .asked
            .iter()
            .filter(|r| !self.dumps.contains_key(*r))
            .map(String::as_str)
            .collect();
        if self.asked.is_empty() {
            v.give_up("no replica's apply log was asked for");
            return v;
        }
        if !missing.is_empty() {
            v.give_up(format!(
                "{} gave no apply log after healing",
                missing.join(", ")
            ));
        }
        if !self.settled {
            v.give_up(
                "the replicas never settled after healing (some did not serve, or kept \
                 applying), so their logs need not be final",
            );
            return v;
        }
        // The longest log is the reference; the first replica's on ties.
        let Some(reference) = self
            .dumps
            .values()
            .fold(None::<&Dump>, |best, d| match best {
                Some(b) if b.end >= d.end => Some(b),
                _ => Some(d),
            })
        else {
            return v;
        };
        for d in self
            .dumps
            .values()
            .filter(|d| d.replica != reference.replica)
        {
            if let Some(why) = log_difference(reference, d) {
                v.anomaly("unequal-apply-logs", why);
            }
            if let Some(why) = state_difference(reference, d) {
                v.anomaly("unequal-states", why);
            }
        }
        v
    }
}

/// How `b`'s apply log differs from `a`'s, if it does.
fn log_difference(a: &Dump, b: &Dump) -> Option<String> {
    let from = a.start.max(b.start);
    let at = |d: &Dump, pos: u64| d.applied.get((pos - d.start) as usize).copied();
    let first = (from..a.end.max(b.end)).find(|&p| at(a, p) != at(b, p));
    let versions = if a.version == b.version {
        String::new()
    } else {
        format!("; versions {} and {}", a.version, b.version)
    };
    let show = |x: Option<u64>| x.map_or_else(|| "nothing".to_string(), |id| id.to_string());
    match first {
        None if a.end == b.end && versions.is_empty() => None,
        None => Some(format!(
            "{} applied {} transactions, {} applied {}{versions}",
            a.replica, a.end, b.replica, b.end
        )),
        Some(p) => Some(format!(
            "{} applied {} transactions, {} applied {}; at position {p} {} applied {} and {} \
             applied {}{versions}",
            a.replica,
            a.end,
            b.replica,
            b.end,
            a.replica,
            show(at(a, p)),
            b.replica,
            show(at(b, p)),
        )),
    }
}

/// How `b`'s state differs from `a`'s, naming the first key that differs.
fn state_difference(a: &Dump, b: &Dump) -> Option<String> {
    let keys = a.state.keys().chain(b.state.keys());
    let key = keys
        .filter(|k| a.state.get(k) != b.state.get(k))
        .min()
        .copied()?;
    let show = |v: Option<&Val>| {
        v.map_or("nothing".to_string(), |v| {
            short(&repdb::json::val_to_json(v))
        })
    };
    Some(format!(
        "key {key}: {} holds {}, {} holds {}",
        a.replica,
        show(a.state.get(&key)),
        b.replica,
        show(b.state.get(&key))
    ))
}

/// A dump as an `apply-log` completion records it ([`Dump::to_json`]).
fn parse_dump(op: &Op) -> Result<Dump, String> {
    let v = &op.value;
    let field = |name: &str| {
        v.get(name)
            .ok_or(format!("apply-log: no {name:?} in {}", short(v)))
    };
    let uint = |name: &str| {
        field(name)?.as_u64().ok_or(format!(
            "apply-log: {name:?} must be a non-negative integer"
        ))
    };
    let replica = field("replica")?
        .as_str()
        .ok_or("apply-log: \"replica\" must be a string")?
        .to_string();
    let applied = field("applied")?
        .as_array()
        .ok_or("apply-log: \"applied\" must be a list of txn ids")?
        .iter()
        .map(|id| {
            id.as_u64()
                .ok_or(format!("apply-log: txn id {id} is not an id"))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    let (start, end) = (uint("start")?, uint("end")?);
    if start + applied.len() as u64 != end {
        return Err(format!(
            "apply-log: {replica}'s log from {start} to {end} lists {} ids",
            applied.len()
        ));
    }
    let mut state = BTreeMap::new();
    for (k, val) in field("state")?
        .as_object()
        .ok_or("apply-log: \"state\" must be an object")?
    {
        let key: Key = k
            .parse()
            .map_err(|_| format!("apply-log: state key {k:?} is not a key"))?;
        // A value reads back the way a read micro-op's does.
        let read = mop_from_json(0, &json!(["r", key, val])).map_err(|e| e.to_string())?;
        if let repdb::proto::Mop::Read {
            value: Some(val), ..
        } = read
        {
            state.insert(key, val);
        }
    }
    Ok(Dump {
        replica,
        start,
        applied,
        end,
        version: uint("version")?,
        state,
    })
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 120 {
        return s;
    }
    let cut: String = s.chars().take(117).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests;
