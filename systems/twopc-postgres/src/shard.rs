//! The shard as PostgreSQL holds it, and the SQL of each protocol step.
//!
//! Everything the participant must remember across a crash lives in the database, so the
//! process itself keeps nothing durable and a restart is PostgreSQL's own recovery:
//! - `twopc_kv`: the shard's keys and values;
//! - `twopc_applied`: every transaction committed here, written inside the transaction
//!   itself, so it is applied exactly when its writes are;
//! - `twopc_decided`: aborts learned for transactions that never prepared here, so that a
//!   `Prepare` overtaken by its abort is refused rather than prepared and orphaned;
//! - `twopc_meta`: the boot count (part of message ids) and the horizon below which the
//!   coordinator has forgotten every transaction;
//! - prepared transactions themselves (`pg_prepared_xacts`), which PostgreSQL keeps through
//!   crashes with their locks. The global id names the transaction and its participants
//!   ([`gid`]), which a participant recovering in doubt needs to ask about it.
//!
//! Locking is strict two-phase on the rows touched: reads take `FOR SHARE`, additions `FOR
//! UPDATE`, writes the row lock of their upsert, all held by the prepared transaction until
//! `COMMIT PREPARED`. Waits are bounded by `lock_timeout`, so a conflict (or a deadlock
//! across shards, which no single PostgreSQL sees) becomes a `no` vote rather than a stall.

use machine::NodeId;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_postgres::{Client, Config, NoTls};
use twopc::proto::{Key, Mop, TxnId, Value};

/// Prefix of every global transaction id this participant prepares.
pub const GID_PREFIX: &str = "faultline-";
/// Longest global id PostgreSQL accepts (`GIDSIZE` is 200 bytes with the terminator).
pub const MAX_GID_BYTES: usize = 199;
/// Applied transactions a state query lists at most.
pub const MAX_APPLIED_LISTED: i64 = 1_000_000;
/// Keys a state query lists at most.
pub const MAX_KEYS_LISTED: i64 = 1_000_000;
/// In-doubt transactions one scan returns at most.
pub const MAX_IN_DOUBT_LISTED: i64 = 1_000;

const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS twopc_kv (k bigint PRIMARY KEY, v bigint NOT NULL);
CREATE TABLE IF NOT EXISTS twopc_applied (txn bigint PRIMARY KEY);
CREATE TABLE IF NOT EXISTS twopc_decided (txn bigint PRIMARY KEY, commit boolean NOT NULL);
CREATE TABLE IF NOT EXISTS twopc_meta (one int PRIMARY KEY CHECK (one = 1), \
  boots bigint NOT NULL, horizon bigint NOT NULL);
INSERT INTO twopc_meta VALUES (1, 0, 0) ON CONFLICT DO NOTHING;";

/// Where the database is and how long the participant lets it take.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    pub addr: SocketAddr,
    pub user: String,
    pub database: String,
    pub connect_timeout: Duration,
    /// How long a prepare waits for a row lock before voting no.
    pub lock_timeout: Duration,
    /// The bound on every statement (a paused or dying server must not hold a task).
    pub statement_timeout: Duration,
}

/// A failure to talk to the database, or an error it answered with.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{0}")]
    Sql(String),
    #[error("no session with {addr} within {ms} ms")]
    ConnectTimeout { addr: SocketAddr, ms: u128 },
    #[error("stored value {what} is out of range")]
    Range { what: String },
}

impl ShardError {
    fn of(e: tokio_postgres::Error) -> ShardError {
        match e.as_db_error() {
            Some(db) => ShardError::Sql(format!("{}: {}", db.code().code(), db.message())),
            None => ShardError::Sql(format!("connection: {e}")),
        }
    }
}

/// Transaction ids are below 2^53 (`twopc::proto::MAX_INCARNATION`), so they fit a bigint.
fn sql_txn(txn: TxnId) -> i64 {
    i64::try_from(txn).expect("transaction ids are below 2^53")
}

fn txn_of(v: i64) -> Result<TxnId, ShardError> {
    TxnId::try_from(v).map_err(|_| ShardError::Range {
        what: format!("transaction id {v}"),
    })
}

fn key_sql(key: Key) -> Result<i64, String> {
    i64::try_from(key).map_err(|_| format!("key {key} does not fit a bigint"))
}

/// The global id of `txn`'s prepared part here: `faultline-<txn>-<p1>.<p2>...`.
pub fn gid(txn: TxnId, participants: &[NodeId]) -> Result<String, String> {
    let nodes: Vec<String> = participants.iter().map(|n| n.to_string()).collect();
    let gid = format!("{GID_PREFIX}{txn}-{}", nodes.join("."));
    if gid.len() > MAX_GID_BYTES {
        return Err(format!(
            "{} participants do not fit a global transaction id",
            participants.len()
        ));
    }
    Ok(gid)
}

