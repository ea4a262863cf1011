//! Carries out nemesis ops on a cluster and remembers what is in effect, so that a stop (or
//! `stop-all`, before the final phase and on Ctrl-C) undoes exactly what was done.
//!
//! The executor is the runner's client for the nemesis thread. Its calls block (signals over
//! SSH, iptables), so each op runs on tokio's blocking pool. A fault that fails part way is
//! recorded as `info` with the error: some of it may have happened.

use crate::control::{Net, Node, PacketFaults};
use crate::db::{Cluster, Db};
use crate::partition::{self, Grudge};
use crate::runner::Live;
use checkers::history::Value;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use workloads::client::{Client, Outcome};

/// Carries out nemesis ops.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    db: Arc<dyn Db>,
    net: Option<Arc<dyn Net>>,
    live: Arc<Live>,
    active: Mutex<Active>,
}

/// What is in effect now.
#[derive(Default)]
struct Active {
    partitioned: bool,
    packet: bool,
    killed: BTreeSet<String>,
    paused: BTreeSet<String>,
}

impl Executor {
    pub fn new(
        cluster: Cluster,
        db: Arc<dyn Db>,
        net: Option<Arc<dyn Net>>,
        live: Arc<Live>,
    ) -> Executor {
        Executor {
            inner: Arc::new(Inner {
                cluster,
                db,
                net,
                live,
                active: Mutex::default(),
            }),
        }
    }

    /// Undoes every fault in effect, blocking; what `stop-all` does.
    pub fn heal_all(&self) -> Result<Value, String> {
        self.inner.stop_all()
    }
}

impl Client for Executor {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        let inner = self.inner.clone();
        let (f, value) = (f.to_string(), value.clone());
        let input = value.clone();
        let applied = tokio::task::spawn_blocking(move || inner.apply(&f, &value)).await;
        match applied {
            Ok(Ok(done)) => Outcome::ok(done),
            Ok(Err(e)) => Outcome::info(input, e),
            Err(panic) => Outcome::info(input, format!("the nemesis panicked: {panic}")),
        }
    }
}

impl Inner {
    fn apply(&self, f: &str, value: &Value) -> Result<Value, String> {
        match f {
            "start-partition" => self.start_partition(value),
            "stop-partition" => self.stop_partition(),
            "start-kill" => self.start_kill(value),
            "stop-kill" => self.stop_kill(),
            "start-pause" => self.start_pause(value),
            "stop-pause" => self.stop_pause(),
            "start-packet" => self.start_packet(value),
            "stop-packet" => self.stop_packet(),
            "stop-all" => self.stop_all(),
            other => Err(format!("unknown nemesis op {other:?}")),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark(&self, fault: &str, on: bool) {
        let mut faults = self.live.faults.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            faults.insert(fault.to_string());
        } else {
            faults.remove(fault);
        }
    }

    fn net(&self) -> Result<&dyn Net, String> {
        self.net
            .as_deref()
            .ok_or_else(|| "this cluster has no network to fault".to_string())
    }

    fn start_partition(&self, value: &Value) -> Result<Value, String> {
        let topology = value["topology"].as_str().unwrap_or("given");
        let grudge = match value.get("grudge") {
            Some(g) => grudge_from_json(g)?,
            None if topology == "primaries" => {
                let primaries = self.db.primaries(&self.cluster);
                partition::isolate(&self.cluster.names(), &primaries)
            }
            None => return Err(format!("partition {topology:?} has no grudge")),
        };
        self.net()?.partition(&grudge).map_err(|e| e.to_string())?;
        self.active().partitioned = true;
        self.mark("partition", true);
        Ok(json!({"topology": topology, "grudge": partition::to_json(&grudge)}))
    }

    fn stop_partition(&self) -> Result<Value, String> {
        self.net()?
            .partition(&Grudge::new())
            .map_err(|e| e.to_string())?;
        self.active().partitioned = false;
        self.mark("partition", false);
        Ok(json!("fully connected"))
    }

    /// The nodes a kill or pause names, or the primaries now.
    fn targets(&self, value: &Value) -> Result<Vec<Node>, String> {
        let names: Vec<String> = match value.get("nodes").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .map(|n| {
                    n.as_str()
                        .map(str::to_string)
                        .ok_or("node names are strings")
                })
                .collect::<Result<_, _>>()?,
            None => self.db.primaries(&self.cluster),
        };
        names
            .iter()
            .map(|n| {
                self.cluster
                    .node(n)
                    .cloned()
                    .ok_or_else(|| format!("no node {n:?} in this cluster"))
            })
            .collect()
    }

