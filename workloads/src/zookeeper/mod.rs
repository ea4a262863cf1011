//! A client of Apache ZooKeeper speaking its own wire protocol, and real ZooKeeper servers
//! to run it against.
//!
//! Faultline drives real ZooKeeper (issue 8) and benchmarks its own coordination service
//! against it (issue 4), so the client is written from ZooKeeper's protocol, not borrowed:
//! [`jute`] is the encoding, [`proto`] the records, [`conn`] one connection, [`client`]
//! the session with reconnection and watches, and [`ensemble`] starts Debian's ZooKeeper.

pub mod client;
pub mod conn;
pub mod ensemble;
pub mod error;
pub mod jute;
pub mod proto;
pub mod watches;
pub mod workloads;

pub use client::{Client, Config};
pub use error::{Error, ErrorCode};
pub use proto::{Acl, CreateMode, EventType, KeeperState, MultiOp, OpResult, Stat, WatchedEvent};
pub use watches::{Watch, WatchError};
