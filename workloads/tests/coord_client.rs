//! The coordination client against three real servers: operations and their errors,
//! watches, pipelining, moving between servers, connection loss, expiry and close.

#[path = "coord_support/mod.rs"]
mod support;

use coord::api::{
    Acl, CheckRequest, CreateFlags, CreateRequest, ErrorCode, EventKind, Id, MultiOp, OpResult,
    Perms, SetDataRequest,
};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use support::{Cluster, Mode, Proxy, WAIT};
use workloads::coord::{ClientState, CoordError, ErrorKind};

fn code(r: Result<impl std::fmt::Debug, CoordError>) -> ErrorCode {
    r.expect_err("an error").code()
}

/// A request's future, boxed so that many can be polled in order.
type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, CoordError>> + 'a>>;

/// Polls every future in order until all are done: each is polled (and so sends its
/// request) before the next, which pins the order requests go out in.
async fn join_in_order<T>(mut futs: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none() {
                if let Poll::Ready(v) = f.as_mut().poll(cx) {
                    out[i] = Some(v);
                }
            }
        }
        if out.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("done")).collect()
}

#[tokio::test]
async fn operations_succeed_and_fail_as_the_api_says() {
    let cluster = Cluster::start(3);
    let c = cluster.client(5_000).await;
    let open = Acl::open();
    let (path, stat) = c
        .create("/a", b"1", &open, CreateFlags::PERSISTENT)
        .await
        .unwrap();
    assert_eq!((path.as_str(), stat.version), ("/a", 0));
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!(c.get_data("/a").await.unwrap().0, b"1");
    let err = c
        .create("/a", b"", &open, CreateFlags::PERSISTENT)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NodeExists);
    assert!(err.is_definite());
    assert!(
        err.to_string().starts_with("create /a via 127.0.0.1:"),
        "{err}"
    );

    assert_eq!(code(c.set_data("/a", b"2", 7).await), ErrorCode::BadVersion);
    let stat = c.set_data("/a", b"2", 0).await.unwrap();
    assert_eq!(stat.version, 1);
    assert_eq!(code(c.get_data("/missing").await), ErrorCode::NoNode);
    assert_eq!(c.exists("/missing").await.unwrap(), None);

    let (seq, _) = c
        .create("/a/s-", b"", &open, CreateFlags::SEQUENCE)
        .await
        .unwrap();
    assert_eq!(seq, "/a/s-0000000000");
    let (eph, st) = c
        .create("/a/e", b"", &open, CreateFlags::EPHEMERAL)
        .await
        .unwrap();
    assert_eq!(st.ephemeral_owner, c.session_id());
    assert_eq!(
        code(
            c.create("/a/e/x", b"", &open, CreateFlags::PERSISTENT)
                .await
        ),
        ErrorCode::NoChildrenForEphemerals
    );
    let (children, stat) = c.get_children("/a").await.unwrap();
    assert_eq!(children, vec!["e".to_string(), "s-0000000000".to_string()]);
    assert_eq!(stat.num_children, 2);
    assert_eq!(code(c.delete("/a", -1).await), ErrorCode::NotEmpty);
    c.delete(&eph, -1).await.unwrap();
    c.delete(&seq, 0).await.unwrap();

    // Refused before sending, naming the problem; certainly not applied.
    let bad = c.get_data("no-slash").await.unwrap_err();
    assert!(
        matches!(bad.kind, ErrorKind::Invalid(_)) && bad.is_definite(),
        "{bad}"
    );

    // A multi applies all or nothing.
    let create_b = MultiOp::Create(CreateRequest {
        path: "/b".into(),
        data: vec![],
        acl: open.clone(),
        flags: CreateFlags::PERSISTENT,
    });
    let stale = MultiOp::Check(CheckRequest {
        path: "/a".into(),
        version: 0,
    });
    assert_eq!(
        code(c.multi(vec![create_b.clone(), stale]).await),
        ErrorCode::BadVersion
    );
    assert_eq!(
        c.exists("/b").await.unwrap(),
        None,
        "nothing of a failed multi applied"
    );
    let set_a = MultiOp::SetData(SetDataRequest {
        path: "/a".into(),
        data: b"3".to_vec(),
        version: 1,
    });
    let results = c.multi(vec![create_b, set_a]).await.unwrap();
    assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/b"));
    assert!(c.exists("/b").await.unwrap().is_some());

    // ACLs, and the identity add_auth gives a connection.
    let user = Id::new("digest", "alice");
    let (_, _) = c
        .create("/private", b"s", &open, CreateFlags::PERSISTENT)
        .await
        .unwrap();
    c.add_auth("digest", b"alice:secret").await.unwrap();
    c.set_acl("/private", &Acl::creator_all(), -1)
        .await
        .unwrap();
    let (acl, stat) = c.get_acl("/private").await.unwrap();
    assert_eq!(stat.aversion, 1);
    assert_eq!(acl.len(), 1);
    assert!(acl[0].id.id.starts_with("alice:") && acl[0].id.scheme == user.scheme);
    assert_eq!(c.get_data("/private").await.unwrap().0, b"s");
    let other = cluster.client(5_000).await;
    assert_eq!(code(other.get_data("/private").await), ErrorCode::NoAuth);
    assert_eq!(
        code(
            other
                .set_acl("/private", &[Acl::new(Perms::ALL, Id::anyone())], -1)
                .await
        ),
        ErrorCode::NoAuth
    );
    other.sync("/").await.unwrap();
    c.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test]
