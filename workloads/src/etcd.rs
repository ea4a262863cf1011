//! An etcd v3 client over etcd's JSON gateway (`/v3/kv/range`, `/v3/kv/put`, `/v3/kv/txn`,
//! `/v3/cluster/member/list`), with keys and values base64-encoded in JSON.
//!
//! The gateway lets us test etcd without a gRPC stack. What matters to a Jepsen-style test is
//! that every error says whether the request certainly was not applied ([`EtcdError::is_definite`]):
//! the workload reports those as `fail` and everything else on a write as `info`, because
//! calling a write that may have applied `fail` makes the checker reject a correct system.

use crate::base64;
use crate::http::{Delivery, HttpClient, HttpConfig, HttpError, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

/// Keys longer than this are refused before sending; etcd's own limit is the 1.5 MiB request.
pub const MAX_KEY_BYTES: usize = 4 * 1024;
/// Values longer than this are refused before sending.
pub const MAX_VALUE_BYTES: usize = 512 * 1024;
/// The longest error body quoted in an error message.
const MAX_QUOTED_BYTES: usize = 200;

/// A failed etcd request.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The exchange itself failed; [`HttpError::delivery`] says whether etcd may have seen it.
    #[error("etcd {path}: {source}")]
    Http {
        path: &'static str,
        #[source]
        source: HttpError,
    },
    /// etcd (through the gateway) answered with a gRPC error.
    #[error("etcd at {addr} {path}: {message} (gRPC code {code}, HTTP {status})")]
    Server {
        addr: SocketAddr,
        path: &'static str,
        status: u16,
        code: i64,
        message: String,
    },
    /// An error status without a gRPC error body, e.g. the gateway's 404 for an unknown path.
    #[error("etcd at {addr} {path}: HTTP {status}: {body}")]
    Status {
        addr: SocketAddr,
        path: &'static str,
        status: u16,
        body: String,
    },
    /// A success status whose body is not what the API promises.
    #[error("etcd at {addr} {path}: unexpected response: {problem}")]
    BadResponse {
        addr: SocketAddr,
        path: &'static str,
        problem: String,
    },
    #[error("etcd {what} of {len} bytes exceeds the {limit_bytes}-byte limit")]
    TooLarge {
        what: &'static str,
        len: usize,
        limit_bytes: usize,
    },
}

/// gRPC status codes whose etcd errors are all raised before a request is proposed to raft,
/// or at apply time instead of applying it (see etcd's `rpctypes/error.go`).
const DEFINITE_CODES: [(i64, &str); 5] = [
    (
        3,
        "InvalidArgument: a malformed request, refused before proposing",
    ),
    (
        7,
        "PermissionDenied: refused by auth, before proposing or instead of applying",
    ),
    (
        8,
        "ResourceExhausted: too many requests, or the space quota, both refuse to apply",
    ),
    (12, "Unimplemented: no such method"),
    (16, "Unauthenticated: refused before proposing"),
];

/// Messages under codes that are otherwise ambiguous (Unavailable, Unknown) that etcd 3.4 only
/// returns before the request was proposed. Timeouts, "server stopped" and "leader changed" are
/// not here: those may come after the proposal entered the log.
const DEFINITE_MESSAGES: [&str; 4] = [
    // The gRPC interceptor's check, before the handler runs.
    "etcdserver: no leader",
    // The cluster version is too old for the request: checked before proposing.
    "etcdserver: not capable",
    "etcdserver: rpc not supported for learner",
    // raft's ErrProposalDropped: the proposal was never appended (no leader, transfer).
    "raft proposal dropped",
];

