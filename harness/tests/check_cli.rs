//! `faultline check` and `faultline synth` as a user runs them: real processes, real files,
//! exit codes and output.

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
    // Forty concurrent writes and a read nobody wrote: exponential without limits.
    let mut text = String::new();
    let mut i = 0;
    let mut push = |text: &mut String, t: &str, p: u64, f: &str, v: i64| {
        text.push_str(&format!(
            "{{\"index\":{i},\"time\":{i},\"type\":\"{t}\",\"process\":{p},\"f\":\"{f}\",\"value\":{v}}}\n"
        ));
        i += 1;
    };
    for p in 0..40 {
        push(&mut text, "invoke", p, "write", p as i64);
    }
    push(&mut text, "invoke", 40, "read", -1);
    push(&mut text, "ok", 40, "read", -1);
    for p in 0..40 {
        push(&mut text, "ok", p, "write", p as i64);
    }
    std::fs::write(&path, text).unwrap();
    let o = faultline(&[
        "check",
        "--model",
        "register",
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
