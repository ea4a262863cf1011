//! Running one command on one channel.
//!
//! The command runs inside a small `sh` wrapper that enters the node's directory, exports
//! the node's name and address (as the local backend does), prints a marker line with its
//! pid, and `exec`s the command. sshd starts every session's command as a session leader
//! (`setsid`), and `exec` keeps the pid, so that pid names the command's process group: on
//! timeout, a second channel kills the whole group. The `exec`s also let sshd see the
//! command's own exit, so a death by signal arrives as an exit signal, not a shell's code.
//!
//! The channel is driven in non-blocking mode, feeding stdin and draining stdout and stderr
//! in turn: a blocking read on one stream would deadlock against a command that fills the
//! other, or that waits for more stdin before writing.

use super::OpError;
use crate::control::daemon::sh_quote;
use crate::control::{Cmd, Node, Output, MAX_OUTPUT_BYTES};
use ssh2::{Channel, Session};
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Begins the wrapper's line naming its process group. Anything before that line (a chatty
/// login script) is dropped.
const PGID_MARKER: &[u8] = b"__faultline_pgid__ ";
/// The most output skipped while looking for the marker, so a broken login script cannot
/// fill memory.
const MAX_PREAMBLE_BYTES: usize = 1 << 20;
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Waits between polls of an idle channel: short at first so replies are seen promptly,
/// doubling to a bound so a long quiet command costs little CPU.
const MIN_IDLE_WAIT_US: u64 = 50;
const MAX_IDLE_WAIT_US: u64 = 5_000;
/// Bound on closing a channel given up on (after killing its command, or once broken).
const CLOSE_AFTER_KILL_TIMEOUT_MS: u32 = 1_000;
/// libssh2's "would block" code (its -sys crate is not a dependency of ours to name it).
const LIBSSH2_ERROR_EAGAIN: i32 = -37;
/// The stream id of stderr in an SSH session channel.
const STDERR_STREAM: i32 = 1;

/// One command to run, and where.
pub(super) struct Job<'a> {
    pub node: &'a Node,
    /// The node's directory on the host.
    pub node_dir: &'a Path,
    pub cmd: &'a Cmd,
    /// Bound on opening the channel (a live session answers within a round trip).
    pub open_timeout_ms: u32,
    /// Bound on each step of killing a timed-out command.
    pub kill_timeout_ms: u32,
}

/// Why driving the channel stopped early.
enum Stop {
    Deadline,
    Broken(String),
}

/// Runs the job on the session and collects what it did.
pub(super) fn run(session: &Session, job: &Job) -> Result<Output, OpError> {
    session.set_blocking(true);
    session.set_timeout(job.open_timeout_ms);
    let mut channel = start(session, job)?;
    let deadline = Instant::now() + job.cmd.timeout;
    let mut streams = Streams::new(job.cmd.stdin.as_deref().unwrap_or_default());
    session.set_blocking(false);
    let driven = drive(&mut channel, &mut streams, deadline)
        .and_then(|()| await_close(&mut channel, deadline));
    session.set_blocking(true);
    session.set_timeout(job.kill_timeout_ms);
    match driven {
        Ok(()) => finish(channel, streams, job),
        Err(Stop::Deadline) => {
            kill(session, streams.pgid, job);
            // Freeing the channel waits for sshd to close it, which it does at once when
            // the kill worked; the session is discarded either way, so do not wait long.
            session.set_timeout(CLOSE_AFTER_KILL_TIMEOUT_MS);
            drop(channel);
            Err(OpError::TimedOut)
        }
        Err(Stop::Broken(cause)) => {
            session.set_timeout(CLOSE_AFTER_KILL_TIMEOUT_MS);
            drop(channel);
            Err(OpError::Failed { cause, keep: false })
        }
    }
}

/// Opens a channel and starts the wrapped command. Failures here happen before the command
/// ran, so the caller may retry them on a fresh session. (Strictly, an exec request that
/// reached sshd just before the connection died would have started it; a pooled session is
/// found dead when its sshd went away long before, so the request never arrives.)
fn start(session: &Session, job: &Job) -> Result<Channel, OpError> {
    let mut channel = session
        .channel_session()
        .map_err(|e| OpError::NotStarted(format!("cannot open a channel: {e}")))?;
    channel
        .exec(&wrapper(job))
        .map_err(|e| OpError::NotStarted(format!("cannot start the command: {e}")))?;
    Ok(channel)
}

