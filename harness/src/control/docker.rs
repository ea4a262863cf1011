//! The Docker backend: every node is a container on a bridge network of its own, built from an
//! image the harness makes itself `FROM scratch` (see [`ImageSpec`]), so no registry is needed.
//!
//! - Commands run through `docker exec` in the node's directory `/faultline/<node>` (see
//!   `remote.rs` for how timeouts, signals and docker's own failures are told apart); files
//!   move with `docker cp`. Remote paths are relative to that directory, as in every backend.
//!   Everything runs as root inside, so `sudo` changes nothing.
//! - Kill and pause are the generic daemons over exec. Network faults are iptables rules put
//!   into each container's network namespace from the host ([`HostNetns`]), so the image
//!   needs neither iptables nor NET_ADMIN and the node cannot lift them.
//! - Containers and network are removed on Drop (also when a test panics); those left by a
//!   process that died without dropping are removed by the next [`Docker::create`] on the
//!   host.
//!
//! Driven through the docker CLI rather than the engine's HTTP API on /var/run/docker.sock:
//! the CLI already speaks exec's stream hijacking and multiplexing, `docker cp`'s tar
//! archives, DOCKER_HOST, contexts and TLS, which would otherwise need an HTTP client and a
//! tar implementation this crate does not have. A process per call costs tens of
//! milliseconds, small next to what a nemesis waits for.

mod cli;
mod host_netns;
mod image;
mod owner;
mod process;
mod remote;
mod subnet;
#[cfg(test)]
mod tests;

pub use host_netns::HostNetns;
pub use image::{Image, ImageSpec, IMAGE_REPOSITORY};

use super::iptables::IptablesNet;
use super::Node;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Node directories live under this directory inside each container.
pub const NODE_ROOT: &str = "/faultline";

/// The most nodes one cluster can have (its /24 holds them).
pub const MAX_NODES: usize = subnet::MAX_NODES;

/// How many subnets are tried before giving up: each refusal is another network claiming it.
const SUBNET_ATTEMPTS: usize = 32;

/// The container's init: a shell that sleeps forever so that `docker exec` has a running
/// container, and whose `wait` reaps the orphans (finished daemons) reparented to it. It exits
/// on TERM, which PID 1 would otherwise ignore.
const INIT_SCRIPT: &str = "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done";

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot run the docker CLI ({cause}); is docker installed and on PATH?")]
    CliMissing { cause: String },
    #[error("the Docker engine is not reachable: {cause}")]
    EngineUnreachable { cause: String },
    #[error("{what} failed: {stderr}")]
    Failed { what: String, stderr: String },
    #[error("{what} did not finish within {timeout_ms} ms; the Docker engine seems hung")]
    Hung { what: String, timeout_ms: u64 },
    #[error(
        "no busybox found (looked in {searched}); install Debian's busybox-static package \
         (apt-get install -y busybox-static)"
    )]
    BusyboxMissing { searched: String },
    #[error(
        "{path} is not a statically linked busybox, so it cannot run in an image with no libc; \
         install Debian's busybox-static package"
    )]
    BusyboxNotStatic { path: PathBuf },
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: String },
    #[error("image path {path} must be absolute, without . or ..")]
    BadImagePath { path: PathBuf },
    #[error("a cluster has 1 to {MAX_NODES} nodes, not {n_nodes}")]
    NodeCount { n_nodes: usize },
    #[error("no free /24 for the cluster's network after {attempts} tries: {last_refusal}")]
    NoFreeSubnet {
        attempts: usize,
        last_refusal: String,
    },
}

/// A cluster of containers n1..nN on a bridge network of their own.
pub struct Docker {
    /// Shared prefix of the network's and containers' names, unique per process and call.
    name: String,
    /// The network, once created (so Drop after a failed create removes only what exists).
    network: Option<String>,
    containers: Vec<Container>,
}

struct Container {
    name: String,
    node: Node,
    /// Host pid of the container's init, the holder of its network namespace.
    pid: u32,
}

impl Docker {
    /// Starts `n_nodes` containers of `image`, named n1..nN (also their hostnames), with fixed
    /// IPs on a new bridge network. On error, whatever was created is removed again.
    pub fn create(image: &Image, n_nodes: usize) -> Result<Docker, DockerError> {
        if !(1..=MAX_NODES).contains(&n_nodes) {
            return Err(DockerError::NodeCount { n_nodes });
        }
        cli::engine_version()?;
        owner::reap_orphans();
        let mut docker = Docker {
            name: format!("faultline-{}", unique_suffix()),
            network: None,
            containers: Vec::with_capacity(n_nodes),
        };
        let subnet = docker.create_network()?;
        for index in 1..=n_nodes {
            docker.start_container(image, &subnet, index)?;
        }
        Ok(docker)
    }

