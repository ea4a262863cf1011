//! End to end over JSON-lines event logs: one clean two-phase-commit run with crashes and
//! recovery that all three checkers accept, and one run per planted bug, each giving its
//! anomaly. The logs are what the reference store will record.

use checkers::verdict::{Validity, Verdict};
use checkers::{atomic_commit, consistent_cut, recovery_line};

/// Gives each event line a time (its index in microseconds), as a recorder would.
fn timed(lines: &[&str]) -> String {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{{\"time\":{},{}\n", i * 1000, l.trim_start_matches('{')))
        .collect()
}

/// All three verdicts on one log.
fn verdicts(text: &str) -> [Verdict; 3] {
    let ev = atomic_commit::parse_events("run.jsonl", text).expect("a valid log");
    [
        atomic_commit::check(&ev).expect("atomic commit"),
        recovery_line::check(&ev).expect("recovery line"),
        consistent_cut::check(&ev, None).expect("consistent cut"),
    ]
}

/// A clean run: txn 1 commits although p2 crashes after voting yes (it recovers and learns the
/// decision from the coordinator); txn 2 aborts on p1's no; the coordinator crashes during
/// txn 3 and aborts it on recovery. Coordinated checkpoint 1 and snapshot s1 are taken with
/// markers. Faults heal and the shards report their final state.
const CLEAN: &[&str] = &[
    r#"{"node":"c","event":"participants","txn":1,"nodes":["p1","p2"]}"#,
    r#"{"node":"c","event":"log","txn":1,"record":"start"}"#,
    r#"{"node":"c","event":"send","msg":"vote-req-1-p1","to":"p1"}"#,
    r#"{"node":"c","event":"send","msg":"vote-req-1-p2","to":"p2"}"#,
    r#"{"node":"p1","event":"receive","msg":"vote-req-1-p1"}"#,
    r#"{"node":"p1","event":"log","txn":1,"record":"yes"}"#,
    r#"{"node":"p1","event":"vote","txn":1,"vote":"yes"}"#,
    r#"{"node":"p2","event":"receive","msg":"vote-req-1-p2"}"#,
    r#"{"node":"p2","event":"log","txn":1,"record":"yes"}"#,
    r#"{"node":"p2","event":"vote","txn":1,"vote":"yes"}"#,
    r#"{"node":"p2","event":"crash"}"#,
    r#"{"node":"c","event":"log","txn":1,"record":"commit"}"#,
    r#"{"node":"c","event":"decide","txn":1,"decision":"commit"}"#,
    r#"{"node":"p1","event":"decide","txn":1,"decision":"commit"}"#,
    r#"{"node":"p1","event":"log","txn":1,"record":"commit"}"#,
    r#"{"node":"p1","event":"commit","txn":1}"#,
    r#"{"node":"p2","event":"recover"}"#,
    r#"{"node":"p2","event":"decide","txn":1,"decision":"commit"}"#,
    r#"{"node":"p2","event":"log","txn":1,"record":"commit"}"#,
    r#"{"node":"p2","event":"commit","txn":1}"#,
    r#"{"node":"c","event":"log","txn":1,"record":"end"}"#,
    r#"{"node":"c","event":"checkpoint","id":1}"#,
    r#"{"node":"p1","event":"checkpoint","id":1}"#,
    r#"{"node":"p2","event":"checkpoint","id":1}"#,
    r#"{"node":"c","event":"participants","txn":2,"nodes":["p1","p2"]}"#,
    r#"{"node":"c","event":"log","txn":2,"record":"start"}"#,
    r#"{"node":"p1","event":"log","txn":2,"record":"abort"}"#,
    r#"{"node":"p1","event":"vote","txn":2,"vote":"no"}"#,
    r#"{"node":"p1","event":"decide","txn":2,"decision":"abort"}"#,
    r#"{"node":"p2","event":"log","txn":2,"record":"yes"}"#,
    r#"{"node":"p2","event":"vote","txn":2,"vote":"yes"}"#,
    r#"{"node":"c","event":"log","txn":2,"record":"abort"}"#,
    r#"{"node":"c","event":"decide","txn":2,"decision":"abort"}"#,
    r#"{"node":"p2","event":"decide","txn":2,"decision":"abort"}"#,
    r#"{"node":"p1","event":"snapshot-start","snapshot":"s1"}"#,
    r#"{"node":"c","event":"participants","txn":3,"nodes":["p1","p2"]}"#,
    r#"{"node":"c","event":"log","txn":3,"record":"start"}"#,
    r#"{"node":"c","event":"crash"}"#,
    r#"{"node":"c","event":"recover"}"#,
    r#"{"node":"c","event":"log","txn":3,"record":"abort"}"#,
    r#"{"node":"c","event":"decide","txn":3,"decision":"abort"}"#,
    r#"{"node":"p2","event":"snapshot-start","snapshot":"s1"}"#,
    r#"{"node":"p1","event":"snapshot-finish","snapshot":"s1","before":[],"after":[]}"#,
    r#"{"node":"p2","event":"snapshot-finish","snapshot":"s1","before":[],"after":[]}"#,
    r#"{"event":"heal"}"#,
    r#"{"node":"p1","event":"final-state","applied":[1]}"#,
    r#"{"node":"p2","event":"final-state","applied":[1]}"#,
];

