//! A ZooKeeper-like coordination service as a deterministic protocol core.
//!
//! - `api`: what clients ask and what they are told (requests, responses, Stat, errors).
//! - `tree`: the replicated state: znodes, sessions' ephemerals, ACLs, and the local watch
//!   tables; turns requests into idempotent transactions and applies them.
//! - `server`: the `Machine`: client connections, sessions, FIFO order, watches, and the
//!   leader's request pipeline.
//! - `zab`: leader election, discovery, synchronization and broadcast of transactions: the
//!   `faultline-zab` crate, re-exported here so paths such as `coord::zab::Zxid` keep working.

pub mod api;
pub mod server;
pub mod tree;
pub use ::zab;
