//! Zab-style atomic broadcast, generic over what it orders: the replication under the
//! coordination service (`faultline-coord`) and the replicated database (`faultline-repdb`).
//! A service proposes transactions of its own type `T` at the leader and gets them back as
//! `Commit` events in one total order on every node, each once, with durability (the `txn`
//! log, the `epochs` blob and snapshots the service supplies), election and crash recovery
//! handled here. `A` is the service's own traffic between a follower and its leader.
//!
//! A node is looking, following or leading. Looking nodes run an election
//! ([`election`]). The elected node then leads an epoch in three phases, as in Zab 1.0 and
//! ZooKeeper's implementation of it:
//! 1. **Discovery.** Followers connect with their accepted epoch. Once a quorum has, the
//!    leader picks an epoch above all of them and makes each promise it (NEWEPOCH,
//!    ACKEPOCH). Followers report their history; if one is ahead of the leader, the leader
//!    gives up, so a leader's history always holds everything a quorum accepted.
//! 2. **Synchronization.** The leader brings each follower's log to its own: a DIFF of what
//!    it lacks, a TRUNC of a tail no quorum accepted first, or a SNAP when the follower is
//!    too far behind ([`history`]). A follower persists the history and its new current
//!    epoch, then acknowledges NEWLEADER. A quorum of those acknowledgements commits the
//!    leader's whole history.
//! 3. **Broadcast.** The leader gives each transaction the next zxid, logs it and sends a
//!    PROPOSAL; followers log it and ACK once it is on disk; a quorum of acks commits it and
//!    everything before it.
//!
//! Follower-leader traffic rides on FIFO [`link`]s. Timeouts end a link, a lost quorum ends
//! a leadership, and both send the node back to looking. The core does no IO: it returns
//! messages, disk writes and events in a [`ZabOut`].

pub mod election;
pub mod history;
pub mod link;

use election::{Election, Notification, Outcome, Standing, Vote};
use history::{Entry, History, Summary};
use link::LinkId;
use machine::{BootError, DiskOp, Durable, NodeId, Write};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// A ZooKeeper transaction id: the epoch in the high 32 bits, a counter in the low ones.
pub type Zxid = u64;

pub fn zxid(epoch: u32, counter: u32) -> Zxid {
    (u64::from(epoch) << 32) | u64::from(counter)
}

pub fn epoch_of(z: Zxid) -> u32 {
    (z >> 32) as u32
}

/// The log of accepted transactions.
pub const LOG: &str = "txn";
/// The accepted and current epochs, replaced together.
pub const EPOCHS_BLOB: &str = "epochs";
/// The latest snapshot of committed state.
pub const SNAPSHOT_BLOB: &str = "snapshot";

/// Timing and limits. Defaults suit a LAN and the simulator; all in milliseconds.
#[derive(Clone, Debug)]
pub struct ZabConfig {
    pub election_resend_ms: u64,
    /// How long a quorum's agreement must stand before a node acts on it.
    pub finalize_wait_ms: u64,
    /// How long discovery and synchronization may take (ZooKeeper's initLimit).
    pub init_limit_ms: u64,
    /// Silence after which a follower gives up on its leader, or a leader on a follower
    /// (ZooKeeper's syncLimit).
    pub sync_limit_ms: u64,
    pub heartbeat_ms: u64,
    /// How long a link waits for a missing message before it breaks.
    pub gap_timeout_ms: u64,
    /// Proposed but uncommitted transactions a leader holds before refusing more.
    pub max_outstanding: usize,
    /// Log entries kept below a snapshot so that followers close behind can still get a DIFF.
    pub log_retain: usize,
    /// Upper bound of one DIFF or SNAP message's payload.
    pub max_chunk_bytes: usize,
    pub bugs: ZabBugs,
}

