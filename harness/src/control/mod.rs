//! Control: how the controller runs commands and moves files on nodes.
//!
//! Every backend (local processes, network namespaces, SSH, Docker) implements [`Remote`],
//! and every backend passes the same [`conformance`] suite, so DB definitions and nemeses are
//! written once against this interface. Calls are synchronous (SSH sessions are); the async
//! runner calls them from blocking tasks.

pub mod conformance;
pub mod daemon;
pub mod link_proxy;
pub mod local;

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
}