/// The transaction and participants a global id names; `None` for ids that are not ours.
pub fn parse_gid(gid: &str) -> Option<(TxnId, Vec<NodeId>)> {
    let rest = gid.strip_prefix(GID_PREFIX)?;
    let (txn, nodes) = rest.split_once('-')?;
    let txn = txn.parse().ok()?;
    let nodes = nodes
        .split('.')
        .map(|n| n.parse().ok())
        .collect::<Option<Vec<NodeId>>>()?;
    Some((txn, nodes))
}

/// Opens a session whose every statement and lock wait is bounded.
pub async fn connect(cfg: &ShardConfig) -> Result<Client, ShardError> {
    let mut config = Config::new();
    config
        .host(cfg.addr.ip().to_string())
        .port(cfg.addr.port())
        .user(&cfg.user)
        .dbname(&cfg.database)
        .application_name("faultline-twopc-participant")
        .ssl_mode(tokio_postgres::config::SslMode::Disable)
        .connect_timeout(cfg.connect_timeout)
        .options(format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            cfg.statement_timeout.as_millis().max(1),
            cfg.lock_timeout.as_millis().max(1),
            cfg.statement_timeout.as_millis().max(1) * 4,
        ));
    let connecting = tokio::time::timeout(cfg.connect_timeout, config.connect(NoTls));
    let (client, connection) = match connecting.await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(ShardError::of(e)),
        Err(_) => {
            return Err(ShardError::ConnectTimeout {
                addr: cfg.addr,
                ms: cfg.connect_timeout.as_millis(),
            })
        }
    };
    // Ends when the client is dropped or the socket closes.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// What the participant knows at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boot {
    /// This life's number, from 1: message ids carry it.
    pub boots: u32,
    pub horizon: TxnId,
}

/// Creates the tables if needed and counts this boot, durably.
pub async fn boot(c: &Client) -> Result<Boot, ShardError> {
    c.batch_execute(SCHEMA).await.map_err(ShardError::of)?;
    let row = c
        .query_one(
            "UPDATE twopc_meta SET boots = boots + 1 RETURNING boots, horizon",
            &[],
        )
        .await
        .map_err(ShardError::of)?;
    let boots: i64 = row.get(0);
    let horizon: i64 = row.get(1);
    Ok(Boot {
        boots: u32::try_from(boots).map_err(|_| ShardError::Range {
            what: format!("boot count {boots}"),
        })?,
        horizon: txn_of(horizon)?,
    })
}

/// How a prepare ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// Durably prepared (PostgreSQL fsyncs a prepared transaction's state before it
    /// answers), with the reads in order: vote yes.
    Yes(Vec<(Key, Option<Value>)>),
    /// Nothing stays prepared or locked: vote no, for this reason.
    No(String),
    /// Already prepared or finished here: a duplicate `Prepare`, left unanswered.
    Duplicate,
}

/// Runs `txn`'s operations on this shard and prepares it. Any failure rolls back and votes
/// no, including one where PREPARE's answer was lost and it may have prepared after all: the
/// abort that a no forces then finds it and rolls it back ([`finish`]).
/// Why a participant votes no when its Prepare outran the vote budget.
pub const TOO_LATE: &str = "prepared too late for the coordinator's vote timeout";

pub async fn prepare(
    c: &Client,
    txn: TxnId,
    participants: &[NodeId],
    ops: &[Mop],
    deadline: tokio::time::Instant,
) -> Result<Prepared, ShardError> {
    let gid = match gid(txn, participants) {
        Ok(g) => g,
        Err(why) => return Ok(Prepared::No(why)),
    };
    let late = || tokio::time::Instant::now() >= deadline;
    if late() {
        return Ok(Prepared::No(TOO_LATE.into()));
    }
    let t = sql_txn(txn);
    let known = c
        .query_opt(
            "SELECT d.commit FROM twopc_decided d WHERE d.txn = $1 \
             UNION ALL SELECT true FROM twopc_applied a WHERE a.txn = $1 \
             UNION ALL SELECT true FROM pg_prepared_xacts p WHERE p.gid = $2 LIMIT 1",
            &[&t, &gid],
        )
        .await
        .map_err(ShardError::of)?;
    match known {
        Some(row) if !row.get::<_, bool>(0) => return Ok(Prepared::No("already aborted".into())),
        Some(_) => return Ok(Prepared::Duplicate),
        None => {}
    }
    c.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await
        .map_err(ShardError::of)?;
    match run_ops(c, txn, ops).await {
        Ok(Ok(_)) if late() => {
            let _ = c.batch_execute("ROLLBACK").await;
            Ok(Prepared::No(TOO_LATE.into()))
        }
        Ok(Ok(reads)) => {
            let prepare = format!("PREPARE TRANSACTION '{gid}'");
            match c.batch_execute(&prepare).await {
                // Not voted yet, so still free to abort alone.
                Ok(()) if late() => {
                    let rollback = format!("ROLLBACK PREPARED '{gid}'");
                    c.batch_execute(&rollback).await.map_err(ShardError::of)?;
                    Ok(Prepared::No(TOO_LATE.into()))
                }
                Ok(()) => Ok(Prepared::Yes(reads)),
                Err(e) => Ok(Prepared::No(format!(
                    "PREPARE failed: {}",
                    ShardError::of(e)
                ))),
            }
        }
        Ok(Err(why)) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Ok(Prepared::No(why))
        }
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Ok(Prepared::No(e.to_string()))
        }
    }
}

