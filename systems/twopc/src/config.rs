//! The store's settings and its planted bugs.

/// Bug switches, named as `--bug` takes them.
pub const BUG_NAMES: [&str; 5] = [
    "commit-before-log",
    "vote-before-force",
    "decide-alone",
    "snapshot-without-markers",
    "checkpoint-skips-forced",
];

/// Planted bugs, each breaking one rule the protocol needs. All off by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// The coordinator sends COMMIT (and answers the client) before its commit record is
    /// durable. A crash in between leaves participants committed and a coordinator that
    /// recovers with `start` and no decision, so aborts.
    pub commit_before_log: bool,
    /// A participant votes yes before its `yes` record is durable. A crash in between
    /// forgets the vote; the recovered participant aborts a transaction others commit.
    pub vote_before_force: bool,
    /// A participant that recovers in doubt decides abort alone after one timeout instead
    /// of waiting for somebody who knows.
    pub decide_alone: bool,
    /// Snapshot markers are not piggybacked on Prepare and Finish messages; nodes learn of a
    /// snapshot only from its broadcast, so a transaction may fall on both sides of a cut.
    pub snapshot_without_markers: bool,
    /// A node receiving a message stamped with a higher checkpoint index delivers it
    /// without first taking the forced checkpoint, so a later checkpoint of that index
    /// records a receive whose send the sender's checkpoint does not.
    pub checkpoint_skips_forced: bool,
}

impl Bugs {
    /// Parses `--bug` names; an unknown name is an error listing the known ones.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Bugs, String> {
        machine::parse_bugs(names, BUG_TABLE)
    }
}

const BUG_TABLE: &machine::BugTable<Bugs> = &[
    ("commit-before-log", |b| b.commit_before_log = true),
    ("vote-before-force", |b| b.vote_before_force = true),
    ("decide-alone", |b| b.decide_alone = true),
    ("snapshot-without-markers", |b| {
        b.snapshot_without_markers = true
    }),
    ("checkpoint-skips-forced", |b| {
        b.checkpoint_skips_forced = true
    }),
];

#[derive(Clone, Debug)]
pub struct TwoPcConfig {
    pub bugs: Bugs,
    /// The coordinator aborts a transaction whose votes are not all in by then.
    pub vote_timeout_ms: u64,
    /// How often the coordinator resends an unacknowledged decision, and an in-doubt
    /// participant asks again who knows the decision.
    pub retry_ms: u64,
    /// A participant that voted yes starts the termination protocol after this long
    /// without a decision.
    pub decision_timeout_ms: u64,
    /// The coordinator gives a snapshot up when its parts are not all in by then.
    pub snapshot_timeout_ms: u64,
    /// Basic (timer) checkpoints of each node, independent of the others.
    pub checkpoint_interval_ms: u64,
    /// Transactions the coordinator runs at once; more are refused as busy.
    pub max_active_txns: usize,
    /// Decided transactions a participant remembers while the coordinator's horizon
    /// (below which everyone has acknowledged) does not move; beyond it votes are no.
    pub max_remembered_txns: usize,
    /// Operations in one transaction.
    pub max_ops_per_txn: usize,
    /// Keys one shard holds.
    pub max_keys_per_shard: usize,
    /// Inputs a node holds back while a checkpoint or its boot record becomes durable.
    pub max_held_inputs: usize,
    /// Committed transaction ids a shard lists in its final state; beyond, the list says
    /// it is truncated.
    pub max_applied_listed: usize,
}

/// How many times an unanswered resend doubles the wait before the next: at most
/// 2^3 = 8 times `retry_ms`.
pub const MAX_RETRY_DOUBLINGS: u32 = 3;

impl TwoPcConfig {
    /// The wait before resending after `resends` unanswered resends: `retry_ms`, doubling
    /// with each up to [`MAX_RETRY_DOUBLINGS`] times. A partition leaves every transaction
    /// decided meanwhile unacknowledged; resent at a fixed rate, that backlog's messages
    /// grow with it, and once it heals they land on the participants all at once (on
    /// PostgreSQL participants, more decisions than database sessions to apply them, so
    /// new votes miss their timeout and the backlog grows).
    pub fn retry_after_ms(&self, resends: u32) -> u64 {
        self.retry_ms
            .saturating_mul(1 << resends.min(MAX_RETRY_DOUBLINGS))
    }
}

impl Default for TwoPcConfig {
    fn default() -> Self {
        TwoPcConfig {
            bugs: Bugs::default(),
            vote_timeout_ms: 500,
            retry_ms: 100,
            decision_timeout_ms: 300,
            snapshot_timeout_ms: 5_000,
            checkpoint_interval_ms: 1_000,
            max_active_txns: 1_000,
            max_remembered_txns: 100_000,
            max_ops_per_txn: 64,
            max_keys_per_shard: 1_000_000,
            max_held_inputs: 10_000,
            max_applied_listed: 1_000_000,
        }
    }
}

impl TwoPcConfig {
    pub fn with_bugs(bugs: Bugs) -> Self {
        TwoPcConfig {
            bugs,
            ..TwoPcConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_bug_parses_to_its_own_switch() {
        let mut seen = Vec::new();
        for name in BUG_NAMES {
            let b = Bugs::parse([name]).unwrap();
            assert_ne!(b, Bugs::default(), "{name} switches nothing on");
            assert!(!seen.contains(&b), "{name} switches on another's bug");
            seen.push(b);
        }
        assert_eq!(BUG_NAMES.len(), BUG_TABLE.len());
        let err = Bugs::parse(["nope"]).unwrap_err();
        assert!(err.contains("decide-alone"), "{err}");
    }
}
