//! The register workload's operation source: reads, writes and compare-and-sets on a small,
//! rolling window of keys.
//!
//! Checking linearizability is exponential in the concurrency of one register's history, but
//! the `kv` model splits a history by key (P-compositionality). So each key is used for only
//! `ops_per_key` operations and then replaced by a fresh one: every per-key history stays short
//! enough to check quickly, however long the test runs. Written values are unique per key, so a
//! read names the one write it observed, which is what makes anomalies explainable. Pure and
//! deterministic: the same config and RNG stream give the same operations.

use checkers::history::Value;
use checkers::rng::Rng;
use serde_json::json;
use std::collections::VecDeque;

/// Relative weights of the three operations; they need not sum to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    pub read: u32,
    pub write: u32,
    pub cas: u32,
}

/// How [`RegisterOps`] chooses operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterConfig {
    /// Keys in use at once. Fewer keys means more contention per key.
    pub active_keys: usize,
    /// Operations issued on a key before it retires and a fresh key takes its place.
    pub ops_per_key: u64,
    pub mix: Mix,
    /// A cas expects one of this many most recently written values of its key, so that it
    /// sometimes matches (the latest) and sometimes not (older ones).
    pub cas_recent_values: usize,
}

impl Default for RegisterConfig {
    fn default() -> RegisterConfig {
        RegisterConfig {
            active_keys: 3,
            ops_per_key: 300,
            mix: Mix {
                read: 40,
                write: 30,
                cas: 30,
            },
            cas_recent_values: 4,
        }
    }
}

/// Upper bounds that keep a typo in a config from producing a test nobody can check.
pub const MAX_ACTIVE_KEYS: usize = 10_000;
/// Past a few thousand ops, one key's history gets slow to check under concurrency.
pub const MAX_OPS_PER_KEY: u64 = 100_000;
pub const MAX_CAS_RECENT_VALUES: usize = 1_000;

/// A config that cannot drive a test, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterConfigError {
    #[error("active_keys must be in 1..={MAX_ACTIVE_KEYS}, got {0}")]
    ActiveKeys(usize),
    #[error("ops_per_key must be in 1..={MAX_OPS_PER_KEY}, got {0}")]
    OpsPerKey(u64),
    #[error("the operation mix must give some operation a positive weight, got {0:?}")]
    Mix(Mix),
    #[error("cas_recent_values must be in 1..={MAX_CAS_RECENT_VALUES}, got {0}")]
    CasRecentValues(usize),
}

impl RegisterConfig {
    pub fn validate(&self) -> Result<(), RegisterConfigError> {
        if !(1..=MAX_ACTIVE_KEYS).contains(&self.active_keys) {
            return Err(RegisterConfigError::ActiveKeys(self.active_keys));
        }
        if !(1..=MAX_OPS_PER_KEY).contains(&self.ops_per_key) {
            return Err(RegisterConfigError::OpsPerKey(self.ops_per_key));
        }
        let m = self.mix;
        if u64::from(m.read) + u64::from(m.write) + u64::from(m.cas) == 0 {
            return Err(RegisterConfigError::Mix(m));
        }
        if !(1..=MAX_CAS_RECENT_VALUES).contains(&self.cas_recent_values) {
            return Err(RegisterConfigError::CasRecentValues(self.cas_recent_values));
        }
        Ok(())
    }
}

/// One active key.
#[derive(Clone, Debug)]
struct Slot {
    key: u64,
    ops: u64,
    /// The next value to write; values start at 1 and are never reused on this key.
    next_value: u64,
    /// Values written to this key (by writes or cas), newest last, at most `cas_recent_values`.
    recent: VecDeque<u64>,
}

impl Slot {
    fn new(key: u64) -> Slot {
        Slot {
            key,
            ops: 0,
            next_value: 1,
            recent: VecDeque::new(),
        }
    }

