//! Jepsen's `set-full` checker: `add` operations of single elements and `read` operations, at
//! any time, that each return the whole set.
//!
//! Per element (identified by its add's value; its first add invocation creates it) we track,
//! as Jepsen does, only reads that completed after that invocation:
//!
//! - *known*: the first of its add's ok completion and the completion of the first read that
//!   saw it;
//! - *last present*: the read with the latest invocation that saw it;
//! - *last absent*: the read with the latest invocation that missed it.
//!
//! Outcomes: *stable* when the latest-invoked read saw it (last present after last absent);
//! *lost* when it was known and the latest-invoked read missed it after that (last absent after
//! both last present and known); *never-read* otherwise (nothing read it after it was known,
//! e.g. a crashed add never seen). A stable element is *stale* when a read that began after it
//! was known missed it before later reads saw it. Jepsen decides staleness by a positive
//! stable latency in whole milliseconds; we decide it by order (the missing read was invoked
//! after the element was known), which needs no clocks and misses no sub-millisecond staleness.
//!
//! Valid iff nothing was lost (and, with [`Options::linearizable`], nothing was stale); unknown
//! when nothing was lost but no element ever became stable. Latencies (stable: from known to
//! the last missing read's invocation; lost: from known to the last observing read's
//! invocation) are reported as Jepsen's quantiles in milliseconds when the history has times.
//! Elements read but never added, elements read before their add began, and elements a single
//! read returned more than once are counted in the details; like Jepsen, they do not change the
//! verdict.
//!
//! Cost: linear in the size of the reads plus, per element, a walk over the reads that saw it
//! (each step O(log reads)), instead of Jepsen's (reads x elements) updates.

use crate::datum::Datum;
use crate::history::{History, OpType, Value};
use crate::set::{describe_op, elements_of, interval_set_str, line_of, record_anomaly};
use crate::verdict::{BadHistory, Validity, Verdict};
use rustc_hash::FxHashMap;
use serde_json::{json, Map};
use std::collections::{BTreeSet, BinaryHeap};

/// The checker's name in verdicts.
pub const NAME: &str = "set-full";

/// What the set promises.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The set claims linearizability: a read that begins after an add is known to have
    /// completed must see the element, so stale reads make the history invalid.
    pub linearizable: bool,
}

/// Stale elements described in the details, worst first (Jepsen shows 8).
pub const WORST_STALE_LISTED: usize = 8;
/// Elements listed in the `duplicated` detail (the count is exact).
pub const MAX_DUPLICATES_LISTED: usize = 48;
/// The quantiles of latency distributions, as Jepsen reports them.
pub const QUANTILES: [f64; 5] = [0.0, 0.5, 0.95, 0.99, 1.0];

/// Checks `history` as Jepsen's set-full checker does.
pub fn check(history: &History, options: &Options) -> Result<Verdict, BadHistory> {
    let scan = Scan::run(history)?;
    let tree = MaxInvTree::new(&scan.reads);
    let results: Vec<ElementResult> = scan
        .order
        .iter()
        .filter_map(|e| scan.elements.get(e))
        .map(|state| state.result(history, &scan.reads, &tree))
        .collect();
    let mut verdict = Verdict::new(NAME);
    report_anomalies(history, options, &results, &mut verdict);
    report_details(history, &scan, &results, &mut verdict);
    decide_unknown(&results, &mut verdict);
    Ok(verdict)
}

/// One ok read: where it was invoked and where it completed (indices into the history).
#[derive(Clone, Copy, Debug)]
struct Read {
    inv: usize,
    done: usize,
}

/// Read ids are positions in [`Scan::reads`], in completion order.
type ReadId = u32;

/// What the history says about one element.
struct ElementState {
    element: Datum,
    /// The first add invocation.
    add_inv: usize,
    /// The op that made it known: its add's ok completion or the first read that saw it.
    known: Option<usize>,
    /// Reads completed after `add_inv` that saw it, ascending.
    present: Vec<ReadId>,
}

