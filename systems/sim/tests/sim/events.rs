//! The event log: core events with their node and virtual time, the simulator's own crash,
//! recover, fault and heal lines, its limits and refusals, and disks preloaded before boot.

use crate::journal::{disk_with_boots, Journal, JournalConfig, BOOTS};
use crate::probe::ProbeConfig;
use crate::{ok, probe_sim};
use checkers::atomic_commit;
use checkers::verdict::Validity;
use serde_json::{json, Map, Value};
use sim::{ErrorKind, Fault, Sim, SimConfig, SimError};
use std::collections::{BTreeMap, BTreeSet};

fn gossiping() -> JournalConfig {
    JournalConfig {
        gossip_every: 5,
        raw_on_first_tick: None,
    }
}

fn journal_sim(
    seed: u64,
    journal: JournalConfig,
    adjust: impl FnOnce(&mut SimConfig),
) -> Result<Sim<Journal>, SimError> {
    let mut config = SimConfig {
        record_events: true,
        ..SimConfig::default()
    };
    adjust(&mut config);
    Sim::new(seed, config, journal)
}

fn lines(text: &str) -> Vec<Map<String, Value>> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn field<'a>(line: &'a Map<String, Value>, name: &str) -> &'a str {
    line.get(name).and_then(Value::as_str).unwrap_or("")
}

/// The simulator's own lines as `event` or `event node`.
fn own_lines(text: &str) -> Vec<String> {
    lines(text)
        .iter()
        .filter(|l| ["crash", "recover", "fault", "heal"].contains(&field(l, "event")))
        .map(|l| format!("{} {}", field(l, "event"), field(l, "node")))
        .map(|s| s.trim_end().to_string())
        .collect()
}

#[test]
fn core_events_carry_their_node_and_the_virtual_time_in_order() {
    let mut sim = ok(journal_sim(3, gossiping(), |_| {}));
    ok(sim.run_for(1_000));
    let log = lines(sim.events_jsonl());
    assert_eq!(log.len(), sim.events_len());
    let boots: Vec<(u64, &str, &str)> = log[..3]
        .iter()
        .map(|l| {
            (
                l["time"].as_u64().unwrap(),
                field(l, "node"),
                field(l, "id"),
            )
        })
        .collect();
    assert_eq!(
        boots,
        [
            (0, "n1", "boot-1"),
            (0, "n2", "boot-1"),
            (0, "n3", "boot-1")
        ]
    );
    let mut last_ns = 0;
    let mut sent = BTreeMap::new();
    let mut received = 0;
    for l in &log {
        let time_ns = l["time"].as_u64().expect("an integer time");
        assert!(time_ns >= last_ns, "time went back in {l:?}");
        assert_eq!(time_ns % 1_000_000, 0, "virtual ms in ns: {l:?}");
        last_ns = time_ns;
        let node = field(l, "node");
        assert!(["n1", "n2", "n3"].contains(&node), "{l:?}");
        match field(l, "event") {
            "send" => {
                sent.insert(field(l, "msg").to_string(), field(l, "to").to_string());
            }
            "receive" => {
                let to = sent.get(field(l, "msg")).expect("received after sent");
                assert_eq!(to, node, "received by the node the send names");
                received += 1;
            }
            "checkpoint" => {}
            other => panic!("unexpected event {other:?} without faults"),
        }
    }
    assert!(
        received > 50 && sent.len() >= received,
        "{received} of {}",
        sent.len()
    );
    assert!(last_ns > 900_000_000, "events until the end: {last_ns}");
    // The checkers read it as it is.
    let events = sim.events().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.events.len(), log.len());
    assert_eq!(events.nodes, ["n1", "n2", "n3"]);
    let verdict = checkers::recovery_line::check(&events).unwrap();
    assert_eq!(verdict.valid, Validity::Valid, "{verdict:?}");
}

