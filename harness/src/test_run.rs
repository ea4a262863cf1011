//! `faultline test`: deploys a cluster, drives a workload under nemeses, records the history,
//! heals, collects logs, tears down and checks, writing everything into the store.
//!
//! The order of a run is fixed so that nothing recorded is lost: the store directory and
//! `test.json` exist before any node is touched; the history is appended as events happen;
//! logs are collected and the cluster torn down whatever happened (unless
//! `--leave-db-running`); the check runs on whatever was recorded, Ctrl-C included.

use crate::analyze;
use crate::control::docker::{Docker, ImageSpec};
use crate::control::iptables::IptablesNet;
use crate::control::lazy_disk::LazyDisk;
use crate::control::local::Local;
use crate::control::netns::Netns;
use crate::control::ssh::{Ssh, SshConfig};
use crate::control::{Net, Node, PacketFaults, Remote};
use crate::db::{self, Backend, Cluster, Db};
use crate::event_log::{self, EventJournal};
use crate::exit::Exit;
use crate::generator::{self, Gen};
use crate::host_clock::{self, HostClocks};
use crate::lazyfs::DEFAULT_MAX_DIRTY_MIB;
use crate::nemesis::disk::{self, DiskMode};
use crate::nemesis::exec::Executor;
use crate::nemesis::schedule::{self, Plan};
use crate::nemesis::script::Script;
use crate::nemesis::{self as nemesis_mod, FaultClass};
use crate::runlog;
use crate::runner::{self, Hooks, Live, RunConfig};
use crate::store::{RunDir, Store};
use crate::workload::{self, Workload};
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{error, info, warn};

/// How long every node has to become ready after setup.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Quiet time after healing, before the final reads, for the system to recover.
const RECOVERY: Duration = Duration::from_secs(3);
/// The longest the final reads (and repdb's settling, twopc's final queries) may take.
const FINAL_PHASE_LIMIT: Duration = Duration::from_secs(180);
/// The progress line's period.
const PROGRESS_PERIOD: Duration = Duration::from_secs(2);
/// Most nodes a test may have.
const MAX_NODES: usize = 64;
/// Most client workers.
const MAX_CONCURRENCY: u32 = 10_000;

#[derive(Args, Clone, Debug, Serialize)]
pub struct TestArgs {
    /// The system under test: coord, twopc, repdb, etcd, zookeeper, postgres, or a system
    /// file (TOML).
    #[arg(long)]
    pub system: String,
    /// The workload its clients run.
    #[arg(long)]
    pub workload: String,
    /// The isolation level every transaction asks for (postgres only, and required there):
    /// read-committed, repeatable-read or serializable. The run is checked at the model the
    /// level promises.
    #[arg(long, value_name = "LEVEL")]
    pub isolation: Option<String>,
    /// Fault classes, comma-separated: partition, kill, pause, packet, clock, disk, or none.
    #[arg(long, default_value = "none")]
    pub nemesis: String,
    /// Seconds between a fault class's start and stop (each period is 0.5–1.5 times this).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub nemesis_interval: f64,
    /// Faults at written times instead of drawn ones: JSON lines such as
    /// {"at_s": 2, "f": "start-kill", "value": {"targets": "primaries"}}. A stored run's
    /// history.jsonl replays that run's faults. Replaces --nemesis.
    #[arg(long, value_name = "FILE")]
    pub nemesis_script: Option<PathBuf>,
    /// What the disk fault class may do, comma-separated: lose-unsynced (drop writes never
    /// fsynced, on the lazy filesystem), truncate-tail and corrupt-tail (damage the end of
    /// the newest write-ahead log).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "lose-unsynced,truncate-tail,corrupt-tail"
    )]
    pub disk_faults: String,
    /// Whom kill, pause and lost-writes faults may hit, comma-separated, one drawn per
    /// fault: one, minority, majority, all, primaries (the default: all five), follower
    /// (one node that does not lead when the fault starts), and holder (the node of the
    /// newest lock holder's session, for the lock workloads; none while nobody holds it).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "one,minority,majority,all,primaries"
    )]
    pub nemesis_targets: String,
    /// With lost unsynced writes: latency added to every fsync on the nodes' lazy
    /// filesystems, a slow disk that widens the window of unsynced data.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub disk_sync_delay_ms: u64,
    /// How many nodes (local, netns and docker backends).
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// A host to test on (ssh backend); repeat for each node.
    #[arg(long = "node", value_name = "HOST")]
    pub hosts: Vec<String>,
    #[arg(long, value_enum, default_value_t = BackendArg::Local)]
    pub backend: BackendArg,
    /// Seconds of workload, before healing and final reads.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub time_limit: f64,
    /// Client workers, assigned to nodes round-robin.
    #[arg(long, default_value_t = 10)]
    pub concurrency: u32,
    /// Mean client operations per second, over all workers.
    #[arg(long, value_name = "OPS_PER_S", default_value_t = 100.0)]
    pub rate: f64,
    /// Seed of every random choice (default: from the clock, printed and stored).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run the test this many times (seeds seed, seed+1, ...); the worst verdict wins.
    #[arg(long, default_value_t = 1)]
    pub test_count: u32,
    /// Leave the system running after the test, for inspection.
    #[arg(long)]
    pub leave_db_running: bool,
    /// Where runs are stored.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// A client operation still running after this many milliseconds is recorded `info`.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub op_timeout_ms: u64,
    /// Run a deliberately broken register client, to see the checker catch it: stale-cache
    /// (etcd) serves reads from a local cache; plain-reads (zookeeper) reads without `sync`;
    /// sync-reads (zookeeper) reads after `sync` but does not confirm what it read.
    #[arg(long, value_name = "BUG")]
    pub client_bug: Option<String>,
    /// Switch on a bug planted in a reference system, to see the checkers catch it
    /// (repeatable). coord: ack-before-fsync, stale-sync, stale-leader,
    /// skip-ephemeral-cleanup. twopc: commit-before-log, vote-before-force, decide-alone,
    /// snapshot-without-markers, checkpoint-skips-forced. repdb:
    /// nondeterministic-certification, apply-before-delivery.
    #[arg(long = "bug", value_name = "BUG")]
    pub bugs: Vec<String>,
    /// repdb: how updates reach the replicas: certification (default), active,
    /// weak-voting, primary-copy, lazy.
    #[arg(long, value_name = "MODE")]
    pub replication: Option<String>,
    /// repdb: certify write sets only, first-committer-wins (snapshot isolation);
    /// certification and weak-voting only.
    #[arg(long)]
    pub no_read_sets: bool,
    /// repdb: how long a delegate executes a transaction on its snapshot before
    /// broadcasting it, in whole ticks of 10 ms (default 10; 0 executes at once).
    #[arg(long, value_name = "MS")]
    pub read_phase_ms: Option<u64>,
    /// repdb and postgres list-append and rw-register: keys in use at once; fewer keys, more
    /// conflicts (default 4).
    #[arg(long, value_name = "N")]
    pub key_count: Option<usize>,
    /// repdb and postgres list-append and rw-register: micro-ops per transaction, from 1 to
    /// this (default 4).
    #[arg(long, value_name = "N")]
    pub max_txn_length: Option<u64>,
    /// Warnings and errors only on standard error, no progress line (the run's
    /// faultline.log still has everything); the verdict is printed as always.
    #[arg(long)]
    pub quiet: bool,
    /// The test's name in the store (default: SYSTEM-WORKLOAD).
    #[arg(long)]
    pub name: Option<String>,
    /// SSH login (ssh backend).
    #[arg(long, default_value = "root")]
    pub username: String,
    /// SSH private key (ssh backend).
    #[arg(long, value_name = "PATH")]
    pub ssh_private_key: Option<PathBuf>,
    /// Check SSH host keys against known_hosts (ssh backend).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub strict_host_key_checking: bool,
}

