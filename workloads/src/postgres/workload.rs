//! The PostgreSQL workloads as the harness drives them: the stream of operations, the final
//! reads after every fault healed, and a client per worker. [`by_name`] is the registry
//! `faultline test --system postgres` consults.
//!
//! The shapes are chosen to make isolation anomalies likely within seconds: a handful of
//! keys in play at once, transactions of one to four micro-ops that mix reads and writes on
//! them, and many concurrent clients. A key retires after a bounded number of writes (a
//! fresh one takes its place), so lists stay short and reads cheap however long the run.
//! Values are unique across the run, as the transactional checkers require.

use super::client::PgClient;
use super::conn::Target;
use super::{Isolation, Kind, ACCOUNTS};
use crate::client::BoxClient;
use checkers::history::Value;
use checkers::rng::Rng;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// How operations are shaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Keys in play at once.
    pub active_keys: usize,
    /// Micro-ops per transaction, from 1 to this.
    pub max_txn_len: u64,
    /// Writes a key takes before a fresh key replaces it.
    pub max_writes_per_key: u32,
    /// Per cent of micro-ops (bank: of operations) that read.
    pub read_percent: u64,
}

impl Default for Shape {
    fn default() -> Shape {
        Shape {
            active_keys: 4,
            max_txn_len: 4,
            max_writes_per_key: 128,
            read_percent: 50,
        }
    }
}

/// Keys the final reads read at most (the newest ones).
pub const MAX_FINAL_KEYS: usize = 10_000;
/// Reads per final transaction.
pub const FINAL_READS_PER_TXN: usize = 16;
/// Largest transfer.
pub const MAX_AMOUNT: u64 = 5;
/// How long a client may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The keys and values handed out so far.
#[derive(Debug, Default)]
struct Keys {
    active: Vec<i64>,
    writes: Vec<u32>,
    next_key: i64,
    next_value: i64,
    /// Every key handed out, oldest first.
    used: Vec<i64>,
}

/// One run's workload.
#[derive(Debug)]
pub struct PgWorkload {
    pub kind: Kind,
    pub isolation: Isolation,
    pub shape: Shape,
    keys: Mutex<Keys>,
}

/// The workload called `name` at `isolation`, if there is one.
pub fn by_name(name: &str, isolation: Isolation) -> Option<PgWorkload> {
    Some(PgWorkload::new(
        Kind::from_name(name)?,
        isolation,
        Shape::default(),
    ))
}

