//! Jepsen's `long-fork` test: an anomaly parallel snapshot isolation allows and snapshot
//! isolation forbids, where two readers observe two independent writes in opposite orders.
//!
//! Transactions are lists of micro-ops `["r", k, v]` / `["w", k, v]` (`f` is `txn`, `read` or
//! `write`). Write transactions write one key once; read transactions read a group of keys.
//! Since keys only ever go from nil to written, a read is characterised by which keys of its
//! group it saw written. Two reads of the same group *fork* when each saw a write the other did
//! not: no order of the writes explains both. That reasoning needs no more than "written
//! values never go back to nil", so forks are reported even if a key is written twice; what
//! breaks with a second write is Jepsen's assumption that two reads seeing different non-nil
//! values are comparable, so those (and keys written twice) make a history without forks
//! unknown, as in Jepsen.
//!
//! Reads are grouped by the set of keys they read. With [`Options::group_size`], every read
//! must read exactly that many keys (Jepsen's rule; otherwise the history does not come from
//! this test and is a [`BadHistory`]); without it, groups are whatever the reads read.
//! Comparisons are between distinct read *states* of a group, not all pairs of reads, and stop
//! after [`Options::max_state_comparisons`] (the verdict is then unknown unless a fork was
//! already found). One anomaly is reported per pair of forking states, naming the first read of
//! each; `fork_count` in the details counts every pair of forking reads.

use crate::datum::Datum;
use crate::history::{History, OpType, Value};
use crate::set::{describe_op, record_anomaly, short_value};
use crate::verdict::{BadHistory, Verdict};
use rustc_hash::FxHashMap;

/// The checker's name in verdicts.
pub const NAME: &str = "long-fork";

/// How reads are grouped and how much comparing is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Keys per read transaction (Jepsen's `n`). `None`: taken from the reads themselves.
    pub group_size: Option<usize>,
    /// Pairs of distinct read states compared, over all groups, before giving up.
    pub max_state_comparisons: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            group_size: None,
            max_state_comparisons: DEFAULT_MAX_STATE_COMPARISONS,
        }
    }
}

/// Enough for thousands of distinct states per group, a few seconds of work at most.
pub const DEFAULT_MAX_STATE_COMPARISONS: u64 = 50_000_000;
/// Keys named per side when explaining a fork.
const MAX_KEYS_NAMED: usize = 8;

/// Checks `history` for long forks.
pub fn check(history: &History, options: &Options) -> Result<Verdict, BadHistory> {
    let mut verdict = Verdict::new(NAME);
    let written_twice = check_single_writes(history, &mut verdict)?;
    let reads = collect_reads(history, options)?;
    let read_twice = check_values_agree(history, &reads);
    let groups = group_reads(&reads);
    let (forks, stopped) = find_forks(history, &reads, &groups, options, &mut verdict);
    let nothing_read = reads
        .is_empty()
        .then(|| "no ok read transaction: nothing to compare".to_string());
    // Only after the search: a fork found is a proof whatever else went wrong.
    let causes: Vec<String> = [written_twice, read_twice, stopped, nothing_read]
        .into_iter()
        .flatten()
        .collect();
    if !causes.is_empty() {
        verdict.give_up(causes.join("; "));
    }
    verdict.detail("reads_count", reads.len());
    verdict.detail(
        "early_read_count",
        reads
            .iter()
            .filter(|r| r.seen.iter().all(Option::is_none))
            .count(),
    );
    verdict.detail(
        "late_read_count",
        reads
            .iter()
            .filter(|r| r.seen.iter().all(Option::is_some))
            .count(),
    );
    verdict.detail("group_count", groups.len());
    verdict.detail("fork_count", forks);
    Ok(verdict)
}

/// One micro-op: read or write, key, value.
struct Mop {
    write: bool,
    key: Datum,
    value: Datum,
}

/// The micro-ops of op `i`, or `None` if it is not a transaction this test judges.
fn txn_of(history: &History, i: usize) -> Result<Option<Vec<Mop>>, BadHistory> {
    let op = &history.ops[i];
    if !matches!(op.f.as_str(), "txn" | "read" | "write") {
        return Ok(None);
    }
    let bad = |problem: String| BadHistory::at_op(history, i, problem);
    let Value::Array(items) = &op.value else {
        if op.op_type == OpType::Ok {
            return Err(bad(format!(
                "a {} must be a list of micro-ops [f k v], got {}",
                op.f,
                short_value(&op.value)
            )));
        }
        return Ok(None);
    };
    let mut mops = Vec::with_capacity(items.len());
    for item in items {
        mops.push(parse_mop(item).map_err(|why| bad(format!("{why}, in {}", short_value(item))))?);
    }
    Ok(Some(mops))
}

