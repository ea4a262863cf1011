//! Append throughput on the real file system: records of 100 B and 4 KiB, written one
//! Write per `write` call (an fsync per record) or 64 per call (group commit). Criterion
//! reports records/s; the line printed after each case adds fsyncs/s from `Store::stats`
//! (over every iteration criterion ran, warm-up included).
//! Set FAULTLINE_BENCH_DIR to measure on another disk than the temp dir's.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use machine::{DiskOp, Write};
use std::time::{Duration, Instant};
use storage::{Limits, Store};

fn writes(per_call: u64, record_bytes: usize) -> Vec<Write> {
    (0..per_call)
        .map(|token| Write {
            token,
            ops: vec![DiskOp::Append {
                log: "bench".into(),
                records: vec![vec![0xAB; record_bytes]],
            }],
        })
        .collect()
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("FAULTLINE_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// Time, fsyncs and records spent in measured iterations.
#[derive(Default)]
struct Totals {
    elapsed: Duration,
    fsyncs: u64,
    records: u64,
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for record_bytes in [100usize, 4096] {
        for per_call in [1u64, 64] {
            let dir = bench_dir();
            let (mut store, _, _) = Store::open(dir.path(), Limits::default()).unwrap();
            let batch = writes(per_call, record_bytes);
            let mut totals = Totals::default();
            group.throughput(Throughput::Elements(per_call));
            let id = BenchmarkId::new(format!("{record_bytes}B"), format!("{per_call}_per_call"));
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let before = store.stats();
                    let start = Instant::now();
                    for _ in 0..iters {
                        store.write(&batch).unwrap();
                    }
                    let elapsed = start.elapsed();
                    totals.elapsed += elapsed;
                    totals.fsyncs += store.stats().fsyncs - before.fsyncs;
                    totals.records += store.stats().records_appended - before.records_appended;
                    elapsed
                })
            });
            let secs = totals.elapsed.as_secs_f64();
            println!(
                "append/{record_bytes}B/{per_call}_per_call: {:.0} records/s, {:.0} fsyncs/s, {:.2} fsyncs per call",
                totals.records as f64 / secs,
                totals.fsyncs as f64 / secs,
                totals.fsyncs as f64 * per_call as f64 / totals.records as f64,
            );
        }
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
