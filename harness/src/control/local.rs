//! The local backend: every node is a directory on this host, and commands run there as
//! processes of this user. No root needed: the embedded default.
//!
//! Remote paths are relative to the node's directory in every backend, so `exec`, `upload`
//! and `download` agree on what a path means; an absolute path or one with `..` is refused.

use super::{Cmd, ControlError, Node, Output, Remote, MAX_OUTPUT_BYTES};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often a running command is polled for exit or timeout.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

pub struct Local {
    root: PathBuf,
}

impl Local {
    /// Nodes live under `root/<node>/`.
    pub fn new(root: &Path) -> Local {
        Local {
            root: root.to_path_buf(),
        }
    }

    /// The node's working directory, created on first use.
    pub fn node_dir(&self, node: &Node) -> PathBuf {
        self.root.join(&node.name)
    }

    fn resolve(
        &self,
        node: &Node,
        remote: &Path,
        action: &'static str,
    ) -> Result<PathBuf, ControlError> {
        let safe = remote
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !safe || remote.as_os_str().is_empty() {
            return Err(ControlError::File {
                node: node.name.clone(),
                action,
                path: remote.display().to_string(),
                cause: "remote paths are relative to the node's directory, without ..".into(),
            });
        }
        Ok(self.node_dir(node).join(remote))
    }

    fn spawn(&self, node: &Node, cmd: &Cmd) -> std::io::Result<Child> {
        let dir = self.node_dir(node);
        std::fs::create_dir_all(&dir)?;
        let mut command = if cmd.sudo && !running_as_root() {
            let mut c = Command::new("sudo");
            c.args(["-n", "sh", "-c", &cmd.script]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", &cmd.script]);
            c
        };
        command
            .current_dir(&dir)
            .env("FAULTLINE_NODE", &node.name)
            .env("FAULTLINE_NODE_IP", &node.ip)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills everything it started.
            .process_group(0)
            .spawn()
    }
}

impl Remote for Local {
    fn exec(&self, node: &Node, cmd: &Cmd) -> Result<Output, ControlError> {
        let exec_err = |cause: String| ControlError::Exec {
            node: node.name.clone(),
            script: cmd.script.clone(),
            cause,
        };
        let mut child = self.spawn(node, cmd).map_err(|e| exec_err(e.to_string()))?;
        let stdin = child.stdin.take();
        let input = cmd.stdin.clone().unwrap_or_default();
        let feeder = std::thread::spawn(move || {
            if let Some(mut pipe) = stdin {
                // A command that exits without reading its input is not an error.
                let _ = pipe.write_all(&input);
            }
        });
        let out = capture(child.stdout.take());
        let err = capture(child.stderr.take());
        let deadline = Instant::now() + cmd.timeout;
        let status = loop {
            match child.try_wait().map_err(|e| exec_err(e.to_string()))? {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    kill_group(&child);
                    let _ = child.wait();
                    return Err(ControlError::Timeout {
                        node: node.name.clone(),
                        script: cmd.script.clone(),
                        timeout: cmd.timeout,
                    });
                }
                None => std::thread::sleep(POLL_INTERVAL),
            }
        };
        let _ = feeder.join();
        Ok(Output {
            status: status.code(),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }

    fn upload(&self, node: &Node, local: &Path, remote: &Path) -> Result<(), ControlError> {
        let target = self.resolve(node, remote, "upload to")?;
        copy(local, &target).map_err(|cause| ControlError::File {
            node: node.name.clone(),
            action: "upload to",
            path: remote.display().to_string(),
            cause,
        })
    }

    fn download(&self, node: &Node, remote: &Path, local: &Path) -> Result<(), ControlError> {
        let source = self.resolve(node, remote, "download")?;
        copy(&source, local).map_err(|cause| ControlError::File {
            node: node.name.clone(),
            action: "download",
            path: remote.display().to_string(),
            cause,
        })
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", from.display()))
}

/// Reads a stream to its end on a thread, keeping at most `MAX_OUTPUT_BYTES`.
fn capture<R: Read + Send + 'static>(stream: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let Some(mut stream) = stream else {
            return kept;
        };
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = MAX_OUTPUT_BYTES.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    })
}

fn kill_group(child: &Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_backend_passes_conformance() {
        let root = std::env::temp_dir().join(format!("faultline-local-{}", std::process::id()));
        let local = Local::new(&root);
        let node = Node {
            name: "n1".into(),
            ip: "127.0.0.1".into(),
        };
        super::super::conformance::run(&local, &node);
    }
}
