use crate::probe::ProbeConfig;
use crate::{ok, probe_sim};
use machine::NodeId;
use sim::{Latency, NetConfig};
use std::collections::BTreeMap;

fn pinging() -> ProbeConfig {
    ProbeConfig {
        ping: true,
        ..ProbeConfig::default()
    }
}

/// Messages each node has received from each other node, as (from, to) -> count.
fn received(sim: &sim::Sim<crate::probe::Probe>) -> BTreeMap<(NodeId, NodeId), u64> {
    let mut counts = BTreeMap::new();
    for (to, p) in sim.cluster().live() {
        for (&from, &n) in &p.received {
            counts.insert((from, to), n);
        }
    }
    counts
}

fn delta(
    before: &BTreeMap<(NodeId, NodeId), u64>,
    after: &BTreeMap<(NodeId, NodeId), u64>,
    link: (NodeId, NodeId),
) -> u64 {
    after.get(&link).copied().unwrap_or(0) - before.get(&link).copied().unwrap_or(0)
}

#[test]
fn a_partition_blocks_exactly_the_chosen_directed_links_including_messages_in_flight() {
    // Latency up to 40 ms, so many messages are in flight when the cut happens: they must be
    // dropped on arrival too.
    let mut sim = probe_sim(1, pinging(), |c| {
        c.net.latency = Latency::Uniform {
            min_ms: 20,
            max_ms: 40,
        };
    });
    ok(sim.run_for(200));
    sim.partition(&[(1, 2), (3, 1)]);
    assert_eq!(sim.blocked_links(), vec![(1, 2), (3, 1)]);
    let before = received(&sim);
    ok(sim.run_for(500));
    let after = received(&sim);
    for link in [(1, 2), (3, 1)] {
        assert_eq!(
            delta(&before, &after, link),
            0,
            "blocked link {link:?} delivered"
        );
    }
    for link in [(2, 1), (1, 3), (2, 3), (3, 2)] {
        let d = delta(&before, &after, link);
        assert!(d >= 40, "open link {link:?} delivered only {d} in 500 ms");
    }
    assert!(sim.stats().peer_blocked > 0);
    sim.heal();
    let healed = received(&sim);
    ok(sim.run_for(200));
    let later = received(&sim);
    assert!(delta(&healed, &later, (1, 2)) > 0 && delta(&healed, &later, (3, 1)) > 0);
}

#[test]
fn isolation_and_random_halves_cut_both_ways_between_groups() {
    let mut sim = probe_sim(2, pinging(), |c| c.nodes = 5);
    sim.isolate(3);
    let blocked = sim.blocked_links();
    assert_eq!(blocked.len(), 8);
    assert!(
        blocked.iter().all(|&(f, t)| (f == 3) != (t == 3)),
        "{blocked:?}"
    );
    sim.heal();
    let (big, small) = sim.partition_random_halves();
    assert_eq!((big.len(), small.len()), (3, 2));
    for &a in &big {
        for &b in &small {
            assert!(sim.is_blocked(a, b) && sim.is_blocked(b, a));
        }
    }
    assert_eq!(sim.blocked_links().len(), 12);
}

#[test]
fn loss_and_duplication_happen_at_their_rates() {
    let mut sim = probe_sim(3, pinging(), |c| {
        c.net = NetConfig {
            loss: 0.2,
            duplicate: 0.1,
            ..NetConfig::default()
        };
    });
    ok(sim.run_for(5_000));
    let s = sim.stats().clone();
    let lost = s.peer_lost as f64 / s.peer_sent as f64;
    assert!((0.17..0.23).contains(&lost), "loss rate {lost}");
    let dup = s.peer_duplicated as f64 / (s.peer_sent - s.peer_lost) as f64;
    assert!((0.08..0.12).contains(&dup), "duplication rate {dup}");
    // Everything not lost arrives (bar the last 10 ms still in flight), copies included.
    let scheduled = s.peer_sent - s.peer_lost + s.peer_duplicated;
    assert!(
        s.peer_delivered <= scheduled && s.peer_delivered + 30 >= scheduled,
        "{s:?}"
    );
    assert_eq!(received(&sim).values().sum::<u64>(), s.peer_delivered);
}

#[test]
fn random_latency_reorders_messages_on_a_link() {
    // The probe's ping carries its tick number; count arrivals lower than one already seen.
    let mut sim = probe_sim(4, pinging(), |c| {
        c.net.latency = Latency::Uniform {
            min_ms: 1,
            max_ms: 50,
        };
        c.trace.debug_messages = true;
        c.trace.keep_last = 10_000;
    });
    ok(sim.run_for(1_000));
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut reordered = 0;
    for line in sim
        .trace_tail()
        .iter()
        .filter(|l| l.contains("n1 -> n2 peer"))
    {
        let n: u64 = line
            .rsplit("Ping(")
            .next()
            .unwrap()
            .trim_end_matches(')')
            .parse()
            .unwrap();
        let prev = last.entry("n1n2".into()).or_insert(0);
        if n < *prev {
            reordered += 1;
        }
        *prev = (*prev).max(n);
    }
    assert!(reordered > 0, "no reordering with 1..50 ms latency");
}
