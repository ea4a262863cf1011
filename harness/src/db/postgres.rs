//! PostgreSQL 15 from Debian's `postgresql-15` package as a system under test: one server
//! per run, to check its isolation levels (issue 8), not replication.
//!
//! Setup runs `initdb` into the node's `data` directory, trusts the workloads' role from
//! any address (`pg_hba.conf`), creates the database and the workloads' tables in
//! single-user mode (before any client can race for them), and starts `postgres -D data -k .
//! -p 5432 -c listen_addresses=IP` as the node's daemon.
//!
//! PostgreSQL refuses to run as root, and tests and CI run as root: every PostgreSQL
//! program runs as Debian's unprivileged `postgres` user through `setpriv` (util-linux; no
//! PAM session, no password, and it `exec`s, so the daemon's pid is the postmaster's), and
//! the data directory is that user's. The node's directory must be reachable by that user,
//! which preflight checks.
//!
//! The postmaster makes every child process the leader of its own session, so signalling
//! the daemon's process group reaches the postmaster alone. Kill, pause and resume therefore
//! signal the postmaster and each of its children: a kill stops the postmaster first (so it
//! forks nothing more), kills its children, then kills it, and waits until all are gone, as
//! a power cut would leave them; the restart then recovers from the WAL.

use super::{image, Cluster, Db, DbError};
use crate::control::daemon::{self, sh_quote, Daemon};
use crate::control::{Cmd, Net, Node};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use workloads::postgres::{DATABASE, PORT, USER};

const SYSTEM: &str = "postgres";
/// Debian's PostgreSQL 15 programs.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// util-linux's and procps's programs, by path: busybox's shell in the docker backend's
/// image runs its own applets of these names (which lack the options used here) before
/// anything on the PATH.
const SETPRIV: &str = "/usr/bin/setpriv";
const PGREP: &str = "/usr/bin/pgrep";
/// Debian's PostgreSQL 15 share files (catalog templates, time zone sets, text search data).
const SHARE_DIR: &str = "/usr/share/postgresql/15";
/// Debian builds PostgreSQL to read the system's time zone database.
const ZONEINFO_DIR: &str = "/usr/share/zoneinfo";
/// The unprivileged user the server runs as (created by Debian's `postgresql-common`).
pub const OS_USER: &str = "postgres";
/// The node-relative data directory.
const DATA_DIR: &str = "data";
/// Setup's own output (initdb, single-user mode), collected with the server's log.
const SETUP_LOG: &str = "log/postgres-setup.log";
/// Connections the server accepts: one per client worker, with room to spare.
const MAX_CONNECTIONS: u32 = 500;
/// How long initdb and each single-user step may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a kill waits for the server's processes to be gone.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A single PostgreSQL 15 server (or, for the two-phase-commit store, one of several
/// participant servers: [`Postgres::participant`]).
#[derive(Clone, Debug, Default)]
pub struct Postgres {
    /// `max_prepared_transactions`: 0, PostgreSQL's default, disables PREPARE TRANSACTION.
    pub max_prepared_transactions: u32,
}

/// `program` from [`BIN_DIR`], run as [`OS_USER`].
fn as_postgres(program: &str, args: &str) -> String {
    format!(
        "{SETPRIV} --reuid={OS_USER} --regid={OS_USER} --init-groups {BIN_DIR}/{program} {args}"
    )
}

impl Postgres {
    /// A server that holds prepared transactions, one for each session it accepts (so a
    /// prepare never fails for want of a slot).
    pub fn participant() -> Postgres {
        Postgres {
            max_prepared_transactions: MAX_CONNECTIONS,
        }
    }

    fn node_err(&self, node: &Node, what: impl Into<String>) -> DbError {
        DbError::Node {
            system: SYSTEM,
            node: node.name.clone(),
            what: what.into(),
        }
    }

