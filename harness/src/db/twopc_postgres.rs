//! Real two-phase commit (issue 8): the two-phase-commit store's own coordinator (node 1,
//! `faultline node twopc`, unchanged) drives PostgreSQL 15 servers as its participants.
//! Every other node runs a PostgreSQL server with `max_prepared_transactions` raised
//! ([`Postgres::participant`]) and, beside it, `faultline node twopc-postgres` (the crate
//! `twopc_postgres`), which turns the store's peer protocol into `PREPARE TRANSACTION`,
//! `COMMIT PREPARED` and `ROLLBACK PREPARED`.
//!
//! To clients and checkers this is the store: the same client protocol on the same ports,
//! the same workloads (`bank`, `recovery`), the same event log. A participant node is one
//! machine: a kill stops its PostgreSQL server and its participant process together, as a
//! power cut would, and the restart brings both back; prepared transactions survive in
//! PostgreSQL's files, and the termination protocol settles them.
//!
//! Every backend runs it; on ssh the participants' event lines are stamped by their hosts'
//! clocks, which the merge maps to the controller's (`host_clock`). Refused, with the
//! reason: clock faults (PostgreSQL does not read the controllable clock) and disk faults
//! (its WAL is not Faultline's to damage record by record).

use super::own_node::OwnNode;
use super::postgres::Postgres;
use super::twopc::{
    node_command, probe, require_coordinator_and_participants, CLIENT_PORT, EVENTS_FILE, PEER_PORT,
};
use super::{Cluster, Db, DbError};
use crate::control::daemon::{self, sh_quote, Daemon};
use crate::control::{Net, Node};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use workloads::postgres::{DATABASE, PORT, USER};

const SYSTEM: &str = "twopc-postgres";
/// How long the coordinator's setup waits for its participants to serve, and a restarted
/// participant for its server's recovery.
const SERVE_TIMEOUT: Duration = Duration::from_secs(120);
/// The store's planted bugs that live in its coordinator, the one part of the store this
/// system runs (the participants' bugs have no participant to live in).
pub const BUG_NAMES: [&str; 1] = ["commit-before-log"];

/// The store's coordinator with PostgreSQL participants.
#[derive(Debug)]
pub struct TwoPcPostgres {
    /// Bugs planted in the coordinator (`twopc::BUG_NAMES` that concern it).
    pub bugs: Vec<String>,
    pub seed: u64,
    own: OwnNode,
    pg: Postgres,
}

impl TwoPcPostgres {
    pub fn new(bugs: Vec<String>, seed: u64) -> TwoPcPostgres {
        TwoPcPostgres {
            bugs,
            seed,
            own: OwnNode::new(SYSTEM, PEER_PORT),
            pg: Postgres::participant(),
        }
    }

    fn is_coordinator(&self, cluster: &Cluster, node: &Node) -> bool {
        cluster.nodes.first().is_some_and(|n| n.name == node.name)
    }

    fn command(&self, cluster: &Cluster, node: &Node) -> Result<String, DbError> {
        if self.is_coordinator(cluster, node) {
            return node_command(&self.own, cluster, node, self.seed, &self.bugs, false);
        }
        let id = self.own.node_id(cluster, node)?;
        Ok([
            self.own.binary(cluster),
            "node twopc-postgres".into(),
            format!("--id {id}"),
            format!("--peers {}", self.own.peers_arg(cluster, node)?),
            format!("--peer-listen {}:{PEER_PORT}", node.ip),
            format!("--client-listen {}:{CLIENT_PORT}", node.ip),
            format!("--cluster {}", sh_quote(&cluster.run_id)),
            format!("--postgres {}:{PORT}", node.ip),
            format!("--user {USER} --database {DATABASE}"),
            format!("--events {EVENTS_FILE}"),
        ]
        .join(" "))
    }

    fn start_participant_process(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        let cmd = self.command(cluster, node)?;
        daemon::start(cluster.remote.as_ref(), node, &cmd, &self.daemon())?;
        Ok(())
    }

