//! `lock` and `lock-unfenced` on Apache ZooKeeper: the coord workload's client
//! ([`crate::coord::workloads::lock`], whose doc comment explains the design) on
//! ZooKeeper's client, with the same nodes, tokens and operation values, so that the
//! coord workload's generator and checker judge it unchanged.
//!
//! - The lock: ephemeral sequential `x-<guid>-<seq>` under `LOCK_DIR`, the lowest holds
//!   it, the others each watch (exists) the one just ahead. Its token is the czxid of the
//!   holder's node. The lock session has a short timeout and talks only to the worker's
//!   server, so that pausing that server stalls the holder past its lease.
//! - The store: `HEAD` (the highest token accepted) and the log of accepted writes
//!   (persistent sequential `LOG_DIR/w-<token hex>-<id>-<seq>`), through a second
//!   session with a long timeout that starts on the worker's server too.

use super::queue::{outcome_of, RecipeError, Ticket};
use super::session::{ensure_path, no_session, write_failed, LazySession};
use crate::client::{Client, Outcome};
use crate::coord::recipes::lock::{LOCK_PREFIXES, WRITE_PREFIX};
use crate::coord::workload::ClientContext;
use crate::coord::workloads::lock::session::OpGuard;
use crate::coord::workloads::lock::{
    entry_prefix, parse_entry, parse_token, sequence_of, store_servers, HEAD, LOCK_DIR,
    LOCK_SESSION_TIMEOUT_MS, LOG_DIR, REQUEST_SHARE, STORE_SESSION_TIMEOUT_MS,
};
use crate::zookeeper::{Acl, Client as Zk, CreateMode, Error, ErrorCode, MultiOp, OpResult};
use checkers::history::{OpType, Value};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

/// The lock held by the current process.
struct Held {
    ticket: Ticket,
    token: u64,
}

pub struct ZkLockClient {
    fenced: bool,
    worker: u32,
    /// The worker's server, where its lock session lives.
    node: std::net::SocketAddr,
    focus: crate::focus::Focus,
    /// Bound to the worker's server only: its server's pause is the holder's stall.
    lock: LazySession,
    store: LazySession,
    held: Option<Held>,
    writes: u64,
    op_timeout_ms: u64,
    ops: OpGuard,
}

impl ZkLockClient {
    pub fn new(ctx: ClientContext, fenced: bool) -> ZkLockClient {
        let request_ms = (ctx.op_timeout_ms / REQUEST_SHARE).max(1);
        let store_servers = store_servers(&ctx);
        ZkLockClient {
            fenced,
            worker: ctx.worker,
            node: ctx.node,
            focus: ctx.focus.clone(),
            lock: LazySession::new(&[ctx.node], LOCK_SESSION_TIMEOUT_MS, request_ms, request_ms),
            store: LazySession::new(
                &store_servers,
                STORE_SESSION_TIMEOUT_MS,
                request_ms,
                request_ms,
            ),
            held: None,
            writes: 0,
            op_timeout_ms: ctx.op_timeout_ms,
            ops: OpGuard::default(),
        }
    }

    /// Forgets the retired process's lock: its session is closed (or left to expire), so
    /// its node goes. The ticket goes first: it shares the session.
    fn forget(&mut self) {
        self.held = None;
        self.lock.forget();
    }

    /// How long `acquire` waits: half the budget, leaving the rest to withdraw.
    fn wait(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms / 2)
    }

    async fn acquire(&mut self) -> Outcome {
        if let Some(h) = &self.held {
            return Outcome::fail(Value::Null, format!("already holding token {}", h.token));
        }
        let c = match self.lock.get().await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(Value::Null, e.to_string()),
        };
        let started = Instant::now();
        let ticket = Ticket::take(
            c,
            LOCK_DIR,
            WRITE_PREFIX,
            LOCK_PREFIXES,
            b"",
            started + self.wait(),
        );
        let ticket = match ticket.await {
            Ok(t) => t,
            Err(e) => return outcome_of(Value::Null, &e),
        };
        let waited = ticket
            .token()
            .map_err(RecipeError::from)
            .map(|token| (token, self.wait().saturating_sub(started.elapsed())));
        let turn = match waited {
            Ok((token, remaining)) => ticket.wait_turn(remaining).await.map(|()| token),
            Err(e) => Err(e),
        };
        match turn {
            Ok(token) => {
                self.held = Some(Held { ticket, token });
                Outcome::ok(json!({ "token": token }))
            }
            Err(e) => {
                // Out of the queue, so as not to block those behind (best effort: the
                // node is ephemeral anyway).
                let cleanup = Instant::now() + self.lock.request_timeout();
                if ticket.withdraw(cleanup).await.is_err() {
                    // A node left in the queue would block everyone behind it for as long
                    // as this session lives: end the session, and the node with it.
                    self.lock.forget();
                }
                outcome_of(Value::Null, &e)
            }
        }
    }

    async fn write(&mut self) -> Outcome {
        let Some(token) = self.held.as_ref().map(|h| h.token) else {
            return Outcome::fail(Value::Null, "not holding the lock");
        };
        if self.lock.known_lost() {
            self.held = None;
            return Outcome::fail(json!({ "token": token }), "lock session over: not holding");
        }
        self.writes += 1;
        let id = format!("w{}n{}", self.worker, self.writes);
        let store = match self.store.get().await {
            Ok(c) => c,
            Err(e) => return no_session(json!({ "token": token, "id": id }), &e),
        };
        let deadline = Instant::now() + self.wait();
        let written = if self.fenced {
            fenced_write(&store, token, &id, deadline).await
        } else {
            append(&store, token, &id, deadline).await
        };
        match written {
            Ok(seq) => Outcome::ok(json!({ "token": token, "id": id, "seq": seq })),
            Err(WriteError::Fenced { highest }) => Outcome::fail(
                json!({ "token": token, "id": id, "highest": highest }),
                format!("fenced: token {token} is older than {highest}"),
            ),
            Err(WriteError::Zk(e)) => {
                self.store.ended_by(&e);
                write_failed(json!({ "token": token, "id": id }), &e)
            }
        }
    }

    async fn release(&mut self) -> Outcome {
        let Some(held) = self.held.take() else {
            return Outcome::fail(Value::Null, "not holding the lock");
        };
        let value = json!({ "token": held.token });
        let deadline = Instant::now() + self.lock.request_timeout();
        match held.ticket.withdraw(deadline).await {
            Ok(()) => Outcome::ok(value),
            Err(e) => outcome_of(value, &e),
        }
    }

    /// The store's whole log, in acceptance order.
    async fn read(&mut self) -> Outcome {
        let store = match self.store.get().await {
            Ok(c) => c,
            Err(e) => return no_session(Value::Null, &e),
        };
        match read_log(&store, Instant::now() + self.store.request_timeout()).await {
            Ok(log) => Outcome::ok(json!({ "log": log })),
            Err(e) => {
                self.store.ended_by(&e);
                write_failed(Value::Null, &e)
            }
        }
    }
}

