//! One-shot watches on the client side.
//!
//! The server keeps at most one registration per connection, path and kind, and fires it
//! once; the client fans that one notification out to every local [`Watch`] on the same
//! path and kind. Registrations are made when the read that sets them is answered, by the
//! task that reads the connection, and events are dispatched by that same task in the
//! order frames arrive. So by the time a caller holds a reply showing a changed value,
//! the watch that change fired has already resolved: ZooKeeper's "a client sees the
//! notification before the new value".
//!
//! Server-side watches belong to a connection, but a session outlives its connections.
//! When one breaks, the client keeps its watches pending and, once the session resumes on
//! another server, carries them there with `SetWatches` and the newest zxid it had seen
//! (ZooKeeper's client does the same). That server fires at once the watches whose
//! change the client missed and registers the rest, before it answers anything else the
//! client sent after. A watch fails only with its session (`SessionExpired`, `Closed`),
//! or with `ConnectionLoss` if the new server refuses to take it back.

use super::error::{CoordError, ErrorKind};
use super::options::MAX_WATCHES;
use coord::api::{EventKind, SetWatchesRequest, WatchEvent, Zxid, MAX_SET_WATCHES_PATHS};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

/// What a watch resolves to: the event, or why it can no longer fire.
pub type WatchResult = Result<WatchEvent, CoordError>;

/// Which reads set which watch: getData and exists set a data watch, getChildren a
/// child watch (as the server's `WatchType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchKind {
    Data,
    Child,
}

impl WatchKind {
    /// Whether `event` fires a watch of this kind on the event's path.
    fn fired_by(self, event: EventKind) -> bool {
        match self {
            WatchKind::Data => matches!(
                event,
                EventKind::NodeCreated | EventKind::NodeDataChanged | EventKind::NodeDeleted
            ),
            WatchKind::Child => {
                matches!(
                    event,
                    EventKind::NodeChildrenChanged | EventKind::NodeDeleted
                )
            }
        }
    }
}

/// A pending one-shot notification: a future resolving once, with the event or an error
/// (`ConnectionLoss` if the connection holding it broke, `SessionExpired`, `Closed`).
#[derive(Debug)]
pub struct Watch {
    path: String,
    rx: oneshot::Receiver<WatchResult>,
}

impl Watch {
    pub(crate) fn new(path: &str) -> (Watch, oneshot::Sender<WatchResult>) {
        let (tx, rx) = oneshot::channel();
        let watch = Watch {
            path: path.to_string(),
            rx,
        };
        (watch, tx)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The outcome if the watch has resolved already, without waiting.
    pub fn try_fired(&mut self) -> Option<WatchResult> {
        match self.rx.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(self.dropped())),
        }
    }

    /// Waits at most `timeout` for the watch to resolve; `None` if it has not.
    pub async fn wait(self, timeout: Duration) -> Option<WatchResult> {
        tokio::time::timeout(timeout, self).await.ok()
    }

    fn dropped(&self) -> CoordError {
        CoordError::new(format!("watch {}", self.path), None, ErrorKind::Closed)
    }
}

impl Future for Watch {
    type Output = WatchResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WatchResult> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.dropped())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The client's registrations, by kind and path.
#[derive(Debug, Default)]
pub(crate) struct WatchTable {
    by_path: HashMap<(WatchKind, String), Vec<oneshot::Sender<WatchResult>>>,
    /// Data watches whose node did not exist when last set (by exists): on another server
    /// they wait for a create, not for a change.
    absent: HashSet<String>,
    count: usize,
}

impl WatchTable {
    /// Adds a registration the server has just confirmed. Beyond [`MAX_WATCHES`] live
    /// ones the watch resolves at once with `QuotaExceeded`, as the server would refuse it.
    /// `absent`: set by exists on a node that did not exist.
    pub fn register(
        &mut self,
        kind: WatchKind,
        path: String,
        absent: bool,
        tx: oneshot::Sender<WatchResult>,
        server: SocketAddr,
    ) {
        if self.count >= MAX_WATCHES {
            self.prune();
        }
        if self.count >= MAX_WATCHES {
            let err = ErrorKind::Server(coord::api::ErrorCode::QuotaExceeded);
            let _ = tx.send(Err(CoordError::new(
                format!("watch {path}"),
                Some(server),
                err,
            )));
            return;
        }
        if kind == WatchKind::Data {
            if absent {
                self.absent.insert(path.clone());
            } else {
                self.absent.remove(&path);
            }
        }
        self.by_path.entry((kind, path)).or_default().push(tx);
        self.count += 1;
    }

    /// What to carry to the next server, in requests of at most [`MAX_SET_WATCHES_PATHS`]
    /// paths: every watch still wanted, and `relative_zxid`, the newest zxid seen.
    pub fn carry(&mut self, relative_zxid: Zxid) -> Vec<SetWatchesRequest> {
        self.prune();
        let mut all: Vec<(WatchKind, &String)> =
            self.by_path.keys().map(|(k, p)| (*k, p)).collect();
        all.sort();
        let mut out = Vec::new();
        for chunk in all.chunks(MAX_SET_WATCHES_PATHS) {
            let mut req = SetWatchesRequest {
                relative_zxid,
                ..SetWatchesRequest::default()
            };
            for &(kind, path) in chunk {
                let list = match kind {
                    WatchKind::Child => &mut req.child,
                    WatchKind::Data if self.absent.contains(path) => &mut req.exist,
                    WatchKind::Data => &mut req.data,
                };
                list.push(path.clone());
            }
            out.push(req);
        }
        out
    }

