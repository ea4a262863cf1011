//! The driver over partitions: checks each key's operations with its own search, in parallel
//! rounds of growing step budgets, and turns the results into one outcome with an
//! explanation.
//!
//! A history of one partition would leave every core but one idle, so there the primary
//! search races a rival that tries other orders of candidates (`search::Order`, `run_rival`).
//! A depth-first search's time is heavy-tailed in its order: one early placement that looked
//! right can hide a dead subtree of millions of configurations that another order never
//! enters. On 50,000-op cas-register histories each contestant beats the other on some
//! seeds, by 5x to 40x. The race is decided by configurations visited, not by which thread
//! ends first, so the verdict, its explanation and the counts are the same on every run.

use super::compile::{Compiled, Operation, Partition};
use super::search::{Order, PartResult, Search, Shared, Stuck, Verdict};
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
/// The rival's orders, each tried afresh for at most this many configurations, the last for
/// as many as it takes. A short try of an order the primary does not take often finds a
/// valid history's linearization at once: on the 16 seeds of the 50,000-op cas-register
/// benchmark (before `Search::dead_end` took reachability into account), serving by return
/// and serving enabling ops together took 40,000 to 160,000 configurations on 5 seeds, and
/// 0.4 million to more than 3.5 million on the others. Serving enabling ops alone is the
/// steadiest complement of the primary, so it goes on to the end.
///
/// Both keep crashed ops for later where a completed op does their work; the primary does
/// not. The rule only prunes, yet it sends a depth-first search into other subtrees first.
/// On the 64 seeds of the 50,000-op benchmark, each contestant alone (cut off at 25 s): the
/// primary with it visits 61M configurations in all instead of 98M or more (5 seeds cut off
/// without it, none with it), but seed 1 goes from 1.3M to 5.6M; the rival with it visits
/// 115M or more instead of 186M or more, and seed 22 goes from 9.5M to 2.1M. Raced, the
/// primary without it and the rival with it visit 19.8M in all, at most 2.1M on a seed
/// (seed 22, from 9.5M); with it in both, 20.3M, but 5.6M on seed 1.
pub(super) const RIVAL_ORDERS: [(Order, u64); 2] = [
    (
        Order {
            serve_enabling: true,
            serving_by_return: true,
            keep_crashed: true,
        },
        200_000,
    ),
    (
        Order {
            serve_enabling: true,
            serving_by_return: false,
            keep_crashed: true,
        },
        u64::MAX,
    ),
];
/// Steps a rival runs between looks at its configuration count.
const RIVAL_CHUNK_STEPS: u64 = 1 << 14;

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
            let rival = || {
                run_rival(
                    &parts[0],
                    &compiled.initial,
                    kind,
                    &shared,
                    &RIVAL_ORDERS,
                    RIVAL_CHUNK_STEPS,
                )
            };
            vec![race(&mut searches[0], rival, &shared.finish_line)]
        } else {
            vec![searches[0].run(u64::MAX)]
        }
    } else {
        run_rounds(&mut searches)
    };
    summarize(history, compiled, kind, options, results)
}

/// Runs the primary search of one partition beside a rival (`run_rival`) until one reaches
/// a verdict. The one that visited fewer configurations wins (the primary on a tie): a
/// search that has visited more than a finished one stops at its next poll, and one that
/// finished first in time but after more configurations loses, so thread timing never
/// decides. Configurations rather than steps, because they are what the check reports and
/// what its memory grows with; both orders take five to six steps a configuration.
fn race(
    primary: &mut Search,
    rival: impl FnOnce() -> PartResult + Send,
    line: &AtomicU64,
) -> PartResult {
    primary.racing = true;
    let first = || {
        let r = primary.run(u64::MAX);
        if decided(&r) {
            line.fetch_min(r.configurations, Ordering::Relaxed);
        }
        r
    };
    let (a, b) = rayon::join(first, rival);
    match (decided(&a), decided(&b)) {
        (true, true) if b.configurations < a.configurations => b,
        (false, true) => b,
        _ => a,
    }
}

