//! Carries out nemesis ops on a cluster and remembers what is in effect, so that a stop (or
//! `stop-all`, before the final phase and on Ctrl-C) undoes exactly what was done.
//!
//! The executor is the runner's client for the nemesis thread. Its calls block (signals over
//! SSH, iptables), so each op runs on tokio's blocking pool. A fault that fails part way is
//! recorded as `info` with the error: some of it may have happened.
//!
//! For systems that keep an event log, it also journals the faults as the event-log
//! checkers read them ([`EventJournal`]): `crash` once a killed node is gone, `recover`
//! before it starts again, `fault` before any other fault begins, `heal` once a stop leaves
//! nothing in effect. Nodes are named there as the systems name themselves: `n<i>` for
//! the i-th node of the cluster.

use super::disk::{self, DiskMode};
use crate::control::daemon::{self, State};
use crate::control::{clock, Net, Node, PacketFaults};
use crate::db::{Backend, Cluster, Db};
use crate::event_log::{EventJournal, NodeReading};
use crate::host_clock;
use crate::partition::{self, Grudge};
use crate::runner::Live;
use checkers::history::Value;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use workloads::client::{Client, Outcome};
use workloads::focus::Focus;

/// How long `stop-disk` watches restarted nodes, to record which did not come back (a
/// system may refuse to start on a damaged log).
const RESTART_WATCH: std::time::Duration = std::time::Duration::from_secs(1);

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
    journal: Option<Arc<EventJournal>>,
    /// Where the workload's lock is held, for the `holder` target.
    focus: Option<Focus>,
}

/// What is in effect now.
#[derive(Default)]
struct Active {
    partitioned: bool,
    packet: bool,
    killed: BTreeSet<String>,
    paused: BTreeSet<String>,
    clocked: BTreeSet<String>,
    /// Killed by a disk fault, down until `stop-disk`.
    disked: BTreeSet<String>,
}

impl Active {
    /// Nothing is in effect: the cluster is whole again.
    fn is_empty(&self) -> bool {
        !self.partitioned
            && !self.packet
            && self.killed.is_empty()
            && self.paused.is_empty()
            && self.clocked.is_empty()
            && self.disked.is_empty()
    }
}

impl Executor {
    pub fn new(
        cluster: Cluster,
        db: Arc<dyn Db>,
        net: Option<Arc<dyn Net>>,
        live: Arc<Live>,
    ) -> Executor {
        Executor::journaling(cluster, db, net, live, None)
    }

    /// An executor that also writes what it does to the run's event journal.
    pub fn journaling(
        cluster: Cluster,
        db: Arc<dyn Db>,
        net: Option<Arc<dyn Net>>,
        live: Arc<Live>,
        journal: Option<Arc<EventJournal>>,
    ) -> Executor {
        Executor {
            inner: Arc::new(Inner {
                cluster,
                db,
                net,
                live,
                active: Mutex::default(),
                journal,
                focus: None,
            }),
        }
    }

