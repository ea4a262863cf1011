//! The watch check, on the history alone. For each worker's session:
//! - **zxid order**: notifications seen after an op's answer have zxids no smaller than any
//!   seen after earlier answers (within one answer they arrive together, unordered);
//! - **before the newer value**: a read answered with mzxid `m'` finds resolved (fired, or
//!   lost with its connection) every watch the session set earlier on that key at an
//!   mzxid below `m'`: the change that made `m'` came after the watch was set, so its
//!   notification must precede the answer;
//! - **once, and for a change**: a watch resolves at most once, fires with a zxid above the
//!   mzxid it was set at, and only watches that were set fire.
//!
//! A notification recorded with a null zxid (ZooKeeper 3.8 sends none) is held to every
//! rule but the two about its zxid; the verdict counts them, so that a run whose order
//! could not be checked says so.

use crate::verdict::Verdict;
use checkers::history::{History, Op, OpType};
use checkers::linearizable::Validity;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Anomalies listed in the verdict at most; the counts are exact.
const MAX_REPORTED: usize = 20;

#[derive(Debug, thiserror::Error)]
#[error("op {index} ({f}): {why}")]
struct Malformed {
    index: u64,
    f: String,
    why: &'static str,
}

/// A watch as set: whose, on what, at which mzxid, by which op.
#[derive(Clone, Debug)]
struct SetWatch {
    worker: u64,
    session: u64,
    key: String,
    mzxid: u64,
    op: u64,
}

/// What one completed op says.
#[derive(Clone)]
struct Completion {
    index: u64,
    worker: u64,
    session: Option<u64>,
    key: String,
    /// The mzxid of an `ok` read.
    read_mzxid: Option<u64>,
    set: Option<(String, u64)>,
    /// Notifications, with their zxids where recorded.
    fired: Vec<(String, Option<u64>)>,
    lost: Vec<String>,
}

#[derive(Default)]
struct State {
    watches: BTreeMap<String, SetWatch>,
    resolved: BTreeSet<String>,
    /// Open watches per (worker, session, key).
    open: BTreeMap<(u64, u64, String), BTreeSet<String>>,
    /// Highest notification zxid seen per (worker, session).
    highest: BTreeMap<(u64, u64), (u64, String)>,
    anomalies: Vec<Value>,
    fired: usize,
    /// Notifications recorded without a zxid.
    fired_without_zxid: usize,
}

pub fn check(history: &History) -> Verdict {
    let mut state = State::default();
    for op in &history.ops {
        let relevant = op.process.is_client()
            && op.op_type != OpType::Invoke
            && matches!(op.f.as_str(), "read" | "write");
        if !relevant {
            continue;
        }
        match completion(op) {
            Ok(c) => state.apply(&c),
            Err(e) => return malformed(e),
        }
    }
    state.verdict()
}

fn malformed(e: Malformed) -> Verdict {
    Verdict {
        valid: Validity::Unknown,
        checker: "watch",
        summary: "watch: malformed history".into(),
        explanation: e.to_string(),
        details: json!({ "error": e.to_string() }),
    }
}

fn completion(op: &Op) -> Result<Completion, Malformed> {
    let bad = |why| Malformed {
        index: op.index,
        f: op.f.clone(),
        why,
    };
    let v = &op.value;
    let worker = v["worker"].as_u64().ok_or_else(|| bad("no worker"))?;
    let key = v["key"].as_str().ok_or_else(|| bad("no key"))?.to_string();
    let read_mzxid = match (op.f.as_str(), op.op_type) {
        ("read", OpType::Ok) => Some(v["mzxid"].as_u64().ok_or_else(|| bad("no mzxid"))?),
        _ => None,
    };
    let set = match v.get("set") {
        None | Some(Value::Null) => None,
        Some(s) => Some((
            s["id"]
                .as_str()
                .ok_or_else(|| bad("a set watch without id"))?
                .to_string(),
            s["mzxid"]
                .as_u64()
                .ok_or_else(|| bad("a set watch without mzxid"))?,
        )),
    };
    let mut fired = Vec::new();
    for f in v["fired"].as_array().into_iter().flatten() {
        let id = f["id"]
            .as_str()
            .ok_or_else(|| bad("a notification without id"))?;
        let zxid = match f.get("zxid") {
            Some(Value::Null) => None,
            Some(z) => Some(
                z.as_u64()
                    .ok_or_else(|| bad("a notification's zxid is not a count"))?,
            ),
            None => return Err(bad("a notification without zxid")),
        };
        fired.push((id.to_string(), zxid));
    }
    let lost: Option<Vec<String>> = v["lost"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l.as_str().map(str::to_string))
        .collect();
    Ok(Completion {
        index: op.index,
        worker,
        session: v["session"].as_u64(),
        key,
        read_mzxid,
        set,
        fired,
        lost: lost.ok_or_else(|| bad("a lost watch id is not a string"))?,
    })
}

