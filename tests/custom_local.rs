//! End to end on a system Faultline does not know: the example register in
//! `examples/pyregister/` (Python, the generic JSON-lines client protocol), described by its
//! system file alone. It stays linearizable under kills, pauses and lost unsynced writes,
//! whether it speaks the protocol over TCP or its own text protocol through a client process
//! per worker (`stdio.toml`); its planted stale reads are caught; a client process that
//! answers garbage gives `info` ops that say so; bad system files and pairings are refused
//! by name.
//!
//! The transactional example, `examples/pytxn/` (Python too), runs list-append,
//! rw-register and bank through the same protocol, judged at the isolation level
//! `--isolation` claims: valid under kills and pauses, and its planted aborted reads (a
//! transaction answered `fail` after it was applied) caught as G1a even at read committed.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn example(file: &str) -> String {
    example_in("pyregister", file)
}

fn example_in(dir: &str, file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(dir)
        .join(file)
        .display()
        .to_string()
}

/// Runs `faultline test` on the transactional example's `system_file` with `workload` at
/// `isolation`; the exit code, the output and the results.
fn run_txn(
    name: &str,
    system_file: &str,
    workload: &str,
    isolation: &str,
    extra: &[&str],
) -> (Option<i32>, String, serde_json::Value) {
    require_tool("python3", "python3");
    let store = store(name);
    let system = example_in("pytxn", system_file);
    let mut args = vec![
        "test",
        "--system",
        &system,
        "--workload",
        workload,
        "--isolation",
        isolation,
        "--nodes",
        "1",
        "--concurrency",
        "5",
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = faultline(&args).output().unwrap();
    let text = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    let run = run_dir(&store);
    assert_no_processes_under(&run.join("work"));
    (out.status.code(), text, json(&run.join("results.json")))
}

/// Runs `faultline test` on the example; the exit code, the output and the run dir.
fn run(name: &str, system_file: &str, extra: &[&str]) -> (Option<i32>, String, PathBuf) {
    require_tool("python3", "python3");
    let store = store(name);
    let system = example(system_file);
    let mut args = vec![
        "test",
        "--system",
        &system,
        "--workload",
        "register",
        "--nodes",
        "1",
        "--rate",
        "100",
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = faultline(&args).output().unwrap();
    let text = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    (out.status.code(), text, run_dir(&store))
}

#[test]
fn the_example_register_is_linearizable_under_kills_and_pauses() {
    let (code, out, run) = run(
        "custom-valid",
        "system.toml",
        &[
            "--time-limit",
            "8",
            "--nemesis",
            "kill,pause",
            "--nemesis-interval",
            "1",
            "--seed",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let r = json(&run.join("results.json"));
    assert_eq!(r["valid"], true, "{r:#}");
    assert!(
        run.starts_with(run.parent().unwrap())
            && run.parent().unwrap().ends_with("pyregister-register")
    );
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for f in ["start-kill", "start-pause"] {
        assert!(fs.contains(&f.to_string()), "{f}: {fs:?}");
    }
    let ok_reads = ops
        .iter()
        .filter(|op| op["f"] == "read" && op["type"] == "ok" && op["value"][1].is_number())
        .count();
    assert!(ok_reads > 20, "reads saw written values: {ok_reads}");
    assert!(clients_ok(&ops) > 100, "{out}");
    // What the server printed is collected, and the report is written.
    assert!(run.join("nodes/n1/system.log").is_file());
    assert!(run.join("report.html").is_file());
}

#[test]
fn a_client_process_per_worker_carries_the_operations_through_kills_and_pauses() {
    let (code, out, run) = run(
        "custom-stdio",
        "stdio.toml",
        &[
            "--time-limit",
            "8",
            "--nemesis",
            "kill,pause",
            "--nemesis-interval",
            "1",
            "--seed",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let r = json(&run.join("results.json"));
    assert_eq!(r["valid"], true, "{r:#}");
    assert!(run.parent().unwrap().ends_with("pyregister-stdio-register"));
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for f in ["start-kill", "start-pause"] {
        assert!(fs.contains(&f.to_string()), "{f}: {fs:?}");
    }
    assert!(clients_ok(&ops) > 100, "{out}");
    // The server speaks only its text protocol here, so every answer came through
    // client.py; it alone words a refused cas this way (the server's own JSON says
    // "cas mismatch").
    let mismatches = ops
        .iter()
        .filter(|op| {
            op["f"] == "cas"
                && op["type"] == "fail"
                && op["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("cas mismatch: holds "))
        })
        .count();
    assert!(mismatches > 0, "no cas refused by client.py: {out}");
    // Each worker's processes wrote their stderr into the run, and the pauses' timeouts
    // (info) replaced some of them.
    let mut starts = 0;
    for w in 0..10 {
        let log = run.join(format!("clients/worker-{w}.log"));
        let text =
            std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        assert!(
            text.contains(&format!("client.py for worker {w}, server 127.")),
            "{text}"
        );
        starts += text.matches("--- faultline: client process ").count();
    }
    assert!(starts > 10, "no worker's client process was ever restarted");
}

#[test]
fn a_client_process_that_answers_garbage_gives_info_ops_that_say_so() {
    require_tool("python3", "python3");
    let store = store("custom-garbage");
    std::fs::create_dir_all(&store).unwrap();
    let system = store.join("garbage.toml");
    std::fs::write(
        &system,
        format!(
            "name = \"garbage\"\n\
             start = \"python3 {} --listen {{ip}}:{{client_port}} --data {{data}}\"\n\
             client_port = 7700\nworkloads = [\"register\"]\nmax_nodes = 1\n\
             [client]\ncommand = \"while read -r line; do echo 'no answer here'; done\"\n",
            example("server.py")
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut child = faultline(&[
        "test",
        "--system",
        system.to_str().unwrap(),
        "--workload",
        "register",
        "--nodes",
        "1",
        "--time-limit",
        "3",
        "--store",
        store.to_str().unwrap(),
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // A client that never answers sensibly must cost timeouts at worst, never the run.
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("faultline test still runs after 120 s against a garbage client");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let output = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(!output.contains("panicked"), "{output}");
    let ops = history(&run_dir(&store));
    let completions: Vec<_> = ops
        .iter()
        .filter(|op| op["process"].is_u64() && op["type"] != "invoke")
        .collect();
    assert!(completions.len() > 20, "{output}");
    for op in &completions {
        assert_eq!(op["type"], "info", "{op}");
        let error = op["error"].as_str().unwrap_or("");
        assert!(
            error.starts_with("a response that is not JSON") && error.contains("no answer here"),
            "{op}"
        );
    }
    // Nothing took effect as far as anyone knows: the run is not judged invalid for it.
    assert_eq!(out.status.code(), Some(0), "{output}");
}

#[test]
fn the_example_survives_losing_unsynced_writes() {
    require_root("the lazy filesystem mounts FUSE filesystems");
    let (code, out, run) = run(
        "custom-disk",
        "system.toml",
        &[
            "--time-limit",
            "8",
            "--nemesis",
            "disk",
            "--disk-faults",
            "lose-unsynced",
            "--nemesis-interval",
            "1",
            "--seed",
            "3",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let struck = history(&run)
        .iter()
        .filter(|op| op["f"] == "start-disk" && op["type"] == "ok")
        .count();
    assert!(struck >= 2, "the disk nemesis struck {struck} times: {out}");
}

#[test]
fn planted_stale_reads_are_caught() {
    let (code, out, run) = run(
        "custom-stale",
        "stale.toml",
        &["--time-limit", "6", "--seed", "1"],
    );
    assert_eq!(code, Some(1), "{out}");
    let r = json(&run.join("results.json"));
    assert_eq!(r["valid"], false, "{r:#}");
    assert_eq!(r["checker"], "linearizable");
    assert!(
        out.contains("can't read"),
        "the explanation names the impossible read: {out}"
    );
}

#[test]
fn bad_system_files_and_pairings_are_refused_by_name() {
    let store = store("custom-bad");
    std::fs::create_dir_all(&store).unwrap();
    let broken = store.join("broken.toml");
    std::fs::write(
        &broken,
        "name = \"b\"\nclient_port = 1\nworkloads = [\"register\"]\n",
    )
    .unwrap();
    let system = example("system.toml");
    let txn_system = example_in("pytxn", "system.toml");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec![
                "--system",
                "/nonexistent/sys.toml",
                "--workload",
                "register",
            ],
            "cannot read /nonexistent/sys.toml".into(),
        ),
        (
            vec![
                "--system",
                broken.to_str().unwrap(),
                "--workload",
                "register",
            ],
            "missing field `start`".into(),
        ),
        (
            vec!["--system", &system, "--workload", "bank"],
            "pyregister runs register, not \"bank\"".into(),
        ),
        (
            vec!["--system", &txn_system, "--workload", "list-append"],
            "the list-append workload on".into(),
        ),
        (
            vec![
                "--system",
                &system,
                "--workload",
                "register",
                "--isolation",
                "serializable",
            ],
            "not".into(),
        ),
        (
            vec!["--system", "mongodb", "--workload", "register"],
            "or a system file (a path ending in .toml)".into(),
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["test"];
        all.extend(args.iter());
        all.extend(["--store", store.to_str().unwrap()]);
        let out = faultline(&all).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{args:?}: {err}");
        assert!(err.contains(&want), "{args:?}: {err}");
        if args[1].ends_with("broken.toml") {
            assert!(
                err.contains(&format!("{}: ", broken.display())),
                "the file is named: {err}"
            );
        }
    }
    // Three nodes of a one-node system: refused before anything starts.
    let out = faultline(&[
        "test",
        "--system",
        &system,
        "--workload",
        "register",
        "--nodes",
        "3",
        "--store",
        store.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(254), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("runs 1 to 1 nodes, not 3"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_transactional_example_is_serializable_under_kills_and_pauses_for_every_workload() {
    for (workload, checker) in [
        ("list-append", "list-append"),
        ("rw-register", "rw-register"),
        ("bank", "bank"),
    ] {
        let (code, out, r) = run_txn(
            &format!("pytxn-{workload}"),
            "system.toml",
            workload,
            "serializable",
            &[
                "--time-limit",
                "8",
                "--nemesis",
                "kill,pause",
                "--seed",
                "1",
            ],
        );
        assert_eq!(code, Some(0), "{workload}: {out}\n{r:#}");
        assert_eq!(r["valid"], true, "{workload}: {r:#}");
        assert_eq!(r["checker"], checker, "{workload}: {r:#}");
        assert_eq!(r["isolation"], "serializable");
        assert_eq!(
            r["anomaly_types"],
            serde_json::json!([]),
            "{workload}: {r:#}"
        );
        let ok = r[checker]["details"]["ops_ok"].as_u64().unwrap();
        assert!(ok > 50, "{workload}: {ok} operations succeeded: {r:#}");
    }
}

#[test]
fn a_transaction_answered_fail_after_it_was_applied_is_caught_as_an_aborted_read() {
    let (code, out, r) = run_txn(
        "pytxn-aborted-reads",
        "aborted-reads.toml",
        "list-append",
        "read-committed",
        &["--time-limit", "6", "--nemesis", "none", "--seed", "1"],
    );
    assert_eq!(code, Some(1), "{out}\n{r:#}");
    assert_eq!(r["valid"], false, "{r:#}");
    let types: Vec<&str> = r["anomaly_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(types.contains(&"G1a"), "{types:?}");
    assert!(
        out.contains("which failed"),
        "the explanation names the failed writer: {out}"
    );
}
