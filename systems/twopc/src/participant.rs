//! A participant: owns one shard, runs its part of each transaction under strict
//! two-phase locking, votes, applies decisions, runs the termination protocol when in
//! doubt, and takes its part of consistent-cut snapshots.
//!
//! Its forced records follow the seed: `yes` before voting yes (with the values it will
//! write, so recovery can redo them), `abort` when voting no, the decision when it arrives.
//! A participant that recovers with `yes` and no decision is in doubt: it keeps the
//! transaction's locks and asks the coordinator and the other participants until one of
//! them knows, and never decides alone.
//!
//! Snapshots follow Apache Ignite's consistent cut: a node joins snapshot S on the first
//! marker it sees (on a Prepare, a Decision, or the coordinator's broadcast), forces a
//! `CutStart` record, copies its committed state and notes the transactions then prepared.
//! Each of those lands *before* the cut (applied to the copy) or *after* it, as the marker
//! the coordinator stamped on its decision says; once all have ended the part is written
//! as a blob and reported.

use crate::locks::{self, LockTable};
use crate::node::{Shell, Then as NodeThen, TwoPc};
use crate::proto::{
    Body, Decision, Event, Key, Mop, RecordName, Request, Response, SnapshotId, SnapshotPart,
    TxnId, Value, VoteName,
};
use crate::record::{self, PartRecord, PartState, Prepared, RESTORE};
use machine::{BootError, ClientId, DiskOp, Durable, Effects, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// What a shard's `Read`s saw, in order.
type Reads = Vec<(Key, Option<Value>)>;

/// Finished snapshot parts a node keeps (as blobs and in memory); older ones are deleted.
pub const MAX_PARTS_KEPT: usize = 8;

/// What a participant does once a record is durable.
pub enum Then {
    Voted {
        txn: TxnId,
        reads: Vec<(Key, Option<Value>)>,
    },
    NoLogged(TxnId),
    DecisionLogged {
        txn: TxnId,
        commit: bool,
    },
    CutJoined(SnapshotId),
    CutFinished(SnapshotId),
}

struct InDoubt {
    prepared: Prepared,
    /// The `yes` record is durable.
    durable: bool,
    since_ms: u64,
    last_ask_ms: u64,
    /// Questions asked so far (each doubles the wait: `retry_after_ms`).
    asks: u32,
    /// Found in doubt at boot (the `decide-alone` bug acts on these).
    recovered: bool,
}

#[derive(Clone, Copy)]
struct Decided {
    commit: bool,
    txn_marker: Option<SnapshotId>,
    durable: bool,
}

struct Cut {
    snapshot: SnapshotId,
    kv: BTreeMap<Key, Value>,
    active: BTreeSet<TxnId>,
    before: Vec<TxnId>,
    after: Vec<TxnId>,
}

pub struct Participant {
    id: NodeId,
    coordinator: NodeId,
    kv: BTreeMap<Key, Value>,
    locks: LockTable,
    prepared: BTreeMap<TxnId, InDoubt>,
    decided: BTreeMap<TxnId, Decided>,
    applied: Vec<TxnId>,
    applied_truncated: bool,
    max_applied: usize,
    horizon: TxnId,
    last_snapshot: SnapshotId,
    cut: Option<Cut>,
    /// A finished cut whose part is being written; reported only once durable.
    finishing: Option<(SnapshotId, SnapshotPart)>,
    parts: BTreeMap<SnapshotId, SnapshotPart>,
}

/// A new participant's state: empty, or a restored snapshot part.
pub fn initial_state(durable: &Durable) -> Result<PartState, BootError> {
    match durable.blobs.get(RESTORE) {
        Some(bytes) => {
            let part: SnapshotPart =
                record::decode("the restore blob", bytes).map_err(BootError)?;
            Ok(PartState::from(&part))
        }
        None => Ok(PartState::default()),
    }
}

impl Participant {
    pub fn recover(
        id: NodeId,
        coordinator: NodeId,
        state: PartState,
        replay: &[&[u8]],
        durable: &Durable,
        now_ms: u64,
        max_applied: usize,
    ) -> Result<Participant, BootError> {
        let mut p = Participant {
            id,
            coordinator,
            kv: state.kv.into_iter().collect(),
            locks: LockTable::default(),
            prepared: BTreeMap::new(),
            decided: state
                .decided
                .into_iter()
                .map(|(t, commit)| {
                    let d = Decided {
                        commit,
                        txn_marker: None,
                        durable: true,
                    };
                    (t, d)
                })
                .collect(),
            applied: state.applied,
            applied_truncated: state.applied_truncated,
            max_applied,
            horizon: state.horizon,
            last_snapshot: state.last_snapshot,
            cut: None,
            finishing: None,
            parts: BTreeMap::new(),
        };
        for (txn, prepared) in state.prepared {
            p.reprepare(txn, prepared, now_ms)?;
        }
        for (i, bytes) in replay.iter().enumerate() {
            let what = format!("log record {i} after the checkpoint");
            match record::decode::<PartRecord>(&what, bytes).map_err(BootError)? {
                PartRecord::Yes { txn, prepared } => p.reprepare(txn, prepared, now_ms)?,
                PartRecord::Commit { txn } => p.redo_decision(txn, true),
                PartRecord::Abort { txn } => p.redo_decision(txn, false),
                PartRecord::CutStart { snapshot } => {
                    p.last_snapshot = p.last_snapshot.max(snapshot)
                }
            }
        }
        for (name, bytes) in &durable.blobs {
            if let Some(id) = record::snapshot_of_blob(name) {
                let part = record::decode(&format!("blob {name}"), bytes).map_err(BootError)?;
                p.parts.insert(id, part);
            }
        }
        Ok(p)
    }

    fn reprepare(&mut self, txn: TxnId, prepared: Prepared, now_ms: u64) -> Result<(), BootError> {
        self.locks.acquire(txn, &prepared.locks).map_err(|key| {
            BootError(format!(
                "prepared transactions {txn} and another both hold key {key}: the log is not \
                 one this store wrote"
            ))
        })?;
        self.prepared.insert(
            txn,
            InDoubt {
                prepared,
                durable: true,
                since_ms: now_ms,
                last_ask_ms: 0,
                asks: 0,
                recovered: true,
            },
        );
        Ok(())
    }

    fn redo_decision(&mut self, txn: TxnId, commit: bool) {
        if let Some(ind) = self.prepared.remove(&txn) {
            self.locks.release(txn, &ind.prepared.locks);
            if commit {
                self.apply(txn, &ind.prepared.writes);
            }
        }
        self.decided.insert(
            txn,
            Decided {
                commit,
                txn_marker: None,
                durable: true,
            },
        );
    }

    fn apply(&mut self, txn: TxnId, writes: &[(Key, Value)]) {
        for &(k, v) in writes {
            self.kv.insert(k, v);
        }
        if self.applied.len() < self.max_applied {
            self.applied.push(txn);
        } else {
            self.applied_truncated = true;
        }
    }

    pub fn after_boot(&mut self, _s: &mut Shell, _out: &mut Effects<TwoPc>) {
        // In-doubt transactions ask at the first tick after the boot record is durable.
    }

    pub fn state(&self) -> PartState {
        PartState {
            kv: self.kv.iter().map(|(k, v)| (*k, *v)).collect(),
            applied: self.applied.clone(),
            applied_truncated: self.applied_truncated,
            decided: self.decided.iter().map(|(t, d)| (*t, d.commit)).collect(),
            prepared: self
                .prepared
                .iter()
                .map(|(t, i)| (*t, i.prepared.clone()))
                .collect(),
            horizon: self.horizon,
            last_snapshot: self.last_snapshot,
        }
    }

    /// The shard's contents (tests, restores).
    pub fn kv(&self) -> &BTreeMap<Key, Value> {
        &self.kv
    }

    pub fn in_doubt(&self) -> usize {
        self.prepared.len()
    }

    pub fn part(&self, snapshot: SnapshotId) -> Option<&SnapshotPart> {
        self.parts.get(&snapshot)
    }

    pub fn on_request(
        &mut self,
        s: &mut Shell,
        client: ClientId,
        req: Request,
        out: &mut Effects<TwoPc>,
    ) {
        let resp = match req {
            Request::State => {
                let mut applied = self.applied.clone();
                applied.truncate(s.cfg.max_applied_listed);
                let truncated = self.applied_truncated || applied.len() < self.applied.len();
                out.record(Event::FinalState {
                    applied: applied.clone(),
                });
                Response::State {
                    kv: self.kv.iter().map(|(k, v)| (*k, *v)).collect(),
                    applied,
                    applied_truncated: truncated,
                }
            }
            Request::SnapshotState { snapshot } => Response::SnapshotState {
                snapshot,
                part: self.parts.get(&snapshot).cloned(),
            },
            Request::Txn { .. } | Request::Snapshot => Response::Refused {
                why: format!(
                    "n{} is a participant; transactions and snapshots go to the coordinator n{}",
                    self.id, self.coordinator
                ),
            },
        };
        out.reply(client, resp);
    }

    /// The snapshot this message makes the node join first, if any.
    pub fn cut_to_join(&self, body: &Body) -> Option<SnapshotId> {
        // A decision's transaction marker names a snapshot that has started too: a decision
        // learned from a peer (the termination protocol) must not be applied before this
        // node joins the cut it belongs after.
        let seen = match body {
            Body::Prepare { marker, .. } => (*marker)?,
            Body::Decision {
                marker, txn_marker, ..
            } => (*marker).max(*txn_marker)?,
            Body::DecisionResp { txn_marker, .. } => (*txn_marker)?,
            Body::SnapshotStart { snapshot, .. } => *snapshot,
            _ => return None,
        };
        (seen > self.last_snapshot).then_some(seen)
    }

    /// Forces the cut's start record; the node holds its inputs until it is durable.
    pub fn join_cut(&mut self, s: &mut Shell, snapshot: SnapshotId, out: &mut Effects<TwoPc>) {
        // A newer snapshot means the coordinator gave the running one up.
        self.cut = None;
        self.last_snapshot = snapshot;
        let token = s.wal.append_now(
            record::encode(&PartRecord::CutStart { snapshot }),
            NodeThen::Part(Then::CutJoined(snapshot)),
            out,
        );
        s.gate_on(token);
    }

    pub fn durable(&mut self, s: &mut Shell, then: Then, out: &mut Effects<TwoPc>) {
        match then {
            Then::Voted { txn, reads } => {
                out.record(Event::Log {
                    txn,
                    record: RecordName::Yes,
                });
                if let Some(ind) = self.prepared.get_mut(&txn) {
                    ind.durable = true;
                    ind.since_ms = s.now_ms;
                }
                if !s.cfg.bugs.vote_before_force {
                    self.vote(s, txn, true, reads, String::new(), out);
                }
            }
            Then::NoLogged(txn) => {
                out.record(Event::Log {
                    txn,
                    record: RecordName::Abort,
                });
                if let Some(d) = self.decided.get_mut(&txn) {
                    d.durable = true;
                }
            }
            Then::DecisionLogged { txn, commit } => {
                out.record(Event::Log {
                    txn,
                    record: if commit {
                        RecordName::Commit
                    } else {
                        RecordName::Abort
                    },
                });
                if let Some(d) = self.decided.get_mut(&txn) {
                    d.durable = true;
                }
                s.send(self.coordinator, Body::Ack { txn }, out);
            }
            Then::CutJoined(snapshot) => self.cut_joined(s, snapshot, out),
            Then::CutFinished(snapshot) => {
                let Some((id, part)) = self.finishing.take() else {
                    return;
                };
                debug_assert_eq!(id, snapshot);
                out.record(Event::SnapshotFinish {
                    snapshot,
                    before: part.before.clone(),
                    after: part.after.clone(),
                });
                self.parts.insert(snapshot, part);
                s.send(
                    self.coordinator,
                    Body::SnapshotFinished { snapshot, ok: true },
                    out,
                );
            }
        }
    }

    fn vote(
        &mut self,
        s: &mut Shell,
        txn: TxnId,
        yes: bool,
        reads: Vec<(Key, Option<Value>)>,
        why: String,
        out: &mut Effects<TwoPc>,
    ) {
        out.record(Event::Vote {
            txn,
            vote: if yes { VoteName::Yes } else { VoteName::No },
        });
        s.send(
            self.coordinator,
            Body::Vote {
                txn,
                yes,
                reads,
                why,
            },
            out,
        );
    }

    pub fn on_peer(&mut self, s: &mut Shell, from: NodeId, body: Body, out: &mut Effects<TwoPc>) {
        match body {
            Body::Prepare {
                txn,
                participants,
                ops,
                horizon,
                ..
            } if from == self.coordinator => {
                self.advance_horizon(horizon);
                self.prepare(s, txn, participants, ops, out);
            }
            Body::Decision {
                txn,
                commit,
                horizon,
                txn_marker,
                ..
            } if from == self.coordinator => {
                self.advance_horizon(horizon);
                self.learn(s, txn, commit, txn_marker, true, out);
            }
            Body::DecisionReq { txn, .. } => {
                if let Some(d) = self.decided.get(&txn) {
                    let resp = Body::DecisionResp {
                        txn,
                        commit: d.commit,
                        txn_marker: d.txn_marker,
                    };
                    s.send(from, resp, out);
                }
            }
            Body::DecisionResp {
                txn,
                commit,
                txn_marker,
            } if self.prepared.contains_key(&txn) => {
                self.learn(s, txn, commit, txn_marker, false, out);
            }
            Body::SnapshotStart { snapshot, horizon } if from == self.coordinator => {
                self.advance_horizon(horizon);
                let running = self.cut.as_ref().is_some_and(|c| c.snapshot == snapshot)
                    || self
                        .finishing
                        .as_ref()
                        .is_some_and(|(id, _)| *id == snapshot);
                if self.parts.contains_key(&snapshot) {
                    s.send(from, Body::SnapshotFinished { snapshot, ok: true }, out);
                } else if !running {
                    // Joined before a crash: the part is lost for good.
                    s.send(
                        from,
                        Body::SnapshotFinished {
                            snapshot,
                            ok: false,
                        },
                        out,
                    );
                }
            }
            _ => {}
        }
    }

    fn advance_horizon(&mut self, horizon: TxnId) {
        if horizon > self.horizon {
            self.horizon = horizon;
            // Everyone acknowledged these: nobody will ask, and duplicates are recognised
            // by being below the horizon.
            self.decided = self.decided.split_off(&horizon);
        }
    }

    fn prepare(
        &mut self,
        s: &mut Shell,
        txn: TxnId,
        participants: Vec<NodeId>,
        ops: Vec<Mop>,
        out: &mut Effects<TwoPc>,
    ) {
        if txn < self.horizon || self.prepared.contains_key(&txn) {
            return; // A duplicate of something finished or under way.
        }
        if let Some(d) = self.decided.get(&txn) {
            if !d.commit {
                // The abort overtook the Prepare; say no again.
                self.vote(s, txn, false, Vec::new(), "already aborted".into(), out);
            }
            return;
        }
        match self.try_prepare(s, txn, participants, &ops) {
            Ok((prepared, reads)) => {
                self.prepared.insert(
                    txn,
                    InDoubt {
                        prepared: prepared.clone(),
                        durable: false,
                        since_ms: s.now_ms,
                        last_ask_ms: s.now_ms,
                        asks: 0,
                        recovered: false,
                    },
                );
                if s.cfg.bugs.vote_before_force {
                    self.vote(s, txn, true, reads.clone(), String::new(), out);
                }
                s.wal.append(
                    record::encode(&PartRecord::Yes { txn, prepared }),
                    Some(NodeThen::Part(Then::Voted { txn, reads })),
                );
            }
            Err(why) => {
                // The seed: a participant voting no decides abort and may forget it.
                self.decided.insert(
                    txn,
                    Decided {
                        commit: false,
                        txn_marker: None,
                        durable: false,
                    },
                );
                s.wal.append_lazy(
                    record::encode(&PartRecord::Abort { txn }),
                    Some(NodeThen::Part(Then::NoLogged(txn))),
                );
                self.vote(s, txn, false, Vec::new(), why, out);
                out.record(Event::Decide {
                    txn,
                    decision: Decision::Abort,
                });
            }
        }
    }

    /// Locks and runs the shard's operations; on failure nothing stays locked.
    fn try_prepare(
        &mut self,
        s: &Shell,
        txn: TxnId,
        participants: Vec<NodeId>,
        ops: &[Mop],
    ) -> Result<(Prepared, Reads), String> {
        let remembered = self.decided.len() + self.prepared.len();
        if remembered >= s.cfg.max_remembered_txns {
            return Err(format!(
                "full: {remembered} transactions remembered while the horizon stands still"
            ));
        }
        let wanted = locks::wanted(ops);
        let new_keys = wanted
            .iter()
            .filter(|(k, _)| !self.kv.contains_key(k))
            .count();
        if self.kv.len() + new_keys > s.cfg.max_keys_per_shard {
            return Err(format!("full: the shard holds {} keys", self.kv.len()));
        }
        self.locks
            .acquire(txn, &wanted)
            .map_err(|k| format!("key {k} is locked by another transaction"))?;
        let mut overlay: BTreeMap<Key, Value> = BTreeMap::new();
        let mut reads = Vec::new();
        for op in ops {
            let current = |o: &BTreeMap<Key, Value>, k: Key| o.get(&k).or(self.kv.get(&k)).copied();
            match *op {
                Mop::Read { key } => reads.push((key, current(&overlay, key))),
                Mop::Write { key, value } => {
                    overlay.insert(key, value);
                }
                Mop::Add { key, delta } => {
                    let now = current(&overlay, key).unwrap_or(0);
                    match now.checked_add(delta) {
                        Some(v) if v >= 0 => {
                            overlay.insert(key, v);
                        }
                        _ => {
                            self.locks.release(txn, &wanted);
                            return Err(format!("key {key} would go below zero ({now} + {delta})"));
                        }
                    }
                }
            }
        }
        let prepared = Prepared {
            participants,
            locks: wanted,
            writes: overlay.into_iter().collect(),
        };
        Ok((prepared, reads))
    }

    /// A decision arrived (from the coordinator, or a peer in the termination protocol).
    fn learn(
        &mut self,
        s: &mut Shell,
        txn: TxnId,
        commit: bool,
        txn_marker: Option<SnapshotId>,
        from_coordinator: bool,
        out: &mut Effects<TwoPc>,
    ) {
        if let Some(ind) = self.prepared.remove(&txn) {
            out.record(Event::Decide {
                txn,
                decision: Decision::of(commit),
            });
            self.locks.release(txn, &ind.prepared.locks);
            if commit {
                self.apply(txn, &ind.prepared.writes);
                out.record(Event::Commit { txn });
            }
            self.note_cut(s, txn, commit, txn_marker, &ind.prepared.writes, out);
            self.log_decision(s, txn, commit, txn_marker);
            return;
        }
        if let Some(d) = self.decided.get(&txn) {
            if d.durable && from_coordinator {
                s.send(self.coordinator, Body::Ack { txn }, out);
            }
            return;
        }
        if txn < self.horizon {
            if from_coordinator {
                s.send(self.coordinator, Body::Ack { txn }, out);
            }
            return;
        }
        // Decided before this shard prepared (its Prepare was lost or is late).
        out.record(Event::Decide {
            txn,
            decision: Decision::of(commit),
        });
        self.log_decision(s, txn, commit, txn_marker);
    }

    fn log_decision(
        &mut self,
        s: &mut Shell,
        txn: TxnId,
        commit: bool,
        txn_marker: Option<SnapshotId>,
    ) {
        self.decided.insert(
            txn,
            Decided {
                commit,
                txn_marker,
                durable: false,
            },
        );
        let rec = if commit {
            PartRecord::Commit { txn }
        } else {
            PartRecord::Abort { txn }
        };
        // Only the acknowledgement waits for it, and nothing waits for that: it rides
        // along with the next vote's record or goes at the next tick.
        s.wal.append_lazy(
            record::encode(&rec),
            Some(NodeThen::Part(Then::DecisionLogged { txn, commit })),
        );
    }

    pub fn on_tick(&mut self, s: &mut Shell, out: &mut Effects<TwoPc>) {
        let now = s.now_ms;
        let mut alone = Vec::new();
        let mut ask = Vec::new();
        for (&txn, ind) in self.prepared.iter_mut() {
            if !ind.durable || now.saturating_sub(ind.since_ms) < s.cfg.decision_timeout_ms {
                continue;
            }
            if ind.recovered && s.cfg.bugs.decide_alone {
                alone.push(txn);
                continue;
            }
            if now.saturating_sub(ind.last_ask_ms) >= s.cfg.retry_after_ms(ind.asks) {
                ind.last_ask_ms = now;
                ind.asks = ind.asks.saturating_add(1);
                ask.push((txn, ind.prepared.participants.clone()));
            }
        }
        for txn in alone {
            self.learn(s, txn, false, None, false, out);
        }
        for (txn, participants) in ask {
            // The termination protocol: anybody who knows may answer; only the coordinator
            // may decide a transaction nobody knows (it lost it before deciding).
            let req = Body::DecisionReq {
                txn,
                participants: participants.clone(),
            };
            s.send(self.coordinator, req.clone(), out);
            for p in participants.into_iter().filter(|p| *p != self.id) {
                s.send(p, req.clone(), out);
            }
        }
    }

    fn cut_joined(&mut self, s: &mut Shell, snapshot: SnapshotId, out: &mut Effects<TwoPc>) {
        if self.last_snapshot != snapshot {
            return; // Superseded while its record was being forced.
        }
        out.record(Event::SnapshotStart { snapshot });
        self.cut = Some(Cut {
            snapshot,
            kv: self.kv.clone(),
            active: self.prepared.keys().copied().collect(),
            before: Vec::new(),
            after: Vec::new(),
        });
        self.maybe_finish_cut(s, out);
    }

    /// Puts a transaction that was prepared when the cut started on its side.
    fn note_cut(
        &mut self,
        s: &mut Shell,
        txn: TxnId,
        commit: bool,
        txn_marker: Option<SnapshotId>,
        writes: &[(Key, Value)],
        out: &mut Effects<TwoPc>,
    ) {
        let Some(cut) = &mut self.cut else {
            return;
        };
        if !cut.active.remove(&txn) {
            return;
        }
        if commit {
            if txn_marker == Some(cut.snapshot) {
                cut.after.push(txn);
            } else {
                cut.before.push(txn);
                // Its keys stayed locked since the cut started, so nothing else changed them.
                for &(k, v) in writes {
                    cut.kv.insert(k, v);
                }
            }
        }
        self.maybe_finish_cut(s, out);
    }

    fn maybe_finish_cut(&mut self, s: &mut Shell, out: &mut Effects<TwoPc>) {
        if !self.cut.as_ref().is_some_and(|c| c.active.is_empty()) {
            return;
        }
        let cut = self.cut.take().expect("checked");
        let part = SnapshotPart {
            kv: cut.kv.into_iter().collect(),
            before: cut.before,
            after: cut.after,
        };
        let mut ops = vec![DiskOp::Put {
            name: record::snapshot_blob(cut.snapshot),
            bytes: record::encode(&part),
        }];
        self.finishing = Some((cut.snapshot, part));
        while self.parts.len() >= MAX_PARTS_KEPT {
            let (old, _) = self.parts.pop_first().expect("non-empty");
            ops.push(DiskOp::Delete {
                name: record::snapshot_blob(old),
            });
        }
        s.wal
            .write_after_log(ops, NodeThen::Part(Then::CutFinished(cut.snapshot)), out);
    }
}
