//! The verdicts on small hand-written runs: a clean one, and each thing the workload's own
//! checker and the restored-snapshot invariant must name.

use super::*;
use checkers::history::{Format, Op, OpType, Process, Value};
use checkers::verdict::Validity;
use serde_json::json;

/// Ops appended in real-time order, each invoked and completed at once.
#[derive(Default)]
struct Run {
    ops: Vec<Op>,
}

impl Run {
    fn op(mut self, f: &str, invoke: Value, t: OpType, done: Value) -> Self {
        let p = Process::Client(self.ops.len() as u64);
        let i = self.ops.len() as u64;
        self.ops
            .push(Op::new(i, OpType::Invoke, p.clone(), f, invoke));
        self.ops.push(Op::new(i + 1, t, p, f, done));
        self
    }

    fn ok(self, f: &str, invoke: Value, done: Value) -> Self {
        self.op(f, invoke, OpType::Ok, done)
    }

    fn history(self) -> History {
        let lines = (1..=self.ops.len()).collect();
        History::new("test", Format::JsonLines, self.ops, lines).unwrap()
    }
}

fn part(kv: Value) -> Value {
    json!({"kv": kv, "before": [], "after": []})
}

/// Setup (txn 10) of two accounts on two shards, one transfer (txn 11), a snapshot after
/// it, the final read and state, and the parts of snapshot 1 as `n3_part` says.
fn history(n3_part: Value) -> History {
    let balances = json!({"0": 100, "1": 100});
    let transfer = json!({"from": 0, "to": 1, "amount": 5});
    Run::default()
        .ok(
            "setup",
            json!({ "balances": balances }),
            json!({"balances": balances, "txn": 10}),
        )
        .ok(
            "transfer",
            transfer.clone(),
            json!({"from": 0, "to": 1, "amount": 5, "txn": 11}),
        )
        .ok("snapshot", Value::Null, json!({"snapshot": 1}))
        .ok("read", Value::Null, json!({"0": 95, "1": 105}))
        .ok(
            "final-state",
            Value::Null,
            json!({"n2": {"kv": {"0": 95}, "applied": 2, "applied_truncated": false},
                   "n3": {"kv": {"1": 105}, "applied": 2, "applied_truncated": false}}),
        )
        .ok(
            "snapshot-parts",
            Value::Null,
            json!({"taken": [1], "parts": [
                {"snapshot": 1, "node": "n2", "part": part(json!([[0, 95]]))},
                {"snapshot": 1, "node": "n3", "part": n3_part},
            ]}),
        )
        .history()
}

/// The event log of that run: both transactions commit on both shards, then snapshot 1.
fn events(extra: &[&str]) -> Events {
    let mut lines: Vec<String> = Vec::new();
    for txn in [10, 11] {
        lines.push(format!(
            r#"{{"node":"n1","event":"participants","txn":{txn},"nodes":["n2","n3"]}}"#
        ));
        lines.push(format!(
            r#"{{"node":"n1","event":"log","txn":{txn},"record":"start"}}"#
        ));
        for p in ["n2", "n3"] {
            lines.push(format!(
                r#"{{"node":"{p}","event":"log","txn":{txn},"record":"yes"}}"#
            ));
            lines.push(format!(
                r#"{{"node":"{p}","event":"vote","txn":{txn},"vote":"yes"}}"#
            ));
        }
        lines.push(format!(
            r#"{{"node":"n1","event":"log","txn":{txn},"record":"commit"}}"#
        ));
        lines.push(format!(
            r#"{{"node":"n1","event":"decide","txn":{txn},"decision":"commit"}}"#
        ));
        for p in ["n2", "n3"] {
            lines.push(format!(
                r#"{{"node":"{p}","event":"decide","txn":{txn},"decision":"commit"}}"#
            ));
            lines.push(format!(r#"{{"node":"{p}","event":"commit","txn":{txn}}}"#));
        }
    }
    for p in ["n2", "n3"] {
        lines.push(format!(
            r#"{{"node":"{p}","event":"snapshot-start","snapshot":1}}"#
        ));
        lines.push(format!(
            r#"{{"node":"{p}","event":"snapshot-finish","snapshot":1,"before":[],"after":[]}}"#
        ));
    }
    lines.extend(extra.iter().map(|s| s.to_string()));
    for p in ["n2", "n3"] {
        lines.push(format!(
            r#"{{"node":"{p}","event":"final-state","applied":[10,11]}}"#
        ));
    }
    let text: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{{\"time\":{},{}", i + 1, &l[1..]))
        .collect();
    atomic_commit::parse_events("events.jsonl", &text.join("\n")).unwrap()
}

fn by_name<'a>(verdicts: &'a [Verdict], name: &str) -> &'a Verdict {
    verdicts
        .iter()
        .find(|v| v.checker == name)
        .unwrap_or_else(|| panic!("no {name} verdict"))
}

