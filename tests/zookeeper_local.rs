//! End to end on real Apache ZooKeeper 3.8 (Debian's `zookeeper`): `faultline test --system
//! zookeeper` deploys a 3-server ensemble of JVMs, drives the coordination workloads through
//! Faultline's ZooKeeper client under faults, and checks what ZooKeeper is known to do:
//! writes and synced reads are linearizable under partitions, kills, pauses and slow links;
//! plain reads (no `sync`) are stale once peer links are slow; the lock recipe's fenced
//! writes hold; and unfenced locks lose mutual exclusion when the holder's server pauses
//! (`--nemesis-targets holder`), where the fenced lock refuses the stale holder's writes;
//! under clock faults (each JVM under libfaketime) writes stay linearizable.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Fails, naming the packages, unless ZooKeeper's jar and a JVM are here.
fn require_zookeeper() {
    require_tool("java", "default-jre-headless");
    for (file, package) in [
        ("/usr/share/java/zookeeper.jar", "zookeeper"),
        ("/usr/share/java/slf4j-simple.jar", "libslf4j-java"),
    ] {
        assert!(
            Path::new(file).is_file(),
            "{file} is missing: install Debian's {package} (apt-get install {package})"
        );
    }
}

/// Runs `faultline test --system zookeeper` with `args` after the common ones; returns
/// the exit code, stdout and the run's directory.
fn zk_test(name: &str, args: &[&str]) -> (Option<i32>, String, PathBuf) {
    require_zookeeper();
    let store = store(name);
    let mut all = vec![
        "test",
        "--system",
        "zookeeper",
        "--nodes",
        "3",
        "--store",
        store.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let (pid, out) = faultline_run(&all);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let shown = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    let run = run_dir(&store);
    assert_no_processes_under(&run.join("work"));
    if args.contains(&"docker") {
        assert!(
            containers_named(&format!("faultline-{pid}-")).is_empty(),
            "every container of the run is removed: {shown}"
        );
    }
    (out.status.code(), shown, run)
}

fn server_logs(run: &Path) -> Vec<String> {
    (1..=3)
        .map(|n| {
            std::fs::read_to_string(run.join(format!("nodes/n{n}/zookeeper.log")))
                .unwrap_or_else(|e| panic!("n{n}'s ZooKeeper log was collected: {e}"))
        })
        .collect()
}

/// Asserts that the run's register history was judged linearizable, unless ZooKeeper
/// 3.8.0 itself lost acknowledged writes, as it does in rare runs that combine partitions
/// with kills, pauses or clock faults (the ZOOKEEPER-4643/4646 family; README, "ZooKeeper
/// 3.8.0 findings"): a leader logs that a follower's NEWLEADER ack "is from a different
/// epoch", that follower later leads from a stale zxid, and another server logs "Truncating
/// log to get in sync with the leader", throwing committed transactions away. Only a run
/// whose servers logged both may be invalid, and it must then be invalid for the register,
/// not for an error: any other outcome fails the test. True if the run was valid.
fn linearizable_or_zookeeper_lost_writes(code: Option<i32>, shown: &str, run: &Path) -> bool {
    let results = json(&run.join("results.json"));
    if code == Some(0) && results["valid"] == true {
        return true;
    }
    let logs = server_logs(run);
    let acked_from_other_epoch = logs.iter().any(|l| l.contains("is from a different epoch"));
    let truncated = logs
        .iter()
        .any(|l| l.contains("Truncating log to get in sync with the leader"));
    assert!(
        code == Some(1) && results["valid"] == false && acked_from_other_epoch && truncated,
        "invalid without ZooKeeper's own lost-write signature in its logs: {results}\n{shown}"
    );
    eprintln!(
        "ZooKeeper 3.8.0 lost acknowledged writes in this run (its logs show the known \
         signature); the run is kept in {}",
        run.display()
    );
    false
}

fn completions<'a>(ops: &'a [Value], f: &str, kind: &str) -> Vec<&'a Value> {
    ops.iter()
        .filter(|op| op["process"].is_u64() && op["f"] == f && op["type"] == kind)
        .collect()
}

