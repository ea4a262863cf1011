//! One replica: Zab below, the replicated database above, and the delegate's clients in
//! between. This is the `Machine` the simulator (and the node binary) runs.
//!
//! How an update transaction travels, by mode:
//! - **certification**: executes here on a snapshot for `exec_ticks`, then its write set
//!   (and read set) goes to the leader and into the total order; every replica certifies it
//!   on delivery ([`crate::certify`]) and applies it or not, all alike; this replica answers
//!   its client then.
//! - **active**: the whole transaction goes into the total order at once; every replica
//!   executes it on delivery against the newest state.
//! - **weak-voting**: like certification up to delivery, where it waits in a queue; only this
//!   replica (its delegate) certifies it, and broadcasts the decision; replicas apply the
//!   queue's head once it is decided. The leader aborts one whose delegate stays silent.
//! - **primary-copy**: goes to the leader, which executes it on top of its own proposals and
//!   broadcasts the result; everyone applies results in order.
//! - **lazy**: executes and commits here, answers at once, and is broadcast afterwards;
//!   others apply it whenever it arrives, wherever their own commits put it.
//!
//! Read-only transactions run here on a snapshot in every mode: a replica's state is always
//! a prefix of the total order, so a snapshot of it is a serializable place for them (not a
//! linearizable one: the replica may lag).
//!
//! A replica that is not current (no leader, or syncing) refuses transactions. When it
//! loses its leader, transactions in flight become unknown to their clients (they may still
//! commit through another replica) and executing ones abort.

mod delegate;
mod deliver;
mod primary;
mod voting;

use crate::config::{Mode, RepdbConfig};
use crate::db::Db;
use crate::exec::{self, SnapshotView};
use crate::proto::{
    AbortReason, AppMsg, Broadcast, Certify, Indeterminate, Mop, PeerMsg, Refusal, Request,
    Response, TxnId, Version,
};
use delegate::{Delegate, Stage};
use machine::{Boot, BootError, ClientId, Durable, Effects, Input, Machine, NodeId};
use primary::Overlay;
use std::collections::BTreeSet;
use voting::Timers;
use zab::{RoleChange, Zab, ZabEvent, ZabOut, Zxid};

type Out = ZabOut<Broadcast, AppMsg>;

/// One replica of the database.
#[derive(Debug)]
pub struct Replica {
    id: NodeId,
    cfg: RepdbConfig,
    zab: Zab<Broadcast, AppMsg>,
    db: Db,
    /// The zxid of the last commit applied to `db` (or of the snapshot restored).
    applied_zxid: Zxid,
    delegate: Delegate,
    /// primary-copy: the leader's uncommitted proposals.
    overlay: Overlay,
    /// weak-voting: the leader's clocks on undecided write sets.
    timers: Timers,
    /// Planted bug apply-before-delivery: own transactions applied before delivery.
    early: BTreeSet<TxnId>,
    /// Draws for planted bugs, from the node's seed.
    rng_state: u64,
    ticks: u64,
    commits_since_snapshot: u64,
    /// Why this replica can no longer be trusted to serve, if it cannot.
    broken: Option<String>,
}

impl Machine for Replica {
    type Config = RepdbConfig;
    type Peer = PeerMsg;
    type Request = Request;
    type Response = Response;
    type Event = ();

    fn boot(
        boot: Boot<'_, RepdbConfig>,
        durable: Durable,
        out: &mut Effects<Self>,
    ) -> Result<Self, BootError> {
        let mut zout = Out::default();
        let (zab, zxid, snapshot) = Zab::boot(
            boot.id,
            boot.members,
            boot.config.zab.clone(),
            boot.seed,
            &durable,
            boot.now_ms,
            &mut zout,
        )?;
        let db = Db::decode(&snapshot, boot.config.limits.clone())
            .map_err(|e| BootError(format!("snapshot: {e}")))?;
        let mut replica = Replica {
            id: boot.id,
            cfg: boot.config.clone(),
            zab,
            db,
            applied_zxid: zxid,
            delegate: Delegate::default(),
            overlay: Overlay::default(),
            timers: Timers::default(),
            early: BTreeSet::new(),
            rng_state: boot.seed ^ 0x7265_7064_6220_6267,
            ticks: 0,
            commits_since_snapshot: 0,
            broken: None,
        };
        replica.absorb(zout, out);
        Ok(replica)
    }

