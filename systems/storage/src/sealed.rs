//! Sealed files: a whole file written at once and replaced atomically, with a header
//! `magic "FLSL" | version u16 | kind u16 | len u64 | crc32c u32` followed by `len` payload
//! bytes. The checksum covers the header fields and the payload, so any damage (or a file
//! cut short or extended) is an error rather than data. Blobs and log metadata use it.

use crate::error::{corrupt, io_err, Result, StorageError};
use crate::fsutil::{replace_file, Stats};
use std::fs::File;
use std::io::Read;
use std::path::Path;

const MAGIC: [u8; 4] = *b"FLSL";
const VERSION: u16 = 1;
/// Bytes before the payload.
pub const HEADER_BYTES: u64 = 20;

/// What a sealed file holds; stored so that a file of one kind is never read as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    Blob = 1,
    LogMeta = 2,
}

fn checksum(fields: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(fields), payload)
}

/// The header that precedes `payload`.
pub fn header(kind: Kind, payload: &[u8]) -> [u8; HEADER_BYTES as usize] {
    let mut h = [0u8; HEADER_BYTES as usize];
    h[..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[6..8].copy_from_slice(&(kind as u16).to_le_bytes());
    h[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = checksum(&h[..16], payload);
    h[16..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Atomically replaces `dir/name` with a sealed file holding `payload` (directory not synced).
pub fn write(dir: &Path, name: &str, kind: Kind, payload: &[u8], stats: &mut Stats) -> Result<()> {
    replace_file(dir, name, &[&header(kind, payload), payload], stats)
}

/// Reads and verifies the sealed file at `path`, refusing payloads over `max_bytes`.
pub fn read(path: &Path, kind: Kind, max_bytes: u64) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(io_err("open", path))?;
    let file_bytes = file.metadata().map_err(io_err("stat", path))?.len();
    if file_bytes < HEADER_BYTES {
        return Err(corrupt(
            path,
            0,
            format!("{file_bytes} bytes is shorter than a header"),
        ));
    }
    let mut header = [0u8; HEADER_BYTES as usize];
    file.read_exact(&mut header).map_err(io_err("read", path))?;
    let len = check_header(path, &header, kind, file_bytes)?;
    if len > max_bytes {
        return Err(StorageError::TooLarge {
            what: "sealed file payload",
            len,
            max: max_bytes,
        });
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact(&mut payload)
        .map_err(io_err("read", path))?;
    let stored = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
    if checksum(&header[..16], &payload) != stored {
        return Err(corrupt(path, 0, "checksum mismatch"));
    }
    Ok(payload)
}

/// Checks magic, version, kind and that the length matches the file; returns the length.
fn check_header(path: &Path, header: &[u8], kind: Kind, file_bytes: u64) -> Result<u64> {
    if header[..4] != MAGIC {
        return Err(corrupt(path, 0, "bad magic"));
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != VERSION {
        return Err(corrupt(
            path,
            4,
            format!("unknown format version {version}"),
        ));
    }
    let found = u16::from_le_bytes([header[6], header[7]]);
    if found != kind as u16 {
        return Err(corrupt(
            path,
            6,
            format!("kind {found}, expected {}", kind as u16),
        ));
    }
    let len = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if Some(file_bytes) != len.checked_add(HEADER_BYTES) {
        return Err(corrupt(
            path,
            8,
            format!("length {len} disagrees with file size {file_bytes}"),
        ));
    }
    Ok(len)
}
