//! Disk faults on real etcd (Debian's etcd-server): members on the lazy filesystem lose
//! what they never fsynced and restart; the tails of real WAL segments are found, cut and
//! corrupted, and what etcd makes of them is recorded; `faultline test --nemesis disk` runs
//! them end to end on the local and netns backends.

mod common;

use common::*;
use faultline::control::local::Local;
use faultline::control::{Cmd, Node};
use faultline::db::etcd::Etcd;
use faultline::db::{Backend, Cluster, Db};
use faultline::nemesis::disk::{self, DiskMode, TailAction};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The run's `start-disk` completions and `stop-disk` completions.
fn disk_ops(ops: &[Value]) -> (Vec<&Value>, Vec<&Value>) {
    let done = |f: &str| {
        ops.iter()
            .filter(|op| op["process"] == "nemesis" && op["type"] == "ok" && op["f"] == f)
            .map(|op| &op["value"])
            .collect::<Vec<_>>()
    };
    (done("start-disk"), done("stop-disk"))
}

/// No lazy filesystem of this run is still mounted, and no daemon serves one.
fn assert_no_mounts_left(run: &Path) {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let work = run.join("work");
    assert!(
        !mounts.contains(&*work.to_string_lossy()),
        "a mount under {} outlived the run:\n{mounts}",
        work.display()
    );
}

/// The verdict the process exits with is the one the checker stored.
fn assert_exit_matches_results(out: &std::process::Output, run: &Path) -> bool {
    let results = json(&run.join("results.json"));
    let valid = results["valid"].clone();
    let want = match valid {
        Value::Bool(true) => 0,
        Value::Bool(false) => 1,
        _ => 2,
    };
    assert_eq!(
        out.status.code(),
        Some(want),
        "exit code follows results.json {results}\nstderr:\n{}",
        text(&out.stderr)
    );
    valid == Value::Bool(true)
}

fn run_test(args: &[&str]) -> std::process::Output {
    faultline(args).output().unwrap()
}

/// A `faultline test` run of etcd under the disk nemesis.
struct DiskRun<'a> {
    name: &'a str,
    backend: &'a str,
    nodes: &'a str,
    modes: &'a str,
    time_limit: &'a str,
    interval: &'a str,
    seed: &'a str,
}

/// Runs it; returns the run's directory and its verdict, which the exit code must agree
/// with.
fn disk_run(r: DiskRun<'_>) -> (PathBuf, bool) {
    let store = store(r.name);
    let started = std::time::Instant::now();
    let store_arg = store.to_str().unwrap();
    let out = run_test(&[
        "test",
        "--system",
        "etcd",
        "--workload",
        "register",
        "--backend",
        r.backend,
        "--nodes",
        r.nodes,
        "--nemesis",
        "disk",
        "--disk-faults",
        r.modes,
        "--time-limit",
        r.time_limit,
        "--nemesis-interval",
        r.interval,
        "--seed",
        r.seed,
        "--store",
        store_arg,
    ]);
    let run = run_dir(&store);
    let valid = assert_exit_matches_results(&out, &run);
    eprintln!("{}: valid {valid} in {:?}", r.name, started.elapsed());
    (run, valid)
}

