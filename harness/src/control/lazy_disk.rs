//! Lost unsynced writes on nodes: a system's data directory is mounted on the lazy
//! filesystem ([`crate::lazyfs`], the `faultline-lazyfs` binary) for the whole run, and the
//! disk nemesis tells it to drop what was never synced while the system is killed.
//!
//! Per node, relative to its directory: the mount point is the system's data directory
//! (`data`), what was synced lives in `data.synced`, and the daemon has `run/lazyfs.pid` and
//! `log/lazyfs.log`. Where the node is a directory of this host (local, netns) the daemon
//! runs on the host, outside the namespaces each netns command gets, so every later command
//! sees the mount; elsewhere (ssh) the binary is uploaded and run on the node.
//!
//! Support: root and `/dev/fuse` on the node. The docker backend's containers have neither
//! a FUSE device nor the privilege to mount, so it is refused there.

use super::daemon::{self, sh_quote, Daemon};
use super::local::Local;
use super::{Cmd, ControlError, Node, Remote};
use crate::db::{Backend, Cluster};
use crate::lazyfs::{Dropped, Status, CONTROL_FILE, MAX_DIRTY_MIB};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The binary's name, beside the `faultline` binary that runs the test.
pub const BINARY: &str = "faultline-lazyfs";
/// Where it is uploaded on nodes that are not this host's directories.
const UPLOADED: &str = "bin/faultline-lazyfs";
/// The daemon's log, collected with the system's.
pub const LOG_FILE: &str = "log/lazyfs.log";
/// How long a mount may take to answer.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an unmounted daemon may take to exit before it is killed.
pub const UNMOUNT_GRACE: Duration = Duration::from_secs(2);

fn lazyfs_daemon() -> Daemon {
    Daemon {
        pidfile: "run/lazyfs.pid".into(),
        logfile: LOG_FILE.into(),
    }
}

/// How a run mounts its nodes' data directories on the lazy filesystem.
#[derive(Clone, Debug)]
pub struct LazyDisk {
    /// The binary on the controller.
    pub binary: PathBuf,
    /// Bound on each node's unsynced data held in memory.
    pub max_dirty_mib: u64,
    /// Latency added to every fsync (a slow disk).
    pub sync_delay_ms: u64,
}

fn unsupported(what: String) -> ControlError {
    ControlError::Unsupported {
        backend: "lazy filesystem",
        what,
    }
}

impl LazyDisk {
    /// The binary beside the running executable (`cargo build` puts both there).
    pub fn beside_this_binary(max_dirty_mib: u64) -> Result<LazyDisk, String> {
        if !(1..=MAX_DIRTY_MIB).contains(&max_dirty_mib) {
            return Err(format!(
                "the bound on unsynced data must be 1 to {MAX_DIRTY_MIB} MiB, not {max_dirty_mib}"
            ));
        }
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let binary = exe.with_file_name(BINARY);
        if !binary.is_file() {
            return Err(format!(
                "no {BINARY} beside {} (build it: cargo build -p faultline --bins)",
                exe.display()
            ));
        }
        Ok(LazyDisk {
            binary,
            max_dirty_mib,
            sync_delay_ms: 0,
        })
    }

    /// Whether every node of `cluster` can mount it; the error says why not.
    pub fn check(&self, cluster: &Cluster) -> Result<(), String> {
        if cluster.backend == Backend::Docker {
            return Err(
                "the docker backend's containers have no /dev/fuse and may not mount \
                 filesystems, so unsynced writes cannot be lost there"
                    .into(),
            );
        }
        for node in &cluster.nodes {
            let (remote, on_host) = helper_remote(cluster, node);
            let why = if on_host {
                // The daemon runs as this controller, on this host.
                host_obstacle(
                    super::local::effective_uid(),
                    Path::new("/dev/fuse").exists(),
                )
            } else {
                let probe = "if [ ! -c /dev/fuse ]; then echo 'no /dev/fuse (load the fuse module)'; \
                             elif [ \"$(id -u)\" != 0 ]; then echo \"running as uid $(id -u), not root\"; fi";
                let out = remote
                    .exec(node, &Cmd::new(probe))
                    .map_err(|e| e.to_string())?;
                let said = out.stdout_text().trim().to_string();
                match (said.is_empty(), out.success()) {
                    (true, true) => None,
                    (true, false) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
                    (false, _) => Some(said),
                }
            };
            if let Some(why) = why {
                return Err(format!(
                    "the lazy filesystem cannot be mounted on {}: {why}; it needs root and /dev/fuse",
                    node.name
                ));
            }
        }
        Ok(())
    }