    /// What a node needs to run a server: the programs, the user, root, a reachable
    /// directory; the error says what to install or change.
    pub fn preflight_node(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        let checks = [
            (
                format!("[ -x {BIN_DIR}/postgres ] && [ -x {BIN_DIR}/initdb ] && [ -x {BIN_DIR}/pg_isready ]"),
                format!("no PostgreSQL 15 in {BIN_DIR}: install Debian's postgresql-15"),
            ),
            (
                format!("id -u {OS_USER}"),
                format!("no {OS_USER} user to run the server as: install Debian's postgresql-15 (postgresql-common creates it)"),
            ),
            (
                format!("[ -x {SETPRIV} ] && [ -x {PGREP} ]"),
                format!("{SETPRIV} and {PGREP} are needed: install Debian's util-linux and procps"),
            ),
            (
                "[ \"$(id -u)\" = 0 ]".into(),
                format!("PostgreSQL refuses to run as root and must be started as the {OS_USER} user, which takes root: run the controller as root (ssh: --username root)"),
            ),
            (
                format!("{SETPRIV} --reuid={OS_USER} --regid={OS_USER} --init-groups sh -c 'cd \"$1\"' sh \"$(pwd)\""),
                format!("the {OS_USER} user cannot reach the node's directory: make its parent directories searchable (chmod o+x) or keep the store elsewhere (--store /tmp/...)"),
            ),
        ];
        for (script, why) in checks {
            let out = cluster.remote.exec(node, &Cmd::new(script).sudo())?;
            if !out.success() {
                return Err(self.node_err(node, why));
            }
        }
        Ok(())
    }

    /// Runs `script` as root on `node` (with `stdin`), failing with `what` and the
    /// script's output if it exits non-zero.
    fn run(
        &self,
        cluster: &Cluster,
        node: &Node,
        what: &str,
        script: String,
        stdin: Option<&str>,
    ) -> Result<String, DbError> {
        let mut cmd = Cmd::new(script).sudo().timeout(SETUP_TIMEOUT);
        if let Some(input) = stdin {
            cmd = cmd.stdin(input.as_bytes().to_vec());
        }
        let out = cluster.remote.exec(node, &cmd)?;
        if !out.success() {
            let said = format!(
                "{}{}",
                out.stdout_text(),
                String::from_utf8_lossy(&out.stderr)
            );
            let tail: Vec<&str> = said.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(self.node_err(node, format!("{what} failed: {}", tail.join(" | "))));
        }
        Ok(out.stdout_text())
    }

    fn command(&self, node: &Node) -> String {
        as_postgres(
            "postgres",
            &format!(
                // Sockets in the data directory: a relative path is never too long for a
                // socket name, and teardown removes it with the data. Deadlocks among the
                // contended transactions are broken after 100 ms rather than a second, so
                // clients spend the run working, not waiting.
                "-D {DATA_DIR} -k . -p {PORT} -c listen_addresses={ip} \
                 -c max_connections={MAX_CONNECTIONS} \
                 -c deadlock_timeout=100ms -c max_prepared_transactions={prepared}",
                ip = sh_quote(&node.ip),
                prepared = self.max_prepared_transactions
            ),
        )
    }

