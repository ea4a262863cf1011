//! Faultline's two-phase-commit store (`systems/twopc`) as a system under test, deployed
//! like the coordination service: `faultline node twopc ...` is the controller's own binary
//! ([`OwnNode`]), local nodes dial their peers through proxies that partitions cut, clock
//! faults move the offset file each node reads, and disk faults hit `data/` and the `txn`
//! log. Node 1 coordinates; nodes 2.. hold one shard each.
//!
//! Every node appends its event log to [`EVENTS_FILE`], collected with its logs, so the
//! harness journals its faults and merges everything into the run's `events.jsonl`
//! (`crate::event_log`). That merge orders lines by time: on the SSH backend each host's
//! lines are mapped from its clock to the controller's first (`crate::host_clock`).
//!
//! A node given a snapshot part ([`TwoPc::restoring`]) starts from it (`--restore`): that is
//! how [`restore`] brings a snapshot back in a new cluster.

pub mod restore;

use super::own_node::OwnNode;
use super::{Cluster, Db, DbError};
use crate::control::daemon::sh_quote;
use crate::control::{clock, Node};
use machine::wire;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;
use twopc::proto::{Request, Response};

pub const CLIENT_PORT: u16 = 7000;
pub const PEER_PORT: u16 = 7001;
const SYSTEM: &str = "twopc";
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Where each node appends its event log, relative to its directory.
pub const EVENTS_FILE: &str = "log/events.jsonl";
/// Where a restoring node's snapshot part is put, relative to its directory.
const RESTORE_FILE: &str = "run/restore.part";
/// Nodes a cluster may have: a coordinator and up to eight shards.
const MAX_NODES: usize = 9;

/// The store, with the bugs to plant (`--bug`).
#[derive(Debug)]
pub struct TwoPc {
    pub bugs: Vec<String>,
    /// The run's seed: each node's core is seeded from it.
    pub seed: u64,
    own: OwnNode,
    /// For a restored cluster: each participant's snapshot part, a file on this host, by
    /// node name.
    restore: BTreeMap<String, PathBuf>,
}

impl TwoPc {
    pub fn new(bugs: Vec<String>, seed: u64) -> TwoPc {
        TwoPc {
            bugs,
            seed,
            own: OwnNode::new(SYSTEM, PEER_PORT),
            restore: BTreeMap::new(),
        }
    }

    /// A cluster whose participants start from these snapshot parts (by node name).
    pub fn restoring(seed: u64, parts: BTreeMap<String, PathBuf>) -> TwoPc {
        TwoPc {
            restore: parts,
            ..TwoPc::new(Vec::new(), seed)
        }
    }

    fn command(&self, cluster: &Cluster, node: &Node) -> Result<String, DbError> {
        let restore = self.restore.contains_key(&node.name);
        node_command(&self.own, cluster, node, self.seed, &self.bugs, restore)
    }
}

/// The command line of the store's node on `node` (`--restore` from [`RESTORE_FILE`] when
/// `restore`); also the coordinator of [`super::twopc_postgres`].
pub fn node_command(
    own: &OwnNode,
    cluster: &Cluster,
    node: &Node,
    seed: u64,
    bugs: &[String],
    restore: bool,
) -> Result<String, DbError> {
    let id = own.node_id(cluster, node)?;
    let mut cmd = vec![
        own.binary(cluster),
        "node twopc".into(),
        format!("--id {id}"),
        format!("--peers {}", own.peers_arg(cluster, node)?),
        format!("--peer-listen {}:{PEER_PORT}", node.ip),
        format!("--client-listen {}:{CLIENT_PORT}", node.ip),
        "--data data".into(),
        format!("--cluster {}", sh_quote(&cluster.run_id)),
        format!("--seed {}", seed ^ u64::from(id).wrapping_mul(0x9e37_79b9)),
        format!("--clock-offset-file {}", clock::OFFSET_FILE),
        format!("--events {EVENTS_FILE}"),
    ];
    if restore {
        cmd.push(format!("--restore {RESTORE_FILE}"));
    }
    cmd.extend(bugs.iter().map(|b| format!("--bug {}", sh_quote(b))));
    Ok(cmd.join(" "))
}

/// Asks a node something harmless and returns its answer: a participant answers a query
/// for snapshot 0 (which never exists) with no part, the coordinator refuses it. Neither
/// records an event.
pub fn probe(addr: SocketAddr) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))?;
    s.set_write_timeout(Some(PROBE_TIMEOUT))?;
    let frame =
        wire::encode(&Request::SnapshotState { snapshot: 0 }).map_err(std::io::Error::other)?;
    s.write_all(&frame)?;
    let mut header = [0u8; wire::HEADER_BYTES];
    s.read_exact(&mut header)?;
    let mut body = vec![0; wire::body_len(header).map_err(std::io::Error::other)?];
    s.read_exact(&mut body)?;
    wire::decode(&body).map_err(std::io::Error::other)
}

/// Refuses a cluster that is not a coordinator and 1 to 8 participants.
pub fn require_coordinator_and_participants(
    system: &'static str,
    cluster: &Cluster,
) -> Result<(), DbError> {
    let n = cluster.nodes.len();
    if !(2..=MAX_NODES).contains(&n) {
        return Err(DbError::Setup {
            system,
            what: format!(
                "runs a coordinator and 1 to {} participants: 2 to {MAX_NODES} nodes, not {n}",
                MAX_NODES - 1
            ),
        });
    }
    Ok(())
}

impl Db for TwoPc {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn preflight(&self, cluster: &Cluster) -> Result<(), DbError> {
        let setup = |what: String| DbError::Setup {
            system: SYSTEM,
            what,
        };
        require_coordinator_and_participants(SYSTEM, cluster)?;
        twopc::Bugs::parse(self.bugs.iter().map(String::as_str)).map_err(setup)?;
        for (node, part) in &self.restore {
            if cluster.node(node).is_none() || cluster.nodes[0].name == *node {
                return Err(setup(format!(
                    "no participant {node} to restore a part into (node 1 coordinates)"
                )));
            }
            if !part.is_file() {
                return Err(setup(format!(
                    "the snapshot part for {node}, {}, is not a file",
                    part.display()
                )));
            }
        }
        self.own.own_binary().map(|_| ())
    }

    fn setup(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        self.own.install(cluster, node, &self.data_dir())?;
        if let Some(part) = self.restore.get(&node.name) {
            cluster.remote.upload(node, part, Path::new(RESTORE_FILE))?;
        }
        self.start(cluster, node)
    }

    fn wait_ready(
        &self,
        _cluster: &Cluster,
        node: &Node,
        timeout: Duration,
    ) -> Result<(), DbError> {
        self.own.wait_serving(node, timeout, || {
            probe(self.client_addr(node))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn log_files(&self) -> Vec<PathBuf> {
        vec![self.daemon().logfile, PathBuf::from(EVENTS_FILE)]
    }

    fn events_file(&self) -> Option<PathBuf> {
        Some(PathBuf::from(EVENTS_FILE))
    }

    /// The coordinator, node 1, whether it runs or not: it is the one that leads.
    fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        cluster
            .nodes
            .first()
            .map(|n| n.name.clone())
            .into_iter()
            .collect()
    }

    super::own_node::shared_db_methods!(CLIENT_PORT);
}
