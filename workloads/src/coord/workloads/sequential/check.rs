//! The sequential check, on the history alone. Per parent:
//! - **unique**: no two creates (returned `ok`, or found in the final listing) share a
//!   sequence number;
//! - **ordered**: a create that completed before another was invoked has the smaller
//!   number. `info` creates found in the final listing take part with their listed number
//!   and no completion (they may have happened any time after their invocation);
//! - **durable and agreed**: the final listing shows every `ok` create under the number it
//!   returned, no `fail` create, and nothing no op asked for.
//!
//! Without a final listing of a parent, only uniqueness and order of its `ok` creates are
//! judged.

use crate::verdict::Verdict;
use checkers::history::{History, Op, OpType};
use checkers::linearizable::Validity;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Anomalies listed in the verdict at most; the counts are exact.
const MAX_REPORTED: usize = 20;

/// A node name's token and sequence number: `n-<token>-<%010d>` (or a path ending so).
pub fn sequence_of(name: &str) -> Option<(String, u64)> {
    let last = name.rsplit('/').next()?;
    let (token, digits) = last.strip_prefix("n-")?.rsplit_once('-')?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((token.to_string(), digits.parse().ok()?))
}

#[derive(Debug, thiserror::Error)]
#[error("op {index} ({f}): {why}")]
struct Malformed {
    index: u64,
    f: String,
    why: &'static str,
}

/// One create attempt, by its token.
#[derive(Clone, Debug)]
struct Attempt {
    parent: String,
    op_type: OpType,
    seq: Option<u64>,
    invoke: usize,
    complete: usize,
}

/// A create known to have happened, with its number.
#[derive(Clone, Debug)]
struct Known {
    token: String,
    seq: u64,
    invoke: usize,
    /// `None` for an `info` create found in the listing.
    complete: Option<usize>,
}

pub fn check(history: &History) -> Verdict {
    let parsed = attempts(history).and_then(|a| Ok((a, listings(history)?)));
    let (attempts, listings) = match parsed {
        Ok(p) => p,
        Err(e) => {
            return Verdict {
                valid: Validity::Unknown,
                checker: "sequential",
                summary: "sequential: malformed history".into(),
                explanation: e.to_string(),
                details: json!({ "error": e.to_string() }),
            }
        }
    };
    let mut anomalies = Vec::new();
    let mut known_total = 0;
    let parents: std::collections::BTreeSet<&String> =
        attempts.values().map(|a| &a.parent).collect();
    for parent in parents {
        let listing = listings.get(parent);
        let known = known_creates(&attempts, parent, listing, &mut anomalies);
        known_total += known.len();
        duplicates(parent, &known, &mut anomalies);
        order(parent, &known, &mut anomalies);
    }
    verdict(&attempts, known_total, listings.len(), anomalies)
}

fn malformed(op: &Op, why: &'static str) -> Malformed {
    Malformed {
        index: op.index,
        f: op.f.clone(),
        why,
    }
}

/// The key of a create the runner timed out before it was named (no token recorded).
const ANONYMOUS: &str = "?unnamed-";

fn attempts(history: &History) -> Result<BTreeMap<String, Attempt>, Malformed> {
    let mut out = BTreeMap::new();
    for (i, op) in history.ops.iter().enumerate() {
        if op.op_type == OpType::Invoke || op.f != "create" || !op.process.is_client() {
            continue;
        }
        let Some(invoke) = history.partner[i] else {
            continue;
        };
        let (Some(token), Some(parent)) = (op.value["token"].as_str(), op.value["parent"].as_str())
        else {
            if op.op_type == OpType::Fail {
                continue; // Refused before it was named: it did nothing.
            }
            if let (OpType::Info, Some(parent)) = (op.op_type, op.value["parent"].as_str()) {
                // Timed out by the runner before the client said which token it used: its
                // node, if any, can be listed without anyone claiming it.
                let attempt = Attempt {
                    parent: parent.to_string(),
                    op_type: op.op_type,
                    seq: None,
                    invoke,
                    complete: i,
                };
                out.insert(format!("{ANONYMOUS}{}", op.index), attempt);
                continue;
            }
            return Err(malformed(op, "no token or parent"));
        };
        let seq = op.value["seq"].as_u64();
        if op.op_type == OpType::Ok && seq.is_none() {
            return Err(malformed(op, "ok without a seq"));
        }
        let attempt = Attempt {
            parent: parent.to_string(),
            op_type: op.op_type,
            seq,
            invoke,
            complete: i,
        };
        if out.insert(token.to_string(), attempt).is_some() {
            return Err(malformed(op, "a token used twice"));
        }
    }
    Ok(out)
}

