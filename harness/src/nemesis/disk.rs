//! The disk fault class: what a node's disk can do to it when it crashes.
//!
//! Every mode kills the targets (SIGKILL) at `start-disk` and leaves them down with their
//! disk damaged; `stop-disk` (or `stop-all`) restarts them on what is left:
//! - `lose-unsynced`: the lazy filesystem under their data directory drops every write that
//!   was never fsynced, as a power failure would (one, a minority, a majority, all, or the
//!   primaries);
//! - `truncate-tail`: the last N bytes of the newest write-ahead log's records are cut, as
//!   a torn final write leaves them: a log that ends at its records is truncated, a
//!   preallocated one has them zeroed (what never-written preallocated space reads as).
//!   The cut never falls exactly where a record starts, so the damage is there for the
//!   node's checks to see. A disk that drops whole synced records without a trace is not
//!   offered: no node can notice it, and no replication protocol survives it on top of
//!   one more failure;
//! - `corrupt-tail`: a few random bits of the last N bytes of records are flipped.
//!
//! Tail faults hit one node. The schedule draws mode, targets, N and the bit flips' seed
//! from its own RNG, so a run's disk faults replay; where the log ends is found on the node
//! when the fault starts, and the completion records exactly what was done.

use crate::control::{Cmd, ControlError, Node, Remote};
use crate::db::LogTail;
use checkers::rng::Rng;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// How a disk fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskMode {
    LoseUnsynced,
    TruncateTail,
    CorruptTail,
}

/// Most bytes of a log's tail one fault damages.
pub const MAX_TAIL_FAULT_BYTES: u64 = 4096;
/// Most bits one corruption flips.
pub const MAX_FLIPS: u64 = 4;

impl DiskMode {
    pub const ALL: [DiskMode; 3] = [
        DiskMode::LoseUnsynced,
        DiskMode::TruncateTail,
        DiskMode::CorruptTail,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DiskMode::LoseUnsynced => "lose-unsynced",
            DiskMode::TruncateTail => "truncate-tail",
            DiskMode::CorruptTail => "corrupt-tail",
        }
    }

    pub fn from_name(name: &str) -> Option<DiskMode> {
        DiskMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Parses `--disk-faults` lists like `lose-unsynced,corrupt-tail`.
pub fn parse_modes(list: &str) -> Result<Vec<DiskMode>, String> {
    let mut modes = BTreeSet::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let mode = DiskMode::from_name(word).ok_or_else(|| {
            let known: Vec<&str> = DiskMode::ALL.iter().map(|m| m.name()).collect();
            format!(
                "unknown disk fault {word:?}: expected some of {} (comma-separated)",
                known.join(", ")
            )
        })?;
        modes.insert(mode);
    }
    if modes.is_empty() {
        return Err("--disk-faults names no disk fault".into());
    }
    Ok(modes.into_iter().collect())
}

/// The schedule's draw for a tail fault on one of `nodes`: which node, how many bytes, and
/// the seed of the bits to flip.
pub fn tail_value(mode: DiskMode, nodes: &[String], rng: &mut Rng) -> Value {
    let node = rng.pick(nodes).clone();
    // Mostly short cuts that end inside the last record; sometimes several records.
    let bytes = if rng.chance(0.5) {
        1 + rng.below(64)
    } else {
        1 + rng.below(MAX_TAIL_FAULT_BYTES)
    };
    let mut value = json!({"mode": mode.name(), "targets": "one", "nodes": [node], "bytes": bytes});
    if mode == DiskMode::CorruptTail {
        // Below 2^53, so any JSON reader keeps it exact.
        value["seed"] = json!(rng.below(1 << 53));
    }
    value
}

/// What a tail fault does to a log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TailAction {
    /// The file is cut at `offset`.
    Truncate,
    /// The bytes from `offset` to the records' end become zeros.
    Zero,
    /// The bytes from `offset` become `new`: the old ones with `bits` flipped (bit `b` is bit
    /// `b % 8` of byte `offset + b / 8`).
    Flip { bits: Vec<u64>, new: Vec<u8> },
}

/// A planned tail fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailEdit {
    pub offset: u64,
    pub bytes: u64,
    pub action: TailAction,
}

