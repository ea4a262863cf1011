//! The controller's log: every `tracing` event goes to standard error and to the current
//! run's `faultline.log`, so a stored run says what the controller did (and what failed)
//! without the terminal it ran in.
//!
//! The subscriber is global and installed once; the file it copies to is switched per run,
//! since one `faultline test --test-count N` makes N runs.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

static RUN_FILE: Mutex<Option<File>> = Mutex::new(None);
static INSTALLED: OnceLock<()> = OnceLock::new();
static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`, for CI logs: standard error gets warnings and errors only, and no progress
/// (verdicts and summaries still go to standard output); the run's `faultline.log` still
/// gets everything.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether a formatted event is a warning or an error (the level follows the timestamp).
fn is_warning(line: &[u8]) -> bool {
    let head = &line[..line.len().min(48)];
    head.windows(6).any(|w| w == b" WARN " || w == b"ERROR ")
}

/// Installs the subscriber (once per process). `RUST_LOG`-style filtering is not needed: the
/// controller logs at info and above, and tests read the file.
pub fn install() {
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| Tee)
            .with_ansi(false)
            .with_target(false)
            .with_max_level(tracing::Level::INFO)
            .try_init();
    });
}

/// From now on, events are also appended to `path`.
pub fn switch_to(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    *RUN_FILE.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
    Ok(())
}

/// Stops copying events to a run's file.
pub fn close() {
    *RUN_FILE.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !is_quiet() || is_warning(buf) {
            let _ = std::io::stderr().write_all(buf);
        }
        if let Some(f) = RUN_FILE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_told_by_their_level() {
        assert!(is_warning(
            b"2026-11-26T21:00:00.000000Z  WARN cannot merge\n"
        ));
        assert!(is_warning(
            b"2026-11-26T21:00:00.000000Z ERROR test failed\n"
        ));
        assert!(!is_warning(
            b"2026-11-26T21:00:00.000000Z  INFO repdb is ready; WARN later\n"
        ));
    }
}
