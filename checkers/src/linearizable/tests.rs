//! Unit tests of the checker: each model, each semantics switch, and the edge cases.

use super::*;
use crate::history::{jsonl, Format};
use serde_json::json;

/// Builds a JSON-lines history from `(process, type, f, value)` rows; process -1 is the nemesis.
fn history(rows: &[(i64, &str, &str, Value)]) -> History {
    let mut text = String::new();
    for (i, (p, t, f, v)) in rows.iter().enumerate() {
        let process = if *p < 0 { json!("nemesis") } else { json!(p) };
        let op = json!({"index": i, "time": i, "type": t, "process": process, "f": f, "value": v});
        text.push_str(&op.to_string());
        text.push('\n');
    }
    jsonl::read("t.jsonl", &text).expect("test history is well formed")
}

fn verdict(rows: &[(i64, &str, &str, Value)], model: ModelKind) -> Outcome {
    let h = history(rows);
    check(
        &h,
        model,
        &Options::new(Semantics::for_format(Format::JsonLines)),
    )
    .unwrap()
}

fn valid(rows: &[(i64, &str, &str, Value)], model: ModelKind) -> Validity {
    verdict(rows, model).valid
}

#[test]
fn empty_history_is_valid() {
    let o = verdict(&[], ModelKind::CasRegister);
    assert_eq!(o.valid, Validity::Valid);
    assert_eq!(o.ops, 0);
}

#[test]
fn only_failed_ops_are_valid() {
    let rows = [
        (0, "invoke", "write", json!(1)),
        (0, "fail", "write", json!(1)),
        (1, "invoke", "cas", json!([1, 2])),
        (1, "fail", "cas", json!([1, 2])),
    ];
    let o = verdict(&rows, ModelKind::CasRegister);
    assert_eq!((o.valid, o.ops), (Validity::Valid, 0));
}

#[test]
fn only_nemesis_ops_are_valid() {
    let rows = [
        (-1, "info", "start", json!("partition")),
        (-1, "invoke", "stop", Value::Null),
        (-1, "info", "stop", Value::Null),
    ];
    assert_eq!(valid(&rows, ModelKind::CasRegister), Validity::Valid);
}

#[test]
fn pending_write_at_end_may_explain_a_read() {
    let rows = [
        (0, "invoke", "write", json!(3)),
        (1, "invoke", "read", Value::Null),
        (1, "ok", "read", json!(3)),
    ];
    let o = verdict(&rows, ModelKind::CasRegister);
    assert_eq!((o.valid, o.crashed_ops), (Validity::Valid, 1));
    // The crashed write, then the read: two configurations at least.
    assert!(o.configurations >= 2, "{}", o.configurations);
}

#[test]
fn crashed_write_cannot_explain_a_read_that_ended_before_it_began() {
    let rows = [
        (1, "invoke", "read", Value::Null),
        (1, "ok", "read", json!(3)),
        (0, "invoke", "write", json!(3)),
        (0, "info", "write", json!(3)),
    ];
    let o = verdict(&rows, ModelKind::CasRegister);
    assert_eq!(o.valid, Validity::Invalid);
    let f = o.failure.unwrap();
    assert_eq!((f.op.invoke_index, f.op.f.as_str()), (0, "read"));
    assert_eq!(f.prefixes[0].reason, "can't read 3 from cas-register null");
}

#[test]
fn stale_read_is_invalid_and_explained() {
    let rows = [
        (0, "invoke", "write", json!(1)),
        (0, "ok", "write", json!(1)),
        (0, "invoke", "write", json!(2)),
        (1, "invoke", "read", Value::Null),
        (0, "ok", "write", json!(2)),
        (1, "ok", "read", json!(2)),
        (1, "invoke", "read", Value::Null),
        (1, "ok", "read", json!(1)),
    ];
    let o = verdict(&rows, ModelKind::Register);
    assert_eq!(o.valid, Validity::Invalid);
    let f = o.failure.as_ref().unwrap();
    assert_eq!(f.op.invoke_index, 6);
    assert_eq!(f.op.value, json!(1));
    let p = &f.prefixes[0];
    assert_eq!(p.order, vec![0, 2, 3]);
    assert_eq!(p.state, "2");
    let text = o.explain(&history(&rows));
    assert!(
        text.contains("process 1 ok read 1 (ops 6..7) cannot be linearized"),
        "{text}"
    );
}

#[test]
fn concurrent_ops_may_reorder() {
    let rows = [
        (0, "invoke", "write", json!(1)),
        (1, "invoke", "read", Value::Null),
        (1, "ok", "read", Value::Null),
        (0, "ok", "write", json!(1)),
    ];
    assert_eq!(valid(&rows, ModelKind::Register), Validity::Valid);
}

