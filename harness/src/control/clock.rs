//! Clock faults for programs that read time through libc: each node's daemons run under
//! libfaketime (Debian's `libfaketime`), which re-reads an offset file on every clock call,
//! so the controller skews, bumps and strobes a node's clock by rewriting that file.
//!
//! Programs that read the clock without libc (Go binaries such as etcd use the vDSO
//! directly) are not affected; their DB definitions say so and the fault is refused at start.
//! The reference systems will read a harness-controlled offset themselves.

use super::daemon::{self, sh_quote, Daemon};
use super::{Cmd, ControlError, Node, Remote};

/// Where libfaketime is on Debian-family nodes, in order of preference.
const LIBFAKETIME_PATHS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];
/// The offset file, relative to the node's directory.
pub const OFFSET_FILE: &str = "run/clock-offset";
/// Largest offset a fault may set: a day either way, far past any lease or timeout.
pub const MAX_OFFSET_MS: i64 = 86_400_000;
/// Shortest strobe half-period: faster than this, `sleep` granularity dominates.
pub const MIN_STROBE_PERIOD_MS: u64 = 10;

fn strobe_daemon() -> Daemon {
    Daemon {
        pidfile: "run/clock-strobe.pid".into(),
        logfile: "log/clock-strobe.log".into(),
    }
}

/// Finds libfaketime on the node; an error names the package to install.
pub fn library(remote: &dyn Remote, node: &Node) -> Result<String, ControlError> {
    let script = LIBFAKETIME_PATHS
        .iter()
        .map(|p| format!("[ -f {p} ] && echo {p} && exit 0;"))
        .collect::<String>()
        + " exit 1";
    let out = remote.exec(node, &Cmd::new(script))?;
    match out.stdout_text().lines().next() {
        Some(path) if out.success() => Ok(path.to_string()),
        _ => Err(ControlError::Unsupported {
            backend: "any",
            what: format!(
                "fault the clock on {}: libfaketime is not installed there (Debian's libfaketime)",
                node.name
            ),
        }),
    }
}

/// `command` run under the node's controllable clock: prefix a daemon's command with this.
/// The offset file is found from the daemon's working directory, the node's.
pub fn wrap(library: &str, command: &str) -> String {
    format!(
        "env LD_PRELOAD={} FAKETIME_TIMESTAMP_FILE=\"$PWD/{OFFSET_FILE}\" FAKETIME_NO_CACHE=1 {command}",
        sh_quote(library)
    )
}