    fn step(&mut self, now_ms: u64, input: Input<Self>, out: &mut Effects<Self>) {
        let mut zout = Out::default();
        match input {
            Input::Peer { from, msg } => self.zab.step(now_ms, from, msg, &mut zout),
            Input::Persisted { token } => self.zab.persisted(now_ms, token, &mut zout),
            Input::Tick => {
                self.zab.tick(now_ms, &mut zout);
                self.absorb(zout, out);
                zout = Out::default();
                self.ticks += 1;
                self.run_due(&mut zout, out);
                self.resend_decisions(&mut zout);
                self.voting_timeouts(&mut zout);
            }
            Input::Request { client, req } => self.on_request(client, req, &mut zout, out),
            Input::Disconnected { client } => self.delegate.drop_client(client),
        }
        self.absorb(zout, out);
    }
}

impl Replica {
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn config(&self) -> &RepdbConfig {
        &self.cfg
    }

    /// The replicated state: store, version, apply log.
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn zab(&self) -> &Zab<Broadcast, AppMsg> {
        &self.zab
    }

    /// Whether this replica answers transactions now.
    pub fn is_serving(&self) -> bool {
        self.zab.is_serving() && self.broken.is_none()
    }

    /// Transactions of this replica's clients in progress.
    pub fn pending(&self) -> usize {
        self.delegate.len()
    }

    /// Carries out what Zab asked for and reacts to what it reported, in order, until
    /// nothing more follows.
    fn absorb(&mut self, mut zout: Out, out: &mut Effects<Self>) {
        loop {
            let ZabOut {
                sends,
                writes,
                events,
            } = std::mem::take(&mut zout);
            out.sends.extend(sends);
            out.writes.extend(writes);
            let mut commits = 0u64;
            for ev in events {
                match ev {
                    ZabEvent::Commit(entry) => {
                        self.deliver(entry.zxid, entry.txn, &mut zout, out);
                        commits += 1;
                    }
                    ZabEvent::Restore { zxid, bytes } => self.restore(zxid, &bytes, out),
                    ZabEvent::App { from, msg } => self.on_app(from, msg, &mut zout, out),
                    ZabEvent::Role(change) => self.on_role(change, out),
                }
            }
            if commits > 0 {
                self.after_commits(commits, &mut zout);
            }
            if zout.sends.is_empty() && zout.writes.is_empty() && zout.events.is_empty() {
                return;
            }
        }
    }

    fn after_commits(&mut self, commits: u64, zout: &mut Out) {
        debug_assert_eq!(self.applied_zxid, self.zab.committed());
        self.commits_since_snapshot += commits;
        if self.commits_since_snapshot >= self.cfg.snapshot_every && self.broken.is_none() {
            self.commits_since_snapshot = 0;
            self.zab.take_snapshot(self.db.encode(), zout);
        }
    }

    fn restore(&mut self, zxid: Zxid, bytes: &[u8], out: &mut Effects<Self>) {
        self.fail_pending(out);
        self.early.clear();
        self.overlay.clear();
        self.applied_zxid = zxid;
        match Db::decode(bytes, self.cfg.limits.clone()) {
            Ok(db) => self.db = db,
            // Untrustworthy state: stop serving rather than answer from it. The bad
            // snapshot is on disk too, so a restart refuses to boot.
            Err(e) => self.broken = Some(format!("the leader sent an unreadable snapshot: {e}")),
        }
    }

    fn on_role(&mut self, change: RoleChange, out: &mut Effects<Self>) {
        match change {
            RoleChange::Serving => {}
            RoleChange::Looking | RoleChange::Following { .. } | RoleChange::Leading { .. } => {
                self.fail_pending(out);
                self.overlay.clear();
                self.timers.clear();
                self.early.clear();
            }
        }
    }

    /// This replica stopped serving: executing transactions abort (never broadcast), those in
    /// flight are unknown (they may commit through another replica).
    fn fail_pending(&mut self, out: &mut Effects<Self>) {
        for (id, p) in self.delegate.take_all() {
            let resp = match p.stage {
                Stage::Executing { .. } => Response::Aborted {
                    id,
                    replica: self.id,
                    reason: AbortReason::NotServing,
                },
                Stage::InFlight { .. } => Response::Unknown {
                    id,
                    replica: self.id,
                    why: Indeterminate::LeaderChanged,
                },
            };
            out.reply(p.client, resp);
        }
    }

