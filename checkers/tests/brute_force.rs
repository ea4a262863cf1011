//! The search's pruning rules (forced reads, identical-op dominance, crashed-op classes and
//! their dominance, growth lookahead, fingerprints) must never change a verdict. This test
//! compares the checker with a brute-force reference that tries every order of every subset
//! of crashed ops, on small random histories that are often invalid.

use checkers::history::{jsonl, History, Value};
use checkers::linearizable::{check, Options, Semantics, Validity};
use checkers::model::ModelKind;
use proptest::prelude::*;
use serde_json::json;

/// One generated op: (f, value written or read or [old, new], how it ends).
#[derive(Clone, Debug)]
struct GenOp {
    f: &'static str,
    value: Value,
    end: End,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Ok,
    Fail,
    Crash,
}

fn gen_op() -> impl Strategy<Value = GenOp> {
    let v = || prop_oneof![Just(Value::Null), (0..3i64).prop_map(Value::from)];
    let f = prop_oneof![
        v().prop_map(|v| ("read", v)),
        (0..3i64).prop_map(|v| ("write", json!(v))),
        ((0..3i64), (0..3i64)).prop_map(|(a, b)| ("cas", json!([a, b]))),
    ];
    let end = prop_oneof![6 => Just(End::Ok), 1 => Just(End::Fail), 2 => Just(End::Crash)];
    (f, end).prop_map(|((f, value), end)| GenOp { f, value, end })
}

