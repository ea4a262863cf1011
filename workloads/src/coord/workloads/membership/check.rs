//! The membership check, on the history alone.
//!
//! Rules, for every synced listing that began after the last nemesis op ended (healing):
//! - **No orphans.** A session dies when a `ghost` or `close` op on it completes (whatever
//!   its outcome: the ghost falls silent then, and an unconfirmed close leaves the session to
//!   expire), or when an op finds it ended (`ended: true`). Its node must be gone from every
//!   listing that starts at least `timeout + slack` after `max(death, healing)`.
//! - **Live members stay.** In the final listing, every session a later probe found alive
//!   whose last join or leave before the listing was a join that completed `ok` must be
//!   listed, unless a leave of that session ended `info`: its delete may still have been
//!   in flight and applied after the join (an `info` op takes effect at any time after its
//!   invocation, or never).
//!
//! No listing after healing makes the verdict unknown: nothing was judged.

use super::{EXPIRY_SLACK_MS, SESSION_TIMEOUT_MS};
use crate::verdict::Verdict;
use checkers::history::{History, Op, OpType};
use checkers::linearizable::Validity;
use coord::api::SessionId;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Anomalies listed in the verdict at most; the counts are exact.
const MAX_REPORTED: usize = 20;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// What expiry may take beyond the session timeout.
    pub slack_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            slack_ms: EXPIRY_SLACK_MS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum Malformed {
    #[error("op {index} has no time")]
    NoTime { index: u64 },
    #[error("op {index} ({f}): {why}")]
    Value { index: u64, f: String, why: String },
}

/// How and when a session died.
#[derive(Clone, Debug)]
struct Death {
    at_ns: u64,
    how: String,
    op: u64,
    timeout_ms: u64,
}

/// A listing, with the probes taken after it (final listings only).
struct Listing {
    op: u64,
    invoke_index: usize,
    at_ns: u64,
    members: Vec<String>,
    alive: Vec<SessionId>,
}

/// A join or leave that may have taken effect.
struct Change {
    /// Index of its completion.
    done: usize,
    /// A join that completed `ok`.
    joined: bool,
    /// A leave whose outcome is unknown.
    unknown_leave: bool,
}

/// What the history says about sessions.
#[derive(Default)]
struct Facts {
    heal_ns: u64,
    deaths: BTreeMap<SessionId, Death>,
    /// Per session, its joins and leaves that may have taken effect, in completion order.
    changes: BTreeMap<SessionId, Vec<Change>>,
    listings: Vec<Listing>,
}

pub fn check(history: &History, limits: Limits) -> Verdict {
    match facts(history) {
        Ok(facts) => judge(&facts, limits),
        Err(e) => Verdict {
            valid: Validity::Unknown,
            checker: "membership",
            summary: "membership: malformed history".into(),
            explanation: e.to_string(),
            details: json!({ "error": e.to_string() }),
        },
    }
}

fn time(op: &Op) -> Result<u64, Malformed> {
    op.time.ok_or(Malformed::NoTime { index: op.index })
}

fn bad(op: &Op, why: &str) -> Malformed {
    Malformed::Value {
        index: op.index,
        f: op.f.clone(),
        why: why.to_string(),
    }
}

fn facts(history: &History) -> Result<Facts, Malformed> {
    let mut facts = Facts::default();
    for (i, op) in history.ops.iter().enumerate() {
        if op.op_type == OpType::Invoke {
            continue;
        }
        if !op.process.is_client() {
            facts.heal_ns = facts.heal_ns.max(time(op)?);
            continue;
        }
        let Some(inv) = history.partner[i] else {
            continue;
        };
        record(&mut facts, op, inv, &history.ops[inv])?;
    }
    Ok(facts)
}

