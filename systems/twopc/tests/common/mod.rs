//! The bank-and-snapshot run every simulation test shares, and the checks that judge it.

#![allow(dead_code)]

use checkers::history::OpType;
use checkers::verdict::{Validity, Verdict};
use machine::{Durable, NodeId};
use serde_json::{json, Map, Value};
use sim::{ClientConfig, ClientIo, FaultConfig, NetConfig, Sim, SimClient, SimConfig};
use std::collections::{BTreeMap, BTreeSet};
use twopc::proto::{Key, Mop, Request, Response, SnapshotPart};
use twopc::{Bugs, TwoPc, TwoPcConfig};

/// n1 coordinates; n2..n4 hold one shard each.
pub const NODES: u32 = 4;
pub const ACCOUNTS: u64 = 8;
pub const INITIAL_BALANCE: i64 = 100;
pub const TOTAL: i64 = ACCOUNTS as i64 * INITIAL_BALANCE;

#[derive(Clone, Copy, Debug)]
pub enum Plan {
    /// Reliable network, no faults.
    Quiet,
    /// The simulator's random plan: partitions, crashes with torn writes, pauses, clock
    /// jumps, loss bursts, on a flaky network.
    Chaos,
    /// A short run; `node` crashes right after the run's `step`-th event and reboots later.
    CrashAtStep { step: u64, node: NodeId },
    /// Once a participant has forced `yes`, it and the coordinator crash; the participant
    /// reboots at once, the coordinator only 2 s later. Nobody else can know the decision.
    InDoubtBlackout,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub committed: usize,
    pub snapshots: usize,
    pub checkpoints: usize,
    /// Participants that crashed holding a `yes` without a decision.
    pub recovered_in_doubt: usize,
    pub steps: u64,
    /// In [`Plan::InDoubtBlackout`]: the participant was still in doubt just before the
    /// coordinator came back (it blocked rather than guess).
    pub blocked: bool,
}

pub fn participants() -> Vec<NodeId> {
    (2..=NODES).collect()
}

/// Every account's starting balance, as restore blobs: the cluster boots from a snapshot.
fn initial_disks() -> BTreeMap<NodeId, Durable> {
    let parts = participants();
    let mut disks = BTreeMap::new();
    for &p in &parts {
        let kv = (0..ACCOUNTS)
            .filter(|k| twopc::record::shard_of(*k, &parts) == p)
            .map(|k| (k, INITIAL_BALANCE))
            .collect();
        disks.insert(
            p,
            restore_disk(&SnapshotPart {
                kv,
                before: vec![],
                after: vec![],
            }),
        );
    }
    disks
}

fn restore_disk(part: &SnapshotPart) -> Durable {
    let mut d = Durable::default();
    d.blobs
        .insert(twopc::record::RESTORE.into(), twopc::record::encode(part));
    d
}

fn sim_config(plan: Plan) -> SimConfig {
    let mut cfg = SimConfig {
        nodes: NODES,
        record_events: true,
        client: ClientConfig {
            node: Some(1),
            timeout_ms: 3_000,
            think_ms: (0, 30),
            reconnect_ms: (10, 100),
        },
        ..SimConfig::default()
    };
    if let Plan::Chaos = plan {
        // Reordering, long tails and duplicates, but loss only in the plan's recorded
        // bursts: AC4 may blame an abort only on a failure the log shows.
        cfg.net = NetConfig {
            loss: 0.0,
            ..NetConfig::flaky()
        };
        cfg.faults = FaultConfig {
            stop_ms: Some(8_000),
            ..FaultConfig::chaos()
        };
    }
    cfg
}

fn store_config(bugs: Bugs) -> TwoPcConfig {
    TwoPcConfig {
        checkpoint_interval_ms: 400,
        ..TwoPcConfig::with_bugs(bugs)
    }
}

/// Transfers between random accounts and reads of all of them, as Jepsen's bank workload.
struct Bank {
    ops_left: u32,
    open: Option<Value>,
}

impl SimClient<TwoPc> for Bank {
    fn on_idle(&mut self, io: &mut ClientIo<'_, TwoPc>) {
        if self.ops_left == 0 {
            return io.stop();
        }
        self.ops_left -= 1;
        let rng = io.rng();
        if rng.below(5) == 0 {
            let ops = (0..ACCOUNTS).map(|key| Mop::Read { key }).collect();
            self.open = None;
            io.invoke("read", Value::Null, Request::Txn { ops });
            return;
        }
        let from = rng.below(ACCOUNTS);
        let to = (from + 1 + rng.below(ACCOUNTS - 1)) % ACCOUNTS;
        let amount = 1 + rng.below(10) as i64;
        let value = json!({"from": from, "to": to, "amount": amount});
        self.open = Some(value.clone());
        let ops = vec![
            Mop::Add {
                key: from,
                delta: -amount,
            },
            Mop::Add {
                key: to,
                delta: amount,
            },
        ];
        io.invoke("transfer", value, Request::Txn { ops });
    }

