//! What a recorded two-phase-commit history says, read once for every check: the setup,
//! the committed transfers by transaction id, how many writes ended in doubt, the final
//! read and state, and the snapshot parts fetched at the end. A value of the wrong shape is
//! a [`BadHistory`] naming the op: these histories are written by [`super::worker`].

use checkers::history::{History, Op, OpType, Value};
use checkers::verdict::BadHistory;
use std::collections::{BTreeMap, BTreeSet};
use twopc::proto::SnapshotPart;

/// Balances by account.
pub type Balances = BTreeMap<u64, i64>;

/// A committed transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from: u64,
    pub to: u64,
    pub amount: i64,
}

/// Operations of one kind by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

impl Counts {
    fn add(&mut self, t: OpType) {
        match t {
            OpType::Ok => self.ok += 1,
            OpType::Fail => self.fail += 1,
            OpType::Info => self.info += 1,
            OpType::Invoke => {}
        }
    }
}

/// One participant's answer to `State`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    pub kv: Balances,
    pub applied: u64,
    pub applied_truncated: bool,
}

/// The final `snapshot-parts`: the snapshots taken by then, and each (snapshot, node)
/// asked about, with the part the node had (`None`: it had none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parts {
    pub taken: BTreeSet<u64>,
    pub parts: BTreeMap<(u64, String), Option<SnapshotPart>>,
}

impl Parts {
    /// The participants asked.
    pub fn nodes(&self) -> BTreeSet<&str> {
        self.parts.keys().map(|(_, n)| n.as_str()).collect()
    }

    /// The snapshots asked about.
    pub fn fetched(&self) -> BTreeSet<u64> {
        self.parts.keys().map(|(s, _)| *s).collect()
    }

    /// Snapshot `s`'s parts from every node asked, if each had its part.
    pub fn complete(&self, s: u64) -> Option<BTreeMap<&str, &SnapshotPart>> {
        let nodes = self.nodes();
        let mut out = BTreeMap::new();
        for n in nodes {
            out.insert(n, self.parts.get(&(s, n.to_string()))?.as_ref()?);
        }
        (!out.is_empty()).then_some(out)
    }

    /// How many parts newer than `s` node `n` holds.
    pub fn newer_held(&self, n: &str, s: u64) -> usize {
        self.parts
            .iter()
            .filter(|((id, node), p)| *id > s && node == n && p.is_some())
            .count()
    }
}

/// Every fact the checks use.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The first committed setup: its transaction and the balances it wrote.
    pub setup: Option<(u64, Balances)>,
    pub setups: Counts,
    pub transfers: Counts,
    /// Committed transfers by transaction id.
    pub committed: BTreeMap<u64, Transfer>,
    /// Setups and transfers that ended `info`: committed or not, nobody knows their id.
    pub indefinite_writes: usize,
    pub reads: Counts,
    /// The last ok read (the final read, after healing).
    pub last_read: Option<BTreeMap<u64, Option<i64>>>,
    /// Ids of snapshots reported taken.
    pub snapshots_taken: BTreeSet<u64>,
    pub snapshots: Counts,
    /// The last ok `final-state`, by node name.
    pub final_state: Option<BTreeMap<String, NodeState>>,
    /// The last ok `snapshot-parts`.
    pub parts: Option<Parts>,
}

impl Facts {
    /// The accounts and the total every read must show, from the setup.
    pub fn total(&self) -> Option<i64> {
        self.setup.as_ref().map(|(_, b)| b.values().sum())
    }
}

