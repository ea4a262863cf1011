//! The verdicts on a two-phase-commit run: Jepsen's bank checker on the history, the
//! workload's own checks, and the event-log checkers (atomic commit, consistent cut with the
//! bank's invariant on every restored snapshot, recovery line) on the merged event log.
//!
//! The workload's own checker (`twopc-<workload>`) judges what the bank checker cannot:
//! - the shards' final states (each participant's `State` after healing) hold every account
//!   once, none negative, summing to the setup's total, and agree with the final read;
//! - `snapshot`: every taken snapshot the final fetch covers has a part on every participant
//!   (unless the participant has since kept [`MAX_PARTS_KEPT`] newer ones, its limit), and
//!   its parts together satisfy the same invariant.
//!
//! A run that tested nothing (no setup committed, no final state, no snapshot) is unknown.
//!
//! The consistent-cut invariant: a restored snapshot's balances (its fetched parts, when
//! known) sum to the total, none negative. When no setup or transfer ended in doubt, every
//! committed transaction that changed a balance is known by id, so the balances the
//! transactions before the cut produce are computed and must equal the parts exactly.

use super::facts::{self, Balances, Facts};
use super::workload::Kind;
use checkers::atomic_commit::{EventKind, Events};
use checkers::consistent_cut::Restored;
use checkers::history::History;
use checkers::one_copy::TxnId;
use checkers::verdict::{BadHistory, Verdict};
use checkers::{atomic_commit, bank, consistent_cut, recovery_line};
use std::collections::{BTreeMap, BTreeSet};
use twopc::participant::MAX_PARTS_KEPT;

/// The name of the workload's own checker in verdicts.
pub fn checker_name(kind: Kind) -> String {
    format!("twopc-{}", kind.name())
}

/// Whose participants a run had, which decides the event checkers that apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Participants {
    /// The store's own: every event checker applies.
    Store,
    /// PostgreSQL servers (`twopc-postgres`): atomic commit applies unchanged; they take no
    /// consistent cuts and no checkpoints of the store's kind, so consistent-cut and
    /// recovery-line have nothing to judge.
    Postgres,
}

