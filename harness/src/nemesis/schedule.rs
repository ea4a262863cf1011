//! When each fault class starts and stops, and whom it hits: a generator for the nemesis
//! thread.
//!
//! Each class alternates between healthy and faulty periods of about `interval_ns` (each
//! between half and one and a half times it), independently of the others, so classes
//! compose (a partition during a kill). The schedule draws from its own RNG, seeded from the
//! run's seed: the faults of a run replay exactly even though client timing differs between
//! runs. At the time limit every active fault is stopped, so all faults heal before the final
//! phase.

use super::disk::{self, DiskMode};
use super::{FaultClass, Targets};
use crate::control::PacketFaults;
use crate::generator::{Context, Generator, Invocation, Next, Thread};
use crate::partition::{self, Grudge};
use checkers::rng::Rng;
use serde_json::{json, Value};

/// Mixed into the run's seed for the schedule's own RNG.
const SCHEDULE_SALT: u64 = 0x6e65_6d65_7369_7321;

/// What a schedule may choose from.
#[derive(Clone, Debug)]
pub struct Plan {
    pub classes: Vec<FaultClass>,
    /// Faults at written times; when given, the schedule below is not drawn.
    pub script: Option<super::script::Script>,
    pub nodes: Vec<String>,
    pub interval_ns: u64,
    /// No fault starts after this; every active one stops here.
    pub time_limit_ns: u64,
    /// The packet faults this backend can inject (one is chosen per `start-packet`).
    pub packet_modes: Vec<PacketFaults>,
    /// The disk faults to choose from (one per `start-disk`).
    pub disk_modes: Vec<DiskMode>,
    /// Whom kills, pauses and lost writes may hit (one spec drawn per fault).
    pub targets: Vec<Targets>,
    pub seed: u64,
}

struct ClassState {
    class: FaultClass,
    active: bool,
    due_ns: u64,
}

struct Schedule {
    plan: Plan,
    rng: Rng,
    states: Vec<ClassState>,
}

/// The nemesis generator for `plan`.
pub fn schedule(plan: Plan) -> crate::generator::Gen {
    let mut rng = Rng::new(plan.seed ^ SCHEDULE_SALT);
    let states = plan
        .classes
        .iter()
        .map(|&class| ClassState {
            class,
            active: false,
            due_ns: jitter(plan.interval_ns, &mut rng),
        })
        .collect();
    Box::new(Schedule { plan, rng, states })
}

/// Between half and one and a half times `interval_ns`.
fn jitter(interval_ns: u64, rng: &mut Rng) -> u64 {
    interval_ns / 2 + rng.below(interval_ns.max(1))
}

impl Generator for Schedule {
    fn next(&mut self, ctx: &Context, _rng: &mut Rng) -> Next {
        let limit = self.plan.time_limit_ns;
        // A start due at or after the limit never happens; a stop is moved to the limit.
        self.states.retain(|s| s.active || s.due_ns < limit);
        let Some(i) = (0..self.states.len()).min_by_key(|&i| {
            let s = &self.states[i];
            (s.due_ns.min(limit), s.class)
        }) else {
            return Next::Exhausted;
        };
        let due_ns = self.states[i].due_ns.min(limit);
        if !ctx.free.contains(&Thread::Nemesis) {
            return Next::Pending { until_ns: None };
        }
        if ctx.time_ns < due_ns {
            return Next::Pending {
                until_ns: Some(due_ns),
            };
        }
        let (f, value) = self.fire(i, ctx.time_ns);
        Next::Op(Invocation {
            time_ns: ctx.time_ns,
            thread: Thread::Nemesis,
            f,
            value,
        })
    }
}

impl Schedule {
    fn fire(&mut self, i: usize, now_ns: u64) -> (String, Value) {
        let interval = self.plan.interval_ns;
        let class = self.states[i].class;
        let op = if self.states[i].active {
            (class.stop_f(), Value::Null)
        } else {
            (class.start_f(), self.start_value(class))
        };
        let s = &mut self.states[i];
        s.active = !s.active;
        s.due_ns = now_ns.saturating_add(jitter(interval, &mut self.rng));
        op
    }

    fn start_value(&mut self, class: FaultClass) -> Value {
        match class {
            FaultClass::Partition => self.partition_value(),
            FaultClass::Kill | FaultClass::Pause => self.targets_value(),
            FaultClass::Packet => {
                let modes = &self.plan.packet_modes;
                let m = modes[self.rng.below(modes.len() as u64) as usize];
                serde_json::to_value(m).expect("packet faults serialize")
            }
            FaultClass::Clock => self.clock_value(),
            FaultClass::Disk => self.disk_value(),
        }
    }

