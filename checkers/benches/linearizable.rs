//! Linearizability checker benchmarks: Porcupine's published data and synthetic histories.
//!
//! Inputs are parsed or generated outside the timed loop, so only `check` is measured. The
//! verdicts of each input's first run are printed, since times are only comparable between runs
//! whose verdicts agree.
//!
//! Run with `cargo bench -p faultline-checkers --bench linearizable`. The Porcupine data lives in
//! shared/ beside the repository; set FAULTLINE_HISTORIES to read it from elsewhere.

use checkers::history::{parse, Format, History};
use checkers::linearizable::{check, Options, Outcome, Semantics, Validity};
use checkers::model::ModelKind;
use checkers::synth::{register_history, RegisterParams};
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// Times checking all of `histories` with `model`, and prints the verdicts of the first run: a
/// time is only comparable between runs whose verdicts agree (a search that gives up is fast
/// for the wrong reason). The first run is timed like the others, so no input is checked twice
/// more than it must be (the slowest take tens of seconds).
fn bench_check(c: &mut Criterion, name: &str, histories: &[History], model: ModelKind) {
    let mut announced = false;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let outcomes: Vec<Outcome> = histories
                    .iter()
                    .map(|h| check(h, model, &options(h.format)).expect("inputs fit their models"))
                    .collect();
                let elapsed = started.elapsed();
                total += elapsed;
                if !announced {
                    announced = true;
                    eprintln!("{name}: {} in {elapsed:.2?}", summary(&outcomes));
                }
            }
            total
        })
    });
}

fn summary(outcomes: &[Outcome]) -> String {
    let count = |v| outcomes.iter().filter(|o| o.valid == v).count();
    let causes: Vec<&str> = outcomes.iter().filter_map(|o| o.cause.as_deref()).collect();
    format!(
        "{} valid, {} invalid, {} unknown {causes:?}; {} ops ({} crashed), {} configurations",
        count(Validity::Valid),
        count(Validity::Invalid),
        count(Validity::Unknown),
        outcomes.iter().map(|o| o.ops).sum::<usize>(),
        outcomes.iter().map(|o| o.crashed_ops).sum::<usize>(),
        outcomes.iter().map(|o| o.configurations).sum::<u64>(),
    )
}

fn porcupine(c: &mut Criterion) {
    bench_check(
        c,
        "porcupine/etcd_all",
        &etcd_histories(),
        ModelKind::CasRegister,
    );
    let kv = read_history(&histories_dir().join("porcupine/kv/c50-ok.txt"));
    bench_check(c, "porcupine/kv_c50_ok", &[kv], ModelKind::Kv);
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
    let register = register_history(&synth_params(0)).history;
    bench_check(
        c,
        "synth/cas_register_50k_30c",
        &[register],
        ModelKind::CasRegister,
    );
    let kv = register_history(&synth_params(10)).history;
    bench_check(c, "synth/kv_10_keys_50k_30c", &[kv], ModelKind::Kv);
}

fn config() -> Criterion {
    // The slowest input takes tens of seconds: ten samples (criterion's least) will do.
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