impl TestArgs {
    pub fn txn_shape(&self) -> workload::TxnShape {
        workload::TxnShape {
            key_count: self.key_count,
            max_txn_length: self.max_txn_length,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendArg {
    Local,
    Netns,
    Ssh,
    Docker,
}

/// Where a run keeps a copy of its `--nemesis-script`.
const SCRIPT_COPY: &str = "nemesis-script.jsonl";

/// The fault classes the run injects: its script's, or `--nemesis`.
fn fault_classes(args: &TestArgs) -> Result<Vec<FaultClass>, String> {
    let Some(path) = &args.nemesis_script else {
        return nemesis_mod::parse_classes(&args.nemesis);
    };
    if nemesis_mod::parse_classes(&args.nemesis)?.is_empty() {
        Ok(Script::load(path)?.classes())
    } else {
        Err("--nemesis-script sets the faults and when: leave out --nemesis".into())
    }
}

/// A problem with the arguments: exit 254, not 255.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadArgs(pub String);

pub fn run(args: TestArgs) -> anyhow::Result<Exit> {
    runlog::install();
    runlog::set_quiet(args.quiet || runlog::is_quiet());
    if let Err(BadArgs(msg)) = validate(&args) {
        eprintln!("faultline test: {msg}");
        return Ok(Exit::BadInput);
    }
    let first_seed = args.seed.unwrap_or_else(seed_from_clock);
    let mut worst = Exit::Valid;
    for i in 0..args.test_count {
        let seed = first_seed.wrapping_add(i as u64);
        let (exit, interrupted) = match run_once(&args, seed) {
            Ok(done) => (done.exit, done.interrupted),
            Err(e) if e.downcast_ref::<BadArgs>().is_some() => {
                eprintln!("faultline test: {e:#}");
                (Exit::BadInput, false)
            }
            Err(e) => {
                error!("test failed: {e:#} (seed {seed}, revision {})", revision());
                (Exit::Internal, false)
            }
        };
        worst = worst.worst(exit);
        if interrupted {
            break;
        }
    }
    Ok(worst)
}

/// `faultline test` arguments (without the subcommand) parsed and checked as the command
/// line would be: for callers that run tests as commands, like the bench's cells.
pub fn parse_args(argv: &[String]) -> Result<TestArgs, BadArgs> {
    #[derive(clap::Parser)]
    #[command(name = "faultline test", no_binary_name = true)]
    struct Line {
        #[command(flatten)]
        args: TestArgs,
    }
    use clap::Parser;
    let line = Line::try_parse_from(argv).map_err(|e| {
        let text = e.to_string();
        BadArgs(
            text.lines()
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ")
                .to_string(),
        )
    })?;
    validate(&line.args)?;
    Ok(line.args)
}

/// One finished run.
#[derive(Clone, Debug)]
pub struct Finished {
    pub exit: Exit,
    /// Ctrl-C cut it short.
    pub interrupted: bool,
    /// Where it is stored.
    pub run: PathBuf,
}

/// Runs `args` once, at its seed (from the clock if it has none), ignoring `test_count`.
pub fn run_one(args: &TestArgs) -> anyhow::Result<Finished> {
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    run_once(args, seed)
}

fn seed_from_clock() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// The git revision this binary was built from.
pub fn revision() -> &'static str {
    env!("FAULTLINE_GIT_REV")
}

fn validate(args: &TestArgs) -> Result<(), BadArgs> {
    let bad = |m: String| Err(BadArgs(m));
    if db::custom::is_system_file(&args.system) {
        let system =
            db::custom::Custom::load(std::path::Path::new(&args.system)).map_err(BadArgs)?;
        if !system.file.workloads.contains(&args.workload) {
            return bad(format!(
                "{} runs {}, not {:?} (its system file's workloads)",
                system.file.name,
                system.file.workloads.join(", "),
                args.workload
            ));
        }
    } else if !db::SYSTEMS.contains(&args.system.as_str()) {
        return bad(format!(
            "unknown system {:?}: known systems are {}, or a system file (a path ending in .toml)",
            args.system,
            db::SYSTEMS.join(", ")
        ));
    }
    if !workload::names().contains(&args.workload.as_str()) {
        return bad(format!(
            "unknown workload {:?}: known workloads are {}",
            args.workload,
            workload::names().join(", ")
        ));
    }
    workload::check_pairing(&args.system, &args.workload).map_err(BadArgs)?;
    workload::postgres::check_isolation(&args.system, &args.workload, args.isolation.as_deref())
        .map_err(BadArgs)?;
    args.txn_shape()
        .validate(&args.system, &args.workload)
        .map_err(BadArgs)?;
    let classes = fault_classes(args).map_err(BadArgs)?;
    if args.workload == "recovery" && !classes.contains(&FaultClass::Kill) {
        return bad(
            "the recovery workload is about crashes during commit: run it with a nemesis \
             that includes kill (--nemesis kill, or kill with others)"
                .into(),
        );
    }
    disk::parse_modes(&args.disk_faults).map_err(BadArgs)?;
    let targets = nemesis_mod::Targets::parse_list(&args.nemesis_targets).map_err(BadArgs)?;
    if targets.contains(&nemesis_mod::Targets::Holder)
        && !matches!(args.workload.as_str(), "lock" | "lock-unfenced")
    {
        return bad(format!(
            "--nemesis-targets holder aims at the lock holder's node: the lock and \
             lock-unfenced workloads have one, {} does not",
            args.workload
        ));
    }
    if args.disk_sync_delay_ms > crate::lazyfs::MAX_SYNC_DELAY_MS {
        return bad(format!(
            "--disk-sync-delay-ms must be at most {} ms",
            crate::lazyfs::MAX_SYNC_DELAY_MS
        ));
    }
    if !(args.time_limit > 0.0 && args.time_limit <= 7.0 * 86_400.0) {
        return bad("--time-limit must be between 0 and a week of seconds".into());
    }
    if !(args.nemesis_interval >= 0.1 && args.nemesis_interval.is_finite()) {
        return bad("--nemesis-interval must be at least 0.1 seconds".into());
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return bad("--rate must be a positive number of operations per second".into());
    }
    if args.concurrency == 0 || args.concurrency > MAX_CONCURRENCY {
        return bad(format!("--concurrency must be 1 to {MAX_CONCURRENCY}"));
    }
    if args.test_count == 0 {
        return bad("--test-count must be at least 1".into());
    }
    if args.op_timeout_ms == 0 {
        return bad("--op-timeout-ms must be positive".into());
    }
    if args.backend == BackendArg::Ssh && args.hosts.is_empty() {
        return bad("the ssh backend needs --node HOST for each node".into());
    }
    let n = node_count(args);
    if n == 0 || n > MAX_NODES {
        return bad(format!("a test needs 1 to {MAX_NODES} nodes, not {n}"));
    }
    if args.backend != BackendArg::Ssh && !args.hosts.is_empty() {
        return bad("--node names SSH hosts: use --nodes N with other backends".into());
    }
    let known_bugs = db::bug_names(&args.system);
    if let Some(bug) = args.bugs.iter().find(|b| !known_bugs.contains(&b.as_str())) {
        return bad(match known_bugs {
            [] => format!("--bug {bug:?}: {} has no planted bugs", args.system),
            known => format!(
                "unknown --bug {bug:?} for {}: known bugs are {}",
                args.system,
                known.join(", ")
            ),
        });
    }
    db::repdb::validate_flags(
        &args.system,
        args.replication.as_deref(),
        args.no_read_sets,
        &args.bugs,
    )
    .map_err(BadArgs)?;
    db::repdb::validate_read_phase(&args.system, args.read_phase_ms).map_err(BadArgs)?;
    if let Some(bug) = &args.client_bug {
        let Some((_, system)) = workload::CLIENT_BUGS.iter().find(|(b, _)| b == bug) else {
            let known: Vec<&str> = workload::CLIENT_BUGS.iter().map(|(b, _)| *b).collect();
            return bad(format!(
                "unknown --client-bug {bug:?}: known bugs are {}",
                known.join(", ")
            ));
        };
        if args.system != *system {
            return bad(format!(
                "--client-bug {bug:?} is a broken {system} client; plant bugs in {} with --bug",
                args.system
            ));
        }
        if args.workload != workloads::register::RegisterWorkload::NAME {
            return bad(format!(
                "--client-bug {bug:?} breaks the register workload's client, not {}'s",
                args.workload
            ));
        }
    }
    Ok(())
}

fn node_count(args: &TestArgs) -> usize {
    match args.backend {
        BackendArg::Ssh => args.hosts.len(),
        _ => args.nodes,
    }
}

/// What `test.json` holds: the whole configuration, and what it ran on.
#[derive(Serialize)]
struct TestRecord<'a> {
    name: &'a str,
    seed: u64,
    revision: &'static str,
    faultline_version: &'static str,
    system_version: Option<String>,
    args: &'a TestArgs,
    nodes: Vec<serde_json::Value>,
    started: String,
}

/// A deployed cluster and the means to fault it.
struct Deployment {
    cluster: Cluster,
    db: Arc<dyn Db>,
    net: Option<Arc<dyn Net>>,
    /// Where the nemesis journals its faults, for systems that keep an event log.
    journal: Option<Arc<EventJournal>>,
}

/// The system's name for the store: a system file's own name rather than its path.
fn system_name(system: &str) -> String {
    if db::custom::is_system_file(system) {
        if let Ok(c) = db::custom::Custom::load(std::path::Path::new(system)) {
            return c.file.name;
        }
    }
    system.to_string()
}

/// One run; also says whether Ctrl-C cut it short.
fn run_once(args: &TestArgs, seed: u64) -> anyhow::Result<Finished> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", system_name(&args.system), args.workload));
    let store = Store::open(&args.store)?;
    let run = store.create_run(&name, SystemTime::now())?;
    runlog::switch_to(&run.path.join("faultline.log"))?;
    info!(
        "run {} seed {seed} revision {}",
        run.path.display(),
        revision()
    );
    let result = run_in_dir(args, seed, &name, &run);
    runlog::close();
    match &result {
        Ok((Exit::Valid, _)) => {}
        Ok((exit, _)) => eprintln!(
            "faultline test: {:?} (seed {seed}, revision {}); run stored in {}",
            exit,
            revision(),
            run.path.display()
        ),
        Err(e) => eprintln!(
            "faultline test: {e:#} (seed {seed}, revision {}); run stored in {}",
            revision(),
            run.path.display()
        ),
    }
    let (exit, interrupted) = result?;
    Ok(Finished {
        exit,
        interrupted,
        run: run.path.clone(),
    })
}

