//! A replicated database on total-order broadcast, as a deterministic protocol core: Kemme
//! & Alonso's eager update-everywhere replication with certification, and the alternative
//! schemes they compare, chosen by configuration, so that Faultline can show which
//! guarantee each one gives.
//!
//! N replicas each hold the whole database: an in-memory multi-version key-value store
//! (keys `u64`; values a list of `i64` for list-append keys, an `i64` for rw-register keys;
//! one version per commit). The total order is Zab (`faultline-zab`): transactions reach it
//! through the leader, are logged by a quorum before they are delivered, and survive crashes
//! and partitions of a minority; the database is durable through Zab's log and the snapshots
//! it takes of [`db::Db`]. Clients send whole transactions of micro-ops to any replica, the
//! delegate, which answers once ([`proto`]).
//!
//! | mode | what is broadcast | who decides | claims |
//! |---|---|---|---|
//! | `certification` (default) | write set + read set | every replica, on delivery | serializable, one-copy serializable |
//! | `certification`, no read sets | write set | every replica, first-committer-wins | snapshot isolation |
//! | `active` | the transaction | nobody: all execute it | serializable |
//! | `weak-voting` | write set, then a decision | the delegate | serializable |
//! | `primary-copy` | the primary's results | the primary | serializable |
//! | `lazy` | committed transactions, afterwards | the delegate, alone | nothing |
//!
//! Every replica keeps an apply log (committed transaction ids in apply order) that clients
//! can read, for `checkers::one_copy`. Planted bugs ([`config::Bugs`]) break the determinism
//! certification rests on.
//!
//! Modules:
//! - `config`: modes, settings, limits, bug switches.
//! - `proto`: client requests and answers, the broadcasts and the peers' messages.
//! - `json`: micro-ops in Jepsen/Elle's JSON shapes, as histories record them.
//! - `store`: the multi-version store and its garbage collection.
//! - `exec`: executing micro-ops against a view; applying write sets.
//! - `certify`: read-set validation and first-committer-wins.
//! - `db`: the replicated state (store, version, apply log, weak voting's queue), snapshots.
//! - `replica`: the `Machine`: Zab below, the modes' delivery rules, the delegate's clients.

pub mod certify;
pub mod config;
pub mod db;
pub mod exec;
pub mod json;
pub mod proto;
pub mod replica;
pub mod store;

pub use config::{Bugs, Limits, Mode, RepdbConfig};
pub use replica::Replica;
