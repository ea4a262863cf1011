//! Leader election in the style of ZooKeeper's FastLeaderElection.
//!
//! Each looking node proposes the best candidate it knows, ordered by (current epoch, last
//! zxid, id), and adopts any better one it hears of; a round number lets nodes that started
//! late catch up. A node decides once a quorum proposes the same candidate in its round and
//! nothing better arrives during a short wait. Election only picks a candidate: safety comes
//! from discovery, where the leader gives up if a follower turns out to be ahead of it.

use super::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's proposal of a leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub leader: NodeId,
    /// The candidate's current epoch and last logged zxid.
    pub epoch: u32,
    pub zxid: u64,
}

impl Vote {
    /// ZooKeeper's totalOrderPredicate: the higher epoch, then the longer history, then the
    /// higher id. `ignore_history` is the bug switch that elects a leader lacking the latest
    /// zxid (only the id counts).
    pub fn beats(&self, other: &Vote, ignore_history: bool) -> bool {
        if ignore_history {
            return self.leader > other.leader;
        }
        (self.epoch, self.zxid, self.leader) > (other.epoch, other.zxid, other.leader)
    }
}

/// What a node says about itself in a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Standing {
    Looking,
    Following,
    Leading,
}

/// An election message; sent to every peer, idempotent, safe to lose or repeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub round: u64,
    pub vote: Vote,
    pub standing: Standing,
}

/// What an election step concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Undecided,
    /// Broadcast this node's notification (its vote changed or a peer is behind).
    Announce,
    /// Answer this one peer with this node's notification.
    Answer(NodeId),
    /// Follow, or lead if the leader is this node.
    Decided(NodeId),
}

/// The state of one looking node.
#[derive(Debug)]
pub struct Election {
    me: NodeId,
    quorum: usize,
    pub round: u64,
    pub vote: Vote,
    own: Vote,
    /// Votes of this round, by voter.
    votes: BTreeMap<NodeId, Vote>,
    /// When a quorum first agreed on `vote`, to wait briefly for a better one.
    agreed_at_ms: Option<u64>,
    /// Rounds and votes of nodes that follow or lead already.
    settled: BTreeMap<NodeId, (u64, Vote)>,
    ignore_history: bool,
}

impl Election {
    /// Starts looking in the round after `last_round`, proposing `own`.
    pub fn start(
        me: NodeId,
        quorum: usize,
        last_round: u64,
        own: Vote,
        ignore_history: bool,
    ) -> Self {
        let mut votes = BTreeMap::new();
        votes.insert(me, own);
        Election {
            me,
            quorum,
            round: last_round + 1,
            vote: own,
            own,
            votes,
            agreed_at_ms: None,
            settled: BTreeMap::new(),
            ignore_history,
        }
    }

    pub fn notification(&self) -> Notification {
        Notification {
            round: self.round,
            vote: self.vote,
            standing: Standing::Looking,
        }
    }

    /// Takes in a peer's notification.
    pub fn receive(&mut self, now_ms: u64, from: NodeId, n: &Notification) -> Outcome {
        if n.standing != Standing::Looking {
            return self.receive_settled(from, n);
        }
        let mut outcome = Outcome::Undecided;
        if n.round > self.round {
            self.round = n.round;
            self.votes.clear();
            self.vote = self.better(self.own, n.vote);
            self.votes.insert(self.me, self.vote);
            self.agreed_at_ms = None;
            outcome = Outcome::Announce;
        } else if n.round < self.round {
            return Outcome::Answer(from);
        } else if n.vote.beats(&self.vote, self.ignore_history) {
            self.vote = n.vote;
            self.votes.insert(self.me, self.vote);
            self.agreed_at_ms = None;
            outcome = Outcome::Announce;
        }
        self.votes.insert(from, n.vote);
        if self.agreeing() >= self.quorum {
            self.agreed_at_ms.get_or_insert(now_ms);
        }
        outcome
    }