fn run_in_dir(
    args: &TestArgs,
    seed: u64,
    name: &str,
    run: &RunDir,
) -> anyhow::Result<(Exit, bool)> {
    let options = db::DbOptions {
        bugs: args.bugs.clone(),
        seed,
        replication: args.replication.clone(),
        no_read_sets: args.no_read_sets,
        read_phase_ms: args.read_phase_ms,
        clock_faults: fault_classes(args)
            .expect("validated")
            .contains(&FaultClass::Clock),
    };
    let db = db::by_name(&args.system, &options).expect("validated");
    let classes = fault_classes(args).expect("validated");
    let target = crate::workload::Target::of_system(&args.system)?;
    let workload = match args.isolation.as_deref() {
        Some(level) => Workload::postgres(&args.workload, level, args.op_timeout_ms, target)?,
        None => Workload::new(
            &args.workload,
            args.client_bug.as_deref(),
            target,
            args.op_timeout_ms,
            node_count(args),
        )?,
    };
    let workload = workload.shaped(args.txn_shape())?;
    // A system file may name a client process for each worker, logging into this run.
    let stdio = if db::custom::is_system_file(&args.system) {
        let system =
            db::custom::Custom::load(std::path::Path::new(&args.system)).map_err(BadArgs)?;
        crate::workload::custom::StdioClients::of(&system, &run.path)
    } else {
        None
    };
    let workload = workload.stdio_clients(stdio);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stop = interrupt_on_ctrl_c(&rt);
    let (cluster, backend_net) = make_cluster(args, run, seed, db.as_ref())?;
    // Reach every node now, so an unreachable host or an unknown host key is refused at
    // start, naming the host.
    for node in &cluster.nodes {
        let out = cluster.remote.exec(node, &crate::control::Cmd::new("true"));
        out.map_err(|e| BadArgs(format!("node {} at {}: {e}", node.name, node.ip)))?;
    }
    db.preflight(&cluster).map_err(|e| BadArgs(e.to_string()))?;
    write_test_json(args, seed, name, run, &cluster, db.as_ref())?;
    let net = match backend_net {
        Some(net) => Some(net),
        None => db.local_net(&cluster, rt.handle())?.map(Arc::from),
    };
    let disk_modes = disk::parse_modes(&args.disk_faults).expect("validated");
    let mut able =
        refuse_unsupported(&classes, &disk_modes, db.as_ref(), net.as_deref(), &cluster)?;
    if let Some(lazy) = &mut able.lazy_disk {
        lazy.sync_delay_ms = args.disk_sync_delay_ms;
    }
    let mut cluster = cluster;
    cluster.lazy_disk = able.lazy_disk.map(Arc::new);
    // Systems that keep an event log get the harness's faults journaled beside it.
    let journal = match db.events_file() {
        Some(_) => Some(Arc::new(EventJournal::create(
            &run.path.join(event_log::HARNESS_FILE),
        )?)),
        None => None,
    };
    let deployment = Deployment {
        cluster,
        db,
        net,
        journal,
    };
    let script = match &args.nemesis_script {
        Some(path) => {
            let limit_ns = (args.time_limit * 1e9) as u64;
            let names = deployment.cluster.names();
            let script = Script::load(path)
                .and_then(|s| {
                    s.fit(limit_ns, &names)
                        .map_err(|e| format!("{}: {e}", path.display()))
                })
                .map_err(|e| BadArgs(format!("--nemesis-script {e}")))?;
            // The run keeps the faults it played, as it keeps its seed.
            std::fs::copy(path, run.path.join(SCRIPT_COPY))?;
            Some(script)
        }
        None => None,
    };
    let plan = Plan {
        classes,
        script,
        nodes: deployment.cluster.names(),
        interval_ns: (args.nemesis_interval * 1e9) as u64,
        time_limit_ns: (args.time_limit * 1e9) as u64,
        packet_modes: able.packet_modes,
        disk_modes,
        targets: nemesis_mod::Targets::parse_list(&args.nemesis_targets).expect("validated"),
        seed,
    };
    let outcome = deploy_and_drive(args, seed, run, &deployment, &workload, plan, (&rt, stop));
    collect_logs(&deployment, run);
    if let Some(journal) = &deployment.journal {
        journal.finish();
        sample_host_clocks(&deployment, run);
    }
    if deployment.db.events_file().is_some() {
        match event_log::merge(&run.path) {
            Ok(m) => info!(
                "merged {} event lines from {} files into {}",
                m.lines,
                m.files,
                event_log::MERGED_FILE
            ),
            Err(e) => warn!("cannot merge the event logs: {e:#}"),
        }
    }
    if args.leave_db_running {
        info!("leaving the system running, as asked");
        if deployment.cluster.backend == Backend::Local {
            warn!("on the local backend the peer proxies stop with the controller: members left running cannot reach each other");
        }
    } else {
        teardown(&deployment);
    }
    drop(rt);
    let interrupted = outcome?;
    if interrupted {
        warn!("interrupted: checking what was recorded");
    } else if workload.restores_snapshots() {
        let v = db::twopc::restore::restore_last_snapshot(run, seed)?;
        info!(
            "restore: {:?}{}",
            v.valid,
            v.cause.map(|c| format!(" ({c})")).unwrap_or_default()
        );
    }
    Ok((analyze::check_run(&run.path)?, interrupted))
}

