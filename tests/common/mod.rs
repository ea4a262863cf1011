//! What the end-to-end tests share: reading a stored run back (its JSON documents, history
//! and collected logs) and refusing to run without the real components they need.

#![allow(dead_code)] // Each test file uses its own subset.

mod sshd_config;
#[allow(unused_imports)] // Only the ssh tests start an sshd.
pub use sshd_config::sshd_config;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Fails, naming the Debian package, unless `tool` is on the PATH.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is not on the PATH: install the Debian package {package}"
    );
}

/// Runs `attempt` with each seed in turn until a run shows what the test waits for, when
/// that depends on how a run's pacing meets its faults. `attempt` asserts what every run
/// must satisfy and returns `Ok` when the run showed the effect, or `Err` with the run's
/// output when it did not; if no seed shows it, the test fails with every output.
pub fn some_seed_shows(
    seeds: &[&str],
    what: &str,
    mut attempt: impl FnMut(&str) -> Result<(), String>,
) {
    let mut outputs = Vec::new();
    for seed in seeds {
        match attempt(seed) {
            Ok(()) => return,
            Err(shown) => outputs.push(shown),
        }
    }
    panic!("no run (seeds {seeds:?}) showed {what}: {outputs:?}");
}

/// Fails unless the Docker engine answers (`docker info`).
pub fn require_docker() {
    let up = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        up,
        "the Docker engine is missing: start dockerd and make `docker info` work"
    );
}

/// The names of the engine's containers that start with `prefix`, running or not.
pub fn containers_named(prefix: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Fails unless the test runs as root (namespaces, iptables, the Docker engine).
pub fn require_root(why: &str) {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|u| u.split_whitespace().next().unwrap().to_string())
        })
        .unwrap();
    assert_eq!(uid, "0", "this test needs root: {why}");
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// The run's history, one op map per event.
pub fn history(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `f` of every nemesis op that completed ok, in order.
pub fn nemesis_fs(ops: &[Value]) -> Vec<String> {
    ops.iter()
        .filter(|op| op["process"] == "nemesis" && op["type"] == "ok")
        .map(|op| op["f"].as_str().unwrap().to_string())
        .collect()
}

/// Whether any of the run's `nodes` members' collected etcd logs says `what`.
pub fn logs_say(run: &Path, nodes: usize, what: &str) -> bool {
    (1..=nodes).any(|n| {
        std::fs::read_to_string(run.join(format!("nodes/n{n}/etcd.log")))
            .is_ok_and(|log| log.contains(what))
    })
}

/// The newest run of a store.
pub fn run_dir(store: &Path) -> PathBuf {
    std::fs::canonicalize(store.join("latest")).expect("store/latest points at the run")
}

/// How many client operations completed `ok` (the nemesis's are not counted).
pub fn clients_ok(ops: &[Value]) -> usize {
    ops.iter()
        .filter(|op| op["process"].is_u64() && op["type"] == "ok")
        .count()
}

/// Fails, naming the package, unless etcd runs.
pub fn require_etcd() {
    let found = Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "etcd is not on the PATH: install Debian's etcd-server (apt-get install etcd-server)"
    );
}

/// A fresh store directory for one test.
pub fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The `faultline` binary under test.
pub fn faultline(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    c.args(args);
    c
}

/// Runs `faultline` with `args` to its end; returns its pid (which names its containers on
/// the docker backend) and what it printed.
pub fn faultline_run(args: &[&str]) -> (u32, std::process::Output) {
    let child = faultline(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (pid, child.wait_with_output().unwrap())
}

/// No etcd of this run may outlive it: teardown kills every member.
pub fn assert_no_members_left(run: &Path) {
    assert_no_processes_under(&run.join("work"));
}

/// No process runs in `dir` or below it.
pub fn assert_no_processes_under(dir: &Path) {
    // A member's command line does not name its directory, but its working directory does.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cwd = std::fs::read_link(entry.path().join("cwd"));
        if let Ok(cwd) = cwd {
            assert!(
                !cwd.starts_with(dir),
                "process {:?} still runs in {}",
                entry.file_name(),
                cwd.display()
            );
        }
    }
}

const POSTGRES: &str = "/usr/lib/postgresql/15/bin/postgres";

/// Fails, naming what to install, unless PostgreSQL 15 can run here as its own user.
pub fn require_postgres() {
    assert!(
        Path::new(POSTGRES).is_file(),
        "PostgreSQL 15 is not installed ({POSTGRES} is missing): install Debian's postgresql-15 \
         (apt-get install postgresql-15)"
    );
    let user = Command::new("id").args(["-u", "postgres"]).output();
    assert!(
        user.is_ok_and(|o| o.status.success()),
        "there is no postgres user to run the server as: install Debian's postgresql-15 \
         (its postgresql-common creates the user)"
    );
    require_tool("setpriv", "util-linux");
    require_tool("pgrep", "procps");
    require_root("PostgreSQL refuses to run as root; switching to the postgres user takes root");
}

/// The one directory under `parent` (a bench's or a campaign's report).
pub fn only_subdir(parent: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(parent)
        .unwrap_or_else(|e| panic!("{}: {e}", parent.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// Writes the lock workload's fence refused: a stale holder's, with an older token.
pub fn fence_refusals(ops: &[Value]) -> usize {
    ops.iter()
        .filter(|op| op["f"] == "write" && op["type"] == "fail")
        .filter(|op| {
            op["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("fenced: token"))
        })
        .count()
}