impl State {
    /// Resolutions first (they precede the answer), then the read's rule, then the watch
    /// the op set, then that watch's own resolution if it came before the op was recorded
    /// (it can only fire after the answer that set it).
    fn apply(&mut self, c: &Completion) {
        let own = c.set.as_ref().map(|(id, _)| id.clone());
        let (mut earlier, mut later) = (c.clone(), c.clone());
        earlier.fired.retain(|(id, _)| Some(id) != own.as_ref());
        earlier.lost.retain(|id| Some(id) != own.as_ref());
        later.fired.retain(|(id, _)| Some(id) == own.as_ref());
        later.lost.retain(|id| Some(id) == own.as_ref());
        self.resolve_all(&earlier);
        if let (Some(m), Some(s)) = (c.read_mzxid, c.session) {
            self.newer_read(c, s, m);
        }
        self.open_watch(c);
        self.resolve_all(&later);
    }

    fn open_watch(&mut self, c: &Completion) {
        if let (Some((id, mzxid)), Some(session)) = (&c.set, c.session) {
            let w = SetWatch {
                worker: c.worker,
                session,
                key: c.key.clone(),
                mzxid: *mzxid,
                op: c.index,
            };
            let slot = (w.worker, w.session, w.key.clone());
            self.open.entry(slot).or_default().insert(id.clone());
            self.watches.insert(id.clone(), w);
        }
    }

    fn resolve_all(&mut self, c: &Completion) {
        let mut batch_high: BTreeMap<(u64, u64), (u64, String)> = BTreeMap::new();
        for (id, zxid) in &c.fired {
            let Some(w) = self.resolve(id, c.index) else {
                continue;
            };
            self.fired += 1;
            let Some(zxid) = zxid else {
                self.fired_without_zxid += 1;
                continue;
            };
            if *zxid <= w.mzxid {
                self.anomaly(json!({"kind": "fired for an old change", "watch": id, "set_op": w.op, "set_mzxid": w.mzxid, "zxid": zxid, "op": c.index}));
            }
            let who = (w.worker, w.session);
            if let Some((high, by)) = self.highest.get(&who).cloned() {
                if *zxid < high {
                    self.anomaly(json!({"kind": "out of zxid order", "worker": w.worker, "session": w.session, "watch": id, "zxid": zxid, "after": by, "after_zxid": high, "op": c.index}));
                }
            }
            let b = batch_high.entry(who).or_insert((*zxid, id.clone()));
            if *zxid > b.0 {
                *b = (*zxid, id.clone());
            }
        }
        for (who, high) in batch_high {
            let h = self.highest.entry(who).or_insert(high.clone());
            if high.0 > h.0 {
                *h = high;
            }
        }
        for id in &c.lost {
            self.resolve(id, c.index);
        }
    }

    /// Marks a watch resolved; its record if this is its first resolution.
    fn resolve(&mut self, id: &str, op: u64) -> Option<SetWatch> {
        let Some(w) = self.watches.get(id).cloned() else {
            self.anomaly(json!({"kind": "resolved a watch never set", "watch": id, "op": op}));
            return None;
        };
        if !self.resolved.insert(id.to_string()) {
            self.anomaly(json!({"kind": "resolved twice", "watch": id, "op": op}));
            return None;
        }
        if let Some(open) = self.open.get_mut(&(w.worker, w.session, w.key.clone())) {
            open.remove(id);
        }
        Some(w)
    }

    fn newer_read(&mut self, c: &Completion, session: u64, mzxid: u64) {
        let slot = (c.worker, session, c.key.clone());
        let stale: Vec<(String, SetWatch)> = self
            .open
            .get(&slot)
            .into_iter()
            .flatten()
            .filter_map(|id| self.watches.get(id).map(|w| (id.clone(), w.clone())))
            .filter(|(_, w)| w.mzxid < mzxid)
            .collect();
        for (id, w) in stale {
            self.anomaly(json!({"kind": "newer value read before the notification", "watch": id, "key": c.key, "set_op": w.op, "set_mzxid": w.mzxid, "read_op": c.index, "read_mzxid": mzxid}));
        }
    }

    fn anomaly(&mut self, a: Value) {
        self.anomalies.push(a);
    }

