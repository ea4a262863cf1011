//! The recipes against three real servers, under contention and through connection
//! losses and session expiry.

#[path = "coord_support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Cluster, Mode, Proxy, WAIT};
use workloads::coord::recipes::barrier::DoubleBarrier;
use workloads::coord::recipes::config::{publish, ConfigWatch};
use workloads::coord::recipes::election::Election;
use workloads::coord::recipes::lock::Lock;
use workloads::coord::recipes::membership::Group;
use workloads::coord::recipes::rwlock::RwLock;
use workloads::coord::recipes::{protected, RecipeError};
use workloads::coord::CoordClient;

const SHORT: Duration = Duration::from_millis(300);

async fn clients(cluster: &Cluster, n: usize) -> Vec<CoordClient> {
    let mut out = vec![];
    for i in 0..n {
        // Spread over the servers, so that watches and reads cross them.
        let addrs = (0..3).map(|j| cluster.clients[(i + j) % 3]).collect();
        out.push(support::connect(addrs, 5_000).await);
    }
    out
}

async fn children(c: &CoordClient, dir: &str) -> Vec<String> {
    c.sync(dir).await.unwrap();
    c.get_children(dir).await.unwrap().0
}

#[tokio::test]
async fn config_watchers_get_every_published_value_in_order() {
    let cluster = Cluster::start(3);
    let cs = clients(&cluster, 3).await;
    let (admin, workers) = (&cs[0], &cs[1..]);
    let mut watches: Vec<ConfigWatch> = workers
        .iter()
        .map(|c| ConfigWatch::new(c.clone(), "/settings"))
        .collect();
    for w in &mut watches {
        assert_eq!(w.next(WAIT).await.unwrap(), None, "no configuration yet");
    }
    let mut last_mzxid = 0;
    for v in 0..10 {
        let value = format!("v{v}");
        let stat = publish(admin, "/settings", value.as_bytes(), WAIT)
            .await
            .unwrap();
        for w in &mut watches {
            let (data, seen) = w.next(WAIT).await.unwrap().expect("published");
            assert_eq!((data, seen.mzxid), (value.clone().into_bytes(), stat.mzxid));
        }
        assert!(stat.mzxid > last_mzxid);
        last_mzxid = stat.mzxid;
    }
    // A burst: changes between a notification and the re-read coalesce, but each value
    // a worker gets is newer than the last, and it ends on the latest.
    for v in 0..20 {
        publish(admin, "/settings", format!("burst{v}").as_bytes(), WAIT)
            .await
            .unwrap();
    }
    let mut previous = last_mzxid;
    loop {
        let (data, stat) = watches[0].next(WAIT).await.unwrap().expect("published");
        assert!(stat.mzxid > previous, "values only move forward");
        previous = stat.mzxid;
        if data == b"burst19" {
            break;
        }
    }
}

#[tokio::test]
async fn members_appear_leave_and_vanish_with_their_sessions() {
    let cluster = Cluster::start(3);
    let cs = clients(&cluster, 4).await;
    let observer = Group::new(cs[0].clone(), "/workers");
    let mut members = vec![];
    for (i, c) in cs[1..].iter().enumerate() {
        let group = Group::new(c.clone(), "/workers");
        members.push(group.join(&format!("w{i}"), b"host", WAIT).await.unwrap());
    }
    let mut watch = observer.watch();
    assert_eq!(watch.next(WAIT).await.unwrap(), vec!["w0", "w1", "w2"]);
    // The name is taken while its owner lives.
    let taken = observer.join("w0", b"", WAIT).await.unwrap_err();
    assert!(matches!(taken, RecipeError::Taken { owner, .. } if owner == cs[1].session_id()));

    members.remove(0).leave(WAIT).await.unwrap();
    assert_eq!(watch.next(WAIT).await.unwrap(), vec!["w1", "w2"]);
    cs[2].close().await.unwrap();
    assert_eq!(
        watch.next(WAIT).await.unwrap(),
        vec!["w2"],
        "w1's session ended"
    );
}

/// A resource that must see one holder at a time, with fencing tokens that only grow.
#[derive(Default)]
struct Resource {
    holders: AtomicUsize,
    /// Read, then written after a yield: a second holder would lose updates.
    counter: AtomicUsize,
    tokens: Mutex<Vec<u64>>,
}