/// Adds what one completed client op says.
fn record(facts: &mut Facts, op: &Op, inv: usize, invoke: &Op) -> Result<(), Malformed> {
    let session = op.value.get("session").and_then(Value::as_u64);
    let timeout_ms = op.value["timeout_ms"]
        .as_u64()
        .unwrap_or(SESSION_TIMEOUT_MS);
    let dies = matches!(op.f.as_str(), "ghost" | "close") || op.value["ended"] == json!(true);
    if let (true, Some(s)) = (dies, session) {
        let death = Death {
            at_ns: time(op)?,
            how: if op.value["ended"] == json!(true) {
                format!("{} found it ended", op.f)
            } else {
                format!("{} {}", op.f, op.op_type.as_str())
            },
            op: op.index,
            timeout_ms,
        };
        let d = facts.deaths.entry(s).or_insert(death.clone());
        if death.at_ns < d.at_ns {
            *d = death;
        }
    }
    let may_change = matches!(op.f.as_str(), "join" | "leave") && op.op_type != OpType::Fail;
    if let (true, Some(s)) = (may_change, session) {
        let change = Change {
            done: op.index as usize,
            joined: op.f == "join" && op.op_type == OpType::Ok,
            unknown_leave: op.f == "leave" && op.op_type == OpType::Info,
        };
        facts.changes.entry(s).or_default().push(change);
    }
    if matches!(op.f.as_str(), "members" | "final-members") && op.op_type == OpType::Ok {
        facts.listings.push(listing(op, inv, invoke)?);
    }
    Ok(())
}

fn listing(op: &Op, inv: usize, invoke: &Op) -> Result<Listing, Malformed> {
    let members = op.value["members"]
        .as_array()
        .ok_or_else(|| bad(op, "no members list"))?
        .iter()
        .map(|m| m.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad(op, "a member is not a string"))?;
    let mut alive = Vec::new();
    for p in op.value["probes"].as_array().into_iter().flatten() {
        let s = p["session"]
            .as_u64()
            .ok_or_else(|| bad(op, "a probe without a session"))?;
        if p["alive"] == json!(true) {
            alive.push(s);
        }
    }
    Ok(Listing {
        op: op.index,
        invoke_index: inv,
        at_ns: time(invoke)?,
        members,
        alive,
    })
}

/// The session a member name belongs to (`m-<hex>` or `g-<hex>`).
fn owner(member: &str) -> Option<SessionId> {
    let hex = member
        .strip_prefix("m-")
        .or_else(|| member.strip_prefix("g-"))?;
    SessionId::from_str_radix(hex, 16).ok()
}

fn judge(facts: &Facts, limits: Limits) -> Verdict {
    let judged: Vec<&Listing> = facts
        .listings
        .iter()
        .filter(|l| l.at_ns > facts.heal_ns)
        .collect();
    let mut orphans = Vec::new();
    let mut lost = Vec::new();
    for l in &judged {
        orphans.extend(orphans_in(facts, l, limits));
        lost.extend(lost_from(facts, l));
    }
    let details = json!({
        "deaths": facts.deaths.len(),
        "listings_after_healing": judged.len(),
        "healed_at_ms": facts.heal_ns / 1_000_000,
        "orphans": orphans.len(),
        "lost": lost.len(),
        "orphan_examples": orphans.iter().take(MAX_REPORTED).collect::<Vec<_>>(),
        "lost_examples": lost.iter().take(MAX_REPORTED).collect::<Vec<_>>(),
    });
    let summary = format!(
        "membership: {} dead sessions, {} listings after healing, {} orphans, {} live members lost",
        facts.deaths.len(),
        judged.len(),
        orphans.len(),
        lost.len()
    );
    let (valid, explanation) = if !orphans.is_empty() || !lost.is_empty() {
        (Validity::Invalid, explain(&orphans, &lost, limits))
    } else if judged.is_empty() {
        let why = "no listing of the members completed after healing: nothing was judged";
        (Validity::Unknown, why.to_string())
    } else {
        (Validity::Valid, String::new())
    };
    Verdict {
        valid,
        checker: "membership",
        summary,
        explanation,
        details,
    }
}