impl Default for ZabConfig {
    fn default() -> Self {
        ZabConfig {
            election_resend_ms: 200,
            finalize_wait_ms: 30,
            init_limit_ms: 3_000,
            sync_limit_ms: 1_500,
            heartbeat_ms: 100,
            gap_timeout_ms: 300,
            max_outstanding: 10_000,
            log_retain: 10_000,
            max_chunk_bytes: 1 << 20,
            bugs: ZabBugs::default(),
        }
    }
}

/// Planted bugs, for the checkers to find. All off by default.
#[derive(Clone, Debug, Default)]
pub struct ZabBugs {
    /// Elect by id alone and skip the leader's ahead-check: a leader may lack the latest
    /// zxid, and committed writes vanish.
    pub elect_stale_leader: bool,
    /// Acknowledge proposals on receipt, before they are on disk.
    pub ack_before_fsync: bool,
}

/// Everything nodes say to each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZabMsg<T, A> {
    Election(Notification),
    Link {
        link: LinkId,
        seq: u64,
        body: LinkMsg<T, A>,
    },
}

/// What travels on a follower-leader link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkMsg<T, A> {
    FollowerInfo {
        accepted_epoch: u32,
    },
    NewEpoch {
        epoch: u32,
    },
    AckEpoch {
        current_epoch: u32,
        summary: Summary,
        /// The follower's log lost a damaged tail it has not learned again: its summary
        /// may lack entries it acknowledged, so its promise cannot vouch for them.
        repaired: bool,
    },
    Snap {
        zxid: Zxid,
        offset: u64,
        total: u64,
        bytes: Vec<u8>,
    },
    Trunc {
        zxid: Zxid,
    },
    Diff {
        entries: Vec<Entry<T>>,
    },
    NewLeader {
        epoch: u32,
        last_zxid: Zxid,
    },
    AckNewLeader {
        last_zxid: Zxid,
    },
    UpToDate {
        committed: Zxid,
    },
    Proposal(Entry<T>),
    /// Everything up to `zxid` is on the follower's disk.
    Ack {
        zxid: Zxid,
    },
    /// Everything up to `zxid` is committed.
    Commit {
        zxid: Zxid,
    },
    Ping,
    Pong,
    /// The service's own traffic (forwarded requests, sync), in order with the rest.
    App(A),
    Close,
}

/// What the service learns from a step, in the order it must act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZabEvent<T, A> {
    /// Apply this committed transaction; commits come in zxid order, each once.
    Commit(Entry<T>),
    /// Replace all state with this snapshot (empty bytes: the initial state) taken at `zxid`.
    Restore {
        zxid: Zxid,
        bytes: Vec<u8>,
    },
    App {
        from: NodeId,
        msg: A,
    },
    Role(RoleChange),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleChange {
    Looking,
    Following {
        leader: NodeId,
    },
    Leading {
        epoch: u32,
    },
    /// The node's state is current and it may answer clients.
    Serving,
}

/// Effects of one step.
#[derive(Debug)]
pub struct ZabOut<T, A> {
    pub sends: Vec<(NodeId, ZabMsg<T, A>)>,
    pub writes: Vec<Write>,
    pub events: Vec<ZabEvent<T, A>>,
}

