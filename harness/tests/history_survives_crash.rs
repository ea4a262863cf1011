//! A controller killed while recording leaves a history of whole lines that checks as a
//! prefix of the run: the writer appends one complete line per write, so SIGKILL at any
//! instant cannot tear one.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigkill_mid_write_leaves_a_checkable_prefix() {
    let dir = std::env::temp_dir().join(format!("faultline-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "synth",
            "--ops",
            "400000",
            "--clients",
            "10",
            "--crash-rate",
            "0.01",
            "--seed",
            "3",
        ])
        .arg("--output")
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .expect("faultline runs");
    // Kill it as soon as it has written something, well before it can finish.
    let started = Instant::now();
    loop {
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len >= 64 * 1024 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "synth wrote nothing in 120 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "synth ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the writer was killed, not finished: {status:?}"
    );

    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'), "no torn last line");
    let h = checkers::history::parse("history.jsonl", &bytes, None).expect("the prefix parses");
    assert!(h.len() >= 100, "only {} ops survived", h.len());
    assert!(h.len() < 800_000, "the run was cut short");
    // The prefix is a history like any other: it checks (invocations left open count as
    // crashed).
    use checkers::linearizable::{check, Options, Semantics, Validity};
    let options = Options::new(Semantics::for_format(h.format));
    let o = check(&h, checkers::model::ModelKind::CasRegister, &options).expect("checks");
    assert_eq!(o.valid, Validity::Valid, "{}", o.explain(&h));
}
