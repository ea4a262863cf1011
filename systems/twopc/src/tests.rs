//! The core stepped by hand: boot refusals, votes, ids. The simulation tests
//! (`tests/sim.rs`) cover the protocol under faults.

use crate::proto::{txn_id, Body, Envelope, Mop, MsgId, SnapshotPart, MAX_INCARNATION};
use crate::record::{self, CHECKPOINT, INCARNATION, LOG, RESTORE};
use crate::{TwoPc, TwoPcConfig};
use machine::{Boot, Durable, Effects, Input, Log, Machine, NodeId};

const MEMBERS: [NodeId; 3] = [1, 2, 3];

fn boot(id: NodeId, durable: Durable) -> Result<(TwoPc, Effects<TwoPc>), String> {
    let cfg = TwoPcConfig::default();
    let mut out = Effects::default();
    let b = Boot {
        id,
        members: &MEMBERS,
        config: &cfg,
        seed: 1,
        now_ms: 0,
    };
    let node = TwoPc::boot(b, durable, &mut out).map_err(|e| e.to_string())?;
    Ok((node, out))
}

/// Boots `id` and completes its boot write, so it takes inputs.
fn running(id: NodeId, durable: Durable) -> TwoPc {
    let (mut node, out) = boot(id, durable).unwrap();
    let token = out.writes.last().expect("the boot record").token;
    node.step(0, Input::Persisted { token }, &mut Effects::default());
    node
}

fn prepare(txn: u64, ops: Vec<Mop>) -> Input<TwoPc> {
    Input::Peer {
        from: 1,
        msg: Envelope {
            id: MsgId {
                node: 1,
                incarnation: 1,
                seq: txn,
            },
            ckpt: 0,
            body: Body::Prepare {
                txn,
                participants: vec![2],
                ops,
                horizon: 0,
                marker: None,
            },
        },
    }
}

/// The vote `node` sends for the next prepare, once its records are durable.
fn vote_on(node: &mut TwoPc, txn: u64, ops: Vec<Mop>) -> (bool, String) {
    let mut out = Effects::default();
    node.step(1, prepare(txn, ops), &mut out);
    for w in std::mem::take(&mut out.writes) {
        node.step(2, Input::Persisted { token: w.token }, &mut out);
    }
    out.sends
        .iter()
        .find_map(|(_, e)| match &e.body {
            Body::Vote {
                txn: t, yes, why, ..
            } if *t == txn => Some((*yes, why.clone())),
            _ => None,
        })
        .expect("a vote")
}

fn with_blob(name: &str, bytes: Vec<u8>) -> Durable {
    let mut d = Durable::default();
    d.blobs.insert(name.into(), bytes);
    d
}

#[test]
fn a_disk_it_did_not_write_is_refused_with_what_is_wrong() {
    let err = boot(2, with_blob(CHECKPOINT, vec![0xff, 0xff, 0xff]))
        .err()
        .expect("refused");
    assert!(err.contains("checkpoint blob is undecodable"), "{err}");
    let mut d = Durable::default();
    d.logs.insert(
        LOG.into(),
        Log {
            first: 0,
            records: vec![vec![9, 9, 9, 9]],
        },
    );
    let err = boot(1, d).err().expect("refused");
    assert!(err.contains("log record 0"), "{err}");
    let coordinator_ckpt = record::encode(&record::Checkpoint {
        index: 1,
        log_pos: 0,
        state: record::RoleState::Coordinator(Default::default()),
    });
    let err = boot(2, with_blob(CHECKPOINT, coordinator_ckpt))
        .err()
        .expect("refused");
    assert!(err.contains("coordinator's"), "{err}");
    let worn = record::encode(&MAX_INCARNATION);
    let err = boot(1, with_blob(INCARNATION, worn))
        .err()
        .expect("refused");
    assert!(err.contains("booted"), "{err}");
}

