//! The checker against histories whose verdict is known by construction: the synthetic register
//! store is linearizable, and its StaleReads mode plants reads that no linearization explains.
//! A disagreement is a bug in the generator or in the checker; the panic message carries the
//! parameters and the history to reproduce it.

use checkers::history::{jsonl, Format, History};
use checkers::linearizable::{check, Options, Outcome, Semantics, Validity};
use checkers::model::ModelKind;
use checkers::synth::{register_history, Mode, RegisterParams, Synth};
use proptest::prelude::*;
use std::time::Duration;

fn params() -> impl Strategy<Value = RegisterParams> {
    (
        10usize..300,
        1usize..8,
        0usize..3,
        0.0f64..0.2,
        0.0f64..0.1,
        any::<u64>(),
    )
        .prop_map(
            |(ops, clients, keys, crash_rate, fail_rate, seed)| RegisterParams {
                keys,
                crash_rate,
                fail_rate,
                ..RegisterParams::new(ops, clients, seed)
            },
        )
}

fn model_for(p: &RegisterParams) -> ModelKind {
    match p.keys {
        0 => ModelKind::CasRegister,
        _ => ModelKind::Kv,
    }
}

fn verdict(p: &RegisterParams, s: &Synth) -> Outcome {
    let mut options = Options::new(Semantics::for_format(Format::JsonLines));
    options.time_limit = Some(Duration::from_secs(10));
    check(&s.history, model_for(p), &options).expect("synthetic histories fit the model")
}

/// Everything needed to reproduce a disagreement.
fn report(p: &RegisterParams, s: &Synth, o: &Outcome) -> String {
    format!(
        "{p:?}\nplanted: {:?}\n{}\n{}",
        s.planted,
        o.explain(&s.history),
        small_text(&s.history)
    )
}

fn small_text(h: &History) -> String {
    match h.len() {
        0..=200 => jsonl::write(&h.ops),
        n => format!("({n} events; regenerate from the parameters)"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn linearizable_histories_are_valid(p in params()) {
        let s = register_history(&p);
        let o = verdict(&p, &s);
        prop_assert_eq!(o.valid, Validity::Valid, "{}", report(&p, &s, &o));
    }

    #[test]
    fn planted_stale_reads_are_caught(p in params(), rate in 0.001f64..0.2) {
        let p = RegisterParams { mode: Mode::StaleReads { rate }, ..p };
        let s = register_history(&p);
        prop_assert!(!s.planted.is_empty());
        let o = verdict(&p, &s);
        prop_assert_eq!(o.valid, Validity::Invalid, "{}", report(&p, &s, &o));
        let failure = o.failure.as_ref().expect("an invalid verdict names the failure");
        prop_assert_eq!(failure.op.f.as_str(), "read", "{}", report(&p, &s, &o));
        // Every op but the planted reads has a linearization, so the search gets furthest by
        // stopping at one of them.
        prop_assert!(s.planted.contains(&failure.op.invoke_index), "{}", report(&p, &s, &o));
    }
}

/// The inputs of the synthetic benchmarks must get the verdicts the benchmarks assume.
fn benchmark_sized(keys: usize) {
    let p = RegisterParams {
        keys,
        crash_rate: 0.02,
        ..RegisterParams::new(50_000, 30, 1)
    };
    let s = register_history(&p);
    let o = verdict(&p, &s);
    assert_eq!(o.valid, Validity::Valid, "{p:?}: {}", o.explain(&s.history));
    let p = RegisterParams {
        mode: Mode::StaleReads { rate: 0.0001 },
        ..p
    };
    let s = register_history(&p);
    let o = verdict(&p, &s);
    assert_eq!(
        o.valid,
        Validity::Invalid,
        "{p:?}: {}",
        o.explain(&s.history)
    );
}

#[test]
fn kv_benchmark_history_gets_its_verdicts() {
    benchmark_sized(10);
}

/// Found by `planted_stale_reads_are_caught`. Dropping the failed cas ops, the history is
/// w2 [1..6], w3 [3..4], cas 3->4 [7..12], read -> 2 [11..19], read -> null [15..16] (planted:
/// w3 completed before it began), w2 [17..18]. The only op no order can place is the read of
/// null; the checker once blamed the cas, which one of its own prefixes linearizes.
#[test]
fn blame_falls_on_the_stale_read_seed_5518() {
    let p = RegisterParams {
        mode: Mode::StaleReads { rate: 0.3 },
        ..RegisterParams::new(10, 2, 5518)
    };
    let s = register_history(&p);
    assert_eq!(s.planted, vec![15]);
    let o = verdict(&p, &s);
    assert_eq!(o.valid, Validity::Invalid, "{}", report(&p, &s, &o));
    let blamed = o.failure.as_ref().map(|f| f.op.invoke_index);
    assert_eq!(blamed, Some(15), "{}", report(&p, &s, &o));
}
