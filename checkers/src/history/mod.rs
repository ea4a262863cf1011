//! The history: the one contract between the harness, workloads, checkers and users' own tools.
//!
//! A history is a sequence of operation events in real-time order, in Jepsen's op-map shape
//! (`index`, `time`, `type`, `process`, `f`, `value`, optional `node` and `error`). File order is
//! the real-time order; `time` is metadata for reports. Readers for every format we accept live
//! in submodules and all produce the same [`History`], validated by [`History::new`]: an
//! invocation is completed by at most one later event of the same process, a completion needs an
//! open invocation, and a client process that got `info` never invokes again.

pub mod detect;
pub mod edn;
pub mod jepsen_log;
pub mod json_array;
pub mod jsonl;
pub mod porcupine_kv;

pub use detect::{parse, Format};
pub use serde_json::Value;

use std::fmt;

/// The outcome (or start) an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpType {
    Invoke,
    /// Certainly took effect.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// Indeterminate: may take effect at any time after its invocation, or never.
    Info,
}

impl OpType {
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }

    pub fn parse(s: &str) -> Option<OpType> {
        match s {
            "invoke" => Some(OpType::Invoke),
            "ok" => Some(OpType::Ok),
            "fail" => Some(OpType::Fail),
            "info" => Some(OpType::Info),
            _ => None,
        }
    }
}

/// Who performed an event: a client process (a non-negative integer) or a named actor such as
/// `nemesis`. Jepsen allows any keyword as a process, so names are kept as they are.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Named(String),
}

impl Process {
    pub fn nemesis() -> Process {
        Process::Named("nemesis".to_string())
    }

    pub fn is_client(&self) -> bool {
        matches!(self, Process::Client(_))
    }

    /// The JSON form: a number for clients, a string for named processes.
    pub fn to_json(&self) -> Value {
        match self {
            Process::Client(p) => Value::from(*p),
            Process::Named(n) => Value::from(n.as_str()),
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Named(n) => write!(f, "{n}"),
        }
    }
}

/// One event of a history.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// Dense from 0 in file order.
    pub index: u64,
    /// Nanoseconds since the test started. Faultline always writes it; foreign formats may lack it.
    pub time: Option<u64>,
    pub op_type: OpType,
    pub process: Process,
    pub f: String,
    /// `Value::Null` when the source had none.
    pub value: Value,
    pub node: Option<String>,
    pub error: Option<Value>,
    /// Fields we do not interpret, kept so that nothing recorded is lost on a rewrite.
    pub extra: serde_json::Map<String, Value>,
}

impl Op {
    /// A convenience constructor for generators and tests.
    pub fn new(index: u64, op_type: OpType, process: Process, f: &str, value: Value) -> Op {
        Op {
            index,
            time: None,
            op_type,
            process,
            f: f.to_string(),
            value,
            node: None,
            error: None,
            extra: serde_json::Map::new(),
        }
    }
}

/// Where a problem in an input sits, for error messages that name the file and the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based line of the event in its file.
    pub line: usize,
}

/// A problem with an input history. Every variant names the file, and the line where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("{file}:{line}: {problem}")]
    Malformed {
        file: String,
        line: usize,
        problem: String,
    },
    #[error("{file}: {problem}")]
    Whole { file: String, problem: String },
}

impl HistoryError {
    pub fn at(file: &str, line: usize, problem: impl Into<String>) -> HistoryError {
        HistoryError::Malformed {
            file: file.to_string(),
            line,
            problem: problem.into(),
        }
    }
}

/// Limits that keep a reader from exhausting memory on hostile input.
pub const MAX_OPS: usize = 50_000_000;
/// Nesting depth of values; deeper input is refused rather than risking a stack overflow.
pub const MAX_DEPTH: usize = 128;

/// A validated history: events in real-time order plus the pairing of invocations and completions.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    pub ops: Vec<Op>,
    /// For each op, the 1-based source line it came from (for error messages and reports).
    pub lines: Vec<usize>,
    /// For each op: for an invoke, the index of its completion (None: never completed); for a
    /// completion, the index of its invoke (None: a standalone `info`, e.g. a nemesis event).
    pub partner: Vec<Option<usize>>,
    /// The file name used in messages.
    pub file: String,
    pub format: Format,
}

