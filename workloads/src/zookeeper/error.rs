//! ZooKeeper's error codes and this client's errors.
//!
//! A server answers a failed request with a code from `KeeperException.Code` in the reply
//! header; [`ErrorCode`] has every code ZooKeeper 3.8 defines, with its number, so that a
//! history of Apache ZooKeeper reads like one of Faultline's coord (whose
//! `coord::api::ErrorCode` uses the same numbers for the subset it can return). [`Error`]
//! adds what only the client can know: which server, lost connections, timeouts.

use std::fmt;

/// `KeeperException.Code`, by ZooKeeper's numbers. `Unknown` keeps a number from a newer
/// server instead of refusing the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    SystemError,
    RuntimeInconsistency,
    DataInconsistency,
    ConnectionLoss,
    MarshallingError,
    Unimplemented,
    OperationTimeout,
    BadArguments,
    UnknownSession,
    NewConfigNoQuorum,
    ReconfigInProgress,
    ApiError,
    NoNode,
    NoAuth,
    BadVersion,
    NoChildrenForEphemerals,
    NodeExists,
    NotEmpty,
    SessionExpired,
    InvalidCallback,
    InvalidAcl,
    AuthFailed,
    SessionMoved,
    NotReadOnly,
    EphemeralOnLocalSession,
    NoWatcher,
    RequestTimeout,
    ReconfigDisabled,
    SessionClosedRequireSaslAuth,
    QuotaExceeded,
    Throttled,
    Unknown(i32),
}

const CODES: [(ErrorCode, i32); 31] = [
    (ErrorCode::SystemError, -1),
    (ErrorCode::RuntimeInconsistency, -2),
    (ErrorCode::DataInconsistency, -3),
    (ErrorCode::ConnectionLoss, -4),
    (ErrorCode::MarshallingError, -5),
    (ErrorCode::Unimplemented, -6),
    (ErrorCode::OperationTimeout, -7),
    (ErrorCode::BadArguments, -8),
    (ErrorCode::UnknownSession, -12),
    (ErrorCode::NewConfigNoQuorum, -13),
    (ErrorCode::ReconfigInProgress, -14),
    (ErrorCode::ApiError, -100),
    (ErrorCode::NoNode, -101),
    (ErrorCode::NoAuth, -102),
    (ErrorCode::BadVersion, -103),
    (ErrorCode::NoChildrenForEphemerals, -108),
    (ErrorCode::NodeExists, -110),
    (ErrorCode::NotEmpty, -111),
    (ErrorCode::SessionExpired, -112),
    (ErrorCode::InvalidCallback, -113),
    (ErrorCode::InvalidAcl, -114),
    (ErrorCode::AuthFailed, -115),
    (ErrorCode::SessionMoved, -118),
    (ErrorCode::NotReadOnly, -119),
    (ErrorCode::EphemeralOnLocalSession, -120),
    (ErrorCode::NoWatcher, -121),
    (ErrorCode::RequestTimeout, -122),
    (ErrorCode::ReconfigDisabled, -123),
    (ErrorCode::SessionClosedRequireSaslAuth, -124),
    (ErrorCode::QuotaExceeded, -125),
    (ErrorCode::Throttled, -127),
];

impl ErrorCode {
    /// The code for a reply header's `err`; `None` for 0 (OK).
    pub fn from_code(code: i32) -> Option<ErrorCode> {
        if code == 0 {
            return None;
        }
        let known = CODES.iter().find(|(_, n)| *n == code).map(|(c, _)| *c);
        Some(known.unwrap_or(ErrorCode::Unknown(code)))
    }

    /// ZooKeeper's number.
    pub fn code(self) -> i32 {
        match self {
            ErrorCode::Unknown(n) => n,
            known => CODES.iter().find(|(c, _)| *c == known).map_or(0, |e| e.1),
        }
    }

