//! A TCP proxy in front of one node's peer port that tells which node each connection comes
//! from by reading its first request, so a local cluster of a foreign system can be
//! partitioned without root.
//!
//! [`LinkProxy`](super::link_proxy::LinkProxy) needs one address per directed link, which a
//! system whose members all dial the same advertised peer address (etcd, ZooKeeper) cannot
//! be configured with: every member learns one peer URL per member. On loopback the source
//! address does not tell the sender either. But these systems name the sender in their peer
//! protocol (etcd's `X-Server-From` header), so the proxy peeks at the head of each
//! connection, asks the system's `identify` function who sent it, and applies that link's
//! cut and delay. Connections it cannot attribute pass: they carry no consensus traffic
//! (version probes), and cutting them would not model any real partition.

use super::link_proxy::{forward, Shared};
use super::{ControlError, Net, PacketFaults};
use crate::partition::{connected, Grudge};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Most bytes read to find the sender; a request head is far smaller.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long a new connection may take to send its head before it is forwarded unattributed.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// Names the sending node from the first bytes of a connection (up to the end of its first
/// request head), or None when they do not say.
pub type Identify = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// One target node's proxy: a link per sending node, created on first use.
struct TaggedProxy {
    links: Arc<Mutex<BTreeMap<String, Arc<Shared>>>>,
    /// Connections no sender claimed; only a delay applies to them.
    anonymous: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl TaggedProxy {
    fn start(listener: TcpListener, target: SocketAddr, identify: Identify) -> TaggedProxy {
        let links: Arc<Mutex<BTreeMap<String, Arc<Shared>>>> = Arc::default();
        let anonymous = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(
            listener,
            target,
            identify,
            links.clone(),
            anonymous.clone(),
        ));
        TaggedProxy {
            links,
            anonymous,
            accept,
        }
    }

    fn link(&self, from: &str) -> Arc<Shared> {
        link_of(&self.links, from)
    }
}

impl Drop for TaggedProxy {
    fn drop(&mut self) {
        self.accept.abort();
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links.values().for_each(|l| l.cut());
        self.anonymous.cut();
    }
}

fn link_of(links: &Mutex<BTreeMap<String, Arc<Shared>>>, from: &str) -> Arc<Shared> {
    let mut links = links.lock().unwrap_or_else(|p| p.into_inner());
    links.entry(from.to_string()).or_default().clone()
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    identify: Identify,
    links: Arc<Mutex<BTreeMap<String, Arc<Shared>>>>,
    anonymous: Arc<Shared>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        let (identify, links, anonymous) = (identify.clone(), links.clone(), anonymous.clone());
        // Reading the head must not hold up other connections.
        tokio::spawn(async move {
            let (inbound, head) = read_head(inbound).await;
            let link = match identify(&head) {
                Some(from) => link_of(&links, &from),
                None => anonymous,
            };
            let shared = link.clone();
            let patience = Duration::ZERO;
            link.admit(|| tokio::spawn(forward(inbound, head, target, shared, patience)));
        });
    }
}

/// Reads until the end of the first request head (`\r\n\r\n`), the size cap, the timeout, or
/// the sender's close, whichever is first.
async fn read_head(mut inbound: TcpStream) -> (TcpStream, Vec<u8>) {
    let mut head = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let mut buf = [0u8; 4096];
    while head.len() < MAX_HEAD_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let room = (MAX_HEAD_BYTES - head.len()).min(buf.len());
        match tokio::time::timeout_at(deadline, inbound.read(&mut buf[..room])).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    (inbound, head)
}

/// Every member's peer port of a local cluster behind a [`TaggedProxy`]: the [`Net`] of the
/// local backend for systems that name the sender in their peer protocol.
pub struct TaggedNet {
    /// Target node name → its proxy.
    proxies: BTreeMap<String, TaggedProxy>,
    nodes: Vec<String>,
}

impl TaggedNet {
    /// For each `(node, listen, target)`, accepts on `listen` (the peer address the node
    /// advertises) and forwards to `target` (where the node really listens). Must be called
    /// within a tokio runtime's context (inside it, or under `Handle::enter`).
    pub fn start(
        nodes: &[(String, SocketAddr, SocketAddr)],
        identify: Identify,
    ) -> std::io::Result<TaggedNet> {
        let mut proxies = BTreeMap::new();
        for (name, listen, target) in nodes {
            let listener = std::net::TcpListener::bind(listen)?;
            listener.set_nonblocking(true)?;
            let listener = TcpListener::from_std(listener)?;
            proxies.insert(
                name.clone(),
                TaggedProxy::start(listener, *target, identify.clone()),
            );
        }
        Ok(TaggedNet {
            proxies,
            nodes: nodes.iter().map(|(n, _, _)| n.clone()).collect(),
        })
    }
}

impl Net for TaggedNet {
    fn partition(&self, grudge: &Grudge) -> Result<(), ControlError> {
        for (to, proxy) in &self.proxies {
            for from in self.nodes.iter().filter(|n| *n != to) {
                let link = proxy.link(from);
                if connected(grudge, from, to) {
                    link.heal();
                } else {
                    link.cut();
                }
            }
        }
        Ok(())
    }

    fn heal(&self) -> Result<(), ControlError> {
        for proxy in self.proxies.values() {
            for from in &self.nodes {
                proxy.link(from).heal();
                proxy.link(from).set_delay(Duration::ZERO);
            }
            proxy.anonymous.set_delay(Duration::ZERO);
        }
        Ok(())
    }

