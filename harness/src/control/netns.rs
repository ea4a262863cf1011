//! The netns backend: every node is a Linux network namespace on this host, with its own
//! address, so partitions and packet faults ([`super::iptables::IptablesNet`]) act on real
//! links while the nodes' files stay directories on this host, as with [`Local`].
//!
//! Layout of a cluster (everything named per process and per call, so parallel tests and
//! concurrent runs never share anything):
//!
//! ```text
//!  host netns            hub netns (faultline-<pid>-<seq>-hub)       node netns (…-n1)
//!  fl<pid>h<seq> ──veth── host ─┐
//!  10.x.y.254/24               br0 ─── v1 ──veth────────────────────── eth0 10.x.y.1/24
//!                               └───── v2 ──veth── …-n2: eth0 10.x.y.2/24
//! ```
//!
//! The bridge lives in a namespace of its own, not on the host: on a host where
//! `br_netfilter` is loaded (any host running Docker), bridged frames pass the host's
//! iptables FORWARD chain, whose policy Docker sets to DROP, and letting them through would
//! mean editing the host's firewall. The only thing on the host is one veth with the
//! cluster's `.254` address, so the controller (clients, checkers) reaches every node at its
//! IP. Needs root: creating namespaces does.

use super::local::{effective_uid, Local};
use super::{Cmd, ControlError, Node, Output, Remote};
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BACKEND: &str = "netns";

/// Namespaces are named `faultline-<pid>-<seq>-<role>`; the pid lets a later run find and
/// remove what a killed run left behind.
const NAMESPACE_PREFIX: &str = "faultline-";

/// Node addresses are `.1` to `.253` of the cluster's /24; `.254` is the host's end.
const MAX_NODES: usize = 253;
const HOST_OCTET: u32 = 254;

/// Cluster /24s come from 10.144.0.0/12: outside Docker's default address pools
/// (172.17.0.0/16 – 172.31.0.0/16, 192.168.0.0/16), and each is checked against the host's
/// addresses and routes before use.
const SUBNET_POOL_BASE: u32 = u32::from_be_bytes([10, 144, 0, 0]);
const SUBNET_POOL_SIZE: u32 = 1 << 12;

/// /24s tried before giving up on finding a free one.
const SUBNET_ATTEMPTS: u32 = 256;

/// Rounds of killing a namespace's processes before deleting it: a process may fork while
/// its siblings are being killed.
const KILL_ROUNDS: usize = 50;
const KILL_ROUND_PAUSE: Duration = Duration::from_millis(20);

/// Distinguishes clusters made by one process.
static NEXT_SEQ: AtomicU32 = AtomicU32::new(0);

/// Serializes subnet choice among this process's threads, so parallel tests do not pick the
/// same /24 and both back off (other processes are caught by the check after claiming).
static SUBNET_CLAIM: Mutex<()> = Mutex::new(());

/// A cluster of network namespaces joined by a bridge; dropping it removes them, their
/// links and every process left inside them. Node directories on the host are kept (they
/// hold the logs).
pub struct Netns {
    local: Local,
    nodes: Vec<Node>,
    namespaces: Arc<BTreeMap<String, String>>,
    subnet: Subnet,
    cluster: Cluster,
}

