//! The generator -> client -> history path with a client that does nothing: how many ops a
//! second the controller itself can record. Run with `cargo bench -p faultline --bench runner`.

use checkers::history::Value;
use criterion::{criterion_group, criterion_main, Criterion};
use faultline::generator::{from_fn, limit};
use faultline::runner::{run, Client, Outcome, RunConfig};
use faultline::store::HistoryWriter;
use std::time::{Duration, Instant};

struct Noop;

impl Client for Noop {
    async fn invoke(&mut self, _f: &str, value: &Value) -> Outcome {
        Outcome::ok(value.clone())
    }
}

const OPS: u64 = 200_000;
const WORKERS: u32 = 50;

fn noop_run(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let path = std::env::temp_dir().join("faultline-bench-runner.jsonl");
    let config = RunConfig {
        concurrency: WORKERS,
        seed: 1,
        op_timeout: Duration::from_secs(5),
    };
    let mut group = c.benchmark_group("runner");
    group.sample_size(10);
    group.throughput(criterion::Throughput::Elements(OPS));
    group.bench_function("noop_50_workers_200k_ops", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                rt.block_on(async {
                    let mut history = HistoryWriter::create(&path).unwrap();
                    let gen = limit(
                        OPS,
                        from_fn(|rng| ("write".into(), Value::from(rng.below(5)))),
                    );
                    let s = run(&config, gen, |_| Noop, &mut history).await.unwrap();
                    assert_eq!(s.ok, OPS);
                    history.finish().unwrap();
                });
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, noop_run);
criterion_main!(benches);
