//! What can go wrong, each error naming the file (and where useful the byte offset) so an
//! operator can find the damage: the node refuses to boot on these rather than guess.

use std::io;
use std::path::PathBuf;

/// Why the store could not open or could not carry out a write.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The operating system refused `op` on `path`.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Bytes on disk fail a check somewhere a crash cannot explain: an earlier segment, a
    /// header, a blob or log metadata. Recovering past it would boot from wrong state.
    #[error("corrupt {path} at byte {offset}: {what}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    /// A log's segments do not cover its positions contiguously.
    #[error("log {log}: {path} starts at position {found} but position {expected} was expected")]
    Gap {
        log: String,
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    /// A file or directory the store did not write sits among its files.
    #[error("unexpected entry {path}: {what}")]
    Unexpected { path: PathBuf, what: String },
    /// A log or blob name is not a safe file name (`machine::valid_name`).
    #[error("invalid name {name:?}")]
    InvalidName { name: String },
    /// Something exceeds a fixed bound: a record, a blob, a count of logs or files.
    #[error("{what}: {len} exceeds the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: u64,
        max: u64,
    },
    /// An earlier write failed part-way (or its fsync failed), so memory and disk may
    /// disagree. Retrying fsync after a failure can report success for lost data, so the
    /// store refuses further writes: reopen it to learn what the disk holds.
    #[error("store is unusable after an earlier failed write; reopen it")]
    Poisoned,
}

/// Shorthand for the store's results.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Tags an `io::Error` with the operation and the path, for `map_err`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.into();
    move |source| StorageError::Io { op, path, source }
}

/// A `Corrupt` error for `path` at `offset`.
pub(crate) fn corrupt(
    path: impl Into<PathBuf>,
    offset: u64,
    what: impl Into<String>,
) -> StorageError {
    StorageError::Corrupt {
        path: path.into(),
        offset,
        what: what.into(),
    }
}
