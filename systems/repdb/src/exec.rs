//! Executing micro-ops, and applying what they wrote.
//!
//! Execution is the same function wherever it happens, against different views: the
//! delegate's snapshot (certification, weak voting, lazy), the newest state at delivery
//! (active replication) or the primary's view including its uncommitted proposals
//! (primary-copy). It yields the ops with reads filled in, the read set, and the write set.
//! A transaction sees its own writes.
//!
//! Applying a write set is deterministic in the store it meets: appends extend the list as
//! it is at commit (not as the snapshot saw it), and type, length and key-count checks
//! abort the whole transaction identically on every replica.

use crate::config::Limits;
use crate::proto::{AbortReason, Key, Mop, Update, Val, WriteSet};
use crate::store::{elements_of, Store};
use std::collections::{BTreeMap, BTreeSet};

/// A state to execute against.
pub trait View {
    /// The value of `key`, or why it cannot be read.
    fn get(&self, key: Key) -> Result<Option<&Val>, AbortReason>;
    /// Keys that exist in this view.
    fn key_count(&self) -> usize;
    /// The view's size (see [`crate::store::elements_of`]).
    fn elements(&self) -> usize;
}

/// The store as of a snapshot version.
pub struct SnapshotView<'a> {
    pub store: &'a Store,
    pub snapshot: crate::proto::Version,
}

impl View for SnapshotView<'_> {
    fn get(&self, key: Key) -> Result<Option<&Val>, AbortReason> {
        self.store
            .read_at(key, self.snapshot)
            .map_err(|e| AbortReason::SnapshotTooOld { key: e.key })
    }

    fn key_count(&self) -> usize {
        self.store.len()
    }

    fn elements(&self) -> usize {
        self.store.elements()
    }
}

/// The store's newest state.
pub struct LatestView<'a>(pub &'a Store);

impl View for LatestView<'_> {
    fn get(&self, key: Key) -> Result<Option<&Val>, AbortReason> {
        Ok(self.0.latest(key))
    }

    fn key_count(&self) -> usize {
        self.0.len()
    }

    fn elements(&self) -> usize {
        self.0.elements()
    }
}

/// An executed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The ops, reads filled in.
    pub ops: Vec<Mop>,
    /// Keys read, sorted, each once.
    pub reads: Vec<Key>,
    pub writes: WriteSet,
    /// The transaction's last value of every key it wrote.
    pub finals: BTreeMap<Key, Val>,
}

impl Executed {
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty()
    }
}

/// Runs `ops` against `view`.
pub fn execute(ops: &[Mop], view: &impl View, limits: &Limits) -> Result<Executed, AbortReason> {
    let mut local: BTreeMap<Key, Val> = BTreeMap::new();
    let mut updates: BTreeMap<Key, Update> = BTreeMap::new();
    let mut reads = BTreeSet::new();
    let mut filled = Vec::with_capacity(ops.len());
    let mut new_keys = 0usize;
    let mut growth = 0usize;
    for op in ops {
        let key = op.key();
        let current = match local.get(&key) {
            Some(v) => Some(v.clone()),
            None => view.get(key)?.cloned(),
        };
        if op.is_write() && current.is_none() {
            new_keys += 1;
            if view.key_count() + new_keys > limits.max_keys {
                return Err(AbortReason::TooManyKeys {
                    max: limits.max_keys,
                });
            }
        }
        // An append grows the database by one element, so does a register write to a new key.
        if matches!(op, Mop::Append { .. }) || (op.is_write() && current.is_none()) {
            growth += 1;
            if view.elements() + growth > limits.max_elements {
                return Err(AbortReason::TooLarge {
                    max: limits.max_elements,
                });
            }
        }
        match op {
            Mop::Read { .. } => {
                reads.insert(key);
                filled.push(Mop::Read {
                    key,
                    value: current,
                });
            }
            Mop::Write { value, .. } => {
                if let Some(Val::List(_)) = current {
                    return Err(AbortReason::WrongType { key });
                }
                local.insert(key, Val::Int(*value));
                updates.insert(key, Update::Set(*value));
                filled.push(op.clone());
            }
            Mop::Append { value, .. } => {
                let mut list = match current {
                    Some(Val::Int(_)) => return Err(AbortReason::WrongType { key }),
                    Some(Val::List(l)) => l,
                    None => Vec::new(),
                };
                if list.len() >= limits.max_list_len {
                    return Err(AbortReason::ListTooLong {
                        key,
                        max: limits.max_list_len,
                    });
                }
                list.push(*value);
                local.insert(key, Val::List(list));
                match updates
                    .entry(key)
                    .or_insert_with(|| Update::Append(Vec::new()))
                {
                    Update::Append(values) => values.push(*value),
                    Update::Set(_) => unreachable!("a key keeps its type within a transaction"),
                }
                filled.push(op.clone());
            }
        }
    }
    let finals = local
        .into_iter()
        .filter(|(k, _)| updates.contains_key(k))
        .collect();
    Ok(Executed {
        ops: filled,
        reads: reads.into_iter().collect(),
        writes: updates.into_iter().collect(),
        finals,
    })
}

