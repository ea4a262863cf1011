use super::*;
use crate::history::{parse, Format};
use serde_json::{json, Value};

/// A history from (process, type, micro-ops) events, in order.
fn history(events: &[(u64, &str, Value)]) -> History {
    let mut text = String::new();
    for (p, t, v) in events {
        let op = json!({"type": t, "process": p, "f": "txn", "value": v});
        text.push_str(&op.to_string());
        text.push('\n');
    }
    parse("t.jsonl", text.as_bytes(), Some(Format::JsonLines)).unwrap()
}

/// A transaction that completes before the next one starts.
fn serial(p: u64, invoke: Value, ok: Value) -> Vec<(u64, &'static str, Value)> {
    vec![(p, "invoke", invoke), (p, "ok", ok)]
}

fn run(w: Workload, events: &[(u64, &str, Value)]) -> Verdict {
    check(&history(events), &Options::new(w)).unwrap().verdict
}

fn types(v: &Verdict) -> Vec<&str> {
    v.anomaly_types.iter().map(String::as_str).collect()
}

/// Invokes every transaction, then completes them all: everything is concurrent.
fn concurrent(txns: &[(u64, Value, Value)]) -> Vec<(u64, &'static str, Value)> {
    let mut out: Vec<(u64, &str, Value)> = txns
        .iter()
        .map(|(p, i, _)| (*p, "invoke", i.clone()))
        .collect();
    out.extend(txns.iter().map(|(p, _, o)| (*p, "ok", o.clone())));
    out
}

#[test]
fn a_serial_list_append_history_is_valid() {
    let mut e = serial(
        0,
        json!([["append", "x", 1], ["r", "x", null]]),
        json!([["append", "x", 1], ["r", "x", [1]]]),
    );
    e.extend(serial(
        1,
        json!([["r", "x", null], ["append", "x", 2]]),
        json!([["r", "x", [1]], ["append", "x", 2]]),
    ));
    e.extend(serial(
        0,
        json!([["r", "x", null]]),
        json!([["r", "x", [1, 2]]]),
    ));
    let v = run(Workload::ListAppend, &e);
    assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
    assert!(v.anomaly_types.is_empty());
    assert_eq!(v.details["transactions"], 3);
}

#[test]
fn write_skew_is_g2_item_and_allowed_by_snapshot_isolation() {
    let mut e = concurrent(&[
        (
            0,
            json!([["r", "x", null], ["append", "y", 1]]),
            json!([["r", "x", []], ["append", "y", 1]]),
        ),
        (
            1,
            json!([["r", "y", null], ["append", "x", 1]]),
            json!([["r", "y", []], ["append", "x", 1]]),
        ),
    ]);
    e.extend(serial(
        2,
        json!([["r", "x", null], ["r", "y", null]]),
        json!([["r", "x", [1]], ["r", "y", [1]]]),
    ));
    let h = history(&e);
    let v = check(&h, &Options::new(Workload::ListAppend))
        .unwrap()
        .verdict;
    assert_eq!(types(&v), vec!["G2-item"], "{}", v.explain());
    assert_eq!(v.valid, Validity::Invalid);
    assert_eq!(v.not, vec!["repeatable-read"]);
    let mut si = Options::new(Workload::ListAppend);
    si.models = vec![Model::SnapshotIsolation];
    let v = check(&h, &si).unwrap().verdict;
    assert_eq!(
        v.valid,
        Validity::Valid,
        "SI allows write skew: {}",
        v.explain()
    );
    let v = check(&h, &Options::new(Workload::ListAppend))
        .unwrap()
        .verdict;
    let proof = &v.anomalies["G2-item"][0];
    assert!(
        proof.contains("-rw->") && proof.contains("no serial order exists"),
        "{proof}"
    );
}

