//! Small file-system steps shared by segments, blobs and log metadata: counted fsyncs,
//! bounded directory listings and the temp-file-then-rename dance for atomic replacement.

use crate::error::{io_err, Result, StorageError};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Counters of work done, for benchmarks and for tests that check group commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// fsync/fdatasync calls on files and directories.
    pub fsyncs: u64,
    /// Rounds that flushed everything pending (at least one per `write` call that did work).
    pub sync_rounds: u64,
    /// Sync rounds forced mid-call because the next op must not overtake pending ones.
    pub barriers: u64,
    /// Records appended to logs.
    pub records_appended: u64,
    /// Bytes written to segment files, framing included.
    pub bytes_appended: u64,
}

/// Whether a directory entry is a temp file (or directory) left by a crash mid-rename.
pub(crate) fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// The temp name under which `name` is prepared before its atomic rename.
pub(crate) fn temp_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// fdatasync: enough for contents and size, which is all a reader needs.
pub(crate) fn sync_file(file: &File, path: &Path, stats: &mut Stats) -> Result<()> {
    stats.fsyncs += 1;
    file.sync_data().map_err(io_err("fsync", path))
}

/// Makes entries created, renamed or removed in `dir` durable.
pub(crate) fn sync_dir(dir: &Path, stats: &mut Stats) -> Result<()> {
    let handle = File::open(dir).map_err(io_err("open directory", dir))?;
    stats.fsyncs += 1;
    handle.sync_all().map_err(io_err("fsync directory", dir))
}

/// Names in `dir`, refusing directories with more than `max` entries so a damaged or
/// hostile directory cannot make recovery allocate without bound.
pub(crate) fn list_dir(dir: &Path, max: usize) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        if out.len() >= max {
            return Err(StorageError::TooLarge {
                what: "directory entries",
                len: out.len() as u64 + 1,
                max: max as u64,
            });
        }
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(StorageError::Unexpected {
                path,
                what: "name is not UTF-8".into(),
            });
        };
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

/// Removes a stray temp file or directory, returning its path for the recovery report.
pub(crate) fn remove_temp(path: &Path) -> Result<PathBuf> {
    let meta = fs::symlink_metadata(path).map_err(io_err("stat", path))?;
    if meta.is_dir() {
        fs::remove_dir_all(path).map_err(io_err("remove", path))?;
    } else {
        fs::remove_file(path).map_err(io_err("remove", path))?;
    }
    Ok(path.to_path_buf())
}

/// Writes `parts` to `dir/.name.tmp`, syncs it and renames it over `dir/name`. The
/// directory is NOT synced: the caller decides when the rename must be durable. Taking the
/// contents in parts lets a large blob be written behind its header without a copy.
pub(crate) fn replace_file(
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
    stats: &mut Stats,
) -> Result<()> {
    let temp = dir.join(temp_name(name));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(io_err("create", &temp))?;
    for part in parts {
        file.write_all(part).map_err(io_err("write", &temp))?;
    }
    sync_file(&file, &temp, stats)?;
    drop(file);
    let target = dir.join(name);
    fs::rename(&temp, &target).map_err(io_err("rename", &target))
}

/// Creates `dir` if missing and syncs its parent so the new entry survives a crash.
pub(crate) fn ensure_dir(dir: &Path, stats: &mut Stats) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent, stats),
        _ => Ok(()),
    }
}
