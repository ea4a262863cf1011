//! The coordination service's workloads (issue 4): each module holds its operation source,
//! its client (on the recipes) and its checker.

pub mod election;
pub mod lock;
pub mod membership;
pub mod sequential;
pub mod watch;
pub(crate) mod znodes;

use super::workload::CoordWorkload;
use std::sync::Arc;

/// Every workload name [`by_name`] knows.
pub const NAMES: &[&str] = &[
    "election",
    "lock",
    "lock-unfenced",
    "membership",
    "sequential",
    "watch",
];

pub fn by_name(name: &str) -> Option<Arc<dyn CoordWorkload>> {
    match name {
        "election" => Some(Arc::new(election::ElectionWorkload)),
        "lock" => Some(Arc::new(lock::LockWorkload::fenced())),
        "lock-unfenced" => Some(Arc::new(lock::LockWorkload::unfenced())),
        "membership" => Some(Arc::new(membership::Membership::default())),
        "sequential" => Some(Arc::new(sequential::Sequential)),
        "watch" => Some(Arc::new(watch::WatchWorkload)),
        _ => None,
    }
}