    /// The same executor, aiming `holder` faults where `focus` says the lock is held.
    pub fn aiming(self, focus: Focus) -> Executor {
        let mut inner = Arc::try_unwrap(self.inner)
            .ok()
            .expect("aimed before any fault runs");
        inner.focus = Some(focus);
        Executor {
            inner: Arc::new(inner),
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
        let done = self.dispatch(f, value);
        if f.starts_with("stop-") && self.active().is_empty() {
            if let Some(j) = &self.journal {
                j.heal();
            }
        }
        done
    }

    fn dispatch(&self, f: &str, value: &Value) -> Result<Value, String> {
        match f {
            "start-partition" => self.start_partition(value),
            "stop-partition" => self.stop_partition(),
            "start-kill" => self.start_kill(value),
            "stop-kill" => self.stop_kill(),
            "start-pause" => self.start_pause(value),
            "stop-pause" => self.stop_pause(),
            "start-clock" => self.start_clock(value),
            "stop-clock" => self.stop_clock(),
            "start-packet" => self.start_packet(value),
            "stop-packet" => self.stop_packet(),
            "start-disk" => self.start_disk(value),
            "stop-disk" => self.stop_disk(),
            "stop-all" => self.stop_all(),
            other => Err(format!("unknown nemesis op {other:?}")),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's name in the event log: `n<i>` for the i-th node of the cluster.
    fn event_node(&self, node: &Node) -> String {
        let i = self.cluster.nodes.iter().position(|n| n.name == node.name);
        i.map_or_else(|| node.name.clone(), |i| format!("n{}", i + 1))
    }

    fn journal_crash(&self, node: &Node) {
        if let Some(j) = &self.journal {
            j.crash(&self.event_node(node), self.node_reading(node).as_ref());
        }
    }

    fn journal_recover(&self, node: &Node) {
        if let Some(j) = &self.journal {
            j.recover(&self.event_node(node), self.node_reading(node).as_ref());
        }
    }

    /// The node's own clock, on a backend whose nodes are other hosts: their event lines
    /// are stamped by it, and a crash must order with them by the same clock. A host whose
    /// clock cannot be read leaves the line on the controller's clock (logged).
    fn node_reading(&self, node: &Node) -> Option<NodeReading> {
        if self.cluster.backend != Backend::Ssh {
            return None;
        }
        match host_clock::node_now_ns(self.cluster.remote.as_ref(), node) {
            Ok(node_ns) => Some(NodeReading {
                clock: node.name.clone(),
                node_ns,
            }),
            Err(e) => {
                tracing::warn!("cannot read the clock of {}: {e}", node.name);
                None
            }
        }
    }

    fn journal_fault(&self, what: &str) {
        if let Some(j) = &self.journal {
            j.fault(what);
        }
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
                if primaries.is_empty() {
                    return Err("no primary found: nothing to isolate".into());
                }
                partition::isolate(&self.cluster.names(), &primaries)
            }
            None => return Err(format!("partition {topology:?} has no grudge")),
        };
        self.journal_fault("partition");
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
            None if value["targets"] == "holder" => {
                let focus = self
                    .focus
                    .as_ref()
                    .ok_or("no target: this workload has no lock")?;
                let Some(addr) = focus.holder_node() else {
                    return Ok(Vec::new()); // Nobody holds the lock: nothing to aim at.
                };
                let node = self
                    .cluster
                    .nodes
                    .iter()
                    .find(|n| self.db.client_addr(n) == addr)
                    .ok_or_else(|| format!("no target: the holder's server {addr} is no node"))?;
                vec![node.name.clone()]
            }
            None if value["targets"] == "follower" => {
                let leaders = self.db.primaries(&self.cluster);
                let pick = value["pick"].as_u64().unwrap_or(0);
                let follower = pick_follower(&self.cluster.names(), &leaders, pick)
                    .ok_or("no target: every node says it leads")?;
                vec![follower]
            }
            None => self.db.primaries(&self.cluster),
        };
        if names.is_empty() {
            return Err("no target: no primary found".into());
        }
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
            let was_running = self
                .db
                .kill(&self.cluster, node)
                .map_err(|e| e.to_string())?;
            if was_running {
                self.journal_crash(node);
            }
            self.active().killed.insert(node.name.clone());
        }
        self.mark("kill", !nodes.is_empty());
        Ok(json!({"targets": value["targets"], "nodes": names(&nodes)}))
    }

    fn stop_kill(&self) -> Result<Value, String> {
        let killed: Vec<String> = self.active().killed.iter().cloned().collect();
        self.restart(&killed, |a| &mut a.killed)?;
        self.mark("kill", false);
        Ok(json!({"restarted": killed}))
    }

    /// Starts the named nodes' systems again, each forgotten from its set once started. A
    /// node already running (another fault's stop restarted it) is left alone: a second
    /// start would race it for its ports and overwrite its pidfile.
    fn restart(
        &self,
        names: &[String],
        set: impl Fn(&mut Active) -> &mut BTreeSet<String>,
    ) -> Result<(), String> {
        for name in names {
            let node = self.cluster.node(name).ok_or("unknown node")?;
            let state = daemon::state(self.cluster.remote.as_ref(), node, &self.db.daemon());
            if state.map_err(|e| e.to_string())? == State::Gone {
                self.journal_recover(node);
                self.db
                    .start(&self.cluster, node)
                    .map_err(|e| e.to_string())?;
            }
            set(&mut self.active()).remove(name);
        }
        Ok(())
    }

    /// Kills the targets and damages their disks as `value["mode"]` says; they stay down
    /// until `stop-disk`.
    fn start_disk(&self, value: &Value) -> Result<Value, String> {
        let mode = value["mode"]
            .as_str()
            .and_then(DiskMode::from_name)
            .ok_or_else(|| format!("a disk fault names its mode: {value}"))?;
        let nodes = self.targets(value)?;
        let bytes = value["bytes"].as_u64().unwrap_or(1);
        let seed = value["seed"].as_u64().unwrap_or(0);
        let mut faults = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let was_running = self
                .db
                .kill(&self.cluster, node)
                .map_err(|e| e.to_string())?;
            if was_running {
                self.journal_crash(node);
            }
            self.active().disked.insert(node.name.clone());
            self.mark("disk", true);
            faults.push(match mode {
                DiskMode::LoseUnsynced => self.lose_unsynced(node)?,
                _ => self.damage_tail(node, mode, bytes, seed.wrapping_add(i as u64))?,
            });
        }
        Ok(
            json!({"mode": mode.name(), "targets": value["targets"], "nodes": names(&nodes), "faults": faults}),
        )
    }

    fn lose_unsynced(&self, node: &Node) -> Result<Value, String> {
        let lazy = self.cluster.lazy_disk.as_ref().ok_or(
            "the data directories are not on the lazy filesystem: the run did not ask for lost unsynced writes",
        )?;
        let dropped = lazy
            .drop_unsynced(&self.cluster, node, &self.db.data_dir())
            .map_err(|e| e.to_string())?;
        Ok(
            json!({"node": node.name, "dropped_files": dropped.files, "dropped_bytes": dropped.bytes}),
        )
    }

    fn damage_tail(
        &self,
        node: &Node,
        mode: DiskMode,
        bytes: u64,
        seed: u64,
    ) -> Result<Value, String> {
        let tail = self
            .db
            .log_tail(&self.cluster, node)
            .map_err(|e| e.to_string())?;
        let edit = disk::plan_tail(&tail, mode, bytes, seed)?;
        disk::apply_tail(self.cluster.remote.as_ref(), node, &tail.file, &edit)
            .map_err(|e| e.to_string())?;
        Ok(disk::tail_record(node, mode, &tail, &edit))
    }

    /// Restarts the nodes a disk fault killed, and records which of them exited again within
    /// a moment (refusing a damaged log, say).
    fn stop_disk(&self) -> Result<Value, String> {
        let disked: Vec<String> = self.active().disked.iter().cloned().collect();
        self.restart(&disked, |a| &mut a.disked)?;
        self.mark("disk", false);
        let mut exited = Vec::new();
        if !disked.is_empty() {
            std::thread::sleep(RESTART_WATCH);
            for name in &disked {
                let node = self.cluster.node(name).ok_or("unknown node")?;
                let state = daemon::state(self.cluster.remote.as_ref(), node, &self.db.daemon());
                if state.map_err(|e| e.to_string())? == State::Gone {
                    exited.push(name.clone());
                }
            }
        }
        Ok(json!({"restarted": disked, "exited_within_1s": exited}))
    }

    fn start_pause(&self, value: &Value) -> Result<Value, String> {
        let nodes = self.targets(value)?;
        // A paused node is silent, as if cut off: a fault, not a crash (it forgets nothing).
        self.journal_fault("pause");
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

    /// Per-node offsets (`offsets_ms`), or one `offset_ms` for the nodes `targets` names
    /// now (the leader, say: a script cannot know which node that will be).
    fn clock_offsets(&self, value: &Value) -> Result<Vec<(String, i64)>, String> {
        if let Some(offsets) = value["offsets_ms"].as_object() {
            return offsets
                .iter()
                .map(|(name, offset)| {
                    let ms = offset.as_i64().ok_or("offsets are integers (ms)")?;
                    Ok((name.clone(), ms))
                })
                .collect();
        }
        let offset_ms = value["offset_ms"]
            .as_i64()
            .ok_or("a clock fault has offsets_ms, or offset_ms (integer ms) and targets")?;
        let nodes = self.targets(value)?;
        Ok(nodes.into_iter().map(|n| (n.name, offset_ms)).collect())
    }

    fn start_clock(&self, value: &Value) -> Result<Value, String> {
        let mode = value["mode"].as_str().ok_or("a clock fault has a mode")?;
        let offsets = self.clock_offsets(value)?;
        let period_ms = value["period_ms"].as_u64().unwrap_or(50);
        let remote = self.cluster.remote.as_ref();
        // A node whose clock jumps times out early or late, as if messages were lost.
        self.journal_fault("clock");
        for (name, offset_ms) in &offsets {
            let (name, offset_ms) = (name.as_str(), *offset_ms);
            let node = self
                .cluster
                .node(name)
                .ok_or_else(|| format!("no node {name:?} in this cluster"))?;
            self.active().clocked.insert(name.to_string());
            let done = match mode {
                "strobe" => clock::start_strobe(remote, node, offset_ms, period_ms),
                "bump" | "skew" => clock::set_offset(remote, node, offset_ms),
                other => return Err(format!("unknown clock fault mode {other:?}")),
            };
            done.map_err(|e| e.to_string())?;
        }
        self.mark("clock", true);
        // The completion names the nodes, whatever named them in the invocation.
        let mut done = value.clone();
        done["offsets_ms"] = offsets
            .into_iter()
            .map(|(name, ms)| (name, json!(ms)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        Ok(done)
    }

    fn stop_clock(&self) -> Result<Value, String> {
        let clocked: Vec<String> = self.active().clocked.iter().cloned().collect();
        for name in &clocked {
            let node = self.cluster.node(name).ok_or("unknown node")?;
            clock::stop_strobe(self.cluster.remote.as_ref(), node).map_err(|e| e.to_string())?;
            self.active().clocked.remove(name);
        }
        self.mark("clock", false);
        Ok(json!({"reset": clocked}))
    }

    fn start_packet(&self, value: &Value) -> Result<Value, String> {
        let faults: PacketFaults = serde_json::from_value(value.clone())
            .map_err(|e| format!("bad packet faults {value}: {e}"))?;
        self.journal_fault("packet");
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
        let (partitioned, packet, killed, paused, clocked, disked) = {
            let a = self.active();
            (
                a.partitioned,
                a.packet,
                !a.killed.is_empty(),
                !a.paused.is_empty(),
                !a.clocked.is_empty(),
                !a.disked.is_empty(),
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
        step("disk", disked, &|| self.stop_disk());
        step("partition", partitioned, &|| self.stop_partition());
        step("packet", packet, &|| self.stop_packet());
        step("clock", clocked, &|| self.stop_clock());
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

/// The `pick`th (modulo) of `nodes` that is not among `leaders`, None if all lead. With
/// no leader known, any node is a follower.
fn pick_follower(nodes: &[String], leaders: &[String], pick: u64) -> Option<String> {
    let followers: Vec<&String> = nodes.iter().filter(|n| !leaders.contains(n)).collect();
    if followers.is_empty() {
        return None;
    }
    Some(followers[(pick % followers.len() as u64) as usize].clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::daemon::{self, Daemon};
    use crate::control::local::Local;
    use crate::control::Cmd;
    use crate::db::{Backend, DbError};
    use checkers::rng::Rng;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn a_follower_target_is_never_a_leader() {
        let nodes: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let leaders = vec!["n2".to_string()];
        let picks: std::collections::BTreeSet<String> = (0..10)
            .filter_map(|p| pick_follower(&nodes, &leaders, p))
            .collect();
        assert_eq!(picks.into_iter().collect::<Vec<_>>(), ["n1", "n3"]);
        assert_eq!(pick_follower(&nodes, &nodes, 3), None);
        assert_eq!(pick_follower(&nodes, &[], 4), Some("n2".to_string()));
    }

    /// A real system for nemesis tests: one shell daemon per node, under the controllable
    /// clock, that appends what its clock says ten times a second.
    struct ClockProbe;

    impl Db for ClockProbe {
        fn name(&self) -> &'static str {
            "clock-probe"
        }
        fn preflight(&self, _c: &Cluster) -> Result<(), DbError> {
            Ok(())
        }
        fn setup(&self, c: &Cluster, node: &Node) -> Result<(), DbError> {
            self.start(c, node)
        }
        fn wait_ready(&self, _c: &Cluster, _n: &Node, _t: Duration) -> Result<(), DbError> {
            Ok(())
        }
        fn start(&self, c: &Cluster, node: &Node) -> Result<(), DbError> {
            let lib = clock::library(c.remote.as_ref(), node)?;
            clock::set_offset(c.remote.as_ref(), node, 0)?;
            let probe = "sh -c 'while :; do date +%s >> log/clock.out; sleep 0.1; done'";
            daemon::start(
                c.remote.as_ref(),
                node,
                &clock::wrap(&lib, probe),
                &self.daemon(),
            )?;
            Ok(())
        }
        fn daemon(&self) -> Daemon {
            Daemon {
                pidfile: "run/probe.pid".into(),
                logfile: "log/probe.log".into(),
            }
        }
        fn teardown(&self, c: &Cluster, node: &Node) -> Result<(), DbError> {
            self.kill(c, node).map(|_| ())
        }
        fn log_files(&self) -> Vec<std::path::PathBuf> {
            vec!["log/clock.out".into()]
        }
        fn primaries(&self, _c: &Cluster) -> Vec<String> {
            Vec::new()
        }
        fn client_addr(&self, _node: &Node) -> std::net::SocketAddr {
            "127.0.0.1:1".parse().unwrap()
        }
        fn clock_faults(&self) -> Result<(), String> {
            Ok(())
        }
        fn local_net(
            &self,
            _c: &Cluster,
            _rt: &tokio::runtime::Handle,
        ) -> Result<Option<Box<dyn Net>>, DbError> {
            Ok(None)
        }
    }

    /// How far ahead of the true time a node's probe last said it was, in seconds.
    fn skew_s(c: &Cluster, node: &Node) -> i64 {
        let out = c
            .remote
            .exec(node, &Cmd::new("tail -n 1 log/clock.out"))
            .unwrap();
        let seen: i64 = out.stdout_text().trim().parse().unwrap();
        seen - SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn clock_faults_move_the_targets_clocks_and_stop_all_resets_them() {
        let root = std::env::temp_dir().join(format!("faultline-nemesis-{}", std::process::id()));
        let cluster = Cluster {
            nodes: (1..=2)
                .map(|i| Node {
                    name: format!("n{i}"),
                    ip: "127.0.0.1".into(),
                })
                .collect(),
            remote: Arc::new(Local::new(&root)),
            backend: Backend::Local,
            run_id: "clock-test".into(),
            lazy_disk: None,
        };
        let db: Arc<dyn Db> = Arc::new(ClockProbe);
        for node in &cluster.nodes {
            db.setup(&cluster, node).unwrap();
        }
        let live = Arc::new(Live::default());
        let nemesis = Executor::new(cluster.clone(), db.clone(), None, live.clone());
        let bump = json!({"mode": "bump", "offsets_ms": {"n2": 3_600_000}});
        nemesis.inner.apply("start-clock", &bump).unwrap();
        assert!(live.faults.lock().unwrap().contains("clock"));
        std::thread::sleep(Duration::from_millis(400));
        let (n1, n2) = (&cluster.nodes[0], &cluster.nodes[1]);
        assert!(skew_s(&cluster, n1).abs() <= 2, "n1 untouched");
        assert!(
            (3590..=3610).contains(&skew_s(&cluster, n2)),
            "n2 an hour ahead"
        );
        let healed = nemesis.heal_all().unwrap();
        assert_eq!(healed["clock"]["reset"], json!(["n2"]), "{healed}");
        std::thread::sleep(Duration::from_millis(400));
        assert!(skew_s(&cluster, n2).abs() <= 2, "n2 back to the true time");
        assert!(!live.faults.lock().unwrap().contains("clock"));
        // One offset for the nodes a target names; the completion names them.
        let targeted = json!({"mode": "bump", "nodes": ["n1"], "offset_ms": -7_200_000});
        let done = nemesis.inner.apply("start-clock", &targeted).unwrap();
        assert_eq!(done["offsets_ms"], json!({"n1": -7_200_000}), "{done}");
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            (-7210..=-7190).contains(&skew_s(&cluster, n1)),
            "n1 two hours behind"
        );
        assert!(skew_s(&cluster, n2).abs() <= 2, "n2 untouched");
        nemesis.heal_all().unwrap();
        let bad = nemesis
            .inner
            .apply(
                "start-clock",
                &json!({"mode": "bump", "targets": "primaries"}),
            )
            .unwrap_err();
        assert!(bad.contains("offset_ms"), "{bad}");
        for node in &cluster.nodes {
            db.teardown(&cluster, node).unwrap();
        }
    }

    #[test]
    fn a_holder_target_follows_what_the_lock_clients_say() {
        let root = std::env::temp_dir().join(format!("faultline-holder-{}", std::process::id()));
        let cluster = Cluster {
            nodes: vec![Node {
                name: "n1".into(),
                ip: "127.0.0.1".into(),
            }],
            remote: Arc::new(Local::new(&root)),
            backend: Backend::Local,
            run_id: "holder-test".into(),
            lazy_disk: None,
        };
        let db: Arc<dyn Db> = Arc::new(ClockProbe);
        let live = Arc::new(Live::default());
        let holder = json!({"targets": "holder"});
        let unaimed = Executor::new(cluster.clone(), db.clone(), None, live.clone());
        let e = unaimed.inner.targets(&holder).unwrap_err();
        assert!(e.contains("no lock"), "{e}");
        let focus = Focus::default();
        let aimed = Executor::new(cluster, db.clone(), None, live).aiming(focus.clone());
        assert!(
            aimed.inner.targets(&holder).unwrap().is_empty(),
            "nobody holds it"
        );
        // ClockProbe serves clients on 127.0.0.1:1 on its one node.
        focus.believes(4, Some("127.0.0.1:1".parse().unwrap()));
        let hit = aimed.inner.targets(&holder).unwrap();
        assert_eq!(
            hit.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["n1"]
        );
        focus.believes(5, Some("127.0.0.9:1".parse().unwrap()));
        let e = aimed.inner.targets(&holder).unwrap_err();
        assert!(e.contains("127.0.0.9:1 is no node"), "{e}");
    }

    #[test]
    fn grudges_round_trip_through_the_history() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let g = partition::majorities_ring(&nodes, &mut Rng::new(3));
        assert_eq!(grudge_from_json(&partition::to_json(&g)).unwrap(), g);
        assert!(grudge_from_json(&json!({"n1": "n2"})).is_err());
        assert!(grudge_from_json(&json!([1])).is_err());
    }
}
