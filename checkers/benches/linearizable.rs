//! Linearizability checker benchmarks: Porcupine's published data and synthetic histories.
//!
//! Inputs are parsed or generated outside the timed loop, so only `check` is measured. Each
//! input's verdict is printed once before it is timed: a time is only comparable between runs
//! whose verdicts agree (a search that gives up is fast for the wrong reason).
//!
//! Run with `cargo bench -p faultline-checkers --bench linearizable`. The Porcupine data lives in
//! shared/ beside the repository; set FAULTLINE_HISTORIES to read it from elsewhere.

use checkers::history::{parse, Format, History};
use checkers::linearizable::{check, Options, Semantics};
use checkers::model::ModelKind;
use checkers::synth::{register_history, RegisterParams};
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::PathBuf;
use std::time::Duration;

fn histories_dir() -> PathBuf {
    match std::env::var_os("FAULTLINE_HISTORIES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories"),
    }
}

fn read_history(path: &PathBuf) -> History {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().unwrap().to_string_lossy();
    parse(&name, &bytes, None).unwrap_or_else(|e| panic!("{e}"))
}

/// Porcupine's etcd histories (the empty etcd_095.log aside: it has nothing to check).
fn etcd_histories() -> Vec<History> {
    let dir = histories_dir().join("porcupine/jepsen");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("etcd_")
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(read_history)
        .filter(|h| !h.is_empty())
        .collect()
}

fn options(format: Format) -> Options {
    Options::new(Semantics::for_format(format))
}

/// Checks once, untimed, and prints the verdict the timed runs will reproduce.
fn announce(label: &str, h: &History, model: ModelKind) {
    let started = std::time::Instant::now();
    let o = check(h, model, &options(h.format)).expect("benchmark inputs fit their models");
    eprintln!(
        "{label}: {:?}{} ({} ops, {} crashed, {} configurations, {:.2?} once)",
        o.valid,
        o.cause.map(|c| format!(" ({c})")).unwrap_or_default(),
        o.ops,
        o.crashed_ops,
        o.configurations,
        started.elapsed()
    );
}

fn porcupine(c: &mut Criterion) {
    let etcd = etcd_histories();
    let (invalid, total) = etcd.iter().fold((0, 0), |(bad, n), h| {
        let o = check(h, ModelKind::CasRegister, &options(h.format)).unwrap();
        let bad = bad + usize::from(o.valid == checkers::linearizable::Validity::Invalid);
        (bad, n + 1)
    });
    eprintln!("porcupine etcd: {total} histories, {invalid} not linearizable");
    c.bench_function("porcupine/etcd_all", |b| {
        b.iter(|| {
            for h in &etcd {
                let o = check(h, ModelKind::CasRegister, &options(h.format)).unwrap();
                std::hint::black_box(o.valid);
            }
        })
    });

    let kv = read_history(&histories_dir().join("porcupine/kv/c50-ok.txt"));
    announce("porcupine kv c50-ok", &kv, ModelKind::Kv);
    c.bench_function("porcupine/kv_c50_ok", |b| {
        b.iter(|| {
            check(&kv, ModelKind::Kv, &options(kv.format))
                .unwrap()
                .valid
        })
    });
}

/// 50,000 ops by 30 clients, 2% crashed, values 0..5: Jepsen's cas-register at scale.
fn synth_params(keys: usize) -> RegisterParams {
    RegisterParams {
        keys,
        crash_rate: 0.02,
        ..RegisterParams::new(50_000, 30, 1)
    }
}

fn synthetic(c: &mut Criterion) {
    for (name, keys, model) in [
        ("synth/cas_register_50k_30c", 0, ModelKind::CasRegister),
        ("synth/kv_10_keys_50k_30c", 10, ModelKind::Kv),
    ] {
        let h = register_history(&synth_params(keys)).history;
        announce(name, &h, model);
        c.bench_function(name, |b| {
            b.iter(|| check(&h, model, &options(h.format)).unwrap().valid)
        });
    }
}

fn config() -> Criterion {
    // The slowest inputs take seconds: ten samples are enough to see a change.
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
}

criterion_group! {
    name = benches;
    config = config();
    targets = porcupine, synthetic
}
criterion_main!(benches);
