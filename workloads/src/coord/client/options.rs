//! How a client opens and keeps its session, and the bounds on what it holds.

use std::time::Duration;

/// Most requests one connection has sent and not yet seen answered. The server closes a
/// connection with more than its own limit (1 000) pending; staying well below it keeps
/// a busy client from being thrown off.
pub const MAX_IN_FLIGHT: usize = 512;

/// Most watch registrations one client holds, the server's per-connection limit.
pub const MAX_WATCHES: usize = 65_536;

/// Most servers a client may be given.
pub const MAX_SERVERS: usize = 64;

/// Pause between two rounds of connection attempts through every server, doubling from
/// the first to the last while no server takes the session (an election is under way).
pub const MIN_BACKOFF_MS: u64 = 20;
pub const MAX_BACKOFF_MS: u64 = 500;

/// What [`CoordClient::connect`](super::CoordClient::connect) is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// The session timeout asked of the server; it clamps it into its own range and the
    /// client uses what it answers. Pings go out at a third of it, and a connection silent
    /// for two thirds of it is abandoned for another server, so that the session is
    /// resumed elsewhere before the leader expires it.
    pub session_timeout_ms: u64,
    /// How long `connect` may try to open the session, through every server, and how long
    /// one reconnection attempt to one server may take.
    pub connect_timeout_ms: u64,
    /// How long one operation may wait for its answer, queueing included. An operation
    /// that times out after it was sent may still take effect (an indeterminate outcome).
    pub op_timeout_ms: u64,
    /// Requests in flight on a connection at once, at most [`MAX_IN_FLIGHT`]; callers
    /// beyond it wait their turn (within their op timeout).
    pub max_in_flight: usize,
    /// Shuffles the order in which servers are tried, so that clients spread over the
    /// cluster; `None` tries them in the order given, each reconnection moving to the next.
    pub seed: Option<u64>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            session_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            op_timeout_ms: 5_000,
            max_in_flight: 256,
            seed: None,
        }
    }
}

impl ConnectOptions {
    pub(crate) fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Refuses options that could never work, naming the field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let positive = [
            ("session_timeout_ms", self.session_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("op_timeout_ms", self.op_timeout_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if self.max_in_flight == 0 || self.max_in_flight > MAX_IN_FLIGHT {
            return Err(format!(
                "max_in_flight {} is not in 1..={MAX_IN_FLIGHT}",
                self.max_in_flight
            ));
        }
        Ok(())
    }
}

/// The order in which a client tries servers: a seeded shuffle, or the given order.
pub(crate) fn server_order<T>(mut servers: Vec<T>, seed: Option<u64>) -> Vec<T> {
    if let Some(seed) = seed {
        let mut rng = checkers::rng::Rng::new(seed);
        for i in (1..servers.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            servers.swap(i, j);
        }
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_shuffles_reproducibly_and_none_keeps_the_order() {
        let servers: Vec<u32> = (0..8).collect();
        assert_eq!(server_order(servers.clone(), None), servers);
        let a = server_order(servers.clone(), Some(7));
        assert_eq!(a, server_order(servers.clone(), Some(7)));
        assert_ne!(a, servers, "seed 7 moves something");
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, servers, "a permutation");
    }

    #[test]
    fn impossible_options_are_refused_by_name() {
        let zero = ConnectOptions {
            op_timeout_ms: 0,
            ..ConnectOptions::default()
        };
        assert!(zero.validate().unwrap_err().contains("op_timeout_ms"));
        let many = ConnectOptions {
            max_in_flight: MAX_IN_FLIGHT + 1,
            ..ConnectOptions::default()
        };
        assert!(many.validate().unwrap_err().contains("max_in_flight"));
        assert_eq!(ConnectOptions::default().validate(), Ok(()));
    }
}