    fn fresh_value(&mut self, keep: usize) -> u64 {
        let v = self.next_value;
        self.next_value += 1;
        if self.recent.len() == keep {
            self.recent.pop_front();
        }
        self.recent.push_back(v);
        v
    }
}

/// The operation source. Histories use `read [k, null]`, `write [k, v]`, `cas [k, [old, new]]`.
#[derive(Clone, Debug)]
pub struct RegisterOps {
    config: RegisterConfig,
    slots: Vec<Slot>,
    next_key: u64,
}

impl RegisterOps {
    pub fn new(config: RegisterConfig) -> Result<RegisterOps, RegisterConfigError> {
        config.validate()?;
        let slots = (0..config.active_keys as u64).map(Slot::new).collect();
        Ok(RegisterOps {
            next_key: config.active_keys as u64,
            config,
            slots,
        })
    }

    pub fn config(&self) -> &RegisterConfig {
        &self.config
    }

    /// Every key handed out so far (retired and active): what final reads cover.
    pub fn keys_used(&self) -> std::ops::Range<u64> {
        0..self.next_key
    }

    /// The next operation: its `f` and invocation value.
    pub fn next(&mut self, rng: &mut Rng) -> (String, Value) {
        let i = rng.below(self.slots.len() as u64) as usize;
        let Mix { read, write, cas } = self.config.mix;
        let roll = rng.below(u64::from(read) + u64::from(write) + u64::from(cas));
        let keep = self.config.cas_recent_values;
        let slot = &mut self.slots[i];
        let key = slot.key;
        let op = if roll < u64::from(read) {
            ("read", json!([key, null]))
        } else if roll < u64::from(read) + u64::from(write) || slot.recent.is_empty() {
            // A cas before anything was written could only fail: write instead.
            ("write", json!([key, slot.fresh_value(keep)]))
        } else {
            let old = *slot
                .recent
                .get(rng.below(slot.recent.len() as u64) as usize)
                .unwrap();
            ("cas", json!([key, [old, slot.fresh_value(keep)]]))
        };
        slot.ops += 1;
        if slot.ops >= self.config.ops_per_key {
            *slot = Slot::new(self.next_key);
            self.next_key += 1;
        }
        (op.0.to_string(), op.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn take(config: RegisterConfig, seed: u64, n: usize) -> Vec<(String, Value)> {
        let mut ops = RegisterOps::new(config).unwrap();
        let mut rng = Rng::new(seed);
        (0..n).map(|_| ops.next(&mut rng)).collect()
    }

    #[test]
    fn same_seed_same_ops_and_different_seeds_differ() {
        let a = take(RegisterConfig::default(), 7, 2000);
        assert_eq!(a, take(RegisterConfig::default(), 7, 2000));
        assert_ne!(a, take(RegisterConfig::default(), 8, 2000));
    }

    /// The first operations for a pinned seed: a change here changes every recorded run.
    #[test]
    fn pinned_seed_gives_pinned_ops() {
        let got: Vec<String> = take(RegisterConfig::default(), 42, 6)
            .into_iter()
            .map(|(f, v)| format!("{f} {v}"))
            .collect();
        assert_eq!(got, PINNED_SEED_42);
    }

    const PINNED_SEED_42: [&str; 6] = [
        "read [0,null]",
        "write [2,1]",
        "cas [2,[1,2]]",
        "cas [2,[2,3]]",
        "read [2,null]",
        "read [2,null]",
    ];

    #[test]
    fn written_values_are_unique_per_key() {
        let mut written: HashSet<(u64, u64)> = HashSet::new();
        for (f, v) in take(RegisterConfig::default(), 3, 20_000) {
            let key = v[0].as_u64().unwrap();
            let new = match f.as_str() {
                "write" => v[1].as_u64().unwrap(),
                "cas" => v[1][1].as_u64().unwrap(),
                "read" => {
                    assert!(v[1].is_null(), "{v}");
                    continue;
                }
                other => panic!("unexpected f {other}"),
            };
            assert!(
                written.insert((key, new)),
                "value {new} written twice to key {key}"
            );
        }
    }

    #[test]
    fn cas_expects_a_value_already_written_to_its_key() {
        let mut written: HashMap<u64, HashSet<u64>> = HashMap::new();
        let mut cas = 0;
        for (f, v) in take(RegisterConfig::default(), 5, 5000) {
            let key = v[0].as_u64().unwrap();
            match f.as_str() {
                "write" => {
                    written
                        .entry(key)
                        .or_default()
                        .insert(v[1].as_u64().unwrap());
                }
                "cas" => {
                    cas += 1;
                    let old = v[1][0].as_u64().unwrap();
                    assert!(
                        written[&key].contains(&old),
                        "cas {v} expects an unwritten value"
                    );
                    written
                        .entry(key)
                        .or_default()
                        .insert(v[1][1].as_u64().unwrap());
                }
                _ => {}
            }
        }
        assert!(cas > 1000, "{cas}");
    }

    #[test]
    fn keys_retire_after_ops_per_key_and_the_mix_holds() {
        let config = RegisterConfig::default();
        let n = 30_000;
        let ops = take(config.clone(), 11, n);
        let mut per_key: HashMap<u64, u64> = HashMap::new();
        let mut per_f: HashMap<String, usize> = HashMap::new();
        for (f, v) in &ops {
            *per_key.entry(v[0].as_u64().unwrap()).or_default() += 1;
            *per_f.entry(f.clone()).or_default() += 1;
        }
        assert!(per_key.values().all(|&c| c <= config.ops_per_key));
        // All but the keys still active have run their full course.
        let full = per_key
            .values()
            .filter(|&&c| c == config.ops_per_key)
            .count();
        assert!(full >= per_key.len() - config.active_keys, "{per_key:?}");
        assert!(per_key.len() as u64 * config.ops_per_key >= n as u64);
        let share = |f: &str| per_f[f] as f64 / n as f64;
        assert!((share("read") - 0.4).abs() < 0.02, "{per_f:?}");
        // Writes gain the few cas ops issued before a key had any value.
        assert!((share("write") - 0.3).abs() < 0.03, "{per_f:?}");
        assert!((share("cas") - 0.3).abs() < 0.03, "{per_f:?}");
    }

    #[test]
    fn keys_used_covers_every_key_issued() {
        let mut ops = RegisterOps::new(RegisterConfig::default()).unwrap();
        assert_eq!(ops.keys_used(), 0..3);
        let mut rng = Rng::new(9);
        let mut max_key = 0;
        for _ in 0..1000 {
            let (_, v) = ops.next(&mut rng);
            max_key = max_key.max(v[0].as_u64().unwrap());
            assert!(ops.keys_used().contains(&max_key));
        }
        // 1000 ops at 300 per key retire at least three keys.
        assert!(ops.keys_used().end >= 6, "{:?}", ops.keys_used());
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let bad = |c: RegisterConfig| RegisterOps::new(c).unwrap_err().to_string();
        let d = RegisterConfig::default();
        assert!(bad(RegisterConfig {
            active_keys: 0,
            ..d.clone()
        })
        .contains("active_keys"));
        assert!(bad(RegisterConfig {
            ops_per_key: 0,
            ..d.clone()
        })
        .contains("ops_per_key"));
        let none = Mix {
            read: 0,
            write: 0,
            cas: 0,
        };
        assert!(bad(RegisterConfig {
            mix: none,
            ..d.clone()
        })
        .contains("mix"));
        assert!(bad(RegisterConfig {
            cas_recent_values: 0,
            ..d
        })
        .contains("cas_recent_values"));
    }

    #[test]
    fn one_operation_kind_alone_works() {
        let reads = Mix {
            read: 1,
            write: 0,
            cas: 0,
        };
        let ops = take(
            RegisterConfig {
                mix: reads,
                ..RegisterConfig::default()
            },
            1,
            100,
        );
        assert!(ops.iter().all(|(f, _)| f == "read"));
    }
}
