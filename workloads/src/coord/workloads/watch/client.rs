//! The watch workload's client, over any session on znodes ([`Znodes`]): coord's and
//! Apache ZooKeeper's record the same ops and the one checker judges them.

use super::{valid_key, KEYS, ROOT};
use crate::client::{Client, Outcome};
use crate::coord::workloads::znodes::{Read, Resolution, Znodes};
use checkers::history::Value;
use coord::api::child_path;
use serde_json::json;
use std::collections::BTreeMap;

/// A watch this client set and has not seen resolve.
struct Pending<W> {
    id: String,
    watch: W,
}

pub(crate) struct WatchClient<S: Znodes> {
    store: S,
    /// At most one tracked watch per key: a read of a watched key sets none.
    pending: BTreeMap<String, Pending<S::Watch>>,
    watches: u64,
}

impl<S: Znodes> WatchClient<S> {
    pub fn new(store: S) -> WatchClient<S> {
        WatchClient {
            store,
            pending: BTreeMap::new(),
            watches: 0,
        }
    }
}

impl<S: Znodes> Client for WatchClient<S> {
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

impl<S: Znodes> WatchClient<S> {
    /// The op's value so far: the key, the worker and its session.
    fn base(&self, key: &str) -> Value {
        json!({"key": key, "worker": self.store.worker(), "session": self.store.session_id()})
    }

    async fn ready(&mut self) -> Result<(), String> {
        for k in 0..KEYS {
            self.store
                .ensure(&child_path(ROOT, &format!("k{k}")))
                .await?;
        }
        Ok(())
    }

    async fn read(&mut self, key: &str) -> Outcome {
        if let Err(e) = self.ready().await {
            return Outcome::fail(self.base(key), e);
        }
        let path = child_path(ROOT, key);
        let watch = !self.pending.contains_key(key);
        match self.store.get_data(&path, watch).await {
            Ok(Read { mzxid, watch, .. }) => {
                let mut value = self.base(key);
                if let Some(watch) = watch {
                    self.watches += 1;
                    let id = format!("{}.{}", self.store.worker(), self.watches);
                    value["set"] = json!({"id": id, "key": key, "mzxid": mzxid});
                    self.pending.insert(key.to_string(), Pending { id, watch });
                }
                ok_with(value, mzxid)
            }
            Err(e) => self.failed(key, &e, true),
        }
    }

    async fn write(&mut self, key: &str) -> Outcome {
        if let Err(e) = self.ready().await {
            return Outcome::fail(self.base(key), e);
        }
        let data = format!("{}", self.watches);
        match self
            .store
            .set_data(&child_path(ROOT, key), data.as_bytes())
            .await
        {
            Ok(mzxid) => ok_with(self.base(key), mzxid),
            Err(e) => self.failed(key, &e, false),
        }
    }

    /// A read that failed did nothing; a write may have. The value names the session the
    /// op ran on, so it is taken before the session is forgotten.
    fn failed(&mut self, key: &str, e: &S::Error, read: bool) -> Outcome {
        let value = self.base(key);
        self.store.ended_by(e);
        if read || S::is_definite(e) {
            Outcome::fail(value, e.to_string())
        } else {
            Outcome::info(value, e.to_string())
        }
    }

    /// Moves every resolved watch out of `pending` into `value`'s `fired` and `lost`.
    fn poll(&mut self, value: &mut Value) {
        let mut fired = Vec::new();
        let mut lost = Vec::new();
        self.pending.retain(|_, p| match S::resolved(&mut p.watch) {
            None => true,
            Some(Resolution::Fired { zxid }) => {
                fired.push(json!({"id": p.id, "zxid": zxid}));
                false
            }
            Some(Resolution::Lost) => {
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

fn ok_with(mut value: Value, mzxid: u64) -> Outcome {
    value["mzxid"] = json!(mzxid);
    Outcome::ok(value)
}
