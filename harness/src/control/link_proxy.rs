//! A TCP proxy on one directed peer link (node a → node b), so that the local backend can
//! cut, heal and slow links between processes on this host without root.
//!
//! Node a is configured to reach b through the proxy's address. Cutting the link aborts every
//! connection through it and refuses new ones (closes them at once), which is what a
//! partition looks like to a TCP peer; healing lets connections through again. A delay holds
//! every chunk of bytes for that long in each direction. The proxy takes a bound listener, so
//! tests and the harness can bind port 0.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Bytes moved per read; a chunk is the unit a delay applies to.
const CHUNK_BYTES: usize = 64 * 1024;
/// Between attempts to reach a target that refused, within a link's connect patience.
const CONNECT_RETRY: Duration = Duration::from_millis(25);
/// Most connections held open through one link at once; more are refused.
const MAX_CONNECTIONS: usize = 1024;

/// How long a new connection may take to send the head a [`HeadRewrite`] waits for.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes of a head a [`HeadRewrite`] may ask for.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Rewrites the first message of every connection through a link, for peer protocols that
/// announce an address of their own which the other side then dials directly, around the
/// proxy (ZooKeeper's leader election): the rewrite announces the proxy of the reverse link
/// instead, so that the connection dialled back is cut with the rest.
pub trait HeadRewrite: Send + Sync + 'static {
    /// The head's length in bytes once its first `bytes` tell it; None: not known yet.
    fn head_len(&self, bytes: &[u8]) -> Option<usize>;
    /// The bytes to send in place of `head` (exactly `head_len` bytes).
    fn rewrite(&self, head: &[u8]) -> Vec<u8>;
}

/// What a link does to each connection besides forwarding it.
#[derive(Clone, Default)]
pub struct LinkOptions {
    /// Rewrites each connection's first message.
    pub rewrite: Option<Arc<dyn HeadRewrite>>,
    /// How long to keep dialling a target that refuses before closing the connection. A
    /// proxy has accepted the connection before it knows whether the target listens, so a
    /// refusal reaches the sender as a connection that opened and closed, which some
    /// senders treat worse than a refusal (a ZooKeeper follower gives up on its new
    /// leader, whose port opens a moment after the election). Zero: close at once.
    pub connect_patience: Duration,
}

/// Controls one link's proxy. Dropping it stops the proxy and every connection through it.
pub struct LinkProxy {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// One link's state, shared by its accept loop and every connection through it.
#[derive(Default)]
pub(super) struct Shared {
    cut: AtomicBool,
    delay_us: AtomicU64,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    pub(super) fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut conns = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        for c in conns.drain(..) {
            c.abort();
        }
    }

    pub(super) fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    pub(super) fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    pub(super) fn set_delay(&self, delay: Duration) {
        self.delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// Registers a connection unless the link is cut or full; checked under the lock `cut`
    /// drains with, so no connection slips past a cut.
    pub(super) fn admit(&self, spawn: impl FnOnce() -> JoinHandle<()>) -> bool {
        let mut conns = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if self.cut.load(Ordering::SeqCst) {
            return false;
        }
        conns.retain(|c| !c.is_finished());
        if conns.len() >= MAX_CONNECTIONS {
            return false;
        }
        conns.push(spawn());
        true
    }
}

impl LinkProxy {
    /// Forwards connections accepted on `listener` to `target`. Must run inside tokio.
    pub fn start(
        listener: TcpListener,
        target: std::net::SocketAddr,
    ) -> std::io::Result<LinkProxy> {
        LinkProxy::start_with(listener, target, LinkOptions::default())
    }

    /// [`LinkProxy::start`], treating each connection as `options` say.
    pub fn start_with(
        listener: TcpListener,
        target: std::net::SocketAddr,
        options: LinkOptions,
    ) -> std::io::Result<LinkProxy> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(listener, target, shared.clone(), options));
        Ok(LinkProxy {
            addr,
            shared,
            accept,
        })
    }

    /// Where node a should connect to reach node b.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Partitions the link: live connections are aborted, new ones closed at once.
    pub fn cut(&self) {
        self.shared.cut();
    }

    pub fn heal(&self) {
        self.shared.heal();
    }

    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// Holds every chunk this long, both ways; zero for none.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.set_delay(delay);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: std::net::SocketAddr,
    shared: Arc<Shared>,
    options: LinkOptions,
) {
    let patience = options.connect_patience;
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        let link = shared.clone();
        match options.rewrite.clone() {
            None => {
                shared.admit(|| tokio::spawn(forward(inbound, Vec::new(), target, link, patience)));
            }
            Some(rewrite) => {
                shared.admit(|| {
                    tokio::spawn(async move {
                        // A head that never comes, or is malformed, ends the connection: it
                        // could otherwise carry an address around the proxy.
                        if let Some((inbound, head)) = read_head(inbound, rewrite.as_ref()).await {
                            let head = rewrite.rewrite(&head);
                            forward(inbound, head, target, link, patience).await;
                        }
                    })
                });
            }
        }
    }
}