/// From now on, Ctrl-C does not kill the controller: it sets the returned flag, and the run
/// stops the workload, heals, collects logs, tears down and checks. During setup the flag is
/// seen as soon as the workload would start.
fn interrupt_on_ctrl_c(rt: &tokio::runtime::Runtime) -> tokio::sync::watch::Receiver<bool> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let _runtime = rt.enter();
    // Created here, not in the task, so the handler is installed before this returns.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .expect("a SIGINT handler can be installed");
    rt.spawn(async move {
        if interrupt.recv().await.is_some() {
            warn!("interrupted: stopping the workload, healing, tearing down, checking (Ctrl-C again to abandon all that)");
            let _ = stop_tx.send(true);
        }
        if interrupt.recv().await.is_some() {
            error!("interrupted twice: exiting without cleaning up");
            std::process::exit(130);
        }
    });
    stop_rx
}

/// The nodes, how to reach them, and (except on the local backend, where the system brings
/// its own) the network faults.
fn make_cluster(
    args: &TestArgs,
    run: &RunDir,
    seed: u64,
    db: &dyn Db,
) -> anyhow::Result<(Cluster, Option<Arc<dyn Net>>)> {
    let run_id = format!("faultline-{seed:x}-{}", std::process::id());
    let cluster = |nodes, remote: Arc<dyn Remote>, backend| Cluster {
        nodes,
        remote,
        backend,
        run_id: run_id.clone(),
        lazy_disk: None,
    };
    let iptables = |c: &Cluster| -> Option<Arc<dyn Net>> {
        Some(Arc::new(IptablesNet::new(
            c.remote.clone(),
            c.nodes.clone(),
        )))
    };
    Ok(match args.backend {
        BackendArg::Local => {
            let remote = Arc::new(Local::new(&run.path.join("work")));
            (
                cluster(local_nodes(args.nodes)?, remote, Backend::Local),
                None,
            )
        }
        BackendArg::Netns => {
            let netns = Netns::create(&run.path.join("work"), args.nodes)
                .map_err(|e| BadArgs(format!("cannot create the netns cluster: {e}")))?;
            let c = cluster(netns.nodes(), Arc::new(netns), Backend::Netns);
            let net = iptables(&c);
            (c, net)
        }
        BackendArg::Ssh => {
            let c = cluster(
                ssh_nodes(&args.hosts)?,
                Arc::new(ssh_backend(args)?),
                Backend::Ssh,
            );
            let net = iptables(&c);
            (c, net)
        }
        BackendArg::Docker => {
            let spec = ImageSpec {
                busybox: None,
                extra_files: db.image_files().map_err(|e| BadArgs(e.to_string()))?,
            };
            info!("building the node image");
            let image = spec.build().map_err(|e| BadArgs(e.to_string()))?;
            let docker = Docker::create(&image, args.nodes).map_err(|e| BadArgs(e.to_string()))?;
            let net: Arc<dyn Net> = Arc::new(docker.net());
            (
                cluster(docker.nodes(), Arc::new(docker), Backend::Docker),
                Some(net),
            )
        }
    })
}

