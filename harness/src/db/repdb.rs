//! Faultline's replicated database (`systems/repdb`) as a system under test, deployed like
//! the coordination service: `faultline node repdb ...` is the controller's own binary
//! ([`OwnNode`]), local nodes dial their peers through proxies that partitions cut, clock
//! faults move the offset file each node reads, and disk faults hit `data/` and Zab's `txn`
//! log. Every node is a full replica; the Zab leader is the primary (primary-copy mode) and
//! what "isolate the primaries" isolates.
//!
//! The replication mode, read sets and planted bugs are chosen at deploy time
//! (`--replication`, `--no-read-sets`, `--bug`) and given to every replica alike: replicas
//! that certify by different rules would diverge for a reason nobody tests.

use super::own_node::OwnNode;
use super::{Cluster, Db, DbError};
use crate::control::daemon::sh_quote;
use crate::control::{clock, Node};
use machine::{wire, NodeId};
use repdb::proto::{Request, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::LazyLock;
use std::time::Duration;

pub const CLIENT_PORT: u16 = 7000;
pub const PEER_PORT: u16 = 7001;
const SYSTEM: &str = "repdb";
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Replicas a cluster may have (Zab's quorums stay cheap, the apply logs comparable).
const MAX_NODES: usize = 9;
/// The mode when `--replication` is not given.
pub const DEFAULT_MODE: &str = "certification";

/// The planted bugs `--bug` takes, as repdb's own table names them.
pub static BUG_NAMES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| repdb::config::BUG_TABLE.iter().map(|(n, _)| *n).collect());

/// The replicated database, configured.
#[derive(Debug)]
pub struct Repdb {
    pub replication: String,
    pub read_sets: bool,
    pub bugs: Vec<String>,
    /// The run's seed: each node's core is seeded from it.
    pub seed: u64,
    /// The delegates' read phase (`--read-phase-ms`); the node's default when None.
    pub read_phase_ms: Option<u64>,
    own: OwnNode,
}

/// `--read-phase-ms` is repdb's, in whole ticks; the error is for the user (exit 254).
pub fn validate_read_phase(system: &str, read_phase_ms: Option<u64>) -> Result<(), String> {
    let Some(ms) = read_phase_ms else {
        return Ok(());
    };
    if system != SYSTEM {
        return Err(format!(
            "--read-phase-ms is how long a repdb delegate executes; {system} has no read phase"
        ));
    }
    repdb::RepdbConfig::default()
        .with_read_phase_ms(ms)
        .map(|_| ())
        .map_err(|e| format!("repdb: {e}"))
}

/// Whether the repdb flags make a configuration: `--replication` and `--no-read-sets` are
/// repdb's alone, and its modes, read sets and bugs must go together. The error is for the
/// user (exit 254).
pub fn validate_flags(
    system: &str,
    replication: Option<&str>,
    no_read_sets: bool,
    bugs: &[String],
) -> Result<(), String> {
    if system != SYSTEM {
        if let Some(mode) = replication {
            return Err(format!(
                "--replication {mode:?} chooses how repdb replicates; {system} has no modes"
            ));
        }
        if no_read_sets {
            return Err(format!(
                "--no-read-sets is a repdb flag; {system} has no read sets"
            ));
        }
        return Ok(());
    }
    repdb::RepdbConfig::from_flags(
        replication.unwrap_or(DEFAULT_MODE),
        no_read_sets,
        bugs.iter().map(String::as_str),
    )
    .map(|_| ())
    .map_err(|e| format!("repdb: {e}"))
}

impl Repdb {
    pub fn new(replication: Option<&str>, read_sets: bool, bugs: Vec<String>, seed: u64) -> Repdb {
        Repdb {
            replication: replication.unwrap_or(DEFAULT_MODE).to_string(),
            read_sets,
            bugs,
            seed,
            read_phase_ms: None,
            own: OwnNode::new(SYSTEM, PEER_PORT),
        }
    }

    fn command(&self, cluster: &Cluster, node: &Node) -> Result<String, DbError> {
        let id = self.own.node_id(cluster, node)?;
        let mut cmd = vec![
            self.own.binary(cluster),
            "node repdb".into(),
            format!("--id {id}"),
            format!("--peers {}", self.own.peers_arg(cluster, node)?),
            format!("--peer-listen {}:{PEER_PORT}", node.ip),
            format!("--client-listen {}:{CLIENT_PORT}", node.ip),
            "--data data".into(),
            format!("--cluster {}", sh_quote(&cluster.run_id)),
            format!(
                "--seed {}",
                self.seed ^ u64::from(id).wrapping_mul(0x9e37_79b9)
            ),
            format!("--clock-offset-file {}", clock::OFFSET_FILE),
            format!("--replication {}", sh_quote(&self.replication)),
        ];
        if !self.read_sets {
            cmd.push("--no-read-sets".into());
        }
        if let Some(ms) = self.read_phase_ms {
            cmd.push(format!("--read-phase-ms {ms}"));
        }
        cmd.extend(self.bugs.iter().map(|b| format!("--bug {}", sh_quote(b))));
        Ok(cmd.join(" "))
    }
}

/// A replica's status: (its id, the leader it knows, whether it serves).
pub fn status(addr: SocketAddr) -> std::io::Result<(NodeId, Option<NodeId>, bool)> {
    let mut s = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))?;
    s.set_write_timeout(Some(PROBE_TIMEOUT))?;
    let frame = wire::encode(&Request::Status).map_err(std::io::Error::other)?;
    s.write_all(&frame)?;
    let mut header = [0u8; wire::HEADER_BYTES];
    s.read_exact(&mut header)?;
    let mut body = vec![0; wire::body_len(header).map_err(std::io::Error::other)?];
    s.read_exact(&mut body)?;
    match wire::decode(&body).map_err(std::io::Error::other)? {
        Response::Status {
            replica,
            leader,
            serving,
            ..
        } => Ok((replica, leader, serving)),
        other => Err(std::io::Error::other(format!("not a status: {other:?}"))),
    }
}

