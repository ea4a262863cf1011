//! End to end on a real PostgreSQL 15 (Debian's `postgresql-15`): `faultline test --system
//! postgres` sets up one server on the local backend (initdb, run as the `postgres` user),
//! drives list-append, rw-register and bank at each isolation level, and the checkers must
//! agree with the published behaviour (Hermitage):
//!
//! - read committed: G-single, G2-item and lost updates, never G0 or G1 (valid at
//!   read-committed, invalid at serializable);
//! - repeatable read (snapshot isolation): write skew (G2-item), never G-single or lost
//!   updates; transactions refused with 40001 instead;
//! - serializable: no anomaly at all, many transactions refused with 40001 (bar a rare
//!   G2-item of PostgreSQL's own SSI bug: see [`serializable`]).
//!
//! The shapes make the anomalies certain within 10 s: four keys in play at once, one to
//! four micro-ops per transaction, ten clients as fast as the server answers (thousands of
//! transactions a run, where tens of anomalies show; the assertions ask for a few). The
//! runs share this machine's two cores, so they run one at a time.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One run at a time: each starts a server and ten busy clients.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `faultline test` on one PostgreSQL server; the exit code, the output and the run.
fn run(
    name: &str,
    workload: &str,
    isolation: &str,
    extra: &[&str],
) -> (Option<i32>, String, PathBuf) {
    require_postgres();
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let store = store(name);
    let mut args = vec![
        "test",
        "--system",
        "postgres",
        "--nodes",
        "1",
        "--workload",
        workload,
        "--isolation",
        isolation,
        "--time-limit",
        "10",
        "--concurrency",
        "10",
        "--rate",
        "1000",
        "--seed",
        "1",
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = faultline(&args).output().unwrap();
    let text = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    let run = run_dir(&store);
    assert_no_members_left(&run);
    assert!(
        !run.join("work/n1/data").exists(),
        "teardown removes the data directory"
    );
    (out.status.code(), text, run)
}

fn results(run: &Path) -> Value {
    json(&run.join("results.json"))
}

/// Every anomaly type the run found, with its count (from the search for all of them).
fn counts(r: &Value) -> Vec<(String, u64)> {
    let all = r["all-anomalies"]["anomaly_counts"].as_object().unwrap();
    let mut found: Vec<(String, u64)> = all
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    // The claimed check's own non-cycle anomalies are in the full search too.
    for t in r["anomaly_types"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        assert!(all.contains_key(t), "{t} is among all anomalies: {r:#}");
    }
    found.sort();
    found
}

fn count(found: &[(String, u64)], kind: &str) -> u64 {
    found.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| *n)
}

/// The run is valid at the model `model`, and no anomaly rules out read committed: nothing
/// of G0 or G1 (aborted or intermediate reads, circular information flow).
fn valid_at(code: Option<i32>, out: &str, r: &Value, model: &str) {
    assert_eq!(code, Some(0), "{out}\n{r:#}");
    assert_eq!(r["valid"], true, "{r:#}");
    assert_eq!(r["model"], model, "{r:#}");
    let types: Vec<&str> = r["anomaly_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        !types
            .iter()
            .any(|t| t.starts_with("G0") || t.starts_with("G1")),
        "no G0 or G1 at any level: {types:?}"
    );
    for m in ["read-uncommitted", "read-committed"] {
        for list in ["not", "also_not"] {
            assert!(
                !r[list].as_array().unwrap().iter().any(|x| x == m),
                "nothing rules out {m}: {r:#}"
            );
        }
    }
}

fn detail(r: &Value, checker: &str, key: &str) -> u64 {
    r[checker]["details"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("{checker}.details.{key}: {r:#}"))
}

/// `faultline check` on the stored history, at `models`: the exit code.
fn check_at(run: &Path, checker: &str, models: &str) -> Option<i32> {
    let history = run.join("history.jsonl");
    let mut args = vec![
        "check",
        "--checker",
        checker,
        "--consistency-models",
        models,
    ];
    if checker == "rw-register" {
        args.push("--linearizable-keys");
    }
    args.push(history.to_str().unwrap());
    faultline(&args).output().unwrap().status.code()
}

