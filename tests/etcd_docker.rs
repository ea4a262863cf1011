//! End to end on the docker backend: `faultline test` builds its node image from scratch
//! (busybox and the etcd binary with its libraries), runs a real etcd cluster in containers
//! on a user-defined network, partitions it with iptables inside the containers' network
//! namespaces, kills and pauses members, and checks.

mod common;

use common::*;

use std::path::PathBuf;

#[test]
fn a_docker_cluster_of_etcd_under_faults_checks_valid() {
    require_etcd();
    require_docker();
    let store: PathBuf =
        std::env::temp_dir().join(format!("faultline-e2e-docker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let (pid, out) = faultline_run(&[
        "test",
        "--system",
        "etcd",
        "--workload",
        "register",
        "--backend",
        "docker",
        "--nodes",
        "3",
        "--time-limit",
        "8",
        "--nemesis",
        "partition,kill,pause",
        "--nemesis-interval",
        "2",
        "--seed",
        "4",
        "--store",
        store.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains(": valid"), "{stdout}");

    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    assert_eq!(json(&run.join("results.json"))["valid"], true);
    let test = json(&run.join("test.json"));
    assert_eq!(test["args"]["backend"], "docker");
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    for f in [
        "start-partition",
        "stop-partition",
        "start-kill",
        "stop-kill",
    ] {
        assert!(history.contains(&format!("\"f\":\"{f}\"")), "{f} recorded");
    }
    let cut = (1..=3).any(|n| {
        std::fs::read_to_string(run.join(format!("nodes/n{n}/etcd.log")))
            .is_ok_and(|l| l.contains("lost TCP streaming connection"))
    });
    assert!(
        cut,
        "iptables partitions in the containers really cut etcd's peer links"
    );
    assert!(
        containers_named(&format!("faultline-{pid}-")).is_empty(),
        "every container of the run is removed"
    );
}