#[test]
fn members_that_lose_unsynced_writes_restart_and_the_run_is_checked() {
    require_etcd();
    require_root("the lazy filesystem mounts FUSE filesystems");
    require_tool("fusermount3", "fuse3");
    let (run, _) = disk_run(DiskRun {
        name: "lose-unsynced",
        backend: "local",
        nodes: "3",
        modes: "lose-unsynced",
        time_limit: "9",
        interval: "1.5",
        seed: "21",
    });

    let ops = history(&run);
    let (starts, stops) = disk_ops(&ops);
    assert!(starts.len() >= 2, "the disk nemesis struck: {starts:?}");
    for start in &starts {
        assert_eq!(start["mode"], "lose-unsynced", "{start}");
        let faults = start["faults"].as_array().unwrap();
        assert_eq!(
            faults.len(),
            start["nodes"].as_array().unwrap().len(),
            "{start}"
        );
        for f in faults {
            assert!(
                f["dropped_files"].is_u64() && f["dropped_bytes"].is_u64(),
                "{f}"
            );
        }
    }
    for stop in &stops {
        assert!(!stop["restarted"].as_array().unwrap().is_empty(), "{stop}");
        assert_eq!(
            stop["exited_within_1s"],
            serde_json::json!([]),
            "etcd restarts: {stop}"
        );
    }
    // Every member served clients again after the last restart.
    let last_stop = ops
        .iter()
        .rposition(|op| op["f"] == "stop-disk" && op["type"] == "ok")
        .unwrap();
    let later_ok = ops[last_stop..]
        .iter()
        .filter(|op| op["process"].is_u64() && op["type"] == "ok")
        .count();
    assert!(
        later_ok > 10,
        "clients made progress after the restarts: {later_ok}"
    );
    for n in 1..=3 {
        let log = run.join(format!("nodes/n{n}/lazyfs.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            text.contains("serving"),
            "{} collected: {text}",
            log.display()
        );
    }
    assert!(
        (1..=3).any(
            |n| std::fs::read_to_string(run.join(format!("nodes/n{n}/lazyfs.log")))
                .unwrap()
                .contains("dropped")
        ),
        "a lazy filesystem dropped what was unsynced"
    );
    assert_no_mounts_left(&run);
    assert_no_members_left(&run);
}

#[test]
fn damaged_wal_tails_are_recorded_exactly_and_the_run_is_checked() {
    require_etcd();
    let (run, _) = disk_run(DiskRun {
        name: "tails",
        backend: "local",
        nodes: "5",
        modes: "truncate-tail,corrupt-tail",
        time_limit: "8",
        interval: "2",
        seed: "3",
    });

    let ops = history(&run);
    let (starts, stops) = disk_ops(&ops);
    assert!(
        !starts.is_empty() && !stops.is_empty(),
        "{starts:?} {stops:?}"
    );
    let mut modes = Vec::new();
    for start in &starts {
        let f = &start["faults"][0];
        modes.push(f["mode"].as_str().unwrap().to_string());
        let file = f["file"].as_str().unwrap();
        assert!(
            file.starts_with("data/member/wal/") && file.ends_with(".wal"),
            "{f}"
        );
        let (offset, bytes, end) = (
            f["offset"].as_u64().unwrap(),
            f["bytes"].as_u64().unwrap(),
            f["records_end"].as_u64().unwrap(),
        );
        assert_eq!(
            offset + bytes,
            end,
            "the damage ends where the records do: {f}"
        );
        assert_eq!(end % 8, 0, "records end 8-byte aligned: {f}");
        assert_eq!(
            f["file_len"], 64_000_000,
            "etcd preallocates its segments: {f}"
        );
        match f["mode"].as_str().unwrap() {
            "truncate-tail" => assert_eq!(f["action"], "zeroed", "{f}"),
            _ => {
                let bits = f["flipped_bits"].as_array().unwrap();
                assert!(!bits.is_empty());
                for b in bits {
                    let at = b["offset"].as_u64().unwrap();
                    assert!((offset..end).contains(&at), "{f}");
                }
            }
        }
    }
    eprintln!("tail faults: {modes:?}; restarts: {stops:?}");
    assert_no_members_left(&run);
}

/// Tears a member down however the test ends.
struct TearDown<'a>(&'a Etcd, &'a Cluster, &'a Node);

impl Drop for TearDown<'_> {
    fn drop(&mut self) {
        let _ = self.0.teardown(self.1, self.2);
    }
}

