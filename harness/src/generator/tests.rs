//! Generators driven by a simulated clock and workers whose ops take a fixed latency: the
//! schedules they produce, and that a seed replays them exactly.

use super::*;
use serde_json::json;

/// One invocation the simulation dispatched.
#[derive(Clone, Debug, PartialEq)]
struct Dispatched {
    time_ns: u64,
    thread: Thread,
    f: String,
}

/// Runs `gen` with `clients` client threads and a nemesis; every op takes `latency_ns` and
/// completes with `outcome(f)`. Stops when the generator is exhausted or after `max_ops`.
fn simulate(
    mut gen: Gen,
    clients: u32,
    latency_ns: u64,
    seed: u64,
    max_ops: usize,
    outcome: impl Fn(&str) -> OpType,
) -> Vec<Dispatched> {
    let mut rng = Rng::new(seed);
    let mut threads: Vec<Thread> = (0..clients).map(Thread::Client).collect();
    threads.push(Thread::Nemesis);
    let mut busy: Vec<(u64, Thread, String)> = Vec::new();
    let mut out = Vec::new();
    let mut now = 0u64;
    while out.len() < max_ops {
        let free: Vec<Thread> = threads
            .iter()
            .copied()
            .filter(|t| busy.iter().all(|b| b.1 != *t))
            .collect();
        let ctx = Context {
            time_ns: now,
            free,
            threads: threads.clone(),
        };
        match gen.next(&ctx, &mut rng) {
            Next::Op(op) => {
                assert!(ctx.free.contains(&op.thread), "ops go to free workers");
                now = now.max(op.time_ns);
                out.push(Dispatched {
                    time_ns: now,
                    thread: op.thread,
                    f: op.f.clone(),
                });
                busy.push((now + latency_ns, op.thread, op.f));
                continue;
            }
            Next::Pending { until_ns } => {
                let next_done = busy.iter().map(|b| b.0).min();
                now = match (until_ns, next_done) {
                    (Some(u), Some(d)) => u.min(d),
                    (Some(u), None) => u,
                    (None, Some(d)) => d,
                    (None, None) => panic!("pending forever with nothing in flight"),
                };
            }
            Next::Exhausted if busy.is_empty() => break,
            Next::Exhausted => now = busy.iter().map(|b| b.0).min().unwrap(),
        }
        busy.sort_by_key(|b| b.0);
        while busy.first().is_some_and(|b| b.0 <= now) {
            let (_, thread, f) = busy.remove(0);
            gen.completed(&Completion {
                thread,
                op_type: outcome(&f),
                f,
            });
        }
    }
    out
}

fn reads() -> Gen {
    from_fn(|_| ("read".to_string(), Value::Null))
}

fn ok(_: &str) -> OpType {
    OpType::Ok
}

const MS: u64 = 1_000_000;

#[test]
fn from_fn_keeps_every_client_busy() {
    let ops = simulate(limit(9, reads()), 3, MS, 1, 100, ok);
    assert_eq!(ops.len(), 9);
    // Three clients, 1 ms each: three ops at t=0, three at 1 ms, three at 2 ms.
    let times: Vec<u64> = ops.iter().map(|o| o.time_ns / MS).collect();
    assert_eq!(times, vec![0, 0, 0, 1, 1, 1, 2, 2, 2]);
}

#[test]
fn time_limit_stops_on_time() {
    let ops = simulate(time_limit(10 * MS, reads()), 2, MS, 1, 1000, ok);
    assert_eq!(ops.len(), 20, "two clients for ten 1 ms rounds");
    assert!(ops.iter().all(|o| o.time_ns < 10 * MS));
}

#[test]
fn stagger_holds_the_mean_rate() {
    // One op per 2 ms on average for 2 s: about 1000 ops, from 8 clients that could do more.
    let ops = simulate(
        time_limit(2_000 * MS, stagger(2 * MS, reads())),
        8,
        MS / 10,
        7,
        10_000,
        ok,
    );
    assert!((900..=1100).contains(&ops.len()), "{} ops", ops.len());
    let gaps: Vec<u64> = ops
        .windows(2)
        .map(|w| w[1].time_ns - w[0].time_ns)
        .collect();
    assert!(
        gaps.iter().all(|&g| g <= 4 * MS),
        "no gap beyond twice the mean"
    );
}

/// Timers wake the runner late; the rate must hold anyway (open-loop load at a set rate).
#[test]
fn stagger_holds_the_rate_when_every_wake_up_is_late() {
    let late_ns = MS;
    let mut gen = time_limit(1_000 * MS, stagger(MS / 2, reads()));
    let mut rng = Rng::new(3);
    let threads: Vec<Thread> = (0..64).map(Thread::Client).collect();
    let (mut now, mut ops) = (0u64, 0usize);
    loop {
        let ctx = Context {
            time_ns: now,
            free: threads.clone(),
            threads: threads.clone(),
        };
        match gen.next(&ctx, &mut rng) {
            Next::Op(_) => ops += 1,
            Next::Pending { until_ns: Some(u) } => now = u.max(now) + late_ns,
            Next::Pending { until_ns: None } => panic!("a stagger always knows when"),
            Next::Exhausted => break,
        }
    }
    // 2,000 ops/s for 1 s, each wake-up 1 ms late (twice the mean interval).
    assert!((1_800..=2_200).contains(&ops), "{ops} ops");
}

