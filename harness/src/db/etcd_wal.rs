//! etcd's write-ahead log framing, read to find where a segment's records end.
//!
//! A segment (`<seq>-<index>.wal`, 16 hex digits each) is a run of frames: an 8-byte
//! little-endian length word, then a `walpb.Record` protobuf, then padding to a multiple of
//! 8 bytes. The word's low 56 bits are the record's length; when its top bit is set, the low
//! three bits of its top byte are the padding length. Segments are preallocated (64 MB) and
//! zero-filled, so a zero length word is where the records end, not the end of the file.
//! Every record begins with its `type` field (protobuf tag `0x08`): a frame that does not
//! is not a record, and the records end before it.

use super::{LogTail, MAX_TAIL_BYTES};
use std::path::Path;

/// Largest segment read: etcd's are 64 MB.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// The low 56 bits of a length word.
const LENGTH_MASK: u64 = (1 << 56) - 1;
/// The protobuf key of `walpb.Record.type` (field 1, varint).
const TYPE_KEY: u8 = 0x08;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{file}: {cause}")]
    Read { file: String, cause: String },
    #[error("{file}: {len} bytes, more than a WAL segment may have ({MAX_SEGMENT_BYTES})")]
    TooLarge { file: String, len: u64 },
    #[error("{file}: no WAL records")]
    Empty { file: String },
}

/// Where a segment's records end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordsEnd {
    /// Just past the last whole frame.
    pub end: u64,
    /// Where the last whole frame starts.
    pub last_record: u64,
    pub records: u64,
    /// Something that is not zero fill follows the records (a torn or damaged frame).
    pub torn: bool,
    /// Where each whole frame starts.
    pub starts: Vec<u64>,
}

/// Walks the frames of a segment from its start.
pub fn records_end(bytes: &[u8]) -> RecordsEnd {
    let len = bytes.len() as u64;
    let mut at = RecordsEnd {
        end: 0,
        last_record: 0,
        records: 0,
        torn: false,
        starts: Vec::new(),
    };
    while at.end + 8 <= len {
        let start = at.end as usize;
        let word = u64::from_le_bytes(bytes[start..start + 8].try_into().expect("8 bytes"));
        if word == 0 {
            break;
        }
        let record = word & LENGTH_MASK;
        let padding = if word >> 63 == 1 {
            (word >> 56) & 0x7
        } else {
            0
        };
        let frame = 8u64.saturating_add(record).saturating_add(padding);
        let fits = at.end.checked_add(frame).is_some_and(|e| e <= len);
        if !fits || record == 0 || bytes[start + 8] != TYPE_KEY {
            at.torn = true;
            return at;
        }
        at.last_record = at.end;
        at.starts.push(at.end);
        at.end += frame;
        at.records += 1;
    }
    at.torn = bytes[at.end as usize..].iter().any(|&b| b != 0);
    at
}

/// The newest segment among directory entries: the greatest `<seq>-<index>.wal` name
/// (etcd's preallocated `<n>.tmp` files are not segments yet).
pub fn newest_segment<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names.map(str::trim).filter(|n| is_segment_name(n)).max()
}

fn is_segment_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".wal") else {
        return false;
    };
    let hex16 = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(stem.split_once('-'), Some((seq, index)) if hex16(seq) && hex16(index))
}

/// Reads a local copy of the segment `file` (its node-relative name) and finds its tail.
pub fn read_tail(local: &Path, file: &Path) -> Result<LogTail, WalError> {
    let name = file.display().to_string();
    let read_err = |e: std::io::Error| WalError::Read {
        file: name.clone(),
        cause: e.to_string(),
    };
    let file_len = std::fs::metadata(local).map_err(read_err)?.len();
    if file_len > MAX_SEGMENT_BYTES {
        return Err(WalError::TooLarge {
            file: name,
            len: file_len,
        });
    }
    let bytes = std::fs::read(local).map_err(read_err)?;
    let end = records_end(&bytes);
    if end.records == 0 {
        return Err(WalError::Empty { file: name });
    }
    let from = (end.end as usize).saturating_sub(MAX_TAIL_BYTES);
    Ok(LogTail {
        file: file.to_path_buf(),
        records_end: end.end,
        last_record: end.last_record,
        file_len,
        tail: bytes[from..end.end as usize].to_vec(),
        boundaries: LogTail::starts_in_tail(end.end, &end.starts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as etcd writes it: length word with padding bits, record, padding.
    fn frame(record: &[u8]) -> Vec<u8> {
        let padding = (8 - record.len() % 8) % 8;
        let mut word = record.len() as u64;
        if padding != 0 {
            word |= (0x80 | padding as u64) << 56;
        }
        let mut out = word.to_le_bytes().to_vec();
        out.extend_from_slice(record);
        out.extend(std::iter::repeat_n(0, padding));
        out
    }

    fn record(body_len: usize) -> Vec<u8> {
        let mut r = vec![TYPE_KEY, 2];
        r.extend(std::iter::repeat_n(0xab, body_len));
        r
    }

    #[test]
    fn the_end_is_past_the_last_frame_not_the_preallocated_zeros() {
        let mut seg = frame(&record(3));
        let second = seg.len() as u64;
        seg.extend(frame(&record(14)));
        let end = seg.len() as u64;
        seg.extend(vec![0u8; 4096]);
        let got = records_end(&seg);
        assert_eq!(
            got,
            RecordsEnd {
                end,
                last_record: second,
                records: 2,
                torn: false,
                starts: vec![0, second],
            }
        );
        assert_eq!(end % 8, 0, "frames are 8-byte aligned");
    }

    #[test]
    fn a_torn_or_garbled_frame_ends_the_records() {
        let mut seg = frame(&record(6));
        let end = seg.len() as u64;
        let torn = frame(&record(100));
        seg.extend_from_slice(&torn[..40]);
        let got = records_end(&seg);
        assert_eq!((got.end, got.records, got.torn), (end, 1, true));

        let mut garbled = frame(&record(6));
        garbled.extend(frame(&[0x77; 9]));
        garbled.extend(vec![0u8; 64]);
        let got = records_end(&garbled);
        assert_eq!((got.end, got.records, got.torn), (end, 1, true));

        assert_eq!(records_end(&[0u8; 64]).records, 0);
        assert_eq!(records_end(&[]).end, 0);
        let huge = u64::MAX.to_le_bytes();
        assert!(
            records_end(&huge).torn,
            "a length past the file is torn, not a panic"
        );
    }

    #[test]
    fn segments_are_named_seq_dash_index() {
        let names = [
            "0.tmp",
            "0000000000000000-0000000000000000.wal",
            "0000000000000001-00000000000000a2.wal",
            "junk.wal",
            "0000000000000002-xyz.wal",
        ];
        assert_eq!(
            newest_segment(names.into_iter()),
            Some("0000000000000001-00000000000000a2.wal")
        );
        assert_eq!(newest_segment(["1.tmp"].into_iter()), None);
    }
}
