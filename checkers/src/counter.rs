//! Jepsen's `counter` checker: `add` operations with integer deltas, `read` operations that
//! return the counter's value, which starts at 0.
//!
//! A read may observe any subset of the adds that could have taken effect before it finished,
//! and must observe every add that certainly took effect before it began. So each ok read must
//! lie within
//!
//! - lower = (positive ok adds completed before the read was invoked)
//!   + (every negative add, not failed, invoked before the read completed)
//! - upper = (every positive add, not failed, invoked before the read completed)
//!   + (negative ok adds completed before the read was invoked)
//!
//! With only positive adds this is exactly Jepsen's bound [sum of ok adds completed before the
//! read began, sum of attempted adds invoked before it ended]; Jepsen refuses negative adds, we
//! bound them symmetrically. Failed adds certainly did not happen and are left out; crashed
//! (`info`) and never-completed adds may have happened at any time after their invocation. An
//! add's delta is taken from its invocation.
//!
//! As in Jepsen, a history without any ok read is valid (no read was out of bounds): a
//! workload of adds alone is a legitimate test of the adds' outcomes. `read_count` in the
//! details says how much was actually checked.

use crate::history::{History, OpType, Value};
use crate::set::{describe_op, line_of, record_anomaly, short_value};
use crate::verdict::{BadHistory, Verdict};
use rustc_hash::FxHashMap;
use serde_json::json;

/// The checker's name in verdicts.
pub const NAME: &str = "counter";

/// The counter checker needs no options; the struct keeps every checker the same shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {}

/// Checks `history` as Jepsen's counter checker does.
pub fn check(history: &History, _options: &Options) -> Result<Verdict, BadHistory> {
    let mut sums = Sums::default();
    // Read invocation index -> the sums of ok adds done when it began.
    let mut open_reads: FxHashMap<usize, Done> = FxHashMap::default();
    let mut verdict = Verdict::new(NAME);
    let mut tally = Tally::default();
    for (i, op) in history.ops.iter().enumerate() {
        match (op.f.as_str(), op.op_type) {
            ("add", OpType::Invoke) => sums.invoked(history, i)?,
            ("add", OpType::Ok) => sums.completed(history, i)?,
            ("read", OpType::Invoke) => {
                open_reads.insert(i, sums.done);
            }
            ("read", OpType::Ok) => {
                let Some(inv) = history.partner[i] else {
                    continue;
                };
                let done_at_start = open_reads.remove(&inv).unwrap_or_default();
                let bounds = sums.bounds(done_at_start);
                let value = read_value(history, i)?;
                tally.record(history, i, inv, bounds, value, &mut verdict);
            }
            ("read", _) => {
                if let Some(inv) = history.partner[i] {
                    open_reads.remove(&inv);
                }
            }
            _ => {}
        }
    }
    tally.finish(&sums, &mut verdict);
    Ok(verdict)
}

/// Sums of the deltas of ok adds completed so far, split by sign.
#[derive(Clone, Copy, Debug, Default)]
struct Done {
    positive: i128,
    negative: i128,
}

/// Running sums over the history, in history order.
#[derive(Default)]
struct Sums {
    done: Done,
    /// Deltas of adds invoked so far that did not fail, split by sign.
    invoked_positive: i128,
    invoked_negative: i128,
    ok_adds: usize,
    maybe_adds: usize,
    failed_adds: usize,
}

impl Sums {
    /// An add invocation: it may take effect from now on, unless it failed.
    fn invoked(&mut self, history: &History, i: usize) -> Result<(), BadHistory> {
        let outcome = history.partner[i].map(|c| history.ops[c].op_type);
        let delta = add_delta(history, i)?;
        match outcome {
            Some(OpType::Fail) => {
                self.failed_adds += 1;
                return Ok(());
            }
            Some(OpType::Ok) => self.ok_adds += 1,
            _ => self.maybe_adds += 1,
        }
        if delta >= 0 {
            self.invoked_positive += delta;
        } else {
            self.invoked_negative += delta;
        }
        Ok(())
    }

