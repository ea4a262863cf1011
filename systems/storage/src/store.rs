//! The store: opens a directory, hands back what it holds as a `Durable`, and carries out
//! `Write`s with the semantics of `Durable::apply`, durable before `write` returns.
//!
//! Layout: `<dir>/logs/<name>/{meta, <position>.seg}` and `<dir>/blobs/<name>`.

use crate::blob;
use crate::disk::{Disk, Target};
use crate::error::{Result, StorageError};
use crate::fsutil::{ensure_dir, is_temp, list_dir, remove_temp, sync_dir, Stats};
use crate::limits::Limits;
use crate::log::LogFiles;
use crate::report::RecoveryReport;
use machine::{valid_name, DiskOp, Durable, Write};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LOGS_DIR: &str = "logs";
const BLOBS_DIR: &str = "blobs";
/// Temp directories tolerated beside the logs (one per interrupted log creation).
const EXTRA_LOG_ENTRIES: usize = 64;

/// A node's durable storage in one directory. Not safe to open twice at once.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    limits: Limits,
    logs: BTreeMap<String, LogFiles>,
    blobs: BTreeSet<String>,
    disk: Disk,
    /// The log whose appends are buffered in memory, not yet written to its file.
    buffered: Option<String>,
    /// Set when a write failed part-way: memory may no longer match the disk.
    poisoned: bool,
}

impl Store {
    /// Opens (creating if missing) the store in `dir` and reads back everything it holds.
    /// Torn log tails are cut and reported; any other damage is an error naming the file.
    pub fn open(dir: impl AsRef<Path>, limits: Limits) -> Result<(Store, Durable, RecoveryReport)> {
        limits.validate().map_err(|what| StorageError::Unexpected {
            path: dir.as_ref().to_path_buf(),
            what: format!("invalid limits: {what}"),
        })?;
        let dir = dir.as_ref().to_path_buf();
        let mut stats = Stats::default();
        ensure_dir(&dir, &mut stats)?;
        check_top_level(&dir)?;
        ensure_dir(&dir.join(LOGS_DIR), &mut stats)?;
        ensure_dir(&dir.join(BLOBS_DIR), &mut stats)?;
        let mut report = RecoveryReport::default();
        let mut durable = Durable::default();
        let blobs_dir = dir.join(BLOBS_DIR);
        // The note that a tail was cut is durable before the cut: a crash between the two
        // must not leave a log that looks whole.
        let mut before_cut = |log: &str| -> Result<()> {
            let mut disk = Disk::new(limits.max_open_files);
            blob::put(&blobs_dir, &machine::repaired_blob(log), b"", &mut disk)?;
            disk.sync_round()
        };
        let logs_dir = dir.join(LOGS_DIR);
        let logs = recover_logs(
            &logs_dir,
            &limits,
            &mut durable,
            &mut report,
            &mut before_cut,
        )?;
        durable.blobs = blob::recover(&dir.join(BLOBS_DIR), &limits, &mut report)?;
        for sub in [LOGS_DIR, BLOBS_DIR] {
            let sub = dir.join(sub);
            if report.removed.iter().any(|p| p.parent() == Some(&sub)) {
                sync_dir(&sub, &mut stats)?;
            }
        }
        let store = Store {
            blobs: durable.blobs.keys().cloned().collect(),
            disk: Disk::new(limits.max_open_files),
            dir,
            limits,
            logs,
            buffered: None,
            poisoned: false,
        };
        Ok((store, durable, report))
    }

