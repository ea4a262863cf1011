//! What the reference systems deployed as the controller's own binary (`faultline node
//! SYSTEM ...`, run from `main.rs` before clap) share: where that binary is on each backend,
//! installing it, node ids, and peer addresses, which on the local backend go through a
//! [`LocalNet`] proxy per directed link so that partitions need no root.
//!
//! Whatever `faultline` binary runs the test also runs the nodes, so no second artifact has
//! to be found or kept in step: local and netns nodes run it from where it is, SSH hosts get
//! it uploaded, docker images get it with its libraries.

use super::{Backend, Cluster, DbError};
use crate::control::link_proxy::LocalNet;
use crate::control::{Cmd, Net, Node};
use machine::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where an uploaded node binary goes on SSH hosts, relative to the node directory.
const UPLOADED_BINARY: &str = "bin/faultline";
/// Where docker images hold the node binary.
const IMAGE_BINARY: &str = "/usr/local/bin/faultline";

/// One system's deployment of the controller's binary.
#[derive(Debug)]
pub struct OwnNode {
    system: &'static str,
    /// The port every node's peers dial (directly, or through the local proxies).
    peer_port: u16,
    /// On the local backend: the address node `from` dials to reach node `to`.
    local_links: Mutex<Option<BTreeMap<(String, String), SocketAddr>>>,
}

impl OwnNode {
    pub fn new(system: &'static str, peer_port: u16) -> OwnNode {
        OwnNode {
            system,
            peer_port,
            local_links: Mutex::new(None),
        }
    }

    /// Polls `probe` every 100 ms until it says the node serves, or `timeout` passes; the
    /// error quotes the probe's last answer.
    pub fn wait_serving(
        &self,
        node: &Node,
        timeout: std::time::Duration,
        probe: impl FnMut() -> Result<(), String>,
    ) -> Result<(), DbError> {
        super::wait_serving(self.system, node, timeout, probe)
    }

    /// The system's name, as errors give it.
    pub fn system(&self) -> &'static str {
        self.system
    }

    /// The node daemon's pidfile and log, named after the system.
    pub fn daemon(&self) -> crate::control::daemon::Daemon {
        crate::control::daemon::Daemon {
            pidfile: format!("run/{}.pid", self.system).into(),
            logfile: format!("log/{}.log", self.system).into(),
        }
    }

    pub fn node_err(&self, node: &Node, what: impl Into<String>) -> DbError {
        DbError::Node {
            system: self.system,
            node: node.name.clone(),
            what: what.into(),
        }
    }

    /// The running controller's binary, for preflight: an error says it cannot be found.
    pub fn own_binary(&self) -> Result<PathBuf, DbError> {
        std::env::current_exe().map_err(|e| DbError::Setup {
            system: self.system,
            what: format!("cannot find the running faultline binary to deploy as the node: {e}"),
        })
    }

    /// The command that runs the binary on `cluster`'s nodes, quoted for `sh`.
    pub fn binary(&self, cluster: &Cluster) -> String {
        let path = match cluster.backend {
            // The running controller's own image, which stays the same even if the file
            // it was started from is rebuilt mid-run (restarts would otherwise run another
            // build, or fail on a deleted path).
            Backend::Local | Backend::Netns => format!("/proc/{}/exe", std::process::id()),
            Backend::Ssh => UPLOADED_BINARY.into(),
            Backend::Docker => IMAGE_BINARY.into(),
        };
        crate::control::daemon::sh_quote(&path)
    }

    /// Nodes are numbered 1.. in the cluster's order.
    pub fn node_id(&self, cluster: &Cluster, node: &Node) -> Result<NodeId, DbError> {
        cluster
            .nodes
            .iter()
            .position(|n| n.name == node.name)
            .map(|i| i as NodeId + 1)
            .ok_or_else(|| self.node_err(node, "is not in the cluster"))
    }

    pub fn ip(&self, node: &Node) -> Result<std::net::IpAddr, DbError> {
        node.ip
            .parse()
            .map_err(|_| self.node_err(node, format!("{:?} is not an IP address", node.ip)))
    }

    /// `--peers`: every member as `ID=ADDR`, the address `node` dials to reach it.
    pub fn peers_arg(&self, cluster: &Cluster, node: &Node) -> Result<String, DbError> {
        let mut peers = Vec::new();
        for (i, peer) in cluster.nodes.iter().enumerate() {
            peers.push(format!("{}={}", i + 1, self.peer_addr(node, peer)?));
        }
        Ok(peers.join(","))
    }

    /// The address `node` dials to reach `peer`.
    fn peer_addr(&self, node: &Node, peer: &Node) -> Result<SocketAddr, DbError> {
        if node.name != peer.name {
            if let Some(links) = self.local_links.lock().expect("not poisoned").as_ref() {
                return links
                    .get(&(node.name.clone(), peer.name.clone()))
                    .copied()
                    .ok_or_else(|| self.node_err(node, format!("no proxy to {}", peer.name)));
            }
        }
        Ok(SocketAddr::new(self.ip(peer)?, self.peer_port))
    }

    /// Makes the node's directories (a fresh `log/`), uploads the binary to SSH hosts, and
    /// empties the data directory (mounting it lazily when the run loses unsynced writes).
    pub fn install(&self, cluster: &Cluster, node: &Node, data_dir: &Path) -> Result<(), DbError> {
        cluster
            .remote
            .exec(node, &Cmd::new("rm -rf log && mkdir -p log run bin"))?;
        if cluster.backend == Backend::Ssh {
            cluster
                .remote
                .upload(node, &self.own_binary()?, Path::new(UPLOADED_BINARY))?;
            cluster
                .remote
                .exec(node, &Cmd::new(format!("chmod +x {UPLOADED_BINARY}")))?;
        }
        super::prepare_data_dir(cluster, node, data_dir)?;
        Ok(())
    }

    /// The binary and its libraries, for docker images.
    pub fn image_files(&self) -> Result<Vec<(PathBuf, PathBuf)>, DbError> {
        let exe = self.own_binary()?;
        let mut files = super::binary_with_libs_at(self.system, &exe)?;
        files[0].1 = PathBuf::from(IMAGE_BINARY);
        Ok(files)
    }

    /// A proxy on every directed peer link of a local cluster, which partitions cut; from
    /// now on each node is told to dial its peers through them.
    pub fn local_net(
        &self,
        cluster: &Cluster,
        rt: &tokio::runtime::Handle,
    ) -> Result<Option<Box<dyn Net>>, DbError> {
        let mut targets = Vec::new();
        for n in &cluster.nodes {
            targets.push((n.name.clone(), SocketAddr::new(self.ip(n)?, self.peer_port)));
        }
        let net = rt
            .block_on(LocalNet::start(&targets, "127.0.0.1"))
            .map_err(|e| DbError::Setup {
                system: self.system,
                what: format!("cannot start the peer proxies: {e}"),
            })?;
        let mut links = BTreeMap::new();
        for (from, _) in &targets {
            for (to, _) in targets.iter().filter(|(to, _)| to != from) {
                let addr = net.peer_addr(from, to).expect("a proxy per ordered pair");
                links.insert((from.clone(), to.clone()), addr);
            }
        }
        *self.local_links.lock().expect("not poisoned") = Some(links);
        Ok(Some(Box::new(net)))
    }
}

