//! A system Faultline does not know, described by a TOML file (`faultline test --system
//! path/to/system.toml`): how to set up and start a node, which port its clients use, which
//! workloads it runs, where it keeps its data and logs. Its clients speak JSON lines
//! (`workloads::jsonl`), so it can be written in any language: over TCP to the client port,
//! or, with a `[client]` table, through a client process per worker on the controller that
//! reads request lines on its stdin and writes response lines on its stdout, and reaches the
//! system by its own means (`workload::custom` fills in its command).
//!
//! The harness runs `start` as a daemon on each node (pid file, log file, SIGKILL, SIGSTOP
//! and SIGCONT for the nemesis), and a node is ready once its client port accepts a
//! connection. Commands may use `{id}` (1-based), `{name}` (`n1`...), `{ip}`,
//! `{client_port}`, `{nodes}` (how many), `{peers}` (every node's `ip:client_port`,
//! comma-separated), `{data}` (the data directory) and `{dir}` (the directory of the system
//! file, for scripts shipped beside it).

use super::{Backend, Cluster, Db, DbError};
use crate::control::daemon::{self, Daemon};
use crate::control::{Cmd, Net, Node};
use serde::Deserialize;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest system file read.
pub const MAX_FILE_BYTES: usize = 64 * 1024;
/// The workloads a system file may list: `register` (reads, writes and compare-and-sets
/// on keys, judged linearizable) and the transactional ones (`list-append`, `rw-register`
/// and `bank`, judged at the isolation level `--isolation` claims, as for PostgreSQL).
pub const WORKLOADS: &[&str] = &["register", "list-append", "rw-register", "bank"];

/// The system file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemFile {
    /// The system's name in logs and reports.
    pub name: String,
    /// Starts one node, in the foreground; the harness daemonizes it.
    pub start: String,
    /// Run once on each node before the first start (install, configure).
    pub setup: Option<String>,
    /// Run on each node at teardown, after the daemon is killed.
    pub teardown: Option<String>,
    /// Where each node serves clients, on its own address.
    pub client_port: u16,
    /// The workloads it runs (their clients send the workload's operations as they are).
    pub workloads: Vec<String>,
    /// The fewest and most nodes it runs on.
    #[serde(default = "one")]
    pub min_nodes: usize,
    #[serde(default = "many")]
    pub max_nodes: usize,
    /// The node-relative directory it persists to; with it, the disk fault class may drop
    /// its unsynced writes.
    pub data_dir: Option<String>,
    /// Further node-relative log files to collect beside the daemon's output.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Clients through a process per worker instead of TCP to `client_port`.
    pub client: Option<ClientTable>,
}

/// The `[client]` table: the client process each worker runs on the controller.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTable {
    /// A shell command, run in the system file's directory, that reads request lines on its
    /// stdin and writes response lines on its stdout. It may use `{id}`, `{ip}`,
    /// `{client_port}` (of the worker's node), `{nodes}`, `{peers}`, `{worker}` and `{dir}`.
    pub command: String,
}

/// Placeholders of node commands that mean nothing to a client command, which runs on the
/// controller for a worker rather than on a node.
const NODE_ONLY_PLACEHOLDERS: &[(&str, &str)] = &[
    (
        "{data}",
        "the node's data directory, which the controller does not see",
    ),
    ("{name}", "a node's name: use {id}"),
];

fn one() -> usize {
    1
}
fn many() -> usize {
    64
}

/// The system a file describes.
#[derive(Clone, Debug)]
pub struct Custom {
    pub file: SystemFile,
    /// The system file's directory, absolute: `{dir}`.
    pub dir: PathBuf,
    /// The name as `Db::name` returns it (made once per process and kept).
    name: &'static str,
}

/// Whether `--system` names a system file rather than a system Faultline knows.
pub fn is_system_file(system: &str) -> bool {
    system.ends_with(".toml")
}