async fn watches_fire_once_and_before_the_new_value_is_readable() {
    let cluster = Cluster::start(3);
    // The watcher and the writer sit on different servers.
    let watcher = support::connect(vec![cluster.clients[0]], 5_000).await;
    let writer = support::connect(vec![cluster.clients[1]], 5_000).await;
    let open = Acl::open();

    // exists on a missing node leaves a watch that its creation fires.
    let (none, appear) = watcher.exists_watch("/w").await.unwrap();
    assert_eq!(none, None);
    let (_, created) = writer
        .create("/w", b"0", &open, CreateFlags::PERSISTENT)
        .await
        .unwrap();
    let event = appear.wait(WAIT).await.expect("fired").unwrap();
    assert_eq!(
        (event.kind, event.zxid),
        (EventKind::NodeCreated, created.czxid)
    );

    // A data watch fires once, for the first change; the reader that sees the new value
    // finds the notification already delivered.
    let (_, _, mut w1) = watcher.get_data_watch("/w").await.unwrap();
    let (_, _, mut w2) = watcher.get_data_watch("/w").await.unwrap();
    let first = writer.set_data("/w", b"1", -1).await.unwrap();
    let second = writer.set_data("/w", b"2", -1).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (data, _) = watcher.get_data("/w").await.unwrap();
        if data != b"0" {
            let event = w1
                .try_fired()
                .expect("notified before the new value")
                .unwrap();
            assert_eq!(
                (event.kind, event.zxid),
                (EventKind::NodeDataChanged, first.mzxid)
            );
            let fanned = w2.try_fired().expect("both local watches fire").unwrap();
            assert_eq!(fanned, event, "one server notification, fanned out");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw the write"
        );
    }
    // The next watch fires for the next change only.
    watcher.sync("/w").await.unwrap();
    let (data, _, w3) = watcher.get_data_watch("/w").await.unwrap();
    assert_eq!(data, b"2");
    let (children, _, kids) = watcher.get_children_watch("/w").await.unwrap();
    assert!(children.is_empty());
    let third = writer.set_data("/w", b"3", -1).await.unwrap();
    let event = w3.wait(WAIT).await.expect("fired").unwrap();
    assert_eq!(event.zxid, third.mzxid);
    assert!(event.zxid > second.mzxid);
    // A child watch ignores data changes and fires on a child's creation.
    let (_, child) = writer
        .create("/w/c", b"", &open, CreateFlags::PERSISTENT)
        .await
        .unwrap();
    let event = kids.wait(WAIT).await.expect("fired").unwrap();
    assert_eq!(
        (event.kind, event.zxid),
        (EventKind::NodeChildrenChanged, child.czxid)
    );
    // Deletion fires data watches as NodeDeleted.
    let (_, gone) = watcher.exists_watch("/w/c").await.unwrap();
    writer.delete("/w/c", -1).await.unwrap();
    assert_eq!(
        gone.wait(WAIT).await.expect("fired").unwrap().kind,
        EventKind::NodeDeleted
    );
}

