//! The replication mode, its settings, the limits, and the planted bugs.

use machine::{parse_bugs, BugTable, TICK_MS};
use zab::ZabConfig;

/// How updates reach the replicas: the schemes Kemme & Alonso compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Execute at the delegate on a snapshot; at commit broadcast the write set (plus the read
    /// set); every replica certifies on delivery, deterministically, so no 2PC is needed.
    #[default]
    Certification,
    /// Broadcast the whole transaction; every replica executes it in delivery order.
    Active,
    /// Broadcast the write set; only the delegate certifies, then broadcasts its decision.
    WeakVoting,
    /// The Zab leader is the primary: it executes everything and propagates results in order.
    PrimaryCopy,
    /// Commit at the delegate at once, propagate afterwards. Not one-copy serializable.
    Lazy,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Certification,
        Mode::Active,
        Mode::WeakVoting,
        Mode::PrimaryCopy,
        Mode::Lazy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Certification => "certification",
            Mode::Active => "active",
            Mode::WeakVoting => "weak-voting",
            Mode::PrimaryCopy => "primary-copy",
            Mode::Lazy => "lazy",
        }
    }

    pub fn parse(name: &str) -> Result<Mode, ConfigError> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| ConfigError::UnknownMode(name.to_string()))
    }

    /// Whether the delegate executes the transaction before it is broadcast (and so holds a
    /// snapshot while it runs).
    pub fn executes_at_delegate(self) -> bool {
        matches!(self, Mode::Certification | Mode::WeakVoting | Mode::Lazy)
    }

    /// The consistency model (as `faultline check` names it) a mode claims for its client
    /// histories; `None` for lazy, which claims none. Certifying without read sets is
    /// first-committer-wins: snapshot isolation, not serializability.
    pub fn claimed_model(self, read_sets: bool) -> Option<&'static str> {
        match self {
            Mode::Certification | Mode::WeakVoting if !read_sets => Some("snapshot-isolation"),
            Mode::Lazy => None,
            _ => Some("serializable"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown replication mode {0:?}; known: certification, active, weak-voting, primary-copy, lazy")]
    UnknownMode(String),
    #[error("{0}")]
    UnknownBug(String),
    #[error("--no-read-sets applies to certification and weak-voting, not {0}")]
    ReadSetsNotApplicable(&'static str),
    #[error("--read-phase-ms must be a multiple of {TICK_MS} up to {MAX_READ_PHASE_MS}, not {0}")]
    ReadPhase(u64),
}

/// The longest read phase a delegate may be told to take.
pub const MAX_READ_PHASE_MS: u64 = 10_000;

/// Bounds on everything a client or a peer can make a replica hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Micro-ops in one transaction.
    pub max_mops: usize,
    /// Transactions a replica executes or waits on for its clients at once.
    pub max_pending: usize,
    /// Elements of one list.
    pub max_list_len: usize,
    /// Keys in the database.
    pub max_keys: usize,
    /// The database's size: list elements, a register counting one. With the keys, the
    /// apply log and the remembered ids it bounds a snapshot well below
    /// `machine::MAX_BLOB_BYTES`.
    pub max_elements: usize,
    /// Versions kept per key; past it the oldest go even if a snapshot still needs them (its
    /// transaction then aborts: snapshot too old).
    pub max_versions_per_key: usize,
    /// Transaction ids remembered to refuse a duplicate (a retransmission, a reused id).
    pub max_remembered_ids: usize,
    /// Entries of the apply log kept; older ones are forgotten (the log says from where).
    pub max_apply_log: usize,
    /// Write sets waiting for a decision (weak voting).
    pub max_voting_queue: usize,
    /// Apply-log ids in one reply page.
    pub apply_log_page: usize,
    /// List elements (a register counts one) in one state reply page.
    pub state_page_elements: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_mops: 64,
            max_pending: 1_024,
            max_list_len: 1_024,
            max_keys: 100_000,
            max_elements: 10_000_000,
            max_versions_per_key: 64,
            max_remembered_ids: 100_000,
            max_apply_log: 1_000_000,
            max_voting_queue: 1_024,
            apply_log_page: 100_000,
            state_page_elements: 100_000,
        }
    }
}

/// Planted bugs, all off by default, for the checkers to find.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Certification also consults something replica-local: each replica aborts a
    /// transaction that passed validation on a draw of its own RNG (a "lock-wait timeout").
    /// Replicas then disagree on outcomes, and their apply logs diverge.
    pub nondeterministic_certification: bool,
    /// The delegate applies its own transaction when it broadcasts it, before the total order
    /// delivers it, and takes delivery as a formality: its copy orders transactions
    /// differently from everyone else's, and keeps writes the others' certification aborts.
    pub apply_before_delivery: bool,
}

/// The bug names `--bug` takes.
pub const BUG_TABLE: &BugTable<Bugs> = &[
    ("nondeterministic-certification", |b| {
        b.nondeterministic_certification = true
    }),
    ("apply-before-delivery", |b| b.apply_before_delivery = true),
];

