//! Apache ZooKeeper 3.8 (Debian's `zookeeper` package) as a system under test: a 3- or
//! 5-server ensemble, one JVM per node, started without `zkServer.sh` or systemd, so it
//! runs the same on every backend: local, netns and ssh use the node's JVM, and docker puts
//! the controller's JVM and jars into its node image (see [`super::jvm`]).
//!
//! Each server runs `java -cp <jars> QuorumPeerMain conf/zoo.cfg` from its node directory
//! with its data in `data/` (forceSync on: every proposal is fsynced before its ack, the
//! durability Faultline's own coordination service is held to). Ticks are short so that
//! sessions of one second exist and faults show within a short test.
//!
//! On the local backend every server listens on its node's loopback address, and each
//! server's config names its peers by [`LocalNet`] proxies, one per directed link and per
//! peer port (quorum and election), so partitions need no root. ZooKeeper's election
//! handshake announces the sender's own address, which a server with a higher id dials
//! back instead of keeping the connection it received; the election proxies rewrite that
//! address to the reverse link's proxy ([`ElectionHandshake`]), or the channel dialled
//! back would bypass every partition and keep servers voting for leaders they cannot
//! reach.

use super::{zookeeper_txnlog, Cluster, Db, DbError, LogTail};
use crate::control::daemon::{self, sh_quote, Daemon};
use crate::control::link_proxy::{HeadRewrite, LinkOptions, LocalNet};
use crate::control::{clock, Cmd, ControlError, Net, Node, PacketFaults};
use crate::partition::Grudge;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workloads::zookeeper::ensemble::{four_letter, ZOOKEEPER_JAR};

pub const CLIENT_PORT: u16 = 2181;
/// Followers connect to the leader here.
pub const QUORUM_PORT: u16 = 2888;
/// Leader election's connections.
pub const ELECTION_PORT: u16 = 3888;
const SYSTEM: &str = "zookeeper";
/// ZooKeeper's clock: sessions may last 2 to 20 ticks (0.5 s to 5 s).
pub const TICK_MS: u32 = 250;
/// Sessions may ask for up to this (20 ticks by default): the lock workload's store session
/// must outlive the nemesis's pauses.
const MAX_SESSION_TIMEOUT_MS: u32 = 30_000;
/// A follower that hears nothing from its leader for this many ticks gives up on it.
const SYNC_LIMIT_TICKS: u32 = 4;
/// Ticks a follower may take to connect and sync with a new leader.
const INIT_LIMIT_TICKS: u32 = 40;
/// A small heap and a JIT that starts fast: three JVMs share two cores in CI.
const JVM_OPTS: &[&str] = &["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"];
/// slf4j's simple binding, which sends the server's log to its stderr (libslf4j-java).
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";
const CONFIG_FILE: &str = "conf/zoo.cfg";
/// Where a server keeps its transaction logs and snapshots, relative to its node directory.
const TXN_LOG_DIR: &str = "data/version-2";

/// (server, peer) → the (quorum, election) addresses the server dials for the peer.
type PeerLinks = BTreeMap<(String, String), (SocketAddr, SocketAddr)>;

/// ZooKeeper's ensemble, as Debian installs it.
#[derive(Debug, Default)]
pub struct ZooKeeper {
    /// On the local backend: per server, the address it dials for each peer's (quorum,
    /// election) port.
    local_links: Mutex<Option<PeerLinks>>,
    /// Run each JVM under libfaketime (`control::clock::wrap`), so clock faults reach it:
    /// the JVM reads both the wall clock and the monotonic one through libc. Only when the
    /// run faults clocks, as every clock read then costs a read of the offset file.
    clock: bool,
}

impl ZooKeeper {
    pub fn new(clock: bool) -> ZooKeeper {
        ZooKeeper {
            clock,
            ..ZooKeeper::default()
        }
    }

    fn node_err(&self, node: &Node, what: impl Into<String>) -> DbError {
        DbError::Node {
            system: SYSTEM,
            node: node.name.clone(),
            what: what.into(),
        }
    }

