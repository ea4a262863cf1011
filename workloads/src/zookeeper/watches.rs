//! The watches a client has set, kept across connections of one session.
//!
//! A server remembers a watch only on the connection that set it. After a reconnection the
//! client tells the new server which paths it watches (`SetWatches`), so the table lives
//! with the session, not the connection. As in ZooKeeper's client, a watch is registered
//! when the reply that set it arrives, and there are three kinds, because `SetWatches`
//! and the notifications tell them apart: data watches (getData, or exists on a node that
//! exists), exist watches (exists on a node that does not) and child watches.

use super::proto::{EventType, KeeperState, SetWatches, WatchedEvent};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::oneshot;

/// Most watches one client may have outstanding; setting more fails the call.
pub const MAX_WATCHES: usize = 65_536;

/// Largest `SetWatches` frame; more paths go in further frames, as ZooKeeper's client
/// splits them so that no frame nears `jute.maxbuffer`.
const SET_WATCHES_CHUNK_BYTES: usize = 128 * 1024;

/// Which table a watch goes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchKind {
    Data,
    Exist,
    Child,
}

/// A watch set by a read: resolves once, when the node changes or the session ends.
#[derive(Debug)]
pub struct Watch {
    pub(crate) rx: oneshot::Receiver<WatchedEvent>,
    pub(crate) path: String,
}

/// Why waiting on a watch ended without a notification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("no notification for {path} within {timeout_ms} ms")]
    Timeout { path: String, timeout_ms: u64 },
    #[error("the watch on {path} was dropped (the client was closed or the read failed)")]
    Dropped { path: String },
}

impl Watch {
    /// The notification, or an error after `timeout`. A session that expires or closes
    /// resolves every watch with an event of state `Expired` or `Closed`.
    pub async fn wait(self, timeout: Duration) -> Result<WatchedEvent, WatchError> {
        let path = self.path;
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(_)) => Err(WatchError::Dropped { path }),
            Err(_) => Err(WatchError::Timeout {
                path,
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// The notification if it has arrived.
    pub fn try_take(&mut self) -> Option<WatchedEvent> {
        self.rx.try_recv().ok()
    }

    /// The notification, or why none will come (the client was dropped); `None` while one
    /// still may.
    pub fn try_resolved(&mut self) -> Option<Result<WatchedEvent, WatchError>> {
        match self.rx.try_recv() {
            Ok(event) => Some(Ok(event)),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(WatchError::Dropped {
                path: self.path.clone(),
            })),
        }
    }
}

type Waiters = HashMap<String, Vec<oneshot::Sender<WatchedEvent>>>;

#[derive(Debug, Default)]
pub struct Watches {
    data: Waiters,
    exist: Waiters,
    child: Waiters,
    count: usize,
}

impl Watches {
    pub fn is_full(&self) -> bool {
        self.count >= MAX_WATCHES
    }

    pub fn add(&mut self, kind: WatchKind, path: &str, tx: oneshot::Sender<WatchedEvent>) {
        if self.is_full() {
            return; // dropping tx tells the caller's Watch it was not kept
        }
        let table = match kind {
            WatchKind::Data => &mut self.data,
            WatchKind::Exist => &mut self.exist,
            WatchKind::Child => &mut self.child,
        };
        table.entry(path.to_string()).or_default().push(tx);
        self.count += 1;
    }

    /// Fires the watches a notification triggers, by ZooKeeper's rules: created and
    /// data-changed fire data and exist watches, deleted fires all three, children-changed
    /// fires child watches.
    pub fn fire(&mut self, event: &WatchedEvent) {
        let (data, exist, child) = match event.kind {
            EventType::NodeCreated | EventType::NodeDataChanged => (true, true, false),
            EventType::NodeDeleted => (true, true, true),
            EventType::NodeChildrenChanged => (false, false, true),
            EventType::None | EventType::Other(_) => return,
        };
        let mut fired = Vec::new();
        for (on, table) in [
            (data, &mut self.data),
            (exist, &mut self.exist),
            (child, &mut self.child),
        ] {
            if on {
                fired.extend(table.remove(&event.path).unwrap_or_default());
            }
        }
        self.count -= fired.len();
        for tx in fired {
            let _ = tx.send(event.clone());
        }
    }

