//! The node: what both roles share (message envelopes, group commit, communication-induced
//! checkpoints, the boot record) and the `Machine` implementation that routes inputs to
//! the role. Node 1 coordinates; every other node is a participant owning one shard.
//!
//! While a checkpoint, a snapshot's start record or the boot record is being made durable
//! the node holds back every input but disk completions (the *gate*). The state a
//! checkpoint captures is then exactly the state at its `checkpoint` event, and a node never
//! acts under a boot count or a snapshot it might forget in a crash.

use crate::config::TwoPcConfig;
use crate::coordinator::{self, Coordinator};
use crate::participant::{self, Participant};
use crate::proto::{node_name, Body, Envelope, Event, MsgId, Request, Response};
use crate::record::{self, Checkpoint, RoleState, CHECKPOINT, INCARNATION, LOG};
use crate::wal::Wal;
use machine::{Boot, BootError, ClientId, DiskOp, Durable, Effects, Input, Machine, NodeId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What to do when a write is durable.
pub enum Then {
    Coord(coordinator::Then),
    Part(participant::Then),
    Checkpoint { index: u64 },
}

/// Everything but the role's own state.
pub struct Shell {
    pub id: NodeId,
    pub members: Vec<NodeId>,
    pub cfg: TwoPcConfig,
    /// Milliseconds since boot, counted in ticks, which every timeout measures: the node's
    /// wall clock may jump (a clock fault), and a jump back would hold timeouts off.
    pub now_ms: u64,
    incarnation: u32,
    seq: u64,
    /// The index of the last durable checkpoint; stamped on every message sent.
    pub ckpt_index: u64,
    last_ckpt_ms: u64,
    gate: Option<u64>,
    held: VecDeque<Input<TwoPc>>,
    held_tick: bool,
    pub wal: Wal<Then>,
    seen: BTreeMap<NodeId, Seen>,
}

/// Message sequence numbers at or above which a window of delivered ones is kept, per
/// sender; the network may duplicate, and a duplicate must not be delivered (or recorded)
/// twice.
pub const MAX_SEEN_WINDOW: usize = 4096;

/// The messages delivered from one sender's latest life.
#[derive(Default)]
struct Seen {
    incarnation: u32,
    /// Everything below was delivered, or is treated as lost.
    below: u64,
    window: BTreeSet<u64>,
}

impl Seen {
    /// Whether `id` may be delivered: from the sender's latest life, and not before.
    fn is_new(&self, id: &MsgId) -> bool {
        match id.incarnation.cmp(&self.incarnation) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => id.seq >= self.below && !self.window.contains(&id.seq),
        }
    }

    fn mark(&mut self, id: &MsgId) {
        if id.incarnation > self.incarnation {
            *self = Seen {
                incarnation: id.incarnation,
                ..Seen::default()
            };
        }
        self.window.insert(id.seq);
        while self.window.len() > MAX_SEEN_WINDOW {
            let low = self.window.pop_first().expect("non-empty");
            self.below = low + 1;
        }
    }
}

impl Shell {
    pub fn send(&mut self, to: NodeId, body: Body, out: &mut Effects<TwoPc>) {
        let id = MsgId {
            node: self.id,
            incarnation: self.incarnation,
            seq: self.seq,
        };
        self.seq += 1;
        out.record(Event::Send {
            msg: id.to_string(),
            to: node_name(to),
        });
        out.send(
            to,
            Envelope {
                id,
                ckpt: self.ckpt_index,
                body,
            },
        );
    }

    /// This node's boot count: part of message ids and of transaction ids.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// Holds inputs until the write with `token` is durable.
    pub fn gate_on(&mut self, token: u64) {
        debug_assert!(self.gate.is_none(), "one gate at a time");
        self.gate = Some(token);
    }

    fn take_checkpoint(&mut self, index: u64, state: RoleState, out: &mut Effects<TwoPc>) {
        self.take_checkpoint_with(index, state, Vec::new(), out);
    }

    /// A checkpoint written together with `also` (the boot record).
    fn take_checkpoint_with(
        &mut self,
        index: u64,
        state: RoleState,
        also: Vec<DiskOp>,
        out: &mut Effects<TwoPc>,
    ) {
        debug_assert!(index > self.ckpt_index);
        // Everything appended so far goes out first, so the checkpoint's log position is
        // exact and the prefix it drops is covered by its state.
        let log_pos = self.wal.next_pos();
        let blob = record::encode(&Checkpoint {
            index,
            log_pos,
            state,
        });
        let mut ops = also;
        ops.extend([
            DiskOp::Put {
                name: CHECKPOINT.into(),
                bytes: blob,
            },
            DiskOp::DropPrefix {
                log: LOG.into(),
                first: log_pos,
            },
        ]);
        let token = self
            .wal
            .write_after_log(ops, Then::Checkpoint { index }, out);
        self.gate_on(token);
    }

