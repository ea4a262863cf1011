//! One-copy serializability evidence from replica apply logs.
//!
//! A replicated database in the style of Postgres-R or Galera (transactions delivered by
//! total-order broadcast, certification deciding commit or abort on every replica alike) is
//! one-copy serializable when its replicas behave like a single copy: they apply the same
//! committed transactions in the same order and end in the same state. The client history alone
//! cannot show this; the replicas' own logs of what they applied can. This checker reads those
//! logs and holds them against the client history.
//!
//! # Input: apply logs
//!
//! JSON lines, one object per line (blank lines are skipped):
//!
//! ```text
//! {"replica": "n1", "applied": [1, 2, "t-3"], "finished": false}
//! {"replica": "n1", "applied": [4], "finished": true, "state": {"x": 5, "y": [1, 2]}}
//! {"replica": "n2", "applied": [1, 2, "t-3", 4], "finished": true, "state": {"x": 5, "y": [1, 2]}}
//! ```
//!
//! - `replica` (string, required): the replica's name.
//! - `applied` (array, optional): transaction ids in the order the replica applied them. Ids
//!   are JSON integers or strings (`7` and `"7"` are different ids). Several lines for one
//!   replica concatenate their lists in line order, so a replica can log as it goes.
//! - `finished` (bool, optional, default false): the replica caught up with everything that was
//!   delivered before the logs were taken (the harness healed and waited). Only finished
//!   replicas must hold every committed transaction and agree on the state. The last line
//!   that gives it wins.
//! - `state` (object or null, optional): the replica's final key-value state, any JSON values.
//!   The last line that gives an object wins; null means "not given".
//!
//! Any other field, a field of another type, a line that is not a JSON object, more than
//! [`MAX_REPLICAS`] replicas or more than [`MAX_APPLIED_IDS`] applied ids in all is a
//! [`BadHistory`] naming the 1-based line.
//!
//! # Linking to the client history
//!
//! Client ops name their transaction with an extra field `txn-id` (an integer or a string) on
//! the completion (or, if the completion lacks it, on the invocation). `ok` means committed,
//! `fail` aborted, `info` (or no completion) unknown. Two ops naming the same id are an error.
//!
//! # Checks (anomaly types)
//!
//! - `divergent-apply-order`: every replica's applied list must be a prefix of one common order,
//!   taken to be the longest list (the first replica's on ties).
//! - `duplicate-apply`: a replica applied one transaction twice.
//! - `aborted-applied`: a transaction whose client saw `fail` was applied somewhere.
//! - `committed-not-applied`: a finished replica lacks a transaction whose client saw `ok`.
//! - `unknown-txn-applied`: an applied id no op in the history names.
//! - `divergent-state`: two finished replicas with states differ (first differing key named).
//! - `realtime-order-violation`: A completed `ok` before B was invoked, both are in the common
//!   order, yet B comes first: the replicas' order contradicts what clients saw.
//!
//! All checks are linear in the size of the logs and the history (plus one sort-free sweep);
//! memory is a few words per distinct id.

use crate::history::{History, OpType, Value};
use crate::verdict::{BadHistory, Verdict, MAX_EXPLANATIONS_PER_TYPE};
use rustc_hash::FxHashMap;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// More replicas than this is not a replicated database we can test; refusing keeps the
/// per-replica tables small.
pub const MAX_REPLICAS: usize = 1024;
/// Applied ids over all replicas, as `history::MAX_OPS` bounds ops: the logs of one test run
/// fit in memory at a few words per id.
pub const MAX_APPLIED_IDS: usize = 50_000_000;
/// Longest log line we accept.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// The op field that names a transaction.
pub const TXN_ID_FIELD: &str = "txn-id";
/// The checker's name in verdicts.
pub const CHECKER: &str = "one-copy";

/// A transaction id as logs and histories write it: a JSON integer or a JSON string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnId {
    Int(i128),
    Str(String),
}

impl TxnId {
    /// The id a JSON value holds, if it is an integer or a string.
    pub fn from_json(v: &Value) -> Option<TxnId> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .map(TxnId::Int),
            Value::String(s) => Some(TxnId::Str(s.clone())),
            _ => None,
        }
    }
}

/// As JSON: `7`, `"t-3"`.
impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnId::Int(i) => write!(f, "{i}"),
            TxnId::Str(s) => write!(f, "{}", Value::from(s.as_str())),
        }
    }
}

/// One replica's log, its lines merged.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaLog {
    pub name: String,
    /// Applied transactions in order, as indices into [`ApplyLogs::ids`] (ids are interned so
    /// that tens of millions of entries cost four bytes each).
    pub applied: Vec<u32>,
    pub finished: bool,
    /// The final state, sorted by key, if a line gave one.
    pub state: Option<BTreeMap<String, Value>>,
    /// The 1-based line where the replica first appears.
    pub line: usize,
}

/// Every replica's apply log, replicas in order of first appearance.
#[derive(Clone, Debug, Default)]
pub struct ApplyLogs {
    pub file: String,
    pub replicas: Vec<ReplicaLog>,
    /// Every distinct applied id, in order of first appearance.
    pub ids: Vec<TxnId>,
    index: FxHashMap<TxnId, u32>,
}

impl ApplyLogs {
    /// The id behind an entry of [`ReplicaLog::applied`].
    pub fn id(&self, entry: u32) -> &TxnId {
        &self.ids[entry as usize]
    }