    /// Signals the postmaster and every child of it, the children first or last; false
    /// when the server is not running.
    fn signal_all(
        &self,
        cluster: &Cluster,
        node: &Node,
        signal: &str,
        children_first: bool,
    ) -> Result<bool, DbError> {
        let (first, second) = if children_first {
            (kids_signal(signal), format!("kill -{signal} \"$pid\""))
        } else {
            (format!("kill -{signal} \"$pid\""), kids_signal(signal))
        };
        let script = format!("{} || exit 3; {first}; {second}; exit 0", running_pid());
        let out = cluster.remote.exec(node, &Cmd::new(script).sudo())?;
        match out.status {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => Err(self.node_err(
                node,
                format!(
                    "cannot send SIG{signal}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            )),
        }
    }
}

/// Sets `pid` to the running postmaster's pid, or fails (no pidfile, gone, a zombie).
fn running_pid() -> String {
    format!(
        "pid=$(cat {pidfile} 2>/dev/null) && \
         st=$(sed 's/.*) //' /proc/\"$pid\"/stat 2>/dev/null | cut -d' ' -f1) && \
         [ -n \"$st\" ] && [ \"$st\" != Z ]",
        pidfile = sh_quote(&daemon_paths().pidfile.display().to_string())
    )
}

/// Sends `signal` to every child of `$pid`.
fn kids_signal(signal: &str) -> String {
    format!("for k in $({PGREP} -P \"$pid\"); do kill -{signal} \"$k\" 2>/dev/null; done")
}

fn daemon_paths() -> Daemon {
    Daemon {
        pidfile: "run/postgres.pid".into(),
        logfile: "log/postgres.log".into(),
    }
}

impl Db for Postgres {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn preflight(&self, cluster: &Cluster) -> Result<(), DbError> {
        let setup = |what: String| DbError::Setup {
            system: SYSTEM,
            what,
        };
        if cluster.nodes.len() != 1 {
            return Err(setup(format!(
                "runs one server, not {}: pass --nodes 1",
                cluster.nodes.len()
            )));
        }
        self.preflight_node(cluster, &cluster.nodes[0])
    }

    fn setup(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        cluster
            .remote
            .exec(node, &Cmd::new("rm -rf log && mkdir -p log"))?;
        super::prepare_data_dir(cluster, node, &self.data_dir())?;
        let log = sh_quote(SETUP_LOG);
        self.run(
            cluster,
            node,
            "initdb",
            format!(
                "chown {OS_USER}:{OS_USER} {DATA_DIR} && chmod 700 {DATA_DIR} && {} >> {log} 2>&1",
                // No fsync of the fresh cluster: only a power loss would undo it, and disk
                // faults are refused for this system.
                as_postgres(
                    "initdb",
                    &format!("-D {DATA_DIR} -U {USER} --auth=trust --locale=C -E UTF8 --no-sync")
                )
            ),
            None,
        )?;
        // initdb trusts 127.0.0.1 only; nodes have addresses of their own.
        let hba = format!(
            "local all all trust\nhost all {USER} 0.0.0.0/0 trust\nhost all {USER} ::/0 trust\n"
        );
        self.run(
            cluster,
            node,
            "writing pg_hba.conf",
            format!(
                "cat > {DATA_DIR}/pg_hba.conf && chown {OS_USER}:{OS_USER} {DATA_DIR}/pg_hba.conf"
            ),
            Some(&hba),
        )?;
        let single = |db: &str| {
            format!(
                "{} >> {log} 2>&1",
                as_postgres(
                    "postgres",
                    &format!("--single -D {DATA_DIR} -c exit_on_error=true {db}")
                )
            )
        };
        // Single-user mode reads one command per line.
        let create = format!("CREATE DATABASE {DATABASE};\n");
        self.run(
            cluster,
            node,
            "creating the database",
            single("postgres"),
            Some(&create),
        )?;
        let schema = workloads::postgres::schema_sql();
        self.run(
            cluster,
            node,
            "creating the tables",
            single(DATABASE),
            Some(&schema),
        )?;
        self.start(cluster, node)
    }

    fn wait_ready(&self, cluster: &Cluster, node: &Node, timeout: Duration) -> Result<(), DbError> {
        let deadline = Instant::now() + timeout;
        let probe = format!(
            "{BIN_DIR}/pg_isready -h {} -p {PORT} -U {USER} -d {DATABASE} -t 2",
            sh_quote(&node.ip)
        );
        let mut last = String::new();
        while Instant::now() < deadline {
            let out = cluster.remote.exec(
                node,
                &Cmd::new(probe.clone()).timeout(Duration::from_secs(5)),
            )?;
            if out.success() {
                return Ok(());
            }
            last = out.stdout_text().trim().to_string();
            if daemon::state(cluster.remote.as_ref(), node, &self.daemon())? == daemon::State::Gone
            {
                return Err(self.node_err(
                    node,
                    format!(
                        "the server exited: see {} in the run's nodes/{}/",
                        self.daemon().logfile.display(),
                        node.name
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(self.node_err(
            node,
            format!("not accepting connections after {timeout:?}: {last}"),
        ))
    }

    fn start(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        // A killed postmaster's lock files (its pid file, its socket's lock) stay behind;
        // PostgreSQL refuses to start while the pid in one exists, which a zombie not yet
        // reaped still does. Only a dead owner's are removed.
        let stale = format!(
            "for f in {DATA_DIR}/postmaster.pid {DATA_DIR}/.s.PGSQL.*.lock; do \
               [ -f \"$f\" ] || continue; pid=$(head -n 1 \"$f\"); \
               st=$(sed 's/.*) //' /proc/\"$pid\"/stat 2>/dev/null | cut -d' ' -f1); \
               if [ -z \"$st\" ] || [ \"$st\" = Z ]; then rm -f \"$f\"; fi; \
             done"
        );
        cluster.remote.exec(node, &Cmd::new(stale).sudo())?;
        daemon::start(
            cluster.remote.as_ref(),
            node,
            &self.command(node),
            &self.daemon(),
        )?;
        Ok(())
    }

    fn daemon(&self) -> Daemon {
        daemon_paths()
    }

    /// SIGKILL to the postmaster and every child, as a crash would; waits until all are
    /// gone (zombies hold no shared memory), so the restart finds nothing of them running.
    fn kill(&self, cluster: &Cluster, node: &Node) -> Result<bool, DbError> {
        let script = format!(
            "{running} || exit 3; kill -STOP \"$pid\"; all=\"$pid\"; \
             for round in 1 2 3; do for k in $({PGREP} -P \"$pid\"); do \
               kill -KILL \"$k\" 2>/dev/null; all=\"$all $k\"; done; done; \
             kill -KILL \"$pid\"; \
             for i in $(seq {polls}); do alive=0; for p in $all; do \
               st=$(sed 's/.*) //' /proc/\"$p\"/stat 2>/dev/null | cut -d' ' -f1); \
               [ -n \"$st\" ] && [ \"$st\" != Z ] && alive=1; done; \
               [ $alive = 0 ] && exit 0; sleep 0.01; done; exit 4",
            running = running_pid(),
            polls = KILL_WAIT.as_millis() / 10
        );
        let out = cluster.remote.exec(
            node,
            &Cmd::new(script)
                .sudo()
                .timeout(KILL_WAIT + Duration::from_secs(10)),
        )?;
        match out.status {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            Some(4) => Err(self.node_err(
                node,
                format!("the server's processes were still alive {KILL_WAIT:?} after SIGKILL"),
            )),
            _ => Err(self.node_err(
                node,
                format!(
                    "kill failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            )),
        }
    }

    /// SIGSTOP to the postmaster (first, so it forks nothing more) and every child.
    fn pause(&self, cluster: &Cluster, node: &Node) -> Result<bool, DbError> {
        self.signal_all(cluster, node, "STOP", false)
    }

    /// SIGCONT to the children, then the postmaster.
    fn resume(&self, cluster: &Cluster, node: &Node) -> Result<bool, DbError> {
        self.signal_all(cluster, node, "CONT", true)
    }

    fn log_files(&self) -> Vec<PathBuf> {
        vec![self.daemon().logfile, PathBuf::from(SETUP_LOG)]
    }

    fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        cluster.names()
    }

    fn data_dir(&self) -> PathBuf {
        PathBuf::from(DATA_DIR)
    }

    /// For the docker backend's from-scratch image: Debian's PostgreSQL 15 tree (programs and
    /// modules, less the JIT provider) and share files, the time zone database, util-linux's `setpriv` and
    /// procps's `pgrep` (busybox's lack the options used here), the libraries of all of
    /// them, and passwd and group files naming the `postgres` user as this host does.
    fn image_files(&self) -> Result<Vec<(PathBuf, PathBuf)>, DbError> {
        let setup = |what: String| DbError::Setup {
            system: SYSTEM,
            what,
        };
        let home = Path::new(BIN_DIR).parent().expect("BIN_DIR has a parent");
        if !home.join("bin/postgres").is_file() {
            return Err(setup(format!(
                "no PostgreSQL 15 in {BIN_DIR} to put in the image: install Debian's postgresql-15"
            )));
        }
        // Not the JIT provider: it drags LLVM in (half the image), and a server that cannot
        // load it runs without JIT, silently.
        let jit = |p: &Path| {
            p.starts_with(home.join("lib/bitcode"))
                || p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("llvmjit"))
        };
        let mut files: Vec<_> = image::tree(SYSTEM, home, &[])?
            .into_iter()
            .filter(|(_, in_image)| !jit(in_image))
            .collect();
        for dir in [SHARE_DIR, ZONEINFO_DIR] {
            files.extend(image::tree(SYSTEM, Path::new(dir), &[])?);
        }
        for (tool, package) in [(SETPRIV, "util-linux"), (PGREP, "procps")] {
            let bytes_at = Path::new(tool).canonicalize().map_err(|e| {
                setup(format!(
                    "no {tool} to put in the image ({e}): install Debian's {package}"
                ))
            })?;
            files.push((bytes_at, tool.into()));
        }
        files.extend(image::libraries(SYSTEM, &files, home)?);
        let (passwd, group) = image_accounts().map_err(setup)?;
        files.push((
            image::host_file(SYSTEM, &passwd, 0o644)?,
            "/etc/passwd".into(),
        ));
        files.push((
            image::host_file(SYSTEM, &group, 0o644)?,
            "/etc/group".into(),
        ));
        Ok(files)
    }

    fn client_addr(&self, node: &Node) -> SocketAddr {
        SocketAddr::new(node.ip.parse().expect("node addresses are IPs"), PORT)
    }

    /// One server has no peer links to cut.
    fn local_net(
        &self,
        _cluster: &Cluster,
        _rt: &tokio::runtime::Handle,
    ) -> Result<Option<Box<dyn Net>>, DbError> {
        Ok(None)
    }
}

/// The image's passwd and group: root, and the `postgres` user and group with this host's
/// ids, so that files a container's server writes into a bind-mounted node directory belong
/// to the same user on both sides.
fn image_accounts() -> Result<(String, String), String> {
    let field = |file: &str, name: &str, index: usize| -> Result<String, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        text.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&name) && f.len() > index)
            .map(|f| f[index].to_string())
            .ok_or_else(|| {
                format!(
                    "{file} has no {name}: install Debian's postgresql-15 (postgresql-common \
                     creates the user)"
                )
            })
    };
    let uid = field("/etc/passwd", OS_USER, 2)?;
    let gid = field("/etc/passwd", OS_USER, 3)?;
    let passwd = format!("root:x:0:0:root:/root:/bin/sh\n{OS_USER}:x:{uid}:{gid}::/tmp:/bin/sh\n");
    let group = format!("root:x:0:\n{OS_USER}:x:{gid}:\n");
    Ok((passwd, group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_holds_the_server_its_tools_and_user_but_not_the_jit() {
        let files = Postgres::default()
            .image_files()
            .expect("Debian's postgresql-15, util-linux and procps are installed");
        let in_image: Vec<&Path> = files.iter().map(|(_, i)| i.as_path()).collect();
        let bin = Path::new(BIN_DIR);
        for needed in [
            bin.join("postgres"),
            bin.join("initdb"),
            bin.join("pg_isready"),
            PathBuf::from(SETPRIV),
            PathBuf::from(PGREP),
            Path::new(SHARE_DIR).join("postgres.bki"),
            Path::new(ZONEINFO_DIR).join("UTC"),
        ] {
            assert!(in_image.contains(&needed.as_path()), "{}", needed.display());
        }
        assert!(
            in_image.iter().any(|p| p.ends_with("libc.so.6")),
            "the programs' libraries"
        );
        let jit = |p: &&Path| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("llvmjit") || name.starts_with("libLLVM")
        };
        assert!(!in_image.iter().any(jit), "no JIT provider, no LLVM");
        let (passwd, _) = files
            .iter()
            .find(|(_, i)| i == Path::new("/etc/passwd"))
            .expect("a passwd file");
        let passwd = std::fs::read_to_string(passwd).unwrap();
        assert!(
            passwd
                .lines()
                .any(|l| l.starts_with(&format!("{OS_USER}:x:"))),
            "{passwd}"
        );
    }
}
