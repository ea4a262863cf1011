//! End to end on Faultline's replicated database: `faultline test --system repdb` deploys
//! three real `faultline node repdb` processes on the local backend (peer links through
//! proxies, so partitions need no root), drives list-append or rw-register transactions
//! against every replica under partitions, kills, pauses, clock and disk faults, reads every
//! replica's apply log back after healing, and judges the run by the transactional checker
//! at the model the replication mode claims, by `one-copy` on the apply logs, and by
//! convergence. The eager modes are valid; lazy replication and the planted bugs are caught,
//! named in `results.json`.
//!
//! The runs share this machine's two cores, so they run one at a time.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One run at a time: each deploys three replicas that must answer within their timeouts.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `faultline test` on three repdb replicas; the exit code, the output and the run dir.
fn run(name: &str, workload: &str, extra: &[&str]) -> (Option<i32>, String, PathBuf) {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let store = store(name);
    let mut args = vec![
        "test",
        "--system",
        "repdb",
        "--workload",
        workload,
        "--nodes",
        "3",
        "--rate",
        "100",
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

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Every checker ran and is valid, the replicas settled and converged, and at least
/// `commits` transactions that write committed; returns the results.
fn all_valid(code: Option<i32>, out: &str, run: &Path, workload: &str, commits: u64) -> Value {
    let r = results(run);
    assert_eq!(code, Some(0), "{out}\n{r:#}");
    assert_eq!(r["valid"], true, "{r:#}");
    assert_eq!(
        strings(&r["checkers"]),
        [workload, "one-copy", "convergence"],
        "{r:#}"
    );
    for checker in [workload, "one-copy", "convergence"] {
        assert_eq!(r[checker]["valid"], true, "{checker}: {:#}", r[checker]);
    }
    let committed = r["txns"]["committed_writes"].as_u64().unwrap();
    assert!(
        committed > commits,
        "only {committed} commits: {:#}",
        r["txns"]
    );
    let answered = r["txns"]["answered_by"].as_object().unwrap();
    assert_eq!(answered.len(), 3, "every replica answered: {answered:?}");
    assert_eq!(r["convergence"]["details"]["settled"], true, "{r:#}");
    let one_copy = &r["one-copy"]["details"];
    assert_eq!(one_copy["finished_replicas"], 3, "{one_copy}");
    assert!(
        one_copy["common_order_length"].as_u64().unwrap() >= committed,
        "every committed transaction is in the common order: {one_copy}"
    );
    r
}

/// The nemesis struck with each of `classes` (`start-<class>` completed ok).
fn assert_struck(run: &Path, classes: &[&str]) {
    let fs = nemesis_fs(&history(run));
    for class in classes {
        let f = format!("start-{class}");
        assert!(fs.contains(&f), "no {f}: {fs:?}");
    }
}

#[test]
fn certification_is_serializable_and_one_copy_under_partitions_kills_and_pauses() {
    let (code, out, run) = run(
        "repdb-certification",
        "list-append",
        &[
            "--replication",
            "certification",
            "--time-limit",
            "10",
            "--nemesis",
            "partition,kill,pause",
            "--nemesis-interval",
            "2",
            "--seed",
            "1",
        ],
    );
    let r = all_valid(code, &out, &run, "list-append", 50);
    assert_eq!(r["replication"]["checked_as"], "serializable", "{r:#}");
    assert_struck(&run, &["partition", "kill", "pause"]);
    // Faults made some outcomes unknown; certification aborted some conflicts.
    let completions = &r["txns"]["completions"];
    assert!(completions["info"].as_u64().unwrap() > 0, "{completions}");
    // The stored run re-checks the same way, and its files check on their own.
    let again = faultline(&["analyze", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    let apply_logs = run.join("apply-logs.jsonl");
    let txns = run.join("txns.jsonl");
    let out = faultline(&[
        "check",
        "--checker",
        "one-copy",
        "--apply-logs",
        apply_logs.to_str().unwrap(),
        txns.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Each completion names the replica that answered; writes name their transaction.
    let ops = history(&run);
    let ok_writes = ops
        .iter()
        .filter(|op| op["f"] == "txn" && op["type"] == "ok" && op.get("txn-id").is_some())
        .count();
    assert!(ok_writes > 50, "{ok_writes}");
    assert!(ops
        .iter()
        .filter(|op| op["f"] == "txn" && op["type"] != "invoke")
        .all(|op| op["node"].is_string()));
}

#[test]
fn certification_without_read_sets_is_snapshot_isolated() {
    let (code, out, run) = run(
        "repdb-si",
        "rw-register",
        &[
            "--replication",
            "certification",
            "--no-read-sets",
            "--time-limit",
            "10",
            "--nemesis",
            "partition,kill",
            "--nemesis-interval",
            "2",
            "--seed",
            "2",
        ],
    );
    let r = all_valid(code, &out, &run, "rw-register", 50);
    assert_eq!(r["replication"]["checked_as"], "snapshot-isolation");
    assert_eq!(r["replication"]["read_sets"], false);
    assert_struck(&run, &["partition", "kill"]);
}

#[test]
fn weak_voting_is_serializable_under_kills_pauses_and_clock_faults() {
    let (code, out, run) = run(
        "repdb-weak-voting",
        "list-append",
        &[
            "--replication",
            "weak-voting",
            "--time-limit",
            "10",
            "--nemesis",
            "kill,pause,clock",
            "--nemesis-interval",
            "2",
            "--seed",
            "3",
        ],
    );
    all_valid(code, &out, &run, "list-append", 50);
    assert_struck(&run, &["kill", "pause", "clock"]);
}

#[test]
fn primary_copy_is_serializable_under_partitions_and_kills() {
    let (code, out, run) = run(
        "repdb-primary-copy",
        "rw-register",
        &[
            "--replication",
            "primary-copy",
            "--time-limit",
            "10",
            "--nemesis",
            "partition,kill",
            "--nemesis-interval",
            "2",
            "--seed",
            "4",
        ],
    );
    all_valid(code, &out, &run, "rw-register", 50);
    assert_struck(&run, &["partition", "kill"]);
}

/// Active replication: every replica executes each whole transaction in delivery order, so
/// the replicas need not agree on anything but the order, and clock skew at one of them
/// changes nothing.
#[test]
fn active_replication_is_serializable_under_partitions_kills_pauses_and_clock_faults() {
    let (code, out, run) = run(
        "repdb-active",
        "list-append",
        &[
            "--replication",
            "active",
            "--time-limit",
            "10",
            "--nemesis",
            "partition,kill,pause,clock",
            "--nemesis-interval",
            "2",
            "--seed",
            "6",
        ],
    );
    let r = all_valid(code, &out, &run, "list-append", 50);
    assert_eq!(r["replication"]["mode"], "active", "{r:#}");
    assert_eq!(r["replication"]["checked_as"], "serializable", "{r:#}");
    assert_struck(&run, &["partition", "kill", "pause", "clock"]);
}

/// The disk nemesis kills replicas and damages what they kept: writes never fsynced are
/// lost (one, a minority, a majority or all at once, as a power cut would), or one
/// replica's newest log loses or garbles its tail. A replica acknowledges a proposal only
/// once it is forced, recovers from what its log holds, and catches up from the others, so
/// the run stays serializable, one-copy and convergent.
#[test]
fn certification_survives_lost_unsynced_writes_and_damaged_log_tails() {
    require_root("the lazy filesystem mounts FUSE filesystems");
    let (code, out, run) = run(
        "repdb-disk",
        "list-append",
        &[
            "--replication",
            "certification",
            "--time-limit",
            "14",
            "--nemesis",
            "disk",
            "--nemesis-interval",
            "2",
            "--seed",
            "8",
        ],
    );
    all_valid(code, &out, &run, "list-append", 30);
    let ops = history(&run);
    let modes: Vec<String> = ops
        .iter()
        .filter(|op| op["f"] == "start-disk" && op["type"] == "ok")
        .filter_map(|op| op["value"]["mode"].as_str().map(str::to_string))
        .collect();
    assert!(
        modes.len() >= 3,
        "the disk nemesis struck: {modes:?}\n{out}"
    );
    assert!(
        modes.iter().any(|m| m == "lose-unsynced"),
        "writes were lost: {modes:?}"
    );
    assert!(
        modes.iter().any(|m| m != "lose-unsynced"),
        "a log tail was damaged: {modes:?}"
    );
    let restarted = ops
        .iter()
        .filter(|op| op["f"] == "stop-disk" && op["type"] == "ok")
        .any(|op| {
            op["value"]["restarted"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        });
    assert!(restarted, "the struck replicas came back:\n{out}");
}

/// A short run without faults: invalid, with `one_copy` among one-copy's anomaly types and
/// `txn` among the list-append checker's; both replicas' logs and states differ.
fn caught(name: &str, extra: &[&str], one_copy: &str, txn: &str) {
    let mut args = vec!["--time-limit", "5", "--seed", "1"];
    args.extend_from_slice(extra);
    let (code, out, run) = run(name, "list-append", &args);
    let r = results(&run);
    assert_eq!(code, Some(1), "invalid: {out}\n{r:#}");
    assert_eq!(r["valid"], false, "{r:#}");
    let types = strings(&r["one-copy"]["anomaly_types"]);
    assert!(types.contains(&one_copy.to_string()), "{name}: {types:?}");
    let types = strings(&r["list-append"]["anomaly_types"]);
    assert!(types.contains(&txn.to_string()), "{name}: {types:?}");
    assert_eq!(r["convergence"]["valid"], false, "{:#}", r["convergence"]);
    assert!(strings(&r["anomaly_types"]).contains(&"unequal-apply-logs".to_string()));
    assert!(out.contains(one_copy), "the verdict names it: {out}");
}

/// Lazy replication commits at one replica and propagates afterwards: replicas apply
/// concurrent appends in different orders, and reads at different replicas see lists that
/// cannot be states of one list.
#[test]
fn lazy_replication_is_caught() {
    caught(
        "repdb-lazy",
        &["--replication", "lazy"],
        "divergent-apply-order",
        "incompatible-order",
    );
}

/// The delegate applies its own transactions before the total order delivers them.
#[test]
fn applying_before_delivery_is_caught() {
    caught(
        "repdb-apply-before-delivery",
        &["--bug", "apply-before-delivery"],
        "divergent-apply-order",
        "incompatible-order",
    );
}

/// Each replica aborts some transactions that passed certification on a draw of its own.
#[test]
fn nondeterministic_certification_is_caught() {
    caught(
        "repdb-nondeterministic-certification",
        &["--bug", "nondeterministic-certification"],
        "divergent-apply-order",
        "incompatible-order",
    );
}

#[test]
fn bad_arguments_are_refused_naming_the_problem() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--system", "repdb", "--workload", "bank"],
            "the bank workload does not run on repdb; repdb runs list-append, rw-register",
        ),
        (
            &["--system", "repdb", "--workload", "register"],
            "the register workload does not run on repdb",
        ),
        (
            &[
                "--system",
                "repdb",
                "--workload",
                "list-append",
                "--replication",
                "eager",
            ],
            "unknown replication mode \"eager\"",
        ),
        (
            &[
                "--system",
                "repdb",
                "--workload",
                "rw-register",
                "--replication",
                "active",
                "--no-read-sets",
            ],
            "--no-read-sets applies to certification and weak-voting, not active",
        ),
        (
            &[
                "--system",
                "repdb",
                "--workload",
                "list-append",
                "--bug",
                "typo",
            ],
            "unknown --bug \"typo\" for repdb",
        ),
        (
            &[
                "--system",
                "coord",
                "--workload",
                "lock",
                "--replication",
                "lazy",
            ],
            "--replication \"lazy\" chooses how repdb replicates; coord has no modes",
        ),
        (
            &["--system", "twopc", "--workload", "bank", "--no-read-sets"],
            "--no-read-sets is a repdb flag",
        ),
        (
            &[
                "--system",
                "repdb",
                "--workload",
                "list-append",
                "--nodes",
                "10",
            ],
            "runs 1 to 9 replicas, not 10",
        ),
    ];
    for (extra, says) in cases {
        let store = store("repdb-bad-args");
        let mut args = vec!["test", "--store", store.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = faultline(&args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{extra:?}: {err}");
        assert!(err.contains(says), "{extra:?}: {err}");
    }
    // The controller runs the node itself: `faultline node repdb` parses its own flags.
    let out = faultline(&["node", "repdb", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("--replication") && help.contains("--no-read-sets"),
        "{help}"
    );
}