#[test]
fn zookeeper_register_with_sync_is_linearizable_under_partitions_kills_and_pauses() {
    let (code, shown, run) = zk_test(
        "zk-register",
        &[
            "--workload",
            "register",
            "--time-limit",
            "20",
            "--nemesis",
            "partition,kill,pause,packet",
            "--nemesis-interval",
            "3",
            "--concurrency",
            "6",
            "--rate",
            "60",
            "--seed",
            "11",
        ],
    );
    if linearizable_or_zookeeper_lost_writes(code, &shown, &run) {
        assert!(shown.contains(": valid"), "{shown}");
    }
    let test = json(&run.join("test.json"));
    assert!(
        test["system_version"]
            .as_str()
            .is_some_and(|v| v.contains("version 3.8")),
        "the ensemble is ZooKeeper 3.8: {test}"
    );
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for f in [
        "start-partition",
        "start-kill",
        "start-pause",
        "start-packet",
        "stop-all",
    ] {
        assert!(fs.iter().any(|x| x == f), "{f} happened: {fs:?}");
    }
    // Under every fault at once the JVMs serve slowly on a loaded 2-core host (one CI run
    // completed 18 cas): enough of each kind to be judged is what counts here.
    for f in ["read", "write", "cas"] {
        let ok = completions(&ops, f, "ok").len();
        assert!(ok >= 10, "{ok} {f}s completed ok:\n{shown}");
    }
    let logs = server_logs(&run);
    assert!(
        logs.iter().any(|l| l.contains("LEADING")),
        "a server led: the ensemble formed"
    );
    // Kills and partitions make servers elect again: more than the first election shows.
    let elections: usize = logs.iter().map(|l| l.matches("LOOKING").count()).sum();
    assert!(elections > 3, "faults forced new elections: {elections}");

    let again = faultline(&["analyze", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
}

#[test]
fn zookeeper_plain_reads_without_sync_are_caught_stale() {
    let (code, shown, run) = zk_test(
        "zk-plain",
        &[
            "--workload",
            "register",
            "--client-bug",
            "plain-reads",
            "--time-limit",
            "16",
            // Delayed peer links make followers trail the leader by the delay, and a plain
            // read on a follower then misses writes the leader already acknowledged.
            "--nemesis",
            "packet",
            "--nemesis-interval",
            "2",
            "--concurrency",
            "9",
            "--rate",
            "150",
            "--seed",
            "3",
        ],
    );
    assert_eq!(code, Some(1), "plain reads are stale:\n{shown}");
    let fs = nemesis_fs(&history(&run));
    assert!(fs.iter().any(|f| f == "start-packet"), "{fs:?}");
    let results = json(&run.join("results.json"));
    assert_eq!(results["valid"], false, "{results}");
    let explanation = results["linearizable"]["explanation"]
        .as_str()
        .unwrap_or("");
    assert!(
        explanation.contains("read"),
        "the explanation names the stale read: {explanation}"
    );
}

/// Pauses only. With partitions as well (`--nemesis pause,partition`, seed 2), one CI run
/// found ZooKeeper 3.8.0 itself losing acknowledged writes to the lock's store, the same
/// family as below (ZOOKEEPER-4643, 4646): a follower took the new leader's epoch, was cut
/// off before its NEWLEADER ack counted, and then won an election on that epoch with an
/// older zxid, so the other follower truncated transactions a quorum had accepted ("Truncating
/// log to get in sync with the leader"). That is a finding about the system, not a flaky
/// harness, so this test leaves partitions out.
#[test]
fn zookeeper_fenced_lock_holds_under_pauses() {
    let (code, shown, run) = zk_test(
        "zk-lock",
        &[
            "--workload",
            "lock",
            "--time-limit",
            "20",
            "--nemesis",
            "pause",
            "--nemesis-interval",
            "2",
            "--concurrency",
            "5",
            "--rate",
            "30",
            "--seed",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{shown}");
    let results = json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{results}");
    let ops = history(&run);
    assert!(completions(&ops, "acquire", "ok").len() >= 5, "{shown}");
    assert!(completions(&ops, "write", "ok").len() >= 5, "{shown}");
    let read = completions(&ops, "read", "ok");
    let log = read.last().map(|op| op["value"]["log"].clone());
    assert!(
        log.as_ref()
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty()),
        "the final read lists the accepted writes: {log:?}"
    );
}

/// Runs `workload` with pauses aimed at the lock holder's server, each outlasting the lock
/// session's 1 s lease.
fn zk_holder_paused(name: &str, workload: &str, seed: &str) -> (Option<i32>, String, PathBuf) {
    let args = [
        "--workload",
        workload,
        "--time-limit",
        "25",
        "--nemesis",
        "pause",
        "--nemesis-targets",
        "holder",
        "--nemesis-interval",
        "3",
        "--concurrency",
        "9",
        "--rate",
        "12",
        "--seed",
        seed,
    ];
    zk_test(&format!("{name}-{seed}"), &args)
}

/// The two holder-pause tests run one at a time: six JVMs on two cores slow every session
/// down, and with it the stale holder the tests wait for.
static HOLDER_RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether a stale holder writes at all in a run depends on how its pacing meets the
/// pauses, so a second seed is tried when the first run kept mutual exclusion; a valid run
/// must report no violation, an invalid one must name and explain it.
#[test]
fn zookeeper_unfenced_locks_lose_mutual_exclusion_when_the_holders_server_pauses() {
    let _one_at_a_time = HOLDER_RUNS.lock().unwrap_or_else(|p| p.into_inner());
    some_seed_shows(&["1", "2"], "mutual exclusion lost", |seed| {
        let (code, shown, run) = zk_holder_paused("zk-lock-unfenced", "lock-unfenced", seed);
        let results = json(&run.join("results.json"));
        let violations = results["lock"]["details"]["violations"].as_u64().unwrap();
        match code {
            Some(1) => {
                assert_eq!(results["valid"], false, "{results}");
                assert!(violations >= 1, "{results}");
                assert!(
                    shown.contains(
                        "a holder with an older token wrote while a newer holder held the lock"
                    ),
                    "the stale write is explained: {shown}"
                );
                assert!(
                    pause_hit_a_holder(&history(&run)),
                    "some pause hit a holder's server: {shown}"
                );
                Ok(())
            }
            Some(0) => {
                assert_eq!(violations, 0, "{results}");
                Err(shown)
            }
            other => panic!("exit {other:?}: {shown}"),
        }
    });
}

/// Whether a pause landed where the clients said the lock was held.
fn pause_hit_a_holder(ops: &[Value]) -> bool {
    ops.iter()
        .filter(|op| op["f"] == "start-pause" && op["type"] == "ok")
        .any(|op| {
            op["value"]["nodes"]
                .as_array()
                .is_some_and(|n| !n.is_empty())
        })
}

/// Every run must be valid; a second seed is tried when the first run's pacing gave no
/// stale holder a write for the fence to refuse.
#[test]
fn zookeeper_fenced_lock_refuses_the_stale_holder_under_the_same_pauses() {
    let _one_at_a_time = HOLDER_RUNS.lock().unwrap_or_else(|p| p.into_inner());
    some_seed_shows(&["1", "2"], "a stale holder's write refused", |seed| {
        let (code, shown, run) = zk_holder_paused("zk-lock-fenced-holder", "lock", seed);
        assert_eq!(code, Some(0), "{shown}");
        let results = json(&run.join("results.json"));
        assert_eq!(results["valid"], true, "{results}");
        if fence_refusals(&history(&run)) >= 1 {
            Ok(())
        } else {
            Err(shown)
        }
    });
}

/// Deposes the leader without its noticing: its clock goes back two minutes, so its lead
/// loop, which waits half a tick between quorum checks by the (faked) monotonic clock,
/// checks nothing for two minutes; then its peer links are cut. The majority elects
/// another leader and goes on taking writes. Healed after 12 s.
fn deposed_leader_script(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "faultline-e2e-{}-{name}-script.jsonl",
        std::process::id()
    ));
    let steps = [
        r#"{"at_s": 3, "f": "start-clock", "value": {"mode": "bump", "targets": "primaries", "offset_ms": -120000}}"#,
        r#"{"at_s": 3.5, "f": "start-partition", "value": {"topology": "primaries"}}"#,
        r#"{"at_s": 15, "f": "stop-partition"}"#,
        r#"{"at_s": 15, "f": "stop-clock"}"#,
    ];
    std::fs::write(&path, steps.join("\n") + "\n").expect("the script is written");
    path
}

/// A leader deposed without noticing (see `deposed_leader_script`): ZooKeeper's `sync` is
/// not a quorum operation (ZOOKEEPER-1675), so such a leader could answer synced reads
/// stale; the register's default reads confirm the version read with a `check` only a
/// quorum commits. The clock fault names its target by role, and reaches that one JVM:
/// its log's stamps go back two minutes.
#[test]
fn zookeeper_stays_linearizable_when_its_leader_is_deposed_unawares() {
    let script = deposed_leader_script("zk-deposed");
    let (code, shown, run) = zk_test(
        "zk-deposed",
        &[
            "--workload",
            "register",
            "--time-limit",
            "20",
            "--nemesis-script",
            script.to_str().unwrap(),
            "--concurrency",
            "6",
            "--seed",
            "1",
        ],
    );
    linearizable_or_zookeeper_lost_writes(code, &shown, &run);
    let ops = history(&run);
    let reads_ok = completions(&ops, "read", "ok").len();
    assert!(reads_ok >= 100, "{reads_ok} reads ok: {shown}");
    let clocked: Vec<&Value> = ops
        .iter()
        .filter(|op| op["process"] == "nemesis" && op["f"] == "start-clock" && op["type"] == "ok")
        .collect();
    assert_eq!(clocked.len(), 1, "{shown}");
    let offsets = clocked[0]["value"]["offsets_ms"]
        .as_object()
        .expect("the completion names the nodes");
    assert_eq!(offsets.len(), 1, "the leader's clock alone: {}", clocked[0]);
    let (leader, _) = offsets.iter().next().unwrap();
    let n: usize = leader.trim_start_matches('n').parse().unwrap();
    let logs = server_logs(&run);
    for (i, log) in logs.iter().enumerate() {
        let went_back = log.lines().any(|l| l.starts_with('-'));
        assert_eq!(
            went_back,
            i + 1 == n,
            "n{}'s clock went back: {went_back}",
            i + 1
        );
    }
}

/// The largest jump, either way, between consecutive lines of a ZooKeeper log, whose
/// lines start with the milliseconds since the JVM started, as its wall clock says.
fn largest_clock_step_ms(log: &str) -> i64 {
    let stamps: Vec<i64> = log
        .lines()
        .filter_map(|l| l.split_once(' ').and_then(|(t, _)| t.parse().ok()))
        .collect();
    stamps
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .max()
        .unwrap_or(0)
}

/// Clock faults and partitions, with the register's default confirmed reads. ZooKeeper
/// does not promise linearizable reads even after `sync`, which is not a quorum operation
/// (ZOOKEEPER-1675: a leader deposed without noticing, as a faulted clock allows, answers
/// it). A CI run of this test with synced reads caught two reads 120 writes stale; CI kept
/// only the verdict, so whether a deposed leader answered them or the ensemble lost the
/// writes (see `linearizable_or_zookeeper_lost_writes`) is not known. `--client-bug
/// sync-reads` runs that client.
#[test]
fn zookeeper_under_clock_faults_stays_linearizable() {
    let (code, shown, run) = zk_test(
        "zk-clock",
        &[
            "--workload",
            "register",
            "--time-limit",
            "20",
            "--nemesis",
            "clock,partition",
            "--nemesis-interval",
            "3",
            "--concurrency",
            "6",
            "--seed",
            "1",
        ],
    );
    linearizable_or_zookeeper_lost_writes(code, &shown, &run);
    let ops = history(&run);
    assert!(
        nemesis_fs(&ops).iter().any(|f| f == "start-clock"),
        "{shown}"
    );
    // The JVMs ran under the faked clock: a server's log jumps by the seconds a bump or a
    // strobe moved it (its line stamps are wall-clock milliseconds since it started).
    let step = server_logs(&run)
        .iter()
        .map(|l| largest_clock_step_ms(l))
        .max()
        .unwrap();
    assert!(
        step >= 10_000,
        "no server's clock moved: largest step {step} ms"
    );
}

/// Kills only. With partitions as well (`--nemesis kill,partition`, seed 4), about one
/// run in 20 to 40 on this 2-core host finds ZooKeeper 3.8.0 itself at fault: a follower
/// acknowledges NEWLEADER for a DIFF it has logged but not applied, loses its leader a
/// second later, and votes with its last *applied* zxid, so an epoch is built without
/// transactions a quorum had accepted; once it restarts and replays its log, the servers
/// disagree (two children with one sequence number on one server, one on the others).
/// That is a finding about the system, not a flaky harness, so this test leaves it out.
#[test]
fn zookeeper_sequence_numbers_are_unique_and_ordered_under_kills() {
    let (code, shown, run) = zk_test(
        "zk-seq",
        &[
            "--workload",
            "sequential",
            "--time-limit",
            "15",
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "3",
            "--concurrency",
            "6",
            "--rate",
            "60",
            "--seed",
            "4",
        ],
    );
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(json(&run.join("results.json"))["valid"], true);
    let ops = history(&run);
    assert!(completions(&ops, "create", "ok").len() >= 50, "{shown}");
    let listed: std::collections::BTreeSet<String> = completions(&ops, "list", "ok")
        .iter()
        .map(|op| op["value"]["parent"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        listed.len(),
        3,
        "every parent was listed after healing: {listed:?}"
    );
}

/// The watch workload on ZooKeeper under partitions: notifications arrive before the
/// newer value and once. 3.8 sends them without a zxid, and the verdict says so.
#[test]
fn zookeeper_watches_fire_before_newer_values_under_partitions() {
    let (code, shown, run) = zk_test(
        "zk-watch",
        &[
            "--workload",
            "watch",
            "--time-limit",
            "12",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "3",
            "--concurrency",
            "6",
            "--seed",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{shown}");
    let results = json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{results}");
    let watch = &results["watch"];
    let fired = watch["details"]["fired"].as_u64().unwrap();
    assert!(fired >= 10, "{watch}");
    assert_eq!(watch["details"]["fired_without_zxid"], fired, "{watch}");
    assert!(
        nemesis_fs(&history(&run))
            .iter()
            .any(|f| f == "start-partition"),
        "{shown}"
    );
}

#[test]
fn zookeeper_refuses_what_it_cannot_run_with_a_clear_error() {
    require_zookeeper();
    let store = store("zk-refuse");
    let cases: [(&[&str], &str); 3] = [
        (&["--nodes", "4"], "runs 3 or 5 servers, not 4"),
        (&["--workload", "bank"], "zookeeper runs"),
        (&["--client-bug", "stale-cache"], "broken etcd client"),
    ];
    for (extra, expected) in cases {
        let mut args = vec![
            "test",
            "--system",
            "zookeeper",
            "--time-limit",
            "1",
            "--store",
            store.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        if !extra.contains(&"--workload") {
            args.extend_from_slice(&["--workload", "register"]);
        }
        let out = faultline(&args).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
    }
}

/// On network namespaces partitions are iptables rules that cut every link, election
/// channels included (the local backend's proxies miss election channels that ZooKeeper
/// dials back directly).
#[test]
fn zookeeper_on_network_namespaces_under_iptables_partitions_checks_valid() {
    require_root("network namespaces and iptables");
    let (code, shown, run) = zk_test(
        "zk-netns",
        &[
            "--backend",
            "netns",
            "--workload",
            "register",
            "--time-limit",
            "15",
            "--nemesis",
            "partition,kill",
            "--nemesis-interval",
            "3",
            "--concurrency",
            "6",
            "--rate",
            "60",
            "--seed",
            "8",
        ],
    );
    linearizable_or_zookeeper_lost_writes(code, &shown, &run);
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    assert!(fs.iter().any(|f| f == "start-partition"), "{fs:?}");
    assert!(clients_ok(&ops) > 100, "{shown}");
    let logs = server_logs(&run);
    assert!(
        logs.iter().any(|l| l.contains("LEADING")),
        "an ensemble formed"
    );
}

/// Damaged log tails: ZooKeeper's transaction log is found and walked (past the 64 MB of
/// preallocated zeros), bits flipped in its last records while the server is down. A
/// server that finds a checksum mismatch refuses to start ("CRC check failed") rather
/// than serve a damaged log; the others carry on, and what clients saw stays linearizable.
#[test]
fn zookeeper_log_tail_damage_is_refused_at_start_and_stays_linearizable() {
    let (code, shown, run) = zk_test(
        "zk-disk",
        &[
            "--workload",
            "register",
            // One fault only: a server refusing to start stays down, and two of three
            // down would leave no quorum for the final reads.
            "--time-limit",
            "9",
            "--nemesis",
            "disk",
            "--disk-faults",
            "corrupt-tail",
            "--nemesis-interval",
            "3",
            "--concurrency",
            "6",
            "--rate",
            "60",
            "--seed",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(json(&run.join("results.json"))["valid"], true);
    let ops = history(&run);
    let faults: Vec<&Value> = ops
        .iter()
        .filter(|op| op["f"] == "start-disk" && op["type"] == "ok")
        .flat_map(|op| op["value"]["faults"].as_array().into_iter().flatten())
        .collect();
    assert!(!faults.is_empty(), "the tails were damaged:\n{shown}");
    for f in &faults {
        let file = f["file"].as_str().unwrap_or("");
        assert!(file.starts_with("data/version-2/log."), "{f}");
        let (end, len) = (f["records_end"].as_u64(), f["file_len"].as_u64());
        assert!(
            end < len,
            "the records end before the preallocated zeros: {f}"
        );
    }
    let logs = server_logs(&run);
    for op in ops
        .iter()
        .filter(|op| op["f"] == "stop-disk" && op["type"] == "ok")
    {
        for node in op["value"]["exited_within_1s"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let n: usize = node.as_str().unwrap()[1..].parse().unwrap();
            assert!(
                logs[n - 1].contains("Unable to load database on disk"),
                "{node} refused to start for its damaged log"
            );
        }
    }
}

/// On the docker backend the node image is built from scratch out of the controller's JVM
/// and Debian's jars (no registry is reachable); partitions are iptables rules inside the
/// containers' namespaces, kills and pauses act on the containers' processes.
#[test]
fn zookeeper_in_docker_containers_under_partitions_kills_and_pauses_checks_valid() {
    require_docker();
    let (code, shown, run) = zk_test(
        "zk-docker",
        &[
            "--backend",
            "docker",
            "--workload",
            "register",
            "--time-limit",
            "15",
            "--nemesis",
            "partition,kill,pause",
            "--nemesis-interval",
            "3",
            "--concurrency",
            "6",
            "--rate",
            "60",
            "--seed",
            "3",
        ],
    );
    linearizable_or_zookeeper_lost_writes(code, &shown, &run);
    assert_eq!(json(&run.join("test.json"))["args"]["backend"], "docker");
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for f in ["start-partition", "start-kill", "start-pause"] {
        assert!(fs.iter().any(|g| g == f), "{f} recorded: {fs:?}");
    }
    assert!(clients_ok(&ops) > 100, "{shown}");
    assert!(
        server_logs(&run).iter().any(|l| l.contains("LEADING")),
        "an ensemble formed in the containers"
    );
}
