//! End to end on real two-phase commit: `faultline test --system twopc-postgres` runs the
//! two-phase-commit store's own coordinator (node 1) with PostgreSQL 15 servers as its
//! participants (Debian's `postgresql-15`, `max_prepared_transactions` raised), each driven
//! through PREPARE TRANSACTION / COMMIT PREPARED by `faultline node twopc-postgres` beside
//! it. The store's bank and recovery workloads run unchanged, and so do the bank checker,
//! the workload's own checks and the atomic-commit checker, on the merged event log.
//!
//! - Kills (a participant node loses its server and its process together) and partitions
//!   leave every transaction atomic and the money conserved.
//! - Coordinator crashes leave participants holding prepared transactions in doubt; the
//!   termination protocol resolves every one of them (counted from the event log).
//! - The coordinator's planted bug (deciding before its commit record is durable) is caught
//!   with PostgreSQL participants exactly as with the store's own.
//!
//! The runs share this machine's two cores, so they run one at a time.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One run at a time: each starts a coordinator and two PostgreSQL servers.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `faultline test` on a coordinator and two PostgreSQL participants; the exit code,
/// the output and the run.
fn run(name: &str, workload: &str, extra: &[&str]) -> (Option<i32>, String, PathBuf) {
    require_postgres();
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let store = store(name);
    let mut args = vec![
        "test",
        "--system",
        "twopc-postgres",
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

/// The run is valid, judged by exactly the checkers that apply to PostgreSQL participants;
/// returns the results.
fn all_valid(code: Option<i32>, out: &str, run: &Path, workload: &str) -> Value {
    let r = json(&run.join("results.json"));
    assert_eq!(code, Some(0), "{out}\n{r:#}");
    assert_eq!(r["valid"], true, "{r:#}");
    let own = format!("twopc-{workload}");
    assert_eq!(
        r["checkers"],
        serde_json::json!(["bank", own, "atomic-commit"]),
        "{r:#}"
    );
    r
}

/// The merged event log's lines.
fn events(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn count(events: &[Value], node: &str, event: &str) -> usize {
    events
        .iter()
        .filter(|e| e["node"] == node && e["event"] == event)
        .count()
}

#[test]
fn bank_transfers_stay_atomic_across_postgres_participants_under_kills_and_partitions() {
    let (code, out, run) = run(
        "bank",
        "bank",
        &[
            "--time-limit",
            "20",
            "--nemesis",
            "kill,partition",
            "--nemesis-interval",
            "3",
            "--seed",
            "5",
        ],
    );
    let r = all_valid(code, &out, &run, "bank");
    let own = &r["twopc-bank"]["details"];
    assert!(own["crashes"].as_u64().unwrap() >= 1, "{own:#}");
    assert!(own["transfers_ok"].as_u64().unwrap() > 20, "{own:#}");
    assert!(own["final_applied"].as_u64().unwrap() > 20, "{own:#}");
    let ac = &r["atomic-commit"]["details"];
    assert!(ac["txns_committed"].as_u64().unwrap() > 20, "{ac:#}");
    assert!(ac["txns_aborted"].as_u64().unwrap() >= 1, "{ac:#}");
    assert_eq!(ac["ac5_checked"], true, "a heal was recorded: {ac:#}");
    // The participants' events come from the PostgreSQL side: a yes is logged once
    // PREPARE TRANSACTION returned, and each node reported the state PostgreSQL holds.
    let ev = events(&run);
    for node in ["n2", "n3"] {
        assert!(count(&ev, node, "log") > 20, "{node} prepared transactions");
        assert!(
            count(&ev, node, "final-state") >= 1,
            "{node} reported its state"
        );
    }
    let server_logs = ["nodes/n2/postgres.log", "nodes/n3/postgres.log"];
    for log in server_logs {
        assert!(run.join(log).is_file(), "{log} collected");
    }
    assert!(
        !run.join("nodes/n1/postgres.log").exists(),
        "the coordinator runs no PostgreSQL"
    );
}

#[test]
fn prepared_transactions_in_doubt_when_the_coordinator_crashes_are_all_resolved() {
    let (code, out, run) = run(
        "in-doubt",
        "recovery",
        &[
            "--time-limit",
            "20",
            "--nemesis",
            "kill",
            "--nemesis-targets",
            "primaries",
            "--nemesis-interval",
            "2",
            "--seed",
            "2",
        ],
    );
    let r = all_valid(code, &out, &run, "recovery");
    let ev = events(&run);
    assert!(
        count(&ev, "n1", "crash") >= 2,
        "the coordinator was killed: {out}"
    );
    assert_eq!(count(&ev, "n2", "crash"), 0, "only the coordinator is hit");
    let own = &r["twopc-recovery"]["details"];
    let in_doubt = own["in_doubt_at_coordinator_crash"].as_u64().unwrap();
    let resolved = own["in_doubt_resolved_after_coordinator_crash"]
        .as_u64()
        .unwrap();
    assert!(
        in_doubt >= 1,
        "some participant held a prepared transaction when its coordinator died: {own:#}"
    );
    assert_eq!(
        resolved, in_doubt,
        "every one was settled afterwards: {own:#}"
    );
    assert_eq!(r["atomic-commit"]["details"]["ac5_checked"], true);
}

#[test]
fn a_coordinator_deciding_before_its_commit_record_is_durable_is_caught() {
    let (code, out, run) = run(
        "commit-before-log",
        "bank",
        &[
            "--time-limit",
            "6",
            "--nemesis",
            "none",
            "--bug",
            "commit-before-log",
            "--seed",
            "3",
        ],
    );
    let r = json(&run.join("results.json"));
    assert_eq!(code, Some(1), "{out}\n{r:#}");
    let ac = &r["atomic-commit"];
    assert_eq!(ac["valid"], false, "{ac:#}");
    assert_eq!(
        ac["anomaly_types"],
        serde_json::json!(["decision-before-log"])
    );
    assert!(out.contains("seed 3 revision"), "{out}");
}

#[test]
fn what_postgres_participants_cannot_do_is_refused_before_anything_starts() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--workload", "snapshot"],
            "the snapshot workload does not run on twopc-postgres; twopc-postgres runs bank, recovery",
        ),
        (
            &["--workload", "bank", "--bug", "decide-alone"],
            "known bugs are commit-before-log",
        ),
        (
            &["--workload", "bank", "--nodes", "1"],
            "2 to 9 nodes, not 1",
        ),
    ];
    for (extra, says) in cases {
        let store = store("refused");
        let mut args = vec!["test", "--system", "twopc-postgres", "--time-limit", "5"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--store", store.to_str().unwrap()]);
        let out = faultline(&args).output().unwrap();
        let err = text(&out.stderr);
        assert!(err.contains(says), "{extra:?}: {err}");
        assert_ne!(out.status.code(), Some(0), "{extra:?}");
    }
}

/// In containers of the docker backend's image (the node binary and Debian's PostgreSQL),
/// with the coordinator killed as well as participants, the bank stays atomic.
#[test]
fn bank_transfers_stay_atomic_in_docker_containers_under_kills() {
    require_docker();
    let (code, out, run) = run(
        "bank-docker",
        "bank",
        &[
            "--backend",
            "docker",
            "--time-limit",
            "15",
            "--nemesis",
            "kill",
            "--nemesis-targets",
            "primaries",
            "--nemesis-interval",
            "3",
            "--seed",
            "1",
        ],
    );
    let r = all_valid(code, &out, &run, "bank");
    assert_eq!(json(&run.join("test.json"))["args"]["backend"], "docker");
    let ac = &r["atomic-commit"]["details"];
    assert!(ac["txns_committed"].as_u64().unwrap() > 20, "{ac:#}");
    let ev = events(&run);
    for node in ["n2", "n3"] {
        assert!(count(&ev, node, "log") > 20, "{node} prepared transactions");
    }
    assert!(
        nemesis_fs(&history(&run)).iter().any(|f| f == "start-kill"),
        "kills recorded"
    );
}
