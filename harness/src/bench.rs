//! `faultline bench FILE.toml`: throughput, latency and abort rates across a matrix of
//! systems, variants, cluster sizes, contention, load and faults, side by side and beside
//! the machine's physical floor.
//!
//! Each cell is an ordinary `faultline test` run (deployed, driven, healed, checked and
//! stored like any other), so every figure comes with a verdict and a command that
//! reproduces it, and is computed from the stored history alone ([`metrics`]). A benchmark
//! figure from a run that lost writes would be worthless; here the verdict sits beside it.
//!
//! The bench's own directory, `<store>/benches/<name>/<timestamp>/`, holds the file it ran
//! (`bench.toml`), the floor and the machine (`floor.json`), one line per finished cell
//! (`cells.jsonl`, appended as each cell ends, so a crash loses nothing measured), and the
//! report (`bench.json`, `summary.txt`, and `bench.html` with bar charts of every figure).

pub mod config;
pub mod floor;
pub mod metrics;
pub mod report;

use crate::exit::Exit;
use crate::matrix::{self, Runnable};
use crate::test_run;
use anyhow::Context;
use checkers::history::{parse, Format};
use clap::Args;
use config::Cell;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Forced writes the floor measures.
const FSYNC_SAMPLES: usize = 200;
/// Round trips the floor measures.
const RTT_SAMPLES: usize = 2_000;

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// The bench file (TOML): its workload, axes and targets.
    #[arg(required_unless_present = "report")]
    pub file: Option<PathBuf>,
    /// Write a finished (or interrupted) bench's report again, from the cells its directory
    /// recorded (`cells.jsonl`, `floor.json`, `bench.toml`), without running anything.
    #[arg(long, value_name = "DIR", conflicts_with = "file")]
    pub report: Option<PathBuf>,
    /// Where the cells' runs and the bench's report are stored.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Warnings and errors only on standard error, no progress (the summary is printed as
    /// always, and every run's faultline.log has everything).
    #[arg(long)]
    pub quiet: bool,
    /// Print the cells and the command of each, then exit without running anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// One finished cell, as `cells.jsonl` and `bench.json` hold it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct CellResult {
    pub cell: Cell,
    pub label: String,
    pub command: String,
    /// The cell's stored run.
    pub run: Option<PathBuf>,
    /// valid, invalid, unknown, or error (the run did not finish).
    pub verdict: String,
    /// What the checkers found, from the run's `results.json`.
    pub anomaly_types: Vec<String>,
    pub error: Option<String>,
    pub metrics: Option<metrics::Metrics>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<Exit> {
    crate::runlog::install();
    crate::runlog::set_quiet(args.quiet);
    if let Some(dir) = &args.report {
        return rewrite_report(dir);
    }
    let path = args
        .file
        .clone()
        .expect("clap requires FILE without --report");
    let file = path.display().to_string();
    let loaded = matrix::load(
        "bench",
        &path,
        config::MAX_FILE_BYTES,
        "cell",
        config::parse,
    );
    let Some((text, bench, cells)) = loaded else {
        return Ok(Exit::BadInput);
    };
    if args.dry_run {
        matrix::print_listing(&cells);
        return Ok(Exit::Valid);
    }
    let dir = crate::store::stamped_dir(&args.store.join("benches").join(&bench.name))?;
    std::fs::write(dir.join("bench.toml"), &text)?;
    let bar = crate::progress::bar(cells.len() as u64, "cells");
    crate::progress::line(
        &bar,
        &format!(
            "faultline bench: {} cells; report in {}",
            cells.len(),
            dir.display()
        ),
    );
    let machine = floor::Machine::read();
    let floor = floor::measure(&dir, FSYNC_SAMPLES, RTT_SAMPLES)
        .with_context(|| format!("measuring the floor in {}", dir.display()))?;
    crate::store::write_json_file(
        &dir.join("floor.json"),
        &serde_json::json!({"machine": machine, "floor": floor}),
    )?;
    crate::progress::line(&bar, &report::floor_line(&floor));
    let mut log = std::fs::File::create(dir.join("cells.jsonl"))?;
    let mut results = Vec::new();
    let mut exit = Exit::Valid;
    for cell in &cells {
        bar.set_message(cell.label());
        crate::progress::line(
            &bar,
            &format!(
                "faultline bench: cell {}/{}: {}",
                cell.index + 1,
                cells.len(),
                cell.label()
            ),
        );
        let (result, interrupted) = run_cell(&args.store, &bench.name, cell);
        bar.inc(1);
        if result.verdict == "error" {
            exit = exit.worst(Exit::Internal);
        }
        let mut line = serde_json::to_string(&result)?;
        line.push('\n');
        log.write_all(line.as_bytes())?;
        log.sync_data()?;
        crate::progress::line(&bar, &report::row(&result));
        results.push(result);
        if interrupted {
            bar.abandon();
            eprintln!(
                "faultline bench: interrupted after {} of {} cells",
                results.len(),
                cells.len()
            );
            exit = exit.worst(Exit::Unknown);
            break;
        }
    }
    bar.finish_and_clear();
    let summary = write_report(&dir, &bench.name, &file, &machine, &floor, &results)?;
    print!("{summary}");
    println!("report: {}", dir.display());
    Ok(exit)
}

