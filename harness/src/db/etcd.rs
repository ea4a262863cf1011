//! etcd 3.4 (Debian's `etcd-server`) as a system under test: a 3- or 5-member cluster on any
//! backend, one daemon per node.
//!
//! On the local backend every member listens on its own loopback address, and its advertised
//! peer port is a [`TaggedNet`] proxy in front of the real one, so partitions need no root.
//! etcd names the sender of every peer request in its `X-PeerURLs` header, which is how the
//! proxy tells links apart although all members dial the same advertised address.

use super::{etcd_wal, Backend, Cluster, Db, DbError, LogTail};
use crate::control::daemon::{self, sh_quote, Daemon};
use crate::control::tagged_proxy::{Identify, TaggedNet};
use crate::control::{Cmd, Net, Node};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const CLIENT_PORT: u16 = 2379;
/// The peer port members advertise.
pub const PEER_PORT: u16 = 2380;
/// Where a member really listens for peers on the local backend, behind the proxy.
const LOCAL_PEER_PORT: u16 = 2381;
/// Largest probe response read: status and health replies are a few hundred bytes.
const MAX_PROBE_BYTES: usize = 64 * 1024;
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

const SYSTEM: &str = "etcd";
/// Where a member's WAL segments are, relative to its node directory.
const WAL_DIR: &str = "data/member/wal";

/// etcd, run from the `etcd` binary on each node's PATH.
#[derive(Clone, Debug)]
pub struct Etcd {
    /// Raft heartbeat and election timeouts: short, so that faults show within a short test.
    pub heartbeat_ms: u32,
    pub election_ms: u32,
}

impl Default for Etcd {
    fn default() -> Etcd {
        Etcd {
            heartbeat_ms: 100,
            election_ms: 1000,
        }
    }
}

fn peer_url(node: &Node) -> String {
    format!("http://{}:{PEER_PORT}", node.ip)
}

impl Etcd {
    fn command(&self, cluster: &Cluster, node: &Node) -> String {
        let initial: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("{}={}", n.name, peer_url(n)))
            .collect();
        let listen_peer_port = match cluster.backend {
            Backend::Local => LOCAL_PEER_PORT,
            _ => PEER_PORT,
        };
        let client = format!("http://{}:{CLIENT_PORT}", node.ip);
        [
            "etcd".to_string(),
            format!("--name {}", sh_quote(&node.name)),
            "--data-dir data".into(),
            format!("--listen-client-urls {client}"),
            format!("--advertise-client-urls {client}"),
            format!("--listen-peer-urls http://{}:{listen_peer_port}", node.ip),
            format!("--initial-advertise-peer-urls {}", peer_url(node)),
            format!("--initial-cluster {}", initial.join(",")),
            "--initial-cluster-state new".into(),
            format!("--initial-cluster-token {}", sh_quote(&cluster.run_id)),
            format!("--heartbeat-interval {}", self.heartbeat_ms),
            format!("--election-timeout {}", self.election_ms),
            "--logger zap --log-outputs stderr".into(),
        ]
        .join(" ")
    }

    fn node_err(&self, node: &Node, what: impl Into<String>) -> DbError {
        DbError::Node {
            system: SYSTEM,
            node: node.name.clone(),
            what: what.into(),
        }
    }
}

impl Db for Etcd {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn preflight(&self, cluster: &Cluster) -> Result<(), DbError> {
        super::require_three_or_five(SYSTEM, "members", cluster)?;
        for node in &cluster.nodes {
            let out = cluster.remote.exec(node, &Cmd::new("etcd --version"))?;
            if !out.success() {
                return Err(self.node_err(
                    node,
                    "no etcd binary on the PATH: install Debian's etcd-server",
                ));
            }
        }
        Ok(())
    }

