//! Watches: one-shot change notifications, local to the server a client is connected to
//! (ZooKeeper's `WatchManager`, two of them: `dataWatches` and `childWatches`).
//!
//! Watches are not replicated: a server registers them as it answers reads and fires them
//! as it applies transactions. If the client moves to another server, it carries them
//! there ([`set_watches`](super::set_watches), ZooKeeper's `setWatches` on reconnect).
//!
//! Which read sets which watch (see [`read`](super::read())):
//! - getData and exists set a *data* watch; exists sets it even on a missing node, which
//!   is how a client waits for a node to appear;
//! - getChildren sets a *child* watch.
//!
//! Which event fires which watch ([`Watches::trigger`]):
//! - NodeCreated and NodeDataChanged fire data watches on the path;
//! - NodeDeleted fires data and child watches on the path;
//! - NodeChildrenChanged (on the parent of a created or deleted node) fires child watches.
//!
//! A registration fires at most once and is then gone; a watcher watching a path both ways
//! gets one notification per event. A watcher registering the same watch twice still gets
//! one notification: registrations are sets.

use crate::api::{ErrorCode, EventKind, WatchEvent};
use std::collections::{BTreeMap, BTreeSet};

/// Most watches one watcher may hold, so that one client cannot grow a server's memory
/// without limit (ZooKeeper has no such limit).
pub const MAX_WATCHES_PER_WATCHER: usize = 65_536;

/// The two kinds of registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchType {
    /// Set by getData and exists.
    Data,
    /// Set by getChildren.
    Child,
}

/// A server's watch tables. `W` is the server's handle for whoever gets notified: a
/// connection or session id. Ordered sets throughout, so that the watchers an event fires
/// come out in the same order on every run.
#[derive(Clone, Debug)]
pub struct Watches<W> {
    data: BTreeMap<String, BTreeSet<W>>,
    child: BTreeMap<String, BTreeSet<W>>,
    /// The reverse index, to drop a disconnected watcher's watches without a scan.
    by_watcher: BTreeMap<W, BTreeSet<(WatchType, String)>>,
}

impl<W: Ord + Clone> Default for Watches<W> {
    fn default() -> Self {
        Watches::new()
    }
}

impl<W: Ord + Clone> Watches<W> {
    pub fn new() -> Watches<W> {
        Watches {
            data: BTreeMap::new(),
            child: BTreeMap::new(),
            by_watcher: BTreeMap::new(),
        }
    }

    /// Registers `watcher` for the next change of kind `kind` to `path`. Fails with
    /// `QuotaExceeded` when the watcher holds `MAX_WATCHES_PER_WATCHER` already.
    pub fn add(&mut self, kind: WatchType, path: &str, watcher: W) -> Result<(), ErrorCode> {
        let held = self.by_watcher.entry(watcher.clone()).or_default();
        let key = (kind, path.to_string());
        if held.contains(&key) {
            return Ok(());
        }
        if held.len() >= MAX_WATCHES_PER_WATCHER {
            return Err(ErrorCode::QuotaExceeded);
        }
        held.insert(key);
        let table = self.table_mut(kind);
        table.entry(path.to_string()).or_default().insert(watcher);
        Ok(())
    }

    /// The watchers `event` fires, each once, sorted; their registrations are removed.
    pub fn trigger(&mut self, event: &WatchEvent) -> Vec<W> {
        let kinds: &[WatchType] = match event.kind {
            EventKind::NodeCreated | EventKind::NodeDataChanged => &[WatchType::Data],
            EventKind::NodeChildrenChanged => &[WatchType::Child],
            EventKind::NodeDeleted => &[WatchType::Data, WatchType::Child],
        };
        let mut fired = BTreeSet::new();
        for &kind in kinds {
            let Some(watchers) = self.table_mut(kind).remove(&event.path) else {
                continue;
            };
            for watcher in watchers {
                self.unindex(&watcher, kind, &event.path);
                fired.insert(watcher);
            }
        }
        fired.into_iter().collect()
    }

    /// Drops every watch of `watcher` (its connection closed). Returns how many.
    pub fn remove_watcher(&mut self, watcher: &W) -> usize {
        let Some(held) = self.by_watcher.remove(watcher) else {
            return 0;
        };
        for (kind, path) in &held {
            let table = self.table_mut(*kind);
            let watchers = table.get_mut(path).expect("indexed watch is registered");
            watchers.remove(watcher);
            if watchers.is_empty() {
                table.remove(path);
            }
        }
        held.len()
    }

