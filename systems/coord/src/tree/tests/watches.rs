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

fn watches_held(since: Zxid, data: &[&str], exist: &[&str], child: &[&str]) -> SetWatchesRequest {
    let paths = |ps: &[&str]| ps.iter().map(|p| p.to_string()).collect();
    SetWatchesRequest {
        relative_zxid: since,
        data: paths(data),
        exist: paths(exist),
        child: paths(child),
    }
}

#[test]
fn set_watches_fires_what_changed_after_the_clients_zxid_and_registers_the_rest() {
    let mut l = Leader::new();
    for p in ["/same", "/changed", "/kids", "/quiet-kids", "/doomed"] {
        l.write(create(p, b"")).unwrap();
    }
    let seen = l.last_zxid();
    l.write(set("/changed", b"1", -1)).unwrap();
    l.write(create("/kids/k", b"")).unwrap();
    l.write(create("/born", b"")).unwrap();
    l.write(delete("/doomed", -1)).unwrap();
    let req = watches_held(
        seen,
        &["/same", "/changed", "/doomed"],
        &["/born", "/unborn"],
        &["/kids", "/quiet-kids", "/doomed"],
    );
    let now = set_watches(&l.tree, &mut l.watches, &7, &req).unwrap();
    let kinds: Vec<(&str, EventKind)> = now.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("/changed", EventKind::NodeDataChanged),
            ("/kids", EventKind::NodeChildrenChanged),
            ("/born", EventKind::NodeCreated),
            ("/doomed", EventKind::NodeDeleted),
        ],
        "in zxid order, each the change the client missed"
    );
    assert_eq!(now[0].zxid, l.stat("/changed").mzxid);
    assert_eq!(now[1].zxid, l.stat("/kids").pzxid);
    assert!(now.iter().all(|e| e.zxid > seen && e.zxid <= l.last_zxid()));
    // What did not change is watched again here, and fires on its next change.
    assert!(l.watches.contains(WatchType::Data, "/same", &7));
    assert!(l.watches.contains(WatchType::Data, "/unborn", &7));
    assert!(l.watches.contains(WatchType::Child, "/quiet-kids", &7));
    assert_eq!(l.watches.count_of(&7), 3);
    l.write(create("/unborn", b"")).unwrap();
    assert_eq!(fired(&l), [(7, "/unborn", EventKind::NodeCreated)]);
}

#[test]
fn set_watches_from_a_client_up_to_date_fires_nothing() {
    let mut l = Leader::new();
    l.write(create("/a", b"")).unwrap();
    l.write(set("/a", b"1", -1)).unwrap();
    let req = watches_held(l.last_zxid(), &["/a"], &[], &["/a"]);
    let now = set_watches(&l.tree, &mut l.watches, &1, &req).unwrap();
    assert!(now.is_empty());
    l.write(create("/a/c", b"")).unwrap();
    assert_eq!(fired(&l), [(1, "/a", EventKind::NodeChildrenChanged)]);
}

#[test]
fn set_watches_refuses_bad_paths_and_too_many_paths() {
    let mut l = Leader::new();
    let bad = watches_held(0, &["no-slash"], &[], &[]);
    let err = set_watches(&l.tree, &mut l.watches, &1, &bad);
    assert_eq!(err, Err(ErrorCode::BadArguments));
    let many: Vec<String> = (0..=MAX_SET_WATCHES_PATHS)
        .map(|i| format!("/{i}"))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let big = watches_held(0, &refs, &[], &[]);
    let err = set_watches(&l.tree, &mut l.watches, &1, &big);
    assert_eq!(err, Err(ErrorCode::BadArguments));
    assert!(l.watches.is_empty(), "a refused request registers nothing");
}
