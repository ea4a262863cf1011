//! A real process killed mid-write: the test binary re-executes itself as a writer that
//! reports each completed `write` on a pipe, and is SIGKILLed at a random moment. The
//! reopened store must hold every reported write and a prefix of the one in flight.
//!
//! SIGKILL keeps the page cache, so this proves the recovery logic and the ordering of
//! syscalls across a process crash; power loss is the simulator's and the torn-tail
//! tests' business.

mod common;

use common::small_limits;
use machine::{DiskOp, Durable, Write};
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use storage::Store;

const CHILD_DIR_ENV: &str = "FAULTLINE_STORAGE_CRASH_DIR";
const CHILD_TEST: &str = "writer_child_process";
const SEGMENT_BYTES: u64 = 16 << 10;
/// The child stops by itself after this many calls if nobody kills it.
const MAX_CALLS: u64 = 200_000;

/// The Writes of call `i`: a pure function, so the parent replays exactly what the child did.
fn call(i: u64) -> Vec<Write> {
    (0..1 + i % 5)
        .map(|w| {
            let token = i * 8 + w;
            Write {
                token,
                ops: ops(token),
            }
        })
        .collect()
}

fn ops(token: u64) -> Vec<DiskOp> {
    let mut ops = vec![DiskOp::Append {
        log: "a".into(),
        records: (0..1 + token % 3).map(|r| record(token, r)).collect(),
    }];
    if token % 7 == 0 {
        ops.push(DiskOp::Append {
            log: "b".into(),
            records: vec![record(token, 9)],
        });
    }
    if token % 11 == 0 {
        ops.push(DiskOp::Put {
            name: "meta".into(),
            bytes: record(token, 5),
        });
    }
    if token % 29 == 0 {
        ops.push(DiskOp::DropPrefix {
            log: "a".into(),
            first: token / 2,
        });
    }
    if token % 37 == 0 {
        ops.push(DiskOp::TruncateTail {
            log: "a".into(),
            len: token,
        });
    }
    ops
}

fn record(token: u64, r: u64) -> Vec<u8> {
    let len = ((token * 31 + r * 17) % 3000) as usize;
    (0..len)
        .map(|k| (token as usize + r as usize + k) as u8)
        .collect()
}

/// Not a test on its own: the writer the crash test runs in a child process.
#[test]
fn writer_child_process() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let (mut store, durable, _) = Store::open(&dir, small_limits(SEGMENT_BYTES)).unwrap();
    assert_eq!(
        durable,
        Durable::default(),
        "the child starts from an empty store"
    );
    let mut out = std::io::stdout().lock();
    for i in 0..MAX_CALLS {
        store.write(&call(i)).unwrap();
        writeln!(out, "done {i}").unwrap();
        out.flush().unwrap();
    }
}

/// Every state a crash during call `i` may leave, starting from `before`: each prefix of
/// its ops, with an append possibly cut after any of its records.
fn states_during(before: &Durable, i: u64) -> Vec<Durable> {
    let mut state = before.clone();
    let mut states = vec![state.clone()];
    for op in call(i).iter().flat_map(|w| &w.ops) {
        if let DiskOp::Append { log, records } = op {
            for r in records {
                state.apply(&DiskOp::Append {
                    log: log.clone(),
                    records: vec![r.clone()],
                });
                states.push(state.clone());
            }
        } else {
            state.apply(op);
            states.push(state.clone());
        }
    }
    states
}

/// Runs the child, kills it `delay` after its first completed write, returns the last call
/// it reported complete (or -1).
fn run_and_kill(dir: &std::path::Path, delay: Duration) -> i64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let done = Arc::new(AtomicI64::new(-1));
    let stdout = child.stdout.take().unwrap();
    let seen = Arc::clone(&done);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(i) = line.strip_prefix("done ").and_then(|n| n.parse().ok()) {
                seen.store(i, Ordering::SeqCst);
            }
        }
    });
    let started = Instant::now();
    while done.load(Ordering::SeqCst) < 0 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    done.load(Ordering::SeqCst)
}

#[test]
fn a_killed_writer_keeps_every_completed_write_and_a_prefix_of_the_rest() {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    for round in 0..5u64 {
        let dir = tempfile::tempdir().unwrap();
        let delay = Duration::from_micros((seed.wrapping_mul(round * 2 + 1) >> 7) % 400_000);
        let done = run_and_kill(dir.path(), delay);
        assert!(done >= 0, "round {round}: the child completed no write");
        let (_, recovered, report) = Store::open(dir.path(), small_limits(SEGMENT_BYTES)).unwrap();
        let mut model = Durable::default();
        for i in 0..=done as u64 {
            for op in call(i).iter().flat_map(|w| &w.ops) {
                model.apply(op);
            }
        }
        let candidates = states_during(&model, done as u64 + 1);
        assert!(
            candidates.contains(&recovered),
            "round {round} (seed {seed}, killed after call {done}, {delay:?}): recovered state is \
             no prefix; report {report:?}"
        );
        println!("round {round}: killed after call {done} at +{delay:?}; {report:?}");
    }
}
