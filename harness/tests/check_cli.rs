//! `faultline check` and `faultline synth` as a user runs them: real processes, real files,
//! exit codes and output, for the linearizability, transactional and Jepsen checkers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("faultline runs")
}

fn repo(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
        .display()
        .to_string()
}

fn shared(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/histories")
        .join(rel);
    assert!(p.exists(), "missing test data: {}", p.display());
    p.display().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn bundled_example_is_valid_and_exits_0() {
    let o = faultline(&[
        "check",
        "--model",
        "cas-register",
        &repo("examples/histories/cas-register.jsonl"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(": valid (cas-register"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn stale_example_is_invalid_explained_and_exits_1() {
    let o = faultline(&[
        "check",
        "--model",
        "cas-register",
        &repo("examples/histories/cas-register-stale.jsonl"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("cannot be linearized"), "{out}");
    assert!(out.contains("concurrent op(s)"), "{out}");
    assert!(out.contains("longest linearizable prefixes"), "{out}");
}

#[test]
fn several_files_print_a_line_each_a_summary_and_the_worst_code() {
    let o = faultline(&[
        "check",
        "--model",
        "cas-register",
        &shared("porcupine/jepsen/etcd_002.log"),
        &shared("porcupine/jepsen/etcd_000.log"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("etcd_002.log: valid"), "{out}");
    assert!(lines[1].contains("etcd_000.log: INVALID"), "{out}");
    assert_eq!(
        lines[2],
        "2 files: 1 valid, 1 invalid, 0 unknown, 0 bad input"
    );
}

#[test]
fn json_output_has_the_documented_fields() {
    let o = faultline(&[
        "check",
        "--json",
        "--model",
        "cas-register",
        &shared("porcupine/jepsen/etcd_000.log"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert_eq!(v["checker"], "linearizable");
    assert_eq!(v["model"], "cas-register");
    assert_eq!(v["valid"], false);
    assert!(v["elapsed_ms"].as_f64().is_some());
    assert!(v["file"].as_str().unwrap().ends_with("etcd_000.log"));
    assert!(v["failure"]["op"]["invoke_index"].is_u64());
    assert!(!v["failure"]["prefixes"].as_array().unwrap().is_empty());
    assert!(v["explanation"]
        .as_str()
        .unwrap()
        .contains("cannot be linearized"));
}

#[test]
fn bad_input_names_file_and_line_and_exits_254() {
    let path = scratch("bad.jsonl");
    std::fs::write(
        &path,
        "{\"index\":0,\"time\":0,\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"value\":null}\n\
         {\"index\":1,\"time\":1,\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"value\":null}\n",
    )
    .unwrap();
    let o = faultline(&["check", "--model", "register", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(254));
    let out = stdout(&o);
    assert!(out.contains("bad.jsonl:2: process 0 invokes"), "{out}");
}

#[test]
fn bad_arguments_exit_254() {
    let o = faultline(&["check", "--model", "no-such-model", "x"]);
    assert_eq!(o.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown model \"no-such-model\""));
    let o = faultline(&["check", &repo("examples/histories/cas-register.jsonl")]);
    assert_eq!(
        o.status.code(),
        Some(254),
        "a missing --model is bad arguments"
    );
    let o = faultline(&["check", "--model", "register", "/no/such/file.jsonl"]);
    assert_eq!(o.status.code(), Some(254));
}

#[test]
fn time_limit_gives_unknown_and_exit_2() {
    let path = scratch("hard.jsonl");
    // Forty concurrent enqueues and a dequeue of a value nobody enqueued: exponential
    // without limits, since every order of the enqueues is a different queue.
    let mut text = String::new();
    let mut i = 0;
    let mut push = |text: &mut String, t: &str, p: u64, f: &str, v: &str| {
        text.push_str(&format!(
            "{{\"index\":{i},\"time\":{i},\"type\":\"{t}\",\"process\":{p},\"f\":\"{f}\",\"value\":{v}}}\n"
        ));
        i += 1;
    };
    for p in 0..40 {
        push(&mut text, "invoke", p, "enqueue", &p.to_string());
    }
    push(&mut text, "invoke", 40, "dequeue", "null");
    push(&mut text, "ok", 40, "dequeue", "-1");
    for p in 0..40 {
        push(&mut text, "ok", p, "enqueue", &p.to_string());
    }
    std::fs::write(&path, text).unwrap();
    let o = faultline(&[
        "check",
        "--model",
        "fifo-queue",
        "--time-limit",
        "0.2",
        path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stdout(&o).contains("unknown (timeout)"), "{}", stdout(&o));
}

#[test]
fn report_writes_a_self_contained_page() {
    let dir = scratch("report");
    let o = faultline(&[
        "check",
        "--model",
        "cas-register",
        "--report",
        dir.to_str().unwrap(),
        &shared("porcupine/jepsen/etcd_000.log"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let page = std::fs::read_to_string(dir.join("etcd_000.log.html")).expect("report written");
    assert!(page.contains("<svg"));
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
        assert!(
            !page.contains(fetch),
            "the page must not fetch anything: found {fetch}"
        );
    }
}

#[test]
fn semantics_flags_override_format_defaults() {
    // Knossos' cas-register histories are valid with initial value 0 (the EDN default) ...
    let file = shared("knossos/cas-register/good/memstress3-30.edn");
    let o = faultline(&["check", "--model", "cas-register", &file]);
    assert_eq!(o.status.code(), Some(0));
    // ... and a read of 0 before any write of 0 is not explained by an unset register.
    let o = faultline(&[
        "check",
        "--model",
        "cas-register",
        "--initial",
        "null",
        &shared("knossos/cas-register/bad/immediate-failure.edn"),
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn synth_is_deterministic_and_checkable() {
    let synth = |seed: &str| {
        faultline(&[
            "synth",
            "--ops",
            "300",
            "--clients",
            "4",
            "--crash-rate",
            "0.05",
            "--seed",
            seed,
        ])
    };
    let a = synth("11");
    let b = synth("11");
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(a.stdout, b.stdout, "same seed, same bytes");
    let c = synth("12");
    assert_ne!(a.stdout, c.stdout);
    let path = scratch("synth.jsonl");
    std::fs::write(&path, &a.stdout).unwrap();
    let o = faultline(&["check", "--model", "cas-register", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = faultline(&["synth", "--crash-rate", "2"]);
    assert_eq!(o.status.code(), Some(254));
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn list_append_json_has_the_documented_fields() {
    let f = shared("elle/si-without-g-single.edn");
    let o = faultline(&[
        "check",
        "--checker",
        "list-append",
        "--consistency-models",
        "snapshot-isolation,repeatable-read",
        "--json",
        &f,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = json(&o);
    for field in [
        "file",
        "checker",
        "valid",
        "anomaly_types",
        "not",
        "anomalies",
        "elapsed_ms",
    ] {
        assert!(v.get(field).is_some(), "missing {field}: {v}");
    }
    assert_eq!(v["valid"], false);
    assert_eq!(v["anomaly_types"], serde_json::json!(["G2-item"]));
    assert_eq!(v["not"], serde_json::json!(["repeatable-read"]));
    let proof = v["anomalies"]["G2-item"][0].as_str().unwrap();
    assert!(proof.contains("no serial order exists"), "{proof}");
    let si = faultline(&[
        "check",
        "--checker",
        "list-append",
        "--consistency-models",
        "snapshot-isolation",
        &f,
    ]);
    assert_eq!(si.status.code(), Some(0), "SI holds: {}", stdout(&si));
}

#[test]
fn report_writes_each_cycle_as_dot_and_svg() {
    let dir = scratch("report");
    let o = faultline(&[
        "check",
        "--checker",
        "list-append",
        "--report",
        dir.to_str().unwrap(),
        &shared("elle/paper-example.edn"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let dot = names
        .iter()
        .find(|n| n.ends_with(".dot"))
        .expect("a DOT file");
    let svg = names
        .iter()
        .find(|n| n.ends_with(".svg"))
        .expect("an SVG file");
    assert!(std::fs::read_to_string(dir.join(dot))
        .unwrap()
        .starts_with("digraph"));
    let svg = std::fs::read_to_string(dir.join(svg)).unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"));
    let txt = std::fs::read_to_string(dir.join("paper-example.edn.txt")).unwrap();
    assert!(txt.contains("G-single"), "{txt}");
}

#[test]
fn rw_register_and_the_jepsen_checkers_reproduce_elle_cli() {
    let cases = [
        ("rw-register", "elle-cli/elle/rw-register.edn", 0),
        ("bank", "elle-cli/jepsen/bank.json", 0),
        ("bank", "elle-cli/jepsen/bank-tidb.edn", 1),
        ("counter", "elle-cli/jepsen/counter.edn", 0),
        ("set", "elle-cli/jepsen/set.edn", 0),
        ("set-full", "elle-cli/jepsen/set_full.edn", 1),
        ("long-fork", "elle-cli/jepsen/long-fork.edn", 1),
    ];
    for (checker, rel, code) in cases {
        let o = faultline(&["check", "--checker", checker, &shared(rel)]);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{checker} {rel}: {}",
            stdout(&o)
        );
    }
    let o = faultline(&[
        "check",
        "--checker",
        "bank",
        "--negative-balances",
        &shared("elle-cli/jepsen/bank-neg.edn"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn bad_arguments_and_input_exit_254_naming_the_problem() {
    let f = shared("elle/paper-example.edn");
    let o = faultline(&[
        "check",
        "--checker",
        "list-append",
        "--consistency-models",
        "acid",
        &f,
    ]);
    assert_eq!(o.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown consistency model"));
    let o = faultline(&[
        "check",
        "--checker",
        "list-append",
        "--model",
        "register",
        &f,
    ]);
    assert_eq!(o.status.code(), Some(254));
    let o = faultline(&["check", "--checker", "rw-register", &f]);
    assert_eq!(
        o.status.code(),
        Some(254),
        "appends are not rw-register micro-ops: {}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("paper-example.edn:2:"),
        "names the line: {}",
        stdout(&o)
    );
    let o = faultline(&["check", "--checker", "one-copy", &f]);
    assert_eq!(o.status.code(), Some(254), "one-copy needs --apply-logs");
}

#[test]
fn synth_plants_are_caught_and_clean_runs_are_valid() {
    let clean = scratch("clean.jsonl");
    let o = faultline(&[
        "synth",
        "--workload",
        "list-append",
        "--ops",
        "2000",
        "--clients",
        "10",
        "--seed",
        "3",
        "--output",
        clean.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let o = faultline(&["check", "--checker", "list-append", clean.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    for (workload, plant) in [
        ("list-append", "G1c"),
        ("rw-register", "G-single"),
        ("list-append", "G2-item-realtime"),
    ] {
        let f = scratch(&format!("{workload}-{plant}.jsonl"));
        let o = faultline(&[
            "synth",
            "--workload",
            workload,
            "--ops",
            "500",
            "--plant",
            plant,
            "--seed",
            "9",
            "--output",
            f.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0));
        let o = faultline(&[
            "check",
            "--checker",
            workload,
            "--json",
            f.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{plant}: {}", stdout(&o));
        let types = json(&o)["anomaly_types"].clone();
        assert!(
            types.as_array().unwrap().iter().any(|t| t == plant),
            "{plant}: {types}"
        );
    }
    let o = faultline(&["synth", "--workload", "list-append", "--plant", "G9"]);
    assert_eq!(o.status.code(), Some(254));
}

#[test]
fn one_copy_checks_apply_logs_and_serializability() {
    let history = scratch("replicated.jsonl");
    let ops = [
        r#"{"type":"invoke","process":0,"f":"txn","value":[["append","x",1]]}"#,
        r#"{"type":"ok","process":0,"f":"txn","value":[["append","x",1]],"txn-id":1}"#,
        r#"{"type":"invoke","process":1,"f":"txn","value":[["r","x",null]]}"#,
        r#"{"type":"ok","process":1,"f":"txn","value":[["r","x",[1]]],"txn-id":2}"#,
    ];
    std::fs::write(&history, ops.join("\n") + "\n").unwrap();
    let good = scratch("good-logs.jsonl");
    std::fs::write(
        &good,
        "{\"replica\":\"n1\",\"applied\":[1,2],\"finished\":true}\n{\"replica\":\"n2\",\"applied\":[1,2],\"finished\":true}\n",
    )
    .unwrap();
    let o = faultline(&[
        "check",
        "--checker",
        "one-copy",
        "--apply-logs",
        good.to_str().unwrap(),
        history.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let bad = scratch("bad-logs.jsonl");
    std::fs::write(
        &bad,
        "{\"replica\":\"n1\",\"applied\":[1,2],\"finished\":true}\n{\"replica\":\"n2\",\"applied\":[2,1],\"finished\":true}\n",
    )
    .unwrap();
    let o = faultline(&[
        "check",
        "--checker",
        "one-copy",
        "--json",
        "--apply-logs",
        bad.to_str().unwrap(),
        history.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = json(&o);
    assert!(
        v["anomaly_types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "divergent-apply-order"),
        "{v}"
    );
}

#[test]
fn event_log_checkers_judge_two_phase_commit_runs() {
    let clean = scratch("2pc-clean.jsonl");
    std::fs::write(
        &clean,
        [
            r#"{"time":1,"node":"c","event":"participants","txn":1,"nodes":["p1"]}"#,
            r#"{"time":2,"node":"c","event":"log","txn":1,"record":"start"}"#,
            r#"{"time":3,"node":"p1","event":"log","txn":1,"record":"yes"}"#,
            r#"{"time":4,"node":"p1","event":"vote","txn":1,"vote":"yes"}"#,
            r#"{"time":5,"node":"c","event":"log","txn":1,"record":"commit"}"#,
            r#"{"time":6,"node":"c","event":"decide","txn":1,"decision":"commit"}"#,
            r#"{"time":7,"node":"p1","event":"decide","txn":1,"decision":"commit"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    for checker in ["atomic-commit", "recovery-line", "consistent-cut"] {
        let o = faultline(&["check", "--checker", checker, clean.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{checker}: {}", stdout(&o));
    }
    let early = scratch("2pc-early.jsonl");
    std::fs::write(
        &early,
        [
            r#"{"time":1,"node":"c","event":"participants","txn":1,"nodes":["p1"]}"#,
            r#"{"time":2,"node":"p1","event":"log","txn":1,"record":"yes"}"#,
            r#"{"time":3,"node":"p1","event":"vote","txn":1,"vote":"yes"}"#,
            r#"{"time":4,"node":"c","event":"decide","txn":1,"decision":"commit"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let o = faultline(&[
        "check",
        "--checker",
        "atomic-commit",
        "--json",
        early.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let types = json(&o)["anomaly_types"].clone();
    assert!(
        types
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "decision-before-log"),
        "{types}"
    );
    let orphan = scratch("2pc-orphan.jsonl");
    std::fs::write(
        &orphan,
        r#"{"time":1,"node":"p2","event":"receive","msg":"m1"}"#,
    )
    .unwrap();
    let o = faultline(&[
        "check",
        "--checker",
        "recovery-line",
        orphan.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("orphan-message"), "{}", stdout(&o));
    std::fs::write(
        &orphan,
        "{\"time\":1,\"node\":\"p2\",\"event\":\"teleport\"}\n",
    )
    .unwrap();
    let o = faultline(&[
        "check",
        "--checker",
        "atomic-commit",
        orphan.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(254), "{}", stdout(&o));
    assert!(stdout(&o).contains(":1:"), "names the line: {}", stdout(&o));
}
