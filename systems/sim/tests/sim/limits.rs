use crate::probe::ProbeConfig;
use crate::{ok, probe_sim};
use sim::ErrorKind;

#[test]
fn a_message_storm_hits_the_queue_limit_instead_of_exhausting_memory() {
    let storm = ProbeConfig {
        storm: true,
        ..ProbeConfig::default()
    };
    let mut sim = probe_sim(13, storm, |c| c.limits.max_queue = 10_000);
    let e = sim.run_for(60_000).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::QueueFull { limit: 10_000 });
    assert!(e.to_string().contains("seed 13"), "{e}");
}

#[test]
fn step_and_time_limits_stop_the_run_with_an_error() {
    let mut sim = probe_sim(14, ProbeConfig::default(), |c| c.limits.max_steps = 500);
    let e = sim.run_for(1_000_000).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::StepLimit { limit: 500 });
    assert_eq!(e.step(), 500);
    let mut sim = probe_sim(14, ProbeConfig::default(), |c| c.limits.max_time_ms = 1_000);
    ok(sim.run_for(900));
    let steps = sim.steps();
    let e = sim.run_for(200).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::TimeLimit { limit_ms: 1_000 });
    // The event past the limit was not consumed: the run stopped where it was.
    assert!(sim.now_ms() <= 1_000);
    assert!(sim.step().is_err() && sim.steps() == e.step() && e.step() > steps);
}

#[test]
fn run_until_gives_up_at_its_deadline_and_stops_when_the_condition_holds() {
    let mut sim = probe_sim(15, ProbeConfig::default(), |_| {});
    let e = sim.run_until(|_| false, 500).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Deadline { max_ms: 500 });
    assert_eq!(sim.now_ms(), 500);
    ok(sim.run_until(|s| s.node(1).unwrap().ticks >= 100, 5_000));
    assert_eq!(sim.node(1).unwrap().ticks, 100);
    // With every node down nothing is scheduled: the deadline still ends the wait.
    for n in 1..=3 {
        sim.crash(n);
    }
    let e = sim.run_until(|_| false, 1_000).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Deadline { max_ms: 1_000 });
}

#[test]
fn an_oversized_message_is_refused_with_its_size() {
    let big = ProbeConfig {
        oversized: true,
        ..ProbeConfig::default()
    };
    let mut sim = probe_sim(16, big, |_| {});
    let e = sim.run_for(100).unwrap_err();
    match e.kind() {
        ErrorKind::MessageTooLarge { bytes, limit, .. } => assert!(bytes > limit),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failing_invariant_stops_the_run_and_says_how_to_replay_it() {
    let mut sim = probe_sim(1234, ProbeConfig::default(), |_| {});
    sim.set_invariant(|c| match c.node(2) {
        Some(p) if p.ticks > 20 => Err(format!("n2 ticked {} times", p.ticks)),
        _ => Ok(()),
    });
    let e = sim.run_for(10_000).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Invariant("n2 ticked 21 times".into()));
    assert_eq!(e.seed(), 1234);
    assert!(e.time_ms() < 300);
    let text = e.to_string();
    assert!(text.contains("seed 1234, step"), "{text}");
    assert!(text.contains("SIM_SEED=1234 cargo test"), "{text}");
    assert!(text.contains("n2 tick"), "the trace tail is shown: {text}");
    assert_eq!(e.step(), sim.steps());
}
