//! The local backend: every node is a directory on this host, and commands run there as
//! processes of this user. No root needed: the embedded default.
//!
//! Remote paths are relative to the node's directory in every backend, so `exec`, `upload`
//! and `download` agree on what a path means; an absolute path or one with `..` is refused.

use super::{Cmd, ControlError, Node, Output, Remote, MAX_OUTPUT_BYTES};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often a running command is polled for exit or timeout.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// The argv that enters a node's context before `sh -c` runs there (for the netns backend,
/// `ip netns exec <namespace>`), or why the node has none. Lets other backends whose nodes
/// are directories on this host reuse Local's process handling instead of copying it.
pub type EnterNode = dyn Fn(&Node) -> Result<Vec<String>, String> + Send + Sync;

pub struct Local {
    root: PathBuf,
    enter: Option<Box<EnterNode>>,
}

impl Local {
    /// Nodes live under `root/<node>/`.
    pub fn new(root: &Path) -> Local {
        Local {
            root: root.to_path_buf(),
            enter: None,
        }
    }

    /// Like [`Local::new`], but each command runs behind the argv `enter` gives for its node,
    /// with the same directory, stdin, timeout, process-group kill and output cap.
    pub fn entering(
        root: &Path,
        enter: impl Fn(&Node) -> Result<Vec<String>, String> + Send + Sync + 'static,
    ) -> Local {
        Local {
            root: root.to_path_buf(),
            enter: Some(Box::new(enter)),
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
        super::check_node_relative(node, remote, action)?;
        Ok(self.node_dir(node).join(remote))
    }

    /// The full argv: the node's entry, then sudo if needed, then `sh -c script`.
    fn argv(&self, node: &Node, cmd: &Cmd) -> Result<Vec<String>, String> {
        let mut argv = match &self.enter {
            Some(enter) => enter(node)?,
            None => Vec::new(),
        };
        if cmd.sudo && !running_as_root() {
            argv.extend(["sudo".into(), "-n".into()]);
        }
        argv.extend(["sh".into(), "-c".into(), cmd.script.clone()]);
        Ok(argv)
    }

    fn spawn(&self, node: &Node, cmd: &Cmd) -> Result<Child, String> {
        let argv = self.argv(node, cmd)?;
        let dir = self.node_dir(node);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (program, args) = argv.split_first().expect("argv ends with sh -c");
        Command::new(program)
            .args(args)
            .current_dir(&dir)
            .env("FAULTLINE_NODE", &node.name)
            .env("FAULTLINE_NODE_IP", &node.ip)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills everything it started.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{program}: {e}"))
    }
}

impl Remote for Local {
    fn exec(&self, node: &Node, cmd: &Cmd) -> Result<Output, ControlError> {
        let exec_err = |cause: String| ControlError::Exec {
            node: node.name.clone(),
            script: cmd.script.clone(),
            cause,
        };
        let mut child = self.spawn(node, cmd).map_err(exec_err)?;
        let stdin = child.stdin.take();
        let input = cmd.stdin.clone().unwrap_or_default();
        let feeder = std::thread::spawn(move || {
            if let Some(mut pipe) = stdin {
                // A command that exits without reading its input is not an error.
                let _ = pipe.write_all(&input);
            }
        });
        let out = super::capture(child.stdout.take(), MAX_OUTPUT_BYTES);
        let err = super::capture(child.stderr.take(), MAX_OUTPUT_BYTES);
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

    fn host_dir(&self, node: &Node) -> Option<PathBuf> {
        Some(self.node_dir(node))
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

fn kill_group(child: &Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
}

pub(crate) fn running_as_root() -> bool {
    effective_uid() == Some(0)
}

/// This process's effective uid, from /proc (std has no getuid).
pub(crate) fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
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
