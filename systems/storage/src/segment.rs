//! Segment files: one log is a run of files `<first position, 20 digits>.seg`, each a
//! 24-byte header `magic "FLSG" | version u16 | reserved u16 | first position u64 |
//! reserved u32 | crc32c u32 (of the bytes before it)` followed by record frames. Naming the
//! file by its first position lets recovery order segments and spot gaps without reading.
//! Segments are created by writing the header to a temp file and renaming it, so a named
//! segment always has a whole header and a bad one is corruption, never a crash artefact.

use crate::error::{corrupt, io_err, Result};
use crate::fsutil::{replace_file, sync_file, Stats};
use crate::record::{self, BadFrame, Frame, FRAME_HEADER_BYTES};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"FLSG";
const VERSION: u16 = 1;
/// Bytes before the first frame.
pub const HEADER_BYTES: u64 = 24;
const SUFFIX: &str = ".seg";
const DIGITS: usize = 20;
/// Read-ahead while scanning; bounded whatever the segment size.
const SCAN_BUFFER_BYTES: usize = 256 << 10;

/// The file name of the segment whose first record sits at `start`.
pub fn file_name(start: u64) -> String {
    format!("{start:0DIGITS$}{SUFFIX}")
}

/// The first position a segment file name stands for, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of a segment starting at `start`.
pub fn header(start: u64) -> [u8; HEADER_BYTES as usize] {
    let mut h = [0u8; HEADER_BYTES as usize];
    h[..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&start.to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Creates an empty segment in `dir` (file synced, directory not) and returns its path.
pub fn create(dir: &Path, start: u64, stats: &mut Stats) -> Result<PathBuf> {
    let name = file_name(start);
    replace_file(dir, &name, &[&header(start)], stats)?;
    Ok(dir.join(name))
}

/// Verifies a header read from `path`, which is named for position `start`.
fn check_header(path: &Path, h: &[u8; HEADER_BYTES as usize], start: u64) -> Result<()> {
    if h[..4] != MAGIC {
        return Err(corrupt(path, 0, "bad segment magic"));
    }
    let crc = u32::from_le_bytes(h[20..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&h[..20]) != crc {
        return Err(corrupt(path, 20, "segment header checksum mismatch"));
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != VERSION {
        return Err(corrupt(
            path,
            4,
            format!("unknown segment version {version}"),
        ));
    }
    let found = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    if found != start {
        return Err(corrupt(
            path,
            8,
            format!("header says position {found}, name says {start}"),
        ));
    }
    Ok(())
}

/// What a segment file holds.
#[derive(Debug)]
pub struct Scan {
    /// Records at positions `>= keep_from`, in order.
    pub kept: Vec<Vec<u8>>,
    /// Valid records in the file, kept or not.
    pub count: u64,
    /// Bytes up to the end of the last valid record.
    pub valid_bytes: u64,
    /// The file's size.
    pub file_bytes: u64,
    /// The first invalid frame after the valid ones, if any.
    pub bad: Option<BadFrame>,
}

/// Opens `path` (named for `start`), checks its header and returns the reader at the first
/// frame together with the file size.
fn open_checked(path: &Path, start: u64) -> Result<(BufReader<File>, u64)> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let file_bytes = file.metadata().map_err(io_err("stat", path))?.len();
    if file_bytes < HEADER_BYTES {
        return Err(corrupt(
            path,
            0,
            format!("{file_bytes} bytes is shorter than a segment header"),
        ));
    }
    let mut reader = BufReader::with_capacity(SCAN_BUFFER_BYTES, file);
    let mut h = [0u8; HEADER_BYTES as usize];
    reader.read_exact(&mut h).map_err(io_err("read", path))?;
    check_header(path, &h, start)?;
    Ok((reader, file_bytes))
}

/// Reads every valid record of the segment at `path`, stopping at the first bad frame.
pub fn scan(path: &Path, start: u64, keep_from: u64) -> Result<Scan> {
    let (mut reader, file_bytes) = open_checked(path, start)?;
    let mut scan = Scan {
        kept: Vec::new(),
        count: 0,
        valid_bytes: HEADER_BYTES,
        file_bytes,
        bad: None,
    };
    loop {
        // Every position and the end after it must fit in u64.
        let Some(position) = start.checked_add(scan.count).filter(|p| *p < u64::MAX) else {
            return Err(corrupt(path, scan.valid_bytes, "positions overflow u64"));
        };
        let remaining = file_bytes - scan.valid_bytes;
        match record::read(&mut reader, position, remaining).map_err(io_err("read", path))? {
            Frame::End => return Ok(scan),
            Frame::Bad(bad) => {
                scan.bad = Some(bad);
                return Ok(scan);
            }
            Frame::Record(payload) => {
                scan.valid_bytes += record::frame_bytes(payload.len());
                scan.count += 1;
                if position >= keep_from {
                    scan.kept.push(payload);
                }
            }
        }
    }
}

/// The byte offset of the `index`-th record of a segment already verified by `scan`, or
/// of its end when `index` equals the record count. Reads only frame headers.
pub fn record_offset(path: &Path, start: u64, index: u64) -> Result<u64> {
    let (mut reader, file_bytes) = open_checked(path, start)?;
    let mut offset = HEADER_BYTES;
    for _ in 0..index {
        let mut h = [0u8; FRAME_HEADER_BYTES];
        reader.read_exact(&mut h).map_err(io_err("read", path))?;
        let len = u64::from(u32::from_le_bytes(h[..4].try_into().expect("4 bytes")));
        offset += record::frame_bytes(len as usize);
        if offset > file_bytes {
            return Err(corrupt(
                path,
                offset,
                "frame runs past the end of a verified segment",
            ));
        }
        reader
            .seek(SeekFrom::Start(offset))
            .map_err(io_err("seek", path))?;
    }
    Ok(offset)
}

/// Cuts the file at `path` to `bytes` and makes the new size durable before returning, so
/// records cut here can never reappear behind records appended later.
pub fn truncate(path: &Path, bytes: u64, stats: &mut Stats) -> Result<()> {
    assert!(bytes >= HEADER_BYTES, "a segment keeps its header");
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    file.set_len(bytes).map_err(io_err("truncate", path))?;
    sync_file(&file, path, stats)
}