impl PgWorkload {
    pub fn new(kind: Kind, isolation: Isolation, shape: Shape) -> PgWorkload {
        let shape = Shape {
            active_keys: shape.active_keys.max(1),
            max_txn_len: shape.max_txn_len.clamp(1, super::ops::MAX_MOPS as u64),
            max_writes_per_key: shape.max_writes_per_key.max(1),
            read_percent: shape.read_percent.min(100),
        };
        PgWorkload {
            kind,
            isolation,
            shape,
            keys: Mutex::default(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The next operation; deterministic given the RNG's stream.
    pub fn next_op(&self, rng: &mut Rng) -> (String, Value) {
        match self.kind {
            Kind::Bank => self.bank_op(rng),
            Kind::ListAppend => ("txn".into(), self.txn(rng, "append")),
            Kind::RwRegister => ("txn".into(), self.txn(rng, "w")),
        }
    }

    fn txn(&self, rng: &mut Rng, write: &str) -> Value {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        while keys.active.len() < self.shape.active_keys {
            let k = keys.next_key;
            keys.next_key += 1;
            keys.active.push(k);
            keys.writes.push(0);
            keys.used.push(k);
        }
        let len = 1 + rng.below(self.shape.max_txn_len);
        let mut mops = Vec::with_capacity(len as usize);
        for _ in 0..len {
            let slot = rng.below(keys.active.len() as u64) as usize;
            let k = keys.active[slot];
            if rng.below(100) < self.shape.read_percent {
                mops.push(json!(["r", k, null]));
                continue;
            }
            keys.next_value += 1;
            let v = keys.next_value;
            mops.push(json!([write, k, v]));
            keys.writes[slot] += 1;
            if keys.writes[slot] >= self.shape.max_writes_per_key {
                let fresh = keys.next_key;
                keys.next_key += 1;
                keys.active[slot] = fresh;
                keys.writes[slot] = 0;
                keys.used.push(fresh);
            }
        }
        Value::Array(mops)
    }

    fn bank_op(&self, rng: &mut Rng) -> (String, Value) {
        if rng.below(100) < self.shape.read_percent {
            return ("read".into(), Value::Null);
        }
        let accounts = ACCOUNTS as u64;
        let from = rng.below(accounts);
        let to = (from + 1 + rng.below(accounts - 1)) % accounts;
        let amount = 1 + rng.below(MAX_AMOUNT);
        (
            "transfer".into(),
            json!({"from": from, "to": to, "amount": amount}),
        )
    }

    /// Run after every fault healed, each until it succeeds: a read of every key used (the
    /// newest [`MAX_FINAL_KEYS`]), so that writes nobody read during the run are placed too;
    /// for the bank, one read of every account. Ask when the final phase starts, after the
    /// main phase handed out its last key.
    pub fn final_ops(&self) -> Vec<(String, Value)> {
        if self.kind == Kind::Bank {
            return vec![("read".into(), Value::Null)];
        }
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let newest = &keys.used[keys.used.len().saturating_sub(MAX_FINAL_KEYS)..];
        newest
            .chunks(FINAL_READS_PER_TXN)
            .map(|chunk| {
                let mops = chunk.iter().map(|k| json!(["r", k, null])).collect();
                ("txn".to_string(), Value::Array(mops))
            })
            .collect()
    }

    /// The client of a worker bound to the server at `addr`; it gives up on an operation
    /// after `op_timeout_ms`.
    pub fn client(&self, addr: SocketAddr, op_timeout_ms: u64) -> BoxClient {
        let op_timeout = Duration::from_millis(op_timeout_ms.max(1));
        let target = Target {
            addr,
            connect_timeout: CONNECT_TIMEOUT.min(op_timeout),
            op_timeout,
        };
        BoxClient::new(PgClient::new(target, self.kind, self.isolation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn txns_use_few_keys_unique_values_and_retire_keys() {
        let w = by_name("list-append", Isolation::ReadCommitted).unwrap();
        let mut rng = Rng::new(5);
        let mut values = BTreeSet::new();
        let mut per_key: BTreeMap<i64, u32> = BTreeMap::new();
        for _ in 0..2000 {
            let (f, v) = w.next_op(&mut rng);
            assert_eq!(f, "txn");
            let mops = v.as_array().unwrap();
            assert!((1..=4).contains(&mops.len()), "{v}");
            let keys: BTreeSet<i64> = mops.iter().map(|m| m[1].as_i64().unwrap()).collect();
            assert!(keys.len() <= 4);
            for m in mops.iter().filter(|m| m[0] == "append") {
                assert!(values.insert(m[2].as_i64().unwrap()), "unique values");
                *per_key.entry(m[1].as_i64().unwrap()).or_default() += 1;
            }
        }
        assert!(per_key.values().all(|&n| n <= 128), "{per_key:?}");
        assert!(per_key.len() > 4, "keys retire: {per_key:?}");
        let finals = w.final_ops();
        let read: BTreeSet<i64> = finals
            .iter()
            .flat_map(|(_, v)| v.as_array().unwrap().clone())
            .map(|m| {
                assert_eq!(m[0], "r");
                m[1].as_i64().unwrap()
            })
            .collect();
        assert!(
            per_key.keys().all(|k| read.contains(k)),
            "every key is read at the end"
        );
        assert!(finals
            .iter()
            .all(|(_, v)| v.as_array().unwrap().len() <= FINAL_READS_PER_TXN));
    }

    #[test]
    fn registers_write_with_w_and_the_bank_moves_money_between_accounts() {
        let w = by_name("rw-register", Isolation::Serializable).unwrap();
        let mut rng = Rng::new(9);
        let (_, v) = (0..50)
            .map(|_| w.next_op(&mut rng))
            .find(|(_, v)| v.as_array().unwrap().iter().any(|m| m[0] != "r"))
            .unwrap();
        assert!(v
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m[0] == "r" || m[0] == "w"));
        let bank = by_name("bank", Isolation::RepeatableRead).unwrap();
        let mut fs = BTreeSet::new();
        for _ in 0..500 {
            let (f, v) = bank.next_op(&mut rng);
            if f == "transfer" {
                let (from, to) = (v["from"].as_i64().unwrap(), v["to"].as_i64().unwrap());
                assert_ne!(from, to);
                assert!((0..ACCOUNTS).contains(&from) && (0..ACCOUNTS).contains(&to));
                assert!((1..=MAX_AMOUNT).contains(&v["amount"].as_u64().unwrap()));
            }
            fs.insert(f);
        }
        assert_eq!(
            fs,
            BTreeSet::from(["read".to_string(), "transfer".to_string()])
        );
        assert_eq!(bank.final_ops(), vec![("read".to_string(), Value::Null)]);
        assert!(by_name("register", Isolation::Serializable).is_none());
    }
}
