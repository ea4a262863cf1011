//! End to end on `faultline campaign`: a small matrix of real repdb runs (certification,
//! which is valid, and lazy replication, which is not) with a JUnit report; a budget too
//! small for any run; and files refused before anything runs.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Writes `text` to `store/name` and runs `faultline campaign` on it with `extra` flags.
fn campaign(store: &Path, name: &str, text: &str, extra: &[&str]) -> Output {
    std::fs::create_dir_all(store).unwrap();
    let file = store.join(name);
    std::fs::write(&file, text).unwrap();
    let (file, store) = (file.to_str().unwrap(), store.to_str().unwrap());
    let mut args = vec!["campaign", file, "--store", store];
    args.extend_from_slice(extra);
    faultline(&args).output().unwrap()
}

/// The one report directory under `store/campaigns/NAME/`.
fn campaign_dir(store: &Path, name: &str) -> PathBuf {
    only_subdir(&store.join("campaigns").join(name))
}

const MATRIX: &str = r#"
name = "modes"
budget_s = 600
seeds = [1]

[defaults]
time_limit = 5

[[test]]
system = "repdb"
workload = "list-append"
replication = ["certification", "lazy"]
"#;

#[test]
fn a_failing_run_is_rerun_reported_in_junit_and_sets_the_exit_code() {
    let store = store("campaign-modes");
    let junit = store.join("junit.xml");
    let out = campaign(
        &store,
        "modes.toml",
        MATRIX,
        &["--junit", junit.to_str().unwrap()],
    );
    let stdout = text(&out.stdout);
    let all = format!("{stdout}\n{}", text(&out.stderr));
    // Jepsen's test-all: an invalid run makes the campaign invalid.
    assert_eq!(out.status.code(), Some(1), "{all}");
    let dir = campaign_dir(&store, "modes");
    let record = json(&dir.join("campaign.json"));
    assert_eq!(record["exit_code"], 1);
    let runs = record["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{record:#}");
    let (cert, lazy) = (&runs[0], &runs[1]);
    assert_eq!(cert["label"], "repdb-certification-list-append-none-n3-s1");
    assert_eq!(cert["first"]["outcome"], "valid", "{cert:#}");
    assert!(cert["rerun"].is_null(), "a valid run is not rerun");
    assert_eq!(lazy["first"]["outcome"], "invalid", "{lazy:#}");
    let anomalies: Vec<&str> = lazy["first"]["anomaly_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    // Lazy replicas apply in different orders. Depending on the run's timing the checker
    // sees diverging apply logs, or reads that no single order explains.
    assert!(
        anomalies
            .iter()
            .any(|a| ["divergent-apply-order", "incompatible-order"].contains(a)),
        "{anomalies:?}"
    );
    // The rerun is a second, stored run with the same seed.
    let first_dir = lazy["first"]["run_dir"].as_str().unwrap();
    let rerun_dir = lazy["rerun"]["run_dir"].as_str().unwrap();
    assert_ne!(first_dir, rerun_dir);
    for run in [first_dir, rerun_dir] {
        let test = json(&Path::new(run).join("test.json"));
        assert_eq!(test["seed"], 1, "{run}");
        assert_eq!(test["args"]["replication"], "lazy", "{run}");
    }
    let command = lazy["command"].as_str().unwrap();
    assert_eq!(
        command,
        "faultline test --system repdb --workload list-append --replication lazy --nodes 3 \
         --nemesis none --time-limit 5 --seed 1"
    );
    // JUnit: a case per run, the failure naming the anomaly and the command.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"tests="2" failures="1" errors="0""#),
        "{xml}"
    );
    assert!(xml.contains(&anomalies.join(", ")), "{xml}");
    assert!(xml.contains(&format!("reproduce: {command}")), "{xml}");
    let rerun_said = match lazy["rerun"]["outcome"].as_str().unwrap() {
        "valid" => "valid when rerun with the same seed (flaky)",
        _ => "failed again with the same seed",
    };
    assert!(xml.contains(rerun_said), "{xml}");
    // Nothing measured lives only in memory; the summaries link each run's report.
    let lines = std::fs::read_to_string(dir.join("runs.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2);
    let html = std::fs::read_to_string(dir.join("summary.html")).unwrap();
    let hrefs: Vec<&str> = html
        .split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(hrefs.len(), 2, "{html}");
    for href in hrefs {
        assert!(
            dir.join(href).is_file(),
            "{href} resolves from {}",
            dir.display()
        );
    }
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    assert!(
        summary.contains("2 runs in") && summary.contains("1 invalid, 1 valid"),
        "{summary}"
    );
    assert!(
        stdout.contains(&format!("reproduce: {command}")),
        "{stdout}"
    );
}

#[test]
fn a_budget_too_small_for_any_run_skips_them_all_as_unknown() {
    let store = store("campaign-budget");
    let junit = store.join("junit.xml");
    let text_ = MATRIX.replace("budget_s = 600", "budget_s = 1");
    let out = campaign(
        &store,
        "tight.toml",
        &text_,
        &["--junit", junit.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let record = json(&campaign_dir(&store, "modes").join("campaign.json"));
    let outcomes: Vec<&Value> = record["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["first"]["outcome"])
        .collect();
    assert_eq!(outcomes, ["skipped", "skipped"]);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(
        xml.matches("<skipped message=\"not run: the budget ran out")
            .count(),
        2,
        "{xml}"
    );
    assert!(!store.join("campaign-modes").exists(), "no run was started");
}

#[test]
fn dry_runs_list_commands_and_bad_files_are_refused_before_anything_runs() {
    let store = store("campaign-bad");
    let out = campaign(&store, "modes.toml", MATRIX, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    let listed = text(&out.stdout);
    assert!(
        listed.contains(
            "faultline test --system repdb --workload list-append --replication certification"
        ),
        "{listed}"
    );
    assert!(!store.join("campaigns").exists(), "a dry run runs nothing");
    let cases = [
        ("name = \"b\"\nbudget_s = 9\n[[test]]\nsystem = \"repdb\"\nworkload = \"bank\"\n", "run 0 (repdb-bank-none-n3-s1): the bank workload does not run on repdb"),
        ("name = \"b\"\nbudget_s = 9\n[[test]]\nsystem = \"coord\"\nworkload = \"lock\"\nnemesis = \"earthquake\"\n", "earthquake"),
        ("name = \"b\"\nbudget_s = 9\n[[test]]\nsystem = \"repdb\"\nworkload = \"list-append\"\nargs = [\"--read-phase-ms\", \"15\"]\n", "--read-phase-ms must be a multiple of 10"),
        ("name = \"b\"\n[[test]]\nsystem = \"coord\"\nworkload = \"lock\"\n", "missing field `budget_s`"),
    ];
    for (file_text, want) in cases {
        let out = campaign(&store, "bad.toml", file_text, &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{file_text}: {err}");
        assert!(
            err.contains(want) && err.contains("bad.toml"),
            "{file_text}: {err}"
        );
    }
    assert!(!store.join("campaigns").exists(), "nothing ran");
}
