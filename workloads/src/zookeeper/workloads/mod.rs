//! Faultline's coordination workloads on Apache ZooKeeper (issue 8): for each, a client
//! that speaks ZooKeeper's protocol and records exactly the operation names and values
//! the coord client records, so that the coord workloads' generators
//! ([`crate::coord::workload::CoordWorkload::next_op`]) and checkers judge ZooKeeper's
//! histories unchanged. `register` is checked for linearizability like coord's.
//!
//! Each client opens its sessions on first use and a new one when the old is over; an
//! operation whose outcome is unknown is `info`, after which the client forgets the
//! retired process's state (its lock, its candidacy) as the coord clients do.
//!
//! `watch` has no ZooKeeper client: its values carry each notification's zxid, and
//! ZooKeeper 3.8 sends notifications with a zxid of -1 (the triggering zxid reaches
//! clients only from 3.9 on), so the client could not record what the checker judges.

mod election;
mod lock;
mod membership;
mod queue;
mod register;
mod sequential;
mod session;

pub use election::ZkElectionClient;
pub use lock::ZkLockClient;
pub use membership::ZkMemberClient;
pub use register::ZkRegisterClient;
pub use sequential::ZkSeqClient;

use crate::client::BoxClient;
use crate::coord::workload::ClientContext;

/// The workloads with a ZooKeeper client.
pub const NAMES: &[&str] = &[
    "register",
    "lock",
    "lock-unfenced",
    "sequential",
    "election",
    "membership",
];

/// The ZooKeeper client for worker `ctx.worker` of workload `name` (as
/// `crate::coord::workload::by_name(name)` names it, plus "register"), or None.
/// `sync_reads` matters only to `register`: off, its reads are ZooKeeper's plain local
/// reads, which may be stale.
pub fn client(name: &str, ctx: ClientContext, sync_reads: bool) -> Option<BoxClient> {
    let client = match name {
        "register" => BoxClient::new(ZkRegisterClient::new(
            ctx.node,
            ctx.op_timeout_ms,
            sync_reads,
        )),
        "lock" => BoxClient::new(ZkLockClient::new(ctx, true)),
        "lock-unfenced" => BoxClient::new(ZkLockClient::new(ctx, false)),
        "sequential" => BoxClient::new(ZkSeqClient::new(ctx)),
        "election" => BoxClient::new(ZkElectionClient::new(ctx)),
        "membership" => BoxClient::new(ZkMemberClient::new(ctx)),
        _ => return None,
    };
    Some(client)
}
