use crate::probe::ProbeConfig;
use crate::{ok, probe_sim};
use checkers::history::{OpType, Process};
use sim::{ClockConfig, FaultConfig};

fn pinging() -> ProbeConfig {
    ProbeConfig {
        ping: true,
        ..ProbeConfig::default()
    }
}

#[test]
fn a_paused_node_neither_ticks_nor_receives_until_resumed_then_gets_what_waited() {
    let mut sim = probe_sim(7, pinging(), |_| {});
    ok(sim.run_for(100));
    sim.pause(2);
    let (ticks, got) = {
        let p = sim.node(2).unwrap();
        (p.ticks, p.received.values().sum::<u64>())
    };
    ok(sim.run_for(500));
    let p = sim.node(2).unwrap();
    assert_eq!((p.ticks, p.received.values().sum::<u64>()), (ticks, got));
    sim.resume(2);
    let p = sim.node(2).unwrap();
    let waited = p.received.values().sum::<u64>() - got;
    assert!(
        waited >= 90,
        "only {waited} waiting messages delivered on resume"
    );
    ok(sim.run_for(100));
    assert!(sim.node(2).unwrap().ticks >= ticks + 9, "ticks resume");
}

#[test]
fn each_node_sees_its_own_clock_and_jumps_move_it_either_way() {
    let mut sim = probe_sim(8, ProbeConfig::default(), |c| {
        c.clock = ClockConfig {
            max_offset_ms: 10_000,
            max_drift_ppm: 50_000,
        };
    });
    ok(sim.run_for(10_000));
    let locals: Vec<u64> = sim.members().iter().map(|&n| sim.local_ms(n)).collect();
    assert!(locals.windows(2).any(|w| w[0] != w[1]), "{locals:?}");
    for (id, p) in sim.cluster().live() {
        // The node's last input came within a tick of now, on its own clock.
        assert!(sim.local_ms(id).abs_diff(p.last_now_ms) <= 15, "n{id}");
    }
    // Drift changes the tick rate: ticks per 10 s differ between nodes.
    let ticks: Vec<u64> = sim.cluster().live().map(|(_, p)| p.ticks).collect();
    assert!(ticks.iter().any(|&t| t != ticks[0]), "{ticks:?}");
    let before = sim.local_ms(1);
    sim.clock_jump(1, -5_000);
    assert_eq!(sim.local_ms(1), before - 5_000);
    ok(sim.run_for(20));
    let seen = sim.node(1).unwrap().last_now_ms;
    assert!(
        seen < before,
        "the core saw {seen} after a jump back from {before}"
    );
}

#[test]
fn the_fault_plan_crashes_restarts_partitions_and_records_nemesis_events() {
    let mut sim = probe_sim(9, pinging(), |c| {
        c.faults = FaultConfig {
            interval_ms: (50, 200),
            ..FaultConfig::chaos()
        };
    });
    ok(sim.run_for(20_000));
    let s = sim.stats();
    assert!(
        s.crashes > 3 && s.pauses > 0 && s.peer_blocked > 0 && s.peer_lost > 0,
        "{s:?}"
    );
    assert!(
        s.boots > 3 + s.crashes.saturating_sub(3),
        "crashed nodes come back: {s:?}"
    );
    let nemesis: Vec<&str> = sim
        .history_ops()
        .iter()
        .filter(|o| o.process == Process::nemesis())
        .inspect(|o| assert_eq!(o.op_type, OpType::Info))
        .map(|o| o.f.as_str())
        .collect();
    for f in [
        "partition",
        "heal",
        "crash",
        "restart",
        "pause",
        "resume",
        "clock-jump",
    ] {
        assert!(nemesis.contains(&f), "no {f} in {nemesis:?}");
    }
    sim.history().expect("nemesis events make a valid history");
    // Never more than a minority down at once (checked after every step).
    let mut sim = probe_sim(10, pinging(), |c| c.faults = FaultConfig::chaos());
    sim.set_invariant(|c| {
        let down = c.len() - c.live().filter(|&(id, _)| !c.is_paused(id)).count();
        if down > 1 {
            return Err(format!("{down} nodes down"));
        }
        Ok(())
    });
    ok(sim.run_for(20_000));
}

#[test]
fn heal_all_ends_every_fault() {
    let mut sim = probe_sim(11, pinging(), |c| c.faults = FaultConfig::chaos());
    ok(sim.run_for(3_000));
    sim.crash(1);
    sim.pause(2);
    sim.isolate(3);
    sim.stop_faults();
    sim.heal_all();
    assert!(sim.blocked_links().is_empty());
    assert!(sim
        .members()
        .iter()
        .all(|&n| sim.is_up(n) && !sim.is_paused(n)));
}

#[test]
fn each_boot_gets_a_fresh_seed_from_the_run_seed() {
    let mut sim = probe_sim(12, ProbeConfig::default(), |_| {});
    let seeds: Vec<u64> = sim.cluster().live().map(|(_, p)| p.boot_seed).collect();
    assert!(seeds[0] != seeds[1] && seeds[1] != seeds[2]);
    sim.crash(1);
    sim.restart(1);
    assert_ne!(sim.node(1).unwrap().boot_seed, seeds[0]);
    let again = probe_sim(12, ProbeConfig::default(), |_| {});
    let same: Vec<u64> = again.cluster().live().map(|(_, p)| p.boot_seed).collect();
    assert_eq!(same, seeds);
}