impl Resource {
    async fn use_exclusively(&self, token: u64) {
        assert_eq!(
            self.holders.fetch_add(1, Ordering::SeqCst),
            0,
            "two holders at once"
        );
        {
            let mut tokens = self.tokens.lock().unwrap();
            let newest = tokens.last().copied().unwrap_or(0);
            assert!(token > newest, "token {token:#x} after {newest:#x}");
            tokens.push(token);
        }
        let v = self.counter.load(Ordering::SeqCst);
        tokio::task::yield_now().await;
        self.counter.store(v + 1, Ordering::SeqCst);
        self.holders.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_excludes_and_its_tokens_increase_under_contention() {
    const CLIENTS: usize = 5;
    const ROUNDS: usize = 20;
    let cluster = Cluster::start(3);
    let resource = Arc::new(Resource::default());
    let started = std::time::Instant::now();
    let mut tasks = vec![];
    for c in clients(&cluster, CLIENTS).await {
        let resource = resource.clone();
        tasks.push(tokio::spawn(async move {
            let lock = Lock::new(c, "/locks/a");
            for _ in 0..ROUNDS {
                let guard = lock.acquire(WAIT).await.unwrap();
                resource.use_exclusively(guard.token()).await;
                guard.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        resource.counter.load(Ordering::SeqCst),
        CLIENTS * ROUNDS,
        "no lost update"
    );
    eprintln!(
        "{} acquisitions in {:?}",
        CLIENTS * ROUNDS,
        started.elapsed()
    );
}

/// The lock, the shared lock and the election queue with protected creates: this is the
/// step that makes them safe through a lost answer.
#[tokio::test]
async fn a_protected_create_whose_answer_is_lost_is_found_not_duplicated() {
    let cluster = Cluster::start(3);
    let proxy = Proxy::start(cluster.clients[0]).await;
    let c = support::connect(vec![proxy.addr], 5_000).await;
    let observer = cluster.client(5_000).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    workloads::coord::recipes::ensure_path(&observer, "/locks/b", deadline)
        .await
        .unwrap();
    proxy.set(Mode::HoldReplies);
    let creating = protected::create(&c, "/locks/b", "x-", b"", true, deadline);
    tokio::pin!(creating);
    // The create is applied; its answer is held, then lost with the connection.
    tokio::select! {
        _ = support::eventually("the create is applied", || async {
            children(&observer, "/locks/b").await.len() == 1
        }) => {}
        r = &mut creating => panic!("answered through a held proxy: {r:?}"),
    }
    proxy.cut();
    proxy.set(Mode::Open);
    let node = creating.await.unwrap();
    let nodes = children(&observer, "/locks/b").await;
    assert_eq!(
        nodes,
        vec![node.name.clone()],
        "found its node, made no second one"
    );
    let stat = observer.exists(&node.path).await.unwrap().expect("there");
    assert_eq!(
        (stat.czxid, stat.ephemeral_owner),
        (node.stat.czxid, c.session_id())
    );
    // It is a live place in the lock's queue: the lock is taken until it goes.
    let other = Lock::new(observer.clone(), "/locks/b");
    assert!(matches!(
        other.acquire(SHORT).await,
        Err(RecipeError::Timeout { .. })
    ));
    protected::withdraw(&c, "/locks/b", &node, deadline)
        .await
        .unwrap();
    other.acquire(WAIT).await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn an_expired_holder_loses_the_lock_to_a_larger_token() {
    let cluster = Cluster::start(3);
    let mut proxies = vec![];
    for addr in &cluster.clients {
        proxies.push(Proxy::start(*addr).await);
    }
    let holder = support::connect(proxies.iter().map(|p| p.addr).collect(), 1_000).await;
    let next = cluster.client(5_000).await;
    let held = Lock::new(holder.clone(), "/locks/c")
        .acquire(WAIT)
        .await
        .unwrap();
    let waiting = Lock::new(next.clone(), "/locks/c");
    assert!(matches!(
        waiting.acquire(SHORT).await,
        Err(RecipeError::Timeout { .. })
    ));
    for p in &proxies {
        p.set(Mode::Frozen); // The holder pauses; its session expires.
    }
    let taken = waiting.acquire(WAIT).await.unwrap();
    assert!(
        taken.token() > held.token(),
        "a fenced resource refuses the old holder"
    );
    for p in &proxies {
        p.set(Mode::Open);
        p.cut();
    }
    let still = held.still_held(WAIT).await;
    assert!(
        matches!(&still, Err(RecipeError::Coord(e)) if e.is_terminal())
            || matches!(still, Ok(false)),
        "{still:?}"
    );
    taken.release().await.unwrap();
}

#[tokio::test]
async fn the_shared_lock_shares_reads_and_queues_writes_fairly() {
    let cluster = Cluster::start(3);
    let cs = clients(&cluster, 4).await;
    let lock = |i: usize| RwLock::new(cs[i].clone(), "/rw");
    let r1 = lock(0).read(WAIT).await.unwrap();
    let r2 = lock(1).read(WAIT).await.unwrap(); // Readers share.
    let reader_token = r2.token();
    assert!(matches!(
        lock(2).write(SHORT).await,
        Err(RecipeError::Timeout { .. })
    ));
    // A writer queues; a reader arriving after it waits for it (writers do not starve).
    let writer = lock(2);
    let writing = tokio::spawn(async move { writer.write(WAIT).await });
    support::eventually("the writer queues", || async {
        children(&cs[3], "/rw").await.len() == 3
    })
    .await;
    let order = Arc::new(Mutex::new(vec![]));
    let late = lock(3);
    let seen = order.clone();
    let reading = tokio::spawn(async move {
        let r = late.read(WAIT).await;
        seen.lock().unwrap().push("late reader acquired");
        r
    });
    support::eventually("the reader queues", || async {
        children(&cs[0], "/rw").await.len() == 4
    })
    .await;
    r1.release().await.unwrap();
    r2.release().await.unwrap();
    let w = writing.await.unwrap().unwrap();
    assert!(w.token() > reader_token);
    order.lock().unwrap().push("writer releases");
    w.release().await.unwrap();
    let r = reading.await.unwrap().unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        vec!["writer releases", "late reader acquired"]
    );
    r.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_lock_excludes_writers_from_everyone_under_contention() {
    let cluster = Cluster::start(3);
    let readers = Arc::new(AtomicUsize::new(0));
    let writers = Arc::new(AtomicUsize::new(0));
    let most_readers = Arc::new(AtomicUsize::new(0));
    let mut tasks = vec![];
    for (i, c) in clients(&cluster, 5).await.into_iter().enumerate() {
        let (readers, writers, most) = (readers.clone(), writers.clone(), most_readers.clone());
        tasks.push(tokio::spawn(async move {
            let lock = RwLock::new(c, "/rw2");
            for _ in 0..8 {
                if i < 3 {
                    let g = lock.read(WAIT).await.unwrap();
                    let now = readers.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    assert_eq!(
                        writers.load(Ordering::SeqCst),
                        0,
                        "a reader beside a writer"
                    );
                    tokio::task::yield_now().await;
                    readers.fetch_sub(1, Ordering::SeqCst);
                    g.release().await.unwrap();
                } else {
                    let g = lock.write(WAIT).await.unwrap();
                    assert_eq!(writers.fetch_add(1, Ordering::SeqCst), 0, "two writers");
                    assert_eq!(readers.load(Ordering::SeqCst), 0, "a writer beside readers");
                    tokio::task::yield_now().await;
                    writers.fetch_sub(1, Ordering::SeqCst);
                    g.release().await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "at most {} readers at once",
        most_readers.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn leadership_passes_in_order_when_the_leader_leaves() {
    let cluster = Cluster::start(3);
    let cs = clients(&cluster, 4).await;
    let observer = Election::new(cs[3].clone(), "/election");
    assert_eq!(observer.leader(WAIT).await.unwrap(), None);
    let mut candidates = vec![];
    for (i, c) in cs[..3].iter().enumerate() {
        let election = Election::new(c.clone(), "/election");
        candidates.push(
            election
                .volunteer(format!("c{i}").as_bytes(), WAIT)
                .await
                .unwrap(),
        );
    }
    let first = candidates[0].lead(WAIT).await.unwrap();
    assert!(matches!(
        candidates[1].lead(SHORT).await,
        Err(RecipeError::Timeout { .. })
    ));
    let leader = observer.leader(WAIT).await.unwrap().expect("a leader");
    assert_eq!((leader.data, leader.token), (b"c0".to_vec(), first));
    assert_eq!(leader.session, cs[0].session_id());

    // The leader's session closes: its successor, and only it, takes over.
    cs[0].close().await.unwrap();
    let second = candidates[1].lead(WAIT).await.unwrap();
    assert!(second > first, "a later leader has a larger token");
    assert!(matches!(
        candidates[2].lead(SHORT).await,
        Err(RecipeError::Timeout { .. })
    ));
    assert_eq!(
        observer.leader(WAIT).await.unwrap().expect("a leader").data,
        b"c1"
    );
    assert!(candidates[1].still_candidate(WAIT).await.unwrap());

    candidates.remove(1).resign().await.unwrap();
    let third = candidates[1].lead(WAIT).await.unwrap();
    assert!(third > second);
    assert_eq!(
        observer
            .leader(WAIT)
            .await
            .unwrap()
            .expect("a leader")
            .token,
        third
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_double_barrier_lets_all_in_together_and_all_out_together() {
    const N: usize = 4;
    let cluster = Cluster::start(3);
    let entering = Arc::new(AtomicUsize::new(0));
    let leaving = Arc::new(AtomicUsize::new(0));
    let mut tasks = vec![];
    for (i, c) in clients(&cluster, N).await.into_iter().enumerate() {
        let (entering, leaving) = (entering.clone(), leaving.clone());
        tasks.push(tokio::spawn(async move {
            let barrier = DoubleBarrier::new(c, "/barrier", &format!("p{i}"), N);
            // Arrive at different times: the work before the barrier takes a while.
            tokio::time::sleep(Duration::from_millis(40 * i as u64)).await;
            entering.fetch_add(1, Ordering::SeqCst);
            barrier.enter(WAIT).await.unwrap();
            assert_eq!(
                entering.load(Ordering::SeqCst),
                N,
                "entered before all arrived"
            );
            tokio::time::sleep(Duration::from_millis(40 * (N - i) as u64)).await;
            leaving.fetch_add(1, Ordering::SeqCst);
            barrier.leave(WAIT).await.unwrap();
            assert_eq!(
                leaving.load(Ordering::SeqCst),
                N,
                "left before all were leaving"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let observer = cluster.client(5_000).await;
    assert!(
        children(&observer, "/barrier").await.is_empty(),
        "ready and every node gone"
    );
}

/// A create applied whose answer never comes, through a server that then goes silent: the
/// creator cannot look for its node, so it must say the node may remain (the caller then
/// ends the session), not report a plain connection loss.
#[tokio::test]
async fn a_protected_create_that_cannot_be_looked_for_says_its_node_may_remain() {
    let cluster = Cluster::start(3);
    let proxy = Proxy::start(cluster.clients[0]).await;
    let c = support::connect(vec![proxy.addr], 5_000).await;
    let observer = cluster.client(5_000).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    workloads::coord::recipes::ensure_path(&observer, "/locks/f", deadline)
        .await
        .unwrap();
    proxy.set(Mode::HoldReplies);
    let short = tokio::time::Instant::now() + Duration::from_millis(1_500);
    let creating = protected::create(&c, "/locks/f", "x-", b"", true, short);
    tokio::pin!(creating);
    tokio::select! {
        _ = support::eventually("the create is applied", || async {
            children(&observer, "/locks/f").await.len() == 1
        }) => {}
        r = &mut creating => panic!("answered through a held proxy: {r:?}"),
    }
    proxy.set(Mode::Frozen);
    let r = creating.await;
    match &r {
        Err(RecipeError::Stranded { path, .. }) => assert!(path.starts_with("/locks/f/x-")),
        other => panic!("a create that cannot be looked for is stranded: {other:?}"),
    }
    // The node may still be there (or the session may have expired already, since the
    // client learns of the loss only when its session is nearly over); ending the session
    // takes it away.
    proxy.set(Mode::Open);
    proxy.cut();
    c.close().await.ok();
    support::eventually("the node went with its session", || {
        let observer = observer.clone();
        async move { children(&observer, "/locks/f").await.is_empty() }
    })
    .await;
}

#[tokio::test]
async fn a_waiter_that_cannot_withdraw_says_its_node_may_remain() {
    let cluster = Cluster::start(3);
    let proxy = Proxy::start(cluster.clients[1]).await;
    let holder = cluster.client(10_000).await;
    let waiter = support::connect(vec![proxy.addr], 10_000).await;
    let held = Lock::new(holder.clone(), "/locks/s")
        .acquire(WAIT)
        .await
        .unwrap();
    let waiting = tokio::spawn(async move {
        let r = Lock::new(waiter.clone(), "/locks/s")
            .acquire(Duration::from_millis(1_500))
            .await;
        (r, waiter)
    });
    // Queued by now; then its server goes silent, so the withdrawal gets no answer.
    support::eventually("the waiter queued", || {
        let holder = holder.clone();
        async move { children(&holder, "/locks/s").await.len() == 2 }
    })
    .await;
    // The node is there; let its create's answer reach the waiter before the server goes
    // silent (a create left unanswered is the case of the test above).
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set(Mode::Frozen);
    let (r, waiter) = waiting.await.unwrap();
    assert!(
        matches!(&r, Err(RecipeError::Stranded { .. })),
        "a failed withdrawal is not a clean timeout: {r:?}"
    );
    // The node may still sit behind the holder (or its session may have expired already,
    // on a slow machine); ending the session takes it away, so the queue moves again.
    proxy.set(Mode::Open);
    proxy.cut();
    waiter.close().await.ok();
    support::eventually("the stranded node went with its session", || {
        let holder = holder.clone();
        async move { children(&holder, "/locks/s").await.len() == 1 }
    })
    .await;
    held.release().await.unwrap();
}
