//! End to end on the SSH backend: `faultline test --backend ssh` deploys real etcd (Debian's
//! etcd-server) to three "hosts" over real OpenSSH, drives the register workload under
//! partitions (iptables over SSH), kills and pauses, heals, collects logs, tears down and
//! checks; a host whose key is not in known_hosts and an unreachable host are refused at
//! start, naming the host.
//!
//! The hosts are network namespaces of this machine (`Netns`), each with its own address and
//! its own `sshd` on port 22, all sharing one host key and one authorized client key. Each
//! sshd runs in a mount namespace of its own (`ip netns exec` makes one) where the login's
//! home is a bind mount of a temporary directory shared by the three: the hosts share a home
//! as namespaces of one machine must, the node directories (`faultline/n1`, ...) never touch
//! the real home, and no log of an earlier run can satisfy this run's assertions.
//!
//! Faultline's own coordination service runs the same way: the controller uploads its own
//! binary over SFTP and each host runs it as the node.
//!
//! Needs root, iproute2, iptables, openssh-server, openssh-client and etcd-server; anything
//! missing fails the test naming its package, never skips it.

mod common;

use common::*;

use faultline::control::netns::Netns;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
/// How long an sshd may take to start listening.
const SSHD_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a refused run: with the default 4 connect attempts, an address nobody answers
/// ARP for fails each in about 3 s, plus 1.75 s of backoff.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(45);

fn require_tools() {
    require_root("it creates network namespaces, bind-mounts a home for sshd and runs iptables");
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install the Debian package openssh-server"
    );
    for (tool, package) in [
        ("ssh-keygen", "openssh-client"),
        ("etcd", "etcd-server"),
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("iptables-restore", "iptables"),
    ] {
        require_tool(tool, package);
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "faultline-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen (openssh-client): {e}"));
    assert!(status.success(), "ssh-keygen -t ed25519 failed");
}

/// The home directory /etc/passwd gives `user`: where sshd puts the user's sessions.
fn home_of(user: &str) -> PathBuf {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[0] == user)
        .map(|f| PathBuf::from(f[5]))
        .unwrap_or_else(|| panic!("{user} has no entry in /etc/passwd"))
}

