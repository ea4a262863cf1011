//! Judging hand-written runs: a clean one, one whose replicas diverged, one that never
//! settled, and one whose transaction lost its completion to a timeout.

use super::*;
use checkers::history::jsonl;
use checkers::verdict::Validity;
use serde_json::json;

/// A history from op maps (index and time filled in).
fn history(ops: &[Value]) -> History {
    let text: String = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let mut op = op.clone();
            op["index"] = json!(i);
            op["time"] = json!(i * 1000);
            format!("{op}\n")
        })
        .collect();
    jsonl::read("history.jsonl", &text).unwrap()
}

fn op(process: u64, ty: &str, f: &str, value: Value) -> Value {
    json!({"process": process, "type": ty, "f": f, "value": value})
}

/// Two appends committed at n1 and n2, then a read at n2 that saw both.
fn txns() -> Vec<Value> {
    let done = |p, v: Value, node: &str, id: Option<u64>| {
        let mut o = op(p, "ok", "txn", v);
        o["node"] = json!(node);
        if let Some(id) = id {
            o["txn-id"] = json!(id);
        }
        o
    };
    vec![
        op(0, "invoke", "txn", json!([["append", 1, 1]])),
        done(0, json!([["append", 1, 1]]), "n1", Some(1)),
        op(1, "invoke", "txn", json!([["append", 1, 2]])),
        done(1, json!([["append", 1, 2]]), "n2", Some(2)),
        op(1, "invoke", "txn", json!([["r", 1, null]])),
        done(1, json!([["r", 1, [1, 2]]]), "n2", None),
    ]
}

fn settle(ok: bool) -> Vec<Value> {
    vec![
        op(0, "invoke", "settle", Value::Null),
        op(0, if ok { "ok" } else { "fail" }, "settle", json!({})),
    ]
}

fn dump(replica: &str, applied: &[u64], list: &[i64]) -> Vec<Value> {
    let ask = json!({"replica": replica});
    let got = json!({
        "replica": replica, "start": 0, "end": applied.len(), "applied": applied,
        "version": applied.len(), "state": {"1": list},
    });
    vec![
        op(0, "invoke", "apply-log", ask),
        op(0, "ok", "apply-log", got),
    ]
}

fn run(parts: &[Vec<Value>]) -> Judged {
    let h = history(&parts.concat());
    judge(
        &h,
        Workload::ListAppend,
        Model::Serializable,
        Duration::from_secs(10),
    )
    .unwrap()
}

fn verdict<'a>(j: &'a Judged, checker: &str) -> &'a Verdict {
    j.verdicts.iter().find(|v| v.checker == checker).unwrap()
}

#[test]
fn modes_claim_their_models_and_lazy_is_checked_as_serializable() {
    assert_eq!(model_for("certification", false), Ok(Model::Serializable));
    assert_eq!(
        model_for("certification", true),
        Ok(Model::SnapshotIsolation)
    );
    assert_eq!(model_for("weak-voting", true), Ok(Model::SnapshotIsolation));
    assert_eq!(model_for("primary-copy", false), Ok(Model::Serializable));
    assert_eq!(model_for("lazy", false), Ok(Model::Serializable));
    assert!(model_for("eager", false)
        .unwrap_err()
        .contains("weak-voting"));
    assert!(model_for("active", true).is_err());
}

#[test]
fn equal_replicas_that_agree_with_the_history_are_valid_on_every_checker() {
    let j = run(&[
        txns(),
        settle(true),
        dump("n1", &[1, 2], &[1, 2]),
        dump("n2", &[1, 2], &[1, 2]),
    ]);
    let names: Vec<&str> = j.verdicts.iter().map(|v| v.checker.as_str()).collect();
    assert_eq!(names, ["list-append", "one-copy", "convergence"]);
    for v in &j.verdicts {
        assert_eq!(v.valid, Validity::Valid, "{}: {}", v.checker, v.explain());
    }
    assert_eq!(j.summary["committed_writes"], 2);
    assert_eq!(j.summary["answered_by"]["n2"], 2);
    // The filtered history keeps the stored indices and names every write.
    assert_eq!(j.txns.ops.len(), 6);
    assert_eq!(j.txns.ops[2].extra.get(TXN_ID_FIELD), Some(&json!(2)));
    assert!(
        j.apply_logs.contains("\"finished\":true"),
        "{}",
        j.apply_logs
    );
}

