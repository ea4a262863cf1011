//! Jepsen's `total-queue` checker: what goes in must come out.
//!
//! `enqueue` operations put a value in; ok `dequeue` operations return one; an ok `drain`
//! returns a list of values and counts as one dequeue per value. Values are counted as
//! multisets, as Jepsen does:
//!
//! - *lost*: enqueued ok more times than dequeued;
//! - *unexpected*: dequeued, but no enqueue of it was ever attempted;
//! - *duplicated*: dequeued more times than enqueues of it were attempted;
//! - *recovered*: dequeued, although its enqueue crashed or never completed (not an error).
//!
//! The verdict is invalid on lost, unexpected or duplicated values (Jepsen's own validity
//! ignores duplicates; a queue that hands one message out twice is broken, so we do not).
//!
//! A dequeue that crashed may have removed a value nobody saw, so it can account for one
//! apparently lost value; a crashed drain for any number. Lost values are only claimed when
//! more are missing than crashed dequeues could explain, and not at all after a crashed drain
//! (the verdict is then unknown). An ok dequeue with a null value is an empty queue, not a
//! dequeued null.

use crate::datum::Datum;
use crate::history::{History, OpType, Value};
use crate::set::{describe_op, record_anomaly, short_value};
use crate::verdict::{BadHistory, Verdict};
use rustc_hash::FxHashMap;

/// The checker's name in verdicts.
pub const NAME: &str = "total-queue";

/// The total-queue checker needs no options; the struct keeps every checker the same shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {}

/// Checks `history` as Jepsen's total-queue checker does.
pub fn check(history: &History, _options: &Options) -> Result<Verdict, BadHistory> {
    let ledger = Ledger::build(history)?;
    let mut verdict = Verdict::new(NAME);
    let counts = ledger.judge(history, &mut verdict);
    counts.report(&ledger, &mut verdict);
    Ok(verdict)
}

/// One value's history: how often it was attempted, acknowledged and dequeued, and where.
#[derive(Default)]
struct Entry {
    attempts: usize,
    enqueued_ok: usize,
    dequeued: usize,
    /// First enqueue invocation.
    first_attempt: Option<usize>,
    /// First ok enqueue completion.
    first_ok: Option<usize>,
    /// First and last ok dequeue (or drain) that returned it.
    first_dequeue: Option<usize>,
    last_dequeue: Option<usize>,
}

/// Every value's entry, in order of first appearance, plus the crashed consumers.
#[derive(Default)]
struct Ledger {
    entries: FxHashMap<Datum, Entry>,
    /// Values in order of first appearance, so reports are deterministic.
    order: Vec<Datum>,
    crashed_dequeues: usize,
    /// First crashed drain, if any.
    crashed_drain: Option<usize>,
    empty_dequeues: usize,
}

impl Ledger {
    fn build(history: &History) -> Result<Ledger, BadHistory> {
        let mut ledger = Ledger::default();
        for (i, op) in history.ops.iter().enumerate() {
            let crashed = crashed(history, i);
            match (op.f.as_str(), op.op_type) {
                ("enqueue", OpType::Invoke) => {
                    let e = ledger.entry(&op.value);
                    e.attempts += 1;
                    e.first_attempt.get_or_insert(i);
                }
                ("enqueue", OpType::Ok) => {
                    let value = history.partner[i].map_or(&op.value, |inv| &history.ops[inv].value);
                    let e = ledger.entry(value);
                    e.enqueued_ok += 1;
                    e.first_ok.get_or_insert(i);
                }
                ("dequeue", OpType::Invoke) if crashed => ledger.crashed_dequeues += 1,
                ("dequeue", OpType::Ok) if op.value.is_null() => ledger.empty_dequeues += 1,
                ("dequeue", OpType::Ok) => ledger.dequeued(&op.value, i),
                ("drain", OpType::Invoke) if crashed => {
                    ledger.crashed_drain.get_or_insert(i);
                }
                ("drain", OpType::Ok) => ledger.drained(history, i)?,
                _ => {}
            }
        }
        Ok(ledger)
    }

    fn entry(&mut self, value: &Value) -> &mut Entry {
        let key = Datum::from_json(value);
        if !self.entries.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.entries.entry(key).or_default()
    }

    fn dequeued(&mut self, value: &Value, i: usize) {
        let e = self.entry(value);
        e.dequeued += 1;
        e.first_dequeue.get_or_insert(i);
        e.last_dequeue = Some(i);
    }

