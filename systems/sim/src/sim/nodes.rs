//! Nodes: booting, stepping a core, and carrying out what it asked for (sends, writes,
//! replies, closes).

use super::{Event, Sim};
use crate::error::ErrorKind;
use crate::trace::Note;
use crate::wire::{self, WireError};
use machine::{Boot, ClientId, Effects, Input, Machine, NodeId, Write, MAX_MESSAGE_BYTES, TICK_MS};

impl<M: Machine> Sim<M> {
    /// Boots `id` from its durable state and starts its ticks. A refusal is fatal.
    pub(super) fn boot(&mut self, id: NodeId) {
        let node = &mut self.nodes[id as usize - 1];
        assert!(node.machine.is_none(), "n{id} booted while up");
        let boot = Boot {
            id,
            members: &self.members,
            config: &self.machine_config,
            seed: node.boot_rng.next_u64(),
            now_ms: node.clock.local_ms(self.now_ms),
        };
        let durable = node.disk.synced().clone();
        let mut out = std::mem::take(&mut self.effects);
        match M::boot(boot, durable, &mut out) {
            Ok(machine) => {
                node.machine = Some(machine);
                node.paused = false;
                self.stats.boots += 1;
                self.note(Note::Boot { node: id });
                self.start_ticks(id);
                self.apply_effects(id, &mut out);
            }
            Err(error) => self.fail(ErrorKind::Boot { node: id, error }),
        }
        self.effects = out;
    }

    /// Starts a fresh tick schedule with a random phase, so nodes do not tick in lockstep.
    pub(super) fn start_ticks(&mut self, id: NodeId) {
        let phase_ms = self.streams.clock.between(1, TICK_MS);
        let now_ms = self.now_ms;
        let ticks = &mut self.slot_mut(id).ticks;
        ticks.generation += 1;
        ticks.start_ms = now_ms + phase_ms;
        ticks.count = 0;
        let generation = ticks.generation;
        self.schedule(
            now_ms + phase_ms,
            Event::Tick {
                node: id,
                generation,
            },
        );
    }

    /// Stops the tick schedule (ticks already queued become stale).
    pub(super) fn stop_ticks(&mut self, id: NodeId) {
        self.slot_mut(id).ticks.generation += 1;
    }

    pub(super) fn on_tick(&mut self, id: NodeId, generation: u64) {
        let node = self.slot_mut(id);
        if node.ticks.generation != generation || !node.is_running() {
            return;
        }
        node.ticks.count += 1;
        let next_ms = node.clock.tick_at(node.ticks.start_ms, node.ticks.count);
        self.schedule(
            next_ms.max(self.now_ms),
            Event::Tick {
                node: id,
                generation,
            },
        );
        self.note(Note::Tick { node: id });
        self.step_node(id, Input::Tick);
    }

    pub(super) fn on_peer(&mut self, from: NodeId, to: NodeId, msg: M::Peer, digest: u64) {
        if self.links.is_blocked(from, to) {
            self.stats.peer_blocked += 1;
            return;
        }
        if self.slot(to).machine.is_none() {
            self.stats.peer_dropped_at_node += 1;
            return;
        }
        self.stats.peer_delivered += 1;
        self.note_msg(Note::Peer { from, to, digest }, &msg);
        self.deliver(to, Input::Peer { from, msg });
    }

    pub(super) fn on_disk_done(&mut self, id: NodeId, generation: u64) {
        let node = self.slot_mut(id);
        if node.disk.generation != generation {
            return;
        }
        let token = node.disk.complete();
        self.stats.writes_completed += 1;
        self.note(Note::Persisted { node: id, token });
        self.deliver(id, Input::Persisted { token });
    }

    /// Hands `input` to the node: dropped if it is crashed, queued if it is paused (a
    /// `Persisted` is never dropped: the disk did its part).
    pub(super) fn deliver(&mut self, id: NodeId, input: Input<M>) {
        let limit = self.config.limits.max_paused_inbox;
        let node = self.slot_mut(id);
        if node.machine.is_none() {
            return;
        }
        if node.paused {
            let keep = node.inbox.len() < limit || matches!(input, Input::Persisted { .. });
            if keep {
                node.inbox.push_back(input);
            } else {
                self.stats.peer_dropped_at_node += 1;
            }
            return;
        }
        self.step_node(id, input);
    }

    /// Runs one step of a running node and carries out its effects.
    pub(super) fn step_node(&mut self, id: NodeId, input: Input<M>) {
        let now_ms = self.now_ms;
        let mut out = std::mem::take(&mut self.effects);
        let node = &mut self.nodes[id as usize - 1];
        let local_ms = node.clock.local_ms(now_ms);
        let machine = node
            .machine
            .as_mut()
            .expect("only running nodes are stepped");
        machine.step(local_ms, input, &mut out);
        self.apply_effects(id, &mut out);
        self.effects = out;
    }

