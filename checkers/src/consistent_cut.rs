//! Consistent cuts (incremental snapshots in the style of Apache Ignite's consistent cut):
//! every committed transaction falls on one side of a cut on every node it touched, cuts
//! nest, and a restored snapshot satisfies the workload's invariant.
//!
//! # Input
//!
//! The shared event log of [`crate::atomic_commit`] (same line format, same errors, same
//! limits); this checker reads these events and ignores all others:
//!
//! ```text
//! {"time":1,"node":"n1","event":"commit","txn":7}                   n1 committed its part of 7
//! {"time":2,"node":"n1","event":"snapshot-start","snapshot":"s1"}    ConsistentCutStartRecord
//! {"time":3,"node":"n1","event":"commit","txn":8}
//! {"time":4,"node":"n1","event":"snapshot-finish","snapshot":"s1","before":[8],"after":[]}
//!                                                                    ConsistentCutFinishRecord
//! ```
//!
//! A node takes a snapshot at most once: a second `snapshot-start` of the same snapshot on a
//! node, or a `snapshot-finish` without a start, is a [`BadHistory`] at the line. A
//! transaction touched a node when the node has a `commit` of it (the first one counts).
//!
//! # Sides
//!
//! As in Ignite, on node n, committed transaction T is on the *before* side of snapshot S
//! when T is in S's `before` list, or T committed before S started on n and is not in S's
//! `after` list; otherwise it is *after* (the `after` list wins over `before`). Only snapshots
//! that n finished count; unfinished ones are counted in the detail `incomplete_snapshots`.
//! Snapshots are ordered by their first `snapshot-start` in the log.
//!
//! # Checks (anomaly types)
//!
//! - `cut-split-transaction`: T is before S on one node and after S on another (or in both
//!   lists of one node): the snapshot holds part of T.
//! - `cuts-not-nested`: T is before snapshot S on some node but after a later snapshot S' on
//!   some node; each later cut must contain every earlier one.
//! - `restored-invariant-violated`: the caller's invariant rejects the state a snapshot
//!   restores ([`Restored`]: the transactions before it on some node), for each snapshot
//!   that every node which started it also finished.
//!
//! The work is the commits on each node times the snapshots it finished, bounded by
//! [`MAX_CUT_WORK`] (beyond it the verdict gives up).

use crate::atomic_commit::{EventKind, Events};
use crate::one_copy::TxnId;
use crate::verdict::{BadHistory, Verdict};
use rustc_hash::{FxHashMap, FxHashSet};

/// Commit-by-snapshot side computations before giving up.
pub const MAX_CUT_WORK: u64 = 100_000_000;
/// The checker's name in verdicts.
pub const CHECKER: &str = "consistent-cut";

/// The state a snapshot restores, for the workload's invariant.
#[derive(Clone, Debug, PartialEq)]
pub struct Restored<'a> {
    pub snapshot: &'a TxnId,
    /// Transactions before the cut on some node, in order of first appearance in the log.
    pub txns: Vec<&'a TxnId>,
}

/// The workload's invariant over a restored state: `Err` says what is wrong.
pub type Invariant<'a> = dyn Fn(&Restored) -> Result<(), String> + 'a;

/// One node's part of one snapshot.
#[derive(Clone, Debug)]
struct Local {
    start: usize,
    finish: Option<(usize, FxHashSet<u32>, FxHashSet<u32>)>,
}

/// The side of a transaction relative to a cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Before,
    After,
}

/// Snapshots in order of first start, each node's part, and each node's commits.
struct Gathered<'a> {
    snapshots: Vec<&'a TxnId>,
    /// Per snapshot, per node that started it: its part.
    locals: Vec<Vec<(u32, Local)>>,
    /// Per node: (txn, line) of first commits, in log order.
    commits: Vec<Vec<(u32, usize)>>,
}