    /// Resolves every watch with a session event (`Expired`, `Closed`): no notification
    /// will come for them.
    pub fn end_session(&mut self, state: KeeperState) {
        let tables = [
            std::mem::take(&mut self.data),
            std::mem::take(&mut self.exist),
            std::mem::take(&mut self.child),
        ];
        self.count = 0;
        for (path, txs) in tables.into_iter().flatten() {
            for tx in txs {
                let _ = tx.send(WatchedEvent {
                    kind: EventType::None,
                    state,
                    path: path.clone(),
                    zxid: -1,
                });
            }
        }
    }

    /// The `SetWatches` requests that re-register every watch on a new server, as of
    /// `relative_zxid`. Watches whose caller stopped waiting are left out.
    pub fn set_watches(&mut self, relative_zxid: i64) -> Vec<SetWatches> {
        for table in [&mut self.data, &mut self.exist, &mut self.child] {
            table.retain(|_, txs| {
                txs.retain(|tx| !tx.is_closed());
                !txs.is_empty()
            });
        }
        self.count = [&self.data, &self.exist, &self.child]
            .iter()
            .flat_map(|t| t.values())
            .map(Vec::len)
            .sum();
        let mut chunks = vec![SetWatches {
            relative_zxid,
            ..SetWatches::default()
        }];
        let mut bytes = 0;
        for (kind, table) in [
            (WatchKind::Data, &self.data),
            (WatchKind::Exist, &self.exist),
            (WatchKind::Child, &self.child),
        ] {
            for path in table.keys() {
                if bytes + path.len() + 4 > SET_WATCHES_CHUNK_BYTES {
                    chunks.push(SetWatches {
                        relative_zxid,
                        ..SetWatches::default()
                    });
                    bytes = 0;
                }
                bytes += path.len() + 4;
                let chunk = chunks.last_mut().expect("never empty");
                match kind {
                    WatchKind::Data => chunk.data.push(path.clone()),
                    WatchKind::Exist => chunk.exist.push(path.clone()),
                    WatchKind::Child => chunk.child.push(path.clone()),
                }
            }
        }
        chunks.retain(|c| !(c.data.is_empty() && c.exist.is_empty() && c.child.is_empty()));
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventType, path: &str) -> WatchedEvent {
        WatchedEvent {
            kind,
            state: KeeperState::SyncConnected,
            path: path.into(),
            zxid: 5,
        }
    }

    #[test]
    fn notifications_fire_the_kinds_zookeeper_fires_once() {
        let mut w = Watches::default();
        let (dtx, mut drx) = oneshot::channel();
        let (ctx, mut crx) = oneshot::channel();
        w.add(WatchKind::Data, "/a", dtx);
        w.add(WatchKind::Child, "/a", ctx);
        w.fire(&event(EventType::NodeDataChanged, "/a"));
        assert_eq!(drx.try_recv().unwrap().kind, EventType::NodeDataChanged);
        assert!(
            crx.try_recv().is_err(),
            "a child watch ignores data changes"
        );
        w.fire(&event(EventType::NodeDeleted, "/a"));
        assert_eq!(crx.try_recv().unwrap().kind, EventType::NodeDeleted);
        assert_eq!(w.count, 0);
    }

    #[test]
    fn set_watches_lists_live_watches_by_kind_in_bounded_chunks() {
        let mut w = Watches::default();
        let mut keep = Vec::new();
        for i in 0..2000 {
            let (tx, rx) = oneshot::channel();
            w.add(WatchKind::Exist, &format!("/{i:0>100}"), tx);
            keep.push(rx);
        }
        let (tx, rx) = oneshot::channel();
        w.add(WatchKind::Data, "/gone", tx);
        drop(rx);
        let chunks = w.set_watches(9);
        assert!(
            chunks.len() > 1,
            "{} bytes of paths need several",
            2000 * 104
        );
        assert!(chunks
            .iter()
            .all(|c| c.frame().len() < 2 * SET_WATCHES_CHUNK_BYTES));
        assert_eq!(chunks.iter().map(|c| c.exist.len()).sum::<usize>(), 2000);
        assert!(chunks
            .iter()
            .all(|c| c.data.is_empty() && c.relative_zxid == 9));
    }
}