    /// A node that already follows or leads tells us who leads. As in ZooKeeper's
    /// checkLeader: another node is joined only on its own claim to lead, since followers
    /// of a leader that has given up would otherwise lure everyone back to it; this node
    /// leads when a quorum of its own round already follows it (it was the last to decide).
    fn receive_settled(&mut self, from: NodeId, n: &Notification) -> Outcome {
        self.settled.insert(from, (n.round, n.vote));
        let leader = n.vote.leader;
        if leader != self.me {
            let claims = from == leader && n.standing == Standing::Leading;
            if claims {
                self.vote = n.vote;
                return Outcome::Decided(leader);
            }
            return Outcome::Undecided;
        }
        let backing = self
            .settled
            .values()
            .filter(|(round, v)| *round == self.round && v.leader == self.me)
            .count();
        if backing + 1 >= self.quorum {
            return Outcome::Decided(self.me);
        }
        Outcome::Undecided
    }

    /// A peer already follows this node and waits for it to lead: a vote for it in this
    /// round. Without this, a node that restarted mid-election would wait for its would-be
    /// followers to time out before anyone looks again.
    pub fn follower_waiting(&mut self, from: NodeId) -> Outcome {
        let vote = Vote {
            leader: self.me,
            ..self.own
        };
        let n = Notification {
            round: self.round,
            vote,
            standing: Standing::Following,
        };
        self.receive_settled(from, &n)
    }

    /// Decides once a quorum has agreed for `finalize_wait_ms` with nothing better heard.
    pub fn tick(&mut self, now_ms: u64, finalize_wait_ms: u64) -> Outcome {
        match self.agreed_at_ms {
            Some(at) if now_ms.saturating_sub(at) >= finalize_wait_ms => {
                if self.agreeing() >= self.quorum {
                    Outcome::Decided(self.vote.leader)
                } else {
                    self.agreed_at_ms = None;
                    Outcome::Undecided
                }
            }
            _ => Outcome::Undecided,
        }
    }

    fn agreeing(&self) -> usize {
        self.votes.values().filter(|v| **v == self.vote).count()
    }

    fn better(&self, a: Vote, b: Vote) -> Vote {
        if b.beats(&a, self.ignore_history) {
            b
        } else {
            a
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(leader: NodeId, epoch: u32, zxid: u64) -> Vote {
        Vote {
            leader,
            epoch,
            zxid,
        }
    }

    fn looking(round: u64, v: Vote) -> Notification {
        Notification {
            round,
            vote: v,
            standing: Standing::Looking,
        }
    }

    #[test]
    fn the_longest_history_wins_over_the_highest_id() {
        assert!(vote(1, 2, 10).beats(&vote(3, 2, 9), false));
        assert!(vote(1, 3, 0).beats(&vote(3, 2, 9), false));
        assert!(vote(3, 2, 10).beats(&vote(1, 2, 10), false));
        assert!(
            !vote(1, 2, 10).beats(&vote(3, 2, 9), true),
            "the bug switch"
        );
    }

    #[test]
    fn a_quorum_decides_after_the_wait() {
        let best = vote(2, 1, 5);
        let mut e = Election::start(1, 2, 0, vote(1, 1, 3), false);
        assert_eq!(e.receive(0, 2, &looking(1, best)), Outcome::Announce);
        assert_eq!(e.vote, best);
        assert_eq!(e.tick(10, 50), Outcome::Undecided);
        assert_eq!(e.tick(60, 50), Outcome::Decided(2));
    }

    #[test]
    fn a_later_round_resets_the_votes_and_an_earlier_one_is_answered() {
        let mut e = Election::start(1, 3, 0, vote(1, 1, 3), false);
        e.receive(0, 2, &looking(1, vote(1, 1, 3)));
        assert_eq!(
            e.receive(0, 3, &looking(5, vote(3, 1, 1))),
            Outcome::Announce
        );
        assert_eq!(e.round, 5);
        assert_eq!(e.vote, vote(1, 1, 3), "its own vote is still the best");
        assert_eq!(
            e.receive(0, 2, &looking(4, vote(2, 1, 0))),
            Outcome::Answer(2)
        );
    }

    #[test]
    fn an_established_leader_is_joined() {
        let mut e = Election::start(1, 3, 0, vote(1, 1, 3), false);
        let lead = Notification {
            round: 9,
            vote: vote(4, 2, 7),
            standing: Standing::Leading,
        };
        assert_eq!(e.receive(0, 4, &lead), Outcome::Decided(4));
    }
}
