//! The transactions a run issues: Elle's list-append and rw-register on a few contended
//! keys.
//!
//! Contention is the point: certification aborts conflicting transactions, and lazy
//! replication lets replicas order conflicting commits differently, which only shows when
//! clients of different replicas write the same keys at nearly the same time. So a handful
//! of keys are in use at once. Each retires after a bounded number of writes and a fresh key
//! takes its place, which keeps lists (and the checker's work per read) short however long
//! the run, and stays far below the database's limits on list length. Every write gets a
//! fresh value, unique in the run: Elle needs that to tell versions apart, and the value of a
//! transaction's first write is its id ([`super::txn_id`]). Pure and deterministic: the same
//! config and RNG stream give the same transactions.

use checkers::history::Value;
use checkers::rng::Rng;
use checkers::txn::Workload;
use repdb::json::mops_to_json;
use repdb::proto::{Key, Mop};

/// How [`TxnOps`] draws transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnConfig {
    pub workload: Workload,
    /// Keys in use at once. Fewer keys, more conflicts.
    pub active_keys: usize,
    /// Writes to a key before it retires (list-append: the longest a list gets).
    pub writes_per_key: u64,
    /// Micro-ops per transaction, from 1 to this.
    pub max_mops: u64,
    /// Out of 100, how many micro-ops read.
    pub read_percent: u64,
}

impl TxnConfig {
    pub fn new(workload: Workload) -> TxnConfig {
        TxnConfig {
            workload,
            active_keys: 4,
            writes_per_key: match workload {
                Workload::ListAppend => 64,
                // A register's versions are ordered only through reads: fewer per key keep
                // that inference tight.
                Workload::RwRegister => 32,
            },
            max_mops: 4,
            read_percent: 50,
        }
    }
}

/// Bounds that keep a config inside what the database accepts (64 micro-ops per
/// transaction, 1,024 elements per list) and what a checker can judge.
pub const MAX_ACTIVE_KEYS: usize = 1_000;
pub const MAX_WRITES_PER_KEY: u64 = 1_000;
pub const MAX_MOPS: u64 = 64;

/// A config that cannot drive a test, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxnConfigError {
    #[error("active_keys must be 1 to {MAX_ACTIVE_KEYS}, not {0}")]
    ActiveKeys(usize),
    #[error("writes_per_key must be 1 to {MAX_WRITES_PER_KEY}, not {0}")]
    WritesPerKey(u64),
    #[error("max_mops must be 1 to {MAX_MOPS}, not {0}")]
    MaxMops(u64),
    #[error("read_percent must be 0 to 100, not {0}")]
    ReadPercent(u64),
}

/// The stream of transactions.
#[derive(Debug)]
pub struct TxnOps {
    config: TxnConfig,
    /// The keys in use, each with the writes it has had.
    active: Vec<(Key, u64)>,
    next_key: Key,
    /// The last value written; the next write gets the one after.
    last_value: i64,
}

impl TxnOps {
    pub fn new(config: TxnConfig) -> Result<TxnOps, TxnConfigError> {
        if !(1..=MAX_ACTIVE_KEYS).contains(&config.active_keys) {
            return Err(TxnConfigError::ActiveKeys(config.active_keys));
        }
        if !(1..=MAX_WRITES_PER_KEY).contains(&config.writes_per_key) {
            return Err(TxnConfigError::WritesPerKey(config.writes_per_key));
        }
        if !(1..=MAX_MOPS).contains(&config.max_mops) {
            return Err(TxnConfigError::MaxMops(config.max_mops));
        }
        if config.read_percent > 100 {
            return Err(TxnConfigError::ReadPercent(config.read_percent));
        }
        let active = (0..config.active_keys as Key).map(|k| (k, 0)).collect();
        Ok(TxnOps {
            next_key: config.active_keys as Key,
            config,
            active,
            last_value: 0,
        })
    }

    /// The next transaction as micro-ops.
    pub fn next_mops(&mut self, rng: &mut Rng) -> Vec<Mop> {
        let len = 1 + rng.below(self.config.max_mops);
        let mut mops = Vec::with_capacity(len as usize);
        for _ in 0..len {
            let slot = rng.below(self.active.len() as u64) as usize;
            let key = self.active[slot].0;
            if rng.below(100) < self.config.read_percent {
                mops.push(Mop::Read { key, value: None });
                continue;
            }
            self.last_value += 1;
            let value = self.last_value;
            mops.push(match self.config.workload {
                Workload::ListAppend => Mop::Append { key, value },
                Workload::RwRegister => Mop::Write { key, value },
            });
            let writes = &mut self.active[slot].1;
            *writes += 1;
            if *writes >= self.config.writes_per_key {
                // Retired: later micro-ops of this very transaction may still name it
                // through `key`, but no new draw will.
                self.active[slot] = (self.next_key, 0);
                self.next_key += 1;
            }
        }
        mops
    }

    /// The next history operation: `("txn", micro-ops)`.
    pub fn next(&mut self, rng: &mut Rng) -> (String, Value) {
        ("txn".into(), mops_to_json(&self.next_mops(rng)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn writes_are_fresh_and_keys_retire_after_their_writes() {
        let mut ops = TxnOps::new(TxnConfig::new(Workload::ListAppend)).unwrap();
        let mut rng = Rng::new(7);
        let mut values = BTreeSet::new();
        let mut per_key: BTreeMap<Key, u64> = BTreeMap::new();
        let mut read_only = 0;
        for _ in 0..3_000 {
            let mops = ops.next_mops(&mut rng);
            assert!((1..=4).contains(&mops.len()), "{mops:?}");
            if !super::super::writes(&mops) {
                read_only += 1;
            }
            for m in &mops {
                if let Mop::Append { key, value } = m {
                    assert!(values.insert(*value), "value {value} written twice");
                    *per_key.entry(*key).or_default() += 1;
                }
            }
            assert!(super::super::txn_id(&mops).is_some() == super::super::writes(&mops));
        }
        assert!(per_key.values().all(|&n| n <= 64), "{per_key:?}");
        assert!(per_key.len() > 20, "keys retired and fresh ones came");
        assert!(read_only > 100, "read-only transactions too: {read_only}");
    }

    #[test]
    fn rw_register_writes_and_the_stream_replays_from_the_seed() {
        let draw = |seed| {
            let mut ops = TxnOps::new(TxnConfig::new(Workload::RwRegister)).unwrap();
            let mut rng = Rng::new(seed);
            (0..50).map(|_| ops.next(&mut rng).1).collect::<Vec<_>>()
        };
        let a = draw(3);
        assert_eq!(a, draw(3));
        assert!(a.iter().any(|v| v.to_string().contains("[\"w\",")), "{a:?}");
        assert!(!a.iter().any(|v| v.to_string().contains("append")));
    }

    #[test]
    fn bad_configs_are_refused_naming_the_field() {
        let mut c = TxnConfig::new(Workload::ListAppend);
        c.active_keys = 0;
        assert!(TxnOps::new(c.clone())
            .unwrap_err()
            .to_string()
            .contains("active_keys"));
        c.active_keys = 3;
        c.max_mops = 65;
        assert!(TxnOps::new(c).unwrap_err().to_string().contains("max_mops"));
    }
}
