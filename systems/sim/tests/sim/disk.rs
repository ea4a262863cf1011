use crate::probe::{counters, ProbeConfig, RECORDS_PER_WRITE};
use crate::{ok, probe_sim};
use sim::{CrashLoss, Latency};

fn appending() -> ProbeConfig {
    ProbeConfig {
        append: true,
        ..ProbeConfig::default()
    }
}

/// A slow disk, so several writes are in flight at any time.
fn slow_disk(c: &mut sim::SimConfig, loss: CrashLoss) {
    c.disk.latency = Latency::Uniform {
        min_ms: 20,
        max_ms: 60,
    };
    c.disk.crash_loss = loss;
}

#[test]
fn a_crash_loses_exactly_the_writes_not_reported_persisted() {
    let mut sim = probe_sim(5, appending(), |c| slow_disk(c, CrashLoss::AllPending));
    ok(sim.run_for(337));
    let p = sim.node(2).unwrap();
    let (persisted, emitted) = (p.persisted_records, p.emitted_records);
    assert!(
        emitted > persisted + RECORDS_PER_WRITE,
        "too few writes in flight to test"
    );
    assert!(sim.pending_writes(2) > 1);
    sim.crash(2);
    assert!(!sim.is_up(2) && sim.node(2).is_none());
    let kept = counters(sim.durable(2));
    assert_eq!(kept, (0..persisted).collect::<Vec<_>>());
    let report = sim.last_crash(2).unwrap();
    assert_eq!(report.kept_ops, 0);
    assert_eq!(
        report.pending_writes as u64,
        (emitted - persisted) / RECORDS_PER_WRITE
    );
    // Completions scheduled before the crash are stale: the disk stays as it was.
    ok(sim.run_for(200));
    assert_eq!(counters(sim.durable(2)), kept);
    sim.restart(2);
    assert_eq!(sim.node(2).unwrap().recovered_records, persisted);
    ok(sim.run_for(200));
    assert!(
        sim.node(2).unwrap().persisted_records > persisted,
        "the node writes again"
    );
}

#[test]
fn random_prefix_crashes_keep_a_prefix_and_sometimes_tear_an_append() {
    let mut torn = 0;
    let mut beyond_persisted = 0;
    for seed in 0..40 {
        let mut sim = probe_sim(seed, appending(), |c| slow_disk(c, CrashLoss::RandomPrefix));
        ok(sim.run_for(300 + seed * 7));
        let p = sim.node(1).unwrap();
        let (persisted, emitted) = (p.persisted_records, p.emitted_records);
        sim.crash(1);
        let kept = counters(sim.durable(1));
        let n = kept.len() as u64;
        assert_eq!(
            kept,
            (0..n).collect::<Vec<_>>(),
            "seed {seed}: not a prefix"
        );
        assert!(
            (persisted..=emitted).contains(&n),
            "seed {seed}: {n} outside {persisted}..={emitted}"
        );
        torn += u64::from(n % RECORDS_PER_WRITE != 0);
        beyond_persisted += u64::from(n > persisted);
        // The core accepts what recovery returns, torn or not.
        sim.restart(1);
        assert_eq!(sim.node(1).unwrap().recovered_records, n);
    }
    assert!(torn > 0, "no crash tore an append");
    assert!(beyond_persisted > 0, "no crash kept an unreported write");
}

#[test]
fn persisted_arrives_in_write_order_and_matches_the_disk() {
    let mut sim = probe_sim(6, appending(), |c| slow_disk(c, CrashLoss::AllPending));
    sim.set_invariant(|cluster| {
        for (id, p) in cluster.live() {
            let durable = counters(cluster.durable(id)).len() as u64;
            if durable != p.persisted_records {
                return Err(format!(
                    "n{id}: disk holds {durable}, core was told {}",
                    p.persisted_records
                ));
            }
        }
        Ok(())
    });
    ok(sim.run_for(2_000));
    assert!(sim.stats().writes_completed > 300);
}
