//! Faults: what can go wrong, and a seeded plan that makes it go wrong over time.
//!
//! Scripted tests apply a [`Fault`] directly (`Sim::apply_fault` or the shorthands such as
//! `Sim::crash`). With [`FaultConfig::enabled`], the simulator also draws faults from its fault
//! stream at random intervals; each fault that lasts (a partition, a crash, a pause, a loss burst)
//! schedules its own end, so at most one partition and one loss burst are active at a time and
//! every crashed or paused node comes back. That mirrors Jepsen's start/stop nemesis.

use crate::net::{links_between, random_halves};
use checkers::history::Value;
use checkers::rng::Rng;
use machine::NodeId;

/// One fault, or the end of one.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Blocks these directed links, in addition to those already blocked.
    Partition { links: Vec<(NodeId, NodeId)> },
    /// Unblocks every link.
    Heal,
    /// The node stops at once: memory and in-flight disk writes are lost, connections drop.
    Crash { node: NodeId },
    /// Boots a crashed node from its disk (nothing if it is up).
    Restart { node: NodeId },
    /// The node is frozen: it receives nothing (inputs wait) and does not tick.
    Pause { node: NodeId },
    /// Unfreezes a paused node and delivers what waited, in order.
    Resume { node: NodeId },
    /// Steps the node's clock by `delta_ms`, either way.
    ClockJump { node: NodeId, delta_ms: i64 },
    /// Peer messages are lost with probability `loss` (instead of the configured rate).
    LossBurst { loss: f64 },
    /// Ends a loss burst.
    LossEnd,
}

impl Fault {
    /// The `f` of the nemesis event the history records.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::Heal => "heal",
            Fault::Crash { .. } => "crash",
            Fault::Restart { .. } => "restart",
            Fault::Pause { .. } => "pause",
            Fault::Resume { .. } => "resume",
            Fault::ClockJump { .. } => "clock-jump",
            Fault::LossBurst { .. } => "loss-burst",
            Fault::LossEnd => "loss-end",
        }
    }

    /// The `value` of the nemesis event the history records.
    pub fn value(&self) -> Value {
        let node = |n: &NodeId| Value::from(format!("n{n}"));
        match self {
            Fault::Partition { links } => Value::from(
                links
                    .iter()
                    .map(|(f, t)| Value::from(format!("n{f}->n{t}")))
                    .collect::<Vec<_>>(),
            ),
            Fault::Crash { node: n }
            | Fault::Restart { node: n }
            | Fault::Pause { node: n }
            | Fault::Resume { node: n } => node(n),
            Fault::ClockJump { node: n, delta_ms } => {
                Value::from(vec![node(n), Value::from(*delta_ms)])
            }
            Fault::LossBurst { loss } => Value::from(*loss),
            Fault::Heal | Fault::LossEnd => Value::Null,
        }
    }
}

/// Relative odds of each fault the plan starts.
#[derive(Clone, Debug)]
pub struct FaultWeights {
    /// Split the cluster into random halves.
    pub partition_halves: u32,
    /// Cut one node off from all others.
    pub isolate: u32,
    /// Block each directed link with probability 1/3: asymmetric, non-transitive partitions.
    pub partition_links: u32,
    pub crash: u32,
    pub pause: u32,
    pub clock_jump: u32,
    pub loss_burst: u32,
}

impl Default for FaultWeights {
    fn default() -> FaultWeights {
        FaultWeights {
            partition_halves: 3,
            isolate: 2,
            partition_links: 1,
            crash: 3,
            pause: 1,
            clock_jump: 1,
            loss_burst: 1,
        }
    }
}

impl FaultWeights {
    fn total(&self) -> u64 {
        [
            self.partition_halves,
            self.isolate,
            self.partition_links,
            self.crash,
            self.pause,
            self.clock_jump,
            self.loss_burst,
        ]
        .iter()
        .map(|&w| u64::from(w))
        .sum()
    }
}