#[test]
fn read_skew_is_g_single() {
    // T0 appends x and y; T1 sees T0's x but not its y.
    let mut e = concurrent(&[
        (
            0,
            json!([["append", "x", 1], ["append", "y", 1]]),
            json!([["append", "x", 1], ["append", "y", 1]]),
        ),
        (
            1,
            json!([["r", "x", null], ["r", "y", null]]),
            json!([["r", "x", [1]], ["r", "y", []]]),
        ),
    ]);
    e.extend(serial(
        2,
        json!([["r", "y", null]]),
        json!([["r", "y", [1]]]),
    ));
    let v = run(Workload::ListAppend, &e);
    assert_eq!(types(&v), vec!["G-single"], "{}", v.explain());
    assert!(
        v.not.contains(&"consistent-view".to_string())
            || v.not.contains(&"snapshot-isolation".to_string()),
        "{:?}",
        v.not
    );
}

#[test]
fn write_cycles_are_g0_and_g1c() {
    // T0: x1 y2, T1: x2 y1 (y order 1 then 2, x order 1 then 2): ww both ways.
    let mut e = concurrent(&[
        (
            0,
            json!([["append", "x", 1], ["append", "y", 2]]),
            json!([["append", "x", 1], ["append", "y", 2]]),
        ),
        (
            1,
            json!([["append", "x", 2], ["append", "y", 1]]),
            json!([["append", "x", 2], ["append", "y", 1]]),
        ),
    ]);
    e.extend(serial(
        2,
        json!([["r", "x", null], ["r", "y", null]]),
        json!([["r", "x", [1, 2]], ["r", "y", [1, 2]]]),
    ));
    let v = run(Workload::ListAppend, &e);
    assert_eq!(types(&v), vec!["G0"], "{}", v.explain());
    assert_eq!(v.not, vec!["read-uncommitted"]);

    // T0 appends x and reads T1's y; T1 appends y and reads T0's x.
    let e = concurrent(&[
        (
            0,
            json!([["append", "x", 1], ["r", "y", null]]),
            json!([["append", "x", 1], ["r", "y", [1]]]),
        ),
        (
            1,
            json!([["append", "y", 1], ["r", "x", null]]),
            json!([["append", "y", 1], ["r", "x", [1]]]),
        ),
    ]);
    let v = run(Workload::ListAppend, &e);
    assert_eq!(types(&v), vec!["G1c"], "{}", v.explain());
}

#[test]
fn a_stale_read_is_a_realtime_anomaly_only() {
    let mut e = serial(0, json!([["append", "x", 1]]), json!([["append", "x", 1]]));
    e.extend(serial(
        1,
        json!([["r", "x", null]]),
        json!([["r", "x", []]]),
    ));
    e.extend(serial(
        2,
        json!([["r", "x", null]]),
        json!([["r", "x", [1]]]),
    ));
    let h = history(&e);
    let v = check(&h, &Options::new(Workload::ListAppend))
        .unwrap()
        .verdict;
    assert_eq!(types(&v), vec!["G-single-realtime"], "{}", v.explain());
    assert_eq!(v.valid, Validity::Invalid);
    let mut o = Options::new(Workload::ListAppend);
    o.models = vec![Model::Serializable];
    assert_eq!(check(&h, &o).unwrap().verdict.valid, Validity::Valid);
}