#[test]
fn a_crash_and_its_recovery_surround_the_nodes_silence() {
    let mut sim = ok(journal_sim(4, gossiping(), |_| {}));
    ok(sim.run_for(200));
    sim.isolate(1);
    ok(sim.run_for(100));
    sim.crash(2);
    ok(sim.run_for(100));
    sim.heal();
    ok(sim.run_for(100));
    sim.restart(2);
    ok(sim.run_for(100));
    let text = sim.events_jsonl();
    assert_eq!(own_lines(text), ["fault", "crash n2", "recover n2", "heal"]);
    let log = lines(text);
    let at = |event: &str| {
        log.iter()
            .position(|l| field(l, "event") == event)
            .unwrap_or_else(|| panic!("no {event}"))
    };
    let (crash, recover, heal) = (at("crash"), at("recover"), at("heal"));
    assert_eq!(log[crash]["time"], json!(300_000_000u64));
    assert_eq!(log[recover]["time"], json!(500_000_000u64));
    assert!(
        log[crash + 1..recover]
            .iter()
            .all(|l| field(l, "node") != "n2"),
        "a crashed node records nothing"
    );
    // The new life's first event follows the recovery; the boot count survived on disk.
    assert_eq!(
        (
            field(&log[recover + 1], "node"),
            field(&log[recover + 1], "id")
        ),
        ("n2", "boot-2")
    );
    assert!(heal > recover + 1 && log[heal]["time"] == log[recover]["time"]);
    assert!(!log[heal].contains_key("node") && !log[at("fault")].contains_key("node"));
    let events = sim.events().unwrap_or_else(|e| panic!("{e}"));
    let n2 = events.node("n2").unwrap();
    let kinds: Vec<_> = events
        .events
        .iter()
        .filter(|e| e.node == Some(n2))
        .map(|e| &e.kind)
        .filter(|k| {
            matches!(
                k,
                atomic_commit::EventKind::Crash | atomic_commit::EventKind::Recover
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            &atomic_commit::EventKind::Crash,
            &atomic_commit::EventKind::Recover
        ]
    );
}

#[test]
fn pauses_loss_bursts_and_clock_jumps_are_faults_that_heal() {
    let mut sim = ok(journal_sim(5, JournalConfig::default(), |_| {}));
    sim.heal();
    assert_eq!(own_lines(sim.events_jsonl()), Vec::<String>::new());
    sim.pause(1);
    sim.apply_fault(Fault::LossBurst { loss: 0.5 });
    ok(sim.run_for(50));
    sim.resume(1);
    sim.apply_fault(Fault::LossEnd);
    sim.clock_jump(3, -2_000);
    sim.crash(2);
    sim.crash(2);
    sim.pause(3);
    sim.restart(2);
    sim.resume(3);
    assert_eq!(
        own_lines(sim.events_jsonl()),
        [
            "fault",
            "fault",
            "heal",
            "fault",
            "heal",
            "crash n2",
            "fault",
            "recover n2",
            "heal"
        ]
    );
}

#[test]
fn the_same_seed_gives_the_same_event_log_under_chaos() {
    let run = |seed| {
        let mut sim = ok(journal_sim(seed, gossiping(), |c| {
            *c = SimConfig {
                record_events: true,
                ..SimConfig::chaos(3)
            }
        }));
        ok(sim.run_for(5_000));
        sim.stop_faults();
        sim.heal_all();
        ok(sim.run_for(100));
        sim.events().unwrap_or_else(|e| panic!("{e}"));
        sim.events_jsonl().to_string()
    };
    let a = run(42);
    assert_eq!(a, run(42), "event logs differ for one seed");
    assert_ne!(a, run(43));
    let own = own_lines(&a);
    let kinds: BTreeSet<&str> = own.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["crash", "fault", "heal", "recover"]
    );
    assert_eq!(
        own.last().map(String::as_str),
        Some("heal"),
        "heal_all ends every fault"
    );
}

#[test]
fn nodes_boot_from_preloaded_disks() {
    let mut first = ok(journal_sim(6, JournalConfig::default(), |_| {}));
    ok(first.run_for(100));
    assert_eq!(first.durable(1), &disk_with_boots(1));
    let disks = BTreeMap::from([(1, first.durable(1).clone()), (3, disk_with_boots(41))]);
    let config = SimConfig {
        record_events: true,
        ..SimConfig::default()
    };
    let second: Sim<Journal> = ok(Sim::with_disks(7, config, JournalConfig::default(), disks));
    let boots: Vec<u64> = (1..=3).map(|n| second.node(n).unwrap().boots).collect();
    assert_eq!(boots, [2, 1, 42]);
    // Preloaded contents are durable before anything the new life writes completes.
    assert_eq!(second.durable(3), &disk_with_boots(41));
    assert!(!second.durable(2).blobs.contains_key(BOOTS));
    let ids: Vec<String> = lines(second.events_jsonl())
        .iter()
        .map(|l| field(l, "id").to_string())
        .collect();
    assert_eq!(ids, ["boot-2", "boot-1", "boot-42"]);
}