#[test]
fn clean_run_with_crashes_and_recovery_is_valid() {
    let [ac, rl, cc] = verdicts(&timed(CLEAN));
    for v in [&ac, &rl, &cc] {
        assert_eq!(v.valid, Validity::Valid, "{}: {}", v.checker, v.explain());
    }
    assert_eq!(ac.details["txns_committed"], 1);
    assert_eq!(ac.details["txns_aborted"], 2);
    assert_eq!(ac.details["ac5_checked"], true);
    // c and p2 crashed (the checker treats every crashed process as failed at the end of the
    // log): they restart from checkpoint 1; p1 keeps its volatile state.
    assert_eq!(
        rl.details["recovery_line"],
        serde_json::json!({"c": 1, "p1": "volatile", "p2": 1})
    );
}

/// CLEAN with the first line holding each `from` replaced by its `to`, all found in CLEAN
/// before any is replaced (so two edits can swap lines).
fn planted(edits: &[(&str, &str)]) -> String {
    let mut lines: Vec<&str> = CLEAN.to_vec();
    let at: Vec<usize> = edits
        .iter()
        .map(|(from, _)| {
            CLEAN
                .iter()
                .position(|l| l == from)
                .unwrap_or_else(|| panic!("no line {from}"))
        })
        .collect();
    for (i, (_, to)) in at.into_iter().zip(edits) {
        lines[i] = to;
    }
    timed(&lines)
}

fn anomaly_types(text: &str) -> Vec<String> {
    let mut all: Vec<String> = verdicts(text)
        .iter()
        .flat_map(|v| v.anomaly_types.clone())
        .collect();
    all.sort();
    all
}

#[test]
fn bug_coordinator_decides_before_logging() {
    let text = planted(&[
        (
            r#"{"node":"c","event":"log","txn":1,"record":"commit"}"#,
            r#"{"node":"c","event":"decide","txn":1,"decision":"commit"}"#,
        ),
        (
            r#"{"node":"c","event":"decide","txn":1,"decision":"commit"}"#,
            r#"{"node":"c","event":"log","txn":1,"record":"commit"}"#,
        ),
    ]);
    assert_eq!(anomaly_types(&text), vec!["decision-before-log"]);
}

