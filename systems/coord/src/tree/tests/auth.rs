//! ACL checks and digest auth, end to end.

use super::*;

#[test]
fn a_digest_acl_admits_only_its_user() {
    let mut l = Leader::new();
    let bob = digest_user("bob:secret");
    let acl = vec![
        Acl::new(Perms::ALL, Id::auth_ids()),
        Acl::new(Perms::READ, Id::anyone()),
    ];
    l.write_as(S1, &bob, create_acl("/bob", acl)).unwrap();
    let stored = l.tree.node("/bob").unwrap().acl().to_vec();
    assert_eq!(
        stored[0].id, bob[0],
        "auth expands to the creator's identity"
    );
    assert!(l.read_as(1, &[], get("/bob", false)).is_ok());
    let eve = digest_user("bob:guess");
    for auth in [&[][..], &eve] {
        assert_eq!(
            l.write_as(S2, auth, set("/bob", b"x", -1)),
            Err(ErrorCode::NoAuth)
        );
        let child = create("/bob/c", b"");
        assert_eq!(l.write_as(S2, auth, child), Err(ErrorCode::NoAuth));
    }
    assert!(l.write_as(S2, &bob, set("/bob", b"x", -1)).is_ok());
    assert!(l.write_as(S2, &bob, create("/bob/c", b"")).is_ok());
    // DELETE is checked on the parent, before the node's existence.
    assert_eq!(
        l.write_as(S2, &[], delete("/bob/missing", -1)),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        l.write_as(S2, &bob, delete("/bob/missing", -1)),
        Err(ErrorCode::NoNode)
    );
}

#[test]
fn zookeepers_own_super_digest_value_grants_access() {
    let mut l = Leader::new();
    // The digest id as ZooKeeper's docs and deployments write it for super:superpw.
    let id = Id::new("digest", "super:g9oN2HttPfn8MMWJZ2r45Np/LIA=");
    l.write(create_acl("/s", vec![Acl::new(Perms::ALL, id)]))
        .unwrap();
    assert_eq!(l.read_as(1, &[], get("/s", false)), Err(ErrorCode::NoAuth));
    let auth = digest_user("super:superpw");
    assert!(l.read_as(1, &auth, get("/s", false)).is_ok());
}

#[test]
fn set_acl_needs_admin_and_the_acl_version() {
    let mut l = Leader::new();
    let bob = digest_user("bob:pw");
    l.write_as(S1, &bob, create_acl("/a", Acl::creator_all()))
        .unwrap();
    let set_acl = |acl: Vec<Acl>, version| Request::SetAcl {
        path: "/a".into(),
        acl,
        version,
    };
    assert_eq!(
        l.write_as(S1, &[], set_acl(Acl::open(), -1)),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        l.write_as(S1, &bob, set_acl(Acl::open(), 3)),
        Err(ErrorCode::BadVersion)
    );
    assert_eq!(
        l.write_as(S1, &bob, set_acl(vec![], -1)),
        Err(ErrorCode::InvalidAcl)
    );
    let mzxid = l.stat("/a").mzxid;
    let Ok(Reply::SetAcl { stat }) = l.write_as(S1, &bob, set_acl(Acl::read_only(), 0)) else {
        panic!()
    };
    assert_eq!((stat.aversion, stat.version, stat.mzxid), (1, 0, mzxid));
    assert_eq!(
        l.write_as(S1, &bob, set("/a", b"", -1)),
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn a_proposed_acl_revocation_applies_to_requests_behind_it() {
    let mut l = Leader::new();
    l.write(create("/a", b"")).unwrap();
    let revoke = Request::SetAcl {
        path: "/a".into(),
        acl: Acl::read_only(),
        version: -1,
    };
    l.propose(S1, &[], revoke).unwrap();
    assert_eq!(
        l.propose(S2, &[], set("/a", b"x", -1)),
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn get_acl_needs_read_or_admin_and_hides_digests_from_readers() {
    let mut l = Leader::new();
    let bob = digest_user("bob:pw");
    let acl = vec![
        Acl::new(Perms::ADMIN, bob[0].clone()),
        Acl::new(Perms::READ, Id::anyone()),
    ];
    l.write(create_acl("/a", acl.clone())).unwrap();
    l.write(create_acl("/w", vec![Acl::new(Perms::WRITE, Id::anyone())]))
        .unwrap();
    let get_acl = |path: &str| Request::GetAcl { path: path.into() };
    let Ok(Reply::GetAcl { acl: shown, .. }) = l.read_as(1, &[], get_acl("/a")) else {
        panic!()
    };
    assert_eq!(shown[0].id, Id::new("digest", "bob:x"));
    let Ok(Reply::GetAcl { acl: full, .. }) = l.read_as(1, &bob, get_acl("/a")) else {
        panic!()
    };
    assert_eq!(full, acl);
    assert_eq!(l.read_as(1, &[], get_acl("/w")), Err(ErrorCode::NoAuth));
}
