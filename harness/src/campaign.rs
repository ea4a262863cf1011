//! `faultline campaign FILE.toml`: a matrix of systems × workloads × nemeses × seeds ×
//! repetitions within a time budget, the way a nightly CI job runs it.
//!
//! Every run is an ordinary `faultline test` run, stored as usual. A run that is not valid
//! is run once more with the same seed, to tell a failure that reproduces from one that
//! does not; both count, because an anomaly seen once is still an anomaly (the exit code is
//! the worst first verdict, ranked as Jepsen's test-all ranks them, and a run the budget
//! left out counts as unknown). The campaign's directory,
//! `<store>/campaigns/<name>/<timestamp>/`, holds the file (`campaign.toml`), a line per
//! finished run (`runs.jsonl`, appended as each ends), and the summary (`summary.txt`,
//! `summary.html`, `campaign.json`); `--junit FILE` writes one JUnit test case per run.

pub mod config;
pub mod junit;
pub mod summary;

use crate::exit::Exit;
use crate::matrix::{self, Runnable};
use crate::test_run;
use anyhow::Context;
use clap::Args;
use config::Run;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a run needs besides its workload (deploy, recovery, final reads, checking, teardown)
/// until the campaign has measured it.
const FIRST_OVERHEAD_S: f64 = 20.0;

#[derive(Args, Clone, Debug)]
pub struct CampaignArgs {
    /// The campaign file (TOML).
    pub file: PathBuf,
    /// Where runs and the campaign's summary are stored.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Also write a JUnit XML report here: one test case per run.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Warnings and errors only on standard error, no progress (the summary is printed as
    /// always, and every run's faultline.log has everything).
    #[arg(long)]
    pub quiet: bool,
    /// Print the runs and the command of each, then exit without running anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Valid,
    Invalid,
    Unknown,
    /// The run could not finish (deploy failed, the controller erred).
    Error,
    /// The budget ran out before it started.
    Skipped,
}

impl Outcome {
    fn of(exit: Exit) -> Outcome {
        match exit {
            Exit::Valid => Outcome::Valid,
            Exit::Invalid => Outcome::Invalid,
            Exit::Unknown => Outcome::Unknown,
            Exit::BadInput | Exit::Internal => Outcome::Error,
        }
    }

