//! The bench's figures as text: a row per cell as it finishes, and the whole table with
//! the floor above it.

use super::floor::{Floor, Machine};
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

/// The report as a self-contained page (`bench.html`): the floor and machine, the table
/// with each cell's verdict and command, and bar charts of throughput, abort rate and
/// latency, one bar per cell.
pub fn html(name: &str, machine: &Machine, floor: &Floor, results: &[CellResult]) -> String {
    use checkers::linearizable::report::esc;
    let mut rows = String::new();
    for r in results {
        let m = r.metrics.as_ref();
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let lat = |g: fn(&Quantiles) -> f64| f(m.and_then(|m| m.ok_latency.as_ref()).map(g));
        let _ = writeln!(
            rows,
            "<tr class=\"{v}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"verdict\">{v}{}</td><td><code>{}</code></td></tr>",
            esc(&r.label),
            f(m.map(|m| m.ok_per_s)),
            f(m.map(|m| 100.0 * m.abort_rate)),
            f(m.map(|m| 100.0 * m.info_rate)),
            lat(|l| l.p50_ms),
            lat(|l| l.p95_ms),
            lat(|l| l.p99_ms),
            lat(|l| l.max_ms),
            esc(&if r.anomaly_types.is_empty() { String::new() } else { format!(" ({})", r.anomaly_types.join(", ")) }),
            esc(&r.command),
            v = esc(&r.verdict),
        );
    }
    let metric = |g: &dyn Fn(&super::metrics::Metrics) -> Option<f64>| -> Vec<(String, f64)> {
        results
            .iter()
            .filter_map(|r| r.metrics.as_ref().and_then(g).map(|v| (r.label.clone(), v)))
            .collect()
    };
    let mut plots = String::new();
    for (axis, svg) in curves(results) {
        let _ = writeln!(plots, "<figure data-axis=\"{axis}\">{svg}</figure>");
    }
    for (title, x, values) in [
        (
            "throughput",
            "ok transactions / s",
            metric(&|m| Some(m.ok_per_s)),
        ),
        (
            "abort rate",
            "aborted (fail) / attempted, %",
            metric(&|m| Some(100.0 * m.abort_rate)),
        ),
        (
            "latency p50",
            "ms",
            metric(&|m| m.ok_latency.as_ref().map(|l| l.p50_ms)),
        ),
        (
            "latency p99",
            "ms",
            metric(&|m| m.ok_latency.as_ref().map(|l| l.p99_ms)),
        ),
    ] {
        match crate::plot::bars(title, &values, x) {
            Ok(svg) => {
                let _ = writeln!(plots, "<figure>{svg}</figure>");
            }
            Err(e) => {
                let _ = writeln!(plots, "<p>{}</p>", esc(&e));
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>bench {t}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 1.5em; }}\n\
         table {{ border-collapse: collapse; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }}\n\
         td:first-child, td:nth-last-child(-n+2) {{ text-align: left; }}\n\
         tr.invalid .verdict, tr.error .verdict {{ color: #a01010; font-weight: bold; }}\n\
         code {{ font-size: 0.8em; }}\n\
         </style></head><body>\n<h1>bench {t}</h1>\n<p>{floor}</p>\n<p>{cores} cores, {cpu}, {mem}, Linux {kernel}; load average at start {load}</p>\n\
         <table>\n<tr><th>cell</th><th>ok/s</th><th>abort %</th><th>info %</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>verdict</th><th>reproduce</th></tr>\n{rows}</table>\n{plots}</body></html>\n",
        t = esc(name),
        floor = esc(&floor_line(floor)),
        cores = machine.cores,
        cpu = esc(&machine.cpu_model),
        mem = esc(&machine.memory),
        kernel = esc(&machine.kernel),
        load = esc(&machine.load_average_at_start),
    )
}

/// For each axis that varies among the cells (nodes, keys in use, offered rate), a line
/// chart of ok/s against it, one line per combination of everything else: throughput
/// against the number of replicas per mode, against contention, against load.
fn curves(results: &[CellResult]) -> Vec<(&'static str, String)> {
    use std::collections::BTreeMap;
    type X = fn(&super::config::Cell) -> Option<f64>;
    let axes: [(&'static str, &str, X); 3] = [
        ("nodes", "nodes", |c| Some(c.nodes as f64)),
        ("key_count", "keys in use", |c| {
            c.key_count.map(|k| k as f64)
        }),
        ("rate", "offered ops/s", |c| c.rate.parse::<f64>().ok()),
    ];
    let mut out = Vec::new();
    for (axis, desc, x_of) in axes {
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for r in results {
            let (Some(x), Some(m)) = (x_of(&r.cell), &r.metrics) else {
                continue;
            };
            let name = r.cell.label_without(Some(axis));
            series.entry(name).or_default().push((x, m.ok_per_s));
        }
        let varies = series.values().any(|p| p.iter().any(|q| q.0 != p[0].0));
        if !varies {
            continue;
        }
        let mut list: Vec<crate::plot::Series> = series
            .into_iter()
            .map(|(name, mut p)| {
                p.sort_by(|a, b| a.0.total_cmp(&b.0));
                (name, p)
            })
            .collect();
        list.truncate(crate::plot::MAX_SERIES);
        if let Ok(svg) =
            crate::plot::lines(&format!("throughput against {desc}"), &list, desc, "ok/s")
        {
            out.push((axis, svg));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::config::parse;
    use super::super::metrics::Metrics;
    use super::*;
    use crate::matrix::Runnable;

    #[test]
    fn an_axis_that_varies_gets_a_curve_per_combination_of_the_others() {
        let (_, cells) = parse(
            "b.toml",
            "name = \"b\"\nworkload = \"list-append\"\n[[target]]\nsystem = \"repdb\"\nreplication = [\"certification\", \"active\"]\nnodes = [1, 3]\n",
        )
        .unwrap();
        let results: Vec<CellResult> = cells
            .iter()
            .map(|c| CellResult {
                cell: c.clone(),
                label: c.label(),
                command: c.command(),
                run: None,
                verdict: "valid".into(),
                anomaly_types: Vec::new(),
                error: None,
                metrics: Some(Metrics {
                    window_s: 1.0,
                    attempted: 10,
                    ok: 10,
                    fail: 0,
                    info: 0,
                    ok_per_s: 1000.0 / c.nodes as f64,
                    abort_rate: 0.0,
                    info_rate: 0.0,
                    ok_latency: Quantiles::of(vec![1_000_000]),
                    fail_latency: None,
                    ok_per_second: vec![10],
                }),
            })
            .collect();
        let curves = curves(&results);
        assert_eq!(curves.len(), 1, "only nodes varies");
        let (axis, svg) = &curves[0];
        assert_eq!(*axis, "nodes");
        assert!(svg.contains("throughput against nodes"));
        for name in [
            "repdb-certification-c10-rmax-s1",
            "repdb-active-c10-rmax-s1",
        ] {
            assert!(svg.contains(name), "{name}: {svg}");
        }
    }

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
        let machine = Machine::read();
        let page = html("b", &machine, &floor, &results);
        assert_eq!(
            page.matches("<svg").count(),
            4,
            "throughput, aborts, p50, p99"
        );
        assert!(
            page.contains("<td class=\"verdict\">invalid (divergent-apply-order)</td>"),
            "{page}"
        );
        assert!(page.contains("repdb-lazy-n3"));
    }
}
