//! The two-phase-commit store's workloads as the harness drives them: the setup operation
//! that runs before any fault, the stream of operations, the final operations after every
//! fault healed, and a client per worker. [`by_name`] is the registry `faultline test
//! --workload` and `faultline analyze` consult.

use super::worker::TwoPcClient;
use super::{ACCOUNTS, INITIAL_BALANCE};
use crate::client::BoxClient;
use checkers::history::Value;
use checkers::rng::Rng;
use serde_json::json;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The workload names [`by_name`] knows.
pub const NAMES: &[&str] = &["bank", "snapshot", "recovery"];

/// Largest transfer.
const MAX_AMOUNT: u64 = 5;

/// Quiet time between the final read and the final queries: the coordinator answers a
/// client when it sends its decision, so the participants apply the last transaction a
/// moment after the client knows it committed (and resend acknowledgements every 100 ms).
pub const FINAL_QUIET_MS: u64 = 1_000;

/// Which of the three workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Transfers and reads.
    Bank,
    /// Transfers and reads while snapshots are taken; their parts are fetched at the end.
    Snapshot,
    /// Mostly transfers, so that crashes land on commits in flight.
    Recovery,
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Kind> {
        match name {
            "bank" => Some(Kind::Bank),
            "snapshot" => Some(Kind::Snapshot),
            "recovery" => Some(Kind::Recovery),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Bank => "bank",
            Kind::Snapshot => "snapshot",
            Kind::Recovery => "recovery",
        }
    }
}

/// Where a worker's client connects and how long it may wait.
#[derive(Clone, Debug)]
pub struct ClientContext {
    /// Every node's client address in the cluster's order: the first coordinates (it
    /// takes transactions and snapshots), the others hold one shard each.
    pub nodes: Vec<SocketAddr>,
    pub worker: u32,
    /// Clients give up on an operation after this long (a little before the runner does).
    pub op_timeout_ms: u64,
}

/// What the workers of one run learn together: the snapshots taken (and the highest id any
/// snapshot answer named), which the final `snapshot-parts` fetches.
#[derive(Debug, Default)]
pub struct Shared {
    snapshots: Mutex<(BTreeSet<u64>, u64)>,
}

impl Shared {
    pub fn taken(&self, id: u64) {
        let mut s = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        s.0.insert(id);
        s.1 = s.1.max(id);
    }

    /// A snapshot that failed still used up its id: parts of it may exist on some nodes.
    pub fn seen(&self, id: u64) {
        let mut s = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        s.1 = s.1.max(id);
    }

    /// The taken snapshots, and the highest id seen.
    pub fn snapshots(&self) -> (Vec<u64>, u64) {
        let s = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        (s.0.iter().copied().collect(), s.1)
    }
}

/// One run's workload.
pub struct TwoPcWorkload {
    pub kind: Kind,
    /// Shards in the cluster (nodes but the coordinator): transfers cross them.
    participants: u64,
    shared: Arc<Shared>,
}

/// The workload called `name` on a cluster of `nodes` nodes, if there is one.
pub fn by_name(name: &str, nodes: usize) -> Option<TwoPcWorkload> {
    Some(TwoPcWorkload {
        kind: Kind::from_name(name)?,
        participants: (nodes as u64).saturating_sub(1).max(1),
        shared: Arc::default(),
    })
}

/// The setup's balances: every account at its initial balance.
pub fn initial_balances() -> Value {
    let m: serde_json::Map<String, Value> = (0..ACCOUNTS)
        .map(|k| (k.to_string(), json!(INITIAL_BALANCE)))
        .collect();
    Value::Object(m)
}

impl TwoPcWorkload {
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Runs first, each until it succeeds, before the nemesis starts.
    pub fn setup_ops(&self) -> Vec<(String, Value)> {
        vec![("setup".into(), json!({ "balances": initial_balances() }))]
    }

    /// The next operation; deterministic given the RNG's stream.
    pub fn next_op(&self, rng: &mut Rng) -> (String, Value) {
        let (reads, snapshots) = match self.kind {
            Kind::Bank => (20, 0),
            Kind::Snapshot => (15, 5),
            Kind::Recovery => (5, 0),
        };
        let roll = rng.below(100);
        if roll < snapshots {
            ("snapshot".into(), Value::Null)
        } else if roll < snapshots + reads {
            ("read".into(), Value::Null)
        } else {
            ("transfer".into(), self.transfer(rng))
        }
    }

    /// A transfer between two accounts on different shards (when there are two).
    fn transfer(&self, rng: &mut Rng) -> Value {
        let from = rng.below(ACCOUNTS);
        let shard = |k: u64| k % self.participants;
        let others: Vec<u64> = (0..ACCOUNTS)
            .filter(|&k| k != from && (self.participants == 1 || shard(k) != shard(from)))
            .collect();
        let to = *rng.pick(&others);
        let amount = 1 + rng.below(MAX_AMOUNT);
        json!({"from": from, "to": to, "amount": amount})
    }

    /// Run in order after every fault healed, each until it succeeds: the final read.
    pub fn final_reads(&self) -> Vec<(String, Value)> {
        vec![("read".to_string(), Value::Null)]
    }

    /// Run [`FINAL_QUIET_MS`] after the final reads, each until it succeeds: the
    /// participants' final states (which must list every committed transaction, the final
    /// read's too) and, for `snapshot`, the snapshots' parts.
    pub fn final_queries(&self) -> Vec<(String, Value)> {
        let mut ops = vec![("final-state".to_string(), Value::Null)];
        if self.kind == Kind::Snapshot {
            ops.push(("snapshot-parts".into(), Value::Null));
        }
        ops
    }

    pub fn client(&self, ctx: ClientContext) -> BoxClient {
        BoxClient::new(TwoPcClient::new(ctx, self.shared.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_cross_shards_and_the_mix_follows_the_kind() {
        let w = by_name("snapshot", 3).unwrap();
        let mut rng = Rng::new(1);
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..2000 {
            let (f, v) = w.next_op(&mut rng);
            if f == "transfer" {
                let (from, to) = (v["from"].as_u64().unwrap(), v["to"].as_u64().unwrap());
                assert_ne!(from % 2, to % 2, "{v}");
                assert!((1..=MAX_AMOUNT).contains(&v["amount"].as_u64().unwrap()));
            }
            *counts.entry(f).or_insert(0) += 1;
        }
        assert!(
            counts["snapshot"] > 50 && counts["read"] > 200,
            "{counts:?}"
        );
        let bank = by_name("bank", 3).unwrap();
        assert!((0..500).all(|_| bank.next_op(&mut rng).0 != "snapshot"));
        assert_eq!(w.final_queries().last().unwrap().0, "snapshot-parts");
        assert!(by_name("register", 3).is_none());
    }

    #[test]
    fn one_shard_still_transfers_between_distinct_accounts() {
        let w = by_name("bank", 2).unwrap();
        let mut rng = Rng::new(2);
        for _ in 0..200 {
            let v = w.transfer(&mut rng);
            assert_ne!(v["from"], v["to"]);
        }
    }
}
