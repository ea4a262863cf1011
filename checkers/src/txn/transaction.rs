//! Transactions as the checkers see them: a history's client operations with their micro-ops,
//! keys and values interned to small integers.
//!
//! An `ok` transaction is read from its completion (which carries what reads returned); `fail`
//! and `info` transactions from their invocation, since their reads returned nothing we can
//! trust. Interning keeps a million transactions with tens of millions of read elements in a
//! few hundred MiB, and lets the analyses key hash maps by `(u32, u32)`.

use crate::datum::Datum;
use crate::history::{Event, History, Op, OpType, Process, Value};
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

/// Interns data to dense ids; integers take a fast path since they are nearly all values.
#[derive(Default)]
pub struct Interner {
    ints: FxHashMap<i64, u32>,
    others: FxHashMap<Datum, u32>,
    shown: Vec<Datum>,
}

impl Interner {
    fn intern(&mut self, d: &Datum) -> u32 {
        if let Datum::Int(i) = d {
            return self.intern_int(*i);
        }
        if let Some(&id) = self.others.get(d) {
            return id;
        }
        let id = self.shown.len() as u32;
        self.others.insert(d.clone(), id);
        self.shown.push(d.clone());
        id
    }

    fn intern_int(&mut self, i: i64) -> u32 {
        if let Some(&id) = self.ints.get(&i) {
            return id;
        }
        let id = self.shown.len() as u32;
        self.ints.insert(i, id);
        self.shown.push(Datum::Int(i));
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
    /// Extracts the transactions. Nemesis events are ignored; every client operation must
    /// carry a list of micro-ops of `workload`'s shape.
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
        let source = |i: usize| {
            let op = &history.ops[i];
            let seq = commit_field
                .and_then(|f| op.extra.get(f))
                .and_then(Value::as_i64);
            raw_mops(&op.value, workload).map(|m| (std::borrow::Cow::Owned(m), seq))
        };
        build(
            &Origin::of(history),
            &history.ops,
            &history.partner,
            workload,
            commit_field,
            source,
        )
    }

    /// Extracts the transactions from ops read leanly (see [`LeanOp`]), already paired.
    pub fn from_lean(
        origin: &Origin,
        ops: &[LeanOp],
        partner: &[Option<usize>],
        workload: Workload,
        commit_field: Option<&str>,
    ) -> Result<Self, BadHistory> {
        let source = |i: usize| {
            let op = &ops[i];
            match &op.mops {
                Some(Ok(m)) => Ok((std::borrow::Cow::Borrowed(&m[..]), op.commit_seq)),
                Some(Err(e)) => Err(e.clone()),
                None => Ok((std::borrow::Cow::Owned(Vec::new()), op.commit_seq)),
            }
        };
        build(origin, ops, partner, workload, commit_field, source)
    }

    fn intern_mops(&mut self, raw: &[RawMop], status: Status) -> Box<[Mop]> {
        raw.iter()
            .map(|m| match m {
                RawMop::Write { key, val } => Mop::Write {
                    key: self.keys.intern(key),
                    val: self.values.intern(val),
                },
                RawMop::Read { key, read } => Mop::Read {
                    key: self.keys.intern(key),
                    value: self.intern_read(read, status),
                },
            })
            .collect()
    }

    fn intern_read(&mut self, read: &RawRead, status: Status) -> ReadValue {
        if status != Status::Ok {
            return ReadValue::Unknown;
        }
        match read {
            RawRead::Null if self.workload == Workload::ListAppend => ReadValue::List(Box::new([])),
            RawRead::Null => ReadValue::Register(None),
            RawRead::Ints(l) => {
                ReadValue::List(l.iter().map(|i| self.values.intern_int(*i)).collect())
            }
            RawRead::Data(l) => ReadValue::List(l.iter().map(|d| self.values.intern(d)).collect()),
            RawRead::Scalar(d) => ReadValue::Register(Some(self.values.intern(d))),
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

/// Where a history came from, for naming lines in errors once its events may be gone.
#[derive(Clone, Debug)]
pub struct Origin {
    pub file: String,
    /// The 1-based source line of each event.
    pub lines: Vec<usize>,
}

impl Origin {
    pub fn of(history: &History) -> Origin {
        Origin {
            file: history.file.clone(),
            lines: history.lines.clone(),
        }
    }

    pub fn error(&self, event: usize, problem: impl Into<String>) -> BadHistory {
        BadHistory {
            file: self.file.clone(),
            line: self.lines.get(event).copied().unwrap_or(0),
            problem: problem.into(),
        }
    }
}

/// A micro-op as read, before interning.
#[derive(Clone, Debug, PartialEq)]
pub enum RawMop {
    Write { key: Datum, val: Datum },
    Read { key: Datum, read: RawRead },
}

/// What a read micro-op holds, before interning. Lists of integers, by far the most common,
/// take 8 bytes an element.
#[derive(Clone, Debug, PartialEq)]
pub enum RawRead {
    Null,
    Ints(Box<[i64]>),
    Data(Box<[Datum]>),
    Scalar(Datum),
}

/// What the transactional checkers keep of an op: enough to pair it, its micro-ops, and its
/// commit sequence number. Much smaller than an `Op` with its JSON value.
#[derive(Debug)]
pub struct LeanOp {
    pub op_type: OpType,
    pub process: Process,
    pub f: String,
    /// None for events that are not transactions (a nemesis); an error for a transaction
    /// whose value has the wrong shape (reported only if the value is the one that counts).
    pub mops: Option<Result<Vec<RawMop>, String>>,
    pub commit_seq: Option<i64>,
}

impl Event for LeanOp {
    fn op_type(&self) -> OpType {
        self.op_type
    }
    fn process(&self) -> &Process {
        &self.process
    }
    fn f(&self) -> &str {
        &self.f
    }
}

/// Whether an event is a transaction: client processes' events, and named processes' `txn`s
/// (Elle's own histories omit the process, which readers record as the name "nil").
fn is_txn(process: &Process, f: &str) -> bool {
    process.is_client() || f == "txn"
}

impl LeanOp {
    /// Keeps what the checkers need of `op`, dropping its JSON value.
    pub fn of(op: Op, workload: Workload, commit_field: Option<&str>) -> LeanOp {
        let txn = is_txn(&op.process, &op.f);
        LeanOp {
            mops: txn.then(|| raw_mops(&op.value, workload)),
            commit_seq: commit_field
                .and_then(|f| op.extra.get(f))
                .and_then(Value::as_i64),
            op_type: op.op_type,
            process: op.process,
            f: op.f,
        }
    }
}

/// A transaction's micro-ops, checked against `workload`'s shapes.
pub fn raw_mops(value: &Value, workload: Workload) -> Result<Vec<RawMop>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "a {} transaction's value must be a list of micro-ops, got {value}",
            workload.name()
        ));
    };
    if items.len() > MAX_MOPS_PER_TXN {
        return Err(format!(
            "{} micro-ops exceed the limit of {MAX_MOPS_PER_TXN}",
            items.len()
        ));
    }
    items.iter().map(|m| raw_mop(m, workload)).collect()
}

