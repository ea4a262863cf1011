//! `faultline check`: reads histories, runs a checker on each, prints verdicts.
//!
//! Files are checked in parallel and reported in the order given. Reading files and writing
//! reports happen here; the checkers crate only sees bytes. Linearizability has its own
//! outcome and HTML report; every other checker answers with a `Verdict` ([`verdicts`]).

mod verdicts;

use crate::exit::Exit;
use anyhow::Context;
use checkers::history::{self, Format, History, Value};
use checkers::linearizable::{self, FailMode, NilRead, Options, Outcome, Semantics, Validity};
use checkers::model::ModelKind;
use checkers::txn::Model;
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest history file we read; beyond it a file is refused rather than risking memory.
const MAX_FILE_BYTES: u64 = 4 << 30;

#[derive(Args)]
pub struct CheckArgs {
    /// Which checker to run.
    #[arg(long, value_enum, default_value_t = CheckerName::Linearizable)]
    checker: CheckerName,
    /// Transactional checkers: the consistency models the history must satisfy, comma
    /// separated (default strict-serializable; serializable for one-copy).
    #[arg(long, value_delimiter = ',', value_parser = verdicts::parse_model, value_name = "LIST")]
    consistency_models: Vec<Model>,
    /// rw-register: the system promises per-key linearizability, so realtime order between
    /// transactions on one key orders its versions.
    #[arg(long)]
    linearizable_keys: bool,
    /// rw-register: per-key sequential consistency, so process order orders versions.
    #[arg(long)]
    sequential_keys: bool,
    /// rw-register: a field of ok completions holding an integer commit sequence number, a
    /// total commit order that orders every key's versions.
    #[arg(long, value_name = "FIELD")]
    commit_order: Option<String>,
    /// one-copy: the replicas' apply logs (JSON lines of {"replica", "applied", "finished", "state"}).
    #[arg(long, value_name = "FILE")]
    apply_logs: Option<PathBuf>,
    /// bank: the total every read must sum to (default: the first read's sum).
    #[arg(long)]
    total: Option<i64>,
    /// bank: balances may go below zero.
    #[arg(long)]
    negative_balances: bool,
    /// set-full: the set claims linearizability, so stale reads are errors.
    #[arg(long)]
    linearizable_set: bool,
    /// long-fork: keys per read group (default: taken from the reads).
    #[arg(long, value_name = "N")]
    group_size: Option<usize>,
    /// The sequential model, for the linearizable checker.
    #[arg(long, value_parser = parse_model)]
    model: Option<ModelKind>,
    /// Give up with "unknown" after this many seconds per file.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    time_limit: f64,
    /// Give up with "unknown" when a search's memo grows past this many MiB per file.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    memory_limit: usize,
    /// The input format; detected from the content when absent.
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Initial register value, as JSON (default: 0 for EDN as in Knossos, "" for Porcupine kv
    /// logs, null otherwise).
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    initial: Option<Value>,
    /// What a nil read means (default: unconstrained for EDN as in Knossos, absent otherwise).
    #[arg(long, value_enum)]
    nil_read: Option<NilReadArg>,
    /// What a failed op means (default: observe for Jepsen logs as in Porcupine, drop otherwise).
    #[arg(long, value_enum)]
    fail: Option<FailArg>,
    /// Print one JSON object per file instead of text.
    #[arg(long)]
    json: bool,
    /// Write a self-contained HTML report per file into this directory.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// History files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckerName {
    Linearizable,
    ListAppend,
    RwRegister,
    OneCopy,
    Bank,
    Set,
    SetFull,
    Counter,
    UniqueIds,
    TotalQueue,
    LongFork,
    AtomicCommit,
    RecoveryLine,
    ConsistentCut,
}

impl CheckerName {
    pub(crate) fn name(self) -> &'static str {
        match self {
            CheckerName::Linearizable => "linearizable",
            CheckerName::ListAppend => "list-append",
            CheckerName::RwRegister => "rw-register",
            CheckerName::OneCopy => "one-copy",
            CheckerName::Bank => "bank",
            CheckerName::Set => "set",
            CheckerName::SetFull => "set-full",
            CheckerName::Counter => "counter",
            CheckerName::UniqueIds => "unique-ids",
            CheckerName::TotalQueue => "total-queue",
            CheckerName::LongFork => "long-fork",
            CheckerName::AtomicCommit => "atomic-commit",
            CheckerName::RecoveryLine => "recovery-line",
            CheckerName::ConsistentCut => "consistent-cut",
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum NilReadArg {
    Unconstrained,
    Absent,
}

#[derive(Clone, Copy, ValueEnum)]
enum FailArg {
    Drop,
    Observe,
}

fn parse_model(s: &str) -> Result<ModelKind, String> {
    ModelKind::from_name(s).ok_or_else(|| {
        let names: Vec<_> = ModelKind::ALL.iter().map(|m| m.name()).collect();
        format!("unknown model {s:?}; expected one of {}", names.join(", "))
    })
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
        format!("unknown format {s:?}; expected one of {}", names.join(", "))
    })
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

/// What happened to one file.
enum FileResult {
    Checked {
        history: Box<History>,
        outcome: Box<Outcome>,
        elapsed: Duration,
    },
    Judged {
        checked: Box<verdicts::Checked>,
        elapsed: Duration,
    },
    BadInput(String),
}

impl FileResult {
    fn exit(&self) -> Exit {
        match self {
            FileResult::BadInput(_) => Exit::BadInput,
            FileResult::Judged { checked, .. } => match checked.verdict.valid {
                Validity::Valid => Exit::Valid,
                Validity::Invalid => Exit::Invalid,
                Validity::Unknown => Exit::Unknown,
            },
            FileResult::Checked { outcome, .. } => match outcome.valid {
                Validity::Valid => Exit::Valid,
                Validity::Invalid => Exit::Invalid,
                Validity::Unknown => Exit::Unknown,
            },
        }
    }
}

pub fn run(args: CheckArgs) -> anyhow::Result<Exit> {
    let model = match (args.checker, args.model) {
        (CheckerName::Linearizable, None) => {
            eprintln!("faultline check: the linearizable checker needs --model (one of register, cas-register, kv, multi-register, mutex, set, fifo-queue)");
            return Ok(Exit::BadInput);
        }
        (CheckerName::Linearizable, Some(m)) => Some(m),
        (other, Some(_)) => {
            eprintln!(
                "faultline check: --model is for the linearizable checker, not {}",
                other.name()
            );
            return Ok(Exit::BadInput);
        }
        (_, None) => None,
    };
    if !(args.time_limit > 0.0 && args.time_limit.is_finite()) {
        eprintln!("faultline check: --time-limit must be a positive number of seconds");
        return Ok(Exit::BadInput);
    }
    let results: Vec<FileResult> = args
        .files
        .par_iter()
        .map(|path| check_file(&args, model, path))
        .collect();
    if let Some(dir) = &args.report {
        write_reports(dir, &args.files, &results)?;
    }
    print_results(&args, &results);
    Ok(results
        .iter()
        .fold(Exit::Valid, |acc, r| acc.worst(r.exit())))
}

fn check_file(args: &CheckArgs, model: Option<ModelKind>, path: &Path) -> FileResult {
    let started = Instant::now();
    let name = path.display().to_string();
    let bytes = match read_bounded(path) {
        Ok(b) => b,
        Err(e) => return FileResult::BadInput(format!("{name}: {e:#}")),
    };
    if let Some(result) = verdicts::run_lean(args, &name, &bytes)
        .or_else(|| verdicts::run_event_log(args, &name, &bytes))
    {
        return match result {
            Ok(checked) => FileResult::Judged {
                checked: Box::new(checked),
                elapsed: started.elapsed(),
            },
            Err(e) => FileResult::BadInput(e.to_string()),
        };
    }
    let parsed = history::parse(&name, &bytes, args.format);
    // The text is not needed once parsed; large histories should not hold both.
    drop(bytes);
    let history = match parsed {
        Ok(h) => h,
        Err(e) => return FileResult::BadInput(e.to_string()),
    };
    let Some(model) = model else {
        return match verdicts::run(args, history) {
            Ok(checked) => FileResult::Judged {
                checked: Box::new(checked),
                elapsed: started.elapsed(),
            },
            Err(e) => FileResult::BadInput(e.to_string()),
        };
    };
    let options = options_for(args, history.format);
    match linearizable::check(&history, model, &options) {
        Ok(outcome) => FileResult::Checked {
            history: Box::new(history),
            outcome: Box::new(outcome),
            elapsed: started.elapsed(),
        },
        Err(e) => FileResult::BadInput(e.to_string()),
    }
}

fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).context("cannot read")?;
    anyhow::ensure!(
        meta.len() <= MAX_FILE_BYTES,
        "{} bytes is more than the {MAX_FILE_BYTES}-byte limit",
        meta.len()
    );
    std::fs::read(path).context("cannot read")
}

