//! Restoring a `snapshot` run's last snapshot into a new cluster (issue 6: "snapshots can be
//! restored into a new cluster"): the newest taken snapshot whose every part the run fetched
//! is written out part by part, a fresh cluster of as many nodes is started on the local
//! backend with each participant seeded from its part (`--restore`), every account is read
//! in one transaction, and the read must equal the parts' balances and sum to the total.
//!
//! The outcome is a verdict (checker `restore`) written to `restore.json` in the run
//! directory, which `faultline analyze` puts into `results.json`. The restored cluster lives
//! under `restore/` in the run directory and is torn down whatever happens.

use super::TwoPc;
use crate::control::local::Local;
use crate::control::Node;
use crate::db::{Backend, Cluster, Db};
use crate::store::RunDir;
use anyhow::Context;
use checkers::verdict::Verdict;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};
use twopc::proto::{Mop, Request, Response};
use workloads::twopc::client::Conn;
use workloads::twopc::restore::{self as plan, Plan};

/// The file in the run directory that holds the outcome.
pub const RESULT_FILE: &str = "restore.json";
/// How long the restored nodes have to start serving.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long reading the restored accounts may take, retries included.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// One read attempt's wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Restores the run's last snapshot, judges it, and writes `restore.json`. A restore that
/// cannot be carried out is an unknown verdict naming why; only failing to write the result
/// is an error.
pub fn restore_last_snapshot(run: &RunDir, seed: u64) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let verdict = match attempt(run, seed) {
        Ok(v) => v,
        Err(e) => {
            warn!("restore: {e:#}");
            let mut v = Verdict::new(plan::CHECKER);
            v.give_up(format!("the snapshot could not be restored: {e:#}"));
            v
        }
    };
    let mut doc = serde_json::to_value(&verdict)?;
    if let serde_json::Value::Object(m) = &mut doc {
        m.insert(
            "elapsed_ms".into(),
            json!(started.elapsed().as_secs_f64() * 1e3),
        );
    }
    run.write_json(RESULT_FILE, &doc)?;
    Ok(verdict)
}

fn attempt(run: &RunDir, seed: u64) -> anyhow::Result<Verdict> {
    let history = crate::analyze::read_history(&run.path)?;
    let Some(plan) = plan::plan(&history)? else {
        let mut v = Verdict::new(plan::CHECKER);
        v.give_up("no taken snapshot had every part fetched: nothing to restore");
        return Ok(v);
    };
    info!(
        "restoring snapshot {} into a new cluster of {} nodes",
        plan.snapshot,
        plan.parts.len() + 1
    );
    let dir = run.path.join("restore");
    let parts = write_parts(&dir, &plan)?;
    let remote = Arc::new(Local::new(&dir.join("work")));
    let nodes = crate::test_run::local_nodes(plan.parts.len() + 1)?;
    let names: Vec<&str> = nodes.iter().skip(1).map(|n| n.name.as_str()).collect();
    let planned: Vec<&str> = plan.parts.keys().map(String::as_str).collect();
    anyhow::ensure!(
        names == planned,
        "the snapshot's parts are from {planned:?}, not the participants {names:?} of a cluster of its size"
    );
    let cluster = Cluster {
        nodes,
        remote,
        backend: Backend::Local,
        run_id: format!("faultline-restore-{seed:x}-{}", std::process::id()),
        lazy_disk: None,
    };
    let db = TwoPc::restoring(seed, parts);
    let read = deploy_and_read(&db, &cluster, &plan);
    for node in &cluster.nodes {
        if let Err(e) = db.teardown(&cluster, node) {
            warn!("restore: teardown of {}: {e}", node.name);
        }
    }
    Ok(plan::judge(&plan, &read?))
}

/// Each part as the postcard `SnapshotPart` a node's `--restore` takes, by node name.
fn write_parts(dir: &std::path::Path, plan: &Plan) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let parts_dir = dir.join("parts");
    std::fs::create_dir_all(&parts_dir)
        .with_context(|| format!("cannot create {}", parts_dir.display()))?;
    let mut out = BTreeMap::new();
    for (node, part) in &plan.parts {
        let path = parts_dir.join(format!("{node}.part"));
        std::fs::write(&path, twopc::record::encode(part))
            .with_context(|| format!("cannot write {}", path.display()))?;
        out.insert(node.clone(), path);
    }
    Ok(out)
}

/// Starts the restored cluster and reads every account of the setup in one transaction.
fn deploy_and_read(
    db: &TwoPc,
    cluster: &Cluster,
    plan: &Plan,
) -> anyhow::Result<Vec<(u64, Option<i64>)>> {
    db.preflight(cluster)?;
    for node in &cluster.nodes {
        db.setup(cluster, node)?;
    }
    for node in &cluster.nodes {
        db.wait_ready(cluster, node, READY_TIMEOUT)?;
    }
    let coordinator: &Node = &cluster.nodes[0];
    let addr = db.client_addr(coordinator);
    let ops: Vec<Mop> = plan.accounts.iter().map(|&key| Mop::Read { key }).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime for the restore's read")?;
    rt.block_on(async {
        let mut conn = Conn::new(addr);
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let req = Request::Txn { ops: ops.clone() };
            match conn.call(&req, REQUEST_TIMEOUT).await {
                Ok(Response::Committed { reads, .. }) => return Ok(reads),
                Ok(other) => last = format!("{other:?}"),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the restored cluster answered no read within {READ_TIMEOUT:?}; last: {last}")
    })
}
