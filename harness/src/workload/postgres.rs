//! Binds the PostgreSQL workloads (`workloads::postgres`) to the harness: which runs take
//! `--isolation`, the operations as a generator, the final reads (asked for when the final
//! phase starts, once every key has been handed out), and a client per worker.

use super::{until_ok_each, AnyClient, Workload};
use crate::generator::{self, Completion, Context, Gen, Generator, Next};
use checkers::rng::Rng;
use std::sync::Arc;
use workloads::postgres::workload::{self as pg, PgWorkload};
use workloads::postgres::{Isolation, NAMES};

pub const SYSTEM: &str = "postgres";

/// Whether `workload` runs on `system`, for pairings that involve PostgreSQL; None for the
/// others, which the caller judges.
pub fn pairing(system: &str, workload: &str) -> Option<Result<(), String>> {
    let ours = NAMES.contains(&workload);
    if system == SYSTEM {
        return Some(if ours {
            Ok(())
        } else {
            Err(format!(
                "the {workload} workload does not run on postgres; postgres runs {}",
                NAMES.join(", ")
            ))
        });
    }
    // Systems that run none of the transactional workloads; without this a name only
    // postgres knows would pass for one of coord's.
    let elsewhere = workloads::twopc::workload::NAMES.contains(&workload);
    if ours && !elsewhere && matches!(system, "etcd" | "coord" | "twopc") {
        return Some(Err(format!(
            "the {workload} workload runs on postgres (--system postgres --isolation LEVEL), not {system}"
        )));
    }
    None
}

/// `--isolation` is required for postgres, and for the transactional workloads of a system
/// described by a file (the level it claims); it means nothing elsewhere.
pub fn check_isolation(
    system: &str,
    workload: &str,
    isolation: Option<&str>,
) -> Result<(), String> {
    let claims_a_level = system == SYSTEM
        || (crate::db::custom::is_system_file(system) && NAMES.contains(&workload));
    match (claims_a_level, isolation) {
        (true, None) if system == SYSTEM => Err(format!(
            "--system postgres needs --isolation {}",
            Isolation::NAMES.join("|")
        )),
        (true, None) => Err(format!(
            "the {workload} workload on {system} needs --isolation {}: the level its \
             transactions claim, which they are judged at",
            Isolation::NAMES.join("|")
        )),
        (true, Some(i)) if Isolation::from_name(i).is_none() => Err(format!(
            "unknown --isolation {i:?}: known levels are {}",
            Isolation::NAMES.join(", ")
        )),
        (false, Some(_)) => Err(format!(
            "--isolation is an isolation level for --system postgres and the transactional \
             workloads of system files, not {system}'s {workload}"
        )),
        _ => Ok(()),
    }
}

impl Workload {
    /// The PostgreSQL workload `name` at the isolation level called `isolation`, for
    /// `target`'s clients (PostgreSQL's own, or a system file's JSON-lines clients).
    pub fn postgres(
        name: &str,
        isolation: &str,
        op_timeout_ms: u64,
        target: super::Target,
    ) -> anyhow::Result<Workload> {
        let level = Isolation::from_name(isolation)
            .ok_or_else(|| anyhow::anyhow!("unknown isolation level {isolation:?}"))?;
        let w = pg::by_name(name, level)
            .ok_or_else(|| anyhow::anyhow!("postgres has no workload {name:?}"))?;
        // The register parts stay unused; going through `new` keeps every other field
        // initialised as other systems' workloads add them.
        let mut bound = Workload::new(
            workloads::register::RegisterWorkload::NAME,
            None,
            super::Target::Etcd,
            op_timeout_ms,
            1,
        )?;
        bound.target = target;
        bound.postgres = Some(Arc::new(w));
        Ok(bound)
    }
}

/// The endless stream of operations.
pub fn ops(w: &Arc<PgWorkload>) -> Gen {
    let w = w.clone();
    generator::from_fn(move |rng| w.next_op(rng))
}

/// Each final read until it succeeds (at most `attempts` times).
pub fn final_reads(w: &Arc<PgWorkload>, attempts: u64) -> Gen {
    Box::new(FinalReads {
        w: w.clone(),
        attempts,
        reads: None,
    })
}

/// The client of worker `w` on the server at `addr`.
pub fn client(w: &PgWorkload, addr: std::net::SocketAddr, timeout_ms: u64) -> AnyClient {
    AnyClient::Dyn(w.client(addr, timeout_ms))
}

struct FinalReads {
    w: Arc<PgWorkload>,
    attempts: u64,
    reads: Option<Gen>,
}

impl Generator for FinalReads {
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
        let (w, attempts) = (&self.w, self.attempts);
        self.reads
            .get_or_insert_with(|| until_ok_each(w.final_ops(), attempts))
            .next(ctx, rng)
    }

    fn completed(&mut self, c: &Completion) {
        if let Some(g) = &mut self.reads {
            g.completed(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_is_required_for_postgres_only() {
        assert!(check_isolation("postgres", "bank", None)
            .unwrap_err()
            .contains("--isolation read-committed|repeatable-read|serializable"));
        assert!(check_isolation("postgres", "bank", Some("snapshot"))
            .unwrap_err()
            .contains("unknown --isolation"));
        assert!(check_isolation("postgres", "bank", Some("serializable")).is_ok());
        assert!(check_isolation("etcd", "register", Some("serializable")).is_err());
        assert!(check_isolation("etcd", "register", None).is_ok());
        let file = "examples/pytxn/system.toml";
        assert!(check_isolation(file, "list-append", None)
            .unwrap_err()
            .contains("needs --isolation"));
        assert!(check_isolation(file, "list-append", Some("serializable")).is_ok());
        assert!(check_isolation(file, "register", Some("serializable")).is_err());
        assert!(check_isolation(file, "register", None).is_ok());
        assert_eq!(pairing("postgres", "bank"), Some(Ok(())));
        assert!(pairing("postgres", "register").unwrap().is_err());
        assert_eq!(pairing("twopc", "bank"), None);
        assert!(pairing("coord", "list-append").unwrap().is_err());
        assert_eq!(pairing("coord", "lock"), None);
    }
}