#[test]
#[should_panic(expected = "a disk for n4, which is not a member of 1..=3")]
fn a_disk_for_a_node_that_is_not_a_member_is_a_setup_bug() {
    let disks = BTreeMap::from([(4, disk_with_boots(1))]);
    let _ = Sim::<Journal>::with_disks(1, SimConfig::default(), JournalConfig::default(), disks);
}

/// The error of a run whose cores record `raw` on their first tick.
fn raw_error(raw: Value) -> SimError {
    let journal = JournalConfig {
        gossip_every: 0,
        raw_on_first_tick: Some(raw),
    };
    let mut sim = ok(journal_sim(8, journal, |_| {}));
    sim.run_for(100).unwrap_err()
}

#[test]
fn events_that_are_not_objects_or_set_time_or_node_stop_the_run() {
    let e = raw_error(json!(5));
    match e.kind() {
        ErrorKind::BadEvent { problem, event, .. } => {
            assert_eq!(problem, "serializes to a JSON number, not an object");
            assert!(event.contains("Raw(Number(5))"), "{event}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e
        .to_string()
        .contains("recorded an event that serializes to a JSON number"));
    let e = raw_error(json!({"event": "checkpoint", "id": 1, "time": 3}));
    match e.kind() {
        ErrorKind::BadEvent { problem, .. } => {
            assert_eq!(
                problem,
                "has its own \"time\" field, which the runtime adds"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn null_events_are_skipped() {
    let journal = JournalConfig {
        gossip_every: 0,
        raw_on_first_tick: Some(Value::Null),
    };
    let mut sim = ok(journal_sim(9, journal, |_| {}));
    ok(sim.run_for(100));
    assert_eq!(sim.events_len(), 3, "{}", sim.events_jsonl());
}

#[test]
fn a_core_that_records_events_needs_record_events_on() {
    let e = journal_sim(10, gossiping(), |c| c.record_events = false)
        .err()
        .expect("booting records a checkpoint");
    match e.kind() {
        ErrorKind::EventsOff { node, event } => {
            assert_eq!(*node, 1);
            assert!(event.contains("boot-1"), "{event}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string().contains("SimConfig::record_events is off"),
        "{e}"
    );
}

#[test]
fn cores_without_events_keep_no_log_unless_asked() {
    let mut quiet = probe_sim(11, ProbeConfig::default(), |_| {});
    quiet.crash(1);
    quiet.restart(1);
    ok(quiet.run_for(100));
    assert_eq!((quiet.events_jsonl(), quiet.events_len()), ("", 0));
    let mut asked = probe_sim(11, ProbeConfig::default(), |c| c.record_events = true);
    asked.crash(1);
    asked.restart(1);
    ok(asked.run_for(100));
    assert_eq!(
        own_lines(asked.events_jsonl()),
        ["crash n1", "recover n1", "heal"]
    );
    assert_eq!(asked.events_len(), 3, "() events are never written");
}

#[test]
fn the_log_stops_the_run_at_its_limits() {
    let mut sim = ok(journal_sim(12, gossiping(), |_| {}));
    sim.limits_mut().max_events = 50; // applies to a run in progress
    let e = sim.run_for(10_000).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::EventLogFull { limit: 50 });
    assert_eq!(sim.events_len(), 50);
    assert!(e
        .to_string()
        .contains("event log exceeded its limit of 50 events"));
    let mut sim = ok(journal_sim(12, gossiping(), |c| {
        c.limits.max_event_bytes = 4_096
    }));
    let e = sim.run_for(10_000).unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::EventLogTooLarge { limit_bytes: 4_096 }
    );
    assert!(sim.events_jsonl().len() <= 4_096);
}