impl Custom {
    /// Reads and checks the file at `path`; the error names the file and the problem.
    pub fn load(path: &Path) -> Result<Custom, String> {
        let shown = path.display();
        let text = crate::store::read_text(path, MAX_FILE_BYTES)?;
        let file: SystemFile =
            toml::from_str(&text).map_err(|e| format!("{shown}: {}", e.to_string().trim_end()))?;
        let bad = |m: String| Err(format!("{shown}: {m}"));
        if file.name.is_empty()
            || !file
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return bad(format!(
                "name {:?} must be letters, digits, - and _",
                file.name
            ));
        }
        if file.start.trim().is_empty() {
            return bad("start is empty: it must start one node".into());
        }
        if file.client_port == 0 {
            return bad("client_port must be a port number, not 0".into());
        }
        if file.workloads.is_empty() {
            return bad(format!(
                "workloads is empty: name the workloads it runs ({})",
                WORKLOADS.join(", ")
            ));
        }
        if let Some(w) = file
            .workloads
            .iter()
            .find(|w| !WORKLOADS.contains(&w.as_str()))
        {
            return bad(format!(
                "workload {w:?}: systems described by a file run {}",
                WORKLOADS.join(", ")
            ));
        }
        if file.min_nodes == 0 || file.min_nodes > file.max_nodes {
            return bad(format!(
                "min_nodes ({}) must be at least 1 and at most max_nodes ({})",
                file.min_nodes, file.max_nodes
            ));
        }
        if let Some(d) = &file.data_dir {
            let plain = Path::new(d)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if d.is_empty() || !plain {
                return bad(format!(
                    "data_dir {d:?} must be a relative path inside the node's directory"
                ));
            }
        }
        if let Some(client) = &file.client {
            if client.command.trim().is_empty() {
                return bad(
                    "[client] command is empty: it must start a process that answers request \
                     lines on stdin with response lines on stdout"
                        .into(),
                );
            }
            if let Some((p, what)) = NODE_ONLY_PLACEHOLDERS
                .iter()
                .find(|(p, _)| client.command.contains(p))
            {
                return bad(format!(
                    "[client] command uses {p} ({what}): the client runs on the controller, \
                     once per worker"
                ));
            }
        }
        let dir = std::fs::canonicalize(path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| format!("{shown}: {e}"))?;
        let name: &'static str = Box::leak(file.name.clone().into_boxed_str());
        Ok(Custom { file, dir, name })
    }

    fn data(&self) -> PathBuf {
        PathBuf::from(self.file.data_dir.as_deref().unwrap_or("data"))
    }

    /// `template` with the node's placeholders filled in.
    fn fill(&self, template: &str, cluster: &Cluster, node: &Node) -> Result<String, DbError> {
        let id = cluster
            .nodes
            .iter()
            .position(|n| n.name == node.name)
            .ok_or_else(|| self.node_err(node, "is not in the cluster".into()))?
            + 1;
        let peers: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("{}:{}", n.ip, self.file.client_port))
            .collect();
        Ok(template
            .replace("{id}", &id.to_string())
            .replace("{name}", &node.name)
            .replace("{ip}", &node.ip)
            .replace("{client_port}", &self.file.client_port.to_string())
            .replace("{nodes}", &cluster.nodes.len().to_string())
            .replace("{peers}", &peers.join(","))
            .replace("{data}", &self.data().display().to_string())
            .replace("{dir}", &self.dir.display().to_string()))
    }

    fn node_err(&self, node: &Node, what: String) -> DbError {
        DbError::Node {
            system: self.name,
            node: node.name.clone(),
            what,
        }
    }

    fn run(
        &self,
        cluster: &Cluster,
        node: &Node,
        what: &str,
        template: &str,
    ) -> Result<(), DbError> {
        let script = self.fill(template, cluster, node)?;
        let out = cluster.remote.exec(node, &Cmd::new(script))?;
        if !out.success() {
            let err = String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(2000)
                .collect::<String>();
            return Err(self.node_err(node, format!("{what} failed: {err}")));
        }
        Ok(())
    }
}