/// Members of sessions that were due to be gone when the listing began.
fn orphans_in(facts: &Facts, l: &Listing, limits: Limits) -> Vec<Value> {
    let mut found = Vec::new();
    for m in &l.members {
        let Some(s) = owner(m) else { continue };
        let Some(d) = facts.deaths.get(&s) else {
            continue;
        };
        let due_ns = d.at_ns.max(facts.heal_ns) + (d.timeout_ms + limits.slack_ms) * 1_000_000;
        if due_ns <= l.at_ns {
            found.push(json!({
                "member": m, "session": format!("{s:#x}"), "died": d.how, "death_op": d.op,
                "died_at_ms": d.at_ns / 1_000_000, "due_at_ms": due_ns / 1_000_000,
                "listing_op": l.op, "listed_at_ms": l.at_ns / 1_000_000,
            }));
        }
    }
    found
}

/// Sessions probed alive after the listing whose join stood, missing from it.
fn lost_from(facts: &Facts, l: &Listing) -> Vec<Value> {
    let mut found = Vec::new();
    for s in &l.alive {
        let before: Vec<&Change> = facts
            .changes
            .get(s)
            .into_iter()
            .flatten()
            .filter(|c| c.done < l.invoke_index)
            .collect();
        let Some(last) = before.iter().max_by_key(|c| c.done) else {
            continue;
        };
        if !last.joined || before.iter().any(|c| c.unknown_leave) {
            continue;
        }
        let done = last.done;
        let member = super::member_name(*s);
        if !l.members.contains(&member) {
            found.push(json!({
                "member": member, "session": format!("{s:#x}"), "join_op": done,
                "listing_op": l.op,
            }));
        }
    }
    found
}

