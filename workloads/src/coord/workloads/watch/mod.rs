//! `watch`: clients read keys leaving data watches and write them; each client's
//! notifications must arrive in zxid order, before it reads a newer value, and once.
//! The client ([`client::WatchClient`]) runs on coord and on Apache ZooKeeper alike
//! ([`super::znodes::Znodes`]).
//!
//! Ops (`f` `{key}`, value on completion): `read` → `{key, mzxid}` and `write` →
//! `{key, mzxid}` (the Stat's mzxid: the zxid of the value read or written). Every
//! completion, whatever its outcome, also carries the worker's `{worker, session}`, the
//! watch the read set if any (`set: {id, key, mzxid}`), and what the client saw of its
//! pending watches right after the op's answer: `fired: [{id, zxid}]` (the event's zxid,
//! null when the store does not send it, as ZooKeeper 3.8 does not)
//! and `lost: [id]` (failed with the connection or session). The client's session task
//! delivers events before the answers that follow them, so `fired` holds every
//! notification sent before this op's answer.

mod check;
pub(crate) mod client;

use super::membership::session::Session;
use crate::client::BoxClient;
use crate::coord::workload::{ClientContext, CoordWorkload};
use crate::verdict::Verdict;
use checkers::history::{History, Value};
use checkers::rng::Rng;
use client::WatchClient;
use serde_json::json;

pub const ROOT: &str = "/faultline-watch";
/// Few keys, so that watches fire often.
pub const KEYS: u64 = 3;
pub(crate) const SESSION_TIMEOUT_MS: u64 = 10_000;

pub struct WatchWorkload;

impl CoordWorkload for WatchWorkload {
    fn name(&self) -> &'static str {
        "watch"
    }

    fn next_op(&self, rng: &mut Rng) -> (String, Value) {
        let f = if rng.below(2) == 0 { "read" } else { "write" };
        (f.into(), json!({ "key": format!("k{}", rng.below(KEYS)) }))
    }

    fn client(&self, ctx: ClientContext) -> BoxClient {
        BoxClient::new(WatchClient::new(Session::new(ctx, SESSION_TIMEOUT_MS)))
    }

    fn check(&self, history: &History) -> Verdict {
        check::check(history)
    }
}

fn valid_key(k: &str) -> bool {
    k.strip_prefix('k')
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n < KEYS)
}
