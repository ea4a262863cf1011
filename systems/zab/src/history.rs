//! The accepted history: every transaction this node has logged, in zxid order, plus the
//! snapshot that covers what was compacted away.
//!
//! Zab's safety rests on one property of histories: within an epoch, every log holds a
//! prefix of the one sequence that epoch's leader proposed. So two logs agree up to a point
//! that can be found from each epoch's last zxid alone; `common_prefix` is that search.
//! Followers send a `Summary` when they connect, and the leader picks DIFF, TRUNC+DIFF or
//! SNAP from it (ZooKeeper's LearnerHandler makes the same choice from less information,
//! and has to reload its database after a truncation that went too far).

use super::{epoch_of, Zxid};
use serde::{Deserialize, Serialize};

/// Upper bound of the epochs a summary lists; a follower whose log spans more gets a SNAP.
pub const MAX_SUMMARY_EPOCHS: usize = 256;

/// One logged transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<T> {
    pub zxid: Zxid,
    pub txn: T,
}

/// What a follower tells a leader about its log when it connects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Everything up to here is committed (it is in this node's snapshot or was applied), so
    /// every leader's history holds it too.
    pub committed: Zxid,
    /// For each epoch with entries after `committed`, ascending: the last zxid of that epoch.
    pub epochs: Vec<Zxid>,
    /// The epochs list was cut at `MAX_SUMMARY_EPOCHS`.
    pub truncated: bool,
}

impl Summary {
    pub fn last_zxid(&self) -> Zxid {
        self.epochs.last().copied().unwrap_or(self.committed)
    }
}

/// The in-memory view of the log: `entries[i]` sits at log position `first_pos + i`.
#[derive(Clone, Debug)]
pub struct History<T> {
    /// The zxid just before the first entry: what the snapshot (or nothing, at 0) covers.
    pub base: Zxid,
    pub first_pos: u64,
    pub entries: Vec<Entry<T>>,
}

impl<T: Clone> History<T> {
    pub fn new(base: Zxid, first_pos: u64, entries: Vec<Entry<T>>) -> Self {
        debug_assert!(is_increasing(base, &entries));
        History {
            base,
            first_pos,
            entries,
        }
    }

    pub fn last_zxid(&self) -> Zxid {
        self.entries.last().map_or(self.base, |e| e.zxid)
    }

    pub fn end_pos(&self) -> u64 {
        self.first_pos + self.entries.len() as u64
    }

    pub fn push(&mut self, entry: Entry<T>) {
        assert!(
            entry.zxid > self.last_zxid(),
            "zxids must increase: {:#x} after {:#x}",
            entry.zxid,
            self.last_zxid()
        );
        self.entries.push(entry);
    }

    /// The index in `entries` of the first entry with zxid above `zxid`.
    pub fn index_after(&self, zxid: Zxid) -> usize {
        self.entries.partition_point(|e| e.zxid <= zxid)
    }

    /// The log position just after the entries up to `zxid`.
    pub fn pos_after(&self, zxid: Zxid) -> u64 {
        self.first_pos + self.index_after(zxid) as u64
    }

    pub fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.base || self.entries.binary_search_by_key(&zxid, |e| e.zxid).is_ok()
    }

    /// Entries with zxid above `zxid`.
    pub fn after(&self, zxid: Zxid) -> &[Entry<T>] {
        &self.entries[self.index_after(zxid)..]
    }

    /// Drops entries above `zxid`; returns the log length to keep.
    pub fn truncate_after(&mut self, zxid: Zxid) -> u64 {
        let keep = self.index_after(zxid);
        self.entries.truncate(keep);
        self.end_pos()
    }

    /// Forgets entries up to `zxid` (a snapshot covers them); returns the new first position.
    pub fn compact_through(&mut self, zxid: Zxid) -> u64 {
        let drop = self.index_after(zxid);
        if drop > 0 {
            self.base = self.entries[drop - 1].zxid;
            self.entries.drain(..drop);
            self.first_pos += drop as u64;
        }
        self.first_pos
    }

    /// Forgets everything and starts again after a snapshot at `zxid`.
    pub fn reset(&mut self, zxid: Zxid) -> u64 {
        self.first_pos = self.end_pos();
        self.entries.clear();
        self.base = zxid;
        self.first_pos
    }

    /// The summary of everything after `committed`.
    pub fn summary(&self, committed: Zxid) -> Summary {
        let mut epochs: Vec<Zxid> = Vec::new();
        for e in self.after(committed) {
            match epochs.last_mut() {
                Some(last) if epoch_of(*last) == epoch_of(e.zxid) => *last = e.zxid,
                _ => epochs.push(e.zxid),
            }
        }
        let truncated = epochs.len() > MAX_SUMMARY_EPOCHS;
        epochs.truncate(MAX_SUMMARY_EPOCHS);
        Summary {
            committed,
            epochs,
            truncated,
        }
    }

    /// The last zxid this history shares with the follower that sent `summary`, or `None`
    /// when the shared point lies before this log's start (or cannot be known) and only a
    /// snapshot can bring the follower up.
    pub fn common_prefix(&self, summary: &Summary) -> Option<Zxid> {
        if summary.truncated || summary.committed < self.base || !self.contains(summary.committed) {
            // Either the follower's committed prefix predates this log, or the two disagree
            // about what was committed (only a planted bug makes that possible).
            return None;
        }
        let mut point = summary.committed;
        if point > self.last_zxid() {
            return None; // The follower claims commits this leader lacks: never share a log.
        }
        for &f_last in &summary.epochs {
            let epoch = epoch_of(f_last);
            let next = self.after(point).first().map(|e| e.zxid);
            let Some(next) = next.filter(|&n| epoch_of(n) == epoch) else {
                break;
            };
            debug_assert!(next > point);
            let l_last = self.last_in_epoch(epoch);
            point = f_last.min(l_last);
            if f_last != l_last {
                break;
            }
        }
        Some(point)
    }

    fn last_in_epoch(&self, epoch: u32) -> Zxid {
        let end = self.entries.partition_point(|e| epoch_of(e.zxid) <= epoch);
        assert!(end > 0, "asked for an epoch the log lacks");
        self.entries[end - 1].zxid
    }
}

