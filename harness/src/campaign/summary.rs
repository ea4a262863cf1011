//! The campaign's summary: a line per run as it ends, a table in the terminal, and the same
//! as a self-contained HTML page linking each run's report.

use super::{Outcome, RunResult};
use checkers::linearizable::report::esc;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

/// One run: outcome, reproducibility, seconds, label, anomalies.
pub fn line(r: &RunResult) -> String {
    let again = match r.reproducible() {
        Some(true) => "reproduced",
        Some(false) => "flaky",
        None => "",
    };
    let mut s = format!(
        "{:<8} {:<10} {:>7.1}s  {}",
        r.first.outcome.name(),
        again,
        r.first.seconds,
        r.label
    );
    if !r.first.anomaly_types.is_empty() {
        let _ = write!(s, "  ({})", r.first.anomaly_types.join(", "));
    }
    s
}

/// Counts per outcome, in a fixed order.
fn counts(results: &[RunResult]) -> BTreeMap<&'static str, usize> {
    let mut c = BTreeMap::new();
    for r in results {
        *c.entry(r.first.outcome.name()).or_default() += 1;
    }
    c
}

fn tally(results: &[RunResult]) -> String {
    counts(results)
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The terminal table, then each run that was not valid with its reproducing command.
pub fn text(name: &str, results: &[RunResult], elapsed_s: f64) -> String {
    let mut s = format!(
        "campaign {name}: {} runs in {elapsed_s:.0} s: {}\n",
        results.len(),
        tally(results)
    );
    for r in results {
        let _ = writeln!(s, "  {}", line(r));
    }
    for r in results
        .iter()
        .filter(|r| !matches!(r.first.outcome, Outcome::Valid | Outcome::Skipped))
    {
        let _ = writeln!(s, "\n{}: {}", r.label, r.first.outcome.name());
        if let Some(e) = &r.first.error {
            let _ = writeln!(s, "  error: {e}");
        }
        if let Some(dir) = &r.first.run_dir {
            let _ = writeln!(s, "  run: {}", dir.display());
        }
        let _ = writeln!(s, "  reproduce: {}", r.command);
    }
    s
}

/// The HTML page written to `dir/summary.html`: links are relative, so the store can move.
pub fn html(name: &str, results: &[RunResult], dir: &Path) -> String {
    let mut rows = String::new();
    for r in results {
        let outcome = r.first.outcome.name();
        let again = match r.reproducible() {
            Some(true) => "reproduced",
            Some(false) => "flaky",
            None => "",
        };
        let link = match &r.first.run_dir {
            Some(run) => {
                let href = relative(dir, &run.join("report.html"));
                format!(
                    "<a href=\"{}\">report</a>",
                    esc(&href.display().to_string())
                )
            }
            None => String::new(),
        };
        let _ = writeln!(
            rows,
            "<tr class=\"{outcome}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{link}</td><td><code>{}</code></td></tr>",
            esc(&r.run.system),
            esc(&r.run.workload),
            esc(&r.run.variant),
            esc(&r.run.nemesis),
            r.run.seed,
            outcome,
            r.first.seconds,
            esc(&format!("{}{}{}", r.first.anomaly_types.join(", "), if again.is_empty() { "" } else { " · " }, again)),
            esc(&r.command),
        );
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>campaign {title}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 1.5em; }}\n\
         table {{ border-collapse: collapse; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }}\n\
         tr.valid td:nth-child(6) {{ color: #176117; }}\n\
         tr.invalid td:nth-child(6), tr.error td:nth-child(6) {{ color: #a01010; font-weight: bold; }}\n\
         tr.unknown td:nth-child(6), tr.skipped td:nth-child(6) {{ color: #8a6d00; }}\n\
         code {{ font-size: 0.85em; }}\n\
         </style></head><body>\n<h1>campaign {title}</h1>\n<p>{n} runs: {tally}</p>\n\
         <table>\n<tr><th>system</th><th>workload</th><th>variant</th><th>nemesis</th><th>seed</th><th>verdict</th><th>seconds</th><th>anomalies</th><th>run</th><th>reproduce</th></tr>\n{rows}</table>\n</body></html>\n",
        title = esc(name),
        n = results.len(),
        tally = esc(&tally(results)),
    )
}

/// `to` relative to the directory `from`, through their common ancestor; both are taken
/// as they are (absolute, or relative to the same directory).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to_parts: Vec<Component> = to.components().collect();
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to_parts[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_the_summary() {
        assert_eq!(
            relative(
                Path::new("store/campaigns/n/t1"),
                Path::new("store/campaign-n/t2/report.html")
            ),
            PathBuf::from("../../../campaign-n/t2/report.html")
        );
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/b/c")),
            PathBuf::from("c")
        );
    }
}
