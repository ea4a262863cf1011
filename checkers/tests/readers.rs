//! Every stored external history parses, with format auto-detection, to the expected format and
//! op counts; and bad input is reported with its file and line.
//!
//! Expected counts come from the data sets' EXPECTED files (knossos/EXPECTED.md's table,
//! porcupine/EXPECTED.md's invoke/info/timeout columns) and, where those give none, from counting
//! `:type` occurrences in the files with grep.

use checkers::history::{parse, Format, History, OpType, Process, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/histories");

fn data_dir() -> PathBuf {
    let dir = PathBuf::from(DATA_DIR);
    assert!(
        dir.is_dir(),
        "the external histories directory {} does not exist; these tests need it",
        dir.display()
    );
    dir
}

fn load(rel: &str) -> History {
    let path = data_dir().join(rel);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse(rel, &bytes, None).unwrap_or_else(|e| panic!("{e}"))
}

/// ops, invoke, ok, fail, info, distinct processes.
type Counts = (usize, usize, usize, usize, usize, usize);

fn counts(h: &History) -> Counts {
    let of = |t: OpType| h.ops.iter().filter(|o| o.op_type == t).count();
    let procs: BTreeSet<&Process> = h.ops.iter().map(|o| &o.process).collect();
    (
        h.len(),
        of(OpType::Invoke),
        of(OpType::Ok),
        of(OpType::Fail),
        of(OpType::Info),
        procs.len(),
    )
}

/// knossos/EXPECTED.md's table.
const KNOSSOS: [(&str, Counts); 26] = [
    ("cas-register/bad/immediate-failure.edn", (4, 2, 1, 1, 0, 2)),
    (
        "cas-register/bad/rethink-fail-minimal.edn",
        (8, 4, 4, 0, 0, 4),
    ),
    ("cas-register/bad/bad-analysis.edn", (16, 9, 7, 0, 0, 9)),
    (
        "cas-register/bad/cas-failure.edn",
        (590, 291, 205, 85, 9, 12),
    ),
    (
        "cas-register/bad/rethink-fail.edn",
        (500, 250, 125, 121, 4, 26),
    ),
    (
        "cas-register/bad/rethink-fail-smaller.edn",
        (500, 250, 125, 121, 4, 26),
    ),
    (
        "cas-register/bad/mongodb-v0-ack-rollback-6.edn",
        (1492, 746, 61, 679, 6, 16),
    ),
    (
        "cas-register/good/mongodb-v0-ack-rollback-11.edn",
        (6, 3, 0, 3, 0, 3),
    ),
    (
        "cas-register/good/mongodb-v0-ack-rollback-10.edn",
        (12, 6, 0, 6, 0, 6),
    ),
    (
        "cas-register/good/mongodb-v0-ack-rollback-9.edn",
        (14, 7, 0, 7, 0, 7),
    ),
    (
        "cas-register/good/mongodb-v0-ack-rollback-.edn",
        (28, 0, 0, 0, 28, 1),
    ),
    (
        "cas-register/good/cas-register-bug.edn",
        (11, 6, 5, 0, 0, 6),
    ),
    (
        "cas-register/good/memstress3-30.edn",
        (101, 54, 23, 18, 6, 23),
    ),
    (
        "cas-register/good/memstress3-90.edn",
        (160, 80, 36, 29, 15, 20),
    ),
    (
        "cas-register/good/memstress3-60.edn",
        (183, 92, 57, 29, 5, 16),
    ),
    (
        "cas-register/good/memstress3-20.edn",
        (200, 100, 68, 27, 5, 15),
    ),
    (
        "cas-register/good/memstress3-55.edn",
        (214, 112, 68, 28, 6, 26),
    ),
    (
        "cas-register/good/memstress3-40.edn",
        (280, 140, 93, 43, 4, 14),
    ),
    (
        "cas-register/good/memstress3-80.edn",
        (309, 159, 106, 38, 6, 15),
    ),
    (
        "cas-register/good/memstress3-70.edn",
        (594, 297, 195, 102, 0, 10),
    ),
    (
        "cas-register/good/memstress3-12.edn",
        (608, 304, 216, 88, 0, 10),
    ),
    (
        "cas-register/good/memstress3-14.edn",
        (610, 305, 232, 73, 0, 10),
    ),
    (
        "cas-register/good/memstress3-0.edn",
        (634, 317, 231, 86, 0, 10),
    ),
    (
        "cas-register/good/mongodb-v0-ack-rollback-0.edn",
        (1404, 702, 13, 681, 8, 17),
    ),
    (
        "multi-register/good/multi-register.edn",
        (250, 123, 119, 2, 6, 8),
    ),
    ("mutex/bad/etcd.edn", (1135, 563, 261, 299, 12, 6)),
];

#[test]
fn knossos_histories_match_their_table() {
    for (file, expected) in KNOSSOS {
        let h = load(&format!("knossos/{file}"));
        assert_eq!(h.format, Format::Edn, "{file}");
        assert_eq!(counts(&h), expected, "{file}");
    }
}

/// elle and elle-cli, counted with grep.
const ELLE: [(&str, Format, Counts); 19] = [
    ("elle/paper-example.edn", Format::Edn, (8, 4, 4, 0, 0, 1)),
    (
        "elle/si-without-g-single.edn",
        Format::Edn,
        (8, 4, 4, 0, 0, 4),
    ),
    (
        "elle/huge-scc.edn",
        Format::Edn,
        (20602, 10254, 3036, 7070, 242, 174),
    ),
    (
        "elle-cli/elle/list-append-gh-30.edn",
        Format::Edn,
        (10, 5, 5, 0, 0, 3),
    ),
    (
        "elle-cli/elle/paper-example.edn",
        Format::Edn,
        (8, 4, 4, 0, 0, 1),
    ),
    (
        "elle-cli/elle/paper-example.json",
        Format::JsonArray,
        (8, 4, 4, 0, 0, 1),
    ),
    (
        "elle-cli/elle/rw-register.edn",
        Format::Edn,
        (6, 3, 3, 0, 0, 1),
    ),
    (
        "elle-cli/elle/rw-register.json",
        Format::JsonArray,
        (6, 3, 3, 0, 0, 1),
    ),
    (
        "elle-cli/jepsen/bank-neg.edn",
        Format::Edn,
        (2, 1, 1, 0, 0, 1),
    ),
    (
        "elle-cli/jepsen/bank-negative-balances.json",
        Format::JsonArray,
        (4, 2, 2, 0, 0, 1),
    ),
    (
        "elle-cli/jepsen/bank-tidb.edn",
        Format::Edn,
        (7132, 3566, 3249, 317, 0, 10),
    ),
    (
        "elle-cli/jepsen/bank.edn",
        Format::Edn,
        (680, 321, 221, 99, 39, 2),
    ),
    (
        "elle-cli/jepsen/bank.json",
        Format::JsonArray,
        (680, 321, 221, 99, 39, 2),
    ),
    (
        "elle-cli/jepsen/counter.edn",
        Format::Edn,
        (574, 287, 287, 0, 0, 1),
    ),
    (
        "elle-cli/jepsen/counter.json",
        Format::JsonArray,
        (574, 287, 287, 0, 0, 1),
    ),
    (
        "elle-cli/jepsen/long-fork.edn",
        Format::Edn,
        (4, 2, 2, 0, 0, 1),
    ),
    ("elle-cli/jepsen/set.edn", Format::Edn, (8, 4, 4, 0, 0, 1)),
    (
        "elle-cli/jepsen/set_full.edn",
        Format::Edn,
        (588, 294, 294, 0, 0, 1),
    ),
    (
        "elle-cli/jepsen/set_full.json",
        Format::JsonArray,
        (588, 294, 294, 0, 0, 1),
    ),
];

#[test]
fn elle_histories_match_their_counts() {
    for (file, format, expected) in ELLE {
        let h = load(file);
        assert_eq!(h.format, format, "{file}");
        assert_eq!(counts(&h), expected, "{file}");
    }
}

#[test]
fn edn_and_json_twins_read_the_same_ops() {
    for stem in [
        "elle/paper-example",
        "elle/rw-register",
        "jepsen/bank",
        "jepsen/counter",
        "jepsen/set_full",
    ] {
        let edn = load(&format!("elle-cli/{stem}.edn"));
        let json = load(&format!("elle-cli/{stem}.json"));
        assert_eq!(edn.ops, json.ops, "{stem}");
        assert_eq!(edn.lines, json.lines, "{stem}");
    }
}

#[test]
fn edn_details_survive() {
    let h = load("elle/si-without-g-single.edn");
    // Ops start after comment lines; foreign indices (10, 11, 20, ...) are kept.
    assert_eq!(h.lines[0], 9);
    assert_eq!(h.ops[0].extra.get("source-index"), Some(&Value::from(10)));
    assert_eq!(
        h.ops[2].value,
        serde_json::json!([["append", 8, 1], ["r", 9, null]])
    );

    let h = load("knossos/multi-register/good/multi-register.edn");
    assert_eq!(&h.lines[..2], &[2, 7]);
    assert_eq!(h.ops[0].f, "txn");
    assert_eq!(h.ops.last().unwrap().process, Process::nemesis());

    let h = load("elle-cli/jepsen/bank.edn");
    let read = h.ops[1].value.as_object().expect("a bank read is a map");
    assert_eq!(read.get("0"), Some(&Value::from(100)));
    // Dense 0.. indices carry nothing beyond our own numbering.
    assert!(h.ops.iter().all(|o| !o.extra.contains_key("source-index")));

    let h = load("elle/paper-example.edn");
    assert_eq!(
        h.ops[0].process,
        Process::Named("nil".into()),
        "no :process means one implicit process"
    );
    assert_eq!(h.ops[0].f, "txn", "no :f on a transaction means txn");
}

const ETCD_LOGS: [(u32, usize, usize, usize, usize); 103] = [
    (0, 85, 16, 0, 19),
    (1, 86, 14, 0, 18),
    (2, 77, 19, 0, 23),
    (3, 87, 11, 0, 15),
    (4, 85, 11, 0, 14),
    (5, 79, 14, 0, 18),
    (6, 83, 17, 0, 21),
    (7, 81, 17, 0, 21),
    (8, 84, 12, 0, 16),
    (9, 84, 13, 0, 16),
    (10, 84, 11, 0, 15),
    (11, 83, 11, 0, 15),
    (12, 81, 15, 0, 19),
    (13, 85, 11, 0, 15),
    (14, 81, 14, 0, 18),
    (15, 85, 12, 0, 16),
    (16, 82, 15, 0, 19),
    (17, 83, 16, 0, 20),
    (18, 83, 14, 0, 18),
    (19, 84, 11, 0, 16),
    (20, 84, 15, 0, 18),
    (21, 87, 10, 0, 14),
    (22, 79, 17, 0, 20),
    (23, 85, 13, 0, 17),
    (24, 82, 14, 0, 18),
    (25, 85, 11, 0, 14),
    (26, 84, 11, 0, 15),
    (27, 85, 12, 0, 16),
    (28, 83, 11, 0, 14),
    (29, 90, 10, 0, 13),
    (30, 84, 14, 0, 18),
    (31, 81, 16, 0, 19),
    (32, 88, 7, 0, 11),
    (33, 85, 10, 0, 13),
    (34, 82, 14, 0, 18),
    (35, 84, 11, 0, 14),
    (36, 81, 12, 0, 16),
    (37, 84, 10, 0, 13),
    (38, 87, 12, 0, 15),
    (39, 79, 11, 0, 15),
    (40, 83, 12, 0, 16),
    (41, 86, 12, 0, 15),
    (42, 83, 13, 0, 16),
    (43, 85, 12, 0, 15),
    (44, 82, 12, 0, 15),
    (45, 84, 15, 0, 18),
    (46, 87, 9, 0, 13),
    (47, 82, 12, 0, 16),
    (48, 80, 11, 0, 15),
    (49, 84, 15, 0, 19),
    (50, 82, 15, 0, 19),
    (51, 87, 13, 0, 17),
    (52, 80, 14, 0, 17),
    (53, 83, 15, 0, 18),
    (54, 86, 11, 0, 15),
    (55, 86, 12, 0, 15),
    (56, 85, 12, 0, 15),
    (57, 81, 12, 0, 16),
    (58, 87, 11, 0, 16),
    (59, 89, 11, 0, 14),
    (60, 87, 11, 0, 14),
    (61, 85, 12, 0, 15),
    (62, 83, 13, 0, 17),
    (63, 84, 14, 0, 17),
    (64, 85, 11, 0, 14),
    (65, 85, 10, 0, 13),
    (66, 85, 12, 0, 15),
    (67, 78, 18, 0, 21),
    (68, 86, 11, 0, 14),
    (69, 86, 9, 0, 12),
    (70, 90, 8, 0, 12),
    (71, 81, 19, 0, 22),
    (72, 87, 12, 0, 15),
    (73, 88, 9, 0, 13),
    (74, 84, 8, 0, 11),
    (75, 84, 14, 0, 17),
    (76, 85, 11, 0, 15),
    (77, 86, 9, 0, 13),
    (78, 81, 13, 0, 16),
    (79, 86, 7, 0, 11),
    (80, 84, 12, 0, 16),
    (81, 85, 11, 0, 14),
    (82, 83, 13, 0, 17),
    (83, 80, 18, 0, 21),
    (84, 86, 11, 0, 15),
    (85, 84, 13, 0, 16),
    (86, 85, 7, 0, 11),
    (87, 85, 12, 0, 16),
    (88, 79, 15, 0, 18),
    (89, 83, 12, 0, 16),
    (90, 87, 11, 0, 15),
    (91, 80, 16, 0, 20),
    (92, 81, 15, 0, 18),
    (93, 84, 11, 0, 15),
    (94, 84, 12, 0, 16),
    (95, 0, 0, 0, 0),
    (96, 83, 13, 0, 16),
    (97, 78, 19, 0, 22),
    (98, 84, 14, 0, 18),
    (99, 82, 14, 0, 18),
    (100, 77, 11, 5, 15),
    (101, 77, 10, 5, 14),
    (102, 73, 18, 7, 22),
];

#[test]
fn etcd_logs_match_their_table() {
    for (n, invokes, infos, read_timeouts, procs) in ETCD_LOGS {
        let file = format!("porcupine/jepsen/etcd_{n:03}.log");
        let h = load(&file);
        assert_eq!(h.format, Format::JepsenLog, "{file}");
        let (_, invoke, _, _, info, distinct) = counts(&h);
        let timed_out = h
            .ops
            .iter()
            .filter(|o| o.error == Some(Value::from("timed-out")))
            .count();
        assert_eq!(
            (invoke, info, timed_out - info, distinct),
            (invokes, infos, read_timeouts, procs),
            "{file}"
        );
    }
}

#[test]
fn etcd_095_is_an_empty_history() {
    let h = load("porcupine/jepsen/etcd_095.log");
    assert!(h.is_empty());
    assert_eq!(h.format, Format::JepsenLog);
}

#[test]
fn timed_out_ops_keep_their_invocation_value() {
    let h = load("porcupine/jepsen/etcd_000.log");
    // The file ends: 13 :invoke :cas [2 2] / 17 :invoke :cas [4 4] / 13 :info :cas :timed-out ...
    let info = &h.ops[h.len() - 4];
    assert_eq!(
        (info.op_type, &info.process),
        (OpType::Info, &Process::Client(13))
    );
    assert_eq!(info.value, serde_json::json!([2, 2]));
    assert_eq!(info.error, Some(Value::from("timed-out")));
    assert_eq!(h.lines[h.len() - 4], 167);
}

/// porcupine/EXPECTED.md section 2: file, events, clients, keys.
const KV: [(&str, usize, usize, usize); 6] = [
    ("c01-ok.txt", 116, 1, 10),
    ("c01-bad.txt", 76, 1, 8),
    ("c10-ok.txt", 674, 10, 10),
    ("c10-bad.txt", 810, 10, 10),
    ("c50-ok.txt", 3424, 50, 10),
    ("c50-bad.txt", 4048, 50, 10),
];

#[test]
fn porcupine_kv_logs_match_their_table() {
    for (name, events, clients, keys) in KV {
        let h = load(&format!("porcupine/kv/{name}"));
        assert_eq!(h.format, Format::PorcupineKv, "{name}");
        let (ops, invoke, ok, _, _, procs) = counts(&h);
        assert_eq!(
            (ops, invoke, ok, procs),
            (events, events / 2, events / 2, clients),
            "{name}"
        );
        let distinct_keys: BTreeSet<&str> = h
            .ops
            .iter()
            .filter_map(|o| o.value.get(0)?.as_str())
            .collect();
        assert_eq!(distinct_keys.len(), keys, "{name}");
    }
    let h = load("porcupine/kv/c01-ok.txt");
    assert_eq!(h.ops[0].f, "append");
    assert_eq!(h.ops[0].value, serde_json::json!(["0", "x 0 0 y"]));
}

/// Guards against a history file being added without an expectation above.
#[test]
fn every_history_file_is_checked() {
    let mut expected: BTreeSet<String> = BTreeSet::new();
    expected.extend(KNOSSOS.iter().map(|k| format!("knossos/{}", k.0)));
    expected.extend(ELLE.iter().map(|e| e.0.to_string()));
    expected.extend(
        ETCD_LOGS
            .iter()
            .map(|e| format!("porcupine/jepsen/etcd_{:03}.log", e.0)),
    );
    expected.extend(KV.iter().map(|k| format!("porcupine/kv/{}", k.0)));
    let mut found = BTreeSet::new();
    collect_histories(&data_dir(), &data_dir(), &mut found);
    assert_eq!(found, expected);
}

fn collect_histories(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_histories(root, &path, out);
            continue;
        }
        let is_history = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("edn" | "json" | "log" | "txt")
        );
        if is_history {
            let rel = path.strip_prefix(root).expect("under root");
            out.insert(rel.to_string_lossy().into_owned());
        }
    }
}