/// Reads exactly the head `rewrite` asks for, within [`HEAD_TIMEOUT`].
async fn read_head(
    mut inbound: TcpStream,
    rewrite: &dyn HeadRewrite,
) -> Option<(TcpStream, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let mut head = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    loop {
        match rewrite.head_len(&head) {
            Some(n) if n > MAX_HEAD_BYTES => return None,
            Some(n) if head.len() >= n => return Some((inbound, head)),
            _ if head.len() >= MAX_HEAD_BYTES => return None,
            // One byte at a time: nothing past the head may be consumed here, and heads
            // are a few dozen bytes.
            _ => match tokio::time::timeout_at(deadline, inbound.read(&mut byte)).await {
                Ok(Ok(1)) => head.push(byte[0]),
                _ => return None,
            },
        }
    }
}

/// Sends `prefix` (bytes already read from `inbound`) to the target, then copies both ways
/// until either side closes; a failed connect to the target closes the inbound side, as a
/// refused connection would.
pub(super) async fn forward(
    inbound: TcpStream,
    prefix: Vec<u8>,
    target: std::net::SocketAddr,
    shared: Arc<Shared>,
    patience: Duration,
) {
    let given_up = tokio::time::Instant::now() + patience;
    let mut outbound = loop {
        match TcpStream::connect(target).await {
            Ok(s) => break s,
            Err(_) if tokio::time::Instant::now() < given_up && !shared.is_cut() => {
                tokio::time::sleep(CONNECT_RETRY).await;
            }
            Err(_) => return,
        }
    };
    if !prefix.is_empty() && outbound.write_all(&prefix).await.is_err() {
        return;
    }
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let there = pump(in_read, out_write, shared.clone());
    let back = pump(out_read, in_write, shared);
    tokio::select! {
        _ = there => {}
        _ = back => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay_us = shared.delay_us.load(Ordering::Relaxed);
        if delay_us > 0 {
            tokio::time::sleep(Duration::from_micros(delay_us)).await;
        }
        if shared.cut.load(Ordering::SeqCst) || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
pub(super) mod tests_support {
    use super::*;

    /// An echo server on port 0.
    pub async fn echo_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Sends `msg` and reads the echo; None if the link is down.
    pub async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Option<Vec<u8>> {
        s.write_all(msg).await.ok()?;
        let mut got = vec![0u8; msg.len()];
        let read = tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut got)).await;
        matches!(read, Ok(Ok(_))).then_some(got)
    }

    pub fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;
    use std::time::Instant;

    async fn proxy_to(target: std::net::SocketAddr) -> LinkProxy {
        LinkProxy::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), target).unwrap()
    }

    /// Swaps a 4-byte head for another; refuses heads that do not start with `A`.
    struct Swap;

    impl HeadRewrite for Swap {
        fn head_len(&self, bytes: &[u8]) -> Option<usize> {
            match bytes.first() {
                Some(b'A') => Some(4),
                Some(_) => Some(usize::MAX),
                None => None,
            }
        }

        fn rewrite(&self, _head: &[u8]) -> Vec<u8> {
            b"WXYZ".to_vec()
        }
    }

    #[test]
    fn a_rewritten_head_is_all_that_changes_and_a_bad_head_ends_the_connection() {
        rt().block_on(async {
            let options = LinkOptions {
                rewrite: Some(Arc::new(Swap)),
                connect_patience: Duration::ZERO,
            };
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let proxy = LinkProxy::start_with(listener, echo_server().await, options).unwrap();
            let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
            assert_eq!(
                round_trip(&mut s, b"ABCDhello").await.as_deref(),
                Some(&b"WXYZhello"[..])
            );
            assert_eq!(
                round_trip(&mut s, b"ABCD").await.as_deref(),
                Some(&b"ABCD"[..]),
                "only the first message is rewritten"
            );
            let mut bad = TcpStream::connect(proxy.addr()).await.unwrap();
            assert_eq!(round_trip(&mut bad, b"Zzzzz").await, None);
        });
    }

    #[test]
    fn patience_waits_for_a_target_that_starts_listening_late() {
        rt().block_on(async {
            // A port that refuses now and listens 200 ms later.
            let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let target = unused.local_addr().unwrap();
            drop(unused);
            let options = LinkOptions {
                rewrite: None,
                connect_patience: Duration::from_secs(3),
            };
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let proxy = LinkProxy::start_with(listener, target, options).unwrap();
            let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let late = TcpListener::bind(target).await.unwrap();
            tokio::spawn(async move {
                let (mut c, _) = late.accept().await.unwrap();
                let mut buf = [0u8; 5];
                c.read_exact(&mut buf).await.unwrap();
                c.write_all(&buf).await.unwrap();
            });
            assert_eq!(
                round_trip(&mut s, b"hello").await.as_deref(),
                Some(&b"hello"[..])
            );
        });
    }

    #[test]
    fn forwards_cuts_and_heals() {
        rt().block_on(async {
            let proxy = proxy_to(echo_server().await).await;
            let mut before = TcpStream::connect(proxy.addr()).await.unwrap();
            assert_eq!(
                round_trip(&mut before, b"hello").await.as_deref(),
                Some(&b"hello"[..])
            );

            proxy.cut();
            assert!(proxy.is_cut());
            assert_eq!(
                round_trip(&mut before, b"lost").await,
                None,
                "live connections break"
            );
            let mut during = TcpStream::connect(proxy.addr()).await.unwrap();
            assert_eq!(
                round_trip(&mut during, b"x").await,
                None,
                "new ones are closed"
            );

            proxy.heal();
            let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
            assert_eq!(
                round_trip(&mut after, b"again").await.as_deref(),
                Some(&b"again"[..])
            );
        });
    }

    #[test]
    fn delay_holds_each_direction() {
        rt().block_on(async {
            let proxy = proxy_to(echo_server().await).await;
            proxy.set_delay(Duration::from_millis(50));
            let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
            let started = Instant::now();
            assert!(round_trip(&mut s, b"slow").await.is_some());
            assert!(
                started.elapsed() >= Duration::from_millis(100),
                "50 ms there and 50 ms back"
            );
        });
    }

    #[test]
    fn a_dead_target_looks_refused() {
        rt().block_on(async {
            let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let dead = unused.local_addr().unwrap();
            drop(unused);
            let proxy = proxy_to(dead).await;
            let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
            assert_eq!(round_trip(&mut s, b"anyone").await, None);
        });
    }
}

