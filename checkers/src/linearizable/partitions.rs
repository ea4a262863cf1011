//! The driver over partitions: checks each key's operations with its own search, in parallel
//! rounds of growing step budgets, and turns the results into one outcome with an
//! explanation.
//!
//! A history of one partition would leave every core but one idle, so there two searches
//! race, identical but for the order in which they try candidates (`Search::serve_enabling`).
//! A depth-first search's time is heavy-tailed in its order: one early placement that looked
//! right can hide a dead subtree of millions of configurations that another order never
//! enters. On 50,000-op cas-register histories each order beats the other on some seeds, by
//! 5x or more. The race is decided by search steps, not by which thread ends first, so the
//! verdict, its explanation and the counts are the same on every run.

use super::compile::{Compiled, Operation, Partition};
use super::search::{PartResult, Search, Shared, Stuck, Verdict};
use super::{Failure, OpSummary, Options, Outcome, Prefix, Validity};
use crate::datum::Datum;
use crate::history::History;
use crate::model::{self, ModelKind};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
        finish_line: AtomicU64::new(u64::MAX),
    };
    let parts = &compiled.partitions;
    let mut searches: Vec<Search> = parts
        .iter()
        .map(|p| Search::new(p, &compiled.initial, kind, &shared))
        .collect();
    let results = if searches.len() == 1 {
        if rayon::current_num_threads() > 1 && searches[0].orders_differ() {
            let mut rival = Search::new(&parts[0], &compiled.initial, kind, &shared);
            rival.serve_enabling = true;
            vec![race(&mut searches[0], &mut rival, &shared.finish_line)]
        } else {
            vec![searches[0].run(u64::MAX)]
        }
    } else {
        run_rounds(&mut searches)
    };
    summarize(history, compiled, kind, options, results)
}

/// Runs two searches of one partition side by side until one reaches a verdict. The one
/// that took fewer steps wins (the primary on a tie): a search that has taken more steps
/// than a finished one stops at its next poll, and one that finished first in time but
/// after more steps loses, so thread timing never decides.
fn race(primary: &mut Search, rival: &mut Search, line: &AtomicU64) -> PartResult {
    primary.racing = true;
    rival.racing = true;
    let finish = |s: &mut Search| {
        let r = s.run(u64::MAX);
        if decided(&r) {
            line.fetch_min(r.steps, Ordering::Relaxed);
        }
        r
    };
    let (a, b) = rayon::join(|| finish(primary), || finish(rival));
    match (decided(&a), decided(&b)) {
        (true, true) if b.steps < a.steps => b,
        (false, true) => b,
        _ => a,
    }
}

fn decided(r: &PartResult) -> bool {
    matches!(r.verdict, Verdict::Valid | Verdict::Invalid(_))
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
                steps: 0,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Format;
    use crate::linearizable::{compile, Semantics};
    use crate::synth::{register_history, Mode, RegisterParams};

    fn valid(r: &PartResult) -> bool {
        match r.verdict {
            Verdict::Valid => true,
            Verdict::Invalid(_) => false,
            _ => panic!("no verdict"),
        }
    }

    /// Each order alone, then the race: the race's verdict and counts are those of the
    /// order that took fewer steps, whichever thread ended first.
    #[test]
    fn a_race_is_won_by_the_order_with_fewer_steps_and_keeps_its_verdict() {
        let mut rival_won = 0;
        for seed in 1..=8 {
            let mut p = RegisterParams {
                crash_rate: 0.02,
                ..RegisterParams::new(3000, 30, seed)
            };
            if seed % 4 == 0 {
                p.mode = Mode::StaleReads { rate: 0.001 };
            }
            let h = register_history(&p).history;
            let sem = Semantics::for_format(Format::JsonLines);
            let compiled = compile::compile(&h, ModelKind::CasRegister, &sem).unwrap();
            let part = &compiled.partitions[0];
            let cancel = AtomicBool::new(false);
            let alone = |serve_enabling: bool| {
                let sh = Shared::unlimited(&cancel);
                let mut s = Search::new(part, &compiled.initial, ModelKind::CasRegister, &sh);
                s.serve_enabling = serve_enabling;
                let r = s.run(u64::MAX);
                (valid(&r), r.configurations, r.steps)
            };
            let (primary, rival) = (alone(false), alone(true));
            assert_eq!(primary.0, rival.0, "seed {seed}: the orders disagree");
            assert_eq!(primary.0, seed % 4 != 0, "seed {seed}");
            let winner = if rival.2 < primary.2 { rival } else { primary };
            rival_won += usize::from(rival.2 < primary.2);
            let sh = Shared::unlimited(&cancel);
            let mut a = Search::new(part, &compiled.initial, ModelKind::CasRegister, &sh);
            let mut b = Search::new(part, &compiled.initial, ModelKind::CasRegister, &sh);
            b.serve_enabling = true;
            assert!(a.orders_differ());
            let r = race(&mut a, &mut b, &sh.finish_line);
            assert_eq!(
                (valid(&r), r.configurations, r.steps),
                winner,
                "seed {seed}"
            );
        }
        // Neither order is always the faster: otherwise the race would be pointless.
        assert!(
            rival_won > 0 && rival_won < 8,
            "the rival won {rival_won} of 8"
        );
    }

    /// The rival stops once it holds a quarter of the memory limit and frees its memo, so a
    /// race leaves the primary most of the memory it would have had alone.
    #[test]
    fn a_rival_over_its_share_of_memory_gives_way_to_the_primary() {
        let p = RegisterParams {
            crash_rate: 0.02,
            ..RegisterParams::new(3000, 30, 3)
        };
        let h = register_history(&p).history;
        let sem = Semantics::for_format(Format::JsonLines);
        let compiled = compile::compile(&h, ModelKind::CasRegister, &sem).unwrap();
        let part = &compiled.partitions[0];
        let cancel = AtomicBool::new(false);
        let new = |sh| Search::new(part, &compiled.initial, ModelKind::CasRegister, sh);

        let sh = Shared::unlimited(&cancel);
        let alone = new(&sh).run(u64::MAX);
        assert!(valid(&alone));
        let primary_bytes = sh.memory_used_bytes.load(Ordering::Relaxed);

        // Racing, with a limit the rival's share is far below.
        let mut sh = Shared::unlimited(&cancel);
        sh.memory_limit_bytes = primary_bytes / 2;
        let mut rival = new(&sh);
        rival.serve_enabling = true;
        rival.racing = true;
        let r = rival.run(u64::MAX);
        assert!(matches!(r.verdict, Verdict::Unknown("yielded")));
        assert_eq!(rival.memo_len(), 0, "the rival's memo is freed");
        let left = sh.memory_used_bytes.load(Ordering::Relaxed);
        assert!(left < primary_bytes / 2, "{left} bytes still counted");

        // A limit the primary fits in alone, with the rival in the race: the primary decides.
        let mut sh = Shared::unlimited(&cancel);
        sh.memory_limit_bytes = primary_bytes + primary_bytes / 2;
        let (mut a, mut b) = (new(&sh), new(&sh));
        b.serve_enabling = true;
        let r = race(&mut a, &mut b, &sh.finish_line);
        assert!(valid(&r), "the race ends with a verdict");
    }
}