#[test]
fn mix_draws_from_all_and_is_seeded() {
    let gen = |seed| {
        let g = mix(vec![
            from_fn(|_| ("read".into(), Value::Null)),
            from_fn(|rng| ("write".into(), json!(rng.below(5)))),
        ]);
        simulate(limit(200, g), 4, MS, seed, 1000, ok)
    };
    let a = gen(3);
    let reads = a.iter().filter(|o| o.f == "read").count();
    assert!((60..=140).contains(&reads), "{reads} reads of 200");
    assert_eq!(a, gen(3), "the same seed replays the same schedule");
    assert_ne!(a, gen(4));
}

#[test]
fn phases_do_not_overlap() {
    let gen = phases(vec![
        limit(6, from_fn(|_| ("write".into(), json!(1)))),
        sleep(5 * MS),
        limit(3, from_fn(|_| ("read".into(), Value::Null))),
    ]);
    let ops = simulate(gen, 4, 3 * MS, 1, 100, ok);
    assert_eq!(ops.len(), 9);
    let last_write_done = ops
        .iter()
        .filter(|o| o.f == "write")
        .map(|o| o.time_ns + 3 * MS)
        .max()
        .unwrap();
    let first_read = ops.iter().find(|o| o.f == "read").unwrap().time_ns;
    assert!(
        first_read >= last_write_done + 5 * MS,
        "reads start after the writes finish and the pause"
    );
}

#[test]
fn nemesis_runs_beside_clients() {
    let nemesis = stagger(
        10 * MS,
        nemesis_script(vec![
            ("start-partition".into(), json!("majority")),
            ("stop-partition".into(), Value::Null),
        ]),
    );
    let gen = clients_and_nemesis(time_limit(50 * MS, reads()), nemesis);
    let ops = simulate(gen, 2, MS, 5, 1000, ok);
    let nemesis: Vec<&Dispatched> = ops.iter().filter(|o| o.thread == Thread::Nemesis).collect();
    assert_eq!(
        nemesis.iter().map(|o| o.f.as_str()).collect::<Vec<_>>(),
        vec!["start-partition", "stop-partition"]
    );
    assert!(
        ops.iter().filter(|o| o.f == "read").count() >= 90,
        "clients keep going during faults"
    );
}

#[test]
fn a_relative_schedule_starts_when_its_phase_does() {
    let nemesis = relative(stagger(
        10 * MS,
        nemesis_script(vec![("start-kill".into(), Value::Null)]),
    ));
    let gen = phases(vec![sleep(100 * MS), nemesis]);
    let ops = simulate(gen, 1, MS, 5, 10, ok);
    assert_eq!(ops.len(), 1);
    assert!(
        (100 * MS..=130 * MS).contains(&ops[0].time_ns),
        "due within the stagger after the sleep: {ops:?}"
    );
}

#[test]
fn one_at_a_time_waits_for_each_completion() {
    let ops = simulate(limit(3, one_at_a_time(reads())), 4, MS, 1, 100, ok);
    let times: Vec<u64> = ops.iter().map(|o| o.time_ns).collect();
    assert_eq!(times, vec![0, MS, 2 * MS], "{ops:?}");
}

#[test]
fn until_ok_retries_until_success() {
    // The first two reads fail, the third succeeds: exactly three are issued from one client.
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let outcome = |_: &str| {
        if attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 2 {
            OpType::Fail
        } else {
            OpType::Ok
        }
    };
    let ops = simulate(until_ok(reads()), 1, MS, 1, 100, outcome);
    assert_eq!(ops.len(), 3);
}

#[test]
fn until_ok_ignores_other_generators_successes() {
    // Writes always succeed, reads always fail: the until_ok over reads never ends by itself,
    // so the time limit ends the run with reads still being retried.
    let outcome = |f: &str| {
        if f == "write" {
            OpType::Ok
        } else {
            OpType::Fail
        }
    };
    let gen = time_limit(
        20 * MS,
        mix(vec![
            until_ok(reads()),
            from_fn(|_| ("write".into(), json!(1))),
        ]),
    );
    let ops = simulate(gen, 2, MS, 9, 1000, outcome);
    let last_read = ops
        .iter()
        .filter(|o| o.f == "read")
        .map(|o| o.time_ns)
        .max()
        .unwrap();
    assert!(
        last_read >= 15 * MS,
        "reads continue despite the writes' oks: last at {last_read}"
    );
}

#[test]
fn each_thread_gives_every_worker_its_own_schedule() {
    // Every worker reads exactly twice, then the generator is exhausted.
    let gen = each_thread(|t| {
        let Thread::Client(w) = t else { unreachable!() };
        limit(2, from_fn(move |_| ("read".into(), json!(w))))
    });
    let ops = simulate(gen, 4, 1_000, 1, 100, ok);
    assert_eq!(ops.len(), 8, "{ops:?}");
    for w in 0..4 {
        let mine = ops.iter().filter(|d| d.thread == Thread::Client(w)).count();
        assert_eq!(mine, 2, "worker {w} runs its own two ops");
    }
}