impl Db for Custom {
    fn name(&self) -> &'static str {
        self.name
    }

    fn preflight(&self, cluster: &Cluster) -> Result<(), DbError> {
        let n = cluster.nodes.len();
        let (lo, hi) = (self.file.min_nodes, self.file.max_nodes);
        if !(lo..=hi).contains(&n) {
            return Err(DbError::Setup {
                system: self.name,
                what: format!("runs {lo} to {hi} nodes, not {n}: pass --nodes within that"),
            });
        }
        if matches!(cluster.backend, Backend::Docker | Backend::Ssh) {
            return Err(DbError::Setup {
                system: self.name,
                what: format!(
                    "systems described by a file run on the local and netns backends, where \
                     {{dir}} is this machine's {}",
                    self.dir.display()
                ),
            });
        }
        Ok(())
    }

    fn setup(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        cluster
            .remote
            .exec(node, &Cmd::new("rm -rf log && mkdir -p log"))?;
        super::prepare_data_dir(cluster, node, &self.data())?;
        if let Some(setup) = &self.file.setup {
            self.run(cluster, node, "setup", setup)?;
        }
        self.start(cluster, node)
    }

    fn wait_ready(
        &self,
        _cluster: &Cluster,
        node: &Node,
        timeout: Duration,
    ) -> Result<(), DbError> {
        let deadline = Instant::now() + timeout;
        let addr = self.client_addr(node);
        let mut last = String::new();
        while Instant::now() < deadline {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(self.node_err(
            node,
            format!("its client port {addr} did not accept within {timeout:?}: {last}"),
        ))
    }

    fn start(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        let command = self.fill(&self.file.start, cluster, node)?;
        daemon::start(cluster.remote.as_ref(), node, &command, &self.daemon())?;
        Ok(())
    }

    fn daemon(&self) -> Daemon {
        Daemon {
            pidfile: "run/system.pid".into(),
            logfile: "log/system.log".into(),
        }
    }

    fn teardown(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        self.kill(cluster, node)?;
        if let Some(teardown) = &self.file.teardown {
            self.run(cluster, node, "teardown", teardown)?;
        }
        super::remove_data_dir(cluster, node, &self.data())?;
        Ok(())
    }

    fn log_files(&self) -> Vec<PathBuf> {
        let mut logs = vec![self.daemon().logfile];
        logs.extend(self.file.logs.iter().map(PathBuf::from));
        logs
    }

    fn primaries(&self, _cluster: &Cluster) -> Vec<String> {
        Vec::new()
    }

    fn disk_faults(&self) -> Result<(), String> {
        match &self.file.data_dir {
            Some(_) => Ok(()),
            None => Err(format!("{}'s system file names no data_dir", self.name)),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.data()
    }

    fn client_addr(&self, node: &Node) -> SocketAddr {
        SocketAddr::new(
            node.ip.parse().expect("node addresses are IPs"),
            self.file.client_port,
        )
    }

    fn local_net(
        &self,
        _cluster: &Cluster,
        _rt: &tokio::runtime::Handle,
    ) -> Result<Option<Box<dyn Net>>, DbError> {
        // Its peers talk however it likes; on the local backend nothing stands between them
        // to cut. The netns backend partitions it with iptables.
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Custom, String> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sys.toml");
        std::fs::write(&p, text).unwrap();
        Custom::load(&p)
    }

    #[test]
    fn the_example_loads_and_bad_files_name_the_problem() {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pyregister/system.toml");
        let c = Custom::load(&example).unwrap();
        assert_eq!(c.name(), "pyregister");
        assert!(c.dir.ends_with("examples/pyregister"));
        assert!(c.disk_faults().is_ok());
        assert!(
            c.file.client.is_none(),
            "the TCP example has no client process"
        );
        let stdio = example.with_file_name("stdio.toml");
        let c = Custom::load(&stdio).unwrap();
        let command = &c.file.client.as_ref().expect("a [client] table").command;
        assert!(command.contains("client.py"), "{command}");
        let ok = "name = \"s\"\nstart = \"x\"\nclient_port = 9\nworkloads = [\"register\"]\n";
        assert!(load(ok).is_ok());
        let txn = ok.replace(
            "[\"register\"]",
            "[\"list-append\", \"rw-register\", \"bank\"]",
        );
        assert!(load(&txn).is_ok());
        for (text, want) in [
            (
                "name = \"s\"\nclient_port = 9\nworkloads = [\"register\"]\n",
                "missing field `start`",
            ),
            (&format!("{ok}colour = 1\n"), "unknown field `colour`"),
            (
                &ok.replace("[\"register\"]", "[\"lock\"]"),
                "workload \"lock\": systems described by a file run register, list-append",
            ),
            (&ok.replace("[\"register\"]", "[]"), "workloads is empty"),
            (
                &ok.replace("client_port = 9", "client_port = 0"),
                "client_port must be",
            ),
            (
                &ok.replace("name = \"s\"", "name = \"a b\""),
                "must be letters",
            ),
            (&format!("{ok}data_dir = \"../x\"\n"), "data_dir \"../x\""),
            (
                &format!("{ok}min_nodes = 3\nmax_nodes = 2\n"),
                "min_nodes (3)",
            ),
            (
                &format!("{ok}[client]\ncommand = \"  \"\n"),
                "[client] command is empty",
            ),
            (
                &format!("{ok}[client]\ncommand = \"c --data {{data}}\"\n"),
                "[client] command uses {data}",
            ),
            (
                &format!("{ok}[client]\ncommand = \"c {{name}}\"\n"),
                "[client] command uses {name}",
            ),
            (
                &format!("{ok}[client]\ncommand = \"c\"\ntimeout = 3\n"),
                "unknown field `timeout`",
            ),
            (&format!("{ok}[client]\n"), "missing field `command`"),
        ] {
            let e = load(text).unwrap_err();
            assert!(
                e.contains("sys.toml: ") && e.contains(want),
                "{text:?}: {e}"
            );
        }
        assert!(Custom::load(Path::new("/nonexistent/s.toml"))
            .unwrap_err()
            .contains("cannot read /nonexistent/s.toml"));
        assert!(is_system_file("a/b.toml") && !is_system_file("etcd"));
    }
}