/// Every directed peer link of a local cluster through its own proxy, so a [`Grudge`] can be
/// applied to processes on this host.
///
/// TCP carries both directions on one connection, so a cut is symmetric at the connection
/// level: if either node of a pair drops the other, both of their links are cut.
///
/// [`Grudge`]: crate::partition::Grudge
pub struct LocalNet {
    links: std::collections::BTreeMap<(String, String), LinkProxy>,
}

impl LocalNet {
    /// Starts a proxy for every ordered pair of `nodes` (name, the address peers use to reach
    /// it), each listening on `bind_ip`, port 0. Must run inside tokio.
    pub async fn start(
        nodes: &[(String, std::net::SocketAddr)],
        bind_ip: &str,
    ) -> std::io::Result<LocalNet> {
        LocalNet::start_with(nodes, bind_ip, |_, _, _| LinkOptions::default()).await
    }

    /// [`LocalNet::start`], link `from → to` treating its connections as
    /// `options(from, to, addrs)` says, where `addrs(a, b)` is where link `a → b` listens.
    pub async fn start_with(
        nodes: &[(String, std::net::SocketAddr)],
        bind_ip: &str,
        options: impl Fn(&str, &str, &dyn Fn(&str, &str) -> std::net::SocketAddr) -> LinkOptions,
    ) -> std::io::Result<LocalNet> {
        let mut listeners = std::collections::BTreeMap::new();
        for (from, _) in nodes {
            for (to, target) in nodes.iter().filter(|(to, _)| to != from) {
                let listener = TcpListener::bind((bind_ip, 0)).await?;
                listeners.insert((from.clone(), to.clone()), (listener, *target));
            }
        }
        let mut addrs = std::collections::BTreeMap::new();
        for (pair, (listener, _)) in &listeners {
            addrs.insert(pair.clone(), listener.local_addr()?);
        }
        let addr_of = |a: &str, b: &str| addrs[&(a.to_string(), b.to_string())];
        let mut links = std::collections::BTreeMap::new();
        for ((from, to), (listener, target)) in listeners {
            let link = options(&from, &to, &addr_of);
            let proxy = LinkProxy::start_with(listener, target, link)?;
            links.insert((from, to), proxy);
        }
        Ok(LocalNet { links })
    }

