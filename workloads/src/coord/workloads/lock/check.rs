//! The lock workload's checker. Pure: it sees only the history.
//!
//! What a history can prove, and what it cannot: an `info` acquire may or may not have
//! got the lock, and its token is unknown, so nothing is concluded from it; only `ok`
//! operations carry tokens. The store's own log (the final `read`) lists every write it
//! accepted, `info` ones included, in the order it accepted them.
//!
//! The rules, each sound under the lock's contract:
//! 1. `duplicate-token`: no two `ok` acquires got the same token (two holders at once).
//! 2. `token-order`: an acquire invoked after another completed `ok` gets a larger token
//!    (its node was created later, and tokens are czxids).
//! 3. `stale-write`: the store never accepts a write with a token older than one it
//!    accepted before: in acceptance order, tokens never decrease. An older token after a
//!    newer one means two holders used the resource at once, the older on a stale belief.
//! 4. `foreign-token`: every accepted write carries a token some `ok` acquire granted.
//! 5. `lost-write`: every `ok` write is in the final log, at the place it was told.
//!
//! Malformed input (an `ok` without its fields, an unknown `f`) gives an unknown verdict
//! naming the event, never a panic.

use crate::verdict::Verdict;
use checkers::history::{History, Op, OpType, Value};
use checkers::linearizable::Validity;
use serde_json::json;
use std::collections::HashMap;

/// Violations described in full; the rest are counted.
pub const MAX_REPORTED: usize = 10;

/// One broken rule, with the operations (history indices) and tokens involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: &'static str,
    pub ops: Vec<u64>,
    pub tokens: Vec<u64>,
    pub message: String,
}

/// Appends the first [`MAX_REPORTED`] violations to `explanation` and returns them as
/// JSON for `results.json`.
pub fn report(violations: &[Violation], explanation: &mut String) -> Vec<Value> {
    for v in violations.iter().take(MAX_REPORTED) {
        explanation.push_str(&format!("{}: {}\n", v.kind, v.message));
    }
    if violations.len() > MAX_REPORTED {
        let more = violations.len() - MAX_REPORTED;
        explanation.push_str(&format!("... and {more} more\n"));
    }
    violations
        .iter()
        .take(MAX_REPORTED)
        .map(|v| json!({"kind": v.kind, "ops": v.ops, "tokens": v.tokens, "message": v.message}))
        .collect()
}

/// Invalid as soon as anything was found.
pub fn validity(violations: &[Violation]) -> Validity {
    if violations.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    }
}

/// An event the lock and election checkers cannot read: the verdict is unknown, naming it.
#[derive(Debug, thiserror::Error)]
#[error("event {index} ({f} {op_type}): {problem}")]
pub struct Malformed {
    index: u64,
    f: String,
    op_type: &'static str,
    problem: String,
}

pub(crate) fn malformed(op: &Op, problem: impl Into<String>) -> Malformed {
    Malformed {
        index: op.index,
        f: op.f.clone(),
        op_type: op.op_type.as_str(),
        problem: problem.into(),
    }
}

/// An `ok` acquire.
#[derive(Clone, Debug)]
struct Grant {
    token: u64,
    invoke: u64,
    complete: u64,
}

/// A write the store accepted, from its log or from an `ok` write.
#[derive(Clone, Debug)]
struct Entry {
    token: u64,
    id: String,
    seq: u64,
}

#[derive(Default, Debug)]
struct Parsed {
    grants: Vec<Grant>,
    /// `ok` writes and where they completed.
    writes: Vec<(Entry, u64)>,
    /// Write ids to the event that reported them (any outcome), to name operations.
    write_ops: HashMap<String, u64>,
    /// The last `ok` final read: its event and the log.
    log: Option<(u64, Vec<Entry>)>,
    counts: HashMap<String, u64>,
}

pub fn check(history: &History, fenced: bool) -> Verdict {
    match parse(history) {
        Ok(parsed) => judge(&parsed, fenced),
        Err(e) => Verdict {
            valid: Validity::Unknown,
            checker: "lock",
            summary: "lock: the history is not a lock workload's".to_string(),
            explanation: e.to_string(),
            details: json!({ "error": e.to_string() }),
        },
    }
}

fn field(op: &Op, name: &str) -> Result<u64, Malformed> {
    op.value
        .get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| malformed(op, format!("no numeric {name:?} in {}", op.value)))
}