/// Process ids in a network namespace.
fn pids_in(namespace: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", namespace])
        .output()
        .unwrap();
    text(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn comm(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Three namespace "hosts", each running its own sshd on port 22. Dropping it kills every
/// process in the namespaces (the sshds, their sessions, and any daemon started through
/// them) before the namespaces themselves go.
struct SshHosts {
    dir: PathBuf,
    sshds: Vec<Child>,
    namespaces: Vec<String>,
    ips: Vec<String>,
    // Last, so it is dropped after `Drop::drop` has killed what ran inside.
    netns: Netns,
}

/// libfaketime, which the skewed hosts' sessions preload.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

impl SshHosts {
    fn start(test: &str) -> SshHosts {
        SshHosts::start_skewed(test, [0, 0, 0])
    }

    /// Hosts whose wall clocks are `skews_s` seconds off this machine's: every program a
    /// session starts (the node, PostgreSQL, `date`) preloads libfaketime with that offset,
    /// set by the host's sshd (`SetEnv`), as if the host's own clock were off. Their
    /// monotonic clocks are left alone, as on real hosts.
    fn start_skewed(test: &str, skews_s: [i64; 3]) -> SshHosts {
        require_tools();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "faultline-etcd-ssh-{}-{}-{test}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["home", "client-home/.ssh", "netns"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        keygen(&dir.join("host_ed25519"));
        keygen(&dir.join("client"));
        let config = sshd_config(&dir, "0.0.0.0", &["host_ed25519"]);
        for (i, skew_s) in skews_s.iter().enumerate() {
            let mut host = config.clone();
            if *skew_s != 0 {
                assert!(
                    Path::new(LIBFAKETIME).is_file(),
                    "{LIBFAKETIME} is missing: install the Debian package libfaketime"
                );
                host += &format!(
                    "SetEnv LD_PRELOAD={LIBFAKETIME} FAKETIME={skew_s:+} DONT_FAKE_MONOTONIC=1\n"
                );
            }
            std::fs::write(dir.join(format!("sshd_config-{}", i + 1)), host).unwrap();
        }
        // Empty: strict checking refuses every host until `trust`.
        std::fs::write(dir.join("client-home/.ssh/known_hosts"), "").unwrap();

        let netns = Netns::create(&dir.join("netns"), 3)
            .unwrap_or_else(|e| panic!("cannot create the namespaces: {e}"));
        let nodes = netns.nodes();
        let namespaces: Vec<String> = nodes
            .iter()
            .map(|n| netns.namespace(n).unwrap().to_string())
            .collect();
        let ips: Vec<String> = nodes.iter().map(|n| n.ip.clone()).collect();
        let mut hosts = SshHosts {
            dir,
            sshds: Vec::new(),
            namespaces,
            ips,
            netns,
        };
        for i in 0..3 {
            let child = hosts.spawn_sshd(i);
            hosts.sshds.push(child);
        }
        for i in 0..3 {
            hosts.await_listening(i);
        }
        hosts
    }

    /// sshd in node `i`'s namespace, with the login's home bind-mounted over (only in the
    /// mount namespace `ip netns exec` gives it, and so in its sessions).
    fn spawn_sshd(&self, i: usize) -> Child {
        let home = home_of("root");
        let log = std::fs::File::create(self.dir.join(format!("sshd-{}.log", i + 1))).unwrap();
        Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i], "sh", "-c"])
            .arg("mount --bind \"$1\" \"$2\" && exec \"$3\" -D -e -f \"$4\"")
            .arg("sh")
            .arg(self.dir.join("home"))
            .arg(&home)
            .arg(SSHD)
            .arg(self.dir.join(format!("sshd_config-{}", i + 1)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD} in {}: {e}", self.namespaces[i]))
    }

    fn await_listening(&mut self, i: usize) {
        let deadline = Instant::now() + SSHD_START_TIMEOUT;
        let addr = format!("{}:22", self.ips[i]);
        loop {
            if let Some(status) = self.sshds[i].try_wait().unwrap() {
                panic!(
                    "sshd of n{} exited ({status}) at start: {}",
                    i + 1,
                    self.sshd_log(i)
                );
            }
            let sock = addr.parse().unwrap();
            if TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sshd of n{} is not listening on {addr}: {}",
                i + 1,
                self.sshd_log(i)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sshd_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("sshd-{}.log", i + 1))).unwrap_or_default()
    }

    fn sshd_logs(&self) -> String {
        (0..3)
            .map(|i| format!("--- sshd of n{}:\n{}", i + 1, self.sshd_log(i)))
            .collect()
    }

    /// Lists the shared host key for every host's address, as `ssh-keyscan` would.
    fn trust(&self) {
        let public = std::fs::read_to_string(self.dir.join("host_ed25519.pub")).unwrap();
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        let lines: String = self
            .ips
            .iter()
            .map(|ip| format!("{ip} {kind} {key}\n"))
            .collect();
        std::fs::write(self.dir.join("client-home/.ssh/known_hosts"), lines).unwrap();
    }

    /// An address of the hosts' subnet that nothing holds.
    fn unused_ip(&self) -> String {
        let subnet = self.netns.subnet();
        let prefix = &subnet[..subnet.rfind('.').unwrap() + 1];
        assert!(
            !self.ips.iter().any(|ip| ip.ends_with(".200")) && prefix.ends_with('.'),
            "{subnet}"
        );
        format!("{prefix}200")
    }

    /// `faultline test` of etcd against `hosts`, as root with this test's key, with HOME (so
    /// `~/.ssh/known_hosts`) in the test's directory.
    fn faultline(&self, hosts: &[&str], store: &Path, extra: &[&str]) -> Command {
        self.faultline_system("etcd", hosts, store, extra)
    }

    /// `faultline test` of `system` against `hosts`, as [`SshHosts::faultline`].
    fn faultline_system(
        &self,
        system: &str,
        hosts: &[&str],
        store: &Path,
        extra: &[&str],
    ) -> Command {
        self.faultline_workload(system, "register", hosts, store, extra)
    }

    /// `faultline test` of `system`'s `workload` against `hosts`.
    fn faultline_workload(
        &self,
        system: &str,
        workload: &str,
        hosts: &[&str],
        store: &Path,
        extra: &[&str],
    ) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
        c.args([
            "test",
            "--system",
            system,
            "--workload",
            workload,
            "--backend",
            "ssh",
        ]);
        for host in hosts {
            c.args(["--node", host]);
        }
        c.args(["--username", "root", "--ssh-private-key"])
            .arg(self.dir.join("client"))
            .arg("--store")
            .arg(store)
            .args(extra)
            .env("HOME", self.dir.join("client-home"))
            .stdin(Stdio::null());
        c
    }

    /// After a run: no process but sshd left in the namespaces, and no DROP rule left.
    fn assert_torn_down(&self) {
        let strangers = self.strangers();
        assert!(
            strangers.is_empty(),
            "teardown left processes in the namespaces: {strangers:?}"
        );
        for i in 0..3 {
            let rules = self.chain_rules(i);
            assert!(
                !rules.contains("DROP"),
                "partitions were healed on n{}: {rules}",
                i + 1
            );
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// Node `n`'s directory as its sessions see it (`~/faultline/n<n>`), on this host.
    fn node_dir(&self, n: usize) -> PathBuf {
        self.dir.join(format!("home/faultline/n{n}"))
    }

    /// Processes in the namespaces that are not an sshd (a listener or a session's), waiting
    /// a little for sessions that are closing.
    fn strangers(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found: Vec<String> = self
                .namespaces
                .iter()
                .flat_map(|ns| {
                    pids_in(ns)
                        .into_iter()
                        .map(|p| (comm(&p), p))
                        .filter(|(c, _)| !c.is_empty() && !c.starts_with("sshd"))
                        .map(move |(c, p)| format!("{c} (pid {p}) in {ns}"))
                })
                .collect();
            if found.is_empty() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The rules of the partition chain in node `i`'s namespace.
    fn chain_rules(&self, i: usize) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.namespaces[i],
                "iptables",
                "-w",
                "-S",
                "FAULTLINE",
            ])
            .output()
            .unwrap();
        text(&out.stdout)
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        // Everything in the namespaces: the sshds, their sessions, and whatever those
        // started (daemons detach from their session, so are no sshd's descendants).
        for _ in 0..50 {
            let pids: Vec<String> = self.namespaces.iter().flat_map(|ns| pids_in(ns)).collect();
            if pids.is_empty() {
                break;
            }
            let _ = Command::new("sh")
                .args(["-c", "kill -KILL \"$@\" 2>/dev/null", "sh"])
                .args(&pids)
                .status();
            std::thread::sleep(Duration::from_millis(20));
        }
        for child in &mut self.sshds {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        // `netns` is dropped after this, removing the namespaces.
    }
}