/// One pass over the history: elements, reads, and what the reads saw.
#[derive(Default)]
struct Scan {
    elements: FxHashMap<Datum, ElementState>,
    /// Elements in order of their first add invocation.
    order: Vec<Datum>,
    reads: Vec<Read>,
    /// Elements seen by reads that completed before any add of them began: element -> count.
    untracked: FxHashMap<Datum, usize>,
    /// Element -> the most times one read returned it, when above 1.
    duplicated: FxHashMap<Datum, usize>,
}

impl Scan {
    fn run(history: &History) -> Result<Scan, BadHistory> {
        let mut scan = Scan::default();
        if history.len() > ReadId::MAX as usize {
            return Err(BadHistory::at_op(
                history,
                0,
                "too many events to index reads",
            ));
        }
        for (i, op) in history.ops.iter().enumerate() {
            match (op.f.as_str(), op.op_type) {
                ("add", OpType::Invoke) => scan.add_invoked(history, i),
                ("add", OpType::Ok) => scan.add_ok(history, i),
                ("read", OpType::Ok) => scan.read_ok(history, i)?,
                _ => {}
            }
        }
        Ok(scan)
    }

    fn add_invoked(&mut self, history: &History, i: usize) {
        let element = Datum::from_json(&history.ops[i].value);
        if self.elements.contains_key(&element) {
            return;
        }
        self.order.push(element.clone());
        self.elements.insert(
            element.clone(),
            ElementState {
                element,
                add_inv: i,
                known: None,
                present: Vec::new(),
            },
        );
    }

    fn add_ok(&mut self, history: &History, i: usize) {
        let value = history.partner[i].map_or(&history.ops[i].value, |inv| &history.ops[inv].value);
        if let Some(state) = self.elements.get_mut(&Datum::from_json(value)) {
            state.known.get_or_insert(i);
        }
    }

    fn read_ok(&mut self, history: &History, i: usize) -> Result<(), BadHistory> {
        let mut seen = elements_of(history, i, "a set-full read")?;
        seen.sort();
        let id = self.reads.len() as ReadId;
        self.reads.push(Read {
            inv: history.partner[i].unwrap_or(i),
            done: i,
        });
        for run in seen.chunk_by(|a, b| a == b) {
            let element = &run[0];
            if run.len() > 1 {
                let worst = self.duplicated.entry(element.clone()).or_insert(0);
                *worst = (*worst).max(run.len());
            }
            match self.elements.get_mut(element) {
                Some(state) => {
                    state.known.get_or_insert(i);
                    state.present.push(id);
                }
                None => *self.untracked.entry(element.clone()).or_insert(0) += 1,
            }
        }
        Ok(())
    }
}

/// A segment tree over reads (in completion order) giving, for a range, the read with the
/// latest invocation. It lets each element find its last missing read by skipping only the
/// reads that saw it.
struct MaxInvTree<'a> {
    reads: &'a [Read],
    size: usize,
    /// Node -> read id with the largest `inv` below it, or `None` for an empty node.
    nodes: Vec<Option<ReadId>>,
}

