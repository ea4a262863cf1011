//! Simulated clients: a workload the test supplies, connected to one node at a time.
//!
//! The simulator owns connections, timeouts and the history; a [`SimClient`] only decides what
//! to ask and what each response means, through a [`ClientIo`]. Operations follow Jepsen's
//! rules, which the simulator enforces so the recorded history is always valid: one open
//! operation per client; `ok`, `fail` or `info` ends it; after `info` (an outcome nobody knows:
//! a timeout, a dropped connection) the client continues under a new process id.
//!
//! Connections behave like TCP: requests and responses arrive in order and are never lost or
//! duplicated while the connection lives. A connection dies when its node crashes, when the
//! node closes it, or when the client gives up on an operation (timeout) or reconnects; any
//! operation open then ends as `info`. Each new connection has a new `ClientId`.

use checkers::history::{OpType, Value};
use checkers::rng::Rng;
use machine::{Machine, NodeId};

/// A workload for one simulated client. All callbacks may use `io` to invoke, send, complete
/// and reconnect; nothing else reaches the network.
pub trait SimClient<M: Machine> {
    /// The connection is up (first or new): send handshake requests here if the protocol has
    /// any. `on_idle` follows.
    fn on_connect(&mut self, _io: &mut ClientIo<'_, M>) {}

    /// No operation is open: invoke the next one with [`ClientIo::invoke`], or not (the
    /// simulator asks again after the think time). Not called once the client has stopped.
    fn on_idle(&mut self, io: &mut ClientIo<'_, M>);

    /// A response arrived on the current connection; [`ClientIo::open`] is the operation it may
    /// complete (none for pushed events such as watch notifications).
    fn on_response(&mut self, io: &mut ClientIo<'_, M>, resp: M::Response);

    /// The connection died (its open operation, if any, has already ended as `info`).
    fn on_disconnect(&mut self, _io: &mut ClientIo<'_, M>) {}
}

/// Per-client timing.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The first node to connect to; `None`: a random one.
    pub node: Option<NodeId>,
    /// An operation open this long ends as `info` and the connection is dropped.
    pub timeout_ms: u64,
    /// Pause between an operation's end (or an idle `on_idle`) and the next `on_idle`.
    pub think_ms: (u64, u64),
    /// Pause between losing a connection and opening the next one.
    pub reconnect_ms: (u64, u64),
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            node: None,
            timeout_ms: 1_000,
            think_ms: (0, 20),
            reconnect_ms: (10, 100),
        }
    }
}

impl ClientConfig {
    pub fn check(&self) {
        assert!(self.timeout_ms > 0, "client timeout must be positive");
        assert!(
            self.think_ms.0 <= self.think_ms.1,
            "think_ms range is reversed"
        );
        assert!(self.think_ms.1 > 0, "think_ms must allow a positive pause");
        assert!(
            self.reconnect_ms.0 <= self.reconnect_ms.1,
            "reconnect_ms range is reversed"
        );
    }
}

/// The operation a client has open.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenOp {
    pub f: String,
    pub value: Value,
    pub invoked_ms: u64,
    /// The client's own count of operations, from 0.
    pub seq: u64,
}

/// What a callback asked for, applied by the simulator in this order after it returns.
#[derive(Debug)]
pub(crate) enum Action<M: Machine> {
    Invoke {
        f: String,
        value: Value,
    },
    Send(M::Request),
    Complete {
        op_type: OpType,
        value: Value,
        error: Option<Value>,
    },
    Reconnect(Option<NodeId>),
    Stop,
}

/// A client's handle on the world during one callback.
pub struct ClientIo<'a, M: Machine> {
    pub(crate) now_ms: u64,
    pub(crate) node: Option<NodeId>,
    pub(crate) members: &'a [NodeId],
    pub(crate) rng: &'a mut Rng,
    pub(crate) open: Option<&'a OpenOp>,
    /// Whether an operation is open after the actions so far.
    pub(crate) open_now: bool,
    pub(crate) actions: &'a mut Vec<Action<M>>,
}

impl<M: Machine> ClientIo<'_, M> {
    /// Virtual time, the same for every client.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The node this client is connected to; `None` while it reconnects.
    pub fn node(&self) -> Option<NodeId> {
        self.node
    }

    pub fn members(&self) -> &[NodeId] {
        self.members
    }

    /// This client's own random stream, derived from the run's seed.
    pub fn rng(&mut self) -> &mut Rng {
        self.rng
    }

    /// The operation open when the callback started.
    pub fn open(&self) -> Option<&OpenOp> {
        self.open
    }

    /// Starts an operation: records the invocation `(f, value)` and sends `req`.
    /// Panics if one is already open: a client does one thing at a time.
    pub fn invoke(&mut self, f: &str, value: Value, req: M::Request) {
        assert!(!self.open_now, "invoke({f:?}) while an operation is open");
        assert!(self.node.is_some(), "invoke({f:?}) while not connected");
        self.open_now = true;
        self.actions.push(Action::Invoke {
            f: f.to_string(),
            value,
        });
        self.actions.push(Action::Send(req));
    }

    /// Sends a request outside any operation (a handshake, a keep-alive, a retry).
    pub fn send(&mut self, req: M::Request) {
        assert!(self.node.is_some(), "send while not connected");
        self.actions.push(Action::Send(req));
    }

    /// The open operation took effect and returned `value`.
    pub fn ok(&mut self, value: Value) {
        self.complete(OpType::Ok, value, None);
    }

    /// The open operation certainly did not take effect.
    pub fn fail(&mut self, error: &str) {
        self.complete(OpType::Fail, Value::Null, Some(Value::from(error)));
    }

    /// Nobody knows whether the open operation took effect; the client continues under a new
    /// process id.
    pub fn info(&mut self, error: &str) {
        self.complete(OpType::Info, Value::Null, Some(Value::from(error)));
    }

    /// Ends the open operation. A `Null` value on `fail` / `info` means "as invoked".
    /// Panics if none is open.
    pub fn complete(&mut self, op_type: OpType, value: Value, error: Option<Value>) {
        assert!(op_type != OpType::Invoke, "complete with type invoke");
        assert!(
            self.open_now,
            "completing ({op_type:?}) with no operation open"
        );
        self.open_now = false;
        self.actions.push(Action::Complete {
            op_type,
            value,
            error,
        });
    }

    /// Drops the connection and opens another after the reconnect pause: to `node`, or to a
    /// random member. An operation still open ends as `info`.
    pub fn reconnect(&mut self, node: Option<NodeId>) {
        self.open_now = false;
        self.node = None;
        self.actions.push(Action::Reconnect(node));
    }

    /// Ends this client: `on_idle` is not called again. An operation still open stays open
    /// (pending in the history) unless completed first.
    pub fn stop(&mut self) {
        self.actions.push(Action::Stop);
    }
}
