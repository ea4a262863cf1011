//! The virtual network between nodes: latency, loss, duplication and partitions.
//!
//! Peer messages behave like datagrams: each is delayed independently (so reordering falls out
//! of random latency), may be lost or duplicated, and is dropped if its directed link is blocked
//! either when it is sent or when it would arrive (a cut drops what is in flight, as iptables
//! does). Client connections are TCP-like instead and live in `client`.

use checkers::rng::Rng;
use machine::NodeId;

/// A delay distribution.
#[derive(Clone, Debug, PartialEq)]
pub enum Latency {
    Fixed {
        ms: u64,
    },
    Uniform {
        min_ms: u64,
        max_ms: u64,
    },
    /// Usually uniform in `min_ms..=max_ms`; with probability `tail_chance`, uniform up to
    /// `tail_max_ms` instead (GC pauses, retransmits, a slow fsync).
    LongTail {
        min_ms: u64,
        max_ms: u64,
        tail_chance: f64,
        tail_max_ms: u64,
    },
}

/// No delay may exceed this: a typo should not schedule events centuries ahead.
pub const MAX_LATENCY_MS: u64 = 24 * 3600 * 1000;

impl Latency {
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        match *self {
            Latency::Fixed { ms } => ms,
            Latency::Uniform { min_ms, max_ms } => rng.between(min_ms, max_ms),
            Latency::LongTail {
                min_ms,
                max_ms,
                tail_chance,
                tail_max_ms,
            } => {
                if rng.chance(tail_chance) {
                    rng.between(max_ms, tail_max_ms)
                } else {
                    rng.between(min_ms, max_ms)
                }
            }
        }
    }

    /// The largest delay this distribution can give.
    pub fn max_ms(&self) -> u64 {
        match *self {
            Latency::Fixed { ms } => ms,
            Latency::Uniform { max_ms, .. } => max_ms,
            Latency::LongTail { tail_max_ms, .. } => tail_max_ms,
        }
    }

    pub fn check(&self) {
        let ok = match *self {
            Latency::Fixed { .. } => true,
            Latency::Uniform { min_ms, max_ms } => min_ms <= max_ms,
            Latency::LongTail {
                min_ms,
                max_ms,
                tail_chance,
                tail_max_ms,
            } => min_ms <= max_ms && max_ms <= tail_max_ms && (0.0..=1.0).contains(&tail_chance),
        };
        assert!(ok, "inconsistent latency {self:?}");
        assert!(
            self.max_ms() <= MAX_LATENCY_MS,
            "latency {self:?} over a day"
        );
    }
}

/// How the network between nodes behaves when no fault is active.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Delay of each peer message.
    pub latency: Latency,
    /// Probability that a peer message is lost.
    pub loss: f64,
    /// Probability that a delivered peer message is delivered twice (each copy delayed apart).
    pub duplicate: f64,
    /// Delay of each client request and response (in order per connection, never lost).
    pub client_latency: Latency,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            latency: Latency::Uniform {
                min_ms: 1,
                max_ms: 10,
            },
            loss: 0.0,
            duplicate: 0.0,
            client_latency: Latency::Uniform {
                min_ms: 1,
                max_ms: 5,
            },
        }
    }
}

impl NetConfig {
    /// A network that loses, duplicates and badly delays messages.
    pub fn flaky() -> NetConfig {
        NetConfig {
            latency: Latency::LongTail {
                min_ms: 1,
                max_ms: 10,
                tail_chance: 0.02,
                tail_max_ms: 200,
            },
            loss: 0.02,
            duplicate: 0.02,
            ..NetConfig::default()
        }
    }

    pub fn check(&self) {
        self.latency.check();
        self.client_latency.check();
        assert!(
            (0.0..=1.0).contains(&self.loss),
            "loss {} not a probability",
            self.loss
        );
        assert!(
            (0.0..=1.0).contains(&self.duplicate),
            "duplicate {} not a probability",
            self.duplicate
        );
    }
}

/// Which directed links are cut: `blocked[(from-1)*n + (to-1)]`. A flat matrix, since it is
/// consulted twice per message.
#[derive(Clone, Debug)]
pub(crate) struct Links {
    n: usize,
    blocked: Vec<bool>,
    count: usize,
}

