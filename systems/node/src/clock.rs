//! The node's clock: monotonic time since start, plus an offset the harness may change.
//!
//! Reference systems take clock faults this way rather than through libfaketime: the
//! harness writes a signed offset to a file and the node re-reads it, so skews, bumps and
//! strobes reach the core's `now_ms` exactly, on any backend. The file holds libfaketime's
//! syntax (`+1.500`, `-30`: seconds, up to millisecond precision), so one file serves both.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the offset file is re-read.
const REREAD_MS: u64 = 100;
/// Offsets beyond this are ignored as garbage (a year, in ms).
pub const MAX_OFFSET_MS: i64 = 365 * 24 * 3_600 * 1_000;

#[derive(Debug)]
pub struct Clock {
    start: Instant,
    offset_file: Option<PathBuf>,
    offset_ms: i64,
    read_at: Option<Instant>,
}

impl Clock {
    pub fn new(offset_file: Option<PathBuf>) -> Self {
        Clock {
            start: Instant::now(),
            offset_file,
            offset_ms: 0,
            read_at: None,
        }
    }

    /// The node's time in ms. Starts near zero; may jump when the offset changes.
    pub fn now_ms(&mut self) -> u64 {
        self.refresh();
        let base = self.start.elapsed().as_millis() as i64;
        // Start the clock well above zero so negative offsets have room.
        (base + MAX_OFFSET_MS + self.offset_ms).max(0) as u64
    }

    fn refresh(&mut self) {
        let Some(file) = &self.offset_file else {
            return;
        };
        let due = self
            .read_at
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(REREAD_MS));
        if !due {
            return;
        }
        self.read_at = Some(Instant::now());
        self.offset_ms = match std::fs::read_to_string(file) {
            Ok(text) => match parse_offset_ms(&text) {
                Some(ms) if ms.abs() <= MAX_OFFSET_MS => ms,
                _ => {
                    tracing::warn!(file = %file.display(), "ignoring an unreadable clock offset");
                    self.offset_ms
                }
            },
            Err(_) => 0, // No file: no fault.
        };
    }
}

/// Parses libfaketime's relative offset: an optional sign, seconds, and an optional
/// fraction of up to three digits.
pub fn parse_offset_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (secs, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || (!frac.is_empty() && (!digits(frac) || frac.len() > 3)) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let frac_ms: i64 = format!("{frac:0<3}").parse().ok()?;
    let ms = secs.checked_mul(1_000)?.checked_add(frac_ms)?;
    Some(if negative { -ms } else { ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_file_moves_the_clock_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("offset");
        let mut c = Clock::new(Some(file.clone()));
        let before = c.now_ms();
        std::fs::write(&file, "+60.000\n").unwrap();
        c.read_at = None;
        let ahead = c.now_ms();
        assert!(ahead >= before + 60_000, "{before} -> {ahead}");
        std::fs::write(&file, "-60").unwrap();
        c.read_at = None;
        let behind = c.now_ms();
        assert!(behind + 60_000 <= before + 1_000, "{before} -> {behind}");
        std::fs::write(&file, "garbage").unwrap();
        c.read_at = None;
        assert!(c.now_ms() < before + 1_000, "garbage keeps the last offset");
    }

    #[test]
    fn offsets_use_libfaketimes_syntax() {
        assert_eq!(parse_offset_ms("+1.500"), Some(1_500));
        assert_eq!(parse_offset_ms("-30"), Some(-30_000));
        assert_eq!(parse_offset_ms("0.05\n"), Some(50));
        for bad in ["", "+", "1.2345", "x", "1e3", "--1"] {
            assert_eq!(parse_offset_ms(bad), None, "{bad:?}");
        }
    }
}