    fn setup(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        cluster
            .remote
            .exec(node, &Cmd::new("rm -rf log && mkdir -p log"))?;
        super::prepare_data_dir(cluster, node, &self.data_dir())?;
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
            match probe(addr, "GET", "/health", "") {
                Ok(body) if body.contains("\"true\"") => return Ok(()),
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(self.node_err(node, format!("not healthy after {timeout:?}: {last}")))
    }

    fn start(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        daemon::start(
            cluster.remote.as_ref(),
            node,
            &self.command(cluster, node),
            &self.daemon(),
        )?;
        Ok(())
    }

    fn daemon(&self) -> Daemon {
        Daemon {
            pidfile: "run/etcd.pid".into(),
            logfile: "log/etcd.log".into(),
        }
    }

    /// Every member that calls itself the leader: during a partition a deposed leader may
    /// still think it leads, and isolating it too is what a targeted fault wants.
    fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        let leads = |n: &Node| {
            probe(self.client_addr(n), "POST", "/v3/maintenance/status", "{}")
                .ok()
                .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
                .is_some_and(|s| {
                    let me = &s["header"]["member_id"];
                    !me.is_null() && *me == s["leader"]
                })
        };
        super::nodes_where(cluster, leads)
    }

    fn clock_faults(&self) -> Result<(), String> {
        Err(
            "etcd is a Go binary, which reads the clock through the vDSO and so bypasses \
             libfaketime"
                .into(),
        )
    }

    fn disk_faults(&self) -> Result<(), String> {
        Ok(())
    }

    /// The newest WAL segment (`data/member/wal/<seq>-<index>.wal`) and where its records
    /// end: segments are preallocated to 64 MB and zero-filled past their records.
    fn log_tail(&self, cluster: &Cluster, node: &Node) -> Result<LogTail, DbError> {
        super::newest_log_tail(
            cluster,
            node,
            SYSTEM,
            WAL_DIR,
            |names| etcd_wal::newest_segment(names.lines()).map(str::to_string),
            etcd_wal::read_tail,
        )
    }

    fn image_files(&self) -> Result<Vec<(PathBuf, PathBuf)>, DbError> {
        super::binary_with_libs(SYSTEM, "etcd")
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
        let mut links = Vec::new();
        for n in &cluster.nodes {
            let ip: std::net::IpAddr = n.ip.parse().map_err(|_| self.node_err(n, "not an IP"))?;
            links.push((
                n.name.clone(),
                SocketAddr::new(ip, PEER_PORT),
                SocketAddr::new(ip, LOCAL_PEER_PORT),
            ));
        }
        let senders: Vec<(String, String)> = cluster
            .nodes
            .iter()
            .map(|n| (peer_url(n), n.name.clone()))
            .collect();
        let _runtime = rt.enter();
        let net =
            TaggedNet::start(&links, identify_sender(senders)).map_err(|e| DbError::Setup {
                system: SYSTEM,
                what: format!("cannot start the peer proxies: {e}"),
            })?;
        Ok(Some(Box::new(net)))
    }
}

/// Reads the sender's advertised peer URL from the `X-PeerURLs` header etcd sets on raft
/// requests.
fn identify_sender(senders: Vec<(String, String)>) -> Identify {
    Arc::new(move |head: &[u8]| {
        let text = std::str::from_utf8(head).ok()?;
        let urls = text.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-peerurls")
                .then(|| value.trim())
        })?;
        urls.split(',').find_map(|url| {
            senders
                .iter()
                .find(|(u, _)| u == url.trim())
                .map(|(_, name)| name.clone())
        })
    })
}

/// One HTTP/1.0 request for control-plane probes (health, leadership), answered by the body.
fn probe(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))?;
    s.set_write_timeout(Some(PROBE_TIMEOUT))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = Vec::new();
    s.take(MAX_PROBE_BYTES as u64).read_to_end(&mut reply)?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP reply"))?;
    let status_ok = head.starts_with("HTTP/1.") && head.split(' ').nth(1) == Some("200");
    if !status_ok {
        let status_line = head.lines().next().unwrap_or("");
        return Err(std::io::Error::other(status_line.to_string()));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_is_named_by_its_peer_url() {
        let id = identify_sender(vec![
            ("http://127.0.0.2:2380".into(), "n1".into()),
            ("http://127.0.0.3:2380".into(), "n2".into()),
        ]);
        let head = b"POST /raft HTTP/1.1\r\nHost: x\r\nX-Peerurls: http://127.0.0.3:2380\r\nX-Server-From: 1f\r\n\r\n";
        assert_eq!(id(head), Some("n2".into()));
        assert_eq!(id(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(id(b"\xff\xfe garbage"), None);
    }
}
