//! One connection to a PostgreSQL server (tokio-postgres, no TLS, trust authentication),
//! with the statements its workload needs prepared once, and errors that keep what decides
//! an operation's fate: the SQLSTATE, and whether the server answered at all.
//!
//! The server bounds every statement (`statement_timeout`) and every idle transaction
//! (`idle_in_transaction_session_timeout`) to the client's own deadline, so a client that
//! gave up and dropped its connection leaves nothing running or holding locks for long.

use super::{Kind, DATABASE, USER};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_postgres::error::{Severity, SqlState};
use tokio_postgres::{Client, Config, NoTls, Statement};

/// A statement's or a connection's failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}")]
pub struct SqlError {
    /// The server's SQLSTATE, when it answered with an error.
    pub code: Option<String>,
    /// Whether the server reported an `ERROR` (the transaction is aborted and the session
    /// lives on), as opposed to `FATAL`/`PANIC` or no answer at all.
    pub plain_error: bool,
    /// What happened, with the SQLSTATE first when there is one.
    pub what: String,
}

impl SqlError {
    pub fn of(e: &tokio_postgres::Error) -> SqlError {
        match e.as_db_error() {
            Some(db) => SqlError {
                code: Some(db.code().code().to_string()),
                plain_error: db.parsed_severity() == Some(Severity::Error),
                what: format!("{}: {}", db.code().code(), db.message()),
            },
            None => SqlError {
                code: None,
                plain_error: false,
                what: format!("connection: {e}"),
            },
        }
    }

    /// An error the client made up (a deadline, a malformed value).
    pub fn local(what: impl Into<String>) -> SqlError {
        SqlError {
            code: None,
            plain_error: false,
            what: what.into(),
        }
    }

    /// A serialization failure (40001) or a deadlock (40P01): PostgreSQL aborted the
    /// transaction to keep its isolation level.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(c) if c == SqlState::T_R_SERIALIZATION_FAILURE.code()
                || c == SqlState::T_R_DEADLOCK_DETECTED.code()
        )
    }

    /// Whether a COMMIT that got this error certainly did not commit. An `ERROR` aborts the
    /// transaction (PostgreSQL turns any error after the commit record into a PANIC); a
    /// FATAL, a PANIC, a lost connection or a deadline leave the commit's fate unknown.
    pub fn commit_certainly_failed(&self) -> bool {
        self.plain_error || self.is_conflict()
    }
}

/// The statements one workload uses, prepared on the connection.
pub enum Statements {
    ListAppend {
        read: Statement,
        append: Statement,
    },
    RwRegister {
        read: Statement,
        write: Statement,
    },
    Bank {
        read_one: Statement,
        write: Statement,
        read_all: Statement,
    },
}

/// How a client connects: the server, and how long connecting and each operation may take.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub connect_timeout: Duration,
    /// The client's deadline per operation; the server's statement and idle-transaction
    /// timeouts are set to it.
    pub op_timeout: Duration,
}

/// An open connection and its prepared statements.
pub struct Session {
    pub client: Client,
    pub stmts: Statements,
    /// Set between BEGIN and the end of COMMIT or ROLLBACK: a session left in a
    /// transaction (its operation was cancelled) is not reused.
    pub in_txn: bool,
}

impl Session {
    /// Connects (within `target.connect_timeout`) and prepares `kind`'s statements.
    pub async fn open(target: &Target, kind: Kind) -> Result<Session, SqlError> {
        let ms = target.op_timeout.as_millis().max(1);
        let mut config = Config::new();
        config
            .host(target.addr.ip().to_string())
            .port(target.addr.port())
            .user(USER)
            .dbname(DATABASE)
            .application_name("faultline")
            .ssl_mode(tokio_postgres::config::SslMode::Disable)
            .connect_timeout(target.connect_timeout)
            .options(format!(
                "-c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms}"
            ));
        let connecting = tokio::time::timeout(target.connect_timeout, config.connect(NoTls));
        let (client, connection) = match connecting.await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(SqlError::of(&e)),
            Err(_) => {
                return Err(SqlError::local(format!(
                    "connection: no session with {} within {} ms",
                    target.addr,
                    target.connect_timeout.as_millis()
                )))
            }
        };
        // The connection task ends when the client is dropped or the socket closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let prepare = |sql: &'static str| {
            let client = &client;
            async move { client.prepare(sql).await.map_err(|e| SqlError::of(&e)) }
        };
        let stmts = match kind {
            Kind::ListAppend => Statements::ListAppend {
                read: prepare("SELECT v FROM lists WHERE k = $1").await?,
                append: prepare(
                    "INSERT INTO lists AS l (k, v) VALUES ($1, $2) \
                     ON CONFLICT (k) DO UPDATE SET v = l.v || ',' || EXCLUDED.v",
                )
                .await?,
            },
            Kind::RwRegister => Statements::RwRegister {
                read: prepare("SELECT v FROM registers WHERE k = $1").await?,
                write: prepare(
                    "INSERT INTO registers AS r (k, v) VALUES ($1, $2) \
                     ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                )
                .await?,
            },
            Kind::Bank => Statements::Bank {
                read_one: prepare("SELECT balance FROM accounts WHERE id = $1").await?,
                write: prepare("UPDATE accounts SET balance = $2 WHERE id = $1").await?,
                read_all: prepare("SELECT id, balance FROM accounts ORDER BY id").await?,
            },
        };
        Ok(Session {
            client,
            stmts,
            in_txn: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: Option<&str>, plain: bool) -> SqlError {
        SqlError {
            code: code.map(str::to_string),
            plain_error: plain,
            what: String::new(),
        }
    }

    #[test]
    fn only_an_error_the_session_survived_settles_a_commit() {
        assert!(err(Some("40001"), true).is_conflict());
        assert!(err(Some("40P01"), true).is_conflict());
        assert!(!err(Some("23505"), true).is_conflict());
        assert!(err(Some("23505"), true).commit_certainly_failed());
        assert!(err(Some("40001"), false).commit_certainly_failed());
        // The administrator (or a crash) ended the session: the commit may have happened.
        assert!(!err(Some("57P01"), false).commit_certainly_failed());
        assert!(!SqlError::local("connection: closed").commit_certainly_failed());
    }
}