/// Samples the partition chain (`FAULTLINE`, which the harness fills over SSH) in every
/// namespace while a run goes, recording for each DROP rule the most packets it was seen to
/// have dropped: the rules are flushed at every heal, so only a sample taken while a
/// partition is in effect sees them.
struct DropWatch {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<BTreeMap<(usize, String), u64>>,
}

/// How often [`DropWatch`] samples: partitions last at least a second.
const DROP_WATCH_PERIOD: Duration = Duration::from_millis(200);

impl DropWatch {
    fn start(namespaces: Vec<String>) -> DropWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut seen: BTreeMap<(usize, String), u64> = BTreeMap::new();
            while !stopped.load(Ordering::SeqCst) {
                for (i, ns) in namespaces.iter().enumerate() {
                    let out = Command::new("ip")
                        .args(["netns", "exec", ns, "iptables", "-w", "-L", "FAULTLINE"])
                        .args(["-n", "-v", "-x"])
                        .stderr(Stdio::null())
                        .output();
                    let Ok(out) = out else { continue };
                    for (source, packets) in drop_rules(&text(&out.stdout)) {
                        let max = seen.entry((i, source)).or_default();
                        *max = (*max).max(packets);
                    }
                }
                std::thread::sleep(DROP_WATCH_PERIOD);
            }
            seen
        });
        DropWatch { stop, handle }
    }

    /// (node index, source address) → most packets dropped.
    fn finish(self) -> BTreeMap<(usize, String), u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

/// The DROP rules of `iptables -L CHAIN -n -v -x` output, as (source, packets): the source
/// is the first address after the target (the destination comes after it).
fn drop_rules(listing: &str) -> Vec<(String, u64)> {
    listing
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let target = fields.iter().position(|f| *f == "DROP")?;
            let packets = fields.first()?.parse().ok()?;
            let source = fields[target..]
                .iter()
                .find(|f| f.parse::<Ipv4Addr>().is_ok())?;
            Some((source.to_string(), packets))
        })
        .collect()
}