fn parse(history: &History) -> Result<Parsed, Malformed> {
    let mut p = Parsed::default();
    for (i, op) in history.ops.iter().enumerate() {
        if !op.process.is_client() || op.op_type == OpType::Invoke {
            continue;
        }
        *p.counts
            .entry(format!("{} {}", op.f, op.op_type.as_str()))
            .or_default() += 1;
        let invoke = history.partner[i].map_or(op.index, |j| history.ops[j].index);
        match (op.f.as_str(), op.op_type) {
            ("acquire", OpType::Ok) => p.grants.push(Grant {
                token: field(op, "token")?,
                invoke,
                complete: op.index,
            }),
            ("write", t) => {
                if let Some(id) = op.value.get("id").and_then(Value::as_str) {
                    p.write_ops.insert(id.to_string(), op.index);
                }
                if t == OpType::Ok {
                    let id = op.value.get("id").and_then(Value::as_str);
                    let id = id.ok_or_else(|| malformed(op, "no \"id\""))?.to_string();
                    let entry = Entry {
                        token: field(op, "token")?,
                        id,
                        seq: field(op, "seq")?,
                    };
                    p.writes.push((entry, op.index));
                }
            }
            ("read", OpType::Ok) => p.log = Some((op.index, parse_log(op)?)),
            ("acquire" | "release" | "read", _) => {}
            (other, _) => return Err(malformed(op, format!("unknown operation {other:?}"))),
        }
    }
    Ok(p)
}

/// `{"log": [[token, id, seq], ...]}`.
fn parse_log(op: &Op) -> Result<Vec<Entry>, Malformed> {
    let entries = op.value.get("log").and_then(Value::as_array);
    let entries = entries.ok_or_else(|| malformed(op, "no \"log\" array"))?;
    entries
        .iter()
        .map(|e| {
            let token = e.get(0).and_then(Value::as_u64);
            let id = e.get(1).and_then(Value::as_str);
            let seq = e.get(2).and_then(Value::as_u64);
            match (token, id, seq) {
                (Some(token), Some(id), Some(seq)) => Ok(Entry {
                    token,
                    id: id.to_string(),
                    seq,
                }),
                _ => Err(malformed(
                    op,
                    format!("log entry {e} is not [token, id, seq]"),
                )),
            }
        })
        .collect()
}

fn judge(p: &Parsed, fenced: bool) -> Verdict {
    let mut violations = duplicate_tokens(&p.grants);
    violations.extend(token_order(&p.grants));
    let accepted = acceptance_order(p);
    violations.extend(stale_writes(&accepted, p));
    violations.extend(foreign_tokens(&accepted, &p.grants, p));
    if let Some((read, log)) = &p.log {
        violations.extend(lost_writes(&p.writes, log, *read));
    }
    verdict(p, &accepted, violations, fenced)
}

fn duplicate_tokens(grants: &[Grant]) -> Vec<Violation> {
    let mut first: HashMap<u64, &Grant> = HashMap::new();
    let mut out = Vec::new();
    for g in grants {
        if let Some(f) = first.get(&g.token) {
            out.push(Violation {
                kind: "duplicate-token",
                ops: vec![f.complete, g.complete],
                tokens: vec![g.token],
                message: format!(
                    "acquires {} and {} were both granted token {}: two holders at once",
                    f.complete, g.complete, g.token
                ),
            });
        } else {
            first.insert(g.token, g);
        }
    }
    out
}

/// Sweeps acquires by invocation, keeping the largest token of those already complete.
fn token_order(grants: &[Grant]) -> Vec<Violation> {
    let mut by_invoke: Vec<&Grant> = grants.iter().collect();
    by_invoke.sort_by_key(|g| g.invoke);
    let mut by_complete: Vec<&Grant> = grants.iter().collect();
    by_complete.sort_by_key(|g| g.complete);
    let mut done = by_complete.iter().peekable();
    let mut newest: Option<&Grant> = None;
    let mut out = Vec::new();
    for g in by_invoke {
        while let Some(d) = done.next_if(|d| d.complete < g.invoke) {
            if newest.is_none_or(|n| d.token > n.token) {
                newest = Some(d);
            }
        }
        if let Some(n) = newest.filter(|n| g.token < n.token) {
            out.push(Violation {
                kind: "token-order",
                ops: vec![n.complete, g.complete],
                tokens: vec![n.token, g.token],
                message: format!(
                    "acquire {} got token {} although it began after acquire {} got {}",
                    g.complete, g.token, n.complete, n.token
                ),
            });
        }
    }
    out
}