/// The operations inside the open transaction: `Ok(Err(why))` is a no vote of the shard's
/// own (an overdraft, a key out of range), `Err` a database failure (a lock timeout too).
async fn run_ops(
    c: &Client,
    txn: TxnId,
    ops: &[Mop],
) -> Result<Result<Vec<(Key, Option<Value>)>, String>, ShardError> {
    let mut reads = Vec::new();
    for op in ops {
        let k = match key_sql(op.key()) {
            Ok(k) => k,
            Err(why) => return Ok(Err(why)),
        };
        match *op {
            Mop::Read { key } => {
                let row = c
                    .query_opt("SELECT v FROM twopc_kv WHERE k = $1 FOR SHARE", &[&k])
                    .await
                    .map_err(ShardError::of)?;
                reads.push((key, row.map(|r| r.get::<_, i64>(0))));
            }
            Mop::Write { value, .. } => upsert(c, k, value).await?,
            Mop::Add { key, delta } => {
                let row = c
                    .query_opt("SELECT v FROM twopc_kv WHERE k = $1 FOR UPDATE", &[&k])
                    .await
                    .map_err(ShardError::of)?;
                let now = row.map_or(0, |r| r.get::<_, i64>(0));
                match now.checked_add(delta) {
                    Some(v) if v >= 0 => upsert(c, k, v).await?,
                    _ => {
                        return Ok(Err(format!(
                            "key {key} would go below zero ({now} + {delta})"
                        )))
                    }
                }
            }
        }
    }
    c.execute("INSERT INTO twopc_applied VALUES ($1)", &[&sql_txn(txn)])
        .await
        .map_err(ShardError::of)?;
    Ok(Ok(reads))
}

async fn upsert(c: &Client, k: i64, v: i64) -> Result<(), ShardError> {
    c.execute(
        "INSERT INTO twopc_kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
        &[&k, &v],
    )
    .await
    .map_err(ShardError::of)?;
    Ok(())
}

/// What applying a decision found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// It was prepared here, and is now committed or rolled back.
    Resolved,
    /// It never prepared here; an abort is now remembered so a late `Prepare` is refused.
    NeverPrepared,
    /// It was finished here before (a repeated decision).
    AlreadyFinished,
}

/// Applies `txn`'s decision, durably: the prepared transaction is committed or rolled back,
/// or an abort for one that never prepared is recorded.
pub async fn finish(c: &Client, txn: TxnId, commit: bool) -> Result<Finished, ShardError> {
    let t = sql_txn(txn);
    let pattern = format!("{GID_PREFIX}{txn}-%");
    let prepared = c
        .query_opt(
            "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE $1 AND database = current_database()",
            &[&pattern],
        )
        .await
        .map_err(ShardError::of)?;
    if let Some(row) = prepared {
        let gid: String = row.get(0);
        // The id came from our own prepare: digits, dots and dashes only.
        assert!(parse_gid(&gid).is_some(), "a prepared id of ours: {gid:?}");
        let sql = if commit {
            format!("COMMIT PREPARED '{gid}'")
        } else {
            format!("ROLLBACK PREPARED '{gid}'")
        };
        c.batch_execute(&sql).await.map_err(ShardError::of)?;
        return Ok(Finished::Resolved);
    }
    let known = c
        .query_opt(
            "SELECT true FROM twopc_applied WHERE txn = $1 \
             UNION ALL SELECT true FROM twopc_decided WHERE txn = $1 LIMIT 1",
            &[&t],
        )
        .await
        .map_err(ShardError::of)?;
    if known.is_some() {
        return Ok(Finished::AlreadyFinished);
    }
    c.execute(
        "INSERT INTO twopc_decided VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&t, &commit],
    )
    .await
    .map_err(ShardError::of)?;
    Ok(Finished::NeverPrepared)
}