#[test]
fn single_read_anomalies() {
    let fail = vec![
        (0, "invoke", json!([["append", "x", 9]])),
        (0, "fail", json!([["append", "x", 9]])),
    ];
    let mut e = fail.clone();
    e.extend(serial(
        1,
        json!([["r", "x", null]]),
        json!([["r", "x", [9]]]),
    ));
    assert!(types(&run(Workload::ListAppend, &e)).contains(&"G1a"));

    let mut e = concurrent(&[(
        0,
        json!([["append", "x", 1], ["append", "x", 2]]),
        json!([["append", "x", 1], ["append", "x", 2]]),
    )]);
    e.extend(serial(
        1,
        json!([["r", "x", null]]),
        json!([["r", "x", [1]]]),
    ));
    assert_eq!(types(&run(Workload::ListAppend, &e)), vec!["G1b"]);

    let e = serial(
        0,
        json!([["append", "x", 5], ["r", "x", null]]),
        json!([["append", "x", 5], ["r", "x", []]]),
    );
    assert_eq!(types(&run(Workload::ListAppend, &e)), vec!["internal"]);

    let e = serial(
        0,
        json!([["r", "x", null], ["append", "x", 7]]),
        json!([["r", "x", [7]], ["append", "x", 7]]),
    );
    assert!(types(&run(Workload::ListAppend, &e)).contains(&"future-read"));

    let e = serial(0, json!([["r", "x", null]]), json!([["r", "x", [42]]]));
    let v = run(Workload::ListAppend, &e);
    assert_eq!(types(&v), vec!["garbage-read"]);
    assert_eq!(
        v.valid,
        Validity::Valid,
        "reported, but forbidden by no model"
    );
    assert!(v.not.is_empty());

    let mut e = serial(0, json!([["append", "x", 1]]), json!([["append", "x", 1]]));
    e.extend(serial(
        1,
        json!([["r", "x", null]]),
        json!([["r", "x", [1, 1]]]),
    ));
    assert!(types(&run(Workload::ListAppend, &e)).contains(&"duplicate-elements"));
}

#[test]
fn order_anomalies() {
    let mut e = concurrent(&[
        (0, json!([["append", "x", 1]]), json!([["append", "x", 1]])),
        (1, json!([["append", "x", 2]]), json!([["append", "x", 2]])),
    ]);
    e.extend(serial(
        2,
        json!([["r", "x", null]]),
        json!([["r", "x", [1, 2]]]),
    ));
    e.extend(serial(
        3,
        json!([["r", "x", null]]),
        json!([["r", "x", [2, 1]]]),
    ));
    let v = run(Workload::ListAppend, &e);
    assert!(types(&v).contains(&"incompatible-order"), "{}", v.explain());
    assert!(v.not.contains(&"read-committed".to_string()), "{:?}", v.not);

    let mut e = vec![
        (0, "invoke", json!([["append", "x", 1]])),
        (0, "fail", json!([["append", "x", 1]])),
    ];
    e.extend(serial(
        1,
        json!([["append", "x", 2]]),
        json!([["append", "x", 2]]),
    ));
    e.extend(serial(
        2,
        json!([["r", "x", null]]),
        json!([["r", "x", [1, 2]]]),
    ));
    let v = run(Workload::ListAppend, &e);
    assert!(types(&v).contains(&"dirty-update"), "{}", v.explain());

    let mut e = concurrent(&[
        (
            0,
            json!([["r", "x", null], ["append", "x", 1]]),
            json!([["r", "x", []], ["append", "x", 1]]),
        ),
        (
            1,
            json!([["r", "x", null], ["append", "x", 2]]),
            json!([["r", "x", []], ["append", "x", 2]]),
        ),
    ]);
    e.extend(serial(
        2,
        json!([["r", "x", null]]),
        json!([["r", "x", [1, 2]]]),
    ));
    let v = run(Workload::ListAppend, &e);
    assert!(types(&v).contains(&"lost-update"), "{}", v.explain());
}

