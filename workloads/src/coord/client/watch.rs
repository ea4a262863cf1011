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
//! Server-side watches belong to a connection. When it breaks, the client fails every
//! pending watch with `ConnectionLoss` rather than pretend it still holds: the caller
//! reads again (setting a new watch) and compares with what it saw.

use super::error::{CoordError, ErrorKind};
use super::options::MAX_WATCHES;
use coord::api::{EventKind, WatchEvent};
use std::collections::HashMap;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    count: usize,
}

impl WatchTable {
    /// Adds a registration the server has just confirmed. Beyond [`MAX_WATCHES`] live
    /// ones the watch resolves at once with `QuotaExceeded`, as the server would refuse it.
    pub fn register(
        &mut self,
        kind: WatchKind,
        path: String,
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
        self.by_path.entry((kind, path)).or_default().push(tx);
        self.count += 1;
    }

    /// Forgets the registrations whose callers dropped their [`Watch`].
    fn prune(&mut self) {
        self.by_path.retain(|_, txs| {
            txs.retain(|tx| !tx.is_closed());
            !txs.is_empty()
        });
        self.count = self.by_path.values().map(Vec::len).sum();
    }

    /// Resolves every registration `event` fires.
    pub fn fire(&mut self, event: &WatchEvent) {
        for kind in [WatchKind::Data, WatchKind::Child] {
            if !kind.fired_by(event.kind) {
                continue;
            }
            if let Some(txs) = self.by_path.remove(&(kind, event.path.clone())) {
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
        table.register(WatchKind::Data, "/a".into(), tx, addr);
        let (mut d2, tx) = Watch::new("/a");
        table.register(WatchKind::Data, "/a".into(), tx, addr);
        let (mut c, tx) = Watch::new("/a");
        table.register(WatchKind::Child, "/a".into(), tx, addr);
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
    fn a_lost_connection_fails_every_pending_watch() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut table = WatchTable::default();
        let (mut w, tx) = Watch::new("/b");
        table.register(WatchKind::Child, "/b".into(), tx, addr);
        table.fail_all(|p| CoordError::new(format!("watch {p}"), None, ErrorKind::ConnectionLoss));
        let err = w.try_fired().unwrap().unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConnectionLoss);
        assert_eq!(err.op, "watch /b");
    }
}
