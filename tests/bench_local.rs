//! End to end on `faultline bench`: a small matrix (repdb with certification on three
//! replicas, and a real PostgreSQL 15 at serializable, each at one contended key and at a
//! thousand keys) runs as checked, stored test runs; the report holds the floor, a row and
//! a reproducing command per cell, and the figures follow contention as they must: on one
//! key, both systems abort far more of their transactions than on a thousand.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

const MATRIX: &str = r#"
name = "contention"
workload = "list-append"
seconds = 3
concurrency = 6
key_count = [1, 1000]

[[target]]
system = "repdb"
replication = "certification"
nodes = 3

[[target]]
system = "postgres"
isolation = "serializable"
"#;

/// Writes `text` to `store/name` and runs `faultline bench` on it.
fn bench(store: &Path, name: &str, text: &str, extra: &[&str]) -> Output {
    std::fs::create_dir_all(store).unwrap();
    let file = store.join(name);
    std::fs::write(&file, text).unwrap();
    let (file, store) = (file.to_str().unwrap(), store.to_str().unwrap());
    let mut args = vec!["bench", file, "--store", store];
    args.extend_from_slice(extra);
    faultline(&args).output().unwrap()
}

/// The one report directory under `store/benches/NAME/`.
fn bench_dir(store: &Path, name: &str) -> PathBuf {
    only_subdir(&store.join("benches").join(name))
}

fn abort_rate(cell: &Value) -> f64 {
    cell["metrics"]["abort_rate"].as_f64().unwrap()
}

#[test]
fn a_matrix_measures_every_cell_beside_the_floor_and_contention_raises_aborts() {
    require_postgres();
    let store = store("bench-contention");
    let out = bench(&store, "contention.toml", MATRIX, &["--quiet"]);
    let stdout = text(&out.stdout);
    let all = format!("{stdout}\n{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{all}");
    let dir = bench_dir(&store, "contention");
    assert_eq!(
        std::fs::read_to_string(dir.join("bench.toml")).unwrap(),
        MATRIX
    );
    let report = json(&dir.join("bench.json"));
    let floor = &report["floor"];
    for probe in ["fsync", "loopback_rtt"] {
        let p50 = floor[probe]["p50_ms"].as_f64().unwrap();
        assert!(p50 > 0.0, "{probe}: {floor}");
    }
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    let cells = report["cells"].as_array().unwrap();
    let labels: Vec<&str> = cells.iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "repdb-certification-n3-k1-c6-rmax-s1",
            "repdb-certification-n3-k1000-c6-rmax-s1",
            "postgres-serializable-n1-k1-c6-rmax-s1",
            "postgres-serializable-n1-k1000-c6-rmax-s1",
        ]
    );
    for c in cells {
        assert_eq!(c["verdict"], "valid", "{c:#}");
        let m = &c["metrics"];
        assert!(m["ok"].as_u64().unwrap() > 50, "{c:#}");
        assert!(m["ok_per_s"].as_f64().unwrap() > 0.0);
        let ok =
            m["ok"].as_u64().unwrap() + m["fail"].as_u64().unwrap() + m["info"].as_u64().unwrap();
        assert_eq!(ok, m["attempted"].as_u64().unwrap(), "{m:#}");
        let lat = &m["ok_latency"];
        assert!(lat["p50_ms"].as_f64().unwrap() <= lat["p99_ms"].as_f64().unwrap());
        // The figures come from the stored run, which is an ordinary, checked test run.
        let run = PathBuf::from(c["run"].as_str().unwrap());
        let results = json(&run.join("results.json"));
        assert_eq!(results["valid"], true, "{results:#}");
        let history = history(&run);
        let txns_ok = history
            .iter()
            .filter(|op| op["f"] == "txn" && op["type"] == "ok")
            .count() as u64;
        assert!(
            txns_ok >= m["ok"].as_u64().unwrap(),
            "{txns_ok} ok txns in {}",
            run.display()
        );
        assert!(c["command"]
            .as_str()
            .unwrap()
            .starts_with("faultline test --system "));
    }
    // One contended key: certification and serializable PostgreSQL abort most conflicting
    // transactions; a thousand keys leave little to conflict on.
    for (hot, cold) in [(0, 1), (2, 3)] {
        let (h, c) = (abort_rate(&cells[hot]), abort_rate(&cells[cold]));
        assert!(
            h > 0.2 && h > 3.0 * c,
            "{}: {h} vs {}: {c}",
            labels[hot],
            labels[cold]
        );
    }
    // Nothing measured lives only in memory: one line per cell, written as each ended.
    let lines = std::fs::read_to_string(dir.join("cells.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 4);
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    assert!(
        summary.starts_with("bench contention: 4 cells\nfloor: fsync p50 "),
        "{summary}"
    );
    assert!(
        stdout.contains(&summary),
        "the summary is printed: {stdout}"
    );
    // Quiet: no log lines, no progress on standard error.
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains(" INFO ") && !stderr.contains("ops:") && !stderr.contains("cell 1/4"),
        "{stderr}"
    );
    // The page: the table and a bar chart per figure.
    let page = std::fs::read_to_string(dir.join("bench.html")).unwrap();
    assert_eq!(
        page.matches("<svg").count(),
        5,
        "throughput against keys in use, then bars of throughput, aborts, p50, p99"
    );
    assert!(page.contains("throughput against keys in use"));
    // The report is drawn again from what the directory recorded, unchanged.
    std::fs::remove_file(dir.join("bench.html")).unwrap();
    let again = faultline(&["bench", "--report", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("bench.html")).unwrap(),
        page
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("summary.txt")).unwrap(),
        summary
    );
    for l in &labels {
        assert!(page.contains(l), "{l}");
    }
}

#[test]
fn bad_bench_files_are_refused_before_anything_runs() {
    let store = store("bench-bad");
    let cases = [
        (
            "name = \"b\"\nworkload = \"list-append\"\nspeed = 3\n[[target]]\nsystem = \"repdb\"\n",
            "unknown field `speed`",
        ),
        (
            "name = \"b\"\nworkload = \"list-append\"\n[[target]]\nsystem = \"repdb\"\n[[target]]\nsystem = \"mongodb\"\n",
            "cell 1 (mongodb-n3-c10-rmax-s1): unknown system \"mongodb\"",
        ),
        (
            "name = \"b\"\nworkload = \"list-append\"\nkey_count = 5000\n[[target]]\nsystem = \"repdb\"\n",
            "--key-count must be 1 to 1000, not 5000",
        ),
        (
            "name = \"b\"\nworkload = \"lock\"\nkey_count = 5\n[[target]]\nsystem = \"coord\"\n",
            "shape the list-append and rw-register transactions of repdb and postgres, not coord's lock",
        ),
    ];
    for (file_text, want) in cases {
        let out = bench(&store, "bad.toml", file_text, &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{file_text}: {err}");
        assert!(err.contains(want), "{file_text}: {err}");
        assert!(err.contains("bad.toml"), "the file is named: {err}");
    }
    assert!(!store.join("benches").exists(), "nothing ran");
    let out = faultline(&["bench", "/nonexistent/bench.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/bench.toml"));
}