impl Links {
    pub fn new(n: usize) -> Links {
        Links {
            n,
            blocked: vec![false; n * n],
            count: 0,
        }
    }

    fn index(&self, from: NodeId, to: NodeId) -> usize {
        let (f, t) = (from as usize, to as usize);
        assert!(
            (1..=self.n).contains(&f) && (1..=self.n).contains(&t),
            "link n{from}->n{to} outside the cluster of {}",
            self.n
        );
        (f - 1) * self.n + (t - 1)
    }

    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.count > 0 && self.blocked[self.index(from, to)]
    }

    pub fn block(&mut self, from: NodeId, to: NodeId) {
        let i = self.index(from, to);
        if from != to && !self.blocked[i] {
            self.blocked[i] = true;
            self.count += 1;
        }
    }

    pub fn heal(&mut self) {
        self.blocked.fill(false);
        self.count = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every blocked link, in ascending order.
    pub fn blocked(&self) -> Vec<(NodeId, NodeId)> {
        let n = self.n as NodeId;
        (1..=n)
            .flat_map(|f| (1..=n).map(move |t| (f, t)))
            .filter(|&(f, t)| self.is_blocked(f, t))
            .collect()
    }
}

/// The directed links that separate `groups`: every pair whose ends are in different groups,
/// both ways. Nodes in no group are left connected to everyone.
pub fn links_between(groups: &[&[NodeId]]) -> Vec<(NodeId, NodeId)> {
    let mut links = Vec::new();
    for (i, a) in groups.iter().enumerate() {
        for (j, b) in groups.iter().enumerate() {
            if i != j {
                links.extend(a.iter().flat_map(|&f| b.iter().map(move |&t| (f, t))));
            }
        }
    }
    links
}

/// A random split of `members` into two non-empty halves (the first is the larger, when the
/// count is odd), as Jepsen's `partition-random-halves`.
pub fn random_halves(members: &[NodeId], rng: &mut Rng) -> (Vec<NodeId>, Vec<NodeId>) {
    assert!(members.len() >= 2, "cannot split fewer than 2 nodes");
    let mut shuffled = members.to_vec();
    for i in (1..shuffled.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        shuffled.swap(i, j);
    }
    let small = shuffled.split_off(shuffled.len().div_ceil(2));
    let (mut big, mut small) = (shuffled, small);
    big.sort_unstable();
    small.sort_unstable();
    (big, small)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_directed() {
        let mut l = Links::new(3);
        l.block(1, 2);
        assert!(l.is_blocked(1, 2));
        assert!(!l.is_blocked(2, 1));
        assert_eq!(l.blocked(), vec![(1, 2)]);
        l.heal();
        assert!(!l.is_blocked(1, 2) && l.is_empty());
    }

    #[test]
    fn groups_are_cut_both_ways() {
        let links = links_between(&[&[1], &[2, 3]]);
        assert_eq!(links, vec![(1, 2), (1, 3), (2, 1), (3, 1)]);
    }

    #[test]
    fn halves_cover_the_members_and_are_not_empty() {
        let mut rng = Rng::new(9);
        for _ in 0..50 {
            let (a, b) = random_halves(&[1, 2, 3, 4, 5], &mut rng);
            assert_eq!((a.len(), b.len()), (3, 2));
            let mut all: Vec<_> = a.iter().chain(&b).copied().collect();
            all.sort_unstable();
            assert_eq!(all, vec![1, 2, 3, 4, 5]);
        }
    }

    #[test]
    fn latencies_stay_in_their_ranges() {
        let mut rng = Rng::new(4);
        let l = Latency::LongTail {
            min_ms: 2,
            max_ms: 5,
            tail_chance: 0.5,
            tail_max_ms: 50,
        };
        let xs: Vec<u64> = (0..500).map(|_| l.sample(&mut rng)).collect();
        assert!(xs.iter().all(|x| (2..=50).contains(x)));
        assert!(xs.iter().any(|&x| x > 5), "the tail is never drawn");
    }
}