    /// Lost unsynced writes on any target spec; tail faults on one node.
    fn disk_value(&mut self) -> Value {
        let modes = &self.plan.disk_modes;
        let Some(&mode) = modes.get(self.rng.below(modes.len().max(1) as u64) as usize) else {
            return Value::Null;
        };
        match mode {
            DiskMode::LoseUnsynced => {
                let mut value = self.targets_value();
                value["mode"] = json!(mode.name());
                value
            }
            _ => disk::tail_value(mode, &self.plan.nodes, &mut self.rng),
        }
    }

    fn partition_value(&mut self) -> Value {
        let nodes = &self.plan.nodes;
        let rng = &mut self.rng;
        let topologies: &[&str] = if nodes.len() >= 3 {
            &[
                "random-halves",
                "isolate-one",
                "majorities-ring",
                "bridge",
                "primaries",
            ]
        } else {
            &["random-halves", "isolate-one", "primaries"]
        };
        let topology = topologies[rng.below(topologies.len() as u64) as usize];
        let grudge: Option<Grudge> = match topology {
            "random-halves" => Some(partition::random_halves(nodes, rng)),
            "isolate-one" => Some(partition::isolate_one(nodes, rng)),
            "majorities-ring" => Some(partition::majorities_ring(nodes, rng)),
            "bridge" => Some(partition::bridge(nodes, rng)),
            _ => None,
        };
        match grudge {
            Some(g) => json!({"topology": topology, "grudge": partition::to_json(&g)}),
            None => json!({"topology": topology}),
        }
    }

    /// Bump one node, skew several by different amounts, or strobe some: offsets up to a
    /// minute either way, enough to outlast leases and election timeouts.
    fn clock_value(&mut self) -> Value {
        let modes = ["bump", "skew", "strobe"];
        let mode = modes[self.rng.below(modes.len() as u64) as usize];
        let mut nodes = self.plan.nodes.clone();
        for i in (1..nodes.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            nodes.swap(i, j);
        }
        let count = match mode {
            "bump" => 1,
            _ => 1 + self.rng.below(nodes.len() as u64) as usize,
        };
        let mut offsets = serde_json::Map::new();
        for node in nodes.into_iter().take(count) {
            let magnitude = 100 + self.rng.below(60_000) as i64;
            let sign = if self.rng.below(2) == 0 { -1 } else { 1 };
            offsets.insert(node, json!(sign * magnitude));
        }
        let mut value = json!({"mode": mode, "offsets_ms": offsets});
        if mode == "strobe" {
            value["period_ms"] = json!(10 + self.rng.below(90));
        }
        value
    }