#[test]
fn nil_read_semantics_switch() {
    let rows = [
        (0, "invoke", "write", json!(1)),
        (0, "ok", "write", json!(1)),
        (1, "invoke", "read", Value::Null),
        (1, "ok", "read", Value::Null),
    ];
    let h = history(&rows);
    let mut sem = Semantics::for_format(Format::JsonLines);
    let absent = check(&h, ModelKind::Register, &Options::new(sem.clone())).unwrap();
    assert_eq!(absent.valid, Validity::Invalid);
    sem.nil_read = NilRead::Unconstrained;
    let free = check(&h, ModelKind::Register, &Options::new(sem)).unwrap();
    assert_eq!(free.valid, Validity::Valid);
}

#[test]
fn failed_cas_observes_under_porcupine_semantics_only() {
    let rows = [
        (0, "invoke", "write", json!(1)),
        (0, "ok", "write", json!(1)),
        (1, "invoke", "cas", json!([1, 5])),
        (1, "fail", "cas", json!([1, 5])),
    ];
    let h = history(&rows);
    let mut sem = Semantics::for_format(Format::JsonLines);
    assert_eq!(
        check(&h, ModelKind::CasRegister, &Options::new(sem.clone()))
            .unwrap()
            .valid,
        Validity::Valid
    );
    sem.fail = FailMode::Observe;
    let o = check(&h, ModelKind::CasRegister, &Options::new(sem)).unwrap();
    assert_eq!(o.valid, Validity::Invalid);
    assert!(o.failure.unwrap().prefixes[0].reason.contains("was not 1"));
}

#[test]
fn crashed_cas_applies_only_if_it_matched() {
    let rows = [
        (0, "invoke", "write", json!(1)),
        (0, "ok", "write", json!(1)),
        (1, "invoke", "cas", json!([2, 3])),
        (1, "info", "cas", json!([2, 3])),
        (2, "invoke", "read", Value::Null),
        (2, "ok", "read", json!(3)),
    ];
    assert_eq!(valid(&rows, ModelKind::CasRegister), Validity::Invalid);
    let mut fixed = rows.to_vec();
    fixed[2].3 = json!([1, 3]);
    fixed[3].3 = json!([1, 3]);
    assert_eq!(valid(&fixed, ModelKind::CasRegister), Validity::Valid);
}

#[test]
fn register_model_refuses_cas_with_a_clear_error() {
    let h = history(&[
        (0, "invoke", "cas", json!([1, 2])),
        (0, "ok", "cas", json!([1, 2])),
    ]);
    let e = check(
        &h,
        ModelKind::Register,
        &Options::new(Semantics::for_format(Format::JsonLines)),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.jsonl:1: model register: unknown f \"cas\"; this model knows read, write"
    );
}

#[test]
fn kv_checks_keys_apart_and_names_the_failing_key() {
    let rows = [
        (0, "invoke", "write", json!(["a", 1])),
        (0, "ok", "write", json!(["a", 1])),
        (1, "invoke", "write", json!(["b", 1])),
        (1, "ok", "write", json!(["b", 1])),
        (0, "invoke", "read", json!(["a", null])),
        (0, "ok", "read", json!(["a", 1])),
        (1, "invoke", "read", json!(["b", null])),
        (1, "ok", "read", json!(["b", 2])),
    ];
    let o = verdict(&rows, ModelKind::Kv);
    assert_eq!((o.valid, o.partitions), (Validity::Invalid, 2));
    assert_eq!(o.failure.unwrap().key, Some(json!("b")));
    let e = check(
        &history(&[(0, "invoke", "read", json!(3)), (0, "ok", "read", json!(3))]),
        ModelKind::Kv,
        &Options::new(Semantics::for_format(Format::JsonLines)),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("expected [key, value], got 3"),
        "{e}"
    );
}

#[test]
fn multi_register_txns() {
    let rows = [
        (0, "invoke", "txn", json!([["w", "x", 1], ["w", "y", 1]])),
        (0, "ok", "txn", json!([["w", "x", 1], ["w", "y", 1]])),
        (
            1,
            "invoke",
            "txn",
            json!([["r", "x", null], ["r", "y", null]]),
        ),
        (1, "ok", "txn", json!([["r", "x", 1], ["r", "y", 1]])),
    ];
    assert_eq!(valid(&rows, ModelKind::MultiRegister), Validity::Valid);
    let mut torn = rows.to_vec();
    torn[3].3 = json!([["r", "x", 1], ["r", "y", null]]);
    assert_eq!(valid(&torn, ModelKind::MultiRegister), Validity::Invalid);
}

#[test]
fn mutex_forbids_two_holders() {
    let rows = [
        (0, "invoke", "acquire", Value::Null),
        (0, "ok", "acquire", Value::Null),
        (1, "invoke", "acquire", Value::Null),
        (1, "ok", "acquire", Value::Null),
    ];
    assert_eq!(valid(&rows, ModelKind::Mutex), Validity::Invalid);
    let released = [
        rows[0].clone(),
        rows[1].clone(),
        (0, "invoke", "release", Value::Null),
        (0, "info", "release", Value::Null),
        rows[2].clone(),
        rows[3].clone(),
    ];
    assert_eq!(valid(&released, ModelKind::Mutex), Validity::Valid);
}

