//! The delegate's side of a transaction: what this replica executes or waits on for its own
//! clients, and the one answer each gets.
//!
//! A transaction is *executing* from its arrival until its read phase ends (`exec_ticks`
//! later), holding the snapshot it reads; the store keeps the versions such snapshots see.
//! It is then *in flight* until the total order delivers it (or its decision) here. Losing
//! the leader makes an in-flight transaction's outcome unknown to this replica: it may yet
//! commit through another. An executing one was never broadcast, so it certainly aborted.

use crate::proto::{Mop, TxnId, Version};
use machine::ClientId;
use std::collections::{BTreeMap, VecDeque};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Reading its snapshot until tick `due_tick`.
    Executing { snapshot: Version, due_tick: u64 },
    /// Broadcast, or forwarded to the primary; `ops` are its executed ops when the delegate
    /// executed it (certification, weak voting), else the delivery brings them.
    InFlight { ops: Option<Vec<Mop>> },
}

#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub client: ClientId,
    pub ops: Vec<Mop>,
    pub stage: Stage,
}

/// This replica's clients' transactions in progress.
#[derive(Debug, Default)]
pub(crate) struct Delegate {
    pub pending: BTreeMap<TxnId, Pending>,
    /// Executing transactions in arrival order, which is also the order they are due.
    pub executing: VecDeque<TxnId>,
}

impl Delegate {
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn contains(&self, id: TxnId) -> bool {
        self.pending.contains_key(&id)
    }

    pub fn start(&mut self, id: TxnId, client: ClientId, ops: Vec<Mop>, stage: Stage) {
        if matches!(stage, Stage::Executing { .. }) {
            self.executing.push_back(id);
        }
        let old = self.pending.insert(id, Pending { client, ops, stage });
        debug_assert!(old.is_none(), "transaction {id} started twice");
    }

    /// The next executing transaction due by `tick`, taken out of the queue (it stays
    /// pending: the caller moves it on or removes it).
    pub fn next_due(&mut self, tick: u64) -> Option<(TxnId, Version)> {
        while let Some(&id) = self.executing.front() {
            match self.pending.get(&id).map(|p| &p.stage) {
                Some(Stage::Executing { snapshot, due_tick }) => {
                    if *due_tick > tick {
                        return None;
                    }
                    self.executing.pop_front();
                    return Some((id, *snapshot));
                }
                // Its client left, or it was resolved: forget it.
                _ => {
                    self.executing.pop_front();
                }
            }
        }
        None
    }

    /// The oldest snapshot an executing transaction holds; `Version::MAX` when none does.
    pub fn oldest_snapshot(&self) -> Version {
        self.pending
            .values()
            .filter_map(|p| match p.stage {
                Stage::Executing { snapshot, .. } => Some(snapshot),
                Stage::InFlight { .. } => None,
            })
            .min()
            .unwrap_or(Version::MAX)
    }

    /// The in-flight transaction `id`, taken out.
    pub fn take_in_flight(&mut self, id: TxnId) -> Option<Pending> {
        match self.pending.get(&id)?.stage {
            Stage::InFlight { .. } => self.pending.remove(&id),
            Stage::Executing { .. } => None,
        }
    }

    /// Forgets a client's transactions (it disconnected): nobody is left to answer. Those in
    /// flight may still commit; executing ones never start.
    pub fn drop_client(&mut self, client: ClientId) {
        self.pending.retain(|_, p| p.client != client);
        let pending = &self.pending;
        self.executing.retain(|id| pending.contains_key(id));
        debug_assert!(self.executing.len() <= self.pending.len());
    }

    /// Everything pending, taken out (the replica stopped serving).
    pub fn take_all(&mut self) -> BTreeMap<TxnId, Pending> {
        self.executing.clear();
        std::mem::take(&mut self.pending)
    }
}
