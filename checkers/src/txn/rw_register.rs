//! Read-write registers: transactions write unique values and read single values.
//!
//! A register read shows only the latest version, so version orders must be inferred. Sources,
//! each sound on its own and each optional beyond the first two:
//! - the initial null precedes every written version;
//! - writes follow reads: a transaction that read `v1` and then wrote `v2` orders `v1 < v2`;
//! - per-key linearizability (when the system promises it): a version read or written by a
//!   transaction that completed before another was invoked precedes that one's write;
//! - per-key sequential consistency: the same along each process;
//! - a total commit order the history supplies (a field of each `ok` completion).
//!
//! A key whose inferred order cycles is reported as `cyclic-versions` and yields no ww or rw
//! edges. ww and rw edges come from every inferred version edge, not only adjacent versions;
//! the shortcut edges they add never change a cycle's class, since each stands for a path of
//! the same kinds (a rw followed by ww edges).

use super::graph::{Builder, RW, WR, WW};
use super::transaction::{Mop, ReadValue, Status, Transactions, WriterIndex};
use crate::history::History;
use crate::verdict::{BadHistory, Verdict};
use rustc_hash::{FxHashMap, FxHashSet};

/// Which optional sources of version order to use.
#[derive(Clone, Debug, Default)]
pub struct VersionSources {
    pub linearizable_keys: bool,
    pub sequential_keys: bool,
    /// Name of a field of `ok` completions holding an integer commit sequence number.
    pub commit_order: Option<String>,
}

/// A version of a key: `None` is the initial null.
type Version = Option<u32>;

/// Per scope and key: settled transactions with their version and completion index.
type Frontier = FxHashMap<(u32, u32), Vec<(u32, Version, u32)>>;

pub struct RwRegister {
    /// (key, value) -> (transaction, micro-op index).
    writer: WriterIndex,
    /// Per key: version edges (from, to) and why each holds.
    versions: FxHashMap<u32, Vec<(Version, Version, Source)>>,
    /// Keys whose version order cycles.
    cyclic: FxHashSet<u32>,
    /// (key, version) -> external readers among ok transactions.
    readers: FxHashMap<(u32, Version), Vec<u32>>,
}

/// Why one version precedes another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Initial,
    /// Transaction read the first and then wrote the second.
    WritesFollowReads(u32),
    /// The first transaction completed before the second was invoked.
    Realtime(u32, u32),
    /// Consecutive transactions of one process.
    Process(u32, u32),
    /// The first committed before the second in the history's commit order.
    Commit(u32, u32),
}

/// What a transaction's external view of one key was: the first read (if it read before
/// writing) and the final write.
struct KeyView {
    key: u32,
    read: Option<Version>,
    write: Option<u32>,
}

fn views(mops: &[Mop]) -> Vec<KeyView> {
    let mut out: Vec<KeyView> = Vec::new();
    for m in mops {
        let i = match out.iter().position(|v| v.key == m.key()) {
            Some(i) => i,
            None => {
                let read = match m {
                    Mop::Read {
                        value: ReadValue::Register(r),
                        ..
                    } => Some(*r),
                    _ => None,
                };
                out.push(KeyView {
                    key: m.key(),
                    read,
                    write: None,
                });
                out.len() - 1
            }
        };
        if let Mop::Write { val, .. } = m {
            out[i].write = Some(*val);
        }
    }
    out
}

impl RwRegister {
    pub fn analyse(
        history: &History,
        tx: &Transactions,
        sources: &VersionSources,
        verdict: &mut Verdict,
        edges: &mut Builder,
    ) -> Result<RwRegister, BadHistory> {
        let mut rw = RwRegister {
            writer: index_writes(history, tx)?,
            versions: FxHashMap::default(),
            cyclic: FxHashSet::default(),
            readers: FxHashMap::default(),
        };
        for (t, txn) in tx.txns.iter().enumerate() {
            if txn.status == Status::Ok {
                rw.check_reads(tx, t as u32, verdict);
            }
        }
        rw.collect_readers(tx);
        rw.initial_and_wfr(tx);
        if sources.linearizable_keys || sources.sequential_keys {
            rw.session_orders(tx, sources.linearizable_keys);
        }
        if sources.commit_order.is_some() {
            rw.commit_order(tx);
        }
        rw.find_cyclic(tx, verdict);
        rw.dirty_updates(tx, verdict);
        rw.lost_updates(tx, verdict);
        rw.add_edges(tx, edges);
        Ok(rw)
    }