/// The rival of a race: a fresh search in each of `orders` in turn, each for at most its
/// number of configurations (looked at every `chunk_steps` steps), the last until it ends.
/// Its configurations count over all of them.
fn run_rival(
    part: &Partition,
    initial: &Datum,
    kind: ModelKind,
    shared: &Shared,
    orders: &[(Order, u64)],
    chunk_steps: u64,
) -> PartResult {
    assert!(!orders.is_empty(), "a rival needs an order");
    let mut configurations_before = 0;
    for (k, &(order, max_configurations)) in orders.iter().enumerate() {
        let last = k + 1 == orders.len();
        let mut s = Search::new(part, initial, kind, shared);
        s.order = order;
        s.racing = true;
        s.rival = true;
        s.configurations_before = configurations_before;
        loop {
            let r = s.run(chunk_steps);
            if !matches!(r.verdict, Verdict::Paused) {
                if decided(&r) {
                    shared
                        .finish_line
                        .fetch_min(r.configurations, Ordering::Relaxed);
                }
                return r;
            }
            if !last && s.configurations() >= max_configurations {
                configurations_before = r.configurations;
                s.retire();
                break;
            }
        }
    }
    unreachable!("the last order runs until it ends")
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
    use super::super::search::testing::{self, valid};
    use super::*;
    use crate::synth::{Mode, RegisterParams};

    /// A 3,000-op cas-register history with 2% crashed ops, compiled.
    fn compiled(seed: u64, stale: bool) -> Compiled {
        let mut p = RegisterParams {
            crash_rate: 0.02,
            ..RegisterParams::new(3000, 30, seed)
        };
        if stale {
            p.mode = Mode::StaleReads { rate: 0.001 };
        }
        testing::compiled(&p)
    }

    /// The race's rival over the compiled history's one partition.
    fn rival_of(compiled: &Compiled, sh: &Shared) -> PartResult {
        let part = &compiled.partitions[0];
        let orders = &RIVAL_ORDERS;
        run_rival(
            part,
            &compiled.initial,
            ModelKind::CasRegister,
            sh,
            orders,
            RIVAL_CHUNK_STEPS,
        )
    }

    /// (valid, configurations) of one search in `order`, alone.
    fn alone(compiled: &Compiled, order: Order) -> (bool, u64) {
        let cancel = AtomicBool::new(false);
        let sh = Shared::unlimited(&cancel);
        let part = &compiled.partitions[0];
        let mut s = Search::new(part, &compiled.initial, ModelKind::CasRegister, &sh);
        s.order = order;
        let r = s.run(u64::MAX);
        (valid(&r), r.configurations)
    }

    /// The primary alone and the rival alone, then the race: the race's verdict and counts
    /// are those of the one that visited fewer configurations, whichever thread ended first.
    #[test]
    fn a_race_is_won_by_the_order_with_fewer_configurations_and_keeps_its_verdict() {
        let mut rival_won = 0;
        for seed in 1..=8 {
            let stale = seed % 4 == 0;
            let compiled = compiled(seed, stale);
            let part = &compiled.partitions[0];
            let cancel = AtomicBool::new(false);
            let primary = alone(&compiled, Order::PRIMARY);
            let sh = Shared::unlimited(&cancel);
            let r = rival_of(&compiled, &sh);
            let rival = (valid(&r), r.configurations);
            assert_eq!(primary.0, rival.0, "seed {seed}: the orders disagree");
            assert_eq!(primary.0, !stale, "seed {seed}");
            let winner = if rival.1 < primary.1 { rival } else { primary };
            rival_won += usize::from(rival.1 < primary.1);
            let sh = Shared::unlimited(&cancel);
            let mut a = Search::new(part, &compiled.initial, ModelKind::CasRegister, &sh);
            assert!(a.orders_differ());
            let b = || rival_of(&compiled, &sh);
            let r = race(&mut a, b, &sh.finish_line);
            assert_eq!((valid(&r), r.configurations), winner, "seed {seed}");
        }
        // Neither is always the faster: otherwise the race would be pointless.
        assert!(
            rival_won > 0 && rival_won < 8,
            "the rival won {rival_won} of 8"
        );
    }

    /// A rival whose first order runs out of configurations starts afresh in the next: it
    /// ends as that order alone would, with the configurations of both counted, and the
    /// memory of the abandoned search given back.
    #[test]
    fn a_rival_moves_on_to_its_next_order_with_a_fresh_search() {
        let compiled = compiled(5, false);
        let part = &compiled.partitions[0];
        let [(first, _), (next, _)] = RIVAL_ORDERS;
        // Looks at the budget often, so the first order cannot finish between two looks.
        const CHUNK_STEPS: u64 = 64;
        let (_, first_configurations) = alone(&compiled, first);
        let budget = first_configurations / 2;
        let (next_valid, next_configurations) = alone(&compiled, next);
        let cancel = AtomicBool::new(false);
        let sh = Shared::unlimited(&cancel);
        let r = run_rival(
            part,
            &compiled.initial,
            ModelKind::CasRegister,
            &sh,
            &[(first, budget), (next, u64::MAX)],
            CHUNK_STEPS,
        );
        assert_eq!(valid(&r), next_valid);
        // The first order stops at the first look past its budget (at most a chunk of steps,
        // and so of configurations, later).
        let abandoned = r.configurations - next_configurations;
        assert!(
            (budget..budget + CHUNK_STEPS).contains(&abandoned),
            "{abandoned} configurations before the last order, for a budget of {budget}"
        );
        // Only the search that finished still holds memory: alone, it holds as much.
        let sh_alone = Shared::unlimited(&cancel);
        let mut s = Search::new(part, &compiled.initial, ModelKind::CasRegister, &sh_alone);
        s.order = next;
        s.run(u64::MAX);
        assert_eq!(
            sh.memory_used_bytes.load(Ordering::Relaxed),
            sh_alone.memory_used_bytes.load(Ordering::Relaxed)
        );
    }

    /// The rival stops once it holds a quarter of the memory limit and frees its memo, so a
    /// race leaves the primary most of the memory it would have had alone.
    #[test]
    fn a_rival_over_its_share_of_memory_gives_way_to_the_primary() {
        let compiled = compiled(3, false);
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
        rival.order = RIVAL_ORDERS[0].0;
        rival.racing = true;
        rival.rival = true;
        let r = rival.run(u64::MAX);
        assert!(matches!(r.verdict, Verdict::Unknown("yielded")));
        assert_eq!(rival.memo_len(), 0, "the rival's memo is freed");
        let left = sh.memory_used_bytes.load(Ordering::Relaxed);
        assert!(left < primary_bytes / 2, "{left} bytes still counted");

        // A limit the primary fits in alone, with the rival in the race: the primary decides.
        let mut sh = Shared::unlimited(&cancel);
        sh.memory_limit_bytes = primary_bytes + primary_bytes / 2;
        let mut a = new(&sh);
        let b = || rival_of(&compiled, &sh);
        let r = race(&mut a, b, &sh.finish_line);
        assert!(valid(&r), "the race ends with a verdict");
    }
}
