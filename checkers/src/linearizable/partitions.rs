//! The driver over partitions: checks each key's operations with its own search, in parallel
//! rounds of growing step budgets, and turns the results into one outcome with an
//! explanation.

use super::compile::{Compiled, Operation, Partition};
use super::search::{PartResult, Search, Shared, Stuck, Verdict};
use super::{Failure, OpSummary, Options, Outcome, Prefix, Validity};
use crate::datum::Datum;
use crate::history::History;
use crate::model::{self, ModelKind};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Instant;

/// Steps each unfinished partition gets in the first round; later rounds get four times more.
const FIRST_ROUND_STEPS: u64 = 1 << 14;
/// How many concurrent operations a failure lists.
const MAX_CONCURRENT: usize = 200;

pub(super) fn run(
    history: &History,
    compiled: &Compiled,
    kind: ModelKind,
    options: &Options,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
) -> Outcome {
    let shared = Shared {
        deadline,
        memory_limit_bytes: options.memory_limit_bytes,
        memory_used_bytes: AtomicUsize::new(0),
        cancel,
        max_prefixes: options.max_prefixes.max(1),
    };
    let parts = &compiled.partitions;
    let mut searches: Vec<Search> = parts
        .iter()
        .map(|p| Search::new(p, &compiled.initial, kind, &shared))
        .collect();
    let results = if searches.len() == 1 {
        vec![searches[0].run(u64::MAX)]
    } else {
        run_rounds(&mut searches)
    };
    summarize(history, compiled, kind, options, results)
}

/// Runs many partitions in rounds of growing step budgets, so that an easy violation in any
/// partition is found without first finishing every hard partition, while the partition that
/// is reported depends only on step counts, never on thread timing.
fn run_rounds(searches: &mut [Search]) -> Vec<PartResult> {
    let mut results: Vec<Option<PartResult>> = (0..searches.len()).map(|_| None).collect();
    let mut budget = FIRST_ROUND_STEPS;
    loop {
        let round: Vec<(usize, PartResult)> = searches
            .par_iter_mut()
            .enumerate()
            .filter(|(i, _)| results[*i].is_none())
            .filter_map(|(i, s)| {
                let r = s.run(budget);
                (!matches!(r.verdict, Verdict::Paused)).then_some((i, r))
            })
            .collect();
        let invalid_found = round
            .iter()
            .any(|(_, r)| matches!(r.verdict, Verdict::Invalid(_)));
        for (i, r) in round {
            results[i] = Some(r);
        }
        let all_done = results.iter().all(Option::is_some);
        if invalid_found || all_done {
            break;
        }
        budget = budget.saturating_mul(4);
    }
    results
        .into_iter()
        .zip(searches.iter())
        .map(|(r, s)| {
            r.unwrap_or(PartResult {
                verdict: Verdict::Unknown("cancelled"),
                configurations: s.configurations(),
            })
        })
        .collect()
}

fn summarize(
    history: &History,
    compiled: &Compiled,
    kind: ModelKind,
    options: &Options,
    results: Vec<PartResult>,
) -> Outcome {
    let configurations = results.iter().map(|r| r.configurations).sum();
    let mut outcome = Outcome {
        valid: Validity::Valid,
        cause: None,
        model: kind.name().to_string(),
        semantics: options.semantics.clone(),
        ops: compiled.op_count(),
        crashed_ops: compiled.crashed_count(),
        partitions: compiled.partitions.len(),
        configurations,
        failure: None,
    };
    // The lowest-numbered invalid partition decides, so the explanation is deterministic.
    for (i, r) in results.into_iter().enumerate() {
        match r.verdict {
            Verdict::Invalid(stuck) => {
                outcome.valid = Validity::Invalid;
                outcome.cause = None;
                let part = &compiled.partitions[i];
                outcome.failure = Some(explain(history, part, kind, &compiled.initial, stuck));
                return outcome;
            }
            Verdict::Unknown(cause) if outcome.valid == Validity::Valid => {
                outcome.valid = Validity::Unknown;
                outcome.cause = Some(cause.to_string());
            }
            _ => {}
        }
    }
    outcome
}

fn explain(
    history: &History,
    part: &Partition,
    kind: ModelKind,
    initial: &Datum,
    stuck: Stuck,
) -> Failure {
    let first = &stuck.prefixes[0];
    let failing = &part.ops[first.blocked];
    let concurrent = part
        .ops
        .iter()
        .enumerate()
        .filter(|&(j, o)| j != first.blocked && overlaps(o, failing))
        .take(MAX_CONCURRENT)
        .map(|(_, o)| OpSummary::from_history(history, o.invoke))
        .collect();
    let prefixes = stuck
        .prefixes
        .iter()
        .map(|p| {
            let state = &stuck.states[p.state as usize];
            let blocked = &part.ops[p.blocked].input;
            let reason = match model::step(state, blocked, initial) {
                None => model::why_not(kind, state, blocked),
                Some(_) => format!(
                    "{} could go next, but every order that follows is already known to fail",
                    model::describe(blocked)
                ),
            };
            Prefix {
                order: p.order_tail.iter().map(|&j| part.ops[j].invoke).collect(),
                elided: p.elided,
                state: state.to_string(),
                reason,
            }
        })
        .collect();
    Failure {
        key: part.key.as_ref().map(Datum::to_json),
        op: OpSummary::from_history(history, failing.invoke),
        concurrent,
        prefixes,
    }
}

fn overlaps(a: &Operation, b: &Operation) -> bool {
    let a_end = a.ret.unwrap_or(usize::MAX);
    let b_end = b.ret.unwrap_or(usize::MAX);
    a.invoke < b_end && b.invoke < a_end
}