/// The last successful final listing of each parent: token → number.
fn listings(history: &History) -> Result<BTreeMap<String, Vec<(String, u64)>>, Malformed> {
    let mut out = BTreeMap::new();
    for op in &history.ops {
        if op.f != "list" || op.op_type != OpType::Ok {
            continue;
        }
        let parent = op.value["parent"].as_str();
        let children = op.value["children"].as_array();
        let (Some(parent), Some(children)) = (parent, children) else {
            return Err(malformed(op, "no parent or children"));
        };
        let names: Option<Vec<&str>> = children.iter().map(Value::as_str).collect();
        let names = names.ok_or_else(|| malformed(op, "a child is not a string"))?;
        let parsed = names.iter().filter_map(|n| sequence_of(n)).collect();
        out.insert(parent.to_string(), parsed);
    }
    Ok(out)
}

/// The creates of `parent` known to have happened; what the listing contradicts goes to
/// `anomalies`.
fn known_creates(
    attempts: &BTreeMap<String, Attempt>,
    parent: &str,
    listing: Option<&Vec<(String, u64)>>,
    anomalies: &mut Vec<Value>,
) -> Vec<Known> {
    let listed: BTreeMap<&str, u64> = listing
        .into_iter()
        .flatten()
        .map(|(t, s)| (t.as_str(), *s))
        .collect();
    let mut known = Vec::new();
    for (token, a) in attempts.iter().filter(|(_, a)| a.parent == parent) {
        let shown = listed.get(token.as_str()).copied();
        let seq = match (a.op_type, a.seq, shown) {
            (OpType::Ok, Some(s), Some(l)) if s != l => {
                anomalies.push(json!({"kind": "renumbered", "parent": parent, "token": token, "returned": s, "listed": l}));
                s
            }
            (OpType::Ok, Some(s), None) if listing.is_some() => {
                anomalies.push(json!({"kind": "lost", "parent": parent, "token": token, "seq": s}));
                s
            }
            (OpType::Ok, Some(s), _) => s,
            (OpType::Fail, _, Some(l)) => {
                anomalies.push(json!({"kind": "failed create took effect", "parent": parent, "token": token, "listed": l}));
                continue;
            }
            (OpType::Info, _, Some(l)) => l,
            _ => continue,
        };
        let complete = (a.op_type == OpType::Ok).then_some(a.complete);
        known.push(Known {
            token: token.clone(),
            seq,
            invoke: a.invoke,
            complete,
        });
    }
    let mut unnamed = attempts
        .iter()
        .filter(|(t, a)| a.parent == parent && t.starts_with(ANONYMOUS))
        .count();
    for (token, seq) in &listed {
        if attempts.contains_key(*token) {
            continue;
        }
        if unnamed > 0 {
            unnamed -= 1; // Made by a create that timed out unnamed.
            continue;
        }
        anomalies.push(json!({"kind": "phantom", "parent": parent, "token": token, "listed": seq}));
    }
    known
}

fn duplicates(parent: &str, known: &[Known], anomalies: &mut Vec<Value>) {
    let mut by_seq: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for k in known {
        by_seq.entry(k.seq).or_default().push(&k.token);
    }
    for (seq, tokens) in by_seq.into_iter().filter(|(_, t)| t.len() > 1) {
        anomalies
            .push(json!({"kind": "duplicate", "parent": parent, "seq": seq, "tokens": tokens}));
    }
}

/// Sweeps the history in order: at each invocation, the largest number among the creates
/// completed so far must be below the invoked create's own.
fn order(parent: &str, known: &[Known], anomalies: &mut Vec<Value>) {
    // (history index, is a completion, which create).
    let mut events: Vec<(usize, bool, usize)> = Vec::new();
    for (k, create) in known.iter().enumerate() {
        events.push((create.invoke, false, k));
        if let Some(c) = create.complete {
            events.push((c, true, k));
        }
    }
    events.sort_unstable();
    let mut highest: Option<usize> = None;
    for (_, completion, k) in events {
        if completion {
            if highest.is_none_or(|h| known[h].seq < known[k].seq) {
                highest = Some(k);
            }
        } else if let Some(h) = highest.filter(|h| known[*h].seq >= known[k].seq) {
            anomalies.push(json!({
                "kind": "out of order", "parent": parent,
                "earlier": known[h].token, "earlier_seq": known[h].seq,
                "later": known[k].token, "later_seq": known[k].seq,
            }));
        }
    }
}