/// Runs a command that should be refused at start, within [`REFUSAL_TIMEOUT`].
/// An 8-second run under partitions, kills and pauses every 2 seconds, from `seed`.
fn faults(seed: &str) -> [&str; 8] {
    [
        "--time-limit",
        "8",
        "--nemesis",
        "partition,kill,pause",
        "--nemesis-interval",
        "2",
        "--seed",
        seed,
    ]
}

fn run_bounded(mut cmd: Command) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), started.elapsed());
        }
        if started.elapsed() > REFUSAL_TIMEOUT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "not refused within {REFUSAL_TIMEOUT:?}: stderr:\n{}",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The run's seed. Its schedule (which depends on the seed alone) makes a real partition
/// early, while both sides are up: seed 36 cuts n1 from n2 from about 2.5 s to 5.4 s of the
/// run. (Seed 9, say, has one partition, of topology "primaries", chosen while every member
/// is paused: nobody answers the leader probe, so its grudge is empty and nothing is cut.)
const SEED: u64 = 36;

#[test]
fn etcd_over_ssh_under_partitions_kills_and_pauses_checks_valid() {
    let hosts = SshHosts::start("valid");
    hosts.trust();
    let store = hosts.store();
    let ips: Vec<&str> = hosts.ips.iter().map(String::as_str).collect();
    let seed = SEED.to_string();
    let watch = DropWatch::start(hosts.namespaces.clone());
    let started = Instant::now();
    let out = hosts
        .faultline(&ips, &store, &faults(&seed))
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let drops = watch.finish();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        hosts.sshd_logs()
    );
    assert!(stdout.contains(": valid"), "{stdout}");
    eprintln!("faultline test over ssh took {elapsed:?}; DROP rules seen: {drops:?}");

    let run = run_dir(&store);
    let test = json(&run.join("test.json"));
    assert_eq!(test["seed"], SEED);
    assert_eq!(test["args"]["backend"], "ssh", "{test}");
    for (i, ip) in ips.iter().enumerate() {
        assert_eq!(test["nodes"][i]["name"], format!("n{}", i + 1), "{test}");
        assert_eq!(
            test["nodes"][i]["ip"], *ip,
            "hosts become nodes in order: {test}"
        );
    }
    assert!(
        test["system_version"]
            .as_str()
            .is_some_and(|v| v.contains("3.4")),
        "etcd --version ran over SSH: {test}"
    );
    let results = json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{results}");

    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for f in [
        "start-partition",
        "stop-partition",
        "start-kill",
        "start-pause",
    ] {
        assert!(fs.iter().any(|x| x == f), "{f} happened: {fs:?}");
    }
    assert_eq!(
        fs.last().map(String::as_str),
        Some("stop-all"),
        "all faults heal: {fs:?}"
    );
    let clients_ok = clients_ok(&ops);
    assert!(clients_ok > 50, "clients made progress: {clients_ok} ok");

    // The logs came back over SFTP, one per node, each from its own member: the three
    // hosts share a home, and their node directories must not collide.
    for n in 1..=3 {
        let log = std::fs::read_to_string(run.join(format!("nodes/n{n}/etcd.log")))
            .unwrap_or_else(|e| panic!("nodes/n{n}/etcd.log collected: {e}"));
        assert!(
            log.contains(&format!("\"name\":\"n{n}\"")),
            "n{n}'s log is n{n}'s member's: {}",
            &log[..log.len().min(2000)]
        );
        let remote = hosts.node_dir(n);
        assert!(
            remote.join("log/etcd.log").is_file(),
            "{}",
            remote.display()
        );
        assert!(
            !remote.join("data").exists(),
            "teardown over SSH removed {}/data",
            remote.display()
        );
    }
    let cut = (1..=3).any(|n| {
        std::fs::read_to_string(run.join(format!("nodes/n{n}/etcd.log")))
            .is_ok_and(|log| log.contains("lost TCP streaming connection"))
    });
    assert!(
        cut,
        "etcd lost peer connections (to kills, pauses or partitions)"
    );
    // The partitions themselves: a DROP rule the harness installed over SSH on node X
    // against node Y's address, for a grudge in which X drops Y, dropped packets.
    let cut_links: Vec<String> = ops
        .iter()
        .filter(|op| op["f"] == "start-partition" && op["type"] == "ok")
        .filter_map(|op| op["value"]["grudge"].as_object())
        .flat_map(|grudge| {
            grudge.iter().flat_map(|(node, dropped)| {
                let dropped: Vec<&str> = dropped
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                dropped
                    .into_iter()
                    .map(move |d| (node.clone(), d.to_string()))
            })
        })
        .filter(|(node, from)| {
            let index = node[1..].parse::<usize>().unwrap() - 1;
            let from_ip = ips[from[1..].parse::<usize>().unwrap() - 1];
            drops
                .get(&(index, from_ip.to_string()))
                .is_some_and(|&packets| packets > 0)
        })
        .map(|(node, from)| format!("{node} dropped {from}"))
        .collect();
    assert!(
        !cut_links.is_empty(),
        "no partition of the run was seen dropping packets: DROP rules sampled {drops:?}, \
         nemesis ops {fs:?}"
    );
    eprintln!("partitioned links seen dropping packets: {cut_links:?}");

    hosts.assert_torn_down();
}