/// Read committed shows what it allows (G-single, G2-item, lost updates) and nothing it
/// forbids; the same history is invalid at serializable.
fn read_committed(workload: &str) {
    let (code, out, run) = run(
        &format!("postgres-rc-{workload}"),
        workload,
        "read-committed",
        &[],
    );
    let r = results(&run);
    valid_at(code, &out, &r, "read-committed");
    let found = counts(&r);
    let allowed: u64 = ["G-single", "G2-item", "lost-update"]
        .iter()
        .map(|k| count(&found, k))
        .sum();
    assert!(
        allowed >= 3,
        "read committed shows G-single, G2-item or lost updates (at least 3): {found:?}"
    );
    assert!(detail(&r, workload, "ops_ok") > 500, "{r:#}");
    assert_eq!(check_at(&run, workload, "serializable"), Some(1));
    assert_eq!(check_at(&run, workload, "read-committed"), Some(0));
    // The anomalies' cycles are drawn beside the results and shown in the report.
    let pictures: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cycle-") && n.ends_with(".svg"))
        .collect();
    assert!(!pictures.is_empty(), "cycle pictures in {}", run.display());
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        report.contains(&format!("<img src=\"{}\"", pictures[0])),
        "{report}"
    );
    // The stored run re-checks the same way.
    let again = faultline(&["analyze", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
}

/// Repeatable read is snapshot isolation: write skew (G2-item) shows, G-single and lost
/// updates never do, because the second writer of a row is refused with 40001.
fn repeatable_read(workload: &str, min_g2: u64) {
    let (code, out, run) = run(
        &format!("postgres-rr-{workload}"),
        workload,
        "repeatable-read",
        &[],
    );
    let r = results(&run);
    valid_at(code, &out, &r, "snapshot-isolation");
    let found = counts(&r);
    assert!(
        count(&found, "G2-item") >= min_g2,
        "repeatable read shows write skew (G2-item, at least {min_g2}): {found:?}"
    );
    for never in [
        "G-single",
        "G-single-process",
        "G-single-realtime",
        "lost-update",
    ] {
        assert_eq!(
            count(&found, never),
            0,
            "no {never} under snapshot isolation: {found:?}"
        );
    }
    assert!(
        detail(&r, workload, "serialization_failures") >= 20,
        "concurrent writers are refused with 40001: {r:#}"
    );
    assert_eq!(check_at(&run, workload, "serializable"), Some(1));
}

/// Serializable is serializable snapshot isolation: it refuses many transactions with
/// 40001 "read/write dependencies" (SSI's own refusal, which repeatable read never gives),
/// and shows nothing snapshot isolation forbids. Nor, almost always, anything at all; the
/// exception is PostgreSQL's, not ours: its SSI lets through a rare G2-item (one cycle in
/// the 5,489 committed transactions of a CI run on 15; one in 184,921 over six 60 s runs
/// of 10 to 20 clients on a development machine; Jepsen reported the same shape of upserts
/// and reads against 18.4 in 2026). See [`serializable_but_for_rare_write_skew`].
fn serializable(workload: &str) {
    let (code, out, run) = run(
        &format!("postgres-s-{workload}"),
        workload,
        "serializable",
        &[],
    );
    let r = results(&run);
    serializable_but_for_rare_write_skew(code, &out, &r, &run, workload);
    assert!(
        detail(&r, workload, "serialization_failures") >= 20,
        "serializable refuses many transactions with 40001: {r:#}"
    );
    assert!(detail(&r, workload, "ops_ok") > 500, "{r:#}");
    let ssi = history(&run)
        .iter()
        .filter(|op| op["type"] == "fail")
        .filter_map(|op| op["error"].as_str())
        .filter(|e| e.starts_with("40001") && e.contains("read/write dependencies"))
        .count();
    assert!(
        ssi >= 20,
        "{ssi} transactions failed with SSI's 40001 (read/write dependencies)"
    );
}

/// The run is valid at serializable with no anomaly at all, or shows only write skew
/// (G2-item cycles, which need two anti-dependencies and so slip past snapshot isolation),
/// and rarely: in at most one committed transaction in 500. Repeatable read, where write
/// skew is allowed, shows it in about one in 50 on the same workload.
fn serializable_but_for_rare_write_skew(
    code: Option<i32>,
    out: &str,
    r: &Value,
    run: &Path,
    workload: &str,
) {
    let found = counts(r);
    if found.is_empty() {
        valid_at(code, out, r, "serializable");
        assert_eq!(r["all-anomalies"]["valid"], true, "{r:#}");
        return;
    }
    assert_eq!(code, Some(1), "{out}");
    let others: Vec<_> = found
        .iter()
        .filter(|(k, _)| !k.starts_with("G2-item"))
        .collect();
    assert!(others.is_empty(), "only G2-item: {found:?}\n{r:#}");
    let skews = count(&found, "G2-item");
    let ok = detail(r, workload, "ops_ok");
    assert!(
        skews * 500 <= ok,
        "{skews} G2-item in {ok} committed transactions is not PostgreSQL's rare SSI lapse: {r:#}"
    );
    assert_eq!(
        check_at(run, workload, "snapshot-isolation"),
        Some(0),
        "what serializable lets through is still snapshot isolation: {r:#}"
    );
}

#[test]
fn list_append_at_read_committed_shows_g_single_g2_and_lost_updates_but_no_g0_or_g1() {
    read_committed("list-append");
}

#[test]
fn rw_register_at_read_committed_shows_g_single_g2_and_lost_updates_but_no_g0_or_g1() {
    read_committed("rw-register");
}

#[test]
fn list_append_at_repeatable_read_shows_write_skew_but_no_g_single() {
    repeatable_read("list-append", 3);
}

#[test]
fn rw_register_at_repeatable_read_shows_write_skew_but_no_g_single() {
    repeatable_read("rw-register", 3);
}

#[test]
fn list_append_at_serializable_refuses_with_40001_and_shows_at_most_rare_write_skew() {
    serializable("list-append");
}

#[test]
fn rw_register_at_serializable_refuses_with_40001_and_shows_at_most_rare_write_skew() {
    serializable("rw-register");
}

/// Read-modify-write transfers lose updates at read committed: reads see money created or
/// destroyed. Snapshot isolation refuses the second writer, and the total holds.
#[test]
fn bank_loses_money_at_read_committed_and_keeps_it_at_repeatable_read() {
    let (code, out, rc) = run("postgres-rc-bank", "bank", "read-committed", &[]);
    let r = results(&rc);
    assert_eq!(code, Some(1), "{out}\n{r:#}");
    assert_eq!(r["valid"], false);
    assert_eq!(r["checker"], "bank");
    assert!(
        r["bank"]["anomaly_counts"]["wrong-total"]
            .as_u64()
            .unwrap_or(0)
            >= 3,
        "lost updates show as wrong totals: {:#}",
        r["bank"]
    );
    assert!(out.contains("read committed allows lost updates"), "{out}");

    let (code, out, rr) = run("postgres-rr-bank", "bank", "repeatable-read", &[]);
    let r = results(&rr);
    assert_eq!(code, Some(0), "{out}\n{r:#}");
    assert_eq!(r["bank"]["valid"], true, "{r:#}");
    assert!(detail(&r, "bank", "read_count") > 100, "{r:#}");
    assert!(detail(&r, "bank", "serialization_failures") >= 10, "{r:#}");
}

/// Kills (every process of the server, as a crash) and pauses: the server recovers from its
/// WAL each time, and serializable shows nothing but PostgreSQL's own rare G2-item.
#[test]
fn serializable_under_kills_and_pauses_shows_at_most_rare_write_skew() {
    let (code, out, run) = run(
        "postgres-s-kill",
        "list-append",
        "serializable",
        &["--nemesis", "kill,pause", "--nemesis-interval", "2"],
    );
    let r = results(&run);
    serializable_but_for_rare_write_skew(code, &out, &r, &run, "list-append");
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for f in ["start-kill", "stop-kill", "start-pause", "stop-pause"] {
        assert!(fs.contains(&f.to_string()), "{f}: {fs:?}");
    }
    // Transactions commit again after the last restart.
    let last_restart = ops
        .iter()
        .rposition(|op| op["process"] == "nemesis" && op["f"] == "stop-kill" && op["type"] == "ok")
        .unwrap();
    assert!(
        ops[last_restart..]
            .iter()
            .any(|op| op["process"].is_u64() && op["type"] == "ok" && op["f"] == "txn"),
        "transactions commit after the restart"
    );
    let log = std::fs::read_to_string(run.join("nodes/n1/postgres.log")).unwrap();
    assert!(
        log.contains("database system was interrupted"),
        "the restarted server recovered from a crash"
    );
}

/// Arguments PostgreSQL runs cannot take are refused before anything starts (exit 254),
/// each naming the fix.
#[test]
fn bad_arguments_are_refused_with_the_fix() {
    require_postgres();
    let store = store("postgres-bad");
    let s = store.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--system",
                "postgres",
                "--nodes",
                "1",
                "--workload",
                "list-append",
            ],
            "needs --isolation read-committed|repeatable-read|serializable",
        ),
        (
            &[
                "--system",
                "postgres",
                "--nodes",
                "1",
                "--workload",
                "list-append",
                "--isolation",
                "snapshot",
            ],
            "unknown --isolation",
        ),
        (
            &[
                "--system",
                "etcd",
                "--nodes",
                "3",
                "--workload",
                "register",
                "--isolation",
                "serializable",
            ],
            "--isolation is an isolation level for --system postgres",
        ),
        (
            &[
                "--system",
                "postgres",
                "--nodes",
                "1",
                "--workload",
                "register",
                "--isolation",
                "serializable",
            ],
            "postgres runs list-append, rw-register, bank",
        ),
        (
            &[
                "--system",
                "etcd",
                "--nodes",
                "3",
                "--workload",
                "list-append",
            ],
            "runs on postgres",
        ),
        (
            &[
                "--system",
                "postgres",
                "--nodes",
                "3",
                "--workload",
                "bank",
                "--isolation",
                "serializable",
            ],
            "pass --nodes 1",
        ),
        (
            &[
                "--system",
                "postgres",
                "--nodes",
                "1",
                "--workload",
                "bank",
                "--isolation",
                "serializable",
                "--nemesis",
                "partition",
            ],
            "no network faults",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["test", "--time-limit", "1", "--store", s];
        all.extend_from_slice(args);
        let out = faultline(&all).output().unwrap();
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(254), "{args:?}: {said}");
        assert!(said.contains(says), "{args:?} says {says:?}: {said}");
    }
}

/// In a container of the docker backend's from-scratch image (Debian's PostgreSQL tree,
/// setpriv, pgrep, the `postgres` user), under kills and pauses of the server, read
/// committed shows what it allows and nothing it forbids, as on the local backend.
#[test]
fn in_a_docker_container_under_kills_and_pauses_read_committed_shows_what_it_allows() {
    require_docker();
    let (code, out, run) = run(
        "postgres-docker-rc",
        "list-append",
        "read-committed",
        &[
            "--backend",
            "docker",
            "--nemesis",
            "kill,pause",
            "--nemesis-interval",
            "3",
        ],
    );
    let r = results(&run);
    valid_at(code, &out, &r, "read-committed");
    assert_eq!(json(&run.join("test.json"))["args"]["backend"], "docker");
    let fs = nemesis_fs(&history(&run));
    for f in ["start-kill", "start-pause"] {
        assert!(fs.iter().any(|g| g == f), "{f} recorded: {fs:?}");
    }
    let found = counts(&r);
    let allowed = count(&found, "G-single") + count(&found, "G2-item");
    assert!(
        allowed >= 1,
        "read committed shows G-single or G2-item: {found:?}"
    );
    assert_eq!(check_at(&run, "list-append", "serializable"), Some(1));
}