/// Every verdict on a run, in this order: bank, the workload's own, atomic-commit,
/// consistent-cut, recovery-line (the last two for the store's own participants only).
/// `events` is the merged event log, or why there is none (the event checkers are then
/// unknown).
pub fn judge(
    kind: Kind,
    history: &History,
    events: Result<&Events, String>,
    participants: Participants,
) -> Result<Vec<Verdict>, BadHistory> {
    let event_checkers: &[&str] = match participants {
        Participants::Store => &[
            atomic_commit::CHECKER,
            consistent_cut::CHECKER,
            recovery_line::CHECKER,
        ],
        Participants::Postgres => &[atomic_commit::CHECKER],
    };
    let facts = facts::read(history)?;
    let bank = match facts.setup {
        Some(_) => bank::check(history, &bank_options(&facts))?,
        // Reads before any setup see no accounts: nothing the bank checker should judge.
        None => {
            let mut v = Verdict::new(bank::NAME);
            v.give_up("the setup transaction never committed: the accounts were never opened");
            v
        }
    };
    let mut own = own_verdict(kind, &facts);
    let mut out = vec![bank];
    match events {
        Ok(ev) => {
            let (crashes, during) = crashes_during_commit(ev);
            own.detail("crashes", crashes);
            own.detail("crashes_during_commit", during);
            let (in_doubt, resolved) = in_doubt_at_coordinator_crash(ev);
            own.detail("in_doubt_at_coordinator_crash", in_doubt);
            own.detail("in_doubt_resolved_after_coordinator_crash", resolved);
            out.push(own);
            let invariant = restored_invariant(&facts);
            out.push(checked(atomic_commit::CHECKER, atomic_commit::check(ev)));
            if participants == Participants::Store {
                out.push(checked(
                    consistent_cut::CHECKER,
                    consistent_cut::check(ev, Some(&invariant)),
                ));
                out.push(checked(recovery_line::CHECKER, recovery_line::check(ev)));
            }
        }
        Err(why) => {
            out.push(own);
            for &name in event_checkers {
                let mut v = Verdict::new(name);
                v.give_up(format!("no event log to check: {why}"));
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// A checker's verdict, or unknown naming the line it could not read.
fn checked(name: &str, result: Result<Verdict, BadHistory>) -> Verdict {
    result.unwrap_or_else(|bad| {
        let mut v = Verdict::new(name);
        v.give_up(format!("the event log is unreadable: {bad}"));
        v
    })
}

fn bank_options(facts: &Facts) -> bank::Options {
    bank::Options {
        total: facts.total(),
        negative_balances_allowed: false,
        accounts: facts
            .setup
            .as_ref()
            .map(|(_, b)| b.keys().map(u64::to_string).collect()),
    }
}

/// What is wrong with `balances` as the bank's state: every account of the setup once,
/// none negative, summing to the total.
fn bank_problems(balances: &Balances, setup: &Balances) -> Vec<String> {
    let mut problems = Vec::new();
    let missing: Vec<&u64> = setup.keys().filter(|k| !balances.contains_key(k)).collect();
    if !missing.is_empty() {
        problems.push(format!("accounts {missing:?} have no balance"));
    }
    let extra: Vec<&u64> = balances.keys().filter(|k| !setup.contains_key(k)).collect();
    if !extra.is_empty() {
        problems.push(format!("accounts {extra:?} were never set up"));
    }
    let negative: Vec<(&u64, &i64)> = balances.iter().filter(|(_, b)| **b < 0).collect();
    if !negative.is_empty() {
        problems.push(format!("negative balances {negative:?}"));
    }
    let (sum, total) = (
        balances.values().map(|&b| i128::from(b)).sum::<i128>(),
        setup.values().map(|&b| i128::from(b)).sum::<i128>(),
    );
    if sum != total {
        problems.push(format!("balances sum to {sum}, not {total}"));
    }
    problems
}

/// Merges shards' key-value lists; a key on two shards is reported.
fn merge<'a>(
    shards: impl IntoIterator<Item = (&'a str, Vec<(u64, i64)>)>,
    problems: &mut Vec<String>,
) -> Balances {
    let mut out = Balances::new();
    let mut owner: BTreeMap<u64, &str> = BTreeMap::new();
    for (node, kv) in shards {
        for (k, v) in kv {
            if let Some(other) = owner.insert(k, node) {
                problems.push(format!("account {k} is on both {other} and {node}"));
            }
            out.insert(k, v);
        }
    }
    out
}

fn own_verdict(kind: Kind, facts: &Facts) -> Verdict {
    let mut v = Verdict::new(&checker_name(kind));
    for (name, c) in [
        ("setups", facts.setups),
        ("transfers", facts.transfers),
        ("reads", facts.reads),
        ("snapshots", facts.snapshots),
    ] {
        v.detail(&format!("{name}_ok"), c.ok);
        v.detail(&format!("{name}_fail"), c.fail);
        v.detail(&format!("{name}_info"), c.info);
    }
    v.detail("indefinite_writes", facts.indefinite_writes);
    let Some((_, setup)) = &facts.setup else {
        v.give_up("the setup transaction never committed: nothing was tested");
        return v;
    };
    v.detail("total", setup.values().sum::<i64>());
    match &facts.final_state {
        None => v.give_up("no final state was read from the participants"),
        Some(states) => {
            let mut problems = Vec::new();
            let merged = merge(
                states
                    .iter()
                    .map(|(n, s)| (n.as_str(), s.kv.iter().map(|(k, v)| (*k, *v)).collect())),
                &mut problems,
            );
            problems.extend(bank_problems(&merged, setup));
            for p in problems {
                v.anomaly(
                    "final-state-wrong",
                    format!("the shards' final states: {p}"),
                );
            }
            if let Some(read) = &facts.last_read {
                let as_read: BTreeMap<u64, Option<i64>> =
                    merged.iter().map(|(k, b)| (*k, Some(*b))).collect();
                if *read != as_read {
                    v.anomaly(
                        "final-read-disagrees",
                        format!("the final read saw {read:?}, but the shards hold {merged:?}"),
                    );
                }
            }
            v.detail(
                "final_applied",
                states.values().map(|s| s.applied).sum::<u64>(),
            );
        }
    }
    if kind == Kind::Snapshot {
        snapshot_checks(facts, setup, &mut v);
    }
    v
}

/// Every taken snapshot the final fetch covers: all parts there, and a bank state.
fn snapshot_checks(facts: &Facts, setup: &Balances, v: &mut Verdict) {
    v.detail("snapshots_taken", facts.snapshots_taken.len());
    if facts.snapshots_taken.is_empty() {
        return v.give_up("no snapshot was taken");
    }
    let Some(parts) = &facts.parts else {
        return v.give_up("the snapshots' parts were never fetched");
    };
    let fetched = parts.fetched();
    let nodes = parts.nodes();
    let taken: BTreeSet<u64> = facts.snapshots_taken.union(&parts.taken).copied().collect();
    let (mut checked, mut expired, mut excused) = (0usize, 0usize, 0usize);
    for &s in &taken {
        if !fetched.contains(&s) {
            expired += 1;
            continue;
        }
        let mut complete = true;
        for &n in &nodes {
            if matches!(parts.parts.get(&(s, n.to_string())), Some(Some(_))) {
                continue;
            }
            complete = false;
            let newer = parts.newer_held(n, s);
            if newer >= MAX_PARTS_KEPT {
                excused += 1;
            } else {
                v.anomaly(
                    "snapshot-part-missing",
                    format!(
                        "snapshot {s} was taken, but {n} has no part of it (it holds {newer} newer parts and keeps {MAX_PARTS_KEPT})"
                    ),
                );
            }
        }
        let Some(complete_parts) = parts.complete(s).filter(|_| complete) else {
            continue;
        };
        let mut problems = Vec::new();
        let merged = merge(
            complete_parts.iter().map(|(n, p)| (*n, p.kv.clone())),
            &mut problems,
        );
        problems.extend(bank_problems(&merged, setup));
        for p in problems {
            v.anomaly("snapshot-wrong", format!("snapshot {s}'s parts: {p}"));
        }
        checked += 1;
    }
    v.detail("snapshots_checked", checked);
    v.detail("snapshots_expired", expired);
    v.detail("parts_excused", excused);
    if checked == 0 {
        v.give_up("no taken snapshot could be checked: none had all its parts fetched");
    }
}

/// The consistent-cut checker's invariant over restored snapshots (module docs).
fn restored_invariant(facts: &Facts) -> impl Fn(&Restored) -> Result<(), String> + '_ {
    move |r: &Restored| {
        let Some((setup_txn, setup)) = &facts.setup else {
            return Ok(()); // Nothing to hold it to.
        };
        let snapshot = match r.snapshot {
            TxnId::Int(i) => u64::try_from(*i).ok(),
            TxnId::Str(_) => None,
        };
        let mut problems = Vec::new();
        let from_parts = snapshot
            .and_then(|s| facts.parts.as_ref()?.complete(s))
            .map(|ps| merge(ps.iter().map(|(n, p)| (*n, p.kv.clone())), &mut problems));
        if let Some(b) = &from_parts {
            problems.extend(
                bank_problems(b, setup)
                    .into_iter()
                    .map(|p| format!("its parts: {p}")),
            );
        }
        if facts.indefinite_writes == 0 {
            let computed = replay(*setup_txn, setup, facts, &r.txns);
            match &from_parts {
                Some(b) if *b != computed => problems.push(format!(
                    "its parts hold {b:?}, but the transactions before the cut make {computed:?}"
                )),
                Some(_) => {}
                None => problems.extend(
                    bank_problems(&computed, setup)
                        .into_iter()
                        .map(|p| format!("the transactions before the cut: {p}")),
                ),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// The balances the known transactions among `txns` produce, in id order (ids grow with
/// the coordinator's log): the setup writes, transfers add. Others changed nothing.
fn replay(setup_txn: u64, setup: &Balances, facts: &Facts, txns: &[&TxnId]) -> Balances {
    let mut ids: Vec<u64> = txns
        .iter()
        .filter_map(|t| match t {
            TxnId::Int(i) => u64::try_from(*i).ok(),
            TxnId::Str(_) => None,
        })
        .collect();
    ids.sort_unstable();
    let mut b = Balances::new();
    for id in ids {
        if id == setup_txn {
            b.extend(setup.iter().map(|(k, v)| (*k, *v)));
        } else if let Some(t) = facts.committed.get(&id) {
            *b.entry(t.from).or_insert(0) -= t.amount;
            *b.entry(t.to).or_insert(0) += t.amount;
        }
    }
    b
}

/// Crashes in the event log, and how many hit a node with a commit in flight: a
/// transaction it coordinated or voted yes on that it had not yet decided.
pub fn crashes_during_commit(ev: &Events) -> (usize, usize) {
    let mut open: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    let (mut crashes, mut during) = (0, 0);
    for e in &ev.events {
        let Some(node) = e.node else { continue };
        match &e.kind {
            EventKind::Participants { txn, .. } => {
                open.entry(node).or_default().insert(*txn);
            }
            EventKind::Log {
                txn,
                record: atomic_commit::LogRecord::Yes,
            } => {
                open.entry(node).or_default().insert(*txn);
            }
            EventKind::Decide { txn, .. } => {
                if let Some(s) = open.get_mut(&node) {
                    s.remove(txn);
                }
            }
            EventKind::Crash => {
                crashes += 1;
                if open.remove(&node).is_some_and(|s| !s.is_empty()) {
                    during += 1;
                }
            }
            _ => {}
        }
    }
    (crashes, during)
}

/// Participants' transactions in doubt when their coordinator crashed (a participant had
/// forced `yes` and not yet decided), and how many of those the participant decided later:
/// what a coordinator crash leaves to the termination protocol, and what it settled.
pub fn in_doubt_at_coordinator_crash(ev: &Events) -> (usize, usize) {
    let mut coordinator: BTreeMap<u32, u32> = BTreeMap::new();
    // By coordinator: the (participant, txn) pairs prepared and undecided.
    let mut waiting: BTreeMap<u32, BTreeSet<(u32, u32)>> = BTreeMap::new();
    let mut stranded: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut resolved = 0;
    let mut total = 0;
    for e in &ev.events {
        let Some(node) = e.node else { continue };
        match &e.kind {
            EventKind::Participants { txn, .. } => {
                coordinator.insert(*txn, node);
            }
            EventKind::Log {
                txn,
                record: atomic_commit::LogRecord::Yes,
            } => {
                if let Some(c) = coordinator.get(txn).filter(|c| **c != node) {
                    waiting.entry(*c).or_default().insert((node, *txn));
                }
            }
            EventKind::Decide { txn, .. } => {
                if let Some(c) = coordinator.get(txn) {
                    if let Some(w) = waiting.get_mut(c) {
                        w.remove(&(node, *txn));
                    }
                }
                if stranded.remove(&(node, *txn)) {
                    resolved += 1;
                }
            }
            EventKind::Crash => {
                if let Some(w) = waiting.remove(&node) {
                    total += w.len();
                    stranded.extend(w);
                }
            }
            _ => {}
        }
    }
    (total, resolved)
}

#[cfg(test)]
mod tests;
