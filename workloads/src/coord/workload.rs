//! The workloads that run on the coordination service besides `register`, as the harness
//! drives them: an operation source, final operations after healing, a client per worker,
//! and the workload's own checker. Each lives in [`super::workloads`]; [`by_name`] is the
//! registry `faultline test --workload` and `faultline analyze` consult.

use crate::client::BoxClient;
use crate::verdict::Verdict;
use checkers::history::{History, Value};
use checkers::rng::Rng;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where a worker's client connects and how long it may wait.
#[derive(Clone, Debug)]
pub struct ClientContext {
    /// The node this worker is bound to.
    pub node: SocketAddr,
    /// Every node's client address, for clients that move between servers.
    pub nodes: Vec<SocketAddr>,
    pub worker: u32,
    /// Clients give up on an operation after this long (a little before the runner does).
    pub op_timeout_ms: u64,
    /// Where lock clients say they hold the lock, shared by the run's clients and nemesis.
    pub focus: crate::focus::Focus,
}

pub trait CoordWorkload: Send + Sync {
    fn name(&self) -> &'static str;
    /// The next client operation `(f, value)`; deterministic given the RNG's stream.
    fn next_op(&self, rng: &mut Rng) -> (String, Value);
    /// Operations to run, each until it succeeds, after every fault healed.
    fn final_ops(&self) -> Vec<(String, Value)> {
        Vec::new()
    }
    fn client(&self, ctx: ClientContext) -> BoxClient;
    /// Judges a recorded history (of this workload); pure and deterministic.
    fn check(&self, history: &History) -> Verdict;
}

/// The coord workloads by name (`register` is separate: it is checked for linearizability).
pub fn by_name(name: &str) -> Option<Arc<dyn CoordWorkload>> {
    super::workloads::by_name(name)
}

pub fn names() -> &'static [&'static str] {
    super::workloads::NAMES
}