    pub fn contains(&self, kind: WatchType, path: &str, watcher: &W) -> bool {
        let table = match kind {
            WatchType::Data => &self.data,
            WatchType::Child => &self.child,
        };
        table.get(path).is_some_and(|ws| ws.contains(watcher))
    }

    /// Watches `watcher` holds.
    pub fn count_of(&self, watcher: &W) -> usize {
        self.by_watcher.get(watcher).map_or(0, BTreeSet::len)
    }

    /// Watches held by all watchers.
    pub fn len(&self) -> usize {
        self.by_watcher.values().map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_watcher.is_empty()
    }

    fn table_mut(&mut self, kind: WatchType) -> &mut BTreeMap<String, BTreeSet<W>> {
        match kind {
            WatchType::Data => &mut self.data,
            WatchType::Child => &mut self.child,
        }
    }

    fn unindex(&mut self, watcher: &W, kind: WatchType, path: &str) {
        let held = self
            .by_watcher
            .get_mut(watcher)
            .expect("registered watcher is indexed");
        held.remove(&(kind, path.to_string()));
        if held.is_empty() {
            self.by_watcher.remove(watcher);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(path: &str, kind: EventKind) -> WatchEvent {
        WatchEvent {
            path: path.into(),
            kind,
            zxid: 1,
        }
    }

    #[test]
    fn each_event_fires_its_kind_of_watch_once() {
        let mut w = Watches::new();
        w.add(WatchType::Data, "/a", 1u64).unwrap();
        w.add(WatchType::Child, "/a", 2).unwrap();
        assert_eq!(
            w.trigger(&ev("/a", EventKind::NodeChildrenChanged)),
            vec![2]
        );
        assert_eq!(
            w.trigger(&ev("/a", EventKind::NodeChildrenChanged)),
            Vec::<u64>::new()
        );
        assert_eq!(w.trigger(&ev("/a", EventKind::NodeDataChanged)), vec![1]);
        assert_eq!(
            w.trigger(&ev("/a", EventKind::NodeDataChanged)),
            Vec::<u64>::new()
        );
        assert!(w.is_empty());
    }

    #[test]
    fn created_fires_data_watches_only() {
        let mut w = Watches::new();
        w.add(WatchType::Data, "/a", 1u64).unwrap();
        w.add(WatchType::Child, "/a", 2).unwrap();
        assert_eq!(w.trigger(&ev("/a", EventKind::NodeCreated)), vec![1]);
        assert!(w.contains(WatchType::Child, "/a", &2));
    }

    #[test]
    fn deleted_fires_both_kinds_but_each_watcher_once() {
        let mut w = Watches::new();
        w.add(WatchType::Data, "/a", 1u64).unwrap();
        w.add(WatchType::Child, "/a", 1).unwrap();
        w.add(WatchType::Child, "/a", 3).unwrap();
        w.add(WatchType::Data, "/b", 3).unwrap();
        assert_eq!(w.trigger(&ev("/a", EventKind::NodeDeleted)), vec![1, 3]);
        assert_eq!((w.count_of(&1), w.count_of(&3)), (0, 1));
    }

    #[test]
    fn a_watch_registered_twice_fires_once() {
        let mut w = Watches::new();
        w.add(WatchType::Data, "/a", 1u64).unwrap();
        w.add(WatchType::Data, "/a", 1).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w.trigger(&ev("/a", EventKind::NodeDataChanged)), vec![1]);
    }

    #[test]
    fn a_disconnected_watcher_loses_all_its_watches() {
        let mut w = Watches::new();
        w.add(WatchType::Data, "/a", 1u64).unwrap();
        w.add(WatchType::Child, "/b", 1).unwrap();
        w.add(WatchType::Data, "/a", 2).unwrap();
        assert_eq!(w.remove_watcher(&1), 2);
        assert_eq!(w.remove_watcher(&1), 0);
        assert_eq!(w.trigger(&ev("/a", EventKind::NodeDeleted)), vec![2]);
        assert_eq!(
            w.trigger(&ev("/b", EventKind::NodeDeleted)),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn watches_per_watcher_are_bounded() {
        let mut w = Watches::new();
        for i in 0..MAX_WATCHES_PER_WATCHER {
            w.add(WatchType::Data, &format!("/{i}"), 1u64).unwrap();
        }
        assert_eq!(
            w.add(WatchType::Data, "/x", 1),
            Err(ErrorCode::QuotaExceeded)
        );
        assert_eq!(w.add(WatchType::Data, "/0", 1), Ok(()));
        assert_eq!(w.add(WatchType::Data, "/x", 2), Ok(()));
    }
}