#[test]
fn rw_register_anomalies() {
    let mut e = serial(0, json!([["w", "x", 1]]), json!([["w", "x", 1]]));
    e.extend(serial(
        1,
        json!([["r", "x", null], ["w", "x", 2]]),
        json!([["r", "x", 1], ["w", "x", 2]]),
    ));
    e.extend(serial(2, json!([["r", "x", null]]), json!([["r", "x", 2]])));
    let v = run(Workload::RwRegister, &e);
    assert_eq!(v.valid, Validity::Valid, "{}", v.explain());

    // Cyclic versions: T0 read 1 and wrote 2, T1 read 2 and wrote 1.
    let e = concurrent(&[
        (
            0,
            json!([["r", "x", null], ["w", "x", 2]]),
            json!([["r", "x", 1], ["w", "x", 2]]),
        ),
        (
            1,
            json!([["r", "x", null], ["w", "x", 1]]),
            json!([["r", "x", 2], ["w", "x", 1]]),
        ),
    ]);
    let v = run(Workload::RwRegister, &e);
    assert!(types(&v).contains(&"cyclic-versions"), "{}", v.explain());

    // Read skew through writes-follow-reads: T0 writes x1 y1; T1 reads x=1, y=nil.
    let e = concurrent(&[
        (
            0,
            json!([["w", "x", 1], ["w", "y", 1]]),
            json!([["w", "x", 1], ["w", "y", 1]]),
        ),
        (
            1,
            json!([["r", "x", null], ["r", "y", null]]),
            json!([["r", "x", 1], ["r", "y", null]]),
        ),
    ]);
    let v = run(Workload::RwRegister, &e);
    assert_eq!(types(&v), vec!["G-single"], "{}", v.explain());

    let e = serial(
        0,
        json!([["w", "x", 5], ["r", "x", null]]),
        json!([["w", "x", 5], ["r", "x", 6]]),
    );
    assert!(types(&run(Workload::RwRegister, &e)).contains(&"internal"));

    // Dirty update: T1 read T0's aborted write and wrote over it.
    let mut e = vec![
        (0, "invoke", json!([["w", "x", 1]])),
        (0, "fail", json!([["w", "x", 1]])),
    ];
    e.extend(serial(
        1,
        json!([["r", "x", null], ["w", "x", 2]]),
        json!([["r", "x", 1], ["w", "x", 2]]),
    ));
    let v = run(Workload::RwRegister, &e);
    assert!(types(&v).contains(&"dirty-update"), "{}", v.explain());
    assert!(types(&v).contains(&"G1a"), "{}", v.explain());
}

#[test]
fn linearizable_keys_order_versions_by_realtime() {
    // x=1 then, strictly later, x=2; a final read of 1 is stale only under per-key realtime.
    let mut e = serial(0, json!([["w", "x", 1]]), json!([["w", "x", 1]]));
    e.extend(serial(1, json!([["w", "x", 2]]), json!([["w", "x", 2]])));
    e.extend(serial(2, json!([["r", "x", null]]), json!([["r", "x", 1]])));
    let h = history(&e);
    let mut o = Options::new(Workload::RwRegister);
    o.models = vec![Model::Serializable];
    assert_eq!(check(&h, &o).unwrap().verdict.valid, Validity::Valid);
    o.versions.linearizable_keys = true;
    o.models = vec![Model::StrictSerializable];
    let v = check(&h, &o).unwrap().verdict;
    assert_eq!(v.valid, Validity::Invalid, "{}", v.explain());
}

#[test]
fn bad_input_names_the_line() {
    let e = vec![(0, "invoke", json!("read")), (0, "ok", json!(3))];
    let err = check(&history(&e), &Options::new(Workload::ListAppend)).unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.problem.contains("list of micro-ops"), "{err}");
    let mut e = serial(0, json!([["append", "x", 1]]), json!([["append", "x", 1]]));
    e.extend(serial(
        1,
        json!([["append", "x", 1]]),
        json!([["append", "x", 1]]),
    ));
    let err = check(&history(&e), &Options::new(Workload::ListAppend)).unwrap_err();
    assert!(err.problem.contains("unique"), "{err}");
    let e = serial(0, json!([["w", "x", 1]]), json!([["w", "x", 1]]));
    assert!(check(&history(&e), &Options::new(Workload::ListAppend)).is_err());
}