    /// An ok drain: one dequeue per value it returned.
    fn drained(&mut self, history: &History, i: usize) -> Result<(), BadHistory> {
        let Value::Array(values) = &history.ops[i].value else {
            return Err(BadHistory::at_op(
                history,
                i,
                format!(
                    "an ok drain must return the list of values it removed, got {}",
                    short_value(&history.ops[i].value)
                ),
            ));
        };
        for v in values {
            self.dequeued(v, i);
        }
        Ok(())
    }

    /// Records the anomalies and returns the counts for the details.
    fn judge(&self, history: &History, verdict: &mut Verdict) -> Counts {
        let mut counts = Counts::default();
        let mut lost = Vec::new();
        for value in &self.order {
            let Some(e) = self.entries.get(value) else {
                continue;
            };
            counts.add(e);
            if e.attempts == 0 && e.dequeued > 0 {
                record_anomaly(verdict, "unexpected", || {
                    explain_unexpected(history, value, e)
                });
            } else if e.dequeued > e.attempts {
                record_anomaly(verdict, "duplicated", || {
                    explain_duplicated(history, value, e)
                });
            }
            if e.enqueued_ok > e.dequeued {
                lost.push((value, e));
            }
        }
        self.judge_lost(history, &lost, verdict);
        counts
    }

    /// Claims lost values only when crashed consumers cannot account for them.
    fn judge_lost(&self, history: &History, lost: &[(&Datum, &Entry)], verdict: &mut Verdict) {
        let missing: usize = lost.iter().map(|(_, e)| e.enqueued_ok - e.dequeued).sum();
        if missing == 0 {
            return;
        }
        if let Some(drain) = self.crashed_drain {
            verdict.give_up(format!(
                "{missing} acknowledged enqueues were never dequeued, but the drain invoked at \
                 {} crashed and may have removed them",
                describe_op(history, drain)
            ));
            return;
        }
        if missing <= self.crashed_dequeues {
            verdict.give_up(format!(
                "{missing} acknowledged enqueues were never dequeued, but {} dequeues crashed \
                 and may have removed them",
                self.crashed_dequeues
            ));
            return;
        }
        let caveat = if self.crashed_dequeues > 0 {
            format!(
                " ({} crashed dequeues may account for as many of the {missing} missing values, \
                 not all of them)",
                self.crashed_dequeues
            )
        } else {
            String::new()
        };
        for (value, e) in lost {
            record_anomaly(verdict, "lost", || explain_lost(history, value, e, &caveat));
        }
    }
}

/// Whether invocation `i` crashed: completed with `info`, or never completed.
fn crashed(history: &History, i: usize) -> bool {
    history.ops[i].op_type == OpType::Invoke
        && history.partner[i].is_none_or(|c| history.ops[c].op_type == OpType::Info)
}

fn at_or_unknown(history: &History, i: Option<usize>) -> String {
    i.map_or_else(|| "an unknown op".to_string(), |i| describe_op(history, i))
}

fn explain_unexpected(history: &History, value: &Datum, e: &Entry) -> String {
    format!(
        "value {value} was dequeued {} time(s), first at {}, but no enqueue of it was ever \
         attempted",
        e.dequeued,
        at_or_unknown(history, e.first_dequeue)
    )
}

fn explain_duplicated(history: &History, value: &Datum, e: &Entry) -> String {
    format!(
        "value {value} was dequeued {} times (first at {}, last at {}) but enqueued at most {} \
         time(s) (first attempt at {})",
        e.dequeued,
        at_or_unknown(history, e.first_dequeue),
        at_or_unknown(history, e.last_dequeue),
        e.attempts,
        at_or_unknown(history, e.first_attempt)
    )
}

fn explain_lost(history: &History, value: &Datum, e: &Entry, caveat: &str) -> String {
    format!(
        "value {value} was enqueued ok {} time(s) (first completion at {}) but dequeued only {} \
         time(s){caveat}",
        e.enqueued_ok,
        at_or_unknown(history, e.first_ok),
        e.dequeued
    )
}

/// Jepsen's multiset counts.
#[derive(Default)]
struct Counts {
    attempts: usize,
    acknowledged: usize,
    ok: usize,
    unexpected: usize,
    duplicated: usize,
    lost: usize,
    recovered: usize,
}

impl Counts {
    fn add(&mut self, e: &Entry) {
        let ok = e.dequeued.min(e.attempts);
        self.attempts += e.attempts;
        self.acknowledged += e.enqueued_ok;
        self.ok += ok;
        if e.attempts == 0 {
            self.unexpected += e.dequeued;
        } else {
            self.duplicated += e.dequeued.saturating_sub(e.attempts);
        }
        self.lost += e.enqueued_ok.saturating_sub(e.dequeued);
        self.recovered += ok.saturating_sub(e.enqueued_ok);
    }