    fn on_response(&mut self, io: &mut ClientIo<'_, TwoPc>, resp: Response) {
        match resp {
            Response::Committed { reads, .. } => match self.open.take() {
                Some(v) => io.ok(v),
                None => {
                    let m: Map<String, Value> = reads
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), json!(v)))
                        .collect();
                    io.ok(Value::Object(m))
                }
            },
            Response::Aborted { cause, .. } => io.fail(&format!("{cause:?}")),
            Response::Refused { why } => io.fail(&why),
            other => io.info(&format!("unexpected {other:?}")),
        }
    }
}

/// Asks for a snapshot now and then.
struct Snapshotter {
    left: u32,
}

impl SimClient<TwoPc> for Snapshotter {
    fn on_idle(&mut self, io: &mut ClientIo<'_, TwoPc>) {
        if self.left == 0 {
            return io.stop();
        }
        self.left -= 1;
        io.invoke("snapshot", Value::Null, Request::Snapshot);
    }

    fn on_response(&mut self, io: &mut ClientIo<'_, TwoPc>, resp: Response) {
        match resp {
            Response::SnapshotTaken { snapshot } => io.ok(json!(snapshot)),
            Response::SnapshotFailed { why, .. } | Response::Refused { why } => io.fail(&why),
            other => io.info(&format!("unexpected {other:?}")),
        }
    }
}

/// Asks one participant for its final state once (which it records as `final-state`).
struct StateReader;

impl SimClient<TwoPc> for StateReader {
    fn on_idle(&mut self, io: &mut ClientIo<'_, TwoPc>) {
        if io.open().is_none() {
            io.invoke("state", Value::Null, Request::State);
        }
    }

    fn on_response(&mut self, io: &mut ClientIo<'_, TwoPc>, resp: Response) {
        match resp {
            Response::State { kv, .. } => {
                io.ok(json!(kv));
                io.stop();
            }
            other => io.info(&format!("unexpected {other:?}")),
        }
    }
}

/// Runs transfers, reads and snapshots under `plan`, heals, reads every shard's final
/// state, and judges the run with every checker. `Err` names each anomaly found.
pub fn run(seed: u64, plan: Plan, bugs: Bugs) -> Result<Outcome, String> {
    let (result, events) = run_keep(seed, plan, bugs);
    result.map_err(|e| format!("{e}\n  event log: {}", keep_events(seed, plan, &events)))
}

/// Writes a failed run's event log where a developer can read it; returns the path.
fn keep_events(seed: u64, plan: Plan, events: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("twopc-sim-failures");
    let name = format!("seed-{seed}-{plan:?}.jsonl").replace([' ', '{', '}', ':', ','], "");
    let path = dir.join(name);
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, events)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("not kept ({e})"),
    }
}

/// [`run`], also giving the event log (for debugging a failure).
pub fn run_keep(seed: u64, plan: Plan, bugs: Bugs) -> (Result<Outcome, String>, String) {
    let mut sim = match start(seed, plan, bugs) {
        Ok(s) => s,
        Err(e) => return (Err(e), String::new()),
    };
    let r = drive(&mut sim, plan)
        .and_then(|blocked| judge(&sim, seed).map(|o| Outcome { blocked, ..o }));
    (r, sim.events_jsonl().to_string())
}

fn start(seed: u64, plan: Plan, bugs: Bugs) -> Result<Sim<TwoPc>, String> {
    let mut sim: Sim<TwoPc> =
        Sim::with_disks(seed, sim_config(plan), store_config(bugs), initial_disks())
            .map_err(|e| e.to_string())?;
    let (clients, ops, snapshots) = match plan {
        Plan::CrashAtStep { .. } => (2, 6, 2),
        _ => (4, 25, 4),
    };
    for _ in 0..clients {
        sim.add_client(Bank {
            ops_left: ops,
            open: None,
        });
    }
    let snap_cfg = ClientConfig {
        think_ms: (100, 400),
        ..sim.config().client.clone()
    };
    sim.add_client_with(Snapshotter { left: snapshots }, snap_cfg);
    Ok(sim)
}

