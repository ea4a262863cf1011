//! Which reads set which watches, and which changes fire them, as ZooKeeper's.

use super::*;

fn fired(l: &Leader) -> Vec<(u64, &str, EventKind)> {
    let fired = l.fired.iter();
    fired.map(|(w, e)| (*w, e.path.as_str(), e.kind)).collect()
}

#[test]
fn exists_on_a_missing_node_fires_when_it_is_created() {
    let mut l = Leader::new();
    let exists = Request::Exists {
        path: "/a".into(),
        watch: true,
    };
    l.read_as(1, &[], exists).unwrap();
    // getData on a missing node sets no watch.
    assert_eq!(l.read_as(2, &[], get("/a", true)), Err(ErrorCode::NoNode));
    l.write(create("/a", b"")).unwrap();
    assert_eq!(fired(&l), [(1, "/a", EventKind::NodeCreated)]);
    assert_eq!(l.fired[0].1.zxid, l.last_zxid());
}

#[test]
fn a_data_watch_fires_once_on_change() {
    let mut l = Leader::new();
    l.write(create("/a", b"")).unwrap();
    l.read_as(1, &[], get("/a", true)).unwrap();
    l.write(set("/a", b"1", -1)).unwrap();
    assert_eq!(fired(&l), [(1, "/a", EventKind::NodeDataChanged)]);
    l.write(set("/a", b"2", -1)).unwrap();
    assert!(l.fired.is_empty(), "a watch fires once");
    let set_acl = Request::SetAcl {
        path: "/a".into(),
        acl: Acl::open(),
        version: -1,
    };
    l.read_as(1, &[], get("/a", true)).unwrap();
    l.write(set_acl).unwrap();
    assert!(l.fired.is_empty(), "setACL changes no data");
}

#[test]
fn child_watches_fire_on_children_created_and_deleted_not_on_their_data() {
    let mut l = Leader::new();
    l.write(create("/p", b"")).unwrap();
    let children = Request::GetChildren {
        path: "/p".into(),
        watch: true,
    };
    l.read_as(1, &[], children.clone()).unwrap();
    l.write(create("/p/c", b"")).unwrap();
    assert_eq!(fired(&l), [(1, "/p", EventKind::NodeChildrenChanged)]);
    l.read_as(1, &[], children).unwrap();
    l.write(set("/p/c", b"x", -1)).unwrap();
    l.write(set("/p", b"x", -1)).unwrap();
    assert!(l.fired.is_empty());
    l.write(delete("/p/c", -1)).unwrap();
    assert_eq!(fired(&l), [(1, "/p", EventKind::NodeChildrenChanged)]);
}

#[test]
fn delete_fires_the_nodes_data_and_child_watches_and_the_parents_child_watch() {
    let mut l = Leader::new();
    l.write(create("/p", b"")).unwrap();
    l.write(create("/p/c", b"")).unwrap();
    l.read_as(1, &[], get("/p/c", true)).unwrap();
    let kids = |p: &str| Request::GetChildren {
        path: p.into(),
        watch: true,
    };
    l.read_as(1, &[], kids("/p/c")).unwrap();
    l.read_as(2, &[], kids("/p/c")).unwrap();
    l.read_as(3, &[], kids("/p")).unwrap();
    l.write(delete("/p/c", -1)).unwrap();
    assert_eq!(
        fired(&l),
        [
            (1, "/p/c", EventKind::NodeDeleted),
            (2, "/p/c", EventKind::NodeDeleted),
            (3, "/p", EventKind::NodeChildrenChanged),
        ]
    );
    assert!(l.watches.is_empty());
}

#[test]
fn a_failed_read_sets_no_watch() {
    let mut l = Leader::new();
    l.write(create_acl(
        "/secret",
        vec![Acl::new(Perms::WRITE, Id::anyone())],
    ))
    .unwrap();
    assert_eq!(
        l.read_as(1, &[], get("/secret", true)),
        Err(ErrorCode::NoAuth)
    );
    assert!(l.watches.is_empty());
    let not_a_read = l.read_as(1, &[], create("/x", b""));
    assert_eq!(not_a_read, Err(ErrorCode::BadArguments));
}
