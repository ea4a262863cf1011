//! End to end on Faultline's own coordination service: `faultline test --system coord`
//! deploys real `faultline node coord` processes on the local backend, drives the register
//! workload under partitions, kills, pauses and clock faults, and checks. A planted bug
//! (`--bug stale-sync`) is caught by the linearizability checker.

mod common;

use common::*;

fn run(name: &str, extra: &[&str]) -> (std::process::Output, std::path::PathBuf) {
    let store = store(name);
    let mut args = vec![
        "test",
        "--system",
        "coord",
        "--workload",
        "register",
        "--store",
        store.to_str().unwrap(),
    ];
    if !extra.contains(&"--nodes") {
        args.extend_from_slice(&["--nodes", "3"]);
    }
    args.extend_from_slice(extra);
    let out = faultline(&args).output().unwrap();
    (out, store)
}

#[test]
fn coord_under_partitions_kills_pauses_and_clock_faults_checks_valid() {
    let (out, store) = run(
        "coord-valid",
        &[
            "--time-limit",
            "12",
            "--nemesis",
            "partition,kill,pause,clock",
            "--nemesis-interval",
            "1",
            "--rate",
            "200",
            "--seed",
            "3",
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let run = run_dir(&store);
    let results = json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{results}");
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for class in ["partition", "kill", "pause", "clock"] {
        assert!(
            fs.contains(&format!("start-{class}")),
            "{class} started: {fs:?}"
        );
    }
    let clock = ops
        .iter()
        .find(|op| op["f"] == "start-clock" && op["type"] == "ok")
        .expect("a clock fault completed");
    assert!(!clock["value"].is_null(), "it says what it did: {clock}");
    assert!(
        clients_ok(&ops) > 200,
        "clients made progress: {}",
        clients_ok(&ops)
    );
    // Killed nodes were restarted from their disks: some node's log shows two starts.
    let restarts = (1..=3)
        .map(|n| std::fs::read_to_string(run.join(format!("nodes/n{n}/coord.log"))).unwrap())
        .map(|log| log.matches("starting").count())
        .max()
        .unwrap();
    assert!(restarts >= 2, "a killed node restarted");
}

#[test]
fn answering_sync_without_the_leader_is_caught() {
    let (out, store) = run(
        "coord-stale-sync",
        &[
            "--time-limit",
            "30",
            "--rate",
            "300",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "1",
            "--bug",
            "stale-sync",
            "--seed",
            "2",
        ],
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "invalid: stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("Invalid (seed 2, revision"),
        "the failure names the seed: {stderr}"
    );
    let results = json(&run_dir(&store).join("results.json"));
    assert_eq!(results["valid"], false, "{results}");
}

#[test]
fn bugs_are_refused_where_they_do_not_exist() {
    let (out, _) = run("coord-bad-bug", &["--bug", "typo"]);
    assert_eq!(out.status.code(), Some(254));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown --bug \"typo\" for coord") && err.contains("stale-sync"),
        "{err}"
    );
    let store = store("etcd-bug");
    let out = faultline(&[
        "test",
        "--system",
        "etcd",
        "--workload",
        "register",
        "--bug",
        "stale-sync",
        "--store",
        store.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(
        text(&out.stderr).contains("etcd has no planted bugs"),
        "{}",
        text(&out.stderr)
    );
}

/// A run of the register that the planted bug must make invalid within 60 s.
fn bug_run(name: &str, extra: &[&str]) {
    let (out, store) = run(name, extra);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "invalid: stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let results = json(&run_dir(&store).join("results.json"));
    assert_eq!(results["valid"], false, "{results}");
}

#[test]
fn acknowledging_before_fsync_loses_writes_on_a_slow_disk() {
    require_root("the lazy filesystem mounts FUSE");
    bug_run(
        "coord-ack-before-fsync",
        &[
            "--time-limit",
            "60",
            "--rate",
            "300",
            "--concurrency",
            "20",
            "--nemesis",
            "disk",
            "--disk-faults",
            "lose-unsynced",
            "--disk-sync-delay-ms",
            "100",
            "--nemesis-interval",
            "1",
            "--bug",
            "ack-before-fsync",
            "--seed",
            "21",
        ],
    );
}
