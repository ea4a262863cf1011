//! A small seeded PRNG whose output is part of Faultline's contract.
//!
//! Whole runs (generated histories, schedules, fault plans) are reproduced from a seed, so the
//! sequence a seed yields must never change across versions; the tests pin it. That rules out
//! depending on an external crate whose algorithm or seeding may change. The generator is
//! xoshiro256** (Blackman & Vigna), seeded by SplitMix64 as its authors recommend, so that nearby
//! seeds (0, 1, 2, ...) give unrelated streams. Not for cryptography.

/// xoshiro256** seeded by SplitMix64. Cloning forks an identical stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The stream for `seed`. Every seed, including 0, gives a usable state.
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    /// A generator with this exact internal state, for checking against the reference vectors.
    /// The all-zero state is a fixed point of xoshiro, so it is refused.
    pub fn from_state(s: [u64; 4]) -> Rng {
        assert!(
            s != [0; 4],
            "xoshiro256** state must not be all zero (the stream would be all zeros)"
        );
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n`, without modulo bias (Lemire's multiply-and-reject). Panics if `n == 0`,
    /// since there is no value to return.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0): the range 0..0 is empty");
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        let mut low = m as u64;
        if low < n {
            // Reject the few low products that would over-represent some results.
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// Uniform in `lo..=hi`. Panics if `lo > hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "Rng::between({lo}, {hi}): empty range");
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            // The full u64 range: every output is already uniform.
            None => self.next_u64(),
        }
    }

    /// Uniform in `[0, 1)`, with 53 bits of precision.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (below 0 acts as 0, above 1 as 1). Always draws exactly one number, so that the
    /// rest of the stream does not depend on `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit_f64() < p
    }

    /// A uniformly chosen element. Panics on an empty slice, which has nothing to choose.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        assert!(!items.is_empty(), "Rng::pick on an empty slice");
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One SplitMix64 step (Steele, Lea & Flood), used only to expand a seed into a state.
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference() {
        // The first outputs of SplitMix64 from 0, as printed by Vigna's splitmix64.c.
        let mut x = 0;
        assert_eq!(splitmix64(&mut x), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut x), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(splitmix64(&mut x), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn xoshiro256starstar_matches_the_reference() {
        // Vigna's xoshiro256starstar.c from state [1, 2, 3, 4] (the vectors rand_xoshiro checks).
        let mut r = Rng::from_state([1, 2, 3, 4]);
        let expected: [u64; 10] = [
            11520,
            0,
            1509978240,
            1215971899390074240,
            1216172134540287360,
            607988272756665600,
            16172922978634559625,
            8476171486693032832,
            10595114339597558777,
            2904607092377533576,
        ];
        for e in expected {
            assert_eq!(r.next_u64(), e);
        }
    }

    /// Computed independently (a Python transcription of the reference C) and pinned.
    /// These numbers are a compatibility promise: if this test fails, seeds recorded by earlier
    /// versions no longer reproduce their runs. Fix the code, never the numbers.
    #[test]
    fn streams_for_pinned_seeds_never_change() {
        let first = |seed| {
            let mut r = Rng::new(seed);
            [r.next_u64(), r.next_u64(), r.next_u64(), r.next_u64()]
        };
        assert_eq!(first(0), PINNED_SEED_0);
        assert_eq!(first(42), PINNED_SEED_42);
        let mut r = Rng::new(42);
        let derived: Vec<u64> = (0..8).map(|_| r.below(10)).collect();
        assert_eq!(derived, PINNED_SEED_42_BELOW_10);
    }

    const PINNED_SEED_0: [u64; 4] = [
        11091344671253066420,
        13793997310169335082,
        1900383378846508768,
        7684712102626143532,
    ];
    const PINNED_SEED_42: [u64; 4] = [
        1546998764402558742,
        6990951692964543102,
        12544586762248559009,
        17057574109182124193,
    ];
    const PINNED_SEED_42_BELOW_10: [u64; 8] = [0, 3, 6, 9, 9, 7, 7, 8];

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(7);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[r.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(r.below(1), 0);
        // Ranges near 2^64 exercise the rejection path.
        let big = u64::MAX - 1;
        for _ in 0..100 {
            assert!(r.below(big) < big);
        }
    }

    #[test]
    fn between_is_inclusive() {
        let mut r = Rng::new(3);
        let xs: Vec<u64> = (0..200).map(|_| r.between(5, 6)).collect();
        assert!(xs.contains(&5) && xs.contains(&6) && xs.iter().all(|x| (5..=6).contains(x)));
        r.between(0, u64::MAX);
    }

    #[test]
    fn chance_respects_extremes_and_rate() {
        let mut r = Rng::new(11);
        assert!((0..1000).all(|_| !r.chance(0.0)));
        assert!((0..1000).all(|_| r.chance(1.0)));
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2300..2700).contains(&hits), "{hits}");
    }

    #[test]
    fn pick_chooses_every_element() {
        let mut r = Rng::new(5);
        let items = ['a', 'b', 'c'];
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            seen.insert(*r.pick(&items));
        }
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn different_seeds_give_different_streams() {
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
