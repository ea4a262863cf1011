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

/// A client whose type is chosen at run time (workloads picked by name): the object-safe
/// twin of [`Client`], which every `Client` is.
pub trait DynClient: Send + 'static {
    fn invoke_boxed<'a>(
        &'a mut self,
        f: &'a str,
        value: &'a Value,
    ) -> std::pin::Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;
}

impl<C: Client> DynClient for C {
    fn invoke_boxed<'a>(
        &'a mut self,
        f: &'a str,
        value: &'a Value,
    ) -> std::pin::Pin<Box<dyn Future<Output = Outcome> + Send + 'a>> {
        Box::pin(self.invoke(f, value))
    }
}

/// A boxed [`DynClient`], usable wherever a [`Client`] is.
pub struct BoxClient(pub Box<dyn DynClient>);

impl BoxClient {
    pub fn new(client: impl Client) -> BoxClient {
        BoxClient(Box::new(client))
    }
}

impl Client for BoxClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        self.0.invoke_boxed(f, value).await
    }
}