#[test]
fn strict_checking_refuses_a_host_missing_from_known_hosts() {
    let hosts = SshHosts::start("unknown-key");
    let store = hosts.store();
    let ips: Vec<&str> = hosts.ips.iter().map(String::as_str).collect();
    let (out, _) = run_bounded(hosts.faultline(&ips, &store, &["--time-limit", "5"]));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(254), "stderr:\n{stderr}");
    for part in [
        "node n1".to_string(),
        format!("{}:22", ips[0]),
        "host key".into(),
        "client-home/.ssh/known_hosts".into(),
        "--strict-host-key-checking false".into(),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from: {stderr}");
    }
    // Refused before anything was started or written on any host.
    assert_eq!(hosts.strangers(), Vec::<String>::new());
    assert!(!hosts.dir.join("home/faultline").exists());

    // The same key listed for another address vouches for nothing here.
    let public = std::fs::read_to_string(hosts.dir.join("host_ed25519.pub")).unwrap();
    std::fs::write(
        hosts.dir.join("client-home/.ssh/known_hosts"),
        format!("{} {public}", hosts.unused_ip()),
    )
    .unwrap();
    let (out, _) = run_bounded(hosts.faultline(&ips, &store, &["--time-limit", "5"]));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(254), "stderr:\n{stderr}");
    assert!(stderr.contains(&format!("{}:22", ips[0])), "{stderr}");
}

#[test]
fn an_unreachable_host_is_refused_by_name_in_bounded_time() {
    let hosts = SshHosts::start("unreachable");
    hosts.trust();
    let store = hosts.store();
    let unused = hosts.unused_ip();
    let (out, elapsed) = run_bounded(hosts.faultline(
        &[&hosts.ips[0], &hosts.ips[1], &unused],
        &store,
        &["--time-limit", "5"],
    ));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(254), "stderr:\n{stderr}");
    for part in [
        format!("node n3 at {unused}"),
        format!("cannot reach {unused}:22"),
        "attempt".into(),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from: {stderr}");
    }
    eprintln!("unreachable host refused after {elapsed:?}");
    // The reachable hosts were only connected to: nothing was started on them.
    assert_eq!(hosts.strangers(), Vec::<String>::new());
}

#[test]
fn coord_over_ssh_under_partitions_kills_and_pauses_checks_valid() {
    let hosts = SshHosts::start("coord");
    hosts.trust();
    let store = hosts.store();
    let ips: Vec<&str> = hosts.ips.iter().map(String::as_str).collect();
    let seed = SEED.to_string();
    let out = hosts
        .faultline_system("coord", &ips, &store, &faults(&seed))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        hosts.sshd_logs()
    );
    assert!(stdout.contains(": valid"), "{stdout}");
    let run = run_dir(&store);
    let test = json(&run.join("test.json"));
    assert_eq!(test["args"]["backend"], "ssh", "{test}");
    assert_eq!(test["args"]["system"], "coord", "{test}");
    let results = json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{results}");
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for f in ["start-partition", "start-kill", "start-pause"] {
        assert!(fs.iter().any(|x| x == f), "{f} happened: {fs:?}");
    }
    assert_eq!(fs.last().map(String::as_str), Some("stop-all"), "{fs:?}");
    let clients_ok = clients_ok(&ops);
    assert!(clients_ok > 50, "clients made progress: {clients_ok} ok");
    for n in 1..=3 {
        let remote = hosts.node_dir(n);
        assert!(
            remote.join("bin/faultline").is_file(),
            "the controller uploaded its binary to n{n}: {}",
            remote.display()
        );
        let log = std::fs::read_to_string(run.join(format!("nodes/n{n}/coord.log")))
            .unwrap_or_else(|e| panic!("nodes/n{n}/coord.log collected: {e}"));
        assert!(!log.is_empty(), "n{n} logged");
    }
    hosts.assert_torn_down();
}