fn ssh_backend(args: &TestArgs) -> anyhow::Result<Ssh> {
    let key = args
        .ssh_private_key
        .clone()
        .ok_or_else(|| BadArgs("the ssh backend needs --ssh-private-key PATH".into()))?;
    let mut config = SshConfig::new(args.username.clone(), key);
    config.strict_host_key_checking = args.strict_host_key_checking;
    Ok(Ssh::new(config))
}

/// SSH hosts become nodes n1..nN at the hosts' addresses (resolved now: systems are told
/// IPs). Each is connected to now, so an unreachable host or unknown key is refused at start.
fn ssh_nodes(hosts: &[String]) -> anyhow::Result<Vec<Node>> {
    use std::net::ToSocketAddrs;
    hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let ip = (host.as_str(), 22)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| BadArgs(format!("cannot resolve SSH host {host:?}")))?
                .ip()
                .to_string();
            Ok(Node {
                name: format!("n{}", i + 1),
                ip,
            })
        })
        .collect()
}

/// Local nodes get their own loopback addresses in a /24 that no other run on this host is
/// using (its first address's client port is free), so concurrent local runs never collide.
pub(crate) fn local_nodes(n: usize) -> anyhow::Result<Vec<Node>> {
    let salt = std::process::id() as u64 ^ seed_from_clock();
    for attempt in 0..64u64 {
        let h = salt
            .wrapping_add(attempt)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            >> 48;
        let (a, b) = (1 + (h >> 8) % 254, h & 0xff);
        let nodes: Vec<Node> = (1..=n)
            .map(|i| Node {
                name: format!("n{i}"),
                ip: format!("127.{a}.{b}.{}", i + 1),
            })
            .collect();
        if std::net::TcpListener::bind((nodes[0].ip.as_str(), db::etcd::CLIENT_PORT)).is_ok() {
            return Ok(nodes);
        }
    }
    anyhow::bail!("no free loopback /24 for local nodes after 64 tries")
}