    /// The entry number of an id, if some replica applied it.
    pub fn lookup(&self, id: &TxnId) -> Option<u32> {
        self.index.get(id).copied()
    }

    pub fn replica(&self, name: &str) -> Option<&ReplicaLog> {
        self.replicas.iter().find(|r| r.name == name)
    }

    /// The ids replica `r` applied, in order.
    pub fn applied_ids(&self, r: &ReplicaLog) -> Vec<&TxnId> {
        r.applied.iter().map(|&e| self.id(e)).collect()
    }

    fn intern(&mut self, id: TxnId) -> u32 {
        if let Some(&e) = self.index.get(&id) {
            return e;
        }
        // Fits: there are at most MAX_APPLIED_IDS (< u32::MAX) distinct ids.
        let e = self.ids.len() as u32;
        self.ids.push(id.clone());
        self.index.insert(id, e);
        e
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses apply logs (format in the module docs). `file` names the input in errors.
pub fn parse_apply_logs(file: &str, text: &str) -> Result<ApplyLogs, BadHistory> {
    parse_with_limits(file, text, Limits::DEFAULT)
}

/// The input bounds, apart so that tests can cross them with small inputs.
#[derive(Clone, Copy, Debug)]
struct Limits {
    replicas: usize,
    ids: usize,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        replicas: MAX_REPLICAS,
        ids: MAX_APPLIED_IDS,
    };
}

fn parse_with_limits(file: &str, text: &str, limits: Limits) -> Result<ApplyLogs, BadHistory> {
    let mut logs = ApplyLogs {
        file: file.to_string(),
        ..ApplyLogs::default()
    };
    let mut by_name: FxHashMap<String, usize> = FxHashMap::default();
    let mut total_ids = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let bad = |problem: String| BadHistory {
            file: file.to_string(),
            line,
            problem,
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.len() > MAX_LINE_BYTES {
            return Err(bad("line longer than 64 MiB".into()));
        }
        if !trimmed.starts_with('{') {
            return Err(bad(
                "expected a JSON object such as {\"replica\": \"n1\", \"applied\": [1, 2]}".into(),
            ));
        }
        let parsed = parse_line(trimmed, &mut logs, &mut total_ids, limits).map_err(&bad)?;
        merge_line(&mut logs, &mut by_name, parsed, line, limits).map_err(bad)?;
    }
    Ok(logs)
}

/// One line's fields, `applied` already interned.
struct LineFields {
    replica: Option<String>,
    applied: Vec<u32>,
    finished: Option<bool>,
    state: Option<BTreeMap<String, Value>>,
}

/// Deserializes one line straight into interned ids, so a long `applied` array never exists as
/// JSON values, and the id limit stops the parse as soon as it is crossed.
fn parse_line(
    text: &str,
    logs: &mut ApplyLogs,
    total_ids: &mut usize,
    limits: Limits,
) -> Result<LineFields, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = LineSeed {
        logs,
        total_ids,
        max_ids: limits.ids,
    };
    let fields = seed.deserialize(&mut de).map_err(json_problem)?;
    de.end().map_err(json_problem)?;
    Ok(fields)
}

/// serde_json's message without its "at line 1 column N" (every line is parsed alone, so the
/// line is ours to give), with the column kept.
fn json_problem(e: serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    match e.classify() {
        serde_json::error::Category::Data => format!("{msg} (column {})", e.column()),
        _ => format!("not valid JSON: {msg} (column {})", e.column()),
    }
}

/// Adds one line to its replica's log, creating the replica on first sight.
fn merge_line(
    logs: &mut ApplyLogs,
    by_name: &mut FxHashMap<String, usize>,
    fields: LineFields,
    line: usize,
    limits: Limits,
) -> Result<(), String> {
    let name = fields
        .replica
        .ok_or("missing field \"replica\" (the replica's name)")?;
    if name.is_empty() {
        return Err("replica name is empty".into());
    }
    let r = match by_name.get(&name) {
        Some(&r) => r,
        None => {
            if logs.replicas.len() >= limits.replicas {
                return Err(format!(
                    "more than {} replicas (the limit): {name:?} is one too many",
                    limits.replicas
                ));
            }
            by_name.insert(name.clone(), logs.replicas.len());
            logs.replicas.push(ReplicaLog {
                name,
                applied: Vec::new(),
                finished: false,
                state: None,
                line,
            });
            logs.replicas.len() - 1
        }
    };
    let replica = &mut logs.replicas[r];
    replica.applied.extend_from_slice(&fields.applied);
    if let Some(f) = fields.finished {
        replica.finished = f;
    }
    if let Some(s) = fields.state {
        replica.state = Some(s);
    }
    Ok(())
}

struct LineSeed<'a> {
    logs: &'a mut ApplyLogs,
    total_ids: &'a mut usize,
    max_ids: usize,
}

impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
    type Value = LineFields;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<LineFields, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = LineFields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an apply log object {\"replica\", \"applied\", \"finished\", \"state\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<LineFields, A::Error> {
        let mut fields = LineFields {
            replica: None,
            applied: Vec::new(),
            finished: None,
            state: None,
        };
        let mut seen = [false; 4];
        while let Some(key) = m.next_key::<String>()? {
            let slot = match key.as_str() {
                "replica" => 0,
                "applied" => 1,
                "finished" => 2,
                "state" => 3,
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown field {other:?}: expected replica, applied, finished or state"
                    )))
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(de::Error::custom(format!("field {key:?} given twice")));
            }
            match slot {
                0 => fields.replica = Some(replica_name(m.next_value()?)?),
                1 => m.next_value_seed(AppliedSeed {
                    logs: &mut *self.logs,
                    total_ids: &mut *self.total_ids,
                    max_ids: self.max_ids,
                    out: &mut fields.applied,
                })?,
                2 => fields.finished = Some(finished_flag(m.next_value()?)?),
                _ => fields.state = state_map(m.next_value()?)?,
            }
        }
        Ok(fields)
    }
}

fn replica_name<E: de::Error>(v: Value) -> Result<String, E> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(E::custom(format!(
            "replica must be a string, got {}",
            short(&other)
        ))),
    }
}

fn finished_flag<E: de::Error>(v: Value) -> Result<bool, E> {
    match v {
        Value::Bool(b) => Ok(b),
        other => Err(E::custom(format!(
            "finished must be true or false, got {}",
            short(&other)
        ))),
    }
}

fn state_map<E: de::Error>(v: Value) -> Result<Option<BTreeMap<String, Value>>, E> {
    match v {
        Value::Object(m) => Ok(Some(m.into_iter().collect())),
        Value::Null => Ok(None),
        other => Err(E::custom(format!(
            "state must be an object (key -> value) or null, got {}",
            short(&other)
        ))),
    }
}

/// The `applied` array, interned element by element under the global id limit.
struct AppliedSeed<'a> {
    logs: &'a mut ApplyLogs,
    total_ids: &'a mut usize,
    max_ids: usize,
    out: &'a mut Vec<u32>,
}

impl<'de> DeserializeSeed<'de> for AppliedSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for AppliedSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("applied to be an array of txn ids (integers or strings)")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while let Some(id) = seq.next_element_seed(IdSeed)? {
            if *self.total_ids >= self.max_ids {
                return Err(de::Error::custom(format!(
                    "more than {} applied txn ids in all (the limit)",
                    self.max_ids
                )));
            }
            *self.total_ids += 1;
            self.out.push(self.logs.intern(id));
        }
        Ok(())
    }
}

