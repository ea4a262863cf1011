//! DB lifecycle: how a system under test is installed, started, faulted and torn down on a
//! cluster's nodes, written once against [`Remote`] so it runs on every backend.
//!
//! Nemeses call `kill`, `pause`, `resume` and `start`; they never know how a system runs.
//! The defaults treat the system as one daemon per node with a pidfile
//! ([`crate::control::daemon`]), which is what most systems are.

pub mod coord;
pub mod custom;
pub mod etcd;
pub mod etcd_wal;
pub mod image;
pub mod jvm;
pub mod own_node;
pub mod postgres;
pub mod repdb;
pub mod twopc;
pub mod twopc_postgres;
pub mod zookeeper;
pub mod zookeeper_txnlog;

use crate::control::daemon::{self, sh_quote, Daemon, State};
use crate::control::lazy_disk::{self, LazyDisk};
use crate::control::{Cmd, ControlError, Net, Node, Remote};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Which kind of backend runs the nodes: a DB may configure itself differently on each
/// (the local backend puts proxies on peer links, for example).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Local,
    Netns,
    Ssh,
    Docker,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Netns => "netns",
            Backend::Ssh => "ssh",
            Backend::Docker => "docker",
        }
    }
}

/// The nodes of one test run and how to reach them.
#[derive(Clone)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub remote: Arc<dyn Remote>,
    pub backend: Backend,
    /// Unique to the run: systems that must not join another run's cluster use it as their
    /// cluster token.
    pub run_id: String,
    /// Set when the disk nemesis loses unsynced writes: each node's data directory is then
    /// mounted on the lazy filesystem ([`prepare_data_dir`]).
    pub lazy_disk: Option<Arc<LazyDisk>>,
}

impl Cluster {
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// Errors name the system, the node and what failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{system} on {node}: {what}")]
    Node {
        system: &'static str,
        node: String,
        what: String,
    },
    #[error("{system}: {what}")]
    Setup { system: &'static str, what: String },
}

/// A system under test, as the harness deploys and faults it.
pub trait Db: Send + Sync {
    fn name(&self) -> &'static str;

    /// Checks, before anything starts, that the system can run on this cluster (binaries
    /// present, backend supported), with an error that says what to install or change.
    fn preflight(&self, cluster: &Cluster) -> Result<(), DbError>;

