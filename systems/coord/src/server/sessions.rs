//! The leader's session tracker: when each live session expires unless its client is heard
//! from. Followers report their clients' sessions; the leader alone decides expiry, and
//! expires a session by proposing its close, so every replica drops it (and its
//! ephemerals) at the same zxid.

use crate::api::SessionId;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct Sessions {
    /// Deadline and timeout of each live session.
    live: BTreeMap<SessionId, (u64, u64)>,
    /// Sessions whose close is proposed; not expired twice.
    closing: BTreeSet<SessionId>,
}

impl Sessions {
    /// A new leader gives every session a full timeout, as ZooKeeper does: clients had no
    /// leader to talk to during the election.
    pub fn reset(&mut self, sessions: impl Iterator<Item = (SessionId, u64)>, now_ms: u64) {
        self.live = sessions
            .map(|(s, timeout_ms)| (s, (now_ms + timeout_ms, timeout_ms)))
            .collect();
        self.closing.clear();
    }

    pub fn opened(&mut self, session: SessionId, timeout_ms: u64, now_ms: u64) {
        self.live.insert(session, (now_ms + timeout_ms, timeout_ms));
    }

    pub fn closed(&mut self, session: SessionId) {
        self.live.remove(&session);
        self.closing.remove(&session);
    }

    pub fn touch(&mut self, session: SessionId, now_ms: u64) {
        if let Some((deadline, timeout_ms)) = self.live.get_mut(&session) {
            *deadline = (*deadline).max(now_ms + *timeout_ms);
        }
    }

    /// Sessions past their deadline and not yet being closed; they are marked closing.
    pub fn expire(&mut self, now_ms: u64) -> Vec<SessionId> {
        let due: Vec<SessionId> = self
            .live
            .iter()
            .filter(|(s, (deadline, _))| *deadline <= now_ms && !self.closing.contains(s))
            .map(|(s, _)| *s)
            .collect();
        self.closing.extend(due.iter().copied());
        due
    }

    /// A proposed close failed to happen (leadership lost before it committed, say).
    pub fn retry(&mut self, session: SessionId) {
        self.closing.remove(&session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_once_unless_touched() {
        let mut s = Sessions::default();
        s.opened(1, 1_000, 0);
        s.opened(2, 1_000, 0);
        s.touch(2, 900);
        assert_eq!(s.expire(1_000), vec![1]);
        assert_eq!(
            s.expire(1_500),
            Vec::<SessionId>::new(),
            "1 is closing already"
        );
        assert_eq!(s.expire(1_900), vec![2]);
        s.closed(1);
        s.reset([(7, 500)].into_iter(), 10_000);
        assert_eq!(s.expire(10_499), Vec::<SessionId>::new());
        assert_eq!(s.expire(10_500), vec![7]);
    }
}
