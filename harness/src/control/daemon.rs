//! Daemons on nodes: started detached with a pidfile, signalled (kill, pause, resume) as a
//! process group, and inspected. Written over [`Remote::exec`], so every backend has them.
//!
//! The daemon runs `exec`ed under `setsid`: its pid leads its own process group, so signals
//! to `-pid` reach everything it started, and a controller timeout on another command never
//! touches it. Its output is appended to a log file, never sent to the controller's pipes,
//! so a restarted daemon's log still holds what it said before it was killed.

use super::{Cmd, ControlError, Node, Remote};
use std::path::{Path, PathBuf};

/// Where a daemon's pid and log live, relative to the node's directory.
#[derive(Clone, Debug)]
pub struct Daemon {
    pub pidfile: PathBuf,
    pub logfile: PathBuf,
}

/// What /proc says about a daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    /// Stopped by SIGSTOP (paused).
    Stopped,
    /// No such process (or a zombie: it has exited).
    Gone,
}

/// Quotes `s` for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn path_arg(p: &Path) -> String {
    sh_quote(&p.display().to_string())
}

/// Starts `command` as a daemon; returns its pid once it leads its own process group (up to
/// 5 s), so that signals to the group reach it.
pub fn start(
    remote: &dyn Remote,
    node: &Node,
    command: &str,
    d: &Daemon,
) -> Result<u32, ControlError> {
    let (pid, log) = (path_arg(&d.pidfile), path_arg(&d.logfile));
    let script = format!(
        "mkdir -p \"$(dirname {pid})\" \"$(dirname {log})\" || exit 1; \
         setsid sh -c {cmd} >> {log} 2>&1 < /dev/null & p=$!; echo $p > {pid}; \
         for i in $(seq 500); do \
           [ \"$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f3)\" = \"$p\" ] && break; \
           sleep 0.01; \
         done; cat {pid}",
        cmd = sh_quote(&format!("exec {command}"))
    );
    let out = remote.exec(node, &Cmd::new(script.clone()))?;
    out.stdout_text()
        .trim()
        .parse()
        .ok()
        .filter(|_| out.success())
        .ok_or_else(|| ControlError::Exec {
            node: node.name.clone(),
            script,
            cause: format!("no pid: {}", String::from_utf8_lossy(&out.stderr)),
        })
}

/// Sends `signal` (KILL, STOP, CONT, TERM...) to the daemon's process group; false if it is
/// not running (no process, or one that has exited and awaits its parent).
pub fn signal(
    remote: &dyn Remote,
    node: &Node,
    d: &Daemon,
    signal: &str,
) -> Result<bool, ControlError> {
    let script = format!(
        "pid=$(cat {} 2>/dev/null) && \
         st=$(sed 's/.*) //' /proc/\"$pid\"/stat 2>/dev/null | cut -d' ' -f1) && \
         [ -n \"$st\" ] && [ \"$st\" != Z ] && kill -{signal} -\"$pid\" 2>/dev/null",
        path_arg(&d.pidfile)
    );
    Ok(remote.exec(node, &Cmd::new(script))?.success())
}

/// The daemon's state, from /proc/<pid>/stat (read after the command name, which may hold
/// spaces).
pub fn state(remote: &dyn Remote, node: &Node, d: &Daemon) -> Result<State, ControlError> {
    let script = format!(
        "pid=$(cat {} 2>/dev/null) && sed 's/.*) //' /proc/\"$pid\"/stat 2>/dev/null | cut -d' ' -f1",
        path_arg(&d.pidfile)
    );
    let out = remote.exec(node, &Cmd::new(script))?;
    Ok(match out.stdout_text().trim() {
        "T" | "t" => State::Stopped,
        "" | "Z" | "X" => State::Gone,
        _ => State::Running,
    })
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("printf %s {}", sh_quote("a 'b' $HOME \"c\"")),
            ])
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"a 'b' $HOME \"c\"");
    }
}