impl Netns {
    /// Creates `n_nodes` nodes (`n1`..`nN`), whose directories are `root_dir/<node>/`. On
    /// failure, whatever was created is removed again.
    pub fn create(root_dir: &Path, n_nodes: usize) -> Result<Netns, ControlError> {
        require_root(effective_uid())?;
        if !(1..=MAX_NODES).contains(&n_nodes) {
            return Err(ControlError::Unsupported {
                backend: BACKEND,
                what: format!("make {n_nodes} nodes (one /24 holds 1 to {MAX_NODES})"),
            });
        }
        sweep_stale();
        let mut cluster = Cluster::new(Tag::next());
        #[cfg(test)]
        tests::LAST_TAG.with(|t| t.set(Some(cluster.tag)));
        cluster.add_hub()?;
        let subnet = cluster.add_host_link()?;
        let mut nodes = Vec::with_capacity(n_nodes);
        for index in 1..=n_nodes {
            nodes.push(cluster.add_node(index, subnet)?);
        }
        let namespaces: Arc<BTreeMap<String, String>> = Arc::new(
            nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), cluster.tag.node_namespace(i + 1)))
                .collect(),
        );
        let lookup = Arc::clone(&namespaces);
        let local = Local::entering(root_dir, move |node| {
            let ns = lookup
                .get(&node.name)
                .ok_or_else(|| format!("{} is not a node of this netns cluster", node.name))?;
            Ok(vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()])
        });
        Ok(Netns {
            local,
            nodes,
            namespaces,
            subnet,
            cluster,
        })
    }

    /// The nodes, `n1`..`nN`, each with its namespace's address.
    pub fn nodes(&self) -> Vec<Node> {
        self.nodes.clone()
    }

    /// The network namespace a node runs in, for tools that enter it themselves.
    pub fn namespace(&self, node: &Node) -> Option<&str> {
        self.namespaces.get(&node.name).map(String::as_str)
    }

    /// The node's directory on this host (its working directory).
    pub fn node_dir(&self, node: &Node) -> PathBuf {
        self.local.node_dir(node)
    }

    /// The host's own address on the cluster's subnet: where the controller's connections
    /// to nodes come from.
    pub fn host_ip(&self) -> String {
        self.subnet.address(HOST_OCTET).to_string()
    }

    /// The cluster's subnet, as `a.b.c.0/24`.
    pub fn subnet(&self) -> String {
        format!("{}/24", self.subnet.address(0))
    }

    /// The namespace holding the bridge.
    pub fn hub_namespace(&self) -> String {
        self.cluster.tag.hub_namespace()
    }

    /// The host's end of the link to the bridge.
    pub fn host_link(&self) -> String {
        self.cluster.tag.host_link()
    }

    fn known(&self, node: &Node, action: &'static str, path: &Path) -> Result<(), ControlError> {
        if self.namespaces.contains_key(&node.name) {
            return Ok(());
        }
        Err(ControlError::File {
            node: node.name.clone(),
            action,
            path: path.display().to_string(),
            cause: "not a node of this netns cluster".into(),
        })
    }
}

impl Remote for Netns {
    /// Runs `sh -c` inside the node's namespace (`ip netns exec`), with the node's directory
    /// as working directory; everything else is as in [`Local`].
    fn exec(&self, node: &Node, cmd: &Cmd) -> Result<Output, ControlError> {
        self.local.exec(node, cmd)
    }

    /// A copy into the node's directory: the namespace shares this host's filesystem.
    fn upload(&self, node: &Node, local: &Path, remote: &Path) -> Result<(), ControlError> {
        self.known(node, "upload to", remote)?;
        self.local.upload(node, local, remote)
    }

    fn download(&self, node: &Node, remote: &Path, local: &Path) -> Result<(), ControlError> {
        self.known(node, "download", remote)?;
        self.local.download(node, remote, local)
    }

    /// The node's directory: the namespace shares this host's filesystem (but every command
    /// gets a private mount namespace, so mounts for the node are made from the host).
    fn host_dir(&self, node: &Node) -> Option<PathBuf> {
        self.namespaces
            .contains_key(&node.name)
            .then(|| self.local.node_dir(node))
    }
}

/// Namespaces need CAP_SYS_ADMIN; refusing up front names the cause, where `ip` would only
/// say "Operation not permitted" half-way through.
fn require_root(uid: Option<u32>) -> Result<(), ControlError> {
    match uid {
        Some(0) => Ok(()),
        uid => Err(ControlError::Unsupported {
            backend: BACKEND,
            what: format!(
                "create network namespaces without root (running as uid {}); run as root",
                uid.map_or_else(|| "unknown".to_string(), |u| u.to_string())
            ),
        }),
    }
}

