//! Commands run on the host inside a container's network namespace, for network faults.
//!
//! The image has no iptables or tc (and should not need them, nor NET_ADMIN), so rules are
//! installed from outside: `nsenter -t <container init pid> -n` enters only the network
//! namespace, and the host's own iptables and tc binaries edit that namespace's tables. The
//! container's processes see the rules; nothing inside the container can undo them.

use super::super::daemon::sh_quote;
use super::super::local::Local;
use super::super::{Cmd, ControlError, Node, Output, Remote};
use std::collections::BTreeMap;
use std::path::Path;

/// A [`Remote`] whose `exec` runs `sh -c script` on the host, in the node's container's
/// network namespace (as root: `sudo -n` when the controller is not). Files cannot be moved:
/// the node's files are the container's, reached through the Docker backend itself.
pub struct HostNetns {
    /// Runs the host-side processes: its timeout, process-group kill and output cap are
    /// exactly what a host command needs.
    local: Local,
    /// Node name → host pid of the container's init (its network namespace's holder). Taken
    /// once at creation: the backend never restarts containers.
    pids: BTreeMap<String, u32>,
}

impl HostNetns {
    pub(super) fn new(pids: BTreeMap<String, u32>) -> HostNetns {
        // Local wants a working directory per node; these stay empty, one per node name.
        let root = std::env::temp_dir().join("faultline-host-netns");
        HostNetns {
            local: Local::new(&root),
            pids,
        }
    }

    fn pid(&self, node: &Node, script: &str) -> Result<u32, ControlError> {
        self.pids
            .get(&node.name)
            .copied()
            .ok_or_else(|| ControlError::Exec {
                node: node.name.clone(),
                script: script.to_string(),
                cause: "no such container in this Docker cluster".into(),
            })
    }
}

impl Remote for HostNetns {
    fn exec(&self, node: &Node, cmd: &Cmd) -> Result<Output, ControlError> {
        let pid = self.pid(node, &cmd.script)?;
        let entered = Cmd {
            script: format!("exec nsenter -t {pid} -n sh -c {}", sh_quote(&cmd.script)),
            stdin: cmd.stdin.clone(),
            // Entering another namespace needs root whatever the caller asked.
            sudo: true,
            timeout: cmd.timeout,
        };
        self.local
            .exec(node, &entered)
            .map_err(|e| restore_script(e, &cmd.script))
    }

    fn upload(&self, _node: &Node, _local: &Path, _remote: &Path) -> Result<(), ControlError> {
        Err(unsupported("copy files into a network namespace"))
    }

    fn download(&self, _node: &Node, _remote: &Path, _local: &Path) -> Result<(), ControlError> {
        Err(unsupported("copy files out of a network namespace"))
    }
}

fn unsupported(what: &str) -> ControlError {
    ControlError::Unsupported {
        backend: "docker host-netns",
        what: what.into(),
    }
}

/// Errors name the caller's script, not the nsenter wrapping around it.
fn restore_script(e: ControlError, script: &str) -> ControlError {
    match e {
        ControlError::Exec { node, cause, .. } => ControlError::Exec {
            node,
            script: script.into(),
            cause,
        },
        ControlError::Timeout { node, timeout, .. } => ControlError::Timeout {
            node,
            script: script.into(),
            timeout,
        },
        other => other,
    }
}
