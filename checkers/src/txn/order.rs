//! Process and realtime order between transactions.
//!
//! Realtime order is kept as a transitive reduction rather than all pairs: when a transaction
//! is invoked it gets an edge from each transaction in the current frontier (completed, and not
//! already implied through a later completion). With c concurrent clients the frontier holds
//! about c transactions, so a history of n transactions gets about c·n realtime edges, not n².

use super::graph::{Builder, PROCESS, REALTIME};
use super::transaction::{Status, Transactions};
use rustc_hash::FxHashMap;

/// Consecutive transactions of each process (a process runs one at a time).
pub fn add_process_edges(tx: &Transactions, edges: &mut Builder) {
    let mut last: FxHashMap<u32, u32> = FxHashMap::default();
    for (t, txn) in tx.txns.iter().enumerate() {
        if !txn.committed_or_unknown() {
            continue;
        }
        if let Some(prev) = last.insert(txn.process, t as u32) {
            edges.add(prev, t as u32, PROCESS);
        }
    }
}

/// (history index, transaction, is-invocation) for the invocations of transactions that may
/// have committed and the completions of `ok` ones, in history order. An `info` transaction
/// has no completion here: it may take effect at any later time.
pub fn timeline(tx: &Transactions) -> Vec<(u32, u32, bool)> {
    let mut events: Vec<(u32, u32, bool)> = Vec::with_capacity(tx.txns.len() * 2);
    for (t, txn) in tx.txns.iter().enumerate() {
        if !txn.committed_or_unknown() {
            continue;
        }
        events.push((txn.invoke, t as u32, true));
        if let (Status::Ok, Some(c)) = (txn.status, txn.complete) {
            events.push((c, t as u32, false));
        }
    }
    events.sort_unstable();
    events
}

/// `a -> b` whenever `a` completed `ok` before `b` was invoked, transitively reduced.
pub fn add_realtime_edges(tx: &Transactions, edges: &mut Builder) {
    let events = timeline(tx);
    // Completed transactions not implied by another frontier member: (txn, completion index).
    let mut frontier: Vec<(u32, u32)> = Vec::new();
    for (at, t, is_invoke) in events {
        if is_invoke {
            for &(f, _) in &frontier {
                edges.add(f, t, REALTIME);
            }
        } else {
            let invoked = tx.txns[t as usize].invoke;
            frontier.retain(|&(_, done)| done > invoked);
            frontier.push((t, at));
        }
    }
}