fn parse_mop(item: &Value) -> Result<Mop, &'static str> {
    let Value::Array(parts) = item else {
        return Err("a micro-op must be a list [f k v]");
    };
    let [f, k, v] = parts.as_slice() else {
        return Err("a micro-op must have exactly three elements [f k v]");
    };
    let write = match f.as_str() {
        Some("r") => false,
        Some("w") => true,
        _ => return Err("a long-fork micro-op must be \"r\" or \"w\""),
    };
    Ok(Mop {
        write,
        key: Datum::from_json(k),
        value: Datum::from_json(v),
    })
}

/// Jepsen's single-write rule: each key is the target of at most one write transaction
/// invocation. Returns why the verdict must be unknown if not (forks are still looked for).
fn check_single_writes(
    history: &History,
    verdict: &mut Verdict,
) -> Result<Option<String>, BadHistory> {
    let mut writers: FxHashMap<Datum, usize> = FxHashMap::default();
    let mut written_twice = 0usize;
    let mut first_conflict = None;
    for i in 0..history.len() {
        if history.ops[i].op_type != OpType::Invoke {
            continue;
        }
        let Some(mops) = txn_of(history, i)? else {
            continue;
        };
        let [Mop {
            write: true, key, ..
        }] = mops.as_slice()
        else {
            continue;
        };
        match writers.get(key) {
            Some(&first) => {
                written_twice += 1;
                first_conflict.get_or_insert((key.clone(), first, i));
            }
            None => {
                writers.insert(key.clone(), i);
            }
        }
    }
    verdict.detail("write_count", writers.len() + written_twice);
    Ok(first_conflict.map(|(key, a, b)| {
        format!(
            "key {key} is written more than once (at {} and at {}; {written_twice} repeated \
             writes in all), but this test assumes each key is written once",
            describe_op(history, a),
            describe_op(history, b)
        )
    }))
}

/// One ok read transaction: its group (sorted distinct keys) and what it saw of each.
struct ReadTxn {
    at: usize,
    keys: Vec<Datum>,
    /// Per key of `keys`, the value read (`None`: nil, not yet written).
    seen: Vec<Option<Datum>>,
}

/// The ok transactions that only read, checked against the group size.
fn collect_reads(history: &History, options: &Options) -> Result<Vec<ReadTxn>, BadHistory> {
    let mut reads = Vec::new();
    for i in 0..history.len() {
        if history.ops[i].op_type != OpType::Ok {
            continue;
        }
        let Some(mops) = txn_of(history, i)? else {
            continue;
        };
        if mops.is_empty() || mops.iter().any(|m| m.write) {
            continue;
        }
        let read = read_txn(i, mops);
        if let Some(n) = options.group_size {
            if read.keys.len() != n {
                return Err(BadHistory::at_op(
                    history,
                    i,
                    format!(
                        "every read in this history should read exactly {n} keys, but this one \
                         read {}: {}",
                        read.keys.len(),
                        short_value(&history.ops[i].value)
                    ),
                ));
            }
        }
        reads.push(read);
    }
    Ok(reads)
}

/// A read's keys, sorted and distinct; a key read twice keeps its last value, as in Jepsen.
fn read_txn(at: usize, mops: Vec<Mop>) -> ReadTxn {
    let mut by_key: Vec<(Datum, Option<Datum>)> = mops
        .into_iter()
        .map(|m| (m.key, (!m.value.is_null()).then_some(m.value)))
        .collect();
    // Stable: within one key, the mops stay in transaction order, so the last is the last read.
    by_key.sort_by(|a, b| a.0.cmp(&b.0));
    let mut keys = Vec::with_capacity(by_key.len());
    let mut seen = Vec::with_capacity(by_key.len());
    for (key, value) in by_key {
        if keys.last() == Some(&key) {
            if let Some(last) = seen.last_mut() {
                *last = value;
            }
        } else {
            keys.push(key);
            seen.push(value);
        }
    }
    ReadTxn { at, keys, seen }
}

/// Two reads that saw different non-nil values of one key break the single-write assumption:
/// returns why the verdict must be unknown (unless a fork proves it invalid).
fn check_values_agree(history: &History, reads: &[ReadTxn]) -> Option<String> {
    let mut first_seen: FxHashMap<&Datum, (&Datum, usize)> = FxHashMap::default();
    for r in reads {
        for (key, value) in r.keys.iter().zip(&r.seen) {
            let Some(value) = value else { continue };
            match first_seen.get(key) {
                None => {
                    first_seen.insert(key, (value, r.at));
                }
                Some(&(other, at)) if other != value => {
                    return Some(format!(
                        "key {key} was read as {other} at {} and as {value} at {}: it was \
                         written more than once, but this test assumes each key is written once",
                        describe_op(history, at),
                        describe_op(history, r.at)
                    ));
                }
                Some(_) => {}
            }
        }
    }
    None
}

