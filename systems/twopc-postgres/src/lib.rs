//! A participant of Faultline's two-phase-commit store (`systems/twopc`) whose shard is a
//! PostgreSQL database: the store's unchanged coordinator drives real PostgreSQL servers
//! through `PREPARE TRANSACTION`, `COMMIT PREPARED` and `ROLLBACK PREPARED` (issue 8,
//! "real 2PC"), and the store's workloads and checkers judge the result unchanged.
//!
//! The participant process keeps nothing of its own: every vote, decision and horizon it
//! must remember is in the database, so it recovers with PostgreSQL, and after a crash of
//! either (or of the coordinator) the termination protocol resolves what is in doubt.
//!
//! - [`shard`]: the tables and the SQL of each step.
//! - [`pool`]: bounded database sessions.
//! - [`participant`]: the protocol: votes, decisions, the termination protocol, events.
//! - [`serve`]: the peer and client listeners (the store's wire protocol).
//! - [`cli`]: `faultline node twopc-postgres ...`.

pub mod cli;
pub mod participant;
pub mod pool;
pub mod serve;
pub mod shard;