#[test]
fn replicas_that_applied_in_different_orders_are_caught_by_name() {
    let j = run(&[
        txns(),
        settle(true),
        dump("n1", &[1, 2], &[1, 2]),
        dump("n2", &[2, 1], &[2, 1]),
    ]);
    let one_copy = verdict(&j, "one-copy");
    assert!(
        one_copy
            .anomaly_types
            .contains(&"divergent-apply-order".to_string()),
        "{one_copy:?}"
    );
    let c = verdict(&j, CONVERGENCE);
    assert_eq!(c.anomaly_types, ["unequal-apply-logs", "unequal-states"]);
    assert!(
        c.explain()
            .contains("at position 0 n1 applied 1 and n2 applied 2"),
        "{}",
        c.explain()
    );
    assert!(c
        .explain()
        .contains("key 1: n1 holds [1,2], n2 holds [2,1]"));
}

#[test]
fn a_lagging_replica_diverges_and_unsettled_replicas_are_unknown() {
    let lagging = run(&[
        txns(),
        settle(true),
        dump("n1", &[1, 2], &[1, 2]),
        dump("n2", &[1], &[1]),
    ]);
    let c = verdict(&lagging, CONVERGENCE);
    assert_eq!(c.valid, Validity::Invalid);
    assert!(c
        .explain()
        .contains("n1 applied 2 transactions, n2 applied 1"));
    let unsettled = run(&[
        txns(),
        settle(false),
        dump("n1", &[1, 2], &[1, 2]),
        dump("n2", &[1], &[1]),
    ]);
    let c = verdict(&unsettled, CONVERGENCE);
    assert_eq!(c.valid, Validity::Unknown, "{c:?}");
    assert!(c.cause.as_deref().unwrap().contains("never settled"));
    // Not finished, a lagging log is no proof of a lost commit either.
    assert_eq!(verdict(&unsettled, "one-copy").valid, Validity::Valid);
}

#[test]
fn a_transaction_whose_completion_timed_out_is_still_linked_to_the_logs() {
    let mut ops = txns();
    // The second append timed out in the runner: info, no node, no txn-id.
    ops[3] = json!({"process": 1, "type": "info", "f": "txn", "value": [["append", 1, 2]],
                    "error": "timeout"});
    ops.truncate(4);
    let j = run(&[
        ops,
        settle(true),
        dump("n1", &[1, 2], &[1, 2]),
        dump("n2", &[1, 2], &[1, 2]),
    ]);
    for v in &j.verdicts {
        assert_eq!(v.valid, Validity::Valid, "{}: {}", v.checker, v.explain());
    }
    let missing = run(&[txns(), settle(true), dump("n1", &[1, 2], &[1, 2])]);
    let c = verdict(&missing, CONVERGENCE);
    assert_eq!(c.valid, Validity::Valid, "n2 was never asked: {c:?}");
    let mut asked = dump("n2", &[], &[]);
    asked.truncate(1);
    asked.push(op(0, "fail", "apply-log", json!({"replica": "n2"})));
    let j = run(&[txns(), settle(true), dump("n1", &[1, 2], &[1, 2]), asked]);
    let c = verdict(&j, CONVERGENCE);
    assert_eq!(c.valid, Validity::Unknown);
    assert!(c.cause.as_deref().unwrap().contains("n2 gave no apply log"));
}

#[test]
fn a_malformed_dump_is_an_error_naming_its_line() {
    let mut bad = dump("n1", &[1, 2], &[1, 2]);
    bad[1]["value"]["end"] = json!(5);
    let h = history(&[txns(), settle(true), bad].concat());
    let err = judge(
        &h,
        Workload::ListAppend,
        Model::Serializable,
        Duration::from_secs(5),
    )
    .err()
    .unwrap();
    assert_eq!(err.line, 10, "{err}");
    assert!(err.problem.contains("lists 2 ids"), "{err}");
}
