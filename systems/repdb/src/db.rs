//! The replicated state: what every replica holds identically once it has delivered the same
//! prefix of the total order, and what a Zab snapshot carries.
//!
//! - the multi-version [`Store`] and the database version (commits so far);
//! - the **apply log**: ids of committed transactions in the order this replica applied
//!   them, the evidence `checkers::one_copy` holds against the client history;
//! - the ids already delivered, so a duplicate (a reused id) is refused identically
//!   everywhere instead of being applied twice;
//! - weak voting's queue: write sets in delivery order, each waiting for its decision.
//!
//! Everything here is a function of the delivered sequence, which is what makes replicas
//! converge; the one exception is what planted bugs and lazy replication do to it, on
//! purpose.

use crate::config::Limits;
use crate::exec;
use crate::proto::{AbortReason, Certify, Key, TxnId, Val, Version, WriteSet};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};

/// A write set waiting in delivery order for its delegate's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voting {
    pub txn: Certify,
    pub decision: Option<Result<(), AbortReason>>,
}

/// Whether `v` is not aborted and writes `key`.
fn may_write(v: &Voting, key: Key) -> bool {
    !matches!(v.decision, Some(Err(_))) && v.txn.writes.iter().any(|(k, _)| *k == key)
}

/// Ids delivered recently, oldest forgotten first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Remembered {
    set: BTreeSet<TxnId>,
    order: VecDeque<TxnId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Db {
    store: Store,
    version: Version,
    /// Position of `log[0]` in the whole apply log.
    log_start: u64,
    log: VecDeque<TxnId>,
    seen: Remembered,
    voting: VecDeque<Voting>,
    limits: Limits,
}

/// The snapshot's wire form.
#[derive(Serialize, Deserialize)]
struct Image {
    version: Version,
    entries: Vec<(Key, Version, Val)>,
    log_start: u64,
    log: Vec<TxnId>,
    seen: Vec<TxnId>,
    voting: Vec<Voting>,
}

impl Db {
    pub fn new(limits: Limits) -> Db {
        Db {
            store: Store::new(limits.max_versions_per_key),
            version: 0,
            log_start: 0,
            log: VecDeque::new(),
            seen: Remembered::default(),
            voting: VecDeque::new(),
            limits,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Apply-log positions held: `start..end`.
    pub fn log_bounds(&self) -> (u64, u64) {
        (self.log_start, self.log_start + self.log.len() as u64)
    }

    /// Up to `max` apply-log ids from position `from` (brought within the positions kept).
    pub fn log_page(&self, from: u64, max: usize) -> (u64, Vec<TxnId>) {
        let (start, end) = self.log_bounds();
        let from = from.clamp(start, end);
        let skip = usize::try_from(from - self.log_start).unwrap_or(usize::MAX);
        (
            from,
            self.log.iter().skip(skip).take(max).copied().collect(),
        )
    }

    /// The whole apply log kept, in order.
    pub fn applied(&self) -> impl Iterator<Item = TxnId> + '_ {
        self.log.iter().copied()
    }

    pub fn seen(&self, id: TxnId) -> bool {
        self.seen.set.contains(&id)
    }

    /// Notes a delivered id; the oldest are forgotten past the limit.
    pub fn remember(&mut self, id: TxnId) {
        if self.seen.set.insert(id) {
            self.seen.order.push_back(id);
        }
        while self.seen.order.len() > self.limits.max_remembered_ids {
            let old = self.seen.order.pop_front().expect("non-empty");
            self.seen.set.remove(&old);
        }
    }

    /// Commits `id` with `writes` at the next version, or aborts it (leaving everything as
    /// it was) when the write set cannot apply to the current state.
    pub fn commit(
        &mut self,
        id: TxnId,
        writes: &WriteSet,
        oldest_snapshot: Version,
    ) -> Result<(), AbortReason> {
        let values = exec::apply(&self.store, writes, &self.limits)?;
        self.version += 1;
        for (key, val) in values {
            self.store
                .install(key, self.version, val, oldest_snapshot.min(self.version));
        }
        self.log.push_back(id);
        if self.log.len() > self.limits.max_apply_log {
            self.log.pop_front();
            self.log_start += 1;
        }
        Ok(())
    }

    /// Whether a write set waiting in the voting queue, not aborted, writes `key`.
    pub fn voting_writes(&self, key: Key) -> bool {
        self.voting.iter().any(|v| may_write(v, key))
    }

    /// Whether a write set ordered before `id` in the voting queue, not aborted, writes
    /// `key`. Nothing ordered after an undecided write set is applied, so the store plus
    /// these are exactly what was ordered before it: certifying against them gives a valid
    /// decision at any time until one is delivered.
    pub fn voting_writes_before(&self, id: TxnId, key: Key) -> bool {
        self.voting
            .iter()
            .take_while(|v| v.txn.id != id)
            .any(|v| may_write(v, key))
    }

    pub fn voting_is_full(&self) -> bool {
        self.voting.len() >= self.limits.max_voting_queue
    }

    /// Queues a delivered write set behind those waiting.
    pub fn push_vote(&mut self, txn: Certify) {
        assert!(!self.voting_is_full(), "callers check the queue's limit");
        self.voting.push_back(Voting {
            txn,
            decision: None,
        });
    }

    /// Records the first decision delivered for `id`; false when it has one or is unknown.
    pub fn decide(&mut self, id: TxnId, decision: Result<(), AbortReason>) -> bool {
        match self.voting.iter_mut().find(|v| v.txn.id == id) {
            Some(v) if v.decision.is_none() => {
                v.decision = Some(decision);
                true
            }
            _ => false,
        }
    }

    /// The head of the voting queue, once it is decided.
    pub fn pop_decided(&mut self) -> Option<Voting> {
        if self.voting.front()?.decision.is_some() {
            self.voting.pop_front()
        } else {
            None
        }
    }

    pub fn voting(&self) -> impl Iterator<Item = &Voting> + '_ {
        self.voting.iter()
    }

