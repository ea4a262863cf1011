//! A small pool of authenticated sessions to one node.
//!
//! Why a pool and not one session behind a mutex: libssh2 sessions are blocking, and a
//! session is locked while any of its channels waits, so one session serialises every call
//! on the node; a slow command (a 60 s `wait-for-port`, say) would then stall the nemesis and
//! every client. Why not one session per call: the handshake and authentication cost several
//! round trips, and sshd's `MaxStartups` throttles bursts of new connections. So each call
//! leases a session to itself: an idle one if there is one, else a new one up to the cap,
//! else it waits for one to come back.

use super::SshError;
use ssh2::Session;
use std::sync::{Condvar, Mutex, MutexGuard};

pub(super) struct Pool {
    cap: usize,
    state: Mutex<State>,
    /// Signalled whenever a session returns or a slot frees.
    freed: Condvar,
}

struct State {
    idle: Vec<Session>,
    /// Sessions in existence or being connected (idle + leased + connecting).
    open: usize,
}

/// A session leased to one caller. Dropped, it is discarded (freeing its slot); [`keep`]
/// returns it to the pool instead.
///
/// [`keep`]: Lease::keep
pub(super) struct Lease<'a> {
    pool: &'a Pool,
    session: Option<Session>,
    reused: bool,
}

impl Pool {
    pub(super) fn new(cap: usize) -> Pool {
        Pool {
            cap,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panicking holder: every update is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leases an idle session, or one from `connect` while under the cap, else waits.
    /// `fresh` skips idle sessions (and closes one if that is what frees a slot): used after
    /// a pooled session was found dead.
    pub(super) fn lease(
        &self,
        fresh: bool,
        connect: impl FnOnce() -> Result<Session, SshError>,
    ) -> Result<Lease<'_>, SshError> {
        let mut state = self.lock();
        loop {
            if !fresh {
                if let Some(session) = state.idle.pop() {
                    return Ok(self.lease_of(session, true));
                }
            }
            if state.open < self.cap {
                break;
            }
            if fresh && state.idle.pop().is_some() {
                state.open -= 1;
                break;
            }
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.open += 1;
        drop(state);
        // Connect outside the lock: it takes round trips, and may take retries.
        match connect() {
            Ok(session) => Ok(self.lease_of(session, false)),
            Err(e) => {
                self.release_slot();
                Err(e)
            }
        }
    }

    fn lease_of(&self, session: Session, reused: bool) -> Lease<'_> {
        Lease {
            pool: self,
            session: Some(session),
            reused,
        }
    }

    /// Closes every idle session (leased ones are discarded as they come back dead).
    pub(super) fn discard_idle(&self) {
        let dead: Vec<Session> = {
            let mut state = self.lock();
            state.open -= state.idle.len();
            std::mem::take(&mut state.idle)
        };
        self.freed.notify_all();
        // Freed outside the lock: freeing a session may touch the network.
        drop(dead);
    }

    fn release_slot(&self) {
        self.lock().open -= 1;
        self.freed.notify_one();
    }
}

impl Lease<'_> {
    pub(super) fn session(&self) -> &Session {
        self.session
            .as_ref()
            .expect("a lease holds its session until dropped")
    }

    /// Whether the session was pooled before (and so may have died while idle).
    pub(super) fn reused(&self) -> bool {
        self.reused
    }

    /// Returns the session to the pool for the next caller.
    pub(super) fn keep(mut self) {
        if let Some(session) = self.session.take() {
            self.pool.lock().idle.push(session);
            self.pool.freed.notify_one();
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // Freed before the slot is, so the pool never holds more than `cap` connections.
            drop(session);
            self.pool.release_slot();
        }
    }
}
