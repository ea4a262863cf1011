//! The ZooKeeper client against a real, standalone Apache ZooKeeper 3.8 (Debian's
//! `zookeeper` package, which these tests need: without it they fail naming it).
//! Every operation, the error codes a server returns, watches, multi, sync, pings, close
//! and session expiry.

use std::time::Duration;
use workloads::zookeeper::ensemble::{Ensemble, EnsembleConfig};
use workloads::zookeeper::{
    Acl, Client, Config, CreateMode, Error, ErrorCode, EventType, KeeperState, MultiOp, OpResult,
};

const WATCH_WAIT: Duration = Duration::from_secs(10);

fn standalone() -> (tempfile::TempDir, Ensemble) {
    let dir = tempfile::tempdir().unwrap();
    let config = EnsembleConfig::for_tests(1, dir.path());
    let zk = Ensemble::start(config).unwrap_or_else(|e| panic!("{e}"));
    (dir, zk)
}

async fn client(zk: &Ensemble, session_timeout: Duration) -> Client {
    let mut config = Config::new(&zk.client_addrs());
    config.session_timeout = session_timeout;
    Client::connect(config).await.unwrap()
}

/// The code of a failed call, checking that the error names the server.
fn code<T: std::fmt::Debug>(zk: &Ensemble, result: Result<T, Error>) -> ErrorCode {
    let err = result.expect_err("the call should fail");
    assert!(err.to_string().contains(&zk.client_addrs()[0]), "{err}");
    err.code()
}

#[tokio::test]
async fn every_operation_and_its_error_codes() {
    let (_dir, zk) = standalone();
    let c = client(&zk, Duration::from_secs(10)).await;
    let (path, stat) = c.create("/t", b"v0", CreateMode::Persistent).await.unwrap();
    assert_eq!(path, "/t");
    assert!(stat.czxid > 0 && stat.czxid == stat.mzxid && stat.version == 0);
    assert_eq!(c.last_zxid(), stat.czxid, "replies advance the zxid seen");
    let again = c.create("/t", b"", CreateMode::Persistent).await;
    assert_eq!(code(&zk, again), ErrorCode::NodeExists);
    let orphan = c.create("/t/no/parent", b"", CreateMode::Persistent).await;
    assert_eq!(code(&zk, orphan), ErrorCode::NoNode);
    let bad = c.create("relative", b"", CreateMode::Persistent).await;
    assert_eq!(code(&zk, bad), ErrorCode::BadArguments);

    // Data: versions and conditional writes.
    let (data, stat) = c.get_data("/t").await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"v0"[..], 0));
    let stat = c.set_data("/t", b"v1", 0).await.unwrap();
    assert_eq!(stat.version, 1);
    assert_eq!(
        code(&zk, c.set_data("/t", b"v2", 0).await),
        ErrorCode::BadVersion
    );
    assert_eq!(
        code(&zk, c.set_data("/none", b"", -1).await),
        ErrorCode::NoNode
    );
    assert_eq!(code(&zk, c.get_data("/none").await), ErrorCode::NoNode);
    assert_eq!(c.get_data("/t").await.unwrap().0, b"v1");
    assert_eq!(c.exists("/t").await.unwrap().map(|s| s.version), Some(1));
    assert_eq!(c.exists("/none").await.unwrap(), None);

    // Ephemeral and sequential nodes, children.
    let (_, eph) = c.create("/t/e", b"", CreateMode::Ephemeral).await.unwrap();
    assert_eq!(eph.ephemeral_owner, c.session_id());
    let under = c.create("/t/e/x", b"", CreateMode::Persistent).await;
    assert_eq!(code(&zk, under), ErrorCode::NoChildrenForEphemerals);
    let (s1, _) = c
        .create("/t/s-", b"", CreateMode::PersistentSequential)
        .await
        .unwrap();
    let (s2, _) = c
        .create("/t/s-", b"", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert_eq!(s1.len(), "/t/s-".len() + 10, "a 10-digit suffix: {s1}");
    assert!(s1 < s2, "{s1} then {s2}");
    let (mut children, parent) = c.get_children("/t").await.unwrap();
    children.sort();
    let names: Vec<String> = vec!["e".into(), s1[3..].into(), s2[3..].into()];
    assert_eq!(children, names);
    assert_eq!(parent.num_children, 3);
    assert_eq!(code(&zk, c.get_children("/none").await), ErrorCode::NoNode);

    // Deletes.
    assert_eq!(code(&zk, c.delete("/t", -1).await), ErrorCode::NotEmpty);
    assert_eq!(code(&zk, c.delete(&s1, 5).await), ErrorCode::BadVersion);
    c.delete(&s1, 0).await.unwrap();
    assert_eq!(code(&zk, c.delete(&s1, -1).await), ErrorCode::NoNode);

    // ACLs: a read-only node refuses writes, an empty ACL is refused.
    let read_only = vec![Acl {
        perms: 1,
        ..Acl::open().remove(0)
    }];
    c.create_with_acl("/ro", b"", read_only, CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        code(&zk, c.set_data("/ro", b"x", -1).await),
        ErrorCode::NoAuth
    );
    let no_acl = c
        .create_with_acl("/noacl", b"", vec![], CreateMode::Persistent)
        .await;
    assert_eq!(code(&zk, no_acl), ErrorCode::InvalidAcl);

    assert_eq!(c.sync("/t").await.unwrap(), "/t");

    // Close: the ephemeral goes at once, and the closed client refuses calls.
    let other = client(&zk, Duration::from_secs(10)).await;
    let session = c.session_id();
    c.close().await.unwrap();
    assert_eq!(other.exists("/t/e").await.unwrap(), None);
    let mut config = Config::new(&zk.client_addrs());
    config.connect_timeout = Duration::from_secs(3);
    let resumed = Client::resume(config, session, vec![0; 16]).await;
    assert!(
        matches!(resumed, Err(Error::SessionExpired { .. })),
        "a closed session cannot be resumed: {:?}",
        resumed.err()
    );
}

