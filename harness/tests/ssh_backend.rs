//! The SSH backend against a real OpenSSH server: each test starts its own `sshd` on a free
//! port of 127.0.0.1, with generated host and client keys, and kills it (and every session
//! process under it) when done.
//!
//! Needs Debian's openssh-server and openssh-client; a missing tool fails the test naming
//! the package, never skips it.

#[path = "../../tests/common/sshd_config.rs"]
mod sshd_config;

use faultline::control::conformance;
use faultline::control::ssh::{Ssh, SshConfig, SshError};
use faultline::control::{Cmd, ControlError, Node, Remote};
use sshd_config::sshd_config;
use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
/// How long sshd may take to start listening.
const SSHD_START_TIMEOUT_MS: u64 = 10_000;

/// An sshd of our own, with everything it needs in a temporary directory.
struct Sshd {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Sshd {
    fn start() -> Sshd {
        require_tools();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "faultline-sshd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        // Two host key types: libssh2 prefers ed25519, so listing only the ecdsa key (as
        // `trust` does) checks that the type known_hosts lists is the one negotiated.
        keygen(&dir.join("host_ed25519"), "ed25519");
        keygen(&dir.join("host_ecdsa"), "ecdsa");
        keygen(&dir.join("client"), "ed25519");
        keygen(&dir.join("stranger"), "ed25519");
        std::fs::write(
            dir.join("sshd_config"),
            sshd_config(&dir, "127.0.0.1", &["host_ed25519", "host_ecdsa"]),
        )
        .unwrap();
        let mut sshd = Sshd {
            dir,
            port: free_port(),
            child: None,
        };
        sshd.spawn();
        sshd
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.dir.join("sshd_config"))
            .args(["-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
        self.child = Some(child);
        self.await_listening();
    }

    fn await_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(SSHD_START_TIMEOUT_MS);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sshd exited ({status}) at start: {}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sshd is not listening: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills sshd and every process under it: its per-connection children outlive it
    /// otherwise, and with them every session to it.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        for pid in descendants(child.id()) {
            // Some have exited meanwhile (a session's shell, after its sshd child).
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Settings for this sshd: strict checking against a known_hosts file of its own
    /// (empty until [`trust`](Sshd::trust)), short retries.
    fn config(&self) -> SshConfig {
        let mut config = SshConfig::new(current_user(), self.dir.join("client"));
        config.port = self.port;
        config.known_hosts = self.dir.join("known_hosts");
        config.connect_timeout_ms = 5_000;
        config.io_timeout_ms = 20_000;
        config.connect_retries = 2;
        config.retry_backoff_ms = 50;
        config.root = self.dir.join("nodes");
        config
    }

    /// Lists this sshd's ecdsa host key (only that one, not the ed25519 key libssh2 would
    /// pick by default) in the known_hosts file, as `ssh-keyscan -t ecdsa` would.
    fn trust(&self) {
        self.list_key(&self.dir.join("host_ecdsa.pub"));
    }

    fn list_key(&self, public_key: &Path) {
        let public = std::fs::read_to_string(public_key).unwrap();
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        let line = format!(
            "# written by the test\n[127.0.0.1]:{} {kind} {key}\n",
            self.port
        );
        std::fs::write(self.dir.join("known_hosts"), line).unwrap();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn require_tools() {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install the Debian package openssh-server"
    );
    match Command::new("ssh-keygen").arg("-?").output() {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("ssh-keygen is missing: install the Debian package openssh-client")
        }
        Err(e) => panic!("cannot run ssh-keygen: {e}"),
    }
}

fn keygen(path: &Path, kind: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "faultline-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen -t {kind} failed");
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A port nothing listens on (just now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every process under `root`, from the parent links in /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command name, which may hold spaces: state, then the parent.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            todo.push(child);
        }
    }
    found
}

fn node() -> Node {
    Node {
        name: "n1".into(),
        ip: "127.0.0.1".into(),
    }
}

fn echo(ssh: &Ssh) -> Result<String, ControlError> {
    let out = ssh.exec(&node(), &Cmd::new("echo hello"))?;
    assert!(out.success(), "{out:?}");
    Ok(out.stdout_text())
}

