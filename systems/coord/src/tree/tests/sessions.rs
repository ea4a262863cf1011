//! Sessions and their ephemerals.

use super::*;

#[test]
fn ephemerals_belong_to_their_session_and_have_no_children() {
    let mut l = Leader::new();
    l.write(create_with("/e", b"", CreateFlags::EPHEMERAL))
        .unwrap();
    assert_eq!(l.stat("/e").ephemeral_owner, S1);
    assert_eq!(
        l.write(create("/e/child", b"")),
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    assert_eq!(l.tree.ephemerals(S1).collect::<Vec<_>>(), ["/e"]);
}

#[test]
fn closing_a_session_deletes_its_ephemerals_and_ends_it() {
    let mut l = Leader::new();
    l.write(create("/g", b"")).unwrap();
    l.write_as(
        S1,
        &[],
        create_with("/g/m-", b"", CreateFlags::EPHEMERAL_SEQUENCE),
    )
    .unwrap();
    l.write_as(
        S2,
        &[],
        create_with("/g/other", b"", CreateFlags::EPHEMERAL),
    )
    .unwrap();
    l.read_as(
        7,
        &[],
        Request::GetChildren {
            path: "/g".into(),
            watch: true,
        },
    )
    .unwrap();
    let result = l.close(S1, Cleanup::DeleteEphemerals);
    assert_eq!(
        result,
        TxnResult::SessionClosed {
            session: S1,
            deleted: vec!["/g/m-0000000000".into()]
        }
    );
    assert_eq!(l.fired.len(), 1, "the member's departure is noticed");
    assert_eq!(l.tree.ephemeral_count(S1), 0);
    assert!(l.tree.contains("/g/other"));
    assert_eq!(l.write(create("/h", b"")), Err(ErrorCode::SessionExpired));
    let again = prepare_close_session(&l.tree, &l.outstanding, S1, Cleanup::DeleteEphemerals, 0);
    assert_eq!(again, Err(ErrorCode::SessionExpired));
}

#[test]
fn the_cleanup_bug_switch_leaves_orphaned_ephemerals() {
    let mut l = Leader::new();
    l.write(create_with("/e", b"", CreateFlags::EPHEMERAL))
        .unwrap();
    let result = l.close(S1, Cleanup::KeepEphemerals);
    assert_eq!(
        result,
        TxnResult::SessionClosed {
            session: S1,
            deleted: vec![]
        }
    );
    assert!(l.tree.contains("/e"));
    assert_eq!(l.tree.session_timeout_ms(S1), None);
    assert_eq!(l.tree.ephemeral_owners().collect::<Vec<_>>(), [S1]);
}

#[test]
fn sessions_are_created_once_with_a_nonzero_id() {
    let mut l = Leader::new();
    assert_eq!(l.tree.session_timeout_ms(S1), Some(5000));
    let (tree, out) = (&l.tree, &l.outstanding);
    assert_eq!(
        prepare_create_session(tree, out, S1, 1, 0),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        prepare_create_session(tree, out, 0, 1, 0),
        Err(ErrorCode::BadArguments)
    );
    let zxid = l.last_zxid() + 1;
    let unknown = prepare(tree, out, 0x999, &[], &create("/a", b""), zxid, 0);
    assert_eq!(unknown, Err(ErrorCode::SessionExpired));
    l.close(S2, Cleanup::DeleteEphemerals);
    l.open(S2);
    assert!(l.write_as(S2, &[], create("/back", b"")).is_ok());
}

#[test]
fn reads_and_syncs_are_not_prepared() {
    let l = Leader::new();
    for req in [get("/", false), Request::Sync { path: "/".into() }] {
        let got = prepare(&l.tree, &l.outstanding, S1, &[], &req, l.last_zxid() + 1, 0);
        assert_eq!(got, Err(ErrorCode::BadArguments));
    }
}