#[tokio::test]
async fn pipelined_requests_are_applied_and_answered_in_order() {
    let cluster = Cluster::start(3);
    let c = cluster.client(5_000).await;
    c.create("/p", b"", &Acl::open(), CreateFlags::PERSISTENT)
        .await
        .unwrap();
    const N: i32 = 100;
    // Each setData expects the version the previous one made, and each read follows a
    // write: any reordering makes a write fail or a read see another value.
    let mut futs: Vec<Pending<'_, Vec<u8>>> = vec![];
    for v in 0..N {
        let c = &c;
        futs.push(Box::pin(async move {
            let stat = c.set_data("/p", v.to_string().as_bytes(), v).await?;
            Ok(stat.version.to_string().into_bytes())
        }));
        futs.push(Box::pin(async move { Ok(c.get_data("/p").await?.0) }));
    }
    let started = std::time::Instant::now();
    let results = join_in_order(futs).await;
    for (i, r) in results.into_iter().enumerate() {
        let v = (i / 2) as i32;
        let want = if i % 2 == 0 { v + 1 } else { v };
        assert_eq!(
            String::from_utf8(r.unwrap()).unwrap(),
            want.to_string(),
            "request {i}"
        );
    }
    eprintln!("{} pipelined requests in {:?}", 2 * N, started.elapsed());
}

#[tokio::test]
async fn a_session_moves_to_another_server_when_its_server_stops() {
    let mut cluster = Cluster::start(3);
    // Connected to the leader, so that stopping it also costs an election.
    let leader = cluster.leader().await;
    let order = (0..3).map(|i| cluster.clients[(leader + i) % 3]).collect();
    let c = support::connect(order, 4_000).await;
    let first = c.server().expect("connected");
    assert_eq!(first, cluster.clients[leader]);
    let session = c.session_id();
    let (eph, _) = c
        .create("/mine", b"", &Acl::open(), CreateFlags::EPHEMERAL)
        .await
        .unwrap();
    let seen = c.last_zxid();
    let stopped = std::time::Instant::now();
    cluster.stop(leader);

    let moved = c
        .wait_for_state(
            |s| matches!(s, ClientState::Connected(a) if *a != first),
            WAIT,
        )
        .await;
    assert!(moved.is_some(), "reconnected elsewhere: {:?}", c.state());
    assert_eq!(c.session_id(), session, "the same session");
    assert!(c.last_zxid() >= seen, "never back in time");
    let stat = retry(|| c.exists(&eph))
        .await
        .expect("the ephemeral survived");
    assert_eq!(stat.ephemeral_owner, session);
    retry(|| c.set_data(&eph, b"still mine", -1)).await;
    eprintln!(
        "served again {:?} after the leader stopped",
        stopped.elapsed()
    );
}

#[tokio::test]
async fn dropping_every_handle_closes_the_session() {
    let cluster = Cluster::start(3);
    let c = cluster.client(30_000).await;
    let observer = cluster.client(5_000).await;
    c.create("/dropped", b"", &Acl::open(), CreateFlags::EPHEMERAL)
        .await
        .unwrap();
    let (_, gone) = observer.exists_watch("/dropped").await.unwrap();
    let copy = c.clone();
    drop(c);
    assert!(
        copy.exists("/dropped").await.unwrap().is_some(),
        "a clone keeps the session"
    );
    drop(copy);
    // Far sooner than the 30 s session timeout: the session was closed, not expired.
    let event = gone.wait(WAIT).await.expect("deleted").unwrap();
    assert_eq!(event.kind, EventKind::NodeDeleted);
}

/// Retries an idempotent call through the connection losses of a failover.
async fn retry<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CoordError>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn a_request_in_flight_at_a_loss_is_indeterminate() {
    let cluster = Cluster::start(3);
    let proxy = Proxy::start(cluster.clients[0]).await;
    let c = support::connect(vec![proxy.addr], 5_000).await;
    let observer = cluster.client(5_000).await;
    let (_, _, mut watch) = {
        c.create("/x", b"", &Acl::open(), CreateFlags::PERSISTENT)
            .await
            .unwrap();
        c.get_data_watch("/x").await.unwrap()
    };
    proxy.set(Mode::HoldReplies);
    let pending = c.set_data("/x", b"applied", -1);
    tokio::pin!(pending);
    // The write reaches the server and is applied; its answer is held in the proxy.
    let applied = async {
        loop {
            observer.sync("/x").await.unwrap();
            if observer.get_data("/x").await.unwrap().0 == b"applied" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        _ = applied => {}
        r = &mut pending => panic!("answered through a held proxy: {r:?}"),
    }
    proxy.cut();
    proxy.set(Mode::Open);
    let err = pending.await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ConnectionLoss, "{err}");
    assert!(!err.is_definite(), "it may have been applied (and was)");
    // The session resumes through the proxy, and reads the write it lost the answer of.
    let (data, stat) = retry(|| c.get_data("/x")).await;
    assert_eq!(data, b"applied");
    // Its notification was cut with the held answer; the resumed session carried the
    // watch back, and the server fired it for the change missed, before that read.
    let fired = watch
        .try_fired()
        .expect("fired before the new value was read");
    let event = fired.expect("a watch outlives its connection");
    assert_eq!(event.kind, EventKind::NodeDataChanged);
    assert_eq!(event.zxid, stat.mzxid);
}