    fn verdict(self) -> Verdict {
        let unordered = match self.fired_without_zxid {
            0 => String::new(),
            n => format!(" ({n} without a zxid: their order is not checked)"),
        };
        let summary = format!(
            "watch: {} watches set, {} fired{unordered}, {} resolved; {} anomalies",
            self.watches.len(),
            self.fired,
            self.resolved.len(),
            self.anomalies.len()
        );
        let explanation = self
            .anomalies
            .iter()
            .take(MAX_REPORTED)
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        let valid = if self.anomalies.is_empty() {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        Verdict {
            valid,
            checker: "watch",
            summary,
            explanation,
            details: json!({
                "watches": self.watches.len(),
                "fired": self.fired,
                "fired_without_zxid": self.fired_without_zxid,
                "anomalies": self.anomalies.len(),
                "examples": self.anomalies.iter().take(MAX_REPORTED).collect::<Vec<_>>(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::membership::session::test_history::{history, Event};
    use super::*;
    use checkers::history::OpType::{Info, Invoke, Ok as Done};

    /// An op by worker 0 on session 7 and key k0 with extra fields.
    fn op(f: &'static str, t: OpType, extra: Value) -> [Event; 2] {
        let mut v = json!({"key": "k0", "worker": 0, "session": 7, "fired": [], "lost": []});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        [
            (Invoke, Some(0), f, json!({"key": "k0"}), 0),
            (t, Some(0), f, v, 1),
        ]
    }

    /// The same op by another process (a worker's process after an `info`).
    fn on(process: u64, mut events: [Event; 2]) -> [Event; 2] {
        events.iter_mut().for_each(|e| e.1 = Some(process));
        events
    }

    fn run(parts: Vec<[Event; 2]>) -> Verdict {
        check(&history(parts.into_iter().flatten().collect()))
    }

    fn set(id: &str, mzxid: u64) -> [Event; 2] {
        op(
            "read",
            Done,
            json!({"mzxid": mzxid, "set": {"id": id, "key": "k0", "mzxid": mzxid}}),
        )
    }

    #[test]
    fn notifications_before_newer_reads_in_order_are_valid() {
        let v = run(vec![
            set("0.1", 5),
            on(3, op("write", Info, json!({}))),
            op(
                "read",
                Done,
                json!({"mzxid": 9, "fired": [{"id": "0.1", "zxid": 9}]}),
            ),
            set("0.2", 9),
            op(
                "read",
                Done,
                json!({"mzxid": 12, "fired": [{"id": "0.2", "zxid": 12}]}),
            ),
        ]);
        assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
        assert_eq!(v.details["fired"], 2);
    }

    #[test]
    fn a_newer_read_before_the_notification_is_caught_unless_the_watch_was_lost() {
        let v = run(vec![set("0.1", 5), op("read", Done, json!({"mzxid": 9}))]);
        assert!(
            v.explanation.contains("newer value read before"),
            "{}",
            v.explanation
        );
        let lost = run(vec![
            set("0.1", 5),
            op("read", Done, json!({"mzxid": 9, "lost": ["0.1"]})),
        ]);
        assert_eq!(lost.valid, Validity::Valid, "{}", lost.explanation);
    }

    #[test]
    fn out_of_order_twice_stale_and_unknown_notifications_are_caught() {
        let v = run(vec![
            set("0.1", 5),
            op(
                "read",
                Done,
                json!({"mzxid": 5, "key": "k1", "set": {"id": "0.2", "key": "k1", "mzxid": 5}}),
            ),
            op(
                "write",
                Done,
                json!({"mzxid": 9, "fired": [{"id": "0.1", "zxid": 9}]}),
            ),
            op(
                "write",
                Done,
                json!({"mzxid": 8, "fired": [{"id": "0.2", "zxid": 8}, {"id": "0.1", "zxid": 10}, {"id": "9.9", "zxid": 11}]}),
            ),
        ]);
        for kind in ["out of zxid order", "resolved twice", "never set"] {
            assert!(v.explanation.contains(kind), "{kind}: {}", v.explanation);
        }
        let stale = run(vec![
            set("0.1", 5),
            op(
                "read",
                Done,
                json!({"mzxid": 5, "fired": [{"id": "0.1", "zxid": 5}]}),
            ),
        ]);
        assert!(stale.explanation.contains("fired for an old change"));
    }

    #[test]
    fn a_watch_that_fired_before_its_own_read_was_recorded_is_valid() {
        let v = run(vec![
            op(
                "read",
                Done,
                json!({"mzxid": 5, "set": {"id": "0.1", "key": "k0", "mzxid": 5},
                       "fired": [{"id": "0.1", "zxid": 7}]}),
            ),
            op("read", Done, json!({"mzxid": 9})),
        ]);
        assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
    }

    /// ZooKeeper's notifications carry no zxid: the order rules cannot apply, the others
    /// still do, and the verdict says how many went unordered.
    #[test]
    fn notifications_without_a_zxid_are_held_to_the_other_rules() {
        let fired = json!({"mzxid": 9, "fired": [{"id": "0.1", "zxid": null}]});
        let v = run(vec![set("0.1", 5), op("read", Done, fired.clone())]);
        assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
        assert_eq!(v.details["fired_without_zxid"], 1);
        assert!(v.summary.contains("1 without a zxid"), "{}", v.summary);
        let v = run(vec![
            set("0.1", 5),
            op("read", Done, json!({"mzxid": 9})),
            op("read", Done, fired.clone()),
            op("read", Done, fired),
        ]);
        for kind in ["newer value read before", "resolved twice"] {
            assert!(v.explanation.contains(kind), "{kind}: {}", v.explanation);
        }
    }

    #[test]
    fn empty_is_valid_and_bad_values_are_errors() {
        assert_eq!(run(vec![]).valid, Validity::Valid);
        let v = run(vec![op("read", Done, json!({"fired": [{"id": "0.1"}]}))]);
        assert_eq!(v.valid, Validity::Unknown);
        let v = run(vec![op(
            "read",
            Done,
            json!({"fired": [{"id": "0.1", "zxid": "9"}]}),
        )]);
        assert_eq!(v.valid, Validity::Unknown);
    }
}
