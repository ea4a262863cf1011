//! The coordinator: runs each transaction's two-phase commit, answers the termination
//! protocol, and starts consistent-cut snapshots.
//!
//! Its log records, as in the seed's crash-recovery protocol: `start` when VOTE_REQ goes
//! out, `commit` or `abort` forced before the decision leaves. `start` is written with
//! VOTE_REQ rather than before it, so the participants' forced `yes` overlaps it and a
//! commit costs two forced writes in sequence, not three: a coordinator that lost `start`
//! in a crash cannot have decided, and answers anyone who asks about a transaction it does
//! not know with abort (presumed abort). Transaction ids include the coordinator's boot
//! count, so a lost `start`'s id is never reused.
//!
//! After all participants acknowledge the decision it appends `end` and forgets the
//! transaction; the lowest transaction it still remembers is the *horizon*, which it tells
//! participants so they may forget too. A coordinator recovering with `start` and no
//! decision aborts.

use crate::node::{Shell, Then as NodeThen, TwoPc};
use crate::proto::{
    node_name, AbortCause, Body, Decision, Event, Mop, RecordName, Request, Response, SnapshotId,
    TxnId, Value,
};
use crate::record::{self, CoordRecord, CoordState, CoordTxnState};
use machine::{BootError, ClientId, Effects, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// What the coordinator does once a record is durable.
pub enum Then {
    StartLogged(TxnId),
    Decided(TxnId),
    SnapshotBegun(SnapshotId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Voting,
    /// The decision record is being forced.
    Deciding,
    Decided,
}

struct Txn {
    participants: Vec<NodeId>,
    /// The request's operations, to put reads back in order.
    ops: Vec<Mop>,
    client: Option<ClientId>,
    phase: Phase,
    votes: BTreeMap<NodeId, Vec<(u64, Option<Value>)>>,
    started_ms: u64,
    decision: Option<(bool, Option<SnapshotId>)>,
    cause: Option<AbortCause>,
    acked: BTreeSet<NodeId>,
    last_sent_ms: u64,
    /// Resends of the decision so far (each doubles the wait: `retry_after_ms`).
    resends: u32,
}

struct RunningSnapshot {
    id: SnapshotId,
    client: Option<ClientId>,
    finished: BTreeSet<NodeId>,
    started_ms: u64,
    last_sent_ms: u64,
}

pub struct Coordinator {
    participants: Vec<NodeId>,
    txns: BTreeMap<TxnId, Txn>,
    next_snapshot: SnapshotId,
    snapshot: Option<RunningSnapshot>,
    /// Per earlier life, the first log position its crash lost.
    lost: BTreeMap<u32, u64>,
    /// A snapshot whose begin record is being forced, and who asked for it.
    snapshot_pending: Option<(SnapshotId, ClientId)>,
}

impl Coordinator {
    pub fn recover(
        participants: Vec<NodeId>,
        state: CoordState,
        replay: &[&[u8]],
    ) -> Result<Coordinator, BootError> {
        let mut c = Coordinator {
            participants,
            txns: BTreeMap::new(),
            next_snapshot: state.next_snapshot.max(1),
            snapshot: None,
            lost: state.lost.into_iter().collect(),
            snapshot_pending: None,
        };
        for t in state.txns {
            c.txns
                .insert(t.txn, Txn::recovered(t.participants, t.decision, t.acked));
        }
        for (i, bytes) in replay.iter().enumerate() {
            let rec: CoordRecord =
                record::decode(&format!("log record {i} after the checkpoint"), bytes)
                    .map_err(BootError)?;
            match rec {
                CoordRecord::Start { txn, participants } => {
                    c.txns
                        .insert(txn, Txn::recovered(participants, None, Vec::new()));
                }
                CoordRecord::Commit { txn, txn_marker } => {
                    if let Some(t) = c.txns.get_mut(&txn) {
                        t.decision = Some((true, txn_marker));
                        t.phase = Phase::Decided;
                    }
                }
                CoordRecord::Abort { txn } => {
                    if let Some(t) = c.txns.get_mut(&txn) {
                        t.decision = Some((false, None));
                        t.phase = Phase::Decided;
                    }
                }
                CoordRecord::End { txn } => {
                    c.txns.remove(&txn);
                }
                CoordRecord::SnapshotBegin { snapshot } => {
                    c.next_snapshot = c.next_snapshot.max(snapshot + 1);
                }
                CoordRecord::Lost { incarnation, from } => {
                    c.lost.insert(incarnation, from);
                }
            }
        }
        Ok(c)
    }

    /// Notes which ids the last life lost, then applies the seed's rule: a transaction with
    /// `start` and no decision is aborted.
    pub fn after_boot(&mut self, s: &mut Shell, out: &mut Effects<TwoPc>) {
        if let Some(previous) = s.incarnation().checked_sub(1).filter(|i| *i > 0) {
            let from = s.wal.next_pos();
            self.lost.insert(previous, from);
            s.wal.append(
                record::encode(&CoordRecord::Lost {
                    incarnation: previous,
                    from,
                }),
                None,
            );
        }
        // A decision on disk is a decision made, whether or not the crash let its events be
        // written: record it again, so no participant that learns it looks as if it
        // decided alone. Repeating the same decision changes nothing for the checkers.
        for (&txn, t) in &self.txns {
            if let Some((commit, _)) = t.decision {
                let record = if commit {
                    RecordName::Commit
                } else {
                    RecordName::Abort
                };
                out.record(Event::Log { txn, record });
                out.record(Event::Decide {
                    txn,
                    decision: Decision::of(commit),
                });
            }
        }
        let undecided: Vec<TxnId> = self
            .txns
            .iter()
            .filter(|(_, t)| t.decision.is_none())
            .map(|(id, _)| *id)
            .collect();
        for txn in undecided {
            self.decide(s, txn, false, None, out);
        }
    }

    pub fn state(&self) -> CoordState {
        CoordState {
            txns: self
                .txns
                .iter()
                .map(|(id, t)| CoordTxnState {
                    txn: *id,
                    participants: t.participants.clone(),
                    decision: t.decision,
                    acked: t.acked.iter().copied().collect(),
                })
                .collect(),
            next_snapshot: self.next_snapshot,
            lost: self.lost.iter().map(|(i, f)| (*i, *f)).collect(),
        }
    }

    /// Every transaction below it has been acknowledged by all its participants.
    pub fn horizon(&self, s: &Shell) -> TxnId {
        self.txns
            .keys()
            .next()
            .copied()
            .or_else(|| crate::proto::txn_id(s.incarnation(), s.wal.next_pos()))
            .unwrap_or(TxnId::MAX)
    }

    /// Transactions still remembered (for tests and metrics).
    pub fn active_txns(&self) -> usize {
        self.txns.len()
    }

    fn marker(&self, s: &Shell) -> Option<SnapshotId> {
        if s.cfg.bugs.snapshot_without_markers {
            None
        } else {
            self.snapshot.as_ref().map(|r| r.id)
        }
    }

    pub fn disconnected(&mut self, client: ClientId) {
        for t in self.txns.values_mut() {
            if t.client == Some(client) {
                t.client = None;
            }
        }
        if let Some(r) = &mut self.snapshot {
            if r.client == Some(client) {
                r.client = None;
            }
        }
    }

    pub fn on_request(
        &mut self,
        s: &mut Shell,
        client: ClientId,
        req: Request,
        out: &mut Effects<TwoPc>,
    ) {
        match req {
            Request::Txn { ops } => self.begin(s, client, ops, out),
            Request::Snapshot => self.begin_snapshot(s, client, out),
            Request::State | Request::SnapshotState { .. } => out.reply(
                client,
                Response::Refused {
                    why: "the coordinator holds no shard; ask a participant".into(),
                },
            ),
        }
    }

    fn begin(&mut self, s: &mut Shell, client: ClientId, ops: Vec<Mop>, out: &mut Effects<TwoPc>) {
        let refuse = |why: String, out: &mut Effects<TwoPc>| {
            out.reply(client, Response::Refused { why });
        };
        if ops.is_empty() || ops.len() > s.cfg.max_ops_per_txn {
            return refuse(
                format!(
                    "a transaction has 1 to {} operations, not {}",
                    s.cfg.max_ops_per_txn,
                    ops.len()
                ),
                out,
            );
        }
        if self.txns.len() >= s.cfg.max_active_txns {
            return refuse(
                format!("busy: {} transactions running", self.txns.len()),
                out,
            );
        }
        let Some(txn) = crate::proto::txn_id(s.incarnation(), s.wal.next_pos()) else {
            return refuse(
                "this coordinator life has used up its transaction ids".into(),
                out,
            );
        };
        // Before the append: the horizon must not pass this transaction.
        let horizon = self.horizon(s);
        debug_assert!(horizon <= txn);
        let shards = record::split_by_shard(&ops, &self.participants);
        let participants: Vec<NodeId> = shards.iter().map(|(n, _)| *n).collect();
        s.wal.append_lazy(
            record::encode(&CoordRecord::Start {
                txn,
                participants: participants.clone(),
            }),
            Some(NodeThen::Coord(Then::StartLogged(txn))),
        );
        out.record(Event::Participants {
            txn,
            nodes: participants.iter().map(|n| node_name(*n)).collect(),
        });
        let marker = self.marker(s);
        for (to, ops) in shards {
            let body = Body::Prepare {
                txn,
                participants: participants.clone(),
                ops,
                horizon,
                marker,
            };
            s.send(to, body, out);
        }
        self.txns.insert(
            txn,
            Txn {
                participants,
                ops,
                client: Some(client),
                phase: Phase::Voting,
                votes: BTreeMap::new(),
                started_ms: s.now_ms,
                decision: None,
                cause: None,
                acked: BTreeSet::new(),
                last_sent_ms: s.now_ms,
                resends: 0,
            },
        );
    }

    pub fn durable(&mut self, s: &mut Shell, then: Then, out: &mut Effects<TwoPc>) {
        match then {
            Then::StartLogged(txn) => out.record(Event::Log {
                txn,
                record: RecordName::Start,
            }),
            Then::Decided(txn) => self.decided(s, txn, out),
            Then::SnapshotBegun(id) => self.snapshot_begun(s, id, out),
        }
    }

    pub fn on_peer(&mut self, s: &mut Shell, from: NodeId, body: Body, out: &mut Effects<TwoPc>) {
        match body {
            Body::Vote {
                txn,
                yes,
                reads,
                why,
            } => self.on_vote(s, from, txn, yes, reads, why, out),
            Body::Ack { txn } => self.on_ack(s, from, txn, out),
            Body::DecisionReq { txn, participants } => {
                if let Some(t) = self.txns.get(&txn) {
                    if let (Phase::Decided, Some((commit, txn_marker))) = (t.phase, t.decision) {
                        s.send(
                            from,
                            Body::DecisionResp {
                                txn,
                                commit,
                                txn_marker,
                            },
                            out,
                        );
                    }
                }
                // Unknown: either every participant acknowledged it (whoever asks is not in
                // doubt: a stale request, left unanswered), or a crash lost its `start`
                // before any decision: then abort is the only decision it can have, and
                // the coordinator takes it, logs it and tells everyone.
                else if self.was_lost(s, txn) {
                    self.adopt_lost(s, txn, participants, out);
                }
            }
            Body::SnapshotFinished { snapshot, ok } => {
                self.on_snapshot_finished(from, snapshot, ok, out)
            }
            Body::Prepare { .. }
            | Body::Decision { .. }
            | Body::DecisionResp { .. }
            | Body::SnapshotStart { .. } => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_vote(
        &mut self,
        s: &mut Shell,
        from: NodeId,
        txn: TxnId,
        yes: bool,
        reads: Vec<(u64, Option<Value>)>,
        why: String,
        out: &mut Effects<TwoPc>,
    ) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        if t.phase != Phase::Voting || !t.participants.contains(&from) {
            return;
        }
        if !yes {
            t.cause = Some(AbortCause::VotedNo { node: from, why });
            return self.decide(s, txn, false, None, out);
        }
        t.votes.insert(from, reads);
        if t.votes.len() == t.participants.len() {
            let marker = self.marker(s);
            self.decide(s, txn, true, marker, out);
        }
    }

    /// Forces the decision record; the decision leaves when it is durable.
    fn decide(
        &mut self,
        s: &mut Shell,
        txn: TxnId,
        commit: bool,
        txn_marker: Option<SnapshotId>,
        out: &mut Effects<TwoPc>,
    ) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        debug_assert!(t.decision.is_none(), "txn {txn} decided twice");
        t.decision = Some((commit, txn_marker));
        t.phase = Phase::Deciding;
        let rec = if commit {
            CoordRecord::Commit { txn, txn_marker }
        } else {
            CoordRecord::Abort { txn }
        };
        s.wal.append(
            record::encode(&rec),
            Some(NodeThen::Coord(Then::Decided(txn))),
        );
        if commit && s.cfg.bugs.commit_before_log {
            self.announce(s, txn, out);
        }
    }

    fn decided(&mut self, s: &mut Shell, txn: TxnId, out: &mut Effects<TwoPc>) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        let Some((commit, _)) = t.decision else {
            return;
        };
        out.record(Event::Log {
            txn,
            record: if commit {
                RecordName::Commit
            } else {
                RecordName::Abort
            },
        });
        if t.phase == Phase::Deciding {
            self.announce(s, txn, out);
        }
    }

    /// Records the decision, tells the participants and the client.
    fn announce(&mut self, s: &mut Shell, txn: TxnId, out: &mut Effects<TwoPc>) {
        let horizon = self.horizon(s);
        let marker = self.marker(s);
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        let Some((commit, txn_marker)) = t.decision else {
            return;
        };
        t.phase = Phase::Decided;
        out.record(Event::Decide {
            txn,
            decision: Decision::of(commit),
        });
        t.last_sent_ms = s.now_ms;
        for &to in &t.participants {
            s.send(
                to,
                Body::Decision {
                    txn,
                    commit,
                    horizon,
                    marker,
                    txn_marker,
                },
                out,
            );
        }
        if let Some(client) = t.client.take() {
            let resp = if commit {
                Response::Committed {
                    txn,
                    reads: reads_in_order(&t.ops, &self.participants, &t.votes),
                }
            } else {
                Response::Aborted {
                    txn,
                    cause: t.cause.clone().unwrap_or(AbortCause::VoteTimeout),
                }
            };
            out.reply(client, resp);
        }
    }

    fn on_ack(&mut self, s: &mut Shell, from: NodeId, txn: TxnId, _out: &mut Effects<TwoPc>) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        if t.phase != Phase::Decided || !t.participants.contains(&from) {
            return;
        }
        t.acked.insert(from);
        if t.acked.len() == t.participants.len() {
            // Nobody can need this transaction again. `end` need not be forced: losing it
            // only makes a recovered coordinator resend a decision everyone has.
            self.txns.remove(&txn);
            s.wal
                .append(record::encode(&CoordRecord::End { txn }), None);
        }
    }

    pub fn on_tick(&mut self, s: &mut Shell, out: &mut Effects<TwoPc>) {
        let now = s.now_ms;
        let timed_out: Vec<TxnId> = self
            .txns
            .iter()
            .filter(|(_, t)| {
                t.phase == Phase::Voting
                    && now.saturating_sub(t.started_ms) >= s.cfg.vote_timeout_ms
            })
            .map(|(id, _)| *id)
            .collect();
        for txn in timed_out {
            if let Some(t) = self.txns.get_mut(&txn) {
                t.cause = Some(AbortCause::VoteTimeout);
            }
            self.decide(s, txn, false, None, out);
        }
        self.resend_decisions(s, out);
        self.tick_snapshot(s, out);
    }

    fn resend_decisions(&mut self, s: &mut Shell, out: &mut Effects<TwoPc>) {
        let horizon = self.horizon(s);
        let marker = self.marker(s);
        let now = s.now_ms;
        for (&txn, t) in self.txns.iter_mut() {
            if t.phase != Phase::Decided
                || now.saturating_sub(t.last_sent_ms) < s.cfg.retry_after_ms(t.resends)
            {
                continue;
            }
            let Some((commit, txn_marker)) = t.decision else {
                continue;
            };
            t.last_sent_ms = now;
            t.resends = t.resends.saturating_add(1);
            for &to in t.participants.iter().filter(|p| !t.acked.contains(p)) {
                s.send(
                    to,
                    Body::Decision {
                        txn,
                        commit,
                        horizon,
                        marker,
                        txn_marker,
                    },
                    out,
                );
            }
        }
    }

    /// Whether `txn` is of an earlier life, at a position that life's crash lost.
    fn was_lost(&self, s: &Shell, txn: TxnId) -> bool {
        let life = crate::proto::txn_incarnation(txn);
        life < s.incarnation()
            && self
                .lost
                .get(&life)
                .is_some_and(|from| crate::proto::txn_position(txn) >= *from)
    }

    /// Takes up a transaction whose `start` a crash lost, to abort it like any other.
    fn adopt_lost(
        &mut self,
        s: &mut Shell,
        txn: TxnId,
        participants: Vec<NodeId>,
        out: &mut Effects<TwoPc>,
    ) {
        if participants.is_empty() || !participants.iter().all(|p| self.participants.contains(p)) {
            return;
        }
        s.wal.append_lazy(
            record::encode(&CoordRecord::Start {
                txn,
                participants: participants.clone(),
            }),
            None,
        );
        self.txns
            .insert(txn, Txn::recovered(participants, None, Vec::new()));
        self.decide(s, txn, false, None, out);
    }

    fn begin_snapshot(&mut self, s: &mut Shell, client: ClientId, out: &mut Effects<TwoPc>) {
        if self.snapshot.is_some() || self.snapshot_pending.is_some() {
            out.reply(
                client,
                Response::Refused {
                    why: "busy: a snapshot is running".into(),
                },
            );
            return;
        }
        let id = self.next_snapshot;
        self.next_snapshot += 1;
        self.snapshot_pending = Some((id, client));
        s.wal.append(
            record::encode(&CoordRecord::SnapshotBegin { snapshot: id }),
            Some(NodeThen::Coord(Then::SnapshotBegun(id))),
        );
    }

    fn snapshot_begun(&mut self, s: &mut Shell, id: SnapshotId, out: &mut Effects<TwoPc>) {
        let client = match self.snapshot_pending.take() {
            Some((pending, client)) if pending == id => Some(client),
            _ => None,
        };
        self.snapshot = Some(RunningSnapshot {
            id,
            client,
            finished: BTreeSet::new(),
            started_ms: s.now_ms,
            last_sent_ms: s.now_ms,
        });
        self.broadcast_snapshot(s, out);
    }

    fn broadcast_snapshot(&mut self, s: &mut Shell, out: &mut Effects<TwoPc>) {
        let horizon = self.horizon(s);
        let Some(r) = &mut self.snapshot else {
            return;
        };
        r.last_sent_ms = s.now_ms;
        let id = r.id;
        let waiting: Vec<NodeId> = self
            .participants
            .iter()
            .filter(|p| !r.finished.contains(p))
            .copied()
            .collect();
        for to in waiting {
            s.send(
                to,
                Body::SnapshotStart {
                    snapshot: id,
                    horizon,
                },
                out,
            );
        }
    }

    fn tick_snapshot(&mut self, s: &mut Shell, out: &mut Effects<TwoPc>) {
        let now = s.now_ms;
        let Some(r) = &self.snapshot else {
            return;
        };
        if now.saturating_sub(r.started_ms) >= s.cfg.snapshot_timeout_ms {
            let why = format!(
                "not every participant finished its part within {} ms",
                s.cfg.snapshot_timeout_ms
            );
            return self.end_snapshot(Err(why), out);
        }
        if now.saturating_sub(r.last_sent_ms) >= s.cfg.retry_ms {
            self.broadcast_snapshot(s, out);
        }
    }

    fn on_snapshot_finished(
        &mut self,
        from: NodeId,
        snapshot: SnapshotId,
        ok: bool,
        out: &mut Effects<TwoPc>,
    ) {
        let Some(r) = &mut self.snapshot else {
            return;
        };
        if r.id != snapshot {
            return;
        }
        if !ok {
            let why = format!("n{from} lost its part in a crash");
            return self.end_snapshot(Err(why), out);
        }
        r.finished.insert(from);
        if r.finished.len() == self.participants.len() {
            self.end_snapshot(Ok(()), out);
        }
    }

    fn end_snapshot(&mut self, result: Result<(), String>, out: &mut Effects<TwoPc>) {
        let Some(r) = self.snapshot.take() else {
            return;
        };
        if let Some(client) = r.client {
            let resp = match result {
                Ok(()) => Response::SnapshotTaken { snapshot: r.id },
                Err(why) => Response::SnapshotFailed {
                    snapshot: r.id,
                    why,
                },
            };
            out.reply(client, resp);
        }
    }
}