/// The store's writes in acceptance order: its log if it was read, else the `ok` writes
/// by the place they were told.
fn acceptance_order(p: &Parsed) -> Vec<Entry> {
    let mut accepted: Vec<Entry> = match &p.log {
        Some((_, log)) => log.clone(),
        None => p.writes.iter().map(|(e, _)| e.clone()).collect(),
    };
    accepted.sort_by_key(|e| e.seq);
    accepted
}

fn name_write(p: &Parsed, e: &Entry) -> String {
    match p.write_ops.get(&e.id) {
        Some(op) => format!(
            "write {} ({}, token {}, place {})",
            op, e.id, e.token, e.seq
        ),
        None => format!(
            "write {} (token {}, place {}, its answer lost)",
            e.id, e.token, e.seq
        ),
    }
}

fn stale_writes(accepted: &[Entry], p: &Parsed) -> Vec<Violation> {
    let mut newest: Option<&Entry> = None;
    let mut out = Vec::new();
    for e in accepted {
        match newest {
            Some(n) if e.token < n.token => out.push(Violation {
                kind: "stale-write",
                ops: [&n.id, &e.id]
                    .iter()
                    .filter_map(|id| p.write_ops.get(*id).copied())
                    .collect(),
                tokens: vec![n.token, e.token],
                message: format!(
                    "the store accepted {} after {}: a holder with an older token wrote \
                     while a newer holder held the lock",
                    name_write(p, e),
                    name_write(p, n)
                ),
            }),
            Some(n) if e.token <= n.token => {}
            _ => newest = Some(e),
        }
    }
    out
}

fn foreign_tokens(accepted: &[Entry], grants: &[Grant], p: &Parsed) -> Vec<Violation> {
    let granted: std::collections::HashSet<u64> = grants.iter().map(|g| g.token).collect();
    accepted
        .iter()
        .filter(|e| !granted.contains(&e.token))
        .map(|e| Violation {
            kind: "foreign-token",
            ops: p.write_ops.get(&e.id).copied().into_iter().collect(),
            tokens: vec![e.token],
            message: format!(
                "the store accepted {}, a token no acquire granted",
                name_write(p, e)
            ),
        })
        .collect()
}

fn lost_writes(writes: &[(Entry, u64)], log: &[Entry], read: u64) -> Vec<Violation> {
    let places: HashMap<&str, u64> = log.iter().map(|e| (e.id.as_str(), e.seq)).collect();
    writes
        .iter()
        .filter(|(w, _)| places.get(w.id.as_str()) != Some(&w.seq))
        .map(|(w, op)| Violation {
            kind: "lost-write",
            ops: vec![*op, read],
            tokens: vec![w.token],
            message: format!(
                "write {op} ({}, token {}) was accepted at place {} but the final read {read} \
                 has it at {:?}",
                w.id,
                w.token,
                w.seq,
                places.get(w.id.as_str())
            ),
        })
        .collect()
}

fn verdict(p: &Parsed, accepted: &[Entry], violations: Vec<Violation>, fenced: bool) -> Verdict {
    let name = if fenced { "lock" } else { "lock-unfenced" };
    let summary = format!(
        "{name}: {} acquires granted, {} writes accepted ({} in the final read), {} violations",
        p.grants.len(),
        accepted.len(),
        p.log
            .as_ref()
            .map_or("none".to_string(), |(_, l)| l.len().to_string()),
        violations.len()
    );
    let mut explanation = String::new();
    if !violations.is_empty() && !fenced {
        explanation.push_str(
            "The known-unsafe pattern: without a fencing token the store cannot tell a \
             holder whose lease expired (here: its server paused past the session timeout) \
             from the current one.\n",
        );
    }
    let reported = report(&violations, &mut explanation);
    Verdict {
        valid: validity(&violations),
        checker: "lock",
        summary,
        explanation: explanation.trim_end().to_string(),
        details: json!({
            "fenced": fenced,
            "grants": p.grants.len(),
            "accepted": accepted.len(),
            "outcomes": p.counts,
            "violations": violations.len(),
            "reported": reported,
        }),
    }
}

#[cfg(test)]
mod tests;
