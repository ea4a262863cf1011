//! The interface between the runner and a system's client.
//!
//! The runner owns scheduling, timeouts and the history; a client only performs one
//! operation at a time and says how it ended. The three endings are Jepsen's: `Ok` (it took
//! effect), `Fail` (it certainly did not), `Info` (it may have: the process is retired).

use checkers::history::{OpType, Value};
use std::future::Future;

/// What a client reports for one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// `Ok`, `Fail` or `Info`.
    pub op_type: OpType,
    pub value: Value,
    pub error: Option<Value>,
}

impl Outcome {
    pub fn ok(value: Value) -> Outcome {
        Outcome {
            op_type: OpType::Ok,
            value,
            error: None,
        }
    }

    /// The operation certainly did not take effect.
    pub fn fail(value: Value, error: impl Into<String>) -> Outcome {
        Outcome {
            op_type: OpType::Fail,
            value,
            error: Some(Value::from(error.into())),
        }
    }

    /// The operation may or may not have taken effect.
    pub fn info(value: Value, error: impl Into<String>) -> Outcome {
        Outcome {
            op_type: OpType::Info,
            value,
            error: Some(Value::from(error.into())),
        }
    }
}

/// A client of the system under test, one per worker.
pub trait Client: Send + 'static {
    fn invoke(&mut self, f: &str, value: &Value) -> impl Future<Output = Outcome> + Send;
}
