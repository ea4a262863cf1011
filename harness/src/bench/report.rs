//! The bench's figures as text: a row per cell as it finishes, and the whole table with
//! the floor above it.

use super::floor::Floor;
use super::metrics::Quantiles;
use super::CellResult;
use std::fmt::Write;

/// The floor in one line.
pub fn floor_line(f: &Floor) -> String {
    format!(
        "floor: fsync p50 {:.3} ms, p99 {:.3} ms; loopback round trip p50 {:.3} ms, p99 {:.3} ms",
        f.fsync.p50_ms, f.fsync.p99_ms, f.loopback_rtt.p50_ms, f.loopback_rtt.p99_ms
    )
}

const HEADER: [&str; 10] = [
    "ok/s", "abort%", "info%", "p50 ms", "p95 ms", "p99 ms", "max ms", "attempts", "verdict",
    "cell",
];

/// One cell: the figures, the verdict, the cell's label.
pub fn row(r: &CellResult) -> String {
    let mut cols: Vec<String> = match &r.metrics {
        Some(m) => {
            let q = |f: fn(&Quantiles) -> f64| {
                m.ok_latency
                    .as_ref()
                    .map_or("-".into(), |l| format!("{:.2}", f(l)))
            };
            vec![
                format!("{:.1}", m.ok_per_s),
                format!("{:.1}", 100.0 * m.abort_rate),
                format!("{:.1}", 100.0 * m.info_rate),
                q(|l| l.p50_ms),
                q(|l| l.p95_ms),
                q(|l| l.p99_ms),
                q(|l| l.max_ms),
                m.attempted.to_string(),
            ]
        }
        None => vec!["-".to_string(); 8],
    };
    let mut verdict = r.verdict.clone();
    if !r.anomaly_types.is_empty() {
        verdict = format!("{verdict} ({})", r.anomaly_types.join(", "));
    }
    cols.push(verdict);
    cols.push(r.label.clone());
    line(&cols)
}

fn line(cols: &[String]) -> String {
    const WIDTHS: [usize; 8] = [10, 7, 6, 8, 8, 8, 9, 9];
    let mut s = String::new();
    for (i, c) in cols.iter().enumerate() {
        match WIDTHS.get(i) {
            Some(w) => {
                let _ = write!(s, "{c:>w$} ");
            }
            None => {
                let _ = write!(s, " {c}");
            }
        }
    }
    s.trim_end().to_string()
}

/// The whole report: name, floor, a header, a row per cell, and for each cell that did not
/// finish or was not valid, what happened and the command that reproduces it.
pub fn table(name: &str, floor: &Floor, results: &[CellResult]) -> String {
    let mut s = format!(
        "bench {name}: {} cells\n{}\n",
        results.len(),
        floor_line(floor)
    );
    let header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    let _ = writeln!(s, "{}", line(&header));
    for r in results {
        let _ = writeln!(s, "{}", row(r));
    }
    for r in results.iter().filter(|r| r.verdict != "valid") {
        let _ = writeln!(s, "\n{}: {}", r.label, r.verdict);
        if let Some(e) = &r.error {
            let _ = writeln!(s, "  error: {e}");
        }
        if let Some(run) = &r.run {
            let _ = writeln!(s, "  run: {}", run.display());
        }
        let _ = writeln!(s, "  reproduce: {}", r.command);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::config::parse;
    use super::super::metrics::Metrics;
    use super::*;

    #[test]
    fn rows_line_up_and_failures_say_how_to_reproduce() {
        let (_, cells) = parse(
            "b.toml",
            "name = \"b\"\nworkload = \"list-append\"\n[[target]]\nsystem = \"repdb\"\nreplication = [\"certification\", \"lazy\"]\n",
        )
        .unwrap();
        let metrics = Metrics {
            window_s: 2.0,
            attempted: 10,
            ok: 8,
            fail: 2,
            info: 0,
            ok_per_s: 4.0,
            abort_rate: 0.2,
            info_rate: 0.0,
            ok_latency: Quantiles::of(vec![1_000_000, 3_000_000]),
            fail_latency: None,
            ok_per_second: vec![4, 4],
        };
        let result = |i: usize, verdict: &str, anomalies: &[&str]| CellResult {
            cell: cells[i].clone(),
            label: cells[i].label(),
            command: cells[i].command(),
            run: Some("store/bench-b/x".into()),
            verdict: verdict.into(),
            anomaly_types: anomalies.iter().map(|a| a.to_string()).collect(),
            error: None,
            metrics: Some(metrics.clone()),
        };
        let results = [
            result(0, "valid", &[]),
            result(1, "invalid", &["divergent-apply-order"]),
        ];
        let floor = Floor {
            fsync: Quantiles::of(vec![2_000_000]).unwrap(),
            loopback_rtt: Quantiles::of(vec![50_000]).unwrap(),
        };
        let t = table("b", &floor, &results);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "bench b: 2 cells");
        assert!(
            lines[1].contains("fsync p50 2.000 ms") && lines[1].contains("round trip p50 0.050 ms"),
            "{t}"
        );
        assert!(lines[3].starts_with("       4.0    20.0    0.0     1.00     3.00     3.00      3.00        10  valid repdb-certification"), "{t}");
        assert!(
            lines[4].contains("invalid (divergent-apply-order) repdb-lazy-n3"),
            "{t}"
        );
        assert!(t.contains("reproduce: faultline test --system repdb --workload list-append --replication lazy"), "{t}");
        assert!(!t.contains("reproduce: faultline test --system repdb --workload list-append --replication certification"), "{t}");
    }
}
