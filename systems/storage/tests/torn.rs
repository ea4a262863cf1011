//! Damage on disk: a torn or corrupt tail of a log's last segment is cut and reported,
//! never read as data; damage anywhere else refuses to open, naming the file.

mod common;

use common::{append, open, records, segments, small_limits, write};
use machine::{DiskOp, Durable};
use std::fs;
use std::path::{Path, PathBuf};
use storage::{Limits, StorageError, Store};

/// Five records of different sizes in log "a", all in one segment.
fn five_records() -> Vec<Vec<u8>> {
    (0..5u8).map(|i| vec![i; 10 + 7 * i as usize]).collect()
}

/// A store holding `five_records` in log "a"; returns the segment and where its last
/// record starts.
fn store_with_five(dir: &Path) -> (PathBuf, u64) {
    let (mut store, _, _) = open(dir, &Limits::default());
    let recs = five_records();
    let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
    store.write(&[write(1, vec![append("a", &refs)])]).unwrap();
    let seg = segments(dir, "a").pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    (seg, len - (8 + recs[4].len() as u64))
}

/// Opens after damage; the log must hold exactly the first four records and a report of a
/// torn tail at position 4 must say where. Returns the report's reason.
fn assert_last_record_cut(dir: &Path, last_start: u64) -> String {
    let (mut store, durable, report) = open(dir, &Limits::default());
    assert_eq!(records(&durable, "a"), five_records()[..4].to_vec());
    assert_eq!(report.torn_tails.len(), 1, "{report:?}");
    assert!(durable.repaired("a"), "the cut is noted for the machine");
    assert!(!durable.repaired("b"));
    let torn = &report.torn_tails[0];
    assert_eq!(
        (torn.log.as_str(), torn.position, torn.offset),
        ("a", 4, last_start)
    );
    // The cut is durable and appends continue at position 4.
    store
        .write(&[write(2, vec![append("a", &[b"next"])])])
        .unwrap();
    drop(store);
    let (mut store, durable, report) = open(dir, &Limits::default());
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(durable.logs["a"].records[4], b"next");
    assert_eq!(durable.logs["a"].end(), 5);
    assert!(durable.repaired("a"), "the note outlives the cut");
    let forget = DiskOp::Delete {
        name: machine::repaired_blob("a"),
    };
    store.write(&[write(3, vec![forget])]).unwrap();
    drop(store);
    let (_, durable, _) = open(dir, &Limits::default());
    assert!(!durable.repaired("a"), "until the machine deletes it");
    torn.reason.clone()
}

#[test]
fn a_tail_cut_at_any_byte_of_the_last_record_is_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, last_start) = store_with_five(dir.path());
    let orig = fs::read(&seg).unwrap();
    for cut in last_start + 1..orig.len() as u64 {
        fs::write(&seg, &orig[..cut as usize]).unwrap();
        assert_last_record_cut(dir.path(), last_start);
    }
    // Cut exactly at a frame boundary: the record is simply not there, nothing to repair.
    fs::write(&seg, &orig[..last_start as usize]).unwrap();
    let (_, durable, report) = open(dir.path(), &Limits::default());
    assert!(report.is_clean());
    assert_eq!(records(&durable, "a"), five_records()[..4].to_vec());
}

#[test]
fn any_flipped_byte_of_the_last_record_is_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, last_start) = store_with_five(dir.path());
    let orig = fs::read(&seg).unwrap();
    for at in last_start as usize..orig.len() {
        for mask in [0xFF, 0x01, 0x80] {
            let mut bad = orig.clone();
            bad[at] ^= mask;
            fs::write(&seg, &bad).unwrap();
            assert_last_record_cut(dir.path(), last_start);
        }
    }
}

