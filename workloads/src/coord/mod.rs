//! The client side of Faultline's coordination service (`systems/coord`): an async session
//! client and the recipes of the ZooKeeper notes built on it.
//!
//! - [`client`]: [`CoordClient`], one session over one TCP connection at a time, moving
//!   between servers when a connection breaks, with pipelined requests and one-shot watches.
//! - [`recipes`]: configuration, group membership, leader election, locks without the herd
//!   effect, shared (read/write) locks and the double barrier.

pub mod client;
pub mod recipes;
pub mod workload;
pub mod workloads;

pub use client::{ClientState, ConnectOptions, CoordClient, CoordError, ErrorKind, Watch};
