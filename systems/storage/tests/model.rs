//! The store against the reference semantics: random writes go to a real store and to
//! `Durable::apply`, and whatever is reopened must equal the model.

mod common;

use common::small_limits;
use machine::{DiskOp, Durable, Write};
use proptest::prelude::*;
use storage::Store;

const LOGS: [&str; 2] = ["a", "txn-2"];
const BLOBS: [&str; 2] = ["x", "epoch_1"];

fn op() -> impl Strategy<Value = DiskOp> {
    let log = prop::sample::select(&LOGS[..]).prop_map(String::from);
    let blob = prop::sample::select(&BLOBS[..]).prop_map(String::from);
    let record = prop::collection::vec(any::<u8>(), 0..48);
    prop_oneof![
        6 => (log.clone(), prop::collection::vec(record, 0..6))
            .prop_map(|(log, records)| DiskOp::Append { log, records }),
        1 => (log.clone(), 0u64..40).prop_map(|(log, len)| DiskOp::TruncateTail { log, len }),
        1 => (log, 0u64..40).prop_map(|(log, first)| DiskOp::DropPrefix { log, first }),
        1 => (blob.clone(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(name, bytes)| DiskOp::Put { name, bytes }),
        1 => blob.prop_map(|name| DiskOp::Delete { name }),
    ]
}

/// One `write` call: a few Writes of a few ops, and whether to reopen after it.
fn call() -> impl Strategy<Value = (Vec<Write>, bool)> {
    let write = prop::collection::vec(op(), 1..4).prop_map(|ops| Write { token: 0, ops });
    (
        prop::collection::vec(write, 1..4),
        prop::bool::weighted(0.2),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn reopening_yields_what_the_model_holds(
        calls in prop::collection::vec(call(), 1..24),
        segment_bytes in 64u64..256,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let limits = small_limits(segment_bytes);
        let (mut store, durable, _) = Store::open(dir.path(), limits.clone()).unwrap();
        prop_assert_eq!(&durable, &Durable::default());
        let mut model = Durable::default();
        for (writes, reopen) in calls {
            store.write(&writes).unwrap();
            for op in writes.iter().flat_map(|w| &w.ops) {
                model.apply(op);
            }
            if reopen {
                drop(store);
                let (again, durable, report) = Store::open(dir.path(), limits.clone()).unwrap();
                prop_assert!(report.is_clean(), "clean shutdown needed repair: {:?}", report);
                prop_assert_eq!(&durable, &model);
                store = again;
            }
        }
        drop(store);
        let (_, durable, report) = Store::open(dir.path(), limits).unwrap();
        prop_assert!(report.is_clean(), "clean shutdown needed repair: {:?}", report);
        prop_assert_eq!(durable, model);
    }
}
