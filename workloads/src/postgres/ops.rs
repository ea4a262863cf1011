//! Each history operation as one SQL transaction: `BEGIN ISOLATION LEVEL ...`, the
//! operation's statements, `COMMIT`, the way Elle's and Jepsen's PostgreSQL clients do it.
//!
//! - list-append: a row `(k, v text)` per key; an append is `INSERT ... ON CONFLICT DO UPDATE
//!   SET v = v || ',' || x` (one statement, so read committed cannot lose it), a read is
//!   `SELECT v`, split on commas.
//! - rw-register: a row `(k, v bigint)` per key; a write is an upsert, a read `SELECT v` (no
//!   row reads null).
//! - bank: a transfer reads both balances, refuses to overdraw, and writes the computed
//!   balances back (read-modify-write, as Jepsen's bank does: this is what a weak isolation
//!   level loses updates on); a read is one `SELECT` of every account.
//!
//! What matters for the history is where an error happened: anything before COMMIT leaves
//! the transaction uncommitted ([`OpError::Aborted`]); COMMIT without a certain answer leaves
//! it unknown ([`OpError::Unknown`]).

use super::conn::{Session, SqlError, Statements};
use super::{Isolation, Kind};
use checkers::history::Value;
use serde_json::{json, Map};

/// Micro-ops one transaction may carry.
pub const MAX_MOPS: usize = 64;
/// Elements a list-append read may return before it is refused as implausible.
pub const MAX_LIST_ELEMENTS: usize = 1 << 20;
/// Accounts a bank read keeps (the bank has a handful).
pub const MAX_ACCOUNTS_READ: usize = 1 << 16;

/// Why an operation did not end `ok`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The transaction certainly did not commit: an error before COMMIT, or an `ERROR`
    /// answer to it.
    #[error("{0}")]
    Aborted(SqlError),
    /// The transaction was rolled back on purpose (a transfer that would overdraw).
    #[error("{0}")]
    Refused(String),
    /// COMMIT was sent and no certain answer came back.
    #[error("commit outcome unknown: {0}")]
    Unknown(SqlError),
}

/// A parsed operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Micro-ops as (f, key, value to write; None for a read).
    Txn(Vec<(String, i64, Option<i64>)>),
    Transfer {
        from: i64,
        to: i64,
        amount: i64,
    },
    ReadAll,
}

impl Op {
    /// Whether the operation can change anything: one that cannot is `fail` whatever
    /// happened to its COMMIT.
    pub fn writes(&self) -> bool {
        match self {
            Op::Txn(mops) => mops.iter().any(|(f, _, _)| f != "r"),
            Op::Transfer { .. } => true,
            Op::ReadAll => false,
        }
    }
}

/// Parses `(f, value)` as an operation of `kind`; the error says what is wrong.
pub fn parse(kind: Kind, f: &str, value: &Value) -> Result<Op, String> {
    let int = |v: &Value, what: &str| {
        v.as_i64()
            .ok_or_else(|| format!("{what} must be an integer, got {v}"))
    };
    match (kind, f) {
        (Kind::ListAppend | Kind::RwRegister, "txn") => {
            let items = value
                .as_array()
                .ok_or_else(|| format!("a txn is a list of micro-ops, got {value}"))?;
            if items.is_empty() || items.len() > MAX_MOPS {
                return Err(format!(
                    "a txn has 1 to {MAX_MOPS} micro-ops, not {}",
                    items.len()
                ));
            }
            let write = if kind == Kind::ListAppend {
                "append"
            } else {
                "w"
            };
            let mut mops = Vec::with_capacity(items.len());
            for m in items {
                let parts = m
                    .as_array()
                    .filter(|p| p.len() == 3)
                    .ok_or_else(|| format!("a micro-op is [f, key, value], got {m}"))?;
                let key = int(&parts[1], "a key")?;
                match parts[0].as_str() {
                    Some("r") => mops.push(("r".to_string(), key, None)),
                    Some(w) if w == write => {
                        mops.push((w.to_string(), key, Some(int(&parts[2], "a value")?)))
                    }
                    _ => {
                        return Err(format!(
                            "{} takes r and {write} micro-ops, not {m}",
                            kind.name()
                        ))
                    }
                }
            }
            Ok(Op::Txn(mops))
        }
        (Kind::Bank, "transfer") => {
            let from = int(&value["from"], "from")?;
            let to = int(&value["to"], "to")?;
            let amount = int(&value["amount"], "amount")?;
            if from == to || amount <= 0 {
                return Err(format!(
                    "a transfer moves a positive amount between two accounts, got {value}"
                ));
            }
            Ok(Op::Transfer { from, to, amount })
        }
        (Kind::Bank, "read") => Ok(Op::ReadAll),
        _ => Err(format!("{} has no operation {f:?}", kind.name())),
    }
}