/// What makes a cluster's names unique: this process and a per-process sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tag {
    pid: u32,
    seq: u32,
}

impl Tag {
    fn next() -> Tag {
        Tag {
            pid: std::process::id(),
            // The host link name has room for six hex digits of it.
            seq: NEXT_SEQ.fetch_add(1, Ordering::Relaxed) & 0xff_ffff,
        }
    }

    fn namespace(&self, role: &str) -> String {
        format!("{NAMESPACE_PREFIX}{}-{}-{role}", self.pid, self.seq)
    }

    fn hub_namespace(&self) -> String {
        self.namespace("hub")
    }

    fn node_namespace(&self, index: usize) -> String {
        self.namespace(&format!("n{index}"))
    }

    /// `fl<pid hex>h<seq hex>`: at most 2 + 6 + 1 + 6 = 15 bytes, the kernel's limit for
    /// interface names (IFNAMSIZ 16 with the NUL); `h` is not a hex digit, so it separates.
    fn host_link(&self) -> String {
        format!("fl{:x}h{:x}", self.pid, self.seq)
    }

    /// The tag and role of one of our namespaces, from its name.
    fn parse(namespace: &str) -> Option<(Tag, &str)> {
        let rest = namespace.strip_prefix(NAMESPACE_PREFIX)?;
        let mut parts = rest.splitn(3, '-');
        let pid = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let role = parts.next()?;
        let node_role = role
            .strip_prefix('n')
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
        (role == "hub" || node_role).then_some((Tag { pid, seq }, role))
    }
}

/// A /24, by its network address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Subnet(u32);

impl Subnet {
    fn nth_in_pool(index: u32) -> Subnet {
        Subnet(SUBNET_POOL_BASE + ((index % SUBNET_POOL_SIZE) << 8))
    }

    fn address(&self, host_octet: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.0 | host_octet)
    }

    fn overlaps(&self, network: u32, prefix_len: u32) -> bool {
        let common = prefix_len.min(24);
        let mask = u32::MAX.checked_shl(32 - common).unwrap_or(0);
        self.0 & mask == network & mask
    }
}

/// What a cluster is made of, recorded as it is created; dropping it removes what exists,
/// so a failure half-way through creation leaves nothing behind.
struct Cluster {
    tag: Tag,
    namespaces: Vec<String>,
    host_link: bool,
    #[cfg(test)]
    steps_taken: usize,
}

impl Cluster {
    fn new(tag: Tag) -> Cluster {
        Cluster {
            tag,
            namespaces: Vec::new(),
            host_link: false,
            #[cfg(test)]
            steps_taken: 0,
        }
    }

    /// One creation step: an `ip` command (tests make the n-th fail to check cleanup).
    fn step(&mut self, args: &[&str]) -> Result<String, ControlError> {
        #[cfg(test)]
        {
            self.steps_taken += 1;
            if tests::FAIL_AT_STEP.with(|f| f.get()) == Some(self.steps_taken) {
                return Err(host_error("ip", args, "failure injected by a test".into()));
            }
        }
        host("ip", args)
    }