impl EtcdError {
    /// True when the request certainly had no effect, so that a write may be reported `fail`.
    /// Unknown errors are indefinite: guessing "not applied" wrongly breaks the verdict.
    pub fn is_definite(&self) -> bool {
        match self {
            EtcdError::Http { source, .. } => source.delivery() == Delivery::NotSent,
            EtcdError::Server { code, message, .. } => {
                DEFINITE_CODES.iter().any(|(c, _)| c == code)
                    || DEFINITE_MESSAGES.contains(&message.as_str())
            }
            // Without a gRPC body the gateway did not route the request (unknown path or
            // method), so no handler ran.
            EtcdError::Status { status, .. } => matches!(status, 404 | 405),
            EtcdError::BadResponse { .. } => false,
            EtcdError::TooLarge { .. } => true,
        }
    }
}

/// A cluster member as etcd lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Member {
    /// The member id, as the decimal u64 string the gateway writes.
    #[serde(rename = "ID")]
    pub id: String,
    /// Empty for a member that was added but has not started.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

/// A client of one etcd member. One request at a time, on one keep-alive connection.
#[derive(Debug)]
pub struct EtcdClient {
    http: HttpClient,
}

impl EtcdClient {
    /// A client with default timeouts; it connects on first use.
    pub fn new(addr: SocketAddr) -> EtcdClient {
        EtcdClient::with_config(addr, HttpConfig::default())
    }