/// A group: reads of the same key set, folded into distinct states.
struct Group {
    /// Distinct states in order of first appearance: which keys were seen written (a bitset),
    /// how many reads had it, and the first such read (index into the reads).
    states: Vec<State>,
}

struct State {
    written: Vec<u64>,
    reads: u64,
    first: usize,
}

/// Groups reads by key set, in order of first appearance, and folds equal states.
fn group_reads(reads: &[ReadTxn]) -> Vec<Group> {
    let mut index: FxHashMap<&[Datum], usize> = FxHashMap::default();
    let mut state_index: Vec<FxHashMap<Vec<u64>, usize>> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for (r, read) in reads.iter().enumerate() {
        let g = *index.entry(read.keys.as_slice()).or_insert_with(|| {
            groups.push(Group { states: Vec::new() });
            state_index.push(FxHashMap::default());
            groups.len() - 1
        });
        let written = bitset(&read.seen);
        let states = &mut groups[g].states;
        let s = *state_index[g].entry(written.clone()).or_insert_with(|| {
            states.push(State {
                written,
                reads: 0,
                first: r,
            });
            states.len() - 1
        });
        states[s].reads += 1;
    }
    groups
}

fn bitset(seen: &[Option<Datum>]) -> Vec<u64> {
    let mut bits = vec![0u64; seen.len().div_ceil(64)];
    for (i, v) in seen.iter().enumerate() {
        if v.is_some() {
            bits[i / 64] |= 1 << (i % 64);
        }
    }
    bits
}

/// Whether every key set in `a` is set in `b`.
fn subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x & !y == 0)
}

/// Compares the distinct states of each group pairwise, within the budget; returns the number
/// of forking pairs of reads, and why the search stopped early if it did.
fn find_forks(
    history: &History,
    reads: &[ReadTxn],
    groups: &[Group],
    options: &Options,
    verdict: &mut Verdict,
) -> (u64, Option<String>) {
    let mut budget = options.max_state_comparisons;
    let mut forks = 0u64;
    for (g, group) in groups.iter().enumerate() {
        let states = &group.states;
        for (i, a) in states.iter().enumerate() {
            for b in &states[i + 1..] {
                if budget == 0 {
                    let why = format!(
                        "stopped after {} comparisons of distinct read states (the limit), in \
                         group {} of {}; later pairs were not compared",
                        options.max_state_comparisons,
                        g + 1,
                        groups.len()
                    );
                    return (forks, Some(why));
                }
                budget -= 1;
                if subset(&a.written, &b.written) || subset(&b.written, &a.written) {
                    continue;
                }
                forks = forks.saturating_add(a.reads.saturating_mul(b.reads));
                record_anomaly(verdict, "long-fork", || {
                    explain_fork(history, &reads[a.first], &reads[b.first])
                });
            }
        }
    }
    (forks, None)
}

