//! The search's memo: the configurations it has visited, as 96-bit fingerprints (the low
//! bits of the search's 128-bit ones), each with the crashed-usage vectors it was visited
//! with.
//!
//! Why a table of its own: a 50,000-op history visits millions of configurations, and a
//! general map of `u128` to an array of ways costs 48 bytes a slot (the key's 16-byte
//! alignment pads it) while almost every configuration is visited with one usage vector. Here
//! a slot is 16 bytes: the key as three `u32`s and one way, or an index into a side table when
//! a configuration has several. Sixteen bytes, not twenty with the whole fingerprint, because
//! then no slot straddles two cache lines, and 96 bits still make a collision among a
//! billion configurations less likely than 10^-11. Fingerprints are uniformly random
//! already, so the slot is their low bits, with no hashing; linear probing keeps a probe in
//! one or two cache lines.
//! Memory touched is what a large check pays for most (on this project's 2-core virtual
//! machines a fresh page costs more than the lookups that fill it).

/// How many crashed-usage vectors a configuration keeps.
pub(super) const WAYS: usize = 8;
/// An absent way.
pub(super) const NO_WAY: u32 = u32::MAX;
/// Marks a slot's way as an index into `overflow`.
const OVERFLOW: u32 = 1 << 31;
/// The largest way id a slot can hold inline.
pub(super) const MAX_WAY: u32 = OVERFLOW - 1;
/// Small, because a kv history may have a partition, and a memo, per key.
const FIRST_SLOTS: usize = 64;
/// Insertions the search may make between two looks at its memory (its poll interval).
const GROWTH_MARGIN: usize = 1 << 12;
const FILTER_BITS_PER_SLOT: usize = 8;

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Slot {
    /// The fingerprint; all zero for an empty slot (fingerprint 0 is stored as 1).
    key: [u32; 3],
    way: u32,
}

/// Bytes a slot costs.
pub(super) const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
const _: () = assert!(SLOT_BYTES == 16);

pub(super) struct Memo {
    /// A power of two long, at most three quarters full.
    slots: Vec<Slot>,
    len: usize,
    overflow: Vec<[u32; WAYS]>,
    /// One bit per slot's worth of fingerprint bits, set for every key stored: most lookups
    /// are of configurations never visited, and this answers them from a table a twentieth
    /// the size of the slots, which stays in cache.
    filter: Vec<u64>,
}

fn split(key: u128) -> [u32; 3] {
    let key = [key as u32, (key >> 32) as u32, (key >> 64) as u32];
    if key == [0; 3] {
        [1, 0, 0]
    } else {
        key
    }
}

impl Memo {
    pub(super) fn new() -> Memo {
        Memo {
            slots: vec![Slot::default(); FIRST_SLOTS],
            len: 0,
            overflow: Vec::new(),
            filter: vec![0; FIRST_SLOTS * FILTER_BITS_PER_SLOT / 64],
        }
    }

    /// Configurations stored.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held now, and the bytes the next growth would hold at its peak (old and new
    /// slots together), for the memory limit.
    pub(super) fn bytes(&self) -> (usize, usize) {
        let slots = self.slots.len() * SLOT_BYTES;
        let side = self.overflow.capacity() * WAYS * 4 + self.filter.len() * 8;
        (slots + side, 3 * slots + side)
    }

    /// Whether the next few thousand insertions may grow the table.
    pub(super) fn near_growth(&self) -> bool {
        (self.len + GROWTH_MARGIN) * 4 >= self.slots.len() * 3
    }

    /// The filter's word and bit for `key`, from bits the slot index does not use.
    fn filter_bit(&self, key: &[u32; 3]) -> (usize, u64) {
        // The slot index takes the low bits of key[0] and key[1]: the filter takes key[2].
        let bit =
            (u64::from(key[2]) | u64::from(key[1]) << 32) as usize & (self.filter.len() * 64 - 1);
        (bit / 64, 1 << (bit % 64))
    }

