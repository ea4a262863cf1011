//! The SSH backend: nodes are real hosts (VMs, or containers running sshd) reached with
//! key authentication through libssh2.
//!
//! Paths mean what they mean in every backend: a node's directory is `root/<node>` on the
//! host (a relative `root` is relative to the login's home, where both the remote shell and
//! the SFTP server start), and remote paths are relative to it; absolute paths and `..` are
//! refused.
//!
//! Sessions are pooled per node (the `pool` submodule says why): a libssh2 session blocks
//! every channel on it while one waits, so concurrent calls on one node each lease their own
//! authenticated session (up to [`SshConfig::max_sessions_per_node`]) instead of queueing
//! behind one mutex; idle sessions are reused, and one found dead is replaced transparently.

mod connect;
mod exec;
mod files;
mod known_hosts;
mod pool;

use super::{Cmd, ControlError, Node, Output, Remote};
use pool::Pool;
use ssh2::Session;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How to reach and authenticate to the nodes' hosts.
#[derive(Clone, Debug)]
pub struct SshConfig {
    /// The login on every host.
    pub user: String,
    /// The private key file; `<private_key>.pub` is used alongside when it exists.
    pub private_key: PathBuf,
    /// The sshd port on every host.
    pub port: u16,
    /// Refuse hosts whose key is not in `known_hosts` (or differs from it). Off only for
    /// throwaway hosts: it lets anyone in the middle read and change everything.
    pub strict_host_key_checking: bool,
    /// The OpenSSH known_hosts file the host keys are checked against.
    pub known_hosts: PathBuf,
    /// Bound on each step of connecting: the TCP connect, the handshake, authentication, and
    /// opening a channel on a pooled session (which answers at once when alive).
    pub connect_timeout_ms: u32,
    /// Bound on how long any other blocking SSH step may stall (a file transfer's read or
    /// write, killing a timed-out command). Commands are bounded by their own timeout.
    pub io_timeout_ms: u32,
    /// How many times a failed connect or handshake (refused, reset, timed out) is retried
    /// before the host is reported unreachable.
    pub connect_retries: u32,
    /// The wait before the first retry; it doubles after each.
    pub retry_backoff_ms: u64,
    /// The directory under which each node's directory lives; relative to the login's home
    /// unless absolute.
    pub root: PathBuf,
    /// How many sessions one node may have open at once: more concurrent calls wait for one.
    pub max_sessions_per_node: usize,
}

impl SshConfig {
    /// Defaults: port 22, strict host key checking against `~/.ssh/known_hosts`, 10 s connect
    /// steps, 60 s I/O stalls, 3 retries from 250 ms, nodes under `~/faultline/`, 4 sessions
    /// per node.
    pub fn new(user: impl Into<String>, private_key: impl Into<PathBuf>) -> SshConfig {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
        SshConfig {
            user: user.into(),
            private_key: private_key.into(),
            port: 22,
            strict_host_key_checking: true,
            known_hosts: home.join(".ssh").join("known_hosts"),
            connect_timeout_ms: 10_000,
            io_timeout_ms: 60_000,
            connect_retries: 3,
            retry_backoff_ms: 250,
            root: PathBuf::from("faultline"),
            max_sessions_per_node: 4,
        }
    }
}

/// Why connecting to a host failed. Each names the host, and those the operator can fix say
/// how.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot reach {host}:{port} after {attempts} attempt(s): {cause}")]
    Unreachable {
        host: String,
        port: u16,
        attempts: u32,
        cause: String,
    },
    #[error(
        "refusing {host}:{port}: its host key ({fingerprint}) is not in {known_hosts}; add it \
         (ssh-keyscan -p {port} {host} >> {known_hosts}) or pass \
         --strict-host-key-checking false"
    )]
    UnknownHostKey {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts: String,
    },
    #[error(
        "refusing {host}:{port}: its host key ({fingerprint}) does not match the one \
         {known_hosts} lists for it (the host was reinstalled, or someone is in the middle); \
         if the new key is right, replace the entry (ssh-keygen -R '{entry}' -f {known_hosts}, \
         then ssh-keyscan -p {port} {host} >> {known_hosts}) or pass \
         --strict-host-key-checking false"
    )]
    HostKeyMismatch {
        host: String,
        port: u16,
        entry: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error(
        "refusing {host}:{port}: its host key ({fingerprint}) is marked @revoked in {known_hosts}"
    )]
    RevokedHostKey {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("{user}@{host}:{port}: key authentication with {key} failed: {cause}")]
    Auth {
        user: String,
        host: String,
        port: u16,
        key: String,
        cause: String,
    },
    #[error("{host}:{port}: {action}: {cause}")]
    Session {
        host: String,
        port: u16,
        action: &'static str,
        cause: String,
    },
}

