//! List-append: every key holds a list, transactions append unique values and read whole lists.
//!
//! Lists make version orders traceable: a read of `[1 2 3]` proves that 1, 2 and 3 were
//! appended in that order, so every read of a key must be a prefix of the longest one, which
//! is the key's version order. From it come the dependencies: ww between consecutive appends,
//! wr from the appender of a read's last element to the reader, rw from a reader to the
//! appender of the element right after what it saw.

use super::graph::{Builder, RW, WR, WW};
use super::transaction::{Mop, ReadValue, Status, Transactions, WriterIndex};
use crate::history::History;
use crate::verdict::{BadHistory, Verdict};
use rustc_hash::{FxHashMap, FxHashSet};

/// Who appended what, and each key's version order.
pub struct ListAppend {
    /// (key, value) -> (transaction, micro-op index).
    appender: WriterIndex,
    /// Per key, the read that defines its version order: (transaction, micro-op index).
    longest: FxHashMap<u32, (u32, u32)>,
    /// Keys whose reads are not all prefixes of one order; no ww or rw edges come from them.
    incompatible: FxHashSet<u32>,
    /// (key, value) -> position in its key's version order, for compatible keys.
    position: FxHashMap<(u32, u32), u32>,
    /// Per compatible key: ok transactions with an append no read ever saw. Such an append
    /// must come after the whole known order, so it follows every element of the longest read.
    unobserved: FxHashMap<u32, Vec<(u32, u32)>>,
}

/// One read of a transaction with what the transaction itself had done to the key before it.
struct ReadCtx<'a> {
    txn: u32,
    mop: u32,
    key: u32,
    list: &'a [u32],
    /// No earlier micro-op of this transaction touched the key.
    external: bool,
}

impl ListAppend {
    /// Finds the non-cycle anomalies, records them in `verdict`, and adds the data edges.
    pub fn analyse(
        history: &History,
        tx: &Transactions,
        verdict: &mut Verdict,
        edges: &mut Builder,
    ) -> Result<ListAppend, BadHistory> {
        let mut la = ListAppend {
            appender: index_appends(history, tx)?,
            longest: FxHashMap::default(),
            incompatible: FxHashSet::default(),
            position: FxHashMap::default(),
            unobserved: FxHashMap::default(),
        };
        let mut reads_by_key: FxHashMap<u32, Vec<(u32, u32)>> = FxHashMap::default();
        for (t, txn) in tx.txns.iter().enumerate() {
            if txn.status != Status::Ok {
                continue;
            }
            for r in reads_of(t as u32, &txn.mops) {
                reads_by_key.entry(r.key).or_default().push((r.txn, r.mop));
                let best = la.longest.entry(r.key).or_insert((r.txn, r.mop));
                if r.list.len() > list_at(tx, *best).len() {
                    *best = (r.txn, r.mop);
                }
            }
        }
        la.check_orders(tx, &reads_by_key, verdict);
        la.index_positions(tx);
        let suspicious = la.suspicious_positions(tx);
        for (t, txn) in tx.txns.iter().enumerate() {
            if txn.status != Status::Ok {
                continue;
            }
            for r in reads_of(t as u32, &txn.mops) {
                // A read that is a prefix of its key's order holds a bad element only if the
                // order does within the read's length: most reads need no per-element look.
                let scan = la.incompatible.contains(&r.key)
                    || suspicious
                        .get(&r.key)
                        .is_some_and(|&p| (p as usize) < r.list.len());
                la.check_read(tx, &r, scan, verdict);
            }
        }
        la.index_unobserved(tx);
        la.dirty_updates(tx, verdict);
        la.lost_updates(tx, verdict);
        la.add_edges(tx, edges);
        Ok(la)
    }

    /// Per compatible key, the first position of its version order that holds a duplicate, a
    /// value nobody appended, or a failed transaction's append.
    fn suspicious_positions(&self, tx: &Transactions) -> FxHashMap<u32, u32> {
        let mut out = FxHashMap::default();
        for (&key, &best) in &self.longest {
            if self.incompatible.contains(&key) {
                continue;
            }
            let order = list_at(tx, best);
            let mut seen = FxHashSet::default();
            let bad = order.iter().position(|&v| {
                let fresh = seen.insert(v);
                let live = self
                    .appender
                    .get(&(key, v))
                    .is_some_and(|&(w, _)| tx.txns[w as usize].status != Status::Fail);
                !fresh || !live
            });
            if let Some(p) = bad {
                out.insert(key, p as u32);
            }
        }
        out
    }

