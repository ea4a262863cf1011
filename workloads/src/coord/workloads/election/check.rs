//! The election workload's checker. Pure: it sees only the history.
//!
//! A *claim* is an `ok` `lead` (a candidate saw itself lead) or an `ok` `observe` that
//! named a leader. Each names an epoch (the leader's token, its candidate node's czxid)
//! and the leader's session. `info` and `fail` operations claim nothing; an `info`
//! volunteer may have created a candidate whose token nobody learned.
//!
//! The rules, each sound under the recipe's contract (the lowest candidate leads;
//! czxids grow in creation order; `observe` syncs first):
//! 1. `epoch-conflict`: everything naming epoch `T` (claims, and the volunteer that got
//!    `T`) names the same session: at most one leader per epoch.
//! 2. `non-member-leader`: a process that leads is a candidate: its last `ok` volunteer
//!    got the same token and it has not resigned since.
//! 3. `resigned-leader` / `leader-before-candidacy`: an observed leader was a member when
//!    observed: the observation did not begin after its resignation completed, nor end
//!    before its volunteer began. `unknown-leader`: if every volunteer's outcome is known,
//!    an observed leader is one of them.
//! 4. `epoch-regress`: a claim that begins after another completed names an epoch at
//!    least as new (a lower candidate never reappears once gone).

use crate::coord::workloads::lock::check::{malformed, report, validity, Malformed, Violation};
use crate::verdict::Verdict;
use checkers::history::{History, Op, OpType, Value};
use checkers::linearizable::Validity;
use serde_json::json;
use std::collections::HashMap;

/// A leader named by an `ok` operation, or a candidacy granted.
#[derive(Clone, Debug)]
struct Named {
    f: &'static str,
    process: u64,
    token: u64,
    session: u64,
    invoke: u64,
    complete: u64,
}

#[derive(Default, Debug)]
struct Parsed {
    volunteers: Vec<Named>,
    /// `ok` leads and observations naming a leader, in completion order.
    claims: Vec<Named>,
    /// `ok` resignations: (process, token, completion).
    resigns: Vec<(u64, u64, u64)>,
    /// Volunteers whose outcome is unknown (`info`, or never completed).
    unknown_volunteers: u64,
    counts: HashMap<String, u64>,
}

pub fn check(history: &History) -> Verdict {
    match parse(history) {
        Ok(p) => judge(&p),
        Err(e) => Verdict {
            valid: Validity::Unknown,
            checker: "election",
            summary: "election: the history is not an election workload's".to_string(),
            explanation: e.to_string(),
            details: json!({ "error": e.to_string() }),
        },
    }
}

fn num(op: &Op, v: &Value, name: &str) -> Result<u64, Malformed> {
    v.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| malformed(op, format!("no numeric {name:?} in {v}")))
}

fn named(op: &Op, v: &Value, f: &'static str, invoke: u64) -> Result<Named, Malformed> {
    Ok(Named {
        f,
        process: named_process(op),
        token: num(op, v, "token")?,
        session: num(op, v, "session")?,
        invoke,
        complete: op.index,
    })
}

fn parse(history: &History) -> Result<Parsed, Malformed> {
    let mut p = Parsed::default();
    for (i, op) in history.ops.iter().enumerate() {
        if !op.process.is_client() {
            continue;
        }
        if op.op_type == OpType::Invoke {
            let unanswered = history.partner[i].is_none();
            if op.f == "volunteer" && unanswered {
                p.unknown_volunteers += 1;
            }
            continue;
        }
        *p.counts
            .entry(format!("{} {}", op.f, op.op_type.as_str()))
            .or_default() += 1;
        let invoke = history.partner[i].map_or(op.index, |j| history.ops[j].index);
        match (op.f.as_str(), op.op_type) {
            ("volunteer", OpType::Ok) => {
                let n = named(op, &op.value, "volunteer", invoke)?;
                p.volunteers.push(n);
            }
            ("volunteer", OpType::Info) => p.unknown_volunteers += 1,
            ("lead", OpType::Ok) => p.claims.push(named(op, &op.value, "lead", invoke)?),
            ("observe", OpType::Ok) => match op.value.get("leader") {
                Some(Value::Null) => {}
                Some(l) => p.claims.push(named(op, l, "observe", invoke)?),
                None => return Err(malformed(op, "no \"leader\"")),
            },
            ("resign", OpType::Ok) => {
                let process = named_process(op);
                p.resigns
                    .push((process, num(op, &op.value, "token")?, op.index));
            }
            ("volunteer" | "lead" | "observe" | "resign", _) => {}
            (other, _) => return Err(malformed(op, format!("unknown operation {other:?}"))),
        }
    }
    Ok(p)
}

fn named_process(op: &Op) -> u64 {
    match op.process {
        checkers::history::Process::Client(p) => p,
        _ => u64::MAX,
    }
}

fn describe(n: &Named) -> String {
    format!(
        "{} {} (process {}, epoch {}, session {:#x})",
        n.f, n.complete, n.process, n.token, n.session
    )
}

fn violation(kind: &'static str, ops: Vec<u64>, tokens: Vec<u64>, message: String) -> Violation {
    Violation {
        kind,
        ops,
        tokens,
        message,
    }
}