fn verdict(
    attempts: &BTreeMap<String, Attempt>,
    known: usize,
    listings: usize,
    anomalies: Vec<Value>,
) -> Verdict {
    let count = |t: OpType| attempts.values().filter(|a| a.op_type == t).count();
    let summary = format!(
        "sequential: {} creates ok, {} info, {} fail; {known} known numbers; {listings} final listings; {} anomalies",
        count(OpType::Ok),
        count(OpType::Info),
        count(OpType::Fail),
        anomalies.len()
    );
    let explanation = anomalies
        .iter()
        .take(MAX_REPORTED)
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let valid = if anomalies.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    Verdict {
        valid,
        checker: "sequential",
        summary,
        explanation,
        details: json!({
            "known": known,
            "final_listings": listings,
            "anomalies": anomalies.len(),
            "examples": anomalies.iter().take(MAX_REPORTED).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::membership::session::test_history::{history, Event};
    use super::*;
    use checkers::history::OpType::{Fail, Info, Invoke, Ok as Done};

    fn create(p: u64, token: &str, seq: Option<u64>, t: OpType, at: u64) -> [Event; 2] {
        let mut v = json!({"parent": "p0", "token": token});
        if let Some(s) = seq {
            v["seq"] = json!(s);
        }
        [
            (Invoke, Some(p), "create", json!({"parent": "p0"}), at),
            (t, Some(p), "create", v, at + 1),
        ]
    }

    fn list(children: &[&str]) -> [Event; 2] {
        [
            (Invoke, Some(9), "list", json!({"parent": "p0"}), 100),
            (
                Done,
                Some(9),
                "list",
                json!({"parent": "p0", "children": children}),
                101,
            ),
        ]
    }

    fn run(parts: Vec<[Event; 2]>) -> Verdict {
        check(&history(parts.into_iter().flatten().collect()))
    }

    #[test]
    fn increasing_unique_numbers_listed_as_returned_are_valid() {
        let v = run(vec![
            create(0, "w0.1", Some(1), Done, 0),
            create(1, "w1.1", Some(2), Done, 10),
            list(&["n-w0.1-0000000001", "n-w1.1-0000000002"]),
        ]);
        assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
        assert_eq!(v.details["known"], 2);
    }

    #[test]
    fn a_later_create_with_a_smaller_number_is_out_of_order() {
        let v = run(vec![
            create(0, "w0.1", Some(5), Done, 0),
            create(1, "w1.1", Some(4), Done, 10),
        ]);
        assert_eq!(v.valid, Validity::Invalid);
        assert!(v.explanation.contains("out of order"), "{}", v.explanation);
    }

    #[test]
    fn concurrent_creates_may_take_either_order_but_not_one_number() {
        let mut h: Vec<Event> = Vec::new();
        let [a0, a1] = create(0, "w0.1", Some(5), Done, 0);
        let [b0, b1] = create(1, "w1.1", Some(4), Done, 0);
        h.extend([a0, b0.clone(), a1, b1.clone()]);
        assert_eq!(check(&history(h.clone())).valid, Validity::Valid);
        let mut dup = h;
        dup[3].3["seq"] = json!(5);
        let v = check(&history(dup));
        assert!(v.explanation.contains("duplicate"), "{}", v.explanation);
    }

    #[test]
    fn info_creates_join_in_through_the_listing_and_failed_ones_must_not_appear() {
        let v = run(vec![
            create(0, "w0.1", Some(3), Done, 0),
            create(1, "w1.1", None, Info, 10),
            list(&["n-w0.1-0000000003", "n-w1.1-0000000002"]),
        ]);
        assert!(v.explanation.contains("out of order"), "{}", v.explanation);
        let v = run(vec![
            create(0, "w0.1", Some(1), Done, 0),
            create(1, "w1.1", None, Fail, 10),
            list(&[
                "n-w0.1-0000000001",
                "n-w1.1-0000000002",
                "n-w7.7-0000000003",
            ]),
        ]);
        assert!(
            v.explanation.contains("failed create took effect"),
            "{}",
            v.explanation
        );
        assert!(v.explanation.contains("phantom"), "{}", v.explanation);
    }

    #[test]
    fn a_create_timed_out_before_it_was_named_may_own_one_unclaimed_node() {
        let unnamed = [
            (Invoke, Some(3), "create", json!({"parent": "p0"}), 5),
            (Info, Some(3), "create", json!({"parent": "p0"}), 6),
        ];
        let v = run(vec![
            create(0, "w0.1", Some(1), Done, 0),
            unnamed.clone(),
            list(&["n-w0.1-0000000001", "n-w3.9-0000000002"]),
        ]);
        assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
        let v = run(vec![
            unnamed,
            list(&["n-w3.9-0000000001", "n-w4.1-0000000002"]),
        ]);
        assert!(
            v.explanation.contains("phantom"),
            "one too many: {}",
            v.explanation
        );
    }

    #[test]
    fn ok_creates_missing_or_renumbered_in_the_listing_are_caught() {
        let v = run(vec![
            create(0, "w0.1", Some(1), Done, 0),
            create(1, "w1.1", Some(2), Done, 10),
            list(&["n-w1.1-0000000007"]),
        ]);
        assert!(
            v.explanation.contains("\"lost\"") && v.explanation.contains("renumbered"),
            "{}",
            v.explanation
        );
    }

    #[test]
    fn empty_is_valid_and_bad_values_are_errors() {
        assert_eq!(check(&history(vec![])).valid, Validity::Valid);
        let v = run(vec![create(0, "w0.1", None, Done, 0)]);
        assert_eq!(v.valid, Validity::Unknown);
        assert!(v.explanation.contains("ok without a seq"));
        assert_eq!(
            sequence_of("/a/n-w1.2-0000000042"),
            Some(("w1.2".into(), 42))
        );
        assert_eq!(sequence_of("n-w1.2-42"), None);
    }
}
