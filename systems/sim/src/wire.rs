//! What a message costs on the wire, measured without sending it.
//!
//! Each peer message, request and response is serialized with postcard (the encoding the
//! reference systems use on the wire) into a sink that only counts bytes and hashes them: no
//! allocation, and serialization stops as soon as the size passes the limit. This gives an
//! exact check against `machine::MAX_MESSAGE_BYTES` for every message, and a content digest for
//! the trace hash, in one pass.

use postcard::ser_flavors::Flavor;
use serde::Serialize;

/// The size and content hash of one message's wire form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Digest {
    pub bytes: usize,
    pub hash: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WireError {
    /// Serialization passed `limit` bytes and was stopped there.
    TooLarge {
        at_least: usize,
    },
    Unserializable(String),
}

struct Sink {
    bytes: usize,
    limit: usize,
    hash: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Flavor for Sink {
    type Output = Sink;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.bytes += data.len();
        if self.bytes > self.limit {
            return Err(postcard::Error::SerializeBufferFull);
        }
        for &b in data {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        Ok(())
    }

    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.try_extend(&[b])
    }

    fn finalize(self) -> postcard::Result<Sink> {
        Ok(self)
    }
}

/// Measures `value`'s wire form, refusing forms longer than `limit` bytes.
pub(crate) fn digest<T: Serialize + ?Sized>(value: &T, limit: usize) -> Result<Digest, WireError> {
    let sink = Sink {
        bytes: 0,
        limit,
        hash: FNV_OFFSET,
    };
    match postcard::serialize_with_flavor(value, sink) {
        Ok(s) => Ok(Digest {
            bytes: s.bytes,
            hash: s.hash,
        }),
        Err(postcard::Error::SerializeBufferFull) => Err(WireError::TooLarge {
            at_least: limit + 1,
        }),
        Err(e) => Err(WireError::Unserializable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_matches_postcard_and_content_changes_the_hash() {
        let msg = (7u32, "hello".to_string(), vec![1u8, 2, 3]);
        let d = digest(&msg, 1 << 20).unwrap();
        assert_eq!(d.bytes, postcard::to_stdvec(&msg).unwrap().len());
        let other = (7u32, "hellp".to_string(), vec![1u8, 2, 3]);
        assert_ne!(d.hash, digest(&other, 1 << 20).unwrap().hash);
    }

    #[test]
    fn stops_at_the_limit() {
        let big = vec![0u8; 100];
        assert_eq!(digest(&big, 50), Err(WireError::TooLarge { at_least: 51 }));
        assert!(digest(&big, 101).is_ok());
    }
}