/// Apache ZooKeeper over SSH: a JVM per host started through the hosts' sshd, partitioned
/// with iptables in their namespaces.
#[test]
fn zookeeper_over_ssh_under_partitions_kills_and_pauses_checks_valid() {
    require_tool("java", "default-jre-headless");
    let _heavy = heavy();
    let hosts = SshHosts::start("zookeeper");
    hosts.trust();
    let store = hosts.store();
    let ips: Vec<&str> = hosts.ips.iter().map(String::as_str).collect();
    let seed = SEED.to_string();
    let out = hosts
        .faultline_system("zookeeper", &ips, &store, &faults(&seed))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        hosts.sshd_logs()
    );
    let run = run_dir(&store);
    let test = json(&run.join("test.json"));
    assert_eq!(test["args"]["backend"], "ssh", "{test}");
    assert_eq!(json(&run.join("results.json"))["valid"], true);
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for f in ["start-partition", "start-kill", "start-pause"] {
        assert!(fs.iter().any(|x| x == f), "{f} happened: {fs:?}");
    }
    let clients_ok = clients_ok(&ops);
    assert!(clients_ok > 50, "clients made progress: {clients_ok} ok");
    for n in 1..=3 {
        let log = std::fs::read_to_string(run.join(format!("nodes/n{n}/zookeeper.log")))
            .unwrap_or_else(|e| panic!("nodes/n{n}/zookeeper.log collected: {e}"));
        assert!(
            log.contains("QuorumPeerMain") || log.contains("QuorumPeer"),
            "n{n} ran a ZooKeeper server: {}",
            &log[..log.len().min(2000)]
        );
    }
    hosts.assert_torn_down();
}

/// PostgreSQL 15 over SSH: the server started as the `postgres` user on the host through
/// its sshd (root login), its transactions checked at the level asked for.
#[test]
fn postgres_over_ssh_keeps_serializable_under_kills_and_pauses() {
    require_postgres();
    let hosts = SshHosts::start("postgres");
    hosts.trust();
    let store = hosts.store();
    let out = hosts
        .faultline_workload(
            "postgres",
            "list-append",
            &[hosts.ips[0].as_str()],
            &store,
            &[
                "--isolation",
                "serializable",
                "--time-limit",
                "8",
                "--nemesis",
                "kill,pause",
                "--nemesis-interval",
                "2",
                "--concurrency",
                "6",
                "--seed",
                "3",
            ],
        )
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        hosts.sshd_logs()
    );
    let run = run_dir(&store);
    assert_eq!(json(&run.join("test.json"))["args"]["backend"], "ssh");
    let results = json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{results}");
    let ops = history(&run);
    let fs = nemesis_fs(&ops);
    for f in ["start-kill", "start-pause"] {
        assert!(fs.iter().any(|x| x == f), "{f} happened: {fs:?}");
    }
    assert!(clients_ok(&ops) > 50, "clients made progress:\n{stdout}");
    hosts.assert_torn_down();
}

