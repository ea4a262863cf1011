//! The recorded history, in Faultline's own format, ready for the checkers.
//!
//! Every client operation becomes an invoke and (if it ended) a completion, Jepsen op maps with
//! `time` in nanoseconds of virtual time, the client's process id and the node it talked to.
//! Faults are recorded as standalone `info` events of the `nemesis` process, which checkers
//! skip. `Sim::history` validates the events with `History::new`, so a history the simulator
//! hands out already obeys the pairing rules.

use checkers::history::{self, Format, History, HistoryError, Op, OpType, Process, Value};
use checkers::linearizable::{self, Options, Outcome, Semantics, Validity};
use checkers::model::ModelKind;
use std::time::Duration;

/// Appends ops, refusing to grow past a limit.
pub(crate) struct Recorder {
    ops: Vec<Op>,
    limit: usize,
}

/// The history is at its limit.
#[derive(Debug)]
pub(crate) struct HistoryFull;

/// What one event says, before the recorder numbers and times it.
pub(crate) struct Event<'a> {
    pub op_type: OpType,
    pub process: Process,
    pub f: &'a str,
    pub value: Value,
    pub node: Option<String>,
    pub error: Option<Value>,
}

impl Recorder {
    pub fn new(limit: usize) -> Recorder {
        Recorder {
            ops: Vec::new(),
            limit,
        }
    }

    pub fn push(&mut self, time_ms: u64, event: Event<'_>) -> Result<(), HistoryFull> {
        if self.ops.len() >= self.limit {
            return Err(HistoryFull);
        }
        let mut op = Op::new(
            self.ops.len() as u64,
            event.op_type,
            event.process,
            event.f,
            event.value,
        );
        op.time = Some(time_ms.saturating_mul(1_000_000));
        op.node = event.node;
        op.error = event.error;
        self.ops.push(op);
        Ok(())
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The validated history, named `name` in checker messages.
    pub fn history(&self, name: &str) -> Result<History, HistoryError> {
        let lines = (1..=self.ops.len()).collect();
        History::new(name, Format::JsonLines, self.ops.clone(), lines)
    }

    /// The events as JSON lines, the file `faultline check` reads.
    pub fn jsonl(&self) -> String {
        history::jsonl::write(&self.ops)
    }
}

/// Checks `history` for linearizability against `model` with Faultline's JSON semantics (null
/// means unset), within `time_limit`. `Err` carries the checker's explanation of an invalid
/// or unknown verdict, or why the history does not fit the model.
pub fn check_linearizable(
    history: &History,
    model: ModelKind,
    time_limit: Duration,
) -> Result<Outcome, String> {
    let mut options = Options::new(Semantics::for_format(Format::JsonLines));
    options.time_limit = Some(time_limit);
    let outcome = linearizable::check(history, model, &options).map_err(|e| e.to_string())?;
    match outcome.valid {
        Validity::Valid => Ok(outcome),
        Validity::Invalid | Validity::Unknown => Err(outcome.explain(history)),
    }
}
