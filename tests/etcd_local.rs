//! End to end on real etcd (Debian's etcd-server) on the local backend: `faultline test`
//! deploys a cluster of real processes, drives the register workload under partitions, kills
//! and pauses, heals, collects logs, tears down and checks; a deliberately broken client is
//! caught; Ctrl-C heals, tears down and checks what was recorded.

mod common;

use common::*;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[test]
fn partitions_kills_and_pauses_on_local_etcd_check_valid() {
    require_etcd();
    let store = store("valid");
    let out: Output = faultline(&[
        "test",
        "--system",
        "etcd",
        "--workload",
        "register",
        "--nodes",
        "5",
        "--time-limit",
        "12",
        "--nemesis",
        "partition,kill,pause,packet",
        "--nemesis-interval",
        "2",
        "--concurrency",
        "10",
        "--rate",
        "100",
        "--seed",
        "7",
        "--store",
        store.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains(": valid"), "{stdout}");
    assert!(
        stderr.contains("ops:"),
        "a progress line is printed: {stderr}"
    );

    let run = run_dir(&store);
    let test = json(&run.join("test.json"));
    assert_eq!(test["seed"], 7);
    assert!(
        test["revision"].as_str().is_some_and(|r| r.len() >= 7),
        "{test}"
    );
    assert!(
        test["system_version"].as_str().unwrap().contains("3.4"),
        "{test}"
    );
    let results = json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{results}");
    assert_eq!(results["seed"], 7);

    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for class in ["partition", "kill", "pause", "packet"] {
        assert!(
            fs.contains(&format!("start-{class}")),
            "{class} started: {fs:?}"
        );
        assert!(
            fs.contains(&format!("stop-{class}")),
            "{class} stopped: {fs:?}"
        );
    }
    assert_eq!(
        fs.last().map(String::as_str),
        Some("stop-all"),
        "all faults heal: {fs:?}"
    );
    let kill = ops
        .iter()
        .find(|op| op["f"] == "start-kill" && op["type"] == "ok")
        .unwrap();
    assert!(
        kill["value"]["nodes"].as_array().is_some(),
        "the nemesis says whom it killed: {kill}"
    );
    let clients_ok = clients_ok(&ops);
    assert!(clients_ok > 100, "clients made progress: {clients_ok} ok");

    for n in 1..=5 {
        let log = run.join(format!("nodes/n{n}/etcd.log"));
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0, "{} collected", log.display());
    }
    assert!(
        logs_say(&run, 5, "lost TCP streaming connection"),
        "partitions really cut etcd's peer links"
    );
    let own_log = std::fs::read_to_string(run.join("faultline.log")).unwrap();
    assert!(own_log.contains("seed 7"), "{own_log}");
    assert_no_members_left(&run);

    // Re-checking the stored run gives the same verdict.
    let again = faultline(&["analyze", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
}

#[test]
fn a_client_serving_stale_reads_is_caught_with_an_explanation() {
    require_etcd();
    let store = store("stale");
    let out = faultline(&[
        "test",
        "--system",
        "etcd",
        "--workload",
        "register",
        "--nodes",
        "3",
        "--time-limit",
        "6",
        "--client-bug",
        "stale-cache",
        "--concurrency",
        "10",
        "--rate",
        "200",
        "--seed",
        "3",
        "--store",
        store.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("INVALID"), "{stdout}");
    assert!(
        stdout.contains("cannot be linearized"),
        "an explanation: {stdout}"
    );
    assert!(
        stdout.contains("seed 3 revision"),
        "the failure names its seed: {stdout}"
    );
    let run = run_dir(&store);
    assert_eq!(json(&run.join("results.json"))["valid"], false);
    assert!(run.join("report.html").is_file());
    let again = faultline(&["analyze", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "analyze agrees");
}

#[test]
fn ctrl_c_heals_tears_down_and_checks_what_was_recorded() {
    require_etcd();
    let store = store("interrupt");
    let child = faultline(&[
        "test",
        "--system",
        "etcd",
        "--workload",
        "register",
        "--nodes",
        "3",
        "--time-limit",
        "600",
        "--nemesis",
        "partition,pause",
        "--nemesis-interval",
        "1",
        "--seed",
        "5",
        "--store",
        store.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until the workload runs (the history grows), then interrupt.
    let started = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let run = store.join("latest");
        let ops = std::fs::read_to_string(run.join("history.jsonl")).unwrap_or_default();
        if ops.contains("start-p") && ops.lines().count() > 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the workload never started"
        );
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    let run = run_dir(&store);
    let fs = nemesis_fs(&history(&run));
    assert_eq!(
        fs.last().map(String::as_str),
        Some("stop-all"),
        "healed on the record: {fs:?}"
    );
    assert_eq!(json(&run.join("results.json"))["valid"], true);
    assert_no_members_left(&run);
}

#[test]
fn bad_arguments_and_impossible_faults_are_refused_by_name() {
    let store = store("bad");
    let s = store.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "test",
                "--system",
                "nosuch",
                "--workload",
                "register",
                "--store",
                s,
            ],
            "unknown system \"nosuch\"",
        ),
        (
            &[
                "test",
                "--system",
                "etcd",
                "--workload",
                "no-such-workload",
                "--store",
                s,
            ],
            "unknown workload \"no-such-workload\"",
        ),
        (
            &[
                "test",
                "--system",
                "etcd",
                "--workload",
                "bank",
                "--store",
                s,
            ],
            "the bank workload runs on",
        ),
        (
            &[
                "test",
                "--system",
                "etcd",
                "--workload",
                "register",
                "--nemesis",
                "meteor",
                "--store",
                s,
            ],
            "unknown fault class \"meteor\"",
        ),
        (
            &[
                "test",
                "--system",
                "etcd",
                "--workload",
                "register",
                "--rate",
                "0",
                "--store",
                s,
            ],
            "--rate",
        ),
        (
            &[
                "test",
                "--system",
                "etcd",
                "--workload",
                "register",
                "--backend",
                "ssh",
                "--store",
                s,
            ],
            "--node HOST",
        ),
    ];
    for (args, says) in cases {
        let out = faultline(args).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{args:?}: {stderr}");
        assert!(
            stderr.contains(says),
            "{args:?} should say {says:?}: {stderr}"
        );
    }
    require_etcd();
    let out = faultline(&[
        "test",
        "--system",
        "etcd",
        "--workload",
        "register",
        "--nodes",
        "3",
        "--nemesis",
        "clock",
        "--store",
        s,
    ])
    .output()
    .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(254), "{stderr}");
    assert!(
        stderr.contains("libfaketime"),
        "the refusal says why: {stderr}"
    );
    let out = faultline(&["analyze", "/nonexistent/run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(text(&out.stderr).contains("not a run directory"));
}

#[test]
fn netns_run_with_iptables_partitions_checks_valid() {
    require_etcd();
    require_root("the netns backend creates network namespaces and iptables rules");
    let store = store("netns");
    let out = faultline(&[
        "test",
        "--system",
        "etcd",
        "--workload",
        "register",
        "--backend",
        "netns",
        "--nodes",
        "3",
        "--time-limit",
        "10",
        "--nemesis",
        "partition,kill",
        "--nemesis-interval",
        "2",
        "--seed",
        "4",
        "--store",
        store.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let pid = out.id();
    let out = out.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let run = run_dir(&store);
    let test = json(&run.join("test.json"));
    let ip = test["nodes"][0]["ip"].as_str().unwrap();
    assert!(
        ip.starts_with("10."),
        "nodes have their own namespace addresses: {ip}"
    );
    let fs = nemesis_fs(&history(&run));
    assert!(fs.contains(&"start-partition".to_string()), "{fs:?}");
    assert!(
        logs_say(&run, 3, "lost TCP streaming connection"),
        "iptables partitions really cut etcd's peer links"
    );
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !text(&namespaces.stdout).contains(&format!("faultline-{pid}")),
        "namespaces are removed"
    );
    assert_no_members_left(&run);
}