/// The runs that load this machine's two cores most (three JVMs, or a coordinator and
/// two PostgreSQL servers under libfaketime) take turns, so none misses its timeouts for
/// the other's sake.
fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Seconds each host's clock is off this machine's in the clock-skew runs: node 1 (the
/// coordinator) agrees, node 2 runs ahead, node 3 behind, by far more than any message takes.
const SKEWS_S: [i64; 3] = [0, 30, -20];

/// The event log of a run on the skewed hosts: every host was sampled, each estimate is
/// within a second of its skew, and the lines stamped by the hosts' clocks were mapped to
/// this machine's (their own readings kept as `node_time`). Returns the merged lines.
fn assert_clocks_mapped(run: &Path, skews_s: [i64; 3]) -> Vec<Value> {
    let clocks = json(&run.join("host-clocks.json"));
    for (i, skew_s) in skews_s.iter().enumerate() {
        let estimates = clocks["nodes"][format!("n{}", i + 1)]
            .as_array()
            .unwrap_or_else(|| panic!("n{} sampled: {clocks:#}", i + 1));
        assert_eq!(
            estimates.len(),
            2,
            "sampled at the start and the end: {clocks:#}"
        );
        for e in estimates {
            let offset_s = e["offset_ns"].as_i64().unwrap() as f64 / 1e9;
            assert!(
                (offset_s - *skew_s as f64).abs() < 1.0,
                "n{}'s clock estimated {offset_s} s off, set {skew_s} s off: {clocks:#}",
                i + 1
            );
        }
    }
    let events: Vec<Value> = std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let times: Vec<u64> = events.iter().map(|e| e["time"].as_u64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "merged in time order"
    );
    for (i, skew_s) in skews_s.iter().enumerate().filter(|(_, s)| **s != 0) {
        let node = format!("n{}", i + 1);
        let lines: Vec<&Value> = events.iter().filter(|e| e["node"] == node).collect();
        assert!(lines.len() > 20, "{node} recorded events");
        for e in lines {
            let node_ns = e["node_time"]
                .as_u64()
                .unwrap_or_else(|| panic!("a line of {node} keeps its own time: {e}"));
            let shift_s = (node_ns as f64 - e["time"].as_u64().unwrap() as f64) / 1e9;
            assert!(
                (shift_s - *skew_s as f64).abs() < 1.0,
                "{node}'s line mapped by {shift_s} s, its clock is {skew_s} s off: {e}"
            );
        }
    }
    let crashes: Vec<&Value> = events.iter().filter(|e| e["event"] == "crash").collect();
    assert!(!crashes.is_empty(), "a node was killed");
    for c in crashes {
        assert!(
            c["clock"].is_string() && c["node_time"].is_u64(),
            "a crash is stamped by its node's clock too: {c}"
        );
    }
    events
}

/// A 10-second bank run of `system` on the skewed hosts that must exit 0: the hosts (kept
/// to the end of the test), the run and its results.
fn skewed_run(system: &str, skews_s: [i64; 3], extra: &[&str]) -> (SshHosts, PathBuf, Value) {
    let hosts = SshHosts::start_skewed(&format!("{system}-skew"), skews_s);
    hosts.trust();
    let store = hosts.store();
    let ips: Vec<&str> = hosts.ips.iter().map(String::as_str).collect();
    let mut args = vec!["--time-limit", "10"];
    args.extend_from_slice(extra);
    let out = hosts
        .faultline_workload(system, "bank", &ips, &store, &args)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let run = run_dir(&store);
    let results = json(&run.join("results.json"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\n{results:#}"
    );
    assert_eq!(json(&run.join("test.json"))["args"]["backend"], "ssh");
    (hosts, run, results)
}

/// Faultline's two-phase-commit store on hosts whose clocks are 30 s ahead and 20 s behind:
/// the merged event log orders every node's lines by the controller's clock, so the
/// atomic-commit, consistent-cut and recovery-line checkers judge it as on one host.
///
/// The same run merged without the clock estimates shows what the mapping carries: the
/// aborts that kills and partitions caused land outside every fault window, where the
/// atomic-commit checker takes one for a protocol bug (AC4) when every participant had voted
/// yes. Whether a run holds such an all-yes abort is chance (a CI run had 219 aborts, each
/// missing a vote), so the test counts the windows, not the verdict.
#[test]
fn twopc_over_ssh_hosts_whose_clocks_disagree_checks_valid() {
    let _heavy = heavy();
    let (hosts, run, results) = skewed_run(
        "twopc",
        SKEWS_S,
        &[
            "--rate",
            "60",
            "--nemesis",
            "kill,partition",
            "--nemesis-interval",
            "2",
            "--seed",
            "3",
        ],
    );
    for checker in ["bank", "atomic-commit", "consistent-cut", "recovery-line"] {
        assert_eq!(results[checker]["valid"], true, "{checker}: {results:#}");
    }
    let ac = &results["atomic-commit"]["details"];
    assert!(ac["txns_committed"].as_u64().unwrap() > 20, "{ac}");
    let events = assert_clocks_mapped(&run, SKEWS_S);
    assert!(
        events.iter().any(|e| e["event"] == "receive"),
        "messages were recorded"
    );
    let fs = nemesis_fs(&history(&run));
    assert!(fs.contains(&"start-partition".to_string()), "{fs:?}");

    // The same run merged without the estimates: the hosts' lines land up to 50 s apart.
    let copy = hosts.dir.join("unmapped");
    let status = Command::new("cp")
        .arg("-r")
        .arg(&run)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(copy.join("host-clocks.json")).unwrap();
    std::fs::remove_file(copy.join("events.jsonl")).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("analyze")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        matches!(again.status.code(), Some(0 | 1)),
        "unmapped, the run is still judged: {}{}",
        text(&again.stdout),
        text(&again.stderr)
    );
    let unmapped: Vec<Value> = std::fs::read_to_string(copy.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (mapped_in, mapped_out) = aborts_in_fault_windows(&events);
    let (unmapped_in, unmapped_out) = aborts_in_fault_windows(&unmapped);
    assert_eq!(mapped_in + mapped_out, unmapped_in + unmapped_out);
    assert!(
        mapped_in > 10 && mapped_in > 4 * mapped_out,
        "mapped, the aborts fall while faults are in effect: {mapped_in} in, {mapped_out} out"
    );
    assert!(
        4 * unmapped_in < mapped_in,
        "unmapped, the aborts fall outside the fault windows: {unmapped_in} in, {unmapped_out} out"
    );
    hosts.assert_torn_down();
}

/// Transactions whose first abort the merged log places while a fault is in effect (after a
/// `fault` or `crash` line, before the next `heal`), and those it places outside.
fn aborts_in_fault_windows(events: &[Value]) -> (usize, usize) {
    let mut faulted = false;
    let mut seen = std::collections::HashSet::new();
    let (mut inside, mut outside) = (0, 0);
    for e in events {
        match e["event"].as_str() {
            Some("fault" | "crash") => faulted = true,
            Some("heal") => faulted = false,
            Some("decide") if e["decision"] == "abort" && seen.insert(e["txn"].to_string()) => {
                if faulted {
                    inside += 1;
                } else {
                    outside += 1;
                }
            }
            _ => {}
        }
    }
    (inside, outside)
}

/// The skews of the real two-phase-commit run: the coordinator's host runs 30 s ahead, the
/// PostgreSQL hosts keep true time. libfaketime does not fake PostgreSQL's clock
/// consistently (one postmaster's log steps back 30 s between two lines) and its lock and
/// statement timeouts then fire tens of seconds late, which a host whose own clock is off
/// does not do.
const COORDINATOR_SKEW_S: [i64; 3] = [30, 0, 0];

/// Real two-phase commit on skewed hosts: the coordinator's host 30 s ahead of its
/// PostgreSQL participants', nodes killed and restarted and cut off, every transaction
/// atomic.
#[test]
fn twopc_postgres_over_ssh_hosts_whose_clocks_disagree_stays_atomic() {
    require_postgres();
    let _heavy = heavy();
    let (hosts, run, results) = skewed_run(
        "twopc-postgres",
        COORDINATOR_SKEW_S,
        &[
            "--nemesis",
            "kill,partition",
            "--nemesis-interval",
            "3",
            "--seed",
            "5",
        ],
    );
    assert_eq!(
        results["checkers"],
        serde_json::json!(["bank", "twopc-bank", "atomic-commit"]),
        "{results:#}"
    );
    assert_eq!(results["valid"], true, "{results:#}");
    let ac = &results["atomic-commit"]["details"];
    assert!(ac["txns_committed"].as_u64().unwrap() > 10, "{ac}");
    assert_clocks_mapped(&run, COORDINATOR_SKEW_S);
    let fs = nemesis_fs(&history(&run));
    for f in ["start-kill", "start-partition"] {
        assert!(fs.iter().any(|x| x == f), "{f} happened: {fs:?}");
    }
    for n in [2, 3] {
        assert!(
            run.join(format!("nodes/n{n}/postgres.log")).is_file(),
            "n{n}'s PostgreSQL log collected"
        );
    }
    hosts.assert_torn_down();
}