/// libfaketime's offset syntax: a signed number of seconds.
fn offset_text(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// The script that replaces the offset file atomically, so a clock read never sees half.
fn write_offset_script(offset_ms: i64) -> String {
    format!(
        "mkdir -p run && printf '%s\\n' {} > {OFFSET_FILE}.tmp && mv {OFFSET_FILE}.tmp {OFFSET_FILE}",
        offset_text(offset_ms)
    )
}

fn check_offset(node: &Node, offset_ms: i64) -> Result<(), ControlError> {
    if offset_ms.abs() > MAX_OFFSET_MS {
        return Err(ControlError::Unsupported {
            backend: "any",
            what: format!(
                "set {}'s clock {offset_ms} ms off: at most {MAX_OFFSET_MS} ms either way",
                node.name
            ),
        });
    }
    Ok(())
}

/// Sets the node's clock offset (0 for the true time). Takes effect on the next clock read of
/// every process started under [`wrap`].
pub fn set_offset(remote: &dyn Remote, node: &Node, offset_ms: i64) -> Result<(), ControlError> {
    check_offset(node, offset_ms)?;
    let out = remote.exec(node, &Cmd::new(write_offset_script(offset_ms)))?;
    if out.success() {
        return Ok(());
    }
    Err(ControlError::Exec {
        node: node.name.clone(),
        script: "write the clock offset".into(),
        cause: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Flips the node's clock between the true time and `offset_ms` every `period_ms`, until
/// [`stop_strobe`].
pub fn start_strobe(
    remote: &dyn Remote,
    node: &Node,
    offset_ms: i64,
    period_ms: u64,
) -> Result<(), ControlError> {
    check_offset(node, offset_ms)?;
    let period_ms = period_ms.max(MIN_STROBE_PERIOD_MS);
    let sleep = format!("sleep {}.{:03}", period_ms / 1000, period_ms % 1000);
    let script = format!(
        "sh -c {}",
        sh_quote(&format!(
            "while :; do {}; {sleep}; {}; {sleep}; done",
            write_offset_script(offset_ms),
            write_offset_script(0)
        ))
    );
    daemon::start(remote, node, &script, &strobe_daemon())?;
    Ok(())
}

/// Stops a strobe (if any) and puts the clock back to the true time.
pub fn stop_strobe(remote: &dyn Remote, node: &Node) -> Result<(), ControlError> {
    daemon::signal(remote, node, &strobe_daemon(), "KILL")?;
    set_offset(remote, node, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::local::Local;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn now_s() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// The last time the probe daemon printed, as the node's clock says.
    fn last_seen(remote: &dyn Remote, node: &Node) -> i64 {
        let out = remote
            .exec(node, &Cmd::new("tail -n 1 log/probe.out"))
            .unwrap();
        out.stdout_text().trim().parse().unwrap_or(0)
    }

    fn seen_all(remote: &dyn Remote, node: &Node) -> Vec<i64> {
        let out = remote.exec(node, &Cmd::new("cat log/probe.out")).unwrap();
        out.stdout_text()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    #[test]
    fn offsets_formats_are_libfaketimes() {
        assert_eq!(offset_text(0), "+0.000");
        assert_eq!(offset_text(1500), "+1.500");
        assert_eq!(offset_text(-120_000), "-120.000");
        let node = Node {
            name: "n1".into(),
            ip: "127.0.0.1".into(),
        };
        assert!(check_offset(&node, MAX_OFFSET_MS + 1).is_err());
    }

    /// A real daemon under libfaketime prints its clock; bumping, resetting and strobing the
    /// offset file moves what it prints.
    #[test]
    fn a_daemons_clock_follows_bumps_and_strobes() {
        let root = std::env::temp_dir().join(format!("faultline-clock-{}", std::process::id()));
        let local = Local::new(&root);
        let node = Node {
            name: "n1".into(),
            ip: "127.0.0.1".into(),
        };
        let lib = library(&local, &node).expect("libfaketime is installed (Debian's libfaketime)");
        set_offset(&local, &node, 0).unwrap();
        let probe = Daemon {
            pidfile: "run/probe.pid".into(),
            logfile: "log/probe.log".into(),
        };
        let loop_ = "sh -c 'while :; do date +%s >> log/probe.out; sleep 0.05; done'";
        daemon::start(&local, &node, &wrap(&lib, loop_), &probe).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            (last_seen(&local, &node) - now_s()).abs() <= 2,
            "true time at first"
        );

        set_offset(&local, &node, 3_600_000).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let skew = last_seen(&local, &node) - now_s();
        assert!(
            (3590..=3610).contains(&skew),
            "bumped an hour ahead: {skew}"
        );

        set_offset(&local, &node, -7_200_000).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let skew = last_seen(&local, &node) - now_s();
        assert!(
            (-7210..=-7190).contains(&skew),
            "skewed two hours behind: {skew}"
        );

        set_offset(&local, &node, 0).unwrap();
        local.exec(&node, &Cmd::new("rm -f log/probe.out")).unwrap();
        start_strobe(&local, &node, 100_000, 100).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let seen = seen_all(&local, &node);
        let now = now_s();
        assert!(
            seen.iter().any(|t| (t - now).abs() <= 3),
            "strobe shows true time: {seen:?}"
        );
        assert!(
            seen.iter().any(|t| (t - now - 100).abs() <= 3),
            "and +100 s: {seen:?}"
        );
        stop_strobe(&local, &node).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            (last_seen(&local, &node) - now_s()).abs() <= 2,
            "true time after the strobe"
        );
        daemon::signal(&local, &node, &probe, "KILL").unwrap();
    }
}
