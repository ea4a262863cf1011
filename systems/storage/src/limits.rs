//! Bounds on everything the store keeps or reads, so neither a hostile core nor a damaged
//! disk can make a node use unbounded memory, file handles or directory entries.

use machine::{MAX_BLOB_BYTES, MAX_RECORD_BYTES};

/// Tunable bounds of one store. Record and blob sizes are fixed by the machine contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A segment is closed and a new one started once appending would pass this size. A
    /// segment holds at least one record, so a single large record may exceed it.
    pub segment_bytes: u64,
    /// Segment files held open at once (one per recently appended log).
    pub max_open_files: usize,
    /// Logs one store may hold.
    pub max_logs: usize,
    /// Blobs one store may hold.
    pub max_blobs: usize,
    /// Segment files one log may span.
    pub max_segments_per_log: usize,
}

impl Limits {
    /// The largest record a log accepts (the machine's `MAX_RECORD_BYTES`).
    pub const RECORD_BYTES: usize = MAX_RECORD_BYTES;
    /// The largest blob accepted (the machine's `MAX_BLOB_BYTES`).
    pub const BLOB_BYTES: usize = MAX_BLOB_BYTES;

    /// Checks the bounds are usable, so a zero cannot turn into a loop or a refusal later.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 64 {
            return Err(format!("segment_bytes {} is below 64", self.segment_bytes));
        }
        if self.max_open_files == 0 || self.max_logs == 0 || self.max_blobs == 0 {
            return Err("max_open_files, max_logs and max_blobs must be positive".into());
        }
        if self.max_segments_per_log < 2 {
            return Err("max_segments_per_log must be at least 2".into());
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            segment_bytes: 64 << 20,
            max_open_files: 64,
            max_logs: 1024,
            max_blobs: 4096,
            max_segments_per_log: 1 << 16,
        }
    }
}
