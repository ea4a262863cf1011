//! Linearizability: is there a total order of the operations, consistent with real time, that a
//! sequential model accepts?
//!
//! The search is Wing & Gong's with Lowe's just-in-time linearization and a memo of visited
//! configurations (linearized set, model state), as in Porcupine, plus three things Porcupine
//! lacks: crashed operations are kept out of the event list and tried only when the completed
//! operations are stuck, identical crashed operations are linearized in a canonical order, and the
//! memo key is a compact window over the linearized set, so long histories stay small in memory.
//! Independent keys are checked apart (P-compositionality) in parallel, and the first violation
//! cancels the rest. Every search is bounded in time and memory and answers "unknown" past them.

mod compile;
mod memo;
mod partitions;
pub mod report;
mod search;

use crate::history::{Format, History, Process, Value};
use crate::model::ModelKind;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use compile::{CompileError, Operation};

/// What a nil read means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NilRead {
    /// Knossos: a read of nil says nothing (the client did not learn the value).
    Unconstrained,
    /// Porcupine and Faultline: a read of nil means the register is unset.
    Absent,
}

/// What a `fail` completion means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailMode {
    /// Knossos: failed ops never happened and constrain nothing; they are dropped.
    Drop,
    /// Porcupine's etcd model: a failed CAS also observed that the value was not `old`.
    Observe,
}

/// How a history's values are interpreted. Defaults depend on where the history came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Semantics {
    /// The value of every register (every key) before the first operation.
    pub initial: Value,
    pub nil_read: NilRead,
    pub fail: FailMode,
}

impl Semantics {
    /// The conventions of the tool that writes each format, so that its verdicts carry over:
    /// Knossos for EDN (`(cas-register 0)`), Porcupine for its etcd and kv logs, and Faultline's
    /// own for JSON (null means unset and constrains the history).
    pub fn for_format(format: Format) -> Semantics {
        match format {
            Format::JsonLines | Format::JsonArray => Semantics {
                initial: Value::Null,
                nil_read: NilRead::Absent,
                fail: FailMode::Drop,
            },
            Format::Edn => Semantics {
                initial: Value::from(0),
                nil_read: NilRead::Unconstrained,
                fail: FailMode::Drop,
            },
            Format::JepsenLog => Semantics {
                initial: Value::Null,
                nil_read: NilRead::Absent,
                fail: FailMode::Observe,
            },
            Format::PorcupineKv => Semantics {
                initial: Value::from(""),
                nil_read: NilRead::Absent,
                fail: FailMode::Drop,
            },
        }
    }
}

/// Limits and knobs for one check.
#[derive(Clone, Debug)]
pub struct Options {
    pub semantics: Semantics,
    /// Wall-clock budget for the whole check; past it the verdict is unknown.
    pub time_limit: Option<Duration>,
    /// Budget for the search's memo and stack, over all partitions; past it, unknown.
    pub memory_limit_bytes: usize,
    /// How many longest linearizable prefixes an invalid verdict shows.
    pub max_prefixes: usize,
}

impl Options {
    pub fn new(semantics: Semantics) -> Options {
        Options {
            semantics,
            time_limit: None,
            memory_limit_bytes: 1 << 30,
            max_prefixes: 8,
        }
    }
}

pub use crate::verdict::Validity;

/// The verdict of one check, with the evidence for it.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub valid: Validity,
    /// Why the verdict is unknown: "timeout", "memory-limit" or "cancelled".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub model: String,
    pub semantics: Semantics,
    /// Operations the search had to place (after dropping those that constrain nothing).
    pub ops: usize,
    /// Of those, crashed (`info` or never completed).
    pub crashed_ops: usize,
    /// Independent partitions (keys) the history split into.
    pub partitions: usize,
    /// Configurations the search visited, over all partitions.
    pub configurations: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// Why a history is not linearizable.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// The partition (key) that failed, for keyed models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The operation that cannot be linearized: every order that reaches it breaks the model.
    pub op: OpSummary,
    /// Operations whose intervals overlap it.
    pub concurrent: Vec<OpSummary>,
    /// The longest linearizable prefixes found, each with the state it reaches.
    pub prefixes: Vec<Prefix>,
}

/// An operation as explanations show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpSummary {
    pub invoke_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_index: Option<usize>,
    pub process: Value,
    pub f: String,
    /// The value as completed (the invocation's if it never completed).
    pub value: Value,
    /// "ok", "fail", "info" or "pending".
    pub outcome: String,
}