    pub fn exit(self) -> Exit {
        match self {
            Outcome::Valid => Exit::Valid,
            Outcome::Invalid => Exit::Invalid,
            Outcome::Unknown | Outcome::Skipped => Exit::Unknown,
            Outcome::Error => Exit::Internal,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::Invalid => "invalid",
            Outcome::Unknown => "unknown",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One attempt at a run.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    pub outcome: Outcome,
    pub run_dir: Option<PathBuf>,
    /// What the checkers found (from `results.json`), or why the run did not finish.
    pub anomaly_types: Vec<String>,
    pub error: Option<String>,
    pub seconds: f64,
}

/// A run and what became of it.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub run: Run,
    pub label: String,
    pub command: String,
    pub first: Attempt,
    /// The same seed again, when the first attempt was not valid.
    pub rerun: Option<Attempt>,
}

impl RunResult {
    /// For a run that was not valid: whether the same seed failed again.
    pub fn reproducible(&self) -> Option<bool> {
        self.rerun.as_ref().map(|r| r.outcome != Outcome::Valid)
    }
}

pub fn run(args: CampaignArgs) -> anyhow::Result<Exit> {
    crate::runlog::install();
    crate::runlog::set_quiet(args.quiet);
    let file = args.file.display().to_string();
    let loaded = matrix::load(
        "campaign",
        &args.file,
        config::MAX_FILE_BYTES,
        "run",
        config::parse,
    );
    let Some((text, campaign, runs)) = loaded else {
        return Ok(Exit::BadInput);
    };
    if args.dry_run {
        matrix::print_listing(&runs);
        return Ok(Exit::Valid);
    }
    let dir = crate::store::stamped_dir(&args.store.join("campaigns").join(&campaign.name))?;
    std::fs::write(dir.join("campaign.toml"), &text)?;
    let bar = crate::progress::bar(runs.len() as u64, "runs");
    crate::progress::line(
        &bar,
        &format!(
            "faultline campaign: {} runs within {} s; summary in {}",
            runs.len(),
            campaign.budget_s,
            dir.display()
        ),
    );
    let started = Instant::now();
    let mut log = std::fs::File::create(dir.join("runs.jsonl"))?;
    let mut results = Vec::new();
    let mut spent_per_run_s = Vec::new();
    for r in &runs {
        let elapsed_s = started.elapsed().as_secs_f64();
        let (result, interrupted) = if fits(campaign.budget_s, elapsed_s, r, &spent_per_run_s) {
            bar.set_message(r.label());
            crate::progress::line(
                &bar,
                &format!(
                    "faultline campaign: run {}/{}: {}",
                    r.index + 1,
                    runs.len(),
                    r.label()
                ),
            );
            let t = Instant::now();
            let outcome = run_with_rerun(&args.store, &campaign.name, r);
            spent_per_run_s.push((t.elapsed().as_secs_f64(), r.time_limit_s));
            outcome
        } else {
            (skipped(r), false)
        };
        let mut line = serde_json::to_string(&result)?;
        line.push('\n');
        log.write_all(line.as_bytes())?;
        log.sync_data()?;
        bar.inc(1);
        crate::progress::line(&bar, &summary::line(&result));
        results.push(result);
        if interrupted {
            bar.abandon();
            eprintln!("faultline campaign: interrupted");
            break;
        }
    }
    bar.finish_and_clear();
    for r in runs.iter().skip(results.len()) {
        results.push(skipped(r));
    }
    let exit = results
        .iter()
        .fold(Exit::Valid, |e, r| e.worst(r.first.outcome.exit()));
    let text = summary::text(&campaign.name, &results, started.elapsed().as_secs_f64());
    std::fs::write(dir.join("summary.txt"), &text)?;
    std::fs::write(
        dir.join("summary.html"),
        summary::html(&campaign.name, &results, &dir),
    )?;
    let record = serde_json::json!({
        "name": campaign.name,
        "file": file,
        "revision": test_run::revision(),
        "budget_s": campaign.budget_s,
        "elapsed_s": started.elapsed().as_secs_f64(),
        "exit_code": exit.code(),
        "runs": results,
    });
    crate::store::write_json_file(&dir.join("campaign.json"), &record)?;
    if let Some(path) = &args.junit {
        let xml = junit::report(&campaign.name, &results)?;
        std::fs::write(path, xml).with_context(|| format!("cannot write {}", path.display()))?;
    }
    print!("{text}");
    println!("summary: {}", dir.join("summary.html").display());
    Ok(exit)
}

/// Whether `run` is expected to end within the budget: it takes its workload time plus
/// the overhead runs so far took beyond theirs (the worst of them, or a first guess).
fn fits(budget_s: f64, elapsed_s: f64, run: &Run, spent: &[(f64, f64)]) -> bool {
    let overhead_s = spent
        .iter()
        .map(|(took, workload)| (took - workload).max(0.0))
        .fold(None, |m: Option<f64>, o| Some(m.map_or(o, |m| m.max(o))))
        .unwrap_or(FIRST_OVERHEAD_S);
    elapsed_s + run.time_limit_s + overhead_s <= budget_s
}

fn skipped(r: &Run) -> RunResult {
    RunResult {
        run: r.clone(),
        label: r.label(),
        command: r.command(),
        first: Attempt {
            outcome: Outcome::Skipped,
            run_dir: None,
            anomaly_types: Vec::new(),
            error: Some("the campaign's budget ran out before this run started".into()),
            seconds: 0.0,
        },
        rerun: None,
    }
}

/// Runs `r`, and once more with the same seed if it was not valid; also says whether
/// Ctrl-C cut it short.
fn run_with_rerun(store: &Path, campaign: &str, r: &Run) -> (RunResult, bool) {
    let (first, interrupted) = attempt(store, campaign, r);
    let rerun = match first.outcome {
        Outcome::Valid => None,
        _ if interrupted => None,
        _ => {
            if !crate::runlog::is_quiet() {
                eprintln!(
                    "faultline campaign: {} was {}: again with seed {}",
                    r.label(),
                    first.outcome.name(),
                    r.seed
                );
            }
            Some(attempt(store, campaign, r).0)
        }
    };
    let result = RunResult {
        run: r.clone(),
        label: r.label(),
        command: r.command(),
        first,
        rerun,
    };
    (result, interrupted)
}

fn attempt(store: &Path, campaign: &str, r: &Run) -> (Attempt, bool) {
    let t = Instant::now();
    let mut argv = r.argv.clone();
    argv.extend([
        "--store".to_string(),
        store.display().to_string(),
        "--name".to_string(),
        format!("campaign-{campaign}"),
    ]);
    let args = test_run::parse_args(&argv).expect("checked before the campaign started");
    let mut a = Attempt {
        outcome: Outcome::Error,
        run_dir: None,
        anomaly_types: Vec::new(),
        error: None,
        seconds: 0.0,
    };
    let mut interrupted = false;
    match test_run::run_one(&args) {
        Ok(f) => {
            a.outcome = Outcome::of(f.exit);
            a.anomaly_types = crate::analyze::stored_anomaly_types(&f.run);
            a.run_dir = Some(f.run);
            interrupted = f.interrupted;
        }
        Err(e) => a.error = Some(format!("{e:#}")),
    }
    a.seconds = t.elapsed().as_secs_f64();
    (a, interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(time_limit_s: f64) -> Run {
        Run {
            index: 0,
            system: "coord".into(),
            workload: "lock".into(),
            variant: String::new(),
            nemesis: "kill".into(),
            nodes: 3,
            seed: 1,
            repetition: 0,
            time_limit_s,
            argv: Vec::new(),
        }
    }

    #[test]
    fn the_budget_counts_the_worst_overhead_seen() {
        // Nothing measured yet: workload plus the first guess.
        assert!(fits(30.0, 0.0, &run(10.0), &[]));
        assert!(!fits(29.0, 0.0, &run(10.0), &[]));
        // Runs so far took 5 and 12 s beyond their 10 s of workload.
        let spent = [(15.0, 10.0), (22.0, 10.0)];
        assert!(fits(100.0, 78.0, &run(10.0), &spent));
        assert!(!fits(100.0, 79.0, &run(10.0), &spent));
    }

    /// The shipped nightly campaign is a valid file whose every run `faultline test`
    /// accepts, and it puts every reference system under every fault class.
    #[test]
    fn the_nightly_campaign_covers_every_reference_system_with_every_fault_class() {
        let text = include_str!("../../campaigns/nightly.toml");
        let (c, runs) = config::parse("nightly.toml", text).unwrap();
        assert_eq!(c.name, "nightly");
        for r in &runs {
            test_run::parse_args(&r.argv).unwrap_or_else(|e| panic!("{}: {e}", r.label()));
        }
        for system in ["coord", "twopc", "repdb"] {
            let classes: std::collections::BTreeSet<&str> = runs
                .iter()
                .filter(|r| r.system == system)
                .flat_map(|r| r.nemesis.split(','))
                .collect();
            for class in ["partition", "kill", "pause", "packet", "clock", "disk"] {
                assert!(
                    classes.contains(class),
                    "{system} lacks {class}: {classes:?}"
                );
            }
        }
        for real in ["etcd", "zookeeper"] {
            assert!(
                runs.iter()
                    .any(|r| r.system == real && r.nemesis.contains("partition")),
                "the real system {real} is partitioned nightly too"
            );
        }
        let modes: std::collections::BTreeSet<&str> = runs
            .iter()
            .filter(|r| r.system == "repdb")
            .map(|r| r.variant.as_str())
            .collect();
        assert_eq!(
            modes.into_iter().collect::<Vec<_>>(),
            [
                "active",
                "certification",
                "certification-si",
                "primary-copy",
                "weak-voting"
            ]
        );
    }

    #[test]
    fn outcomes_rank_as_test_all_and_skips_are_unknown() {
        let worst = [Outcome::Valid, Outcome::Skipped, Outcome::Invalid]
            .iter()
            .fold(Exit::Valid, |e, o| e.worst(o.exit()));
        assert_eq!(worst, Exit::Invalid);
        assert_eq!(Outcome::Skipped.exit(), Exit::Unknown);
        assert_eq!(Outcome::of(Exit::Internal), Outcome::Error);
    }
}