/// Runs `op` as one transaction at `isolation`; sets `committing` once COMMIT is on its way
/// (so that a deadline after it is known to leave the outcome unknown). Returns the
/// completion's value.
pub async fn run(
    session: &mut Session,
    isolation: Isolation,
    op: &Op,
    committing: &mut bool,
) -> Result<Value, OpError> {
    let begin = format!("BEGIN ISOLATION LEVEL {}", isolation.sql());
    session.in_txn = true;
    if let Err(e) = session.client.batch_execute(&begin).await {
        return Err(abort(session, SqlError::of(&e)).await);
    }
    let value = match body(session, op).await {
        Ok(v) => v,
        Err(Body::Sql(e)) => return Err(abort(session, e).await),
        Err(Body::Refused(why)) => {
            return match rollback(session).await {
                Ok(()) => Err(OpError::Refused(why)),
                Err(e) => Err(OpError::Aborted(e)),
            }
        }
    };
    *committing = true;
    match session.client.batch_execute("COMMIT").await {
        Ok(()) => {
            session.in_txn = false;
            Ok(value)
        }
        Err(e) => {
            let e = SqlError::of(&e);
            if e.commit_certainly_failed() {
                session.in_txn = false;
                Err(OpError::Aborted(e))
            } else {
                Err(OpError::Unknown(e))
            }
        }
    }
}

enum Body {
    Sql(SqlError),
    Refused(String),
}

impl From<tokio_postgres::Error> for Body {
    fn from(e: tokio_postgres::Error) -> Body {
        Body::Sql(SqlError::of(&e))
    }
}

/// The statements between BEGIN and COMMIT.
async fn body(session: &mut Session, op: &Op) -> Result<Value, Body> {
    let client = &session.client;
    match (&session.stmts, op) {
        (Statements::ListAppend { read, append }, Op::Txn(mops)) => {
            let mut out = Vec::with_capacity(mops.len());
            for (f, k, v) in mops {
                match v {
                    None => {
                        let row = client.query_opt(read, &[k]).await?;
                        let text: Option<String> = match row {
                            Some(r) => Some(r.try_get(0)?),
                            None => None,
                        };
                        let list = parse_list(text.as_deref().unwrap_or(""))
                            .map_err(|e| Body::Sql(SqlError::local(format!("key {k}: {e}"))))?;
                        out.push(json!([f, k, list]));
                    }
                    Some(v) => {
                        client.execute(append, &[k, &v.to_string()]).await?;
                        out.push(json!([f, k, v]));
                    }
                }
            }
            Ok(Value::Array(out))
        }
        (Statements::RwRegister { read, write }, Op::Txn(mops)) => {
            let mut out = Vec::with_capacity(mops.len());
            for (f, k, v) in mops {
                match v {
                    None => {
                        let row = client.query_opt(read, &[k]).await?;
                        let got: Option<i64> = match row {
                            Some(r) => Some(r.try_get(0)?),
                            None => None,
                        };
                        out.push(json!([f, k, got]));
                    }
                    Some(v) => {
                        client.execute(write, &[k, v]).await?;
                        out.push(json!([f, k, v]));
                    }
                }
            }
            Ok(Value::Array(out))
        }
        (
            Statements::Bank {
                read_one, write, ..
            },
            Op::Transfer { from, to, amount },
        ) => {
            let mut balances = [0i64; 2];
            for (b, id) in balances.iter_mut().zip([from, to]) {
                let row = client.query_opt(read_one, &[id]).await?;
                *b = match row {
                    Some(r) => r.try_get(0)?,
                    None => return Err(Body::Refused(format!("no account {id}"))),
                };
            }
            let (Some(left), Some(right)) = (
                balances[0].checked_sub(*amount),
                balances[1].checked_add(*amount),
            ) else {
                return Err(Body::Refused("balance overflow".into()));
            };
            if left < 0 {
                return Err(Body::Refused(format!(
                    "insufficient funds: account {from} has {}",
                    balances[0]
                )));
            }
            client.execute(write, &[from, &left]).await?;
            client.execute(write, &[to, &right]).await?;
            Ok(json!({"from": from, "to": to, "amount": amount}))
        }
        (Statements::Bank { read_all, .. }, Op::ReadAll) => {
            let rows = client.query(read_all, &[]).await?;
            let mut m = Map::new();
            for r in rows.iter().take(MAX_ACCOUNTS_READ) {
                let id: i64 = r.try_get(0)?;
                let balance: i64 = r.try_get(1)?;
                m.insert(id.to_string(), json!(balance));
            }
            Ok(Value::Object(m))
        }
        _ => Err(Body::Sql(SqlError::local(
            "the operation does not belong to this connection's workload",
        ))),
    }
}

