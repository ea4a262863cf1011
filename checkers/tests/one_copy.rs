//! The one-copy checker end to end: a client history in Faultline's JSON lines with `txn-id`s,
//! replica apply logs in their JSON lines, and the verdict. One clean run, then one run per
//! anomaly that plants exactly that anomaly, then bad input.

use checkers::history::{jsonl, History};
use checkers::one_copy::{check, parse_apply_logs, ApplyLogs};
use checkers::verdict::{Validity, Verdict};
use std::fmt::Write;

/// A transaction of a test history: its id and how the client saw it end.
#[derive(Clone, Copy)]
struct T(i64, &'static str);

/// All transactions invoked before any completes: no real-time order between them.
fn concurrent(txns: &[T]) -> History {
    let mut text = String::new();
    for (p, _) in txns.iter().enumerate() {
        invoke(&mut text, p);
    }
    for (p, t) in txns.iter().enumerate() {
        complete(&mut text, p, *t);
    }
    jsonl::read("h.jsonl", &text).unwrap()
}

/// One after another, each completing before the next is invoked.
fn sequential(txns: &[T]) -> History {
    let mut text = String::new();
    for (p, t) in txns.iter().enumerate() {
        invoke(&mut text, p);
        complete(&mut text, p, *t);
    }
    jsonl::read("h.jsonl", &text).unwrap()
}

fn invoke(text: &mut String, process: usize) {
    let _ = writeln!(
        text,
        "{{\"type\":\"invoke\",\"process\":{process},\"f\":\"txn\",\"value\":null}}"
    );
}

fn complete(text: &mut String, process: usize, T(id, kind): T) {
    let _ = writeln!(
        text,
        "{{\"type\":\"{kind}\",\"process\":{process},\"f\":\"txn\",\"value\":null,\"txn-id\":{id}}}"
    );
}

/// One apply log line per replica: `(name, applied, finished, state)`.
fn logs(replicas: &[(&str, &[i64], bool, Option<&str>)]) -> ApplyLogs {
    let mut text = String::new();
    for (name, applied, finished, state) in replicas {
        let ids: Vec<String> = applied.iter().map(i64::to_string).collect();
        let _ = write!(
            text,
            "{{\"replica\": \"{name}\", \"applied\": [{}], \"finished\": {finished}",
            ids.join(", ")
        );
        if let Some(s) = state {
            let _ = write!(text, ", \"state\": {s}");
        }
        text.push_str("}\n");
    }
    parse_apply_logs("apply.jsonl", &text).unwrap()
}

/// The verdict has exactly these anomaly types; returns the explanations of the first.
fn expect(v: &Verdict, types: &[&str]) -> Vec<String> {
    assert_eq!(v.anomaly_types, types, "{}", v.explain());
    assert_eq!(v.valid, Validity::Invalid);
    v.anomalies[types[0]].clone()
}

const STATE: &str = "{\"x\": 5, \"y\": [1, 2]}";

#[test]
fn a_clean_three_replica_run_is_valid() {
    let h = concurrent(&[
        T(1, "ok"),
        T(2, "ok"),
        T(3, "fail"),
        T(4, "info"),
        T(5, "ok"),
    ]);
    let l = logs(&[
        ("n1", &[2, 1, 4, 5], true, Some(STATE)),
        ("n2", &[2, 1, 4, 5], true, Some(STATE)),
        // Not finished: a prefix is enough, and it may lack committed txns.
        ("n3", &[2, 1], false, Some("{\"x\": 0}")),
    ]);
    let v = check(&h, &l).unwrap();
    assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
    assert_eq!(v.checker, "one-copy");
    assert_eq!(v.details["replicas"], 3);
    assert_eq!(v.details["finished_replicas"], 2);
    assert_eq!(v.details["common_order_length"], 4);
    assert_eq!(v.details["common_order_replica"], "n1");
    assert_eq!(v.details["applied_counts"]["n3"], 2);
    assert_eq!(v.details["committed"], 3);
    assert_eq!(v.details["aborted"], 1);
    assert_eq!(v.details["unknown"], 1);
}

#[test]
fn an_info_txn_may_be_applied_or_not() {
    let h = sequential(&[T(1, "ok"), T(2, "info")]);
    let v = check(&h, &logs(&[("n1", &[1], true, None)])).unwrap();
    assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
    let v = check(&h, &logs(&[("n1", &[1, 2], true, None)])).unwrap();
    assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
}

#[test]
fn divergent_apply_order_names_the_position_and_both_ids() {
    let h = concurrent(&[T(1, "ok"), T(2, "ok"), T(3, "ok")]);
    let l = logs(&[
        ("n1", &[1, 2, 3], true, None),
        ("n2", &[1, 3, 2], true, None),
        ("n3", &[1, 2], false, None),
    ]);
    let why = expect(&check(&h, &l).unwrap(), &["divergent-apply-order"]);
    assert_eq!(why.len(), 1);
    assert!(
        why[0].contains("n1 and n2") && why[0].contains("position 2"),
        "{why:?}"
    );
    assert!(
        why[0].contains("(after 1 transaction in common)"),
        "{why:?}"
    );
    assert!(
        why[0].contains("n1 applied 2") && why[0].contains("n2 applied 3"),
        "{why:?}"
    );
}

#[test]
fn duplicate_apply_is_caught() {
    let h = concurrent(&[T(1, "ok"), T(2, "ok")]);
    let l = logs(&[("n1", &[1, 2, 1], true, None), ("n2", &[1, 2], true, None)]);
    let why = expect(&check(&h, &l).unwrap(), &["duplicate-apply"]);
    assert!(
        why[0].contains("n1 applied 1 twice: at positions 1 and 3"),
        "{why:?}"
    );
}

#[test]
fn aborted_applied_is_caught() {
    let h = concurrent(&[T(1, "ok"), T(2, "fail")]);
    let l = logs(&[("n1", &[1, 2], true, None), ("n2", &[1, 2], true, None)]);
    let why = expect(&check(&h, &l).unwrap(), &["aborted-applied"]);
    assert!(
        why[0].contains("txn 2 failed (aborted) at line 4"),
        "{why:?}"
    );
    assert!(
        why[0].contains("applied by n1 and 1 other replica"),
        "{why:?}"
    );
}

#[test]
fn committed_not_applied_names_the_finished_replicas_that_lack_it() {
    let h = concurrent(&[T(1, "ok"), T(2, "ok"), T(3, "ok")]);
    let l = logs(&[
        ("n1", &[1, 2], true, None),
        ("n2", &[1, 2], true, None),
        ("n3", &[1], true, None),
        ("n4", &[], false, None),
    ]);
    let v = check(&h, &l).unwrap();
    let why = expect(&v, &["committed-not-applied"]);
    assert_eq!(v.anomaly_counts["committed-not-applied"], 2);
    assert!(
        why[0].contains("txn 2 committed") && why[0].contains("replica n3 never"),
        "{why:?}"
    );
    assert!(
        why[1].contains("txn 3 committed") && why[1].contains("replicas n1, n2 and n3 never"),
        "{why:?}"
    );
}

#[test]
fn unknown_txn_applied_is_caught() {
    let h = concurrent(&[T(1, "ok")]);
    let l = logs(&[("n1", &[1, 99], true, None), ("n2", &[1, 99], true, None)]);
    let why = expect(&check(&h, &l).unwrap(), &["unknown-txn-applied"]);
    assert!(
        why[0].contains("txn 99 was applied by n1 and 1 other replica"),
        "{why:?}"
    );
}

#[test]
fn divergent_state_names_the_first_differing_key_and_both_values() {
    let h = concurrent(&[T(1, "ok")]);
    let l = logs(&[
        ("n1", &[1], true, Some(STATE)),
        ("n2", &[1], true, Some(STATE)),
        ("n3", &[1], true, Some("{\"x\": 5, \"y\": [1]}")),
        // Unfinished replicas may lag in state.
        ("n4", &[], false, Some("{}")),
    ]);
    let why = expect(&check(&h, &l).unwrap(), &["divergent-state"]);
    assert_eq!(why.len(), 1);
    assert!(why[0].contains("n1 and n3"), "{why:?}");
    assert!(
        why[0].contains("at key \"y\" n1 has [1,2] and n3 has [1]"),
        "{why:?}"
    );
}

#[test]
fn realtime_order_violation_is_caught() {
    // 1 commits before 2 is invoked, yet every replica applies 2 first.
    let h = sequential(&[T(1, "ok"), T(2, "ok"), T(3, "ok")]);
    let l = logs(&[
        ("n1", &[2, 1, 3], true, None),
        ("n2", &[2, 1, 3], true, None),
    ]);
    let why = expect(&check(&h, &l).unwrap(), &["realtime-order-violation"]);
    assert_eq!(why.len(), 1);
    assert!(
        why[0].contains("txn 1 completed ok (line 2) before txn 2 was invoked (line 3)"),
        "{why:?}"
    );
    assert!(
        why[0].contains("applies 2 at position 1, before 1 at position 2"),
        "{why:?}"
    );
}

#[test]
fn concurrent_txns_may_be_ordered_either_way() {
    let h = concurrent(&[T(1, "ok"), T(2, "ok")]);
    for order in [[1, 2], [2, 1]] {
        let v = check(&h, &logs(&[("n1", &order, true, None)])).unwrap();
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
    }
}

#[test]
fn bad_apply_logs_name_the_line() {
    let cases = [
        (
            "{\"replica\": \"n1\", \"applied\": [1]}\n{oops\n",
            2,
            "not valid JSON",
        ),
        (
            "{\"replica\": \"n1\"}\n\n[1, 2]\n",
            3,
            "expected a JSON object",
        ),
        (
            "{\"replica\": \"n1\", \"applied\": {\"a\": 1}}",
            1,
            "array of txn ids",
        ),
        (
            "{\"replica\": \"n1\", \"applied\": [true]}",
            1,
            "txn id (an integer or a string)",
        ),
        (
            "{\"replica\": \"n1\", \"finished\": 1}",
            1,
            "finished must be",
        ),
        ("{\"replica\": \"n1\", \"colour\": 1}", 1, "unknown field"),
    ];
    for (text, line, problem) in cases {
        let e = parse_apply_logs("apply.jsonl", text).unwrap_err();
        assert_eq!(e.file, "apply.jsonl");
        assert_eq!(e.line, line, "{e}");
        assert!(e.problem.contains(problem), "{e}");
        assert!(e.to_string().starts_with(&format!("apply.jsonl:{line}: ")));
    }
}

#[test]
fn a_bad_txn_id_in_the_history_names_its_line() {
    let h = jsonl::read(
        "h.jsonl",
        "{\"type\":\"invoke\",\"process\":0,\"f\":\"txn\",\"value\":null}\n\
         {\"type\":\"ok\",\"process\":0,\"f\":\"txn\",\"value\":null,\"txn-id\":1.5}\n",
    )
    .unwrap();
    let e = check(&h, &logs(&[("n1", &[1], true, None)])).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("h.jsonl", 2));
}

#[test]
fn large_logs_are_checked_in_linear_time() {
    const N: i64 = 200_000;
    let txns: Vec<T> = (0..N).map(|i| T(i, "ok")).collect();
    let h = sequential(&txns);
    let ids: Vec<i64> = (0..N).collect();
    let l = logs(&[
        ("n1", &ids, true, None),
        ("n2", &ids, true, None),
        ("n3", &ids[..N as usize / 2], false, None),
    ]);
    let start = std::time::Instant::now();
    let v = check(&h, &l).unwrap();
    assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}