/// What this shard knows of `txn`'s decision: committed here, or an abort it recorded.
pub async fn known_decision(c: &Client, txn: TxnId) -> Result<Option<bool>, ShardError> {
    let t = sql_txn(txn);
    let row = c
        .query_opt(
            "SELECT true FROM twopc_applied WHERE txn = $1 \
             UNION ALL SELECT commit FROM twopc_decided WHERE txn = $1 LIMIT 1",
            &[&t],
        )
        .await
        .map_err(ShardError::of)?;
    Ok(row.map(|r| r.get(0)))
}

/// Transactions prepared here longer than `older_than` ago: in doubt, unless someone is
/// applying their decision right now.
pub async fn in_doubt(
    c: &Client,
    older_than: Duration,
) -> Result<Vec<(TxnId, Vec<NodeId>)>, ShardError> {
    let rows = c
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() \
             AND gid LIKE 'faultline-%' \
             AND prepared < now() - make_interval(secs => $1) ORDER BY prepared LIMIT $2",
            &[&older_than.as_secs_f64(), &MAX_IN_DOUBT_LISTED],
        )
        .await
        .map_err(ShardError::of)?;
    Ok(rows
        .iter()
        .filter_map(|r| parse_gid(&r.get::<_, String>(0)))
        .collect())
}

/// Raises the durable horizon and forgets the recorded aborts below it: the coordinator
/// never sends anything below its horizon again.
pub async fn save_horizon(c: &Client, horizon: TxnId) -> Result<(), ShardError> {
    let h = sql_txn(horizon);
    c.batch_execute("BEGIN").await.map_err(ShardError::of)?;
    let done = async {
        c.execute(
            "UPDATE twopc_meta SET horizon = $1 WHERE horizon < $1",
            &[&h],
        )
        .await?;
        c.execute("DELETE FROM twopc_decided WHERE txn < $1", &[&h])
            .await?;
        c.batch_execute("COMMIT").await
    }
    .await;
    if let Err(e) = done {
        let _ = c.batch_execute("ROLLBACK").await;
        return Err(ShardError::of(e));
    }
    Ok(())
}

/// The shard's contents and committed transactions (each list bounded; `true` when the
/// applied list was cut).
pub type State = (Vec<(Key, Value)>, Vec<TxnId>, bool);

pub async fn state(c: &Client) -> Result<State, ShardError> {
    let kv_rows = c
        .query(
            "SELECT k, v FROM twopc_kv ORDER BY k LIMIT $1",
            &[&MAX_KEYS_LISTED],
        )
        .await
        .map_err(ShardError::of)?;
    let mut kv = Vec::with_capacity(kv_rows.len());
    for r in &kv_rows {
        let k: i64 = r.get(0);
        let key = Key::try_from(k).map_err(|_| ShardError::Range {
            what: format!("key {k}"),
        })?;
        kv.push((key, r.get::<_, i64>(1)));
    }
    let applied_rows = c
        .query(
            "SELECT txn FROM twopc_applied ORDER BY txn LIMIT $1",
            &[&(MAX_APPLIED_LISTED + 1)],
        )
        .await
        .map_err(ShardError::of)?;
    let mut applied = Vec::with_capacity(applied_rows.len());
    for r in &applied_rows {
        applied.push(txn_of(r.get(0))?);
    }
    let truncated = applied.len() as i64 > MAX_APPLIED_LISTED;
    applied.truncate(MAX_APPLIED_LISTED as usize);
    Ok((kv, applied, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_global_id_names_its_transaction_and_participants() {
        let g = gid(4294967301, &[2, 3, 5]).unwrap();
        assert_eq!(g, "faultline-4294967301-2.3.5");
        assert_eq!(parse_gid(&g), Some((4294967301, vec![2, 3, 5])));
    }

    #[test]
    fn ids_that_are_not_ours_are_not_read_as_ours() {
        for other in [
            "",
            "faultline-",
            "faultline-x-2",
            "faultline-7-",
            "other-7-2",
            "faultline-7-2.x",
        ] {
            assert_eq!(parse_gid(other), None, "{other:?}");
        }
    }

    #[test]
    fn too_many_participants_for_a_global_id_are_refused() {
        let many: Vec<NodeId> = (1_000_000..1_000_040).collect();
        assert!(gid(1, &many).is_err());
    }
}
