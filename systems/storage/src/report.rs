//! What recovery repaired, so the driver can log it and tests can check it.

use std::path::PathBuf;

/// The outcome of a successful `Store::open`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Torn or corrupt tails cut from the last segment of a log.
    pub torn_tails: Vec<TornTail>,
    /// Files removed: temp files left by a crash mid-rename, and segments wholly below a
    /// log's first position whose removal a crash interrupted.
    pub removed: Vec<PathBuf>,
}

impl RecoveryReport {
    /// Whether the disk needed no repair.
    pub fn is_clean(&self) -> bool {
        self.torn_tails.is_empty() && self.removed.is_empty()
    }
}

/// A tail cut from the last segment of a log. Such a tail can only be a write that never
/// completed, so the records before it are everything that was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub log: String,
    pub file: PathBuf,
    /// The position the first dropped byte would have held: the log now ends here.
    pub position: u64,
    /// Byte offset in `file` where the cut was made.
    pub offset: u64,
    pub bytes_dropped: u64,
    /// What was wrong with the first bad frame.
    pub reason: String,
}
