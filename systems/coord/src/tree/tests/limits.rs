//! Limits hold, counting outstanding proposals.

use super::*;

#[test]
fn children_per_node_are_bounded_counting_outstanding_creates() {
    let mut l = Leader::new();
    l.write(create("/p", b"")).unwrap();
    for i in 0..MAX_CHILDREN_PER_NODE {
        l.propose(S1, &[], create(&format!("/p/{i}"), b"")).unwrap();
    }
    let over = create("/p/over", b"");
    assert_eq!(
        l.propose(S1, &[], over.clone()),
        Err(ErrorCode::QuotaExceeded)
    );
    l.commit_all();
    assert_eq!(l.write(over), Err(ErrorCode::QuotaExceeded));
    l.write(delete("/p/0", -1)).unwrap();
    assert!(l.write(create("/p/over", b"")).is_ok());
}

#[test]
fn ephemerals_per_session_are_bounded() {
    let mut l = Leader::new();
    for i in 0..MAX_EPHEMERALS_PER_SESSION {
        let req = create_with(&format!("/e{i}"), b"", CreateFlags::EPHEMERAL);
        l.propose(S1, &[], req).unwrap();
    }
    let over = create_with("/over", b"", CreateFlags::EPHEMERAL);
    assert_eq!(
        l.propose(S1, &[], over.clone()),
        Err(ErrorCode::QuotaExceeded)
    );
    assert!(l.propose(S2, &[], over).is_ok());
    l.commit_all();
    let close = prepare_close_session(&l.tree, &l.outstanding, S1, Cleanup::DeleteEphemerals, 0);
    let bytes = postcard::to_stdvec(&close.unwrap()).unwrap();
    assert!(bytes.len() <= MAX_TXN_BYTES);
}
