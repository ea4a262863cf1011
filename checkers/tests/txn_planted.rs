//! The transactional checker against histories whose verdict is known by construction: the
//! synthetic store of `checkers::txn::synth` is strict serializable, and each plant creates one
//! named anomaly on keys and processes of its own. A disagreement is a bug in the generator or
//! in the checker; the panic message carries the options, the planted events and the verdict.

use checkers::history::{jsonl, History};
use checkers::txn::synth::{self, Generated, Options, Plant, Workload};
use checkers::txn::{self, Options as CheckOptions, Outcome};
use checkers::verdict::Validity;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// The checker's name for the generator's workload.
fn checker_workload(w: Workload) -> txn::Workload {
    match w {
        Workload::ListAppend => txn::Workload::ListAppend,
        Workload::RwRegister => txn::Workload::RwRegister,
    }
}

fn check(o: &Options, h: &History) -> Outcome {
    let options = CheckOptions::new(checker_workload(o.workload));
    txn::check(h, &options).expect("synthetic histories are well-formed")
}

fn workload() -> impl Strategy<Value = Workload> {
    prop_oneof![Just(Workload::ListAppend), Just(Workload::RwRegister)]
}

/// Small and large key spaces, short and long transactions, some crashes and failures.
fn options() -> impl Strategy<Value = Options> {
    (
        workload(),
        any::<u64>(),
        0usize..300,
        1usize..12,
        1usize..8,
        1usize..12,
        1usize..6,
        0.0f64..1.0,
        0.0f64..0.2,
        0.0f64..0.2,
    )
        .prop_map(
            |(w, seed, txns, clients, keys_active, max_writes, max_ops, reads, info, fail)| {
                Options {
                    clients,
                    keys_active,
                    max_writes_per_key: max_writes,
                    max_ops_per_txn: max_ops,
                    read_fraction: reads,
                    info_fraction: info,
                    fail_fraction: fail,
                    ..Options::new(w, seed, txns)
                }
            },
        )
}

/// Options with a plant that applies to their workload.
fn planted_options() -> impl Strategy<Value = Options> {
    (options(), any::<prop::sample::Index>()).prop_map(|(o, i)| {
        let plants: Vec<Plant> = Plant::ALL
            .iter()
            .copied()
            .filter(|p| p.applies_to(o.workload))
            .collect();
        Options {
            plant: Some(plants[i.index(plants.len())]),
            ..o
        }
    })
}

/// Whether the plant's anomaly must make a strict-serializable history invalid. Garbage reads
/// are reported but forbidden by no model in the checker's table (`txn::consistency`): a value
/// from outside the recorded history (preloaded data, a truncated history) looks the same, and
/// Elle judges such histories valid.
fn invalidates(plant: Plant) -> bool {
    plant != Plant::GarbageRead
}

/// Whether the verdict is what the plant calls for: its anomaly named, and invalid if it must be.
fn found(plant: Plant, outcome: &Outcome) -> bool {
    let v = &outcome.verdict;
    let named = v.anomaly_types.iter().any(|t| t == plant.name());
    let validity = if invalidates(plant) {
        Validity::Invalid
    } else {
        Validity::Valid
    };
    named && v.valid == validity
}