    /// `node`'s zoo.cfg; `@DIR@` stands for the node directory, filled in on the node.
    fn config(&self, cluster: &Cluster, node: &Node) -> Result<String, DbError> {
        let mut cfg = format!(
            "tickTime={TICK_MS}\ninitLimit={INIT_LIMIT_TICKS}\nsyncLimit={SYNC_LIMIT_TICKS}\n\
             dataDir=@DIR@/data\nclientPort={CLIENT_PORT}\nclientPortAddress={ip}\n\
             admin.enableServer=false\nmaxClientCnxns=0\nforceSync=yes\n\
             maxSessionTimeout={MAX_SESSION_TIMEOUT_MS}\n\
             4lw.commands.whitelist=srvr,ruok,mntr\nautopurge.purgeInterval=0\n",
            ip = node.ip
        );
        let links = self.local_links.lock().expect("not poisoned");
        for (i, peer) in cluster.nodes.iter().enumerate() {
            let (quorum, election) = match links.as_ref() {
                Some(links) if peer.name != node.name => *links
                    .get(&(node.name.clone(), peer.name.clone()))
                    .ok_or_else(|| self.node_err(node, format!("no proxy to {}", peer.name)))?,
                _ => {
                    let ip = peer
                        .ip
                        .parse()
                        .map_err(|_| self.node_err(peer, format!("{:?} is not an IP", peer.ip)))?;
                    (
                        SocketAddr::new(ip, QUORUM_PORT),
                        SocketAddr::new(ip, ELECTION_PORT),
                    )
                }
            };
            cfg.push_str(&format!(
                "server.{}={}:{}:{}\n",
                i + 1,
                quorum.ip(),
                quorum.port(),
                election.port()
            ));
            // ZooKeeper takes one host per server entry: the two proxies share it.
            debug_assert_eq!(quorum.ip(), election.ip());
        }
        Ok(cfg)
    }

    fn command(&self) -> String {
        let mut cp = ZOOKEEPER_JAR.to_string();
        cp.push_str(&format!(":{SLF4J_SIMPLE_JAR}"));
        [
            "java".to_string(),
            JVM_OPTS.join(" "),
            "-Dorg.slf4j.simpleLogger.showDateTime=true".into(),
            "-Dzookeeper.log.dir=log".into(),
            format!("-cp {}", sh_quote(&cp)),
            MAIN_CLASS.into(),
            CONFIG_FILE.into(),
        ]
        .join(" ")
    }

    /// What the server's `srvr` command says it is: leader, follower, standalone.
    fn mode(&self, node: &Node) -> Result<String, String> {
        let text = four_letter(self.client_addr(node), "srvr").map_err(|e| e.to_string())?;
        text.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(|m| m.trim().to_string())
            .ok_or_else(|| {
                let first = text.lines().next().unwrap_or("nothing");
                format!("not serving: srvr says {first:?}")
            })
    }
}

impl Db for ZooKeeper {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn preflight(&self, cluster: &Cluster) -> Result<(), DbError> {
        super::require_three_or_five(SYSTEM, "servers", cluster)?;
        let probe = format!(
            "command -v java >/dev/null || {{ echo \"no java on the PATH: install Debian's \
             default-jre-headless\"; exit 1; }}; \
             test -f {ZOOKEEPER_JAR} || {{ echo \"no {ZOOKEEPER_JAR}: install Debian's \
             zookeeper\"; exit 1; }}; \
             test -f {SLF4J_SIMPLE_JAR} || {{ echo \"no {SLF4J_SIMPLE_JAR}: install \
             Debian's libslf4j-java\"; exit 1; }}"
        );
        for node in &cluster.nodes {
            let out = cluster.remote.exec(node, &Cmd::new(probe.clone()))?;
            if !out.success() {
                let why = format!(
                    "{}{}",
                    out.stdout_text(),
                    String::from_utf8_lossy(&out.stderr)
                );
                return Err(self.node_err(node, why.trim().to_string()));
            }
        }
        Ok(())
    }