/// The command line sent to sshd (run by the login's shell, whatever it is, so it only
/// `exec`s `sh`).
fn wrapper(job: &Job) -> String {
    let dir = sh_quote(&job.node_dir.display().to_string());
    let script = sh_quote(&job.cmd.script);
    // As root, sudo is needless (and may not be installed).
    let run = if job.cmd.sudo {
        format!(
            "if [ \"$(id -u)\" = 0 ]; then exec sh -c {script}; \
             else exec sudo -n sh -c {script}; fi"
        )
    } else {
        format!("exec sh -c {script}")
    };
    let inner = format!(
        "mkdir -p {dir} && cd {dir} || exit 125\n\
         FAULTLINE_NODE={name}; FAULTLINE_NODE_IP={ip}; export FAULTLINE_NODE FAULTLINE_NODE_IP\n\
         echo \"{marker}$$\"\n\
         {run}",
        name = sh_quote(&job.node.name),
        ip = sh_quote(&job.node.ip),
        marker = String::from_utf8_lossy(PGID_MARKER),
    );
    format!("exec sh -c {}", sh_quote(&inner))
}

/// Feeds stdin and drains both output streams until both end or the deadline passes.
fn drive(channel: &mut Channel, streams: &mut Streams, deadline: Instant) -> Result<(), Stop> {
    let mut stdout = channel.stream(0);
    let mut stderr = channel.stream(STDERR_STREAM);
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut idle = Idle::new();
    while !(streams.stdout_done && streams.stderr_done) {
        // Checked even while output flows, so an endless writer still times out.
        if Instant::now() >= deadline {
            return Err(Stop::Deadline);
        }
        // `|`, not `||`: every stream gets its turn each round.
        let progress = streams.feed_stdin(channel)
            | streams.drain_stdout(&mut stdout, &mut buf)?
            | streams.drain_stderr(&mut stderr, &mut buf)?;
        idle.after(progress);
    }
    Ok(())
}

/// Waits for sshd to close the channel, which it does after sending the exit status.
fn await_close(channel: &mut Channel, deadline: Instant) -> Result<(), Stop> {
    let mut idle = Idle::new();
    loop {
        match channel.wait_close() {
            Ok(()) => return Ok(()),
            Err(e) if would_block(&e) => {}
            Err(e) => {
                return Err(Stop::Broken(format!(
                    "waiting for the command to exit: {e}"
                )))
            }
        }
        // Output can end before the command does (`exec >&-; sleep 60`).
        if Instant::now() >= deadline {
            return Err(Stop::Deadline);
        }
        idle.after(false);
    }
}

/// The output, once the channel is closed (in blocking mode again).
fn finish(mut channel: Channel, streams: Streams, job: &Job) -> Result<Output, OpError> {
    let broken = |e: ssh2::Error| OpError::Failed {
        cause: format!("cannot read the exit status: {e}"),
        keep: false,
    };
    let signal = channel.exit_signal().map_err(broken)?.exit_signal;
    let status = match signal {
        Some(_) => None,
        None => Some(channel.exit_status().map_err(broken)?),
    };
    let _ = channel.close();
    if streams.pgid.is_none() {
        // The wrapper prints the marker before running anything: without it, it failed.
        return Err(OpError::Failed {
            cause: format!(
                "cannot enter {} (status {status:?}): {}",
                job.node_dir.display(),
                String::from_utf8_lossy(&streams.stderr).trim()
            ),
            keep: true,
        });
    }
    Ok(Output {
        status,
        stdout: streams.stdout,
        stderr: streams.stderr,
    })
}