fn raw_mop(m: &Value, workload: Workload) -> Result<RawMop, String> {
    let parts = match m {
        Value::Array(p) if p.len() == 3 => p,
        _ => return Err(format!("a micro-op must be [f, key, value], got {m}")),
    };
    let f = parts[0].as_str().unwrap_or("");
    let key = Datum::from_json(&parts[1]);
    let v = &parts[2];
    match (workload, f) {
        (Workload::ListAppend, "append") | (Workload::RwRegister, "w") => {
            if v.is_null() {
                return Err(format!(
                    "{m}: a write of null cannot be told apart from the initial state"
                ));
            }
            Ok(RawMop::Write {
                key,
                val: Datum::from_json(v),
            })
        }
        (_, "r") => Ok(RawMop::Read {
            key,
            read: raw_read(v, workload, m)?,
        }),
        (Workload::ListAppend, _) => Err(format!(
            "{m}: list-append micro-ops are [\"append\", k, v] and [\"r\", k, list]"
        )),
        (Workload::RwRegister, _) => Err(format!(
            "{m}: rw-register micro-ops are [\"w\", k, v] and [\"r\", k, v]"
        )),
    }
}

fn raw_read(v: &Value, workload: Workload, m: &Value) -> Result<RawRead, String> {
    match (workload, v) {
        (_, Value::Null) => Ok(RawRead::Null),
        (Workload::ListAppend, Value::Array(items)) => {
            let ints: Option<Box<[i64]>> = items.iter().map(Value::as_i64).collect();
            Ok(match ints {
                Some(ints) => RawRead::Ints(ints),
                None => RawRead::Data(items.iter().map(Datum::from_json).collect()),
            })
        }
        (Workload::ListAppend, _) => Err(format!("{m}: a list-append read must return a list")),
        (Workload::RwRegister, Value::Array(_) | Value::Object(_)) => Err(format!(
            "{m}: an rw-register read must return a single value"
        )),
        (Workload::RwRegister, x) => Ok(RawRead::Scalar(Datum::from_json(x))),
    }
}

/// The raw micro-ops and commit sequence number of event `i`, or the problem with its value.
type SourceResult<'a> = Result<(std::borrow::Cow<'a, [RawMop]>, Option<i64>), String>;

/// Builds the transactions from paired events of either kind.
fn build<'a, E: Event>(
    origin: &Origin,
    ops: &[E],
    partner: &[Option<usize>],
    workload: Workload,
    commit_field: Option<&str>,
    source: impl Fn(usize) -> SourceResult<'a>,
) -> Result<Transactions, BadHistory> {
    let mut out = Transactions {
        workload,
        txns: Vec::new(),
        keys: Interner::default(),
        values: Interner::default(),
        processes: Vec::new(),
    };
    let mut process_ids: FxHashMap<Process, u32> = FxHashMap::default();
    for (i, op) in ops.iter().enumerate() {
        if op.op_type() != OpType::Invoke || !is_txn(op.process(), op.f()) {
            continue;
        }
        let completion = partner[i];
        let (status, at) = match completion.map(|c| (c, ops[c].op_type())) {
            Some((c, OpType::Ok)) => (Status::Ok, c),
            Some((_, OpType::Fail)) => (Status::Fail, i),
            _ => (Status::Info, i),
        };
        let (raw, seq) = source(at).map_err(|p| origin.error(at, p))?;
        let commit_seq = match (commit_field, status) {
            (Some(field), Status::Ok) => Some(seq.ok_or_else(|| {
                origin.error(
                    at,
                    format!("an ok transaction without an integer {field:?} field, which --commit-order names"),
                )
            })?),
            _ => None,
        };
        let mops = out.intern_mops(&raw, status);
        let next = process_ids.len() as u32;
        let process = *process_ids.entry(op.process().clone()).or_insert_with(|| {
            out.processes.push(op.process().clone());
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