impl<'a> MaxInvTree<'a> {
    fn new(reads: &'a [Read]) -> MaxInvTree<'a> {
        let size = reads.len().next_power_of_two().max(1);
        let mut nodes = vec![None; 2 * size];
        for (id, slot) in nodes[size..size + reads.len()].iter_mut().enumerate() {
            *slot = Some(id as ReadId);
        }
        let mut tree = MaxInvTree { reads, size, nodes };
        for k in (1..size).rev() {
            tree.nodes[k] = tree.better(tree.nodes[2 * k], tree.nodes[2 * k + 1]);
        }
        tree
    }

    fn inv(&self, id: ReadId) -> usize {
        self.reads[id as usize].inv
    }

    fn better(&self, a: Option<ReadId>, b: Option<ReadId>) -> Option<ReadId> {
        match (a, b) {
            (Some(x), Some(y)) => Some(if self.inv(x) >= self.inv(y) { x } else { y }),
            (x, None) => x,
            (None, y) => y,
        }
    }

    /// The read with the latest invocation among reads `lo..hi`.
    fn argmax(&self, lo: usize, hi: usize) -> Option<ReadId> {
        let (mut l, mut r) = (lo + self.size, hi + self.size);
        let mut best = None;
        while l < r {
            if l & 1 == 1 {
                best = self.better(best, self.nodes[l]);
                l += 1;
            }
            if r & 1 == 1 {
                r -= 1;
                best = self.better(best, self.nodes[r]);
            }
            l /= 2;
            r /= 2;
        }
        best
    }

    /// The latest-invoked read among reads `lo..` that is not in `skip` (sorted ascending):
    /// reads in `lo..` are visited from the latest invocation down, a step per skipped read.
    fn latest_not_in(&self, lo: usize, skip: &[ReadId]) -> Option<ReadId> {
        let mut heap = BinaryHeap::new();
        self.push_range(&mut heap, lo, self.reads.len());
        while let Some((_, id, l, r)) = heap.pop() {
            if skip.binary_search(&id).is_err() {
                return Some(id);
            }
            self.push_range(&mut heap, l, id as usize);
            self.push_range(&mut heap, id as usize + 1, r);
        }
        None
    }

    fn push_range(&self, heap: &mut BinaryHeap<(usize, ReadId, usize, usize)>, l: usize, r: usize) {
        if let Some(id) = self.argmax(l, r) {
            heap.push((self.inv(id), id, l, r));
        }
    }
}

/// An element's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Stable,
    Lost,
    NeverRead,
}

/// An element's outcome with the ops that prove it and its latency.
struct ElementResult<'a> {
    state: &'a ElementState,
    outcome: Outcome,
    last_present: Option<Read>,
    last_absent: Option<Read>,
    /// Stable: a read began after it was known and missed it.
    stale: bool,
    /// Milliseconds to stability (stable) or to loss (lost), when the history has times.
    latency_ms: Option<u64>,
}

impl ElementState {
    fn result<'a>(
        &'a self,
        history: &History,
        reads: &[Read],
        tree: &MaxInvTree,
    ) -> ElementResult<'a> {
        let first_relevant = reads.partition_point(|r| r.done < self.add_inv);
        let last_present = self
            .present
            .iter()
            .map(|&id| reads[id as usize])
            .max_by_key(|r| r.inv);
        let last_absent = tree
            .latest_not_in(first_relevant, &self.present)
            .map(|id| reads[id as usize]);
        let present_inv = last_present.map(|r| r.inv);
        let absent_inv = last_absent.map(|r| r.inv);
        let outcome = match (self.known, present_inv, absent_inv) {
            (_, Some(p), a) if a.is_none_or(|a| a < p) => Outcome::Stable,
            (Some(k), p, Some(a)) if p.is_none_or(|p| p < a) && k < a => Outcome::Lost,
            _ => Outcome::NeverRead,
        };
        let stale = outcome == Outcome::Stable
            && matches!((self.known, absent_inv), (Some(k), Some(a)) if a > k);
        let latency_ms = match outcome {
            Outcome::Stable => latency_ms(history, self.known, absent_inv),
            Outcome::Lost => latency_ms(history, self.known, present_inv),
            Outcome::NeverRead => None,
        };
        ElementResult {
            state: self,
            outcome,
            last_present,
            last_absent,
            stale,
            latency_ms,
        }
    }
}

/// Jepsen's latency: from the known op's time to just after `until`'s invocation (time 0 when
/// there is no such read), at least 0, in whole milliseconds. `None` without times.
fn latency_ms(history: &History, known: Option<usize>, until: Option<usize>) -> Option<u64> {
    let known_ns = history.ops[known?].time?;
    let until_ns = match until {
        Some(i) => history.ops[i].time?.saturating_add(1),
        None => 0,
    };
    Some(until_ns.saturating_sub(known_ns) / 1_000_000)
}

fn report_anomalies(
    history: &History,
    options: &Options,
    results: &[ElementResult],
    verdict: &mut Verdict,
) {
    for r in results {
        if r.outcome == Outcome::Lost {
            record_anomaly(verdict, "lost", || explain_lost(history, r));
        }
    }
    if options.linearizable {
        for r in results.iter().filter(|r| r.stale) {
            record_anomaly(verdict, "stale", || explain_stale(history, r));
        }
    }
}