#[test]
fn random_bit_flips_in_the_last_record_never_read_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, last_start) = store_with_five(dir.path());
    let orig = fs::read(&seg).unwrap();
    let frame_bits = (orig.len() - last_start as usize) * 8;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..300 {
        let mut bad = orig.clone();
        for _ in 0..1 + xorshift(&mut rng) % 12 {
            let bit = (xorshift(&mut rng) % frame_bits as u64) as usize;
            bad[last_start as usize + bit / 8] ^= 1 << (bit % 8);
        }
        if bad == orig {
            continue;
        }
        fs::write(&seg, &bad).unwrap();
        assert_last_record_cut(dir.path(), last_start);
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn a_zero_filled_tail_is_dropped_whether_after_or_over_the_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, last_start) = store_with_five(dir.path());
    let orig = fs::read(&seg).unwrap();
    // Extended with zeros (preallocation, or size updated but data lost).
    let mut extended = orig.clone();
    extended.resize(orig.len() + 4096, 0);
    fs::write(&seg, &extended).unwrap();
    let (_, durable, report) = open(dir.path(), &Limits::default());
    assert_eq!(records(&durable, "a"), five_records());
    assert_eq!(report.torn_tails[0].bytes_dropped, 4096);
    assert!(report.torn_tails[0].reason.contains("zero"), "{report:?}");
    assert_eq!(fs::metadata(&seg).unwrap().len(), orig.len() as u64);
    // The last record's bytes themselves zeroed.
    let mut zeroed = orig.clone();
    zeroed[last_start as usize..].fill(0);
    fs::write(&seg, &zeroed).unwrap();
    assert!(assert_last_record_cut(dir.path(), last_start).contains("zero"));
}

#[test]
fn an_absurd_length_is_a_torn_tail_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, last_start) = store_with_five(dir.path());
    let mut bad = fs::read(&seg).unwrap();
    let at = last_start as usize;
    bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&seg, &bad).unwrap();
    let reason = assert_last_record_cut(dir.path(), last_start);
    assert!(reason.contains("exceeds"), "{reason}");
}

/// A store whose log "a" spans several segments; returns them.
fn store_with_segments(dir: &Path) -> Vec<PathBuf> {
    let limits = small_limits(128);
    let (mut store, _, _) = open(dir, &limits);
    for i in 0..12u8 {
        store
            .write(&[write(i.into(), vec![append("a", &[&[i; 40]])])])
            .unwrap();
    }
    let segs = segments(dir, "a");
    assert!(segs.len() >= 4, "{segs:?}");
    segs
}

fn open_err(dir: &Path) -> StorageError {
    Store::open(dir, small_limits(128)).expect_err("damage must refuse to open")
}

#[test]
fn a_corrupt_earlier_segment_refuses_to_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_with_segments(dir.path());
    let mut bad = fs::read(&segs[1]).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    fs::write(&segs[1], &bad).unwrap();
    match open_err(dir.path()) {
        StorageError::Corrupt { path, offset, .. } => {
            assert_eq!(path, segs[1]);
            assert_eq!(
                offset,
                bad.len() as u64 - 48,
                "where the damaged record starts"
            );
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(open_err(dir.path())
        .to_string()
        .contains(&segs[1].display().to_string()));
}

#[test]
fn an_earlier_segment_missing_whole_records_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_with_segments(dir.path());
    let orig = fs::read(&segs[1]).unwrap();
    fs::write(&segs[1], &orig[..24]).unwrap(); // header only: cleanly framed, records gone
    match open_err(dir.path()) {
        StorageError::Gap { path, .. } => assert_eq!(path, segs[2]),
        other => panic!("expected Gap, got {other}"),
    }
    fs::write(&segs[1], &orig).unwrap();
    fs::remove_file(&segs[1]).unwrap();
    assert!(matches!(open_err(dir.path()), StorageError::Gap { .. }));
}

#[test]
fn a_corrupt_segment_header_refuses_to_open_even_in_the_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_with_segments(dir.path());
    let last = segs.last().unwrap();
    let mut bad = fs::read(last).unwrap();
    bad[10] ^= 1; // the first position field
    fs::write(last, &bad).unwrap();
    match open_err(dir.path()) {
        StorageError::Corrupt { path, offset, .. } => assert_eq!((&path, offset), (last, 20)),
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[test]
fn a_corrupt_blob_or_log_meta_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _, _) = open(dir.path(), &Limits::default());
    let put = DiskOp::Put {
        name: "snap".into(),
        bytes: b"snapshot bytes".to_vec(),
    };
    store
        .write(&[write(1, vec![put, append("a", &[b"r"])])])
        .unwrap();
    drop(store);
    for file in [
        dir.path().join("blobs/snap"),
        dir.path().join("logs/a/meta"),
    ] {
        let orig = fs::read(&file).unwrap();
        for at in [0, 9, orig.len() - 1] {
            let mut bad = orig.clone();
            bad[at] ^= 0x10;
            fs::write(&file, &bad).unwrap();
            let err = Store::open(dir.path(), Limits::default()).expect_err("corrupt file");
            assert!(
                err.to_string().contains(&file.display().to_string()),
                "{err}"
            );
        }
        fs::write(&file, &orig[..orig.len() - 1]).unwrap();
        assert!(Store::open(dir.path(), Limits::default()).is_err());
        fs::write(&file, &orig).unwrap();
    }
    let (_, durable, _) = open(dir.path(), &Limits::default());
    assert_eq!(durable.blobs["snap"], b"snapshot bytes");
}

