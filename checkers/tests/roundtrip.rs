//! Property tests: EDN writing and reading is the identity on histories (as JSON lines sees them),
//! and no input, however broken, makes a reader panic.

use checkers::history::{edn, jsonl, parse, Format, Op, OpType, Process, Value};
use proptest::prelude::*;
use serde_json::Map;

/// Strings that stress escaping: quotes, backslashes, control characters, non-ASCII, and text
/// that looks like EDN syntax, numbers or keywords.
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\"quoted\" \\ back\\slash".to_string()),
        Just("line\nbreak\ttab\r\u{0}\u{1f}\u{7f}".to_string()),
        Just("ünïcödé ✓ 𝄞 \u{2028}".to_string()),
        Just("nil".to_string()),
        Just(":kw".to_string()),
        Just("-12".to_string()),
        Just("0".to_string()),
        Just("a/b".to_string()),
        Just("[1 2]".to_string()),
        Just("; not a comment".to_string()),
        "[a-z][a-z0-9-]{0,6}",
        any::<String>(),
    ]
}

/// Floats that serde_json reads back exactly (see `arbitrary_floats_agree_with_json_lines` for the rest).
fn exact_float() -> impl Strategy<Value = f64> {
    (any::<i32>(), 0u32..7).prop_map(|(n, k)| f64::from(n) / 10f64.powi(k as i32))
}

fn json_value(float: BoxedStrategy<f64>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        float.prop_map(Value::from),
        tricky_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(tricky_string(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A transaction value: micro-ops `[name key value]`, names sometimes not keyword-shaped.
fn txn_value(float: BoxedStrategy<f64>) -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("r".to_string()),
        Just("append".to_string()),
        tricky_string()
    ];
    let mop = (name, json_value(float.clone()), json_value(float))
        .prop_map(|(n, k, v)| Value::Array(vec![Value::from(n), k, v]));
    prop::collection::vec(mop, 0..4).prop_map(Value::Array)
}

const PROCESSES: usize = 10;

fn process(i: usize) -> Process {
    match i {
        0..=5 => Process::Client(i as u64 * 7),
        6 => Process::nemesis(),
        7 => Process::Named("nil".into()),
        8 => Process::Named("5".into()),
        _ => Process::Named("a weird \"name\"".into()),
    }
}

/// Fields of one event before it is made to fit the pairing rules.
#[derive(Debug, Clone)]
struct Step {
    process: usize,
    completion: u8,
    f: String,
    value: Value,
    index: u64,
    time: Option<u64>,
    node: Option<String>,
    error: Option<Value>,
    extra: Map<String, Value>,
}

fn step(float: BoxedStrategy<f64>) -> impl Strategy<Value = Step> {
    let f = prop_oneof![
        Just("read".to_string()),
        Just("cas".to_string()),
        Just("txn".to_string()),
        tricky_string(),
    ];
    let extra_key = prop_oneof![
        Just("source-index".to_string()),
        Just("op-index".to_string()),
        Just("0".to_string()),
        Just("a b".to_string()),
        Just("ns/name".to_string()),
    ];
    let extra = prop::collection::btree_map(extra_key, json_value(float.clone()), 0..3);
    (
        (0..PROCESSES, 0u8..3, f),
        (
            json_value(float.clone()),
            txn_value(float.clone()),
            any::<u64>(),
        ),
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(tricky_string()),
            proptest::option::of(json_value(float)),
            extra,
        ),
    )
        .prop_map(
            |((process, completion, f), (value, txn, index), (time, node, error, extra))| Step {
                process,
                completion,
                value: if f == "txn" { txn } else { value },
                f,
                index,
                time,
                node,
                error,
                extra: extra.into_iter().collect(),
            },
        )
}

/// Turns steps into a history that passes pairing: a process with an open invocation completes
/// it (with the same f), a client that crashed (info) never invokes again, and named processes
/// may log standalone infos.
fn legalize(steps: Vec<Step>) -> Vec<Op> {
    let mut open: Vec<Option<String>> = vec![None; PROCESSES];
    let mut retired = [false; PROCESSES];
    let mut ops = Vec::new();
    for s in steps {
        let p = process(s.process);
        let op_type = match (&open[s.process], retired[s.process]) {
            (Some(_), _) => [OpType::Ok, OpType::Fail, OpType::Info][s.completion as usize],
            (None, true) if !p.is_client() => OpType::Info,
            (None, true) => continue,
            (None, false) if !p.is_client() && s.completion == 2 => OpType::Info,
            (None, false) => OpType::Invoke,
        };
        let f = open[s.process].take().unwrap_or(s.f);
        match op_type {
            OpType::Invoke => open[s.process] = Some(f.clone()),
            OpType::Info if p.is_client() => retired[s.process] = true,
            _ => {}
        }
        ops.push(Op {
            index: s.index,
            time: s.time,
            op_type,
            process: p,
            f,
            value: s.value,
            node: s.node,
            error: s.error,
            extra: s.extra,
        });
    }
    ops
}

