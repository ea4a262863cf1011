//! Jepsen's `bank` checker: transfers move money between accounts, reads return every
//! account's balance, and no read may show money created or destroyed.
//!
//! Each ok `read` returns a map account -> balance. Like Jepsen, each read yields at most one
//! error, the first that applies in this order: `unexpected-key` (an account outside
//! `Options::accounts`, when given), `nil-balance` (an account without a balance),
//! `wrong-total` (the balances do not sum to the total), `negative-value` (a negative balance,
//! unless allowed). When no total is given, the first ok read's sum is taken as the total, as
//! elle-cli does, and the details say so. Transfers are only checked for shape
//! (`{from, to, amount}` on the invocation): their effect is what the reads judge.
//!
//! As in Jepsen, a history without any ok read is valid (no read showed an error);
//! `read_count` in the details says how much was actually checked.

use crate::history::{History, OpType, Value};
use crate::set::{describe_op, line_of, record_anomaly, short_value};
use crate::verdict::{BadHistory, Verdict};
use serde_json::{json, Map};
use std::collections::BTreeSet;

/// The checker's name in verdicts.
pub const NAME: &str = "bank";

/// What the test promised about its accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The sum every read must show. `None`: the sum of the first ok read.
    pub total: Option<i64>,
    /// Whether balances may go below zero (some tests allow overdrafts).
    pub negative_balances_allowed: bool,
    /// The account identifiers, as they appear as keys of a read (JSON object keys, so strings:
    /// EDN's integer account `0` is `"0"`). `None`: any account is expected.
    pub accounts: Option<Vec<String>>,
}

/// Checks `history` as Jepsen's bank checker does.
pub fn check(history: &History, options: &Options) -> Result<Verdict, BadHistory> {
    check_transfer_shapes(history)?;
    let reads = ok_reads(history)?;
    let mut verdict = Verdict::new(NAME);
    let Some(&(first_at, first)) = reads.first() else {
        verdict.detail("read_count", 0);
        verdict.detail("error_count", 0);
        return Ok(verdict);
    };
    let expected = expected_total(history, options, first_at, first, &mut verdict)?;
    let rules = Rules {
        total_i128: i128::from(expected),
        negative_allowed: options.negative_balances_allowed,
        accounts: options
            .accounts
            .as_ref()
            .map(|a| a.iter().map(String::as_str).collect()),
    };
    let mut tally = Tally::default();
    for &(at, balances) in &reads {
        if let Some(error) = rules.check_read(history, at, balances)? {
            tally.record(history, at, &error);
            record_anomaly(&mut verdict, error.kind(), || {
                rules.explain(history, at, &error)
            });
        }
    }
    verdict.detail("read_count", reads.len());
    verdict.detail("error_count", tally.errors);
    verdict.detail("first_error", tally.first.unwrap_or(Value::Null));
    if let Some((lowest, highest)) = tally.wrong_totals {
        verdict.detail("lowest_wrong_total", clamp_i128(lowest));
        verdict.detail("highest_wrong_total", clamp_i128(highest));
    }
    Ok(verdict)
}

/// Every transfer invocation must say what moves where: `{from, to, amount}` with an integer
/// amount. Completions are not checked: clients record reasons there (`[:negative 2 -1]`).
fn check_transfer_shapes(history: &History) -> Result<(), BadHistory> {
    for (i, op) in history.ops.iter().enumerate() {
        if op.f != "transfer" || op.op_type != OpType::Invoke {
            continue;
        }
        let shaped = match &op.value {
            Value::Object(m) => {
                m.contains_key("from")
                    && m.contains_key("to")
                    && m.get("amount").is_some_and(|a| a.as_i64().is_some())
            }
            _ => false,
        };
        if !shaped {
            return Err(BadHistory::at_op(
                history,
                i,
                format!(
                    "a transfer must be a map {{from, to, amount}} with an integer amount, got {}",
                    short_value(&op.value)
                ),
            ));
        }
    }
    Ok(())
}

/// An ok read: its index in the history and its balance map.
type OkRead<'a> = (usize, &'a Map<String, Value>);

/// The ok reads in history order, with their balance maps.
fn ok_reads(history: &History) -> Result<Vec<OkRead<'_>>, BadHistory> {
    let mut reads = Vec::new();
    for (i, op) in history.ops.iter().enumerate() {
        if op.f != "read" || op.op_type != OpType::Ok {
            continue;
        }
        match &op.value {
            Value::Object(m) => reads.push((i, m)),
            other => {
                return Err(BadHistory::at_op(
                    history,
                    i,
                    format!(
                        "a bank read must return a map account -> balance, got {}",
                        short_value(other)
                    ),
                ))
            }
        }
    }
    Ok(reads)
}

