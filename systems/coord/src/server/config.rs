//! The coordination service's settings and its planted bugs.

use crate::zab::{ZabBugs, ZabConfig};

/// Bug switches, named as `--bug` takes them.
pub const BUG_NAMES: [&str; 4] = [
    "ack-before-fsync",
    "stale-sync",
    "stale-leader",
    "skip-ephemeral-cleanup",
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Followers and leader acknowledge proposals before they are on disk.
    pub ack_before_fsync: bool,
    /// `sync` is answered at once, without the round trip through the leader.
    pub stale_sync: bool,
    /// A node lacking the latest zxid may be elected, and lead.
    pub stale_leader: bool,
    /// Expired sessions leave their ephemeral nodes behind.
    pub skip_ephemeral_cleanup: bool,
}

impl Bugs {
    /// Parses `--bug` names; an unknown name is an error listing the known ones.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Bugs, String> {
        machine::parse_bugs(names, BUG_TABLE)
    }
}

const BUG_TABLE: &machine::BugTable<Bugs> = &[
    ("ack-before-fsync", |b| b.ack_before_fsync = true),
    ("stale-sync", |b| b.stale_sync = true),
    ("stale-leader", |b| b.stale_leader = true),
    ("skip-ephemeral-cleanup", |b| {
        b.skip_ephemeral_cleanup = true
    }),
];

#[derive(Clone, Debug)]
pub struct CoordConfig {
    pub zab: ZabConfig,
    pub bugs: Bugs,
    /// Session timeouts clients may ask for are clamped into this range.
    pub min_session_timeout_ms: u64,
    pub max_session_timeout_ms: u64,
    /// How often followers tell the leader which sessions are alive.
    pub touch_interval_ms: u64,
    /// Commits between snapshots.
    pub snapshot_every: u64,
    /// Requests one connection may have in flight before it is closed.
    pub max_pending_per_client: usize,
}

impl Default for CoordConfig {
    fn default() -> Self {
        CoordConfig {
            zab: ZabConfig::default(),
            bugs: Bugs::default(),
            min_session_timeout_ms: 400,
            max_session_timeout_ms: 60_000,
            touch_interval_ms: 100,
            snapshot_every: 10_000,
            max_pending_per_client: 1_000,
        }
    }
}

impl CoordConfig {
    /// The configuration with these bugs planted, in Zab too where they live there.
    pub fn with_bugs(bugs: Bugs) -> Self {
        let mut cfg = CoordConfig::default();
        cfg.zab.bugs = ZabBugs {
            elect_stale_leader: bugs.stale_leader,
            ack_before_fsync: bugs.ack_before_fsync,
        };
        cfg.bugs = bugs;
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_bug_parses_and_unknown_names_are_refused() {
        let all = Bugs::parse(BUG_NAMES).unwrap();
        assert!(
            all.ack_before_fsync
                && all.stale_sync
                && all.stale_leader
                && all.skip_ephemeral_cleanup
        );
        let err = Bugs::parse(["typo"]).unwrap_err();
        assert!(err.contains("typo") && err.contains("stale-sync"), "{err}");
        let cfg = CoordConfig::with_bugs(Bugs::parse(["stale-leader"]).unwrap());
        assert!(cfg.zab.bugs.elect_stale_leader && !cfg.zab.bugs.ack_before_fsync);
    }
}
