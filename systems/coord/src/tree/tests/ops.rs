//! create, delete, setData and the reads: Stats, versions, sequence numbers, errors.

use super::*;

#[test]
fn create_stamps_the_stat_with_its_zxid_and_the_leaders_clock() {
    let mut l = Leader::new();
    let reply = l.write(create("/a", b"hello"));
    let zxid = l.last_zxid();
    let Ok(Reply::Create { path, stat }) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(path, "/a");
    assert_eq!((stat.czxid, stat.mzxid, stat.pzxid), (zxid, zxid, zxid));
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    assert_eq!((stat.data_length, stat.ephemeral_owner), (5, 0));
    assert_eq!(stat.ctime_ms, stat.mtime_ms);
    let got = l.read_as(1, &[], get("/a", false));
    assert_eq!(
        got,
        Ok(Reply::GetData {
            data: b"hello".to_vec(),
            stat
        })
    );
}

#[test]
fn create_bumps_the_parents_cversion_and_pzxid_only() {
    let mut l = Leader::new();
    l.write(create("/p", b"")).unwrap();
    let before = l.stat("/p");
    l.write(create("/p/c", b"")).unwrap();
    let after = l.stat("/p");
    assert_eq!(after.cversion, before.cversion + 1);
    assert_eq!(after.pzxid, l.last_zxid());
    assert_eq!((after.mzxid, after.version), (before.mzxid, before.version));
    assert_eq!(after.num_children, 1);
}

#[test]
fn create_fails_as_zookeeper_does() {
    let mut l = Leader::new();
    l.write(create("/a", b"")).unwrap();
    let cases = [
        (create("/a", b""), ErrorCode::NodeExists),
        (create("/missing/a", b""), ErrorCode::NoNode),
        (create("/a/", b""), ErrorCode::BadArguments),
        (create("relative", b""), ErrorCode::BadArguments),
        (create("/", b""), ErrorCode::NodeExists),
        (
            create("/big", &vec![0; MAX_DATA_BYTES + 1]),
            ErrorCode::BadArguments,
        ),
        (create_acl("/noacl", vec![]), ErrorCode::InvalidAcl),
        (
            create_acl("/bad", Acl::creator_all()),
            ErrorCode::InvalidAcl,
        ),
    ];
    let digest = l.tree.digest();
    for (req, code) in cases {
        assert_eq!(l.write(req.clone()), Err(code), "{req:?}");
    }
    assert_eq!(l.tree.digest(), digest, "failed writes change nothing");
    assert!(l.write(create("/max", &vec![0; MAX_DATA_BYTES])).is_ok());
}

#[test]
fn children_are_listed_sorted_with_the_parents_stat() {
    let mut l = Leader::new();
    l.write(create("/d", b"")).unwrap();
    for name in ["b", "a", "c10", "c9"] {
        l.write(create(&format!("/d/{name}"), b"")).unwrap();
    }
    let reply = l.read_as(
        1,
        &[],
        Request::GetChildren {
            path: "/d".into(),
            watch: false,
        },
    );
    let Ok(Reply::GetChildren { children, stat }) = reply else {
        panic!()
    };
    assert_eq!(children, ["a", "b", "c10", "c9"]);
    assert_eq!(stat.num_children, 4);
    let missing = Request::GetChildren {
        path: "/nope".into(),
        watch: false,
    };
    assert_eq!(l.read_as(1, &[], missing), Err(ErrorCode::NoNode));
}

#[test]
fn exists_answers_none_for_a_missing_node() {
    let mut l = Leader::new();
    let ask = |path: &str| Request::Exists {
        path: path.into(),
        watch: false,
    };
    assert_eq!(
        l.read_as(1, &[], ask("/x")),
        Ok(Reply::Exists { stat: None })
    );
    l.write(create("/x", b"")).unwrap();
    let stat = Some(l.stat("/x"));
    assert_eq!(l.read_as(1, &[], ask("/x")), Ok(Reply::Exists { stat }));
    assert_eq!(l.read_as(1, &[], ask("x")), Err(ErrorCode::BadArguments));
}

#[test]
fn sequential_names_come_from_the_parents_cversion() {
    let mut l = Leader::new();
    l.write(create("/q", b"")).unwrap();
    assert_eq!(l.create_sequential("/q/n-"), "/q/n-0000000000");
    assert_eq!(l.create_sequential("/q/n-"), "/q/n-0000000001");
    l.write(create("/q/plain", b"")).unwrap();
    // A plain create bumps cversion too, and deletes do not: numbers never repeat.
    l.write(delete("/q/n-0000000001", -1)).unwrap();
    assert_eq!(l.create_sequential("/q/"), "/q/0000000003");
    assert_eq!(l.create_sequential("/"), "/0000000001");
}

#[test]
fn sequence_numbers_go_negative_past_i32_max_as_zookeepers() {
    let mut l = Leader::new();
    l.write(create("/q", b"")).unwrap();
    l.tree.update_stat("/q", |s| s.cversion = i32::MAX);
    assert_eq!(l.create_sequential("/q/n"), "/q/n2147483647");
    assert_eq!(l.create_sequential("/q/n"), "/q/n-2147483648");
}

#[test]
fn delete_checks_version_and_emptiness() {
    let mut l = Leader::new();
    l.write(create("/a", b"")).unwrap();
    l.write(create("/a/b", b"")).unwrap();
    l.write(set("/a/b", b"x", -1)).unwrap();
    assert_eq!(l.write(delete("/a", -1)), Err(ErrorCode::NotEmpty));
    assert_eq!(l.write(delete("/a/b", 0)), Err(ErrorCode::BadVersion));
    assert_eq!(l.write(delete("/a/c", -1)), Err(ErrorCode::NoNode));
    assert_eq!(l.write(delete("/", -1)), Err(ErrorCode::BadArguments));
    let cversion = l.stat("/a").cversion;
    assert_eq!(l.write(delete("/a/b", 1)), Ok(Reply::Delete));
    let parent = l.stat("/a");
    assert_eq!((parent.cversion, parent.pzxid), (cversion, l.last_zxid()));
    assert_eq!(l.write(delete("/a", -1)), Ok(Reply::Delete));
    assert_eq!(l.tree.node_count(), 1);
}

#[test]
fn set_data_bumps_version_and_mzxid_only() {
    let mut l = Leader::new();
    l.write(create("/a", b"1")).unwrap();
    let created = l.stat("/a");
    let Ok(Reply::SetData { stat }) = l.write(set("/a", b"22", 0)) else {
        panic!()
    };
    assert_eq!((stat.version, stat.mzxid), (1, l.last_zxid()));
    assert_eq!(
        (stat.czxid, stat.ctime_ms),
        (created.czxid, created.ctime_ms)
    );
    assert!(stat.mtime_ms > created.mtime_ms);
    assert_eq!(stat.data_length, 2);
    assert_eq!(l.write(set("/a", b"3", 0)), Err(ErrorCode::BadVersion));
    assert_eq!(l.write(set("/nope", b"3", -1)), Err(ErrorCode::NoNode));
    let big = vec![0; MAX_DATA_BYTES + 1];
    assert_eq!(l.write(set("/a", &big, -1)), Err(ErrorCode::BadArguments));
    assert!(l.write(set("/a", b"4", -1)).is_ok());
    assert_eq!(l.stat("/a").version, 2);
}