/// Everything needed to reproduce a disagreement: the options, the planted events (the whole
/// history when it is small) and what the checker said.
fn report(o: &Options, g: &Generated, outcome: &Outcome) -> String {
    let h = &g.history;
    let events = match h.len() {
        0..=200 => jsonl::write(&h.ops),
        n => format!(
            "({n} events; planted block, events {:?}:)\n{}",
            g.planted,
            jsonl::write(&h.ops[g.planted.clone()])
        ),
    };
    let v = &outcome.verdict;
    format!(
        "{o:?}\nvalid: {:?}\nanomaly types: {:?}\nanomalies: {:#?}\n{events}",
        v.valid, v.anomaly_types, v.anomalies
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn clean_histories_are_valid(o in options()) {
        let g = synth::generate_detailed(&o);
        let outcome = check(&o, &g.history);
        prop_assert_eq!(outcome.verdict.valid, Validity::Valid, "{}", report(&o, &g, &outcome));
        prop_assert!(outcome.verdict.anomaly_types.is_empty(), "{}", report(&o, &g, &outcome));
    }

    #[test]
    fn planted_anomalies_are_found_and_named(o in planted_options()) {
        let g = synth::generate_detailed(&o);
        let outcome = check(&o, &g.history);
        let plant = o.plant.expect("planted options carry a plant");
        prop_assert!(found(plant, &outcome), "{} not found\n{}", plant.name(), report(&o, &g, &outcome));
    }
}

/// Every plant on its own (no clean part) and in a busy history, with fixed seeds: a quick,
/// exhaustive complement to the sampled properties above.
#[test]
fn every_plant_is_found_alone_and_in_company() {
    let mut failures = Vec::new();
    for &w in Workload::ALL {
        for &plant in Plant::ALL.iter().filter(|p| p.applies_to(w)) {
            for (seed, txns) in [(1, 0), (2, 200)] {
                let o = Options {
                    plant: Some(plant),
                    ..Options::new(w, seed, txns)
                };
                let g = synth::generate_detailed(&o);
                let outcome = check(&o, &g.history);
                if !found(plant, &outcome) {
                    failures.push(report(&o, &g, &outcome));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The anomaly types a plant brings along with its own, because its construction cannot avoid
/// them. Anything else the checker reports for a plant is a bug in the generator (the plant is
/// not the minimal construction it claims to be) or in the checker.
fn unavoidable_extras(plant: Plant, w: Workload) -> &'static [&'static str] {
    match (plant, w) {
        // The read of T0's intermediate append is a wr edge T0 -> T1, and T0's next append is
        // the version after what T1 read: rw T1 -> T0. (Rw-register draws no wr edge from a
        // non-final write.)
        (Plant::G1b, Workload::ListAppend) => &["G-single"],
        // (A process cycle is also a real-time one, but the checker reports only the
        // variant that needs fewer kinds of edges.)
        // The read showing the failed append followed by a committed one reads the failed one.
        (Plant::DirtyUpdate, _) => &["G1a"],
        // Each reader of the shared version has an rw edge to the other's write; list-append
        // also orders the two appends (ww), rw-register cannot.
        (Plant::LostUpdate, Workload::ListAppend) => &["G-single"],
        (Plant::LostUpdate, Workload::RwRegister) => &["G2-item"],
        // Rw-register orders versions only by a read followed by a write in one transaction,
        // so every version edge between two writers comes with a wr edge between them.
        (Plant::G0 | Plant::CyclicVersions, Workload::RwRegister) => &["G1c"],
        _ => &[],
    }
}

/// Each plant alone makes the checker report exactly its own anomaly type plus the unavoidable
/// ones: the plants are minimal, so their anomaly types say what a checker found, not noise.
#[test]
fn each_plant_reports_only_its_own_and_unavoidable_types() {
    let mut wrong = Vec::new();
    for &w in Workload::ALL {
        for &plant in Plant::ALL.iter().filter(|p| p.applies_to(w)) {
            let o = Options {
                plant: Some(plant),
                ..Options::new(w, 3, 0)
            };
            let g = synth::generate_detailed(&o);
            let outcome = check(&o, &g.history);
            let mut expected: BTreeSet<&str> =
                unavoidable_extras(plant, w).iter().copied().collect();
            expected.insert(plant.name());
            let reported: BTreeSet<&str> = outcome
                .verdict
                .anomaly_types
                .iter()
                .map(String::as_str)
                .collect();
            if reported != expected {
                wrong.push(format!(
                    "expected {expected:?}\n{}",
                    report(&o, &g, &outcome)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// A million clean transactions of each workload check valid. Slow in debug builds:
/// `cargo test --release -p faultline-checkers --test txn_planted -- --ignored --nocapture`.
#[test]
#[ignore]
fn a_million_clean_transactions_check_valid() {
    for &w in Workload::ALL {
        let o = Options::new(w, 1, 1_000_000);
        let started = std::time::Instant::now();
        let h = synth::generate(&o);
        let generated = started.elapsed();
        let outcome = check(&o, &h);
        eprintln!(
            "{}: generated {} events in {generated:?}, checked in {:?}",
            w.name(),
            h.len(),
            started.elapsed() - generated
        );
        assert_eq!(
            outcome.verdict.valid,
            Validity::Valid,
            "{:?}",
            outcome.verdict.anomalies
        );
    }
}
