//! History reader benchmarks: how fast each foreign format parses, on the largest inputs we
//! have. Run with `cargo bench -p faultline-checkers --bench readers`.

use checkers::history::{edn, jsonl, parse};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::PathBuf;

fn shared(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/histories")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bench_parse(c: &mut Criterion, name: &str, bytes: &[u8]) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| parse(name, bytes, None).expect("parses"))
    });
    group.finish();
}

fn readers(c: &mut Criterion) {
    let huge = shared("elle/huge-scc.edn");
    bench_parse(c, "edn/elle-huge-scc", &huge);
    bench_parse(
        c,
        "json-array/elle-cli-bank",
        &shared("elle-cli/jepsen/bank.json"),
    );
    bench_parse(
        c,
        "jepsen-log/etcd_002",
        &shared("porcupine/jepsen/etcd_002.log"),
    );
    bench_parse(
        c,
        "porcupine-kv/c50-bad",
        &shared("porcupine/kv/c50-bad.txt"),
    );
    // The same history in Faultline's format, for comparison with EDN.
    let ops = parse("huge", &huge, None).expect("parses").ops;
    let as_jsonl = jsonl::write(&ops);
    bench_parse(c, "jsonl/elle-huge-scc", as_jsonl.as_bytes());
    let mut group = c.benchmark_group("write");
    group.bench_function("edn/elle-huge-scc", |b| b.iter(|| edn::write(&ops)));
    group.bench_function("jsonl/elle-huge-scc", |b| b.iter(|| jsonl::write(&ops)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = readers
}
criterion_main!(benches);
