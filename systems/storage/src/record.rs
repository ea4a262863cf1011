//! Record framing inside a segment: `len: u32 LE | crc: u32 LE | payload`, where the
//! crc32c covers the record's absolute position, the length and the payload. Covering the
//! length means a torn or flipped length is caught instead of steering the reader; covering
//! the position means a record (or a block of them) found at the wrong place is caught too.
//! A zero-filled frame never verifies, because the crc32c of a zero length is not zero.

use machine::MAX_RECORD_BYTES;
use std::io::{self, Read};

/// Bytes of framing before each payload.
pub const FRAME_HEADER_BYTES: usize = 8;

/// The checksum stored in a frame.
pub fn frame_crc(position: u64, payload: &[u8]) -> u32 {
    let len = payload.len() as u32;
    let crc = crc32c::crc32c(&position.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &len.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// Appends the frame of `payload` at `position` to `out`.
pub fn encode(position: u64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= MAX_RECORD_BYTES,
        "record over MAX_RECORD_BYTES"
    );
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&frame_crc(position, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The framed size of a payload of `payload_bytes`.
pub fn frame_bytes(payload_bytes: usize) -> u64 {
    (FRAME_HEADER_BYTES + payload_bytes) as u64
}

/// Why the bytes at some offset are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadFrame {
    /// Fewer bytes remain than a frame header.
    ShortHeader { remaining_bytes: u64 },
    /// The header is all zeros: preallocated or extended-but-lost space.
    ZeroFilled,
    /// The length field is over `MAX_RECORD_BYTES`.
    AbsurdLength { len: u64 },
    /// The payload would run past the end of the file.
    ShortPayload { len: u64, remaining_bytes: u64 },
    /// The checksum does not match.
    Checksum,
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFrame::ShortHeader { remaining_bytes } => {
                write!(f, "partial frame header ({remaining_bytes} bytes)")
            }
            BadFrame::ZeroFilled => write!(f, "zero-filled frame header"),
            BadFrame::AbsurdLength { len } => {
                write!(f, "record length {len} exceeds {MAX_RECORD_BYTES}")
            }
            BadFrame::ShortPayload {
                len,
                remaining_bytes,
            } => write!(
                f,
                "record length {len} runs past the end ({remaining_bytes} bytes left)"
            ),
            BadFrame::Checksum => write!(f, "record checksum mismatch"),
        }
    }
}

/// The outcome of reading one frame.
#[derive(Debug)]
pub enum Frame {
    /// A verified payload.
    Record(Vec<u8>),
    /// No bytes remain: a clean end.
    End,
    /// The bytes here are not a record; nothing after them can be trusted.
    Bad(BadFrame),
}

/// Reads the frame at `position` from `reader`, which holds `remaining_bytes` more bytes.
/// Allocates at most `MAX_RECORD_BYTES`, and only once the length fits in the file.
pub fn read(reader: &mut impl Read, position: u64, remaining_bytes: u64) -> io::Result<Frame> {
    if remaining_bytes == 0 {
        return Ok(Frame::End);
    }
    if remaining_bytes < FRAME_HEADER_BYTES as u64 {
        return Ok(Frame::Bad(BadFrame::ShortHeader { remaining_bytes }));
    }
    let mut header = [0u8; FRAME_HEADER_BYTES];
    reader.read_exact(&mut header)?;
    if header == [0u8; FRAME_HEADER_BYTES] {
        return Ok(Frame::Bad(BadFrame::ZeroFilled));
    }
    let len = u64::from(u32::from_le_bytes(header[..4].try_into().expect("4 bytes")));
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > MAX_RECORD_BYTES as u64 {
        return Ok(Frame::Bad(BadFrame::AbsurdLength { len }));
    }
    let after_header = remaining_bytes - FRAME_HEADER_BYTES as u64;
    if len > after_header {
        return Ok(Frame::Bad(BadFrame::ShortPayload {
            len,
            remaining_bytes: after_header,
        }));
    }
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload)?;
    if frame_crc(position, &payload) != crc {
        return Ok(Frame::Bad(BadFrame::Checksum));
    }
    Ok(Frame::Record(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8], position: u64) -> Frame {
        read(&mut &bytes[..], position, bytes.len() as u64).unwrap()
    }

    #[test]
    fn a_frame_round_trips_and_knows_its_position() {
        let mut buf = Vec::new();
        encode(7, b"hello", &mut buf);
        assert_eq!(buf.len() as u64, frame_bytes(5));
        assert!(matches!(read_all(&buf, 7), Frame::Record(p) if p == b"hello"));
        assert!(matches!(read_all(&buf, 8), Frame::Bad(BadFrame::Checksum)));
    }

    #[test]
    fn an_empty_record_is_not_mistaken_for_zero_fill() {
        let mut buf = Vec::new();
        encode(0, b"", &mut buf);
        assert!(matches!(read_all(&buf, 0), Frame::Record(p) if p.is_empty()));
        assert!(matches!(
            read_all(&[0; 8], 0),
            Frame::Bad(BadFrame::ZeroFilled)
        ));
        assert!(matches!(
            read_all(&[0; 7], 0),
            Frame::Bad(BadFrame::ShortHeader { .. })
        ));
    }

    #[test]
    fn a_corrupt_length_is_caught_without_allocating_it() {
        let mut buf = Vec::new();
        encode(0, b"abc", &mut buf);
        buf[0] = 2; // a shorter length that still fits in the file
        assert!(matches!(read_all(&buf, 0), Frame::Bad(BadFrame::Checksum)));
        buf[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_all(&buf, 0),
            Frame::Bad(BadFrame::AbsurdLength { .. })
        ));
        buf[..4].copy_from_slice(&100u32.to_le_bytes());
        assert!(matches!(
            read_all(&buf, 0),
            Frame::Bad(BadFrame::ShortPayload { .. })
        ));
    }
}
