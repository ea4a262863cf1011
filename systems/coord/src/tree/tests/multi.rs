//! multi: all or nothing, later ops seeing earlier ones.

use super::*;

fn multi(ops: Vec<MultiOp>) -> Request {
    Request::Multi { ops }
}

fn m_create(path: &str) -> MultiOp {
    MultiOp::Create(CreateRequest {
        path: path.into(),
        data: Vec::new(),
        acl: Acl::open(),
        flags: CreateFlags::PERSISTENT,
    })
}

#[test]
fn a_multi_applies_every_op_at_one_zxid_and_later_ops_see_earlier_ones() {
    let mut l = Leader::new();
    let ops = vec![
        m_create("/m"),
        m_create("/m/a"),
        MultiOp::SetData(SetDataRequest {
            path: "/m".into(),
            data: b"x".to_vec(),
            version: 0,
        }),
        MultiOp::Check(CheckRequest {
            path: "/m".into(),
            version: 1,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/m/a".into(),
            version: 0,
        }),
    ];
    let Ok(Reply::Multi { results }) = l.write(multi(ops)) else {
        panic!()
    };
    let zxid = l.last_zxid();
    assert!(
        matches!(&results[0], OpResult::Create { path, stat } if path == "/m" && stat.czxid == zxid)
    );
    assert!(matches!(&results[2], OpResult::SetData { stat } if stat.version == 1));
    assert_eq!(results[3], OpResult::Check);
    assert_eq!(results[4], OpResult::Delete);
    let m = l.stat("/m");
    assert_eq!(
        (m.mzxid, m.pzxid, m.num_children, m.cversion),
        (zxid, zxid, 0, 1)
    );
}

#[test]
fn a_failed_multi_changes_nothing_and_says_which_op_failed() {
    let mut l = Leader::new();
    l.write(create("/x", b"")).unwrap();
    let before = l.tree.clone();
    let ops = vec![
        m_create("/new"),
        MultiOp::SetData(SetDataRequest {
            path: "/x".into(),
            data: b"changed".to_vec(),
            version: -1,
        }),
        m_create("/x"),
        m_create("/later"),
    ];
    let reply = l.write(multi(ops)).unwrap();
    let Reply::Multi { results } = reply else {
        panic!()
    };
    assert_eq!(
        results,
        [
            OpResult::RolledBack,
            OpResult::RolledBack,
            OpResult::Error(ErrorCode::NodeExists),
            OpResult::Error(ErrorCode::RuntimeInconsistency),
        ]
    );
    assert_eq!(multi_error(&results), Some(ErrorCode::NodeExists));
    assert!(!l.tree.contains("/new"));
    assert_eq!(l.tree.node("/x"), before.node("/x"));
    assert_eq!(l.tree.footprint_bytes(), before.footprint_bytes());
}

#[test]
fn a_multi_check_fails_on_a_stale_version() {
    let mut l = Leader::new();
    l.write(create("/x", b"")).unwrap();
    l.write(set("/x", b"1", -1)).unwrap();
    let ops = vec![
        MultiOp::Check(CheckRequest {
            path: "/x".into(),
            version: 0,
        }),
        m_create("/y"),
    ];
    let Ok(Reply::Multi { results }) = l.write(multi(ops)) else {
        panic!()
    };
    assert_eq!(multi_error(&results), Some(ErrorCode::BadVersion));
    assert!(!l.tree.contains("/y"));
}

#[test]
fn a_sequential_create_in_a_multi_numbers_from_earlier_ops() {
    let mut l = Leader::new();
    let seq = |p: &str| {
        MultiOp::Create(CreateRequest {
            path: p.into(),
            data: Vec::new(),
            acl: Acl::open(),
            flags: CreateFlags::SEQUENCE,
        })
    };
    let ops = vec![m_create("/q"), seq("/q/n"), seq("/q/n")];
    let Ok(Reply::Multi { results }) = l.write(multi(ops)) else {
        panic!()
    };
    let paths: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            OpResult::Create { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(paths, ["/q", "/q/n0000000000", "/q/n0000000001"]);
}

#[test]
fn oversized_multis_are_refused_whole() {
    let mut l = Leader::new();
    let many = (0..=MAX_MULTI_OPS)
        .map(|i| m_create(&format!("/{i}")))
        .collect();
    assert_eq!(l.write(multi(many)), Err(ErrorCode::BadArguments));
    let half = MultiOp::SetData(SetDataRequest {
        path: "/".into(),
        data: vec![0; MAX_MULTI_DATA_BYTES / 2 + 1],
        version: -1,
    });
    assert_eq!(
        l.write(multi(vec![half.clone(), half])),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(l.write(multi(vec![])), Ok(Reply::Multi { results: vec![] }));
}
