//! The store's view of what is written but not yet durable, and the bounded set of open
//! segment files. Ordering lives here: a crash must leave a prefix of the operations, so
//! before an operation that destroys data, or that touches a different log or blob than
//! the unsynced ones, everything pending is made durable first (a barrier). Appends to one
//! log in a row share a single fsync round, which is what group commit needs.

use crate::error::{io_err, Result};
use crate::fsutil::{sync_dir, sync_file, Stats};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The object an operation changes, for deciding whether a barrier is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Log(String),
    Blob(String),
}

#[derive(Debug)]
struct Handle {
    path: PathBuf,
    file: File,
    /// Written since the last fsync.
    dirty: bool,
    /// Logical time of last use, for evicting the least recently used.
    used: u64,
}

/// Open segment files (keyed by log name) and unsynced state.
#[derive(Debug)]
pub(crate) struct Disk {
    handles: BTreeMap<String, Handle>,
    max_open: usize,
    clock: u64,
    dirty_dirs: BTreeSet<PathBuf>,
    /// The object the pending changes belong to.
    owner: Option<Target>,
    pub stats: Stats,
}

impl Disk {
    pub fn new(max_open: usize) -> Disk {
        assert!(max_open > 0, "at least one open file");
        Disk {
            handles: BTreeMap::new(),
            max_open,
            clock: 0,
            dirty_dirs: BTreeSet::new(),
            owner: None,
            stats: Stats::default(),
        }
    }

    fn is_dirty(&self) -> bool {
        !self.dirty_dirs.is_empty() || self.handles.values().any(|h| h.dirty)
    }

    /// Syncs everything pending if the next operation, on `target`, could otherwise become
    /// durable ahead of it: when it destroys data or changes another object.
    pub fn barrier(&mut self, target: Target, destructive: bool) -> Result<()> {
        if self.is_dirty() && (destructive || self.owner.as_ref() != Some(&target)) {
            self.stats.barriers += 1;
            self.sync_round()?;
        }
        self.owner = Some(target);
        Ok(())
    }

    /// fsyncs every written file, then every changed directory.
    pub fn sync_round(&mut self) -> Result<()> {
        if !self.is_dirty() {
            return Ok(());
        }
        self.stats.sync_rounds += 1;
        for h in self.handles.values_mut().filter(|h| h.dirty) {
            sync_file(&h.file, &h.path, &mut self.stats)?;
            h.dirty = false;
        }
        for dir in std::mem::take(&mut self.dirty_dirs) {
            sync_dir(&dir, &mut self.stats)?;
        }
        Ok(())
    }

    /// Records that entries of `dir` changed and need a directory fsync.
    pub fn mark_dir(&mut self, dir: &Path) {
        self.dirty_dirs.insert(dir.to_path_buf());
    }

    /// Writes `bytes` at `offset` of `path`, the active segment of `log`.
    pub fn write_at(&mut self, log: &str, path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
        let h = self.handle(log, path)?;
        h.file
            .write_all_at(bytes, offset)
            .map_err(io_err("write", path))?;
        h.dirty = true;
        self.stats.bytes_appended += bytes.len() as u64;
        Ok(())
    }

    /// Closes the handle of `log`, whose file is gone or no longer written.
    pub fn forget(&mut self, log: &str) {
        self.handles.remove(log);
    }

    fn handle(&mut self, log: &str, path: &Path) -> Result<&mut Handle> {
        self.clock += 1;
        let stale = self.handles.get(log).is_some_and(|h| h.path != path);
        if stale {
            self.close(log)?;
        }
        if !self.handles.contains_key(log) {
            if self.handles.len() >= self.max_open {
                self.evict()?;
            }
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err("open", path))?;
            let h = Handle {
                path: path.to_path_buf(),
                file,
                dirty: false,
                used: 0,
            };
            self.handles.insert(log.to_owned(), h);
        }
        let h = self.handles.get_mut(log).expect("inserted above");
        h.used = self.clock;
        Ok(h)
    }

    /// Closes a handle, syncing it first if written: closing never loses an fsync.
    fn close(&mut self, log: &str) -> Result<()> {
        if let Some(h) = self.handles.remove(log) {
            if h.dirty {
                sync_file(&h.file, &h.path, &mut self.stats)?;
            }
        }
        Ok(())
    }

    /// Makes room under `max_open`, preferring the least recently used clean handle.
    fn evict(&mut self) -> Result<()> {
        let victim = self
            .handles
            .iter()
            .min_by_key(|(_, h)| (h.dirty, h.used))
            .map(|(log, _)| log.clone());
        match victim {
            Some(log) => self.close(&log),
            None => Ok(()),
        }
    }
}