fn history(float: BoxedStrategy<f64>) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(step(float), 0..24).prop_map(legalize)
}

fn via_jsonl(ops: &[Op]) -> Vec<Op> {
    let text = jsonl::write(ops);
    jsonl::read("h.jsonl", &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .ops
}

fn via_edn(ops: &[Op]) -> Vec<Op> {
    let text = edn::write(ops);
    let h = edn::read("h.edn", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(h.format, Format::Edn);
    assert_eq!(h.lines, (1..=ops.len()).collect::<Vec<_>>());
    h.ops
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// JSONL -> EDN -> JSONL gives back the very same JSON lines.
    #[test]
    fn jsonl_edn_jsonl_is_the_identity(ops in history(exact_float().boxed())) {
        let text = jsonl::write(&via_jsonl(&ops));
        let read = jsonl::read("h.jsonl", &text).unwrap().ops;
        let back = jsonl::write(&via_edn(&read));
        prop_assert_eq!(back, text);
    }

    /// For any history, reading EDN we wrote equals reading JSON lines we wrote, float bits included.
    #[test]
    fn edn_and_jsonl_readers_agree(ops in history(any::<f64>().prop_filter("finite", |f| f.is_finite()).boxed())) {
        prop_assert_eq!(via_edn(&ops), via_jsonl(&ops));
    }

    /// Detection recognises what the EDN writer produces.
    #[test]
    fn written_edn_is_detected_as_edn(ops in history(exact_float().boxed())) {
        let text = edn::write(&ops);
        let h = parse("h", text.as_bytes(), None).unwrap();
        prop_assert_eq!(h.len(), ops.len());
        if !ops.is_empty() {
            prop_assert_eq!(h.format, Format::Edn);
        }
    }
}

const FORMATS: [Option<Format>; 6] = [
    None,
    Some(Format::JsonLines),
    Some(Format::JsonArray),
    Some(Format::Edn),
    Some(Format::JepsenLog),
    Some(Format::PorcupineKv),
];

fn parse_everyhow(bytes: &[u8]) {
    for format in FORMATS {
        let _ = parse("fuzz", bytes, format);
    }
}

/// Text made of the characters the readers care about, so random input gets past the first byte.
fn syntax_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("#{".to_string()),
        Just("#_".to_string()),
        Just("#jepsen.history.Op".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("\\u".to_string()),
        Just(";".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just(":type :invoke".to_string()),
        Just(":type :ok".to_string()),
        Just(":type :info".to_string()),
        Just(":process 0".to_string()),
        Just(":process :nemesis".to_string()),
        Just(":f :read".to_string()),
        Just(":key \"k\"".to_string()),
        Just(":value".to_string()),
        Just("\"type\":\"invoke\"".to_string()),
        Just("INFO jepsen.util - ".to_string()),
        Just(":timed-out".to_string()),
        "-?[0-9]{1,25}(\\.[0-9]*)?([eE][+-]?[0-9]{1,4})?[NM]?",
        "[a-z/.:#'+\\-]{1,5}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
}

const SAMPLE_EDN: &str = "; c\n[{:index 3, :type :invoke, :process 0, :f :cas, :value [1 2]}\n {:type :info, :process :nemesis, :f :start, :value #{\"n1\"}}\n #jepsen.history.Op{:type :ok, :process 0, :f :cas, :value [1 2], :error \"x\\n\"}]\n";
const SAMPLE_JSON: &str = "[{\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"value\":null},\n{\"type\":\"ok\",\"process\":0,\"f\":\"read\",\"value\":{\"0\":1}}]\n";
const SAMPLE_LOG: &str =
    "INFO  jepsen.util - 0\t:invoke\t:cas\t[1 4]\nINFO  jepsen.util - 0\t:info\t:cas\t:timed-out\n";

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        parse_everyhow(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        parse_everyhow(text.as_bytes());
    }

    #[test]
    fn syntax_soup_never_panics(text in syntax_soup()) {
        parse_everyhow(text.as_bytes());
    }

    /// Small edits of valid histories reach deep into every reader.
    #[test]
    fn mutated_histories_never_panic(
        sample in prop_oneof![Just(SAMPLE_EDN), Just(SAMPLE_JSON), Just(SAMPLE_LOG)],
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = sample.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => { bytes.remove(i); }
                _ if i < bytes.len() => bytes[i] = byte,
                _ => bytes.push(byte),
            }
        }
        parse_everyhow(&bytes);
    }
}

#[test]
fn samples_are_valid() {
    for (sample, format) in [
        (SAMPLE_EDN, Format::Edn),
        (SAMPLE_JSON, Format::JsonArray),
        (SAMPLE_LOG, Format::JepsenLog),
    ] {
        let h = parse("sample", sample.as_bytes(), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.format, format);
    }
}
