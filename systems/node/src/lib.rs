//! The runtime that runs a reference system's protocol core on a real host.
//!
//! The core ([`machine::Machine`]) decides everything; this crate only moves bytes: frames
//! from peers and clients become inputs, a timer delivers ticks, a disk thread makes
//! writes durable (grouping many into one fsync round) and reports them persisted, and the
//! core's sends and replies go out on TCP. It keeps the contract's promises: one step at a
//! time, writes durable in order before `Persisted`, replies in order per client.
//!
//! - [`clock`]: the node's clock, with an offset the harness can move (clock faults).
//! - [`disk`]: the thread that owns the [`storage::Store`] and group-commits writes.
//! - [`peers`]: a connection per peer, redialled when it breaks, and the peer listener.
//! - [`clients`]: the client listener and one reader and writer per connection.
//! - [`driver`]: the loop that owns the core.
//! - [`events`]: the core's events as JSON lines in a file, for the event-log checkers.
//! - [`restore`]: seeding a new two-phase-commit participant with a snapshot part.
//! - [`cli`]: the `faultline-node` command line.

pub mod cli;
pub mod clients;
pub mod clock;
pub mod disk;
pub mod driver;
pub mod events;
pub mod frame;
pub mod peers;
pub mod restore;

use machine::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Upper bound of inputs waiting for the core; readers wait (backpressure) beyond it.
pub const MAX_PENDING_INPUTS: usize = 8192;
/// Upper bound of messages queued for one peer; more are dropped, as a congested network
/// would (the protocols recover from loss).
pub const MAX_PEER_QUEUE: usize = 8192;
/// Upper bound of replies queued for one client; a client that falls further behind is
/// disconnected rather than allowed to grow the node's memory.
pub const MAX_CLIENT_QUEUE: usize = 4096;
/// Upper bound of open client connections.
pub const MAX_CLIENTS: usize = 1024;
/// How long a new connection may take to say who it is.
pub const HELLO_TIMEOUT_MS: u64 = 2_000;

/// Everything a node needs besides its core's own configuration.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub id: NodeId,
    /// Every member's peer address, this node's included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    pub data_dir: PathBuf,
    pub seed: u64,
    /// Peers must present the same token, so nodes of two clusters never mix.
    pub cluster: String,
    /// A file holding a signed millisecond offset for this node's clock; re-read as it runs.
    pub clock_offset_file: Option<PathBuf>,
    /// Where to append the core's events as JSON lines (see [`events`]); one file per node.
    /// Without it, events are dropped.
    pub events_file: Option<PathBuf>,
    pub limits: storage::Limits,
}

/// Why a node stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage in {dir}: {source}")]
    Storage {
        dir: PathBuf,
        #[source]
        source: storage::StorageError,
    },
    #[error("{0}")]
    Boot(#[from] machine::BootError),
    #[error("node {id} is not among the peers {peers:?}")]
    NotAMember { id: NodeId, peers: Vec<NodeId> },
    #[error("the disk thread stopped: {0}")]
    Disk(String),
    #[error(transparent)]
    Events(#[from] events::EventLogError),
}