    fn targets_value(&mut self) -> Value {
        let specs = &self.plan.targets;
        assert!(!specs.is_empty(), "a plan names at least one target spec");
        let spec = specs[self.rng.below(specs.len() as u64) as usize];
        if spec == Targets::Follower {
            // Which follower is known only when the fault starts; the draw is made now.
            return json!({"targets": spec.name(), "pick": self.rng.below(1 << 16)});
        }
        match spec.count(self.plan.nodes.len()) {
            Some(k) => {
                let mut nodes = self.plan.nodes.clone();
                for i in (1..nodes.len()).rev() {
                    let j = self.rng.below(i as u64 + 1) as usize;
                    nodes.swap(i, j);
                }
                nodes.truncate(k.max(1));
                nodes.sort();
                json!({"targets": spec.name(), "nodes": nodes})
            }
            None => json!({"targets": spec.name()}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(classes: Vec<FaultClass>, seed: u64) -> Plan {
        Plan {
            classes,
            script: None,
            nodes: (1..=5).map(|i| format!("n{i}")).collect(),
            interval_ns: 1_000,
            time_limit_ns: 20_000,
            packet_modes: vec![PacketFaults {
                delay_ms: 50,
                ..PacketFaults::default()
            }],
            disk_modes: DiskMode::ALL.to_vec(),
            targets: Targets::ALL.to_vec(),
            seed,
        }
    }

    /// Runs the schedule on a simulated clock with an instant nemesis.
    fn ops(plan: Plan) -> Vec<(u64, String, Value)> {
        let mut gen = schedule(plan);
        let mut rng = Rng::new(0);
        let mut now = 0;
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let ctx = Context {
                time_ns: now,
                free: vec![Thread::Nemesis],
                threads: vec![Thread::Nemesis],
            };
            match gen.next(&ctx, &mut rng) {
                Next::Op(op) => out.push((op.time_ns, op.f, op.value)),
                Next::Pending { until_ns: Some(t) } => now = t,
                Next::Pending { until_ns: None } => panic!("free nemesis but no wake-up"),
                Next::Exhausted => return out,
            }
        }
        panic!("schedule never ended");
    }

    #[test]
    fn classes_alternate_independently_and_all_stop_by_the_limit() {
        let all = vec![FaultClass::Partition, FaultClass::Kill, FaultClass::Packet];
        let got = ops(plan(all.clone(), 3));
        for class in all {
            let mine: Vec<&(u64, String, Value)> = got
                .iter()
                .filter(|(_, f, _)| f.ends_with(class.name()))
                .collect();
            assert!(mine.len() >= 4, "{class} fires repeatedly: {mine:?}");
            for (k, (_, f, _)) in mine.iter().enumerate() {
                let want = if k % 2 == 0 {
                    class.start_f()
                } else {
                    class.stop_f()
                };
                assert_eq!(*f, want, "{class} alternates");
            }
            assert_eq!(mine.len() % 2, 0, "{class} ends stopped");
            assert!(mine.iter().all(|(t, _, _)| *t <= 20_000));
        }
        let overlapping = got
            .windows(2)
            .any(|w| w[0].1.starts_with("start") && w[1].1.starts_with("start"));
        assert!(overlapping, "classes compose: two faults at once");
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let classes = vec![FaultClass::Partition, FaultClass::Pause];
        assert_eq!(
            ops(plan(classes.clone(), 11)),
            ops(plan(classes.clone(), 11))
        );
        assert_ne!(ops(plan(classes.clone(), 11)), ops(plan(classes, 12)));
    }

    #[test]
    fn targets_name_real_nodes_of_the_right_count() {
        for (_, f, v) in ops(plan(vec![FaultClass::Kill], 5)) {
            if f != "start-kill" {
                continue;
            }
            let spec = v["targets"].as_str().unwrap();
            let Some(nodes) = v["nodes"].as_array() else {
                assert_eq!(spec, "primaries");
                continue;
            };
            let want = match spec {
                "one" => 1,
                "minority" => 2,
                "majority" => 3,
                "all" => 5,
                other => panic!("unexpected spec {other}"),
            };
            assert_eq!(nodes.len(), want, "{v}");
        }
    }

    #[test]
    fn restricted_targets_are_the_only_ones_drawn() {
        let mut p = plan(vec![FaultClass::Pause], 5);
        p.targets = vec![Targets::Follower];
        let starts: Vec<Value> = ops(p)
            .into_iter()
            .filter(|(_, f, _)| f == "start-pause")
            .map(|(_, _, v)| v)
            .collect();
        assert!(starts.len() >= 3, "{starts:?}");
        for v in &starts {
            assert_eq!(v["targets"], "follower", "{v}");
            assert!(v["pick"].is_u64() && v.get("nodes").is_none(), "{v}");
        }
        let mut p = plan(vec![FaultClass::Kill], 5);
        p.targets = vec![Targets::One, Targets::Majority];
        for (_, f, v) in ops(p) {
            if f == "start-kill" {
                assert!(v["targets"] == "one" || v["targets"] == "majority", "{v}");
            }
        }
    }

    #[test]
    fn disk_faults_choose_every_mode_and_tail_faults_hit_one_node() {
        let got = ops(plan(vec![FaultClass::Disk], 9));
        let starts: Vec<&Value> = got
            .iter()
            .filter(|(_, f, _)| f == "start-disk")
            .map(|(_, _, v)| v)
            .collect();
        assert!(starts.len() >= 6, "{starts:?}");
        for mode in DiskMode::ALL {
            assert!(
                starts.iter().any(|v| v["mode"] == mode.name()),
                "{} chosen: {starts:?}",
                mode.name()
            );
        }
        for v in &starts {
            if v["mode"] != "lose-unsynced" {
                assert_eq!(v["nodes"].as_array().map(Vec::len), Some(1), "{v}");
                assert!(v["bytes"].as_u64().is_some(), "{v}");
            } else {
                assert!(v["targets"].is_string(), "{v}");
            }
        }
        let mut only = plan(vec![FaultClass::Disk], 9);
        only.disk_modes = vec![DiskMode::CorruptTail];
        assert!(ops(only)
            .iter()
            .filter(|(_, f, _)| f == "start-disk")
            .all(|(_, _, v)| v["mode"] == "corrupt-tail" && v["seed"].is_u64()));
    }

    #[test]
    fn a_busy_nemesis_waits_for_its_completion() {
        let mut gen = schedule(plan(vec![FaultClass::Kill], 1));
        let ctx = Context {
            time_ns: 1_000_000,
            free: vec![],
            threads: vec![Thread::Nemesis],
        };
        assert_eq!(
            gen.next(&ctx, &mut Rng::new(0)),
            Next::Pending { until_ns: None }
        );
    }
}