    /// An ok add completion: it certainly took effect by now.
    fn completed(&mut self, history: &History, i: usize) -> Result<(), BadHistory> {
        let Some(inv) = history.partner[i] else {
            return Ok(());
        };
        let delta = add_delta(history, inv)?;
        if delta >= 0 {
            self.done.positive += delta;
        } else {
            self.done.negative += delta;
        }
        Ok(())
    }

    /// The bounds for a read completing now that began when `at_start` was done.
    fn bounds(&self, at_start: Done) -> (i128, i128) {
        (
            at_start.positive + self.invoked_negative,
            self.invoked_positive + at_start.negative,
        )
    }
}

/// The integer delta of add invocation `i`.
fn add_delta(history: &History, i: usize) -> Result<i128, BadHistory> {
    let v = &history.ops[i].value;
    v.as_i64().map(i128::from).ok_or_else(|| {
        BadHistory::at_op(
            history,
            i,
            format!("an add needs an integer delta, got {}", short_value(v)),
        )
    })
}

/// The integer an ok read returned.
fn read_value(history: &History, i: usize) -> Result<i128, BadHistory> {
    let v = &history.ops[i].value;
    v.as_i64().map(i128::from).ok_or_else(|| {
        BadHistory::at_op(
            history,
            i,
            format!(
                "a counter read must return an integer, got {}",
                short_value(v)
            ),
        )
    })
}

/// What the reads showed.
#[derive(Default)]
struct Tally {
    reads: usize,
    errors: usize,
    first_error: Option<Value>,
    /// The largest distance of a read outside its bounds.
    max_absolute_error: i128,
}

impl Tally {
    fn record(
        &mut self,
        history: &History,
        at: usize,
        inv: usize,
        (lower, upper): (i128, i128),
        value: i128,
        verdict: &mut Verdict,
    ) {
        self.reads += 1;
        if (lower..=upper).contains(&value) {
            return;
        }
        self.errors += 1;
        let distance = if value < lower {
            lower - value
        } else {
            value - upper
        };
        self.max_absolute_error = self.max_absolute_error.max(distance);
        if self.first_error.is_none() {
            self.first_error = Some(json!({
                "line": line_of(history, at),
                "index": at,
                "process": history.ops[at].process.to_json(),
                "lower": clamp(lower),
                "value": clamp(value),
                "upper": clamp(upper),
            }));
        }
        record_anomaly(verdict, "out-of-bounds-read", || {
            format!(
                "read at {} returned {value}, but it began at {} when adds certainly applied \
                 put the counter at no less than {lower}, and every add that might have \
                 applied by its end puts it at no more than {upper}",
                describe_op(history, at),
                describe_op(history, inv),
            )
        });
    }

    fn finish(self, sums: &Sums, verdict: &mut Verdict) {
        verdict.detail("read_count", self.reads);
        verdict.detail("error_count", self.errors);
        verdict.detail("ok_add_count", sums.ok_adds);
        verdict.detail("maybe_add_count", sums.maybe_adds);
        verdict.detail("failed_add_count", sums.failed_adds);
        verdict.detail("first_error", self.first_error.unwrap_or(Value::Null));
        verdict.detail("max_absolute_error", clamp(self.max_absolute_error));
    }
}