fn drive(sim: &mut Sim<TwoPc>, plan: Plan) -> Result<bool, String> {
    let mut blocked = false;
    match plan {
        Plan::CrashAtStep { step, node } => {
            sim.run_until(|s| s.steps() >= step || s.clients_done(), 60_000)
                .map_err(|e| e.to_string())?;
            sim.crash(node);
            sim.run_for(300).map_err(|e| e.to_string())?;
            sim.restart(node);
        }
        Plan::InDoubtBlackout => {
            sim.run_until(|s| first_yes(s.events_jsonl()).is_some(), 10_000)
                .map_err(|e| e.to_string())?;
            let p = first_yes(sim.events_jsonl()).expect("found");
            sim.crash(1);
            sim.crash(p);
            sim.run_for(50).map_err(|e| e.to_string())?;
            sim.restart(p);
            sim.run_for(2_000).map_err(|e| e.to_string())?;
            blocked = sim
                .node(p)
                .and_then(|n| n.participant())
                .is_some_and(|x| x.in_doubt() > 0);
            sim.restart(1);
        }
        Plan::Quiet | Plan::Chaos => {}
    }
    sim.run_until(|s| s.clients_done(), 60_000)
        .map_err(|e| e.to_string())?;
    sim.stop_faults();
    sim.heal_all();
    // Long enough for in-doubt participants to learn their decisions and for acks.
    sim.run_for(3_000).map_err(|e| e.to_string())?;
    for p in participants() {
        let cfg = ClientConfig {
            node: Some(p),
            ..sim.config().client.clone()
        };
        sim.add_client_with(StateReader, cfg);
    }
    sim.run_until(|s| s.clients_done(), 10_000)
        .map_err(|e| e.to_string())?;
    Ok(blocked)
}

/// The first participant that forced a `yes`.
fn first_yes(events: &str) -> Option<NodeId> {
    lines(events)
        .find(|v| v["event"] == "log" && v["record"] == "yes")
        .and_then(|v| v["node"].as_str()?.strip_prefix('n')?.parse().ok())
}

fn verdict_problems(v: &Verdict, problems: &mut Vec<String>) {
    if v.valid == Validity::Valid {
        return;
    }
    let first = v
        .anomalies
        .values()
        .flatten()
        .next()
        .cloned()
        .or_else(|| v.cause.clone())
        .unwrap_or_default();
    problems.push(format!(
        "{} says {:?}: {:?}; e.g. {first}",
        v.checker, v.valid, v.anomaly_types
    ));
}