#[test]
fn a_commit_order_orders_register_versions() {
    // T1 (seq 1) writes x=1; T2 (seq 2) writes x=2 and reads y=nil; T3 (seq 3) writes y=1 and
    // reads x=1. Only the commit order says 1 < 2 on x, which closes T3 -rw-> T2 -rw-> T3.
    let lines = [
        r#"{"type":"invoke","process":1,"f":"txn","value":[["w","x",1]]}"#,
        r#"{"type":"invoke","process":2,"f":"txn","value":[["w","x",2],["r","y",null]]}"#,
        r#"{"type":"invoke","process":3,"f":"txn","value":[["w","y",1],["r","x",null]]}"#,
        r#"{"type":"ok","process":1,"f":"txn","value":[["w","x",1]],"seq":1}"#,
        r#"{"type":"ok","process":2,"f":"txn","value":[["w","x",2],["r","y",null]],"seq":2}"#,
        r#"{"type":"ok","process":3,"f":"txn","value":[["w","y",1],["r","x",1]],"seq":3}"#,
    ];
    let h = parse(
        "c.jsonl",
        lines.join("\n").as_bytes(),
        Some(Format::JsonLines),
    )
    .unwrap();
    let mut o = Options::new(Workload::RwRegister);
    o.models = vec![Model::Serializable];
    assert_eq!(check(&h, &o).unwrap().verdict.valid, Validity::Valid);
    o.versions.commit_order = Some("seq".into());
    let v = check(&h, &o).unwrap().verdict;
    assert_eq!(v.anomaly_types, vec!["G2-item"], "{}", v.explain());
    let owned = check_owned(h.clone(), &o).unwrap().verdict;
    assert_eq!(
        owned.anomaly_types, v.anomaly_types,
        "dropping the events changes nothing"
    );
    o.versions.commit_order = Some("csn".into());
    let err = check(&h, &o).unwrap_err();
    assert_eq!(err.line, 4);
    assert!(err.problem.contains("\"csn\""), "{err}");
}

#[test]
fn lean_json_lines_reading_gives_the_same_verdicts() {
    use crate::history::jsonl;
    use crate::txn::synth::{self, Plant};
    for (sw, w) in [
        (synth::Workload::ListAppend, Workload::ListAppend),
        (synth::Workload::RwRegister, Workload::RwRegister),
    ] {
        for plant in [
            None,
            Some(Plant::GSingle),
            Some(Plant::G1a),
            Some(Plant::Internal),
        ] {
            let mut o = synth::Options::new(sw, 5, 300);
            o.plant = plant;
            let text = jsonl::write(&synth::generate(&o).ops);
            let h = parse("s.jsonl", text.as_bytes(), None).unwrap();
            let full = check(&h, &Options::new(w)).unwrap().verdict;
            let lean = check_text("s.jsonl", &text, Format::JsonLines, &Options::new(w))
                .unwrap()
                .verdict;
            assert_eq!(full.valid, lean.valid, "{plant:?}");
            assert_eq!(full.anomaly_types, lean.anomaly_types, "{plant:?}");
            assert_eq!(full.anomalies, lean.anomalies, "{plant:?}");
            assert_eq!(full.details, lean.details, "{plant:?}");
        }
    }
    // Bad input names the same line either way.
    let text = "{\"type\":\"invoke\",\"process\":0,\"f\":\"txn\",\"value\":[[\"append\",\"x\",1]]}\n{\"type\":\"ok\",\"process\":0,\"f\":\"txn\",\"value\":\"oops\"}\n";
    let h = parse("b.jsonl", text.as_bytes(), None).unwrap();
    let a = check(&h, &Options::new(Workload::ListAppend)).unwrap_err();
    let b = check_text(
        "b.jsonl",
        text,
        Format::JsonLines,
        &Options::new(Workload::ListAppend),
    )
    .unwrap_err();
    assert_eq!(a, b);
    assert_eq!(b.line, 2);
    let unpaired = "{\"type\":\"ok\",\"process\":0,\"f\":\"txn\",\"value\":[]}\n";
    let e = check_text(
        "u.jsonl",
        unpaired,
        Format::JsonLines,
        &Options::new(Workload::ListAppend),
    )
    .unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.problem.contains("no open invocation"), "{e}");
}
