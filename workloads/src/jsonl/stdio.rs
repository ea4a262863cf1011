//! The stdio transport: a client process per worker, on the controller, that reads request
//! lines on its stdin and writes response lines on its stdout, and reaches the system by its
//! own means (its client library, say).
//!
//! The command runs under `sh -c` in a process group of its own, so that killing the group
//! ends it and everything it started (a `sh -c` that runs a pipeline or forks is more than
//! one process); the group is killed whenever its channel is dropped: after an `info`, when
//! its worker's client is dropped, when the runtime shuts down. Its stderr is appended to a
//! log file, up to a byte budget shared by the worker's successive processes.

use super::Channel;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::ChildStderr;
use tokio::time::{timeout_at, Instant};

/// The most bytes of one worker's client stderr kept unless told otherwise: enough for a
/// traceback per restart over a long run, not enough to fill a disk.
pub const DEFAULT_STDERR_LOG_MAX_BYTES: u64 = 8 << 20;
/// How long a broken channel's error waits for its process's exit status (never past the
/// operation's deadline): a process that closed its stdout is usually exiting.
const EXIT_STATUS_WAIT_MS: u64 = 200;
/// Bytes read from a stderr pipe at a time.
const STDERR_CHUNK_BYTES: usize = 8 * 1024;
/// Written once where a worker's stderr log stops.
const CUT_NOTE: &str = "\n--- faultline: stderr log budget spent; the rest is discarded\n";

/// How to start one worker's client process.
#[derive(Clone, Debug)]
pub struct ChildCommand {
    /// A shell command (`sh -c`).
    pub command: String,
    /// Its working directory.
    pub cwd: PathBuf,
    /// The file its stderr is appended to, created with its directory when missing;
    /// without one, its stderr is discarded.
    pub stderr_log: Option<PathBuf>,
    /// The most bytes written to `stderr_log`, over all of the worker's processes.
    pub stderr_log_max_bytes: u64,
}

impl ChildCommand {
    pub fn new(command: impl Into<String>, cwd: impl Into<PathBuf>) -> ChildCommand {
        ChildCommand {
            command: command.into(),
            cwd: cwd.into(),
            stderr_log: None,
            stderr_log_max_bytes: DEFAULT_STDERR_LOG_MAX_BYTES,
        }
    }

    /// The same command with its stderr appended to `path`.
    pub fn stderr_log(mut self, path: impl Into<PathBuf>) -> ChildCommand {
        self.stderr_log = Some(path.into());
        self
    }
}

/// Starts a worker's client processes, one at a time.
pub(super) struct Spawner {
    command: ChildCommand,
    log_budget: Arc<LogBudget>,
}

impl Spawner {
    pub(super) fn new(command: ChildCommand) -> Spawner {
        let log_budget = Arc::new(LogBudget {
            left_bytes: AtomicU64::new(command.stderr_log_max_bytes),
            cut_noted: AtomicBool::new(false),
        });
        Spawner {
            command,
            log_budget,
        }
    }

    /// A fresh process and its pipes, or why there is none (nothing was sent).
    pub(super) fn open(&self) -> Result<Channel, String> {
        let c = &self.command;
        let log = c.stderr_log.as_deref().map(open_log).transpose()?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&c.command)
            .current_dir(&c.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if log.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            // Its own group: killed whole, and out of reach of the terminal's Ctrl-C, which
            // the harness answers by healing the cluster through these very clients.
            .process_group(0);
        let mut process = cmd.spawn().map_err(|e| {
            format!(
                "cannot start the client process in {}: {e}",
                c.cwd.display()
            )
        })?;
        let pid = process.id().and_then(|p| libc::pid_t::try_from(p).ok());
        let stdin = process.stdin.take().expect("stdin is piped");
        let stdout = process.stdout.take().expect("stdout is piped");
        if let (Some(mut file), Some(stderr)) = (log, process.stderr.take()) {
            let header = format!(
                "--- faultline: client process {} started: {}\n",
                pid.unwrap_or(0),
                c.command
            );
            let n = self.log_budget.take(header.len());
            // A log that cannot be written loses lines, never an operation.
            let _ = std::io::Write::write_all(&mut file, &header.as_bytes()[..n]);
            let file = tokio::fs::File::from_std(file);
            tokio::spawn(drain(stderr, file, self.log_budget.clone()));
        }
        Ok(Channel {
            reader: Box::new(BufReader::new(stdout)),
            writer: Box::new(stdin),
            closed: "the client process closed its stdout",
            child: Some(Child {
                process,
                pid,
                stderr_log: c.stderr_log.clone(),
            }),
        })
    }
}

fn open_log(path: &Path) -> Result<std::fs::File, String> {
    let cannot = |e: std::io::Error| {
        format!(
            "cannot open the client's stderr log {}: {e}",
            path.display()
        )
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(cannot)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(cannot)
}

/// The bytes a worker's stderr log may still take.
struct LogBudget {
    left_bytes: AtomicU64,
    cut_noted: AtomicBool,
}

impl LogBudget {
    /// How many of `n` bytes may be written now (taken from the budget).
    fn take(&self, n: usize) -> usize {
        let n = n as u64;
        let before = self
            .left_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                Some(left.saturating_sub(n))
            })
            .expect("the update always succeeds");
        before.min(n) as usize
    }

    /// Whether this is the first cut (so the log says once that it stops).
    fn first_cut(&self) -> bool {
        !self.cut_noted.swap(true, Ordering::SeqCst)
    }
}

/// Copies a process's stderr into its log until the pipe closes, within the budget. Past
/// it, it keeps reading and discards, so a chatty process never blocks on a full pipe.
async fn drain(mut from: ChildStderr, mut to: tokio::fs::File, budget: Arc<LogBudget>) {
    let mut buf = vec![0u8; STDERR_CHUNK_BYTES];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let allowed = budget.take(n);
        if allowed > 0 {
            let _ = to.write_all(&buf[..allowed]).await;
        }
        if allowed < n && budget.first_cut() {
            let _ = to.write_all(CUT_NOTE.as_bytes()).await;
        }
        // Flushed as it goes: a run that ends (and drops this task) loses nothing written.
        let _ = to.flush().await;
    }
}

/// A running client process.
pub(super) struct Child {
    process: tokio::process::Child,
    /// Its process group's id (its own pid), while it has one.
    pid: Option<libc::pid_t>,
    stderr_log: Option<PathBuf>,
}

impl Child {
    /// `why` the channel broke, with the process's exit status if it has one by then, and
    /// where its stderr went.
    pub(super) async fn explain(&mut self, why: String, deadline: Instant) -> String {
        let until = deadline.min(Instant::now() + Duration::from_millis(EXIT_STATUS_WAIT_MS));
        let mut why = match timeout_at(until, self.process.wait()).await {
            Ok(Ok(status)) => format!("{why} ({status})"),
            _ => why,
        };
        if let Some(log) = &self.stderr_log {
            why.push_str(&format!("; its stderr is in {}", log.display()));
        }
        why
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // The whole group, then (kill_on_drop) the leader, which tokio reaps. `explain` may
        // have reaped the leader just before: the kernel keeps its id while any member of
        // the group lives, and once the group is empty this fails with ESRCH; another group
        // could take the id only after the pid counter wrapped around in between.
        if let Some(pid) = self.pid.take() {
            // SAFETY: kill(2) takes plain integers and touches no memory of ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests;
