//! The multi-version key-value store every replica holds in full.
//!
//! Each commit installs new versions of the keys it wrote, all stamped with the database's
//! new version number, so "the state at version `v`" is the same on every replica that has
//! applied `v` transactions of the total order. A delegate executes a transaction on such a
//! snapshot while later commits are applied around it; the store keeps the versions those
//! running snapshots can still see and garbage-collects the rest (below the oldest running
//! snapshot), with a hard cap per key, past which a snapshot that needs a dropped version
//! gets [`TooOld`] rather than a wrong value.
//!
//! Certification needs only the newest version of each key (when was it last written?),
//! which is never collected; that is also all a Zab snapshot of the store holds.

use crate::proto::{Key, Val, Version};
use std::collections::{BTreeMap, VecDeque};

/// A snapshot older than the versions kept of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooOld {
    pub key: Key,
}

/// The versions kept of one key, oldest first, versions strictly ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Versions {
    /// Snapshots at or above this see a correct value; below it versions were dropped.
    floor: Version,
    list: VecDeque<(Version, Val)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    keys: BTreeMap<Key, Versions>,
    max_versions: usize,
    /// The size of the newest state: list elements, a register counting one.
    elements: usize,
}

/// What a value counts toward the database's size.
pub fn elements_of(val: &Val) -> usize {
    match val {
        Val::Int(_) => 1,
        Val::List(l) => l.len(),
    }
}

impl Store {
    pub fn new(max_versions: usize) -> Store {
        assert!(
            max_versions >= 1,
            "a store keeps at least the newest version"
        );
        Store {
            keys: BTreeMap::new(),
            max_versions,
            elements: 0,
        }
    }

    /// A store holding only these newest versions (a restored snapshot): older snapshots
    /// cannot be read from it, and none are running.
    pub fn from_latest(
        max_versions: usize,
        entries: impl IntoIterator<Item = (Key, Version, Val)>,
    ) -> Store {
        let mut store = Store::new(max_versions);
        for (key, version, val) in entries {
            store.elements += elements_of(&val);
            store.keys.insert(
                key,
                Versions {
                    floor: version,
                    list: VecDeque::from([(version, val)]),
                },
            );
        }
        store
    }

    /// Keys that have ever been written.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The size of the newest state (see [`elements_of`]).
    pub fn elements(&self) -> usize {
        self.elements
    }

    pub fn contains(&self, key: Key) -> bool {
        self.keys.contains_key(&key)
    }

    /// The newest value of `key`.
    pub fn latest(&self, key: Key) -> Option<&Val> {
        self.keys
            .get(&key)
            .and_then(|v| v.list.back())
            .map(|(_, x)| x)
    }

    /// The version that last wrote `key` (0: never written).
    pub fn last_write(&self, key: Key) -> Version {
        self.keys
            .get(&key)
            .and_then(|v| v.list.back())
            .map_or(0, |(version, _)| *version)
    }

    /// `key` as a snapshot at `snapshot` sees it.
    pub fn read_at(&self, key: Key, snapshot: Version) -> Result<Option<&Val>, TooOld> {
        let Some(versions) = self.keys.get(&key) else {
            return Ok(None);
        };
        if snapshot < versions.floor {
            return Err(TooOld { key });
        }
        let visible = versions.list.partition_point(|(v, _)| *v <= snapshot);
        Ok(visible.checked_sub(1).map(|i| &versions.list[i].1))
    }

    /// Installs `val` as `key`'s value from `version` on, then drops versions no snapshot at
    /// or above `oldest_snapshot` can see, and any beyond the per-key cap.
    pub fn install(&mut self, key: Key, version: Version, val: Val, oldest_snapshot: Version) {
        let versions = self.keys.entry(key).or_insert(Versions {
            floor: 0,
            list: VecDeque::new(),
        });
        assert!(
            versions.list.back().is_none_or(|(v, _)| *v < version),
            "versions of key {key} must ascend: {version} after {:?}",
            versions.list.back().map(|(v, _)| v)
        );
        let before = versions.list.back().map_or(0, |(_, v)| elements_of(v));
        self.elements = self.elements - before + elements_of(&val);
        versions.list.push_back((version, val));
        let mut dropped = false;
        // The oldest version is invisible to every running snapshot once the next one is
        // at or below the oldest of them.
        while versions.list.len() >= 2 && versions.list[1].0 <= oldest_snapshot {
            versions.list.pop_front();
            dropped = true;
        }
        while versions.list.len() > self.max_versions {
            versions.list.pop_front();
            dropped = true;
        }
        if dropped {
            versions.floor = versions.list[0].0;
        }
    }

    /// Every key's newest version and value, in key order.
    pub fn latest_entries(&self) -> impl Iterator<Item = (Key, Version, &Val)> + '_ {
        self.keys.iter().filter_map(|(k, v)| {
            let (version, val) = v.list.back()?;
            Some((*k, *version, val))
        })
    }

    /// Newest values of keys from `from` up.
    pub fn latest_from(&self, from: Key) -> impl Iterator<Item = (Key, &Val)> + '_ {
        self.keys
            .range(from..)
            .filter_map(|(k, v)| v.list.back().map(|(_, val)| (*k, val)))
    }

    /// Versions kept of `key` (for tests of the collection).
    pub fn versions_kept(&self, key: Key) -> usize {
        self.keys.get(&key).map_or(0, |v| v.list.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_read_the_version_visible_at_them() {
        let mut s = Store::new(8);
        s.install(1, 3, Val::Int(30), 0);
        s.install(1, 5, Val::Int(50), 0);
        assert_eq!(s.read_at(1, 2), Ok(None));
        assert_eq!(s.read_at(1, 4), Ok(Some(&Val::Int(30))));
        assert_eq!(s.read_at(1, 9), Ok(Some(&Val::Int(50))));
        assert_eq!(s.read_at(2, 9), Ok(None));
        assert_eq!(s.last_write(1), 5);
        assert_eq!(s.last_write(2), 0);
    }

    #[test]
    fn versions_below_the_oldest_snapshot_are_collected() {
        let mut s = Store::new(8);
        s.install(1, 1, Val::Int(1), 0);
        s.install(1, 2, Val::Int(2), 1);
        assert_eq!(s.versions_kept(1), 2, "snapshot 1 still sees version 1");
        s.install(1, 3, Val::Int(3), 3);
        assert_eq!(s.versions_kept(1), 1);
        assert_eq!(s.read_at(1, 2), Err(TooOld { key: 1 }));
        assert_eq!(s.read_at(1, 3), Ok(Some(&Val::Int(3))));
    }

    #[test]
    fn the_cap_drops_versions_a_snapshot_needs_and_says_so() {
        let mut s = Store::new(2);
        for v in 1..=4 {
            s.install(7, v, Val::Int(v as i64), 0);
        }
        assert_eq!(s.versions_kept(7), 2);
        assert_eq!(s.read_at(7, 1), Err(TooOld { key: 7 }));
        assert_eq!(s.read_at(7, 3), Ok(Some(&Val::Int(3))));
    }

    #[test]
    fn a_restored_store_holds_newest_versions_only() {
        let s = Store::from_latest(4, [(1, 5, Val::List(vec![1, 2]))]);
        assert_eq!(s.latest(1), Some(&Val::List(vec![1, 2])));
        assert_eq!(s.read_at(1, 4), Err(TooOld { key: 1 }));
        assert_eq!(s.read_at(1, 5).unwrap(), Some(&Val::List(vec![1, 2])));
    }
}
