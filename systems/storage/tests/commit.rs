//! Group commit and ordering: how many fsync rounds a `write` call costs, and that the
//! store syncs before an op that could otherwise overtake earlier unsynced ones.

mod common;

use common::{append, open, records, small_limits, write};
use machine::{DiskOp, Write};
use storage::{Limits, Stats, StorageError};

fn appends(n: u64, log: &str) -> Vec<Write> {
    (0..n)
        .map(|t| write(t, vec![append(log, &[&t.to_le_bytes()])]))
        .collect()
}

/// Stats spent by one `write` call.
fn cost(store: &mut storage::Store, writes: &[Write]) -> Stats {
    let before = store.stats();
    store.write(writes).unwrap();
    let after = store.stats();
    Stats {
        fsyncs: after.fsyncs - before.fsyncs,
        sync_rounds: after.sync_rounds - before.sync_rounds,
        barriers: after.barriers - before.barriers,
        records_appended: after.records_appended - before.records_appended,
        bytes_appended: after.bytes_appended - before.bytes_appended,
    }
}

#[test]
fn many_appends_to_one_log_share_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _, _) = open(dir.path(), &Limits::default());
    cost(&mut store, &appends(1, "a")); // creates the log and its first segment
    let spent = cost(&mut store, &appends(64, "a"));
    assert_eq!(
        (spent.sync_rounds, spent.fsyncs, spent.records_appended),
        (1, 1, 64)
    );
    assert_eq!(spent.barriers, 0);
    let spent = cost(&mut store, &[]);
    assert_eq!(spent.fsyncs, 0, "an empty call syncs nothing");
}

#[test]
fn an_op_that_could_overtake_unsynced_ones_waits_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _, _) = open(dir.path(), &Limits::default());
    cost(
        &mut store,
        &[write(0, vec![append("a", &[b"0"]), append("b", &[b"0"])])],
    );
    let put = DiskOp::Put {
        name: "snap".into(),
        bytes: b"s".to_vec(),
    };
    let cut = DiskOp::DropPrefix {
        log: "a".into(),
        first: 1,
    };
    for (ops, barriers) in [
        (vec![append("a", &[b"1"]), append("a", &[b"2"])], 0),
        (vec![append("a", &[b"3"]), append("b", &[b"1"])], 1),
        (vec![append("a", &[b"4"]), put], 1),
        (vec![append("a", &[b"5"]), cut], 1),
    ] {
        let spent = cost(&mut store, &[write(1, ops.clone())]);
        assert_eq!(spent.barriers, barriers, "{ops:?}");
    }
}

#[test]
fn more_logs_than_open_files_are_written_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let limits = small_limits(256);
    let (mut store, _, _) = open(dir.path(), &limits);
    let logs = ["l0", "l1", "l2", "l3", "l4"];
    for round in 0..6u8 {
        let ops = logs.iter().map(|l| append(l, &[&[round; 50]])).collect();
        store.write(&[write(round.into(), ops)]).unwrap();
    }
    drop(store);
    let (_, durable, _) = open(dir.path(), &limits);
    for log in logs {
        let expected: Vec<Vec<u8>> = (0..6u8).map(|r| vec![r; 50]).collect();
        assert_eq!(records(&durable, log), expected);
    }
}

#[test]
fn a_failed_write_poisons_the_store_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _, _) = open(dir.path(), &Limits::default());
    std::fs::remove_dir(dir.path().join("blobs")).unwrap();
    let put = DiskOp::Put {
        name: "snap".into(),
        bytes: b"s".to_vec(),
    };
    let err = store.write(&[write(1, vec![put])]).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err}");
    let err = store.write(&appends(1, "a")).unwrap_err();
    assert!(matches!(err, StorageError::Poisoned), "{err}");
    drop(store);
    let (mut store, _, _) = open(dir.path(), &Limits::default());
    store.write(&appends(1, "a")).unwrap();
}