    fn on_request(
        &mut self,
        client: ClientId,
        req: Request,
        zout: &mut Out,
        out: &mut Effects<Self>,
    ) {
        match req {
            Request::Txn { id, ops } => self.on_txn(client, id, ops, zout, out),
            Request::ApplyLog { from } => {
                let resp = match self.inspect_refusal() {
                    Some(why) => self.refused(None, why),
                    None => {
                        let (start, end) = self.db.log_bounds();
                        let (from, ids) = self.db.log_page(from, self.cfg.limits.apply_log_page);
                        Response::ApplyLog {
                            replica: self.id,
                            from,
                            start,
                            ids,
                            end,
                        }
                    }
                };
                out.reply(client, resp);
            }
            Request::State { from_key } => {
                let resp = match self.inspect_refusal() {
                    Some(why) => self.refused(None, why),
                    None => self.state_page(from_key),
                };
                out.reply(client, resp);
            }
            Request::Status => out.reply(
                client,
                Response::Status {
                    replica: self.id,
                    mode: self.cfg.mode.name().to_string(),
                    leader: self.zab.leader(),
                    serving: self.is_serving(),
                    version: self.db.version(),
                    applied: self.db.log_bounds().1,
                },
            ),
        }
    }

    fn inspect_refusal(&self) -> Option<Refusal> {
        match &self.broken {
            Some(why) => Some(Refusal::Broken(why.clone())),
            None if !self.zab.is_serving() => Some(Refusal::NotServing),
            None => None,
        }
    }

    fn refused(&self, id: Option<TxnId>, why: Refusal) -> Response {
        Response::Refused {
            id,
            replica: self.id,
            why,
        }
    }

    /// Newest values from `from_key` up, as many as fit a page.
    fn state_page(&self, from_key: u64) -> Response {
        let budget = self.cfg.limits.state_page_elements.max(1);
        let mut used = 0usize;
        let mut entries = Vec::new();
        let mut next_key = None;
        for (key, val) in self.db.store().latest_from(from_key) {
            let size = crate::store::elements_of(val).max(1);
            if used > 0 && used + size > budget {
                next_key = Some(key);
                break;
            }
            used += size;
            entries.push((key, val.clone()));
        }
        Response::State {
            replica: self.id,
            version: self.db.version(),
            entries,
            next_key,
        }
    }

    /// Why a transaction request is refused before anything happens, if it is.
    fn txn_refusal(&self, id: TxnId, ops: &[Mop]) -> Option<Refusal> {
        let limits = &self.cfg.limits;
        if let Some(why) = self.inspect_refusal() {
            return Some(why);
        }
        if let Some(problem) = malformed(ops, limits.max_mops) {
            return Some(Refusal::Malformed(problem));
        }
        if self.delegate.len() >= limits.max_pending {
            return Some(Refusal::Busy {
                max: limits.max_pending,
            });
        }
        if self.delegate.contains(id) {
            return Some(Refusal::DuplicatePending);
        }
        None
    }

    fn on_txn(
        &mut self,
        client: ClientId,
        id: TxnId,
        ops: Vec<Mop>,
        zout: &mut Out,
        out: &mut Effects<Self>,
    ) {
        if let Some(why) = self.txn_refusal(id, &ops) {
            out.reply(client, self.refused(Some(id), why));
            return;
        }
        let read_only = !ops.iter().any(Mop::is_write);
        if read_only || self.cfg.mode.executes_at_delegate() {
            let stage = Stage::Executing {
                snapshot: self.db.version(),
                due_tick: self.ticks + self.cfg.exec_ticks,
            };
            self.delegate.start(id, client, ops, stage);
            if self.cfg.exec_ticks == 0 {
                self.run_due(zout, out);
            }
            return;
        }
        let sent = match self.cfg.mode {
            Mode::Active => {
                let b = Broadcast::Execute {
                    id,
                    delegate: self.id,
                    ops: ops.clone(),
                };
                self.broadcast(b, zout)
            }
            Mode::PrimaryCopy => {
                if self.zab.is_leading() {
                    self.primary_execute(id, self.id, ops.clone(), zout)
                } else {
                    self.forward_to_leader(
                        AppMsg::Execute {
                            id,
                            ops: ops.clone(),
                        },
                        zout,
                    )
                }
            }
            Mode::Certification | Mode::WeakVoting | Mode::Lazy => {
                unreachable!("modes that execute at the delegate were handled above")
            }
        };
        match sent {
            Ok(()) => self
                .delegate
                .start(id, client, ops, Stage::InFlight { ops: None }),
            Err(reason) => out.reply(
                client,
                Response::Aborted {
                    id,
                    replica: self.id,
                    reason,
                },
            ),
        }
    }