    fn report(&self, ledger: &Ledger, verdict: &mut Verdict) {
        verdict.detail("attempt_count", self.attempts);
        verdict.detail("acknowledged_count", self.acknowledged);
        verdict.detail("ok_count", self.ok);
        verdict.detail("unexpected_count", self.unexpected);
        verdict.detail("duplicated_count", self.duplicated);
        verdict.detail("lost_count", self.lost);
        verdict.detail("recovered_count", self.recovered);
        verdict.detail("crashed_dequeue_count", ledger.crashed_dequeues);
        verdict.detail("crashed_drain", ledger.crashed_drain.is_some());
        verdict.detail("empty_dequeue_count", ledger.empty_dequeues);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType::{Info, Invoke, Ok as Done};
    use crate::set::test_support::{history, Event};
    use crate::verdict::Validity;
    use serde_json::json;

    fn enqueue(p: u64, v: i64) -> Vec<Event> {
        vec![
            (Invoke, p, "enqueue", json!(v)),
            (Done, p, "enqueue", json!(v)),
        ]
    }

    fn dequeue(p: u64, v: Value) -> Vec<Event> {
        vec![(Invoke, p, "dequeue", Value::Null), (Done, p, "dequeue", v)]
    }

    fn run(parts: Vec<Vec<Event>>) -> Verdict {
        check(&history(parts.concat()), &Options::default()).unwrap()
    }

    #[test]
    fn everything_enqueued_comes_out_once() {
        let v = run(vec![
            enqueue(0, 1),
            enqueue(0, 2),
            vec![
                (Invoke, 1, "enqueue", json!(3)),
                (Info, 1, "enqueue", json!(3)),
            ],
            dequeue(2, json!(1)),
            dequeue(2, Value::Null),
            vec![
                (Invoke, 2, "drain", Value::Null),
                (Done, 2, "drain", json!([2, 3])),
            ],
        ]);
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["recovered_count"], 1);
        assert_eq!(v.details["ok_count"], 3);
        assert_eq!(v.details["empty_dequeue_count"], 1);
    }

    #[test]
    fn an_acknowledged_value_never_dequeued_is_lost() {
        let v = run(vec![enqueue(0, 1), enqueue(0, 2), dequeue(1, json!(2))]);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomaly_types, vec!["lost"]);
        let why = &v.anomalies["lost"][0];
        assert!(why.contains("value 1"), "{why}");
        assert!(why.contains("line 2 (process 0, ok enqueue"), "{why}");
        assert_eq!(v.details["lost_count"], 1);
    }

    #[test]
    fn a_value_never_enqueued_is_unexpected_and_one_dequeued_twice_is_duplicated() {
        let v = run(vec![
            enqueue(0, 1),
            dequeue(1, json!(1)),
            dequeue(1, json!(1)),
            dequeue(1, json!(9)),
        ]);
        assert_eq!(v.anomaly_types, vec!["duplicated", "unexpected"]);
        assert!(v.anomalies["duplicated"][0].contains("dequeued 2 times"));
        assert!(v.anomalies["unexpected"][0].contains("value 9"));
        assert_eq!(v.details["duplicated_count"], 1);
        assert_eq!(v.details["unexpected_count"], 1);
    }

    #[test]
    fn crashed_consumers_make_missing_values_unknown_not_lost() {
        let crashed_dequeue = vec![
            (Invoke, 5, "dequeue", Value::Null),
            (Info, 5, "dequeue", Value::Null),
        ];
        let v = run(vec![enqueue(0, 1), crashed_dequeue.clone()]);
        assert_eq!(v.valid, Validity::Unknown, "{}", v.explain());
        // Two missing values, one crashed dequeue: at least one was really lost.
        let v = run(vec![enqueue(0, 1), enqueue(0, 2), crashed_dequeue]);
        assert_eq!(v.anomaly_types, vec!["lost"]);
        assert!(v.anomalies["lost"][0].contains("1 crashed dequeues may account"));
        let v = run(vec![
            enqueue(0, 1),
            enqueue(0, 2),
            vec![(Invoke, 6, "drain", Value::Null)],
        ]);
        assert_eq!(v.valid, Validity::Unknown);
        assert!(v.cause.unwrap().contains("drain invoked at line 5"));
    }

    #[test]
    fn a_drain_that_is_not_a_list_is_a_bad_history() {
        let e = check(
            &history(vec![
                (Invoke, 0, "drain", Value::Null),
                (Done, 0, "drain", json!(3)),
            ]),
            &Options::default(),
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("list of values"), "{e}");
    }
}