    fn start_kill(&self, value: &Value) -> Result<Value, String> {
        let nodes = self.targets(value)?;
        for node in &nodes {
            self.db
                .kill(&self.cluster, node)
                .map_err(|e| e.to_string())?;
            self.active().killed.insert(node.name.clone());
        }
        self.mark("kill", !nodes.is_empty());
        Ok(json!({"targets": value["targets"], "nodes": names(&nodes)}))
    }

    fn stop_kill(&self) -> Result<Value, String> {
        let killed: Vec<String> = self.active().killed.iter().cloned().collect();
        for name in &killed {
            let node = self.cluster.node(name).ok_or("unknown node")?;
            self.db
                .start(&self.cluster, node)
                .map_err(|e| e.to_string())?;
            self.active().killed.remove(name);
        }
        self.mark("kill", false);
        Ok(json!({"restarted": killed}))
    }

    fn start_pause(&self, value: &Value) -> Result<Value, String> {
        let nodes = self.targets(value)?;
        for node in &nodes {
            self.db
                .pause(&self.cluster, node)
                .map_err(|e| e.to_string())?;
            self.active().paused.insert(node.name.clone());
        }
        self.mark("pause", !nodes.is_empty());
        Ok(json!({"targets": value["targets"], "nodes": names(&nodes)}))
    }

    fn stop_pause(&self) -> Result<Value, String> {
        let paused: Vec<String> = self.active().paused.iter().cloned().collect();
        for name in &paused {
            let node = self.cluster.node(name).ok_or("unknown node")?;
            self.db
                .resume(&self.cluster, node)
                .map_err(|e| e.to_string())?;
            self.active().paused.remove(name);
        }
        self.mark("pause", false);
        Ok(json!({"resumed": paused}))
    }

    fn start_packet(&self, value: &Value) -> Result<Value, String> {
        let faults: PacketFaults = serde_json::from_value(value.clone())
            .map_err(|e| format!("bad packet faults {value}: {e}"))?;
        self.net()?.packet(&faults).map_err(|e| e.to_string())?;
        self.active().packet = true;
        self.mark("packet", true);
        Ok(value.clone())
    }

    fn stop_packet(&self) -> Result<Value, String> {
        self.net()?
            .packet(&PacketFaults::default())
            .map_err(|e| e.to_string())?;
        self.active().packet = false;
        self.mark("packet", false);
        Ok(json!("no packet faults"))
    }

    /// Stops every fault in effect; keeps going past errors so as much heals as can, and
    /// reports them all.
    fn stop_all(&self) -> Result<Value, String> {
        let (partitioned, packet, killed, paused) = {
            let a = self.active();
            (
                a.partitioned,
                a.packet,
                !a.killed.is_empty(),
                !a.paused.is_empty(),
            )
        };
        let mut done = BTreeMap::new();
        let mut errors = Vec::new();
        let mut step = |name: &str, on: bool, r: &dyn Fn() -> Result<Value, String>| {
            if on {
                match r() {
                    Ok(v) => {
                        done.insert(name.to_string(), v);
                    }
                    Err(e) => errors.push(format!("{name}: {e}")),
                }
            }
        };
        // Resume before restarting: a paused process holds its ports.
        step("pause", paused, &|| self.stop_pause());
        step("kill", killed, &|| self.stop_kill());
        step("partition", partitioned, &|| self.stop_partition());
        step("packet", packet, &|| self.stop_packet());
        if errors.is_empty() {
            Ok(serde_json::to_value(done).expect("json"))
        } else {
            Err(errors.join("; "))
        }
    }
}

fn names(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| n.name.clone()).collect()
}

/// The inverse of [`partition::to_json`].
fn grudge_from_json(v: &Value) -> Result<Grudge, String> {
    let map = v.as_object().ok_or("a grudge is an object")?;
    map.iter()
        .map(|(node, dropped)| {
            let dropped = dropped
                .as_array()
                .ok_or("a grudge maps nodes to lists of nodes")?
                .iter()
                .map(|d| {
                    d.as_str()
                        .map(str::to_string)
                        .ok_or("node names are strings")
                })
                .collect::<Result<BTreeSet<String>, _>>()?;
            Ok((node.clone(), dropped))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::rng::Rng;

    #[test]
    fn grudges_round_trip_through_the_history() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let g = partition::majorities_ring(&nodes, &mut Rng::new(3));
        assert_eq!(grudge_from_json(&partition::to_json(&g)).unwrap(), g);
        assert!(grudge_from_json(&json!({"n1": "n2"})).is_err());
        assert!(grudge_from_json(&json!([1])).is_err());
    }
}
