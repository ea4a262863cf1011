//! Transactions as the checkers see them: a history's client operations with their micro-ops,
//! keys and values interned to small integers.
//!
//! An `ok` transaction is read from its completion (which carries what reads returned); `fail`
//! and `info` transactions from their invocation, since their reads returned nothing we can
//! trust. Interning keeps a million transactions with tens of millions of read elements in a
//! few hundred MiB, and lets the analyses key hash maps by `(u32, u32)`.

use crate::datum::Datum;
use crate::history::{History, OpType, Process, Value};
use crate::verdict::BadHistory;
use rustc_hash::FxHashMap;

/// (key, value) -> (transaction, micro-op index) of the write that produced it.
pub type WriterIndex = FxHashMap<(u32, u32), (u32, u32)>;

/// Micro-ops in one transaction; more is refused as not a plausible test transaction.
pub const MAX_MOPS_PER_TXN: usize = 65_536;

/// Which data type the micro-ops act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `["append", k, v]` and `["r", k, [v ...]]`.
    ListAppend,
    /// `["w", k, v]` and `["r", k, v]`.
    RwRegister,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::ListAppend => "list-append",
            Workload::RwRegister => "rw-register",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Info,
    Fail,
}

/// What a read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadValue {
    /// The read did not complete (`fail`, `info`): nothing was observed.
    Unknown,
    List(Box<[u32]>),
    /// A register read; `None` is the initial null.
    Register(Option<u32>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mop {
    /// An append (list-append) or a write (rw-register) of `val` to `key`.
    Write {
        key: u32,
        val: u32,
    },
    Read {
        key: u32,
        value: ReadValue,
    },
}

impl Mop {
    pub fn key(&self) -> u32 {
        match self {
            Mop::Write { key, .. } | Mop::Read { key, .. } => *key,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Txn {
    /// Index of the invocation event in the history.
    pub invoke: u32,
    /// Index of the completion event, if any.
    pub complete: Option<u32>,
    pub status: Status,
    /// Index into [`Transactions::processes`].
    pub process: u32,
    pub mops: Box<[Mop]>,
    /// The commit sequence number an `ok` completion carries, when one was asked for.
    pub commit_seq: Option<i64>,
}

impl Txn {
    /// Whether this transaction may have taken effect (it is a node of the dependency graph).
    pub fn committed_or_unknown(&self) -> bool {
        self.status != Status::Fail
    }

    /// The last value this transaction wrote to `key`, if any.
    pub fn final_write(&self, key: u32) -> Option<u32> {
        self.mops.iter().rev().find_map(|m| match m {
            Mop::Write { key: k, val } if *k == key => Some(*val),
            _ => None,
        })
    }
}

fn commit_seq(history: &History, at: usize, field: &str) -> Result<i64, BadHistory> {
    history.ops[at]
        .extra
        .get(field)
        .and_then(|v| v.as_i64())
        .ok_or_else(|| {
            BadHistory::at_op(
                history,
                at,
                format!("an ok transaction without an integer {field:?} field, which --commit-order names"),
            )
        })
}

/// Interns data to dense ids; integers take a fast path since they are nearly all values.
#[derive(Default)]
pub struct Interner {
    ints: FxHashMap<i64, u32>,
    others: FxHashMap<Datum, u32>,
    shown: Vec<Datum>,
}

impl Interner {
    fn intern(&mut self, v: &Value) -> u32 {
        if let Some(i) = v.as_i64() {
            if let Some(&id) = self.ints.get(&i) {
                return id;
            }
            let id = self.shown.len() as u32;
            self.ints.insert(i, id);
            self.shown.push(Datum::Int(i));
            return id;
        }
        let d = Datum::from_json(v);
        if let Some(&id) = self.others.get(&d) {
            return id;
        }
        let id = self.shown.len() as u32;
        self.others.insert(d.clone(), id);
        self.shown.push(d);
        id
    }

    /// How explanations print the datum with this id.
    pub fn show(&self, id: u32) -> String {
        self.shown
            .get(id as usize)
            .map_or_else(|| format!("#{id}"), |d| d.to_string())
    }

    pub fn len(&self) -> usize {
        self.shown.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }
}

/// Every client transaction of a history.
pub struct Transactions {
    pub workload: Workload,
    pub txns: Vec<Txn>,
    pub keys: Interner,
    pub values: Interner,
    pub processes: Vec<Process>,
}

impl Transactions {
    /// Extracts the transactions. Nemesis events are ignored; every client operation must carry a list of micro-ops of `workload`'s shape.
    pub fn from_history(history: &History, workload: Workload) -> Result<Self, BadHistory> {
        Self::extract(history, workload, None)
    }

    /// Like [`Transactions::from_history`], also reading each `ok` completion's integer
    /// `commit_field` (an error names the first completion without one).
    pub fn extract(
        history: &History,
        workload: Workload,
        commit_field: Option<&str>,
    ) -> Result<Self, BadHistory> {
        let mut out = Transactions {
            workload,
            txns: Vec::new(),
            keys: Interner::default(),
            values: Interner::default(),
            processes: Vec::new(),
        };
        let mut process_ids: FxHashMap<Process, u32> = FxHashMap::default();
        for (i, op) in history.ops.iter().enumerate() {
            // Named processes are fault injectors, unless they run transactions: Elle's own
            // histories omit the process, which readers record as the name "nil".
            if op.op_type != OpType::Invoke || !(op.process.is_client() || op.f == "txn") {
                continue;
            }
            let completion = history.partner[i];
            let (status, source) = match completion.map(|c| (c, history.ops[c].op_type)) {
                Some((c, OpType::Ok)) => (Status::Ok, c),
                Some((_, OpType::Fail)) => (Status::Fail, i),
                _ => (Status::Info, i),
            };
            let mops = out.parse_mops(history, source, status)?;
            let commit_seq = match (commit_field, status) {
                (Some(field), Status::Ok) => Some(commit_seq(history, source, field)?),
                _ => None,
            };
            let next = process_ids.len() as u32;
            let process = *process_ids.entry(op.process.clone()).or_insert_with(|| {
                out.processes.push(op.process.clone());
                next
            });
            out.txns.push(Txn {
                invoke: i as u32,
                complete: completion.map(|c| c as u32),
                status,
                process,
                mops,
                commit_seq,
            });
        }
        Ok(out)
    }

    fn parse_mops(
        &mut self,
        h: &History,
        at: usize,
        status: Status,
    ) -> Result<Box<[Mop]>, BadHistory> {
        let Value::Array(items) = &h.ops[at].value else {
            return Err(BadHistory::at_op(
                h,
                at,
                format!(
                    "a {} transaction's value must be a list of micro-ops, got {}",
                    self.workload.name(),
                    h.ops[at].value
                ),
            ));
        };
        if items.len() > MAX_MOPS_PER_TXN {
            return Err(BadHistory::at_op(
                h,
                at,
                format!(
                    "{} micro-ops exceed the limit of {MAX_MOPS_PER_TXN}",
                    items.len()
                ),
            ));
        }
        items
            .iter()
            .map(|m| {
                self.parse_mop(m, status)
                    .map_err(|p| BadHistory::at_op(h, at, p))
            })
            .collect()
    }

    fn parse_mop(&mut self, m: &Value, status: Status) -> Result<Mop, String> {
        let parts = match m {
            Value::Array(p) if p.len() == 3 => p,
            _ => return Err(format!("a micro-op must be [f, key, value], got {m}")),
        };
        let f = parts[0].as_str().unwrap_or("");
        let key = self.keys.intern(&parts[1]);
        let v = &parts[2];
        match (self.workload, f) {
            (Workload::ListAppend, "append") | (Workload::RwRegister, "w") => {
                if v.is_null() {
                    return Err(format!(
                        "{m}: a write of null cannot be told apart from the initial state"
                    ));
                }
                Ok(Mop::Write {
                    key,
                    val: self.values.intern(v),
                })
            }
            (_, "r") => Ok(Mop::Read {
                key,
                value: self.read_value(v, status, m)?,
            }),
            (Workload::ListAppend, _) => Err(format!(
                "{m}: list-append micro-ops are [\"append\", k, v] and [\"r\", k, list]"
            )),
            (Workload::RwRegister, _) => Err(format!(
                "{m}: rw-register micro-ops are [\"w\", k, v] and [\"r\", k, v]"
            )),
        }
    }

    fn read_value(&mut self, v: &Value, status: Status, m: &Value) -> Result<ReadValue, String> {
        if status != Status::Ok {
            return Ok(ReadValue::Unknown);
        }
        match (self.workload, v) {
            (Workload::ListAppend, Value::Null) => Ok(ReadValue::List(Box::new([]))),
            (Workload::ListAppend, Value::Array(items)) => Ok(ReadValue::List(
                items.iter().map(|x| self.values.intern(x)).collect(),
            )),
            (Workload::ListAppend, _) => Err(format!("{m}: a list-append read must return a list")),
            (Workload::RwRegister, Value::Null) => Ok(ReadValue::Register(None)),
            (Workload::RwRegister, Value::Array(_) | Value::Object(_)) => Err(format!(
                "{m}: an rw-register read must return a single value"
            )),
            (Workload::RwRegister, x) => Ok(ReadValue::Register(Some(self.values.intern(x)))),
        }
    }

    /// How explanations name transaction `t`: by the history index of its completion (its
    /// invocation when it never completed), which is where its observed values are.
    pub fn name(&self, t: u32) -> String {
        let txn = &self.txns[t as usize];
        format!("T{}", txn.complete.unwrap_or(txn.invoke))
    }

    /// A transaction's micro-ops as text, e.g. `append 7 3; r 8 [1 2]`.
    pub fn show_mops(&self, t: u32) -> String {
        let txn = &self.txns[t as usize];
        let mut parts = Vec::with_capacity(txn.mops.len());
        for m in txn.mops.iter() {
            parts.push(match m {
                Mop::Write { key, val } => {
                    let f = if self.workload == Workload::ListAppend {
                        "append"
                    } else {
                        "w"
                    };
                    format!("{f} {} {}", self.keys.show(*key), self.values.show(*val))
                }
                Mop::Read { key, value } => {
                    format!("r {} {}", self.keys.show(*key), self.show_read(value))
                }
            });
        }
        parts.join("; ")
    }

    pub fn show_read(&self, v: &ReadValue) -> String {
        match v {
            ReadValue::Unknown => "?".into(),
            ReadValue::Register(None) => "nil".into(),
            ReadValue::Register(Some(x)) => self.values.show(*x),
            ReadValue::List(l) => self.show_list(l),
        }
    }

    pub fn show_list(&self, l: &[u32]) -> String {
        let items: Vec<String> = l.iter().map(|x| self.values.show(*x)).collect();
        format!("[{}]", items.join(" "))
    }

    /// `T12 (process 3, ok)`, for reports.
    pub fn label(&self, t: u32) -> String {
        let txn = &self.txns[t as usize];
        let status = match txn.status {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Fail => "fail",
        };
        format!(
            "{} (process {}, {status})",
            self.name(t),
            self.processes[txn.process as usize]
        )
    }
}