impl Txn {
    fn recovered(
        participants: Vec<NodeId>,
        decision: Option<(bool, Option<SnapshotId>)>,
        acked: Vec<NodeId>,
    ) -> Txn {
        Txn {
            participants,
            ops: Vec::new(),
            client: None,
            phase: if decision.is_some() {
                Phase::Decided
            } else {
                Phase::Voting
            },
            votes: BTreeMap::new(),
            started_ms: 0,
            decision,
            cause: None,
            acked: acked.into_iter().collect(),
            // Resend at the first tick.
            last_sent_ms: 0,
            resends: 0,
        }
    }
}

/// The values the request's `Read`s saw, in request order: each shard answered its own
/// reads in the order it received them. `participants` are all shards, as placement uses.
fn reads_in_order(
    ops: &[Mop],
    participants: &[NodeId],
    votes: &BTreeMap<NodeId, Vec<(u64, Option<Value>)>>,
) -> Vec<(u64, Option<Value>)> {
    let mut next: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut reads = Vec::new();
    for op in ops {
        if let Mop::Read { key } = op {
            let shard = record::shard_of(*key, participants);
            let i = next.entry(shard).or_insert(0);
            if let Some(r) = votes.get(&shard).and_then(|v| v.get(*i)) {
                reads.push(*r);
            }
            *i += 1;
        }
    }
    reads
}