impl History {
    /// Validates and pairs `ops`, re-numbering `index` densely from 0. `lines[i]` is op i's line.
    pub fn new(
        file: &str,
        format: Format,
        mut ops: Vec<Op>,
        lines: Vec<usize>,
    ) -> Result<History, HistoryError> {
        assert_eq!(ops.len(), lines.len(), "one source line per op");
        if ops.len() > MAX_OPS {
            return Err(HistoryError::Whole {
                file: file.to_string(),
                problem: format!("{} events exceed the limit of {MAX_OPS}", ops.len()),
            });
        }
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        let partner = pair(file, &ops, &lines)?;
        Ok(History {
            ops,
            lines,
            partner,
            file: file.to_string(),
            format,
        })
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The completion of invocation `i`, if any.
    pub fn completion(&self, i: usize) -> Option<&Op> {
        debug_assert_eq!(self.ops[i].op_type, OpType::Invoke);
        self.partner[i].map(|c| &self.ops[c])
    }
}

/// What pairing needs to know of an event. Readers that keep only part of each op (the
/// transactional checkers' lean reading) pair their own records with the same rules.
pub trait Event {
    fn op_type(&self) -> OpType;
    fn process(&self) -> &Process;
    fn f(&self) -> &str;
}

impl Event for Op {
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

/// Pairs invocations with completions by process, enforcing Jepsen's rules: for an invoke, the
/// index of its completion; for a completion, the index of its invoke.
pub fn pair<E: Event>(
    file: &str,
    ops: &[E],
    lines: &[usize],
) -> Result<Vec<Option<usize>>, HistoryError> {
    use rustc_hash::FxHashMap;
    let mut open: FxHashMap<&Process, usize> = FxHashMap::default();
    let mut retired: FxHashMap<&Process, usize> = FxHashMap::default();
    let mut partner = vec![None; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        let line = lines[i];
        match op.op_type() {
            OpType::Invoke => {
                if let Some(&prev) = open.get(op.process()) {
                    return Err(HistoryError::at(
                        file,
                        line,
                        format!(
                            "process {} invokes {:?} while its invocation at line {} is still open",
                            op.process(),
                            op.f(),
                            lines[prev]
                        ),
                    ));
                }
                if let Some(&crashed) = retired.get(op.process()) {
                    return Err(HistoryError::at(
                        file,
                        line,
                        format!(
                            "process {} invokes again after its op crashed (info) at line {}; \
                             a crashed process must continue under a new process id",
                            op.process(),
                            lines[crashed]
                        ),
                    ));
                }
                open.insert(op.process(), i);
            }
            OpType::Ok | OpType::Fail | OpType::Info => match open.remove(op.process()) {
                Some(inv) => {
                    if ops[inv].f() != op.f() {
                        return Err(HistoryError::at(
                            file,
                            line,
                            format!(
                                "process {} completes {:?} but its open invocation at line {} is {:?}",
                                op.process(), op.f(), lines[inv], ops[inv].f()
                            ),
                        ));
                    }
                    partner[inv] = Some(i);
                    partner[i] = Some(inv);
                    if op.op_type() == OpType::Info && op.process().is_client() {
                        retired.insert(op.process(), i);
                    }
                }
                // A standalone info is an event with no invocation (Knossos' nemesis lines).
                None if op.op_type() == OpType::Info => {}
                None => {
                    return Err(HistoryError::at(
                        file,
                        line,
                        format!(
                            "{} {:?} from process {} has no open invocation",
                            op.op_type().as_str(),
                            op.f(),
                            op.process()
                        ),
                    ))
                }
            },
        }
    }
    Ok(partner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(t: OpType, p: u64, f: &str, v: Value) -> Op {
        Op::new(0, t, Process::Client(p), f, v)
    }

    fn build(ops: Vec<Op>) -> Result<History, HistoryError> {
        let lines = (1..=ops.len()).collect();
        History::new("h.jsonl", Format::JsonLines, ops, lines)
    }

    #[test]
    fn pairs_by_process_and_renumbers() {
        let h = build(vec![
            op(OpType::Invoke, 0, "write", json!(1)),
            op(OpType::Invoke, 1, "read", Value::Null),
            op(OpType::Ok, 1, "read", json!(1)),
            op(OpType::Info, 0, "write", json!(1)),
        ])
        .unwrap();
        assert_eq!(h.partner, vec![Some(3), Some(2), Some(1), Some(0)]);
        assert_eq!(
            h.ops.iter().map(|o| o.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn second_invoke_on_busy_process_is_an_error_naming_the_line() {
        let e = build(vec![
            op(OpType::Invoke, 0, "write", json!(1)),
            op(OpType::Invoke, 0, "write", json!(2)),
        ])
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("h.jsonl:2:"), "{msg}");
        assert!(msg.contains("still open"), "{msg}");
    }

    #[test]
    fn completion_without_invoke_is_an_error() {
        let e = build(vec![op(OpType::Ok, 3, "read", json!(1))]).unwrap_err();
        assert!(e
            .to_string()
            .contains("h.jsonl:1: ok \"read\" from process 3 has no open invocation"));
    }

    #[test]
    fn crashed_process_may_not_invoke_again() {
        let e = build(vec![
            op(OpType::Invoke, 0, "write", json!(1)),
            op(OpType::Info, 0, "write", json!(1)),
            op(OpType::Invoke, 0, "write", json!(2)),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("h.jsonl:3:"), "{e}");
    }

    #[test]
    fn standalone_info_is_allowed_for_nemesis() {
        let mut n = op(OpType::Info, 0, "start", json!("partition"));
        n.process = Process::nemesis();
        let h = build(vec![n.clone(), n]).unwrap();
        assert_eq!(h.partner, vec![None, None]);
    }
}
