//! Real Apache ZooKeeper servers on this host, from Debian's `zookeeper` package, for the
//! tests and the benchmark: a standalone server or an ensemble on 127.0.0.1, each server
//! with its own ports, data directory and log, started without `zkServer.sh` or systemd.
//!
//! A server is `java -cp <jars> org.apache.zookeeper.server.quorum.QuorumPeerMain <cfg>`;
//! Debian's `zookeeper.jar` names its dependencies in its manifest, so the class path is
//! that jar plus an slf4j binding for the logs. A server is ready when its `srvr` command
//! reports a mode (standalone, leader or follower): only then does it serve clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's server jar; its manifest's Class-Path lists the rest.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// The slf4j binding that sends the servers' logs to their stderr (from libslf4j-java, a
/// dependency of the `zookeeper` package). Without it the servers log nothing.
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// Most servers in one ensemble.
pub const MAX_SERVERS: usize = 9;

/// Bytes of a server log shown in an error.
const LOG_TAIL_BYTES: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    #[error(
        "{what} is missing: install Debian's `{package}` package (apt-get install -y {package})"
    )]
    MissingPackage { package: &'static str, what: String },
    #[error("{0} servers asked for, 1..={MAX_SERVERS} allowed")]
    Size(usize),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "ZooKeeper server {id} ({addr}) exited with {status} before serving; log tail:\n{log}"
    )]
    Exited {
        id: usize,
        addr: SocketAddr,
        status: String,
        log: String,
    },
    #[error("ZooKeeper server {id} ({addr}) not serving after {secs} s; log tail:\n{log}")]
    NotReady {
        id: usize,
        addr: SocketAddr,
        secs: u64,
        log: String,
    },
}

/// What to start.
#[derive(Clone, Debug)]
pub struct EnsembleConfig {
    /// 1 for a standalone server, 3 (or another odd number) for an ensemble.
    pub servers: usize,
    /// Holds each server's `zkN/` (config, data, log).
    pub dir: PathBuf,
    /// ZooKeeper's tick: sessions may last 2..=20 ticks.
    pub tick_ms: u32,
    /// JVM options, e.g. heap and JIT settings.
    pub jvm_opts: Vec<String>,
    /// slf4j-simple's level: trace, debug, info, warn, error.
    pub log_level: String,
    /// How long all servers may take to serve.
    pub start_timeout: Duration,
}

impl EnsembleConfig {
    /// Settings for tests: short ticks (sessions of 1 to 10 s), a small heap, and a JIT
    /// that starts fast rather than runs fast.
    pub fn for_tests(servers: usize, dir: &Path) -> EnsembleConfig {
        EnsembleConfig {
            servers,
            dir: dir.to_path_buf(),
            tick_ms: 500,
            jvm_opts: ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
                .map(String::from)
                .to_vec(),
            log_level: "info".into(),
            start_timeout: Duration::from_secs(120),
        }
    }
}

struct Server {
    id: usize,
    client: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

/// Running servers; dropping the ensemble kills them.
pub struct Ensemble {
    config: EnsembleConfig,
    servers: Vec<Server>,
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}

/// Fails naming the Debian package that provides what is missing.
pub fn check_installed() -> Result<(), EnsembleError> {
    if !Path::new(ZOOKEEPER_JAR).exists() {
        return Err(EnsembleError::MissingPackage {
            package: "zookeeper",
            what: ZOOKEEPER_JAR.into(),
        });
    }
    let java = Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !java.map(|s| s.success()).unwrap_or(false) {
        return Err(EnsembleError::MissingPackage {
            package: "default-jre-headless",
            what: "a `java` runtime on PATH".into(),
        });
    }
    Ok(())
}

/// The ZooKeeper version the installed jar reports, e.g. "3.8.0".
pub fn installed_version() -> Option<String> {
    let out = Command::new("java")
        .args([
            "-cp",
            &class_path(),
            "org.apache.zookeeper.version.VersionInfoMain",
        ])
        .output()
        .ok()?;
    // "Apache ZooKeeper, version 3.8.0 2024-12-29 17:54 UTC"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    words.find(|w| *w == "version")?;
    Some(words.next()?.split('-').next()?.to_string())
}

fn class_path() -> String {
    let mut cp = vec![ZOOKEEPER_JAR];
    if Path::new(SLF4J_SIMPLE_JAR).exists() {
        cp.push(SLF4J_SIMPLE_JAR);
    }
    cp.join(":")
}

impl Ensemble {
    /// Writes the configs and starts every server, returning once all serve.
    pub fn start(config: EnsembleConfig) -> Result<Ensemble, EnsembleError> {
        check_installed()?;
        if config.servers == 0 || config.servers > MAX_SERVERS {
            return Err(EnsembleError::Size(config.servers));
        }
        let ports = free_ports(config.servers * 3)?;
        let peers: Vec<String> = (0..config.servers)
            .map(|i| {
                let (peer, election) = (ports[3 * i + 1], ports[3 * i + 2]);
                format!("server.{}=127.0.0.1:{peer}:{election}\n", i + 1)
            })
            .collect();
        let mut ensemble = Ensemble {
            servers: Vec::new(),
            config,
        };
        for i in 0..ensemble.config.servers {
            let server = ensemble.prepare(i, ports[3 * i], &peers)?;
            ensemble.servers.push(server);
        }
        for i in 0..ensemble.servers.len() {
            ensemble.spawn(i)?;
        }
        let deadline = Instant::now() + ensemble.config.start_timeout;
        for i in 0..ensemble.servers.len() {
            ensemble.wait_serving(i, deadline)?;
        }
        Ok(ensemble)
    }