    /// The nodes, in order n1..nN; `ip` is the container's address on the cluster network.
    pub fn nodes(&self) -> Vec<Node> {
        self.containers.iter().map(|c| c.node.clone()).collect()
    }

    /// The container that holds `node`, for `docker` commands of the caller's own.
    pub fn container_name(&self, node: &Node) -> Option<&str> {
        self.find(node).map(|c| c.name.as_str())
    }

    /// The cluster's bridge network.
    pub fn network_name(&self) -> &str {
        self.network.as_deref().unwrap_or(&self.name)
    }

    /// Runs commands on the host inside the containers' network namespaces.
    pub fn host_netns(&self) -> HostNetns {
        HostNetns::new(
            self.containers
                .iter()
                .map(|c| (c.node.name.clone(), c.pid))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    /// Partition and packet faults: iptables (and tc) rules applied in each container's
    /// network namespace from the host. Needs `nsenter`, `iptables` and `tc` on the host, and
    /// root (or passwordless sudo).
    pub fn net(&self) -> IptablesNet {
        IptablesNet::new(Arc::new(self.host_netns()), self.nodes())
    }

    fn find(&self, node: &Node) -> Option<&Container> {
        self.containers.iter().find(|c| c.node.name == node.name)
    }

    fn container_for(&self, node: &Node, script: &str) -> Result<&str, super::ControlError> {
        self.container_name(node)
            .ok_or_else(|| super::ControlError::Exec {
                node: node.name.clone(),
                script: script.to_string(),
                cause: "no such node in this Docker cluster".into(),
            })
    }

    /// Creates the bridge network on the first free candidate subnet.
    fn create_network(&mut self) -> Result<subnet::Subnet, DockerError> {
        let routes = subnet::host_routes();
        let owner = format!("{}={}", owner::OWNER_LABEL, owner::this_process());
        let mut last_refusal = String::from("every candidate overlaps a host route");
        let free = subnet::candidates(seed_of(&self.name))
            .filter(|s| !subnet::host_routes_overlap(s, &routes))
            .take(SUBNET_ATTEMPTS);
        for candidate in free {
            let (cidr, gateway) = (candidate.cidr(), candidate.gateway());
            let created = cli::run(&[
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                &cidr,
                "--gateway",
                &gateway,
                "--label",
                &owner,
                &self.name,
            ]);
            match created {
                Ok(_) => {
                    self.network = Some(self.name.clone());
                    return Ok(candidate);
                }
                // Another network (perhaps a parallel test's) holds it: try the next.
                Err(DockerError::Failed { stderr, .. }) if stderr.contains("overlap") => {
                    last_refusal = stderr;
                }
                Err(e) => return Err(e),
            }
        }
        Err(DockerError::NoFreeSubnet {
            attempts: SUBNET_ATTEMPTS,
            last_refusal,
        })
    }

    fn start_container(
        &mut self,
        image: &Image,
        subnet: &subnet::Subnet,
        index: usize,
    ) -> Result<(), DockerError> {
        let node = Node {
            name: format!("n{index}"),
            ip: subnet.node(index),
        };
        let name = format!("{}-{}", self.name, node.name);
        let owner = format!("{}={}", owner::OWNER_LABEL, owner::this_process());
        cli::run(&[
            "run",
            "--detach",
            "--name",
            &name,
            "--hostname",
            &node.name,
            "--network",
            self.network_name(),
            "--ip",
            &node.ip,
            "--network-alias",
            &node.name,
            "--label",
            &owner,
            &image.tag,
            "/bin/sh",
            "-c",
            INIT_SCRIPT,
        ])
        .inspect_err(|_| {
            // `docker run` can fail after creating the container (bad address, say):
            // remove it by name so Drop's list stays the truth.
            let _ = cli::run(&["rm", "-f", &name]);
        })?;
        let pid = cli::run(&["inspect", "--format", "{{.State.Pid}}", &name])?;
        let pid = pid.parse().map_err(|_| DockerError::Failed {
            what: format!("docker inspect {name}"),
            stderr: format!("no pid in {pid:?}"),
        })?;
        self.containers.push(Container { name, node, pid });
        Ok(())
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if !self.containers.is_empty() {
            let mut args = vec!["rm", "--force", "--volumes"];
            args.extend(self.containers.iter().map(|c| c.name.as_str()));
            if let Err(e) = cli::run(&args) {
                tracing::warn!("cannot remove the cluster's containers: {e}");
            }
        }
        if let Some(network) = &self.network {
            if let Err(e) = cli::run(&["network", "rm", network]) {
                tracing::warn!("cannot remove the cluster's network: {e}");
            }
        }
    }
}

/// `<pid>-<sequence>-<clock>`: unique within the process by the sequence, across processes by
/// the pid, and across a recycled pid by the clock.
fn unique_suffix() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    format!("{}-{sequence}-{:x}", std::process::id(), clock & 0xffff)
}

/// Where the subnet search starts: spread by name so parallel clusters rarely race for one.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
