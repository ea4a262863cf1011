//! The hash behind [`Tree::digest`](super::Tree::digest): a fingerprint of the replicated
//! state that replicas compare to catch divergence.
//!
//! ZooKeeper (3.6+, `DigestCalculator`) keeps its tree digest as the sum of one CRC per
//! node, updated as nodes change, so that it costs O(1) per transaction rather than a walk
//! of the tree. We do the same with a 64-bit FNV-1a per node, finished with splitmix64 so
//! that the sum of many node hashes does not cancel out patterns. The encoding is spelled
//! out byte by byte (little-endian, length-prefixed) rather than left to `std::hash`, whose
//! output may change between Rust versions: a digest must mean the same thing on every
//! replica.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// An FNV-1a 64 hasher with explicit field encodings.
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    pub(crate) fn new() -> Fnv64 {
        Fnv64(FNV_OFFSET)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Fnv64 {
        self.u64(bytes.len() as u64);
        self.raw(bytes)
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Fnv64 {
        self.raw(&value.to_le_bytes())
    }

    pub(crate) fn i32(&mut self, value: i32) -> &mut Fnv64 {
        self.raw(&value.to_le_bytes())
    }

    fn raw(&mut self, bytes: &[u8]) -> &mut Fnv64 {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
        self
    }

    pub(crate) fn finish(&self) -> u64 {
        mix(self.0)
    }
}

/// splitmix64's finalizer: spreads every input bit over every output bit.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors_before_mixing() {
        // FNV-1a 64 of "a" and "foobar", from the FNV reference test suite.
        assert_eq!(Fnv64::new().raw(b"a").0, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv64::new().raw(b"foobar").0, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let ab_c = Fnv64::new().bytes(b"ab").bytes(b"c").finish();
        let a_bc = Fnv64::new().bytes(b"a").bytes(b"bc").finish();
        assert_ne!(ab_c, a_bc);
    }
}
