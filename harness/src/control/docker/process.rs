//! Running a host process (the docker CLI, nsenter) with piped input, capped output and a
//! deadline. Every docker call goes through here, so a hung engine becomes an error instead of
//! a hung test.

use std::io::{self, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a running process is polled for exit or deadline: short next to a docker call
/// (tens of milliseconds), long enough to cost nothing.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// A process that ended by itself.
pub(super) struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub(super) enum Waited {
    Finished(Finished),
    /// The deadline passed; `on_timeout` ran and the process was killed.
    TimedOut,
}

/// Runs `command` to its end or until `timeout`, keeping at most `limit_bytes` of each
/// output stream. `stdin` None gives the process /dev/null. Past the deadline `on_timeout`
/// runs first (to stop whatever the process drives elsewhere, such as a command inside a
/// container that outlives its `docker exec` client), then the process is killed.
pub(super) fn run(
    mut command: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    limit_bytes: usize,
    on_timeout: impl FnOnce(),
) -> io::Result<Waited> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let feeder = feed(child.stdin.take(), stdin.unwrap_or_default());
    let stdout = crate::control::capture(child.stdout.take(), limit_bytes);
    let stderr = crate::control::capture(child.stderr.take(), limit_bytes);
    let Some(status) = wait_until(&mut child, Instant::now() + timeout)? else {
        on_timeout();
        let _ = child.kill();
        let _ = child.wait();
        // The reader and writer threads end when the pipes close; not joined, so that a
        // descendant still holding a pipe cannot stall the caller past its deadline.
        return Ok(Waited::TimedOut);
    };
    let _ = feeder.join();
    Ok(Waited::Finished(Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }))
}

fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn feed(pipe: Option<std::process::ChildStdin>, input: Vec<u8>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        if let Some(mut pipe) = pipe {
            // A command that exits without reading its input is not an error.
            let _ = pipe.write_all(&input);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn output_is_capped_and_input_passed() {
        let cmd = sh("cat; head -c 100 /dev/zero");
        let Waited::Finished(f) = run(
            cmd,
            Some(b"abc".to_vec()),
            Duration::from_secs(10),
            10,
            || {},
        )
        .unwrap() else {
            panic!("timed out")
        };
        assert!(f.status.success());
        assert_eq!(f.stdout, b"abc\0\0\0\0\0\0\0");
    }

    #[test]
    fn deadline_runs_the_hook_and_kills() {
        let mut hooked = false;
        let started = Instant::now();
        let waited = run(
            sh("exec sleep 10"),
            None,
            Duration::from_millis(100),
            10,
            || hooked = true,
        )
        .unwrap();
        assert!(matches!(waited, Waited::TimedOut));
        assert!(hooked);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