fn judge(sim: &Sim<TwoPc>, seed: u64) -> Result<Outcome, String> {
    let mut problems = Vec::new();
    let history = sim.history().map_err(|e| e.to_string())?;
    let bank = checkers::bank::check(
        &history,
        &checkers::bank::Options {
            total: Some(TOTAL),
            negative_balances_allowed: false,
            accounts: None,
        },
    )
    .map_err(|e| e.to_string())?;
    verdict_problems(&bank, &mut problems);
    let events = sim.events().map_err(|e| e.to_string())?;
    verdict_problems(
        &checkers::atomic_commit::check(&events).map_err(|e| e.to_string())?,
        &mut problems,
    );
    verdict_problems(
        &checkers::recovery_line::check(&events).map_err(|e| e.to_string())?,
        &mut problems,
    );
    verdict_problems(
        &checkers::consistent_cut::check(&events, None).map_err(|e| e.to_string())?,
        &mut problems,
    );
    let mut final_total = 0;
    for p in participants() {
        let node = sim.node(p).ok_or(format!("n{p} is down after healing"))?;
        let part = node.participant().expect("a participant");
        if part.in_doubt() > 0 {
            problems.push(format!(
                "n{p} is still in doubt about {} transactions",
                part.in_doubt()
            ));
        }
        final_total += part.kv().values().sum::<i64>();
    }
    if final_total != TOTAL {
        problems.push(format!("the shards hold {final_total} in all, not {TOTAL}"));
    }
    let snapshots: Vec<u64> = history
        .ops
        .iter()
        .filter(|op| op.f == "snapshot" && op.op_type == OpType::Ok)
        .filter_map(|op| op.value.as_u64())
        .collect();
    for &s in &snapshots {
        if let Err(e) = restore_and_check(sim, seed, s) {
            problems.push(e);
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let committed = history
        .ops
        .iter()
        .filter(|op| op.f == "transfer" && op.op_type == OpType::Ok)
        .count();
    Ok(Outcome {
        committed,
        snapshots: snapshots.len(),
        checkpoints: count_events(sim.events_jsonl(), "checkpoint"),
        recovered_in_doubt: recovered_in_doubt(sim.events_jsonl()),
        steps: sim.steps(),
        blocked: false,
    })
}

/// Boots a new cluster from snapshot `s`'s parts and reads every account from it.
fn restore_and_check(sim: &Sim<TwoPc>, seed: u64, s: u64) -> Result<(), String> {
    let mut disks = BTreeMap::new();
    let mut expected: BTreeMap<Key, i64> = BTreeMap::new();
    for p in participants() {
        let node = sim.node(p).ok_or(format!("n{p} is down"))?;
        let part = node
            .participant()
            .and_then(|x| x.part(s))
            .ok_or(format!("snapshot {s} finished, but n{p} has no part of it"))?;
        expected.extend(part.kv.iter().copied());
        disks.insert(p, restore_disk(part));
    }
    let sum: i64 = expected.values().sum();
    if sum != TOTAL {
        return Err(format!(
            "snapshot {s} holds {sum} in all, not {TOTAL}: {expected:?}"
        ));
    }
    let mut restored: Sim<TwoPc> =
        Sim::with_disks(seed, sim_config(Plan::Quiet), TwoPcConfig::default(), disks)
            .map_err(|e| e.to_string())?;
    restored.add_client(Bank {
        ops_left: 0,
        open: None,
    });
    struct ReadAll(bool);
    impl SimClient<TwoPc> for ReadAll {
        fn on_idle(&mut self, io: &mut ClientIo<'_, TwoPc>) {
            if self.0 {
                return io.stop();
            }
            self.0 = true;
            let ops = (0..ACCOUNTS).map(|key| Mop::Read { key }).collect();
            io.invoke("read", Value::Null, Request::Txn { ops });
        }
        fn on_response(&mut self, io: &mut ClientIo<'_, TwoPc>, resp: Response) {
            match resp {
                Response::Committed { reads, .. } => io.ok(json!(reads)),
                other => io.fail(&format!("{other:?}")),
            }
        }
    }
    restored.add_client(ReadAll(false));
    restored
        .run_until(|s| s.clients_done(), 10_000)
        .map_err(|e| e.to_string())?;
    let read = restored
        .history_ops()
        .iter()
        .find(|op| op.f == "read" && op.op_type == OpType::Ok)
        .ok_or(format!(
            "the cluster restored from snapshot {s} did not answer a read"
        ))?;
    let got: Vec<(Key, Option<i64>)> =
        serde_json::from_value(read.value.clone()).map_err(|e| e.to_string())?;
    let want: Vec<(Key, Option<i64>)> = (0..ACCOUNTS)
        .map(|k| (k, expected.get(&k).copied()))
        .collect();
    if got != want {
        return Err(format!(
            "the cluster restored from snapshot {s} reads {got:?}, its parts hold {want:?}"
        ));
    }
    Ok(())
}

fn lines(text: &str) -> impl Iterator<Item = Value> + '_ {
    text.lines().filter_map(|l| serde_json::from_str(l).ok())
}

fn count_events(text: &str, event: &str) -> usize {
    lines(text).filter(|v| v["event"] == event).count()
}

/// Crashes of participants that had logged `yes` for a transaction they had not decided.
fn recovered_in_doubt(text: &str) -> usize {
    let mut open: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut count = 0;
    for v in lines(text) {
        let node = v["node"].as_str().unwrap_or_default().to_string();
        match v["event"].as_str().unwrap_or_default() {
            "log" if v["record"] == "yes" => {
                open.entry(node)
                    .or_default()
                    .insert(v["txn"].as_u64().unwrap_or(0));
            }
            "decide" => {
                if let Some(s) = open.get_mut(&node) {
                    s.remove(&v["txn"].as_u64().unwrap_or(0));
                }
            }
            "crash" if open.get(&node).is_some_and(|s| !s.is_empty()) => count += 1,
            _ => {}
        }
    }
    count
}

/// Events in a short crash-free run: how far the crash sweep must reach.
pub fn crash_sweep_steps() -> u64 {
    // A crash at a step past the end of the workload still exercises recovery of a quiet
    // node; the sweep covers the workload itself.
    run(
        1,
        Plan::CrashAtStep {
            step: u64::MAX,
            node: 1,
        },
        Bugs::default(),
    )
    .map(|o| o.steps.min(3_000))
    .unwrap_or_else(|e| panic!("the baseline run fails: {e}"))
}

/// Runs the bug's plan over seeds until a run reports `anomaly`; panics if none does.
pub fn bug_is_caught(bug: &str, anomaly: &str) {
    let bugs = Bugs::parse([bug]).expect("a known bug");
    let mut seen = Vec::new();
    for seed in 0..20 {
        for plan in [Plan::Chaos, Plan::Quiet, Plan::InDoubtBlackout] {
            match run(seed, plan, bugs.clone()) {
                Err(e) if e.contains(anomaly) => return,
                Err(e) => seen.push(format!("seed {seed} {plan:?}: {e}")),
                Ok(_) => {}
            }
        }
    }
    panic!(
        "bug {bug} was never caught as {anomaly} in 20 seeds; other failures: {}",
        seen.join("\n")
    );
}