    /// Mounts the lazy filesystem on `dir` (node-relative, created empty) over `dir.synced`,
    /// and waits until it answers.
    pub fn mount(&self, cluster: &Cluster, node: &Node, dir: &Path) -> Result<(), ControlError> {
        let (remote, on_host) = helper_remote(cluster, node);
        let binary = if on_host {
            self.binary.display().to_string()
        } else {
            remote.upload(node, &self.binary, Path::new(UPLOADED))?;
            remote.exec(node, &Cmd::new(format!("chmod 755 {UPLOADED}")))?;
            UPLOADED.to_string()
        };
        let (mnt, backing) = (quoted(dir), quoted(&synced_dir(dir)));
        run_ok(remote.as_ref(), node, &format!("mkdir -p {mnt} {backing}"))?;
        let command = format!(
            "{} --max-dirty-mib {} --sync-delay-ms {} {backing} {mnt}",
            sh_quote(&binary),
            self.max_dirty_mib,
            self.sync_delay_ms
        );
        daemon::start(remote.as_ref(), node, &command, &lazyfs_daemon())?;
        let control = quoted(&dir.join(CONTROL_FILE));
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        while Instant::now() < deadline {
            if remote
                .exec(node, &Cmd::new(format!("[ -e {control} ]")))?
                .success()
            {
                return Ok(());
            }
            if daemon::state(remote.as_ref(), node, &lazyfs_daemon())? == daemon::State::Gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = remote
            .exec(node, &Cmd::new(format!("tail -n 5 {LOG_FILE}")))
            .map(|o| o.stdout_text())
            .unwrap_or_default();
        Err(unsupported(format!(
            "mount {} on {}: it did not come up within {MOUNT_TIMEOUT:?}: {}",
            dir.display(),
            node.name,
            log.trim()
        )))
    }

    /// Unmounts `dir` and stops its daemon. A daemon whose mount is still held elsewhere
    /// (netns members' private mount namespaces hold copies of every mount made before they
    /// started) outlives the unmount: it gets [`UNMOUNT_GRACE`] to finish, then is killed, and
    /// what it held unsynced is lost. Teardown removes the data next anyway.
    pub fn unmount(&self, cluster: &Cluster, node: &Node, dir: &Path) -> Result<(), ControlError> {
        let (remote, _) = helper_remote(cluster, node);
        let mnt = quoted(dir);
        let d = lazyfs_daemon();
        let unmount = format!("fusermount3 -u {mnt} 2>/dev/null || umount {mnt} 2>/dev/null || umount -l {mnt} 2>/dev/null || true");
        remote.exec(node, &Cmd::new(unmount))?;
        let deadline = Instant::now() + UNMOUNT_GRACE;
        while daemon::state(remote.as_ref(), node, &d)? != daemon::State::Gone {
            if Instant::now() >= deadline {
                daemon::signal(remote.as_ref(), node, &d, "KILL")?;
                remote.exec(
                    node,
                    &Cmd::new(format!("umount -l {mnt} 2>/dev/null || true")),
                )?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Drops every write to `dir` that was never synced; says what went.
    pub fn drop_unsynced(
        &self,
        cluster: &Cluster,
        node: &Node,
        dir: &Path,
    ) -> Result<Dropped, ControlError> {
        let (remote, _) = helper_remote(cluster, node);
        let control = quoted(&dir.join(CONTROL_FILE));
        let out = remote.exec(
            node,
            &Cmd::new(format!("printf 'drop\\n' > {control} && cat {control}")),
        )?;
        let status: Status = serde_json::from_slice(&out.stdout)
            .ok()
            .filter(|_| out.success())
            .ok_or_else(|| ControlError::Exec {
                node: node.name.clone(),
                script: format!("drop unsynced writes in {}", dir.display()),
                cause: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })?;
        Ok(status.last_drop)
    }
}

/// Why this host cannot serve lazy mounts, if it cannot: it mounts (and opens every file
/// read-write whatever its mode) as root.
fn host_obstacle(uid: Option<u32>, dev_fuse: bool) -> Option<String> {
    match (uid, dev_fuse) {
        (_, false) => Some("no /dev/fuse (load the fuse module)".into()),
        (Some(0), true) => None,
        (Some(uid), true) => Some(format!("running as uid {uid}, not root")),
        (None, true) => Some("cannot tell which user this is".into()),
    }
}

/// Where a node's synced data lives under a lazy mount on `dir`.
pub fn synced_dir(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".synced");
    PathBuf::from(name)
}

/// What runs the lazy filesystem's daemon and commands for a node: this host, in the node's
/// directory, when the node is one (true); the node's own backend otherwise.
fn helper_remote(cluster: &Cluster, node: &Node) -> (Arc<dyn Remote>, bool) {
    match cluster.remote.host_dir(node) {
        Some(dir) => match dir.parent() {
            Some(root) if root.join(&node.name) == dir => (Arc::new(Local::new(root)), true),
            _ => (cluster.remote.clone(), false),
        },
        None => (cluster.remote.clone(), false),
    }
}

fn quoted(p: &Path) -> String {
    sh_quote(&p.display().to_string())
}

fn run_ok(remote: &dyn Remote, node: &Node, script: &str) -> Result<(), ControlError> {
    let out = remote.exec(node, &Cmd::new(script))?;
    if out.success() {
        return Ok(());
    }
    Err(ControlError::Exec {
        node: node.name.clone(),
        script: script.into(),
        cause: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(remote: Arc<dyn Remote>, backend: Backend) -> Cluster {
        Cluster {
            nodes: vec![Node {
                name: "n1".into(),
                ip: "127.0.0.1".into(),
            }],
            remote,
            backend,
            run_id: "lazy-disk-test".into(),
            lazy_disk: None,
        }
    }

    fn lazy() -> LazyDisk {
        LazyDisk {
            binary: "/nonexistent/faultline-lazyfs".into(),
            max_dirty_mib: 16,
            sync_delay_ms: 0,
        }
    }

    fn root() -> PathBuf {
        std::env::temp_dir().join(format!("faultline-lazy-disk-{}", std::process::id()))
    }

    #[test]
    fn docker_containers_are_refused_with_the_reason() {
        let c = cluster(Arc::new(Local::new(&root())), Backend::Docker);
        let why = lazy().check(&c).unwrap_err();
        assert!(why.contains("docker") && why.contains("/dev/fuse"), "{why}");
    }

    /// A node elsewhere (not a directory of this host, like an SSH host), whose commands
    /// run as an unprivileged user (through util-linux's setpriv).
    struct Unprivileged(Local);

    impl Remote for Unprivileged {
        fn exec(&self, node: &Node, cmd: &Cmd) -> Result<super::super::Output, ControlError> {
            self.0.exec(node, cmd)
        }
        fn upload(&self, node: &Node, local: &Path, remote: &Path) -> Result<(), ControlError> {
            self.0.upload(node, local, remote)
        }
        fn download(&self, node: &Node, remote: &Path, local: &Path) -> Result<(), ControlError> {
            self.0.download(node, remote, local)
        }
    }

    #[test]
    fn nodes_without_root_are_refused_by_uid() {
        let nobody = Local::entering(&root(), |_| {
            Ok([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ]
            .map(String::from)
            .to_vec())
        });
        let c = cluster(Arc::new(Unprivileged(nobody)), Backend::Ssh);
        let why = lazy().check(&c).unwrap_err();
        assert!(why.contains("n1") && why.contains("uid 65534"), "{why}");
        let as_root = cluster(Arc::new(Unprivileged(Local::new(&root()))), Backend::Ssh);
        assert_eq!(
            lazy().check(&as_root),
            Ok(()),
            "this test runs as root with /dev/fuse"
        );
        // A controller that is not root cannot serve local nodes' mounts.
        assert_eq!(
            host_obstacle(Some(1000), true).unwrap(),
            "running as uid 1000, not root"
        );
        assert!(host_obstacle(Some(0), false).unwrap().contains("/dev/fuse"));
        assert_eq!(host_obstacle(Some(0), true), None);
    }

    #[test]
    fn the_binary_must_sit_beside_the_controller_and_limits_hold() {
        assert!(LazyDisk::beside_this_binary(0)
            .unwrap_err()
            .contains("1 to"));
        // Test executables live in target/*/deps, where no faultline-lazyfs is built.
        let missing = LazyDisk::beside_this_binary(16).unwrap_err();
        assert!(
            missing.contains(BINARY) && missing.contains("cargo build"),
            "{missing}"
        );
        assert_eq!(synced_dir(Path::new("data")), Path::new("data.synced"));
    }
}