impl<T, A> Default for ZabOut<T, A> {
    fn default() -> Self {
        ZabOut {
            sends: Vec::new(),
            writes: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// Why a proposal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader")]
    NotLeader,
    #[error("the leader is not established yet")]
    NotReady,
    #[error("too many outstanding proposals")]
    Busy,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Epochs {
    accepted: u32,
    current: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SnapshotBlob {
    zxid: Zxid,
    bytes: Vec<u8>,
}

/// A durable write whose completion must trigger something.
#[derive(Debug, Clone)]
enum AfterPersist<T, A> {
    /// Send on the current follower link (dropped if the link changed).
    FollowerSend(LinkId, LinkMsg<T, A>),
    /// The leader's new epoch is durable: tell the followers that asked.
    LeaderEpochDurable(u32),
    /// The leader's own NEWLEADER write is durable.
    LeaderCurrentEpoch(u32),
}

mod follower;
mod leader;
#[cfg(test)]
mod tests;

use follower::Follower;
use leader::Leader;

#[derive(Debug)]
enum Role<T, A> {
    Looking { election: Election, sent_ms: u64 },
    Following(Follower<T, A>),
    Leading(Leader<T, A>),
}

/// One node's replication state.
#[derive(Debug)]
pub struct Zab<T, A> {
    id: NodeId,
    members: Vec<NodeId>,
    cfg: ZabConfig,
    epochs: Epochs,
    history: History<T>,
    /// Everything up to here has been handed to the service as committed.
    committed: Zxid,
    /// The log is on disk through here.
    durable: Zxid,
    snapshot: SnapshotBlob,
    round: u64,
    nonce_state: u64,
    next_token: u64,
    /// Tokens of writes in flight that append entries: the last zxid each makes durable.
    appends: BTreeMap<u64, Zxid>,
    after_persist: Vec<(u64, AfterPersist<T, A>)>,
    role: Role<T, A>,
    serving: bool,
    /// The store cut a damaged tail from the log (`Durable::repaired`), and this node has
    /// not since been brought up to an established leader's history. Until then its log
    /// may lack entries it acknowledged, so a new epoch needs a quorum of promises from
    /// other nodes (or from every member) before it can be sure to hold every commit:
    /// protocol-aware recovery, after Alagappan et al.'s CTRL.
    repaired: bool,
    clock: Clock,
}

/// Time as the protocol's timeouts measure it. The caller's clock is the node's, which
/// clock faults move: a jump back would hold every timeout off for as long as the jump (a
/// follower clinging to a dead leader), a jump forward would fire them all at once. So
/// only forward progress counts, at most [`MAX_CLOCK_STEP_MS`] per observation.
#[derive(Debug, Default)]
struct Clock {
    last_seen_ms: u64,
    elapsed_ms: u64,
}

/// Most time one observation of the caller's clock may add (ticks come every 10 ms).
pub const MAX_CLOCK_STEP_MS: u64 = 1_000;

impl Clock {
    fn observe(&mut self, now_ms: u64) -> u64 {
        let step = now_ms
            .saturating_sub(self.last_seen_ms)
            .min(MAX_CLOCK_STEP_MS);
        self.last_seen_ms = now_ms;
        self.elapsed_ms += step;
        self.elapsed_ms
    }
}

impl<T, A> Zab<T, A>
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    /// Starts from the disk's contents. Returns the node and the snapshot the service must
    /// restore before anything else (empty bytes: initial state).
    pub fn boot(
        id: NodeId,
        members: &[NodeId],
        cfg: ZabConfig,
        seed: u64,
        durable: &Durable,
        now_ms: u64,
        out: &mut ZabOut<T, A>,
    ) -> Result<(Self, Zxid, Vec<u8>), BootError> {
        assert!(members.contains(&id), "node {id} is not a member");
        let epochs: Epochs = decode_blob(durable, EPOCHS_BLOB)?.unwrap_or_default();
        let snapshot: SnapshotBlob = decode_blob(durable, SNAPSHOT_BLOB)?.unwrap_or_default();
        let history = load_history(durable, snapshot.zxid)?;
        let mut zab = Zab {
            id,
            members: members.to_vec(),
            cfg,
            epochs,
            durable: history.last_zxid(),
            history,
            committed: snapshot.zxid,
            snapshot: snapshot.clone(),
            round: 0,
            nonce_state: seed ^ 0x5eed_f2ab,
            next_token: 1,
            appends: BTreeMap::new(),
            after_persist: Vec::new(),
            role: Role::Looking {
                election: Election::start(
                    id,
                    1,
                    0,
                    Vote {
                        leader: id,
                        epoch: 0,
                        zxid: 0,
                    },
                    false,
                ),
                sent_ms: 0,
            },
            serving: false,
            repaired: durable.repaired(LOG),
            clock: Clock {
                last_seen_ms: now_ms,
                elapsed_ms: now_ms,
            },
        };
        zab.become_looking(now_ms, out);
        Ok((zab, snapshot.zxid, snapshot.bytes))
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// The leader this node follows or is, once known.
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            Role::Looking { .. } => None,
            Role::Following(f) => Some(f.leader()),
            Role::Leading(_) => Some(self.id),
        }
    }

    pub fn is_leading(&self) -> bool {
        matches!(self.role, Role::Leading(_))
    }

    /// Whether this node's state is current: a follower after UPTODATE, an established leader.
    pub fn is_serving(&self) -> bool {
        self.serving
    }

    pub fn committed(&self) -> Zxid {
        self.committed
    }

    pub fn last_zxid(&self) -> Zxid {
        self.history.last_zxid()
    }

    pub fn current_epoch(&self) -> u32 {
        self.epochs.current
    }

    /// The zxid the next proposal will get, so the service can prepare it.
    pub fn next_zxid(&self) -> Option<Zxid> {
        match &self.role {
            Role::Leading(l) => l.next_zxid(),
            _ => None,
        }
    }

    /// Whether this node's history holds `zxid`; `None` when a snapshot covers that part of
    /// the log and it cannot tell. Zab's core promise, for invariant checks: an established
    /// leader holds every zxid ever committed anywhere.
    pub fn holds(&self, zxid: Zxid) -> Option<bool> {
        if zxid < self.history.base {
            return None;
        }
        Some(self.history.contains(zxid))
    }

    /// The committed entries still in memory, for tests and invariant checks.
    pub fn committed_entries(&self) -> impl Iterator<Item = &Entry<T>> {
        self.history
            .entries
            .iter()
            .take_while(|e| e.zxid <= self.committed)
    }

    pub fn step(&mut self, now_ms: u64, from: NodeId, msg: ZabMsg<T, A>, out: &mut ZabOut<T, A>) {
        let now_ms = self.clock.observe(now_ms);
        if !self.members.contains(&from) || from == self.id {
            return; // Not a peer: a misdirected or forged message.
        }
        match msg {
            ZabMsg::Election(n) => self.on_notification(now_ms, from, n, out),
            ZabMsg::Link { link, seq, body } => match &mut self.role {
                Role::Following(_) => follower::on_link(self, now_ms, link, seq, body, out),
                Role::Leading(_) => leader::on_link(self, now_ms, from, link, seq, body, out),
                Role::Looking { election, .. } => {
                    if link.leader == self.id && matches!(body, LinkMsg::FollowerInfo { .. }) {
                        let outcome = election.follower_waiting(from);
                        self.act_on(now_ms, outcome, out);
                    }
                }
            },
        }
    }

    pub fn tick(&mut self, now_ms: u64, out: &mut ZabOut<T, A>) {
        let now_ms = self.clock.observe(now_ms);
        match &mut self.role {
            Role::Looking { election, sent_ms } => {
                let resend = now_ms.saturating_sub(*sent_ms) >= self.cfg.election_resend_ms;
                if resend {
                    *sent_ms = now_ms;
                }
                let n = election.notification();
                let outcome = election.tick(now_ms, self.cfg.finalize_wait_ms);
                if resend {
                    self.broadcast(ZabMsg::Election(n), out);
                }
                self.act_on(now_ms, outcome, out);
            }
            Role::Following(_) => follower::tick(self, now_ms, out),
            Role::Leading(_) => leader::tick(self, now_ms, out),
        }
    }

    /// A write this node asked for is durable (and every write before it).
    pub fn persisted(&mut self, now_ms: u64, token: u64, out: &mut ZabOut<T, A>) {
        let now_ms = self.clock.observe(now_ms);
        let done: Vec<u64> = self.appends.range(..=token).map(|(t, _)| *t).collect();
        for t in done {
            let z = self.appends.remove(&t).expect("listed");
            self.durable = self.durable.max(z.min(self.history.last_zxid()));
        }
        let (ready, later): (Vec<_>, Vec<_>) =
            self.after_persist.drain(..).partition(|(t, _)| *t <= token);
        self.after_persist = later;
        for (_, action) in ready {
            self.after_persist_action(now_ms, action, out);
        }
        match &self.role {
            Role::Following(_) => follower::on_durable(self, out),
            Role::Leading(_) => leader::on_durable(self, now_ms, out),
            Role::Looking { .. } => {}
        }
    }

    /// Proposes a transaction; it is committed (a `Commit` event) once a quorum has logged it.
    pub fn propose(&mut self, txn: T, out: &mut ZabOut<T, A>) -> Result<Zxid, ProposeError> {
        if !matches!(self.role, Role::Leading(_)) {
            return Err(ProposeError::NotLeader);
        }
        let outstanding = self.history.entries.len() - self.history.index_after(self.committed);
        if outstanding >= self.cfg.max_outstanding {
            return Err(ProposeError::Busy);
        }
        leader::propose(self, txn, out)
    }

    /// Sends service traffic to a peer over its link: a follower to its leader, a leader to
    /// a follower. Returns false when there is no such link now.
    pub fn send_app(&mut self, to: NodeId, msg: A, out: &mut ZabOut<T, A>) -> bool {
        match &mut self.role {
            Role::Following(f) if f.leader() == to => {
                f.send(LinkMsg::App(msg), out);
                true
            }
            Role::Leading(l) => l.send_to(to, LinkMsg::App(msg), out),
            _ => false,
        }
    }

    /// Records the service's state as of the last commit, and compacts the log below it.
    pub fn take_snapshot(&mut self, bytes: Vec<u8>, out: &mut ZabOut<T, A>) {
        let zxid = self.committed;
        self.snapshot = SnapshotBlob { zxid, bytes };
        let keep_from = self
            .history
            .index_after(zxid)
            .saturating_sub(self.cfg.log_retain);
        let mut ops = vec![DiskOp::Put {
            name: SNAPSHOT_BLOB.into(),
            bytes: encode(&self.snapshot),
        }];
        if keep_from > 0 {
            let through = self.history.entries[keep_from - 1].zxid;
            let first = self.history.compact_through(through);
            ops.push(DiskOp::DropPrefix {
                log: LOG.into(),
                first,
            });
        }
        self.write(ops, out);
    }

    fn on_notification(
        &mut self,
        now_ms: u64,
        from: NodeId,
        n: Notification,
        out: &mut ZabOut<T, A>,
    ) {
        let outcome = match &mut self.role {
            Role::Looking { election, .. } => election.receive(now_ms, from, &n),
            _ if n.standing == Standing::Looking => Outcome::Answer(from),
            _ => Outcome::Undecided,
        };
        self.act_on(now_ms, outcome, out);
    }

    fn act_on(&mut self, now_ms: u64, outcome: Outcome, out: &mut ZabOut<T, A>) {
        if let (Outcome::Decided(_), Role::Looking { election, .. }) = (&outcome, &self.role) {
            // Notifications sent while following or leading name the deciding round.
            self.round = election.round;
        }
        match outcome {
            Outcome::Undecided => {}
            Outcome::Announce => {
                let n = self.notification();
                self.broadcast(ZabMsg::Election(n), out);
            }
            Outcome::Answer(to) => {
                let n = self.notification();
                out.sends.push((to, ZabMsg::Election(n)));
            }
            Outcome::Decided(leader) if leader == self.id => self.become_leading(now_ms, out),
            Outcome::Decided(leader) => self.become_following(now_ms, leader, out),
        }
    }

    fn notification(&self) -> Notification {
        match &self.role {
            Role::Looking { election, .. } => election.notification(),
            Role::Following(f) => Notification {
                round: self.round,
                vote: Vote {
                    leader: f.leader(),
                    epoch: self.epochs.accepted,
                    zxid: self.history.last_zxid(),
                },
                standing: Standing::Following,
            },
            Role::Leading(l) => Notification {
                round: self.round,
                vote: Vote {
                    leader: self.id,
                    epoch: l.epoch(),
                    zxid: self.history.last_zxid(),
                },
                standing: Standing::Leading,
            },
        }
    }

    fn broadcast(&self, msg: ZabMsg<T, A>, out: &mut ZabOut<T, A>) {
        for &m in &self.members {
            if m != self.id {
                out.sends.push((m, msg.clone()));
            }
        }
    }

    fn become_looking(&mut self, now_ms: u64, out: &mut ZabOut<T, A>) {
        match &mut self.role {
            Role::Looking { election, .. } => self.round = self.round.max(election.round),
            // Followers should look again now, not after their timeouts.
            Role::Leading(l) => l.close_all(out),
            Role::Following(f) => f.send(LinkMsg::Close, out),
        }
        let own = Vote {
            leader: self.id,
            epoch: self.epochs.current,
            zxid: self.history.last_zxid(),
        };
        let election = Election::start(
            self.id,
            self.quorum(),
            self.round,
            own,
            self.cfg.bugs.elect_stale_leader,
        );
        self.round = election.round;
        let n = election.notification();
        self.role = Role::Looking {
            election,
            sent_ms: now_ms,
        };
        self.serving = false;
        self.after_persist
            .retain(|(_, a)| !matches!(a, AfterPersist::FollowerSend(..)));
        out.events.push(ZabEvent::Role(RoleChange::Looking));
        self.broadcast(ZabMsg::Election(n), out);
        if self.quorum() == 1 {
            self.become_leading(now_ms, out);
        }
    }

    fn become_following(&mut self, now_ms: u64, leader: NodeId, out: &mut ZabOut<T, A>) {
        let nonce = self.next_nonce();
        let mut f = Follower::new(
            LinkId {
                leader,
                follower: self.id,
                nonce,
            },
            now_ms,
        );
        f.send(
            LinkMsg::FollowerInfo {
                accepted_epoch: self.epochs.accepted,
            },
            out,
        );
        self.role = Role::Following(f);
        self.serving = false;
        out.events
            .push(ZabEvent::Role(RoleChange::Following { leader }));
    }

    fn become_leading(&mut self, now_ms: u64, out: &mut ZabOut<T, A>) {
        self.role = Role::Leading(Leader::new(self.id, self.epochs.accepted, now_ms));
        self.serving = false;
        leader::start(self, now_ms, out);
    }

    fn next_nonce(&mut self) -> u64 {
        self.nonce_state = self.nonce_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.nonce_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Emits a durable write and returns its token.
    fn write(&mut self, ops: Vec<DiskOp>, out: &mut ZabOut<T, A>) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        out.writes.push(Write { token, ops });
        token
    }

    /// Whether this node's log lost a damaged tail it has not learned again.
    pub fn is_repaired(&self) -> bool {
        self.repaired
    }

    /// This node now holds an established leader's history, which holds every commit:
    /// whatever its damaged tail lost, it has again. The note is deleted; should the delete
    /// be lost to a crash, the node only stays cautious longer.
    fn recovered(&mut self, out: &mut ZabOut<T, A>) {
        if !self.repaired {
            return;
        }
        self.repaired = false;
        self.write(
            vec![DiskOp::Delete {
                name: machine::repaired_blob(LOG),
            }],
            out,
        );
    }

    fn write_epochs(&mut self, out: &mut ZabOut<T, A>) -> u64 {
        let bytes = encode(&self.epochs);
        self.write(
            vec![DiskOp::Put {
                name: EPOCHS_BLOB.into(),
                bytes,
            }],
            out,
        )
    }

    /// Logs entries already pushed to the history.
    fn write_entries(&mut self, entries: &[Entry<T>], out: &mut ZabOut<T, A>) -> u64 {
        let records = entries.iter().map(encode).collect();
        let token = self.write(
            vec![DiskOp::Append {
                log: LOG.into(),
                records,
            }],
            out,
        );
        if let Some(last) = entries.last() {
            self.appends.insert(token, last.zxid);
        }
        token
    }

    /// Hands committed entries up to `zxid` to the service, in order.
    fn commit_through(&mut self, zxid: Zxid, out: &mut ZabOut<T, A>) {
        let target = zxid.min(self.history.last_zxid());
        if target <= self.committed {
            return;
        }
        let from = self.history.index_after(self.committed);
        let to = self.history.index_after(target);
        for e in &self.history.entries[from..to] {
            out.events.push(ZabEvent::Commit(e.clone()));
        }
        self.committed = target;
    }

    fn after_persist_action(
        &mut self,
        now_ms: u64,
        action: AfterPersist<T, A>,
        out: &mut ZabOut<T, A>,
    ) {
        match action {
            AfterPersist::FollowerSend(link, msg) => {
                if let Role::Following(f) = &mut self.role {
                    if f.link_id() == link {
                        f.send(msg, out);
                    }
                }
            }
            AfterPersist::LeaderEpochDurable(epoch) => {
                leader::epoch_durable(self, now_ms, epoch, out)
            }
            AfterPersist::LeaderCurrentEpoch(epoch) => {
                leader::current_epoch_durable(self, now_ms, epoch, out)
            }
        }
    }
}

/// Sends `body` on `link` to `to`, numbered in the link's order.
fn link_send<T, A>(
    link: &mut link::Link<LinkMsg<T, A>>,
    to: NodeId,
    body: LinkMsg<T, A>,
    out: &mut ZabOut<T, A>,
) {
    let seq = link.next_seq();
    let id = link.id;
    out.sends.push((
        to,
        ZabMsg::Link {
            link: id,
            seq,
            body,
        },
    ));
}

fn encode<S: Serialize>(value: &S) -> Vec<u8> {
    postcard::to_stdvec(value).expect("in-memory serialization cannot fail")
}

fn decode_blob<S: DeserializeOwned>(durable: &Durable, name: &str) -> Result<Option<S>, BootError> {
    durable
        .blobs
        .get(name)
        .map(|b| postcard::from_bytes(b).map_err(|e| BootError(format!("blob {name}: {e}"))))
        .transpose()
}

/// The log's entries above the snapshot; earlier ones are covered by it.
fn load_history<T: Clone + DeserializeOwned>(
    durable: &Durable,
    snap: Zxid,
) -> Result<History<T>, BootError> {
    let Some(log) = durable.logs.get(LOG) else {
        return Ok(History::new(snap, 0, Vec::new()));
    };
    let mut entries = Vec::with_capacity(log.records.len());
    let mut first_pos = log.end();
    let mut prev = 0;
    for (i, r) in log.records.iter().enumerate() {
        let pos = log.first + i as u64;
        let e: Entry<T> = postcard::from_bytes(r)
            .map_err(|err| BootError(format!("log {LOG} position {pos}: {err}")))?;
        if e.zxid <= prev {
            return Err(BootError(format!(
                "log {LOG} position {pos}: zxid {:#x} does not follow {prev:#x}",
                e.zxid
            )));
        }
        prev = e.zxid;
        if e.zxid > snap {
            if entries.is_empty() {
                first_pos = pos;
            }
            entries.push(e);
        }
    }
    Ok(History::new(snap, first_pos, entries))
}

#[cfg(test)]
mod clock_tests {
    use super::{Clock, MAX_CLOCK_STEP_MS};

    #[test]
    fn clock_jumps_neither_freeze_nor_rush_the_protocol_clock() {
        let mut c = Clock {
            last_seen_ms: 50_000,
            elapsed_ms: 50_000,
        };
        assert_eq!(c.observe(50_010), 50_010);
        // Ten seconds back: time stands still for one observation, then moves on.
        assert_eq!(c.observe(40_020), 50_010);
        assert_eq!(c.observe(40_030), 50_020);
        // Ten seconds forward: at most one step's worth.
        assert_eq!(c.observe(50_030), 50_020 + MAX_CLOCK_STEP_MS);
        assert_eq!(c.observe(50_040), 50_030 + MAX_CLOCK_STEP_MS);
    }
}
