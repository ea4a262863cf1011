//! The replicated database in the seeded simulator: clients run list-append and rw-register
//! transactions against random replicas while the fault plan crashes replicas (losing
//! unsynced writes), partitions them, pauses them and jumps their clocks; then everything is
//! healed and every replica's apply log and state are read back. Each run is judged by the
//! transactional checker at the model its mode claims, by `checkers::one_copy` on the apply
//! logs, by convergence (equal logs and states everywhere), and, in the eager modes, by
//! apply logs that are prefixes of each other after every single step. Lazy replication
//! and each planted bug must be caught, by the anomaly's name.
//!
//! `SIM_SEED=<n>` replays one seed of any sweep; `SIM_SEEDS=<count>` widens them.

mod common;

use checkers::history::Format;
use checkers::txn::{self, Model, Workload};
use checkers::verdict::Validity;
use common::*;
use repdb::Mode;
use sim::sweep;

const WORKLOADS: [Workload; 2] = [Workload::ListAppend, Workload::RwRegister];

/// Runs both workloads under chaos over `seeds` seeds, on three replicas for even seeds and
/// five for odd ones; every run must be clean. Returns the runs' outcomes.
fn chaos_sweep(seeds: u64, setup: impl Fn(Workload) -> Setup) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    sweep(seeds, |seed| {
        for w in WORKLOADS {
            let nodes = if seed % 2 == 0 { 3 } else { 5 };
            outcomes.push(run_clean(seed, &setup(w).with_nodes(nodes))?);
        }
        Ok::<(), String>(())
    })
    .unwrap_or_else(|f| panic!("{f}"));
    outcomes
}

/// What a sweep must show to count as having exercised the system under faults.
fn assert_exercised(mode: &str, outcomes: &[Outcome]) {
    let ok: usize = outcomes.iter().map(|o| o.ok).sum();
    let info: usize = outcomes.iter().map(|o| o.info).sum();
    let applied: usize = outcomes.iter().map(|o| o.applied).sum();
    eprintln!(
        "{mode}: {} runs, {ok} ok, {info} info, {applied} applied",
        outcomes.len()
    );
    assert!(
        ok >= 20 * outcomes.len(),
        "{mode}: only {ok} transactions committed in {} runs",
        outcomes.len()
    );
    assert!(
        info > 0,
        "{mode}: no outcome was ever unknown: faults never bit"
    );
    assert!(applied > 0);
}

#[test]
fn every_mode_commits_on_a_quiet_network_and_eager_ones_stay_one_copy() {
    for mode in Mode::ALL {
        for w in WORKLOADS {
            let setup = Setup::new(mode, w, Plan::Quiet);
            let out = run(3, &setup).unwrap_or_else(|e| panic!("{mode:?} {w:?}: {e}"));
            assert!(out.ok >= 150, "{mode:?} {w:?}: only {} ok: {out:?}", out.ok);
            assert_eq!(out.info, 0, "{mode:?} {w:?}: {out:?}");
            if mode == Mode::Lazy {
                continue;
            }
            assert!(
                out.anomalies().is_empty() && out.diverged.is_empty(),
                "{mode:?} {w:?}: {out:?}"
            );
            // The recorded history reads back as `faultline check` reads it, to the same
            // verdict.
            let mut options = txn::Options::new(w);
            options.models = vec![setup.model()];
            let again = txn::check_text(
                "history.jsonl",
                &out.history_jsonl,
                Format::JsonLines,
                &options,
            )
            .unwrap_or_else(|e| panic!("{mode:?} {w:?}: {e}"));
            assert_eq!(again.verdict.valid, Validity::Valid, "{:?}", again.verdict);
            assert!(out.history_jsonl.contains("\"txn-id\""));
            // Aborts only for what the mode decides on: conflicts where a mode certifies,
            // and refusals while the first leader is being elected.
            for error in out.errors.keys() {
                let conflict = error.contains("was read at a snapshot");
                let certifies = matches!(mode, Mode::Certification | Mode::WeakVoting);
                assert!(
                    error.starts_with("not serving") || (conflict && certifies),
                    "{mode:?} {w:?}: unexpected failure {error:?}"
                );
            }
        }
    }
}