/// Parses `text` as file `name` with auto-detection and returns the error message.
fn error_of(name: &str, text: &[u8]) -> String {
    match parse(name, text, None) {
        Ok(h) => panic!(
            "{name} parsed ({} ops, {:?}) but should not",
            h.len(),
            h.format
        ),
        Err(e) => e.to_string(),
    }
}

fn assert_error(name: &str, text: &str, prefix: &str, needle: &str) {
    let e = error_of(name, text.as_bytes());
    assert!(
        e.starts_with(prefix) && e.contains(needle),
        "{name}: got {e:?}, want {prefix:?} ... {needle:?}"
    );
}

#[test]
fn second_invoke_on_a_busy_process_names_its_line() {
    let edn = "{:type :invoke, :process 0, :f :read}\n\n{:type :invoke, :process 0, :f :read}\n";
    assert_error("h.edn", edn, "h.edn:3: ", "still open");
    let knossos = "[{:type :invoke, :process 0, :f :read}\n {:type :invoke, :process 0, :f :read}]";
    assert_error("h.edn", knossos, "h.edn:2: ", "still open");
    let json = "[{\"type\":\"invoke\",\"process\":0,\"f\":\"read\"},\n{\"type\":\"invoke\",\"process\":0,\"f\":\"read\"}]";
    assert_error("h.json", json, "h.json:2: ", "still open");
    let log = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nother\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n";
    assert_error("h.log", log, "h.log:3: ", "still open");
    let kv = "{:process 0, :type :invoke, :f :get, :key \"1\", :value nil}\n{:process 0, :type :invoke, :f :get, :key \"1\", :value nil}";
    assert_error("kv.txt", kv, "kv.txt:2: ", "still open");
}