fn gather(ev: &Events) -> Result<Gathered<'_>, BadHistory> {
    let mut snapshots: Vec<&TxnId> = Vec::new();
    let mut index: FxHashMap<&TxnId, usize> = FxHashMap::default();
    let mut locals: Vec<Vec<(u32, Local)>> = Vec::new();
    let mut local_index: FxHashMap<(usize, u32), usize> = FxHashMap::default();
    let mut commits: Vec<Vec<(u32, usize)>> = vec![Vec::new(); ev.nodes.len()];
    let mut committed: FxHashSet<(u32, u32)> = FxHashSet::default();
    for e in &ev.events {
        let Some(node) = e.node else { continue };
        match &e.kind {
            EventKind::Commit { txn } if committed.insert((*txn, node)) => {
                commits[node as usize].push((*txn, e.line));
            }
            EventKind::SnapshotStart { snapshot } => {
                let s = *index.entry(snapshot).or_insert_with(|| {
                    snapshots.push(snapshot);
                    locals.push(Vec::new());
                    snapshots.len() - 1
                });
                if let Some(&i) = local_index.get(&(s, node)) {
                    return Err(ev.bad(
                        e.line,
                        format!(
                            "{} already started snapshot {snapshot} at line {}",
                            ev.node_name(node),
                            locals[s][i].1.start
                        ),
                    ));
                }
                local_index.insert((s, node), locals[s].len());
                locals[s].push((
                    node,
                    Local {
                        start: e.line,
                        finish: None,
                    },
                ));
            }
            EventKind::SnapshotFinish {
                snapshot,
                before,
                after,
            } => {
                let found = index
                    .get(snapshot)
                    .and_then(|&s| local_index.get(&(s, node)).map(|&i| (s, i)));
                let Some((s, i)) = found else {
                    return Err(ev.bad(
                        e.line,
                        format!(
                            "{} finished snapshot {snapshot} without starting it",
                            ev.node_name(node)
                        ),
                    ));
                };
                let local = &mut locals[s][i].1;
                if let Some((l, _, _)) = &local.finish {
                    return Err(ev.bad(
                        e.line,
                        format!(
                            "{} already finished snapshot {snapshot} at line {l}",
                            ev.node_name(node)
                        ),
                    ));
                }
                local.finish = Some((
                    e.line,
                    before.iter().copied().collect(),
                    after.iter().copied().collect(),
                ));
            }
            _ => {}
        }
    }
    Ok(Gathered {
        snapshots,
        locals,
        commits,
    })
}

/// The first node and line that put a transaction on each side of one cut.
#[derive(Clone, Copy, Debug, Default)]
struct Witnesses {
    before: Option<(u32, usize)>,
    after: Option<(u32, usize)>,
}

/// Checks a parsed log, with the workload's invariant if there is one (checks in the module
/// docs).
pub fn check(ev: &Events, invariant: Option<&Invariant>) -> Result<Verdict, BadHistory> {
    let g = gather(ev)?;
    let mut v = Verdict::new(CHECKER);
    let work: u64 = g
        .locals
        .iter()
        .flatten()
        .map(|(n, _)| g.commits[*n as usize].len() as u64)
        .sum();
    v.detail("snapshots", g.snapshots.len());
    if work > MAX_CUT_WORK {
        v.give_up(format!(
            "{work} commit-by-snapshot comparisons exceed the limit of {MAX_CUT_WORK}"
        ));
        return Ok(v);
    }
    // Per transaction, the first cut (index, node, line) that had it before.
    let mut first_before: FxHashMap<u32, (usize, u32, usize)> = FxHashMap::default();
    let mut reported_nesting: FxHashSet<u32> = FxHashSet::default();
    let mut incomplete = 0usize;
    for (s, parts) in g.locals.iter().enumerate() {
        let sides = sides_of_cut(ev, &g, s, parts, &mut v);
        incomplete += parts.iter().filter(|(_, l)| l.finish.is_none()).count();
        let mut txns: Vec<u32> = sides.keys().copied().collect();
        txns.sort_unstable();
        for &t in &txns {
            let w = sides[&t];
            if let (Some((bn, bl)), Some((an, al))) = (w.before, w.after) {
                v.anomaly(
                    "cut-split-transaction",
                    format!(
                        "snapshot {}: txn {} is before the cut on {} (line {bl}) but after it on {} (line {al})",
                        g.snapshots[s],
                        ev.txn_name(t),
                        ev.node_name(bn),
                        ev.node_name(an)
                    ),
                );
            }
            if let (Some((fs, fnode, fl)), Some((an, al))) =
                (first_before.get(&t).copied(), w.after)
            {
                if fs < s && reported_nesting.insert(t) {
                    v.anomaly(
                        "cuts-not-nested",
                        format!(
                            "txn {} is before snapshot {} on {} (line {fl}) but after the later snapshot {} on {} (line {al})",
                            ev.txn_name(t),
                            g.snapshots[fs],
                            ev.node_name(fnode),
                            g.snapshots[s],
                            ev.node_name(an)
                        ),
                    );
                }
            }
            if let Some((bn, bl)) = w.before {
                first_before.entry(t).or_insert((s, bn, bl));
            }
        }
        let complete = parts.iter().all(|(_, l)| l.finish.is_some());
        if let (Some(inv), true) = (invariant, complete) {
            let restored = Restored {
                snapshot: g.snapshots[s],
                txns: txns
                    .iter()
                    .filter(|t| sides[t].before.is_some())
                    .filter_map(|&t| ev.txns.get(t as usize))
                    .collect(),
            };
            if let Err(why) = inv(&restored) {
                v.anomaly(
                    "restored-invariant-violated",
                    format!(
                        "snapshot {} restores {} transactions: {why}",
                        g.snapshots[s],
                        restored.txns.len()
                    ),
                );
            }
        }
    }
    v.detail("incomplete_snapshots", incomplete);
    v.detail("commits", g.commits.iter().map(Vec::len).sum::<usize>());
    Ok(v)
}

