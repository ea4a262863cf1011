//! The interface between the runner and a system's client.
//!
//! The runner owns scheduling, timeouts and the history; a client only performs one
//! operation at a time and says how it ended. The three endings are Jepsen's: `Ok` (it took
//! effect), `Fail` (it certainly did not), `Info` (it may have: the process is retired).

use checkers::history::{OpType, Value};
use std::future::Future;

/// The fields every op map has, which [`Outcome::with_field`] must not name.
pub const OWN_FIELDS: &[&str] = &[
    "index", "time", "type", "process", "f", "value", "node", "error",
];

/// What a client reports for one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// `Ok`, `Fail` or `Info`.
    pub op_type: OpType,
    pub value: Value,
    pub error: Option<Value>,
    /// The node that answered (or was asked, when none answered), for systems whose clients
    /// talk to any node: recorded as the completion's `node`.
    pub node: Option<String>,
    /// Further fields of the completion, as Jepsen's op maps carry them (a `txn-id` that
    /// links the op to replicas' apply logs, say).
    pub extra: serde_json::Map<String, Value>,
}

impl Outcome {
    fn new(op_type: OpType, value: Value, error: Option<Value>) -> Outcome {
        Outcome {
            op_type,
            value,
            error,
            node: None,
            extra: serde_json::Map::new(),
        }
    }

    pub fn ok(value: Value) -> Outcome {
        Outcome::new(OpType::Ok, value, None)
    }

    /// The operation certainly did not take effect.
    pub fn fail(value: Value, error: impl Into<String>) -> Outcome {
        Outcome::new(OpType::Fail, value, Some(Value::from(error.into())))
    }

    /// The operation may or may not have taken effect.
    pub fn info(value: Value, error: impl Into<String>) -> Outcome {
        Outcome::new(OpType::Info, value, Some(Value::from(error.into())))
    }

    /// The same outcome, recorded as answered by `node`.
    pub fn at_node(mut self, node: impl Into<String>) -> Outcome {
        self.node = Some(node.into());
        self
    }

    /// The same outcome with the completion field `name` set to `value`. `name` must not be
    /// one of the op's own fields ([`OWN_FIELDS`]), which the history writes itself.
    pub fn with_field(mut self, name: &str, value: impl Into<Value>) -> Outcome {
        debug_assert!(!OWN_FIELDS.contains(&name), "{name} is an op's own field");
        self.extra.insert(name.to_string(), value.into());
        self
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