impl Db for Repdb {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn preflight(&self, cluster: &Cluster) -> Result<(), DbError> {
        let setup = |what: String| DbError::Setup {
            system: SYSTEM,
            what,
        };
        let n = cluster.nodes.len();
        if !(1..=MAX_NODES).contains(&n) {
            return Err(setup(format!("runs 1 to {MAX_NODES} replicas, not {n}")));
        }
        validate_flags(SYSTEM, Some(&self.replication), !self.read_sets, &self.bugs)
            .map_err(setup)?;
        self.own.own_binary().map(|_| ())
    }

    fn setup(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        self.own.install(cluster, node, &self.data_dir())?;
        self.start(cluster, node)
    }

    fn wait_ready(
        &self,
        _cluster: &Cluster,
        node: &Node,
        timeout: Duration,
    ) -> Result<(), DbError> {
        self.own
            .wait_serving(node, timeout, || match status(self.client_addr(node)) {
                Ok((_, _, true)) => Ok(()),
                Ok((_, leader, false)) => Err(format!("not serving yet (leader {leader:?})")),
                Err(e) => Err(e.to_string()),
            })
    }

    /// Every replica that says it leads: a deposed leader may still think so.
    fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        super::nodes_where(
            cluster,
            |n| matches!(status(self.client_addr(n)), Ok((id, Some(leader), _)) if id == leader),
        )
    }

    super::own_node::shared_db_methods!(CLIENT_PORT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_repdbs_and_must_make_a_configuration() {
        assert_eq!(validate_flags("repdb", None, false, &[]), Ok(()));
        assert_eq!(
            validate_flags("repdb", Some("weak-voting"), true, &[]),
            Ok(())
        );
        let e = validate_flags("repdb", Some("eager"), false, &[]).unwrap_err();
        assert!(e.contains("unknown replication mode \"eager\""), "{e}");
        let e = validate_flags("repdb", Some("lazy"), true, &[]).unwrap_err();
        assert!(e.contains("--no-read-sets applies to"), "{e}");
        let e = validate_flags("etcd", Some("lazy"), false, &[]).unwrap_err();
        assert!(e.contains("etcd has no modes"), "{e}");
        assert!(validate_flags("coord", None, true, &[]).is_err());
        assert_eq!(validate_read_phase("repdb", Some(0)), Ok(()));
        assert_eq!(validate_read_phase("coord", None), Ok(()));
        let e = validate_read_phase("repdb", Some(7)).unwrap_err();
        assert!(e.contains("multiple of 10"), "{e}");
        let e = validate_read_phase("twopc", Some(10)).unwrap_err();
        assert!(e.contains("twopc has no read phase"), "{e}");
        assert_eq!(validate_flags("coord", None, false, &[]), Ok(()));
    }

    #[test]
    fn the_bug_names_are_repdbs_own() {
        assert!(BUG_NAMES.contains(&"apply-before-delivery"));
        assert!(BUG_NAMES.contains(&"nondeterministic-certification"));
        let bugs: Vec<String> = BUG_NAMES.iter().map(|b| b.to_string()).collect();
        assert_eq!(validate_flags("repdb", None, false, &bugs), Ok(()));
    }

    #[test]
    fn every_replica_is_told_the_same_mode_read_sets_and_bugs() {
        let dir = std::env::temp_dir().join(format!("faultline-repdb-cmd-{}", std::process::id()));
        let nodes: Vec<Node> = (1..=3)
            .map(|i| Node {
                name: format!("n{i}"),
                ip: format!("127.0.0.{i}"),
            })
            .collect();
        let cluster = Cluster {
            nodes: nodes.clone(),
            remote: std::sync::Arc::new(crate::control::local::Local::new(&dir)),
            backend: super::super::Backend::Local,
            run_id: "run-1".into(),
            lazy_disk: None,
        };
        let db = Repdb::new(
            Some("weak-voting"),
            false,
            vec!["apply-before-delivery".into()],
            7,
        );
        for node in &nodes {
            let cmd = db.command(&cluster, node).unwrap();
            assert!(cmd.contains(" node repdb --id "), "{cmd}");
            assert!(cmd.contains("--replication 'weak-voting'"), "{cmd}");
            assert!(cmd.contains("--no-read-sets"), "{cmd}");
            assert!(cmd.contains("--bug 'apply-before-delivery'"), "{cmd}");
            assert!(cmd.contains("--peers 1=127.0.0.1:7001,2=127.0.0.2:7001,3=127.0.0.3:7001"));
        }
        let plain = Repdb::new(None, true, Vec::new(), 7);
        let cmd = plain.command(&cluster, &nodes[0]).unwrap();
        assert!(cmd.contains("--replication 'certification'"), "{cmd}");
        assert!(
            !cmd.contains("--no-read-sets") && !cmd.contains("--bug"),
            "{cmd}"
        );
    }
}