/// Kills the timed-out command's process group through a second channel. Best effort: the
/// session is discarded afterwards either way, and the caller reports the timeout.
fn kill(session: &Session, pgid: Option<u32>, job: &Job) {
    let node = &job.node.name;
    let Some(pgid) = pgid else {
        tracing::warn!(%node, script = %job.cmd.script, "timed out before it started; nothing to kill");
        return;
    };
    let result = session.channel_session().and_then(|mut channel| {
        channel.exec(&kill_script(pgid, job.cmd.sudo))?;
        let mut sink = Vec::new();
        let _ = channel.read_to_end(&mut sink);
        channel.wait_close()
    });
    if let Err(e) = result {
        tracing::warn!(%node, pgid, %e, "cannot kill a timed-out command's process group");
    }
}

/// Kills the group, or the lone process should it not lead one (a server that does not
/// start commands as session leaders). Root-owned groups need sudo to kill.
fn kill_script(pgid: u32, sudo: bool) -> String {
    let kill = format!("kill -KILL -{pgid} 2>/dev/null || kill -KILL {pgid} 2>/dev/null");
    let script = if sudo {
        format!(
            "if [ \"$(id -u)\" = 0 ]; then {kill}; \
             else sudo -n sh -c {} >/dev/null 2>&1; fi",
            sh_quote(&kill)
        )
    } else {
        kill
    };
    format!("exec sh -c {}", sh_quote(&script))
}

/// What one non-blocking read got.
enum Chunk {
    Data(usize),
    End,
    Nothing,
}

fn read_some(stream: &mut impl Read, buf: &mut [u8]) -> Result<Chunk, Stop> {
    match stream.read(buf) {
        Ok(0) => Ok(Chunk::End),
        Ok(n) => Ok(Chunk::Data(n)),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Chunk::Nothing),
        Err(e) => Err(Stop::Broken(format!("reading the command's output: {e}"))),
    }
}

fn would_block(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(LIBSSH2_ERROR_EAGAIN)
}

/// The command's streams as far as they got.
struct Streams<'a> {
    stdin: &'a [u8],
    stdin_sent: usize,
    stdin_closed: bool,
    /// Stdout before the marker line.
    preamble: Vec<u8>,
    /// The command's process group, from the marker line.
    pgid: Option<u32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stdout_done: bool,
    stderr_done: bool,
}

impl<'a> Streams<'a> {
    fn new(stdin: &'a [u8]) -> Streams<'a> {
        Streams {
            stdin,
            stdin_sent: 0,
            stdin_closed: false,
            preamble: Vec::new(),
            pgid: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_done: false,
            stderr_done: false,
        }
    }

    /// Sends what stdin the channel takes now, then EOF. True if anything happened.
    fn feed_stdin(&mut self, channel: &mut Channel) -> bool {
        if self.stdin_closed {
            return false;
        }
        if self.stdin_sent < self.stdin.len() {
            return match channel.write(&self.stdin[self.stdin_sent..]) {
                Ok(n) => {
                    self.stdin_sent += n;
                    n > 0
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                // The command exited or closed its input: what it read is what it wanted.
                Err(_) => {
                    self.stdin_closed = true;
                    true
                }
            };
        }
        match channel.send_eof() {
            Err(e) if would_block(&e) => false,
            // Sent, or the channel is past taking it: either way stdin is over.
            _ => {
                self.stdin_closed = true;
                true
            }
        }
    }

    /// Reads what stdout has now; true if anything happened.
    fn drain_stdout(&mut self, stream: &mut impl Read, buf: &mut [u8]) -> Result<bool, Stop> {
        if self.stdout_done {
            return Ok(false);
        }
        match read_some(stream, buf)? {
            Chunk::Data(n) => self.take_stdout(&buf[..n])?,
            Chunk::End => self.stdout_done = true,
            Chunk::Nothing => return Ok(false),
        }
        Ok(true)
    }

    /// Reads what stderr has now; true if anything happened.
    fn drain_stderr(&mut self, stream: &mut impl Read, buf: &mut [u8]) -> Result<bool, Stop> {
        if self.stderr_done {
            return Ok(false);
        }
        match read_some(stream, buf)? {
            Chunk::Data(n) => extend_capped(&mut self.stderr, &buf[..n]),
            Chunk::End => self.stderr_done = true,
            Chunk::Nothing => return Ok(false),
        }
        Ok(true)
    }

    fn take_stdout(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        if self.pgid.is_some() {
            extend_capped(&mut self.stdout, bytes);
            return Ok(());
        }
        self.preamble.extend_from_slice(bytes);
        if let Some((pgid, rest)) = find_marker(&self.preamble) {
            self.pgid = Some(pgid);
            let after = self.preamble.split_off(rest);
            self.preamble = Vec::new();
            extend_capped(&mut self.stdout, &after);
        } else if self.preamble.len() > MAX_PREAMBLE_BYTES {
            return Err(Stop::Broken(
                "the wrapper's pid line never came (login scripts printing without end?)".into(),
            ));
        }
        Ok(())
    }
}

/// The pid on the marker line and where the bytes after that line start; None until the
/// whole line has arrived.
fn find_marker(buf: &[u8]) -> Option<(u32, usize)> {
    let mut start = 0;
    while let Some(len) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + len];
        let end = start + len + 1;
        if let Some(at) = line
            .windows(PGID_MARKER.len())
            .position(|w| w == PGID_MARKER)
        {
            let digits = &line[at + PGID_MARKER.len()..];
            if let Some(pgid) = std::str::from_utf8(digits)
                .ok()
                .and_then(|s| s.parse().ok())
            {
                return Some((pgid, end));
            }
        }
        start = end;
    }
    None
}