fn options_for(args: &CheckArgs, format: Format) -> Options {
    let mut semantics = Semantics::for_format(format);
    if let Some(v) = &args.initial {
        semantics.initial = v.clone();
    }
    if let Some(n) = args.nil_read {
        semantics.nil_read = match n {
            NilReadArg::Unconstrained => NilRead::Unconstrained,
            NilReadArg::Absent => NilRead::Absent,
        };
    }
    if let Some(f) = args.fail {
        semantics.fail = match f {
            FailArg::Drop => FailMode::Drop,
            FailArg::Observe => FailMode::Observe,
        };
    }
    let mut options = Options::new(semantics);
    options.time_limit = Some(Duration::from_secs_f64(args.time_limit));
    options.memory_limit_bytes = args.memory_limit.saturating_mul(1 << 20);
    options
}

fn print_results(args: &CheckArgs, results: &[FileResult]) {
    for (path, r) in args.files.iter().zip(results) {
        let name = path.display().to_string();
        if args.json {
            println!("{}", json_line(args.checker, &name, r));
        } else {
            print!("{}", text(&name, r, results.len() == 1));
        }
    }
    if !args.json && results.len() > 1 {
        println!("{}", summary(results));
    }
}

fn verdict_word(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    }
}

fn text(name: &str, r: &FileResult, full: bool) -> String {
    match r {
        FileResult::BadInput(e) => format!("{name}: bad input: {e}\n"),
        FileResult::Judged { checked, elapsed } => {
            let v = &checked.verdict;
            let mut head = format!(
                "{name}: {} ({}, {:.1} ms)",
                verdicts::word(v.valid),
                v.checker,
                elapsed.as_secs_f64() * 1e3
            );
            if !v.anomaly_types.is_empty() {
                head.push_str(&format!(": {}", v.anomaly_types.join(", ")));
            }
            if full {
                format!("{head}\n{}", v.explain())
            } else {
                format!("{head}\n")
            }
        }
        FileResult::Checked {
            history,
            outcome,
            elapsed,
        } => {
            let head = format!(
                "{name}: {} ({}, {} ops, {:.1} ms)",
                verdict_word(outcome.valid),
                outcome.model,
                outcome.ops,
                elapsed.as_secs_f64() * 1e3
            );
            if full {
                format!("{head}\n{}", outcome.explain(history))
            } else {
                let detail = match (&outcome.failure, &outcome.cause) {
                    (Some(f), _) => format!(
                        ": process {} {} {} cannot be linearized",
                        f.op.process, f.op.f, f.op.value
                    ),
                    (None, Some(c)) => format!(": {c}"),
                    _ => String::new(),
                };
                format!("{head}{detail}\n")
            }
        }
    }
}

