//! Transactional checker benchmarks: generated list-append and rw-register histories (clean,
//! so every edge is built and every component is trivial: the common nightly case) and Elle's
//! huge-scc history (one 10k-transaction component that must be classified).
//!
//! Histories are generated or parsed outside the timed loop, so only `txn::check` is measured
//! except in `parse+check`, which includes reading JSON lines as `faultline check` does. The
//! million-transaction figures in the closing notes come from the command line (see README).
//!
//! Run with `cargo bench -p faultline-checkers --bench txn`.

use checkers::history::{jsonl, parse, History};
use checkers::txn::synth::{self, Workload as SynthWorkload};
use checkers::txn::{check, Model, Options, Workload};
use checkers::verdict::Validity;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::PathBuf;
use std::time::Duration;

fn generated(w: SynthWorkload, txns: usize) -> History {
    synth::generate(&synth::Options::new(w, 1, txns))
}

fn options(w: Workload) -> Options {
    let mut o = Options::new(w);
    o.models = vec![Model::StrictSerializable];
    o
}

fn clean_histories(c: &mut Criterion) {
    let mut group = c.benchmark_group("txn-clean");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (sw, w) in [
        (SynthWorkload::ListAppend, Workload::ListAppend),
        (SynthWorkload::RwRegister, Workload::RwRegister),
    ] {
        for txns in [50_000usize, 100_000, 200_000] {
            let h = generated(sw, txns);
            let v = check(&h, &options(w)).unwrap().verdict;
            assert_eq!(v.valid, Validity::Valid, "a clean history checks valid");
            group.throughput(Throughput::Elements(txns as u64));
            group.bench_with_input(BenchmarkId::new(w.name(), txns), &h, |b, h| {
                b.iter(|| check(h, &options(w)).unwrap())
            });
        }
    }
    group.finish();
}

fn parse_and_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("txn-parse+check");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let txns = 100_000;
    let text = jsonl::write(&generated(SynthWorkload::ListAppend, txns).ops);
    group.throughput(Throughput::Elements(txns as u64));
    group.bench_function(BenchmarkId::new("list-append", txns), |b| {
        b.iter(|| {
            let h = parse("bench.jsonl", text.as_bytes(), None).unwrap();
            checkers::txn::check_owned(h, &options(Workload::ListAppend)).unwrap()
        })
    });
    group.finish();
}

fn huge_scc(c: &mut Criterion) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories/elle/huge-scc.edn");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let h = parse("huge-scc.edn", &bytes, None).unwrap();
    let v = check(&h, &options(Workload::ListAppend)).unwrap().verdict;
    assert!(
        v.anomaly_types.iter().any(|t| t == "G2-item-realtime"),
        "{:?}",
        v.anomaly_types
    );
    let mut group = c.benchmark_group("elle");
    group.sample_size(10);
    group.bench_function("huge-scc (parse+check)", |b| {
        b.iter(|| {
            let h = parse("huge-scc.edn", &bytes, None).unwrap();
            check(&h, &options(Workload::ListAppend)).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, clean_histories, parse_and_check, huge_scc);
criterion_main!(benches);
