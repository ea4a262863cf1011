//! The coordination service's workloads (issue 4): each module holds its operation source,
//! its client (on the recipes) and its checker.

use super::workload::CoordWorkload;
use std::sync::Arc;

/// Every workload name [`by_name`] knows.
pub const NAMES: &[&str] = &[];

pub fn by_name(name: &str) -> Option<Arc<dyn CoordWorkload>> {
    #[allow(clippy::match_single_binding)] // Until the first workload lands.
    match name {
        _ => None,
    }
}