/// One element of `applied`: an integer or a string.
struct IdSeed;

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = TxnId;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<TxnId, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdSeed {
    type Value = TxnId;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a txn id (an integer or a string)")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<TxnId, E> {
        Ok(TxnId::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<TxnId, E> {
        Ok(TxnId::Int(v.into()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TxnId, E> {
        Ok(TxnId::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<TxnId, E> {
        Ok(TxnId::Str(v))
    }
}

/// A value for a message, cut so that a huge value does not make a huge message.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 120 {
        return s;
    }
    let mut cut: String = s.chars().take(117).collect();
    cut.push_str("...");
    cut
}

// ---------------------------------------------------------------------------------------------
// The client history's transactions
// ---------------------------------------------------------------------------------------------

/// What the client saw of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    Committed,
    Aborted,
    Unknown,
}

/// One transaction of the client history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryTxn {
    pub id: TxnId,
    pub status: TxnStatus,
    /// The invocation's op index (for a standalone `info`, its own index).
    pub invoke: usize,
    /// The completion's op index, if it completed.
    pub complete: Option<usize>,
}

/// The `txn-id` of an op, if it has one.
fn txn_id_field(history: &History, i: usize) -> Result<Option<TxnId>, BadHistory> {
    match history.ops[i].extra.get(TXN_ID_FIELD) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => TxnId::from_json(v).map(Some).ok_or_else(|| {
            BadHistory::at_op(
                history,
                i,
                format!(
                    "{TXN_ID_FIELD} must be an integer or a string, got {}",
                    short(v)
                ),
            )
        }),
    }
}

/// The history's transactions in invocation order: every op pair (or standalone `info`) with a
/// `txn-id`. Two pairs naming one id, or an invocation and completion naming different ids,
/// are errors: the link between logs and history would be ambiguous.
pub fn history_txns(history: &History) -> Result<Vec<HistoryTxn>, BadHistory> {
    let mut txns = Vec::new();
    let mut first_use: FxHashMap<TxnId, usize> = FxHashMap::default();
    for (i, op) in history.ops.iter().enumerate() {
        let partner = history.partner.get(i).copied().flatten();
        let (invoke, complete) = match (op.op_type, partner) {
            (OpType::Invoke, c) => (i, c),
            (_, None) => (i, None),
            // A paired completion: handled with its invocation.
            (_, Some(_)) => continue,
        };
        let Some(id) = pair_id(history, invoke, complete)? else {
            continue;
        };
        let at = complete.unwrap_or(invoke);
        if let Some(&prev) = first_use.get(&id) {
            return Err(BadHistory::at_op(
                history,
                at,
                format!(
                    "{TXN_ID_FIELD} {id} is used again; the op at line {} already names it",
                    history.lines.get(prev).copied().unwrap_or(0)
                ),
            ));
        }
        first_use.insert(id.clone(), at);
        let status = match (op.op_type, complete.map(|c| history.ops[c].op_type)) {
            (OpType::Invoke, Some(OpType::Ok)) => TxnStatus::Committed,
            (OpType::Invoke, Some(OpType::Fail)) => TxnStatus::Aborted,
            _ => TxnStatus::Unknown,
        };
        txns.push(HistoryTxn {
            id,
            status,
            invoke,
            complete,
        });
    }
    Ok(txns)
}

/// The id of an invocation and its completion: the completion's, else the invocation's.
fn pair_id(
    history: &History,
    invoke: usize,
    complete: Option<usize>,
) -> Result<Option<TxnId>, BadHistory> {
    let at_invoke = txn_id_field(history, invoke)?;
    let Some(c) = complete else {
        return Ok(at_invoke);
    };
    let at_complete = txn_id_field(history, c)?;
    match (at_invoke, at_complete) {
        (Some(a), Some(b)) if a != b => Err(BadHistory::at_op(
            history,
            c,
            format!(
                "{TXN_ID_FIELD} {b} differs from {a} on its invocation at line {}",
                history.lines.get(invoke).copied().unwrap_or(0)
            ),
        )),
        (a, b) => Ok(b.or(a)),
    }
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// Checks the apply logs against the client history (see the module docs for each anomaly).
///
/// The verdict is unknown when there are no logs at all: no evidence is not a proof.
pub fn check(history: &History, logs: &ApplyLogs) -> Result<Verdict, BadHistory> {
    let txns = history_txns(history)?;
    let mut v = Verdict::new(CHECKER);
    let ctx = Context::new(history, logs, &txns);
    ctx.details(&mut v);
    if logs.replicas.is_empty() {
        v.give_up("no replica apply logs: nothing to compare");
        return Ok(v);
    }
    ctx.check_prefixes(&mut v);
    let applied = ctx.applied_index(&mut v);
    ctx.check_aborted(&mut v, &applied);
    ctx.check_committed(&mut v, &applied);
    ctx.check_unknown(&mut v, &applied);
    ctx.check_states(&mut v);
    ctx.check_realtime(&mut v);
    Ok(v)
}

/// Records an anomaly, building its explanation only if it will be kept: a log with millions
/// of anomalies costs counting, not millions of strings.
fn report(v: &mut Verdict, kind: &str, explain: impl FnOnce() -> String) {
    let kept = v.anomalies.get(kind).map_or(0, Vec::len);
    let text = if kept < MAX_EXPLANATIONS_PER_TYPE {
        explain()
    } else {
        String::new()
    };
    v.anomaly(kind, text);
}

/// Everything the checks share.
struct Context<'a> {
    history: &'a History,
    logs: &'a ApplyLogs,
    txns: &'a [HistoryTxn],
    /// Per applied id (entry number): its transaction in `txns`, if the history names it.
    txn_of: Vec<Option<usize>>,
    /// The replica whose log is the common order: the longest, the first on ties.
    reference: usize,
    finished: usize,
}

impl<'a> Context<'a> {
    fn new(history: &'a History, logs: &'a ApplyLogs, txns: &'a [HistoryTxn]) -> Context<'a> {
        let mut txn_of = vec![None; logs.ids.len()];
        for (t, txn) in txns.iter().enumerate() {
            if let Some(e) = logs.lookup(&txn.id) {
                txn_of[e as usize] = Some(t);
            }
        }
        let reference = longest(logs);
        Context {
            history,
            logs,
            txns,
            txn_of,
            reference,
            finished: logs.replicas.iter().filter(|r| r.finished).count(),
        }
    }

    fn line(&self, op: usize) -> usize {
        self.history.lines.get(op).copied().unwrap_or(0)
    }

    fn name(&self, r: usize) -> &str {
        &self.logs.replicas[r].name
    }

    fn details(&self, v: &mut Verdict) {
        let count = |s: TxnStatus| self.txns.iter().filter(|t| t.status == s).count();
        let applied: serde_json::Map<String, Value> = self
            .logs
            .replicas
            .iter()
            .map(|r| (r.name.clone(), Value::from(r.applied.len())))
            .collect();
        v.detail("replicas", self.logs.replicas.len());
        v.detail("finished_replicas", self.finished);
        v.detail("applied_counts", applied);
        v.detail("distinct_applied_txns", self.logs.ids.len());
        if let Some(r) = self.logs.replicas.get(self.reference) {
            v.detail("common_order_length", r.applied.len());
            v.detail("common_order_replica", r.name.as_str());
        }
        v.detail("history_txns", self.txns.len());
        v.detail("committed", count(TxnStatus::Committed));
        v.detail("aborted", count(TxnStatus::Aborted));
        v.detail("unknown", count(TxnStatus::Unknown));
    }

    /// (a) Every log is a prefix of the reference log. Comparing with the longest is enough: if
    /// every log is a prefix of it, all are prefixes of one order; if one is not, that log and
    /// the longest are two replicas that applied different transactions at one position.
    fn check_prefixes(&self, v: &mut Verdict) {
        let reference = &self.logs.replicas[self.reference];
        for (r, replica) in self.logs.replicas.iter().enumerate() {
            if r == self.reference {
                continue;
            }
            let Some(pos) = first_difference(&replica.applied, &reference.applied) else {
                continue;
            };
            report(v, "divergent-apply-order", || {
                format!(
                    "replicas {} and {} applied different transactions at position {}: {} \
                     applied {}, {} applied {} (after {} in common)",
                    reference.name,
                    replica.name,
                    pos + 1,
                    reference.name,
                    self.logs.id(reference.applied[pos]),
                    replica.name,
                    self.logs.id(replica.applied[pos]),
                    count_of(pos, "transaction")
                )
            });
        }
    }

    /// (b) One pass over every log: duplicates within a replica are reported, and per id the
    /// number of distinct replicas (and finished replicas) that applied it is counted.
    fn applied_index(&self, v: &mut Verdict) -> AppliedIndex {
        let n = self.logs.ids.len();
        let mut index = AppliedIndex {
            replicas: vec![0; n],
            finished: vec![0; n],
            first_replica: vec![0; n],
        };
        // Which replica last applied each id, and at which position: reset for free between
        // replicas because the replica number changes.
        let mut last_replica = vec![u32::MAX; n];
        let mut first_pos = vec![0u32; n];
        for (r, replica) in self.logs.replicas.iter().enumerate() {
            for (pos, &e) in replica.applied.iter().enumerate() {
                let e = e as usize;
                if last_replica[e] == r as u32 {
                    report(v, "duplicate-apply", || {
                        format!(
                            "replica {} applied {} twice: at positions {} and {}",
                            replica.name,
                            self.logs.ids[e],
                            first_pos[e] + 1,
                            pos + 1
                        )
                    });
                    continue;
                }
                last_replica[e] = r as u32;
                first_pos[e] = pos as u32;
                if index.replicas[e] == 0 {
                    index.first_replica[e] = r as u32;
                }
                index.replicas[e] += 1;
                if replica.finished {
                    index.finished[e] += 1;
                }
            }
        }
        index
    }

    /// "applied by n1" or "applied by n1 and 2 other replicas".
    fn applied_by(&self, applied: &AppliedIndex, e: usize) -> String {
        let first = self.name(applied.first_replica[e] as usize);
        match applied.replicas[e] {
            0 | 1 => format!("applied by {first}"),
            k => format!(
                "applied by {first} and {}",
                count_of(k as usize - 1, "other replica")
            ),
        }
    }

    /// (c) No transaction the client saw fail is applied anywhere.
    fn check_aborted(&self, v: &mut Verdict, applied: &AppliedIndex) {
        for txn in self.txns.iter().filter(|t| t.status == TxnStatus::Aborted) {
            let Some(e) = self.logs.lookup(&txn.id) else {
                continue;
            };
            let e = e as usize;
            if applied.replicas[e] == 0 {
                continue;
            }
            report(v, "aborted-applied", || {
                format!(
                    "txn {} failed (aborted) at line {} but was {}",
                    txn.id,
                    self.line(txn.complete.unwrap_or(txn.invoke)),
                    self.applied_by(applied, e)
                )
            });
        }
    }

    /// (d) Every finished replica holds every transaction the client saw commit. Which replicas
    /// miss it is worked out only for the explained ones, in one more pass over the logs.
    fn check_committed(&self, v: &mut Verdict, applied: &AppliedIndex) {
        if self.finished == 0 {
            return;
        }
        let mut explained: Vec<(usize, Option<u32>)> = Vec::new();
        let mut unexplained = 0usize;
        for (t, txn) in self.txns.iter().enumerate() {
            if txn.status != TxnStatus::Committed {
                continue;
            }
            let e = self.logs.lookup(&txn.id);
            let have = e.map_or(0, |e| applied.finished[e as usize] as usize);
            if have >= self.finished {
                continue;
            }
            if explained.len() < MAX_EXPLANATIONS_PER_TYPE {
                explained.push((t, e));
            } else {
                unexplained += 1;
            }
        }
        let holders = self.finished_holders(&explained);
        for (slot, &(t, _)) in explained.iter().enumerate() {
            let txn = &self.txns[t];
            let missing: Vec<&str> = (0..self.logs.replicas.len())
                .filter(|&r| self.logs.replicas[r].finished && !holders[slot][r])
                .map(|r| self.name(r))
                .collect();
            report(v, "committed-not-applied", || {
                format!(
                    "txn {} committed (ok at line {}) but finished {} {} never applied it",
                    txn.id,
                    self.line(txn.complete.unwrap_or(txn.invoke)),
                    if missing.len() == 1 {
                        "replica"
                    } else {
                        "replicas"
                    },
                    list_names(&missing)
                )
            });
        }
        for _ in 0..unexplained {
            v.anomaly("committed-not-applied", String::new());
        }
    }

    /// For each explained transaction, per replica: whether it is finished and applied it.
    fn finished_holders(&self, explained: &[(usize, Option<u32>)]) -> Vec<Vec<bool>> {
        let mut slot_of: FxHashMap<u32, usize> = FxHashMap::default();
        for (slot, &(_, e)) in explained.iter().enumerate() {
            if let Some(e) = e {
                slot_of.insert(e, slot);
            }
        }
        let mut holders = vec![vec![false; self.logs.replicas.len()]; explained.len()];
        if slot_of.is_empty() {
            return holders;
        }
        for (r, replica) in self.logs.replicas.iter().enumerate() {
            if !replica.finished {
                continue;
            }
            for e in &replica.applied {
                if let Some(&slot) = slot_of.get(e) {
                    holders[slot][r] = true;
                }
            }
        }
        holders
    }

    /// (e) Every applied id is a transaction some client ran.
    fn check_unknown(&self, v: &mut Verdict, applied: &AppliedIndex) {
        for (e, id) in self.logs.ids.iter().enumerate() {
            if self.txn_of[e].is_some() || applied.replicas[e] == 0 {
                continue;
            }
            report(v, "unknown-txn-applied", || {
                format!(
                    "txn {id} was {} but no op in the history has {TXN_ID_FIELD} {id}",
                    self.applied_by(applied, e)
                )
            });
        }
    }

    /// (f) Finished replicas that report a state all report the same one. Each is compared
    /// with the first, so one odd replica is one anomaly naming it.
    fn check_states(&self, v: &mut Verdict) {
        let mut with_state = self
            .logs
            .replicas
            .iter()
            .filter(|r| r.finished)
            .filter_map(|r| r.state.as_ref().map(|s| (r, s)));
        let Some((first, first_state)) = with_state.next() else {
            return;
        };
        for (other, state) in with_state {
            let Some((key, a, b)) = first_state_difference(first_state, state) else {
                continue;
            };
            report(v, "divergent-state", || {
                format!(
                    "finished replicas {} and {} end in different states: at key {} {} has {} \
                     and {} has {}",
                    first.name,
                    other.name,
                    Value::from(key),
                    first.name,
                    a.map_or("no value".to_string(), short),
                    other.name,
                    b.map_or("no value".to_string(), short)
                )
            });
        }
    }

    /// (g) One sweep in history (real-time) order keeps the latest position in the common
    /// order among transactions that have completed `ok` so far; a transaction invoked later
    /// but placed before that position was ordered against what clients saw.
    fn check_realtime(&self, v: &mut Verdict) {
        let position = self.positions();
        let pos_of = |t: usize| -> Option<u32> {
            let e = self.logs.lookup(&self.txns[t].id)?;
            Some(position[e as usize]).filter(|&p| p != u32::MAX)
        };
        // Per op: the transaction it invokes or completes (+1; 0 for none).
        let mut txn_at = vec![0u32; self.history.ops.len()];
        for (t, txn) in self.txns.iter().enumerate() {
            txn_at[txn.invoke] = t as u32 + 1;
            if let Some(c) = txn.complete {
                txn_at[c] = t as u32 + 1;
            }
        }
        let mut latest_done: Option<(u32, usize)> = None;
        for (i, op) in self.history.ops.iter().enumerate() {
            let Some(t) = (txn_at[i] as usize).checked_sub(1) else {
                continue;
            };
            let Some(pos) = pos_of(t) else { continue };
            if op.op_type == OpType::Invoke {
                if let Some((done_pos, a)) = latest_done.filter(|&(p, _)| p > pos) {
                    self.report_realtime(v, a, done_pos, t, pos);
                }
            } else if op.op_type == OpType::Ok && latest_done.is_none_or(|(p, _)| pos > p) {
                latest_done = Some((pos, t));
            }
        }
    }

    fn report_realtime(&self, v: &mut Verdict, a: usize, a_pos: u32, b: usize, b_pos: u32) {
        let (ta, tb) = (&self.txns[a], &self.txns[b]);
        report(v, "realtime-order-violation", || {
            format!(
                "txn {} completed ok (line {}) before txn {} was invoked (line {}), yet the common \
                 order applies {} at position {}, before {} at position {}",
                ta.id,
                self.line(ta.complete.unwrap_or(ta.invoke)),
                tb.id,
                self.line(tb.invoke),
                tb.id,
                b_pos + 1,
                ta.id,
                a_pos + 1
            )
        });
    }

    /// Per id, its first position in the common order (`u32::MAX`: not in it).
    fn positions(&self) -> Vec<u32> {
        let mut position = vec![u32::MAX; self.logs.ids.len()];
        for (pos, &e) in self.logs.replicas[self.reference]
            .applied
            .iter()
            .enumerate()
        {
            let p = &mut position[e as usize];
            if *p == u32::MAX {
                *p = pos as u32;
            }
        }
        position
    }
}

/// Per applied id: how many distinct replicas, and finished replicas, applied it, and the
/// first replica that did (for messages).
struct AppliedIndex {
    replicas: Vec<u32>,
    finished: Vec<u32>,
    first_replica: Vec<u32>,
}

/// The replica with the longest log, the first on ties (0 when there are none).
fn longest(logs: &ApplyLogs) -> usize {
    let mut best = 0;
    for (r, replica) in logs.replicas.iter().enumerate() {
        if replica.applied.len() > logs.replicas[best].applied.len() {
            best = r;
        }
    }
    best
}

/// The first position where `shorter` differs from `longer`; `shorter` is not longer.
fn first_difference(shorter: &[u32], longer: &[u32]) -> Option<usize> {
    shorter.iter().zip(longer).position(|(a, b)| a != b)
}

/// The first key (in key order) where two states differ, with both values (`None`: absent).
fn first_state_difference<'s>(
    a: &'s BTreeMap<String, Value>,
    b: &'s BTreeMap<String, Value>,
) -> Option<(&'s str, Option<&'s Value>, Option<&'s Value>)> {
    let mut ia = a.iter().peekable();
    let mut ib = b.iter().peekable();
    loop {
        match (ia.peek(), ib.peek()) {
            (None, None) => return None,
            (Some((ka, va)), None) => return Some((ka.as_str(), Some(*va), None)),
            (None, Some((kb, vb))) => return Some((kb.as_str(), None, Some(*vb))),
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => return Some((ka.as_str(), Some(*va), None)),
                std::cmp::Ordering::Greater => return Some((kb.as_str(), None, Some(*vb))),
                std::cmp::Ordering::Equal if va != vb => {
                    return Some((ka.as_str(), Some(*va), Some(*vb)))
                }
                std::cmp::Ordering::Equal => {
                    ia.next();
                    ib.next();
                }
            },
        }
    }
}