/// What the faults asked for need, found possible at start.
struct Capabilities {
    /// The packet faults the backend can inject (one is chosen per `start-packet`).
    packet_modes: Vec<PacketFaults>,
    /// Set when unsynced writes are to be lost: how data directories are mounted.
    lazy_disk: Option<LazyDisk>,
}

/// Refuses, before anything starts, a fault this system or backend cannot inject; returns
/// what the faults that can be need.
fn refuse_unsupported(
    classes: &[FaultClass],
    disk_modes: &[DiskMode],
    db: &dyn Db,
    net: Option<&dyn Net>,
    cluster: &Cluster,
) -> anyhow::Result<Capabilities> {
    let backend = cluster.backend;
    let refuse = |why: String| -> anyhow::Result<Capabilities> { Err(BadArgs(why).into()) };
    let mut lazy_disk = None;
    for class in classes {
        match class {
            FaultClass::Partition | FaultClass::Packet if net.is_none() => {
                return refuse(format!(
                    "fault class {class} is not available: {} on the {} backend has no \
                     network faults",
                    db.name(),
                    backend.name()
                ));
            }
            FaultClass::Clock => {
                if let Err(why) = db.clock_faults() {
                    return refuse(format!("fault class clock is not available: {why}"));
                }
            }
            FaultClass::Disk => {
                if let Err(why) = db.disk_faults() {
                    return refuse(format!("fault class disk is not available: {why}"));
                }
                if disk_modes.contains(&DiskMode::LoseUnsynced) {
                    let lazy = LazyDisk::beside_this_binary(DEFAULT_MAX_DIRTY_MIB)
                        .and_then(|l| l.check(cluster).map(|()| l));
                    match lazy {
                        Ok(l) => lazy_disk = Some(l),
                        Err(why) => {
                            return refuse(format!(
                                "disk fault lose-unsynced is not available on the {} backend: \
                                 {why} (--disk-faults truncate-tail,corrupt-tail needs none of it)",
                                backend.name()
                            ))
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let packet_modes = packet_modes(classes, net, backend)?;
    Ok(Capabilities {
        packet_modes,
        lazy_disk,
    })
}

/// The packet faults the backend can inject, tried once each now.
fn packet_modes(
    classes: &[FaultClass],
    net: Option<&dyn Net>,
    backend: Backend,
) -> anyhow::Result<Vec<PacketFaults>> {
    if !classes.contains(&FaultClass::Packet) {
        return Ok(Vec::new());
    }
    let net = net.expect("checked above");
    let delay = |ms| PacketFaults {
        delay_ms: ms,
        ..PacketFaults::default()
    };
    let candidates = [
        delay(50),
        delay(200),
        PacketFaults {
            drop_percent: 20.0,
            ..PacketFaults::default()
        },
        PacketFaults {
            duplicate_percent: 20.0,
            ..PacketFaults::default()
        },
    ];
    // Try each kind once, now, so that a fault the kernel or backend lacks is refused at
    // start rather than failing mid-run.
    let mut modes = Vec::new();
    let mut refusals = Vec::new();
    for faults in candidates {
        match net.packet(&faults) {
            Ok(()) => modes.push(faults),
            Err(e) => refusals.push(e.to_string()),
        }
    }
    net.packet(&PacketFaults::default())
        .map_err(|e| anyhow::anyhow!("cannot clear packet faults: {e}"))?;
    if modes.is_empty() {
        return Err(BadArgs(format!(
            "fault class packet is not available on the {} backend: {}",
            backend.name(),
            refusals.join("; ")
        ))
        .into());
    }
    for r in refusals {
        warn!("packet faults limited: {r}");
    }
    Ok(modes)
}
fn write_test_json(
    args: &TestArgs,
    seed: u64,
    name: &str,
    run: &RunDir,
    cluster: &Cluster,
    db: &dyn Db,
) -> anyhow::Result<()> {
    let version = cluster
        .remote
        .exec(
            &cluster.nodes[0],
            &crate::control::Cmd::new(db.version_command()),
        )
        .ok()
        .filter(|o| o.success())
        .map(|o| o.stdout_text().lines().next().unwrap_or("").to_string());
    let record = TestRecord {
        name,
        seed,
        revision: revision(),
        faultline_version: env!("CARGO_PKG_VERSION"),
        system_version: version,
        args,
        nodes: cluster
            .nodes
            .iter()
            .map(|n| json!({"name": n.name, "ip": n.ip}))
            .collect(),
        started: crate::store::timestamp(SystemTime::now()),
    };
    run.write_json("test.json", &serde_json::to_value(&record)?)
}

/// Sets up every node, drives the workload, heals. Returns whether Ctrl-C cut it short.
fn deploy_and_drive(
    args: &TestArgs,
    seed: u64,
    run: &RunDir,
    d: &Deployment,
    workload: &Workload,
    plan: Plan,
    (rt, stop_rx): (&tokio::runtime::Runtime, tokio::sync::watch::Receiver<bool>),
) -> anyhow::Result<bool> {
    setup_all(d)?;
    sample_host_clocks(d, run);
    let live = Arc::new(Live::default());
    let executor = Executor::journaling(
        d.cluster.clone(),
        d.db.clone(),
        d.net.clone(),
        live.clone(),
        d.journal.clone(),
    )
    .aiming(workload.focus());
    let no_faults = plan.classes.is_empty();
    let gen = test_generator(args, workload, plan);
    let config = RunConfig {
        concurrency: args.concurrency,
        seed,
        op_timeout: Duration::from_millis(args.op_timeout_ms),
    };
    let addrs: Vec<std::net::SocketAddr> = d
        .cluster
        .nodes
        .iter()
        .map(|n| d.db.client_addr(n))
        .collect();
    let client = |w: u32| workload.client(addrs[w as usize % addrs.len()], &addrs, w);
    let mut history = run.history()?;
    let live_for_progress = live.clone();
    let interrupted = rt.block_on(async {
        let time_limit_s = args.time_limit;
        let progress = tokio::spawn(async move {
            if !runlog::is_quiet() {
                progress_line(live_for_progress, no_faults, time_limit_s).await
            }
        });
        let mut hooks = Hooks::new(Some(executor.clone()));
        hooks.stop = Some(stop_rx.clone());
        hooks.live = live.clone();
        let epoch = hooks.epoch;
        let summary = runner::run_with(&config, gen, client, hooks, &mut history).await;
        let interrupted = *stop_rx.borrow();
        if interrupted || summary.is_err() {
            // The run may have left faults in effect: heal them, on the record.
            let mut heal = Hooks::new(Some(executor));
            heal.epoch = epoch;
            let script =
                generator::nemesis_script(vec![("stop-all".into(), serde_json::Value::Null)]);
            runner::run_with(&config, script, client, heal, &mut history).await?;
        }
        progress.abort();
        let summary = summary?;
        info!(
            "recorded {} invocations: {} ok, {} fail, {} info",
            summary.invocations, summary.ok, summary.fail, summary.info
        );
        anyhow::Ok(interrupted)
    })?;
    history.finish()?;
    Ok(interrupted)
}

/// The whole schedule: the workload with the nemesis until the time limit, every fault
/// healed, a quiet period, then the final reads.
fn test_generator(args: &TestArgs, workload: &Workload, mut plan: Plan) -> Gen {
    let mean_interval_ns = (1e9 / args.rate) as u64;
    let ops = match workload.per_worker_ops() {
        // Each worker at its share of the rate.
        Some(make) => {
            let per_worker_ns = mean_interval_ns.saturating_mul(args.concurrency.max(1) as u64);
            generator::each_thread(move |_| generator::stagger(per_worker_ns, make()))
        }
        None => generator::stagger(mean_interval_ns, workload.ops()),
    };
    let clients = generator::time_limit(plan.time_limit_ns, ops);
    let no_faults = plan.classes.is_empty();
    let main = if no_faults {
        clients
    } else {
        let nemesis = match plan.script.take() {
            Some(script) => script.generator(),
            None => schedule::schedule(plan),
        };
        generator::clients_and_nemesis(clients, generator::relative(nemesis))
    };
    // The setup (initial state) runs before any fault, so that it cannot fail by them.
    let mut phases: Vec<Gen> = workload.setup().into_iter().collect();
    phases.push(main);
    if !no_faults {
        phases.push(generator::nemesis_script(vec![(
            "stop-all".into(),
            serde_json::Value::Null,
        )]));
    }
    phases.push(generator::sleep(RECOVERY.as_nanos() as u64));
    // Bounded, so that a cluster the faults left without a quorum ends the run (its final
    // reads recorded as failed) rather than retrying each read for many minutes.
    phases.push(generator::time_limit(
        FINAL_PHASE_LIMIT.as_nanos() as u64,
        workload.final_reads(),
    ));
    generator::phases(phases)
}

fn setup_all(d: &Deployment) -> anyhow::Result<()> {
    info!(
        "setting up {} on {} nodes: {}",
        d.db.name(),
        d.cluster.nodes.len(),
        d.cluster.names().join(" ")
    );
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = d
            .cluster
            .nodes
            .iter()
            .map(|node| s.spawn(move || d.db.setup(&d.cluster, node)))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("setup panicked".into()),
            })
            .collect()
    });
    anyhow::ensure!(errors.is_empty(), "setup failed: {}", errors.join("; "));
    for node in &d.cluster.nodes {
        d.db.wait_ready(&d.cluster, node, READY_TIMEOUT)?;
    }
    info!("{} is ready", d.db.name());
    Ok(())
}

/// Copies every node's logs into `nodes/<node>/`; failures are logged, never fatal, so a
/// broken node cannot cost the others' logs.
/// Estimates each host's clock against the controller's, for the event log's merge
/// ([`host_clock`]): only where nodes are other hosts and the system keeps an event log. A
/// host that cannot be sampled is logged; its lines then merge by its clock unmapped.
fn sample_host_clocks(d: &Deployment, run: &RunDir) {
    if d.cluster.backend != Backend::Ssh || d.journal.is_none() {
        return;
    }
    let mut clocks = match HostClocks::load(&run.path) {
        Ok(c) => c,
        Err(e) => {
            warn!("{e:#}");
            return;
        }
    };
    for node in &d.cluster.nodes {
        match host_clock::measure(d.cluster.remote.as_ref(), node) {
            Ok(e) => {
                info!(
                    "clock of {}: {:+.3} ms from the controller's, within {:.3} ms",
                    node.name,
                    e.offset_ns as f64 / 1e6,
                    e.rtt_ns as f64 / 2e6
                );
                clocks.add(&node.name, e);
            }
            Err(e) => warn!("cannot sample the clock of {}: {e}", node.name),
        }
    }
    if let Err(e) = clocks.save(&run.path) {
        warn!("{e:#}");
    }
}

fn collect_logs(d: &Deployment, run: &RunDir) {
    for node in &d.cluster.nodes {
        let Ok(dir) = run.node_dir(&node.name) else {
            warn!("cannot create the log folder for {}", node.name);
            continue;
        };
        let mut logs = d.db.node_log_files(&d.cluster, node);
        if d.cluster.lazy_disk.is_some() {
            logs.push(crate::control::lazy_disk::LOG_FILE.into());
        }
        for log in logs {
            let file = log
                .file_name()
                .map_or_else(|| "log".into(), |f| f.to_owned());
            if let Err(e) = d.cluster.remote.download(node, &log, &dir.join(file)) {
                warn!("cannot collect {}: {e}", log.display());
            }
        }
    }
}

fn teardown(d: &Deployment) {
    if let Some(net) = &d.net {
        if let Err(e) = net.heal().and_then(|()| net.teardown()) {
            warn!("network teardown: {e}");
        }
    }
    for node in &d.cluster.nodes {
        // A stopped process would hold SIGKILL's effect back until continued.
        let _ = d.db.resume(&d.cluster, node);
        if let Err(e) = d.db.teardown(&d.cluster, node) {
            warn!("teardown of {}: {e}", node.name);
        }
    }
}

/// Prints elapsed time, ops and the faults now active every couple of seconds.
async fn progress_line(live: Arc<Live>, no_faults: bool, time_limit_s: f64) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(PROGRESS_PERIOD).await;
        let faults: Vec<String> = live
            .faults
            .lock()
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default();
        let faults = match (no_faults, faults.is_empty()) {
            (true, _) => String::new(),
            (false, true) => "; faults: none".into(),
            (false, false) => format!("; faults: {}", faults.join(" ")),
        };
        let elapsed_s = started.elapsed().as_secs_f64();
        // Setup and the final phase come on top of the workload's time: the ETA is the
        // workload's end, after which healing, final reads and checking follow.
        let phase = if elapsed_s < time_limit_s {
            format!("workload ends in {:.0}s", time_limit_s - elapsed_s)
        } else {
            "final phase".to_string()
        };
        eprintln!(
            "[{elapsed_s:6.1}s, {phase}] {} ops: {} ok, {} fail, {} info{faults}",
            live.invocations.load(Ordering::Relaxed),
            live.ok.load(Ordering::Relaxed),
            live.fail.load(Ordering::Relaxed),
            live.info.load(Ordering::Relaxed),
        );
    }
}
