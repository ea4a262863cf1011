//! The store's front page: every run with its system, workload, nemeses, verdict and date,
//! newest first, filterable by verdict; then the benches' and campaigns' reports.

use crate::store::{list_dir, EntryKind};
use checkers::linearizable::report::esc;
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

/// Runs listed at most (the newest).
pub const MAX_ROWS: usize = 10_000;
/// Directories the store keeps that are not tests.
const NOT_TESTS: [&str; 2] = ["benches", "campaigns"];

/// One stored run.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub test: String,
    pub stamp: String,
    pub system: String,
    pub workload: String,
    pub nemesis: String,
    /// valid, invalid, unknown, or unchecked (no `results.json` yet).
    pub verdict: String,
}

fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn dirs(path: &Path) -> Vec<String> {
    list_dir(path, EntryKind::Dirs)
}

/// Every run under `store`, newest first, at most [`MAX_ROWS`].
pub fn rows(store: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for test in dirs(store)
        .into_iter()
        .filter(|t| !NOT_TESTS.contains(&t.as_str()))
    {
        for stamp in dirs(&store.join(&test)) {
            let run = store.join(&test).join(&stamp);
            let Some(t) = read_json(&run.join("test.json")) else {
                continue;
            };
            let verdict = match read_json(&run.join("results.json")).map(|r| r["valid"].clone()) {
                None => "unchecked",
                Some(Value::Bool(true)) => "valid",
                Some(Value::Bool(false)) => "invalid",
                Some(_) => "unknown",
            };
            let arg = |k: &str| t["args"][k].as_str().unwrap_or_default().to_string();
            rows.push(Row {
                test: test.clone(),
                stamp,
                system: arg("system"),
                workload: arg("workload"),
                nemesis: arg("nemesis"),
                verdict: verdict.into(),
            });
        }
    }
    rows.sort_by(|a, b| b.stamp.cmp(&a.stamp).then(a.test.cmp(&b.test)));
    rows.truncate(MAX_ROWS);
    rows
}

/// `20261126T203728.750Z` as `2026-11-26 20:37:28 UTC`.
fn date(stamp: &str) -> String {
    let b = stamp.as_bytes();
    if b.len() < 15 || b[8] != b'T' {
        return stamp.to_string();
    }
    format!(
        "{}-{}-{} {}:{}:{} UTC",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    )
}

pub const VERDICTS: [&str; 4] = ["valid", "invalid", "unknown", "unchecked"];

/// The page; `verdict` keeps only runs with that verdict.
pub fn page(store: &Path, verdict: Option<&str>) -> String {
    let all = rows(store);
    let shown: Vec<&Row> = all
        .iter()
        .filter(|r| verdict.is_none_or(|v| r.verdict == v))
        .collect();
    let mut s = String::new();
    let _ = write!(s, "<p>Show: <a href=\"/\">all ({})</a>", all.len());
    for v in VERDICTS {
        let n = all.iter().filter(|r| r.verdict == v).count();
        let _ = write!(s, " · <a href=\"/?verdict={v}\">{v} ({n})</a>");
    }
    s.push_str("</p>\n<table id=\"runs\">\n<tr><th>date</th><th>test</th><th>system</th><th>workload</th><th>nemesis</th><th>verdict</th><th></th></tr>\n");
    for r in &shown {
        let base = format!("/runs/{}/{}", esc(&r.test), esc(&r.stamp));
        let _ = writeln!(
            s,
            "<tr class=\"{v}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"verdict\">{v}</td>\
             <td><a href=\"{base}/report.html\">report</a> · <a href=\"{base}/\">files</a> · <a href=\"/tar/{}/{}.tar\">tarball</a></td></tr>",
            date(&r.stamp),
            esc(&r.test),
            esc(&r.system),
            esc(&r.workload),
            esc(&r.nemesis),
            esc(&r.test),
            esc(&r.stamp),
            v = esc(&r.verdict),
        );
    }
    s.push_str("</table>\n");
    for (kind, page) in [("benches", "summary.txt"), ("campaigns", "summary.html")] {
        let mut items = Vec::new();
        for name in dirs(&store.join(kind)) {
            for stamp in dirs(&store.join(kind).join(&name)).into_iter().rev() {
                items.push(format!(
                    "<li><a href=\"/runs/{kind}/{0}/{1}/{page}\">{0}</a> {2}</li>",
                    esc(&name),
                    esc(&stamp),
                    date(&stamp)
                ));
            }
        }
        if !items.is_empty() {
            let _ = writeln!(s, "<h2>{kind}</h2>\n<ul>\n{}\n</ul>", items.join("\n"));
        }
    }
    let title = match verdict {
        Some(v) => format!("Faultline runs: {v}"),
        None => "Faultline runs".to_string(),
    };
    html(&title, &s)
}

/// A page with the store's style.
pub fn html(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 1.5em; }}\n\
         table {{ border-collapse: collapse; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }}\n\
         tr.valid .verdict {{ color: #176117; }} tr.invalid .verdict {{ color: #a01010; font-weight: bold; }}\n\
         tr.unknown .verdict, tr.unchecked .verdict {{ color: #8a6d00; }}\n\
         </style></head><body>\n<h1>{t}</h1>\n{body}</body></html>\n",
        t = esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(store: &Path, test: &str, stamp: &str, valid: Option<bool>) {
        let dir = store.join(test).join(stamp);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("test.json"),
            r#"{"args":{"system":"repdb","workload":"list-append","nemesis":"kill"}}"#,
        )
        .unwrap();
        if let Some(v) = valid {
            std::fs::write(dir.join("results.json"), format!("{{\"valid\":{v}}}")).unwrap();
        }
    }

    #[test]
    fn runs_are_listed_newest_first_and_filtered_by_verdict() {
        let d = tempfile::tempdir().unwrap();
        run(d.path(), "a", "20261126T100000.000Z", Some(true));
        run(d.path(), "a", "20261126T110000.000Z", Some(false));
        run(d.path(), "b", "20261126T120000.000Z", None);
        std::fs::create_dir_all(d.path().join("campaigns/nightly/20261126T130000.000Z")).unwrap();
        std::os::unix::fs::symlink(
            d.path().join("a/20261126T100000.000Z"),
            d.path().join("latest"),
        )
        .unwrap();
        let rows = rows(d.path());
        let v: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.test.as_str(), r.verdict.as_str()))
            .collect();
        assert_eq!(v, [("b", "unchecked"), ("a", "invalid"), ("a", "valid")]);
        let p = page(d.path(), Some("invalid"));
        assert_eq!(p.matches("<tr class=").count(), 1, "{p}");
        assert!(p.contains("<td>2026-11-26 11:00:00 UTC</td><td>a</td><td>repdb</td><td>list-append</td><td>kill</td><td class=\"verdict\">invalid</td>"), "{p}");
        assert!(p.contains("href=\"/tar/a/20261126T110000.000Z.tar\""));
        assert!(p.contains("invalid (1)") && p.contains("all (3)"));
        assert!(
            p.contains("/runs/campaigns/nightly/20261126T130000.000Z/summary.html"),
            "{p}"
        );
    }
}
