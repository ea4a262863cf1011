//! The ZooKeeper client against a real 3-server Apache ZooKeeper 3.8 ensemble on
//! 127.0.0.1 (Debian's `zookeeper` package): a session outlives the SIGKILL of its server,
//! moving to another with its id, its ephemerals and its watches.

use std::time::{Duration, Instant};
use workloads::zookeeper::ensemble::{Ensemble, EnsembleConfig};
use workloads::zookeeper::{Client, Config, CreateMode, EventType};

/// Retries a read until the session has moved to a live server, within `deadline`.
async fn read_until_moved(c: &Client, path: &str, deadline: Instant) -> Vec<u8> {
    loop {
        match c.get_data(path).await {
            Ok((data, _)) => return data,
            Err(e) if !e.is_definite() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the session did not move in time: {e}"),
        }
    }
}

#[tokio::test]
async fn a_session_survives_the_kill_of_its_server_with_ephemerals_and_watches() {
    let dir = tempfile::tempdir().unwrap();
    let mut zk =
        Ensemble::start(EnsembleConfig::for_tests(3, dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let addrs = zk.client_addrs();
    assert!(zk.leader().is_some(), "the ensemble elected a leader");

    let mut config = Config::new(&addrs);
    config.session_timeout = Duration::from_secs(10);
    config.request_timeout = Duration::from_secs(5);
    let a = Client::connect(config).await.unwrap();
    assert_eq!(
        a.server().as_deref(),
        Some(addrs[0].as_str()),
        "servers are tried in order"
    );
    let session = a.session_id();
    a.create("/r", b"before", CreateMode::Persistent)
        .await
        .unwrap();
    a.create("/r/eph", b"mine", CreateMode::Ephemeral)
        .await
        .unwrap();
    let (_, _, watch) = a.get_data_watch("/r").await.unwrap();
    let seen_before_kill = a.last_zxid();

    zk.kill(0);
    let data = read_until_moved(&a, "/r/eph", Instant::now() + Duration::from_secs(60)).await;
    assert_eq!(data, b"mine");
    assert_eq!(a.session_id(), session, "the same session, resumed");
    let now = a.server().expect("connected");
    assert_ne!(now, addrs[0], "moved off the killed server");
    let eph = a
        .exists("/r/eph")
        .await
        .unwrap()
        .expect("the ephemeral outlived the move");
    assert_eq!(eph.ephemeral_owner, session);
    assert!(a.last_zxid() >= seen_before_kill);

    // The watch set through the killed server was re-registered on the new one.
    let mut other = Config::new(&[addrs[2].clone(), addrs[1].clone()]);
    other.request_timeout = Duration::from_secs(20);
    let b = Client::connect(other).await.unwrap();
    b.set_data("/r", b"after", -1).await.unwrap();
    let event = watch.wait(Duration::from_secs(20)).await.unwrap();
    assert_eq!(
        (event.kind, event.path.as_str()),
        (EventType::NodeDataChanged, "/r")
    );

    // The killed server restarts from its disk and catches up.
    zk.restart(0).unwrap_or_else(|e| panic!("{e}"));
    let c = Client::connect(Config::new(&addrs[..1])).await.unwrap();
    c.sync("/r").await.unwrap();
    assert_eq!(c.get_data("/r").await.unwrap().0, b"after");
    assert_eq!(a.session_id(), session);
}
