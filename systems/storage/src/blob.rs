//! Blobs: `blobs/<name>`, each a sealed file replaced whole by temp-file-and-rename, so a
//! reader sees the old bytes or the new ones, and damage is an error, never data.

use crate::disk::Disk;
use crate::error::{io_err, Result, StorageError};
use crate::fsutil::{is_temp, list_dir, remove_temp};
use crate::limits::Limits;
use crate::report::RecoveryReport;
use crate::sealed::{self, Kind};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Temp files tolerated beside the blobs (one per interrupted `Put`).
const EXTRA_ENTRIES: usize = 64;

/// Replaces blob `name` in `dir`; the rename becomes durable at the next sync round.
pub(crate) fn put(dir: &Path, name: &str, bytes: &[u8], disk: &mut Disk) -> Result<()> {
    assert!(bytes.len() <= Limits::BLOB_BYTES, "validated by the store");
    sealed::write(dir, name, Kind::Blob, bytes, &mut disk.stats)?;
    disk.mark_dir(dir);
    Ok(())
}

/// Removes blob `name` from `dir`; durable at the next sync round.
pub(crate) fn delete(dir: &Path, name: &str, disk: &mut Disk) -> Result<()> {
    let path = dir.join(name);
    fs::remove_file(&path).map_err(io_err("remove", &path))?;
    disk.mark_dir(dir);
    Ok(())
}

/// Reads every blob in `dir`, removing temp files left by a crash.
pub(crate) fn recover(
    dir: &Path,
    limits: &Limits,
    report: &mut RecoveryReport,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut blobs = BTreeMap::new();
    for (name, path) in list_dir(dir, limits.max_blobs + EXTRA_ENTRIES)? {
        if is_temp(&name) {
            report.removed.push(remove_temp(&path)?);
            continue;
        }
        if !machine::valid_name(&name) || !path.is_file() {
            return Err(StorageError::Unexpected {
                path,
                what: "not a blob".into(),
            });
        }
        if blobs.len() >= limits.max_blobs {
            return Err(StorageError::TooLarge {
                what: "blobs",
                len: blobs.len() as u64 + 1,
                max: limits.max_blobs as u64,
            });
        }
        let bytes = sealed::read(&path, Kind::Blob, Limits::BLOB_BYTES as u64)?;
        blobs.insert(name, bytes);
    }
    Ok(blobs)
}
