//! `watch`: clients read keys leaving data watches and write them; each client's
//! notifications must arrive in zxid order, before it reads a newer value, and once.
//!
//! Ops (`f` `{key}`, value on completion): `read` → `{key, mzxid}` and `write` →
//! `{key, mzxid}` (the Stat's mzxid: the zxid of the value read or written). Every
//! completion, whatever its outcome, also carries the worker's `{worker, session}`, the
//! watch the read set if any (`set: {id, key, mzxid}`), and what the client saw of its
//! pending watches right after the op's answer: `fired: [{id, zxid}]` (the event's zxid)
//! and `lost: [id]` (failed with the connection or session). The client's session task
//! delivers events before the answers that follow them, so `fired` holds every
//! notification sent before this op's answer.

mod check;

use super::membership::session::{write_failed, Session};
use crate::client::{BoxClient, Client, Outcome};
use crate::coord::client::{CoordError, Watch};
use crate::coord::workload::{ClientContext, CoordWorkload};
use crate::verdict::Verdict;
use checkers::history::{History, Value};
use checkers::rng::Rng;
use coord::api::{child_path, Stat};
use serde_json::json;
use std::collections::BTreeMap;

pub const ROOT: &str = "/faultline-watch";
/// Few keys, so that watches fire often.
pub const KEYS: u64 = 3;
const SESSION_TIMEOUT_MS: u64 = 10_000;

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
        BoxClient::new(WatchClient {
            session: Session::new(ctx, SESSION_TIMEOUT_MS),
            pending: BTreeMap::new(),
            watches: 0,
        })
    }

    fn check(&self, history: &History) -> Verdict {
        check::check(history)
    }
}

/// A watch this client set and has not seen resolve.
struct Pending {
    id: String,
    watch: Watch,
}

struct WatchClient {
    session: Session,
    /// At most one tracked watch per key: a read of a watched key sets none.
    pending: BTreeMap<String, Pending>,
    watches: u64,
}

impl Client for WatchClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        let Some(key) = value["key"]
            .as_str()
            .filter(|k| valid_key(k))
            .map(str::to_string)
        else {
            return Outcome::fail(value.clone(), "no valid key");
        };
        let mut outcome = match f {
            "read" => self.read(&key).await,
            "write" => self.write(&key).await,
            other => Outcome::fail(value.clone(), format!("unknown op {other:?}")),
        };
        self.poll(&mut outcome.value);
        outcome
    }
}

fn valid_key(k: &str) -> bool {
    k.strip_prefix('k')
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n < KEYS)
}

impl WatchClient {
    /// The op's value so far: the key, the worker and its session.
    fn base(&self, key: &str) -> Value {
        json!({"key": key, "worker": self.session.ctx().worker, "session": self.session.id()})
    }

    async fn ready(&mut self) -> Result<crate::coord::CoordClient, String> {
        let c = self.session.client().await.map_err(|e| e.to_string())?;
        for k in 0..KEYS {
            self.session
                .ensure(&child_path(ROOT, &format!("k{k}")))
                .await?;
        }
        Ok(c)
    }

    async fn read(&mut self, key: &str) -> Outcome {
        let c = match self.ready().await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(self.base(key), e),
        };
        let path = child_path(ROOT, key);
        let mut value = self.base(key);
        if self.pending.contains_key(key) {
            return match c.get_data(&path).await {
                Ok((_, stat)) => ok_with(value, &stat),
                Err(e) => self.failed(value, &e, true),
            };
        }
        match c.get_data_watch(&path).await {
            Ok((_, stat, watch)) => {
                self.watches += 1;
                let id = format!("{}.{}", self.session.ctx().worker, self.watches);
                value["set"] = json!({"id": id, "key": key, "mzxid": stat.mzxid});
                self.pending.insert(key.to_string(), Pending { id, watch });
                ok_with(value, &stat)
            }
            Err(e) => self.failed(value, &e, true),
        }
    }

    async fn write(&mut self, key: &str) -> Outcome {
        let c = match self.ready().await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(self.base(key), e),
        };
        let data = format!("{}", self.watches);
        let value = self.base(key);
        match c
            .set_data(&child_path(ROOT, key), data.as_bytes(), -1)
            .await
        {
            Ok(stat) => ok_with(value, &stat),
            Err(e) => self.failed(value, &e, false),
        }
    }

    /// A read that failed did nothing; a write may have.
    fn failed(&mut self, value: Value, e: &CoordError, read: bool) -> Outcome {
        self.session.ended_by(e);
        if read {
            Outcome::fail(value, e.to_string())
        } else {
            write_failed(value, e)
        }
    }

    /// Moves every resolved watch out of `pending` into `value`'s `fired` and `lost`.
    fn poll(&mut self, value: &mut Value) {
        let mut fired = Vec::new();
        let mut lost = Vec::new();
        self.pending.retain(|_, p| match p.watch.try_fired() {
            None => true,
            Some(Ok(event)) => {
                fired.push(json!({"id": p.id, "zxid": event.zxid}));
                false
            }
            Some(Err(_)) => {
                lost.push(json!(p.id));
                false
            }
        });
        if value.is_null() {
            *value = json!({});
        }
        value["fired"] = json!(fired);
        value["lost"] = json!(lost);
    }
}

fn ok_with(mut value: Value, stat: &Stat) -> Outcome {
    value["mzxid"] = json!(stat.mzxid);
    Outcome::ok(value)
}
