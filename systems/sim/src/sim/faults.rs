//! Applying faults, scripted or planned, and the shorthands scripted tests use.

use super::{Event, Sim};
use crate::fault::{plan, Fault, PlanState, Planned};
use crate::history;
use crate::net::{links_between, random_halves};
use crate::trace::{digest_str, Note};
use checkers::history::{OpType, Process};
use machine::{Machine, NodeId};

impl<M: Machine> Sim<M> {
    /// Applies `fault` now, records it in the trace and (as a nemesis event) in the history.
    /// Faults that do not apply (restarting a running node) change nothing but are recorded.
    pub fn apply_fault(&mut self, fault: Fault) {
        self.stats.faults += 1;
        let text = format!("{fault:?}");
        let detail = Some(text.clone());
        self.trace.record(
            self.steps,
            self.now_ms,
            Note::Fault {
                digest: digest_str(&text),
            },
            detail,
        );
        if self.config.record_nemesis {
            self.record(history::Event {
                op_type: OpType::Info,
                process: Process::nemesis(),
                f: fault.name(),
                value: fault.value(),
                node: None,
                error: None,
            });
        }
        match fault {
            Fault::Partition { links } => {
                if !links.is_empty() {
                    self.log_fault();
                }
                for (from, to) in links {
                    self.links.block(from, to);
                }
            }
            Fault::Heal => self.links.heal(),
            Fault::Crash { node } => self.crash_node(node),
            Fault::Restart { node } => {
                if !self.is_up(node) {
                    self.log_recover(node);
                    self.boot(node);
                }
            }
            Fault::Pause { node } => self.pause_node(node),
            Fault::Resume { node } => self.resume_node(node),
            Fault::ClockJump { node, delta_ms } => {
                self.log_fault();
                self.slot_mut(node).clock.jump(delta_ms);
            }
            Fault::LossBurst { loss } => {
                assert!((0.0..=1.0).contains(&loss), "loss {loss} not a probability");
                self.log_fault();
                self.burst_loss = Some(loss);
            }
            Fault::LossEnd => self.burst_loss = None,
        }
        self.log_heal_if_clear();
    }

    /// Blocks these directed links (on top of those already blocked).
    pub fn partition(&mut self, links: &[(NodeId, NodeId)]) {
        self.apply_fault(Fault::Partition {
            links: links.to_vec(),
        });
    }

    /// Cuts every link between nodes of different groups, both ways.
    pub fn partition_groups(&mut self, groups: &[&[NodeId]]) {
        self.partition(&links_between(groups));
    }

    /// Cuts `node` off from every other node, both ways.
    pub fn isolate(&mut self, node: NodeId) {
        let others: Vec<NodeId> = self
            .members
            .iter()
            .copied()
            .filter(|&m| m != node)
            .collect();
        self.partition_groups(&[&[node], &others]);
    }

    /// Splits the cluster into random halves (from the fault stream); returns them.
    pub fn partition_random_halves(&mut self) -> (Vec<NodeId>, Vec<NodeId>) {
        let (a, b) = random_halves(&self.members, &mut self.streams.fault);
        self.partition_groups(&[&a, &b]);
        (a, b)
    }

    /// Unblocks every link.
    pub fn heal(&mut self) {
        self.apply_fault(Fault::Heal);
    }

    pub fn crash(&mut self, node: NodeId) {
        self.apply_fault(Fault::Crash { node });
    }

    pub fn restart(&mut self, node: NodeId) {
        self.apply_fault(Fault::Restart { node });
    }

    pub fn pause(&mut self, node: NodeId) {
        self.apply_fault(Fault::Pause { node });
    }

    pub fn resume(&mut self, node: NodeId) {
        self.apply_fault(Fault::Resume { node });
    }

    pub fn clock_jump(&mut self, node: NodeId, delta_ms: i64) {
        self.apply_fault(Fault::ClockJump { node, delta_ms });
    }

    /// Stops the random plan from starting new faults (those in progress end on schedule).
    pub fn stop_faults(&mut self) {
        self.config.faults.enabled = false;
    }

