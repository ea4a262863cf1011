//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use machine::{DiskOp, Durable, Write};
use std::path::{Path, PathBuf};
use storage::{Limits, RecoveryReport, Store};

/// Limits with tiny segments, so a handful of records spans several files.
pub fn small_limits(segment_bytes: u64) -> Limits {
    Limits {
        segment_bytes,
        max_open_files: 2,
        ..Limits::default()
    }
}

pub fn append(log: &str, records: &[&[u8]]) -> DiskOp {
    DiskOp::Append {
        log: log.into(),
        records: records.iter().map(|r| r.to_vec()).collect(),
    }
}

pub fn write(token: u64, ops: Vec<DiskOp>) -> Write {
    Write { token, ops }
}

pub fn open(dir: &Path, limits: &Limits) -> (Store, Durable, RecoveryReport) {
    Store::open(dir, limits.clone()).expect("store opens")
}

/// The segment files of `log`, ascending by first position.
pub fn segments(dir: &Path, log: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("logs").join(log))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    out.sort();
    out
}

/// The records of `log` in `durable`, or none.
pub fn records(durable: &Durable, log: &str) -> Vec<Vec<u8>> {
    durable
        .logs
        .get(log)
        .map(|l| l.records.clone())
        .unwrap_or_default()
}
