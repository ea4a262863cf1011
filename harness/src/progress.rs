//! Progress bars with an ETA for commands that run many tests (benches, campaigns). A bar
//! is drawn only on a terminal and never with `--quiet`; a CI log gets plain lines instead.

use crate::runlog;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A bar of `len` steps counted in `unit`s, or a hidden one.
pub fn bar(len: u64, unit: &str) -> ProgressBar {
    if runlog::is_quiet() || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let template = format!(
        "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit}, ETA {{eta_precise}}  {{msg}}"
    );
    bar.set_style(ProgressStyle::with_template(&template).expect("a valid template"));
    bar
}

/// A line for the operator: above the bar when one is drawn, plainly otherwise, not at all
/// when quiet.
pub fn line(bar: &ProgressBar, text: &str) {
    if runlog::is_quiet() {
        return;
    }
    if bar.is_hidden() {
        eprintln!("{text}");
    } else {
        bar.println(text);
    }
}