impl Client for ZkLockClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        if self.ops.begin() {
            self.forget();
        }
        let outcome = match f {
            "acquire" => self.acquire().await,
            "write" => self.write().await,
            "release" => self.release().await,
            "read" => self.read().await,
            other => Outcome::fail(value.clone(), format!("unknown lock operation {other:?}")),
        };
        if outcome.op_type == OpType::Info {
            self.forget();
        }
        self.ops.end();
        let holds = self.held.as_ref().map(|_| self.node);
        self.focus.believes(self.worker, holds);
        outcome
    }
}

#[derive(Debug)]
enum WriteError {
    Fenced { highest: u64 },
    Zk(Error),
}

impl From<Error> for WriteError {
    fn from(e: Error) -> Self {
        WriteError::Zk(e)
    }
}

/// Creates the store's nodes if missing (`HEAD` at token 0), retrying the parents'
/// creation until `deadline`.
async fn ensure_store(store: &Zk, deadline: Instant) -> Result<(), Error> {
    for (path, data) in [(HEAD, &b"0"[..]), (LOG_DIR, &b""[..])] {
        if store.exists(path).await?.is_some() {
            continue;
        }
        let parent = &path[..path.rfind('/').unwrap_or(0)];
        ensure_path(store, parent, deadline).await?;
        match store.create(path, data, CreateMode::Persistent).await {
            Err(e) if e.code() != ErrorCode::NodeExists => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Appends without looking at the token: what `lock-unfenced` does.
async fn append(store: &Zk, token: u64, id: &str, deadline: Instant) -> Result<u64, WriteError> {
    ensure_store(store, deadline).await?;
    let (path, _) = store
        .create(
            &entry_prefix(token, id),
            b"",
            CreateMode::PersistentSequential,
        )
        .await?;
    Ok(sequence_of(&path))
}

/// Accepts the write only if `token` is at least the highest the store has seen: raises
/// `HEAD` and appends in one multi conditional on the version of `HEAD` that was read.
async fn fenced_write(
    store: &Zk,
    token: u64,
    id: &str,
    deadline: Instant,
) -> Result<u64, WriteError> {
    ensure_store(store, deadline).await?;
    loop {
        let (data, stat) = store.get_data(HEAD).await?;
        let highest = parse_token(&data);
        if token < highest {
            return Err(WriteError::Fenced { highest });
        }
        let ops = vec![
            MultiOp::SetData {
                path: HEAD.to_string(),
                data: token.to_string().into_bytes(),
                version: stat.version,
            },
            MultiOp::Create {
                path: entry_prefix(token, id),
                data: Vec::new(),
                acl: Acl::open(),
                mode: CreateMode::PersistentSequential,
            },
        ];
        match store.multi(ops).await {
            Ok(results) => return Ok(created_sequence(&results)),
            // Another write got in between (or this server's read was behind): look again.
            Err(e) if e.code() == ErrorCode::BadVersion && Instant::now() < deadline => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn created_sequence(results: &[OpResult]) -> u64 {
    results
        .iter()
        .find_map(|r| match r {
            OpResult::Create { path, .. } => Some(sequence_of(path)),
            _ => None,
        })
        .unwrap_or(u64::MAX)
}

/// Every accepted write as `[token, id, seq]`, in sequence order.
async fn read_log(store: &Zk, deadline: Instant) -> Result<Vec<Value>, Error> {
    ensure_store(store, deadline).await?;
    store.sync(LOG_DIR).await?;
    let (children, _) = store.get_children(LOG_DIR).await?;
    let mut entries: Vec<(u64, u64, String)> =
        children.iter().filter_map(|n| parse_entry(n)).collect();
    entries.sort();
    Ok(entries
        .into_iter()
        .map(|(seq, token, id)| json!([token, id, seq]))
        .collect())
}
