//! Strict two-phase locking without waiting: a shard locks every key a transaction touches
//! when it prepares and releases them when the decision arrives. A conflict makes the shard
//! vote no at once, so there are no deadlocks to detect and no lock waits to bound.

use crate::proto::{Key, TxnId};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default)]
struct Lock {
    exclusive: Option<TxnId>,
    shared: BTreeSet<TxnId>,
}

#[derive(Clone, Debug, Default)]
pub struct LockTable {
    locks: BTreeMap<Key, Lock>,
}

impl LockTable {
    /// Locks all of `wanted` for `txn` (key, exclusive), or none: the first conflicting key.
    pub fn acquire(&mut self, txn: TxnId, wanted: &[(Key, bool)]) -> Result<(), Key> {
        for &(key, exclusive) in wanted {
            if let Some(l) = self.locks.get(&key) {
                let other_writer = l.exclusive.is_some_and(|t| t != txn);
                let other_readers = l.shared.iter().any(|t| *t != txn);
                if other_writer || (exclusive && other_readers) {
                    return Err(key);
                }
            }
        }
        for &(key, exclusive) in wanted {
            let l = self.locks.entry(key).or_default();
            if exclusive {
                l.exclusive = Some(txn);
            } else {
                l.shared.insert(txn);
            }
        }
        Ok(())
    }

    pub fn release(&mut self, txn: TxnId, held: &[(Key, bool)]) {
        for &(key, _) in held {
            if let Some(l) = self.locks.get_mut(&key) {
                if l.exclusive == Some(txn) {
                    l.exclusive = None;
                }
                l.shared.remove(&txn);
                if l.exclusive.is_none() && l.shared.is_empty() {
                    self.locks.remove(&key);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }
}

/// The locks a shard's operations need: exclusive for writes and adds, shared for reads;
/// a key both read and written is locked exclusively once.
pub fn wanted(ops: &[crate::proto::Mop]) -> Vec<(Key, bool)> {
    let mut m: BTreeMap<Key, bool> = BTreeMap::new();
    for op in ops {
        let ex = !matches!(op, crate::proto::Mop::Read { .. });
        *m.entry(op.key()).or_insert(false) |= ex;
    }
    m.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_writers_exclude_and_failure_takes_nothing() {
        let mut t = LockTable::default();
        t.acquire(1, &[(10, false), (11, true)]).unwrap();
        t.acquire(2, &[(10, false)]).unwrap();
        assert_eq!(t.acquire(3, &[(12, true), (10, true)]), Err(10));
        // Nothing of the failed attempt stays locked.
        t.acquire(4, &[(12, true)]).unwrap();
        assert_eq!(t.acquire(5, &[(11, false)]), Err(11));
        t.release(1, &[(10, false), (11, true)]);
        t.release(2, &[(10, false)]);
        t.acquire(5, &[(11, false), (10, true)]).unwrap();
        t.release(5, &[(11, false), (10, true)]);
        t.release(4, &[(12, true)]);
        assert!(t.is_empty());
    }
}