    /// Whether the request certainly did not take effect. Connection loss and timeouts
    /// leave it unknown, which a history records as `info`, not `fail`.
    pub fn is_definite(self) -> bool {
        !matches!(
            self,
            ErrorCode::ConnectionLoss | ErrorCode::OperationTimeout | ErrorCode::RequestTimeout
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.code())
    }
}

/// Everything a call can end with besides success.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server refused the request with a ZooKeeper error code.
    #[error("{server}: {op} {path}: {code}")]
    Keeper {
        code: ErrorCode,
        server: String,
        op: &'static str,
        path: String,
    },
    /// The connection broke with the request outstanding: it may or may not have applied.
    #[error("{server}: connection lost: {why}")]
    ConnectionLoss { server: String, why: String },
    /// No answer in time: the request may or may not have applied.
    #[error("{what} timed out after {timeout_ms} ms (server {server})")]
    Timeout {
        what: String,
        server: String,
        timeout_ms: u64,
    },
    /// The session is gone for good, with its ephemerals; a new client is needed.
    #[error("{server}: session 0x{session:x} expired")]
    SessionExpired { server: String, session: i64 },
    /// The server sent bytes that are not ZooKeeper's protocol; the connection is dropped.
    #[error("{server}: protocol error: {why}")]
    Protocol { server: String, why: String },
    /// The request would exceed the frame limit; nothing was sent.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

impl Error {
    /// The `KeeperException.Code` a Java client would throw for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Keeper { code, .. } => *code,
            Error::ConnectionLoss { .. } | Error::Protocol { .. } => ErrorCode::ConnectionLoss,
            Error::Timeout { .. } => ErrorCode::OperationTimeout,
            Error::SessionExpired { .. } => ErrorCode::SessionExpired,
            Error::TooLarge { .. } => ErrorCode::BadArguments,
            Error::Closed => ErrorCode::SessionExpired,
        }
    }

    /// Whether the request certainly did not take effect.
    pub fn is_definite(&self) -> bool {
        match self {
            Error::Keeper { code, .. } => code.is_definite(),
            Error::TooLarge { .. } | Error::SessionExpired { .. } | Error::Closed => true,
            Error::ConnectionLoss { .. } | Error::Timeout { .. } | Error::Protocol { .. } => false,
        }
    }

    /// Whether repeating the request may succeed: the connection broke or the server was
    /// slow or throttling, and the session may well still be alive.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code(),
            ErrorCode::ConnectionLoss
                | ErrorCode::OperationTimeout
                | ErrorCode::RequestTimeout
                | ErrorCode::Throttled
        )
    }

    /// Whether the session is gone for good (expired or closed): only a new one helps.
    pub fn is_terminal(&self) -> bool {
        self.code() == ErrorCode::SessionExpired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept() {
        for (code, n) in CODES {
            assert_eq!(ErrorCode::from_code(n), Some(code));
            assert_eq!(code.code(), n);
        }
        assert_eq!(ErrorCode::from_code(0), None);
        assert_eq!(ErrorCode::from_code(-999), Some(ErrorCode::Unknown(-999)));
        assert_eq!(ErrorCode::Unknown(-999).code(), -999);
        assert_eq!(ErrorCode::NoNode.to_string(), "NoNode (-101)");
    }

    #[test]
    fn lost_connections_are_transient_and_expiry_is_terminal() {
        let lost = Error::ConnectionLoss {
            server: "s".into(),
            why: "reset".into(),
        };
        assert!(lost.is_transient() && !lost.is_terminal() && !lost.is_definite());
        let expired = Error::SessionExpired {
            server: "s".into(),
            session: 7,
        };
        assert!(expired.is_terminal() && !expired.is_transient() && expired.is_definite());
        assert!(Error::Closed.is_terminal());
        let refused = Error::Keeper {
            code: ErrorCode::NodeExists,
            server: "s".into(),
            op: "create",
            path: "/a".into(),
        };
        assert!(!refused.is_transient() && !refused.is_terminal());
    }
}
