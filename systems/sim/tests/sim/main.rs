//! The simulator's own tests, on three toy cores: `probe` for mechanics, `pb` (a primary-backup
//! register with bug switches) for the end-to-end story of finding a bug by seed sweep, and
//! `journal`, which records events, for the event log.

mod journal;
mod pb;
mod probe;

mod clients;
mod determinism;
mod disk;
mod events;
mod faults;
mod limits;
mod network;
mod register;

use probe::{Probe, ProbeConfig};
use sim::{Sim, SimConfig};

/// A probe cluster with `adjust` applied to the default config.
pub fn probe_sim(seed: u64, probe: ProbeConfig, adjust: impl FnOnce(&mut SimConfig)) -> Sim<Probe> {
    let mut config = SimConfig::default();
    adjust(&mut config);
    Sim::new(seed, config, probe).unwrap_or_else(|e| panic!("{e}"))
}

pub fn ok<T>(r: Result<T, sim::SimError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}
