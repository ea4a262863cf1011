//! End to end on Faultline's two-phase-commit store: `faultline test --system twopc` deploys
//! real `faultline node twopc` processes on the local backend, drives the bank, snapshot and
//! recovery workloads under kills and partitions, merges the nodes' event logs with the
//! harness's fault lines, and judges the run with the bank checker, the workload's own
//! checks and the atomic-commit, consistent-cut and recovery-line checkers. A `snapshot` run
//! restores its last snapshot into a new cluster. The planted bugs that every commit shows
//! in the event log are caught, named in `results.json`.
//!
//! The runs share this machine's two cores, and a coordinator waits only half a second for
//! votes, so they run one at a time.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One run at a time: each deploys three nodes that must answer within their timeouts.
static SERIAL: Mutex<()> = Mutex::new(());

/// The verdicts every twopc run has besides the workload's own (`twopc-<workload>`).
const CHECKERS: [&str; 4] = ["bank", "atomic-commit", "consistent-cut", "recovery-line"];

/// Runs `faultline test` on three twopc nodes; the exit code, the output and the run dir.
fn run(name: &str, workload: &str, extra: &[&str]) -> (Option<i32>, String, PathBuf) {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let store = store(name);
    let mut args = vec![
        "test",
        "--system",
        "twopc",
        "--workload",
        workload,
        "--nodes",
        "3",
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = faultline(&args).output().unwrap();
    let text = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    let run = run_dir(&store);
    assert_no_members_left(&run);
    (out.status.code(), text, run)
}

fn results(run: &Path) -> Value {
    json(&run.join("results.json"))
}

/// Every checker's verdict is valid; returns the results.
fn all_valid(code: Option<i32>, out: &str, run: &Path, workload: &str) -> Value {
    let r = results(run);
    assert_eq!(code, Some(0), "{out}\n{r:#}");
    assert_eq!(r["valid"], true, "{r:#}");
    let own = format!("twopc-{workload}");
    let listed: Vec<&str> = r["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for checker in CHECKERS.iter().copied().chain([own.as_str()]) {
        assert!(listed.contains(&checker), "{checker} ran: {listed:?}");
        assert_eq!(r[checker]["valid"], true, "{checker}: {:#}", r[checker]);
    }
    r
}

/// The merged event log's lines with this `event`.
fn events(run: &Path, event: &str) -> Vec<Value> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == event)
        .collect()
}

