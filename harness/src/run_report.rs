//! A run's `report.html`: one self-contained page per stored run, whatever the system.
//!
//! It shows every checker's verdict from `results.json`; latency over time per operation
//! (ok, fail and info in their own colors) and throughput over time, with the fault
//! windows shaded; latency quantiles per operation; a timeline of operations per process;
//! the anomaly pictures the checkers left beside the results; and links to the checker's
//! own pages, the node logs and every other file of the run. Plots are SVG drawn in Rust
//! ([`crate::plot`]); the page loads nothing from anywhere.

use crate::bench::metrics::Quantiles;
use crate::plot::{self, Kind, Window};
use crate::store::{list_dir, EntryKind};
use checkers::history::{History, OpType, Process};
use checkers::linearizable::report::esc;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Operations (by `f`) that get a latency plot of their own; the rest are in the table.
const MAX_LATENCY_PLOTS: usize = 4;
/// Processes the timeline shows (the first ones).
const MAX_TIMELINE_ROWS: usize = 64;
/// Anomaly pictures shown inline.
const MAX_PICTURES: usize = 20;
/// Files listed per node directory.
const MAX_NODE_FILES: usize = 50;

/// Writes `dir/report.html` for the checked run in `dir`.
pub fn write(dir: &Path, history: &History) -> anyhow::Result<()> {
    let page = html(dir, history);
    std::fs::write(dir.join("report.html"), page)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", dir.join("report.html").display()))
}

fn read_json(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn html(dir: &Path, h: &History) -> String {
    let test = read_json(&dir.join("test.json"));
    let results = read_json(&dir.join("results.json"));
    let name = test["name"].as_str().unwrap_or("run");
    let verdict = match results["valid"].as_bool() {
        Some(true) => "valid",
        Some(false) => "INVALID",
        None => "unknown",
    };
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<h1>{}: <span class=\"{}\">{verdict}</span></h1>\n<p>{}</p>",
        esc(name),
        verdict.to_lowercase(),
        esc(&summary_line(&test))
    );
    body.push_str(&verdicts(&results));
    let ops = Ops::of(h);
    body.push_str(&plots(&ops));
    body.push_str(&quantile_table(&ops));
    body.push_str(&pictures(dir));
    body.push_str(&files(dir));
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}: {verdict}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 1.5em; max-width: 1000px; }}\n\
         table {{ border-collapse: collapse; margin-bottom: 1em; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }}\n\
         .valid {{ color: #176117; }} .invalid {{ color: #a01010; }} .unknown {{ color: #8a6d00; }}\n\
         figure {{ margin: 0 0 1em 0; }} pre {{ white-space: pre-wrap; font-size: 0.85em; }}\n\
         </style></head><body>\n{body}</body></html>\n",
        title = esc(name),
    )
}

fn summary_line(test: &Value) -> String {
    let a = &test["args"];
    let mut parts = Vec::new();
    for (label, key) in [
        ("system", "system"),
        ("workload", "workload"),
        ("replication", "replication"),
        ("isolation", "isolation"),
        ("nemesis", "nemesis"),
        ("nodes", "nodes"),
        ("backend", "backend"),
    ] {
        match &a[key] {
            Value::Null => {}
            Value::String(s) => parts.push(format!("{label} {s}")),
            v => parts.push(format!("{label} {v}")),
        }
    }
    parts.push(format!("seed {}", test["seed"]));
    if let Some(r) = test["revision"].as_str() {
        parts.push(format!("revision {r}"));
    }
    if let Some(s) = test["started"].as_str() {
        parts.push(format!("started {s}"));
    }
    parts.join(" · ")
}

