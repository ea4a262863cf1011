//! The end-to-end story: a seed sweep with faults finds the buggy variants through the
//! linearizability checker, and the correct one passes the same sweep.

use crate::pb::{Bug, Pb, RegisterClient, PRIMARY};
use checkers::model::ModelKind;
use sim::{
    check_linearizable, sweep, FaultConfig, FaultWeights, Latency, Sim, SimConfig, SimError,
};
use std::time::Duration;

const SEEDS: u64 = 20;

/// Crash-heavy chaos on fsync-like disks (up to 20 ms): the primary crashes often, with
/// writes in flight, so unpersisted acknowledgements get lost.
fn config() -> SimConfig {
    let mut c = SimConfig::chaos(3);
    c.disk.latency = Latency::Uniform {
        min_ms: 2,
        max_ms: 20,
    };
    c.faults = FaultConfig {
        interval_ms: (100, 500),
        duration_ms: (50, 500),
        weights: FaultWeights {
            crash: 6,
            ..FaultWeights::default()
        },
        ..FaultConfig::chaos()
    };
    c
}

const CLIENTS: u64 = 5;
const OPS_PER_CLIENT: u64 = 300;

/// Runs the register under faults with a few clients, then checks the history.
fn run(seed: u64, bug: Bug) -> Result<(), String> {
    let mut sim: Sim<Pb> = Sim::new(seed, config(), bug).map_err(|e| e.to_string())?;
    for id in 0..CLIENTS {
        sim.add_client(RegisterClient::new(id, OPS_PER_CLIENT));
    }
    sim.set_invariant(|cluster| {
        // A backup never holds more committed-looking state than the log it has.
        for (id, pb) in cluster.live() {
            if pb.persisted > pb.log.len() as u64 {
                return Err(format!(
                    "n{id} claims {} persisted of {}",
                    pb.persisted,
                    pb.log.len()
                ));
            }
        }
        Ok(())
    });
    let finished = sim.run_until(|s| s.clients_done(), 120_000);
    finished.map_err(|e: SimError| e.to_string())?;
    let history = sim.history().map_err(|e| e.to_string())?;
    check_linearizable(&history, ModelKind::Register, Duration::from_secs(20))
        .map(|_| ())
        .map_err(|why| format!("not linearizable (seed {seed}):\n{why}"))
}

#[test]
fn the_correct_register_passes_the_sweep() {
    let passed = sweep(SEEDS, |seed| run(seed, Bug::None)).unwrap_or_else(|f| panic!("{f}"));
    assert!(passed >= 1);
}

#[test]
fn acking_before_persisting_is_caught_within_the_sweep() {
    let failure = sweep(SEEDS, |seed| run(seed, Bug::AckBeforePersist))
        .expect_err("the sweep missed the bug");
    eprintln!("found after {} seed(s): {failure}", failure.seeds_run);
    assert!(failure.message.contains("not linearizable"), "{failure}");
    assert!(failure
        .replay
        .contains(&format!("SIM_SEED={}", failure.seed)));
    // The failing seed replays to the same verdict.
    assert!(run(failure.seed, Bug::AckBeforePersist).is_err());
}

#[test]
fn stale_backup_reads_are_caught_within_the_sweep() {
    let failure = sweep(SEEDS, |seed| run(seed, Bug::StaleBackupReads))
        .expect_err("the sweep missed the bug");
    eprintln!("found after {} seed(s): {failure}", failure.seeds_run);
    assert!(failure.message.contains("not linearizable"), "{failure}");
}

#[test]
fn the_primary_is_where_writes_land() {
    let mut sim: Sim<Pb> = crate::ok(Sim::new(3, SimConfig::default(), Bug::None));
    sim.add_client(RegisterClient::new(0, 50));
    crate::ok(sim.run_until(|s| s.clients_done(), 60_000));
    let primary = sim.node(PRIMARY).unwrap();
    assert!(primary.committed > 0 && primary.committed == primary.log.len() as u64);
    // Backups caught up through replication.
    for n in [2, 3] {
        assert_eq!(sim.node(n).unwrap().log, primary.log, "n{n}");
    }
}
