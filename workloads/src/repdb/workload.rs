//! The replicated database's workloads as the harness drives them: the stream of
//! transactions, the final operations once every fault is healed, and a client per worker.
//! [`by_name`] is the registry `faultline test --workload` and `faultline analyze` consult.

use super::node_name;
use super::ops::{TxnConfig, TxnConfigError, TxnOps};
use super::worker::RepdbClient;
use crate::client::BoxClient;
use checkers::history::Value;
use checkers::rng::Rng;
use checkers::txn::Workload;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Mutex;

/// The workload names [`by_name`] knows.
pub const NAMES: &[&str] = &["list-append", "rw-register"];

/// Where a worker's client connects and how long it may wait.
#[derive(Clone, Debug)]
pub struct ClientContext {
    /// Every replica's client address in the cluster's order (replica `nK` is `nodes[K-1]`).
    pub nodes: Vec<SocketAddr>,
    pub worker: u32,
    /// Clients give up on an operation after this long (a little before the runner does).
    pub op_timeout_ms: u64,
}

/// One run's workload.
pub struct RepdbWorkload {
    pub workload: Workload,
    replicas: usize,
    ops: Mutex<TxnOps>,
}

/// The txn checker's workload called `name`, if there is one.
pub fn workload_of(name: &str) -> Option<Workload> {
    match name {
        "list-append" => Some(Workload::ListAppend),
        "rw-register" => Some(Workload::RwRegister),
        _ => None,
    }
}

/// The workload called `name` on `replicas` replicas, if there is one.
pub fn by_name(name: &str, replicas: usize) -> Option<RepdbWorkload> {
    let config = TxnConfig::new(workload_of(name)?);
    Some(RepdbWorkload::new(config, replicas).expect("the default config is valid"))
}

impl RepdbWorkload {
    /// The workload drawing transactions as `config` says, on `replicas` replicas.
    pub fn new(config: TxnConfig, replicas: usize) -> Result<RepdbWorkload, TxnConfigError> {
        Ok(RepdbWorkload {
            workload: config.workload,
            replicas,
            ops: Mutex::new(TxnOps::new(config)?),
        })
    }

    pub fn name(&self) -> &'static str {
        self.workload.name()
    }

    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// The next transaction; deterministic given the RNG's stream.
    pub fn next_op(&self, rng: &mut Rng) -> (String, Value) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).next(rng)
    }

    /// Run once after healing, until it succeeds: waits for the replicas to serve and stop
    /// applying, so that the apply logs read next are final.
    pub fn settle_ops(&self) -> Vec<(String, Value)> {
        vec![("settle".into(), Value::Null)]
    }

    /// Run after [`RepdbWorkload::settle_ops`], each until it succeeds: every replica's
    /// apply log and state.
    pub fn dump_ops(&self) -> Vec<(String, Value)> {
        (1..=self.replicas as u32)
            .map(|n| ("apply-log".into(), json!({ "replica": node_name(n) })))
            .collect()
    }

    pub fn client(&self, ctx: ClientContext) -> BoxClient {
        BoxClient::new(RepdbClient::new(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_knows_both_workloads_and_the_final_ops_cover_every_replica() {
        let w = by_name("list-append", 3).unwrap();
        assert_eq!(w.name(), "list-append");
        let mut rng = Rng::new(1);
        let (f, v) = w.next_op(&mut rng);
        assert_eq!(f, "txn");
        assert!(v.is_array());
        let dumps = w.dump_ops();
        assert_eq!(dumps.len(), 3);
        assert_eq!(dumps[2].1, json!({"replica": "n3"}));
        assert_eq!(
            by_name("rw-register", 5).unwrap().workload,
            Workload::RwRegister
        );
        assert!(by_name("bank", 3).is_none());
    }
}
