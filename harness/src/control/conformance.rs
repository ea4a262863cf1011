//! The behaviour every [`Remote`] backend must show. Each backend's tests call [`run`] against
//! a real node of that backend.

use super::{Cmd, ControlError, Net, Node, Remote, MAX_OUTPUT_BYTES};
use std::path::Path;
use std::time::Duration;

/// Runs every check; panics naming the first that fails.
pub fn run(remote: &dyn Remote, node: &Node) {
    exec_reports_streams_and_status(remote, node);
    exec_passes_stdin_through(remote, node);
    exec_reports_death_by_signal(remote, node);
    exec_times_out(remote, node);
    exec_bounds_output(remote, node);
    files_round_trip(remote, node);
    bad_paths_are_refused(remote, node);
    daemons_pause_resume_and_die(remote, node);
}

/// Partition and heal, as nemeses use them, on at least three nodes: for several
/// topologies, what `reachable(a, b)` observes (a real connection from node a to node b, made
/// however the backend's test can) equals the grudge, and heal restores every link.
pub fn net(net: &dyn Net, nodes: &[Node], reachable: &dyn Fn(&Node, &Node) -> bool) {
    use crate::partition::{connected, isolate_one, majorities_ring, random_halves};
    use checkers::rng::Rng;
    assert!(nodes.len() >= 3, "the net checks need at least three nodes");
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let mut rng = Rng::new(7);
    let grudges = [
        random_halves(&names, &mut rng),
        isolate_one(&names, &mut rng),
        majorities_ring(&names, &mut rng),
    ];
    for grudge in &grudges {
        net.partition(grudge).unwrap();
        for a in nodes {
            for b in nodes.iter().filter(|b| b.name != a.name) {
                assert_eq!(
                    reachable(a, b),
                    connected(grudge, &a.name, &b.name),
                    "{} -> {} under {grudge:?}",
                    a.name,
                    b.name
                );
            }
        }
    }
    net.heal().unwrap();
    for a in nodes {
        for b in nodes.iter().filter(|b| b.name != a.name) {
            assert!(reachable(a, b), "{} -> {} after heal", a.name, b.name);
        }
    }
}

/// Kill and pause, as nemeses use them: a daemon is stopped and continued as a group, and a
/// killed one is gone.
fn daemons_pause_resume_and_die(remote: &dyn Remote, node: &Node) {
    use super::daemon::{self, Daemon, State};
    let d = Daemon {
        pidfile: "run/sleeper.pid".into(),
        logfile: "log/sleeper.log".into(),
    };
    let pid = daemon::start(remote, node, "sleep 1000", &d).unwrap();
    assert!(pid > 1);
    assert_eq!(daemon::state(remote, node, &d).unwrap(), State::Running);
    assert!(daemon::signal(remote, node, &d, "STOP").unwrap());
    assert_eq!(daemon::state(remote, node, &d).unwrap(), State::Stopped);
    assert!(daemon::signal(remote, node, &d, "CONT").unwrap());
    assert_eq!(daemon::state(remote, node, &d).unwrap(), State::Running);
    assert!(daemon::signal(remote, node, &d, "KILL").unwrap());
    let gone = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        daemon::state(remote, node, &d).unwrap() == State::Gone
    });
    assert!(gone, "a killed daemon is gone within 2 s");
    assert!(
        !daemon::signal(remote, node, &d, "KILL").unwrap(),
        "nothing left to signal"
    );
}

fn exec_reports_streams_and_status(remote: &dyn Remote, node: &Node) {
    let out = remote
        .exec(node, &Cmd::new("echo out; echo err >&2; exit 3"))
        .unwrap();
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    let ok = remote.exec(node, &Cmd::new("true")).unwrap();
    assert!(ok.success());
}

fn exec_passes_stdin_through(remote: &dyn Remote, node: &Node) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let out = remote
        .exec(node, &Cmd::new("cat").stdin(bytes.clone()))
        .unwrap();
    assert_eq!(out.stdout, bytes, "binary stdin comes back unchanged");
}

fn exec_reports_death_by_signal(remote: &dyn Remote, node: &Node) {
    let out = remote.exec(node, &Cmd::new("kill -9 $$")).unwrap();
    assert_eq!(out.status, None, "a signal is not an exit code");
}

fn exec_times_out(remote: &dyn Remote, node: &Node) {
    let cmd = Cmd::new("sleep 30").timeout(Duration::from_millis(200));
    match remote.exec(node, &cmd) {
        Err(ControlError::Timeout { node: n, .. }) => assert_eq!(n, node.name),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

fn exec_bounds_output(remote: &dyn Remote, node: &Node) {
    let out = remote
        .exec(node, &Cmd::new("head -c 20000000 /dev/zero"))
        .unwrap();
    assert!(out.success());
    assert_eq!(
        out.stdout.len(),
        MAX_OUTPUT_BYTES,
        "output beyond the cap is dropped"
    );
}

fn files_round_trip(remote: &dyn Remote, node: &Node) {
    let dir = std::env::temp_dir().join(format!(
        "faultline-conformance-{}-{}",
        std::process::id(),
        node.name
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let blob: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let up = dir.join("up.bin");
    std::fs::write(&up, &blob).unwrap();
    remote
        .upload(node, &up, Path::new("data/nested/blob.bin"))
        .unwrap();
    let size = remote
        .exec(node, &Cmd::new("wc -c < data/nested/blob.bin"))
        .unwrap();
    assert_eq!(
        size.stdout_text().trim(),
        "1000000",
        "exec sees uploaded files at the same path"
    );
    remote
        .exec(node, &Cmd::new("printf made-here > data/made.txt"))
        .unwrap();
    let down = dir.join("down.txt");
    remote
        .download(node, Path::new("data/made.txt"), &down)
        .unwrap();
    assert_eq!(std::fs::read(&down).unwrap(), b"made-here");
    let back = dir.join("back.bin");
    remote
        .download(node, Path::new("data/nested/blob.bin"), &back)
        .unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), blob);
}

fn bad_paths_are_refused(remote: &dyn Remote, node: &Node) {
    let local = std::env::temp_dir().join("faultline-conformance-missing");
    match remote.download(node, Path::new("no/such/file"), &local) {
        Err(ControlError::File { node: n, .. }) => assert_eq!(n, node.name),
        other => panic!("expected a file error naming the node, got {other:?}"),
    }
    for escape in ["../outside", "/etc/passwd"] {
        assert!(
            remote.download(node, Path::new(escape), &local).is_err(),
            "{escape} must be refused"
        );
    }
}