#[test]
fn stray_temp_files_are_removed_and_unknown_files_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _, _) = open(dir.path(), &Limits::default());
    store
        .write(&[write(1, vec![append("a", &[b"r"])])])
        .unwrap();
    drop(store);
    let strays = [
        dir.path().join("blobs/.snap.tmp"),
        dir.path().join("logs/a/.00000000000000000001.seg.tmp"),
        dir.path().join("logs/a/.meta.tmp"),
    ];
    for stray in &strays {
        fs::write(stray, b"half written").unwrap();
    }
    fs::create_dir(dir.path().join("logs/.b.tmp")).unwrap();
    let (_, durable, report) = open(dir.path(), &Limits::default());
    assert_eq!(records(&durable, "a"), vec![b"r".to_vec()]);
    assert!(!durable.logs.contains_key("b"));
    assert_eq!(report.removed.len(), 4, "{report:?}");
    assert!(strays.iter().all(|s| !s.exists()));
    let unknown = dir.path().join("logs/a/notes.txt");
    fs::write(&unknown, b"?").unwrap();
    match Store::open(dir.path(), Limits::default()) {
        Err(StorageError::Unexpected { path, .. }) => assert_eq!(path, unknown),
        other => panic!("expected Unexpected, got {other:?}"),
    }
}

#[test]
fn invalid_ops_are_refused_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_logs: 1,
        ..Limits::default()
    };
    let (mut store, _, _) = open(dir.path(), &limits);
    let big = vec![0u8; machine::MAX_RECORD_BYTES + 1];
    let refused = [
        vec![append("a", &[b"ok"]), append("a", &[&big])],
        vec![append("a", &[b"ok"]), append("Bad/Name", &[b"x"])],
        vec![append("a", &[b"ok"]), append("b", &[b"x"])],
    ];
    for ops in refused {
        assert!(store.write(&[write(1, ops)]).is_err());
    }
    store
        .write(&[write(2, vec![append("a", &[b"ok"])])])
        .unwrap();
    drop(store);
    let (_, durable, _) = open(dir.path(), &limits);
    let mut model = Durable::default();
    model.apply(&append("a", &[b"ok"]));
    assert_eq!(durable, model);
}

#[test]
fn a_torn_last_segment_keeps_the_earlier_segments() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_with_segments(dir.path());
    let (_, whole, _) = open(dir.path(), &small_limits(128));
    let last = segs.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    fs::write(last, &fs::read(last).unwrap()[..len as usize - 3]).unwrap();
    let (_, durable, report) = open(dir.path(), &small_limits(128));
    let mut expected = whole.logs["a"].records.clone();
    expected.pop();
    assert_eq!(records(&durable, "a"), expected);
    assert_eq!(report.torn_tails[0].file, *last);
    assert_eq!(report.torn_tails[0].position, 11);
}

#[test]
fn segments_a_crash_left_below_the_first_position_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_with_segments(dir.path());
    let saved: Vec<Vec<u8>> = segs.iter().map(|s| fs::read(s).unwrap()).collect();
    let (mut store, _, _) = open(dir.path(), &small_limits(128));
    let cut = DiskOp::DropPrefix {
        log: "a".into(),
        first: 7,
    };
    store.write(&[write(1, vec![cut])]).unwrap();
    drop(store);
    // As if the crash came after the new first position was durable, before the unlinks.
    for (seg, bytes) in segs.iter().zip(&saved) {
        fs::write(seg, bytes).unwrap();
    }
    let (_, durable, report) = open(dir.path(), &small_limits(128));
    assert_eq!(durable.logs["a"].first, 7);
    assert_eq!(
        durable.logs["a"].records,
        (7..12u8).map(|i| vec![i; 40]).collect::<Vec<_>>()
    );
    assert_eq!(report.removed.len(), 3, "{report:?}");
    assert!(report.torn_tails.is_empty());
}
