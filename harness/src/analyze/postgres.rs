//! Checking a stored PostgreSQL run: the history judged at the model its isolation level
//! (`test.json`'s `args.isolation`) claims, by the transactional checkers for list-append and
//! rw-register (plus a search for every anomaly, reported but not deciding), or by the bank
//! checker.
//!
//! `results.json`: `valid`, `checker` (the deciding verdict's name, also a key holding it),
//! `isolation`, `model`, `anomaly_types` (every type found by either search), `not` and
//! `also_not` (the models those rule out), `all-anomalies` (the full search's verdict),
//! `history_events` and `elapsed_ms`.

use crate::exit::Exit;
use crate::store::RunDir;
use crate::workload::CHECK_TIME_LIMIT;
use anyhow::Context;
use checkers::history::History;
use checkers::linearizable::Validity;
use checkers::txn::consistency;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::Instant;
use workloads::postgres::check::{self, ALL_ANOMALIES};
use workloads::postgres::{Isolation, Kind};

/// Checks the run at `dir` (its history already read), writes `results.json`, prints the
/// verdict.
pub fn check(dir: &Path, test: &Value, history: &History) -> anyhow::Result<Exit> {
    let workload = test["args"]["workload"].as_str().unwrap_or_default();
    let kind = Kind::from_name(workload)
        .with_context(|| format!("postgres has no workload {workload:?} (test.json)"))?;
    let level = test["args"]["isolation"]
        .as_str()
        .context("test.json names no isolation level (args.isolation)")?;
    let isolation = Isolation::from_name(level)
        .with_context(|| format!("unknown isolation level {level:?} in test.json"))?;
    let started = Instant::now();
    let judged = check::judge(kind, isolation, history, CHECK_TIME_LIMIT)
        .with_context(|| format!("cannot check {}", history.file))?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let verdict = &judged.verdict;
    let types = judged.anomaly_types();
    let (not, also_not) = consistency::ruled_out(types.iter().map(String::as_str));
    let names = |ms: Vec<checkers::txn::Model>| ms.iter().map(|m| m.name()).collect::<Vec<_>>();
    let nemesis_ops = history
        .ops
        .iter()
        .filter(|op| !op.process.is_client())
        .count();
    let client_ops = history.ops.len() - nemesis_ops;
    let mut doc = Map::new();
    doc.insert("valid".into(), json!(verdict.valid));
    doc.insert("seed".into(), test["seed"].clone());
    doc.insert("revision".into(), test["revision"].clone());
    doc.insert("checker".into(), json!(verdict.checker));
    doc.insert("isolation".into(), json!(isolation.name()));
    doc.insert("model".into(), json!(judged.model.map(|m| m.name())));
    doc.insert("anomaly_types".into(), json!(types));
    doc.insert("not".into(), json!(names(not)));
    doc.insert("also_not".into(), json!(names(also_not)));
    doc.insert(verdict.checker.clone(), serde_json::to_value(verdict)?);
    if let Some(all) = &judged.all_anomalies {
        doc.insert(ALL_ANOMALIES.into(), serde_json::to_value(all)?);
    }
    doc.insert(
        "history_events".into(),
        json!({"client": client_ops, "nemesis": nemesis_ops}),
    );
    doc.insert("elapsed_ms".into(), json!(elapsed_ms));
    let run = RunDir {
        path: dir.to_path_buf(),
    };
    run.write_json("results.json", &Value::Object(doc))?;
    super::write_cycle_pictures(dir, &judged.cycles)?;
    let count = |k: &str| verdict.details.get(k).and_then(Value::as_u64).unwrap_or(0);
    let at = match judged.model {
        Some(m) => format!("checked at {}", m.name()),
        None => "bank checker".into(),
    };
    let found = if types.is_empty() {
        "no anomalies".to_string()
    } else {
        format!("anomalies: {}", types.join(", "))
    };
    println!(
        "{}: {} ({} at {}, {at}; {found}; {} serialization failures, {} deadlocks; {client_ops} client events, {nemesis_ops} nemesis events, {elapsed_ms:.0} ms to check)",
        dir.display(),
        word(verdict.valid),
        kind.name(),
        isolation.name(),
        count("serialization_failures"),
        count("deadlocks"),
    );
    if kind == Kind::Bank
        && isolation == Isolation::ReadCommitted
        && verdict.valid == Validity::Invalid
    {
        println!(
            "  (read committed allows lost updates: transfers that read balances and write \
             them back lose or create money there, as Hermitage's P4 shows)"
        );
    }
    if verdict.valid != Validity::Valid {
        for line in verdict.explain().lines().take(40) {
            println!("  {line}");
        }
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

fn word(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    }
}