/// Where an element became known present, and the read that began after and missed it.
fn known_and_missed(history: &History, r: &ElementResult) -> (String, String) {
    let known = r
        .state
        .known
        .map_or_else(String::new, |k| describe_op(history, k));
    let missed = r
        .last_absent
        .map_or_else(String::new, |a| read_ref(history, a));
    (known, missed)
}

fn explain_lost(history: &History, r: &ElementResult) -> String {
    let e = &r.state.element;
    let (known, missed) = known_and_missed(history, r);
    let seen = match r.last_present {
        Some(p) => format!(
            "the last read that saw it was invoked earlier, at {}, and no read invoked later saw \
             it",
            read_ref(history, p)
        ),
        None => "no read ever saw it".to_string(),
    };
    format!(
        "element {e} was known present from {known}; the read invoked at {missed}, which began \
         after that, missed it; {seen}"
    )
}

fn explain_stale(history: &History, r: &ElementResult) -> String {
    let e = &r.state.element;
    let (known, missed) = known_and_missed(history, r);
    let seen = r
        .last_present
        .map_or_else(String::new, |p| read_ref(history, p));
    let after = r
        .latency_ms
        .map_or_else(String::new, |ms| format!(" (stable after {ms} ms)"));
    format!(
        "element {e} was known present from {known}, but the read invoked at {missed}, which \
         began after that, missed it; the read invoked later at {seen} saw it{after}"
    )
}

/// A read named by its invocation, with the line of its completion.
fn read_ref(history: &History, r: Read) -> String {
    format!(
        "line {} (process {}, index {}, completed at line {})",
        line_of(history, r.inv),
        history.ops[r.inv].process,
        r.inv,
        line_of(history, r.done)
    )
}

fn report_details(
    history: &History,
    scan: &Scan,
    results: &[ElementResult],
    verdict: &mut Verdict,
) {
    let by = |o: Outcome| -> BTreeSet<Datum> {
        results
            .iter()
            .filter(|r| r.outcome == o)
            .map(|r| r.state.element.clone())
            .collect()
    };
    let (lost, never_read) = (by(Outcome::Lost), by(Outcome::NeverRead));
    let stale: BTreeSet<Datum> = results
        .iter()
        .filter(|r| r.stale)
        .map(|r| r.state.element.clone())
        .collect();
    verdict.detail("attempt_count", results.len());
    verdict.detail("read_count", scan.reads.len());
    verdict.detail("stable_count", by(Outcome::Stable).len());
    verdict.detail("lost_count", lost.len());
    verdict.detail("lost", interval_set_str(&lost));
    verdict.detail("never_read_count", never_read.len());
    verdict.detail("never_read", interval_set_str(&never_read));
    verdict.detail("stale_count", stale.len());
    verdict.detail("stale", interval_set_str(&stale));
    verdict.detail("worst_stale", worst_stale(history, results));
    let latencies = |o: Outcome| -> Vec<u64> {
        results
            .iter()
            .filter(|r| r.outcome == o)
            .filter_map(|r| r.latency_ms)
            .collect()
    };
    if let Some(q) = quantiles(latencies(Outcome::Stable)) {
        verdict.detail("stable_latencies_ms", q);
    }
    if let Some(q) = quantiles(latencies(Outcome::Lost)) {
        verdict.detail("lost_latencies_ms", q);
    }
    report_odd_reads(scan, verdict);
}

/// Elements no add ever attempted, elements read before their add began, and duplicates
/// within one read.
fn report_odd_reads(scan: &Scan, verdict: &mut Verdict) {
    let (mut early, mut unexpected) = (BTreeSet::new(), BTreeSet::new());
    for e in scan.untracked.keys() {
        if scan.elements.contains_key(e) {
            early.insert(e.clone());
        } else {
            unexpected.insert(e.clone());
        }
    }
    verdict.detail("unexpected_count", unexpected.len());
    verdict.detail("unexpected", interval_set_str(&unexpected));
    verdict.detail("read_before_add_count", early.len());
    verdict.detail("read_before_add", interval_set_str(&early));
    let mut dups: Vec<(&Datum, &usize)> = scan.duplicated.iter().collect();
    dups.sort();
    let listed: Map<String, Value> = dups
        .iter()
        .take(MAX_DUPLICATES_LISTED)
        .map(|(e, n)| (e.to_string(), Value::from(**n)))
        .collect();
    verdict.detail("duplicated_count", dups.len());
    verdict.detail("duplicated", listed);
}