    /// Anomalies visible in one read on its own; `scan` says whether its elements need a look
    /// each. Explanations are only built for anomalies found: this runs once per read of a
    /// possibly million-transaction history.
    fn check_read(&self, tx: &Transactions, r: &ReadCtx, scan: bool, verdict: &mut Verdict) {
        self.check_future(tx, r, verdict);
        self.check_internal(tx, r, verdict);
        self.check_intermediate(tx, r, verdict);
        if !scan {
            return;
        }
        let said = |v: u32| {
            format!(
                "{} read key {} = {}, which holds {}",
                tx.name(r.txn),
                tx.keys.show(r.key),
                tx.show_list(r.list),
                tx.values.show(v)
            )
        };
        if let Some(v) = first_duplicate(r.list) {
            verdict.anomaly("duplicate-elements", format!("{} more than once", said(v)));
        }
        for &v in r.list {
            match self.appender.get(&(r.key, v)) {
                None => verdict.anomaly(
                    "garbage-read",
                    format!(
                        "{}, but no transaction ever appended that to key {}",
                        said(v),
                        tx.keys.show(r.key)
                    ),
                ),
                Some(&(w, _)) if tx.txns[w as usize].status == Status::Fail => verdict.anomaly(
                    "G1a",
                    format!(
                        "{}, appended by {} which failed (aborted)",
                        said(v),
                        tx.name(w)
                    ),
                ),
                _ => {}
            }
        }
    }

    /// future-read: the read holds a value its own transaction appends only later.
    fn check_future(&self, tx: &Transactions, r: &ReadCtx, verdict: &mut Verdict) {
        let later = &tx.txns[r.txn as usize].mops[r.mop as usize + 1..];
        for m in later {
            match m {
                Mop::Write { key, val } if *key == r.key && r.list.contains(val) => {
                    verdict.anomaly(
                        "future-read",
                        format!(
                            "{} read key {} = {}, which holds {}, a value it appends itself only later",
                            tx.name(r.txn),
                            tx.keys.show(r.key),
                            tx.show_list(r.list),
                            tx.values.show(*val)
                        ),
                    );
                }
                _ => {}
            }
        }
    }

    /// A read must agree with what the transaction itself did to the key before it.
    fn check_internal(&self, tx: &Transactions, r: &ReadCtx, verdict: &mut Verdict) {
        if r.external {
            return;
        }
        let mops = &tx.txns[r.txn as usize].mops[..r.mop as usize];
        let mut prior: Option<&[u32]> = None;
        let mut appended: Vec<u32> = Vec::new();
        for m in mops.iter().filter(|m| m.key() == r.key) {
            match m {
                Mop::Read {
                    value: ReadValue::List(l),
                    ..
                } => {
                    prior = Some(l);
                    appended.clear();
                }
                Mop::Write { val, .. } => appended.push(*val),
                Mop::Read { .. } => {}
            }
        }
        let ok = match prior {
            Some(p) => {
                r.list.len() == p.len() + appended.len()
                    && r.list.starts_with(p)
                    && r.list.ends_with(&appended)
            }
            None => r.list.ends_with(&appended),
        };
        if !ok {
            let expected = match prior {
                Some(p) => format!(
                    "{} followed by its own appends {}",
                    tx.show_list(p),
                    tx.show_list(&appended)
                ),
                None => format!(
                    "a list ending with its own appends {}",
                    tx.show_list(&appended)
                ),
            };
            verdict.anomaly(
                "internal",
                format!("{} read key {} = {}, but after its own earlier micro-ops it should have read {expected}", tx.name(r.txn), tx.keys.show(r.key), tx.show_list(r.list)),
            );
        }
    }

    /// G1b: the read's last element is an append its writer later followed with another one.
    fn check_intermediate(&self, tx: &Transactions, r: &ReadCtx, verdict: &mut Verdict) {
        let Some(&last) = r.list.last() else { return };
        let Some(&(w, m)) = self.appender.get(&(r.key, last)) else {
            return;
        };
        if w == r.txn || !r.external {
            return;
        }
        let writer = &tx.txns[w as usize];
        let later = writer.mops[m as usize + 1..].iter().find_map(|x| match x {
            Mop::Write { key, val } if *key == r.key => Some(*val),
            _ => None,
        });
        if let Some(next) = later {
            verdict.anomaly(
                "G1b",
                format!("{} read key {} = {}, ending in {}, an intermediate state of {}, which appended {} after it in the same transaction", tx.name(r.txn), tx.keys.show(r.key), tx.show_list(r.list), tx.values.show(last), tx.name(w), tx.values.show(next)),
            );
        }
    }

