//! `membership`: clients join a group with ephemeral nodes, some of their sessions die on
//! purpose (a ghost that goes silent, a client that closes), others list the members; after
//! healing, the final listing must have lost every dead session's node and kept every live
//! one's.
//!
//! Ops (`f`, value on completion):
//! - `join` → `{session, member, timeout_ms}`: the worker's session creates the ephemeral
//!   `DIR/m-<session>`; `ended: true` when the op found the session over.
//! - `leave` → `{session, member}`: deletes it.
//! - `members` → `{members}`: sync + list of `DIR`.
//! - `ghost` → `{session, member, timeout_ms}`: a raw session joins as `g-<session>` and
//!   falls silent at completion, whatever the outcome (see [`ghost`]).
//! - `close` → `{session, timeout_ms}`: closes the worker's session (ok, or info if the
//!   close went unanswered: the session then expires).
//! - `settle` (final) → sleeps `{ms}` so that the last deaths are due before the listing.
//! - `final-members` (final) → `{members, probes}`: the listing, then each worker's session
//!   asked whether it is alive (`{session, alive}`), which proves it was alive at the
//!   listing.

mod check;
pub(crate) mod client;
mod ghost;
pub(in crate::coord::workloads) mod session;

use crate::client::BoxClient;
use crate::coord::workload::{ClientContext, CoordWorkload};
use crate::verdict::Verdict;
use checkers::history::{History, Value};
use checkers::rng::Rng;
use client::{CoordRegistry, MemberClient};
use coord::api::SessionId;
use serde_json::json;
use session::Session;

/// The group's directory.
pub const DIR: &str = "/faultline-members";
/// The session timeout every member asks for: short, so that deaths are due within a run.
pub const SESSION_TIMEOUT_MS: u64 = 2_000;
/// Beyond the timeout, what expiry may take: the leader's tick, committing the close, and a
/// leader elected after healing re-arming every session's deadline.
pub const EXPIRY_SLACK_MS: u64 = 3_000;
/// The final pause before listing: past `SESSION_TIMEOUT_MS + EXPIRY_SLACK_MS` after the
/// harness's recovery period, so the last deaths are due (and under the op timeout).
pub const SETTLE_MS: u64 = 3_000;

/// The member name of a worker's session, and of a ghost's: the name says whose it is.
pub fn member_name(session: SessionId) -> String {
    format!("m-{session:016x}")
}

pub fn ghost_name(session: SessionId) -> String {
    format!("g-{session:016x}")
}

#[derive(Default)]
pub struct Membership {
    registry: CoordRegistry,
}

impl CoordWorkload for Membership {
    fn name(&self) -> &'static str {
        "membership"
    }

    /// Mostly joins and listings; a ghost or a close now and then, each a session's death.
    fn next_op(&self, rng: &mut Rng) -> (String, Value) {
        let f = match rng.below(100) {
            0..=34 => "join",
            35..=44 => "leave",
            45..=84 => "members",
            85..=94 => "ghost",
            _ => "close",
        };
        (f.to_string(), Value::Null)
    }

    fn final_ops(&self) -> Vec<(String, Value)> {
        vec![
            ("settle".into(), json!({ "ms": SETTLE_MS })),
            ("final-members".into(), Value::Null),
        ]
    }

    fn client(&self, ctx: ClientContext) -> BoxClient {
        let session = Session::new(ctx, SESSION_TIMEOUT_MS);
        BoxClient::new(MemberClient::new(session, self.registry.clone()))
    }

    fn check(&self, history: &History) -> Verdict {
        check::check(history, check::Limits::default())
    }
}