/// The sides of every transaction committed on a node that finished snapshot `s`; a
/// transaction in both lists of one node is reported as split right here.
fn sides_of_cut(
    ev: &Events,
    g: &Gathered,
    s: usize,
    parts: &[(u32, Local)],
    v: &mut Verdict,
) -> FxHashMap<u32, Witnesses> {
    let mut sides: FxHashMap<u32, Witnesses> = FxHashMap::default();
    for (n, local) in parts {
        let Some((finish_line, before, after)) = &local.finish else {
            continue;
        };
        for &(t, line) in &g.commits[*n as usize] {
            if before.contains(&t) && after.contains(&t) {
                v.anomaly(
                    "cut-split-transaction",
                    format!(
                        "snapshot {}: {} lists txn {} both before and after the cut (line {finish_line})",
                        g.snapshots[s],
                        ev.node_name(*n),
                        ev.txn_name(t)
                    ),
                );
            }
            let side = if after.contains(&t) {
                Side::After
            } else if before.contains(&t) || line < local.start {
                Side::Before
            } else {
                Side::After
            };
            let w = sides.entry(t).or_default();
            let slot = match side {
                Side::Before => &mut w.before,
                Side::After => &mut w.after,
            };
            slot.get_or_insert((*n, line));
        }
    }
    sides
}