#[test]
fn completion_without_invoke_names_its_line() {
    let edn = "; comment\n{:type :ok, :process 3, :f :read, :value 1}";
    assert_error(
        "h.edn",
        edn,
        "h.edn:2: ",
        "ok \"read\" from process 3 has no open invocation",
    );
    let log = "INFO  jepsen.util - 3\t:ok\t:read\t1\n";
    assert_error("h.log", log, "h.log:1: ", "has no open invocation");
    let json = "[\n{\"type\":\"fail\",\"process\":1,\"f\":\"write\"}]";
    assert_error(
        "h.json",
        json,
        "h.json:2: ",
        "fail \"write\" from process 1 has no open invocation",
    );
}

#[test]
fn unknown_type_names_its_line() {
    let edn = "{:type :invoke, :process 0, :f :read}\n{:type :maybe, :process 0, :f :read}";
    assert_error("h.edn", edn, "h.edn:2: ", "unknown type \"maybe\"");
    let json = "[{\"type\":\"done\",\"process\":0,\"f\":\"read\"}]";
    assert_error("h.json", json, "h.json:1: ", "unknown type \"done\"");
    let log = "INFO  jepsen.util - 0\t:started\t:read\tnil";
    assert_error("h.log", log, "h.log:1: ", "unknown type \"started\"");
}