#[tokio::test]
async fn watches_fire_once_before_the_new_value_is_read() {
    let (_dir, zk) = standalone();
    let (watcher, writer) = (
        client(&zk, Duration::from_secs(10)).await,
        client(&zk, Duration::from_secs(10)).await,
    );
    writer
        .create("/w", b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let (_, _, data_watch) = watcher.get_data_watch("/w").await.unwrap();
    let (_, _, child_watch) = watcher.get_children_watch("/w").await.unwrap();
    let (none, create_watch) = watcher.exists_watch("/w/c").await.unwrap();
    assert_eq!(none, None);

    writer.set_data("/w", b"1", -1).await.unwrap();
    writer.set_data("/w", b"2", -1).await.unwrap();
    let event = data_watch.wait(WATCH_WAIT).await.unwrap();
    assert_eq!(
        (event.kind, event.path.as_str()),
        (EventType::NodeDataChanged, "/w")
    );
    assert_eq!(event.state, KeeperState::SyncConnected);

    writer
        .create("/w/c", b"", CreateMode::Persistent)
        .await
        .unwrap();
    let event = create_watch.wait(WATCH_WAIT).await.unwrap();
    assert_eq!(
        (event.kind, event.path.as_str()),
        (EventType::NodeCreated, "/w/c")
    );
    let event = child_watch.wait(WATCH_WAIT).await.unwrap();
    assert_eq!(event.kind, EventType::NodeChildrenChanged);

    // One watch per read: a new one sees the deletion, and the read after the
    // notification sees the value that triggered it (or a newer one).
    let (_, _, delete_watch) = watcher.get_data_watch("/w/c").await.unwrap();
    let (value, _, mut again) = watcher.get_data_watch("/w").await.unwrap();
    assert_eq!(value, b"2");
    writer.delete("/w/c", -1).await.unwrap();
    let event = delete_watch.wait(WATCH_WAIT).await.unwrap();
    assert_eq!(event.kind, EventType::NodeDeleted);
    assert!(
        again.try_take().is_none(),
        "deleting a child is no data change of /w"
    );
    writer.set_data("/w", b"3", -1).await.unwrap();
    again.wait(WATCH_WAIT).await.unwrap();
    assert_eq!(watcher.get_data("/w").await.unwrap().0, b"3");

    // A watch ends with the session.
    let (_, _, orphan) = watcher.get_data_watch("/w").await.unwrap();
    watcher.close().await.unwrap();
    let event = orphan.wait(WATCH_WAIT).await.unwrap();
    assert_eq!(
        (event.kind, event.state),
        (EventType::None, KeeperState::Closed)
    );
}

#[tokio::test]
async fn multi_applies_all_or_nothing() {
    let (_dir, zk) = standalone();
    let c = client(&zk, Duration::from_secs(10)).await;
    c.create("/m", b"", CreateMode::Persistent).await.unwrap();
    let create = |path: &str| MultiOp::Create {
        path: path.into(),
        data: b"d".to_vec(),
        acl: Acl::open(),
        mode: CreateMode::Persistent,
    };
    let ok = c
        .multi(vec![
            create("/m/a"),
            MultiOp::Check {
                path: "/m".into(),
                version: 0,
            },
            MultiOp::SetData {
                path: "/m".into(),
                data: b"x".to_vec(),
                version: 0,
            },
        ])
        .await
        .unwrap();
    assert!(
        matches!(&ok[0], OpResult::Create { path, .. } if path == "/m/a"),
        "{ok:?}"
    );
    assert_eq!(ok[1], OpResult::Check);
    let OpResult::SetData { stat } = &ok[2] else {
        panic!("{ok:?}")
    };
    let created = c.exists("/m/a").await.unwrap().expect("created");
    assert_eq!(stat.mzxid, created.czxid, "one zxid for the whole multi");
    assert_eq!(c.get_data("/m").await.unwrap().0, b"x");

    let failing = vec![
        create("/m/b"),
        MultiOp::Check {
            path: "/m".into(),
            version: 0,
        },
        MultiOp::Delete {
            path: "/m/a".into(),
            version: -1,
        },
    ];
    let err = c.multi(failing.clone()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadVersion);
    let results = c.multi_results(failing).await.unwrap();
    assert_eq!(
        results,
        vec![
            OpResult::RolledBack,
            OpResult::Error(ErrorCode::BadVersion),
            OpResult::Error(ErrorCode::RuntimeInconsistency),
        ]
    );
    assert_eq!(c.exists("/m/b").await.unwrap(), None, "nothing applied");
    assert!(c.exists("/m/a").await.unwrap().is_some(), "nothing applied");
}

#[tokio::test]
async fn pings_keep_an_idle_session_and_expiry_deletes_its_ephemerals() {
    let (_dir, zk) = standalone();
    let idle = client(&zk, Duration::from_secs(2)).await;
    assert_eq!(idle.session_timeout(), Duration::from_secs(2));
    idle.create("/idle", b"", CreateMode::Ephemeral)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stat = idle
        .exists("/idle")
        .await
        .unwrap()
        .expect("kept alive by pings");
    assert_eq!(stat.ephemeral_owner, idle.session_id());

    // A client that vanishes without closing: its session expires after the timeout and
    // takes its ephemerals with it.
    let observer = client(&zk, Duration::from_secs(10)).await;
    let (_, watch) = observer.exists_watch("/idle").await.unwrap();
    let (session, passwd) = (idle.session_id(), idle.session_passwd());
    let vanished = std::time::Instant::now();
    drop(idle);
    let event = watch.wait(WATCH_WAIT).await.unwrap();
    assert_eq!(
        (event.kind, event.path.as_str()),
        (EventType::NodeDeleted, "/idle")
    );
    let after = vanished.elapsed();
    assert!(
        after >= Duration::from_millis(1500),
        "not before the timeout: {after:?}"
    );
    let resumed = Client::resume(Config::new(&zk.client_addrs()), session, passwd).await;
    assert!(
        matches!(resumed, Err(Error::SessionExpired { .. })),
        "{:?}",
        resumed.err()
    );
}