    fn packet(&self, faults: &PacketFaults) -> Result<(), ControlError> {
        refuse_lossy(faults)?;
        let delay = Duration::from_millis(faults.delay_ms as u64);
        for proxy in self.proxies.values() {
            for from in &self.nodes {
                proxy.link(from).set_delay(delay);
            }
            proxy.anonymous.set_delay(delay);
        }
        Ok(())
    }
}

/// A TCP proxy sees a byte stream, not packets: it can delay, but a dropped or duplicated
/// packet is retransmitted or discarded by TCP before the proxy could see it.
pub(super) fn refuse_lossy(faults: &PacketFaults) -> Result<(), ControlError> {
    let lossy = faults.drop_percent > 0.0 || faults.duplicate_percent > 0.0 || faults.jitter_ms > 0;
    if lossy {
        return Err(ControlError::Unsupported {
            backend: "local",
            what: "drop, duplicate or jitter packets: its links are TCP proxies, which only \
                   delay; use the netns backend"
                .into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::link_proxy::tests_support::{echo_server, round_trip, rt};
    use super::*;
    use crate::partition::random_halves;
    use checkers::rng::Rng;

    /// Connections say who they are in an HTTP-like header, as etcd's peers do.
    fn identify() -> Identify {
        Arc::new(|head: &[u8]| {
            let text = std::str::from_utf8(head).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("From: "))
                .map(str::to_string)
        })
    }

    async fn hello(addr: SocketAddr, from: &str) -> Option<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await.ok()?;
        // The echo server returns the head too.
        round_trip(
            &mut s,
            format!("GET / HTTP/1.1\r\nFrom: {from}\r\n\r\n").as_bytes(),
        )
        .await
    }

    /// The proxies on ports reserved for them, as a system's advertised peer addresses
    /// are: a port is found free, released, then bound by the proxy, and a test running
    /// alongside may take it in between, so a start that finds one taken tries new ports.
    fn start_on_free_ports(
        targets: &[(String, SocketAddr)],
    ) -> (TaggedNet, Vec<(String, SocketAddr, SocketAddr)>) {
        const ATTEMPTS: usize = 20;
        for _ in 0..ATTEMPTS {
            let nodes: Vec<(String, SocketAddr, SocketAddr)> = targets
                .iter()
                .map(|(name, target)| {
                    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    (name.clone(), l.local_addr().unwrap(), *target)
                })
                .collect();
            match TaggedNet::start(&nodes, identify()) {
                Ok(net) => return (net, nodes),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => panic!("cannot start the proxies: {e}"),
            }
        }
        panic!("no free ports for the proxies in {ATTEMPTS} attempts");
    }

    #[test]
    fn connectivity_follows_the_grudge_by_sender() {
        rt().block_on(async {
            let mut targets = Vec::new();
            for i in 1..=5 {
                targets.push((format!("n{i}"), echo_server().await));
            }
            let (net, nodes) = start_on_free_ports(&targets);
            let listen: Vec<SocketAddr> = nodes.iter().map(|(_, l, _)| *l).collect();
            let names: Vec<String> = nodes.iter().map(|(n, _, _)| n.clone()).collect();
            let grudge = random_halves(&names, &mut Rng::new(9));
            net.partition(&grudge).unwrap();
            for (i, to) in names.iter().enumerate() {
                for from in names.iter().filter(|f| *f != to) {
                    let through = hello(listen[i], from).await.is_some();
                    assert_eq!(through, connected(&grudge, from, to), "{from} -> {to}");
                }
                assert!(
                    hello(listen[i], "stranger").await.is_some(),
                    "unattributed connections pass"
                );
            }
            net.heal().unwrap();
            for (i, to) in names.iter().enumerate() {
                for from in names.iter().filter(|f| *f != to) {
                    assert!(
                        hello(listen[i], from).await.is_some(),
                        "{from} -> {to} healed"
                    );
                }
            }
        });
    }

    #[test]
    fn a_cut_aborts_live_connections_of_that_sender_only() {
        rt().block_on(async {
            let target = echo_server().await;
            let targets: Vec<(String, SocketAddr)> = ["a", "b", "c"]
                .iter()
                .map(|n| (n.to_string(), target))
                .collect();
            let (net, nodes) = start_on_free_ports(&targets);
            let listen = nodes[0].1;
            let open = |from: &'static str| async move {
                let mut s = TcpStream::connect(listen).await.unwrap();
                let head = format!("X\r\nFrom: {from}\r\n\r\n");
                assert!(round_trip(&mut s, head.as_bytes()).await.is_some());
                s
            };
            let (mut from_b, mut from_c) = (open("b").await, open("c").await);
            let grudge =
                crate::partition::isolate(&["a".into(), "b".into(), "c".into()], &["b".into()]);
            net.partition(&grudge).unwrap();
            assert_eq!(round_trip(&mut from_b, b"x").await, None, "b's link is cut");
            assert!(round_trip(&mut from_c, b"y").await.is_some(), "c's is not");
        });
    }

    #[test]
    fn lossy_faults_are_refused_by_name() {
        let err = refuse_lossy(&PacketFaults {
            drop_percent: 5.0,
            ..PacketFaults::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("local backend cannot drop"),
            "{err}"
        );
        refuse_lossy(&PacketFaults {
            delay_ms: 20,
            ..PacketFaults::default()
        })
        .unwrap();
    }
}