/// A row per checker: every member of `results.json` that carries a `valid`.
fn verdicts(results: &Value) -> String {
    let Some(map) = results.as_object() else {
        return "<p>No verdict: <code>results.json</code> is missing or unreadable.</p>\n".into();
    };
    let mut rows = String::new();
    for (name, v) in map {
        let Some(valid) = v.get("valid") else {
            continue;
        };
        let class = match valid {
            Value::Bool(true) => "valid",
            Value::Bool(false) => "invalid",
            _ => "unknown",
        };
        let anomalies = v["anomaly_types"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let explanation = v["explanation"].as_str().unwrap_or_default();
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            esc(name),
            esc(&valid.to_string()),
            esc(&anomalies),
            esc(explanation)
        );
    }
    if rows.is_empty() {
        return String::new();
    }
    format!("<h2>Verdicts</h2>\n<table>\n<tr><th>checker</th><th>valid</th><th>anomalies</th><th>explanation</th></tr>\n{rows}</table>\n")
}

/// The client operations, paired, in seconds and milliseconds; and the fault windows.
struct Ops {
    /// (f, process row, invoked s, completed s or None, kind)
    ops: Vec<(String, usize, f64, Option<f64>, Kind)>,
    rows: usize,
    windows: Vec<Window>,
    end_s: f64,
}

impl Ops {
    fn of(h: &History) -> Ops {
        let secs = |t: Option<u64>| t.unwrap_or(0) as f64 / 1e9;
        let end_s = h.ops.iter().filter_map(|o| o.time).max().unwrap_or(0) as f64 / 1e9;
        let mut rows: BTreeMap<u64, usize> = BTreeMap::new();
        for op in &h.ops {
            if let Process::Client(p) = op.process {
                let next = rows.len();
                rows.entry(p).or_insert(next);
            }
        }
        let mut ops = Vec::new();
        for (i, op) in h.ops.iter().enumerate() {
            let Process::Client(p) = op.process else {
                continue;
            };
            if op.op_type != OpType::Invoke {
                continue;
            }
            let done = h.completion(i);
            let kind = match done.map(|d| d.op_type) {
                Some(OpType::Ok) => Kind::Ok,
                Some(OpType::Fail) => Kind::Fail,
                _ => Kind::Info,
            };
            ops.push((
                op.f.clone(),
                rows[&p],
                secs(op.time),
                done.map(|d| secs(d.time)),
                kind,
            ));
        }
        Ops {
            ops,
            rows: rows.len(),
            windows: windows(h, end_s),
            end_s,
        }
    }
}

/// Fault windows from the nemesis's `start-X` and `stop-X` (or `stop-all`) completions.
fn windows(h: &History, end_s: f64) -> Vec<Window> {
    let mut open: BTreeMap<String, f64> = BTreeMap::new();
    let mut out = Vec::new();
    for op in h
        .ops
        .iter()
        .filter(|o| !o.process.is_client() && o.op_type != OpType::Invoke)
    {
        let t = op.time.unwrap_or(0) as f64 / 1e9;
        if let Some(class) = op.f.strip_prefix("start-") {
            open.entry(class.to_string()).or_insert(t);
        } else if op.f == "stop-all" {
            for (class, start_s) in std::mem::take(&mut open) {
                out.push(Window {
                    start_s,
                    end_s: t,
                    class,
                });
            }
        } else if let Some(class) = op.f.strip_prefix("stop-") {
            if let Some(start_s) = open.remove(class) {
                out.push(Window {
                    start_s,
                    end_s: t,
                    class: class.to_string(),
                });
            }
        }
    }
    for (class, start_s) in open {
        out.push(Window {
            start_s,
            end_s,
            class,
        });
    }
    out.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    out
}

/// The operation names, most frequent first.
fn fs_by_count(ops: &Ops) -> Vec<(String, usize)> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &ops.ops {
        *count.entry(o.0.as_str()).or_default() += 1;
    }
    let mut fs: Vec<(String, usize)> = count.into_iter().map(|(f, n)| (f.to_string(), n)).collect();
    fs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    fs
}