/// Watches belong to a session: when its connection breaks, the client carries them to
/// the next server, which fires those whose change the client missed while away and keeps
/// the rest.
#[tokio::test]
async fn watches_outlive_their_connection_and_report_what_changed_while_away() {
    let cluster = Cluster::start(3);
    let mut proxies = vec![];
    for addr in &cluster.clients {
        proxies.push(Proxy::start(*addr).await);
    }
    let c = support::connect(proxies.iter().map(|p| p.addr).collect(), 8_000).await;
    let observer = cluster.client(5_000).await;
    for path in ["/changed", "/quiet", "/parent", "/doomed"] {
        c.create(path, b"", &Acl::open(), CreateFlags::PERSISTENT)
            .await
            .unwrap();
    }
    let (_, _, changed) = c.get_data_watch("/changed").await.unwrap();
    let (_, _, mut quiet) = c.get_data_watch("/quiet").await.unwrap();
    let (_, _, parent) = c.get_children_watch("/parent").await.unwrap();
    let (_, _, doomed) = c.get_data_watch("/doomed").await.unwrap();
    let (absent, born) = c.exists_watch("/born").await.unwrap();
    assert!(absent.is_none());
    let session = c.session_id();

    // Cut every connection and let no new one through while the tree changes.
    for p in &proxies {
        p.set(Mode::Frozen);
        p.cut();
    }
    let away = c
        .wait_for_state(|s| *s == ClientState::Connecting, WAIT)
        .await;
    assert!(away.is_some(), "the client noticed: {:?}", c.state());
    observer.set_data("/changed", b"1", -1).await.unwrap();
    let flags = CreateFlags::PERSISTENT;
    observer
        .create("/parent/kid", b"", &Acl::open(), flags)
        .await
        .unwrap();
    observer.delete("/doomed", -1).await.unwrap();
    observer
        .create("/born", b"", &Acl::open(), flags)
        .await
        .unwrap();
    for p in &proxies {
        p.set(Mode::Open);
    }

    let expect = [
        (changed, "/changed", EventKind::NodeDataChanged),
        (parent, "/parent", EventKind::NodeChildrenChanged),
        (born, "/born", EventKind::NodeCreated),
        (doomed, "/doomed", EventKind::NodeDeleted),
    ];
    let mut last_zxid = 0;
    for (watch, path, kind) in expect {
        let event = watch.wait(WAIT).await.expect("fired").expect("not lost");
        assert_eq!((event.path.as_str(), event.kind), (path, kind));
        assert!(event.zxid >= last_zxid, "notifications in zxid order");
        last_zxid = event.zxid;
    }
    assert_eq!(c.session_id(), session, "the session resumed");
    assert!(
        quiet.try_fired().is_none(),
        "an unchanged node's watch waits"
    );
    observer.set_data("/quiet", b"now", -1).await.unwrap();
    let event = quiet.wait(WAIT).await.expect("fired").expect("not lost");
    assert_eq!(event.kind, EventKind::NodeDataChanged);
    assert_eq!(c.get_data("/quiet").await.unwrap().1.mzxid, event.zxid);
}

#[tokio::test]
async fn a_silent_client_loses_its_session_and_its_ephemerals_everywhere() {
    let cluster = Cluster::start(3);
    let mut proxies = vec![];
    for addr in &cluster.clients {
        proxies.push(Proxy::start(*addr).await);
    }
    let addrs = proxies.iter().map(|p| p.addr).collect();
    let c = support::connect(addrs, 1_000).await;
    c.create("/gone", b"", &Acl::open(), CreateFlags::EPHEMERAL)
        .await
        .unwrap();
    for p in &proxies {
        p.set(Mode::Frozen);
    }
    // Every server drops the ephemeral once the leader expires the session.
    for addr in &cluster.clients {
        let direct = support::connect(vec![*addr], 5_000).await;
        support::eventually("the ephemeral vanishes", || async {
            direct.sync("/").await.unwrap();
            direct.exists("/gone").await.unwrap().is_none()
        })
        .await;
    }
    for p in &proxies {
        p.set(Mode::Open);
        p.cut();
    }
    let state = c.wait_for_state(|s| *s == ClientState::Expired, WAIT).await;
    assert_eq!(
        state,
        Some(ClientState::Expired),
        "the server said so on reconnect"
    );
    let err = c.get_data("/").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::SessionExpired(c.session_id()));
    assert!(err.is_terminal());
}

