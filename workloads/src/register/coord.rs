//! The register workload on Faultline's coordination service: key `k` is the znode
//! `/register-<k>`, holding the value as decimal text.
//!
//! The operations are the linearizable recipes ZooKeeper's guarantees allow:
//! - read: `sync`, then `getData` on the same session (FIFO order puts the read after the
//!   sync, and the sync after every write committed before it);
//! - write: `setData` at any version, or `create` when the node does not exist yet;
//! - cas: `sync`, `getData`, and `setData` at the version read, which the leader applies only
//!   if nobody wrote in between.
//!
//! As everywhere in Faultline, a write is `fail` only when it certainly did not happen.

use super::client::RegisterOp;
use crate::client::{Client, Outcome};
use crate::coord::{ConnectOptions, CoordClient, CoordError};
use checkers::history::Value;
use coord::api::{Acl, CreateFlags, ErrorCode};
use serde_json::json;
use std::net::SocketAddr;

/// A register client bound to one node; it opens its session on first use and opens a new
/// one when the old is gone.
pub struct CoordRegisterClient {
    servers: Vec<SocketAddr>,
    options: ConnectOptions,
    session: Option<CoordClient>,
}

impl CoordRegisterClient {
    /// A client of the node at `addr`, with operations timing out after `op_timeout_ms`.
    pub fn new(addr: SocketAddr, op_timeout_ms: u64) -> CoordRegisterClient {
        let options = ConnectOptions {
            session_timeout_ms: 4_000,
            connect_timeout_ms: op_timeout_ms,
            op_timeout_ms,
            ..ConnectOptions::default()
        };
        CoordRegisterClient {
            servers: vec![addr],
            options,
            session: None,
        }
    }

    async fn session(&mut self) -> Result<CoordClient, CoordError> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let s = CoordClient::connect(self.servers.clone(), self.options.clone()).await?;
        self.session = Some(s.clone());
        Ok(s)
    }

    /// Forgets a session that is gone, so the next operation opens another.
    fn note(&mut self, e: &CoordError) {
        if e.is_terminal() {
            self.session = None;
        }
    }

    async fn perform(&mut self, op: RegisterOp) -> Result<Value, CoordError> {
        let c = self.session().await?;
        match op {
            RegisterOp::Read { key } => read(&c, key).await.map(|v| json!([key, v])),
            RegisterOp::Write { key, value } => {
                write(&c, key, value).await.map(|()| json!([key, value]))
            }
            RegisterOp::Cas { key, old, new } => cas(&c, key, old, new).await,
        }
    }
}

fn path(key: i64) -> String {
    format!("/register-{key}")
}

fn parse(data: &[u8]) -> Value {
    std::str::from_utf8(data)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .map_or(Value::Null, Value::from)
}

async fn read(c: &CoordClient, key: i64) -> Result<Value, CoordError> {
    c.sync(&path(key)).await?;
    match c.get_data(&path(key)).await {
        Ok((data, _)) => Ok(parse(&data)),
        Err(e) if e.code() == ErrorCode::NoNode => Ok(Value::Null),
        Err(e) => Err(e),
    }
}

async fn write(c: &CoordClient, key: i64, value: i64) -> Result<(), CoordError> {
    let (p, data) = (path(key), value.to_string().into_bytes());
    // Two rounds cover a concurrent create by another client between our two attempts.
    for _ in 0..2 {
        match c.set_data(&p, &data, -1).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == ErrorCode::NoNode => {}
            Err(e) => return Err(e),
        }
        match c
            .create(&p, &data, &Acl::open(), CreateFlags::PERSISTENT)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == ErrorCode::NodeExists => {}
            Err(e) => return Err(e),
        }
    }
    c.set_data(&p, &data, -1).await.map(|_| ())
}

/// `Ok` with the op's value when it took effect; a definite `Err` when it did not.
async fn cas(c: &CoordClient, key: i64, old: i64, new: i64) -> Result<Value, CoordError> {
    let p = path(key);
    c.sync(&p).await?;
    let (data, stat) = c.get_data(&p).await?;
    if parse(&data) != old {
        return Err(CoordError::new(
            "cas",
            None,
            crate::coord::ErrorKind::Server(ErrorCode::BadVersion),
        ));
    }
    c.set_data(&p, new.to_string().as_bytes(), stat.version)
        .await?;
    Ok(json!([key, [old, new]]))
}

impl Client for CoordRegisterClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        let op = match RegisterOp::parse(f, value) {
            Ok(op) => op,
            Err(e) => return Outcome::fail(value.clone(), e.to_string()),
        };
        match self.perform(op).await {
            Ok(v) => Outcome::ok(v),
            Err(e) => {
                self.note(&e);
                let is_read = matches!(op, RegisterOp::Read { .. });
                if is_read || e.is_definite() {
                    Outcome::fail(value.clone(), e.to_string())
                } else {
                    Outcome::info(value.clone(), e.to_string())
                }
            }
        }
    }
}