#[test]
fn unterminated_vector_names_the_line_it_opens_on() {
    let knossos =
        "; c\n[{:type :invoke, :process 0, :f :read}\n {:type :ok, :process 0, :f :read}\n";
    assert_error("h.edn", knossos, "h.edn:2: ", "unterminated vector");
    let value =
        "{:type :invoke, :process 0, :f :cas}\n{:type :ok, :process 0, :f :cas, :value [1 2}\n";
    assert_error(
        "h.edn",
        value,
        "h.edn:2: ",
        "does not close the vector opened at line 2",
    );
    let json = "[\n{\"type\":\"invoke\",\"process\":0,\"f\":\"read\"}\n";
    assert_error("h.json", json, "h.json:1: ", "unterminated JSON array");
    let log = "INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2\n";
    assert_error("h.log", log, "h.log:1: ", "unterminated vector");
}

#[test]
fn garbage_names_its_line() {
    let edn = "{:type :invoke, :process 0, :f :read}\n\u{1}\u{7f}garbage";
    assert_error("h.edn", edn, "h.edn:2: ", "unexpected character");
    let edn =
        "{:type :invoke, :process 0, :f :read}\n{:type :ok, :process 0, :f :read, :value 12abc}";
    assert_error("h.edn", edn, "h.edn:2: ", "invalid number `12abc`");
    let edn = "{:type :invoke, :process 0, :f :read}\n  garbage";
    assert_error("h.edn", edn, "h.edn:2: ", "expected an op map");
    let json = "[{\"type\":\"invoke\",\"process\":0,\"f\":\"read\"},\n\n {\"type\" \u{1}}]";
    assert_error("h.json", json, "h.json:3: ", "not valid JSON");
    let jsonl = "{\"type\":\"invoke\",\"process\":0,\"f\":\"read\"}\n{\"type\" ,,}";
    assert_error("h.jsonl", jsonl, "h.jsonl:2: ", "not valid JSON");
    let string =
        "{:type :invoke, :process 0, :f :read}\n{:type :ok, :process 0, :f :read, :value \"abc}";
    assert_error("h.edn", string, "h.edn:2: ", "unterminated string");
}

#[test]
fn non_utf8_names_its_line() {
    let mut bytes = b"{:type :invoke, :process 0, :f :read}\n\n{:type :ok, :value \"".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
    for forced in [None, Some(Format::Edn), Some(Format::JsonLines)] {
        let e = parse("h.edn", &bytes, forced).unwrap_err().to_string();
        assert!(e.starts_with("h.edn:3: not UTF-8 text"), "{e}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let brackets = "[".repeat(100_000);
    let edn = format!("{{:type :invoke, :process 0, :f :read, :value {brackets}}}");
    let json =
        format!("[{{\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"value\":{brackets}}}]");
    let jsonl =
        format!("{{\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"value\":{brackets}}}");
    let log = format!("INFO  jepsen.util - 0 :invoke :read {brackets}");
    let cases = [
        (edn.as_str(), None),
        (edn.as_str(), Some(Format::PorcupineKv)),
        (json.as_str(), None),
        (jsonl.as_str(), None),
        (log.as_str(), None),
    ];
    for (text, format) in cases {
        let e = parse("deep", text.as_bytes(), format)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("deep:1: "), "{format:?}: {e}");
    }
}