    /// Returns once `node`'s participant answers clients: it has reached its server.
    fn wait_serving(&self, node: &Node, timeout: Duration) -> Result<(), DbError> {
        self.own.wait_serving(node, timeout, || {
            probe(self.client_addr(node))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

impl Db for TwoPcPostgres {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn preflight(&self, cluster: &Cluster) -> Result<(), DbError> {
        let setup = |what: String| DbError::Setup {
            system: SYSTEM,
            what,
        };
        require_coordinator_and_participants(SYSTEM, cluster)?;
        if let Some(bug) = self.bugs.iter().find(|b| !BUG_NAMES.contains(&b.as_str())) {
            return Err(setup(format!(
                "no bug {bug:?} here: {SYSTEM} plants only {} (its participants are PostgreSQL)",
                BUG_NAMES.join(", ")
            )));
        }
        for node in &cluster.nodes[1..] {
            self.pg.preflight_node(cluster, node)?;
        }
        self.own.own_binary().map(|_| ())
    }

    fn setup(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        self.own.install(cluster, node, &self.data_dir())?;
        if self.is_coordinator(cluster, node) {
            // Started last, so its first dials find every participant listening: a dial
            // that fails backs off, and a transaction's votes would wait out the backoff
            // and time out with no fault to blame.
            let deadline = Instant::now() + SERVE_TIMEOUT;
            for p in &cluster.nodes[1..] {
                self.wait_serving(p, deadline.saturating_duration_since(Instant::now()))?;
            }
            return self.start(cluster, node);
        }
        // initdb, the database, the server; then its participant, which waits for it.
        self.pg.setup(cluster, node)?;
        self.start_participant_process(cluster, node)
    }

    fn wait_ready(&self, cluster: &Cluster, node: &Node, timeout: Duration) -> Result<(), DbError> {
        let deadline = Instant::now() + timeout;
        if !self.is_coordinator(cluster, node) {
            self.pg.wait_ready(cluster, node, timeout)?;
        }
        self.wait_serving(node, deadline.saturating_duration_since(Instant::now()))
    }

    /// The coordinator; or a participant's server (unless it still runs) and process,
    /// returning once the participant serves again: until then its server is recovering,
    /// and the cluster has not healed from the crash (votes sent to it would time out).
    fn start(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        if self.is_coordinator(cluster, node) {
            let cmd = self.command(cluster, node)?;
            daemon::start(cluster.remote.as_ref(), node, &cmd, &self.daemon())?;
            return Ok(());
        }
        let pg = daemon::state(cluster.remote.as_ref(), node, &self.pg.daemon())?;
        if pg == daemon::State::Gone {
            self.pg.start(cluster, node)?;
        }
        self.start_participant_process(cluster, node)?;
        self.wait_serving(node, SERVE_TIMEOUT)
    }

    fn version_command(&self) -> String {
        format!("{}/postgres --version", super::postgres::BIN_DIR)
    }

    /// The coordinator's process, or a participant's (its server is signalled beside it).
    fn daemon(&self) -> Daemon {
        self.own.daemon()
    }

    /// A participant node loses its process and its server together.
    fn kill(&self, cluster: &Cluster, node: &Node) -> Result<bool, DbError> {
        let d = self.daemon();
        let was = daemon::signal(cluster.remote.as_ref(), node, &d, "KILL")?;
        super::wait_gone(cluster.remote.as_ref(), node, &d)?;
        if self.is_coordinator(cluster, node) {
            return Ok(was);
        }
        Ok(self.pg.kill(cluster, node)? || was)
    }

    fn pause(&self, cluster: &Cluster, node: &Node) -> Result<bool, DbError> {
        let was = daemon::signal(cluster.remote.as_ref(), node, &self.daemon(), "STOP")?;
        if self.is_coordinator(cluster, node) {
            return Ok(was);
        }
        Ok(self.pg.pause(cluster, node)? || was)
    }

    fn resume(&self, cluster: &Cluster, node: &Node) -> Result<bool, DbError> {
        let mut was = false;
        if !self.is_coordinator(cluster, node) {
            was = self.pg.resume(cluster, node)?;
        }
        Ok(daemon::signal(cluster.remote.as_ref(), node, &self.daemon(), "CONT")? || was)
    }

    fn log_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.daemon().logfile, PathBuf::from(EVENTS_FILE)];
        files.extend(self.pg.log_files());
        files
    }

    /// The coordinator runs no PostgreSQL server, so it has none of its logs.
    fn node_log_files(&self, cluster: &Cluster, node: &Node) -> Vec<PathBuf> {
        if self.is_coordinator(cluster, node) {
            return vec![self.daemon().logfile, PathBuf::from(EVENTS_FILE)];
        }
        self.log_files()
    }

    fn events_file(&self) -> Option<PathBuf> {
        Some(PathBuf::from(EVENTS_FILE))
    }

    /// The coordinator, node 1.
    fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        cluster
            .nodes
            .first()
            .map(|n| n.name.clone())
            .into_iter()
            .collect()
    }

    fn clock_faults(&self) -> Result<(), String> {
        Err(format!(
            "{SYSTEM}'s participants are PostgreSQL servers, which do not run under the \
             controllable clock"
        ))
    }

    fn disk_faults(&self) -> Result<(), String> {
        Err(format!(
            "{SYSTEM}'s participants keep their state in PostgreSQL's WAL, which Faultline does \
             not damage record by record; use --nemesis kill"
        ))
    }

    /// The node binary (coordinator and participants) and PostgreSQL: one image serves
    /// every node.
    fn image_files(&self) -> Result<Vec<(PathBuf, PathBuf)>, DbError> {
        let mut files = self.own.image_files()?;
        files.extend(self.pg.image_files()?);
        Ok(files)
    }

    fn client_addr(&self, node: &Node) -> SocketAddr {
        SocketAddr::new(
            node.ip.parse().expect("node addresses are IPs"),
            CLIENT_PORT,
        )
    }

    /// Proxies on the peer links (coordinator and participants); a participant reaches
    /// its own server directly, as a process on the same machine would.
    fn local_net(
        &self,
        cluster: &Cluster,
        rt: &tokio::runtime::Handle,
    ) -> Result<Option<Box<dyn Net>>, DbError> {
        self.own.local_net(cluster, rt)
    }
}