/// One real member on the local backend, in a directory of its own.
fn one_member(name: &str) -> (Cluster, Node) {
    let root = std::env::temp_dir().join(format!("faultline-wal-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let node = Node {
        name: "n1".into(),
        ip: format!("127.77.{}.2", std::process::id() % 250),
    };
    let cluster = Cluster {
        nodes: vec![node.clone()],
        remote: Arc::new(Local::new(&root)),
        backend: Backend::Local,
        run_id: format!("wal-{name}-{}", std::process::id()),
        lazy_disk: None,
    };
    (cluster, node)
}

fn etcdctl(node: &Node, args: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .args([
            "-c",
            &format!("ETCDCTL_API=3 etcdctl --endpoints {}:2379 {args}", node.ip),
        ])
        .output()
        .unwrap()
}

#[test]
fn a_real_wal_tail_is_found_cut_at_a_frame_and_corrupted() {
    require_etcd();
    require_tool("etcdctl", "etcd-client");
    let (cluster, node) = one_member("tail");
    let db = Etcd::default();
    let _teardown = TearDown(&db, &cluster, &node);
    db.setup(&cluster, &node).unwrap();
    db.wait_ready(&cluster, &node, Duration::from_secs(20))
        .unwrap();
    for i in 0..30 {
        let put = etcdctl(&node, &format!("put key{i} value{i}"));
        assert!(put.status.success(), "{}", text(&put.stderr));
    }
    db.kill(&cluster, &node).unwrap();

    let tail = db.log_tail(&cluster, &node).unwrap();
    assert_eq!(
        tail.file,
        Path::new("data/member/wal/0000000000000000-0000000000000000.wal")
    );
    let local = cluster.remote.host_dir(&node).unwrap().join(&tail.file);
    let bytes = std::fs::read(&local).unwrap();
    assert_eq!(tail.file_len, 64_000_000);
    assert_eq!(bytes.len() as u64, tail.file_len);
    let end = tail.records_end as usize;
    assert!(
        end > 30 * 20,
        "30 puts and their raft state are in the records: {end}"
    );
    assert!(
        bytes[end..].iter().all(|&b| b == 0),
        "only preallocated zeros follow"
    );
    assert_eq!(tail.tail[..], bytes[end - tail.tail.len()..end]);
    let word = u64::from_le_bytes(bytes[tail.last_record as usize..][..8].try_into().unwrap());
    assert_ne!(word, 0, "the last frame starts with its length");

    // The nemesis never ends the records exactly where a frame starts: asked to cut the
    // last frame, it leaves that frame's first byte, so the damage shows.
    let frame = tail.records_end - tail.last_record;
    assert!(
        tail.boundaries.contains(&tail.last_record),
        "{:?}",
        tail.boundaries
    );
    let planned = disk::plan_tail(&tail, DiskMode::TruncateTail, frame, 0).unwrap();
    assert_eq!(
        (planned.offset, planned.bytes, planned.action.clone()),
        (tail.last_record + 1, frame - 1, TailAction::Zero)
    );
    // Cut exactly the last frame by hand: a clean end of records, so etcd starts and serves.
    let cut = disk::TailEdit {
        offset: tail.last_record,
        bytes: frame,
        action: TailAction::Zero,
    };
    disk::apply_tail(cluster.remote.as_ref(), &node, &tail.file, &cut).unwrap();
    let after = std::fs::read(&local).unwrap();
    assert!(after[tail.last_record as usize..].iter().all(|&b| b == 0));
    assert_eq!(
        after.len() as u64,
        tail.file_len,
        "a preallocated segment keeps its size"
    );
    db.start(&cluster, &node).unwrap();
    db.wait_ready(&cluster, &node, Duration::from_secs(20))
        .expect("etcd starts on a log cut at a frame boundary");
    let got = etcdctl(&node, "get key29 --print-value-only");
    eprintln!(
        "after cutting the last frame, key29 = {:?}",
        text(&got.stdout).trim()
    );
    db.kill(&cluster, &node).unwrap();

    // Flip bits inside the last record's body (a flip in its zero padding goes unnoticed:
    // etcd never reads padding): etcd refuses to start on it, naming the damage.
    let tail = db.log_tail(&cluster, &node).unwrap();
    let frame = tail.records_end - tail.last_record;
    let word = u64::from_le_bytes(
        tail.tail[tail.tail.len() - frame as usize..][..8]
            .try_into()
            .unwrap(),
    );
    let padding = if word >> 63 == 1 { (word >> 56) & 7 } else { 0 };
    let body = (tail.last_record + 8)..(tail.records_end - padding);
    let flip = (0..1000)
        .map(|seed| disk::plan_tail(&tail, DiskMode::CorruptTail, frame, seed).unwrap())
        .find(|p| match &p.action {
            TailAction::Flip { bits, .. } => {
                bits.iter().all(|b| body.contains(&(p.offset + b / 8)))
            }
            _ => false,
        })
        .expect("some seed flips only body bits");
    let TailAction::Flip { bits, .. } = &flip.action else {
        panic!("{flip:?}")
    };
    disk::apply_tail(cluster.remote.as_ref(), &node, &tail.file, &flip).unwrap();
    let damaged = std::fs::read(&local).unwrap();
    let changed: u32 = damaged[flip.offset as usize..tail.records_end as usize]
        .iter()
        .zip(&tail.tail[tail.tail.len() - frame as usize..])
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    assert_eq!(
        changed as usize,
        bits.len(),
        "exactly the recorded bits flipped"
    );
    db.start(&cluster, &node).unwrap();
    let refused = db.wait_ready(&cluster, &node, Duration::from_secs(5));
    let log = cluster
        .remote
        .exec(&node, &Cmd::new("cat log/etcd.log"))
        .unwrap()
        .stdout_text();
    let fatal = log
        .lines()
        .rev()
        .find(|l| l.contains("\"fatal\""))
        .unwrap_or("");
    eprintln!(
        "after flipping {bits:?}: {}",
        &fatal[..fatal.len().min(300)]
    );
    // etcd either refuses the record (a CRC mismatch) or, when some 512-byte sector of the
    // frame is all zeros (padding past a sector boundary), takes it for a torn write and
    // truncates it away ("repaired WAL"): it never serves the damaged record.
    let repaired = log.contains("repaired WAL") && log.contains(".wal.broken");
    eprintln!("etcd refused: {}, repaired: {repaired}", refused.is_err());
    assert!(
        (refused.is_err() && (fatal.contains("crc mismatch") || fatal.contains("proto")))
            || (refused.is_ok() && repaired),
        "etcd refuses or repairs the damage: {fatal}"
    );
}

#[test]
fn lost_unsynced_writes_on_the_netns_backend() {
    require_etcd();
    require_root("the netns backend creates network namespaces; the lazy filesystem mounts");
    require_tool("ip", "iproute2");
    let (run, _) = disk_run(DiskRun {
        name: "netns-disk",
        backend: "netns",
        nodes: "3",
        modes: "lose-unsynced",
        time_limit: "7",
        interval: "1.5",
        seed: "4",
    });
    let ops = history(&run);
    let (starts, stops) = disk_ops(&ops);
    assert!(!starts.is_empty(), "the disk nemesis struck");
    for stop in &stops {
        assert_eq!(stop["exited_within_1s"], serde_json::json!([]), "{stop}");
    }
    assert_no_mounts_left(&run);
}

#[test]
fn unknown_disk_faults_are_refused_by_name() {
    let store = store("bad-disk");
    let out = run_test(&[
        "test",
        "--system",
        "etcd",
        "--workload",
        "register",
        "--nemesis",
        "disk",
        "--disk-faults",
        "lose-unsynced,melt",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(254));
    let err = text(&out.stderr);
    assert!(
        err.contains("\"melt\"") && err.contains("corrupt-tail"),
        "{err}"
    );
}

/// Docker containers cannot mount the lazy filesystem: refused at start, naming why. Tail
/// faults need only `dd` in the container, and run there.
#[test]
fn docker_refuses_lost_unsynced_writes_and_damages_tails() {
    require_etcd();
    let engine = std::process::Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        engine,
        "the Docker engine is not running: install docker.io and start dockerd"
    );
    let store = store("docker-lazy");
    let out = run_test(&[
        "test",
        "--system",
        "etcd",
        "--workload",
        "register",
        "--backend",
        "docker",
        "--nodes",
        "3",
        "--nemesis",
        "disk",
        "--disk-faults",
        "lose-unsynced",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(254), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("lose-unsynced") && err.contains("docker") && err.contains("/dev/fuse"),
        "{err}"
    );

    let (run, _) = disk_run(DiskRun {
        name: "docker-tails",
        backend: "docker",
        nodes: "5",
        modes: "truncate-tail,corrupt-tail",
        time_limit: "6",
        interval: "2.5",
        seed: "8",
    });
    let ops = history(&run);
    let (starts, _) = disk_ops(&ops);
    assert!(!starts.is_empty(), "a tail fault struck");
    for start in &starts {
        let f = &start["faults"][0];
        assert_eq!(
            f["offset"].as_u64().unwrap() + f["bytes"].as_u64().unwrap(),
            f["records_end"].as_u64().unwrap(),
            "{f}"
        );
    }
}
