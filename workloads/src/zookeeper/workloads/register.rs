//! The register workload on Apache ZooKeeper: the coord register client
//! ([`crate::register::CoordRegisterClient`]) on ZooKeeper's client. Key `k` is the znode
//! `/register-<k>`, holding the value as decimal text.
//!
//! - read ([`ReadMode::Confirmed`], the default): `sync`, `getData`, then a `multi` holding
//!   only a `check` of the version read. ZooKeeper promises linearizable writes, not reads:
//!   `sync` is not a quorum operation (ZOOKEEPER-1675), so a deposed leader that has not
//!   noticed yet (its clock stalled, or its peers' links cut) answers sync and read from
//!   its stale tree. The check is a write, ordered by Zab like any other; versions only
//!   grow, so when it commits the node still held what was read, and the read takes effect
//!   at that commit. A node not there yet is read as null by creating it empty, which is a
//!   write too and leaves the register's value null. The two weaker modes are
//!   `--client-bug`s that show what the checker catches: [`ReadMode::Sync`] (ZooKeeper's
//!   documented recipe, stale when the leader is deposed unawares) and [`ReadMode::Plain`]
//!   (a local read, stale whenever the server lags).
//! - write: `setData` at any version, or `create` when the node does not exist yet;
//! - cas: `sync`, `getData`, and `setData` at the version read.
//!
//! A write is `fail` only when it certainly did not happen; a read that errs is `fail`.

use super::session::LazySession;
use crate::client::{Client, Outcome};
use crate::register::RegisterOp;
use crate::zookeeper::{Client as Zk, CreateMode, Error, ErrorCode, MultiOp};
use checkers::history::Value;
use serde_json::json;
use std::net::SocketAddr;

/// The session timeout the coord register client asks for too.
const SESSION_TIMEOUT_MS: u64 = 4_000;

/// A register client bound to one server; it opens its session on first use and opens a
/// new one when the old is gone.
pub struct ZkRegisterClient {
    session: LazySession,
    reads: ReadMode,
}

/// How the register client reads a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// `sync`, `getData`, and a committed `check` of the version read: linearizable.
    #[default]
    Confirmed,
    /// `sync`, then `getData`: stale when the server's leader was deposed unawares.
    Sync,
    /// `getData` alone: stale whenever the server lags its leader.
    Plain,
}

/// Rounds of read-then-create a confirmed read of a missing node tries before failing:
/// a second round reads the node another client created between our read and our create.
const MAX_READ_ROUNDS: usize = 2;

impl ZkRegisterClient {
    /// A client of the server at `addr`, with requests timing out after `op_timeout_ms`,
    /// reading as `reads` says.
    pub fn new(addr: SocketAddr, op_timeout_ms: u64, reads: ReadMode) -> ZkRegisterClient {
        ZkRegisterClient {
            session: LazySession::new(&[addr], SESSION_TIMEOUT_MS, op_timeout_ms, op_timeout_ms),
            reads,
        }
    }

    async fn perform(&self, c: &Zk, op: RegisterOp) -> Result<Value, Error> {
        match op {
            RegisterOp::Read { key } => read(c, key, self.reads).await.map(|v| json!([key, v])),
            RegisterOp::Write { key, value } => {
                write(c, key, value).await.map(|()| json!([key, value]))
            }
            RegisterOp::Cas { key, old, new } => cas(c, key, old, new).await,
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

async fn read(c: &Zk, key: i64, mode: ReadMode) -> Result<Value, Error> {
    let p = path(key);
    if mode != ReadMode::Plain {
        c.sync(&p).await?;
    }
    if mode == ReadMode::Confirmed {
        return confirmed_read(c, &p).await;
    }
    match c.get_data(&p).await {
        Ok((data, _)) => Ok(parse(&data)),
        Err(e) if e.code() == ErrorCode::NoNode => Ok(Value::Null),
        Err(e) => Err(e),
    }
}

/// The value at `p` as of a write that commits after the local read: see the module doc.
async fn confirmed_read(c: &Zk, p: &str) -> Result<Value, Error> {
    let mut last = None;
    for _ in 0..MAX_READ_ROUNDS {
        match c.get_data(p).await {
            Ok((data, stat)) => {
                let check = MultiOp::Check {
                    path: p.to_string(),
                    version: stat.version,
                };
                c.multi(vec![check]).await?;
                return Ok(parse(&data));
            }
            Err(e) if e.code() == ErrorCode::NoNode => {}
            Err(e) => return Err(e),
        }
        // Empty data parses as null: creating the node leaves the register's value alone.
        match c.create(p, b"", CreateMode::Persistent).await {
            Ok(_) => return Ok(Value::Null),
            Err(e) if e.code() == ErrorCode::NodeExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("every round that falls through records its error"))
}

async fn write(c: &Zk, key: i64, value: i64) -> Result<(), Error> {
    let (p, data) = (path(key), value.to_string().into_bytes());
    // Two rounds cover a concurrent create by another client between our two attempts.
    for _ in 0..2 {
        match c.set_data(&p, &data, -1).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == ErrorCode::NoNode => {}
            Err(e) => return Err(e),
        }
        match c.create(&p, &data, CreateMode::Persistent).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == ErrorCode::NodeExists => {}
            Err(e) => return Err(e),
        }
    }
    c.set_data(&p, &data, -1).await.map(|_| ())
}

/// `Ok` with the op's value when it took effect; a definite `Err` when it did not.
async fn cas(c: &Zk, key: i64, old: i64, new: i64) -> Result<Value, Error> {
    let p = path(key);
    c.sync(&p).await?;
    let (data, stat) = c.get_data(&p).await?;
    if parse(&data) != old {
        return Err(Error::Keeper {
            code: ErrorCode::BadVersion,
            server: c.server().unwrap_or_default(),
            op: "cas",
            path: p,
        });
    }
    c.set_data(&p, new.to_string().as_bytes(), stat.version)
        .await?;
    Ok(json!([key, [old, new]]))
}

impl Client for ZkRegisterClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        let op = match RegisterOp::parse(f, value) {
            Ok(op) => op,
            Err(e) => return Outcome::fail(value.clone(), e.to_string()),
        };
        // Connecting applies nothing: without a session every op certainly failed.
        let c = match self.session.get().await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(value.clone(), e.to_string()),
        };
        match self.perform(&c, op).await {
            Ok(v) => Outcome::ok(v),
            Err(e) => {
                self.session.ended_by(&e);
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
