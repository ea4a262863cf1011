//! Jepsen's `set` checker: `add` operations of single elements, then one final `read` of the
//! whole set.
//!
//! Every acknowledged add must be in the final read (else it is *lost*), and the final read
//! may only hold elements whose add was attempted (else it is *unexpected*). Adds that crashed
//! (`info`) or never completed may or may not have happened; finding them is *recovered*, not an
//! error. Only the last ok `read` counts: earlier reads may legitimately miss elements still in
//! flight. The verdict is invalid iff something was lost or unexpected, and unknown when the set
//! was never read.
//!
//! This module also holds the small formatting helpers the other classic checkers share
//! (`bank`, `counter`, `set_full`, `unique_ids`, `total_queue`, `long_fork`), so that every
//! explanation names operations the same way.

use crate::datum::Datum;
use crate::history::{History, OpType, Value};
use crate::verdict::{BadHistory, Verdict, MAX_EXPLANATIONS_PER_TYPE};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;

/// The checker's name in verdicts.
pub const NAME: &str = "set";

/// The `set` checker needs no options; the struct exists so every checker has the same shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {}

/// Elements listed at most in a detail string; the counts beside them are always exact.
pub const MAX_LISTED_ELEMENTS: usize = 1000;

/// Checks `history` as Jepsen's `set` checker does.
pub fn check(history: &History, _options: &Options) -> Result<Verdict, BadHistory> {
    let adds = collect_adds(history)?;
    let mut verdict = Verdict::new(NAME);
    let Some(read_at) = final_read(history) else {
        verdict.detail("attempt_count", adds.attempted.len());
        verdict.detail("acknowledged_count", adds.acknowledged.len());
        verdict.give_up("the set was never read: no ok read, so no add can be judged");
        return Ok(verdict);
    };
    let read = elements_of(history, read_at, "a read")?;
    judge(history, &adds, read_at, &read, &mut verdict);
    Ok(verdict)
}

/// What the history attempted and acknowledged, with where each element's add is.
struct Adds {
    /// Element -> index of its first add invocation.
    attempted: FxHashMap<Datum, usize>,
    /// Element -> index of its first ok add completion.
    acknowledged: FxHashMap<Datum, usize>,
}

/// Collects the elements of every `add` invocation and of every acknowledged one.
fn collect_adds(history: &History) -> Result<Adds, BadHistory> {
    let mut adds = Adds {
        attempted: FxHashMap::default(),
        acknowledged: FxHashMap::default(),
    };
    for (i, op) in history.ops.iter().enumerate() {
        if op.f != "add" || op.op_type != OpType::Invoke {
            continue;
        }
        let element = Datum::from_json(&op.value);
        if element.is_null() {
            return Err(BadHistory::at_op(
                history,
                i,
                "an add needs an element, got null",
            ));
        }
        let acked = history.partner[i].filter(|&c| history.ops[c].op_type == OpType::Ok);
        if let Some(c) = acked {
            adds.acknowledged.entry(element.clone()).or_insert(c);
        }
        adds.attempted.entry(element).or_insert(i);
    }
    Ok(adds)
}

/// The last ok `read` in the history: the one Jepsen's set checker judges.
fn final_read(history: &History) -> Option<usize> {
    history
        .ops
        .iter()
        .rposition(|op| op.f == "read" && op.op_type == OpType::Ok)
}

/// Compares the final read against the adds and records anomalies and Jepsen's counts.
fn judge(history: &History, adds: &Adds, read_at: usize, read: &[Datum], verdict: &mut Verdict) {
    let read_set: FxHashSet<&Datum> = read.iter().collect();
    let mut ok = BTreeSet::new();
    let mut unexpected = BTreeSet::new();
    let mut recovered = BTreeSet::new();
    for e in &read_set {
        match adds.attempted.get(*e) {
            None => {
                unexpected.insert((*e).clone());
            }
            Some(_) => {
                ok.insert((*e).clone());
                if !adds.acknowledged.contains_key(*e) {
                    recovered.insert((*e).clone());
                }
            }
        }
    }
    let mut lost: Vec<(&Datum, usize)> = adds
        .acknowledged
        .iter()
        .filter(|(e, _)| !read_set.contains(e))
        .map(|(e, &at)| (e, at))
        .collect();
    lost.sort_by_key(|&(_, at)| at);
    let read_ref = describe_op(history, read_at);
    for (e, at) in &lost {
        record_anomaly(verdict, "lost", || {
            format!(
                "element {e} was added ok (completion at {}) but is missing from the final \
                 read at {read_ref}",
                describe_op(history, *at)
            )
        });
    }
    for e in &unexpected {
        record_anomaly(verdict, "unexpected", || {
            format!(
                "element {e} is in the final read at {read_ref}, but no add of it was ever \
                 attempted"
            )
        });
    }
    let lost_set: BTreeSet<Datum> = lost.iter().map(|(e, _)| (*e).clone()).collect();
    verdict.detail("final_read_line", line_of(history, read_at));
    verdict.detail("attempt_count", adds.attempted.len());
    verdict.detail("acknowledged_count", adds.acknowledged.len());
    verdict.detail("ok_count", ok.len());
    verdict.detail("lost_count", lost_set.len());
    verdict.detail("recovered_count", recovered.len());
    verdict.detail("unexpected_count", unexpected.len());
    verdict.detail("ok", interval_set_str(&ok));
    verdict.detail("lost", interval_set_str(&lost_set));
    verdict.detail("unexpected", interval_set_str(&unexpected));
    verdict.detail("recovered", interval_set_str(&recovered));
}

