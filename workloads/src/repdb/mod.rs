//! The replicated database's workloads (issue 7): Elle's list-append and rw-register
//! transactions against any replica, judged by the transactional checker at the model the
//! replication mode claims, by `checkers::one_copy` on the replicas' apply logs, and by
//! convergence once every fault is healed.
//!
//! - [`conn`]: the async client connection (one request at a time, deadlines, errors that
//!   say whether a request may have applied).
//! - [`ops`]: the transactions: a few contended keys that retire after a bounded number of
//!   writes, fresh values for every write.
//! - [`worker`]: the client the runner drives: each history operation as requests.
//! - [`dump`]: reading a replica's whole apply log and state, page by page.
//! - [`workload`]: the registry, the final operations, a client per worker.
//! - [`check`]: the verdicts of a recorded history.
//!
//! History operations (`f`: invocation value -> ok value):
//! - `txn`: `[["r", 3, null], ["append", 3, 17]]` -> the same with what the reads returned
//!   (`["r", 3, [5, 17]]`; for rw-register `["w", k, v]` and `["r", k, v]`). The completion
//!   names the replica that answered (`node`) and, for a transaction that writes, its
//!   `txn-id`: the id the replicas' apply logs list ([`txn_id`]).
//! - `settle` (final): `null` -> `{"n1": {"applied": 140, "version": 140, "leader": 2,
//!   "serving": true}, ...}` once every replica serves and none applied anything for a while.
//! - `apply-log` (final, one per replica): `{"replica": "n2"}` -> `{"replica": "n2",
//!   "start": 0, "end": 140, "applied": [17, 4, ...], "version": 140, "state": {"3": [5,
//!   17]}}`: the replica's whole apply log and latest state.

pub mod check;
pub mod conn;
pub mod dump;
pub mod ops;
pub mod worker;
pub mod workload;

use checkers::history::Value;
use repdb::proto::{Mop, TxnId};

/// The completion field that names a transaction, as `checkers::one_copy` reads it.
pub use checkers::one_copy::TXN_ID_FIELD;

/// Ids of read-only transactions start here, far above any written value: they never reach
/// an apply log, but a replica still tells concurrent transactions apart by id.
pub const READ_ONLY_IDS: TxnId = 1 << 62;

/// The id of a transaction that writes: the value of its first write. Every write of a run
/// gets a fresh value ([`ops`]), so ids are unique, and the id follows from the invocation
/// alone: a transaction whose completion never came (a runner timeout) is still linked to
/// the apply logs. `None` for read-only transactions and for values that cannot be ids.
pub fn txn_id(mops: &[Mop]) -> Option<TxnId> {
    mops.iter().find_map(|m| match m {
        Mop::Write { value, .. } | Mop::Append { value, .. } => TxnId::try_from(*value)
            .ok()
            .filter(|&id| id > 0 && id < READ_ONLY_IDS),
        Mop::Read { .. } => None,
    })
}

/// [`txn_id`] of a history's micro-ops in Elle's JSON shape; `None` when they do not parse.
pub fn txn_id_of_value(value: &Value) -> Option<TxnId> {
    repdb::json::mops_from_json(value)
        .ok()
        .and_then(|mops| txn_id(&mops))
}

/// Whether the micro-ops write anything.
pub fn writes(mops: &[Mop]) -> bool {
    mops.iter().any(Mop::is_write)
}

/// The name the harness gives node `id` (1-based, in the cluster's order).
pub fn node_name(id: u32) -> String {
    format!("n{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_writing_transaction_is_named_by_its_first_write() {
        let v = json!([["r", 1, null], ["append", 1, 17], ["append", 2, 18]]);
        assert_eq!(txn_id_of_value(&v), Some(17));
        assert_eq!(txn_id_of_value(&json!([["w", 3, 5]])), Some(5));
        assert_eq!(txn_id_of_value(&json!([["r", 1, null]])), None);
        assert_eq!(txn_id_of_value(&json!([["w", 3, -5]])), None, "not an id");
        assert_eq!(txn_id_of_value(&json!("garbage")), None);
    }
}
