//! What can go wrong with an operation, naming the operation and the server it went to.

use coord::api::{ErrorCode, SessionId};
use std::fmt;
use std::net::SocketAddr;

/// Why an operation did not succeed. Whether it may still have taken effect is
/// [`CoordError::is_definite`]: the runner records an indefinite failure as `info`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The server's answer. Definite, except for the codes `ErrorCode::is_definite` says.
    #[error("{0}")]
    Server(ErrorCode),
    /// The connection broke while the request was in flight: it may or may not have
    /// been applied. The client reconnects by itself; callers decide whether to retry.
    #[error("connection lost with the request in flight; its outcome is unknown")]
    ConnectionLoss,
    /// No answer within the op timeout. The request may still be applied.
    #[error("no answer within {0} ms; the outcome is unknown")]
    Timeout(u64),
    /// The request was never sent: the client was too busy to take it within the op
    /// timeout (bounded queues instead of unbounded buffering).
    #[error("not sent: the client stayed busy for {0} ms")]
    Busy(u64),
    /// The session is gone, with its ephemerals. Terminal: make a new client.
    #[error("session {0:#x} expired")]
    SessionExpired(SessionId),
    /// The client was closed, or all its handles dropped; the request was not sent.
    #[error("the client is closed")]
    Closed,
    /// Refused before sending: the request could never succeed (a bad path, a bad option).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The server answered with a reply of the wrong kind: a protocol violation, and the
    /// outcome is unknown.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// No server took the session within the connect timeout.
    #[error("no session within {timeout_ms} ms from {servers}: {last}")]
    NoSession {
        timeout_ms: u64,
        servers: usize,
        last: String,
    },
}

/// An operation's failure: what was asked, of which server, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{op} via {server}: {kind}")]
pub struct CoordError {
    /// The operation and its path, e.g. `create /locks/x-`.
    pub op: String,
    pub server: Server,
    pub kind: ErrorKind,
}

/// The server an operation went to, if it got as far as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Server(pub Option<SocketAddr>);

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => write!(f, "no server"),
        }
    }
}

impl CoordError {
    pub fn new(op: impl Into<String>, server: Option<SocketAddr>, kind: ErrorKind) -> CoordError {
        CoordError {
            op: op.into(),
            server: Server(server),
            kind,
        }
    }

    /// The ZooKeeper code this failure corresponds to, so that callers can match on one
    /// vocabulary whatever side of the wire the failure came from.
    pub fn code(&self) -> ErrorCode {
        match &self.kind {
            ErrorKind::Server(code) => *code,
            ErrorKind::ConnectionLoss => ErrorCode::ConnectionLoss,
            ErrorKind::Timeout(_) => ErrorCode::OperationTimeout,
            ErrorKind::Busy(_) => ErrorCode::Throttled,
            ErrorKind::SessionExpired(_) | ErrorKind::Closed => ErrorCode::SessionExpired,
            ErrorKind::Invalid(_) => ErrorCode::BadArguments,
            ErrorKind::NoSession { .. } => ErrorCode::ConnectionLoss,
            ErrorKind::Unexpected(_) => ErrorCode::MarshallingError,
        }
    }

    /// Whether the operation certainly did not take effect.
    pub fn is_definite(&self) -> bool {
        match &self.kind {
            ErrorKind::Server(code) => code.is_definite(),
            ErrorKind::ConnectionLoss | ErrorKind::Timeout(_) | ErrorKind::Unexpected(_) => false,
            ErrorKind::Busy(_)
            | ErrorKind::SessionExpired(_)
            | ErrorKind::Closed
            | ErrorKind::Invalid(_)
            | ErrorKind::NoSession { .. } => true,
        }
    }

    /// Whether trying again on this client may succeed: the session lives, only a
    /// connection or the server's load was in the way.
    pub fn is_transient(&self) -> bool {
        match &self.kind {
            ErrorKind::ConnectionLoss | ErrorKind::Timeout(_) | ErrorKind::Busy(_) => true,
            ErrorKind::Server(code) => matches!(
                code,
                ErrorCode::ConnectionLoss | ErrorCode::OperationTimeout | ErrorCode::Throttled
            ),
            _ => false,
        }
    }

    /// Whether the session is gone for good (expired or closed).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::SessionExpired(_)
                | ErrorKind::Closed
                | ErrorKind::Server(ErrorCode::SessionExpired)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_op_and_server_and_classify_outcomes() {
        let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let e = CoordError::new(
            "create /a",
            Some(addr),
            ErrorKind::Server(ErrorCode::NodeExists),
        );
        assert_eq!(e.to_string(), "create /a via 127.0.0.1:7000: node exists");
        assert!(e.is_definite() && !e.is_transient());
        let lost = CoordError::new("set_data /a", None, ErrorKind::ConnectionLoss);
        assert!(lost
            .to_string()
            .starts_with("set_data /a via no server: connection lost"));
        assert!(!lost.is_definite() && lost.is_transient());
        assert_eq!(lost.code(), ErrorCode::ConnectionLoss);
        let busy = CoordError::new("get_data /a", None, ErrorKind::Busy(5));
        assert!(busy.is_definite() && busy.is_transient());
        let gone = CoordError::new("sync /", None, ErrorKind::SessionExpired(0x10));
        assert!(gone.is_terminal() && gone.is_definite());
        assert_eq!(gone.code(), ErrorCode::SessionExpired);
    }
}
