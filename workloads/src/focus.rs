//! Where a workload's fate hangs right now, for faults aimed there: the clients say which
//! node the lock holder depends on, and the nemesis (`--nemesis-targets holder`) pauses or
//! kills that node rather than one drawn at random.
//!
//! The faults that break a lock's mutual exclusion are narrow: the holder's own server must
//! stall past the holder's lease while the rest of the service carries on. Drawn at random,
//! a pause hits it a third of the time on three nodes, and a run often shows nothing; aimed,
//! every pause that can break the lock does. The schedule stays seeded; only the node a
//! fault lands on follows the clients, as a Jepsen nemesis that asks the test's state does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Workers that believe they hold the lock, a handle shared by every client of a run and
/// the nemesis. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Focus {
    inner: Arc<Mutex<Holders>>,
}

#[derive(Debug, Default)]
struct Holders {
    /// Worker -> (when it acquired, the node its lock session lives on).
    by_worker: BTreeMap<u32, (u64, SocketAddr)>,
    acquisitions: u64,
}

impl Focus {
    /// Records what worker `worker` believes after an operation: that it holds the lock
    /// through the server at `node`, or (None) that it does not.
    pub fn believes(&self, worker: u32, node: Option<SocketAddr>) {
        let mut h = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match node {
            Some(node) => {
                if h.by_worker.get(&worker).is_some_and(|(_, n)| *n == node) {
                    return; // Still the same holding.
                }
                h.acquisitions += 1;
                let at = h.acquisitions;
                h.by_worker.insert(worker, (at, node));
            }
            None => {
                h.by_worker.remove(&worker);
            }
        }
    }

    /// The node of the newest holder: a stale holder may still believe it holds, but the
    /// one that acquired last is the one whose lease matters now.
    pub fn holder_node(&self) -> Option<SocketAddr> {
        let h = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        h.by_worker
            .values()
            .max_by_key(|(at, _)| *at)
            .map(|(_, node)| *node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_newest_holder_is_the_focus_until_it_lets_go() {
        let f = Focus::default();
        assert_eq!(f.holder_node(), None);
        f.believes(3, Some(addr(1)));
        f.believes(5, Some(addr(2))); // 3 went stale: 5 acquired since.
        f.believes(3, Some(addr(1))); // 3 still believes; that is no new acquisition.
        assert_eq!(f.holder_node(), Some(addr(2)));
        f.believes(5, None);
        assert_eq!(f.holder_node(), Some(addr(1)));
        f.believes(3, None);
        assert_eq!(f.holder_node(), None);
        let shared = f.clone();
        shared.believes(1, Some(addr(9)));
        assert_eq!(f.holder_node(), Some(addr(9)), "clones share one view");
    }
}