/// Names the two reads, their values, and the writes each saw that the other did not.
fn explain_fork(history: &History, a: &ReadTxn, b: &ReadTxn) -> String {
    let only = |x: &ReadTxn, y: &ReadTxn| -> String {
        let keys: Vec<String> = x
            .keys
            .iter()
            .zip(x.seen.iter().zip(&y.seen))
            .filter(|(_, (sx, sy))| sx.is_some() && sy.is_none())
            .take(MAX_KEYS_NAMED)
            .map(|(k, _)| k.to_string())
            .collect();
        keys.join(", ")
    };
    format!(
        "read at {} returned {} and read at {} returned {}: the first saw the write of key(s) \
         {} but not of {}, the second saw {} but not {}, so no order of the writes explains \
         both",
        describe_op(history, a.at),
        short_value(&history.ops[a.at].value),
        describe_op(history, b.at),
        short_value(&history.ops[b.at].value),
        only(a, b),
        only(b, a),
        only(b, a),
        only(a, b),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType::{Invoke, Ok as Done};
    use crate::set::test_support::{history, Event};
    use crate::verdict::Validity;
    use serde_json::json;

    fn write(p: u64, k: i64) -> Vec<Event> {
        let v = json!([["w", k, 1]]);
        vec![(Invoke, p, "txn", v.clone()), (Done, p, "txn", v)]
    }

    fn read(p: u64, seen: &[(i64, Option<i64>)]) -> Vec<Event> {
        let inv: Vec<Value> = seen.iter().map(|(k, _)| json!(["r", k, null])).collect();
        let ok: Vec<Value> = seen.iter().map(|(k, v)| json!(["r", k, v])).collect();
        vec![
            (Invoke, p, "txn", Value::Array(inv)),
            (Done, p, "txn", Value::Array(ok)),
        ]
    }

    fn run(parts: Vec<Vec<Event>>, options: &Options) -> Result<Verdict, BadHistory> {
        check(&history(parts.concat()), options)
    }

    #[test]
    fn reads_in_one_order_of_writes_are_valid() {
        let v = run(
            vec![
                write(0, 0),
                read(1, &[(0, Some(1)), (1, None)]),
                write(0, 1),
                read(1, &[(1, Some(1)), (0, Some(1))]),
                read(2, &[(0, None), (1, None)]),
            ],
            &Options::default(),
        )
        .unwrap();
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["reads_count"], 3);
        assert_eq!(v.details["early_read_count"], 1);
        assert_eq!(v.details["late_read_count"], 1);
        assert_eq!(v.details["group_count"], 1);
    }

    #[test]
    fn reads_that_saw_different_writes_fork() {
        let v = run(
            vec![
                write(0, 0),
                write(3, 1),
                read(1, &[(0, Some(1)), (1, None)]),
                read(2, &[(1, Some(1)), (0, None)]),
                read(4, &[(0, Some(1)), (1, None)]),
            ],
            &Options {
                group_size: Some(2),
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomaly_types, vec!["long-fork"]);
        let why = &v.anomalies["long-fork"][0];
        assert!(why.contains("read at line 6 (process 1, ok txn"), "{why}");
        assert!(why.contains("read at line 8 (process 2, ok txn"), "{why}");
        assert!(why.contains("[[\"r\",0,1],[\"r\",1,null]]"), "{why}");
        assert!(
            why.contains("saw the write of key(s) 0 but not of 1"),
            "{why}"
        );
        // Two reads share the first state, so two pairs of reads fork.
        assert_eq!(v.details["fork_count"], 2);
        assert_eq!(v.anomaly_counts["long-fork"], 1);
    }

    #[test]
    fn different_groups_are_not_compared() {
        let v = run(
            vec![
                read(1, &[(0, Some(1)), (1, None)]),
                read(2, &[(2, Some(1)), (3, None)]),
            ],
            &Options::default(),
        )
        .unwrap();
        assert_eq!(v.valid, Validity::Valid);
        assert_eq!(v.details["group_count"], 2);
    }

    #[test]
    fn a_key_written_twice_is_unknown_but_a_fork_still_proves_invalid() {
        let v = run(
            vec![write(0, 0), write(1, 0), read(2, &[(0, Some(1))])],
            &Options::default(),
        )
        .unwrap();
        assert_eq!(v.valid, Validity::Unknown);
        assert!(v.cause.unwrap().contains("key 0 is written more than once"));

        let v = run(
            vec![
                write(0, 0),
                write(1, 0),
                read(2, &[(0, Some(1)), (1, None)]),
                read(3, &[(0, None), (1, Some(1))]),
            ],
            &Options::default(),
        )
        .unwrap();
        assert_eq!(v.valid, Validity::Invalid);
    }

    #[test]
    fn different_values_for_one_key_are_unknown() {
        let v = run(
            vec![read(1, &[(0, Some(1))]), read(2, &[(0, Some(2))])],
            &Options::default(),
        )
        .unwrap();
        assert_eq!(v.valid, Validity::Unknown);
        assert!(v.cause.unwrap().contains("read as 1 at line 2"));
    }

    #[test]
    fn the_comparison_budget_gives_up() {
        let v = run(
            vec![
                read(1, &[(0, Some(1)), (1, None), (2, None)]),
                read(2, &[(0, None), (1, Some(1)), (2, None)]),
                read(3, &[(0, None), (1, None), (2, Some(1))]),
            ],
            &Options {
                group_size: None,
                max_state_comparisons: 1,
            },
        )
        .unwrap();
        assert_eq!(
            v.valid,
            Validity::Invalid,
            "the first comparison already forks"
        );
        assert_eq!(v.anomaly_counts["long-fork"], 1);
        assert!(v.cause.unwrap().contains("stopped after 1 comparisons"));
    }

    #[test]
    fn malformed_transactions_are_bad_histories_naming_the_line() {
        let e = run(
            vec![read(1, &[(0, None)])],
            &Options {
                group_size: Some(3),
                ..Options::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("exactly 3 keys"), "{e}");

        let h = history(vec![(Invoke, 0, "txn", json!([["append", 0, 1]]))]);
        let e = check(&h, &Options::default()).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.problem.contains("\"r\" or \"w\""), "{e}");

        let h = history(vec![
            (Invoke, 0, "read", Value::Null),
            (Done, 0, "read", json!(5)),
        ]);
        let e = check(&h, &Options::default()).unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn no_read_is_unknown() {
        let v = run(vec![write(0, 0)], &Options::default()).unwrap();
        assert_eq!(v.valid, Validity::Unknown);
    }
}