/// Bounds are sums of i64 deltas (so i128); JSON details hold 64-bit numbers.
fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType::{Fail, Info, Invoke, Ok as Done};
    use crate::set::test_support::history;
    use crate::verdict::Validity;

    fn run(events: Vec<crate::set::test_support::Event>) -> Verdict {
        check(&history(events), &Options::default()).unwrap()
    }

    #[test]
    fn reads_within_bounds_are_valid() {
        let v = run(vec![
            (Invoke, 0, "add", json!(1)),
            (Done, 0, "add", json!(1)),
            (Invoke, 1, "add", json!(5)),
            (Invoke, 2, "read", Value::Null),
            (Done, 2, "read", json!(6)),
            (Info, 1, "add", json!(5)),
            (Invoke, 3, "read", Value::Null),
            (Done, 3, "read", json!(1)),
        ]);
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["read_count"], 2);
        assert_eq!(v.details["maybe_add_count"], 1);
    }

    #[test]
    fn a_read_missing_an_add_completed_before_it_began_is_out_of_bounds() {
        let v = run(vec![
            (Invoke, 0, "add", json!(2)),
            (Done, 0, "add", json!(2)),
            (Invoke, 1, "read", Value::Null),
            (Done, 1, "read", json!(1)),
        ]);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomaly_types, vec!["out-of-bounds-read"]);
        let why = &v.anomalies["out-of-bounds-read"][0];
        assert!(why.contains("line 4 (process 1, ok read"), "{why}");
        assert!(why.contains("returned 1"), "{why}");
        assert!(why.contains("no less than 2"), "{why}");
        assert_eq!(v.details["first_error"]["lower"], 2);
        assert_eq!(v.details["first_error"]["upper"], 2);
    }

    #[test]
    fn a_read_above_every_attempted_add_is_out_of_bounds_and_failed_adds_do_not_count() {
        let v = run(vec![
            (Invoke, 0, "add", json!(3)),
            (Fail, 0, "add", json!(3)),
            (Invoke, 1, "read", Value::Null),
            (Done, 1, "read", json!(3)),
        ]);
        assert_eq!(v.anomaly_types, vec!["out-of-bounds-read"]);
        assert_eq!(v.details["max_absolute_error"], 3);
    }

    #[test]
    fn an_add_invoked_after_the_read_completed_cannot_be_observed() {
        let v = run(vec![
            (Invoke, 1, "read", Value::Null),
            (Done, 1, "read", json!(4)),
            (Invoke, 0, "add", json!(4)),
            (Done, 0, "add", json!(4)),
        ]);
        assert_eq!(v.anomaly_types, vec!["out-of-bounds-read"]);
    }

    #[test]
    fn negative_adds_widen_the_bounds_on_the_correct_side() {
        // A concurrent -3 may or may not have applied: 10 and 7 are both fine, 11 and 6 are not.
        let base = |read: i64| {
            run(vec![
                (Invoke, 0, "add", json!(10)),
                (Done, 0, "add", json!(10)),
                (Invoke, 1, "add", json!(-3)),
                (Invoke, 2, "read", Value::Null),
                (Done, 2, "read", json!(read)),
                (Done, 1, "add", json!(-3)),
            ])
            .valid
        };
        assert_eq!(base(10), Validity::Valid);
        assert_eq!(base(7), Validity::Valid);
        assert_eq!(base(11), Validity::Invalid);
        assert_eq!(base(6), Validity::Invalid);
    }

    #[test]
    fn a_negative_add_completed_before_the_read_must_be_seen() {
        let v = run(vec![
            (Invoke, 0, "add", json!(10)),
            (Done, 0, "add", json!(10)),
            (Invoke, 0, "add", json!(-3)),
            (Done, 0, "add", json!(-3)),
            (Invoke, 2, "read", Value::Null),
            (Done, 2, "read", json!(10)),
        ]);
        assert_eq!(v.anomaly_types, vec!["out-of-bounds-read"]);
        assert!(v.anomalies["out-of-bounds-read"][0].contains("no more than 7"));
    }

    #[test]
    fn no_read_is_valid_as_in_jepsen_and_bad_values_are_bad_histories() {
        let v = run(vec![
            (Invoke, 0, "add", json!(1)),
            (Done, 0, "add", json!(1)),
        ]);
        assert_eq!(v.valid, Validity::Valid);
        assert_eq!(v.details["read_count"], 0);

        let h = history(vec![(Invoke, 0, "add", json!("one"))]);
        let e = check(&h, &Options::default()).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.problem.contains("integer delta"), "{e}");

        let h = history(vec![
            (Invoke, 1, "read", Value::Null),
            (Done, 1, "read", Value::Null),
        ]);
        let e = check(&h, &Options::default()).unwrap_err();
        assert_eq!(e.line, 2);
    }
}