    /// Executes every transaction whose read phase is over.
    fn run_due(&mut self, zout: &mut Out, out: &mut Effects<Self>) {
        while let Some((id, snapshot)) = self.delegate.next_due(self.ticks) {
            self.execute_at_delegate(id, snapshot, zout, out);
        }
    }

    fn execute_at_delegate(
        &mut self,
        id: TxnId,
        snapshot: Version,
        zout: &mut Out,
        out: &mut Effects<Self>,
    ) {
        let Some(p) = self.delegate.pending.get(&id) else {
            return;
        };
        let client = p.client;
        let view = SnapshotView {
            store: self.db.store(),
            snapshot,
        };
        let executed = exec::execute(&p.ops, &view, &self.cfg.limits);
        let ex = match executed {
            Ok(ex) if ex.is_read_only() => {
                self.delegate.pending.remove(&id);
                return out.reply(client, self.committed(id, ex.ops));
            }
            Ok(ex) => ex,
            Err(reason) => {
                self.delegate.pending.remove(&id);
                return out.reply(client, self.aborted(id, reason));
            }
        };
        if self.cfg.mode == Mode::Lazy {
            self.delegate.pending.remove(&id);
            let oldest = self.delegate.oldest_snapshot();
            if let Err(reason) = self.db.commit(id, &ex.writes, oldest) {
                return out.reply(client, self.aborted(id, reason));
            }
            self.db.remember(id);
            out.reply(client, self.committed(id, ex.ops));
            // Propagation is best effort: without a leader now, the others never learn of it.
            let lazy = Broadcast::Lazy {
                id,
                origin: self.id,
                writes: ex.writes,
            };
            let _ = self.broadcast(lazy, zout);
            return;
        }
        let c = Certify {
            id,
            delegate: self.id,
            snapshot,
            reads: if self.cfg.read_sets {
                ex.reads
            } else {
                Vec::new()
            },
            writes: ex.writes,
        };
        let b = match self.cfg.mode {
            Mode::WeakVoting => Broadcast::Vote(c.clone()),
            _ => Broadcast::Certify(c.clone()),
        };
        match self.broadcast(b, zout) {
            Ok(()) => {
                if self.cfg.bugs.apply_before_delivery {
                    let oldest = self.delegate.oldest_snapshot();
                    if self.db.commit(id, &c.writes, oldest).is_ok() {
                        self.early.insert(id);
                    }
                }
                let p = self.delegate.pending.get_mut(&id).expect("looked up above");
                p.stage = Stage::InFlight { ops: Some(ex.ops) };
            }
            Err(reason) => {
                self.delegate.pending.remove(&id);
                out.reply(client, self.aborted(id, reason));
            }
        }
    }

    /// Puts `b` into the total order: proposed here at the leader, forwarded from a
    /// follower. `Err` when it certainly was not.
    fn broadcast(&mut self, b: Broadcast, zout: &mut Out) -> Result<(), AbortReason> {
        if self.zab.is_leading() {
            self.zab
                .propose(b, zout)
                .map(|_| ())
                .map_err(|e| AbortReason::NotBroadcast(e.to_string()))
        } else {
            self.forward_to_leader(AppMsg::Propose(b), zout)
        }
    }

    fn forward_to_leader(&mut self, msg: AppMsg, zout: &mut Out) -> Result<(), AbortReason> {
        let Some(leader) = self.zab.leader().filter(|&l| l != self.id) else {
            return Err(AbortReason::NotBroadcast("no leader".into()));
        };
        if self.zab.send_app(leader, msg, zout) {
            Ok(())
        } else {
            Err(AbortReason::NotBroadcast("no link to the leader".into()))
        }
    }