    fn setup(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        let id = cluster
            .nodes
            .iter()
            .position(|n| n.name == node.name)
            .ok_or_else(|| self.node_err(node, "is not in the cluster"))?
            + 1;
        super::prepare_data_dir(cluster, node, &self.data_dir())?;
        let script = format!(
            "rm -rf log conf && mkdir -p log conf run && echo {id} > data/myid && \
             sed \"s|@DIR@|$(pwd)|\" > {CONFIG_FILE}"
        );
        let out = cluster
            .remote
            .exec(node, &Cmd::new(script).stdin(self.config(cluster, node)?))?;
        if !out.success() {
            return Err(self.node_err(
                node,
                format!(
                    "cannot write its config: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        self.start(cluster, node)
    }

    /// A server serves once `srvr` reports a mode: before it has joined a quorum it
    /// answers "This ZooKeeper instance is not currently serving requests".
    fn wait_ready(
        &self,
        _cluster: &Cluster,
        node: &Node,
        timeout: Duration,
    ) -> Result<(), DbError> {
        super::wait_serving(SYSTEM, node, timeout, || self.mode(node).map(|_| ()))
    }

    /// "Apache ZooKeeper, version 3.8.0 2024-12-29 17:54 UTC", from the jar itself.
    fn version_command(&self) -> String {
        format!(
            "java -cp {} org.apache.zookeeper.version.VersionInfoMain",
            sh_quote(ZOOKEEPER_JAR)
        )
    }

    fn start(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        let command = if self.clock {
            // The offset file stays as the nemesis left it across restarts; the first
            // start finds none, and a missing file would leave the clock unfaked.
            let remote = cluster.remote.as_ref();
            let lib = clock::library(remote, node)?;
            let has_offset = remote
                .exec(node, &Cmd::new(format!("[ -f {} ]", clock::OFFSET_FILE)))?
                .success();
            if !has_offset {
                clock::set_offset(remote, node, 0)?;
            }
            clock::wrap(&lib, &self.command())
        } else {
            self.command()
        };
        daemon::start(cluster.remote.as_ref(), node, &command, &self.daemon())?;
        Ok(())
    }

    /// Under libfaketime, when the run faults clocks: ZooKeeper's session expiry runs on the
    /// JVM's monotonic clock, which the fault moves too.
    fn clock_faults(&self) -> Result<(), String> {
        Ok(())
    }

    fn daemon(&self) -> Daemon {
        Daemon {
            pidfile: "run/zookeeper.pid".into(),
            logfile: "log/zookeeper.log".into(),
        }
    }

    /// Every proposal is fsynced before its ack (`forceSync=yes`), so losing unsynced writes
    /// is fair; the log's tail is found by walking its records.
    fn disk_faults(&self) -> Result<(), String> {
        Ok(())
    }

    /// The newest transaction log (`data/version-2/log.<zxid>`) and where its records end:
    /// logs are preallocated in 64 MB steps and zero-filled past their records.
    fn log_tail(&self, cluster: &Cluster, node: &Node) -> Result<LogTail, DbError> {
        super::newest_log_tail(
            cluster,
            node,
            SYSTEM,
            TXN_LOG_DIR,
            |names| zookeeper_txnlog::newest_log(names.lines()).map(str::to_string),
            zookeeper_txnlog::read_tail,
        )
    }

    fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        super::nodes_where(cluster, |n| self.mode(n).is_ok_and(|m| m == "leader"))
    }

    /// The controller's JVM (see [`super::jvm`]) and every jar in Debian's /usr/share/java:
    /// zookeeper.jar's manifest names a score of them by path, and reading a manifest means
    /// inflating a zip entry, which is not worth a dependency here.
    fn image_files(&self) -> Result<Vec<(PathBuf, PathBuf)>, DbError> {
        let mut files = super::jvm::image_files(SYSTEM)?;
        let jars = Path::new(ZOOKEEPER_JAR)
            .parent()
            .expect("the jar's path has a directory");
        let is_jar = |p: &Path| p.extension().is_some_and(|x| x == "jar");
        files.extend(
            super::image::tree(SYSTEM, jars, &[])?
                .into_iter()
                .filter(|(_, in_image)| is_jar(in_image)),
        );
        for needed in [ZOOKEEPER_JAR, SLF4J_SIMPLE_JAR] {
            if !files.iter().any(|(_, i)| i == Path::new(needed)) {
                return Err(DbError::Setup {
                    system: SYSTEM,
                    what: format!("no {needed} to put in the image: install Debian's zookeeper and libslf4j-java"),
                });
            }
        }
        Ok(files)
    }

    fn client_addr(&self, node: &Node) -> SocketAddr {
        SocketAddr::new(
            node.ip.parse().expect("node addresses are IPs"),
            CLIENT_PORT,
        )
    }

    fn local_net(
        &self,
        cluster: &Cluster,
        rt: &tokio::runtime::Handle,
    ) -> Result<Option<Box<dyn Net>>, DbError> {
        let targets = |port: u16| -> Result<Vec<(String, SocketAddr)>, DbError> {
            cluster
                .nodes
                .iter()
                .map(|n| {
                    let ip =
                        n.ip.parse()
                            .map_err(|_| self.node_err(n, format!("{:?} is not an IP", n.ip)))?;
                    Ok((n.name.clone(), SocketAddr::new(ip, port)))
                })
                .collect()
        };
        let setup_err = |e: std::io::Error| DbError::Setup {
            system: SYSTEM,
            what: format!("cannot start the peer proxies: {e}"),
        };
        // A new leader opens its quorum port a moment after the election that made it.
        let patience = Duration::from_millis(u64::from(TICK_MS) * 4);
        let quorum = rt
            .block_on(LocalNet::start_with(
                &targets(QUORUM_PORT)?,
                "127.0.0.1",
                |_, _, _| LinkOptions {
                    rewrite: None,
                    connect_patience: patience,
                },
            ))
            .map_err(setup_err)?;
        let election = rt
            .block_on(LocalNet::start_with(
                &targets(ELECTION_PORT)?,
                "127.0.0.1",
                |from, to, addr_of| {
                    let reverse = addr_of(to, from);
                    LinkOptions {
                        rewrite: Some(Arc::new(ElectionHandshake { reverse })),
                        connect_patience: Duration::ZERO,
                    }
                },
            ))
            .map_err(setup_err)?;
        let mut links = BTreeMap::new();
        for from in &cluster.nodes {
            for to in cluster.nodes.iter().filter(|to| to.name != from.name) {
                let pair = (from.name.clone(), to.name.clone());
                let q = quorum.peer_addr(&from.name, &to.name);
                let e = election.peer_addr(&from.name, &to.name);
                let (Some(q), Some(e)) = (q, e) else {
                    return Err(DbError::Setup {
                        system: SYSTEM,
                        what: format!("no proxy from {} to {}", from.name, to.name),
                    });
                };
                links.insert(pair, (q, e));
            }
        }
        *self.local_links.lock().expect("not poisoned") = Some(links);
        Ok(Some(Box::new(BothLinks { quorum, election })))
    }
}

/// The first message of every election connection: protocol version (i64; negative since
/// 3.5), the sender's id (i64), and the length (i32) and text of the election address it
/// listens on, all big-endian. A server that receives a connection from a lower id drops it
/// and dials back that address, so the proxy puts the reverse link's proxy there: the
/// channel dialled back then crosses a proxy a partition cuts.
struct ElectionHandshake {
    reverse: SocketAddr,
}

/// Longest election address accepted; ZooKeeper itself refuses far shorter ones.
const MAX_ELECTION_ADDR_BYTES: usize = 4096;

impl HeadRewrite for ElectionHandshake {
    fn head_len(&self, bytes: &[u8]) -> Option<usize> {
        let version = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        if version >= 0 {
            // Before 3.5 the first long was the id and no address followed.
            return Some(8);
        }
        let len = i32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        // Past the proxy's head limit: the connection is dropped.
        Some(20usize.saturating_add(len.min(MAX_ELECTION_ADDR_BYTES * 8)))
    }

    fn rewrite(&self, head: &[u8]) -> Vec<u8> {
        if head.len() < 20 {
            return head.to_vec();
        }
        let addr = self.reverse.to_string();
        let mut out = head[..16].to_vec();
        out.extend_from_slice(&(addr.len() as i32).to_be_bytes());
        out.extend_from_slice(addr.as_bytes());
        out
    }
}

/// The quorum and election proxies of a local ensemble, faulted as one network.
struct BothLinks {
    quorum: LocalNet,
    election: LocalNet,
}

impl Net for BothLinks {
    fn partition(&self, grudge: &Grudge) -> Result<(), ControlError> {
        Net::partition(&self.quorum, grudge)?;
        Net::partition(&self.election, grudge)
    }

    fn heal(&self) -> Result<(), ControlError> {
        Net::heal(&self.quorum)?;
        Net::heal(&self.election)
    }

    fn packet(&self, faults: &PacketFaults) -> Result<(), ControlError> {
        Net::packet(&self.quorum, faults)?;
        Net::packet(&self.election, faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(version: i64, sid: i64, addr: &str) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&sid.to_be_bytes());
        b.extend_from_slice(&(addr.len() as i32).to_be_bytes());
        b.extend_from_slice(addr.as_bytes());
        b
    }

    #[test]
    fn the_election_handshake_announces_the_reverse_proxy() {
        let h = ElectionHandshake {
            reverse: "127.0.0.1:40001".parse().unwrap(),
        };
        let head = handshake(-65536, 2, "127.9.9.3:3888");
        // The length is known once the address length is read, not before.
        assert_eq!(h.head_len(&head[..7]), None);
        assert_eq!(h.head_len(&head[..19]), None);
        assert_eq!(h.head_len(&head[..20]), Some(head.len()));
        assert_eq!(h.rewrite(&head), handshake(-65536, 2, "127.0.0.1:40001"));
        // The old protocol sends the id alone.
        assert_eq!(h.head_len(&7i64.to_be_bytes()), Some(8));
        // A negative length is refused (beyond any head the proxy reads).
        let mut bad = handshake(-65535, 2, "x");
        bad[16..20].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(h.head_len(&bad).unwrap() > 16 * 1024);
    }
}