/// Reads the facts of `history`.
pub fn read(history: &History) -> Result<Facts, BadHistory> {
    let mut f = Facts::default();
    for (i, op) in history.ops.iter().enumerate() {
        if !op.process.is_client() || op.op_type == OpType::Invoke {
            continue;
        }
        let bad = |problem: String| BadHistory::at_op(history, i, problem);
        match op.f.as_str() {
            "setup" => {
                f.setups.add(op.op_type);
                match op.op_type {
                    OpType::Ok if f.setup.is_none() => {
                        let txn = txn_of(op).map_err(&bad)?;
                        let b = balances(&op.value["balances"]).map_err(&bad)?;
                        f.setup = Some((txn, b));
                    }
                    OpType::Info => f.indefinite_writes += 1,
                    _ => {}
                }
            }
            "transfer" => {
                f.transfers.add(op.op_type);
                match op.op_type {
                    OpType::Ok => {
                        let txn = txn_of(op).map_err(&bad)?;
                        let t = transfer(&op.value).map_err(&bad)?;
                        f.committed.insert(txn, t);
                    }
                    OpType::Info => f.indefinite_writes += 1,
                    _ => {}
                }
            }
            "read" => {
                f.reads.add(op.op_type);
                if op.op_type == OpType::Ok {
                    f.last_read = Some(read_map(&op.value).map_err(&bad)?);
                }
            }
            "snapshot" => {
                f.snapshots.add(op.op_type);
                if op.op_type == OpType::Ok {
                    let s = op.value["snapshot"].as_u64().ok_or_else(|| {
                        bad(format!("a taken snapshot names its id: {}", op.value))
                    })?;
                    f.snapshots_taken.insert(s);
                }
            }
            "final-state" if op.op_type == OpType::Ok => {
                f.final_state = Some(final_state(&op.value).map_err(&bad)?);
            }
            "snapshot-parts" if op.op_type == OpType::Ok => {
                f.parts = Some(parts(&op.value).map_err(&bad)?);
            }
            _ => {}
        }
    }
    Ok(f)
}

fn txn_of(op: &Op) -> Result<u64, String> {
    op.value["txn"]
        .as_u64()
        .ok_or_else(|| format!("a committed {} names its transaction: {}", op.f, op.value))
}

fn transfer(v: &Value) -> Result<Transfer, String> {
    match (v["from"].as_u64(), v["to"].as_u64(), v["amount"].as_i64()) {
        (Some(from), Some(to), Some(amount)) => Ok(Transfer { from, to, amount }),
        _ => Err(format!("a transfer is {{from, to, amount}}: {v}")),
    }
}

fn account(k: &str) -> Result<u64, String> {
    k.parse()
        .map_err(|_| format!("{k:?} is not an account number"))
}

/// `{"0": 100, ...}`.
pub fn balances(v: &Value) -> Result<Balances, String> {
    let Value::Object(m) = v else {
        return Err(format!("balances are a map account -> balance, not {v}"));
    };
    m.iter()
        .map(|(k, b)| {
            let b = b
                .as_i64()
                .ok_or_else(|| format!("balance of {k} is not an integer: {b}"))?;
            Ok((account(k)?, b))
        })
        .collect()
}

/// A read's `{"0": 100, "1": null, ...}`.
fn read_map(v: &Value) -> Result<BTreeMap<u64, Option<i64>>, String> {
    let Value::Object(m) = v else {
        return Err(format!("a read returns a map account -> balance, not {v}"));
    };
    m.iter()
        .map(|(k, b)| match b {
            Value::Null => Ok((account(k)?, None)),
            b => Ok((
                account(k)?,
                Some(b.as_i64().ok_or_else(|| format!("balance of {k}: {b}"))?),
            )),
        })
        .collect()
}

fn final_state(v: &Value) -> Result<BTreeMap<String, NodeState>, String> {
    let Value::Object(m) = v else {
        return Err(format!("a final state is a map node -> state, not {v}"));
    };
    m.iter()
        .map(|(node, s)| {
            let state = NodeState {
                kv: balances(&s["kv"]).map_err(|e| format!("{node}: {e}"))?,
                applied: s["applied"].as_u64().unwrap_or(0),
                applied_truncated: s["applied_truncated"].as_bool().unwrap_or(false),
            };
            Ok((node.clone(), state))
        })
        .collect()
}

fn parts(v: &Value) -> Result<Parts, String> {
    let mut out = Parts::default();
    for s in v["taken"]
        .as_array()
        .ok_or("snapshot-parts lists the taken snapshots")?
    {
        out.taken
            .insert(s.as_u64().ok_or_else(|| format!("snapshot id {s}"))?);
    }
    for p in v["parts"].as_array().ok_or("snapshot-parts lists parts")? {
        let (Some(s), Some(node)) = (p["snapshot"].as_u64(), p["node"].as_str()) else {
            return Err(format!("a fetched part names its snapshot and node: {p}"));
        };
        let part = match &p["part"] {
            Value::Null => None,
            json => Some(
                serde_json::from_value::<SnapshotPart>(json.clone())
                    .map_err(|e| format!("part of snapshot {s} on {node}: {e}"))?,
            ),
        };
        out.parts.insert((s, node.to_string()), part);
    }
    Ok(out)
}
