//! Weak voting's safety net: a write set waits in every replica's queue until its delegate's
//! decision is delivered, and blocks everything ordered after it meanwhile. A delegate that
//! crashed, or whose decision was lost with its link to the leader, would block the
//! database forever; so the leader, after `decision_timeout_ticks` of its own ticks,
//! broadcasts an abort. The first decision delivered counts, everywhere alike, and the
//! delegate answers its client from that one, so a late commit decision is harmless.

use super::{Out, Replica};
use crate::certify::certify;
use crate::config::Mode;
use crate::proto::{AbortReason, Broadcast, TxnId};
use std::collections::{BTreeMap, BTreeSet};

/// The leader's clocks: when it first saw each undecided write set, and which it already
/// proposed to abort.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    first_seen: BTreeMap<TxnId, u64>,
    aborting: BTreeSet<TxnId>,
}

impl Timers {
    pub fn clear(&mut self) {
        self.first_seen.clear();
        self.aborting.clear();
    }

    pub fn forget(&mut self, id: TxnId) {
        self.first_seen.remove(&id);
        self.aborting.remove(&id);
    }
}

impl Replica {
    /// The delegate certifies its write set `id`, waiting in the queue, against everything
    /// ordered before it, and broadcasts the decision. If it does not get through, the
    /// delegate sends it again later, or the leader aborts the transaction on a timeout.
    pub(super) fn send_decision(&mut self, id: TxnId, zout: &mut Out) {
        let Some(v) = self
            .db
            .voting()
            .find(|v| v.txn.id == id && v.decision.is_none())
        else {
            return;
        };
        let verdict = certify(self.db.store(), &v.txn, self.cfg.read_sets, |k| {
            self.db.voting_writes_before(id, k)
        });
        let decision = Broadcast::Decision {
            id,
            commit: verdict.is_ok(),
            reason: verdict.err(),
        };
        let _ = self.broadcast(decision, zout);
    }

    /// Every `decision_resend_ticks`: the delegate's decisions again, for its write sets
    /// still undecided.
    pub(super) fn resend_decisions(&mut self, zout: &mut Out) {
        let due = self.ticks % self.cfg.decision_resend_ticks.max(1) == 0;
        if self.cfg.mode != Mode::WeakVoting || !self.is_serving() || !due {
            return;
        }
        let mine: Vec<TxnId> = self
            .db
            .voting()
            .filter(|v| v.decision.is_none() && v.txn.delegate == self.id)
            .map(|v| v.txn.id)
            .collect();
        for id in mine {
            self.send_decision(id, zout);
        }
    }

    /// On each tick at the leader: abort write sets whose delegate stayed silent too long.
    pub(super) fn voting_timeouts(&mut self, zout: &mut Out) {
        if self.cfg.mode != Mode::WeakVoting || !self.zab.is_leading() || !self.is_serving() {
            self.timers.clear();
            return;
        }
        let undecided: BTreeSet<TxnId> = self
            .db
            .voting()
            .filter(|v| v.decision.is_none())
            .map(|v| v.txn.id)
            .collect();
        self.timers
            .first_seen
            .retain(|id, _| undecided.contains(id));
        self.timers.aborting.retain(|id| undecided.contains(id));
        for id in undecided {
            let first = *self.timers.first_seen.entry(id).or_insert(self.ticks);
            let waited = self.ticks.saturating_sub(first);
            if waited >= self.cfg.decision_timeout_ticks && !self.timers.aborting.contains(&id) {
                let abort = Broadcast::Decision {
                    id,
                    commit: false,
                    reason: Some(AbortReason::DelegateSilent),
                };
                if self.broadcast(abort, zout).is_ok() {
                    self.timers.aborting.insert(id);
                }
            }
        }
    }
}