/// The total to hold reads to: the option, or the first read's sum (recorded in the details).
fn expected_total(
    history: &History,
    options: &Options,
    first_at: usize,
    first: &Map<String, Value>,
    verdict: &mut Verdict,
) -> Result<i64, BadHistory> {
    if let Some(total) = options.total {
        verdict.detail("total", total);
        verdict.detail("total_source", "given in the options");
        return Ok(total);
    }
    let balances = balances(history, first_at, first)?;
    let sum: i128 = balances.iter().flatten().map(|&b| i128::from(b)).sum();
    let total = i64::try_from(sum).map_err(|_| {
        BadHistory::at_op(
            history,
            first_at,
            format!("balances sum to {sum}, beyond 64 bits"),
        )
    })?;
    verdict.detail("total", total);
    verdict.detail(
        "total_source",
        format!(
            "inferred: the sum of the first ok read, at {}",
            describe_op(history, first_at)
        ),
    );
    Ok(total)
}

/// The balances of one read, `None` for an account whose balance is nil.
fn balances(
    history: &History,
    at: usize,
    read: &Map<String, Value>,
) -> Result<Vec<Option<i64>>, BadHistory> {
    read.iter()
        .map(|(account, balance)| match balance {
            Value::Null => Ok(None),
            v => v.as_i64().map(Some).ok_or_else(|| {
                BadHistory::at_op(
                    history,
                    at,
                    format!(
                        "account {account:?} has balance {}, not a 64-bit integer",
                        short_value(v)
                    ),
                )
            }),
        })
        .collect()
}

/// One read's error, in Jepsen's terms.
enum ReadError {
    UnexpectedKey(Vec<String>),
    NilBalance(Vec<String>),
    WrongTotal(i128),
    NegativeValue(Vec<(String, i64)>),
}

impl ReadError {
    fn kind(&self) -> &'static str {
        match self {
            ReadError::UnexpectedKey(_) => "unexpected-key",
            ReadError::NilBalance(_) => "nil-balance",
            ReadError::WrongTotal(_) => "wrong-total",
            ReadError::NegativeValue(_) => "negative-value",
        }
    }
}

/// What every read is held to.
struct Rules<'a> {
    total_i128: i128,
    negative_allowed: bool,
    accounts: Option<BTreeSet<&'a str>>,
}

impl Rules<'_> {
    /// The first error of read `at`, in Jepsen's priority order, or `None` if it is sound.
    fn check_read(
        &self,
        history: &History,
        at: usize,
        read: &Map<String, Value>,
    ) -> Result<Option<ReadError>, BadHistory> {
        if let Some(accounts) = &self.accounts {
            let unexpected: Vec<String> = read
                .keys()
                .filter(|k| !accounts.contains(k.as_str()))
                .cloned()
                .collect();
            if !unexpected.is_empty() {
                return Ok(Some(ReadError::UnexpectedKey(unexpected)));
            }
        }
        let values = balances(history, at, read)?;
        let nils: Vec<String> = read
            .iter()
            .filter(|(_, b)| b.is_null())
            .map(|(k, _)| k.clone())
            .collect();
        if !nils.is_empty() {
            return Ok(Some(ReadError::NilBalance(nils)));
        }
        let sum: i128 = values.iter().flatten().map(|&b| i128::from(b)).sum();
        if sum != self.total_i128 {
            return Ok(Some(ReadError::WrongTotal(sum)));
        }
        let negative: Vec<(String, i64)> = read
            .keys()
            .zip(&values)
            .filter_map(|(k, b)| b.filter(|&b| b < 0).map(|b| (k.clone(), b)))
            .collect();
        if !self.negative_allowed && !negative.is_empty() {
            return Ok(Some(ReadError::NegativeValue(negative)));
        }
        Ok(None)
    }

    /// Plain text proving `error` in read `at`.
    fn explain(&self, history: &History, at: usize, error: &ReadError) -> String {
        let read = format!(
            "read at {} returned {}",
            describe_op(history, at),
            short_value(&history.ops[at].value)
        );
        match error {
            ReadError::UnexpectedKey(keys) => {
                format!("{read}, which has accounts {keys:?} outside the test's accounts")
            }
            ReadError::NilBalance(keys) => format!("{read}: accounts {keys:?} have no balance"),
            ReadError::WrongTotal(sum) => format!(
                "{read}: the balances sum to {sum}, but the total is {}",
                self.total_i128
            ),
            ReadError::NegativeValue(neg) => {
                let shown: Vec<String> = neg.iter().map(|(k, b)| format!("{k:?}: {b}")).collect();
                format!(
                    "{read}: negative balances {{{}}}, and this test does not allow them",
                    shown.join(", ")
                )
            }
        }
    }
}

/// Counts of what went wrong, beyond the explanations the verdict keeps.
#[derive(Default)]
struct Tally {
    errors: usize,
    /// Jepsen's `first-error`: the earliest read with an error, as a JSON summary.
    first: Option<Value>,
    /// Lowest and highest wrong sums seen.
    wrong_totals: Option<(i128, i128)>,
}

impl Tally {
    fn record(&mut self, history: &History, at: usize, error: &ReadError) {
        self.errors += 1;
        if let ReadError::WrongTotal(sum) = error {
            let (lo, hi) = self.wrong_totals.unwrap_or((*sum, *sum));
            self.wrong_totals = Some((lo.min(*sum), hi.max(*sum)));
        }
        if self.first.is_some() {
            return;
        }
        let mut first = json!({
            "type": error.kind(),
            "line": line_of(history, at),
            "index": at,
            "process": history.ops[at].process.to_json(),
            "value": history.ops[at].value.clone(),
        });
        if let (ReadError::WrongTotal(sum), Value::Object(m)) = (error, &mut first) {
            m.insert("total".into(), clamp_i128(*sum).into());
        }
        self.first = Some(first);
    }
}