    /// Forgets the registrations whose callers dropped their [`Watch`].
    fn prune(&mut self) {
        self.by_path.retain(|_, txs| {
            txs.retain(|tx| !tx.is_closed());
            !txs.is_empty()
        });
        let by_path = &self.by_path;
        self.absent
            .retain(|p| by_path.contains_key(&(WatchKind::Data, p.clone())));
        self.count = self.by_path.values().map(Vec::len).sum();
    }

    /// Resolves every registration `event` fires.
    pub fn fire(&mut self, event: &WatchEvent) {
        for kind in [WatchKind::Data, WatchKind::Child] {
            if !kind.fired_by(event.kind) {
                continue;
            }
            if let Some(txs) = self.by_path.remove(&(kind, event.path.clone())) {
                if kind == WatchKind::Data {
                    self.absent.remove(&event.path);
                }
                self.count -= txs.len();
                for tx in txs {
                    let _ = tx.send(Ok(event.clone()));
                }
            }
        }
    }

    /// Resolves every registration with a failure made by `error` from its path.
    pub fn fail_all(&mut self, error: impl Fn(&str) -> CoordError) {
        for ((_, path), txs) in self.by_path.drain() {
            for tx in txs {
                let _ = tx.send(Err(error(&path)));
            }
        }
        self.absent.clear();
        self.count = 0;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(path: &str, kind: EventKind) -> WatchEvent {
        WatchEvent {
            path: path.into(),
            kind,
            zxid: 9,
        }
    }

    #[test]
    fn events_fire_the_kinds_the_server_fires_once_and_fan_out() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut table = WatchTable::default();
        let (mut d1, tx) = Watch::new("/a");
        table.register(WatchKind::Data, "/a".into(), false, tx, addr);
        let (mut d2, tx) = Watch::new("/a");
        table.register(WatchKind::Data, "/a".into(), false, tx, addr);
        let (mut c, tx) = Watch::new("/a");
        table.register(WatchKind::Child, "/a".into(), false, tx, addr);
        assert_eq!(table.len(), 3);

        table.fire(&event("/a", EventKind::NodeChildrenChanged));
        assert!(
            d1.try_fired().is_none(),
            "a child event leaves data watches"
        );
        assert_eq!(
            c.try_fired().unwrap().unwrap().kind,
            EventKind::NodeChildrenChanged
        );
        table.fire(&event("/a", EventKind::NodeDataChanged));
        assert!(d1.try_fired().unwrap().is_ok() && d2.try_fired().unwrap().is_ok());
        assert_eq!(table.len(), 0, "fired registrations are gone");
    }

    #[test]
    fn held_watches_are_carried_by_kind_in_bounded_requests() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut table = WatchTable::default();
        let mut kept = Vec::new();
        let reg = |table: &mut WatchTable, kind, path: &str, absent| {
            let (w, tx) = Watch::new(path);
            table.register(kind, path.into(), absent, tx, addr);
            w
        };
        kept.push(reg(&mut table, WatchKind::Data, "/d", false));
        kept.push(reg(&mut table, WatchKind::Data, "/e", true));
        kept.push(reg(&mut table, WatchKind::Child, "/d", false));
        drop(reg(&mut table, WatchKind::Data, "/dropped", false));
        let reqs = table.carry(42);
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        assert_eq!(r.relative_zxid, 42);
        assert_eq!(
            (r.data.clone(), r.exist.clone()),
            (vec!["/d".to_string()], vec!["/e".to_string()])
        );
        assert_eq!(
            r.child,
            vec!["/d".to_string()],
            "a watch no caller waits for is not carried"
        );
        // Once the node exists and is watched by getData, it waits for a change.
        kept.push(reg(&mut table, WatchKind::Data, "/e", false));
        assert_eq!(
            table.carry(43)[0].data,
            vec!["/d".to_string(), "/e".to_string()]
        );
        for i in 0..MAX_SET_WATCHES_PATHS {
            kept.push(reg(&mut table, WatchKind::Child, &format!("/c{i}"), false));
        }
        let reqs = table.carry(44);
        assert_eq!(
            reqs.iter().map(|r| r.len()).collect::<Vec<_>>(),
            [MAX_SET_WATCHES_PATHS, 3]
        );
    }

    #[test]
    fn failing_all_fails_every_pending_watch() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut table = WatchTable::default();
        let (mut w, tx) = Watch::new("/b");
        table.register(WatchKind::Child, "/b".into(), false, tx, addr);
        table.fail_all(|p| CoordError::new(format!("watch {p}"), None, ErrorKind::ConnectionLoss));
        let err = w.try_fired().unwrap().unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConnectionLoss);
        assert_eq!(err.op, "watch /b");
    }
}
