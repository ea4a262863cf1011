//! Each node's own clock: an offset from virtual time, a constant drift, and jumps (faults).
//!
//! A node's `now_ms` is its local clock, which may disagree with other nodes and may jump either
//! way, as the machine contract warns. Ticks follow the node's oscillator: they come every
//! `TICK_MS` of local time as drift stretches or shrinks it, but a jump does not make ticks
//! burst or stall, just as a monotonic timer ignores a wall-clock step.

use checkers::rng::Rng;
use machine::TICK_MS;

/// How far nodes' clocks disagree.
#[derive(Clone, Debug)]
pub struct ClockConfig {
    /// Each node's clock starts ahead of virtual time by a uniform offset in `0..=max_offset_ms`.
    pub max_offset_ms: u64,
    /// Each node's clock runs fast or slow by a uniform rate in `-max_drift_ppm..=max_drift_ppm`
    /// parts per million (at most [`MAX_DRIFT_PPM`]).
    pub max_drift_ppm: u64,
}

impl Default for ClockConfig {
    fn default() -> ClockConfig {
        ClockConfig {
            max_offset_ms: 1_000,
            max_drift_ppm: 0,
        }
    }
}

/// 10%: beyond this a "clock" is broken hardware, not drift.
pub const MAX_DRIFT_PPM: u64 = 100_000;

const PPM: i128 = 1_000_000;

/// One node's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Clock {
    offset_ms: i64,
    drift_ppm: i64,
}

impl Clock {
    pub fn new(config: &ClockConfig, rng: &mut Rng) -> Clock {
        assert!(
            config.max_drift_ppm <= MAX_DRIFT_PPM,
            "max_drift_ppm {} exceeds {MAX_DRIFT_PPM}",
            config.max_drift_ppm
        );
        assert!(
            config.max_offset_ms <= i64::MAX as u64 / 4,
            "absurd clock offset"
        );
        let offset_ms = rng.between(0, config.max_offset_ms) as i64;
        let span = rng.between(0, 2 * config.max_drift_ppm) as i64;
        Clock {
            offset_ms,
            drift_ppm: span - config.max_drift_ppm as i64,
        }
    }

    /// The node's reading at virtual time `virtual_ms`; never below 0.
    pub fn local_ms(&self, virtual_ms: u64) -> u64 {
        let v = i128::from(virtual_ms);
        let local = v + i128::from(self.offset_ms) + v * i128::from(self.drift_ppm) / PPM;
        local.clamp(0, i128::from(u64::MAX)) as u64
    }

    /// Steps the clock by `delta_ms` (either way), as an NTP step or an operator would.
    pub fn jump(&mut self, delta_ms: i64) {
        self.offset_ms = self.offset_ms.saturating_add(delta_ms);
    }

    /// Virtual time of the `k`-th tick of a schedule that started at `start_ms`: ticks are
    /// `TICK_MS` apart in local time, so a fast clock ticks more often in virtual time.
    pub fn tick_at(&self, start_ms: u64, k: u64) -> u64 {
        let local_span = i128::from(k) * i128::from(TICK_MS) * PPM;
        let virtual_span = local_span / (PPM + i128::from(self.drift_ppm));
        start_ms.saturating_add(virtual_span as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(offset_ms: i64, drift_ppm: i64) -> Clock {
        Clock {
            offset_ms,
            drift_ppm,
        }
    }

    #[test]
    fn offset_drift_and_jumps_shift_the_reading() {
        let mut c = clock(500, 0);
        assert_eq!(c.local_ms(1_000), 1_500);
        c.jump(-2_000);
        assert_eq!(c.local_ms(1_000), 0, "a backward jump saturates at 0");
        assert_eq!(c.local_ms(3_000), 1_500);
        let fast = clock(0, 100_000);
        assert_eq!(fast.local_ms(10_000), 11_000);
    }

    #[test]
    fn a_fast_clock_ticks_more_often_and_jumps_do_not_move_ticks() {
        let fast = clock(0, 100_000);
        assert_eq!(
            fast.tick_at(0, 11),
            100,
            "11 local ticks fit in 100 virtual ms"
        );
        let mut c = clock(0, 0);
        let before = c.tick_at(7, 3);
        c.jump(5_000);
        assert_eq!(c.tick_at(7, 3), before);
        assert_eq!(before, 7 + 3 * TICK_MS);
    }

    #[test]
    fn config_bounds_are_respected() {
        let cfg = ClockConfig {
            max_offset_ms: 50,
            max_drift_ppm: 1_000,
        };
        let mut rng = Rng::new(1);
        for _ in 0..100 {
            let c = Clock::new(&cfg, &mut rng);
            assert!((0..=50).contains(&c.offset_ms), "{c:?}");
            assert!((-1_000..=1_000).contains(&c.drift_ppm), "{c:?}");
        }
    }
}