/// The random fault plan.
#[derive(Clone, Debug)]
pub struct FaultConfig {
    pub enabled: bool,
    /// No fault starts before this virtual time.
    pub start_ms: u64,
    /// No fault starts after this virtual time (those in progress still end on schedule).
    pub stop_ms: Option<u64>,
    /// Gap between fault starts, uniform in this range.
    pub interval_ms: (u64, u64),
    /// How long a lasting fault lasts, uniform in this range.
    pub duration_ms: (u64, u64),
    pub weights: FaultWeights,
    /// Most nodes crashed or paused at once; `None`: a minority, so a majority stays up.
    pub max_down: Option<usize>,
    /// Clock jumps are uniform in `-max..=max`.
    pub max_clock_jump_ms: u64,
    /// Loss rate during a loss burst.
    pub burst_loss: f64,
}

impl Default for FaultConfig {
    /// Disabled; enable it, or start from [`FaultConfig::chaos`].
    fn default() -> FaultConfig {
        FaultConfig {
            enabled: false,
            ..FaultConfig::chaos()
        }
    }
}

impl FaultConfig {
    /// Every kind of fault, one every 0.1 to 1 s, each lasting 0.05 to 2 s.
    pub fn chaos() -> FaultConfig {
        FaultConfig {
            enabled: true,
            start_ms: 0,
            stop_ms: None,
            interval_ms: (100, 1_000),
            duration_ms: (50, 2_000),
            weights: FaultWeights::default(),
            max_down: None,
            max_clock_jump_ms: 10_000,
            burst_loss: 0.5,
        }
    }

    pub fn check(&self) {
        assert!(
            self.interval_ms.0 <= self.interval_ms.1,
            "interval_ms range is reversed"
        );
        assert!(self.interval_ms.0 > 0, "faults need a gap of at least 1 ms");
        assert!(
            self.duration_ms.0 <= self.duration_ms.1,
            "duration_ms range is reversed"
        );
        assert!(
            (0.0..=1.0).contains(&self.burst_loss),
            "burst_loss not a probability"
        );
        assert!(
            self.max_clock_jump_ms <= i64::MAX as u64 / 4,
            "absurd clock jump"
        );
        if self.enabled {
            assert!(
                self.weights.total() > 0,
                "fault plan enabled with all weights zero"
            );
        }
    }

    /// Whether the plan may start a fault at `now_ms`.
    pub(crate) fn active_at(&self, now_ms: u64) -> bool {
        self.enabled && now_ms >= self.start_ms && self.stop_ms.is_none_or(|s| now_ms < s)
    }
}

/// What the plan needs to know about the cluster to choose a fault that makes sense.
pub(crate) struct PlanState<'a> {
    pub members: &'a [NodeId],
    /// Nodes neither crashed nor paused.
    pub running: Vec<NodeId>,
    pub partitioned: bool,
    pub lossy: bool,
}

/// A fault to apply now and, for lasting faults, the fault that ends it and when.
pub(crate) struct Planned {
    pub start: Fault,
    pub end: Option<(u64, Fault)>,
}

