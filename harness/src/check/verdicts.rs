//! The checkers that answer with a [`Verdict`]: transactional (list-append, rw-register,
//! one-copy) and Jepsen's history checkers (bank, set, set-full, counter, unique-ids,
//! total-queue, long-fork). Turns command-line options into each checker's options and writes
//! cycle pictures for `--report`.

use super::{CheckArgs, CheckerName};
use anyhow::Context;
use checkers::history::History;
use checkers::txn::{self, render::CycleView, Model, Workload};
use checkers::verdict::{BadHistory, Validity, Verdict};
use checkers::{
    atomic_commit, bank, consistent_cut, counter, long_fork, one_copy, recovery_line, set,
    set_full, total_queue, unique_ids,
};
use std::path::Path;
use std::time::Duration;

/// Bytes a dependency edge costs while the graph is built (edge list, merge, both CSR rows).
const BYTES_PER_EDGE: usize = 24;

/// A verdict and, for transactional checkers, the cycles behind it.
pub struct Checked {
    pub verdict: Verdict,
    pub cycles: Vec<CycleView>,
}

/// Transactional checks of JSON lines and EDN read each op leanly, never holding the whole
/// history's JSON values (`txn::check_text`); None when that path does not apply (another
/// checker, another format, or text that is not UTF-8, whose error the full reader names).
pub fn run_lean(args: &CheckArgs, name: &str, bytes: &[u8]) -> Option<Result<Checked, BadHistory>> {
    let workload = match args.checker {
        CheckerName::ListAppend => Workload::ListAppend,
        CheckerName::RwRegister => Workload::RwRegister,
        _ => return None,
    };
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = args
        .format
        .unwrap_or_else(|| checkers::history::detect::detect_named(name, text));
    if !txn::reads_leanly(format) {
        return None;
    }
    let options = txn_options(args, workload, Model::StrictSerializable);
    Some(
        txn::check_text(name, text, format, &options).map(|outcome| Checked {
            verdict: outcome.verdict,
            cycles: outcome.cycles,
        }),
    )
}

/// The checkers of a system's own event log (JSON lines of votes, decisions, log records,
/// checkpoints, messages and snapshots) rather than of a client history; None for others.
pub fn run_event_log(
    args: &CheckArgs,
    name: &str,
    bytes: &[u8],
) -> Option<Result<Checked, BadHistory>> {
    let check: fn(&str, &str) -> Result<Verdict, BadHistory> = match args.checker {
        CheckerName::AtomicCommit => atomic_commit::check_text,
        CheckerName::RecoveryLine => recovery_line::check_text,
        CheckerName::ConsistentCut => |file, text| consistent_cut::check_text(file, text, None),
        _ => return None,
    };
    let result = match std::str::from_utf8(bytes) {
        Ok(text) => check(name, text),
        Err(e) => Err(BadHistory {
            file: name.to_string(),
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            problem: "not UTF-8 text".into(),
        }),
    };
    Some(result.map(|verdict| Checked {
        verdict,
        cycles: Vec::new(),
    }))
}

/// Parses `--consistency-models a,b,c`.
pub fn parse_model(s: &str) -> Result<Model, String> {
    Model::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Model::ALL.iter().map(|m| m.name()).collect();
        format!(
            "unknown consistency model {s:?}; expected one of {}",
            names.join(", ")
        )
    })
}

/// Runs the checker `args` names on a parsed history (consumed: transactional checkers free
/// its events as soon as they have extracted the transactions).
pub fn run(args: &CheckArgs, history: History) -> Result<Checked, BadHistory> {
    let plain = |verdict: Verdict| Checked {
        verdict,
        cycles: Vec::new(),
    };
    let h = &history;
    match args.checker {
        CheckerName::ListAppend => transactional(args, history, Workload::ListAppend),
        CheckerName::RwRegister => transactional(args, history, Workload::RwRegister),
        CheckerName::OneCopy => one_copy_check(args, h),
        CheckerName::Bank => bank::check(h, &bank_options(args)).map(plain),
        CheckerName::Set => set::check(h, &set::Options::default()).map(plain),
        CheckerName::SetFull => {
            let options = set_full::Options {
                linearizable: args.linearizable_set,
            };
            set_full::check(h, &options).map(plain)
        }
        CheckerName::Counter => counter::check(h, &counter::Options::default()).map(plain),
        CheckerName::UniqueIds => unique_ids::check(h, &unique_ids::Options::default()).map(plain),
        CheckerName::TotalQueue => {
            total_queue::check(h, &total_queue::Options::default()).map(plain)
        }
        CheckerName::LongFork => {
            let options = long_fork::Options {
                group_size: args.group_size,
                ..long_fork::Options::default()
            };
            long_fork::check(h, &options).map(plain)
        }
        // These read their input on their own paths; a history reaching here is a caller's bug,
        // reported as an error rather than a panic.
        CheckerName::Linearizable
        | CheckerName::AtomicCommit
        | CheckerName::RecoveryLine
        | CheckerName::ConsistentCut => Err(BadHistory {
            file: history.file.clone(),
            line: 0,
            problem: format!(
                "the {} checker does not take a parsed history",
                args.checker.name()
            ),
        }),
    }
}