    fn add_namespace(&mut self, name: &str) -> Result<(), ControlError> {
        self.step(&["netns", "add", name])?;
        self.namespaces.push(name.to_string());
        self.step(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn add_hub(&mut self) -> Result<(), ControlError> {
        let hub = self.tag.hub_namespace();
        self.add_namespace(&hub)?;
        self.step(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        self.step(&["-n", &hub, "link", "set", "br0", "up"])?;
        Ok(())
    }

    /// Links the host to the bridge and gives the host's end a free /24: one not overlapping
    /// any address or route on the host, still free after we claimed it (another process may
    /// have picked the same one at the same moment; then we try the next).
    fn add_host_link(&mut self) -> Result<Subnet, ControlError> {
        let _serial = SUBNET_CLAIM.lock().unwrap_or_else(|e| e.into_inner());
        let (hub, link) = (self.tag.hub_namespace(), self.tag.host_link());
        // The peer is born in the hub: a `host` on the host could clash with anything.
        self.step(&[
            "link", "add", &link, "type", "veth", "peer", "name", "host", "netns", &hub,
        ])?;
        self.host_link = true;
        self.step(&["-n", &hub, "link", "set", "host", "master", "br0", "up"])?;
        let start = std::collections::hash_map::RandomState::new().hash_one(self.tag) as u32;
        for attempt in 0..SUBNET_ATTEMPTS {
            let subnet = Subnet::nth_in_pool(start.wrapping_add(attempt));
            if host_uses(subnet, None)? {
                continue;
            }
            let address = format!("{}/24", subnet.address(HOST_OCTET));
            self.step(&["addr", "add", &address, "dev", &link])?;
            if !host_uses(subnet, Some(&link))? {
                self.step(&["link", "set", &link, "up"])?;
                return Ok(subnet);
            }
            self.step(&["addr", "flush", "dev", &link])?;
        }
        Err(ControlError::Unsupported {
            backend: BACKEND,
            what: format!(
                "find a free /24 in {}/12 after {SUBNET_ATTEMPTS} tries",
                Ipv4Addr::from(SUBNET_POOL_BASE)
            ),
        })
    }

    /// A node namespace joined to the bridge, its `eth0` holding `.index`.
    fn add_node(&mut self, index: usize, subnet: Subnet) -> Result<Node, ControlError> {
        let (hub, ns) = (self.tag.hub_namespace(), self.tag.node_namespace(index));
        self.add_namespace(&ns)?;
        let port = format!("v{index}");
        self.step(&[
            "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        self.step(&["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
        let ip = subnet.address(index as u32);
        self.step(&["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        self.step(&["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(Node {
            name: format!("n{index}"),
            ip: ip.to_string(),
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            kill_everything_in(ns);
        }
        // Explicitly, because deleting the hub namespace removes its end only once the
        // kernel gets round to it.
        if self.host_link {
            if let Err(e) = host("ip", &["link", "del", &self.tag.host_link()]) {
                tracing::warn!("netns teardown: {e}");
            }
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = host("ip", &["netns", "del", ns]) {
                tracing::warn!("netns teardown: {e}");
            }
        }
    }
}

/// Kills every process in `namespace`: a namespace whose name is deleted lives on (with its
/// links) as long as a process is in it.
fn kill_everything_in(namespace: &str) {
    for _ in 0..KILL_ROUNDS {
        let pids: Vec<String> = match host("ip", &["netns", "pids", namespace]) {
            Ok(out) => out.split_whitespace().map(str::to_string).collect(),
            Err(e) => {
                tracing::warn!("netns teardown: {e}");
                return;
            }
        };
        if pids.is_empty() {
            return;
        }
        // The shell's builtin, as /bin/kill (procps) may be missing. Some may have exited
        // since they were listed; that is what we wanted anyway.
        let _ = Command::new("sh")
            .args(["-c", "kill -KILL \"$@\"", "sh"])
            .args(&pids)
            .output();
        std::thread::sleep(KILL_ROUND_PAUSE);
    }
    tracing::warn!("netns teardown: processes keep appearing in {namespace}");
}

/// Removes clusters whose creating process is gone (killed before it could tear them down),
/// so they do not pile up on CI machines.
fn sweep_stale() {
    let Ok(list) = host("ip", &["netns", "list"]) else {
        return;
    };
    let own_pid = std::process::id();
    let stale: Vec<(Tag, String)> = list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|ns| Tag::parse(ns).map(|(tag, _)| (tag, ns.to_string())))
        .filter(|(tag, _)| tag.pid != own_pid && !Path::new(&format!("/proc/{}", tag.pid)).exists())
        .collect();
    for (tag, ns) in &stale {
        tracing::warn!(
            "removing network namespace {ns} left by dead process {}",
            tag.pid
        );
        kill_everything_in(ns);
        // Its link is gone already if the hub went first.
        let _ = host("ip", &["link", "del", &tag.host_link()]);
        let _ = host("ip", &["netns", "del", ns]);
    }
}

/// Whether an address or route on the host overlaps `subnet`, ignoring device `except`.
fn host_uses(subnet: Subnet, except: Option<&str>) -> Result<bool, ControlError> {
    let addresses = host("ip", &["-4", "-o", "addr", "show"])?;
    let routes = host("ip", &["-4", "route", "show"])?;
    let in_use = addresses
        .lines()
        .filter_map(parse_address_line)
        .chain(routes.lines().filter_map(parse_route_line))
        .filter(|(dev, _, _)| Some(dev.as_str()) != except)
        .any(|(_, network, len)| subnet.overlaps(network, len));
    Ok(in_use)
}

/// `2: eth0    inet 10.0.0.1/24 brd ...` → (device, network, prefix length).
fn parse_address_line(line: &str) -> Option<(String, u32, u32)> {
    let mut words = line.split_whitespace();
    // Some iproute2 versions name a veth `name@peer`.
    let dev = words.nth(1)?.split('@').next()?;
    let cidr = words.skip_while(|w| *w != "inet").nth(1)?;
    let (network, len) = parse_cidr(cidr)?;
    Some((dev.to_string(), network, len))
}

/// `[type] 10.0.0.0/24 dev eth0 proto kernel ...` → (device, network, prefix length); the
/// default route is not a use of any particular subnet.
fn parse_route_line(line: &str) -> Option<(String, u32, u32)> {
    const ROUTE_TYPES: [&str; 9] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "throw",
        "unreachable",
        "prohibit",
        "blackhole",
        "nat",
    ];
    let words: Vec<&str> = line.split_whitespace().collect();
    let skip = usize::from(ROUTE_TYPES.contains(words.first()?));
    let (network, len) = parse_cidr(words.get(skip)?)?;
    let dev = words
        .iter()
        .skip_while(|w| **w != "dev")
        .nth(1)
        .map_or_else(String::new, |d| d.to_string());
    Some((dev, network, len))
}

fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (addr, len) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((u32::from(addr.parse::<Ipv4Addr>().ok()?), len))
}

/// Runs a command on the host; its stdout, or an error carrying its stderr.
fn host(program: &str, args: &[&str]) -> Result<String, ControlError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| host_error(program, args, format!("{e} (is iproute2 installed?)")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(host_error(
            program,
            args,
            format!("{}: {stderr}", out.status),
        ))
    }
}

fn host_error(program: &str, args: &[&str], cause: String) -> ControlError {
    ControlError::Exec {
        node: "host".into(),
        script: format!("{program} {}", args.join(" ")),
        cause,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Makes the n-th creation step of this thread fail.
        pub(super) static FAIL_AT_STEP: Cell<Option<usize>> = const { Cell::new(None) };
        /// The tag of this thread's last cluster, to look for its leftovers.
        pub(super) static LAST_TAG: Cell<Option<Tag>> = const { Cell::new(None) };
    }

    /// Panics naming what is missing instead of letting a test pass without testing.
    pub(crate) fn require_root_and_tools(tools: &[(&str, &str)]) {
        assert_eq!(
            effective_uid(),
            Some(0),
            "the netns tests need root: they create network namespaces"
        );
        for (tool, package) in tools {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "the netns tests need `{tool}` (Debian package {package})"
            );
        }
    }

    fn require_ip() {
        require_root_and_tools(&[("ip", "iproute2")]);
    }

    fn root_dir(test: &str) -> PathBuf {
        std::env::temp_dir().join(format!("faultline-netns-{test}-{}", std::process::id()))
    }

    fn namespaces_on_host() -> Vec<String> {
        host("ip", &["netns", "list"])
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    }

    fn link_exists(name: &str) -> bool {
        host("ip", &["link", "show", "dev", name]).is_ok()
    }

    /// Nothing named after `tag` is left on the host.
    fn assert_gone(tag: Tag) {
        let prefix = tag.namespace("");
        let left: Vec<String> = namespaces_on_host()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        assert!(left.is_empty(), "namespaces left behind: {left:?}");
        assert!(
            !link_exists(&tag.host_link()),
            "{} left behind",
            tag.host_link()
        );
    }

    #[test]
    fn netns_backend_passes_conformance() {
        require_ip();
        let netns = Netns::create(&root_dir("conformance"), 1).unwrap();
        let node = &netns.nodes()[0];
        super::super::conformance::run(&netns, node);
    }

    #[test]
    fn nodes_have_their_own_addresses_and_directories() {
        require_ip();
        let netns = Netns::create(&root_dir("addresses"), 3).unwrap();
        let nodes = netns.nodes();
        assert_eq!(
            nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["n1", "n2", "n3"]
        );
        for node in &nodes {
            let out = netns
                .exec(node, &Cmd::new("ip -o -4 addr show dev eth0; pwd"))
                .unwrap();
            let text = out.stdout_text();
            assert!(text.contains(&format!("inet {}/24", node.ip)), "{text}");
            let dir = netns.node_dir(node).canonicalize().unwrap();
            assert!(
                text.trim_end().ends_with(&dir.display().to_string()),
                "{text}"
            );
            assert!(
                node.ip.parse::<Ipv4Addr>().is_ok_and(|ip| {
                    Subnet(u32::from(ip) & !0xff).overlaps(SUBNET_POOL_BASE, 12)
                }),
                "{} is in the pool",
                node.ip
            );
        }
        // The namespace is not the host's: no eth0 address of the host shows.
        let host_view = host("ip", &["-o", "-4", "addr", "show"]).unwrap();
        assert!(!host_view.contains(&format!("inet {}/", nodes[0].ip)));
        assert!(host_view.contains(&format!("inet {}/24", netns.host_ip())));
        let unknown = Node {
            name: "n9".into(),
            ip: "10.0.0.9".into(),
        };
        assert!(matches!(
            netns.exec(&unknown, &Cmd::new("true")),
            Err(ControlError::Exec { .. })
        ));
        assert!(netns
            .download(&unknown, Path::new("x"), &root_dir("addresses-x"))
            .is_err());
    }

    #[test]
    fn concurrent_clusters_get_different_subnets_and_names() {
        require_ip();
        let made: Vec<Netns> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|i| s.spawn(move || Netns::create(&root_dir(&format!("c{i}")), 2).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let subnets: std::collections::BTreeSet<String> = made.iter().map(Netns::subnet).collect();
        assert_eq!(subnets.len(), 3, "{subnets:?}");
        let hubs: std::collections::BTreeSet<String> =
            made.iter().map(Netns::hub_namespace).collect();
        assert_eq!(hubs.len(), 3);
        for netns in &made {
            assert!(netns.host_link().len() <= 15);
        }
    }

    #[test]
    fn teardown_removes_namespaces_links_and_processes() {
        require_ip();
        use super::super::daemon::{self, Daemon};
        let netns = Netns::create(&root_dir("teardown"), 2).unwrap();
        let tag = netns.cluster.tag;
        let d = Daemon {
            pidfile: "sleeper.pid".into(),
            logfile: "sleeper.log".into(),
        };
        let pid = daemon::start(&netns, &netns.nodes()[1], "sleep 1000", &d).unwrap();
        let names = namespaces_on_host();
        assert!(names.contains(&netns.hub_namespace()));
        assert!(names.contains(&netns.namespace(&netns.nodes()[0]).unwrap().to_string()));
        assert!(link_exists(&netns.host_link()));
        drop(netns);
        assert_gone(tag);
        // Killed; at most a zombie awaiting a reaper that is not ours.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z')),
            "daemon {pid} survived teardown: {stat}"
        );
    }

    #[test]
    fn failed_creation_leaves_nothing_behind() {
        require_ip();
        let mut steps_in_full_creation = None;
        for fail_at in 1..200 {
            FAIL_AT_STEP.with(|f| f.set(Some(fail_at)));
            let made = Netns::create(&root_dir("partial"), 2);
            let tag = LAST_TAG.with(|t| t.get()).unwrap();
            match made {
                Err(ControlError::Exec { cause, .. }) => {
                    assert!(cause.contains("injected"), "{cause}");
                    assert_gone(tag);
                }
                Err(e) => panic!("unexpected error at step {fail_at}: {e}"),
                Ok(netns) => {
                    steps_in_full_creation = Some(netns.cluster.steps_taken);
                    drop(netns);
                    assert_gone(tag);
                    break;
                }
            }
        }
        FAIL_AT_STEP.with(|f| f.set(None));
        let steps = steps_in_full_creation.expect("creation succeeds once no step fails");
        assert!(steps >= 20, "every step was tried: {steps}");
    }

    #[test]
    fn stale_clusters_of_dead_processes_are_swept() {
        require_ip();
        // A pid above the kernel's maximum (2^22) belongs to no process.
        let tag = Tag {
            pid: 4_194_305,
            seq: 1,
        };
        let ns = tag.hub_namespace();
        host("ip", &["netns", "add", &ns]).unwrap();
        sweep_stale();
        assert_gone(tag);
    }

    #[test]
    fn creation_without_root_names_the_cause() {
        match require_root(Some(1000)) {
            Err(e @ ControlError::Unsupported { .. }) => {
                let text = e.to_string();
                assert!(text.contains("root") && text.contains("uid 1000"), "{text}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(require_root(Some(0)).is_ok());
    }

    #[test]
    fn names_fit_and_parse() {
        let tag = Tag {
            pid: 4_194_304,
            seq: 0xff_ffff,
        };
        assert_eq!(tag.host_link(), "fl400000hffffff");
        assert_eq!(Tag::parse(&tag.node_namespace(12)), Some((tag, "n12")));
        assert_eq!(Tag::parse(&tag.hub_namespace()), Some((tag, "hub")));
        assert_eq!(Tag::parse("faultline-12-3-docker"), None);
        assert_eq!(Tag::parse("faultline-x-3-hub"), None);
        assert_eq!(Tag::parse("other-12-3-hub"), None);
    }

    #[test]
    fn host_addresses_and_routes_parse() {
        let a = parse_address_line(
            "6: br-73d663df30d0    inet 10.213.7.1/24 brd 10.213.7.255 scope global br-73d663df30d0",
        );
        assert_eq!(
            a,
            Some((
                "br-73d663df30d0".into(),
                u32::from(Ipv4Addr::new(10, 213, 7, 1)),
                24
            ))
        );
        assert_eq!(parse_route_line("default via 192.0.2.1 dev eth0"), None);
        let r = parse_route_line("blackhole 10.144.0.0/16").unwrap();
        assert!(Subnet::nth_in_pool(3).overlaps(r.1, r.2));
        let r = parse_route_line("10.145.1.0/24 dev x proto kernel scope link src 10.145.1.254");
        assert_eq!(
            r,
            Some(("x".into(), u32::from(Ipv4Addr::new(10, 145, 1, 0)), 24))
        );
        let s = Subnet(u32::from(Ipv4Addr::new(10, 145, 1, 0)));
        assert!(s.overlaps(r.unwrap().1, 24));
        assert!(!s.overlaps(u32::from(Ipv4Addr::new(10, 145, 2, 0)), 24));
        assert!(s.overlaps(u32::from(Ipv4Addr::new(10, 145, 1, 7)), 32));
        assert!(s.overlaps(0, 0), "a /0 covers everything");
        assert_eq!(
            Subnet::nth_in_pool(SUBNET_POOL_SIZE),
            Subnet::nth_in_pool(0)
        );
    }
}
