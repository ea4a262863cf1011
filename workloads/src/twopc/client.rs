//! The async client of the two-phase-commit store: one request at a time over one TCP
//! connection, framed as `machine::wire` (4-byte little-endian length, then postcard), with
//! a deadline per request and errors that say whether the request certainly did not apply.
//!
//! The store answers a client's requests in order, one `Response` per `Request`. Whatever
//! goes wrong once a request may have left (a write or read error, the deadline, garbage)
//! drops the connection, so that a late answer is never taken for the next request's, and
//! the error is *indefinite*: a `Txn` the coordinator received runs to its decision even if
//! its client has gone. Only an error before anything was written is *definite*.

use std::net::SocketAddr;
use std::time::Duration;
use twopc::proto::{Request, Response};

pub use crate::framed::CallError;

/// A connection to one node of the store.
pub type Conn = crate::framed::Conn<Request, Response>;

/// One request on a connection of its own (state queries to participants, which are rare).
pub async fn call_once(
    addr: SocketAddr,
    req: &Request,
    timeout: Duration,
) -> Result<Response, CallError> {
    Conn::new(addr).call(req, timeout).await
}
