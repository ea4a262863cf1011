//! The two-phase-commit store in the seeded simulator: bank transfers across shards while
//! snapshots are taken, under crashes at every protocol step, partitions, message loss and
//! torn disk writes; every run is judged by the atomic-commit, recovery-line,
//! consistent-cut and bank checkers, and every snapshot is restored into a new cluster.

mod common;

use common::*;
use sim::sweep;

#[test]
fn transfers_commit_and_every_checker_passes_on_a_quiet_network() {
    let out = run(7, Plan::Quiet, twopc::Bugs::default()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{out:?}");
    assert!(
        out.committed >= 20,
        "only {} transfers committed",
        out.committed
    );
    assert!(
        out.snapshots >= 2,
        "only {} snapshots finished",
        out.snapshots
    );
    assert!(out.checkpoints >= 6, "only {} checkpoints", out.checkpoints);
}

/// Crashes one node right after the k-th event of the run, for every k up to the end of
/// a short run, rotating through the coordinator and the participants.
#[test]
fn a_crash_after_any_step_of_any_node_violates_nothing() {
    let steps = crash_sweep_steps();
    let mut crashed_in_doubt = 0;
    for k in (0..steps).step_by(3) {
        let node = (k / 3 % NODES as u64) as u32 + 1;
        let out = run(
            1000 + k,
            Plan::CrashAtStep { step: k, node },
            twopc::Bugs::default(),
        )
        .unwrap_or_else(|e| panic!("crash of n{node} after step {k}: {e}"));
        crashed_in_doubt += out.recovered_in_doubt;
    }
    assert!(
        crashed_in_doubt > 0,
        "no crash left a participant in doubt: the sweep misses the termination protocol"
    );
}

#[test]
fn chaos_with_partitions_crashes_and_torn_writes_violates_nothing() {
    let mut committed = 0;
    sweep(40, |seed| {
        committed += run(seed, Plan::Chaos, twopc::Bugs::default())?.committed;
        Ok::<(), String>(())
    })
    .unwrap_or_else(|f| panic!("{f}"));
    assert!(
        committed >= 100,
        "only {committed} transfers committed in all"
    );
}

/// A seed replays exactly: the same event log, byte for byte; another seed differs.
#[test]
fn a_seed_replays_the_same_run() {
    let a = run_keep(11, Plan::Chaos, twopc::Bugs::default());
    let b = run_keep(11, Plan::Chaos, twopc::Bugs::default());
    let c = run_keep(12, Plan::Chaos, twopc::Bugs::default());
    a.0.as_ref().expect("seed 11 passes");
    assert!(
        a.1.lines().count() > 1_000,
        "a short run: {} lines",
        a.1.lines().count()
    );
    assert_eq!(a.1, b.1, "seed 11 ran differently twice");
    assert_ne!(a.1, c.1, "seeds 11 and 12 ran the same");
}

/// The seed's rule: an in-doubt participant blocks while nobody knows, then learns.
#[test]
fn an_in_doubt_participant_blocks_until_the_coordinator_returns() {
    let mut blocked = 0;
    sweep(5, |seed| {
        let out = run(seed, Plan::InDoubtBlackout, twopc::Bugs::default())?;
        blocked += out.blocked as usize;
        Ok::<(), String>(())
    })
    .unwrap_or_else(|f| panic!("{f}"));
    assert!(
        blocked >= 3,
        "only {blocked} of 5 runs left the participant in doubt"
    );
}

#[test]
fn commit_sent_before_it_is_logged_is_caught() {
    bug_is_caught("commit-before-log", "decision-before-log");
}

#[test]
fn voting_yes_before_forcing_the_record_is_caught() {
    bug_is_caught("vote-before-force", "vote-before-log");
}

#[test]
fn a_recovering_participant_deciding_alone_is_caught() {
    bug_is_caught("decide-alone", "decided-alone");
}

#[test]
fn snapshots_without_markers_are_caught() {
    bug_is_caught("snapshot-without-markers", "cut-split-transaction");
}

#[test]
fn a_checkpoint_recording_an_unsent_receive_is_caught() {
    bug_is_caught("checkpoint-skips-forced", "orphan-message");
}