/// The new values a write set gives the keys it writes, against the store's newest state;
/// the error aborts the transaction everywhere alike.
pub fn apply(
    store: &Store,
    writes: &WriteSet,
    limits: &Limits,
) -> Result<Vec<(Key, Val)>, AbortReason> {
    if !well_formed(writes, limits) {
        return Err(AbortReason::Malformed(
            "a write set must list each key once, in order, within the limits".into(),
        ));
    }
    let mut out = Vec::with_capacity(writes.len());
    let mut new_keys = 0usize;
    let mut growth = 0usize;
    for (key, update) in writes {
        let key = *key;
        let current = store.latest(key);
        if current.is_none() {
            new_keys += 1;
        }
        let before = current.map_or(0, elements_of);
        let val = match (update, current) {
            (Update::Set(v), None | Some(Val::Int(_))) => Val::Int(*v),
            (Update::Append(values), None) => Val::List(values.clone()),
            (Update::Append(values), Some(Val::List(list))) => {
                let mut list = list.clone();
                list.extend_from_slice(values);
                Val::List(list)
            }
            (Update::Set(_), Some(Val::List(_))) | (Update::Append(_), Some(Val::Int(_))) => {
                return Err(AbortReason::WrongType { key })
            }
        };
        if let Val::List(l) = &val {
            if l.len() > limits.max_list_len {
                return Err(AbortReason::ListTooLong {
                    key,
                    max: limits.max_list_len,
                });
            }
        }
        growth += elements_of(&val).saturating_sub(before);
        out.push((key, val));
    }
    if store.len() + new_keys > limits.max_keys {
        return Err(AbortReason::TooManyKeys {
            max: limits.max_keys,
        });
    }
    if store.elements() + growth > limits.max_elements {
        return Err(AbortReason::TooLarge {
            max: limits.max_elements,
        });
    }
    Ok(out)
}

/// Whether a write set is well formed: sorted by key, each key once, appends not empty.
/// Peers' broadcasts are checked with it before anything is applied.
pub fn well_formed(writes: &WriteSet, limits: &Limits) -> bool {
    writes.len() <= limits.max_mops
        && writes.windows(2).all(|w| w[0].0 < w[1].0)
        && writes.iter().all(|(_, u)| match u {
            Update::Set(_) => true,
            Update::Append(v) => !v.is_empty() && v.len() <= limits.max_mops,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: Key) -> Mop {
        Mop::Read { key, value: None }
    }

    #[test]
    fn a_transaction_sees_its_own_writes_on_top_of_its_snapshot() {
        let mut s = Store::new(8);
        s.install(1, 1, Val::List(vec![10]), 0);
        s.install(1, 2, Val::List(vec![10, 20]), 0);
        let view = SnapshotView {
            store: &s,
            snapshot: 1,
        };
        let ops = [
            r(1),
            Mop::Append { key: 1, value: 30 },
            r(1),
            Mop::Write { key: 2, value: 5 },
            r(2),
        ];
        let ex = execute(&ops, &view, &Limits::default()).unwrap();
        let read = |i: usize| match &ex.ops[i] {
            Mop::Read { value, .. } => value.clone(),
            _ => panic!("not a read"),
        };
        assert_eq!(read(0), Some(Val::List(vec![10])));
        assert_eq!(read(2), Some(Val::List(vec![10, 30])));
        assert_eq!(read(4), Some(Val::Int(5)));
        assert_eq!(ex.reads, vec![1, 2]);
        assert_eq!(
            ex.writes,
            vec![(1, Update::Append(vec![30])), (2, Update::Set(5))]
        );
        // Applied at commit, the append extends the list as it is then.
        let new = apply(&s, &ex.writes, &Limits::default()).unwrap();
        assert_eq!(new[0], (1, Val::List(vec![10, 20, 30])));
    }

    #[test]
    fn types_lengths_and_key_counts_abort() {
        let mut s = Store::new(8);
        s.install(1, 1, Val::Int(1), 0);
        let limits = Limits {
            max_list_len: 2,
            max_keys: 2,
            ..Limits::default()
        };
        let latest = LatestView(&s);
        let append = |key, value| Mop::Append { key, value };
        assert_eq!(
            execute(&[append(1, 5)], &latest, &limits),
            Err(AbortReason::WrongType { key: 1 })
        );
        assert_eq!(
            execute(
                &[append(2, 1), append(2, 2), append(2, 3)],
                &latest,
                &limits
            ),
            Err(AbortReason::ListTooLong { key: 2, max: 2 })
        );
        assert_eq!(
            execute(&[append(2, 1), append(3, 1)], &latest, &limits),
            Err(AbortReason::TooManyKeys { max: 2 })
        );
        let small = Limits {
            max_elements: 2,
            ..Limits::default()
        };
        assert_eq!(
            execute(&[append(2, 1), append(2, 2)], &latest, &small),
            Err(AbortReason::TooLarge { max: 2 })
        );
        assert_eq!(
            apply(&s, &vec![(2, Update::Append(vec![1, 2]))], &small),
            Err(AbortReason::TooLarge { max: 2 })
        );
        let ws = vec![(1, Update::Append(vec![1]))];
        assert_eq!(
            apply(&s, &ws, &limits),
            Err(AbortReason::WrongType { key: 1 })
        );
        assert!(well_formed(
            &vec![(1, Update::Set(1)), (2, Update::Set(1))],
            &limits
        ));
        assert!(!well_formed(
            &vec![(2, Update::Set(1)), (1, Update::Set(1))],
            &limits
        ));
        assert!(!well_formed(&vec![(1, Update::Append(vec![]))], &limits));
    }
}