/// Plans damage to the last `bytes` bytes of `tail`'s records (fewer if the records are
/// shorter); `seed` draws the bits a corruption flips.
pub fn plan_tail(
    tail: &LogTail,
    mode: DiskMode,
    bytes: u64,
    seed: u64,
) -> Result<TailEdit, String> {
    let available = (tail.tail.len() as u64).min(tail.records_end);
    if available == 0 {
        return Err(format!("{} has no records to damage", tail.file.display()));
    }
    let mut n = bytes.clamp(1, available.min(MAX_TAIL_FAULT_BYTES));
    let mut offset = tail.records_end - n;
    if mode == DiskMode::TruncateTail && tail.boundaries.contains(&offset) {
        // Not at a record's start: one byte of that record stays, so the cut shows.
        if n > 1 {
            offset += 1;
            n -= 1;
        } else {
            offset -= 1;
            n += 1;
        }
    }
    let action = match mode {
        DiskMode::TruncateTail if tail.records_end >= tail.file_len => TailAction::Truncate,
        DiskMode::TruncateTail => TailAction::Zero,
        DiskMode::CorruptTail => {
            let mut rng = Rng::new(seed);
            let flips = 1 + rng.below(MAX_FLIPS.min(n * 8));
            let mut bits = BTreeSet::new();
            while (bits.len() as u64) < flips {
                bits.insert(rng.below(n * 8));
            }
            let old = &tail.tail[tail.tail.len() - n as usize..];
            let mut new = old.to_vec();
            for &b in &bits {
                new[(b / 8) as usize] ^= 1 << (b % 8);
            }
            TailAction::Flip {
                bits: bits.into_iter().collect(),
                new,
            }
        }
        DiskMode::LoseUnsynced => return Err("losing unsynced writes is not a tail fault".into()),
    };
    Ok(TailEdit {
        offset,
        bytes: n,
        action,
    })
}

/// Carries out `edit` on the node's `file` and syncs it, with `dd` (coreutils or busybox).
pub fn apply_tail(
    remote: &dyn Remote,
    node: &Node,
    file: &Path,
    edit: &TailEdit,
) -> Result<(), ControlError> {
    let f = crate::control::daemon::sh_quote(&file.display().to_string());
    let (offset, n) = (edit.offset, edit.bytes);
    // Without notrunc, dd cuts the output where it starts writing.
    let cmd = match &edit.action {
        TailAction::Truncate => Cmd::new(format!(
            "dd if=/dev/null of={f} bs=1 seek={offset} conv=fsync 2>&1"
        )),
        TailAction::Zero => Cmd::new(format!(
            "dd if=/dev/zero of={f} bs=1 seek={offset} count={n} conv=notrunc,fsync 2>&1"
        )),
        TailAction::Flip { new, .. } => Cmd::new(format!(
            "dd of={f} bs=1 seek={offset} count={n} conv=notrunc,fsync 2>&1"
        ))
        .stdin(new.clone()),
    };
    let out = remote.exec(node, &cmd)?;
    if out.success() {
        return Ok(());
    }
    Err(ControlError::Exec {
        node: node.name.clone(),
        script: cmd.script,
        cause: out.stdout_text().trim().to_string(),
    })
}

