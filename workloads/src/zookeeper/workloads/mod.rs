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
//! `sequential`, `watch` and `membership` run coord's own clients on a ZooKeeper session
//! (`ZkSession`, which implements coord's `Znodes` trait); `register`, `lock` and
//! `election` still have clients of their own here. ZooKeeper 3.8 sends notifications
//! with a zxid of -1 (the triggering zxid reaches clients only from 3.9 on), so they are
//! recorded with a null zxid: the watch check holds them to arrive before the newer value
//! and once, but cannot order them by zxid, and its summary says how many.

mod election;
mod lock;
mod membership;
mod queue;
mod register;
mod session;
mod znodes;

pub use election::ZkElectionClient;
pub use lock::ZkLockClient;
pub use register::{ReadMode, ZkRegisterClient};

use crate::client::BoxClient;
use crate::coord::workload::ClientContext;
use crate::coord::workloads::membership::client::MemberClient;
use crate::coord::workloads::membership::SESSION_TIMEOUT_MS as MEMBER_SESSION_TIMEOUT_MS;
use crate::coord::workloads::sequential::{self, SeqClient};
use crate::coord::workloads::watch::{self, client::WatchClient};
use membership::ZkRegistry;
use znodes::ZkSession;

/// The workloads with a ZooKeeper client.
pub const NAMES: &[&str] = &[
    "register",
    "lock",
    "lock-unfenced",
    "sequential",
    "election",
    "membership",
    "watch",
];

/// The ZooKeeper client for worker `ctx.worker` of workload `name` (as
/// `crate::coord::workload::by_name(name)` names it, plus "register"), or None.
/// `reads` matters only to `register`.
pub fn client(name: &str, ctx: ClientContext, reads: ReadMode) -> Option<BoxClient> {
    let client = match name {
        "register" => BoxClient::new(ZkRegisterClient::new(ctx.node, ctx.op_timeout_ms, reads)),
        "lock" => BoxClient::new(ZkLockClient::new(ctx, true)),
        "lock-unfenced" => BoxClient::new(ZkLockClient::new(ctx, false)),
        "sequential" => BoxClient::new(SeqClient::new(ZkSession::for_worker(
            &ctx,
            sequential::SESSION_TIMEOUT_MS,
        ))),
        "election" => BoxClient::new(ZkElectionClient::new(ctx)),
        "membership" => {
            let registry = ZkRegistry::new(&ctx.nodes);
            let session = ZkSession::for_worker(&ctx, MEMBER_SESSION_TIMEOUT_MS);
            BoxClient::new(MemberClient::new(session, registry))
        }
        "watch" => BoxClient::new(WatchClient::new(ZkSession::for_worker(
            &ctx,
            watch::SESSION_TIMEOUT_MS,
        ))),
        _ => return None,
    };
    Some(client)
}