fn plots(ops: &Ops) -> String {
    let mut s = String::new();
    if ops.ops.is_empty() {
        return "<p>No client operations were recorded.</p>\n".into();
    }
    let faults = ops
        .windows
        .iter()
        .map(|w| format!("{} {:.1}–{:.1} s", w.class, w.start_s, w.end_s))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "<h2>Latency and throughput</h2>\n<p>Shaded: faults in effect{}.</p>",
        if faults.is_empty() {
            " (none)".into()
        } else {
            format!(": {}", esc(&faults))
        }
    );
    for (f, _) in fs_by_count(ops).into_iter().take(MAX_LATENCY_PLOTS) {
        let points: Vec<(f64, f64, Kind)> = ops
            .ops
            .iter()
            .filter(|o| o.0 == f)
            .filter_map(|o| o.3.map(|done| (done, (done - o.2) * 1e3, o.4)))
            .collect();
        figure(
            &mut s,
            plot::latency(&format!("{f} latency"), &points, &ops.windows, ops.end_s),
        );
    }
    let seconds = ops.end_s.ceil().max(1.0) as usize;
    let mut per_second = vec![[0u64; 3]; seconds];
    for o in &ops.ops {
        if let Some(done) = o.3 {
            let i = (done as usize).min(seconds - 1);
            per_second[i][Kind::ALL.iter().position(|k| *k == o.4).unwrap_or(0)] += 1;
        }
    }
    figure(
        &mut s,
        plot::throughput("throughput", &per_second, &ops.windows),
    );
    let bars: Vec<(usize, f64, f64, Kind)> = ops
        .ops
        .iter()
        .filter(|o| o.1 < MAX_TIMELINE_ROWS)
        .map(|o| (o.1, o.2, o.3.unwrap_or(ops.end_s), o.4))
        .collect();
    let rows = ops.rows.min(MAX_TIMELINE_ROWS);
    let title = if ops.rows > rows {
        format!("operations per process (the first {rows} of {})", ops.rows)
    } else {
        "operations per process".into()
    };
    figure(
        &mut s,
        plot::timeline(&title, &bars, rows, &ops.windows, ops.end_s),
    );
    s
}

fn figure(s: &mut String, svg: Result<String, String>) {
    match svg {
        Ok(svg) => {
            let _ = writeln!(s, "<figure>{svg}</figure>");
        }
        Err(e) => {
            let _ = writeln!(s, "<p>{}</p>", esc(&e));
        }
    }
}

fn quantile_table(ops: &Ops) -> String {
    let mut rows = String::new();
    for (f, _) in fs_by_count(ops) {
        let mine: Vec<_> = ops.ops.iter().filter(|o| o.0 == f).collect();
        let n = |k: Kind| mine.iter().filter(|o| o.4 == k).count();
        let ok_ns: Vec<u64> = mine
            .iter()
            .filter(|o| o.4 == Kind::Ok)
            .filter_map(|o| o.3.map(|d| ((d - o.2) * 1e9) as u64))
            .collect();
        let q = Quantiles::of(ok_ns);
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f),
            n(Kind::Ok),
            n(Kind::Fail),
            n(Kind::Info),
            cell(q.as_ref().map(|q| q.p50_ms)),
            cell(q.as_ref().map(|q| q.p95_ms)),
            cell(q.as_ref().map(|q| q.p99_ms)),
            cell(q.as_ref().map(|q| q.max_ms)),
        );
    }
    if rows.is_empty() {
        return String::new();
    }
    format!("<h2>Latency quantiles (ok, ms)</h2>\n<table>\n<tr><th>f</th><th>ok</th><th>fail</th><th>info</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>\n{rows}</table>\n")
}

/// The SVG pictures the checkers left in the run directory (anomaly cycles).
fn pictures(dir: &Path) -> String {
    let names: Vec<String> = list_dir(dir, EntryKind::Files)
        .into_iter()
        .filter(|n| n.ends_with(".svg"))
        .collect();
    if names.is_empty() {
        return String::new();
    }
    let mut s = format!("<h2>Anomalies ({})</h2>\n", names.len());
    for n in names.iter().take(MAX_PICTURES) {
        let _ = writeln!(
            s,
            "<figure><img src=\"{0}\" alt=\"{0}\"><figcaption>{0}</figcaption></figure>",
            esc(n)
        );
    }
    s
}

