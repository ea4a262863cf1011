//! The classic Jepsen checkers (bank, counter, set, set-full, long-fork) against elle-cli's test
//! histories in `../shared/histories/elle-cli`: every row of its `EXPECTED.tsv` for these
//! checkers must get exactly the verdict listed there, and the invalid ones must fail for the
//! reasons Jepsen gives (the anomaly types, and for bank-tidb elle-cli's own counts).

use checkers::history::{self, History};
use checkers::verdict::{Validity, Verdict};
use checkers::{bank, counter, long_fork, set, set_full};
use std::path::{Path, PathBuf};

const SHARED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/histories/elle-cli/"
);

/// The shared directory; missing test data is a failure naming the path, never a skip.
fn dir_or_fail(dir: &Path) -> PathBuf {
    assert!(
        dir.is_dir(),
        "missing test data: {} does not exist (the shared/ folder beside the repository)",
        dir.display()
    );
    dir.to_path_buf()
}

fn shared() -> PathBuf {
    dir_or_fail(Path::new(SHARED))
}

fn load(rel: &str) -> History {
    let path = shared().join(rel);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    history::parse(rel, &bytes, None).unwrap_or_else(|e| panic!("{e}"))
}

/// One row of EXPECTED.tsv: file, checker column, expected verdict, note.
struct Row {
    file: String,
    checker: String,
    valid: bool,
    note: String,
}

fn expected_rows() -> Vec<Row> {
    let path = shared().join("EXPECTED.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(
                cols.len() >= 3,
                "EXPECTED.tsv row with fewer than 3 columns: {l:?}"
            );
            let valid = match cols[2].trim() {
                "valid" => true,
                "invalid" => false,
                other => panic!("EXPECTED.tsv: unknown verdict {other:?} in {l:?}"),
            };
            Row {
                file: cols[0].trim().to_string(),
                checker: cols[1].trim().to_string(),
                valid,
                note: cols.get(3).map_or(String::new(), |n| n.trim().to_string()),
            }
        })
        .collect()
}

/// The checker a row names, with the options its note or checker column gives; `None` for
/// checkers this file does not cover (Elle's transactional ones).
fn run_row(row: &Row) -> Option<Verdict> {
    let (name, params) = match row.checker.split_once(" (") {
        Some((n, p)) => (n, p.trim_end_matches(')')),
        None => (row.checker.as_str(), ""),
    };
    let h = || load(&row.file);
    let verdict = match name {
        "bank" => bank::check(
            &h(),
            &bank::Options {
                negative_balances_allowed: row.note.contains("negative balances allowed"),
                ..bank::Options::default()
            },
        ),
        "counter" => counter::check(&h(), &counter::Options::default()),
        "set" => set::check(&h(), &set::Options::default()),
        "set-full" => set_full::check(&h(), &set_full::Options::default()),
        "long-fork" => long_fork::check(
            &h(),
            &long_fork::Options {
                group_size: group_size(params),
                ..long_fork::Options::default()
            },
        ),
        _ => return None,
    };
    Some(verdict.unwrap_or_else(|e| panic!("{}: {e}", row.file)))
}

/// `group size 3` -> 3.
fn group_size(params: &str) -> Option<usize> {
    params.strip_prefix("group size ").map(|n| {
        n.trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad group size {params:?}"))
    })
}

fn verdict_of(file: &str) -> Verdict {
    let rows = expected_rows();
    let row = rows
        .iter()
        .find(|r| r.file == file)
        .unwrap_or_else(|| panic!("{file} is not in EXPECTED.tsv"));
    run_row(row).unwrap_or_else(|| panic!("{file}: checker {:?} not covered", row.checker))
}