/// A sum for JSON details: sums of i64 balances fit i128, JSON numbers are 64-bit.
fn clamp_i128(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType::{Fail, Invoke, Ok as Done};
    use crate::set::test_support::history;
    use crate::verdict::Validity;

    fn read(p: u64, balances: Value) -> Vec<crate::set::test_support::Event> {
        vec![
            (Invoke, p, "read", Value::Null),
            (Done, p, "read", balances),
        ]
    }

    fn transfers_then_reads(reads: Vec<Value>) -> History {
        let mut events = vec![
            (
                Invoke,
                9,
                "transfer",
                json!({"from": 0, "to": 1, "amount": 5}),
            ),
            (Fail, 9, "transfer", json!(["negative", 0, -5])),
        ];
        for r in reads {
            events.extend(read(0, r));
        }
        history(events)
    }

    #[test]
    fn reads_that_keep_the_total_are_valid_and_the_total_is_inferred() {
        let h = transfers_then_reads(vec![json!({"0": 10, "1": 0}), json!({"0": 5, "1": 5})]);
        let v = check(&h, &Options::default()).unwrap();
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["total"], 10);
        assert!(v.details["total_source"]
            .as_str()
            .unwrap()
            .contains("inferred"));
        assert_eq!(v.details["read_count"], 2);
        assert_eq!(v.details["error_count"], 0);
    }

    #[test]
    fn a_read_with_the_wrong_sum_is_wrong_total() {
        let h = transfers_then_reads(vec![json!({"0": 10, "1": 0}), json!({"0": 10, "1": 5})]);
        let v = check(&h, &Options::default()).unwrap();
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomaly_types, vec!["wrong-total"]);
        let why = &v.anomalies["wrong-total"][0];
        assert!(why.contains("line 6 (process 0, ok read"), "{why}");
        assert!(why.contains("sum to 15, but the total is 10"), "{why}");
        assert_eq!(v.details["first_error"]["total"], 15);
        assert_eq!(v.details["first_error"]["line"], 6);
        assert_eq!(v.details["error_count"], 1);
    }

    #[test]
    fn a_given_total_is_used_instead_of_the_first_read() {
        let h = transfers_then_reads(vec![json!({"0": 10, "1": 0})]);
        let v = check(
            &h,
            &Options {
                total: Some(11),
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(v.anomaly_types, vec!["wrong-total"]);
    }

    #[test]
    fn negative_balances_are_errors_unless_allowed() {
        let h = transfers_then_reads(vec![json!({"0": 10, "1": 0}), json!({"0": 11, "1": -1})]);
        let v = check(&h, &Options::default()).unwrap();
        assert_eq!(v.anomaly_types, vec!["negative-value"]);
        assert!(v.anomalies["negative-value"][0].contains("\"1\": -1"));
        let allowed = Options {
            negative_balances_allowed: true,
            ..Options::default()
        };
        assert_eq!(check(&h, &allowed).unwrap().valid, Validity::Valid);
    }

    #[test]
    fn accounts_outside_the_given_ones_are_unexpected_keys() {
        let h = transfers_then_reads(vec![json!({"0": 10, "7": 0})]);
        let opts = Options {
            accounts: Some(vec!["0".into(), "1".into()]),
            ..Options::default()
        };
        let v = check(&h, &opts).unwrap();
        assert_eq!(v.anomaly_types, vec!["unexpected-key"]);
        assert!(v.anomalies["unexpected-key"][0].contains("[\"7\"]"));
    }

    #[test]
    fn a_nil_balance_is_reported() {
        let h = transfers_then_reads(vec![json!({"0": 10, "1": 0}), json!({"0": 10, "1": null})]);
        let v = check(&h, &Options::default()).unwrap();
        assert_eq!(v.anomaly_types, vec!["nil-balance"]);
    }

    #[test]
    fn no_ok_read_is_valid_as_in_jepsen() {
        let v = check(&transfers_then_reads(vec![]), &Options::default()).unwrap();
        assert_eq!(v.valid, Validity::Valid);
        assert_eq!(v.details["read_count"], 0);
    }

    #[test]
    fn malformed_reads_and_transfers_are_bad_histories_naming_the_line() {
        let h = transfers_then_reads(vec![json!([10, 0])]);
        let e = check(&h, &Options::default()).unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.problem.contains("map account -> balance"), "{e}");

        let h = transfers_then_reads(vec![json!({"0": "ten"})]);
        let e = check(&h, &Options::default()).unwrap_err();
        assert!(e.problem.contains("not a 64-bit integer"), "{e}");

        let h = history(vec![(Invoke, 0, "transfer", json!({"from": 0, "to": 1}))]);
        let e = check(&h, &Options::default()).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.problem.contains("integer amount"), "{e}");
    }
}