fn explain(orphans: &[Value], lost: &[Value], limits: Limits) -> String {
    let mut lines = Vec::new();
    for o in orphans.iter().take(MAX_REPORTED) {
        lines.push(format!(
            "orphan {}: session {} died ({}, op {}) at {} ms; its node should have gone by {} ms \
             (timeout + {} ms slack after healing), yet listing op {} at {} ms shows it",
            o["member"].as_str().unwrap_or("?"),
            o["session"].as_str().unwrap_or("?"),
            o["died"].as_str().unwrap_or("?"),
            o["death_op"],
            o["died_at_ms"],
            o["due_at_ms"],
            limits.slack_ms,
            o["listing_op"],
            o["listed_at_ms"],
        ));
    }
    for l in lost.iter().take(MAX_REPORTED) {
        lines.push(format!(
            "lost {}: session {} joined (op {}) and was alive after listing op {}, which \
             does not show it",
            l["member"].as_str().unwrap_or("?"),
            l["session"].as_str().unwrap_or("?"),
            l["join_op"],
            l["listing_op"],
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::super::session::test_history::history;
    use super::*;
    use checkers::history::OpType::{Info, Invoke, Ok as Done};
    use serde_json::Value::Null;

    const GHOST: u64 = 0xa1;
    const LIVE: u64 = 0xb2;

    fn run(final_members: Vec<&str>, probes: Value, listed_at_ms: u64) -> Verdict {
        let h = history(vec![
            (Invoke, Some(0), "join", Null, 0),
            (
                Done,
                Some(0),
                "join",
                json!({"session": LIVE, "member": "m-00000000000000b2", "timeout_ms": 2000}),
                10,
            ),
            (Invoke, Some(1), "ghost", Null, 20),
            (
                Done,
                Some(1),
                "ghost",
                json!({"session": GHOST, "member": "g-00000000000000a1", "timeout_ms": 2000}),
                30,
            ),
            (Invoke, None, "stop-all", Null, 1_000),
            (Done, None, "stop-all", Null, 1_100),
            (Invoke, Some(0), "final-members", Null, listed_at_ms),
            (
                Done,
                Some(0),
                "final-members",
                json!({"members": final_members, "probes": probes}),
                listed_at_ms + 5,
            ),
        ]);
        check(&h, Limits::default())
    }

    #[test]
    fn dead_sessions_gone_and_live_ones_listed_is_valid() {
        let v = run(
            vec!["m-00000000000000b2"],
            json!([{"session": LIVE, "alive": true}]),
            7_000,
        );
        assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
        assert_eq!(v.details["deaths"], 1);
    }

    #[test]
    fn a_dead_sessions_node_listed_after_its_deadline_is_an_orphan() {
        let members = vec!["m-00000000000000b2", "g-00000000000000a1"];
        let v = run(members.clone(), json!([]), 7_000);
        assert_eq!(v.valid, Validity::Invalid);
        assert!(
            v.explanation.contains("orphan g-00000000000000a1"),
            "{}",
            v.explanation
        );
        // Healed at 1.1 s: due at 1.1 + 2 + 3 = 6.1 s. Listed before that, it is not judged.
        let early = run(members, json!([]), 6_000);
        assert_eq!(early.valid, Validity::Valid, "{}", early.explanation);
    }

    #[test]
    fn a_live_joined_session_missing_from_the_listing_is_lost() {
        let v = run(vec![], json!([{"session": LIVE, "alive": true}]), 7_000);
        assert_eq!(v.valid, Validity::Invalid);
        assert!(
            v.explanation.contains("lost m-00000000000000b2"),
            "{}",
            v.explanation
        );
        // Not probed alive: it may have expired, and its absence proves nothing.
        let dead = run(vec![], json!([{"session": LIVE, "alive": false}]), 7_000);
        assert_eq!(dead.valid, Validity::Valid);
    }

    #[test]
    fn an_info_ghost_dies_too_and_an_info_leave_excuses_absence() {
        let h = history(vec![
            (Invoke, Some(0), "join", Null, 0),
            (
                Done,
                Some(0),
                "join",
                json!({"session": LIVE, "member": "m-00000000000000b2"}),
                10,
            ),
            (Invoke, Some(0), "leave", Null, 20),
            (Info, Some(0), "leave", json!({"session": LIVE}), 30),
            (Invoke, Some(1), "ghost", Null, 40),
            (
                Info,
                Some(1),
                "ghost",
                json!({"session": GHOST, "timeout_ms": 2000}),
                50,
            ),
            (Invoke, Some(2), "final-members", Null, 9_000),
            (
                Done,
                Some(2),
                "final-members",
                json!({"members": ["g-00000000000000a1"], "probes": [{"session": LIVE, "alive": true}]}),
                9_010,
            ),
        ]);
        let v = check(&h, Limits::default());
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.details["orphans"], 1);
        assert_eq!(v.details["lost"], 0, "{}", v.explanation);
    }

    /// A CI run: a leave lost with its connection (`info`), then the same session joined
    /// again `ok` (the node was still there), and the delete, still in flight, applied
    /// after. Absence is excused then; without the `info` leave it is a lost member.
    #[test]
    fn an_info_leave_before_a_rejoin_may_still_delete_the_member() {
        let rejoin = |leave: OpType| {
            let member = json!({"session": LIVE, "member": "m-00000000000000b2"});
            history(vec![
                (Invoke, Some(0), "leave", Null, 0),
                (leave, Some(0), "leave", member.clone(), 10),
                (Invoke, Some(1), "join", Null, 20),
                (Done, Some(1), "join", member, 30),
                (Invoke, Some(2), "final-members", Null, 9_000),
                (
                    Done,
                    Some(2),
                    "final-members",
                    json!({"members": [], "probes": [{"session": LIVE, "alive": true}]}),
                    9_010,
                ),
            ])
        };
        let v = check(&rejoin(Info), Limits::default());
        assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
        let v = check(&rejoin(Done), Limits::default());
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.details["lost"], 1, "{}", v.explanation);
    }

    #[test]
    fn no_listing_after_healing_is_unknown_and_bad_values_are_errors() {
        assert_eq!(
            check(&history(vec![]), Limits::default()).valid,
            Validity::Unknown
        );
        let h = history(vec![
            (Invoke, Some(0), "members", Null, 0),
            (Done, Some(0), "members", json!({"members": [3]}), 5),
        ]);
        let v = check(&h, Limits::default());
        assert_eq!(v.valid, Validity::Unknown);
        assert!(v.explanation.contains("not a string"), "{}", v.explanation);
    }
}