#[test]
fn every_expected_verdict_of_the_classic_checkers_is_reproduced() {
    let mut checked = Vec::new();
    let mut mismatches = Vec::new();
    for row in expected_rows() {
        let Some(v) = run_row(&row) else { continue };
        let want = if row.valid {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        if v.valid != want {
            mismatches.push(format!(
                "{} ({}): expected {want:?}, got {:?}\n{}",
                row.file,
                row.checker,
                v.valid,
                v.explain()
            ));
        }
        checked.push(row.file);
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    for file in [
        "jepsen/bank.edn",
        "jepsen/bank.json",
        "jepsen/bank-tidb.edn",
        "jepsen/bank-neg.edn",
        "jepsen/bank-negative-balances.json",
        "jepsen/counter.edn",
        "jepsen/counter.json",
        "jepsen/set.edn",
        "jepsen/set_full.edn",
        "jepsen/set_full.json",
        "jepsen/long-fork.edn",
    ] {
        assert!(
            checked.iter().any(|c| c == file),
            "{file} was not checked: is its row missing from EXPECTED.tsv? checked: {checked:?}"
        );
    }
}

#[test]
fn bank_tidb_has_wrong_totals_with_elle_clis_counts() {
    let v = verdict_of("jepsen/bank-tidb.edn");
    assert_eq!(v.valid, Validity::Invalid);
    assert_eq!(v.anomaly_types, vec!["wrong-total"]);
    // elle-cli: read-count 1805, error-count 1731, first error at :index 258 summing to 105.
    assert_eq!(v.details["read_count"], 1805);
    assert_eq!(v.details["error_count"], 1731);
    assert_eq!(v.anomaly_counts["wrong-total"], 1731);
    assert_eq!(v.details["total"], 100);
    assert_eq!(v.details["first_error"]["total"], 105);
    assert_eq!(v.details["first_error"]["line"], 259);
    assert_eq!(v.details["lowest_wrong_total"], 97);
    assert_eq!(v.details["highest_wrong_total"], 267);
    let first = &v.anomalies["wrong-total"][0];
    assert!(
        first.starts_with("read at line 259 (process 5, ok read"),
        "{first}"
    );
    assert!(
        first.contains("sum to 105, but the total is 100"),
        "{first}"
    );
}

#[test]
fn bank_negative_balances_is_a_negative_value_and_bank_neg_is_clean() {
    let v = verdict_of("jepsen/bank-negative-balances.json");
    assert_eq!(v.anomaly_types, vec!["negative-value"]);
    assert_eq!(v.anomaly_counts["negative-value"], 1);
    let why = &v.anomalies["negative-value"][0];
    assert!(why.contains("line 4"), "{why}");
    assert!(why.contains("\"7\": -1"), "{why}");

    // Negative balances are allowed in bank-neg's test; it has none either way.
    let h = load("jepsen/bank-neg.edn");
    let strict = bank::check(&h, &bank::Options::default()).unwrap();
    assert_eq!(strict.valid, Validity::Valid);
    assert_eq!(strict.details["total"], 30);
}

#[test]
fn bank_histories_infer_their_total_and_say_so() {
    for file in ["jepsen/bank.edn", "jepsen/bank.json"] {
        let v = verdict_of(file);
        assert_eq!(v.valid, Validity::Valid, "{file}");
        assert_eq!(v.details["total"], 100, "{file}");
        let source = v.details["total_source"].as_str().unwrap_or_default();
        assert!(
            source.contains("inferred") && source.contains("line 2"),
            "{source}"
        );
        assert_eq!(v.details["error_count"], 0, "{file}");
    }
    // With the accounts of the test (0..9), no key is unexpected; with fewer, some are.
    let h = load("jepsen/bank.edn");
    let accounts = |n: u32| bank::Options {
        accounts: Some((0..n).map(|a| a.to_string()).collect()),
        ..bank::Options::default()
    };
    assert_eq!(
        bank::check(&h, &accounts(10)).unwrap().valid,
        Validity::Valid
    );
    let v = bank::check(&h, &accounts(9)).unwrap();
    assert_eq!(v.anomaly_types, vec!["unexpected-key"]);
}

#[test]
fn counter_histories_are_valid_in_both_formats() {
    // elle-cli's counter histories hold 287 acknowledged adds and no read: valid, as in
    // Jepsen, since no read was out of bounds.
    let edn = verdict_of("jepsen/counter.edn");
    let json = verdict_of("jepsen/counter.json");
    assert_eq!(edn.valid, Validity::Valid);
    assert_eq!(edn.details["read_count"], 0);
    assert_eq!(edn.details["ok_add_count"], 287);
    assert_eq!(edn.details, json.details, "the same history in two formats");
}

#[test]
fn counter_history_with_a_stale_read_appended_is_out_of_bounds() {
    // Append a read of 0 after every add completed: at least 287 had been added.
    let mut h = load("jepsen/counter.edn");
    let n = h.ops.len();
    let inv = checkers::history::Op::new(
        0,
        checkers::history::OpType::Invoke,
        checkers::history::Process::Client(7),
        "read",
        serde_json::Value::Null,
    );
    let mut ok = inv.clone();
    ok.op_type = checkers::history::OpType::Ok;
    ok.value = serde_json::json!(0);
    let mut ops = std::mem::take(&mut h.ops);
    ops.extend([inv, ok]);
    let lines = (1..=n + 2).collect();
    let h = History::new("counter+read", h.format, ops, lines).unwrap();
    let v = counter::check(&h, &counter::Options::default()).unwrap();
    assert_eq!(v.anomaly_types, vec!["out-of-bounds-read"]);
    assert_eq!(v.details["first_error"]["lower"], 287);
    assert_eq!(v.details["first_error"]["line"], n + 2);
}

#[test]
fn set_history_reads_back_every_add() {
    let v = verdict_of("jepsen/set.edn");
    assert_eq!(v.valid, Validity::Valid);
    assert_eq!(v.details["ok"], "#{0..2}");
    assert_eq!(v.details["lost_count"], 0);
}

#[test]
fn set_full_histories_lose_every_element_as_jepsen_reads_them() {
    // The adds are of pairs [0 i], the read returns bare integers: read literally, as Jepsen's
    // set-full does, no added element is ever read back, and every one was lost.
    for file in ["jepsen/set_full.edn", "jepsen/set_full.json"] {
        let v = verdict_of(file);
        assert_eq!(v.valid, Validity::Invalid, "{file}");
        assert_eq!(v.anomaly_types, vec!["lost"], "{file}");
        assert_eq!(v.details["attempt_count"], 293, "{file}");
        assert_eq!(v.details["lost_count"], 293, "{file}");
        assert_eq!(v.details["stable_count"], 0, "{file}");
        assert_eq!(v.details["unexpected_count"], 293, "{file}");
        assert_eq!(v.details["lost_latencies_ms"]["1"], 0, "{file}");
        let why = &v.anomalies["lost"][0];
        assert!(
            why.contains("element [0,0] was known present from line 2"),
            "{why}"
        );
        assert!(why.contains("read invoked at line 587"), "{why}");
        assert!(why.contains("no read ever saw it"), "{why}");
        assert!(v.cause.is_none(), "invalid, not unknown: {:?}", v.cause);
    }
}

#[test]
fn long_fork_history_has_one_fork_naming_both_reads() {
    let v = verdict_of("jepsen/long-fork.edn");
    assert_eq!(v.valid, Validity::Invalid);
    assert_eq!(v.anomaly_types, vec!["long-fork"]);
    assert_eq!(v.details["reads_count"], 2);
    assert_eq!(v.details["early_read_count"], 0);
    assert_eq!(v.details["late_read_count"], 0);
    assert_eq!(v.details["fork_count"], 1);
    let why = &v.anomalies["long-fork"][0];
    assert!(
        why.contains("read at line 2 (process nil, ok read"),
        "{why}"
    );
    assert!(
        why.contains("read at line 4 (process nil, ok read"),
        "{why}"
    );
    assert!(
        why.contains("[[\"r\",0,1],[\"r\",1,1],[\"r\",2,null]]"),
        "{why}"
    );
    assert!(
        why.contains("saw the write of key(s) 1 but not of 2"),
        "{why}"
    );

    // The group size is derived from the reads when not given; a wrong one is refused.
    let h = load("jepsen/long-fork.edn");
    let derived = long_fork::check(&h, &long_fork::Options::default()).unwrap();
    assert_eq!(derived.valid, Validity::Invalid);
    let wrong = long_fork::Options {
        group_size: Some(2),
        ..long_fork::Options::default()
    };
    let e = long_fork::check(&h, &wrong).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.problem.contains("exactly 2 keys"), "{e}");
}

#[test]
#[should_panic(expected = "missing test data: /nonexistent/elle-cli does not exist")]
fn a_missing_shared_directory_fails_naming_the_path() {
    dir_or_fail(Path::new("/nonexistent/elle-cli"));
}