/// Links to the run's files and each node's logs.
fn files(dir: &Path) -> String {
    let list = |d: &Path| list_dir(d, EntryKind::Files);
    let mut s = String::from("<h2>Files</h2>\n<ul>\n");
    for f in list(dir).iter().filter(|f| *f != "report.html") {
        let _ = writeln!(s, "<li><a href=\"{0}\">{0}</a></li>", esc(f));
    }
    s.push_str("</ul>\n");
    let nodes = dir.join("nodes");
    let node_names = list_dir(&nodes, EntryKind::Dirs);
    if !node_names.is_empty() {
        s.push_str("<h2>Node logs</h2>\n<ul>\n");
        for n in &node_names {
            let links: Vec<String> = list(&nodes.join(n))
                .iter()
                .take(MAX_NODE_FILES)
                .map(|f| format!("<a href=\"nodes/{0}/{1}\">{1}</a>", esc(n), esc(f)))
                .collect();
            let _ = writeln!(s, "<li>{}: {}</li>", esc(n), links.join(" "));
        }
        s.push_str("</ul>\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::history::{parse, Format};

    #[test]
    fn a_report_has_verdicts_plots_quantiles_windows_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("test.json"), r#"{"name":"t","seed":7,"revision":"abc","args":{"system":"repdb","workload":"list-append","nemesis":"kill"}}"#).unwrap();
        std::fs::write(d.join("results.json"), r#"{"valid":false,"list-append":{"valid":false,"anomaly_types":["G1c"]},"one-copy":{"valid":true}}"#).unwrap();
        std::fs::write(d.join("cycle-0-G1c.svg"), "<svg/>").unwrap();
        std::fs::create_dir_all(d.join("nodes/n1")).unwrap();
        std::fs::write(d.join("nodes/n1/node.log"), "x").unwrap();
        let text = [
            r#"{"index":0,"time":0,"type":"invoke","process":0,"f":"txn","value":[]}"#,
            r#"{"index":1,"time":1000000,"type":"invoke","process":"nemesis","f":"start-kill","value":null}"#,
            r#"{"index":2,"time":2000000,"type":"info","process":"nemesis","f":"start-kill","value":null}"#,
            r#"{"index":3,"time":3000000,"type":"ok","process":0,"f":"txn","value":[]}"#,
            r#"{"index":4,"time":4000000,"type":"invoke","process":1,"f":"txn","value":[]}"#,
            r#"{"index":5,"time":1500000000,"type":"fail","process":1,"f":"txn","value":[]}"#,
            r#"{"index":6,"time":1600000000,"type":"invoke","process":"nemesis","f":"stop-kill","value":null}"#,
            r#"{"index":7,"time":1700000000,"type":"info","process":"nemesis","f":"stop-kill","value":null}"#,
        ]
        .join("\n");
        let h = parse("h.jsonl", text.as_bytes(), Some(Format::JsonLines)).unwrap();
        write(d, &h).unwrap();
        let page = std::fs::read_to_string(d.join("report.html")).unwrap();
        assert!(
            page.contains("<h1>t: <span class=\"invalid\">INVALID</span></h1>"),
            "{page}"
        );
        assert!(page.contains("seed 7") && page.contains("revision abc"));
        assert!(
            page.contains("<td>list-append</td><td class=\"invalid\">false</td><td>G1c</td>"),
            "{page}"
        );
        assert!(page.contains("kill 0.0–1.7 s"), "the fault window: {page}");
        assert_eq!(
            page.matches("<svg").count(),
            3,
            "latency, throughput, timeline"
        );
        assert!(
            page.contains("<td>txn</td><td>1</td><td>1</td><td>0</td><td>3.00</td>"),
            "{page}"
        );
        assert!(page.contains("<img src=\"cycle-0-G1c.svg\""));
        assert!(page.contains("<a href=\"nodes/n1/node.log\">node.log</a>"));
        assert!(page.contains("<a href=\"results.json\">results.json</a>"));
        for fetch in ["src=\"http", "href=\"http", "<script", "<link", "url("] {
            assert!(!page.contains(fetch), "nothing fetched: {fetch}");
        }
    }
}
