//! Faultline's second reference system: a sharded key-value store whose transactions commit
//! with two-phase commit, survive a crash of any process at any point, and can be
//! snapshotted with consistent cuts. It follows the notes in `shared/seeds/` (2PC, its
//! crash-recovery rules and termination protocol, checkpoints, recovery lines, stable
//! storage; Apache Ignite's consistent cut).
//!
//! - [`node`]: the `machine::Machine` core. Node 1 coordinates; nodes 2.. are participants,
//!   each owning the keys `k` with `k % participants` at its index.
//! - [`coordinator`], [`participant`]: the two roles' protocols.
//! - [`locks`]: strict two-phase locking without waits (conflicts vote no), so committed
//!   transactions are serializable.
//! - [`record`]: the forced log records and checkpoint blobs; [`wal`]: group commit.
//! - [`proto`]: the client protocol, the peer messages and the recorded events, which
//!   `checkers::atomic_commit`, `checkers::recovery_line` and `checkers::consistent_cut`
//!   read.
//! - [`config`]: timeouts, limits and the bug switches.

pub mod config;
pub mod coordinator;
pub mod locks;
pub mod node;
pub mod participant;
pub mod proto;
pub mod record;
pub mod wal;

#[cfg(test)]
mod tests;

pub use config::{Bugs, TwoPcConfig, BUG_NAMES};
pub use node::TwoPc;