    /// The primary executes `ops` for `delegate` on top of its own proposals and proposes
    /// the result.
    fn primary_execute(
        &mut self,
        id: TxnId,
        delegate: NodeId,
        ops: Vec<Mop>,
        zout: &mut Out,
    ) -> Result<(), AbortReason> {
        if self.db.seen(id) || self.overlay.is_proposed(id) {
            return Err(AbortReason::DuplicateId);
        }
        if let Some(problem) = malformed(&ops, self.cfg.limits.max_mops) {
            return Err(AbortReason::Malformed(problem));
        }
        let ex = exec::execute(&ops, &self.overlay.view(self.db.store()), &self.cfg.limits)?;
        let b = Broadcast::Apply {
            id,
            delegate,
            writes: ex.writes,
            ops: ex.ops,
        };
        let zxid = self
            .zab
            .propose(b, zout)
            .map_err(|e| AbortReason::NotBroadcast(e.to_string()))?;
        self.overlay.record(id, zxid, ex.finals);
        Ok(())
    }

    fn on_app(&mut self, from: NodeId, msg: AppMsg, zout: &mut Out, out: &mut Effects<Self>) {
        match msg {
            AppMsg::Propose(b) => {
                let id = b.id();
                // Only a transaction's first broadcast has a delegate waiting on a refusal;
                // a lost decision or propagation is covered by the leader's timeout, or not
                // at all (lazy).
                let answerable = matches!(
                    b,
                    Broadcast::Certify(_) | Broadcast::Vote(_) | Broadcast::Execute { .. }
                );
                let result = if !self.zab.is_leading() {
                    Err(AbortReason::NotBroadcast("not the leader".into()))
                } else if let Some(problem) = implausible(&b, &self.cfg.limits) {
                    Err(AbortReason::Malformed(problem))
                } else {
                    self.zab
                        .propose(b, zout)
                        .map(|_| ())
                        .map_err(|e| AbortReason::NotBroadcast(e.to_string()))
                };
                if let (Err(reason), true) = (result, answerable) {
                    self.zab
                        .send_app(from, AppMsg::Refused { id, reason }, zout);
                }
            }
            AppMsg::Execute { id, ops } => {
                let result = if self.cfg.mode != Mode::PrimaryCopy || !self.zab.is_leading() {
                    Err(AbortReason::NotBroadcast("not the primary".into()))
                } else {
                    self.primary_execute(id, from, ops, zout)
                };
                if let Err(reason) = result {
                    self.zab
                        .send_app(from, AppMsg::Refused { id, reason }, zout);
                }
            }
            AppMsg::Refused { id, reason } => {
                if let Some(p) = self.delegate.take_in_flight(id) {
                    out.reply(p.client, self.aborted(id, reason));
                }
            }
        }
    }

    fn committed(&self, id: TxnId, ops: Vec<Mop>) -> Response {
        Response::Committed {
            id,
            replica: self.id,
            ops,
        }
    }

    fn aborted(&self, id: TxnId, reason: AbortReason) -> Response {
        Response::Aborted {
            id,
            replica: self.id,
            reason,
        }
    }

    /// A draw from this replica's own stream (splitmix64), for planted bugs only.
    fn draw(&mut self, below: u64) -> u64 {
        self.rng_state = self.rng_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % below.max(1)
    }
}

/// What is wrong with a transaction's micro-ops as a client sent them, if anything.
pub(crate) fn malformed(ops: &[Mop], max_mops: usize) -> Option<String> {
    if ops.is_empty() {
        return Some("a transaction needs at least one micro-op".into());
    }
    if ops.len() > max_mops {
        return Some(format!("{} micro-ops, more than {max_mops}", ops.len()));
    }
    ops.iter()
        .position(|m| matches!(m, Mop::Read { value: Some(_), .. }))
        .map(|i| format!("micro-op {i} is a read sent with a value; reads are sent with nil"))
}

/// What is wrong with a broadcast a peer asks the leader to propose, if anything.
fn implausible(b: &Broadcast, limits: &crate::config::Limits) -> Option<String> {
    let writes_ok = |w| exec::well_formed(w, limits);
    match b {
        Broadcast::Certify(c) | Broadcast::Vote(c) => (!writes_ok(&c.writes)
            || c.reads.len() > limits.max_mops)
            .then(|| "a malformed write or read set".into()),
        Broadcast::Execute { ops, .. } => malformed(ops, limits.max_mops),
        Broadcast::Apply { writes, ops, .. } => {
            (!writes_ok(writes) || ops.len() > limits.max_mops).then(|| "a malformed result".into())
        }
        Broadcast::Lazy { writes, .. } => {
            (!writes_ok(writes)).then(|| "a malformed write set".into())
        }
        Broadcast::Decision { .. } => None,
    }
}