    /// The snapshot Zab keeps and sends: newest versions only (no snapshot is running on a
    /// replica that restores one).
    pub fn encode(&self) -> Vec<u8> {
        let image = Image {
            version: self.version,
            entries: self
                .store
                .latest_entries()
                .map(|(k, v, val)| (k, v, val.clone()))
                .collect(),
            log_start: self.log_start,
            log: self.log.iter().copied().collect(),
            seen: self.seen.order.iter().copied().collect(),
            voting: self.voting.iter().cloned().collect(),
        };
        postcard::to_stdvec(&image).expect("serializing to memory cannot fail")
    }

    /// Restores a snapshot (empty bytes: the initial state); refuses one that is malformed.
    pub fn decode(bytes: &[u8], limits: Limits) -> Result<Db, String> {
        if bytes.is_empty() {
            return Ok(Db::new(limits));
        }
        let image: Image = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        if !image.entries.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err("keys are not in ascending order".into());
        }
        if let Some((k, v, _)) = image.entries.iter().find(|(_, v, _)| *v > image.version) {
            return Err(format!(
                "key {k} has version {v}, above the database's {}",
                image.version
            ));
        }
        if let Some(v) = image
            .voting
            .iter()
            .find(|v| !exec::well_formed(&v.txn.writes, &limits))
        {
            return Err(format!("waiting write set {} is malformed", v.txn.id));
        }
        let mut seen = Remembered::default();
        for id in image.seen {
            if seen.set.insert(id) {
                seen.order.push_back(id);
            }
        }
        Ok(Db {
            store: Store::from_latest(limits.max_versions_per_key, image.entries),
            version: image.version,
            log_start: image.log_start,
            log: image.log.into(),
            seen,
            voting: image.voting.into(),
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Update;

    #[test]
    fn commits_version_the_store_and_log_in_order_and_aborts_change_nothing() {
        let mut db = Db::new(Limits::default());
        db.commit(7, &vec![(1, Update::Append(vec![1]))], 0)
            .unwrap();
        db.commit(9, &vec![(1, Update::Append(vec![2]))], 0)
            .unwrap();
        let before = db.clone();
        assert_eq!(
            db.commit(11, &vec![(1, Update::Set(3))], 0),
            Err(AbortReason::WrongType { key: 1 })
        );
        assert_eq!(db, before);
        assert_eq!(db.version(), 2);
        assert_eq!(db.applied().collect::<Vec<_>>(), vec![7, 9]);
        assert_eq!(db.store().latest(1), Some(&Val::List(vec![1, 2])));
    }

    #[test]
    fn a_snapshot_round_trips_and_garbage_is_refused() {
        let mut db = Db::new(Limits::default());
        db.commit(1, &vec![(4, Update::Set(5))], 0).unwrap();
        db.remember(1);
        db.push_vote(Certify {
            id: 2,
            delegate: 3,
            snapshot: 1,
            reads: vec![4],
            writes: vec![(4, Update::Set(6))],
        });
        let back = Db::decode(&db.encode(), Limits::default()).unwrap();
        assert_eq!(back.encode(), db.encode());
        assert!(back.seen(1) && back.voting_writes(4));
        assert!(Db::decode(&[0xff; 9], Limits::default()).is_err());
        assert_eq!(Db::decode(&[], Limits::default()).unwrap().version(), 0);
    }

    #[test]
    fn the_apply_log_and_remembered_ids_are_bounded() {
        let limits = Limits {
            max_apply_log: 3,
            max_remembered_ids: 2,
            ..Limits::default()
        };
        let mut db = Db::new(limits);
        for id in 1..=5 {
            db.commit(id, &vec![], 0).unwrap();
            db.remember(id);
        }
        assert_eq!(db.log_bounds(), (2, 5));
        assert_eq!(db.log_page(0, 10), (2, vec![3, 4, 5]));
        assert_eq!(db.log_page(4, 10), (4, vec![5]));
        assert_eq!(db.log_page(9, 10), (5, vec![]));
        assert!(!db.seen(3) && db.seen(4) && db.seen(5));
    }

    #[test]
    fn the_voting_queue_applies_only_a_decided_head() {
        let mut db = Db::new(Limits::default());
        let vote = |id| Certify {
            id,
            delegate: 1,
            snapshot: 0,
            reads: vec![],
            writes: vec![(id, Update::Set(1))],
        };
        db.push_vote(vote(1));
        db.push_vote(vote(2));
        assert!(db.decide(2, Ok(())));
        assert!(db.pop_decided().is_none(), "1 is undecided");
        assert!(db.decide(1, Err(AbortReason::DelegateSilent)));
        assert!(!db.decide(1, Ok(())), "the first decision counts");
        assert_eq!(db.pop_decided().unwrap().txn.id, 1);
        assert!(!db.voting_writes(1) && db.voting_writes(2));
        assert_eq!(db.pop_decided().unwrap().txn.id, 2);
    }
}
