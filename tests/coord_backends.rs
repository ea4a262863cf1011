//! The coordination service on the root backends: `faultline test --system coord` on
//! network namespaces (iptables partitions) and on Docker containers (an image built FROM
//! scratch with the controller binary as the node), under partitions and kills.

mod common;

use common::*;

fn run_on(backend: &str) {
    require_root("network namespaces, iptables and the Docker engine");
    let store = store(&format!("coord-{backend}"));
    let out = faultline(&[
        "test",
        "--system",
        "coord",
        "--workload",
        "register",
        "--backend",
        backend,
        "--nodes",
        "3",
        "--time-limit",
        "10",
        "--nemesis",
        "partition,kill",
        "--nemesis-interval",
        "1",
        "--seed",
        "5",
        "--store",
        store.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let run = run_dir(&store);
    assert_eq!(json(&run.join("results.json"))["valid"], true);
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for f in ["start-partition", "start-kill", "stop-kill"] {
        assert!(fs.iter().any(|x| x == f), "{f} happened: {fs:?}");
    }
    assert!(
        clients_ok(&ops) > 100,
        "clients made progress: {}",
        clients_ok(&ops)
    );
    for n in 1..=3 {
        let log = std::fs::read_to_string(run.join(format!("nodes/n{n}/coord.log")))
            .unwrap_or_else(|e| panic!("n{n}'s log was collected: {e}"));
        assert!(log.contains("starting"), "n{n} ran: {log}");
    }
}

#[test]
fn coord_on_network_namespaces_under_partitions_and_kills_checks_valid() {
    run_on("netns");
}

#[test]
fn coord_in_docker_containers_under_partitions_and_kills_checks_valid() {
    require_tool("docker", "docker.io");
    run_on("docker");
}