#[test]
fn certification_with_read_sets_is_serializable_and_one_copy_serializable_under_chaos() {
    let outcomes = chaos_sweep(40, |w| Setup::new(Mode::Certification, w, Plan::Chaos));
    assert_exercised("certification", &outcomes);
}

#[test]
fn certification_without_read_sets_is_snapshot_isolated_under_chaos() {
    let outcomes = chaos_sweep(40, |w| {
        Setup::new(Mode::Certification, w, Plan::Chaos).without_read_sets()
    });
    assert_exercised("certification without read sets", &outcomes);
}

#[test]
fn active_replication_is_serializable_under_chaos() {
    let outcomes = chaos_sweep(40, |w| Setup::new(Mode::Active, w, Plan::Chaos));
    assert_exercised("active", &outcomes);
}

#[test]
fn weak_voting_is_serializable_under_chaos() {
    let outcomes = chaos_sweep(40, |w| Setup::new(Mode::WeakVoting, w, Plan::Chaos));
    assert_exercised("weak-voting", &outcomes);
}

#[test]
fn primary_copy_is_serializable_under_chaos() {
    let outcomes = chaos_sweep(40, |w| Setup::new(Mode::PrimaryCopy, w, Plan::Chaos));
    assert_exercised("primary-copy", &outcomes);
}

/// Without read sets certification is first-committer-wins: snapshot isolation admits
/// write skew, which the serializable check names.
#[test]
fn snapshot_isolation_admits_write_skew_which_the_serializable_check_finds() {
    let setup = Setup::new(Mode::Certification, Workload::ListAppend, Plan::Quiet)
        .without_read_sets()
        .checked_as(Model::Serializable);
    caught(&setup, "G2-item", 20);
}

#[test]
fn lazy_replication_is_caught() {
    let la = Setup::new(Mode::Lazy, Workload::ListAppend, Plan::Chaos);
    caught(&la, "incompatible-order", 10);
    let rw = Setup::new(Mode::Lazy, Workload::RwRegister, Plan::Chaos);
    caught(&rw, "divergent-apply-order", 10);
}

#[test]
fn nondeterministic_certification_is_caught() {
    let setup = Setup::new(Mode::Certification, Workload::ListAppend, Plan::Chaos)
        .with_bug("nondeterministic-certification");
    caught(&setup, "divergent-apply-order", 10);
}

#[test]
fn applying_before_delivery_is_caught() {
    let setup = Setup::new(Mode::Certification, Workload::ListAppend, Plan::Chaos)
        .with_bug("apply-before-delivery");
    caught(&setup, "incompatible-order", 10);
}

/// A long read phase and two versions per key: garbage collection overtakes running
/// snapshots, whose transactions abort as too old rather than read a wrong version, and the
/// history stays serializable.
#[test]
fn snapshots_that_collection_overtook_abort_as_too_old() {
    let mut too_old = 0;
    sweep(6, |seed| {
        for w in WORKLOADS {
            let setup = Setup::new(Mode::Certification, w, Plan::Quiet);
            let mut config = setup.config();
            config.exec_ticks = 5;
            config.limits.max_versions_per_key = 2;
            let (mut sim, shared) = start_with(seed, &setup, config)?;
            let out = finish(&mut sim, &setup, &shared)?;
            if !out.anomalies().is_empty() || !out.diverged.is_empty() {
                return Err(format!("{w:?}: {:?} {:?}", out.anomalies(), out.diverged));
            }
            too_old += out
                .errors
                .iter()
                .filter(|(e, _)| e.starts_with("the snapshot's version"))
                .map(|(_, n)| n)
                .sum::<usize>();
        }
        Ok::<(), String>(())
    })
    .unwrap_or_else(|f| panic!("{f}"));
    assert!(too_old > 0, "no snapshot was ever too old");
}
