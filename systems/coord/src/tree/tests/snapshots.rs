//! Snapshot round trips and what loading refuses.

use super::*;

fn populated() -> Leader {
    let mut l = Leader::new();
    l.write(create("/a", b"data")).unwrap();
    l.write(create("/a/b", b"")).unwrap();
    l.write_as(
        S1,
        &digest_user("u:p"),
        create_acl("/acl", Acl::creator_all()),
    )
    .unwrap();
    l.write(create_with("/e", b"", CreateFlags::EPHEMERAL))
        .unwrap();
    l.write(set("/", b"root data", -1)).unwrap();
    l
}

#[test]
fn a_snapshot_restores_an_equal_tree() {
    let l = populated();
    let bytes = l.tree.to_snapshot();
    let restored = Tree::from_snapshot(&bytes).unwrap();
    assert_eq!(restored, l.tree);
    assert_eq!(restored.digest(), l.tree.digest());
    assert_eq!(restored.to_snapshot(), bytes);
    assert_eq!(restored.check_invariants(), Ok(()));
    assert_eq!(restored.ephemerals(S1).collect::<Vec<_>>(), ["/e"]);
}

#[test]
fn corrupt_snapshots_are_refused() {
    let l = populated();
    let bytes = l.tree.to_snapshot();
    let truncated = &bytes[..bytes.len() - 3];
    assert!(matches!(
        Tree::from_snapshot(truncated),
        Err(SnapshotError::Decode(_))
    ));
    let trailing = [bytes.clone(), vec![0]].concat();
    assert!(matches!(
        Tree::from_snapshot(&trailing),
        Err(SnapshotError::Invalid(_))
    ));
    let mut other_format = bytes.clone();
    other_format[0] = 9;
    assert_eq!(
        Tree::from_snapshot(&other_format),
        Err(SnapshotError::Format(9))
    );
    assert!(Tree::from_snapshot(&[]).is_err());
}

#[test]
fn snapshots_with_broken_structure_are_refused() {
    use crate::tree::snapshot::raw::{encode, RawNode};
    let root = RawNode::new("/", 0);
    let cases = [
        vec![],
        vec![RawNode::new("/a", 0)],
        vec![root.clone(), RawNode::new("/a/b", 0)],
        vec![root.clone(), RawNode::new("/a", 0), RawNode::new("/a", 0)],
        vec![root.clone(), RawNode::new("/e", 5), RawNode::new("/e/c", 0)],
        vec![root.clone(), RawNode::new("/bad/", 0)],
    ];
    for nodes in cases {
        let bytes = encode(&[], &nodes);
        assert!(
            matches!(Tree::from_snapshot(&bytes), Err(SnapshotError::Invalid(_))),
            "{nodes:?}"
        );
    }
    assert!(Tree::from_snapshot(&encode(&[(0, 1)], std::slice::from_ref(&root))).is_err());
    assert!(Tree::from_snapshot(&encode(&[(3, 1), (3, 1)], std::slice::from_ref(&root))).is_err());
    assert!(Tree::from_snapshot(&encode(&[(3, 1)], &[root])).is_ok());
}