/// The elements of op `i`'s value, which must be a collection (EDN sets arrive as arrays).
pub(crate) fn elements_of(
    history: &History,
    i: usize,
    what: &str,
) -> Result<Vec<Datum>, BadHistory> {
    match &history.ops[i].value {
        Value::Array(items) => Ok(items.iter().map(Datum::from_json).collect()),
        other => Err(BadHistory::at_op(
            history,
            i,
            format!(
                "{what} must return a collection of elements, got {}",
                short_value(other)
            ),
        )),
    }
}

/// Records an anomaly, building its explanation only while the verdict still keeps them: a
/// history with a million lost elements should not format a million strings to keep 32.
pub(crate) fn record_anomaly(verdict: &mut Verdict, kind: &str, explain: impl FnOnce() -> String) {
    let kept = verdict.anomalies.get(kind).map_or(0, Vec::len);
    let text = if kept < MAX_EXPLANATIONS_PER_TYPE {
        explain()
    } else {
        String::new()
    };
    verdict.anomaly(kind, text);
}

/// The 1-based source line of op `i` (0 if the history has no line for it).
pub(crate) fn line_of(history: &History, i: usize) -> usize {
    history.lines.get(i).copied().unwrap_or(0)
}

/// How explanations name op `i`: its source line first (where an engineer looks), then who
/// performed it and its dense index.
pub(crate) fn describe_op(history: &History, i: usize) -> String {
    let op = &history.ops[i];
    format!(
        "line {} (process {}, {} {}, index {})",
        line_of(history, i),
        op.process,
        op.op_type.as_str(),
        op.f,
        i
    )
}

/// A value as compact JSON, cut short so that one huge value cannot flood an explanation.
pub(crate) fn short_value(v: &Value) -> String {
    const MAX_CHARS: usize = 200;
    let text = v.to_string();
    if text.chars().count() <= MAX_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_CHARS).collect();
    format!("{cut}... ({} bytes in all)", text.len())
}

/// Jepsen's `integer-interval-set-str`: runs of consecutive integers as `a..b`, everything else
/// as itself, e.g. `#{1..3 5 "x"}`. At most [`MAX_LISTED_ELEMENTS`] items are listed.
pub(crate) fn interval_set_str(set: &BTreeSet<Datum>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i64, i64)> = None;
    let mut listed = 0usize;
    for e in set {
        if listed >= MAX_LISTED_ELEMENTS {
            break;
        }
        listed += 1;
        if let Datum::Int(n) = e {
            match run {
                Some((lo, hi)) if hi.checked_add(1) == Some(*n) => run = Some((lo, *n)),
                _ => {
                    push_run(&mut parts, run);
                    run = Some((*n, *n));
                }
            }
        } else {
            push_run(&mut parts, run.take());
            parts.push(e.to_string());
        }
    }
    push_run(&mut parts, run);
    if set.len() > listed {
        parts.push(format!("... ({} more)", set.len() - listed));
    }
    format!("#{{{}}}", parts.join(" "))
}

