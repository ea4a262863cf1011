//! Restoring a snapshot into a new cluster, the pure half: which snapshot (the newest taken
//! one whose parts were all fetched), and judging what the restored cluster reads against
//! those parts. The harness deploys the cluster and does the reading.

use super::facts::{self, Balances};
use checkers::history::History;
use checkers::verdict::{BadHistory, Verdict};
use serde_json::json;
use std::collections::BTreeMap;
use twopc::proto::{Key, SnapshotPart};

/// The checker's name in verdicts.
pub const CHECKER: &str = "restore";

/// A snapshot to restore: its id and each participant's part, by node name (`n2`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub snapshot: u64,
    pub parts: BTreeMap<String, SnapshotPart>,
    /// The setup's accounts, which the restored cluster is asked for.
    pub accounts: Vec<Key>,
    /// The setup's total, which the restored balances must sum to.
    pub total: i64,
}

impl Plan {
    /// The balances the parts hold together.
    pub fn balances(&self) -> Balances {
        self.parts
            .values()
            .flat_map(|p| p.kv.iter().copied())
            .collect()
    }
}

/// The newest taken snapshot whose every part was fetched; `Ok(None)` when there is none.
pub fn plan(history: &History) -> Result<Option<Plan>, BadHistory> {
    let f = facts::read(history)?;
    let (Some((_, setup)), Some(parts)) = (f.setup.as_ref(), f.parts.as_ref()) else {
        return Ok(None);
    };
    let total = setup.values().sum();
    let taken = f.snapshots_taken.union(&parts.taken);
    for &s in taken.collect::<Vec<_>>().iter().rev() {
        if let Some(complete) = parts.complete(*s) {
            return Ok(Some(Plan {
                snapshot: *s,
                parts: complete
                    .into_iter()
                    .map(|(n, p)| (n.to_string(), p.clone()))
                    .collect(),
                accounts: setup.keys().copied().collect(),
                total,
            }));
        }
    }
    Ok(None)
}

/// Judges what the restored cluster read (every account, in one transaction).
pub fn judge(plan: &Plan, read: &[(Key, Option<i64>)]) -> Verdict {
    let mut v = Verdict::new(CHECKER);
    let expected = plan.balances();
    let got: BTreeMap<Key, Option<i64>> = read.iter().copied().collect();
    let want: BTreeMap<Key, Option<i64>> = expected.iter().map(|(k, b)| (*k, Some(*b))).collect();
    if got != want {
        v.anomaly(
            "restore-differs",
            format!(
                "the cluster restored from snapshot {} reads {got:?}, but its parts hold {want:?}",
                plan.snapshot
            ),
        );
    }
    let sum: i64 = expected.values().sum();
    if sum != plan.total {
        v.anomaly(
            "restore-total-wrong",
            format!(
                "snapshot {}'s parts sum to {sum}, not the total {}",
                plan.snapshot, plan.total
            ),
        );
    }
    v.detail("snapshot", plan.snapshot);
    v.detail("accounts", expected.len());
    v.detail("total", sum);
    v.detail("read", json!(read));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let part = |kv: Vec<(u64, i64)>| SnapshotPart {
            kv,
            before: vec![],
            after: vec![],
        };
        Plan {
            snapshot: 3,
            parts: [
                ("n2".to_string(), part(vec![(0, 60), (2, 40)])),
                ("n3".to_string(), part(vec![(1, 100)])),
            ]
            .into(),
            accounts: vec![0, 1, 2],
            total: 200,
        }
    }

    #[test]
    fn a_restore_reading_its_parts_is_valid_and_any_difference_is_named() {
        let good = judge(&plan(), &[(0, Some(60)), (1, Some(100)), (2, Some(40))]);
        assert_eq!(good.valid, checkers::verdict::Validity::Valid, "{good:?}");
        let bad = judge(&plan(), &[(0, Some(60)), (1, None), (2, Some(40))]);
        assert_eq!(bad.anomaly_types, vec!["restore-differs".to_string()]);
        let mut short = plan();
        short.total = 201;
        let wrong = judge(&short, &[(0, Some(60)), (1, Some(100)), (2, Some(40))]);
        assert_eq!(wrong.anomaly_types, vec!["restore-total-wrong".to_string()]);
    }
}