#[test]
fn set_reads_must_show_completed_adds() {
    let rows = [
        (0, "invoke", "add", json!(1)),
        (0, "ok", "add", json!(1)),
        (1, "invoke", "add", json!(2)),
        (2, "invoke", "read", Value::Null),
        (2, "ok", "read", json!([2, 1])),
        (2, "invoke", "read", Value::Null),
        (2, "ok", "read", json!([1])),
    ];
    assert_eq!(valid(&rows, ModelKind::Set), Validity::Invalid);
    assert_eq!(valid(&rows[..5], ModelKind::Set), Validity::Valid);
}

#[test]
fn fifo_queue_order() {
    let rows = [
        (0, "invoke", "enqueue", json!(1)),
        (0, "ok", "enqueue", json!(1)),
        (0, "invoke", "enqueue", json!(2)),
        (0, "ok", "enqueue", json!(2)),
        (1, "invoke", "dequeue", Value::Null),
        (1, "ok", "dequeue", json!(2)),
    ];
    assert_eq!(valid(&rows, ModelKind::FifoQueue), Validity::Invalid);
    let mut fine = rows.to_vec();
    fine[5].3 = json!(1);
    assert_eq!(valid(&fine, ModelKind::FifoQueue), Validity::Valid);
}

/// Many concurrent enqueues and an impossible dequeue: exponential without limits, since
/// every order of the enqueues is a different queue. (On registers the search sees at once
/// that no write can satisfy such a read: `search::dead_end`.)
fn hard_history(enqueuers: i64) -> Vec<(i64, &'static str, &'static str, Value)> {
    let mut rows = Vec::new();
    for p in 0..enqueuers {
        rows.push((p, "invoke", "enqueue", json!(p)));
    }
    rows.push((enqueuers, "invoke", "dequeue", Value::Null));
    rows.push((enqueuers, "ok", "dequeue", json!(-1)));
    for p in 0..enqueuers {
        rows.push((p, "ok", "enqueue", json!(p)));
    }
    rows
}

#[test]
fn time_limit_gives_unknown() {
    let h = history(&hard_history(40));
    let mut options = Options::new(Semantics::for_format(Format::JsonLines));
    options.time_limit = Some(Duration::from_millis(1));
    let o = check(&h, ModelKind::FifoQueue, &options).unwrap();
    assert_eq!(
        (o.valid, o.cause.as_deref()),
        (Validity::Unknown, Some("timeout"))
    );
}

#[test]
fn memory_limit_gives_unknown() {
    let h = history(&hard_history(40));
    let mut options = Options::new(Semantics::for_format(Format::JsonLines));
    options.memory_limit_bytes = 64 * 1024;
    let o = check(&h, ModelKind::FifoQueue, &options).unwrap();
    assert_eq!(
        (o.valid, o.cause.as_deref()),
        (Validity::Unknown, Some("memory-limit"))
    );
}

#[test]
fn same_input_same_explanation() {
    let rows = hard_history(6);
    let a = verdict(&rows, ModelKind::FifoQueue);
    let b = verdict(&rows, ModelKind::FifoQueue);
    assert_eq!(a.valid, Validity::Invalid);
    let h = history(&rows);
    assert_eq!(a.explain(&h), b.explain(&h));
    assert_eq!(a.configurations, b.configurations);
}

/// A read of a value whose only write is linearized already, after many concurrent writes
/// and a read that needs one of them: every order of the writes is hopeless, and the search
/// must see that without trying them all (`search::dead_end`). A crashed cas to that value
/// could serve the read, but only from a value nobody writes. Without the backjump past the
/// orders that cannot matter, or with the crashed cas taken for a way out, the search visits
/// 2^20 configurations; the time limit turns such a regression into a failure rather than a
/// hang.
#[test]
fn a_read_no_op_left_can_satisfy_ends_the_search_without_trying_every_order() {
    let writers = 20;
    let mut rows = vec![
        (100, "invoke", "write", json!(-1)),
        (100, "ok", "write", json!(-1)),
        (103, "invoke", "cas", json!([-3, -1])),
        (103, "info", "cas", json!([-3, -1])),
    ];
    for p in 0..writers {
        rows.push((p, "invoke", "write", json!(p)));
    }
    rows.push((101, "invoke", "read", Value::Null));
    rows.push((101, "ok", "read", json!(5)));
    rows.push((102, "invoke", "read", Value::Null));
    rows.push((102, "ok", "read", json!(-1)));
    for p in 0..writers {
        rows.push((p, "ok", "write", json!(p)));
    }
    let h = history(&rows);
    let mut options = Options::new(Semantics::for_format(Format::JsonLines));
    options.time_limit = Some(Duration::from_secs(20));
    let o = check(&h, ModelKind::CasRegister, &options).unwrap();
    assert_eq!(o.valid, Validity::Invalid);
    assert!(
        o.configurations < 1000,
        "{} configurations for {writers} writes",
        o.configurations
    );
    // The same history with the last read satisfiable is valid: the pruning keeps verdicts.
    let last = rows.len() - writers as usize - 1;
    rows[last].3 = json!(3);
    assert_eq!(valid(&rows, ModelKind::CasRegister), Validity::Valid);
}