fn json_line(checker: CheckerName, name: &str, r: &FileResult) -> String {
    let v = match r {
        FileResult::BadInput(e) => serde_json::json!({
            "file": name, "checker": checker.name(), "valid": "unknown", "error": e,
        }),
        FileResult::Judged { checked, elapsed } => {
            checked.verdict.to_json(name, elapsed.as_secs_f64() * 1e3)
        }
        FileResult::Checked {
            history,
            outcome,
            elapsed,
        } => {
            let mut v = serde_json::to_value(outcome.as_ref()).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("file".into(), name.into());
                m.insert("checker".into(), "linearizable".into());
                m.insert("elapsed_ms".into(), (elapsed.as_secs_f64() * 1e3).into());
                m.insert("explanation".into(), outcome.explain(history).into());
            }
            v
        }
    };
    v.to_string()
}

fn summary(results: &[FileResult]) -> String {
    let count = |e: Exit| results.iter().filter(|r| r.exit() == e).count();
    format!(
        "{} files: {} valid, {} invalid, {} unknown, {} bad input",
        results.len(),
        count(Exit::Valid),
        count(Exit::Invalid),
        count(Exit::Unknown),
        count(Exit::BadInput)
    )
}

fn write_reports(dir: &Path, files: &[PathBuf], results: &[FileResult]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (i, (path, r)) in files.iter().zip(results).enumerate() {
        let stem = path.file_name().map_or_else(
            || format!("history-{i}"),
            |s| s.to_string_lossy().into_owned(),
        );
        if let FileResult::Judged { checked, .. } = r {
            verdicts::write_report(dir, &stem, checked)?;
            continue;
        }
        let FileResult::Checked {
            history, outcome, ..
        } = r
        else {
            continue;
        };
        let out = dir.join(format!("{stem}.html"));
        let page = linearizable::report::html(history, outcome, &path.display().to_string());
        std::fs::write(&out, page).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}
