//! Certification: deciding, from the transaction and the database alone, whether a
//! transaction executed on a snapshot may commit at its place in the total order.
//!
//! Every replica delivers the same transactions in the same order and so holds the same
//! database when it certifies a given one: if the decision depends on nothing else, every
//! replica decides alike and no commit protocol is needed (Kemme & Alonso's point). The two
//! rules:
//! - **Read-set validation** (serializability): commit iff no transaction that committed
//!   after the snapshot wrote a key this one read. Its reads are then still current at its
//!   commit point, and its writes are installed there, so it behaves as if it ran at that
//!   point alone: the delivery order is a serial order.
//! - **First-committer-wins** (snapshot isolation): commit iff no transaction that committed
//!   after the snapshot wrote a key this one writes. Reads are not checked, so write skew
//!   passes: the history is snapshot-isolated, not serializable.
//!
//! Weak voting certifies the same way at the delegate alone, and must also count write sets
//! delivered before this one that are still waiting for their decision (`also_written`).

use crate::proto::{AbortReason, Certify, Key};
use crate::store::Store;

/// Certifies `c` against `store`; `also_written` says whether a transaction ordered before
/// `c` but not yet applied may write a key.
pub fn certify(
    store: &Store,
    c: &Certify,
    read_sets: bool,
    also_written: impl Fn(Key) -> bool,
) -> Result<(), AbortReason> {
    let overwritten = |key: Key| store.last_write(key) > c.snapshot || also_written(key);
    if read_sets {
        if let Some(&key) = c.reads.iter().find(|&&k| overwritten(k)) {
            return Err(AbortReason::ReadConflict { key });
        }
    } else if let Some(key) = c.writes.iter().map(|(k, _)| *k).find(|&k| overwritten(k)) {
        return Err(AbortReason::WriteConflict { key });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Update, Val};

    fn txn(snapshot: u64, reads: Vec<Key>, writes: Vec<Key>) -> Certify {
        Certify {
            id: 1,
            delegate: 1,
            snapshot,
            reads,
            writes: writes.into_iter().map(|k| (k, Update::Set(0))).collect(),
        }
    }

    #[test]
    fn read_sets_catch_stale_reads_and_first_committer_wins_catches_write_conflicts() {
        let mut s = Store::new(4);
        s.install(1, 3, Val::Int(3), 0);
        // Read key 1 at snapshot 2, but version 3 overwrote it.
        let stale_read = txn(2, vec![1], vec![2]);
        assert_eq!(
            certify(&s, &stale_read, true, |_| false),
            Err(AbortReason::ReadConflict { key: 1 })
        );
        // Without read sets this is write skew's shape, and it passes.
        assert_eq!(certify(&s, &stale_read, false, |_| false), Ok(()));
        let blind = txn(2, vec![], vec![1]);
        assert_eq!(certify(&s, &blind, true, |_| false), Ok(()));
        assert_eq!(
            certify(&s, &blind, false, |_| false),
            Err(AbortReason::WriteConflict { key: 1 })
        );
        assert_eq!(
            certify(&s, &txn(3, vec![1], vec![1]), true, |_| false),
            Ok(())
        );
        assert_eq!(
            certify(&s, &txn(3, vec![2], vec![]), true, |k| k == 2),
            Err(AbortReason::ReadConflict { key: 2 })
        );
    }
}