#[test]
fn bug_participant_votes_yes_without_forcing() {
    // p2 votes yes on txn 2 without its forced yes record.
    let lines: Vec<&str> = CLEAN
        .iter()
        .copied()
        .filter(|l| *l != r#"{"node":"p2","event":"log","txn":2,"record":"yes"}"#)
        .collect();
    let [ac, _, _] = verdicts(&timed(&lines));
    assert_eq!(ac.anomaly_types, vec!["vote-before-log"]);
    assert!(ac.anomalies["vote-before-log"][0].contains("txn 2: p2 voted yes at line 30"));
}

#[test]
fn bug_participant_decides_alone() {
    // p2 recovers in doubt and decides before the coordinator has.
    let mut lines: Vec<&str> = CLEAN.to_vec();
    let recover = r#"{"node":"p2","event":"recover"}"#;
    let decide = r#"{"node":"p2","event":"decide","txn":1,"decision":"commit"}"#;
    lines.retain(|l| *l != recover && *l != decide);
    let i = lines
        .iter()
        .position(|l| *l == r#"{"node":"p2","event":"crash"}"#)
        .expect("crash");
    lines.insert(i + 1, recover);
    lines.insert(i + 2, decide);
    let [ac, _, _] = verdicts(&timed(&lines));
    assert_eq!(ac.anomaly_types, vec!["decided-alone"], "{}", ac.explain());
}

#[test]
fn bug_snapshot_without_markers_splits_a_transaction() {
    // Without markers p2 starts s1 before txn 4 commits there, p1 after: 4 is split.
    let mut lines: Vec<&str> = CLEAN.to_vec();
    let at = lines.len() - 3;
    lines.splice(
        at..at,
        [
            r#"{"node":"c","event":"participants","txn":4,"nodes":["p1","p2"]}"#,
            r#"{"node":"c","event":"log","txn":4,"record":"start"}"#,
            r#"{"node":"p1","event":"log","txn":4,"record":"yes"}"#,
            r#"{"node":"p1","event":"vote","txn":4,"vote":"yes"}"#,
            r#"{"node":"p2","event":"log","txn":4,"record":"yes"}"#,
            r#"{"node":"p2","event":"vote","txn":4,"vote":"yes"}"#,
            r#"{"node":"c","event":"log","txn":4,"record":"commit"}"#,
            r#"{"node":"c","event":"decide","txn":4,"decision":"commit"}"#,
            r#"{"node":"p1","event":"decide","txn":4,"decision":"commit"}"#,
            r#"{"node":"p1","event":"commit","txn":4}"#,
            r#"{"node":"p1","event":"snapshot-start","snapshot":"s2"}"#,
            r#"{"node":"p2","event":"snapshot-start","snapshot":"s2"}"#,
            r#"{"node":"p2","event":"decide","txn":4,"decision":"commit"}"#,
            r#"{"node":"p2","event":"commit","txn":4}"#,
            r#"{"node":"p1","event":"snapshot-finish","snapshot":"s2","before":[],"after":[]}"#,
            r#"{"node":"p2","event":"snapshot-finish","snapshot":"s2","before":[],"after":[]}"#,
        ],
    );
    let n = lines.len();
    lines[n - 2] = r#"{"node":"p1","event":"final-state","applied":[1,4]}"#;
    lines[n - 1] = r#"{"node":"p2","event":"final-state","applied":[1,4]}"#;
    let [ac, rl, cc] = verdicts(&timed(&lines));
    assert_eq!(ac.valid, Validity::Valid, "{}", ac.explain());
    assert_eq!(rl.valid, Validity::Valid, "{}", rl.explain());
    assert_eq!(
        cc.anomaly_types,
        vec!["cut-split-transaction"],
        "{}",
        cc.explain()
    );
    assert!(cc.anomalies["cut-split-transaction"][0].contains("txn 4 is before the cut on p1"));
}

#[test]
fn bug_checkpoint_records_a_receive_whose_send_is_not_recorded() {
    // p1's checkpoint 1 records receiving a message that c sends only after its checkpoint 1.
    let mut lines: Vec<&str> = CLEAN.to_vec();
    let i = lines
        .iter()
        .position(|l| *l == r#"{"node":"c","event":"checkpoint","id":1}"#)
        .expect("checkpoint");
    lines.insert(
        i + 1,
        r#"{"node":"c","event":"send","msg":"late","to":"p1"}"#,
    );
    lines.insert(i + 2, r#"{"node":"p1","event":"receive","msg":"late"}"#);
    let [ac, rl, cc] = verdicts(&timed(&lines));
    assert_eq!(ac.valid, Validity::Valid, "{}", ac.explain());
    assert_eq!(cc.valid, Validity::Valid, "{}", cc.explain());
    // The orphan also drags p1 back to its initial state once c fails: the domino effect.
    assert_eq!(
        rl.anomaly_types,
        vec!["domino-effect", "orphan-message"],
        "{}",
        rl.explain()
    );
    assert!(rl.anomalies["orphan-message"][0]
        .contains("p1's checkpoint 1 (line 25) records receiving message \"late\" (line 24)"));
    assert_eq!(rl.details["recovery_line"]["p1"], "initial");
}

#[test]
fn damaged_logs_give_a_verdict_or_a_line_never_a_panic() {
    let text = timed(CLEAN);
    // Every truncation (a recorder killed mid-write) and every dropped line.
    let mut inputs: Vec<String> = (0..text.len())
        .filter(|&i| text.is_char_boundary(i))
        .map(|i| text[..i].to_string())
        .collect();
    for skip in 0..CLEAN.len() {
        let lines: Vec<&str> = CLEAN
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        inputs.push(timed(&lines));
    }
    for input in inputs {
        match atomic_commit::parse_events("run.jsonl", &input) {
            Ok(ev) => {
                let _ = atomic_commit::check(&ev);
                let _ = recovery_line::check(&ev);
                let _ = consistent_cut::check(&ev, None);
            }
            Err(e) => {
                assert!(e.line >= 1 && e.line <= input.lines().count(), "{e}");
            }
        }
    }
}