    /// The slot holding `key`, or the empty slot where it would go.
    fn probe(&self, key: &[u32; 3]) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = (u64::from(key[0]) | u64::from(key[1]) << 32) as usize & mask;
        loop {
            let slot = &self.slots[i];
            if slot.key == *key {
                return Ok(i);
            }
            if slot.key == [0; 3] {
                return Err(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The usage vectors `key` was visited with, `NO_WAY` after the last.
    pub(super) fn get(&self, key: u128) -> Option<[u32; WAYS]> {
        let key = split(key);
        let (word, bit) = self.filter_bit(&key);
        if self.filter[word] & bit == 0 {
            return None;
        }
        let i = self.probe(&key).ok()?;
        Some(self.ways_of(self.slots[i].way))
    }

    fn ways_of(&self, way: u32) -> [u32; WAYS] {
        if way & OVERFLOW != 0 {
            self.overflow[(way & !OVERFLOW) as usize]
        } else {
            let mut ways = [NO_WAY; WAYS];
            ways[0] = way;
            ways
        }
    }

    /// Stores `ways` (at least the first set, every id at most `MAX_WAY`) for `key`.
    pub(super) fn set(&mut self, key: u128, ways: [u32; WAYS]) {
        assert!(ways[0] <= MAX_WAY, "memo: a usage vector id out of range");
        let key = split(key);
        let i = match self.probe(&key) {
            Ok(i) => i,
            Err(i) => {
                let (word, bit) = self.filter_bit(&key);
                self.filter[word] |= bit;
                self.slots[i].key = key;
                self.slots[i].way = NO_WAY;
                self.len += 1;
                i
            }
        };
        let old = self.slots[i].way;
        self.slots[i].way = if ways[1] == NO_WAY {
            ways[0]
        } else if old != NO_WAY && old & OVERFLOW != 0 {
            self.overflow[(old & !OVERFLOW) as usize] = ways;
            old
        } else {
            self.overflow.push(ways);
            OVERFLOW | (self.overflow.len() - 1) as u32
        };
        if self.len * 4 >= self.slots.len() * 3 {
            self.grow();
        }
    }

    fn grow(&mut self) {
        let doubled = vec![Slot::default(); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.filter = vec![0; self.slots.len() * FILTER_BITS_PER_SLOT / 64];
        for slot in old.into_iter().filter(|s| s.key != [0; 3]) {
            let (word, bit) = self.filter_bit(&slot.key);
            self.filter[word] |= bit;
            let Err(i) = self.probe(&slot.key) else {
                unreachable!("memo: a key stored twice")
            };
            self.slots[i] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ways(ids: &[u32]) -> [u32; WAYS] {
        let mut w = [NO_WAY; WAYS];
        w[..ids.len()].copy_from_slice(ids);
        w
    }

    #[test]
    fn keeps_every_key_and_its_ways_through_growth() {
        let mut m = Memo::new();
        let key = |i: u64| (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        for i in 0..50_000u64 {
            let w = if i % 7 == 0 {
                ways(&[1, 2, 3])
            } else {
                ways(&[i as u32])
            };
            m.set(key(i), w);
        }
        assert_eq!(m.len(), 50_000);
        for i in 0..50_000u64 {
            let want = if i % 7 == 0 {
                ways(&[1, 2, 3])
            } else {
                ways(&[i as u32])
            };
            assert_eq!(m.get(key(i)), Some(want), "key {i}");
        }
        assert_eq!(m.get(key(50_001)), None);
    }

    #[test]
    fn a_configuration_gains_ways_in_place() {
        let mut m = Memo::new();
        m.set(5, ways(&[4]));
        m.set(5, ways(&[4, 9]));
        m.set(5, ways(&[4, 9, 2]));
        assert_eq!(m.get(5), Some(ways(&[4, 9, 2])));
        assert_eq!(m.len(), 1);
        assert_eq!(m.overflow.len(), 1, "a grown entry reuses its side slot");
        // Fingerprint zero is a key like any other.
        m.set(0, ways(&[7]));
        assert_eq!(m.get(0), Some(ways(&[7])));
    }
}
