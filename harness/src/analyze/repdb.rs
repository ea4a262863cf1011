//! Checking a stored run of the replicated database: the transactions at the model the
//! replication mode claims (`test.json`'s `args.replication` and `args.no_read_sets`;
//! lazy, which claims none, as serializable), `one-copy` on the replicas' apply logs (the
//! final `apply-log` operations in the history), and `convergence` after healing. The worst
//! verdict is the run's.
//!
//! `results.json` holds each verdict under its checker's name (`list-append` or
//! `rw-register`, `one-copy`, `convergence`), `checkers` lists them, `anomaly_types` unites
//! their anomaly types, `replication` says what was claimed, `txns` counts what clients saw
//! and which replicas answered. Beside it go `txns.jsonl` and `apply-logs.jsonl`, which
//! `faultline check --checker one-copy --apply-logs apply-logs.jsonl txns.jsonl` re-checks,
//! and each cycle found as `cycle-N-CLASS.svg`.

use super::twopc::{print_verdicts, word, worst};
use crate::db::repdb::DEFAULT_MODE;
use crate::exit::Exit;
use crate::store::RunDir;
use crate::workload::CHECK_TIME_LIMIT;
use anyhow::Context;
use checkers::history::{jsonl, History};
use checkers::linearizable::Validity;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;
use workloads::repdb::check;
use workloads::repdb::workload::workload_of;

/// The transactions the checkers judged, with their ids, beside the history.
pub const TXNS_FILE: &str = "txns.jsonl";
/// The replicas' apply logs, as `faultline check --apply-logs` reads them.
pub const APPLY_LOGS_FILE: &str = "apply-logs.jsonl";

/// Checks the run at `dir` (its history already read), writes `results.json` and the files
/// beside it, prints the verdicts.
pub fn check(dir: &Path, test: &Value, history: &History) -> anyhow::Result<Exit> {
    let args = &test["args"];
    let name = args["workload"].as_str().unwrap_or_default();
    let workload =
        workload_of(name).with_context(|| format!("repdb has no workload {name:?} (test.json)"))?;
    let mode = args["replication"].as_str().unwrap_or(DEFAULT_MODE);
    let no_read_sets = args["no_read_sets"].as_bool().unwrap_or(false);
    let model = check::model_for(mode, no_read_sets)
        .map_err(anyhow::Error::msg)
        .context("test.json's replication flags")?;
    let started = Instant::now();
    let judged = check::judge(history, workload, model, CHECK_TIME_LIMIT)
        .with_context(|| format!("cannot check {}", history.file))?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let run = RunDir {
        path: dir.to_path_buf(),
    };
    write_files(dir, &judged)?;
    let verdicts = &judged.verdicts;
    let valid = verdicts
        .iter()
        .map(|v| v.valid)
        .fold(Validity::Valid, worst);
    let anomaly_types: BTreeSet<&str> = verdicts
        .iter()
        .flat_map(|v| v.anomaly_types.iter().map(String::as_str))
        .collect();
    let nemesis_ops = history
        .ops
        .iter()
        .filter(|op| !op.process.is_client())
        .count();
    let client_ops = history.ops.len() - nemesis_ops;
    let claimed = repdb::Mode::parse(mode)
        .ok()
        .and_then(|m| m.claimed_model(!no_read_sets));
    let mut doc = Map::new();
    doc.insert("valid".into(), json!(valid));
    doc.insert("seed".into(), test["seed"].clone());
    doc.insert("revision".into(), test["revision"].clone());
    doc.insert("checker".into(), json!(format!("repdb-{name}")));
    doc.insert(
        "checkers".into(),
        json!(verdicts
            .iter()
            .map(|v| v.checker.as_str())
            .collect::<Vec<_>>()),
    );
    doc.insert("anomaly_types".into(), json!(anomaly_types));
    doc.insert(
        "replication".into(),
        json!({"mode": mode, "read_sets": !no_read_sets, "claims": claimed,
               "checked_as": model.name()}),
    );
    for v in verdicts {
        doc.insert(v.checker.clone(), serde_json::to_value(v)?);
    }
    doc.insert("txns".into(), judged.summary.clone());
    doc.insert(
        "history_events".into(),
        json!({"client": client_ops, "nemesis": nemesis_ops}),
    );
    doc.insert(
        "files".into(),
        json!({"txns": TXNS_FILE, "apply_logs": APPLY_LOGS_FILE}),
    );
    doc.insert("elapsed_ms".into(), json!(elapsed_ms));
    run.write_json("results.json", &Value::Object(doc))?;
    println!(
        "{}: {} (repdb {mode}{}, checked as {}; {client_ops} client events, {nemesis_ops} nemesis events, {elapsed_ms:.0} ms to check)",
        dir.display(),
        word(valid),
        if no_read_sets { " without read sets" } else { "" },
        model.name()
    );
    Ok(print_verdicts(verdicts, valid, test))
}

/// The transactions and apply logs the verdicts rest on, and the cycles' pictures.
fn write_files(dir: &Path, judged: &check::Judged) -> anyhow::Result<()> {
    let write = |name: &str, body: String| {
        let path = dir.join(name);
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))
    };
    write(TXNS_FILE, jsonl::write(&judged.txns.ops))?;
    write(APPLY_LOGS_FILE, judged.apply_logs.clone())?;
    super::write_cycle_pictures(dir, &judged.cycles)?;
    Ok(())
}
