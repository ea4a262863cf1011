//! Choosing seeds: one from the environment to replay a failure, or a sweep over many.
//!
//! `SIM_SEED=<n>` makes every sweep and every `seed_from_env` use that seed alone, so the
//! replay line a failure prints reruns exactly the failing run. `SIM_SEEDS=<count>` and
//! `SIM_SEED_START=<n>` widen or move a sweep, for soak runs.

use std::fmt;

/// Replays one seed.
pub const SEED_VAR: &str = "SIM_SEED";
/// How many seeds a sweep runs (instead of the test's default).
pub const SEEDS_VAR: &str = "SIM_SEEDS";
/// The first seed of a sweep (default 0).
pub const SEED_START_VAR: &str = "SIM_SEED_START";

/// Upper bound of a sweep's length, so a typo cannot run a test forever.
pub const MAX_SWEEP: u64 = 1 << 32;

fn env_u64(var: &str) -> Option<u64> {
    let raw = std::env::var(var).ok()?;
    let raw = raw.trim();
    let parsed = match raw.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => raw.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{var}={raw:?} is not a u64: {e}")))
}

/// The seed to run: `SIM_SEED` if set (decimal or 0x-hex), else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    env_u64(SEED_VAR).unwrap_or(default)
}

/// The command that replays `seed` in the current test. Test threads carry the test's name,
/// which makes the line copy-pasteable.
pub fn replay_hint(seed: u64) -> String {
    let current = std::thread::current();
    match current.name().filter(|n| *n != "main") {
        Some(test) => format!("{SEED_VAR}={seed} cargo test -- {test} --exact"),
        None => format!("{SEED_VAR}={seed} cargo test <this test>"),
    }
}

/// The first seed of a sweep that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFailure {
    pub seed: u64,
    /// Seeds run, the failing one included.
    pub seeds_run: u64,
    pub message: String,
    /// The replay command for the failing seed.
    pub replay: String,
}

impl fmt::Display for SeedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} failed (after {} seed(s)): {}\n  replay: {}",
            self.seed, self.seeds_run, self.message, self.replay
        )
    }
}

impl std::error::Error for SeedFailure {}

/// The seeds a sweep runs: `SIM_SEED` alone if set, else `SIM_SEEDS` (or `default_count`)
/// seeds from `SIM_SEED_START` (or 0).
pub fn sweep_seeds(default_count: u64) -> std::ops::Range<u64> {
    if let Some(seed) = env_u64(SEED_VAR) {
        return seed..seed.saturating_add(1);
    }
    let count = env_u64(SEEDS_VAR).unwrap_or(default_count);
    assert!(
        count <= MAX_SWEEP,
        "a sweep of {count} seeds exceeds {MAX_SWEEP}"
    );
    let start = env_u64(SEED_START_VAR).unwrap_or(0);
    start..start.saturating_add(count)
}

/// Runs `run` for each seed of [`sweep_seeds`] and stops at the first failure. `Ok` is the
/// number of seeds that passed.
pub fn sweep<E: fmt::Display>(
    default_count: u64,
    mut run: impl FnMut(u64) -> Result<(), E>,
) -> Result<u64, SeedFailure> {
    let mut seeds_run = 0;
    for seed in sweep_seeds(default_count) {
        seeds_run += 1;
        if let Err(e) = run(seed) {
            return Err(SeedFailure {
                seed,
                seeds_run,
                message: e.to_string(),
                replay: replay_hint(seed),
            });
        }
    }
    Ok(seeds_run)
}