    fn hold(&mut self, input: Input<TwoPc>, out: &mut Effects<TwoPc>) {
        if matches!(input, Input::Tick) {
            self.held_tick = true;
            return;
        }
        if self.held.len() >= self.cfg.max_held_inputs {
            // A full backlog behaves like a lossy network for peers and a busy server for
            // clients; both are faults the protocol already tolerates.
            if let Input::Request { client, .. } = input {
                out.reply(
                    client,
                    Response::Refused {
                        why: "busy: checkpoint in progress and backlog full".into(),
                    },
                );
            }
            return;
        }
        self.held.push_back(input);
    }
}

pub enum Role {
    Coordinator(Coordinator),
    Participant(Box<Participant>),
}

/// One node of the two-phase-commit store.
pub struct TwoPc {
    shell: Shell,
    role: Role,
}

impl TwoPc {
    pub fn is_coordinator(&self) -> bool {
        matches!(self.role, Role::Coordinator(_))
    }

    pub fn participant(&self) -> Option<&Participant> {
        match &self.role {
            Role::Participant(p) => Some(&**p),
            Role::Coordinator(_) => None,
        }
    }

    pub fn coordinator(&self) -> Option<&Coordinator> {
        match &self.role {
            Role::Coordinator(c) => Some(c),
            Role::Participant(_) => None,
        }
    }

    pub fn ckpt_index(&self) -> u64 {
        self.shell.ckpt_index
    }

    fn role_state(&self) -> RoleState {
        match &self.role {
            Role::Coordinator(c) => RoleState::Coordinator(c.state()),
            Role::Participant(p) => RoleState::Participant(p.state()),
        }
    }

    fn run_then(&mut self, then: Then, out: &mut Effects<TwoPc>) {
        let s = &mut self.shell;
        match (then, &mut self.role) {
            (Then::Coord(t), Role::Coordinator(c)) => c.durable(s, t, out),
            (Then::Part(t), Role::Participant(p)) => p.durable(s, t, out),
            (Then::Checkpoint { index }, _) => {
                s.ckpt_index = index;
                s.last_ckpt_ms = s.now_ms;
                out.record(Event::Checkpoint { id: index });
            }
            _ => debug_assert!(false, "an action for the other role"),
        }
    }

    fn handle(&mut self, input: Input<TwoPc>, out: &mut Effects<TwoPc>) {
        match input {
            Input::Peer { from, msg } => self.on_peer(from, msg, out),
            Input::Request { client, req } => self.on_request(client, req, out),
            Input::Disconnected { client } => match &mut self.role {
                Role::Coordinator(c) => c.disconnected(client),
                Role::Participant(_) => {}
            },
            Input::Tick => self.on_tick(out),
            Input::Persisted { .. } => unreachable!("persisted inputs are never held"),
        }
    }

    fn on_peer(&mut self, from: NodeId, msg: Envelope, out: &mut Effects<TwoPc>) {
        if !self.shell.members.contains(&from) || msg.id.node != from {
            return; // Not a member, or a forged id: not part of this cluster's protocol.
        }
        if !self.shell.seen.get(&from).is_none_or(|w| w.is_new(&msg.id)) {
            return; // A duplicate (or a straggler from the sender's earlier life).
        }
        if msg.ckpt > self.shell.ckpt_index && !self.shell.cfg.bugs.checkpoint_skips_forced {
            // Communication-induced checkpoint (index-based, as Briatico, Ciuffoletti and
            // Simoncini): checkpoints of equal index then form a consistent global
            // checkpoint, and none is useless.
            let state = self.role_state();
            self.shell.take_checkpoint(msg.ckpt, state, out);
            self.shell.held.push_front(Input::Peer { from, msg });
            return;
        }
        if let Role::Participant(p) = &mut self.role {
            if let Some(snapshot) = p.cut_to_join(&msg.body) {
                p.join_cut(&mut self.shell, snapshot, out);
                self.shell.held.push_front(Input::Peer { from, msg });
                return;
            }
        }
        self.shell.seen.entry(from).or_default().mark(&msg.id);
        out.record(Event::Receive {
            msg: msg.id.to_string(),
        });
        let s = &mut self.shell;
        match &mut self.role {
            Role::Coordinator(c) => c.on_peer(s, from, msg.body, out),
            Role::Participant(p) => p.on_peer(s, from, msg.body, out),
        }
    }

    fn on_request(&mut self, client: ClientId, req: Request, out: &mut Effects<TwoPc>) {
        let s = &mut self.shell;
        match &mut self.role {
            Role::Coordinator(c) => c.on_request(s, client, req, out),
            Role::Participant(p) => p.on_request(s, client, req, out),
        }
    }

    fn on_tick(&mut self, out: &mut Effects<TwoPc>) {
        self.shell.wal.flush_lazy(out);
        let due = self.shell.now_ms.saturating_sub(self.shell.last_ckpt_ms)
            >= self.shell.cfg.checkpoint_interval_ms;
        if due {
            let state = self.role_state();
            let index = self.shell.ckpt_index + 1;
            self.shell.take_checkpoint(index, state, out);
            self.shell.held_tick = true;
            return;
        }
        let s = &mut self.shell;
        match &mut self.role {
            Role::Coordinator(c) => c.on_tick(s, out),
            Role::Participant(p) => p.on_tick(s, out),
        }
    }