/// Draws the next fault, or `None` when the drawn kind does not apply now (a partition while
/// one is active, a crash with too many nodes down). Draws from `rng` only.
pub(crate) fn plan(config: &FaultConfig, state: &PlanState<'_>, rng: &mut Rng) -> Option<Planned> {
    let w = &config.weights;
    let mut roll = rng.below(w.total());
    let mut pick = |weight: u32| {
        let hit = roll < u64::from(weight);
        roll = roll.saturating_sub(u64::from(weight));
        hit
    };
    let duration_ms = rng.between(config.duration_ms.0, config.duration_ms.1);
    let lasting = |start: Fault, end: Fault| {
        Some(Planned {
            start,
            end: Some((duration_ms, end)),
        })
    };
    let n = state.members.len();
    let max_down = config.max_down.unwrap_or((n - 1) / 2);
    let may_stop_one = n - state.running.len() < max_down && !state.running.is_empty();
    if pick(w.partition_halves) {
        if state.partitioned || n < 2 {
            return None;
        }
        let (a, b) = random_halves(state.members, rng);
        let links = links_between(&[&a, &b]);
        return lasting(Fault::Partition { links }, Fault::Heal);
    }
    if pick(w.isolate) {
        if state.partitioned || n < 2 {
            return None;
        }
        let node = *rng.pick(state.members);
        let others: Vec<NodeId> = state
            .members
            .iter()
            .copied()
            .filter(|&m| m != node)
            .collect();
        let links = links_between(&[&[node], &others]);
        return lasting(Fault::Partition { links }, Fault::Heal);
    }
    if pick(w.partition_links) {
        if state.partitioned {
            return None;
        }
        let links = random_links(state.members, rng);
        return lasting(Fault::Partition { links }, Fault::Heal);
    }
    if pick(w.crash) {
        if !may_stop_one {
            return None;
        }
        let node = *rng.pick(&state.running);
        return lasting(Fault::Crash { node }, Fault::Restart { node });
    }
    if pick(w.pause) {
        if !may_stop_one {
            return None;
        }
        let node = *rng.pick(&state.running);
        return lasting(Fault::Pause { node }, Fault::Resume { node });
    }
    if pick(w.clock_jump) {
        let node = *rng.pick(state.members);
        let max = config.max_clock_jump_ms;
        let delta_ms = rng.between(0, 2 * max) as i64 - max as i64;
        return Some(Planned {
            start: Fault::ClockJump { node, delta_ms },
            end: None,
        });
    }
    if state.lossy {
        return None;
    }
    lasting(
        Fault::LossBurst {
            loss: config.burst_loss,
        },
        Fault::LossEnd,
    )
}

/// Each directed link between distinct members, blocked with probability 1/3.
fn random_links(members: &[NodeId], rng: &mut Rng) -> Vec<(NodeId, NodeId)> {
    let mut links = Vec::new();
    for &f in members {
        for &t in members {
            if f != t && rng.below(3) == 0 {
                links.push((f, t));
            }
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A healthy cluster's state with only `running` up.
    fn state<'a>(members: &'a [NodeId], running: &[NodeId]) -> PlanState<'a> {
        PlanState {
            members,
            running: running.to_vec(),
            partitioned: false,
            lossy: false,
        }
    }

    #[test]
    fn the_plan_never_stops_a_majority_by_default() {
        let members = [1, 2, 3, 4, 5];
        let config = FaultConfig::chaos();
        let mut rng = Rng::new(3);
        let mut running = members.to_vec();
        for _ in 0..2_000 {
            if let Some(Planned {
                start: Fault::Crash { node } | Fault::Pause { node },
                ..
            }) = plan(&config, &state(&members, &running), &mut rng)
            {
                running.retain(|&m| m != node);
            }
            assert!(running.len() >= 3, "{running:?}");
        }
        assert_eq!(running.len(), 3, "the plan should reach the limit");
    }

    #[test]
    fn every_kind_is_drawn_and_lasting_faults_schedule_their_end() {
        let members = [1, 2, 3];
        let config = FaultConfig::chaos();
        let mut rng = Rng::new(8);
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..1_000 {
            if let Some(p) = plan(&config, &state(&members, &members), &mut rng) {
                names.insert(p.start.name());
                let lasting = !matches!(p.start, Fault::ClockJump { .. });
                assert_eq!(p.end.is_some(), lasting, "{:?}", p.start);
                if let Some((after_ms, _)) = p.end {
                    assert!((50..=2_000).contains(&after_ms));
                }
            }
        }
        let expected = ["clock-jump", "crash", "loss-burst", "partition", "pause"];
        assert_eq!(names.into_iter().collect::<Vec<_>>(), expected);
    }
}