/// Parses and checks in one step.
pub fn check_text(
    file: &str,
    text: &str,
    invariant: Option<&Invariant>,
) -> Result<Verdict, BadHistory> {
    check(&crate::atomic_commit::parse_events(file, text)?, invariant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic_commit::test_log;
    use crate::verdict::Validity;

    fn verdict(lines: &[&str]) -> Verdict {
        check_text("t", &test_log(lines), None).expect("valid log")
    }

    /// Txn 1 commits on n1 and n2 before the cut, txn 2 on both during it (listed before on
    /// n1, which committed it after its start, and committed before n2's start), txn 3 after.
    const CLEAN: &[&str] = &[
        r#"{"node":"n1","event":"commit","txn":1}"#,
        r#"{"node":"n2","event":"commit","txn":1}"#,
        r#"{"node":"n1","event":"snapshot-start","snapshot":"s1"}"#,
        r#"{"node":"n1","event":"commit","txn":2}"#,
        r#"{"node":"n2","event":"commit","txn":2}"#,
        r#"{"node":"n2","event":"snapshot-start","snapshot":"s1"}"#,
        r#"{"node":"n1","event":"snapshot-finish","snapshot":"s1","before":[2],"after":[]}"#,
        r#"{"node":"n2","event":"snapshot-finish","snapshot":"s1","before":[],"after":[]}"#,
        r#"{"node":"n1","event":"commit","txn":3}"#,
        r#"{"node":"n2","event":"commit","txn":3}"#,
        r#"{"node":"n1","event":"snapshot-start","snapshot":"s2"}"#,
        r#"{"node":"n2","event":"snapshot-start","snapshot":"s2"}"#,
        r#"{"node":"n1","event":"snapshot-finish","snapshot":"s2","before":[],"after":[]}"#,
        r#"{"node":"n2","event":"snapshot-finish","snapshot":"s2","before":[],"after":[]}"#,
    ];

    #[test]
    fn clean_cuts_are_valid() {
        let v = verdict(CLEAN);
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["snapshots"], 2);
    }

    #[test]
    fn unlisted_commit_during_the_cut_splits_the_transaction() {
        // n1 forgets to list txn 2 (no marker): it lands after on n1, before on n2.
        let mut lines = CLEAN.to_vec();
        lines[6] =
            r#"{"node":"n1","event":"snapshot-finish","snapshot":"s1","before":[],"after":[]}"#;
        let v = verdict(&lines);
        assert_eq!(
            v.anomaly_types,
            vec!["cut-split-transaction"],
            "{}",
            v.explain()
        );
        let proof = &v.anomalies["cut-split-transaction"][0];
        assert!(proof.contains("snapshot \"s1\": txn 2 is before the cut on n2 (line 5) but after it on n1 (line 4)"), "{proof}");
    }

    #[test]
    fn both_lists_on_one_node_is_a_split() {
        let mut lines = CLEAN.to_vec();
        lines[6] =
            r#"{"node":"n1","event":"snapshot-finish","snapshot":"s1","before":[2],"after":[2]}"#;
        let v = verdict(&lines);
        assert!(v.anomalies["cut-split-transaction"]
            .iter()
            .any(|p| p.contains("both before and after")));
    }

    #[test]
    fn a_later_cut_must_contain_the_earlier() {
        // s2 lists txn 1 (committed long before) as after on both nodes: not split, not nested.
        let mut lines = CLEAN.to_vec();
        lines[12] =
            r#"{"node":"n1","event":"snapshot-finish","snapshot":"s2","before":[],"after":[1]}"#;
        lines[13] =
            r#"{"node":"n2","event":"snapshot-finish","snapshot":"s2","before":[],"after":[1]}"#;
        let v = verdict(&lines);
        assert_eq!(v.anomaly_types, vec!["cuts-not-nested"], "{}", v.explain());
        assert!(v.anomalies["cuts-not-nested"][0].contains(
            "txn 1 is before snapshot \"s1\" on n1 (line 1) but after the later snapshot \"s2\""
        ));
        assert_eq!(
            v.anomaly_counts["cuts-not-nested"], 1,
            "once per transaction"
        );
    }

    #[test]
    fn the_invariant_judges_each_restored_snapshot() {
        // The workload's invariant: txn 3 depends on txn 2 (it read 2's write).
        let inv = |r: &Restored| -> Result<(), String> {
            let has = |id: i128| r.txns.contains(&&TxnId::Int(id));
            if has(3) && !has(2) {
                return Err("txn 3 without txn 2, which it read from".into());
            }
            Ok(())
        };
        let v = check_text("t", &test_log(CLEAN), Some(&inv)).expect("valid");
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        let seen = std::cell::RefCell::new(Vec::new());
        let record = |r: &Restored| -> Result<(), String> {
            seen.borrow_mut().push((r.snapshot.clone(), r.txns.len()));
            Err("always".into())
        };
        let v = check_text("t", &test_log(CLEAN), Some(&record)).expect("valid");
        assert_eq!(v.anomaly_counts["restored-invariant-violated"], 2);
        assert_eq!(
            *seen.borrow(),
            vec![(TxnId::Str("s1".into()), 2), (TxnId::Str("s2".into()), 3)]
        );
        // An unfinished snapshot is not restored, and is counted.
        let v = check_text("t", &test_log(&CLEAN[..12]), Some(&record)).expect("valid");
        assert_eq!(v.anomaly_counts["restored-invariant-violated"], 1);
        assert_eq!(v.details["incomplete_snapshots"], 2);
    }

    #[test]
    fn bad_snapshots_name_the_line() {
        let cases: &[(&[&str], &str)] = &[
            (
                &[
                    r#"{"node":"n","event":"commit","txn":1}"#,
                    r#"{"node":"n","event":"snapshot-finish","snapshot":1,"before":[],"after":[]}"#,
                ],
                "without starting it",
            ),
            (
                &[
                    r#"{"node":"n","event":"snapshot-start","snapshot":1}"#,
                    r#"{"node":"n","event":"snapshot-start","snapshot":1}"#,
                ],
                "already started snapshot 1 at line 1",
            ),
            (
                &[
                    r#"{"node":"n","event":"snapshot-start","snapshot":1}"#,
                    r#"{"node":"n","event":"snapshot-finish","snapshot":1,"before":[]}"#,
                ],
                "missing field \"after\"",
            ),
        ];
        for (lines, problem) in cases {
            let e = check_text("t", &test_log(lines), None).expect_err(problem);
            assert_eq!(e.line, 2, "{e}");
            assert!(e.problem.contains(problem), "{e}");
        }
    }
}