/// How an operation on a leased session failed, which decides whether it is retried and
/// whether the session goes back to the pool.
#[derive(Debug)]
enum OpError {
    /// Failed before it could have had any effect on the host (no channel opened): the
    /// session is presumably dead, and one retry on a fresh session is safe.
    NotStarted(String),
    /// Failed after it may have had effects, so never retried. `keep` when the session is
    /// known to be healthy (a missing file, say).
    Failed { cause: String, keep: bool },
    /// A command outlived its timeout and was killed.
    TimedOut,
}

/// How [`Ssh::with_session`] failed.
#[derive(Debug)]
enum RunError {
    Connect(SshError),
    Op(String),
    TimedOut,
}

/// The SSH backend: see the module documentation.
pub struct Ssh {
    config: SshConfig,
    /// One pool per node, keyed by name and address (a node moved to another address gets
    /// fresh sessions).
    pools: Mutex<HashMap<(String, String), Arc<Pool>>>,
}

impl Ssh {
    /// Connects lazily: nothing is dialled until a node is first used.
    pub fn new(config: SshConfig) -> Ssh {
        Ssh {
            config,
            pools: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    /// The node's directory on its host (relative to the login's home unless `root` is
    /// absolute).
    pub fn node_dir(&self, node: &Node) -> PathBuf {
        self.config.root.join(&node.name)
    }

    /// Connects to the node now (or reuses a pooled session), so that a bad host key, key or
    /// address is reported before a test starts rather than in its middle.
    pub fn check(&self, node: &Node) -> Result<(), SshError> {
        let pool = self.pool(node);
        let lease = pool.lease(false, || connect::connect(&self.config, &node.ip))?;
        lease.keep();
        Ok(())
    }

    /// Closes every pooled session (they reconnect on next use), e.g. after the hosts were
    /// rebuilt.
    pub fn disconnect_all(&self) {
        let pools: Vec<Arc<Pool>> = self.lock_pools().drain().map(|(_, p)| p).collect();
        for pool in pools {
            pool.discard_idle();
        }
    }

    fn lock_pools(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Pool>>> {
        // A panic elsewhere while holding the lock leaves the map itself consistent.
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pool(&self, node: &Node) -> Arc<Pool> {
        let cap = self.config.max_sessions_per_node.max(1);
        self.lock_pools()
            .entry((node.name.clone(), node.ip.clone()))
            .or_insert_with(|| Arc::new(Pool::new(cap)))
            .clone()
    }

    /// Runs `op` on a leased session. A pooled session found dead before `op` had any effect
    /// is replaced by a fresh one and `op` runs again, once: after a host's sshd restarted,
    /// every idle session to it is dead, and callers should not see that.
    fn with_session<T>(
        &self,
        node: &Node,
        op: impl Fn(&Session) -> Result<T, OpError>,
    ) -> Result<T, RunError> {
        let pool = self.pool(node);
        let connect = || connect::connect(&self.config, &node.ip);
        let mut lease = pool.lease(false, connect).map_err(RunError::Connect)?;
        loop {
            match op(lease.session()) {
                Ok(value) => {
                    lease.keep();
                    return Ok(value);
                }
                Err(OpError::NotStarted(cause)) if lease.reused() => {
                    tracing::debug!(node = %node.name, %cause, "pooled SSH session is dead; reconnecting");
                    drop(lease);
                    // Its siblings date from the same sshd, so are likely dead too.
                    pool.discard_idle();
                    lease = pool.lease(true, connect).map_err(RunError::Connect)?;
                }
                Err(OpError::NotStarted(cause)) => return Err(RunError::Op(cause)),
                Err(OpError::Failed { cause, keep }) => {
                    if keep {
                        lease.keep();
                    }
                    return Err(RunError::Op(cause));
                }
                Err(OpError::TimedOut) => return Err(RunError::TimedOut),
            }
        }
    }

    /// The node-relative `remote` as a path on the host, refusing absolute paths and `..`
    /// (as every backend does, so that paths mean the same everywhere).
    fn resolve(
        &self,
        node: &Node,
        remote: &Path,
        action: &'static str,
    ) -> Result<PathBuf, ControlError> {
        super::check_node_relative(node, remote, action)?;
        Ok(self.node_dir(node).join(remote))
    }

    fn file_op(
        &self,
        node: &Node,
        remote: &Path,
        action: &'static str,
        op: impl Fn(&Session) -> Result<(), OpError>,
    ) -> Result<(), ControlError> {
        self.with_session(node, op).map_err(|e| ControlError::File {
            node: node.name.clone(),
            action,
            path: remote.display().to_string(),
            cause: match e {
                RunError::Connect(e) => e.to_string(),
                RunError::Op(cause) => cause,
                RunError::TimedOut => "timed out".into(),
            },
        })
    }
}

impl Remote for Ssh {
    fn exec(&self, node: &Node, cmd: &Cmd) -> Result<Output, ControlError> {
        let job = exec::Job {
            node,
            node_dir: &self.node_dir(node),
            cmd,
            open_timeout_ms: self.config.connect_timeout_ms,
            kill_timeout_ms: self.config.io_timeout_ms,
        };
        self.with_session(node, |session| exec::run(session, &job))
            .map_err(|e| match e {
                RunError::TimedOut => ControlError::Timeout {
                    node: node.name.clone(),
                    script: cmd.script.clone(),
                    timeout: cmd.timeout,
                },
                RunError::Connect(e) => exec_error(node, cmd, e.to_string()),
                RunError::Op(cause) => exec_error(node, cmd, cause),
            })
    }

    fn upload(&self, node: &Node, local: &Path, remote: &Path) -> Result<(), ControlError> {
        let target = self.resolve(node, remote, "upload to")?;
        let io_timeout_ms = self.config.io_timeout_ms;
        self.file_op(node, remote, "upload to", |session| {
            files::upload(session, io_timeout_ms, local, &target)
        })
    }

    fn download(&self, node: &Node, remote: &Path, local: &Path) -> Result<(), ControlError> {
        let source = self.resolve(node, remote, "download")?;
        let io_timeout_ms = self.config.io_timeout_ms;
        self.file_op(node, remote, "download", |session| {
            files::download(session, io_timeout_ms, &source, local)
        })
    }
}

fn exec_error(node: &Node, cmd: &Cmd, cause: String) -> ControlError {
    ControlError::Exec {
        node: node.name.clone(),
        script: cmd.script.clone(),
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_node_relative_paths_are_accepted() {
        let node = Node {
            name: "n1".into(),
            ip: "192.0.2.1".into(),
        };
        for ok in ["a", "data/nested/blob.bin", "./x"] {
            assert!(
                crate::control::check_node_relative(&node, Path::new(ok), "read").is_ok(),
                "{ok}"
            );
        }
        for bad in ["", "/etc/passwd", "../outside", "a/../../b"] {
            assert!(
                crate::control::check_node_relative(&node, Path::new(bad), "read").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn escaping_paths_are_refused_before_connecting() {
        // 192.0.2.1 is a documentation address: were a connection tried, it would fail
        // differently (and slowly).
        let ssh = Ssh::new(SshConfig::new("nobody", "/nonexistent/key"));
        let node = Node {
            name: "n1".into(),
            ip: "192.0.2.1".into(),
        };
        let err = ssh
            .download(&node, Path::new("../x"), Path::new("/tmp/x"))
            .unwrap_err();
        assert!(matches!(err, ControlError::File { ref node, .. } if node == "n1"));
        assert!(err.to_string().contains("relative"), "{err}");
    }

    #[test]
    fn node_dirs_live_under_the_root() {
        let mut config = SshConfig::new("u", "k");
        assert_eq!(config.root, Path::new("faultline"));
        config.root = PathBuf::from("/srv/fl");
        let ssh = Ssh::new(config);
        let node = Node {
            name: "n2".into(),
            ip: "10.0.0.2".into(),
        };
        assert_eq!(ssh.node_dir(&node), Path::new("/srv/fl/n2"));
    }
}