    /// Carries out every op of `writes` in order and returns once all are durable. Appends
    /// to one log share one fsync round; an op that destroys data or moves to another log
    /// or blob first syncs what is pending, so a crash leaves a prefix of the ops. Invalid
    /// ops are refused before the disk is touched; any later failure poisons the store.
    pub fn write(&mut self, writes: &[Write]) -> Result<()> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        self.validate(writes)?;
        let result = self.apply_all(writes);
        self.poisoned = result.is_err();
        result
    }

    /// Work done since opening.
    pub fn stats(&self) -> Stats {
        self.disk.stats
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn apply_all(&mut self, writes: &[Write]) -> Result<()> {
        for op in writes.iter().flat_map(|w| &w.ops) {
            self.apply(op)?;
        }
        self.flush_buffered()?;
        self.disk.sync_round()
    }

    /// Writes out the buffered appends, before anything else may sync or read the files.
    fn flush_buffered(&mut self) -> Result<()> {
        match self.buffered.take() {
            Some(log) => self
                .logs
                .get_mut(&log)
                .expect("buffered log exists")
                .flush(&mut self.disk),
            None => Ok(()),
        }
    }

    fn apply(&mut self, op: &DiskOp) -> Result<()> {
        let same_log =
            matches!(op, DiskOp::Append { log, .. } if self.buffered.as_ref() == Some(log));
        if !same_log {
            self.flush_buffered()?;
        }
        match op {
            DiskOp::Append { log, records } => self.append(log, records),
            DiskOp::TruncateTail { log, len } => self.truncate_tail(log, *len),
            DiskOp::DropPrefix { log, first } => self.drop_prefix(log, *first),
            DiskOp::Put { name, bytes } => {
                self.disk.barrier(Target::Blob(name.clone()), true)?;
                blob::put(&self.dir.join(BLOBS_DIR), name, bytes, &mut self.disk)?;
                self.blobs.insert(name.clone());
                Ok(())
            }
            DiskOp::Delete { name } => {
                if !self.blobs.contains(name) {
                    return Ok(());
                }
                self.disk.barrier(Target::Blob(name.clone()), true)?;
                blob::delete(&self.dir.join(BLOBS_DIR), name, &mut self.disk)?;
                self.blobs.remove(name);
                Ok(())
            }
        }
    }

    fn append(&mut self, log: &str, records: &[Vec<u8>]) -> Result<()> {
        if records.is_empty() && self.logs.contains_key(log) {
            return Ok(());
        }
        self.disk.barrier(Target::Log(log.to_owned()), false)?;
        self.ensure_log(log, 0)?;
        let files = self.logs.get_mut(log).expect("ensured above");
        self.buffered = Some(log.to_owned());
        files.append(records, &self.limits, &mut self.disk)
    }

    fn truncate_tail(&mut self, log: &str, len: u64) -> Result<()> {
        let Some(files) = self.logs.get_mut(log) else {
            return Ok(());
        };
        if len >= files.end() {
            return Ok(());
        }
        self.disk.barrier(Target::Log(log.to_owned()), true)?;
        files.truncate_tail(len, &mut self.disk)
    }

    fn drop_prefix(&mut self, log: &str, first: u64) -> Result<()> {
        let target = Target::Log(log.to_owned());
        match self.logs.get_mut(log) {
            None => {
                self.disk.barrier(target, false)?;
                self.ensure_log(log, first)
            }
            Some(files) if first > files.first() => {
                self.disk.barrier(target, true)?;
                files.drop_prefix(first, &mut self.disk)
            }
            Some(_) => Ok(()),
        }
    }

    /// Creates `log` at `first` unless it exists.
    fn ensure_log(&mut self, log: &str, first: u64) -> Result<()> {
        if !self.logs.contains_key(log) {
            let files = LogFiles::create(&self.dir.join(LOGS_DIR), log, first, &mut self.disk)?;
            self.logs.insert(log.to_owned(), files);
        }
        Ok(())
    }

    /// Refuses invalid names, oversized records and blobs, and batches that would pass the
    /// log or blob count limits, before anything is written.
    fn validate(&self, writes: &[Write]) -> Result<()> {
        let mut new_logs = BTreeSet::new();
        let mut new_blobs = BTreeSet::new();
        for op in writes.iter().flat_map(|w| &w.ops) {
            validate_op(op)?;
            match op {
                DiskOp::Append { log, .. } | DiskOp::DropPrefix { log, .. }
                    if !self.logs.contains_key(log) =>
                {
                    new_logs.insert(log.as_str());
                }
                DiskOp::Put { name, .. } if !self.blobs.contains(name) => {
                    new_blobs.insert(name.as_str());
                }
                _ => {}
            }
        }
        check_count(
            "logs",
            self.logs.len() + new_logs.len(),
            self.limits.max_logs,
        )?;
        check_count(
            "blobs",
            self.blobs.len() + new_blobs.len(),
            self.limits.max_blobs,
        )
    }
}

fn check_count(what: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(StorageError::TooLarge {
            what,
            len: len as u64,
            max: max as u64,
        });
    }
    Ok(())
}

fn validate_op(op: &DiskOp) -> Result<()> {
    let name = match op {
        DiskOp::Append { log, .. }
        | DiskOp::TruncateTail { log, .. }
        | DiskOp::DropPrefix { log, .. } => log,
        DiskOp::Put { name, .. } | DiskOp::Delete { name } => name,
    };
    if !valid_name(name) {
        return Err(StorageError::InvalidName { name: name.clone() });
    }
    match op {
        DiskOp::Append { records, .. } => match records.iter().map(Vec::len).max() {
            Some(len) if len > Limits::RECORD_BYTES => Err(StorageError::TooLarge {
                what: "record",
                len: len as u64,
                max: Limits::RECORD_BYTES as u64,
            }),
            _ => Ok(()),
        },
        DiskOp::Put { bytes, .. } if bytes.len() > Limits::BLOB_BYTES => {
            Err(StorageError::TooLarge {
                what: "blob",
                len: bytes.len() as u64,
                max: Limits::BLOB_BYTES as u64,
            })
        }
        _ => Ok(()),
    }
}

/// Refuses anything in the store's directory besides `logs` and `blobs`.
fn check_top_level(dir: &Path) -> Result<()> {
    for (name, path) in list_dir(dir, 8)? {
        if name != LOGS_DIR && name != BLOBS_DIR {
            return Err(StorageError::Unexpected {
                path,
                what: "not part of a store".into(),
            });
        }
    }
    Ok(())
}

/// Recovers every log under `logs_dir` into `durable`, removing crash leftovers.
fn recover_logs(
    logs_dir: &Path,
    limits: &Limits,
    durable: &mut Durable,
    report: &mut RecoveryReport,
    before_cut: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<BTreeMap<String, LogFiles>> {
    let mut logs = BTreeMap::new();
    for (name, path) in list_dir(logs_dir, limits.max_logs + EXTRA_LOG_ENTRIES)? {
        if is_temp(&name) {
            report.removed.push(remove_temp(&path)?);
            continue;
        }
        if !valid_name(&name) || !path.is_dir() {
            return Err(StorageError::Unexpected {
                path,
                what: "not a log directory".into(),
            });
        }
        check_count("logs", logs.len() + 1, limits.max_logs)?;
        let (files, log) = LogFiles::recover(path, &name, limits, report, before_cut)?;
        durable.logs.insert(name.clone(), log);
        logs.insert(name, files);
    }
    Ok(logs)
}
