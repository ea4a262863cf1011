//! Jute, ZooKeeper's binary record encoding, as far as the client protocol uses it.
//!
//! Every value is big-endian: `int` is 4 bytes, `long` 8, `boolean` 1. A `buffer` or
//! `ustring` is an `int` length then the bytes, a `vector` is an `int` count then the
//! elements, and in all three a length of -1 means null. Records are their fields in
//! order, with no tags and no framing of their own.
//!
//! The reader never trusts a length: a length or count is checked against the bytes that
//! are left before anything is allocated, so a garbage frame costs an error, not memory.

/// Why bytes are not the record expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JuteError {
    #[error("record truncated: needed {needed} bytes at offset {at}, {left} left")]
    Truncated {
        at: usize,
        needed: usize,
        left: usize,
    },
    #[error("negative length {len} at offset {at}")]
    NegativeLength { at: usize, len: i32 },
    #[error("boolean byte {byte} at offset {at} is neither 0 nor 1")]
    BadBool { at: usize, byte: u8 },
    #[error("string at offset {at} is not UTF-8")]
    BadUtf8 { at: usize },
    #[error("{left} trailing bytes after the record")]
    Trailing { left: usize },
    #[error("{what} {value} is not one ZooKeeper defines")]
    Unknown { what: &'static str, value: i32 },
}

/// Appends jute values to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// A writer whose first 4 bytes are left for the frame's length prefix, so that a
    /// request is encoded once, straight into the bytes sent.
    pub fn framed() -> Writer {
        Writer { buf: vec![0; 4] }
    }

    pub fn int(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn long(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn boolean(&mut self, v: bool) -> &mut Self {
        self.buf.push(u8::from(v));
        self
    }

    pub fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.int(len_i32(v.len()));
        self.buf.extend_from_slice(v);
        self
    }

    pub fn ustring(&mut self, v: &str) -> &mut Self {
        self.buffer(v.as_bytes())
    }

    /// A vector of strings, the only kind of vector besides ACLs that requests carry.
    pub fn strings(&mut self, v: &[String]) -> &mut Self {
        self.int(len_i32(v.len()));
        for s in v {
            self.ustring(s);
        }
        self
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes of a [`Writer::framed`] writer with the length prefix filled in.
    pub fn into_frame(mut self) -> Vec<u8> {
        let body = len_i32(self.buf.len() - 4);
        self.buf[..4].copy_from_slice(&body.to_be_bytes());
        self.buf
    }
}

/// Lengths this crate writes are bounded far below `i32::MAX` by the frame limit, which
/// callers check before sending; saturating keeps an oversized one visible to that check.
fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Reads jute values from a byte slice, front to back.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    /// Fails unless every byte was read: a reply longer than its record is garbage too.
    pub fn finish(&self) -> Result<(), JuteError> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(JuteError::Trailing { left }),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], JuteError> {
        if self.remaining() < n {
            return Err(JuteError::Truncated {
                at: self.at,
                needed: n,
                left: self.remaining(),
            });
        }
        let bytes = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(bytes)
    }

    pub fn int(&mut self) -> Result<i32, JuteError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn long(&mut self) -> Result<i64, JuteError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(b))
    }

    pub fn boolean(&mut self) -> Result<bool, JuteError> {
        let at = self.at;
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(JuteError::BadBool { at, byte }),
        }
    }

    /// A buffer; null (-1) reads as empty, as ZooKeeper's clients treat a null znode value.
    pub fn buffer(&mut self) -> Result<Vec<u8>, JuteError> {
        Ok(self.bytes()?.to_vec())
    }

    pub fn ustring(&mut self) -> Result<String, JuteError> {
        let at = self.at;
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| JuteError::BadUtf8 { at })
    }

    fn bytes(&mut self) -> Result<&'a [u8], JuteError> {
        let at = self.at;
        let len = self.int()?;
        if len == -1 {
            return Ok(&[]);
        }
        let len = usize::try_from(len).map_err(|_| JuteError::NegativeLength { at, len })?;
        self.take(len)
    }

    /// A vector's element count, refused if even `min_element_bytes` per element would
    /// not fit in what is left. Null (-1) reads as empty.
    pub fn count(&mut self, min_element_bytes: usize) -> Result<usize, JuteError> {
        let at = self.at;
        let len = self.int()?;
        if len == -1 {
            return Ok(0);
        }
        let count = usize::try_from(len).map_err(|_| JuteError::NegativeLength { at, len })?;
        let needed = count.saturating_mul(min_element_bytes.max(1));
        if needed > self.remaining() {
            return Err(JuteError::Truncated {
                at,
                needed,
                left: self.remaining(),
            });
        }
        Ok(count)
    }

    /// A vector of strings (each at least its 4-byte length).
    pub fn strings(&mut self) -> Result<Vec<String>, JuteError> {
        let count = self.count(4)?;
        (0..count).map(|_| self.ustring()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_big_endian() {
        let mut w = Writer::new();
        w.int(-2).long(0x0102_0304_0506_0708).boolean(true);
        w.buffer(b"ab")
            .ustring("/z")
            .strings(&["x".into(), "yz".into()]);
        let bytes = w.into_bytes();
        assert_eq!(&bytes[..4], &[0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(&bytes[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.int(), Ok(-2));
        assert_eq!(r.long(), Ok(0x0102_0304_0506_0708));
        assert_eq!(r.boolean(), Ok(true));
        assert_eq!(r.buffer(), Ok(b"ab".to_vec()));
        assert_eq!(r.ustring(), Ok("/z".to_string()));
        assert_eq!(r.strings(), Ok(vec!["x".to_string(), "yz".to_string()]));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn null_buffers_and_vectors_read_empty() {
        let bytes = [0xff; 8];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.buffer(), Ok(vec![]));
        assert_eq!(r.strings(), Ok(vec![]));
    }

    #[test]
    fn lying_lengths_are_refused_before_allocating() {
        let huge = i32::MAX.to_be_bytes();
        assert!(matches!(
            Reader::new(&huge).buffer(),
            Err(JuteError::Truncated { .. })
        ));
        assert!(matches!(
            Reader::new(&huge).strings(),
            Err(JuteError::Truncated { .. })
        ));
        let negative = (-5i32).to_be_bytes();
        assert_eq!(
            Reader::new(&negative).buffer(),
            Err(JuteError::NegativeLength { at: 0, len: -5 })
        );
        assert_eq!(
            Reader::new(&[2]).boolean(),
            Err(JuteError::BadBool { at: 0, byte: 2 })
        );
        let mut r = Reader::new(&[0, 0, 0, 1, 0]);
        r.int().unwrap();
        assert_eq!(r.finish(), Err(JuteError::Trailing { left: 1 }));
    }

    #[test]
    fn framed_writer_prefixes_the_body_length() {
        let mut w = Writer::framed();
        w.int(7);
        assert_eq!(w.into_frame(), vec![0, 0, 0, 4, 0, 0, 0, 7]);
    }
}