/// Interleaves the ops' invocations and completions by the given order of "slots": each op
/// gets an invoke slot and, unless crashed, a later completion slot.
fn build(ops: &[GenOp], order: &[u8], key: Option<&str>) -> History {
    let mut events: Vec<(usize, bool)> = Vec::new();
    let mut pending: Vec<usize> = Vec::new();
    let mut next = 0;
    for &o in order {
        if o % 2 == 0 && next < ops.len() {
            events.push((next, true));
            pending.push(next);
            next += 1;
        } else if !pending.is_empty() {
            let i = pending.remove(o as usize % pending.len());
            events.push((i, false));
        }
    }
    while next < ops.len() {
        events.push((next, true));
        pending.push(next);
        next += 1;
    }
    for i in pending {
        events.push((i, false));
    }
    let mut text = String::new();
    for (n, (i, invoke)) in events.iter().enumerate() {
        let op = &ops[*i];
        let (t, v) = match (invoke, op.end) {
            (true, _) if op.f == "read" => ("invoke", Value::Null),
            (true, _) => ("invoke", op.value.clone()),
            (false, End::Ok) => ("ok", op.value.clone()),
            (false, End::Fail) => ("fail", op.value.clone()),
            (false, End::Crash) => ("info", op.value.clone()),
        };
        let v = match key {
            Some(k) => json!([k, v]),
            None => v,
        };
        let line = json!({"index": n, "time": n, "type": t, "process": i, "f": op.f, "value": v});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    jsonl::read("bf.jsonl", &text).expect("generated history is well formed")
}

/// An op as the reference sees it: interval in event positions (None: crashed, optional).
struct RefOp {
    invoke: usize,
    ret: Option<usize>,
    f: String,
    value: Value,
}

fn ref_ops(h: &History) -> Vec<RefOp> {
    let mut out = Vec::new();
    let unwrap = |v: &Value| match v {
        Value::Array(pair) if pair.len() == 2 && pair[0].is_string() => pair[1].clone(),
        other => other.clone(),
    };
    for (i, op) in h.ops.iter().enumerate() {
        if op.op_type != checkers::history::OpType::Invoke {
            continue;
        }
        let c = h.partner[i].map(|c| &h.ops[c]);
        match c.map(|c| c.op_type) {
            Some(checkers::history::OpType::Fail) => continue,
            Some(checkers::history::OpType::Ok) => out.push(RefOp {
                invoke: i,
                ret: h.partner[i],
                f: op.f.clone(),
                value: unwrap(&c.unwrap().value),
            }),
            _ if op.f == "read" => continue,
            _ => out.push(RefOp {
                invoke: i,
                ret: None,
                f: op.f.clone(),
                value: unwrap(&op.value),
            }),
        }
    }
    out
}

/// Cas-register semantics with null as unset; None when illegal.
fn ref_step(state: &Value, op: &RefOp, set_model: bool) -> Option<Value> {
    match op.f.as_str() {
        "read" if set_model => {
            let mut want: Vec<i64> = op
                .value
                .as_array()
                .map_or(Vec::new(), |a| a.iter().filter_map(Value::as_i64).collect());
            want.sort();
            want.dedup();
            let have = state.as_array().map_or(Vec::new(), |a| {
                a.iter().filter_map(Value::as_i64).collect::<Vec<_>>()
            });
            (want == have).then(|| state.clone())
        }
        "read" => (state == &op.value).then(|| state.clone()),
        "write" | "put" => Some(op.value.clone()),
        "append" => match (state, &op.value) {
            (Value::String(s), Value::String(x)) => Some(Value::String(format!("{s}{x}"))),
            (Value::Null, x) => Some(x.clone()),
            _ => unreachable!("appends are strings"),
        },
        "add" => {
            let mut set: Vec<i64> = state
                .as_array()
                .map_or(Vec::new(), |a| a.iter().filter_map(Value::as_i64).collect());
            set.push(op.value.as_i64().unwrap());
            set.sort();
            set.dedup();
            Some(json!(set))
        }
        "cas" => {
            let (old, new) = (&op.value[0], &op.value[1]);
            match op.ret {
                Some(_) => (state == old).then(|| new.clone()),
                None => Some(if state == old {
                    new.clone()
                } else {
                    state.clone()
                }),
            }
        }
        _ => unreachable!(),
    }
}

/// Tries every order: an op may go next if every completed op that returned before it was
/// invoked is placed. Done when every completed op is placed; crashed ops are optional.
fn ref_linearizable(ops: &[RefOp], placed: &mut Vec<bool>, state: &Value, set_model: bool) -> bool {
    if ops
        .iter()
        .zip(placed.iter())
        .all(|(o, &p)| p || o.ret.is_none())
    {
        return true;
    }
    for i in 0..ops.len() {
        if placed[i] {
            continue;
        }
        let ready = ops
            .iter()
            .enumerate()
            .all(|(j, o)| placed[j] || j == i || o.ret.is_none_or(|r| r > ops[i].invoke));
        if !ready {
            continue;
        }
        if let Some(next) = ref_step(state, &ops[i], set_model) {
            placed[i] = true;
            let ok = ref_linearizable(ops, placed, &next, set_model);
            placed[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn search_agrees_with_brute_force(
        ops in proptest::collection::vec(gen_op(), 1..8),
        order in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let h = build(&ops, &order, None);
        let reference = ref_ops(&h);
        let expected = ref_linearizable(&reference, &mut vec![false; reference.len()], &Value::Null, false);
        let o = check(&h, ModelKind::CasRegister, &Options::new(Semantics::for_format(h.format))).unwrap();
        let got = o.valid == Validity::Valid;
        prop_assert_eq!(got, expected, "{}", jsonl::write(&h.ops));
        if !got {
            let f = o.failure.expect("an invalid verdict explains itself");
            prop_assert!(f.op.completion_index.is_some(), "the blamed op completed");
        }
    }
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![6 => Just(End::Ok), 1 => Just(End::Fail), 2 => Just(End::Crash)]
}

/// Porcupine-style string registers: put, append, and reads of short strings.
fn kv_op() -> impl Strategy<Value = GenOp> {
    let letter = || prop_oneof![Just("a"), Just("b")].prop_map(Value::from);
    let read = prop_oneof![
        Just(Value::Null),
        prop_oneof![
            Just(""),
            Just("a"),
            Just("b"),
            Just("ab"),
            Just("ba"),
            Just("aa"),
            Just("aba")
        ]
        .prop_map(Value::from)
    ];
    let f = prop_oneof![
        1 => read.prop_map(|v| ("read", v)),
        1 => letter().prop_map(|v| ("put", v)),
        2 => letter().prop_map(|v| ("append", v)),
    ];
    (f, end()).prop_map(|((f, value), end)| GenOp { f, value, end })
}

/// A grow-only set: add, and reads of small subsets.
fn set_op() -> impl Strategy<Value = GenOp> {
    let read = proptest::collection::vec(0..3i64, 0..4).prop_map(|v| json!(v));
    let f = prop_oneof![
        read.prop_map(|v| ("read", v)),
        (0..3i64).prop_map(|v| ("add", json!(v))),
    ];
    (f, end()).prop_map(|((f, value), end)| GenOp { f, value, end })
}

fn agrees(
    h: &History,
    model: ModelKind,
    set_model: bool,
    initial: Value,
) -> Result<(), TestCaseError> {
    let reference = ref_ops(h);
    let expected = ref_linearizable(
        &reference,
        &mut vec![false; reference.len()],
        &initial,
        set_model,
    );
    let o = check(h, model, &Options::new(Semantics::for_format(h.format))).unwrap();
    prop_assert_eq!(
        o.valid == Validity::Valid,
        expected,
        "{}",
        jsonl::write(&h.ops)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Covers the growth lookahead (appends only grow a string) and blind puts.
    #[test]
    fn kv_appends_agree_with_brute_force(
        ops in proptest::collection::vec(kv_op(), 1..8),
        order in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        agrees(&build(&ops, &order, Some("k")), ModelKind::Kv, false, Value::Null)?;
    }

    /// Covers the growth lookahead for sets (adds only grow a set).
    #[test]
    fn set_agrees_with_brute_force(
        ops in proptest::collection::vec(set_op(), 1..8),
        order in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        agrees(&build(&ops, &order, None), ModelKind::Set, true, json!([]))?;
    }
}