#[test]
fn conformance_passes_over_ssh() {
    let sshd = Sshd::start();
    sshd.trust();
    let ssh = Ssh::new(sshd.config());
    conformance::run(&ssh, &node());
}

#[test]
fn sudo_runs_as_root_and_the_node_is_in_the_environment() {
    let sshd = Sshd::start();
    sshd.trust();
    let ssh = Ssh::new(sshd.config());
    let out = ssh
        .exec(
            &node(),
            &Cmd::new("id -u; echo $FAULTLINE_NODE $FAULTLINE_NODE_IP").sudo(),
        )
        .unwrap();
    assert_eq!(out.stdout_text(), "0\nn1 127.0.0.1\n", "{out:?}");
}

#[test]
fn strict_checking_refuses_an_unknown_host_key() {
    let sshd = Sshd::start();
    let ssh = Ssh::new(sshd.config());
    let err = ssh.exec(&node(), &Cmd::new("true")).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ControlError::Exec { .. }), "{err:?}");
    for part in [
        "n1",
        &format!("127.0.0.1:{}", sshd.port),
        "known_hosts",
        "SHA256:",
        "ssh-keyscan",
        "--strict-host-key-checking false",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    // The fingerprint is the one `ssh-keygen -l` shows for the key (ed25519, libssh2's pick
    // when known_hosts has no preference).
    let listed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(sshd.dir.join("host_ed25519.pub"))
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    let fingerprint = listed.split_whitespace().nth(1).unwrap();
    assert!(
        text.contains(fingerprint),
        "{fingerprint} missing from: {text}"
    );
    assert!(
        matches!(ssh.check(&node()), Err(SshError::UnknownHostKey { .. })),
        "check refuses too"
    );
}

