//! Control: how the controller runs commands and moves files on nodes.
//!
//! Every backend (local processes, network namespaces, SSH, Docker) implements [`Remote`],
//! and every backend passes the same [`conformance`] suite, so DB definitions and nemeses are
//! written once against this interface. Calls are synchronous (SSH sessions are); the async
//! runner calls them from blocking tasks.

pub mod clock;
pub mod conformance;
pub mod daemon;
pub mod docker;
pub mod iptables;
pub mod lazy_disk;
pub mod link_proxy;
pub mod local;
pub mod netns;
pub mod ssh;
pub mod tagged_proxy;

use std::path::Path;
use std::time::Duration;

/// Largest output a command may produce on each stream before it is cut (and the cut noted),
/// so a runaway command cannot exhaust the controller's memory.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// A node as the controller addresses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Short name (`n1`), used in histories and logs.
    pub name: String,
    /// The address clients and peers use.
    pub ip: String,
}

/// A command to run on a node, through `sh -c`.
#[derive(Clone, Debug)]
pub struct Cmd {
    pub script: String,
    pub stdin: Option<Vec<u8>>,
    /// Run as root.
    pub sudo: bool,
    pub timeout: Duration,
}

impl Cmd {
    pub fn new(script: impl Into<String>) -> Cmd {
        Cmd {
            script: script.into(),
            stdin: None,
            sudo: false,
            timeout: Duration::from_secs(60),
        }
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn sudo(mut self) -> Cmd {
        self.sudo = true;
        self
    }

    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = t;
        self
    }
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The exit status; None if a signal ended it.
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Refuses a remote path that is empty, absolute or climbs with `..`: remote paths are
/// relative to the node's directory in every backend, so `exec`, `upload` and `download`
/// agree on what a path means and nothing outside the node's directory is touched.
pub fn check_node_relative(
    node: &Node,
    remote: &Path,
    action: &'static str,
) -> Result<(), ControlError> {
    let plain = remote.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if plain && !remote.as_os_str().is_empty() {
        return Ok(());
    }
    Err(ControlError::File {
        node: node.name.clone(),
        action,
        path: remote.display().to_string(),
        cause: "remote paths are relative to the node's directory, without ..".into(),
    })
}

/// Reads a child's output stream to its end on a thread, keeping at most `limit_bytes` and
/// draining the rest, so the child never blocks on a full pipe and a runaway command cannot
/// exhaust the controller's memory.
pub(crate) fn capture<R: std::io::Read + Send + 'static>(
    stream: Option<R>,
    limit_bytes: usize,
) -> std::thread::JoinHandle<Vec<u8>> {
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
            let room = limit_bytes.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    })
}

/// Errors name the node and what was attempted.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{node}: cannot run {script:?}: {cause}")]
    Exec {
        node: String,
        script: String,
        cause: String,
    },
    #[error("{node}: {script:?} did not finish within {timeout:?}")]
    Timeout {
        node: String,
        script: String,
        timeout: Duration,
    },
    #[error("the {backend} backend cannot {what}")]
    Unsupported { backend: &'static str, what: String },
    #[error("{node}: cannot {action} {path}: {cause}")]
    File {
        node: String,
        action: &'static str,
        path: String,
        cause: String,
    },
}

/// Runs commands and moves files on nodes.
pub trait Remote: Send + Sync {
    /// Runs `cmd` on `node` and waits for it (bounded by `cmd.timeout`; the command is killed
    /// past it).
    fn exec(&self, node: &Node, cmd: &Cmd) -> Result<Output, ControlError>;

    /// Copies a local file to `remote` on the node, creating parent directories.
    fn upload(&self, node: &Node, local: &Path, remote: &Path) -> Result<(), ControlError>;

    /// Copies `remote` from the node to a local file.
    fn download(&self, node: &Node, remote: &Path, local: &Path) -> Result<(), ControlError>;

    /// The node's directory on the controller's own filesystem, for backends whose nodes are
    /// directories of this host (local, netns). Helpers that must live outside a node's
    /// private namespaces (a FUSE mount seen by every later command) run there. None when
    /// the node is elsewhere.
    fn host_dir(&self, _node: &Node) -> Option<std::path::PathBuf> {
        None
    }
}

/// Faults on the links between nodes (fault classes `partition` and `packet`).
///
/// Each backend has its own way: iptables rules inside network namespaces, containers or
/// hosts, or the local backend's per-link TCP proxies. A backend that cannot inject a fault
/// says so with [`ControlError::Unsupported`] when asked, so a test is refused at start
/// instead of pretending.
pub trait Net: Send + Sync {
    /// Makes connectivity equal `grudge` (each node drops traffic from the nodes it names)
    /// and heals every other link. Replaces any earlier partition.
    fn partition(&self, grudge: &crate::partition::Grudge) -> Result<(), ControlError>;

    /// Removes every partition and packet fault.
    fn heal(&self) -> Result<(), ControlError>;

    /// Applies packet faults to every link between nodes, replacing earlier ones; the
    /// default (all zero) removes them.
    fn packet(&self, faults: &PacketFaults) -> Result<(), ControlError>;

    /// Removes whatever the faults installed (rules, chains, qdiscs), for hosts that outlive
    /// the test. Called once at the end, after `heal`.
    fn teardown(&self) -> Result<(), ControlError> {
        Ok(())
    }
}

/// Packet faults on every link, as `tc netem` expresses them.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PacketFaults {
    pub delay_ms: u32,
    pub jitter_ms: u32,
    /// Percent of packets dropped, 0–100.
    pub drop_percent: f64,
    /// Percent of packets duplicated, 0–100.
    pub duplicate_percent: f64,
}

impl PacketFaults {
    pub fn is_none(&self) -> bool {
        *self == PacketFaults::default()
    }
}
