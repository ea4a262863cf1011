//! Management calls to the docker CLI (create, inspect, remove, build), each bounded in time,
//! each failure carrying docker's own words.

use super::process::{self, Waited};
use super::DockerError;
use std::process::Command;
use std::time::Duration;

/// How long a management call may take before the engine is deemed hung. Generous: a loaded
/// 2-core CI machine can take seconds to start a container.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Management calls print ids and inspect lines; anything longer is not read.
const CALL_OUTPUT_LIMIT_BYTES: usize = 1 << 20;

pub(super) fn command() -> Command {
    Command::new("docker")
}

/// Runs `docker args...`; its trimmed stdout on success.
pub(super) fn run(args: &[&str]) -> Result<String, DockerError> {
    run_with_timeout(args, CALL_TIMEOUT)
}

pub(super) fn run_with_timeout(args: &[&str], timeout: Duration) -> Result<String, DockerError> {
    let mut cmd = command();
    cmd.args(args);
    let what = describe(args);
    let waited = process::run(cmd, None, timeout, CALL_OUTPUT_LIMIT_BYTES, || {}).map_err(|e| {
        DockerError::CliMissing {
            cause: e.to_string(),
        }
    })?;
    match waited {
        Waited::TimedOut => Err(DockerError::Hung {
            what,
            timeout_ms: timeout.as_millis() as u64,
        }),
        Waited::Finished(f) if f.status.success() => {
            Ok(String::from_utf8_lossy(&f.stdout).trim().to_string())
        }
        Waited::Finished(f) => Err(DockerError::Failed {
            what,
            stderr: String::from_utf8_lossy(&f.stderr).trim().to_string(),
        }),
    }
}

/// The engine's version; fails naming the engine when it is not reachable, so a test on a
/// machine without Docker fails saying so instead of skipping.
pub(super) fn engine_version() -> Result<String, DockerError> {
    run_with_timeout(
        &["version", "--format", "{{.Server.Version}}"],
        Duration::from_secs(30),
    )
    .map_err(|e| DockerError::EngineUnreachable {
        cause: e.to_string(),
    })
}

/// `docker` and its first arguments, for error messages (scripts passed to exec can be long).
fn describe(args: &[&str]) -> String {
    const SHOWN_ARGS: usize = 6;
    let mut s = String::from("docker");
    for a in args.iter().take(SHOWN_ARGS) {
        s.push(' ');
        s.push_str(a);
    }
    if args.len() > SHOWN_ARGS {
        s.push_str(" ...");
    }
    s
}