#[tokio::test]
async fn close_ends_the_session_and_its_ephemerals() {
    let cluster = Cluster::start(3);
    let c = cluster.client(5_000).await;
    let observer = cluster.client(5_000).await;
    c.create("/bye", b"", &Acl::open(), CreateFlags::EPHEMERAL)
        .await
        .unwrap();
    let (_, _, watch) = c.get_data_watch("/bye").await.unwrap();
    c.close().await.unwrap();
    assert_eq!(c.state(), ClientState::Closed);
    // The close deletes the ephemeral, which fires the session's own watch before the
    // close is answered (notifications precede replies); a watch still pending then
    // fails with the client.
    match watch.wait(WAIT).await.expect("resolved") {
        Ok(event) => assert_eq!(
            (event.path.as_str(), event.kind),
            ("/bye", EventKind::NodeDeleted)
        ),
        Err(e) => assert_eq!(e.kind, ErrorKind::Closed),
    }
    assert_eq!(c.get_data("/").await.unwrap_err().kind, ErrorKind::Closed);
    c.close().await.expect("closing twice is fine");
    observer.sync("/").await.unwrap();
    assert_eq!(
        observer.exists("/bye").await.unwrap(),
        None,
        "deleted by the close"
    );
}

/// The writer is notified before it can read its own new value: the server sends a
/// transaction's watch notifications before the write's reply and the reads queued behind
/// it, as ZooKeeper does. Raw frames, so that the order on the wire is what is checked
/// (the client's own scheduling could hide it).
#[tokio::test]
async fn the_writer_is_notified_before_it_reads_its_new_value() {
    use coord::api::{Reply, Request};
    use coord::server::proto::{ClientMsg, ServerMsg};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = Cluster::start(3);
    let c = cluster.client(5_000).await;
    c.create("/own", b"0", &Acl::open(), CreateFlags::PERSISTENT)
        .await
        .unwrap();
    let connect = ClientMsg::Connect {
        session: None,
        timeout_ms: 5_000,
        last_zxid: c.last_zxid(),
    };
    let get = |watch| Request::GetData {
        path: "/own".into(),
        watch,
    };
    let set = Request::SetData(SetDataRequest {
        path: "/own".into(),
        data: b"1".to_vec(),
        version: -1,
    });
    async fn recv(s: &mut tokio::net::TcpStream) -> ServerMsg {
        let mut header = [0u8; 4];
        tokio::time::timeout(WAIT, s.read_exact(&mut header))
            .await
            .unwrap()
            .unwrap();
        let mut body = vec![0u8; machine::wire::body_len(header).unwrap()];
        s.read_exact(&mut body).await.unwrap();
        machine::wire::decode::<ServerMsg>(&body).unwrap()
    }
    // The node may still be catching up with the leader: it refuses until it serves.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut s = loop {
        let mut s = tokio::net::TcpStream::connect(cluster.clients[0])
            .await
            .unwrap();
        s.write_all(&machine::wire::encode(&connect).unwrap())
            .await
            .unwrap();
        match recv(&mut s).await {
            ServerMsg::Connected { .. } => break s,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "never connected: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut send = Vec::new();
    for (xid, request) in [(1, get(true)), (2, set), (3, get(false))] {
        send.extend(machine::wire::encode(&ClientMsg::Op { xid, request }).unwrap());
    }
    let mut order = vec![];
    s.write_all(&send).await.unwrap();
    while order.len() < 4 {
        match recv(&mut s).await {
            ServerMsg::Reply {
                xid: 3,
                result: Ok(Reply::GetData { data, .. }),
                ..
            } => order.push(format!("read {}", String::from_utf8(data).unwrap())),
            ServerMsg::Reply { xid, .. } => order.push(format!("reply {xid}")),
            ServerMsg::Watch { event } => order.push(format!("{:?}", event.kind)),
            other => panic!("{other:?}"),
        }
    }
    let notified = order
        .iter()
        .position(|m| m == "NodeDataChanged")
        .expect("notified");
    let read = order
        .iter()
        .position(|m| m == "read 1")
        .expect("read the new value");
    assert!(
        notified < read,
        "the notification must come first: {order:?}"
    );
}
