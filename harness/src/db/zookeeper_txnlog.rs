//! ZooKeeper's transaction log framing, read to find where a log file's records end, for
//! the disk nemesis's tail faults.
//!
//! A log file (`data/version-2/log.<first zxid in hex>`) starts with a 16-byte header
//! (magic `ZKLG`, format version, database id), then holds records, each an 8-byte
//! checksum (Adler-32 in a big-endian long), a 4-byte big-endian length, the transaction's
//! bytes, and the end-of-record byte `B`. Files are preallocated in 64 MB steps and
//! zero-filled, so a zero length is where the records end, not the end of the file.

use super::{LogTail, MAX_TAIL_BYTES};
use std::path::Path;

/// Largest log file read: ZooKeeper's grow by 64 MB and roll over after a snapshot.
pub const MAX_LOG_BYTES: u64 = 1 << 30;
const HEADER_BYTES: usize = 16;
const MAGIC: &[u8; 4] = b"ZKLG";
/// Checksum and length before each transaction.
const RECORD_HEADER_BYTES: usize = 12;
const END_OF_RECORD: u8 = b'B';

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxnLogError {
    #[error("{file}: {len} bytes, more than a transaction log may have ({MAX_LOG_BYTES})")]
    TooLarge { file: String, len: u64 },
    #[error("{file}: not a ZooKeeper transaction log (no ZKLG header)")]
    NotALog { file: String },
    #[error("{file}: no transaction records")]
    Empty { file: String },
    #[error("{file}: {cause}")]
    Read { file: String, cause: String },
}

/// The newest log among directory entries: the greatest first zxid of `log.<hex>`.
pub fn newest_log<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(str::trim)
        .filter_map(|n| {
            let zxid = u64::from_str_radix(n.strip_prefix("log.")?, 16).ok()?;
            Some((zxid, n))
        })
        .max()
        .map(|(_, n)| n)
}

/// Where `bytes`' whole records end, and where each starts.
pub fn records_end(bytes: &[u8], file: &Path) -> Result<(u64, Vec<u64>), TxnLogError> {
    let name = || file.display().to_string();
    if bytes.len() < HEADER_BYTES || &bytes[..4] != MAGIC {
        return Err(TxnLogError::NotALog { file: name() });
    }
    let (mut end, mut starts) = (HEADER_BYTES, Vec::new());
    while end + RECORD_HEADER_BYTES <= bytes.len() {
        let len_at = end + 8;
        let len = i32::from_be_bytes(bytes[len_at..len_at + 4].try_into().expect("4 bytes"));
        let Ok(len) = usize::try_from(len) else { break };
        let next = end + RECORD_HEADER_BYTES + len + 1;
        // Zero fill, a torn record, or damage: the records end here either way.
        if len == 0 || next > bytes.len() || bytes[next - 1] != END_OF_RECORD {
            break;
        }
        starts.push(end as u64);
        end = next;
    }
    if starts.is_empty() {
        return Err(TxnLogError::Empty { file: name() });
    }
    Ok((end as u64, starts))
}

/// The tail of the log file at `local` (a copy of the node's `file`).
pub fn read_tail(local: &Path, file: &Path) -> Result<LogTail, TxnLogError> {
    let read_err = |e: std::io::Error| TxnLogError::Read {
        file: file.display().to_string(),
        cause: e.to_string(),
    };
    let len = std::fs::metadata(local).map_err(read_err)?.len();
    if len > MAX_LOG_BYTES {
        return Err(TxnLogError::TooLarge {
            file: file.display().to_string(),
            len,
        });
    }
    let bytes = std::fs::read(local).map_err(read_err)?;
    let (end, starts) = records_end(&bytes, file)?;
    let from = end.saturating_sub(MAX_TAIL_BYTES as u64) as usize;
    Ok(LogTail {
        file: file.to_path_buf(),
        records_end: end,
        last_record: *starts.last().expect("not empty"),
        file_len: bytes.len() as u64,
        tail: bytes[from..end as usize].to_vec(),
        boundaries: LogTail::starts_in_tail(end, &starts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(records: &[&[u8]], zero_fill: usize) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        for r in records {
            b.extend_from_slice(&0x1234_5678i64.to_be_bytes());
            b.extend_from_slice(&(r.len() as i32).to_be_bytes());
            b.extend_from_slice(r);
            b.push(END_OF_RECORD);
        }
        b.extend(std::iter::repeat_n(0u8, zero_fill));
        b
    }

    #[test]
    fn records_end_before_the_zero_fill_and_a_torn_record() {
        let file = Path::new("data/version-2/log.100000001");
        let bytes = log(&[b"first", b"second txn"], 4096);
        let whole = (16 + 18 + 23) as u64;
        assert_eq!(records_end(&bytes, file), Ok((whole, vec![16, 16 + 18])));
        // A record cut short (its end-of-record byte gone) does not count.
        let mut torn = log(&[b"first", b"second txn"], 0);
        torn.pop();
        assert_eq!(records_end(&torn, file), Ok((16 + 18, vec![16])));
        // Nor does one whose length was damaged past the file's end.
        let mut damaged = bytes.clone();
        damaged[16 + 18 + 8..16 + 18 + 12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(records_end(&damaged, file), Ok((16 + 18, vec![16])));
    }

    #[test]
    fn not_a_log_and_an_empty_log_are_errors_naming_the_file() {
        let file = Path::new("data/version-2/log.1");
        let err = records_end(b"garbage that is long enough", file).unwrap_err();
        assert!(err.to_string().contains("log.1: not a ZooKeeper"), "{err}");
        let err = records_end(&log(&[], 100), file).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data/version-2/log.1: no transaction records"
        );
    }

    #[test]
    fn the_newest_log_has_the_greatest_first_zxid() {
        let names = [
            "snapshot.0",
            "log.100000001",
            "log.200000001",
            "log.1f",
            "acceptedEpoch",
        ];
        assert_eq!(newest_log(names.into_iter()), Some("log.200000001"));
        assert_eq!(newest_log(["snapshot.0"].into_iter()), None);
    }
}
