//! PostgreSQL 15 under Faultline's transactional workloads (issue 8): Elle's list-append and
//! rw-register, and Jepsen's bank, each run at the isolation level the test claims, so that
//! the checkers can hold PostgreSQL to the published behaviour (Hermitage): read committed
//! shows G-single, G2-item and lost updates but no G0 or G1; repeatable read (snapshot
//! isolation in PostgreSQL) shows G2-item but no G-single; serializable shows nothing.
//!
//! - [`conn`]: one connection (tokio-postgres, no TLS), its prepared statements, and errors
//!   that say whether the transaction certainly did not commit.
//! - [`ops`]: each history operation as SQL inside `BEGIN ISOLATION LEVEL ...` / `COMMIT`.
//! - [`client`]: the client one worker runs: deadlines, reconnection, `ok`/`fail`/`info`.
//! - [`workload`]: the operations (few keys, short transactions: contention on purpose),
//!   the final reads, and the registry.
//! - [`check`]: the verdicts: the transactional checkers at the claimed model plus a search
//!   for every anomaly, or the bank checker.
//!
//! History operations (`f`: invocation value -> ok value):
//! - list-append, rw-register: `txn`: `[["r", k, null], ["append", k, v]]` ->
//!   `[["r", k, [..]], ["append", k, v]]` (`["w", k, v]` and `["r", k, v|null]` for
//!   registers).
//! - bank: `transfer`: `{"from": a, "to": b, "amount": n}` -> the same; `read`: `null` ->
//!   `{"0": 100, ...}` (every account, one statement).

pub mod check;
pub mod client;
pub mod conn;
#[cfg(test)]
mod fake;
pub mod ops;
pub mod workload;

use checkers::txn::Model;

/// The workloads `--system postgres` runs.
pub const NAMES: &[&str] = &["list-append", "rw-register", "bank"];

/// The port every server listens on (each node has its own address).
pub const PORT: u16 = 5432;
/// The role clients log in as: the cluster's superuser, trusted without a password.
pub const USER: &str = "faultline";
/// The database created at setup, which holds the workloads' tables.
pub const DATABASE: &str = "faultline";

/// Accounts of the bank, `0..ACCOUNTS`.
pub const ACCOUNTS: i64 = 8;
/// Each account's balance when the database is created.
pub const INITIAL_BALANCE: i64 = 100;

/// The workloads' tables, created with the database before any client connects (so no
/// client races another to create them, and the bank's balances exist before any transfer).
pub fn schema_sql() -> String {
    format!(
        "CREATE TABLE lists (k bigint PRIMARY KEY, v text NOT NULL);\n\
         CREATE TABLE registers (k bigint PRIMARY KEY, v bigint NOT NULL);\n\
         CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);\n\
         INSERT INTO accounts SELECT g, {INITIAL_BALANCE} FROM generate_series(0, {}) AS g;\n",
        ACCOUNTS - 1
    )
}

/// Which of the three workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ListAppend,
    RwRegister,
    Bank,
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Kind> {
        match name {
            "list-append" => Some(Kind::ListAppend),
            "rw-register" => Some(Kind::RwRegister),
            "bank" => Some(Kind::Bank),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::ListAppend => "list-append",
            Kind::RwRegister => "rw-register",
            Kind::Bank => "bank",
        }
    }
}

/// The isolation level every transaction of a run asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    /// The names `--isolation` takes.
    pub const NAMES: &'static [&'static str] =
        &["read-committed", "repeatable-read", "serializable"];

    pub fn from_name(name: &str) -> Option<Isolation> {
        match name {
            "read-committed" => Some(Isolation::ReadCommitted),
            "repeatable-read" => Some(Isolation::RepeatableRead),
            "serializable" => Some(Isolation::Serializable),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read-committed",
            Isolation::RepeatableRead => "repeatable-read",
            Isolation::Serializable => "serializable",
        }
    }

    /// What `BEGIN ISOLATION LEVEL` takes.
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }

    /// The consistency model the level promises, which a run is checked at. PostgreSQL's
    /// repeatable read is snapshot isolation: it allows write skew (G2-item), which Adya's
    /// PL-2.99 (the checkers' `repeatable-read`) forbids, so it is checked at
    /// `snapshot-isolation`.
    pub fn model(self) -> Model {
        match self {
            Isolation::ReadCommitted => Model::ReadCommitted,
            Isolation::RepeatableRead => Model::SnapshotIsolation,
            Isolation::Serializable => Model::Serializable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in Isolation::NAMES {
            assert_eq!(Isolation::from_name(n).unwrap().name(), *n);
        }
        for n in NAMES {
            assert_eq!(Kind::from_name(n).unwrap().name(), *n);
        }
        assert_eq!(Isolation::from_name("snapshot"), None);
        assert_eq!(
            Isolation::RepeatableRead.model(),
            Model::SnapshotIsolation,
            "PostgreSQL's repeatable read is snapshot isolation"
        );
        assert!(schema_sql().contains("generate_series(0, 7)"));
    }
}