    /// Ends every fault now: heals links, ends loss bursts, resumes paused nodes and restarts
    /// crashed ones. Use with `stop_faults` before a final liveness check.
    pub fn heal_all(&mut self) {
        if !self.links.is_empty() {
            self.heal();
        }
        if self.burst_loss.is_some() {
            self.apply_fault(Fault::LossEnd);
        }
        for node in self.members.clone() {
            if self.is_paused(node) {
                self.resume(node);
            }
            if !self.is_up(node) {
                self.restart(node);
            }
        }
    }

    /// Stops the node: its core and the writes in flight are lost (per `DiskConfig::crash_loss`),
    /// its connections die. Crashing a crashed node does nothing.
    fn crash_node(&mut self, id: NodeId) {
        let mode = self.config.disk.crash_loss;
        let node = &mut self.nodes[id as usize - 1];
        if node.machine.take().is_none() {
            return;
        }
        node.paused = false;
        node.inbox.clear();
        let old_incarnation = node.incarnation;
        node.incarnation += 1;
        node.last_crash = Some(node.disk.crash(mode, &mut self.streams.disk));
        self.stats.crashes += 1;
        self.log_crash(id);
        self.stop_ticks(id);
        self.drop_node_conns(id, old_incarnation);
    }

    /// Every connection to the node's old life dies; each client hears of it after a delay.
    fn drop_node_conns(&mut self, id: NodeId, incarnation: u64) {
        let dead: Vec<u64> = self
            .conns
            .iter_mut()
            .filter(|(_, c)| c.node == id && c.incarnation == incarnation && !c.closing)
            .map(|(&conn, c)| {
                c.closing = true;
                conn
            })
            .collect();
        for conn in dead {
            let latency_ms = self.config.net.client_latency.sample(&mut self.streams.net);
            self.schedule(self.now_ms + latency_ms, Event::ConnDown { conn });
        }
    }

    fn pause_node(&mut self, id: NodeId) {
        let node = self.slot_mut(id);
        if node.machine.is_none() || node.paused {
            return;
        }
        node.paused = true;
        self.stats.pauses += 1;
        self.log_fault();
        self.stop_ticks(id);
    }

    /// Unfreezes the node: what waited is delivered in order, then ticks resume.
    fn resume_node(&mut self, id: NodeId) {
        let node = self.slot_mut(id);
        if !node.paused {
            return;
        }
        node.paused = false;
        let waiting = std::mem::take(&mut node.inbox);
        for input in waiting {
            if !self.slot(id).is_running() {
                break;
            }
            self.step_node(id, input);
        }
        self.start_ticks(id);
    }

    pub(super) fn schedule_first_fault(&mut self) {
        let faults = &self.config.faults;
        if faults.enabled {
            let gap_ms = self
                .streams
                .fault
                .between(faults.interval_ms.0, faults.interval_ms.1);
            let at_ms = faults.start_ms.max(self.now_ms) + gap_ms;
            self.schedule(at_ms, Event::PlanFault);
        }
    }

    /// Draws and applies the plan's next fault, schedules its end and the next draw.
    pub(super) fn on_plan_fault(&mut self) {
        if !self.config.faults.enabled {
            return;
        }
        if self.config.faults.active_at(self.now_ms) {
            let state = PlanState {
                members: &self.members,
                running: self.running_nodes(),
                partitioned: !self.links.is_empty(),
                lossy: self.burst_loss.is_some(),
            };
            if let Some(Planned { start, end }) =
                plan(&self.config.faults, &state, &mut self.streams.fault)
            {
                self.apply_fault(start);
                if let Some((after_ms, end)) = end {
                    self.schedule(self.now_ms + after_ms, Event::Fault(end));
                }
            }
        }
        let (lo, hi) = self.config.faults.interval_ms;
        let next_ms = self.now_ms + self.streams.fault.between(lo, hi);
        if self.config.faults.stop_ms.is_none_or(|s| next_ms < s) {
            self.schedule(next_ms, Event::PlanFault);
        }
    }

    fn running_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.id)
            .collect()
    }
}
