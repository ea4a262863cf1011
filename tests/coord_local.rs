//! End to end on Faultline's own coordination service: `faultline test --system coord`
//! deploys real `faultline node coord` processes on the local backend, drives the register
//! workload under partitions, kills, pauses and clock faults, and checks. A planted bug
//! (`--bug stale-sync`) is caught by the linearizability checker.

mod common;

use common::*;

fn run(name: &str, extra: &[&str]) -> (std::process::Output, std::path::PathBuf) {
    run_workload(name, "register", extra)
}

fn run_workload(
    name: &str,
    workload: &str,
    extra: &[&str],
) -> (std::process::Output, std::path::PathBuf) {
    let store = store(name);
    let mut args = vec![
        "test",
        "--system",
        "coord",
        "--workload",
        workload,
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

/// Node 3 falls behind in a partition; the leader (node 1 or 2) is killed; the partition
/// heals, so that node 3 and the one node left hold an election that node 3, lacking
/// writes the other holds, must lose. Without history in the vote (`--bug stale-leader`)
/// the highest id wins, and the writes node 3 lacks are truncated away.
const STALE_LEADER_SCRIPT: &str = r#"# the scenario of a stale leader
{"at_s": 1.5, "f": "start-partition", "value": {"grudge": {"n1": ["n3"], "n2": ["n3"], "n3": ["n1", "n2"]}}}
{"at_s": 4, "f": "start-kill", "value": {"targets": "primaries"}}
{"at_s": 4.5, "f": "stop-partition"}
{"at_s": 7, "f": "stop-kill"}
"#;

fn write_script(name: &str, text: &str) -> std::path::PathBuf {
    let dir = store(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("script.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

const SCRIPTED_LOAD: [&str; 6] = ["--time-limit", "10", "--rate", "200", "--concurrency", "10"];

/// The nemesis invokes of a run, as (f, value).
fn faults_played(run: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    history(run)
        .into_iter()
        .filter(|op| op["process"] == "nemesis" && op["type"] == "invoke")
        .map(|op| (op["f"].as_str().unwrap().to_string(), op["value"].clone()))
        .collect()
}

/// On `sequential`, whose final listings name every acknowledged create the stale leader
/// truncated away (on a register, later writes may hide a lost one from every read).
#[test]
fn a_leader_elected_without_the_newest_history_is_caught_by_a_scripted_nemesis() {
    let script = write_script("coord-stale-leader-script", STALE_LEADER_SCRIPT);
    let mut args = SCRIPTED_LOAD.to_vec();
    args.extend_from_slice(&["--nemesis-script", script.to_str().unwrap()]);
    args.extend_from_slice(&["--bug", "stale-leader"]);
    let (out, store) = run_workload("coord-stale-leader", "sequential", &args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "invalid: {stdout}\n{stderr}");
    let results = json(&run_dir(&store).join("results.json"));
    assert_eq!(results["valid"], false, "{results}");
    assert!(
        results.to_string().contains("\"kind\":\"lost\""),
        "acknowledged creates lost: {results}"
    );
}

#[test]
fn a_scripted_nemesis_runs_on_time_and_a_history_replays_its_faults() {
    let script = write_script("coord-script", STALE_LEADER_SCRIPT);
    let mut args = SCRIPTED_LOAD.to_vec();
    args.extend_from_slice(&["--nemesis-script", script.to_str().unwrap()]);
    let (out, store) = run("coord-scripted", &args);
    let shown = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "without the bug: {shown}");
    let first = run_dir(&store);
    assert_eq!(
        std::fs::read_to_string(first.join("nemesis-script.jsonl")).unwrap(),
        STALE_LEADER_SCRIPT,
        "the run keeps the script it played"
    );
    let ops = history(&first);
    let invokes: Vec<&serde_json::Value> = ops
        .iter()
        .filter(|op| op["process"] == "nemesis" && op["type"] == "invoke")
        .collect();
    let at: Vec<(&str, f64)> = invokes
        .iter()
        .map(|op| {
            (
                op["f"].as_str().unwrap(),
                op["time"].as_f64().unwrap() / 1e9,
            )
        })
        .collect();
    let due = [1.5, 4.0, 4.5, 7.0];
    for ((f, t), due_s) in at.iter().zip(due) {
        // Never early; late only by the previous fault's own work (on a loaded host).
        assert!(
            *t >= due_s && *t < due_s + 2.5,
            "{f} at {t} s, due at {due_s} s"
        );
    }
    let killed = ops
        .iter()
        .find(|op| op["f"] == "start-kill" && op["type"] == "ok")
        .expect("the kill completed");
    let node = killed["value"]["nodes"][0].as_str().unwrap();
    assert!(
        node == "n1" || node == "n2",
        "the leader, not isolated n3: {killed}"
    );

    let history = first.join("history.jsonl");
    let mut args = SCRIPTED_LOAD.to_vec();
    args.extend_from_slice(&["--nemesis-script", history.to_str().unwrap()]);
    let (out, store) = run("coord-replayed", &args);
    let shown = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "the replay: {shown}");
    assert_eq!(faults_played(&run_dir(&store)), faults_played(&first));
}

#[test]
fn bad_nemesis_scripts_are_refused_with_the_line_and_the_problem() {
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "{\"at_s\": 1, \"f\": \"start-flood\"}\n",
            &[],
            "script.jsonl:1: unknown fault op \"start-flood\"",
        ),
        (
            "{\"at_s\": 1, \"f\": \"start-kill\", \"value\": {\"nodes\": [\"n9\"]}}\n",
            &[],
            "names node \"n9\", which is not one of n1, n2, n3",
        ),
        (
            "{\"at_s\": 30, \"f\": \"start-kill\"}\n",
            &[],
            "(start-kill at 30.000 s) is not before the time limit (2.000 s)",
        ),
        (
            "{\"at_s\": 1, \"f\": \"start-kill\"}\n",
            &["--nemesis", "kill"],
            "leave out --nemesis",
        ),
    ];
    for (i, (script, extra, expected)) in cases.into_iter().enumerate() {
        let path = write_script(&format!("coord-bad-script-{i}"), script);
        let mut args = vec![
            "--time-limit",
            "2",
            "--nemesis-script",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (out, _) = run(&format!("coord-bad-script-run-{i}"), &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{script}: {err}");
        assert!(err.contains(expected), "{script}: {err}");
    }
}

/// Node 3 is cut off while the leader and a follower commit; the follower's disk then
/// loses the synced tail of its log (the cut shows: it ends inside a record), the leader
/// dies, and the partition heals. The follower and node 3 could elect each other and lose
/// what the follower had acknowledged; the follower's repaired log does not vouch for it,
/// so nothing is served until the old leader is back, and the register stays linearizable.
const LOST_TAIL_SCRIPT: &str = r#"{"at_s": 1.5, "f": "start-partition", "value": {"grudge": {"n1": ["n3"], "n2": ["n3"], "n3": ["n1", "n2"]}}}
{"at_s": 5, "f": "start-disk", "value": {"mode": "truncate-tail", "targets": "follower", "pick": 0, "bytes": 4000}}
{"at_s": 5.1, "f": "start-kill", "value": {"targets": "primaries"}}
{"at_s": 5.5, "f": "stop-partition"}
{"at_s": 5.7, "f": "stop-disk"}
{"at_s": 10, "f": "stop-kill"}
"#;

#[test]
fn a_node_whose_disk_lost_acknowledged_entries_waits_for_a_node_that_has_them() {
    let script = write_script("coord-lost-tail-script", LOST_TAIL_SCRIPT);
    let (out, store) = run(
        "coord-lost-tail",
        &[
            "--time-limit",
            "14",
            "--rate",
            "200",
            "--concurrency",
            "10",
            "--disk-faults",
            "truncate-tail",
            "--nemesis-script",
            script.to_str().unwrap(),
        ],
    );
    let shown = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let run = run_dir(&store);
    let ops = history(&run);
    let nemesis_at = |f: &str, kind: &str| {
        let op = ops
            .iter()
            .find(|op| op["f"] == f && op["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} {f}"));
        op["time"].as_u64().unwrap()
    };
    let disk = ops
        .iter()
        .find(|op| op["f"] == "start-disk" && op["type"] == "ok")
        .unwrap();
    let damaged = disk["value"]["nodes"][0].as_str().unwrap().to_string();
    assert_ne!(damaged, "n3", "a follower that had the commits: {disk}");
    let log = std::fs::read_to_string(run.join(format!("nodes/{damaged}/coord.log"))).unwrap();
    assert!(
        log.contains("recovered from a damaged disk"),
        "{damaged} saw the cut: {disk}"
    );
    // From the damaged node's restart until the old leader's, no quorum of whole logs
    // exists: nothing may be served.
    let (from, to) = (
        nemesis_at("stop-disk", "ok"),
        nemesis_at("stop-kill", "invoke"),
    );
    let served: Vec<&serde_json::Value> = ops
        .iter()
        .filter(|op| op["process"] != "nemesis" && op["type"] == "ok")
        .filter(|op| (from..to).contains(&op["time"].as_u64().unwrap()))
        .collect();
    assert!(
        served.is_empty(),
        "served without a whole quorum: {served:?}"
    );
    assert!(clients_ok(&ops) > 200, "served before and after: {shown}");
}