/// After an error inside the transaction: roll back if the session survived it (an `ERROR`
/// leaves it usable), so it can be reused.
async fn abort(session: &mut Session, e: SqlError) -> OpError {
    if e.plain_error {
        let _ = rollback(session).await;
    }
    OpError::Aborted(e)
}

async fn rollback(session: &mut Session) -> Result<(), SqlError> {
    session
        .client
        .batch_execute("ROLLBACK")
        .await
        .map_err(|e| SqlError::of(&e))?;
    session.in_txn = false;
    Ok(())
}

/// A list-append value as stored: comma-separated integers, empty for no elements.
pub fn parse_list(text: &str) -> Result<Vec<i64>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in text.split(',') {
        if out.len() >= MAX_LIST_ELEMENTS {
            return Err(format!("more than {MAX_LIST_ELEMENTS} elements"));
        }
        out.push(
            part.parse()
                .map_err(|_| format!("{part:?} in the stored list is not an integer"))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_parse_or_say_what_is_wrong() {
        let op = parse(
            Kind::ListAppend,
            "txn",
            &json!([["r", 1, null], ["append", 1, 5]]),
        )
        .unwrap();
        assert!(op.writes());
        let read_only = parse(Kind::RwRegister, "txn", &json!([["r", 1, null]])).unwrap();
        assert!(!read_only.writes());
        assert!(parse(Kind::RwRegister, "txn", &json!([["append", 1, 5]]))
            .unwrap_err()
            .contains("takes r and w"));
        assert!(parse(Kind::ListAppend, "txn", &json!([])).is_err());
        assert!(parse(Kind::ListAppend, "txn", &json!([["r", "k", null]]))
            .unwrap_err()
            .contains("key must be an integer"));
        assert!(parse(Kind::ListAppend, "read", &Value::Null).is_err());
        let t = parse(
            Kind::Bank,
            "transfer",
            &json!({"from": 1, "to": 2, "amount": 3}),
        )
        .unwrap();
        assert_eq!(
            t,
            Op::Transfer {
                from: 1,
                to: 2,
                amount: 3
            }
        );
        assert!(parse(
            Kind::Bank,
            "transfer",
            &json!({"from": 1, "to": 1, "amount": 3})
        )
        .is_err());
        assert_eq!(parse(Kind::Bank, "read", &Value::Null), Ok(Op::ReadAll));
    }

    #[test]
    fn stored_lists_split_on_commas() {
        assert_eq!(parse_list(""), Ok(vec![]));
        assert_eq!(parse_list("3"), Ok(vec![3]));
        assert_eq!(parse_list("3,-1,7"), Ok(vec![3, -1, 7]));
        assert!(parse_list("3,,7").is_err());
        assert!(parse_list("x").unwrap_err().contains("not an integer"));
    }
}