    fn check_reads(&self, tx: &Transactions, t: u32, verdict: &mut Verdict) {
        let txn = &tx.txns[t as usize];
        let me = tx.name(t);
        // Per key: what this transaction last wrote or read.
        let mut state: Vec<(u32, Version, bool)> = Vec::new();
        for (i, m) in txn.mops.iter().enumerate() {
            let key = m.key();
            let slot = state.iter().position(|s| s.0 == key);
            match m {
                Mop::Write { val, .. } => match slot {
                    Some(s) => state[s] = (key, Some(*val), true),
                    None => state.push((key, Some(*val), true)),
                },
                Mop::Read {
                    value: ReadValue::Register(r),
                    ..
                } => {
                    if let Some(s) = slot {
                        let (_, expected, wrote) = state[s];
                        if expected != *r {
                            let what = if wrote {
                                "its own last write"
                            } else {
                                "its own earlier read"
                            };
                            verdict.anomaly(
                                "internal",
                                format!(
                                    "{me} read key {} = {}, but {what} of that key was {}",
                                    tx.keys.show(key),
                                    show(tx, *r),
                                    show(tx, expected)
                                ),
                            );
                        }
                        continue;
                    }
                    state.push((key, *r, false));
                    self.check_external(tx, t, i as u32, key, *r, verdict);
                }
                Mop::Read { .. } => {}
            }
        }
    }

    fn check_external(
        &self,
        tx: &Transactions,
        t: u32,
        mop: u32,
        key: u32,
        r: Version,
        verdict: &mut Verdict,
    ) {
        let Some(v) = r else { return };
        let me = tx.name(t);
        let (k, vs) = (tx.keys.show(key), tx.values.show(v));
        match self.writer.get(&(key, v)) {
            None => verdict.anomaly("garbage-read", format!("{me} read key {k} = {vs}, but no transaction ever wrote {vs} to key {k}")),
            Some(&(w, m)) if w == t && m > mop => verdict.anomaly("future-read", format!("{me} read key {k} = {vs}, a value it writes itself only later")),
            Some(&(w, _)) if tx.txns[w as usize].status == Status::Fail => verdict.anomaly("G1a", format!("{me} read key {k} = {vs}, written by {} which failed (aborted)", tx.name(w))),
            Some(&(w, _)) if w != t && tx.txns[w as usize].final_write(key) != Some(v) => verdict.anomaly(
                "G1b",
                format!("{me} read key {k} = {vs}, an intermediate write of {}, whose final write to key {k} was {}", tx.name(w), show(tx, tx.txns[w as usize].final_write(key))),
            ),
            _ => {}
        }
    }

    fn collect_readers(&mut self, tx: &Transactions) {
        for (t, txn) in tx.txns.iter().enumerate() {
            if txn.status != Status::Ok {
                continue;
            }
            for v in views(&txn.mops) {
                if let Some(r) = v.read {
                    self.readers.entry((v.key, r)).or_default().push(t as u32);
                }
            }
        }
    }

    fn add_version(&mut self, key: u32, from: Version, to: u32, why: Source) {
        if from != Some(to) {
            self.versions
                .entry(key)
                .or_default()
                .push((from, Some(to), why));
        }
    }

    fn initial_and_wfr(&mut self, tx: &Transactions) {
        for (t, txn) in tx.txns.iter().enumerate() {
            if !txn.committed_or_unknown() {
                continue;
            }
            for v in views(&txn.mops) {
                let Some(w) = v.write else { continue };
                match v.read {
                    Some(r) if txn.status == Status::Ok => {
                        self.add_version(v.key, r, w, Source::WritesFollowReads(t as u32))
                    }
                    _ => self.add_version(v.key, None, w, Source::Initial),
                }
            }
        }
    }

    /// Realtime (per key, over all processes) or process order between transactions on a key.
    fn session_orders(&mut self, tx: &Transactions, realtime: bool) {
        let events = super::order::timeline(tx);
        // Per key (realtime) or per (process, key): transactions whose version is settled.
        let mut frontier: Frontier = FxHashMap::default();
        for (_, t, is_invoke) in events {
            let txn = &tx.txns[t as usize];
            let scope = if realtime { u32::MAX } else { txn.process };
            for v in views(&txn.mops) {
                let slot = (scope, v.key);
                if is_invoke {
                    let Some(w) = v.write else { continue };
                    for &(from, version, _) in frontier.get(&slot).map(Vec::as_slice).unwrap_or(&[])
                    {
                        let why = if realtime {
                            Source::Realtime(from, t)
                        } else {
                            Source::Process(from, t)
                        };
                        self.add_version(v.key, version, w, why);
                    }
                } else {
                    let version = match (v.write, v.read) {
                        (Some(w), _) => Some(w),
                        (None, Some(r)) => r,
                        (None, None) => continue,
                    };
                    let f = frontier.entry(slot).or_default();
                    // Entries that completed before this one was invoked are implied through it.
                    f.retain(|&(_, _, done)| done > txn.invoke);
                    f.push((t, version, txn.complete.unwrap_or(txn.invoke)));
                }
            }
        }
    }