/// The `Db` methods the own-binary systems (coord, twopc, repdb) share word for word, for
/// a type with an `own: OwnNode` field and a `command(&self, cluster, node)` that builds
/// its node's command line; `$client_port` is where its nodes serve clients. Each keeps
/// its own `name`, `preflight`, `setup`, `wait_ready` and `primaries`.
macro_rules! shared_db_methods {
    ($client_port:expr) => {
        fn start(
            &self,
            cluster: &$crate::db::Cluster,
            node: &$crate::control::Node,
        ) -> Result<(), $crate::db::DbError> {
            let cmd = self.command(cluster, node)?;
            $crate::control::daemon::start(cluster.remote.as_ref(), node, &cmd, &self.daemon())?;
            Ok(())
        }

        fn daemon(&self) -> $crate::control::daemon::Daemon {
            self.own.daemon()
        }

        /// Every node runs under the controllable clock.
        fn clock_faults(&self) -> Result<(), String> {
            Ok(())
        }

        fn disk_faults(&self) -> Result<(), String> {
            Ok(())
        }

        /// The newest segment of the node's `txn` log, where it forces its records.
        fn log_tail(
            &self,
            cluster: &$crate::db::Cluster,
            node: &$crate::control::Node,
        ) -> Result<$crate::db::LogTail, $crate::db::DbError> {
            $crate::db::coord::txn_log_tail(cluster, node, &self.own)
        }

        fn image_files(
            &self,
        ) -> Result<Vec<(std::path::PathBuf, std::path::PathBuf)>, $crate::db::DbError> {
            self.own.image_files()
        }

        fn client_addr(&self, node: &$crate::control::Node) -> std::net::SocketAddr {
            std::net::SocketAddr::new(
                node.ip.parse().expect("node addresses are IPs"),
                $client_port,
            )
        }

        fn local_net(
            &self,
            cluster: &$crate::db::Cluster,
            rt: &tokio::runtime::Handle,
        ) -> Result<Option<Box<dyn $crate::control::Net>>, $crate::db::DbError> {
            self.own.local_net(cluster, rt)
        }
    };
}
pub(crate) use shared_db_methods;
