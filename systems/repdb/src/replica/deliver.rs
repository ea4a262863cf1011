//! What a replica does with each broadcast the total order delivers: the heart of every
//! mode. Everything here reads only the delivered message and the replicated [`Db`], so all
//! replicas do the same thing at the same point of the order, except where a planted bug or
//! lazy replication says otherwise.
//!
//! [`Db`]: crate::db::Db

use super::{malformed, Out, Replica};
use crate::certify::certify;
use crate::exec::{self, LatestView};
use crate::proto::{AbortReason, Broadcast, Certify, Mop, Response, TxnId};
use machine::{Effects, NodeId};
use zab::Zxid;

/// What a delivery means for the transaction's client: committed (with the ops to answer,
/// when the delivery brings them) or aborted.
type Outcome = Result<Option<Vec<Mop>>, AbortReason>;

/// The odds (one in this many) that the planted nondeterministic-certification bug makes a
/// replica abort a transaction every other replica commits.
const LOCAL_ABORT_ONE_IN: u64 = 8;

impl Replica {
    pub(super) fn deliver(
        &mut self,
        zxid: Zxid,
        b: Broadcast,
        zout: &mut Out,
        out: &mut Effects<Self>,
    ) {
        self.applied_zxid = zxid;
        if self.broken.is_some() {
            return;
        }
        match b {
            Broadcast::Certify(c) => self.deliver_certify(c, out),
            Broadcast::Execute { id, delegate, ops } => {
                if let Some(outcome) = self.first_delivery(id) {
                    return self.resolve(id, delegate, outcome, out);
                }
                let outcome = match malformed(&ops, self.cfg.limits.max_mops) {
                    Some(problem) => Err(AbortReason::Malformed(problem)),
                    None => {
                        let oldest = self.delegate.oldest_snapshot();
                        exec::execute(&ops, &LatestView(self.db.store()), &self.cfg.limits)
                            .and_then(|ex| self.db.commit(id, &ex.writes, oldest).map(|()| ex.ops))
                            .map(Some)
                    }
                };
                self.resolve(id, delegate, outcome, out);
            }
            Broadcast::Vote(c) => self.deliver_vote(c, zout, out),
            Broadcast::Decision { id, commit, reason } => {
                let decision = if commit {
                    Ok(())
                } else {
                    Err(reason.unwrap_or(AbortReason::DelegateSilent))
                };
                self.db.decide(id, decision);
                self.apply_decided(out);
            }
            Broadcast::Apply {
                id,
                delegate,
                writes,
                ops,
            } => {
                if let Some(outcome) = self.first_delivery(id) {
                    return self.resolve(id, delegate, outcome, out);
                }
                let oldest = self.delegate.oldest_snapshot();
                let outcome = self.db.commit(id, &writes, oldest).map(|()| Some(ops));
                self.resolve(id, delegate, outcome, out);
                self.overlay.committed_through(zxid);
            }
            Broadcast::Lazy { id, writes, .. } => {
                // The origin applied it when it committed; others apply it on arrival, on
                // top of whatever they committed meanwhile.
                if !self.db.seen(id) {
                    self.db.remember(id);
                    let oldest = self.delegate.oldest_snapshot();
                    let _ = self.db.commit(id, &writes, oldest);
                }
            }
        }
    }

    /// `None` for a transaction delivered the first time (now remembered); an abort for a
    /// duplicate id, which every replica refuses alike.
    fn first_delivery(&mut self, id: TxnId) -> Option<Outcome> {
        if self.db.seen(id) {
            return Some(Err(AbortReason::DuplicateId));
        }
        self.db.remember(id);
        None
    }

    fn deliver_certify(&mut self, c: Certify, out: &mut Effects<Self>) {
        if let Some(outcome) = self.first_delivery(c.id) {
            return self.resolve(c.id, c.delegate, outcome, out);
        }
        if c.delegate == self.id && self.early.remove(&c.id) {
            // Planted bug apply-before-delivery: applied already, delivery taken as a
            // formality, certification skipped.
            return self.resolve(c.id, c.delegate, Ok(None), out);
        }
        let mut verdict = certify(self.db.store(), &c, self.cfg.read_sets, |_| false);
        if verdict.is_ok()
            && self.cfg.bugs.nondeterministic_certification
            && self.draw(LOCAL_ABORT_ONE_IN) == 0
        {
            verdict = Err(AbortReason::LocalAbort);
        }
        let oldest = self.delegate.oldest_snapshot();
        let outcome = verdict.and_then(|()| self.db.commit(c.id, &c.writes, oldest));
        self.resolve(c.id, c.delegate, outcome.map(|()| None), out);
    }

    /// Weak voting's first phase: the write set joins the queue; its delegate (this replica,
    /// or none after a crash lost its memory: the state here suffices) certifies it against
    /// everything ordered before it and broadcasts the decision.
    fn deliver_vote(&mut self, c: Certify, zout: &mut Out, out: &mut Effects<Self>) {
        if let Some(outcome) = self.first_delivery(c.id) {
            return self.resolve(c.id, c.delegate, outcome, out);
        }
        if self.db.voting_is_full() {
            return self.resolve(c.id, c.delegate, Err(AbortReason::QueueFull), out);
        }
        let mine = c.delegate == self.id;
        let id = c.id;
        self.db.push_vote(c);
        if mine {
            self.send_decision(id, zout);
        }
    }

    /// Applies the voting queue's head while it is decided.
    fn apply_decided(&mut self, out: &mut Effects<Self>) {
        while let Some(v) = self.db.pop_decided() {
            let (id, delegate) = (v.txn.id, v.txn.delegate);
            self.timers.forget(id);
            let outcome = match v.decision {
                Some(Ok(())) if delegate == self.id && self.early.remove(&id) => Ok(()),
                Some(Ok(())) => {
                    let oldest = self.delegate.oldest_snapshot();
                    self.db.commit(id, &v.txn.writes, oldest)
                }
                Some(Err(reason)) => Err(reason),
                None => unreachable!("pop_decided returns decided write sets"),
            };
            self.resolve(id, delegate, outcome.map(|()| None), out);
        }
    }

    /// Answers the client of `id` if this replica is its delegate and still has it.
    fn resolve(&mut self, id: TxnId, delegate: NodeId, outcome: Outcome, out: &mut Effects<Self>) {
        if delegate != self.id {
            return;
        }
        let Some(p) = self.delegate.take_in_flight(id) else {
            return;
        };
        let resp = match outcome {
            Ok(ops) => {
                let executed = match p.stage {
                    super::Stage::InFlight { ops } => ops,
                    super::Stage::Executing { .. } => None,
                };
                let ops = ops.or(executed).unwrap_or(p.ops);
                Response::Committed {
                    id,
                    replica: self.id,
                    ops,
                }
            }
            Err(reason) => Response::Aborted {
                id,
                replica: self.id,
                reason,
            },
        };
        out.reply(p.client, resp);
    }
}
