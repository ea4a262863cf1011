//! Reading one replica's whole apply log and latest state through the client protocol, page
//! by page, for the one-copy and convergence checks.
//!
//! The replica serves pages of its apply log (`ApplyLog { from }`) and of its state
//! (`State { from_key }`); a replica that forgot the head of its log says where it now
//! starts. The log's end is read again after the state: if the replica applied anything in
//! between, the dump is not one moment's and is refused (the final phase runs after every
//! client stopped, so that means the replica was still catching up).

use super::conn::{CallError, Conn};
use super::node_name;
use checkers::history::Value;
use repdb::json::val_to_json;
use repdb::proto::{Key, Request, Response, TxnId, Val, Version};
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Apply-log entries one dump may hold: a run's log is far shorter, and a history line of
/// this many ids stays far below the history reader's line limit.
pub const MAX_DUMP_IDS: usize = 2_000_000;
/// List elements (a register counting one) one dump's state may hold.
pub const MAX_DUMP_ELEMENTS: usize = 2_000_000;

/// One replica's apply log and state, read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    pub replica: String,
    /// The position of `applied[0]`: earlier entries the replica forgot.
    pub start: u64,
    pub applied: Vec<TxnId>,
    /// The log's length (`start + applied.len()`).
    pub end: u64,
    pub version: Version,
    pub state: BTreeMap<Key, Val>,
}

/// Why a dump could not be taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{replica} refused: {why}")]
    Refused { replica: String, why: String },
    #[error("{0}")]
    Unexpected(String),
    #[error(
        "{replica} applied more while it was read (its log ended at {before}, then at {after})"
    )]
    Moved {
        replica: String,
        before: u64,
        after: u64,
    },
    #[error("{replica} holds more than {max} {what}, more than a dump reads")]
    TooLarge {
        replica: String,
        max: usize,
        what: &'static str,
    },
}

impl Dump {
    /// As the history records it (see the module docs of [`super`]).
    pub fn to_json(&self) -> Value {
        let state: Map<String, Value> = self
            .state
            .iter()
            .map(|(k, v)| (k.to_string(), val_to_json(v)))
            .collect();
        json!({
            "replica": self.replica,
            "start": self.start,
            "end": self.end,
            "applied": self.applied,
            "version": self.version,
            "state": state,
        })
    }
}

/// Reads the replica behind `conn` (named `replica`) before `deadline`.
pub async fn fetch(conn: &mut Conn, replica: &str, deadline: Instant) -> Result<Dump, DumpError> {
    let mut dump = Dump {
        replica: replica.to_string(),
        ..Dump::default()
    };
    let first_end = read_log(conn, &mut dump, deadline).await?;
    read_state(conn, &mut dump, deadline).await?;
    let after = log_page(conn, &dump.replica, first_end, deadline).await?;
    if after.end != first_end {
        return Err(DumpError::Moved {
            replica: dump.replica,
            before: first_end,
            after: after.end,
        });
    }
    Ok(dump)
}

/// One page of an apply log as the replica gave it.
struct Page {
    from: u64,
    start: u64,
    ids: Vec<TxnId>,
    end: u64,
}

async fn log_page(
    conn: &mut Conn,
    replica: &str,
    from: u64,
    deadline: Instant,
) -> Result<Page, DumpError> {
    match conn
        .call_until(&Request::ApplyLog { from }, deadline)
        .await?
    {
        Response::ApplyLog {
            from,
            start,
            ids,
            end,
            ..
        } => Ok(Page {
            from,
            start,
            ids,
            end,
        }),
        other => Err(refusal(replica, other)),
    }
}

/// Reads the whole log into `dump`; returns its end.
async fn read_log(conn: &mut Conn, dump: &mut Dump, deadline: Instant) -> Result<u64, DumpError> {
    let mut from = 0;
    loop {
        let page = log_page(conn, &dump.replica, from, deadline).await?;
        if dump.applied.is_empty() {
            // The replica forgot everything below `start`; the dump begins where it does.
            dump.start = page.from.max(page.start);
        }
        let at = dump.start + dump.applied.len() as u64;
        if page.from != at {
            return Err(DumpError::Unexpected(format!(
                "{} answered a page from {} when asked from {at}",
                dump.replica, page.from
            )));
        }
        if dump.applied.len() + page.ids.len() > MAX_DUMP_IDS {
            return Err(DumpError::TooLarge {
                replica: dump.replica.clone(),
                max: MAX_DUMP_IDS,
                what: "applied transactions",
            });
        }
        let empty = page.ids.is_empty();
        dump.applied.extend(page.ids);
        from = dump.start + dump.applied.len() as u64;
        if from >= page.end || empty {
            dump.end = from;
            return Ok(page.end);
        }
    }
}

async fn read_state(conn: &mut Conn, dump: &mut Dump, deadline: Instant) -> Result<(), DumpError> {
    let mut from_key = 0;
    let mut elements = 0usize;
    loop {
        let req = Request::State { from_key };
        match conn.call_until(&req, deadline).await? {
            Response::State {
                version,
                entries,
                next_key,
                ..
            } => {
                dump.version = version;
                for (k, v) in entries {
                    elements += repdb::store::elements_of(&v).max(1);
                    if elements > MAX_DUMP_ELEMENTS {
                        return Err(DumpError::TooLarge {
                            replica: dump.replica.clone(),
                            max: MAX_DUMP_ELEMENTS,
                            what: "elements of state",
                        });
                    }
                    dump.state.insert(k, v);
                }
                match next_key {
                    Some(k) if k > from_key => from_key = k,
                    Some(k) => {
                        return Err(DumpError::Unexpected(format!(
                            "{}'s state pages do not move forward (next key {k} after {from_key})",
                            dump.replica
                        )))
                    }
                    None => return Ok(()),
                }
            }
            other => return Err(refusal(&dump.replica, other)),
        }
    }
}

/// A replica's status, as `settle` polls it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub replica: String,
    pub leader: Option<u32>,
    pub serving: bool,
    pub version: Version,
    pub applied: u64,
}

impl Status {
    pub fn to_json(&self) -> Value {
        json!({
            "leader": self.leader,
            "serving": self.serving,
            "version": self.version,
            "applied": self.applied,
        })
    }
}

/// How long one status request may take: a paused replica must not hold up a poll of the
/// others for a whole operation.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// Asks the replica behind `conn` for its status, before `deadline` and within
/// [`STATUS_TIMEOUT`].
pub async fn status(conn: &mut Conn, deadline: Instant) -> Result<Status, DumpError> {
    let deadline = deadline.min(Instant::now() + STATUS_TIMEOUT);
    match conn.call_until(&Request::Status, deadline).await? {
        Response::Status {
            replica,
            leader,
            serving,
            version,
            applied,
            ..
        } => Ok(Status {
            replica: node_name(replica),
            leader,
            serving,
            version,
            applied,
        }),
        other => Err(DumpError::Unexpected(format!("not a status: {other:?}"))),
    }
}

fn refusal(replica: &str, resp: Response) -> DumpError {
    match resp {
        Response::Refused { why, .. } => DumpError::Refused {
            replica: replica.to_string(),
            why: why.to_string(),
        },
        other => DumpError::Unexpected(format!("{replica} answered {other:?}")),
    }
}