    fn prepare(
        &self,
        i: usize,
        client_port: u16,
        peers: &[String],
    ) -> Result<Server, EnsembleError> {
        let id = i + 1;
        let dir = self.config.dir.join(format!("zk{id}"));
        let data = dir.join("data");
        std::fs::create_dir_all(&data)
            .map_err(|e| io(format!("creating {}", data.display()), e))?;
        std::fs::write(data.join("myid"), format!("{id}\n"))
            .map_err(|e| io(format!("writing {}/myid", data.display()), e))?;
        let mut cfg = format!(
            "tickTime={}\ninitLimit=20\nsyncLimit=10\ndataDir={}\nclientPort={client_port}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=false\nmaxClientCnxns=0\n\
             4lw.commands.whitelist=srvr,ruok,mntr\nforceSync=yes\n",
            self.config.tick_ms,
            data.display()
        );
        if self.config.servers > 1 {
            cfg.extend(peers.iter().map(String::as_str));
        }
        let path = dir.join("zoo.cfg");
        std::fs::write(&path, cfg).map_err(|e| io(format!("writing {}", path.display()), e))?;
        Ok(Server {
            id,
            client: SocketAddr::from(([127, 0, 0, 1], client_port)),
            dir,
            child: None,
        })
    }

    fn spawn(&mut self, i: usize) -> Result<(), EnsembleError> {
        let s = &self.servers[i];
        let log_path = s.dir.join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io(format!("opening {}", log_path.display()), e))?;
        let err_log = log
            .try_clone()
            .map_err(|e| io("cloning a log handle".into(), e))?;
        let child = Command::new("java")
            .args(&self.config.jvm_opts)
            .arg(format!(
                "-Dorg.slf4j.simpleLogger.defaultLogLevel={}",
                self.config.log_level
            ))
            .arg("-Dorg.slf4j.simpleLogger.showDateTime=true")
            .arg(format!("-Dzookeeper.log.dir={}", s.dir.display()))
            .args(["-cp", &class_path(), MAIN_CLASS])
            .arg(s.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| io(format!("starting java for ZooKeeper server {}", s.id), e))?;
        self.servers[i].child = Some(child);
        Ok(())
    }

    /// Polls `srvr` until server `i` reports a mode, failing early if its JVM exits.
    fn wait_serving(&mut self, i: usize, deadline: Instant) -> Result<(), EnsembleError> {
        let started = Instant::now();
        loop {
            if self.mode(i).is_some() {
                return Ok(());
            }
            let (id, addr) = (self.servers[i].id, self.servers[i].client);
            if let Some(child) = self.servers[i].child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let status = status.to_string();
                    self.servers[i].child = None;
                    let log = self.log_tail(i);
                    return Err(EnsembleError::Exited {
                        id,
                        addr,
                        status,
                        log,
                    });
                }
            }
            if Instant::now() >= deadline {
                let secs = started.elapsed().as_secs();
                let log = self.log_tail(i);
                return Err(EnsembleError::NotReady {
                    id,
                    addr,
                    secs,
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server processes' ids, server 1 first (None for a server that is down).
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.servers
            .iter()
            .map(|s| s.child.as_ref().map(Child::id))
            .collect()
    }

    /// Client addresses as `host:port`, server 1 first.
    pub fn client_addrs(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.client.to_string()).collect()
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Server `i`'s data directory (holding its transaction log and snapshots).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.servers[i].dir.join("data")
    }

    /// What `srvr` says server `i` is ("leader", "follower", "standalone"), or `None` if
    /// it does not answer or does not serve.
    pub fn mode(&self, i: usize) -> Option<String> {
        let text = four_letter(self.servers[i].client, "srvr").ok()?;
        let line = text.lines().find_map(|l| l.strip_prefix("Mode: "))?;
        Some(line.trim().to_string())
    }

    /// The index of the current leader, if one serves.
    pub fn leader(&self) -> Option<usize> {
        (0..self.servers.len()).find(|&i| self.mode(i).as_deref() == Some("leader"))
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again on its ports and data, returning once it serves.
    pub fn restart(&mut self, i: usize) -> Result<(), EnsembleError> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_serving(i, Instant::now() + self.config.start_timeout)
    }

    /// The end of server `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read(self.servers[i].dir.join("server.log")).unwrap_or_default();
        let from = log.len().saturating_sub(LOG_TAIL_BYTES);
        String::from_utf8_lossy(&log[from..]).into_owned()
    }
}

/// Sends a four-letter command and reads the answer, within a second each way.
pub fn four_letter(addr: SocketAddr, cmd: &str) -> std::io::Result<String> {
    let limit = Duration::from_secs(1);
    let mut stream = TcpStream::connect_timeout(&addr, limit)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    stream.write_all(cmd.as_bytes())?;
    let mut text = String::new();
    stream.take(64 * 1024).read_to_string(&mut text)?;
    Ok(text)
}

/// Ports the kernel has just handed out, so that concurrent runs rarely collide.
fn free_ports(n: usize) -> Result<Vec<u16>, EnsembleError> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| io("finding free ports".into(), e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| io("finding free ports".into(), e))
}

fn io(what: String, source: std::io::Error) -> EnsembleError {
    EnsembleError::Io { what, source }
}