#[test]
fn nothing_is_done_before_the_boot_record_is_durable() {
    let (mut node, out) = boot(2, Durable::default()).unwrap();
    assert_eq!(
        out.writes.len(),
        1,
        "just the boot record and its checkpoint"
    );
    let mut out = Effects::default();
    node.step(1, prepare(7, vec![Mop::Read { key: 0 }]), &mut out);
    assert!(
        out.sends.is_empty() && out.writes.is_empty(),
        "{:?}",
        out.sends
    );
}

#[test]
fn participants_vote_no_on_overdrafts_and_lock_conflicts() {
    let mut parts = Durable::default();
    let part = SnapshotPart {
        kv: vec![(0, 10), (2, 10)],
        before: vec![],
        after: vec![],
    };
    parts.blobs.insert(RESTORE.into(), record::encode(&part));
    let mut node = running(2, parts);
    let (yes, why) = vote_on(&mut node, 1, vec![Mop::Add { key: 0, delta: -11 }]);
    assert!(!yes && why.contains("below zero"), "{why}");
    let (yes, _) = vote_on(&mut node, 2, vec![Mop::Add { key: 0, delta: -10 }]);
    assert!(yes, "the whole balance may go");
    let (yes, why) = vote_on(&mut node, 3, vec![Mop::Read { key: 0 }]);
    assert!(!yes && why.contains("locked"), "{why}");
    let (yes, _) = vote_on(&mut node, 4, vec![Mop::Read { key: 2 }]);
    assert!(yes, "other keys are free");
    assert_eq!(node.participant().unwrap().in_doubt(), 2);
}

#[test]
fn transaction_ids_grow_across_lives_and_never_repeat() {
    assert!(txn_id(1, u32::MAX as u64).unwrap() < txn_id(2, 0).unwrap());
    assert!(txn_id(1, 5).unwrap() < txn_id(1, 6).unwrap());
    assert_eq!(txn_id(1, 1 << 32), None);
    assert_eq!(txn_id(MAX_INCARNATION + 1, 0), None);
    assert!(txn_id(MAX_INCARNATION, (1 << 32) - 1).unwrap() < 1 << 53);
}

#[test]
fn a_participant_in_doubt_asks_again_less_and_less_often() {
    let mut parts = Durable::default();
    let part = SnapshotPart {
        kv: vec![(0, 10)],
        before: vec![],
        after: vec![],
    };
    parts.blobs.insert(RESTORE.into(), record::encode(&part));
    let mut node = running(2, parts);
    let (yes, _) = vote_on(&mut node, 1, vec![Mop::Add { key: 0, delta: -1 }]);
    assert!(yes);
    // No decision ever comes: tick every 10 ms and note when it asks the coordinator.
    let mut asked_ms = Vec::new();
    for now_ms in (10..6_000).step_by(10) {
        let mut out = Effects::default();
        node.step(now_ms, Input::Tick, &mut out);
        // Its checkpoints become durable at once.
        for w in std::mem::take(&mut out.writes) {
            node.step(now_ms, Input::Persisted { token: w.token }, &mut out);
        }
        let asks = out
            .sends
            .iter()
            .any(|(to, e)| *to == 1 && matches!(e.body, Body::DecisionReq { txn: 1, .. }));
        if asks {
            asked_ms.push(now_ms);
        }
    }
    let cfg = TwoPcConfig::default();
    let gaps: Vec<u64> = asked_ms.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        asked_ms[0] >= cfg.decision_timeout_ms,
        "it waits for the decision first: {asked_ms:?}"
    );
    let doubling: Vec<u64> = (1..=3).map(|k| cfg.retry_ms << k).collect();
    assert_eq!(
        gaps[..3],
        doubling[..],
        "each unanswered question doubles the wait: {gaps:?}"
    );
    let cap = cfg.retry_after_ms(u32::MAX);
    assert_eq!(cap, cfg.retry_ms << crate::config::MAX_RETRY_DOUBLINGS);
    assert!(
        gaps[3..].iter().all(|&g| g == cap),
        "then stays at {cap} ms: {gaps:?}"
    );
    assert!(gaps.len() >= 6, "it never stops asking: {asked_ms:?}");
}
