use crate::ok;
use crate::pb::{Bug, Pb, RegisterClient};
use sim::{Sim, SimConfig};

/// A chaotic run of the register with three clients: everything random is exercised.
fn chaotic_run(seed: u64) -> (u64, String, sim::Stats) {
    let mut sim: Sim<Pb> = ok(Sim::new(seed, SimConfig::chaos(3), Bug::None));
    for id in 0..3 {
        sim.add_client(RegisterClient::new(id, 1_000));
    }
    ok(sim.run_for(5_000));
    (sim.trace_hash(), sim.history_jsonl(), sim.stats().clone())
}

#[test]
fn the_same_seed_gives_the_same_run_and_other_seeds_differ() {
    let a = chaotic_run(42);
    let b = chaotic_run(42);
    assert_eq!(a.0, b.0, "trace hashes differ for one seed");
    assert_eq!(a.1, b.1, "histories differ for one seed");
    assert_eq!(a.2, b.2);
    assert!(
        a.2.crashes > 0 && a.2.ops_ok > 100,
        "the run should be eventful: {:?}",
        a.2
    );
    let hashes: std::collections::BTreeSet<u64> = (43..48).map(|s| chaotic_run(s).0).collect();
    assert_eq!(hashes.len(), 5);
    assert!(!hashes.contains(&a.0));
}

#[test]
fn the_trace_hash_covers_message_content() {
    // The client's id only changes the values it writes, not the schedule: the same events at
    // the same times with different payloads must hash differently.
    let run = |client_id| {
        let mut sim: Sim<Pb> = ok(Sim::new(7, SimConfig::default(), Bug::None));
        sim.add_client(RegisterClient::new(client_id, 100));
        ok(sim.run_for(1_000));
        (sim.trace_hash(), sim.steps())
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(a.1, b.1, "the schedules should be identical");
    assert_ne!(a.0, b.0);
}