#[test]
fn a_clean_run_is_valid_on_every_checker() {
    let h = history(part(json!([[1, 105]])));
    let ev = events(&[]);
    let verdicts = judge(Kind::Snapshot, &h, Ok(&ev), Participants::Store).unwrap();
    let names: Vec<&str> = verdicts.iter().map(|v| v.checker.as_str()).collect();
    assert_eq!(
        names,
        [
            "bank",
            "twopc-snapshot",
            "atomic-commit",
            "consistent-cut",
            "recovery-line"
        ]
    );
    for v in &verdicts {
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
    }
    let own = by_name(&verdicts, "twopc-snapshot");
    assert_eq!(own.details["snapshots_checked"], 1);
    assert_eq!(own.details["transfers_ok"], 1);
}

#[test]
fn a_snapshot_whose_parts_lose_money_is_caught_twice() {
    let h = history(part(json!([[1, 100]])));
    let ev = events(&[]);
    let verdicts = judge(Kind::Snapshot, &h, Ok(&ev), Participants::Store).unwrap();
    let own = by_name(&verdicts, "twopc-snapshot");
    assert_eq!(own.anomaly_types, vec!["snapshot-wrong".to_string()]);
    let cut = by_name(&verdicts, "consistent-cut");
    assert_eq!(
        cut.anomaly_types,
        vec!["restored-invariant-violated".to_string()]
    );
    let why = &cut.anomalies["restored-invariant-violated"][0];
    assert!(why.contains("sum to 195, not 200"), "{why}");
    assert!(why.contains("transactions before the cut make"), "{why}");
}

#[test]
fn a_missing_part_is_named_unless_newer_ones_pushed_it_out() {
    let h = history(Value::Null);
    let ev = events(&[]);
    let verdicts = judge(Kind::Snapshot, &h, Ok(&ev), Participants::Store).unwrap();
    let own = by_name(&verdicts, "twopc-snapshot");
    assert_eq!(own.anomaly_types, vec!["snapshot-part-missing".to_string()]);
    // n3 kept its newest eight parts, all newer than snapshot 1: excused, not missing.
    let mut h = history(Value::Null);
    let fetch = h.ops.last_mut().unwrap();
    let list = fetch.value["parts"].as_array_mut().unwrap();
    for s in 2..=9 {
        for n in ["n2", "n3"] {
            list.push(json!({"snapshot": s, "node": n, "part": part(json!([]))}));
        }
    }
    let verdicts = judge(Kind::Snapshot, &h, Ok(&ev), Participants::Store).unwrap();
    let own = by_name(&verdicts, "twopc-snapshot");
    assert!(own.anomaly_types.is_empty(), "{own:?}");
    assert_eq!(own.details["parts_excused"], 1);
    assert_eq!(own.valid, Validity::Unknown, "nothing left to check");
    // The bank workload does not look at snapshots at all.
    let bank_run = judge(Kind::Bank, &h, Ok(&ev), Participants::Store).unwrap();
    assert_eq!(by_name(&bank_run, "twopc-bank").valid, Validity::Valid);
}

#[test]
fn without_an_event_log_the_event_checkers_are_unknown_and_say_why() {
    let h = history(part(json!([[1, 105]])));
    let verdicts = judge(
        Kind::Bank,
        &h,
        Err("events.jsonl is missing".into()),
        Participants::Store,
    )
    .unwrap();
    let ac = by_name(&verdicts, "atomic-commit");
    assert_eq!(ac.valid, Validity::Unknown);
    assert!(ac
        .cause
        .as_deref()
        .unwrap()
        .contains("events.jsonl is missing"));
    assert_eq!(by_name(&verdicts, "bank").valid, Validity::Valid);
}