fn judge(p: &Parsed) -> Verdict {
    let mut v = epoch_conflicts(p);
    v.extend(non_member_leaders(p));
    v.extend(observed_non_members(p));
    v.extend(epoch_regressions(&p.claims));
    verdict(p, v)
}

fn epoch_conflicts(p: &Parsed) -> Vec<Violation> {
    let mut first: HashMap<u64, &Named> = HashMap::new();
    let mut out = Vec::new();
    for n in p.volunteers.iter().chain(&p.claims) {
        match first.get(&n.token) {
            Some(f) if f.session != n.session => out.push(violation(
                "epoch-conflict",
                vec![f.complete, n.complete],
                vec![n.token],
                format!(
                    "two leaders in epoch {}: {} and {}",
                    n.token,
                    describe(f),
                    describe(n)
                ),
            )),
            Some(_) => {}
            None => {
                first.insert(n.token, n);
            }
        }
    }
    out
}

/// Each `ok` lead against its process's last `ok` volunteer and resignations.
fn non_member_leaders(p: &Parsed) -> Vec<Violation> {
    let mut out = Vec::new();
    for lead in p.claims.iter().filter(|c| c.f == "lead") {
        let candidacy = p
            .volunteers
            .iter()
            .filter(|v| v.process == lead.process && v.complete < lead.invoke)
            .max_by_key(|v| v.complete);
        let resigned = candidacy.is_some_and(|c| {
            p.resigns
                .iter()
                .any(|&(pr, _, at)| pr == lead.process && at > c.complete && at < lead.invoke)
        });
        let member = candidacy.is_some_and(|c| c.token == lead.token) && !resigned;
        if !member {
            out.push(violation(
                "non-member-leader",
                vec![lead.complete],
                vec![lead.token],
                format!(
                    "{} led without being a candidate with that token (its candidacy: {})",
                    describe(lead),
                    candidacy.map_or("none".to_string(), describe)
                ),
            ));
        }
    }
    out
}

fn observed_non_members(p: &Parsed) -> Vec<Violation> {
    let by_token: HashMap<u64, &Named> = p.volunteers.iter().map(|v| (v.token, v)).collect();
    let resigned: HashMap<u64, u64> = p.resigns.iter().map(|&(_, t, at)| (t, at)).collect();
    let mut out = Vec::new();
    for o in p.claims.iter().filter(|c| c.f == "observe") {
        if let Some(&at) = resigned.get(&o.token).filter(|&&at| at < o.invoke) {
            out.push(violation(
                "resigned-leader",
                vec![at, o.complete],
                vec![o.token],
                format!(
                    "{} saw a leader whose resignation {at} had completed",
                    describe(o)
                ),
            ));
        }
        match by_token.get(&o.token) {
            Some(v) if v.invoke > o.complete => out.push(violation(
                "leader-before-candidacy",
                vec![o.complete, v.complete],
                vec![o.token],
                format!("{} saw a leader before {} began", describe(o), describe(v)),
            )),
            None if p.unknown_volunteers == 0 => out.push(violation(
                "unknown-leader",
                vec![o.complete],
                vec![o.token],
                format!("{} saw a leader nobody volunteered as", describe(o)),
            )),
            _ => {}
        }
    }
    out
}

/// Sweeps claims by invocation, keeping the newest epoch among those already complete.
fn epoch_regressions(claims: &[Named]) -> Vec<Violation> {
    let mut by_invoke: Vec<&Named> = claims.iter().collect();
    by_invoke.sort_by_key(|c| c.invoke);
    let mut by_complete: Vec<&Named> = claims.iter().collect();
    by_complete.sort_by_key(|c| c.complete);
    let mut done = by_complete.iter().peekable();
    let mut newest: Option<&Named> = None;
    let mut out = Vec::new();
    for c in by_invoke {
        while let Some(d) = done.next_if(|d| d.complete < c.invoke) {
            if newest.is_none_or(|n| d.token > n.token) {
                newest = Some(d);
            }
        }
        if let Some(n) = newest.filter(|n| c.token < n.token) {
            out.push(violation(
                "epoch-regress",
                vec![n.complete, c.complete],
                vec![n.token, c.token],
                format!("{} began after {} completed", describe(c), describe(n)),
            ));
        }
    }
    out
}

fn verdict(p: &Parsed, violations: Vec<Violation>) -> Verdict {
    let epochs: std::collections::HashSet<u64> = p.claims.iter().map(|c| c.token).collect();
    let summary = format!(
        "election: {} candidacies, {} leadership claims over {} epochs, {} violations",
        p.volunteers.len(),
        p.claims.len(),
        epochs.len(),
        violations.len()
    );
    let mut explanation = String::new();
    let reported = report(&violations, &mut explanation);
    Verdict {
        valid: validity(&violations),
        checker: "election",
        summary,
        explanation: explanation.trim_end().to_string(),
        details: json!({
            "candidacies": p.volunteers.len(),
            "claims": p.claims.len(),
            "epochs": epochs.len(),
            "unknown_volunteers": p.unknown_volunteers,
            "outcomes": p.counts,
            "violations": violations.len(),
            "reported": reported,
        }),
    }
}

#[cfg(test)]
mod tests;