fn is_increasing<T>(base: Zxid, entries: &[Entry<T>]) -> bool {
    let mut prev = base;
    entries.iter().all(|e| {
        let ok = e.zxid > prev;
        prev = e.zxid;
        ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zxid;

    fn hist(zxids: &[(u32, u32)]) -> History<()> {
        let entries = zxids
            .iter()
            .map(|&(e, c)| Entry {
                zxid: zxid(e, c),
                txn: (),
            })
            .collect();
        History::new(0, 0, entries)
    }

    #[test]
    fn a_follower_holding_a_prefix_shares_all_of_it() {
        let leader = hist(&[(1, 1), (1, 2), (2, 1), (2, 2)]);
        let follower = hist(&[(1, 1), (1, 2), (2, 1)]);
        let s = follower.summary(0);
        assert_eq!(s.epochs, vec![zxid(1, 2), zxid(2, 1)]);
        assert_eq!(leader.common_prefix(&s), Some(zxid(2, 1)));
    }

    #[test]
    fn an_uncommitted_tail_of_an_old_epoch_is_cut() {
        let leader = hist(&[(1, 1), (1, 2), (3, 1)]);
        let follower = hist(&[(1, 1), (1, 2), (1, 3), (1, 4)]);
        assert_eq!(leader.common_prefix(&follower.summary(0)), Some(zxid(1, 2)));
    }

    #[test]
    fn a_follower_that_skipped_an_epoch_the_leader_has_diverges_before_it() {
        // The follower took (3,1) from a leader of epoch 3 that never had (2,1); the new
        // leader has (2,1) and never saw epoch 3. Only (1,1) is shared: the leader's
        // last zxid at or below the follower's last, (2,1), is not the answer.
        let leader = hist(&[(1, 1), (2, 1), (4, 1)]);
        let follower = hist(&[(1, 1), (3, 1)]);
        assert_eq!(leader.common_prefix(&follower.summary(0)), Some(zxid(1, 1)));
    }

    #[test]
    fn a_follower_whose_commits_predate_the_leaders_log_needs_a_snapshot() {
        let mut leader = hist(&[(1, 1), (1, 2), (1, 3)]);
        leader.compact_through(zxid(1, 2));
        let follower = hist(&[(1, 1)]);
        assert_eq!(leader.common_prefix(&follower.summary(0)), None);
        assert_eq!(
            leader.common_prefix(&follower.summary(zxid(1, 2))),
            Some(zxid(1, 2))
        );
    }

    #[test]
    fn positions_follow_truncation_and_compaction() {
        let mut h = hist(&[(1, 1), (1, 2), (1, 3)]);
        assert_eq!(h.truncate_after(zxid(1, 2)), 2);
        assert_eq!(h.compact_through(zxid(1, 1)), 1);
        assert_eq!((h.base, h.first_pos, h.end_pos()), (zxid(1, 1), 1, 2));
        assert!(h.contains(zxid(1, 1)) && h.contains(zxid(1, 2)) && !h.contains(zxid(1, 3)));
        assert_eq!(h.reset(zxid(2, 5)), 2);
        assert_eq!(h.last_zxid(), zxid(2, 5));
    }
}