/// Appends what fits under the output cap; the rest is read and dropped, so the command is
/// never blocked on a full channel.
fn extend_capped(kept: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_OUTPUT_BYTES.saturating_sub(kept.len());
    kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// Backoff for polling an idle channel.
struct Idle {
    wait_us: u64,
}

impl Idle {
    fn new() -> Idle {
        Idle {
            wait_us: MIN_IDLE_WAIT_US,
        }
    }

    /// Sleeps if the last round moved nothing; resets after progress.
    fn after(&mut self, progress: bool) {
        if progress {
            self.wait_us = MIN_IDLE_WAIT_US;
            return;
        }
        std::thread::sleep(Duration::from_micros(self.wait_us));
        self.wait_us = (self.wait_us * 2).min(MAX_IDLE_WAIT_US);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(node: &'a Node, dir: &'a Path, cmd: &'a Cmd) -> Job<'a> {
        Job {
            node,
            node_dir: dir,
            cmd,
            open_timeout_ms: 1000,
            kill_timeout_ms: 1000,
        }
    }

    #[test]
    fn the_marker_is_found_after_login_noise() {
        assert_eq!(
            find_marker(b"__faultline_pgid__ 42"),
            None,
            "line not ended yet"
        );
        let buf = b"motd\nnoise__faultline_pgid__ 42\nout";
        assert_eq!(find_marker(buf), Some((42, buf.len() - 3)));
        assert_eq!(find_marker(b"__faultline_pgid__ x\n"), None);
    }

    #[test]
    fn output_is_capped() {
        let mut kept = vec![0; MAX_OUTPUT_BYTES - 2];
        extend_capped(&mut kept, b"abcd");
        assert_eq!(kept.len(), MAX_OUTPUT_BYTES);
        assert_eq!(&kept[kept.len() - 2..], b"ab");
    }

    /// The wrapper is plain sh: run it here, as sshd would, and check what it sets up.
    #[test]
    fn the_wrapper_enters_the_node_dir_and_names_its_group() {
        let base =
            std::env::temp_dir().join(format!("faultline-ssh-wrapper-{}", std::process::id()));
        let dir = base.join("it's n1");
        let node = Node {
            name: "n1".into(),
            ip: "10.0.0.1".into(),
        };
        let cmd = Cmd::new("pwd; echo $FAULTLINE_NODE $FAULTLINE_NODE_IP; echo $$");
        let out = std::process::Command::new("sh")
            .args(["-c", &wrapper(&job(&node, &dir, &cmd))])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (pgid, rest) = find_marker(text.as_bytes()).unwrap();
        let lines: Vec<&str> = text[rest..].lines().collect();
        assert_eq!(lines[0], dir.canonicalize().unwrap().display().to_string());
        assert_eq!(lines[1], "n1 10.0.0.1");
        assert_eq!(
            lines[2],
            pgid.to_string(),
            "the command keeps the wrapper's pid"
        );
        let _ = std::fs::remove_dir_all(base);
    }
}