/// `summary.txt`, `bench.html` and `bench.json` in `dir`; returns the summary.
fn write_report(
    dir: &Path,
    name: &str,
    file: &str,
    machine: &floor::Machine,
    floor: &floor::Floor,
    results: &[CellResult],
) -> anyhow::Result<String> {
    let summary = report::table(name, floor, results);
    std::fs::write(dir.join("summary.txt"), &summary)?;
    std::fs::write(
        dir.join("bench.html"),
        report::html(name, machine, floor, results),
    )?;
    crate::store::write_json_file(
        &dir.join("bench.json"),
        &serde_json::json!({
            "name": name,
            "file": file,
            "revision": test_run::revision(),
            "machine": machine,
            "floor": floor,
            "cells": results,
        }),
    )?;
    Ok(summary)
}

/// `faultline bench --report DIR`: the report again from what `dir` recorded.
fn rewrite_report(dir: &Path) -> anyhow::Result<Exit> {
    let bad = |what: String| {
        eprintln!("faultline bench: {}: {what}", dir.display());
        Ok(Exit::BadInput)
    };
    let toml_path = dir.join("bench.toml");
    let text = match crate::store::read_text(&toml_path, config::MAX_FILE_BYTES) {
        Ok(t) => t,
        Err(e) => return bad(format!("not a bench directory ({e})")),
    };
    let name = match config::parse(&toml_path.display().to_string(), &text) {
        Ok((b, _)) => b.name,
        Err(e) => return bad(e.to_string()),
    };
    #[derive(serde::Deserialize)]
    struct Recorded {
        machine: floor::Machine,
        floor: floor::Floor,
    }
    let recorded: Recorded = match std::fs::read_to_string(dir.join("floor.json"))
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => return bad(format!("floor.json: {e}")),
    };
    let cells_text = std::fs::read_to_string(dir.join("cells.jsonl")).unwrap_or_default();
    let mut results = Vec::new();
    for (i, line) in cells_text.lines().enumerate() {
        match serde_json::from_str::<CellResult>(line) {
            Ok(r) => results.push(r),
            Err(e) => return bad(format!("cells.jsonl line {}: {e}", i + 1)),
        }
    }
    let file = toml_path.display().to_string();
    let summary = write_report(
        dir,
        &name,
        &file,
        &recorded.machine,
        &recorded.floor,
        &results,
    )?;
    print!("{summary}");
    println!("report: {}", dir.display());
    Ok(Exit::Valid)
}

/// Runs one cell and measures its history; also says whether Ctrl-C cut it short.
fn run_cell(store: &Path, bench: &str, cell: &Cell) -> (CellResult, bool) {
    let mut result = CellResult {
        cell: cell.clone(),
        label: cell.label(),
        command: cell.command(),
        run: None,
        verdict: "error".into(),
        anomaly_types: Vec::new(),
        error: None,
        metrics: None,
    };
    let mut argv = cell.argv.clone();
    argv.extend([
        "--store".to_string(),
        store.display().to_string(),
        "--name".to_string(),
        format!("bench-{bench}"),
    ]);
    let args = test_run::parse_args(&argv).expect("checked before the bench started");
    let finished = match test_run::run_one(&args) {
        Ok(f) => f,
        Err(e) => {
            result.error = Some(format!("{e:#}"));
            return (result, false);
        }
    };
    result.run = Some(finished.run.clone());
    result.verdict = match finished.exit {
        Exit::Valid => "valid",
        Exit::Invalid => "invalid",
        Exit::Unknown => "unknown",
        Exit::BadInput | Exit::Internal => "error",
    }
    .into();
    result.anomaly_types = crate::analyze::stored_anomaly_types(&finished.run);
    match measure_run(&finished.run, cell.seconds) {
        Ok(m) => result.metrics = Some(m),
        Err(e) => {
            result.verdict = "error".into();
            result.error = Some(format!("{e:#}"));
        }
    }
    (result, finished.interrupted)
}

/// The figures of a stored run whose workload phase lasted `seconds`.
pub fn measure_run(run: &Path, seconds: f64) -> anyhow::Result<metrics::Metrics> {
    let path = run.join("history.jsonl");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let history = parse(&path.display().to_string(), &bytes, Some(Format::JsonLines))?;
    Ok(metrics::measure(&history, (seconds * 1e9) as u64)?)
}