/// What the history records of a tail fault.
pub fn tail_record(node: &Node, mode: DiskMode, tail: &LogTail, edit: &TailEdit) -> Value {
    let mut v = json!({
        "node": node.name,
        "mode": mode.name(),
        "file": tail.file.display().to_string(),
        "offset": edit.offset,
        "bytes": edit.bytes,
        "records_end": tail.records_end,
        "file_len": tail.file_len,
    });
    match &edit.action {
        TailAction::Truncate => v["action"] = json!("truncated"),
        TailAction::Zero => v["action"] = json!("zeroed"),
        TailAction::Flip { bits, .. } => {
            v["action"] = json!("flipped");
            v["flipped_bits"] = json!(bits
                .iter()
                .map(|b| json!({"offset": edit.offset + b / 8, "bit": b % 8}))
                .collect::<Vec<_>>());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(records_end: u64, file_len: u64) -> LogTail {
        LogTail {
            file: "data/member/wal/0000000000000000-0000000000000000.wal".into(),
            records_end,
            last_record: records_end.saturating_sub(24),
            file_len,
            tail: (0..records_end.min(100)).map(|i| i as u8).collect(),
            boundaries: vec![],
        }
    }

    #[test]
    fn a_cut_never_ends_the_log_where_a_record_starts() {
        let t = LogTail {
            boundaries: vec![40, 60, 80],
            ..tail(100, 100)
        };
        let cut = plan_tail(&t, DiskMode::TruncateTail, 20, 0).unwrap();
        assert_eq!(
            (cut.offset, cut.bytes),
            (81, 19),
            "one byte of the record stays"
        );
        let inside = plan_tail(&t, DiskMode::TruncateTail, 15, 0).unwrap();
        assert_eq!((inside.offset, inside.bytes), (85, 15));
        let flip = plan_tail(&t, DiskMode::CorruptTail, 20, 3).unwrap();
        assert_eq!(
            (flip.offset, flip.bytes),
            (80, 20),
            "flips show wherever they are"
        );
    }

    #[test]
    fn modes_parse_by_name_and_refuse_unknown_ones() {
        assert_eq!(
            parse_modes("corrupt-tail, lose-unsynced").unwrap(),
            vec![DiskMode::LoseUnsynced, DiskMode::CorruptTail]
        );
        assert!(parse_modes("melt").unwrap_err().contains("\"melt\""));
        assert!(parse_modes(" , ").is_err());
    }

    #[test]
    fn truncation_cuts_a_log_that_ends_at_its_records_and_zeroes_a_preallocated_one() {
        let cut = plan_tail(&tail(100, 100), DiskMode::TruncateTail, 10, 0).unwrap();
        assert_eq!(
            cut,
            TailEdit {
                offset: 90,
                bytes: 10,
                action: TailAction::Truncate
            }
        );
        let zero = plan_tail(&tail(100, 64_000_000), DiskMode::TruncateTail, 10, 0).unwrap();
        assert_eq!(zero.action, TailAction::Zero);
        let clamped = plan_tail(&tail(100, 64_000_000), DiskMode::TruncateTail, 5_000, 0).unwrap();
        assert_eq!(
            (clamped.offset, clamped.bytes),
            (0, 100),
            "never past the records' start"
        );
        assert!(plan_tail(&tail(0, 0), DiskMode::TruncateTail, 1, 0).is_err());
    }

    #[test]
    fn corruption_flips_seeded_bits_inside_the_tail_and_records_them() {
        let t = tail(100, 64_000_000);
        let a = plan_tail(&t, DiskMode::CorruptTail, 16, 7).unwrap();
        assert_eq!(
            a,
            plan_tail(&t, DiskMode::CorruptTail, 16, 7).unwrap(),
            "replays from the seed"
        );
        let TailAction::Flip { bits, new } = &a.action else {
            panic!("{a:?}")
        };
        assert!((1..=MAX_FLIPS as usize).contains(&bits.len()));
        let old = &t.tail[84..];
        let differing: u32 = old.iter().zip(new).map(|(o, n)| (o ^ n).count_ones()).sum();
        assert_eq!(
            differing as usize,
            bits.len(),
            "exactly the recorded bits differ"
        );
        let node = Node {
            name: "n2".into(),
            ip: "127.0.0.1".into(),
        };
        let rec = tail_record(&node, DiskMode::CorruptTail, &t, &a);
        assert_eq!(rec["offset"], 84);
        assert_eq!(rec["flipped_bits"].as_array().unwrap().len(), bits.len());
        assert!(rec["flipped_bits"][0]["offset"].as_u64().unwrap() >= 84);
    }

    #[test]
    fn the_schedules_tail_draws_name_one_node_and_bounded_bytes() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let v = tail_value(DiskMode::CorruptTail, &nodes, &mut rng);
            assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
            let bytes = v["bytes"].as_u64().unwrap();
            assert!((1..=MAX_TAIL_FAULT_BYTES).contains(&bytes));
            assert!(v["seed"].as_u64().unwrap() < 1 << 53);
        }
    }
}
