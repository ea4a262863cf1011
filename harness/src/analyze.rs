//! Checks a stored run: `faultline analyze RUN_DIR`, and the last step of `faultline test`.
//!
//! Everything comes from the run directory (`test.json` names the workload, `history.jsonl`
//! holds what happened), so a run re-checks the same way later, on another machine, or
//! after the controller crashed part way. The verdict goes to `results.json` (with the seed
//! and revision, so a failure says how to reproduce it) and an HTML report to `report.html`.
//! The two-phase-commit store's runs are judged by several checkers at once ([`twopc`]);
//! PostgreSQL's at the model of their isolation level ([`postgres`]); the replicated
//! database's at the model its replication mode claims, with its apply logs ([`repdb`]).

mod postgres;
mod repdb;
mod twopc;

use crate::exit::Exit;
use crate::store::RunDir;
use anyhow::Context;
use checkers::history::{self, Format};
use checkers::linearizable::{self, Validity};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

/// Largest history a stored run may have before the check refuses it.
const MAX_HISTORY_BYTES: u64 = 4 << 30;

#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// A run directory (`store/<test>/<timestamp>`, or `store/latest`).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: std::path::PathBuf,
}

pub fn run(args: AnalyzeArgs) -> anyhow::Result<Exit> {
    if !args.run_dir.join("test.json").is_file() {
        eprintln!(
            "faultline analyze: {} is not a run directory (it has no test.json)",
            args.run_dir.display()
        );
        return Ok(Exit::BadInput);
    }
    check_run(&args.run_dir)
}

/// Cycle pictures written per run at most.
const MAX_CYCLE_FILES: usize = 16;