/// "1 replica", "2 replicas".
fn count_of(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// "n1", "n1 and n2", "n1, n2, n3 and 5 more".
fn list_names(names: &[&str]) -> String {
    const SHOWN: usize = 3;
    match names.len() {
        0 => "(none)".to_string(),
        1 => names[0].to_string(),
        n if n <= SHOWN => format!("{} and {}", names[..n - 1].join(", "), names[n - 1]),
        n => format!("{} and {} more", names[..SHOWN].join(", "), n - SHOWN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::jsonl;
    use crate::verdict::Validity;
    use serde_json::json;

    fn parse(text: &str) -> Result<ApplyLogs, BadHistory> {
        parse_apply_logs("apply.jsonl", text)
    }

    fn problem(text: &str) -> BadHistory {
        match parse(text) {
            Ok(logs) => panic!("accepted: {logs:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn lines_for_one_replica_concatenate_and_the_last_state_wins() {
        let logs = parse(concat!(
            "{\"replica\": \"n1\", \"applied\": [1, \"a\"], \"state\": {\"x\": 1}}\n",
            "\n",
            "{\"replica\": \"n2\", \"applied\": [1], \"finished\": true}\n",
            "{\"replica\": \"n1\", \"applied\": [3], \"finished\": true, \"state\": {\"x\": 2}}\n",
            "{\"replica\": \"n1\", \"state\": null}\n",
        ))
        .unwrap();
        assert_eq!(logs.replicas.len(), 2);
        let n1 = logs.replica("n1").unwrap();
        assert_eq!(
            logs.applied_ids(n1),
            vec![&TxnId::Int(1), &TxnId::Str("a".into()), &TxnId::Int(3)]
        );
        assert!(n1.finished);
        assert_eq!(
            n1.state.as_ref().unwrap()["x"],
            json!(2),
            "null keeps the last state"
        );
        assert_eq!(n1.line, 1);
        assert_eq!(logs.replica("n2").unwrap().line, 3);
        assert_eq!(logs.ids.len(), 3, "ids are interned");
    }

    #[test]
    fn integer_and_string_ids_differ() {
        let logs =
            parse("{\"replica\": \"n1\", \"applied\": [7, \"7\", 18446744073709551615, -3]}")
                .unwrap();
        assert_eq!(logs.ids.len(), 4);
        assert_eq!(logs.ids[2], TxnId::Int(u64::MAX as i128));
        assert_eq!(logs.ids[1].to_string(), "\"7\"");
        assert_eq!(logs.ids[3].to_string(), "-3");
    }

    #[test]
    fn bad_lines_are_named() {
        let e = problem("{\"replica\": \"n1\", \"applied\": [1]}\nnot json\n");
        assert_eq!((e.file.as_str(), e.line), ("apply.jsonl", 2));
        assert!(e.problem.contains("expected a JSON object"), "{e}");

        let e = problem("\n{\"replica\": \"n1\", \"applied\": [1,}\n");
        assert_eq!(e.line, 2);
        assert!(e.problem.starts_with("not valid JSON"), "{e}");
        assert!(e.problem.contains("column"), "{e}");

        let e = problem("{\"replica\": \"n1\", \"applied\": 5}");
        assert!(e.problem.contains("array of txn ids"), "{e}");

        let e = problem("{\"replica\": \"n1\", \"applied\": [1.5]}");
        assert!(e.problem.contains("txn id (an integer or a string)"), "{e}");
        let e = problem("{\"replica\": \"n1\", \"applied\": [null]}");
        assert!(e.problem.contains("txn id"), "{e}");

        let e = problem("{\"replica\": 3, \"applied\": []}");
        assert!(e.problem.contains("replica must be a string, got 3"), "{e}");
        let e = problem("{\"replica\": \"n1\", \"finished\": \"yes\"}");
        assert!(e.problem.contains("finished must be true or false"), "{e}");
        let e = problem("{\"replica\": \"n1\", \"state\": [1]}");
        assert!(e.problem.contains("state must be an object"), "{e}");
        let e = problem("{\"replica\": \"n1\", \"aplied\": [1]}");
        assert!(e.problem.contains("unknown field \"aplied\""), "{e}");
        let e = problem("{\"applied\": [1]}");
        assert!(e.problem.contains("missing field \"replica\""), "{e}");
        let e = problem("{\"replica\": \"\"}");
        assert!(e.problem.contains("empty"), "{e}");
        let e = problem("{\"replica\": \"n1\", \"applied\": [1], \"applied\": [2]}");
        assert!(e.problem.contains("given twice"), "{e}");
        let e = problem("{\"replica\": \"n1\"} {\"replica\": \"n2\"}");
        assert!(e.problem.contains("trailing"), "{e}");
    }

    #[test]
    fn limits_are_errors_naming_the_limit() {
        let small = Limits {
            replicas: 2,
            ids: 5,
        };
        let e = parse_with_limits(
            "f",
            "{\"replica\": \"a\"}\n{\"replica\": \"b\"}\n{\"replica\": \"c\"}\n",
            small,
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.problem.contains("more than 2 replicas (the limit)"),
            "{e}"
        );
        let e = parse_with_limits(
            "f",
            "{\"replica\": \"a\", \"applied\": [1, 2, 3]}\n{\"replica\": \"b\", \"applied\": [1, 2, 3]}",
            small,
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("more than 5 applied txn ids"), "{e}");
        let text: String = (0..=MAX_REPLICAS)
            .map(|i| format!("{{\"replica\": \"n{i}\"}}\n"))
            .collect();
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, MAX_REPLICAS + 1);
        assert!(e.problem.contains("1024"), "{e}");
    }

    #[test]
    fn state_differences_name_the_first_key() {
        let m = |v: Value| -> BTreeMap<String, Value> {
            v.as_object().unwrap().clone().into_iter().collect()
        };
        let a = m(json!({"a": 1, "b": 2, "c": 3}));
        assert_eq!(first_state_difference(&a, &a), None);
        let b = m(json!({"a": 1, "b": 5, "c": 4}));
        assert_eq!(
            first_state_difference(&a, &b),
            Some(("b", Some(&json!(2)), Some(&json!(5))))
        );
        let c = m(json!({"a": 1, "c": 3}));
        assert_eq!(
            first_state_difference(&a, &c),
            Some(("b", Some(&json!(2)), None))
        );
        assert_eq!(
            first_state_difference(&c, &a),
            Some(("b", None, Some(&json!(2))))
        );
    }

    #[test]
    fn names_are_listed_briefly() {
        assert_eq!(list_names(&["a"]), "a");
        assert_eq!(list_names(&["a", "b"]), "a and b");
        assert_eq!(list_names(&["a", "b", "c"]), "a, b and c");
        assert_eq!(list_names(&["a", "b", "c", "d", "e"]), "a, b, c and 2 more");
    }

    fn history(text: &str) -> History {
        jsonl::read("h.jsonl", text).unwrap()
    }

    #[test]
    fn history_links_ids_from_completions_or_invocations() {
        let h = history(concat!(
            "{\"type\":\"invoke\",\"process\":0,\"f\":\"txn\",\"value\":null}\n",
            "{\"type\":\"ok\",\"process\":0,\"f\":\"txn\",\"value\":null,\"txn-id\":1}\n",
            "{\"type\":\"invoke\",\"process\":1,\"f\":\"txn\",\"value\":null,\"txn-id\":\"b\"}\n",
            "{\"type\":\"fail\",\"process\":1,\"f\":\"txn\",\"value\":null}\n",
            "{\"type\":\"invoke\",\"process\":2,\"f\":\"txn\",\"value\":null,\"txn-id\":3}\n",
        ));
        let txns = history_txns(&h).unwrap();
        let got: Vec<(TxnId, TxnStatus)> = txns.iter().map(|t| (t.id.clone(), t.status)).collect();
        assert_eq!(
            got,
            vec![
                (TxnId::Int(1), TxnStatus::Committed),
                (TxnId::Str("b".into()), TxnStatus::Aborted),
                (TxnId::Int(3), TxnStatus::Unknown),
            ]
        );
    }

    #[test]
    fn ambiguous_history_ids_are_errors() {
        let dup = history(concat!(
            "{\"type\":\"invoke\",\"process\":0,\"f\":\"txn\",\"value\":null}\n",
            "{\"type\":\"ok\",\"process\":0,\"f\":\"txn\",\"value\":null,\"txn-id\":1}\n",
            "{\"type\":\"invoke\",\"process\":0,\"f\":\"txn\",\"value\":null}\n",
            "{\"type\":\"ok\",\"process\":0,\"f\":\"txn\",\"value\":null,\"txn-id\":1}\n",
        ));
        let e = history_txns(&dup).unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.problem.contains("line 2 already names it"), "{e}");
        let differ = history(concat!(
            "{\"type\":\"invoke\",\"process\":0,\"f\":\"txn\",\"value\":null,\"txn-id\":1}\n",
            "{\"type\":\"ok\",\"process\":0,\"f\":\"txn\",\"value\":null,\"txn-id\":2}\n",
        ));
        let e = history_txns(&differ).unwrap_err();
        assert_eq!(e.line, 2);
        let typed = history(
            "{\"type\":\"invoke\",\"process\":0,\"f\":\"txn\",\"value\":null,\"txn-id\":[1]}\n",
        );
        let e = history_txns(&typed).unwrap_err();
        assert!(
            e.problem.contains("txn-id must be an integer or a string"),
            "{e}"
        );
    }

    #[test]
    fn no_logs_is_unknown() {
        let h = history("");
        let v = check(&h, &parse("").unwrap()).unwrap();
        assert_eq!(v.valid, Validity::Unknown);
    }

    #[test]
    fn many_anomalies_are_counted_but_explanations_bounded() {
        let mut text = String::new();
        let ids: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        text.push_str(&format!(
            "{{\"replica\": \"n1\", \"applied\": [{}], \"finished\": true}}\n",
            ids.join(",")
        ));
        let v = check(&history(""), &parse(&text).unwrap()).unwrap();
        assert_eq!(v.anomaly_counts["unknown-txn-applied"], 1000);
        assert_eq!(
            v.anomalies["unknown-txn-applied"].len(),
            MAX_EXPLANATIONS_PER_TYPE
        );
        assert!(v.anomalies["unknown-txn-applied"]
            .iter()
            .all(|e| !e.is_empty()));
    }
}