    /// Every read of a key must be a prefix of its longest read.
    fn check_orders(
        &mut self,
        tx: &Transactions,
        reads: &FxHashMap<u32, Vec<(u32, u32)>>,
        verdict: &mut Verdict,
    ) {
        let mut keys: Vec<u32> = reads.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let best = self.longest[&key];
            let order = list_at(tx, best);
            for &r in &reads[&key] {
                let l = list_at(tx, r);
                if !order.starts_with(l) {
                    self.incompatible.insert(key);
                    verdict.anomaly(
                        "incompatible-order",
                        format!("{} read key {} = {} and {} read {}: neither is a prefix of the other, so they cannot both be states of one list", tx.name(best.0), tx.keys.show(key), tx.show_list(order), tx.name(r.0), tx.show_list(l)),
                    );
                    break;
                }
            }
        }
    }

    fn index_positions(&mut self, tx: &Transactions) {
        for (&key, &best) in &self.longest {
            if self.incompatible.contains(&key) {
                continue;
            }
            for (i, &v) in list_at(tx, best).iter().enumerate() {
                self.position.entry((key, v)).or_insert(i as u32);
            }
        }
    }

    fn index_unobserved(&mut self, tx: &Transactions) {
        for (t, txn) in tx.txns.iter().enumerate() {
            if txn.status != Status::Ok {
                continue;
            }
            for m in txn.mops.iter() {
                let Mop::Write { key, val } = m else { continue };
                let known = self.longest.contains_key(key) && !self.incompatible.contains(key);
                if known && !self.position.contains_key(&(*key, *val)) {
                    let list = self.unobserved.entry(*key).or_default();
                    if list.last().map(|l| l.0) != Some(t as u32) {
                        list.push((t as u32, *val));
                    }
                }
            }
        }
    }

    /// A failed transaction's append followed, in the version order, by a committed one.
    fn dirty_updates(&self, tx: &Transactions, verdict: &mut Verdict) {
        let mut keys: Vec<u32> = self
            .longest
            .keys()
            .copied()
            .filter(|k| !self.incompatible.contains(k))
            .collect();
        keys.sort_unstable();
        for key in keys {
            let best = self.longest[&key];
            let order = list_at(tx, best);
            let mut aborted: Option<(u32, u32)> = None;
            for &v in order {
                let Some(&(w, _)) = self.appender.get(&(key, v)) else {
                    continue;
                };
                match (tx.txns[w as usize].status, aborted) {
                    (Status::Fail, None) => aborted = Some((w, v)),
                    (Status::Ok | Status::Info, Some((fw, fv))) => {
                        verdict.anomaly(
                            "dirty-update",
                            format!("{} read key {} = {}: {} appended by {}, which failed, is followed by {} appended by {}, which did not", tx.name(best.0), tx.keys.show(key), tx.show_list(order), tx.values.show(fv), tx.name(fw), tx.values.show(v), tx.name(w)),
                        );
                        break;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Two committed transactions that read the same version of a key and both appended to it.
    fn lost_updates(&self, tx: &Transactions, verdict: &mut Verdict) {
        let mut groups: FxHashMap<(u32, u32), Vec<u32>> = FxHashMap::default();
        for (t, txn) in tx.txns.iter().enumerate() {
            if txn.status != Status::Ok {
                continue;
            }
            for r in reads_of(t as u32, &txn.mops).filter(|r| r.external) {
                if txn.mops[r.mop as usize..]
                    .iter()
                    .any(|m| matches!(m, Mop::Write { key, .. } if *key == r.key))
                {
                    groups
                        .entry((r.key, r.list.len() as u32))
                        .or_default()
                        .push(t as u32);
                }
            }
        }
        let mut found: Vec<((u32, u32), Vec<u32>)> =
            groups.into_iter().filter(|(_, ts)| ts.len() > 1).collect();
        found.sort_unstable();
        for ((key, len), ts) in found {
            let names: Vec<String> = ts.iter().map(|t| tx.name(*t)).collect();
            let seen = self
                .read_list(tx, ts[0], key)
                .map_or("?".into(), |l| tx.show_list(l));
            verdict.anomaly(
                "lost-update",
                format!("{} all read key {} = {seen} (length {len}) and then appended to it: each append was made as if the others had not happened", names.join(", "), tx.keys.show(key)),
            );
        }
    }

    fn read_list<'a>(&self, tx: &'a Transactions, t: u32, key: u32) -> Option<&'a [u32]> {
        reads_of(t, &tx.txns[t as usize].mops)
            .find(|r| r.key == key && r.external)
            .map(|r| r.list)
    }

    fn add_edges(&self, tx: &Transactions, edges: &mut Builder) {
        for (&key, &best) in &self.longest {
            if self.incompatible.contains(&key) {
                continue;
            }
            let writers: Vec<Option<u32>> = list_at(tx, best)
                .iter()
                .map(|v| self.live_writer(tx, key, *v))
                .collect();
            for w in writers.windows(2) {
                if let (Some(a), Some(b)) = (w[0], w[1]) {
                    edges.add(a, b, WW);
                }
            }
            if let (Some(Some(last)), Some(later)) = (writers.last(), self.unobserved.get(&key)) {
                for &(t, _) in later {
                    edges.add(*last, t, WW);
                }
            }
        }
        for (t, txn) in tx.txns.iter().enumerate() {
            if txn.status != Status::Ok {
                continue;
            }
            for r in reads_of(t as u32, &txn.mops).filter(|r| r.external) {
                if let Some(&last) = r.list.last() {
                    if let Some(w) = self.live_writer(tx, r.key, last) {
                        edges.add(w, r.txn, WR);
                    }
                }
                if let Some(next) = self.next_after(tx, r.key, r.list.len()) {
                    if let Some(w) = self.live_writer(tx, r.key, next) {
                        edges.add(r.txn, w, RW);
                    }
                } else if let Some(later) = self.unobserved_after(tx, r.key, r.list.len()) {
                    // A reader that saw part of a transaction's appends and not the rest made
                    // an intermediate read (G1b), reported as such rather than as a cycle.
                    let seen = r.list.last().and_then(|l| self.live_writer(tx, r.key, *l));
                    for &(t, _) in later.iter().filter(|l| Some(l.0) != seen) {
                        edges.add(r.txn, t, RW);
                    }
                }
            }
        }
    }

    /// The element right after the first `len` of `key`'s version order.
    fn next_after(&self, tx: &Transactions, key: u32, len: usize) -> Option<u32> {
        if self.incompatible.contains(&key) {
            return None;
        }
        list_at(tx, *self.longest.get(&key)?).get(len).copied()
    }

    /// The unseen appends that follow a read of the whole known order of `key`.
    fn unobserved_after(&self, tx: &Transactions, key: u32, len: usize) -> Option<&[(u32, u32)]> {
        if self.incompatible.contains(&key) || list_at(tx, *self.longest.get(&key)?).len() != len {
            return None;
        }
        self.unobserved.get(&key).map(Vec::as_slice)
    }

    /// The transaction that appended `val` to `key`, if it may have committed.
    fn live_writer(&self, tx: &Transactions, key: u32, val: u32) -> Option<u32> {
        let &(w, _) = self.appender.get(&(key, val))?;
        tx.txns[w as usize].committed_or_unknown().then_some(w)
    }

    /// Why there is an edge `a -> b` of `kind`, in words.
    pub fn why(&self, tx: &Transactions, a: u32, b: u32, kind: u8) -> String {
        let (na, nb) = (tx.name(a), tx.name(b));
        match kind {
            WW => self.why_ww(tx, a, b),
            WR => reads_of(b, &tx.txns[b as usize].mops)
                .filter(|r| r.external)
                .find_map(|r| {
                    let last = *r.list.last()?;
                    (self.live_writer(tx, r.key, last) == Some(a)).then(|| {
                        format!("{nb} read key {} = {}, whose last element {} {na} appended", tx.keys.show(r.key), tx.show_list(r.list), tx.values.show(last))
                    })
                })
                .unwrap_or_else(|| format!("{nb} read a value {na} wrote")),
            _ => reads_of(a, &tx.txns[a as usize].mops)
                .filter(|r| r.external)
                .find_map(|r| {
                    if let Some(later) = self.unobserved_after(tx, r.key, r.list.len()) {
                        if let Some(&(_, v)) = later.iter().find(|l| l.0 == b) {
                            return Some(format!("{na} read key {} = {}, the longest read of it, and {nb} appended {}, which no read saw, so after that state", tx.keys.show(r.key), tx.show_list(r.list), tx.values.show(v)));
                        }
                    }
                    let next = self.next_after(tx, r.key, r.list.len())?;
                    (self.live_writer(tx, r.key, next) == Some(b)).then(|| {
                        let best = self.longest[&r.key];
                        format!("{na} read key {} = {}, which misses {}, the next element, appended by {nb} ({} read {})", tx.keys.show(r.key), tx.show_list(r.list), tx.values.show(next), tx.name(best.0), tx.show_list(list_at(tx, best)))
                    })
                })
                .unwrap_or_else(|| format!("{na} read a state that {nb} overwrote")),
        }
    }

    fn why_ww(&self, tx: &Transactions, a: u32, b: u32) -> String {
        for m in tx.txns[a as usize].mops.iter() {
            let Mop::Write { key, val } = m else { continue };
            let Some(&p) = self.position.get(&(*key, *val)) else {
                continue;
            };
            let Some(next) = self.next_after(tx, *key, p as usize + 1) else {
                continue;
            };
            if self.live_writer(tx, *key, next) == Some(b) {
                let best = self.longest[key];
                return format!(
                    "{} appended {} to key {} before {} appended {}, because {} read {}",
                    tx.name(a),
                    tx.values.show(*val),
                    tx.keys.show(*key),
                    tx.name(b),
                    tx.values.show(next),
                    tx.name(best.0),
                    tx.show_list(list_at(tx, best))
                );
            }
        }
        for (&key, later) in &self.unobserved {
            let Some(&(_, v)) = later.iter().find(|l| l.0 == b) else {
                continue;
            };
            let best = self.longest[&key];
            let order = list_at(tx, best);
            if order.last().and_then(|l| self.live_writer(tx, key, *l)) == Some(a) {
                return format!("{} appended {} to key {}, the last element {} read ({}), and {} appended {}, which no read saw, so after it", tx.name(a), tx.values.show(*order.last().unwrap_or(&0)), tx.keys.show(key), tx.name(best.0), tx.show_list(order), tx.name(b), tx.values.show(v));
            }
        }
        format!("{} appended before {}", tx.name(a), tx.name(b))
    }
}

/// A value a list holds twice, if any; short lists (the usual case) need no allocation.
fn first_duplicate(list: &[u32]) -> Option<u32> {
    if list.len() <= 64 {
        return (1..list.len()).find_map(|i| list[..i].contains(&list[i]).then_some(list[i]));
    }
    let mut seen = FxHashSet::default();
    list.iter().copied().find(|v| !seen.insert(*v))
}

/// Every append, indexed; values must be unique per key.
fn index_appends(history: &History, tx: &Transactions) -> Result<WriterIndex, BadHistory> {
    let mut appender = FxHashMap::default();
    for (t, txn) in tx.txns.iter().enumerate() {
        for (i, m) in txn.mops.iter().enumerate() {
            let Mop::Write { key, val } = m else { continue };
            if let Some(&(other, _)) = appender.get(&(*key, *val)) {
                let other: u32 = other;
                return Err(BadHistory::at_op(
                    history,
                    txn.invoke as usize,
                    format!("{} appends {} to key {} again (also appended by {}); list-append needs values unique per key", tx.name(t as u32), tx.values.show(*val), tx.keys.show(*key), tx.name(other)),
                ));
            }
            appender.insert((*key, *val), (t as u32, i as u32));
        }
    }
    Ok(appender)
}

/// The reads of one transaction with their context.
fn reads_of(t: u32, mops: &[Mop]) -> impl Iterator<Item = ReadCtx<'_>> {
    let mut touched: Vec<u32> = Vec::new();
    mops.iter().enumerate().filter_map(move |(i, m)| {
        let key = m.key();
        let external = !touched.contains(&key);
        if external {
            touched.push(key);
        }
        match m {
            Mop::Read {
                value: ReadValue::List(l),
                ..
            } => Some(ReadCtx {
                txn: t,
                mop: i as u32,
                key,
                list: l,
                external,
            }),
            _ => None,
        }
    })
}

fn list_at(tx: &Transactions, (t, m): (u32, u32)) -> &[u32] {
    match &tx.txns[t as usize].mops[m as usize] {
        Mop::Read {
            value: ReadValue::List(l),
            ..
        } => l,
        _ => &[],
    }
}