/// Each of the first [`MAX_CYCLE_FILES`] anomaly cycles as `cycle-N-CLASS.svg` in `dir`,
/// where the run report shows them.
pub fn write_cycle_pictures(
    dir: &Path,
    cycles: &[checkers::txn::render::CycleView],
) -> anyhow::Result<()> {
    for (i, c) in cycles.iter().take(MAX_CYCLE_FILES).enumerate() {
        let class = c.title.split(':').next().unwrap_or("cycle");
        let class: String = class
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("cycle-{i}-{class}.svg"));
        std::fs::write(&path, checkers::txn::render::svg(c))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The linearizability checker's own page: the failing window, step by step.
pub const LINEARIZABLE_PAGE: &str = "linearizable.html";

/// Checks the run at `dir`, writes `results.json` and `report.html` (with the checker's
/// own pages beside them), prints the verdict.
pub fn check_run(dir: &Path) -> anyhow::Result<Exit> {
    let test: Value = serde_json::from_slice(
        &std::fs::read(dir.join("test.json")).context("cannot read test.json")?,
    )
    .context("test.json is not JSON")?;
    let workload = test["args"]["workload"]
        .as_str()
        .context("test.json names no workload (args.workload)")?;
    let history = read_history(dir)?;
    let exit = check_system(dir, &test, workload, &history)?;
    if let Err(e) = crate::run_report::write(dir, &history) {
        tracing::warn!("cannot write the run report: {e:#}");
    }
    Ok(exit)
}

/// The system's own checks: `results.json`, any pages and pictures of their own.
fn check_system(
    dir: &Path,
    test: &Value,
    workload: &str,
    history: &checkers::history::History,
) -> anyhow::Result<Exit> {
    // PostgreSQL, or a system file's transactional workload: judged at the level claimed.
    if test["args"]["system"] == "postgres" || test["args"]["isolation"].is_string() {
        return postgres::check(dir, test, history);
    }
    if test["args"]["system"] == "repdb" {
        return repdb::check(dir, test, history);
    }
    if let Some(kind) = workloads::twopc::workload::Kind::from_name(workload) {
        return twopc::check(dir, test, history, kind);
    }
    if let Some(w) = workloads::coord::workload::by_name(workload) {
        return check_with(dir, test, history, w.as_ref());
    }
    let (model, options) = crate::workload::check_options(workload)?;
    let started = Instant::now();
    let outcome = linearizable::check(history, model, &options)?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let explanation = outcome.explain(history);
    let run = RunDir {
        path: dir.to_path_buf(),
    };
    let mut checker = serde_json::to_value(&outcome)?;
    if let Value::Object(m) = &mut checker {
        m.insert("elapsed_ms".into(), elapsed_ms.into());
        m.insert("explanation".into(), explanation.clone().into());
    }
    let nemesis_ops = history
        .ops
        .iter()
        .filter(|op| !op.process.is_client())
        .count();
    let client_ops = history.ops.len() - nemesis_ops;
    run.write_json(
        "results.json",
        &json!({
            "valid": outcome.valid,
            "seed": test["seed"],
            "revision": test["revision"],
            "checker": "linearizable",
            "linearizable": checker,
            "history_events": {"client": client_ops, "nemesis": nemesis_ops},
        }),
    )?;
    let page = linearizable::report::html(history, &outcome, &dir.display().to_string());
    std::fs::write(dir.join(LINEARIZABLE_PAGE), page)
        .with_context(|| format!("cannot write {LINEARIZABLE_PAGE}"))?;
    let verdict = match outcome.valid {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    };
    println!(
        "{}: {verdict} ({} model, {} keys, {client_ops} client events, {nemesis_ops} nemesis events, {elapsed_ms:.0} ms to check)",
        dir.display(),
        outcome.model,
        outcome.partitions
    );
    if outcome.valid != Validity::Valid {
        println!("{explanation}");
        println!(
            "seed {} revision {}",
            test["seed"],
            test["revision"].as_str().unwrap_or("unknown")
        );
    }
    Ok(match outcome.valid {
        Validity::Valid => Exit::Valid,
        Validity::Invalid => Exit::Invalid,
        Validity::Unknown => Exit::Unknown,
    })
}

/// The anomaly types a checked run's `results.json` names; none if it has none (or no
/// verdict yet).
pub fn stored_anomaly_types(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    value["anomaly_types"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The run's `history.jsonl`, refused past [`MAX_HISTORY_BYTES`].
pub fn read_history(dir: &Path) -> anyhow::Result<checkers::history::History> {
    let path = dir.join("history.jsonl");
    let size = std::fs::metadata(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_HISTORY_BYTES,
        "{} is larger than {MAX_HISTORY_BYTES} bytes",
        path.display()
    );
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(history::parse(
        &path.display().to_string(),
        &bytes,
        Some(Format::JsonLines),
    )?)
}

/// Checks a run with its workload's own checker (the coordination service's workloads).
fn check_with(
    dir: &Path,
    test: &Value,
    history: &checkers::history::History,
    workload: &dyn workloads::coord::workload::CoordWorkload,
) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let verdict = workload.check(history);
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let nemesis_ops = history
        .ops
        .iter()
        .filter(|op| !op.process.is_client())
        .count();
    let client_ops = history.ops.len() - nemesis_ops;
    let run = RunDir {
        path: dir.to_path_buf(),
    };
    run.write_json(
        "results.json",
        &json!({
            "valid": verdict.valid,
            "seed": test["seed"],
            "revision": test["revision"],
            "checker": verdict.checker,
            verdict.checker: {
                "summary": verdict.summary,
                "explanation": verdict.explanation,
                "details": verdict.details,
                "elapsed_ms": elapsed_ms,
            },
            "history_events": {"client": client_ops, "nemesis": nemesis_ops},
        }),
    )?;
    let word = match verdict.valid {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    };
    println!(
        "{}: {word} ({} checker: {}; {client_ops} client events, {nemesis_ops} nemesis events, {elapsed_ms:.0} ms to check)",
        dir.display(),
        verdict.checker,
        verdict.summary
    );
    if verdict.valid != Validity::Valid {
        println!("{}", verdict.explanation);
        println!(
            "seed {} revision {}",
            test["seed"],
            test["revision"].as_str().unwrap_or("unknown")
        );
    }
    Ok(match verdict.valid {
        Validity::Valid => Exit::Valid,
        Validity::Invalid => Exit::Invalid,
        Validity::Unknown => Exit::Unknown,
    })
}