    /// Installs, configures and starts the system on `node`. Called for every node at once.
    fn setup(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError>;

    /// Returns once `node` serves clients, or fails after `timeout`.
    fn wait_ready(&self, cluster: &Cluster, node: &Node, timeout: Duration) -> Result<(), DbError>;

    /// Starts the system again on `node` after a kill, with its data as the kill left it.
    fn start(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError>;

    /// A command whose first line of output names the installed version, for `test.json`.
    fn version_command(&self) -> String {
        format!("{} --version", self.name())
    }

    /// The daemon that `kill`, `pause` and `resume` signal.
    fn daemon(&self) -> Daemon;

    /// SIGKILL: no chance to flush or say goodbye. False if it was not running.
    fn kill(&self, cluster: &Cluster, node: &Node) -> Result<bool, DbError> {
        let d = self.daemon();
        let was = daemon::signal(cluster.remote.as_ref(), node, &d, "KILL")?;
        wait_gone(cluster.remote.as_ref(), node, &d)?;
        Ok(was)
    }

    /// SIGSTOP. False if it was not running.
    fn pause(&self, cluster: &Cluster, node: &Node) -> Result<bool, DbError> {
        Ok(daemon::signal(
            cluster.remote.as_ref(),
            node,
            &self.daemon(),
            "STOP",
        )?)
    }

    /// SIGCONT.
    fn resume(&self, cluster: &Cluster, node: &Node) -> Result<bool, DbError> {
        Ok(daemon::signal(
            cluster.remote.as_ref(),
            node,
            &self.daemon(),
            "CONT",
        )?)
    }

    /// Stops the system and removes its data from `node`, leaving its logs.
    fn teardown(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        self.kill(cluster, node)?;
        remove_data_dir(cluster, node, &self.data_dir())?;
        Ok(())
    }

    /// Log files on each node (relative remote paths), collected into the store after every
    /// run, failed runs too: the daemon's log unless a system says otherwise.
    fn log_files(&self) -> Vec<PathBuf> {
        vec![self.daemon().logfile]
    }

    /// The log files of one node, for systems whose nodes differ: [`Db::log_files`] unless
    /// a system says otherwise.
    fn node_log_files(&self, _cluster: &Cluster, _node: &Node) -> Vec<PathBuf> {
        self.log_files()
    }

    /// The node-relative file where each node appends its event log (JSON lines for the
    /// event-log checkers, `crate::event_log`), for systems that keep one. It must be among
    /// [`Db::log_files`]; the harness then journals its faults and merges the logs.
    fn events_file(&self) -> Option<PathBuf> {
        None
    }

    /// The nodes that currently lead (for targeted faults); empty when none is known.
    fn primaries(&self, cluster: &Cluster) -> Vec<String>;

    /// Whether the system's daemons run under the controllable clock
    /// ([`crate::control::clock::wrap`]), so clock faults reach them; the error says why not.
    fn clock_faults(&self) -> Result<(), String> {
        Err(format!(
            "{} does not run under a controllable clock",
            self.name()
        ))
    }

    /// Whether disk faults (lost unsynced writes, damaged log tails) can hit this system;
    /// the error says why not. Systems that can name [`Db::data_dir`] and implement
    /// [`Db::log_tail`] say yes.
    fn disk_faults(&self) -> Result<(), String> {
        Err(format!(
            "{} names no data directory or logs for disk faults",
            self.name()
        ))
    }

    /// The node-relative directory that holds everything the system persists: the lazy
    /// filesystem is mounted there when unsynced writes are to be lost.
    fn data_dir(&self) -> PathBuf {
        PathBuf::from("data")
    }

    /// The end of the system's newest write-ahead log on `node`, read while the system is
    /// killed: which file, and where its written records end (logs are often preallocated,
    /// so that is not the file's end).
    fn log_tail(&self, _cluster: &Cluster, node: &Node) -> Result<LogTail, DbError> {
        Err(DbError::Node {
            system: self.name(),
            node: node.name.clone(),
            what: "has no write-ahead log to damage".into(),
        })
    }

    /// Host files to put into node images (the docker backend builds its image from them):
    /// the system's binaries and the shared libraries they load, as (host path, image path).
    fn image_files(&self) -> Result<Vec<(PathBuf, PathBuf)>, DbError> {
        Ok(Vec::new())
    }

    /// Where clients of `node` connect.
    fn client_addr(&self, node: &Node) -> SocketAddr;

    /// On the local backend: the network this system's peers talk over, which a partition
    /// cuts, served by tasks on `rt`. Called before `setup`. `Ok(None)` means the
    /// system cannot be partitioned locally.
    fn local_net(
        &self,
        cluster: &Cluster,
        rt: &tokio::runtime::Handle,
    ) -> Result<Option<Box<dyn Net>>, DbError>;
}

/// Where a write-ahead log's written data ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogTail {
    /// The log file, relative to the node's directory.
    pub file: PathBuf,
    /// Offset just past the last whole record: what a tail fault cuts back from.
    pub records_end: u64,
    /// Where the last whole record starts.
    pub last_record: u64,
    /// The file's length (preallocated logs are longer than their records).
    pub file_len: u64,
    /// The bytes just before `records_end`, up to [`MAX_TAIL_BYTES`].
    pub tail: Vec<u8>,
    /// Where records start within `tail`'s span, as file offsets: a cut there would leave
    /// a log that looks whole, only shorter.
    pub boundaries: Vec<u64>,
}

impl LogTail {
    /// The record starts among `starts` that lie within the span `tail` covers.
    pub fn starts_in_tail(records_end: u64, starts: &[u64]) -> Vec<u64> {
        let from = records_end.saturating_sub(MAX_TAIL_BYTES as u64);
        starts.iter().copied().filter(|&s| s >= from).collect()
    }
}

/// Most bytes of a log's tail a fault may damage.
pub const MAX_TAIL_BYTES: usize = 64 << 10;

/// Refuses a cluster that is not 3 or 5 nodes, for systems that run quorums of those sizes;
/// `members` is what the system calls them.
pub fn require_three_or_five(
    system: &'static str,
    members: &str,
    cluster: &Cluster,
) -> Result<(), DbError> {
    let n = cluster.nodes.len();
    if [3, 5].contains(&n) {
        return Ok(());
    }
    Err(DbError::Setup {
        system,
        what: format!("runs 3 or 5 {members}, not {n}: pass --nodes 3 or --nodes 5"),
    })
}

/// Polls `probe` every 100 ms until it says `node` serves, or `timeout` passes; the error
/// quotes the probe's last answer.
pub fn wait_serving(
    system: &'static str,
    node: &Node,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<(), DbError> {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = String::from("no answer");
    while std::time::Instant::now() < deadline {
        match probe() {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(DbError::Node {
        system,
        node: node.name.clone(),
        what: format!("not serving after {timeout:?}: {last}"),
    })
}

/// Distinguishes the controller's temporary copies of log files.
static TEMP_LOG_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Where the newest log file in the node-relative `dir` ends: `newest` picks its name from
/// what `ls` lists, the file is copied to the controller, and `read` (given the copy and the
/// node-relative path) walks its records. Every system's [`Db::log_tail`] is this with its
/// own framing.
pub fn newest_log_tail<E: std::fmt::Display>(
    cluster: &Cluster,
    node: &Node,
    system: &'static str,
    dir: &str,
    newest: fn(&str) -> Option<String>,
    read: impl Fn(&Path, &Path) -> Result<LogTail, E>,
) -> Result<LogTail, DbError> {
    let node_err = |what: String| DbError::Node {
        system,
        node: node.name.clone(),
        what,
    };
    let list = cluster
        .remote
        .exec(node, &Cmd::new(format!("ls {}", sh_quote(dir))))?;
    let name = newest(&list.stdout_text()).ok_or_else(|| node_err(format!("no log in {dir}")))?;
    let file = PathBuf::from(dir).join(name);
    let local = std::env::temp_dir().join(format!(
        "faultline-log-{}-{}-{}",
        std::process::id(),
        node.name,
        TEMP_LOG_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let tail = cluster
        .remote
        .download(node, &file, &local)
        .map_err(DbError::from)
        .and_then(|()| read(&local, &file).map_err(|e| node_err(e.to_string())));
    let _ = std::fs::remove_file(&local);
    tail
}

/// Makes the node's data directory `dir` empty, and mounts it on the lazy filesystem when
/// the run loses unsynced writes. Systems call this in `setup`.
pub fn prepare_data_dir(cluster: &Cluster, node: &Node, dir: &Path) -> Result<(), ControlError> {
    let (d, synced) = (
        sh_quote(&dir.display().to_string()),
        sh_quote(&lazy_disk::synced_dir(dir).display().to_string()),
    );
    let out = cluster.remote.exec(
        node,
        &Cmd::new(format!("rm -rf {d} {synced} && mkdir -p {d}")),
    )?;
    if !out.success() {
        return Err(ControlError::Exec {
            node: node.name.clone(),
            script: format!("empty {}", dir.display()),
            cause: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    match &cluster.lazy_disk {
        Some(lazy) => lazy.mount(cluster, node, dir),
        None => Ok(()),
    }
}

/// Unmounts the node's data directory if it is lazy, and removes it. Systems call this in
/// `teardown`, after the system is killed.
pub fn remove_data_dir(cluster: &Cluster, node: &Node, dir: &Path) -> Result<(), ControlError> {
    let unmounted = match &cluster.lazy_disk {
        Some(lazy) => lazy.unmount(cluster, node, dir),
        None => Ok(()),
    };
    let (d, synced) = (
        sh_quote(&dir.display().to_string()),
        sh_quote(&lazy_disk::synced_dir(dir).display().to_string()),
    );
    cluster
        .remote
        .exec(node, &Cmd::new(format!("rm -rf {d} {synced}")))?;
    unmounted
}

/// Waits (up to 10 s) until a killed daemon has really exited, so a restart does not race
/// its predecessor for ports and files.
fn wait_gone(remote: &dyn Remote, node: &Node, d: &Daemon) -> Result<(), ControlError> {
    for _ in 0..1000 {
        if daemon::state(remote, node, d)? == State::Gone {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(ControlError::Exec {
        node: node.name.clone(),
        script: "kill -KILL".into(),
        cause: "the daemon was still alive 10 s after SIGKILL".into(),
    })
}

/// `binary` from the controller's PATH with every shared library `ldd` says it loads, each
/// at its own path, so it runs in an image that has nothing else.
pub fn binary_with_libs(
    system: &'static str,
    binary: &str,
) -> Result<Vec<(PathBuf, PathBuf)>, DbError> {
    let path = image::on_path(binary).ok_or_else(|| DbError::Setup {
        system,
        what: format!("no {binary} on the controller's PATH to put in the image"),
    })?;
    binary_with_libs_at(system, &path)
}

/// The binary at `path` with the shared libraries it loads; the binary comes first.
pub fn binary_with_libs_at(
    system: &'static str,
    path: &Path,
) -> Result<Vec<(PathBuf, PathBuf)>, DbError> {
    let setup = |what: String| DbError::Setup { system, what };
    let path = path.to_path_buf();
    let out = std::process::Command::new("ldd")
        .arg(&path)
        .output()
        .map_err(|e| setup(format!("cannot run ldd: {e}")))?;
    let mut files = vec![(path.clone(), path)];
    // Lines look like `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
    // `/lib64/ld-linux-x86-64.so.2 (0x...)`; a static binary has none.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
            files.push((PathBuf::from(lib), PathBuf::from(lib)));
        }
    }
    Ok(files)
}

/// The names of the nodes for which `leads` says yes, asked of all nodes at once, so that
/// paused nodes (which never answer) cost one probe timeout, not one each.
pub fn nodes_where(cluster: &Cluster, leads: impl Fn(&Node) -> bool + Sync) -> Vec<String> {
    std::thread::scope(|s| {
        let leads = &leads;
        let asks: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| (n, s.spawn(move || leads(n))))
            .collect();
        asks.into_iter()
            .filter_map(|(n, ask)| matches!(ask.join(), Ok(true)).then(|| n.name.clone()))
            .collect()
    })
}

/// What a test asks of its system besides the cluster.
#[derive(Clone, Debug, Default)]
pub struct DbOptions {
    /// Planted bugs to switch on (`--bug`); only reference systems have any.
    pub bugs: Vec<String>,
    /// The run's seed, for systems whose nodes are seeded.
    pub seed: u64,
    /// repdb: the replication mode (`--replication`; certification when absent) and
    /// whether certification drops read sets (`--no-read-sets`).
    pub replication: Option<String>,
    pub no_read_sets: bool,
    /// repdb: the delegates' read phase (`--read-phase-ms`).
    pub read_phase_ms: Option<u64>,
    /// The run faults clocks: systems that need a wrapper for that (libfaketime) use it.
    pub clock_faults: bool,
}

/// The systems `faultline test --system` knows.
pub fn by_name(name: &str, options: &DbOptions) -> Option<Arc<dyn Db>> {
    if custom::is_system_file(name) {
        return custom::Custom::load(std::path::Path::new(name))
            .ok()
            .map(|c| Arc::new(c) as Arc<dyn Db>);
    }
    match name {
        "coord" => Some(Arc::new(coord::Coord::new(
            options.bugs.clone(),
            options.seed,
        ))),
        "etcd" => Some(Arc::new(etcd::Etcd::default())),
        "twopc" => Some(Arc::new(twopc::TwoPc::new(
            options.bugs.clone(),
            options.seed,
        ))),
        "postgres" => Some(Arc::new(postgres::Postgres::default())),
        "twopc-postgres" => Some(Arc::new(twopc_postgres::TwoPcPostgres::new(
            options.bugs.clone(),
            options.seed,
        ))),
        "zookeeper" => Some(Arc::new(zookeeper::ZooKeeper::new(options.clock_faults))),
        "repdb" => {
            let mut db = repdb::Repdb::new(
                options.replication.as_deref(),
                !options.no_read_sets,
                options.bugs.clone(),
                options.seed,
            );
            db.read_phase_ms = options.read_phase_ms;
            Some(Arc::new(db))
        }
        _ => None,
    }
}

pub const SYSTEMS: &[&str] = &[
    "coord",
    "etcd",
    "twopc",
    "twopc-postgres",
    "postgres",
    "repdb",
    "zookeeper",
];

/// The planted bugs a system accepts (`--bug`), if it has any.
pub fn bug_names(system: &str) -> &'static [&'static str] {
    match system {
        "coord" => &::coord::server::config::BUG_NAMES,
        "twopc" => &::twopc::BUG_NAMES,
        "twopc-postgres" => &twopc_postgres::BUG_NAMES,
        "repdb" => self::repdb::BUG_NAMES.as_slice(),
        _ => &[],
    }
}