impl OpSummary {
    pub fn from_history(h: &History, invoke: usize) -> OpSummary {
        let inv = &h.ops[invoke];
        let completion_index = h.partner[invoke];
        let done = completion_index.map(|c| &h.ops[c]);
        let value = match done {
            Some(c) if c.op_type == crate::history::OpType::Ok => c.value.clone(),
            _ => inv.value.clone(),
        };
        OpSummary {
            invoke_index: invoke,
            completion_index,
            process: inv.process.to_json(),
            f: inv.f.clone(),
            value,
            outcome: done.map_or("pending", |c| c.op_type.as_str()).to_string(),
        }
    }

    fn describe(&self) -> String {
        let process = match &self.process {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let end = match self.completion_index {
            Some(c) => format!("{}..{c}", self.invoke_index),
            None => format!("{}..", self.invoke_index),
        };
        format!(
            "process {process} {} {} {} (ops {end})",
            self.outcome, self.f, self.value
        )
    }
}

/// A linearizable prefix: the order found, the state it reaches, and why the stuck op cannot
/// follow it.
#[derive(Clone, Debug, Serialize)]
pub struct Prefix {
    /// Invocation indices, in linearization order: the last ops of the prefix.
    pub order: Vec<usize>,
    /// How many earlier ops of the prefix `order` leaves out.
    pub elided: usize,
    pub state: String,
    pub reason: String,
}

impl Outcome {
    /// A plain-text explanation, as `faultline check` prints it.
    pub fn explain(&self, history: &History) -> String {
        let mut out = String::new();
        match self.valid {
            Validity::Valid => out.push_str(&format!(
                "linearizable: {} ops ({} crashed) in {} partition(s), {} configurations\n",
                self.ops, self.crashed_ops, self.partitions, self.configurations
            )),
            Validity::Unknown => out.push_str(&format!(
                "unknown ({}): gave up after {} configurations\n",
                self.cause.as_deref().unwrap_or("limit"),
                self.configurations
            )),
            Validity::Invalid => {
                let Some(f) = &self.failure else {
                    out.push_str("not linearizable\n");
                    return out;
                };
                if let Some(k) = &f.key {
                    out.push_str(&format!("key {k}: "));
                }
                out.push_str(&format!(
                    "not linearizable: {} cannot be linearized\n",
                    f.op.describe()
                ));
                if let Some(line) = history.lines.get(f.op.invoke_index) {
                    out.push_str(&format!("  invoked at {}:{line}\n", history.file));
                }
                out.push_str(&format!("  {} concurrent op(s):\n", f.concurrent.len()));
                for c in f.concurrent.iter().take(20) {
                    out.push_str(&format!("    {}\n", c.describe()));
                }
                if f.concurrent.len() > 20 {
                    out.push_str(&format!("    ... and {} more\n", f.concurrent.len() - 20));
                }
                out.push_str(&format!(
                    "  longest linearizable prefixes ({} shown):\n",
                    f.prefixes.len()
                ));
                for p in &f.prefixes {
                    let tail: Vec<String> = p
                        .order
                        .iter()
                        .rev()
                        .take(6)
                        .rev()
                        .map(|&i| {
                            let s = OpSummary::from_history(history, i);
                            format!("{} {} {}", s.process_label(), s.f, s.value)
                        })
                        .collect();
                    let skipped = p.elided + p.order.len().saturating_sub(6);
                    let lead = if skipped > 0 {
                        format!("({skipped} earlier ops) .. ")
                    } else {
                        String::new()
                    };
                    out.push_str(&format!(
                        "    {lead}{} -> state {}: {}\n",
                        tail.join(", "),
                        p.state,
                        p.reason
                    ));
                }
            }
        }
        out
    }
}

impl OpSummary {
    fn process_label(&self) -> String {
        match &self.process {
            Value::String(s) => s.clone(),
            other => format!("p{other}"),
        }
    }
}

/// A check that went wrong before the search: the history does not fit the model.
pub type Error = CompileError;

/// Checks `history` against `model`. Never panics on bad input: a history the model cannot
/// interpret gives an error naming the op and the problem.
pub fn check(history: &History, model: ModelKind, options: &Options) -> Result<Outcome, Error> {
    let started = Instant::now();
    let deadline = options.time_limit.map(|t| started + t);
    let compiled = compile::compile(history, model, &options.semantics)?;
    let cancel = AtomicBool::new(false);
    let result = partitions::run(history, &compiled, model, options, deadline, &cancel);
    cancel.store(true, Ordering::Relaxed);
    Ok(result)
}

/// The process of an op as explanations name it.
pub fn process_label(p: &Process) -> String {
    match p {
        Process::Client(c) => format!("p{c}"),
        Process::Named(n) => n.clone(),
    }
}

#[cfg(test)]
mod tests;
