//! What benches and campaigns share: a file that expands to a matrix of `faultline test`
//! runs, each kept as its command line, read and checked before anything runs (so a typo
//! in the last line does not surface an hour in), and listed by `--dry-run`.

use crate::bench::config::ConfigError;
use crate::test_run;
use std::io::Write;
use std::path::Path;

/// One run of a matrix.
pub trait Runnable {
    /// Position in the matrix, from 0.
    fn index(&self) -> usize;
    fn label(&self) -> String;
    /// `faultline test` arguments that perform exactly this run.
    fn argv(&self) -> &[String];

    /// The shell command that performs this run alone.
    fn command(&self) -> String {
        std::iter::once("faultline test".to_string())
            .chain(self.argv().iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The file at `path` (its text, what it says, and its runs), each run's arguments checked
/// as `faultline test` checks them. None when it is bad input: the problem is printed for
/// `command` (`faultline bench: FILE: ...`), naming the run (`noun` 3) where it is one run's.
pub fn load<F, T: Runnable>(
    command: &str,
    path: &Path,
    max_bytes: usize,
    noun: &str,
    parse: impl Fn(&str, &str) -> Result<(F, Vec<T>), ConfigError>,
) -> Option<(String, F, Vec<T>)> {
    let file = path.display().to_string();
    let refuse = |e: &dyn std::fmt::Display| eprintln!("faultline {command}: {e}");
    let text = match crate::store::read_text(path, max_bytes) {
        Ok(t) => t,
        Err(e) => {
            refuse(&e);
            return None;
        }
    };
    let (what, runs) = match parse(&file, &text) {
        Ok(parsed) => parsed,
        Err(e) => {
            refuse(&e);
            return None;
        }
    };
    for r in &runs {
        if let Err(e) = test_run::parse_args(r.argv()) {
            refuse(&format!(
                "{file}: {noun} {} ({}): {e}",
                r.index(),
                r.label()
            ));
            return None;
        }
    }
    Some((text, what, runs))
}

/// A dry run's listing on standard output: index, label, and the command on a line of its
/// own. Stops quietly when the reader goes away (`| head`).
pub fn print_listing<T: Runnable>(runs: &[T]) {
    let mut out = std::io::stdout().lock();
    for r in runs {
        if writeln!(
            out,
            "{:>4}  {}\n      {}",
            r.index(),
            r.label(),
            r.command()
        )
        .is_err()
        {
            return;
        }
    }
}