    /// Handles held inputs until they run out or one closes the gate again.
    fn drain(&mut self, out: &mut Effects<TwoPc>) {
        while self.shell.gate.is_none() {
            if let Some(input) = self.shell.held.pop_front() {
                self.handle(input, out);
            } else if std::mem::take(&mut self.shell.held_tick) {
                self.handle(Input::Tick, out);
            } else {
                break;
            }
        }
    }
}

impl Machine for TwoPc {
    type Config = TwoPcConfig;
    type Peer = Envelope;
    type Request = Request;
    type Response = Response;
    type Event = Event;

    fn boot(
        boot: Boot<'_, TwoPcConfig>,
        durable: Durable,
        out: &mut Effects<Self>,
    ) -> Result<Self, BootError> {
        let members = boot.members.to_vec();
        if members.len() < 2 || !members.contains(&boot.id) {
            return Err(BootError(format!(
                "the store needs a coordinator and at least one participant, with this node \
                 ({}) among them; members are {members:?}",
                boot.id
            )));
        }
        let incarnation: u32 = match durable.blobs.get(INCARNATION) {
            Some(b) => record::decode("the incarnation blob", b).map_err(BootError)?,
            None => 0,
        };
        let incarnation = incarnation
            .checked_add(1)
            .filter(|i| *i <= crate::proto::MAX_INCARNATION)
            .ok_or_else(|| {
                BootError(format!(
                    "the node has booted {} times, the most transaction ids can tell apart",
                    crate::proto::MAX_INCARNATION
                ))
            })?;
        let checkpoint: Option<Checkpoint> = match durable.blobs.get(CHECKPOINT) {
            Some(b) => Some(record::decode("the checkpoint blob", b).map_err(BootError)?),
            None => None,
        };
        let empty = machine::Log::default();
        let log = durable.logs.get(LOG).unwrap_or(&empty);
        let from = checkpoint.as_ref().map_or(0, |c| c.log_pos);
        let replay: Vec<&[u8]> = log
            .records
            .iter()
            .enumerate()
            .filter(|(i, _)| log.first + *i as u64 >= from)
            .map(|(_, r)| r.as_slice())
            .collect();
        let ckpt_index = checkpoint.as_ref().map_or(0, |c| c.index);
        let state = checkpoint.map(|c| c.state);
        let coordinator = members[0];
        let participants = members[1..].to_vec();
        let role = if boot.id == coordinator {
            let state = match state {
                Some(RoleState::Coordinator(s)) => s,
                None => Default::default(),
                Some(RoleState::Participant(_)) => {
                    return Err(BootError(
                        "the checkpoint is a participant's, but this node coordinates".into(),
                    ))
                }
            };
            Role::Coordinator(Coordinator::recover(participants, state, &replay)?)
        } else {
            let state = match state {
                Some(RoleState::Participant(s)) => s,
                Some(RoleState::Coordinator(_)) => {
                    return Err(BootError(
                        "the checkpoint is the coordinator's, but this node is a participant"
                            .into(),
                    ))
                }
                None => participant::initial_state(&durable)?,
            };
            Role::Participant(Box::new(Participant::recover(
                boot.id,
                coordinator,
                state,
                &replay,
                &durable,
                0,
                boot.config.max_applied_listed,
            )?))
        };
        let shell = Shell {
            id: boot.id,
            members,
            cfg: boot.config.clone(),
            now_ms: 0,
            incarnation,
            seq: 0,
            ckpt_index,
            last_ckpt_ms: 0,
            gate: None,
            held: VecDeque::new(),
            held_tick: false,
            wal: Wal::new(LOG, log.end(), 0),
            seen: BTreeMap::new(),
        };
        let mut node = TwoPc { shell, role };
        // The boot record goes with a fresh checkpoint of the recovered state: a crash may
        // have come after the last checkpoint was durable but before its event was
        // written, and every message this life sends must follow a recorded checkpoint.
        let boot_record = DiskOp::Put {
            name: INCARNATION.into(),
            bytes: record::encode(&incarnation),
        };
        let state = node.role_state();
        let index = node.shell.ckpt_index + 1;
        node.shell
            .take_checkpoint_with(index, state, vec![boot_record], out);
        let s = &mut node.shell;
        match &mut node.role {
            Role::Coordinator(c) => c.after_boot(s, out),
            Role::Participant(p) => p.after_boot(s, out),
        }
        node.shell.wal.flush(out);
        Ok(node)
    }

    fn step(&mut self, _now_ms: u64, input: Input<Self>, out: &mut Effects<Self>) {
        if let Input::Tick = input {
            // Counted even while the gate holds the tick itself back.
            self.shell.now_ms += machine::TICK_MS;
        }
        match input {
            Input::Persisted { token } => {
                for then in self.shell.wal.persisted(token) {
                    self.run_then(then, out);
                }
                if self.shell.gate.is_some_and(|g| token >= g) {
                    self.shell.gate = None;
                    self.drain(out);
                }
            }
            other if self.shell.gate.is_some() => self.shell.hold(other, out),
            other => {
                self.handle(other, out);
                self.drain(out);
            }
        }
        self.shell.wal.flush(out);
    }
}
