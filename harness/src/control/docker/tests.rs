//! Against the real engine. These never skip: without a reachable engine or busybox-static
//! they fail, naming what is missing.

use super::super::daemon::{self, Daemon};
use super::super::{conformance, Cmd, ControlError, Node, Remote};
use super::*;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// Port the reachability listeners use inside every container.
const LISTEN_PORT: u16 = 7000;

/// The busybox-only image every cluster test uses, built once per process (and cached by the
/// engine across processes, so the image count stays at one).
fn base_image() -> Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            ImageSpec::default()
                .build()
                .unwrap_or_else(|e| panic!("cannot build the node image: {e}"))
        })
        .clone()
}

fn cluster(n_nodes: usize) -> Docker {
    Docker::create(&base_image(), n_nodes)
        .unwrap_or_else(|e| panic!("cannot start a {n_nodes}-node Docker cluster: {e}"))
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    cli::run(args)
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn image_builds_from_scratch_and_rebuild_is_a_cache_hit() {
    // Content unique to this run, so the first build really builds.
    let dir = std::env::temp_dir().join(format!("faultline-image-test-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("marker.txt");
    std::fs::write(&marker, unique_suffix()).unwrap();
    let spec = ImageSpec {
        busybox: None,
        extra_files: vec![(marker.clone(), "/etc/faultline/marker.txt".into())],
    };
    let first = spec.build().unwrap_or_else(|e| panic!("{e}"));
    let second = spec.build().unwrap_or_else(|e| panic!("{e}"));
    let layers = cli::run(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        &first.tag,
    ]);
    let removed = first.remove();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(first.built, "new content is built");
    assert_eq!(
        second,
        Image {
            tag: first.tag.clone(),
            built: false
        },
        "same content: no build"
    );
    assert_eq!(layers.unwrap(), "1", "FROM scratch plus one COPY layer");
    removed.unwrap();
}

#[test]
fn extra_files_land_in_the_image_with_their_mode() {
    let dir = std::env::temp_dir().join(format!("faultline-image-test-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let tool = dir.join("tool");
    std::fs::write(&tool, format!("#!/bin/sh\necho tool {}\n", unique_suffix())).unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let spec = ImageSpec {
        busybox: None,
        extra_files: vec![(tool.clone(), "/usr/local/bin/tool".into())],
    };
    let image = spec.build().unwrap_or_else(|e| panic!("{e}"));
    // The cluster is dropped inside the closure, before its image is removed.
    let ran = Docker::create(&image, 1).map(|docker| {
        let n1 = &docker.nodes()[0];
        docker.exec(n1, &Cmd::new("tool; ls -ld /tmp | cut -c1-10"))
    });
    let _ = image.remove();
    let _ = std::fs::remove_dir_all(&dir);
    let out = ran.unwrap_or_else(|e| panic!("{e}")).unwrap();
    let text = out.stdout_text();
    assert!(text.starts_with("tool "), "{out:?}");
    assert!(
        text.ends_with("drwxrwxrwt\n"),
        "/tmp is world-writable and sticky: {text}"
    );
}

#[test]
fn conformance_passes_on_a_container() {
    let docker = cluster(1);
    let n1 = &docker.nodes()[0];
    conformance::run(&docker, n1);
}

#[test]
fn exit_codes_above_128_are_not_signals() {
    let docker = cluster(1);
    let n1 = &docker.nodes()[0];
    let exit = docker.exec(n1, &Cmd::new("exit 137")).unwrap();
    assert_eq!(exit.status, Some(137));
    let killed = docker
        .exec(n1, &Cmd::new("echo before; kill -9 $$"))
        .unwrap();
    assert_eq!(killed.status, None);
    assert_eq!(killed.stdout, b"before\n");
    assert_eq!(
        killed.stderr, b"",
        "the wrapper's 'Killed' stays out of stderr"
    );
    let env = docker
        .exec(
            n1,
            &Cmd::new("echo $FAULTLINE_NODE $FAULTLINE_NODE_IP; pwd; hostname"),
        )
        .unwrap();
    assert_eq!(
        env.stdout_text(),
        format!("n1 {}\n/faultline/n1\nn1\n", n1.ip)
    );
}

#[test]
fn a_timeout_kills_the_command_inside_the_container() {
    let docker = cluster(1);
    let n1 = &docker.nodes()[0];
    let cmd = Cmd::new("sleep 1000 & sleep 1001").timeout(Duration::from_millis(300));
    assert!(matches!(
        docker.exec(n1, &cmd),
        Err(ControlError::Timeout { .. })
    ));
    let left = docker
        .exec(n1, &Cmd::new("ps -o args | grep -c '^sleep 100[01]'"))
        .unwrap();
    assert_eq!(
        left.stdout_text().trim(),
        "0",
        "the whole process group is gone"
    );
    // Every state file but this listing command's own pid file.
    let others = "for f in /faultline/.exec/*; do [ \"$(cat $f)\" = $$ ] || echo $f; done";
    let state = docker.exec(n1, &Cmd::new(others)).unwrap();
    assert_eq!(state.stdout_text(), "", "no pid or status files are left");
}

#[test]
fn docker_failures_are_errors_not_outputs() {
    let docker = cluster(1);
    let n1 = docker.nodes()[0].clone();
    let stranger = Node {
        name: "n9".into(),
        ip: "10.0.0.9".into(),
    };
    assert!(matches!(
        docker.exec(&stranger, &Cmd::new("true")),
        Err(ControlError::Exec { .. })
    ));
    let container = docker.container_name(&n1).unwrap().to_string();
    cli::run(&["rm", "-f", &container]).unwrap();
    match docker.exec(&n1, &Cmd::new("echo hi")) {
        Err(ControlError::Exec { node, cause, .. }) => {
            assert_eq!(node, "n1");
            assert!(cause.contains(&container), "{cause}");
        }
        other => panic!("expected an exec error, got {other:?}"),
    }
}

#[test]
fn uploads_keep_the_executable_bit() {
    let docker = cluster(1);
    let n1 = &docker.nodes()[0];
    let dir = std::env::temp_dir().join(format!("faultline-upload-test-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let uploaded = docker.upload(n1, &script, Path::new("bin/run.sh"));
    let ran = docker.exec(n1, &Cmd::new("./bin/run.sh"));
    let dir_download = docker.download(n1, Path::new("bin"), &dir.join("bin"));
    let _ = std::fs::remove_dir_all(&dir);
    uploaded.unwrap();
    assert_eq!(ran.unwrap().stdout, b"ran\n");
    assert!(
        matches!(dir_download, Err(ControlError::File { .. })),
        "a directory is not a file: {dir_download:?}"
    );
}

#[test]
fn drop_leaves_no_container_or_network_behind() {
    let docker = cluster(2);
    let network = docker.network_name().to_string();
    let containers: Vec<String> = docker
        .nodes()
        .iter()
        .map(|n| docker.container_name(n).unwrap().to_string())
        .collect();
    let running = docker_lines(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={network}"),
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(running.len(), 2, "{running:?}");
    drop(docker);
    for container in &containers {
        assert!(
            cli::run(&["container", "inspect", container]).is_err(),
            "{container} is gone"
        );
    }
    assert!(
        cli::run(&["network", "inspect", &network]).is_err(),
        "{network} is gone"
    );
}

#[test]
fn net_partitions_real_tcp_connections() {
    let docker = cluster(3);
    let nodes = docker.nodes();
    for node in &nodes {
        start_listener(&docker, node);
    }
    let reachable = |a: &Node, b: &Node| tcp_reaches(&docker, a, b);
    for a in &nodes {
        for b in nodes.iter().filter(|b| b.name != a.name) {
            assert!(reachable(a, b), "{} -> {} before any fault", a.name, b.name);
        }
    }
    let net = docker.net();
    conformance::net(&net, &nodes, &reachable);
}

/// A persistent busybox nc server answering every connection with its node's name.
fn start_listener(docker: &Docker, node: &Node) {
    let d = Daemon {
        pidfile: "run/listener.pid".into(),
        logfile: "log/listener.log".into(),
    };
    let command = format!("nc -ll -p {LISTEN_PORT} -e echo {}", node.name);
    daemon::start(docker, node, &command, &d).unwrap();
    let up = (0..100).any(|_| {
        let probe = Cmd::new(format!("nc -w 1 127.0.0.1 {LISTEN_PORT} < /dev/null"));
        let answered = docker.exec(node, &probe).unwrap().stdout_text();
        answered.trim() == node.name || {
            std::thread::sleep(Duration::from_millis(20));
            false
        }
    });
    assert!(up, "{}'s listener answers", node.name);
}

/// Whether a TCP connection from `a` reaches `b`'s listener and hears `b`'s name; the
/// connect timeout (1 s) is how long a dropped SYN is waited for.
fn tcp_reaches(docker: &Docker, a: &Node, b: &Node) -> bool {
    let probe = Cmd::new(format!("nc -w 1 {} {LISTEN_PORT} < /dev/null", b.ip))
        .timeout(Duration::from_secs(10));
    let out = docker.exec(a, &probe).unwrap();
    out.stdout_text().trim() == b.name
}