#[test]
fn bank_under_kills_and_partitions_is_valid_on_every_checker() {
    let (code, out, run) = run(
        "twopc-bank",
        "bank",
        &[
            "--time-limit",
            "10",
            "--rate",
            "60",
            "--nemesis",
            "kill,partition",
            "--nemesis-interval",
            "2",
            "--seed",
            "3",
        ],
    );
    let r = all_valid(code, &out, &run, "bank");
    let own = &r["twopc-bank"]["details"];
    assert!(own["transfers_ok"].as_u64().unwrap() > 20, "{own}");
    assert!(own["crashes"].as_u64().unwrap() > 0, "{own}");
    let ac = &r["atomic-commit"]["details"];
    assert!(ac["txns_committed"].as_u64().unwrap() > 20, "{ac}");
    assert_eq!(ac["ac5_checked"], true, "the run ends healed: {ac}");
    assert!(r["bank"]["details"]["read_count"].as_u64().unwrap() > 0);
    assert!(
        r["recovery-line"]["details"]["checkpoints"]
            .as_u64()
            .unwrap()
            > 0
    );
    let fs = nemesis_fs(&history(&run));
    assert!(fs.contains(&"start-kill".to_string()), "{fs:?}");
    assert!(fs.contains(&"start-partition".to_string()), "{fs:?}");
    // The harness's lines are in the merged log beside every node's.
    assert!(!events(&run, "crash").is_empty());
    assert!(!events(&run, "recover").is_empty());
    assert!(!events(&run, "fault").is_empty());
    assert!(!events(&run, "heal").is_empty());
    let finals: Vec<String> = events(&run, "final-state")
        .iter()
        .map(|v| v["node"].as_str().unwrap().to_string())
        .collect();
    assert!(
        finals.contains(&"n2".into()) && finals.contains(&"n3".into()),
        "{finals:?}"
    );
    // The stored run re-checks the same way, and its event log checks on its own too.
    let again = faultline(&["analyze", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    let log = run.join("events.jsonl");
    for checker in ["atomic-commit", "recovery-line", "consistent-cut"] {
        let out = faultline(&["check", "--checker", checker, log.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{checker}: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn snapshots_are_whole_and_the_last_one_restores_into_a_new_cluster() {
    let (code, out, run) = run(
        "twopc-snapshot",
        "snapshot",
        &["--time-limit", "6", "--rate", "60", "--seed", "5"],
    );
    let r = all_valid(code, &out, &run, "snapshot");
    let own = &r["twopc-snapshot"]["details"];
    assert!(own["snapshots_taken"].as_u64().unwrap() > 0, "{own}");
    assert!(own["snapshots_checked"].as_u64().unwrap() > 0, "{own}");
    assert!(
        r["consistent-cut"]["details"]["snapshots"]
            .as_u64()
            .unwrap()
            > 0
    );
    let restore = &r["restore"];
    assert_eq!(restore["valid"], true, "{restore:#}");
    assert_eq!(restore["details"]["total"], own["total"], "{restore:#}");
    assert_eq!(restore["details"]["accounts"], 8, "{restore:#}");
    assert_no_processes_under(&run.join("restore/work"));
    // The restored cluster was real: its participants started from the parts.
    for n in ["n2", "n3"] {
        let log = run.join(format!("restore/work/{n}/log/twopc.log"));
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(log.contains("restored a snapshot part"), "{n}: {log}");
    }
}

#[test]
fn recovery_from_kills_during_commit_is_valid() {
    let (code, out, run) = run(
        "twopc-recovery",
        "recovery",
        &[
            "--time-limit",
            "10",
            "--rate",
            "150",
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "1",
            "--seed",
            "13",
        ],
    );
    let r = all_valid(code, &out, &run, "recovery");
    let own = &r["twopc-recovery"]["details"];
    assert!(own["crashes_during_commit"].as_u64().unwrap() > 0, "{own}");
    assert!(own["transfers_ok"].as_u64().unwrap() > 20, "{own}");
    let failed = r["recovery-line"]["details"]["failed"].as_str().unwrap();
    assert_ne!(failed, "no process", "crashes reach the recovery line");
}

/// A short run with a planted bug: invalid, with `anomaly` among the atomic-commit
/// checker's anomaly types.
fn caught(bug: &str, anomaly: &str) {
    let (code, out, run) = run(
        &format!("twopc-{bug}"),
        "bank",
        &[
            "--time-limit",
            "3",
            "--rate",
            "50",
            "--seed",
            "1",
            "--bug",
            bug,
        ],
    );
    let r = results(&run);
    assert_eq!(code, Some(1), "invalid: {out}\n{r:#}");
    assert_eq!(r["valid"], false, "{r:#}");
    let types: Vec<&str> = r["atomic-commit"]["anomaly_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(types.contains(&anomaly), "{bug}: {types:?}");
    assert!(out.contains(anomaly), "the verdict names it: {out}");
}

#[test]
fn committing_before_the_record_is_forced_is_caught() {
    caught("commit-before-log", "decision-before-log");
}

#[test]
fn voting_before_the_record_is_forced_is_caught() {
    caught("vote-before-force", "vote-before-log");
}

#[test]
fn bad_arguments_are_refused_naming_the_problem() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--workload", "register"],
            "the register workload does not run on twopc; twopc runs bank, snapshot, recovery",
        ),
        (
            &["--workload", "recovery"],
            "run it with a nemesis that includes kill",
        ),
        (
            &["--workload", "bank", "--bug", "typo"],
            "unknown --bug \"typo\" for twopc",
        ),
    ];
    for (extra, says) in cases {
        let store = store("twopc-bad-args");
        let mut args = vec![
            "test",
            "--system",
            "twopc",
            "--store",
            store.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = faultline(&args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{extra:?}: {err}");
        assert!(err.contains(says), "{extra:?}: {err}");
    }
    let store = store("twopc-bad-args");
    let out = faultline(&[
        "test",
        "--system",
        "coord",
        "--workload",
        "bank",
        "--store",
        store.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(text(&out.stderr).contains("the bank workload runs on twopc only"));
    // The controller runs the node itself: `faultline node twopc` parses its own flags.
    let out = faultline(&["node", "twopc", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("--restore"),
        "{}",
        text(&out.stdout)
    );
}

/// The disk nemesis kills some or all nodes at once and takes every write they had not
/// fsynced (the lazy filesystem under their data directories drops them), as a power cut
/// would: forced
/// records survive, nothing else may be relied on, and every checker must still pass. The
/// store fsyncs every write it relies on, so nothing unsynced should be there to lose.
#[test]
fn bank_with_nodes_losing_unsynced_writes_is_valid() {
    require_root("the lazy filesystem mounts FUSE filesystems");
    let (code, out, run) = run(
        "twopc-disk",
        "bank",
        &[
            "--time-limit",
            "12",
            "--rate",
            "60",
            "--nemesis",
            "disk",
            "--disk-faults",
            "lose-unsynced",
            "--nemesis-interval",
            "2",
            "--seed",
            "5",
        ],
    );
    let r = all_valid(code, &out, &run, "bank");
    let ops = history(&run);
    let struck: Vec<&Value> = ops
        .iter()
        .filter(|op| op["f"] == "start-disk" && op["type"] == "ok")
        .collect();
    assert!(
        struck.len() >= 2,
        "the disk nemesis struck {} times:\n{out}",
        struck.len()
    );
    for s in &struck {
        let hit = s["value"]["faults"].as_array().map_or(0, Vec::len);
        let targets = s["value"]["nodes"].as_array().map_or(0, Vec::len);
        assert!(
            hit > 0 && hit == targets,
            "each target lost its unsynced writes: {s}"
        );
    }
    let restarts = ops
        .iter()
        .filter(|op| op["f"] == "stop-disk" && op["type"] == "ok")
        .filter(|op| {
            op["value"]["restarted"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        })
        .count();
    assert!(restarts >= 2, "the struck nodes came back:\n{out}");
    assert!(
        !events(&run, "crash").is_empty(),
        "a node lost its page cache"
    );
    assert!(!events(&run, "recover").is_empty());
    let ac = &r["atomic-commit"]["details"];
    assert!(ac["txns_committed"].as_u64().unwrap() > 20, "{ac}");
}
