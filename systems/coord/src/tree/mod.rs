//! The replicated state machine: ZooKeeper's data tree, and the path of a request through
//! it.
//!
//! ```text
//!  client write ──> leader: prepare(tree + outstanding) ──> Txn ──> Zab broadcast
//!                                                                       │ commit, zxid order
//!  every replica: apply(tree, zxid, txn) ──> TxnResult (reply) + WatchEvents
//!                                                                       │ local to a server
//!  client's server: Watches::trigger(event) ──> watchers to notify
//!
//!  client read ──> any server: read(tree, watches) ──> Reply (maybe stale), watch set
//! ```
//!
//! - [`prepare()`] (leader only) checks a write against the committed tree plus the
//!   leader's [`Outstanding`] proposals and turns it into a [`Txn`] that leaves replicas
//!   nothing to decide (`txn`, `outstanding`, `prepare`).
//! - [`apply()`] runs the transaction on a replica's [`Tree`], deterministically, in zxid
//!   order (`apply`, `data_tree`, `node`).
//! - [`read()`] answers reads from the local tree and registers [`Watches`] (`read`,
//!   `watch`).
//! - [`acl`] holds ZooKeeper's access control: ACL checks, the `digest` scheme (with its
//!   [`sha1`](sha1::sha1)), `addAuth`.
//! - [`Tree::to_snapshot`] and [`Tree::from_snapshot`] persist and restore the whole tree;
//!   [`Tree::digest`] fingerprints it so that replicas can be compared (`snapshot`,
//!   `digest`).
//!
//! Nothing here does IO or reads a clock: time comes from the leader's `time_ms` inside
//! the transaction.

pub mod acl;
mod apply;
mod data_tree;
mod digest;
mod node;
mod outstanding;
mod prepare;
mod read;
pub mod sha1;
mod snapshot;
mod txn;
mod watch;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use apply::{apply, skip};
pub use data_tree::Tree;
pub use node::{Node, PersistedStat};
pub use outstanding::Outstanding;
pub use prepare::{prepare, prepare_close_session, prepare_create_session, Cleanup};
pub use read::{read, set_watches};
pub use snapshot::{SnapshotError, SNAPSHOT_FORMAT};
pub use txn::{
    CheckTxn, CreateTxn, DeleteTxn, MultiTxnOp, SetAclTxn, SetDataTxn, Txn, TxnOp, TxnOpRef,
    TxnResult,
};
pub use watch::{WatchType, Watches, MAX_WATCHES_PER_WATCHER};