/// Jepsen's `worst-stale`: the stale elements that took longest to become stable.
fn worst_stale(history: &History, results: &[ElementResult]) -> Value {
    let mut stale: Vec<&ElementResult> = results.iter().filter(|r| r.stale).collect();
    stale.sort_by_key(|r| std::cmp::Reverse(r.latency_ms));
    let worst: Vec<Value> = stale
        .iter()
        .take(WORST_STALE_LISTED)
        .map(|r| {
            json!({
                "element": r.state.element.to_json(),
                "stable_latency_ms": r.latency_ms,
                "known_line": r.state.known.map(|k| line_of(history, k)),
                "last_absent_line": r.last_absent.map(|a| line_of(history, a.inv)),
            })
        })
        .collect();
    Value::Array(worst)
}

/// Jepsen's `frequency-distribution` at [`QUANTILES`]: the value at index floor(n * q), capped
/// at the last. `None` for no values.
fn quantiles(mut values: Vec<u64>) -> Option<Value> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    let map: Map<String, Value> = QUANTILES
        .iter()
        .map(|&q| {
            let idx = ((n as f64 * q).floor() as usize).min(n - 1);
            (q.to_string(), Value::from(values[idx]))
        })
        .collect();
    Some(Value::Object(map))
}

/// Jepsen's unknown: nothing lost, but no element ever became stable either.
fn decide_unknown(results: &[ElementResult], verdict: &mut Verdict) {
    if verdict.valid != Validity::Valid || results.iter().any(|r| r.outcome == Outcome::Stable) {
        return;
    }
    verdict.give_up(format!(
        "no element ever became stable ({} attempted): no read after an add saw its element, \
         so the set's behaviour was never observed",
        results.len()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType::{Info, Invoke, Ok as Done};
    use crate::set::test_support::{history, timed, Event};

    fn read(p: u64, seen: Value) -> Vec<Event> {
        vec![(Invoke, p, "read", Value::Null), (Done, p, "read", seen)]
    }

    fn add(p: u64, e: i64) -> Vec<Event> {
        vec![(Invoke, p, "add", json!(e)), (Done, p, "add", json!(e))]
    }

    fn run(parts: Vec<Vec<Event>>, options: &Options) -> Verdict {
        check(&history(parts.concat()), options).unwrap()
    }

    #[test]
    fn elements_seen_by_every_later_read_are_stable() {
        let v = run(
            vec![
                add(0, 1),
                read(1, json!([1])),
                add(0, 2),
                read(1, json!([1, 2])),
            ],
            &Options { linearizable: true },
        );
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["stable_count"], 2);
        assert_eq!(v.details["lost_count"], 0);
        assert_eq!(v.details["stale_count"], 0);
    }

    #[test]
    fn an_element_missing_from_the_latest_reads_is_lost() {
        let v = run(
            vec![
                add(0, 1),
                read(1, json!([1])),
                read(1, json!([])),
                add(0, 2),
                read(2, json!([2])),
            ],
            &Options::default(),
        );
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomaly_types, vec!["lost"]);
        let why = &v.anomalies["lost"][0];
        assert!(
            why.contains("element 1 was known present from line 2"),
            "{why}"
        );
        assert!(why.contains("read invoked at line 9 (process 2"), "{why}");
        assert!(
            why.contains("last read that saw it was invoked earlier, at line 3 (process 1, index 2, completed at line 4)"),
            "{why}"
        );
        assert_eq!(v.details["lost"], "#{1}");
        assert_eq!(v.details["stable_count"], 1);
    }

    #[test]
    fn a_read_concurrent_with_the_add_may_miss_it() {
        // The read began before the add completed: missing it is not a loss, and not stale.
        let v = run(
            vec![
                vec![
                    (Invoke, 0, "add", json!(1)),
                    (Invoke, 1, "read", Value::Null),
                ],
                vec![(Done, 1, "read", json!([])), (Done, 0, "add", json!(1))],
                read(1, json!([1])),
            ],
            &Options { linearizable: true },
        );
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
    }

    #[test]
    fn a_late_appearance_is_stale_and_invalid_only_when_linearizable() {
        let h = timed(
            [add(0, 1), read(1, json!([])), read(1, json!([1]))].concat(),
            &[0, 10, 20, 30, 45, 50],
        );
        let v = check(&h, &Options::default()).unwrap();
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["stale"], "#{1}");
        // Known at 10 ms, the missing read began at 20 ms: stable 10 ms later.
        assert_eq!(v.details["stable_latencies_ms"]["0.5"], 10);
        assert_eq!(v.details["worst_stale"][0]["stable_latency_ms"], 10);
        let v = check(&h, &Options { linearizable: true }).unwrap();
        assert_eq!(v.anomaly_types, vec!["stale"]);
        assert!(
            v.anomalies["stale"][0].contains("stable after 10 ms"),
            "{}",
            v.explain()
        );
    }

    #[test]
    fn crashed_adds_never_seen_are_never_read_and_nothing_stable_is_unknown() {
        let v = run(
            vec![
                vec![(Invoke, 0, "add", json!(1)), (Info, 0, "add", json!(1))],
                read(1, json!([])),
            ],
            &Options::default(),
        );
        assert_eq!(v.valid, Validity::Unknown);
        assert_eq!(v.details["never_read"], "#{1}");
    }

    #[test]
    fn lost_latencies_and_odd_reads_are_reported() {
        let h = timed(
            [add(0, 1), read(1, json!([1, 1, 9])), read(1, json!([]))].concat(),
            &[0, 5, 10, 20, 30, 40],
        );
        let v = check(&h, &Options::default()).unwrap();
        assert_eq!(v.anomaly_types, vec!["lost"]);
        // Known at 5 ms, last seen by the read invoked at 10 ms.
        assert_eq!(v.details["lost_latencies_ms"]["1"], 5);
        assert_eq!(v.details["unexpected"], "#{9}");
        assert_eq!(v.details["duplicated"], json!({"1": 2}));
    }

    #[test]
    fn quantiles_follow_jepsen_indexing() {
        let q = quantiles((1..=10).collect()).unwrap();
        assert_eq!(q["0"], 1);
        assert_eq!(q["0.5"], 6);
        assert_eq!(q["0.95"], 10);
        assert_eq!(q["1"], 10);
        assert!(quantiles(vec![]).is_none());
    }

    #[test]
    fn the_tree_finds_the_latest_read_outside_a_skip_list() {
        let reads = [
            Read { inv: 0, done: 3 },
            Read { inv: 1, done: 4 },
            Read { inv: 5, done: 6 },
            Read { inv: 2, done: 7 },
        ];
        let tree = MaxInvTree::new(&reads);
        assert_eq!(tree.latest_not_in(0, &[]), Some(2));
        assert_eq!(tree.latest_not_in(0, &[2]), Some(3));
        assert_eq!(tree.latest_not_in(0, &[1, 2, 3]), Some(0));
        assert_eq!(tree.latest_not_in(1, &[1, 2, 3]), None);
        assert_eq!(tree.latest_not_in(4, &[]), None);
    }

    /// Jepsen's algorithm as written: every ok read updates every element added so far.
    fn naive_outcomes(h: &History) -> Vec<(Datum, Outcome, bool)> {
        struct S {
            e: Datum,
            add_inv: usize,
            known: Option<usize>,
            present: Option<usize>,
            absent: Option<usize>,
        }
        let mut states: Vec<S> = Vec::new();
        for (i, op) in h.ops.iter().enumerate() {
            match (op.f.as_str(), op.op_type) {
                ("add", Invoke) => {
                    let e = Datum::from_json(&op.value);
                    if states.iter().all(|s| s.e != e) {
                        states.push(S {
                            e,
                            add_inv: i,
                            known: None,
                            present: None,
                            absent: None,
                        });
                    }
                }
                ("add", Done) => {
                    let e = Datum::from_json(&op.value);
                    if let Some(s) = states.iter_mut().find(|s| s.e == e) {
                        s.known.get_or_insert(i);
                    }
                }
                ("read", Done) => {
                    let inv = h.partner[i].unwrap();
                    let seen: Vec<Datum> = elements_of(h, i, "r").unwrap();
                    for s in states.iter_mut().filter(|s| s.add_inv < i) {
                        if seen.contains(&s.e) {
                            s.known.get_or_insert(i);
                            s.present = s.present.max(Some(inv));
                        } else {
                            s.absent = s.absent.max(Some(inv));
                        }
                    }
                }
                _ => {}
            }
        }
        states
            .into_iter()
            .map(|s| {
                let outcome = match (s.known, s.present, s.absent) {
                    (_, Some(p), a) if a.is_none_or(|a| a < p) => Outcome::Stable,
                    (Some(k), p, Some(a)) if p.is_none_or(|p| p < a) && k < a => Outcome::Lost,
                    _ => Outcome::NeverRead,
                };
                let stale = outcome == Outcome::Stable
                    && matches!((s.known, s.absent), (Some(k), Some(a)) if a > k);
                (s.e, outcome, stale)
            })
            .collect()
    }

    /// A random, well-paired history of adds (some crashing or failing) and reads of random
    /// subsets, from a few concurrent processes.
    fn random_history(seed: u64) -> History {
        let mut rng = crate::rng::Rng::new(seed);
        let slots = 1 + rng.below(4) as usize;
        let mut ids: Vec<u64> = (0..slots as u64).collect();
        let mut open: Vec<Option<(&'static str, i64)>> = vec![None; slots];
        let mut events: Vec<Event> = Vec::new();
        let mut next = 0i64;
        for _ in 0..rng.between(4, 60) {
            let s = rng.below(slots as u64) as usize;
            match open[s].take() {
                None if rng.chance(0.5) => {
                    events.push((Invoke, ids[s], "add", json!(next)));
                    open[s] = Some(("add", next));
                    next += 1;
                }
                None => {
                    events.push((Invoke, ids[s], "read", Value::Null));
                    open[s] = Some(("read", 0));
                }
                Some(("add", e)) => {
                    let t = *rng.pick(&[Done, Done, Info, OpType::Fail]);
                    events.push((t, ids[s], "add", json!(e)));
                    if t == Info {
                        ids[s] += 100;
                    }
                }
                Some(_) => {
                    let seen: Vec<i64> = (0..next + 1).filter(|_| rng.chance(0.7)).collect();
                    events.push((Done, ids[s], "read", json!(seen)));
                }
            }
        }
        history(events)
    }

    #[test]
    fn outcomes_match_jepsens_quadratic_algorithm_on_random_histories() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..2000 {
            let h = random_history(seed);
            let scan = Scan::run(&h).unwrap();
            let tree = MaxInvTree::new(&scan.reads);
            let fast: Vec<(Datum, Outcome, bool)> = scan
                .order
                .iter()
                .map(|e| {
                    let r = scan.elements[e].result(&h, &scan.reads, &tree);
                    (e.clone(), r.outcome, r.stale)
                })
                .collect();
            assert_eq!(fast, naive_outcomes(&h), "seed {seed}");
            seen.extend(fast.iter().map(|(_, o, stale)| format!("{o:?} {stale}")));
        }
        let all = [
            "Lost false",
            "NeverRead false",
            "Stable false",
            "Stable true",
        ];
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            all,
            "every outcome was exercised"
        );
    }

    #[test]
    fn a_read_that_is_not_a_collection_is_a_bad_history() {
        let e = check(&history(read(0, json!(3))), &Options::default()).unwrap_err();
        assert_eq!(e.line, 2);
    }
}