#[test]
fn strict_checking_accepts_a_listed_host_key() {
    let sshd = Sshd::start();
    for key in ["host_ecdsa.pub", "host_ed25519.pub"] {
        sshd.list_key(&sshd.dir.join(key));
        let ssh = Ssh::new(sshd.config());
        ssh.check(&node())
            .unwrap_or_else(|e| panic!("with {key} listed: {e}"));
        assert_eq!(echo(&ssh).unwrap(), "hello\n");
    }
    // As `HashKnownHosts yes` writes them.
    let hashed = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(sshd.dir.join("known_hosts"))
        .output()
        .unwrap();
    assert!(hashed.status.success(), "{hashed:?}");
    let text = std::fs::read_to_string(sshd.dir.join("known_hosts")).unwrap();
    assert!(
        text.contains("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    Ssh::new(sshd.config()).check(&node()).unwrap();
}

#[test]
fn an_entry_for_port_22_does_not_vouch_for_another_port() {
    let sshd = Sshd::start();
    let public = std::fs::read_to_string(sshd.dir.join("host_ed25519.pub")).unwrap();
    std::fs::write(sshd.dir.join("known_hosts"), format!("127.0.0.1 {public}")).unwrap();
    let err = Ssh::new(sshd.config()).check(&node()).unwrap_err();
    assert!(matches!(err, SshError::UnknownHostKey { .. }), "{err:?}");
}

#[test]
fn strict_checking_refuses_a_changed_host_key() {
    let sshd = Sshd::start();
    sshd.list_key(&sshd.dir.join("stranger.pub"));
    let ssh = Ssh::new(sshd.config());
    let err = ssh.check(&node()).unwrap_err();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "127.0.0.1",
        "does not match",
        "ssh-keygen -R",
        "--strict-host-key-checking false",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
}

#[test]
fn relaxed_checking_accepts_an_unknown_host_key() {
    let sshd = Sshd::start();
    let mut config = sshd.config();
    config.strict_host_key_checking = false;
    let ssh = Ssh::new(config);
    assert_eq!(echo(&ssh).unwrap(), "hello\n");
}

#[test]
fn a_wrong_client_key_is_refused_naming_the_login() {
    let sshd = Sshd::start();
    sshd.trust();
    let mut config = sshd.config();
    config.private_key = sshd.dir.join("stranger");
    let ssh = Ssh::new(config);
    let err = ssh.check(&node()).unwrap_err();
    assert!(matches!(err, SshError::Auth { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("@127.0.0.1:{}", sshd.port)),
        "{text}"
    );
    assert!(text.contains("stranger"), "{text}");
}

#[test]
fn an_unreachable_host_is_named_after_bounded_retries() {
    let port = free_port();
    let mut config = SshConfig::new(current_user(), "/nonexistent/key");
    config.port = port;
    config.connect_retries = 2;
    config.retry_backoff_ms = 50;
    let ssh = Ssh::new(config);
    let started = Instant::now();
    let err = ssh.exec(&node(), &Cmd::new("true")).unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("after 3 attempt"), "{text}");
    assert!(
        elapsed >= Duration::from_millis(150),
        "backs off 50 + 100 ms: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "bounded: {elapsed:?}");
}

#[test]
fn a_dead_session_is_replaced_transparently() {
    let mut sshd = Sshd::start();
    sshd.trust();
    let ssh = Ssh::new(sshd.config());
    assert_eq!(echo(&ssh).unwrap(), "hello\n");
    sshd.restart();
    assert_eq!(
        echo(&ssh).unwrap(),
        "hello\n",
        "exec after sshd restarted: {}",
        sshd.log()
    );
    sshd.restart();
    let local = sshd.dir.join("up.txt");
    std::fs::write(&local, "again").unwrap();
    ssh.upload(&node(), &local, Path::new("up.txt")).unwrap();
    let back = sshd.dir.join("back.txt");
    ssh.download(&node(), Path::new("up.txt"), &back).unwrap();
    assert_eq!(std::fs::read_to_string(back).unwrap(), "again");
}

#[test]
fn a_session_dying_mid_command_is_an_error_and_the_next_call_reconnects() {
    let sshd = Sshd::start();
    sshd.trust();
    let ssh = Ssh::new(sshd.config());
    // Kills the sshd process serving this very session.
    let err = ssh
        .exec(&node(), &Cmd::new("kill -9 $PPID; sleep 5"))
        .unwrap_err();
    assert!(matches!(err, ControlError::Exec { .. }), "{err:?}");
    assert_eq!(echo(&ssh).unwrap(), "hello\n");
}

#[test]
fn timeouts_kill_the_whole_process_group() {
    let sshd = Sshd::start();
    sshd.trust();
    let ssh = Ssh::new(sshd.config());
    let cmd = Cmd::new("sleep 300 & echo $! > bg.pid; wait").timeout(Duration::from_millis(500));
    match ssh.exec(&node(), &cmd) {
        Err(ControlError::Timeout { node, .. }) => assert_eq!(node, "n1"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let gone = (0..100).any(|_| {
        let alive = ssh
            .exec(&node(), &Cmd::new("kill -0 $(cat bg.pid) 2>/dev/null"))
            .unwrap();
        if alive.success() {
            std::thread::sleep(Duration::from_millis(20));
        }
        !alive.success()
    });
    assert!(gone, "the background child died with its group");
}

#[test]
fn concurrent_commands_on_one_node_do_not_queue_behind_each_other() {
    let sshd = Sshd::start();
    sshd.trust();
    let ssh = Ssh::new(sshd.config());
    echo(&ssh).unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let out = ssh.exec(&node(), &Cmd::new("sleep 1")).unwrap();
                assert!(out.success());
            });
        }
    });
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(2_500), "{elapsed:?}");
}

#[test]
fn a_relative_root_is_under_the_login_home() {
    let sshd = Sshd::start();
    sshd.trust();
    let mut config = sshd.config();
    let root = format!(".faultline-ssh-test-{}", std::process::id());
    config.root = PathBuf::from(&root);
    let ssh = Ssh::new(config);
    let local = sshd.dir.join("f.txt");
    std::fs::write(&local, "in home").unwrap();
    ssh.upload(&node(), &local, Path::new("sub/f.txt")).unwrap();
    let out = ssh
        .exec(
            &node(),
            &Cmd::new(format!(
                "cat \"$HOME/{root}/n1/sub/f.txt\"; [ \"$PWD\" = \"$HOME/{root}/n1\" ] && echo here; \
                 rm -rf \"$HOME/{root}\""
            )),
        )
        .unwrap();
    assert_eq!(out.stdout_text(), "in homehere\n", "{out:?}");
}
