//! One simulated node's state, and the read-only view of the cluster that invariants get.

use crate::clock::Clock;
use crate::disk::{CrashReport, Disk};
use checkers::rng::Rng;
use machine::{Durable, Input, Machine, NodeId};
use std::collections::VecDeque;

/// Where a node's tick schedule stands. A new schedule (after a boot or a resume) bumps the
/// generation, so ticks of the old one are recognized as stale and dropped.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ticks {
    pub start_ms: u64,
    pub count: u64,
    pub generation: u64,
}

pub(crate) struct Node<M: Machine> {
    pub id: NodeId,
    /// `None` while crashed.
    pub machine: Option<M>,
    pub paused: bool,
    /// Bumped by each crash: connections and requests of an earlier life are dead.
    pub incarnation: u64,
    pub disk: Disk,
    pub clock: Clock,
    pub ticks: Ticks,
    /// Inputs that reached the node while it was paused, in arrival order.
    pub inbox: VecDeque<Input<M>>,
    /// Draws each boot's seed.
    pub boot_rng: Rng,
    pub last_crash: Option<CrashReport>,
}

impl<M: Machine> Node<M> {
    pub fn is_running(&self) -> bool {
        self.machine.is_some() && !self.paused
    }
}

/// Read access to every node, as invariants and `run_until` conditions see it.
pub struct Cluster<'a, M: Machine> {
    pub(crate) nodes: &'a [Node<M>],
    pub(crate) now_ms: u64,
}

impl<'a, M: Machine> Cluster<'a, M> {
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn slot(&self, id: NodeId) -> &'a Node<M> {
        assert!(
            (1..=self.nodes.len() as NodeId).contains(&id),
            "n{id} is not a member"
        );
        &self.nodes[id as usize - 1]
    }

    /// The node's core, unless it is crashed (a paused node's core is visible).
    pub fn node(&self, id: NodeId) -> Option<&'a M> {
        self.slot(id).machine.as_ref()
    }

    /// Every live (not crashed) node, in id order.
    pub fn live(&self) -> impl Iterator<Item = (NodeId, &'a M)> + 'a {
        let nodes = self.nodes;
        nodes
            .iter()
            .filter_map(|n| n.machine.as_ref().map(|m| (n.id, m)))
    }

    /// Every node, `None` for crashed ones, indexed by `id - 1`.
    pub fn all(&self) -> Vec<Option<&'a M>> {
        self.nodes.iter().map(|n| n.machine.as_ref()).collect()
    }

    pub fn is_paused(&self, id: NodeId) -> bool {
        self.slot(id).paused
    }

    /// What the node's disk holds durably now (a crash keeps this, and maybe a torn prefix of
    /// what is in flight).
    pub fn durable(&self, id: NodeId) -> &'a Durable {
        self.slot(id).disk.synced()
    }

    /// The node's clock reading now.
    pub fn local_ms(&self, id: NodeId) -> u64 {
        self.slot(id).clock.local_ms(self.now_ms)
    }
}