    pub fn with_config(addr: SocketAddr, config: HttpConfig) -> EtcdClient {
        EtcdClient {
            http: HttpClient::new(addr, config),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// The value of `key`, read linearizably (through raft's read index), or None if unset.
    pub async fn get(&mut self, key: &str) -> Result<Option<String>, EtcdError> {
        const PATH: &str = "/v3/kv/range";
        check_len("key", key, MAX_KEY_BYTES)?;
        let request = json!({ "key": base64::encode(key.as_bytes()), "serializable": false });
        let reply: RangeReply = self.call(PATH, &request).await?;
        match reply.kvs.as_slice() {
            [] => Ok(None),
            [kv] => {
                let got = self.decode(PATH, "key", &kv.key)?;
                if got != key {
                    return Err(self.bad(PATH, format!("asked for key {key:?}, got {got:?}")));
                }
                Ok(Some(self.decode(PATH, "value", &kv.value)?))
            }
            more => Err(self.bad(
                PATH,
                format!("{} kvs for the single key {key:?}", more.len()),
            )),
        }
    }

    pub async fn put(&mut self, key: &str, value: &str) -> Result<(), EtcdError> {
        check_len("key", key, MAX_KEY_BYTES)?;
        check_len("value", value, MAX_VALUE_BYTES)?;
        let request = json!({
            "key": base64::encode(key.as_bytes()),
            "value": base64::encode(value.as_bytes()),
        });
        let _: serde_json::Value = self.call("/v3/kv/put", &request).await?;
        Ok(())
    }

    /// Sets `key` to `new` if its value is `old`, atomically; returns whether it did. A key
    /// that is unset never matches.
    pub async fn cas(&mut self, key: &str, old: &str, new: &str) -> Result<bool, EtcdError> {
        check_len("key", key, MAX_KEY_BYTES)?;
        check_len("value", old, MAX_VALUE_BYTES)?;
        check_len("value", new, MAX_VALUE_BYTES)?;
        let k = base64::encode(key.as_bytes());
        let request = json!({
            "compare": [{
                "target": "VALUE",
                "result": "EQUAL",
                "key": k,
                "value": base64::encode(old.as_bytes()),
            }],
            "success": [{ "requestPut": { "key": k, "value": base64::encode(new.as_bytes()) } }],
        });
        let reply: TxnReply = self.call("/v3/kv/txn", &request).await?;
        Ok(reply.succeeded)
    }

    /// The cluster's members, as this member knows them.
    pub async fn members(&mut self) -> Result<Vec<Member>, EtcdError> {
        let reply: MemberListReply = self.call("/v3/cluster/member/list", &json!({})).await?;
        Ok(reply.members)
    }

    async fn call<T: DeserializeOwned>(
        &mut self,
        path: &'static str,
        request: &serde_json::Value,
    ) -> Result<T, EtcdError> {
        let body = serde_json::to_vec(request).expect("a JSON value always serializes");
        let response = self
            .http
            .post_json(path, &body)
            .await
            .map_err(|source| EtcdError::Http { path, source })?;
        if response.status != 200 {
            return Err(self.error_reply(path, &response));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| self.bad(path, format!("{e} in body {}", quote(&response.body))))
    }

    fn error_reply(&self, path: &'static str, response: &Response) -> EtcdError {
        let addr = self.addr();
        match serde_json::from_slice::<GatewayError>(&response.body) {
            Ok(GatewayError {
                code: Some(code),
                error,
                message,
            }) => EtcdError::Server {
                addr,
                path,
                status: response.status,
                code,
                message: if message.is_empty() { error } else { message },
            },
            _ => EtcdError::Status {
                addr,
                path,
                status: response.status,
                body: quote(&response.body),
            },
        }
    }

    fn decode(&self, path: &'static str, what: &str, text: &str) -> Result<String, EtcdError> {
        let bytes = base64::decode(text).map_err(|e| self.bad(path, format!("{what}: {e}")))?;
        String::from_utf8(bytes).map_err(|_| self.bad(path, format!("{what} is not UTF-8")))
    }

    fn bad(&self, path: &'static str, problem: String) -> EtcdError {
        EtcdError::BadResponse {
            addr: self.addr(),
            path,
            problem,
        }
    }
}

fn check_len(what: &'static str, s: &str, limit_bytes: usize) -> Result<(), EtcdError> {
    if s.len() > limit_bytes {
        return Err(EtcdError::TooLarge {
            what,
            len: s.len(),
            limit_bytes,
        });
    }
    Ok(())
}

/// A body for an error message: lossy UTF-8, shortened.
fn quote(body: &[u8]) -> String {
    let shown = &body[..body.len().min(MAX_QUOTED_BYTES)];
    let text = String::from_utf8_lossy(shown);
    if body.len() > shown.len() {
        format!("{:?}... ({} bytes)", text, body.len())
    } else {
        format!("{text:?}")
    }
}

// The gateway omits fields that hold their zero value (no `kvs` when nothing matched, no
// `succeeded` when a txn's compare failed, no `value` when it is empty), hence the defaults.

#[derive(Deserialize)]
struct RangeReply {
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct TxnReply {
    #[serde(default)]
    succeeded: bool,
}

#[derive(Deserialize)]
struct MemberListReply {
    #[serde(default)]
    members: Vec<Member>,
}

/// grpc-gateway's error body.
#[derive(Deserialize)]
struct GatewayError {
    code: Option<i64>,
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: i64, message: &str) -> EtcdError {
        EtcdError::Server {
            addr: "127.0.0.1:2379".parse().unwrap(),
            path: "/v3/kv/put",
            status: 503,
            code,
            message: message.to_string(),
        }
    }

    #[test]
    fn only_errors_known_to_precede_proposal_are_definite() {
        assert!(server(8, "etcdserver: too many requests").is_definite());
        assert!(server(3, "etcdserver: request is too large").is_definite());
        assert!(server(14, "etcdserver: no leader").is_definite());
        assert!(server(2, "raft proposal dropped").is_definite());
        assert!(!server(14, "etcdserver: request timed out").is_definite());
        assert!(!server(14, "etcdserver: server stopped").is_definite());
        assert!(!server(14, "etcdserver: leader changed").is_definite());
        assert!(!server(2, "something new").is_definite());
        let e = server(14, "etcdserver: request timed out").to_string();
        assert_eq!(
            e,
            "etcd at 127.0.0.1:2379 /v3/kv/put: etcdserver: request timed out (gRPC code 14, HTTP 503)"
        );
    }

    #[test]
    fn quoting_shortens_long_bodies() {
        assert_eq!(quote(b"Not Found"), "\"Not Found\"");
        let q = quote(&[b'x'; 1000]);
        assert!(q.ends_with("... (1000 bytes)") && q.len() < 230, "{q}");
    }
}