fn push_run(parts: &mut Vec<String>, run: Option<(i64, i64)>) {
    match run {
        Some((lo, hi)) if lo == hi => parts.push(lo.to_string()),
        Some((lo, hi)) => parts.push(format!("{lo}..{hi}")),
        None => {}
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builds small histories for the classic checkers' unit tests.
    use crate::history::{Format, History, Op, OpType, Process, Value};

    /// One event: type, process, f, value.
    pub type Event = (OpType, u64, &'static str, Value);

    /// A history from events in order, one source line each.
    pub fn history(events: Vec<Event>) -> History {
        let ops: Vec<Op> = events
            .into_iter()
            .map(|(t, p, f, v)| Op::new(0, t, Process::Client(p), f, v))
            .collect();
        let lines = (1..=ops.len()).collect();
        History::new("t.jsonl", Format::JsonLines, ops, lines).expect("a well-paired history")
    }

    /// Like [`history`], with times: event i happens at `times_ms[i]` milliseconds.
    pub fn timed(events: Vec<Event>, times_ms: &[u64]) -> History {
        let mut h = history(events);
        for (op, ms) in h.ops.iter_mut().zip(times_ms) {
            op.time = Some(ms * 1_000_000);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::history;
    use super::*;
    use crate::history::OpType::{Info, Invoke, Ok as Done};
    use crate::verdict::Validity;
    use serde_json::json;

    #[test]
    fn every_acknowledged_add_read_back_is_valid() {
        let h = history(vec![
            (Invoke, 0, "add", json!(1)),
            (Done, 0, "add", json!(1)),
            (Invoke, 1, "add", json!(2)),
            (Info, 1, "add", json!(2)),
            (Invoke, 2, "read", Value::Null),
            (Done, 2, "read", json!([1, 2])),
        ]);
        let v = check(&h, &Options::default()).unwrap();
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["ok_count"], 2);
        assert_eq!(v.details["recovered"], "#{2}");
        assert_eq!(v.details["recovered_count"], 1);
        assert_eq!(v.details["attempt_count"], 2);
        assert_eq!(v.details["acknowledged_count"], 1);
    }

    #[test]
    fn an_acknowledged_add_missing_from_the_final_read_is_lost() {
        let h = history(vec![
            (Invoke, 0, "add", json!(1)),
            (Done, 0, "add", json!(1)),
            (Invoke, 0, "add", json!(2)),
            (Done, 0, "add", json!(2)),
            (Invoke, 1, "read", Value::Null),
            (Done, 1, "read", json!([2])),
        ]);
        let v = check(&h, &Options::default()).unwrap();
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomaly_types, vec!["lost"]);
        let why = &v.anomalies["lost"][0];
        assert!(why.contains("element 1"), "{why}");
        assert!(why.contains("line 2 (process 0, ok add"), "{why}");
        assert!(why.contains("final read at line 6"), "{why}");
        assert_eq!(v.details["lost"], "#{1}");
    }

    #[test]
    fn an_element_never_attempted_is_unexpected() {
        let h = history(vec![
            (Invoke, 0, "add", json!("a")),
            (Done, 0, "add", json!("a")),
            (Invoke, 1, "read", Value::Null),
            (Done, 1, "read", json!(["a", "zz"])),
        ]);
        let v = check(&h, &Options::default()).unwrap();
        assert_eq!(v.anomaly_types, vec!["unexpected"]);
        assert!(v.anomalies["unexpected"][0].contains("element \"zz\""));
    }

    #[test]
    fn only_the_last_read_counts() {
        let h = history(vec![
            (Invoke, 1, "read", Value::Null),
            (Done, 1, "read", json!([])),
            (Invoke, 0, "add", json!(1)),
            (Done, 0, "add", json!(1)),
            (Invoke, 1, "read", Value::Null),
            (Done, 1, "read", json!([1])),
        ]);
        assert_eq!(
            check(&h, &Options::default()).unwrap().valid,
            Validity::Valid
        );
    }

    #[test]
    fn a_set_never_read_is_unknown() {
        let h = history(vec![
            (Invoke, 0, "add", json!(1)),
            (Done, 0, "add", json!(1)),
        ]);
        let v = check(&h, &Options::default()).unwrap();
        assert_eq!(v.valid, Validity::Unknown);
        assert!(v.cause.unwrap().contains("never read"));
    }

    #[test]
    fn a_read_that_is_not_a_collection_is_a_bad_history_naming_the_line() {
        let h = history(vec![
            (Invoke, 1, "read", Value::Null),
            (Done, 1, "read", json!({"a": 1})),
        ]);
        let e = check(&h, &Options::default()).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("collection"), "{e}");
    }

    #[test]
    fn interval_strings_compress_integer_runs_and_cap_their_length() {
        let set: BTreeSet<Datum> = [1, 2, 3, 5, 7, 8]
            .iter()
            .map(|&n| Datum::Int(n))
            .chain([Datum::Str("x".into())])
            .collect();
        assert_eq!(interval_set_str(&set), "#{1..3 5 7..8 \"x\"}");
        let big: BTreeSet<Datum> = (0..(MAX_LISTED_ELEMENTS as i64 + 10))
            .map(|n| Datum::Int(2 * n))
            .collect();
        assert!(interval_set_str(&big).ends_with("... (10 more)}"));
    }
}
