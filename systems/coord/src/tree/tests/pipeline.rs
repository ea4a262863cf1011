//! Prepare against the leader's outstanding proposals.

use super::*;

#[test]
fn a_second_create_of_a_proposed_path_fails_before_the_first_commits() {
    let mut l = Leader::new();
    l.propose(S1, &[], create("/a", b"")).unwrap();
    assert_eq!(
        l.propose(S2, &[], create("/a", b"")),
        Err(ErrorCode::NodeExists)
    );
    l.propose(S2, &[], create("/a/child", b"")).unwrap();
    assert_eq!(l.outstanding.len(), 2);
    let results = l.commit_all();
    assert!(results.iter().all(|r| matches!(r, TxnResult::Reply(_))));
    assert!(l.tree.contains("/a/child"));
}

#[test]
fn sequence_numbers_advance_across_outstanding_creates() {
    let mut l = Leader::new();
    l.write(create("/q", b"")).unwrap();
    for _ in 0..3 {
        l.propose(S1, &[], create_with("/q/n", b"", CreateFlags::SEQUENCE))
            .unwrap();
    }
    let paths: Vec<String> = l
        .commit_all()
        .into_iter()
        .map(|r| created_path(r.into_reply().unwrap()))
        .collect();
    assert_eq!(
        paths,
        ["/q/n0000000000", "/q/n0000000001", "/q/n0000000002"]
    );
}

#[test]
fn conditional_writes_see_outstanding_versions() {
    let mut l = Leader::new();
    l.write(create("/a", b"")).unwrap();
    l.propose(S1, &[], set("/a", b"1", 0)).unwrap();
    assert_eq!(
        l.propose(S2, &[], set("/a", b"2", 0)),
        Err(ErrorCode::BadVersion)
    );
    l.propose(S2, &[], set("/a", b"2", 1)).unwrap();
    l.propose(S2, &[], delete("/a", 2)).unwrap();
    assert_eq!(
        l.propose(S1, &[], set("/a", b"3", -1)),
        Err(ErrorCode::NoNode)
    );
    l.commit_all();
    assert!(!l.tree.contains("/a"));
}

#[test]
fn outstanding_changes_are_pruned_as_their_zxids_commit() {
    let mut l = Leader::new();
    let z1 = l.propose(S1, &[], create("/a", b"")).unwrap();
    let _z2 = l.propose(S1, &[], set("/a", b"x", 0)).unwrap();
    let (zxid, txn) = l.pending.pop_front().unwrap();
    assert_eq!(zxid, z1);
    apply(&mut l.tree, zxid, &txn);
    l.outstanding.commit(z1);
    assert_eq!(l.outstanding.len(), 1);
    // The set is still outstanding: /a is at version 1 in the leader's view.
    assert_eq!(
        l.propose(S2, &[], set("/a", b"y", 0)),
        Err(ErrorCode::BadVersion)
    );
    l.commit_all();
    l.outstanding.clear();
    assert_eq!(l.stat("/a").version, 1);
}

#[test]
fn a_leader_change_clears_the_view_of_the_future() {
    let mut l = Leader::new();
    l.propose(S1, &[], create("/a", b"")).unwrap();
    l.outstanding.clear();
    l.pending.clear();
    // The new leader never saw /a; it may create it.
    assert!(l.propose(S2, &[], create("/a", b"")).is_ok());
}

#[test]
fn closing_a_session_deletes_ephemerals_still_in_flight() {
    let mut l = Leader::new();
    l.write(create_with("/old", b"", CreateFlags::EPHEMERAL))
        .unwrap();
    l.write(create_with("/gone", b"", CreateFlags::EPHEMERAL))
        .unwrap();
    l.propose(S1, &[], create_with("/new", b"", CreateFlags::EPHEMERAL))
        .unwrap();
    l.propose(S1, &[], delete("/gone", -1)).unwrap();
    let close = prepare_close_session(&l.tree, &l.outstanding, S1, Cleanup::DeleteEphemerals, 0);
    let close = close.unwrap();
    let TxnOp::CloseSession { ephemerals, .. } = &close.op else {
        panic!()
    };
    assert_eq!(ephemerals, &["/new", "/old"]);
    l.propose_txn(close);
    // Once the close is proposed, the session is over for every later request.
    let late = create_with("/late", b"", CreateFlags::EPHEMERAL);
    assert_eq!(l.propose(S1, &[], late), Err(ErrorCode::SessionExpired));
    l.commit_all();
    assert_eq!(l.tree.node_count(), 1);
    assert_eq!(l.tree.ephemeral_owners().count(), 0);
}
