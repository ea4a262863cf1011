//! Times the phases of a list-append check on one history file: `cargo run --release
//! --example txn_phases -- FILE`. For finding where the time of a large check goes.

use checkers::history;
use checkers::txn::{self, graph, Workload};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: txn_phases FILE");
    let t = Instant::now();
    let bytes = std::fs::read(&path).expect("readable file");
    println!("read      {:>8.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let h = history::parse(&path, &bytes, None).expect("a history");
    drop(bytes);
    println!(
        "parse     {:>8.0} ms ({} events)",
        t.elapsed().as_secs_f64() * 1e3,
        h.len()
    );
    let t = Instant::now();
    let tx = txn::transaction::Transactions::from_history(&h, Workload::ListAppend).expect("txns");
    println!("extract   {:>8.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let mut v = checkers::verdict::Verdict::new("list-append");
    let mut b = graph::Builder::default();
    txn::list_append::ListAppend::analyse(&h, &tx, &mut v, &mut b).expect("analysis");
    println!(
        "infer     {:>8.0} ms ({} edges)",
        t.elapsed().as_secs_f64() * 1e3,
        b.len()
    );
    let t = Instant::now();
    txn::order::add_process_edges(&tx, &mut b);
    txn::order::add_realtime_edges(&tx, &mut b);
    println!(
        "order     {:>8.0} ms ({} edges)",
        t.elapsed().as_secs_f64() * 1e3,
        b.len()
    );
    let t = Instant::now();
    let g = b.finish(tx.txns.len());
    println!(
        "pack      {:>8.0} ms ({} merged)",
        t.elapsed().as_secs_f64() * 1e3,
        g.edge_count()
    );
    let t = Instant::now();
    let sccs = g.components(graph::ALL, None);
    println!(
        "scc       {:>8.0} ms ({} components)",
        t.elapsed().as_secs_f64() * 1e3,
        sccs.len()
    );
    let t = Instant::now();
    let out = txn::check(&h, &txn::Options::new(Workload::ListAppend)).expect("check");
    println!(
        "check     {:>8.0} ms ({:?})",
        t.elapsed().as_secs_f64() * 1e3,
        out.verdict.valid
    );
}