#[test]
fn a_final_state_that_disagrees_with_the_final_read_is_named() {
    let mut h = history(part(json!([[1, 105]])));
    let read = h
        .ops
        .iter_mut()
        .rev()
        .find(|o| o.f == "read" && o.op_type == OpType::Ok)
        .unwrap();
    read.value = json!({"0": 96, "1": 104});
    let verdicts = judge(Kind::Bank, &h, Ok(&events(&[])), Participants::Store).unwrap();
    let own = by_name(&verdicts, "twopc-bank");
    assert_eq!(own.anomaly_types, vec!["final-read-disagrees".to_string()]);
}

#[test]
fn crashes_are_counted_and_those_during_a_commit_told_apart() {
    let ev = events(&[
        r#"{"node":"n2","event":"crash"}"#,
        r#"{"node":"n2","event":"recover"}"#,
        r#"{"node":"n1","event":"participants","txn":12,"nodes":["n2"]}"#,
        r#"{"node":"n1","event":"crash"}"#,
        r#"{"node":"n1","event":"recover"}"#,
        r#"{"node":"n1","event":"decide","txn":12,"decision":"abort"}"#,
    ]);
    assert_eq!(crashes_during_commit(&ev), (2, 1));
}

#[test]
fn a_run_whose_setup_never_committed_tested_nothing() {
    let h = Run::default()
        .op(
            "setup",
            json!({"balances": {"0": 1}}),
            OpType::Info,
            json!({"balances": {"0": 1}}),
        )
        .history();
    let verdicts = judge(Kind::Recovery, &h, Ok(&events(&[])), Participants::Store).unwrap();
    let own = by_name(&verdicts, "twopc-recovery");
    assert_eq!(own.valid, Validity::Unknown);
    assert_eq!(own.details["indefinite_writes"], 1);
}

#[test]
fn postgres_participants_are_judged_by_atomic_commit_alone_among_the_event_checkers() {
    let h = history(part(json!([[1, 105]])));
    let names = |p: Participants, ev: Result<&Events, String>| -> Vec<String> {
        judge(Kind::Bank, &h, ev, p)
            .unwrap()
            .into_iter()
            .map(|v| v.checker)
            .collect()
    };
    let ev = events(&[]);
    assert_eq!(
        names(Participants::Postgres, Ok(&ev)),
        ["bank", "twopc-bank", "atomic-commit"]
    );
    assert_eq!(
        names(Participants::Postgres, Err("no log".into())),
        ["bank", "twopc-bank", "atomic-commit"]
    );
    assert_eq!(
        names(Participants::Store, Ok(&ev)),
        [
            "bank",
            "twopc-bank",
            "atomic-commit",
            "consistent-cut",
            "recovery-line"
        ]
    );
}

#[test]
fn transactions_in_doubt_at_a_coordinator_crash_are_counted_and_so_is_their_resolution() {
    let lines = [
        r#"{"node":"n1","event":"participants","txn":7,"nodes":["n2","n3"]}"#,
        r#"{"node":"n1","event":"participants","txn":8,"nodes":["n2"]}"#,
        r#"{"node":"n1","event":"participants","txn":9,"nodes":["n3"]}"#,
        r#"{"node":"n2","event":"log","txn":7,"record":"yes"}"#,
        r#"{"node":"n3","event":"log","txn":7,"record":"yes"}"#,
        r#"{"node":"n2","event":"log","txn":8,"record":"yes"}"#,
        r#"{"node":"n3","event":"log","txn":9,"record":"yes"}"#,
        // Decided before the crash: not in doubt.
        r#"{"node":"n3","event":"decide","txn":9,"decision":"abort"}"#,
        // A participant's own crash strands nothing of the coordinator's.
        r#"{"node":"n3","event":"crash"}"#,
        r#"{"node":"n3","event":"recover"}"#,
        r#"{"node":"n1","event":"crash"}"#,
        r#"{"node":"n1","event":"recover"}"#,
        r#"{"node":"n1","event":"decide","txn":7,"decision":"abort"}"#,
        r#"{"node":"n2","event":"decide","txn":7,"decision":"abort"}"#,
        r#"{"node":"n3","event":"decide","txn":7,"decision":"abort"}"#,
    ];
    let text: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{{\"time\":{},{}", i + 1, &l[1..]))
        .collect();
    let ev = atomic_commit::parse_events("events.jsonl", &text.join("\n")).unwrap();
    // n2 and n3 on 7, n2 on 8: three in doubt; 8 is never decided.
    assert_eq!(in_doubt_at_coordinator_crash(&ev), (3, 2));
}
