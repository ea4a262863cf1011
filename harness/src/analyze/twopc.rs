//! Checking a stored run of the two-phase-commit store: the history with Jepsen's bank
//! checker and the workload's own checks, the merged event log (`events.jsonl`, merged now
//! from the collected node logs if the run did not get that far) with the atomic-commit,
//! consistent-cut and recovery-line checkers, and, for `snapshot` runs, the outcome of
//! restoring the last snapshot (`restore.json`). The worst verdict is the run's.
//!
//! `results.json` holds each verdict under its checker's name, and `checkers` lists them.

use crate::db::twopc::restore::RESULT_FILE as RESTORE_FILE;
use crate::event_log;
use crate::exit::Exit;
use crate::store::RunDir;
use anyhow::Context;
use checkers::atomic_commit::{self, Events};
use checkers::history::History;
use checkers::linearizable::Validity;
use checkers::verdict::Verdict;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::Instant;
use tracing::warn;
use workloads::twopc::check;
use workloads::twopc::workload::Kind;

/// Largest restore outcome read back.
const MAX_RESTORE_BYTES: u64 = 16 << 20;

/// Checks the run at `dir` (its history already read), writes `results.json`, prints the
/// verdicts.
pub fn check(dir: &Path, test: &Value, history: &History, kind: Kind) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let events = read_events(dir);
    let event_count = events.as_ref().map_or(0, |e| e.events.len());
    let participants = if test["args"]["system"] == "twopc-postgres" {
        check::Participants::Postgres
    } else {
        check::Participants::Store
    };
    let mut verdicts = check::judge(
        kind,
        history,
        events.as_ref().map_err(String::clone),
        participants,
    )
    .with_context(|| format!("cannot check {}", history.file))?;
    if kind == Kind::Snapshot {
        verdicts.push(restore_verdict(dir));
    }
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let valid = verdicts
        .iter()
        .map(|v| v.valid)
        .fold(Validity::Valid, worst);
    let nemesis_ops = history
        .ops
        .iter()
        .filter(|op| !op.process.is_client())
        .count();
    let client_ops = history.ops.len() - nemesis_ops;
    let mut doc = Map::new();
    doc.insert("valid".into(), json!(valid));
    doc.insert("seed".into(), test["seed"].clone());
    doc.insert("revision".into(), test["revision"].clone());
    doc.insert("checker".into(), json!(check::checker_name(kind)));
    doc.insert(
        "checkers".into(),
        json!(verdicts
            .iter()
            .map(|v| v.checker.as_str())
            .collect::<Vec<_>>()),
    );
    for v in &verdicts {
        doc.insert(v.checker.clone(), serde_json::to_value(v)?);
    }
    doc.insert(
        "history_events".into(),
        json!({"client": client_ops, "nemesis": nemesis_ops}),
    );
    doc.insert(
        "event_log".into(),
        json!({"file": event_log::MERGED_FILE, "events": event_count,
               "problem": events.as_ref().err()}),
    );
    doc.insert("elapsed_ms".into(), json!(elapsed_ms));
    let run = RunDir {
        path: dir.to_path_buf(),
    };
    run.write_json("results.json", &Value::Object(doc))?;
    println!(
        "{}: {} ({client_ops} client events, {nemesis_ops} nemesis events, {event_count} node events, {elapsed_ms:.0} ms to check)",
        dir.display(),
        word(valid)
    );
    Ok(print_verdicts(&verdicts, valid, test))
}

/// Prints each verdict (with the explanation of those not valid) and, for a run that is not
/// valid, the seed and revision that replay it; the exit code the run's verdict gives.
pub(super) fn print_verdicts(verdicts: &[Verdict], valid: Validity, test: &Value) -> Exit {
    for v in verdicts {
        let anomalies = if v.anomaly_types.is_empty() {
            String::new()
        } else {
            format!(": {}", v.anomaly_types.join(", "))
        };
        println!("  {}: {}{anomalies}", v.checker, word(v.valid));
        if v.valid != Validity::Valid {
            for line in v.explain().lines().take(20) {
                println!("    {line}");
            }
        }
    }
    if valid != Validity::Valid {
        println!(
            "seed {} revision {}",
            test["seed"],
            test["revision"].as_str().unwrap_or("unknown")
        );
    }
    match valid {
        Validity::Valid => Exit::Valid,
        Validity::Invalid => Exit::Invalid,
        Validity::Unknown => Exit::Unknown,
    }
}

pub(super) fn word(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    }
}

/// Invalid beats unknown beats valid.
pub(super) fn worst(a: Validity, b: Validity) -> Validity {
    match (a, b) {
        (Validity::Invalid, _) | (_, Validity::Invalid) => Validity::Invalid,
        (Validity::Unknown, _) | (_, Validity::Unknown) => Validity::Unknown,
        _ => Validity::Valid,
    }
}

/// The merged event log, merging it first if only the node logs were collected; `Err`
/// says why there is none to check.
fn read_events(dir: &Path) -> Result<Events, String> {
    let path = dir.join(event_log::MERGED_FILE);
    if !path.is_file() {
        if !event_log::has_sources(dir) {
            return Err(format!(
                "{} and the nodes' event logs are missing",
                path.display()
            ));
        }
        if let Err(e) = event_log::merge(dir) {
            warn!("cannot merge the event logs: {e:#}");
            return Err(format!("the nodes' event logs cannot be merged: {e:#}"));
        }
    }
    let len = std::fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > event_log::MAX_EVENT_BYTES {
        return Err(format!(
            "{} is larger than {} bytes",
            path.display(),
            event_log::MAX_EVENT_BYTES
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    atomic_commit::parse_events(&path.display().to_string(), &text).map_err(|e| e.to_string())
}

/// The restore's verdict from `restore.json`, or unknown naming why there is none.
fn restore_verdict(dir: &Path) -> Verdict {
    let path = dir.join(RESTORE_FILE);
    let unknown = |why: String| {
        let mut v = Verdict::new(workloads::twopc::restore::CHECKER);
        v.give_up(why);
        v
    };
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(_) => {
            return unknown(format!(
                "no snapshot was restored ({} is missing)",
                path.display()
            ))
        }
    };
    if len > MAX_RESTORE_BYTES {
        return unknown(format!(
            "{} is larger than {MAX_RESTORE_BYTES} bytes",
            path.display()
        ));
    }
    match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
    {
        Ok(doc) => verdict_from_json(&doc)
            .unwrap_or_else(|| unknown(format!("{} is not a verdict", path.display()))),
        Err(e) => unknown(format!("{}: {e}", path.display())),
    }
}

/// A verdict as `restore.json` stores it (its serde form).
fn verdict_from_json(doc: &Value) -> Option<Verdict> {
    let mut v = Verdict::new(doc["checker"].as_str()?);
    for (kind, proofs) in doc["anomalies"].as_object().into_iter().flatten() {
        for p in proofs.as_array().into_iter().flatten() {
            v.anomaly(kind, p.as_str().unwrap_or_default());
        }
    }
    for (kind, n) in doc["anomaly_counts"].as_object().into_iter().flatten() {
        if let Some(n) = n.as_u64() {
            v.anomaly_counts.insert(kind.clone(), n as usize);
        }
    }
    // As stored, whatever the anomalies say (a verdict with none may still be invalid).
    v.valid = match &doc["valid"] {
        Value::Bool(true) => Validity::Valid,
        Value::Bool(false) => Validity::Invalid,
        _ => Validity::Unknown,
    };
    v.cause = doc["cause"].as_str().map(str::to_string);
    if let Some(d) = doc["details"].as_object() {
        v.details = d.clone();
    }
    Some(v)
}