    /// The address node `from` uses to reach node `to`.
    pub fn peer_addr(&self, from: &str, to: &str) -> Option<std::net::SocketAddr> {
        self.links
            .get(&(from.to_string(), to.to_string()))
            .map(LinkProxy::addr)
    }

    /// Heals everything, then cuts both links of every pair in which one node drops the other.
    pub fn partition(&self, grudge: &crate::partition::Grudge) {
        for ((from, to), link) in &self.links {
            if crate::partition::connected(grudge, from, to) {
                link.heal();
            } else {
                link.cut();
            }
        }
    }

    pub fn heal(&self) {
        self.links.values().for_each(LinkProxy::heal);
    }

    /// Delays every link by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.links.values().for_each(|l| l.set_delay(delay));
    }
}

impl super::Net for LocalNet {
    fn partition(&self, grudge: &crate::partition::Grudge) -> Result<(), super::ControlError> {
        LocalNet::partition(self, grudge);
        Ok(())
    }

    fn heal(&self) -> Result<(), super::ControlError> {
        LocalNet::heal(self);
        self.set_delay(Duration::ZERO);
        Ok(())
    }

    fn packet(&self, faults: &super::PacketFaults) -> Result<(), super::ControlError> {
        super::tagged_proxy::refuse_lossy(faults)?;
        self.set_delay(Duration::from_millis(faults.delay_ms as u64));
        Ok(())
    }
}

#[cfg(test)]
mod net_tests {
    /// The local backend's network passes the same partition checks as every backend's.
    #[test]
    fn local_net_passes_the_net_conformance_checks() {
        use std::io::{Read, Write};
        let rt = rt();
        let (net, nodes) = rt.block_on(async {
            let mut peers = Vec::new();
            for i in 1..=5 {
                peers.push((format!("n{i}"), echo_server().await));
            }
            (LocalNet::start(&peers, "127.0.0.1").await.unwrap(), peers)
        });
        let nodes: Vec<crate::control::Node> = nodes
            .iter()
            .map(|(name, addr)| crate::control::Node {
                name: name.clone(),
                ip: addr.ip().to_string(),
            })
            .collect();
        // A real round trip from a to b through a's link to b.
        let reachable = |a: &crate::control::Node, b: &crate::control::Node| {
            let addr = net.peer_addr(&a.name, &b.name).unwrap();
            let Ok(mut s) = std::net::TcpStream::connect(addr) else {
                return false;
            };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut got = [0u8; 4];
            s.write_all(b"ping").is_ok() && s.read_exact(&mut got).is_ok() && &got == b"ping"
        };
        crate::control::conformance::net(&net, &nodes, &reachable);
    }

    use super::tests_support::*;
    use super::*;
    use crate::partition::{connected, random_halves};
    use checkers::rng::Rng;

    #[test]
    fn connectivity_follows_the_grudge_and_heals() {
        rt().block_on(async {
            let mut nodes = Vec::new();
            for i in 1..=5 {
                nodes.push((format!("n{i}"), echo_server().await));
            }
            let net = LocalNet::start(&nodes, "127.0.0.1").await.unwrap();
            let names: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
            let grudge = random_halves(&names, &mut Rng::new(4));
            net.partition(&grudge);
            for a in &names {
                for b in names.iter().filter(|b| *b != a) {
                    let mut s = TcpStream::connect(net.peer_addr(a, b).unwrap())
                        .await
                        .unwrap();
                    let through = round_trip(&mut s, b"ping").await.is_some();
                    assert_eq!(through, connected(&grudge, a, b), "{a} -> {b}");
                }
            }
            net.heal();
            for a in &names {
                for b in names.iter().filter(|b| *b != a) {
                    let mut s = TcpStream::connect(net.peer_addr(a, b).unwrap())
                        .await
                        .unwrap();
                    assert!(
                        round_trip(&mut s, b"ping").await.is_some(),
                        "{a} -> {b} after heal"
                    );
                }
            }
        });
    }
}
