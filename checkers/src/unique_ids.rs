//! Jepsen's `unique-ids` checker: `generate` operations whose ok values must all differ.
//!
//! Every id acknowledged by an ok `generate` is counted; an id returned more than once is
//! `duplicated`, and the explanation names every operation that returned it (up to a cap).
//! Details follow Jepsen: attempted and acknowledged counts, the duplicated ids with their
//! multiplicities (the most frequent [`MAX_DUPLICATES_LISTED`]), and the range of ids.

use crate::datum::Datum;
use crate::history::{History, OpType, Value};
use crate::set::{describe_op, record_anomaly};
use crate::verdict::{BadHistory, Verdict};
use rustc_hash::FxHashMap;
use serde_json::Map;

/// The checker's name in verdicts.
pub const NAME: &str = "unique-ids";

/// The unique-ids checker needs no options; the struct keeps every checker the same shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {}

/// Duplicated ids listed in the details (Jepsen lists 48), most frequent first.
pub const MAX_DUPLICATES_LISTED: usize = 48;
/// Operations named per duplicated id in its explanation.
pub const MAX_OPS_NAMED_PER_ID: usize = 8;

/// Checks `history` as Jepsen's unique-ids checker does.
pub fn check(history: &History, _options: &Options) -> Result<Verdict, BadHistory> {
    let mut attempted = 0usize;
    let mut acknowledged = 0usize;
    let mut seen: FxHashMap<Datum, Sightings> = FxHashMap::default();
    for (i, op) in history.ops.iter().enumerate() {
        if op.f != "generate" {
            continue;
        }
        match op.op_type {
            OpType::Invoke => attempted += 1,
            OpType::Ok => {
                if op.value.is_null() {
                    return Err(BadHistory::at_op(
                        history,
                        i,
                        "an ok generate must return the id it generated, got null",
                    ));
                }
                acknowledged += 1;
                seen.entry(Datum::from_json(&op.value)).or_default().add(i);
            }
            _ => {}
        }
    }
    let mut verdict = Verdict::new(NAME);
    report_duplicates(history, &seen, &mut verdict);
    verdict.detail("attempted_count", attempted);
    verdict.detail("acknowledged_count", acknowledged);
    verdict.detail("range", range(&seen));
    if acknowledged == 0 {
        verdict.give_up("no ok generate: no id was acknowledged, so uniqueness was not tested");
    }
    Ok(verdict)
}

/// Where one id was returned: how often, and the first few ops.
#[derive(Default)]
struct Sightings {
    count: usize,
    first_ops: Vec<usize>,
}

impl Sightings {
    fn add(&mut self, i: usize) {
        self.count += 1;
        if self.first_ops.len() < MAX_OPS_NAMED_PER_ID {
            self.first_ops.push(i);
        }
    }
}

/// One `duplicated` anomaly per id returned more than once, in order of first return.
fn report_duplicates(history: &History, seen: &FxHashMap<Datum, Sightings>, verdict: &mut Verdict) {
    let mut dups: Vec<(&Datum, &Sightings)> = seen.iter().filter(|(_, s)| s.count > 1).collect();
    dups.sort_by_key(|(_, s)| s.first_ops[0]);
    for (id, s) in &dups {
        record_anomaly(verdict, "duplicated", || explain_duplicate(history, id, s));
    }
    let mut by_count = dups.clone();
    by_count.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
    let listed: Map<String, Value> = by_count
        .iter()
        .take(MAX_DUPLICATES_LISTED)
        .map(|(id, s)| (id.to_string(), Value::from(s.count)))
        .collect();
    verdict.detail("duplicated_count", dups.len());
    verdict.detail("duplicated", listed);
}

/// Names the id, how often it was returned, and the first ops that returned it.
fn explain_duplicate(history: &History, id: &Datum, s: &Sightings) -> String {
    let named: Vec<String> = s
        .first_ops
        .iter()
        .map(|&i| describe_op(history, i))
        .collect();
    let more = s.count - s.first_ops.len();
    let tail = if more > 0 {
        format!(", and {more} more")
    } else {
        String::new()
    };
    format!(
        "id {id} was generated {} times: at {}{tail}",
        s.count,
        named.join("; ")
    )
}

/// `[lowest, highest]` id acknowledged, in the ids' own order (numeric for integers).
fn range(seen: &FxHashMap<Datum, Sightings>) -> Value {
    match (seen.keys().min(), seen.keys().max()) {
        (Some(lo), Some(hi)) => Value::Array(vec![lo.to_json(), hi.to_json()]),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType::{Info, Invoke, Ok as Done};
    use crate::set::test_support::history;
    use crate::verdict::Validity;
    use serde_json::json;

    fn generate(p: u64, id: Value) -> Vec<crate::set::test_support::Event> {
        vec![
            (Invoke, p, "generate", Value::Null),
            (Done, p, "generate", id),
        ]
    }

    #[test]
    fn distinct_ids_are_valid() {
        let mut events = generate(0, json!(3));
        events.extend(generate(1, json!(1)));
        events.push((Invoke, 2, "generate", Value::Null));
        events.push((Info, 2, "generate", Value::Null));
        let v = check(&history(events), &Options::default()).unwrap();
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["attempted_count"], 3);
        assert_eq!(v.details["acknowledged_count"], 2);
        assert_eq!(v.details["range"], json!([1, 3]));
        assert_eq!(v.details["duplicated_count"], 0);
    }

    #[test]
    fn an_id_returned_twice_is_duplicated_naming_both_ops() {
        let mut events = generate(0, json!(7));
        events.extend(generate(1, json!(8)));
        events.extend(generate(2, json!(7)));
        let v = check(&history(events), &Options::default()).unwrap();
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomaly_types, vec!["duplicated"]);
        let why = &v.anomalies["duplicated"][0];
        assert!(why.contains("id 7 was generated 2 times"), "{why}");
        assert!(why.contains("line 2 (process 0"), "{why}");
        assert!(why.contains("line 6 (process 2"), "{why}");
        assert_eq!(v.details["duplicated"], json!({"7": 2}));
    }

    #[test]
    fn no_acknowledged_id_is_unknown_and_a_null_id_is_a_bad_history() {
        let h = history(vec![(Invoke, 0, "generate", Value::Null)]);
        assert_eq!(
            check(&h, &Options::default()).unwrap().valid,
            Validity::Unknown
        );
        let e = check(&history(generate(0, Value::Null)), &Options::default()).unwrap_err();
        assert_eq!(e.line, 2);
    }
}