    /// Carries out and empties `out`, keeping its allocations for the next step.
    fn apply_effects(&mut self, id: NodeId, out: &mut Effects<M>) {
        self.log_core_events(id, &mut out.events);
        for write in out.writes.drain(..) {
            self.submit_write(id, write);
        }
        for (to, msg) in out.sends.drain(..) {
            self.send_peer(id, to, msg);
        }
        for (conn, resp) in out.replies.drain(..) {
            self.send_reply(id, conn, resp);
        }
        for conn in out.closes.drain(..) {
            self.close_from_node(id, conn);
        }
    }

    fn submit_write(&mut self, id: NodeId, write: Write) {
        let latency_ms = self.config.disk.latency.sample(&mut self.streams.disk);
        let limit = self.config.disk.max_pending_writes;
        let now_ms = self.now_ms;
        let disk = &mut self.slot_mut(id).disk;
        match disk.submit(write, now_ms, latency_ms, limit) {
            Ok(done_ms) => {
                let generation = disk.generation;
                self.schedule(
                    done_ms,
                    Event::DiskDone {
                        node: id,
                        generation,
                    },
                );
            }
            Err(_) => self.fail(ErrorKind::PendingWritesFull { node: id, limit }),
        }
    }

    /// Measures a message's wire form; an oversized or unserializable one is fatal.
    pub(super) fn measure<T: serde::Serialize>(
        &mut self,
        what: &'static str,
        node: NodeId,
        msg: &T,
    ) -> Option<u64> {
        match wire::digest(msg, MAX_MESSAGE_BYTES) {
            Ok(d) => Some(d.hash),
            Err(WireError::TooLarge { at_least }) => {
                self.fail(ErrorKind::MessageTooLarge {
                    what,
                    node,
                    bytes: at_least,
                    limit: MAX_MESSAGE_BYTES,
                });
                None
            }
            Err(WireError::Unserializable(error)) => {
                self.fail(ErrorKind::Unserializable { what, node, error });
                None
            }
        }
    }

    /// Puts a peer message on the wire: blocked, lost, delayed, maybe duplicated.
    fn send_peer(&mut self, from: NodeId, to: NodeId, msg: M::Peer) {
        if !self.is_member(to) {
            self.fail(ErrorKind::UnknownNode { from, to });
            return;
        }
        let Some(digest) = self.measure("peer message", from, &msg) else {
            return;
        };
        self.stats.peer_sent += 1;
        if self.links.is_blocked(from, to) {
            self.stats.peer_blocked += 1;
            return;
        }
        let net = &self.config.net;
        let rng = &mut self.streams.net;
        if rng.chance(self.burst_loss.unwrap_or(net.loss)) {
            self.stats.peer_lost += 1;
            return;
        }
        let latency_ms = net.latency.sample(rng);
        if rng.chance(net.duplicate) {
            let again_ms = net.latency.sample(rng);
            self.stats.peer_duplicated += 1;
            let copy = msg.clone();
            self.schedule(self.now_ms + again_ms, peer(from, to, copy, digest));
        }
        self.schedule(self.now_ms + latency_ms, peer(from, to, msg, digest));
    }

    /// Sends a reply down its connection, in order, if the connection is still this node's.
    fn send_reply(&mut self, id: NodeId, conn: ClientId, resp: M::Response) {
        let Some(digest) = self.measure("response", id, &resp) else {
            return;
        };
        let incarnation = self.slot(id).incarnation;
        let latency_ms = self.config.net.client_latency.sample(&mut self.streams.net);
        let now_ms = self.now_ms;
        let Some(c) = self.conns.get_mut(&conn) else {
            self.stats.replies_dropped += 1;
            return;
        };
        if c.node != id || c.incarnation != incarnation || c.closing {
            self.stats.replies_dropped += 1;
            return;
        }
        c.to_client_ms = c.to_client_ms.max(now_ms + latency_ms);
        let at_ms = c.to_client_ms;
        self.schedule(at_ms, Event::Response { conn, resp, digest });
    }

    /// The node closes a connection after the replies already sent on it.
    fn close_from_node(&mut self, id: NodeId, conn: ClientId) {
        let latency_ms = self.config.net.client_latency.sample(&mut self.streams.net);
        let now_ms = self.now_ms;
        let incarnation = self.slot(id).incarnation;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.node != id || c.incarnation != incarnation || c.closing {
            return;
        }
        c.closing = true;
        c.to_client_ms = c.to_client_ms.max(now_ms + latency_ms);
        let at_ms = c.to_client_ms;
        self.schedule(at_ms, Event::ConnDown { conn });
    }
}

fn peer<M: Machine>(from: NodeId, to: NodeId, msg: M::Peer, digest: u64) -> Event<M> {
    Event::Peer {
        from,
        to,
        msg,
        digest,
    }
}