fn bank_options(args: &CheckArgs) -> bank::Options {
    bank::Options {
        total: args.total,
        negative_balances_allowed: args.negative_balances,
        accounts: None,
    }
}

fn txn_options(args: &CheckArgs, workload: Workload, default_model: Model) -> txn::Options {
    let mut o = txn::Options::new(workload);
    o.models = if args.consistency_models.is_empty() {
        vec![default_model]
    } else {
        args.consistency_models.clone()
    };
    o.versions.linearizable_keys = args.linearizable_keys;
    o.versions.sequential_keys = args.sequential_keys;
    o.versions.commit_order = args.commit_order.clone();
    o.time_limit = Some(Duration::from_secs_f64(args.time_limit));
    o.max_edges = (args.memory_limit.saturating_mul(1 << 20) / BYTES_PER_EDGE).min(txn::MAX_EDGES);
    o
}

fn transactional(args: &CheckArgs, history: History, w: Workload) -> Result<Checked, BadHistory> {
    let outcome = txn::check_owned(history, &txn_options(args, w, Model::StrictSerializable))?;
    Ok(Checked {
        verdict: outcome.verdict,
        cycles: outcome.cycles,
    })
}

/// One-copy serializability: the client history must be serializable (as over one copy), and
/// the replicas' apply logs must agree with it and with each other.
fn one_copy_check(args: &CheckArgs, history: &History) -> Result<Checked, BadHistory> {
    let Some(path) = &args.apply_logs else {
        return Err(BadHistory {
            file: history.file.clone(),
            line: 0,
            problem: "the one-copy checker needs --apply-logs FILE (the replicas' apply logs)"
                .into(),
        });
    };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| BadHistory {
        file: name.clone(),
        line: 0,
        problem: format!("cannot read: {e}"),
    })?;
    let logs = one_copy::parse_apply_logs(&name, &text)?;
    let replicas = one_copy::check(history, &logs)?;
    let workload = txn_workload_of(history);
    let outcome = txn::check(history, &txn_options(args, workload, Model::Serializable))?;
    let mut verdict = outcome.verdict;
    verdict.checker = "one-copy".into();
    merge(&mut verdict, replicas);
    Ok(Checked {
        verdict,
        cycles: outcome.cycles,
    })
}

/// list-append if any micro-op appends, rw-register otherwise.
fn txn_workload_of(history: &History) -> Workload {
    let appends = history.ops.iter().any(|op| {
        op.value.as_array().is_some_and(|mops| {
            mops.iter()
                .any(|m| m.get(0).and_then(|f| f.as_str()) == Some("append"))
        })
    });
    if appends {
        Workload::ListAppend
    } else {
        Workload::RwRegister
    }
}

/// Folds the apply-log verdict into the serializability verdict.
fn merge(into: &mut Verdict, other: Verdict) {
    for (kind, proofs) in other.anomalies {
        let n = other
            .anomaly_counts
            .get(&kind)
            .copied()
            .unwrap_or(proofs.len());
        let kept = proofs.len();
        for p in proofs {
            into.anomaly(&kind, p);
        }
        *into.anomaly_counts.entry(kind).or_insert(0) += n.saturating_sub(kept);
    }
    into.valid = match (into.valid, other.valid) {
        (Validity::Invalid, _) | (_, Validity::Invalid) => Validity::Invalid,
        (Validity::Unknown, _) | (_, Validity::Unknown) => Validity::Unknown,
        _ => Validity::Valid,
    };
    if into.cause.is_none() {
        into.cause = other.cause;
    }
    for (k, v) in other.details {
        into.details.insert(format!("apply-logs.{k}"), v);
    }
}

/// Writes the explanation as text and each cycle as DOT and SVG.
pub fn write_report(dir: &Path, stem: &str, checked: &Checked) -> anyhow::Result<()> {
    let write = |name: String, body: String| {
        let out = dir.join(name);
        std::fs::write(&out, body).with_context(|| format!("cannot write {}", out.display()))
    };
    write(format!("{stem}.txt"), checked.verdict.explain())?;
    for (i, c) in checked.cycles.iter().enumerate() {
        let class = c.title.split(':').next().unwrap_or("cycle");
        write(format!("{stem}.{i}.{class}.dot"), txn::render::dot(c))?;
        write(format!("{stem}.{i}.{class}.svg"), txn::render::svg(c))?;
    }
    Ok(())
}

/// "valid", "INVALID" or "unknown".
pub fn word(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    }
}