    fn commit_order(&mut self, tx: &Transactions) {
        let mut order: Vec<(i64, u32)> = tx
            .txns
            .iter()
            .enumerate()
            .filter_map(|(t, txn)| txn.commit_seq.map(|s| (s, t as u32)))
            .collect();
        order.sort_unstable();
        let mut last: FxHashMap<u32, (u32, u32)> = FxHashMap::default();
        for (_, t) in order {
            for v in views(&tx.txns[t as usize].mops) {
                let Some(w) = v.write else { continue };
                if let Some(&(prev_t, prev_w)) = last.get(&v.key) {
                    self.add_version(v.key, Some(prev_w), w, Source::Commit(prev_t, t));
                }
                last.insert(v.key, (t, w));
            }
        }
    }

    /// Keys whose version edges form a cycle.
    fn find_cyclic(&mut self, tx: &Transactions, verdict: &mut Verdict) {
        let mut keys: Vec<u32> = self.versions.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let edges = &self.versions[&key];
            let mut ids: FxHashMap<Version, u32> = FxHashMap::default();
            let mut b = Builder::default();
            for &(from, to, _) in edges {
                let n = ids.len() as u32;
                let x = *ids.entry(from).or_insert(n);
                let n = ids.len() as u32;
                let y = *ids.entry(to).or_insert(n);
                b.add(x, y, WW);
            }
            let g = b.finish(ids.len());
            let comps = g.components(WW, None);
            let Some(comp) = comps.first() else { continue };
            let mut shown: Vec<String> = Vec::new();
            for &(from, to, why) in edges {
                let inside = |v: Version| comp.binary_search(&ids[&v]).is_ok();
                if inside(from) && inside(to) && shown.len() < 8 {
                    shown.push(format!(
                        "{} < {} ({})",
                        show(tx, from),
                        show(tx, to),
                        self.show_source(tx, why)
                    ));
                }
            }
            self.cyclic.insert(key);
            verdict.anomaly(
                "cyclic-versions",
                format!(
                    "the versions of key {} cannot be ordered: {}",
                    tx.keys.show(key),
                    shown.join("; ")
                ),
            );
        }
    }

    fn show_source(&self, tx: &Transactions, s: Source) -> String {
        match s {
            Source::Initial => "the initial state precedes every write".into(),
            Source::WritesFollowReads(t) => {
                format!("{} read the first, then wrote the second", tx.name(t))
            }
            Source::Realtime(a, b) => {
                format!("{} completed before {} was invoked", tx.name(a), tx.name(b))
            }
            Source::Process(a, b) => {
                format!("{} and then {} on one process", tx.name(a), tx.name(b))
            }
            Source::Commit(a, b) => format!("{} committed before {}", tx.name(a), tx.name(b)),
        }
    }

    /// A committed write ordered right after a failed transaction's write: the writer read
    /// the aborted value and built on it.
    fn dirty_updates(&self, tx: &Transactions, verdict: &mut Verdict) {
        let mut keys: Vec<u32> = self.versions.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            for &(from, to, why) in &self.versions[&key] {
                let Some(f) = from else { continue };
                let Some(&(fw, _)) = self.writer.get(&(key, f)) else {
                    continue;
                };
                if tx.txns[fw as usize].status != Status::Fail {
                    continue;
                }
                let Some(tw) = self.live_writer(tx, key, to) else {
                    continue;
                };
                verdict.anomaly(
                    "dirty-update",
                    format!(
                        "{} wrote key {} = {}, after {} = {} written by {}, which failed ({})",
                        tx.name(tw),
                        tx.keys.show(key),
                        show(tx, to),
                        tx.keys.show(key),
                        tx.values.show(f),
                        tx.name(fw),
                        self.show_source(tx, why)
                    ),
                );
                break;
            }
        }
    }

    fn lost_updates(&self, tx: &Transactions, verdict: &mut Verdict) {
        let mut groups: FxHashMap<(u32, Version), Vec<u32>> = FxHashMap::default();
        for (t, txn) in tx.txns.iter().enumerate() {
            if txn.status != Status::Ok {
                continue;
            }
            for v in views(&txn.mops) {
                if let (Some(r), Some(_)) = (v.read, v.write) {
                    groups.entry((v.key, r)).or_default().push(t as u32);
                }
            }
        }
        let mut found: Vec<((u32, Version), Vec<u32>)> =
            groups.into_iter().filter(|(_, ts)| ts.len() > 1).collect();
        found.sort_unstable();
        for ((key, r), ts) in found {
            let names: Vec<String> = ts.iter().map(|t| tx.name(*t)).collect();
            verdict.anomaly("lost-update", format!("{} all read key {} = {} and then wrote it: each write was made as if the others had not happened", names.join(", "), tx.keys.show(key), show(tx, r)));
        }
    }

    fn live_writer(&self, tx: &Transactions, key: u32, v: Version) -> Option<u32> {
        let &(w, _) = self.writer.get(&(key, v?))?;
        let txn = &tx.txns[w as usize];
        (txn.committed_or_unknown() && txn.final_write(key) == v).then_some(w)
    }

    fn add_edges(&self, tx: &Transactions, edges: &mut Builder) {
        let no_readers: Vec<u32> = Vec::new();
        for (&(key, v), readers) in &self.readers {
            if let Some(w) = self.live_writer(tx, key, v) {
                for &r in readers {
                    edges.add(w, r, WR);
                }
            }
        }
        for (&key, vs) in &self.versions {
            if self.cyclic.contains(&key) {
                continue;
            }
            // Only roots need the initial version before them: the rest follow a root through
            // ww edges, and the shortcut would add readers-of-nil x writers edges.
            let has_pred: FxHashSet<u32> = vs
                .iter()
                .filter(|e| e.0.is_some())
                .filter_map(|e| e.1)
                .collect();
            for &(from, to, _) in vs {
                if from.is_none() && to.is_some_and(|t| has_pred.contains(&t)) {
                    continue;
                }
                let Some(to_w) = self.live_writer(tx, key, to) else {
                    continue;
                };
                if let Some(from_w) = self.live_writer(tx, key, from) {
                    edges.add(from_w, to_w, WW);
                }
                for &r in self.readers.get(&(key, from)).unwrap_or(&no_readers) {
                    edges.add(r, to_w, RW);
                }
            }
        }
    }

    /// Why there is an edge `a -> b` of `kind`, in words.
    pub fn why(&self, tx: &Transactions, a: u32, b: u32, kind: u8) -> String {
        let (na, nb) = (tx.name(a), tx.name(b));
        if kind == WR {
            for v in views(&tx.txns[b as usize].mops) {
                if let Some(r) = v.read {
                    if r.is_some() && self.live_writer(tx, v.key, r) == Some(a) {
                        return format!(
                            "{nb} read key {} = {}, written by {na}",
                            tx.keys.show(v.key),
                            show(tx, r)
                        );
                    }
                }
            }
            return format!("{nb} read a value {na} wrote");
        }
        for (&key, vs) in &self.versions {
            if self.cyclic.contains(&key) {
                continue;
            }
            for &(from, to, why) in vs {
                if self.live_writer(tx, key, to) != Some(b) {
                    continue;
                }
                let k = tx.keys.show(key);
                let order = format!(
                    "{} < {} because {}",
                    show(tx, from),
                    show(tx, to),
                    self.show_source(tx, why)
                );
                if kind == WW && self.live_writer(tx, key, from) == Some(a) {
                    return format!(
                        "{na} wrote key {k} = {}, and {nb} wrote the later {} ({order})",
                        show(tx, from),
                        show(tx, to)
                    );
                }
                if kind == RW
                    && self
                        .readers
                        .get(&(key, from))
                        .is_some_and(|rs| rs.contains(&a))
                {
                    return format!(
                        "{na} read key {k} = {}, a version older than {nb}'s write of {} ({order})",
                        show(tx, from),
                        show(tx, to)
                    );
                }
            }
        }
        format!("{na} precedes {nb} in some key's version order")
    }
}

fn show(tx: &Transactions, v: Version) -> String {
    v.map_or_else(|| "nil".to_string(), |x| tx.values.show(x))
}

fn index_writes(history: &History, tx: &Transactions) -> Result<WriterIndex, BadHistory> {
    let mut writer = FxHashMap::default();
    for (t, txn) in tx.txns.iter().enumerate() {
        for (i, m) in txn.mops.iter().enumerate() {
            let Mop::Write { key, val } = m else { continue };
            if let Some(&(other, _)) = writer.get(&(*key, *val)) {
                let other: u32 = other;
                return Err(BadHistory::at_op(
                    history,
                    txn.invoke as usize,
                    format!("{} writes {} to key {} again (also written by {}); rw-register needs values unique per key", tx.name(t as u32), tx.values.show(*val), tx.keys.show(*key), tx.name(other)),
                ));
            }
            writer.insert((*key, *val), (t as u32, i as u32));
        }
    }
    Ok(writer)
}