impl Bugs {
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Bugs, ConfigError> {
        parse_bugs(names, BUG_TABLE).map_err(ConfigError::UnknownBug)
    }
}

/// Settings fixed for a replica's life.
#[derive(Clone, Debug)]
pub struct RepdbConfig {
    pub mode: Mode,
    /// Certification and weak voting broadcast the read set and validate it (serializable);
    /// off (`--no-read-sets`), they certify write sets first-committer-wins (snapshot
    /// isolation) and broadcast no read set.
    pub read_sets: bool,
    /// Ticks a delegate takes to execute a transaction on its snapshot (its local read
    /// phase): commits delivered meanwhile are not in the snapshot, which is what
    /// certification is for, and what the multi-version store keeps old versions for.
    pub exec_ticks: u64,
    /// Weak voting: ticks the leader waits for a delegate's decision before aborting.
    pub decision_timeout_ticks: u64,
    /// Weak voting: ticks between a delegate's broadcasts of the decision for a write set
    /// still undecided (the first may have been lost with its leader).
    pub decision_resend_ticks: u64,
    /// Commits between snapshots handed to Zab (which then compacts its log).
    pub snapshot_every: u64,
    pub limits: Limits,
    pub bugs: Bugs,
    pub zab: ZabConfig,
}

impl Default for RepdbConfig {
    fn default() -> RepdbConfig {
        RepdbConfig {
            mode: Mode::Certification,
            read_sets: true,
            exec_ticks: 1,
            decision_timeout_ticks: 1_000 / TICK_MS,
            decision_resend_ticks: 200 / TICK_MS,
            snapshot_every: 1_000,
            limits: Limits::default(),
            bugs: Bugs::default(),
            zab: ZabConfig::default(),
        }
    }
}

impl RepdbConfig {
    pub fn new(mode: Mode) -> RepdbConfig {
        RepdbConfig {
            mode,
            ..RepdbConfig::default()
        }
    }

    /// The deploy-time choice as flags give it: `--replication MODE`, `--no-read-sets`,
    /// `--bug NAME`...
    pub fn from_flags<'a>(
        mode: &str,
        no_read_sets: bool,
        bugs: impl IntoIterator<Item = &'a str>,
    ) -> Result<RepdbConfig, ConfigError> {
        let mode = Mode::parse(mode)?;
        if no_read_sets && !matches!(mode, Mode::Certification | Mode::WeakVoting) {
            return Err(ConfigError::ReadSetsNotApplicable(mode.name()));
        }
        Ok(RepdbConfig {
            mode,
            read_sets: !no_read_sets,
            bugs: Bugs::parse(bugs)?,
            ..RepdbConfig::default()
        })
    }

    /// The same configuration with a read phase of `ms` (0: a transaction executes the
    /// moment it arrives); whole ticks only.
    pub fn with_read_phase_ms(self, ms: u64) -> Result<RepdbConfig, ConfigError> {
        if ms % TICK_MS != 0 || ms > MAX_READ_PHASE_MS {
            return Err(ConfigError::ReadPhase(ms));
        }
        Ok(RepdbConfig {
            exec_ticks: ms / TICK_MS,
            ..self
        })
    }

    /// The read phase in milliseconds.
    pub fn read_phase_ms(&self) -> u64 {
        self.exec_ticks * TICK_MS
    }

    /// The model this configuration claims (see [`Mode::claimed_model`]).
    pub fn claimed_model(&self) -> Option<&'static str> {
        self.mode.claimed_model(self.read_sets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_phase_is_whole_ticks() {
        let c = RepdbConfig::default();
        assert_eq!(c.read_phase_ms(), TICK_MS);
        assert_eq!(c.clone().with_read_phase_ms(0).unwrap().exec_ticks, 0);
        assert_eq!(
            c.clone().with_read_phase_ms(50).unwrap().read_phase_ms(),
            50
        );
        let e = c.clone().with_read_phase_ms(15).unwrap_err().to_string();
        assert_eq!(
            e,
            "--read-phase-ms must be a multiple of 10 up to 10000, not 15"
        );
        assert!(c.with_read_phase_ms(MAX_READ_PHASE_MS + TICK_MS).is_err());
    }

    #[test]
    fn flags_parse_and_bad_ones_say_what_is_known() {
        let c = RepdbConfig::from_flags("certification", true, ["apply-before-delivery"]).unwrap();
        assert_eq!(c.mode, Mode::Certification);
        assert!(!c.read_sets && c.bugs.apply_before_delivery);
        assert_eq!(c.claimed_model(), Some("snapshot-isolation"));
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.name()), Ok(m));
        }
        let e = RepdbConfig::from_flags("eager", false, []).unwrap_err();
        assert!(e.to_string().contains("weak-voting"), "{e}");
        let e = RepdbConfig::from_flags("lazy", false, ["nope"]).unwrap_err();
        assert!(e.to_string().contains("apply-before-delivery"), "{e}");
        assert!(RepdbConfig::from_flags("active", true, []).is_err());
        assert_eq!(Mode::Lazy.claimed_model(true), None);
        assert_eq!(Mode::PrimaryCopy.claimed_model(true), Some("serializable"));
    }
}
