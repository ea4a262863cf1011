//! Seeding a new two-phase-commit participant with a snapshot part (`--restore FILE`).
//!
//! A snapshot is restored into a new cluster by starting each participant from its part
//! (`twopc::proto::SnapshotPart`, postcard-encoded, as `Request::SnapshotState` returns it).
//! The core reads that part from the blob `twopc::record::RESTORE` when it boots with no
//! checkpoint, so all this does is put the blob into the store before the driver opens it.
//!
//! Only a store that holds nothing is seeded: a node restarted after a crash already has
//! its state (and the blob, if it was restored), and seeding it again would roll it back.

use std::path::{Path, PathBuf};
use storage::{Limits, Store};
use twopc::proto::SnapshotPart;

/// Largest restore file read: a part is a blob, so it can be no larger than one.
pub const MAX_RESTORE_BYTES: u64 = machine::MAX_BLOB_BYTES as u64;

/// Why a restore file could not seed the store.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("restore file {path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("storage in {dir}: {source}")]
    Storage {
        dir: PathBuf,
        #[source]
        source: storage::StorageError,
    },
}

/// What [`seed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeded {
    /// The store was empty and now holds the part: `keys` accounts restored.
    Restored { keys: usize },
    /// The store already held data (a restart): the file was not used.
    AlreadyBooted,
}

/// Reads and decodes a restore file, refusing one that is too large or not a part.
pub fn read_part(path: &Path) -> Result<(SnapshotPart, Vec<u8>), RestoreError> {
    let bad = |why: String| RestoreError::File {
        path: path.to_path_buf(),
        why,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| bad(e.to_string()))?
        .len();
    if len > MAX_RESTORE_BYTES {
        return Err(bad(format!(
            "{len} bytes, more than a snapshot part may hold ({MAX_RESTORE_BYTES})"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let part: SnapshotPart = twopc::record::decode("it", &bytes)
        .map_err(|e| bad(format!("not a postcard-encoded snapshot part: {e}")))?;
    Ok((part, bytes))
}

/// Puts the part in `file` into the store at `data_dir` as the restore blob, if the store
/// holds nothing yet.
pub fn seed(data_dir: &Path, file: &Path, limits: Limits) -> Result<Seeded, RestoreError> {
    // Decoded first, so a bad file is refused whether or not the store is used.
    let (part, bytes) = read_part(file)?;
    let storage_err = |source| RestoreError::Storage {
        dir: data_dir.to_path_buf(),
        source,
    };
    let (mut store, durable, _) = Store::open(data_dir, limits).map_err(storage_err)?;
    if !durable.logs.is_empty() || !durable.blobs.is_empty() {
        return Ok(Seeded::AlreadyBooted);
    }
    store
        .write(&[machine::Write {
            token: 1,
            ops: vec![machine::DiskOp::Put {
                name: twopc::record::RESTORE.into(),
                bytes,
            }],
        }])
        .map_err(storage_err)?;
    Ok(Seeded::Restored {
        keys: part.kv.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part() -> SnapshotPart {
        SnapshotPart {
            kv: vec![(0, 100), (2, 50)],
            before: vec![7],
            after: vec![],
        }
    }

    #[test]
    fn an_empty_store_is_seeded_once_and_a_booted_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("part.bin");
        std::fs::write(&file, twopc::record::encode(&part())).unwrap();
        let data = dir.path().join("data");
        assert_eq!(
            seed(&data, &file, Limits::default()).unwrap(),
            Seeded::Restored { keys: 2 }
        );
        let (_, durable, _) = Store::open(&data, Limits::default()).unwrap();
        let blob = &durable.blobs[twopc::record::RESTORE];
        let back: SnapshotPart = twopc::record::decode("blob", blob).unwrap();
        assert_eq!(back, part());
        assert_eq!(
            seed(&data, &file, Limits::default()).unwrap(),
            Seeded::AlreadyBooted
        );
    }

    #[test]
    fn a_file_that_is_not_a_part_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("junk.bin");
        std::fs::write(&file, [0xffu8; 3]).unwrap();
        let err = seed(&dir.path().join("data"), &file, Limits::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("junk.bin") && text.contains("not a postcard-encoded snapshot part"),
            "{text}"
        );
        assert!(
            !dir.path().join("data").exists(),
            "nothing is created for a bad file"
        );
        let missing = seed(
            &dir.path().join("data"),
            &dir.path().join("nope"),
            Limits::default(),
        )
        .unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
