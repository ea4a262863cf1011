//! The `faultline-node` command line, also reachable as `faultline node ...` so that the
//! controller can deploy itself as the node binary.
//!
//! ```text
//! faultline-node coord --id 1 --peers 1=10.0.0.1:7001,2=10.0.0.2:7001,3=10.0.0.3:7001 \
//!     --peer-listen 0.0.0.0:7001 --client-listen 0.0.0.0:7000 --data /var/lib/coord \
//!     --cluster run-42 [--seed 7] [--bug stale-sync] [--clock-offset-file FILE] \
//!     [--events FILE]
//! faultline-node twopc (the same flags; --bug from twopc::BUG_NAMES) [--restore PART]
//! faultline-node repdb (the same flags; --bug from repdb's BUG_TABLE) \
//!     [--replication certification|active|weak-voting|primary-copy|lazy] [--no-read-sets]
//!     [--read-phase-ms MS]
//! ```
//!
//! Exit status: 0 after SIGTERM or SIGINT, 2 for bad arguments, 1 when the node fails
//! (its disk, its data). Logs go to standard error.

use crate::restore::{self, Seeded};
use crate::{driver, NodeOptions};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use coord::server::config::{Bugs, CoordConfig};
use coord::server::CoordServer;
use machine::{Machine, NodeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "faultline-node",
    about = "Runs one node of a Faultline reference system"
)]
struct Cli {
    #[command(subcommand)]
    system: System,
}

#[derive(Subcommand)]
enum System {
    /// The ZooKeeper-like coordination service.
    Coord(Common),
    /// The two-phase-commit store: node 1 coordinates, every other node holds one shard.
    Twopc(TwopcArgs),
    /// The replicated database on Zab: every node holds every key.
    Repdb(RepdbArgs),
}

/// The replicated database's deploy-time choices. Every replica of a cluster must be given
/// the same ones: replicas that certify by different rules diverge.
#[derive(clap::Args)]
struct RepdbArgs {
    #[command(flatten)]
    common: Common,
    /// How updates reach the replicas: certification, active, weak-voting, primary-copy or
    /// lazy.
    #[arg(long, value_name = "MODE", default_value = "certification")]
    replication: String,
    /// Certify write sets only, first-committer-wins (snapshot isolation); certification and
    /// weak-voting only.
    #[arg(long)]
    no_read_sets: bool,
    /// How long a delegate executes a transaction on its snapshot before broadcasting it
    /// (whole ticks of 10 ms; 0 executes at once). Commits delivered meanwhile are what
    /// certification must catch.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    read_phase_ms: u64,
}

#[derive(clap::Args)]
struct TwopcArgs {
    #[command(flatten)]
    common: Common,
    /// Start this participant from a snapshot part (a postcard `SnapshotPart`, as
    /// `SnapshotState` returns it). Used only when its data directory holds nothing yet, so
    /// a restart after a crash keeps what the node has since done.
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
}

#[derive(clap::Args)]
struct Common {
    /// This node's id (1-based), one of --peers.
    #[arg(long)]
    id: NodeId,
    /// Every member as ID=HOST:PORT (peer port), comma-separated, this node included.
    #[arg(long, value_delimiter = ',', required = true)]
    peers: Vec<String>,
    /// Where to accept peer connections (defaults to this node's --peers address).
    #[arg(long)]
    peer_listen: Option<SocketAddr>,
    /// Where to accept client connections.
    #[arg(long)]
    client_listen: SocketAddr,
    /// The node's data directory (created if missing; holds only logs/ and blobs/).
    #[arg(long)]
    data: PathBuf,
    /// A token all members share; peers presenting another are refused.
    #[arg(long)]
    cluster: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A planted bug to switch on; repeatable.
    #[arg(long = "bug")]
    bugs: Vec<String>,
    /// A file holding a signed offset in ms for this node's clock (clock faults).
    #[arg(long)]
    clock_offset_file: Option<PathBuf>,
    /// Append the core's events to FILE as JSON lines, for the event-log checkers (a system
    /// that records none writes nothing).
    #[arg(long = "events", value_name = "FILE")]
    events: Option<PathBuf>,
}

/// `--peers`: `ID=HOST:PORT` entries, ids from 1, each once.
pub fn parse_peers(specs: &[String]) -> Result<BTreeMap<NodeId, SocketAddr>> {
    let mut peers = BTreeMap::new();
    for spec in specs {
        let (id, addr) = spec
            .split_once('=')
            .with_context(|| format!("--peers entry {spec:?} is not ID=HOST:PORT"))?;
        let id: NodeId = id
            .parse()
            .with_context(|| format!("--peers entry {spec:?}: {id:?} is not a node id"))?;
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("--peers entry {spec:?}: {addr:?} is not HOST:PORT"))?;
        if id == 0 {
            bail!("--peers entry {spec:?}: node ids start at 1");
        }
        if peers.insert(id, addr).is_some() {
            bail!("--peers names node {id} twice");
        }
    }
    Ok(peers)
}

/// Runs the command line `args` (the first is the program name) and returns the exit
/// status. Installs a global tracing subscriber unless one is installed already.
pub fn main_with(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
    let result = match cli.system {
        System::Coord(args) => run_coord(args),
        System::Twopc(args) => run_twopc(args),
        System::Repdb(args) => run_repdb(args),
    };
    match result {
        Ok(()) => 0,
        Err(e) if e.downcast_ref::<BadArgs>().is_some() => {
            eprintln!("faultline-node: {e:#}");
            2
        }
        Err(e) => {
            eprintln!("faultline-node: {e:#}");
            1
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadArgs(String);

fn run_coord(args: Common) -> Result<()> {
    let bugs = Bugs::parse(args.bugs.iter().map(String::as_str)).map_err(BadArgs)?;
    let (opts, listen) = node_options(args)?;
    serve::<CoordServer>(CoordConfig::with_bugs(bugs), opts, listen)
}

fn run_twopc(args: TwopcArgs) -> Result<()> {
    let bugs = twopc::Bugs::parse(args.common.bugs.iter().map(String::as_str)).map_err(BadArgs)?;
    let (opts, listen) = node_options(args.common)?;
    if let Some(file) = &args.restore {
        // Node 1 coordinates and holds no shard: a part given to it would be silently
        // ignored, and the restored cluster would miss a shard.
        if opts.peers.keys().next() == Some(&opts.id) {
            return Err(BadArgs(format!(
                "--restore is for participants; node {} coordinates and holds no shard",
                opts.id
            ))
            .into());
        }
        let seeded = restore::seed(&opts.data_dir, file, opts.limits.clone()).map_err(|e| {
            match e {
                // A file that is not a part is a bad argument; a failing disk is the node's.
                restore::RestoreError::File { .. } => anyhow::Error::from(BadArgs(e.to_string())),
                restore::RestoreError::Storage { .. } => e.into(),
            }
        })?;
        match seeded {
            Seeded::Restored { keys } => {
                tracing::info!(file = %file.display(), keys, "restored a snapshot part")
            }
            Seeded::AlreadyBooted => {
                tracing::info!(file = %file.display(), "the store holds data: not restoring")
            }
        }
    }
    serve::<twopc::TwoPc>(twopc::TwoPcConfig::with_bugs(bugs), opts, listen)
}

fn run_repdb(args: RepdbArgs) -> Result<()> {
    let config = repdb::RepdbConfig::from_flags(
        &args.replication,
        args.no_read_sets,
        args.common.bugs.iter().map(String::as_str),
    )
    .and_then(|c| c.with_read_phase_ms(args.read_phase_ms))
    .map_err(|e| BadArgs(e.to_string()))?;
    let (opts, listen) = node_options(args.common)?;
    tracing::info!(
        mode = config.mode.name(),
        read_sets = config.read_sets,
        read_phase_ms = config.read_phase_ms(),
        bugs = ?config.bugs,
        "replicated database"
    );
    serve::<repdb::Replica>(config, opts, listen)
}

/// Where a node listens: peers, then clients.
type Listen = (SocketAddr, SocketAddr);

/// The driver's options from the common flags; errors in them are [`BadArgs`].
fn node_options(args: Common) -> Result<(NodeOptions, Listen)> {
    let peers = parse_peers(&args.peers).map_err(|e| BadArgs(format!("{e:#}")))?;
    let Some(own) = peers.get(&args.id).copied() else {
        return Err(BadArgs(format!("--id {} is not among --peers", args.id)).into());
    };
    let opts = NodeOptions {
        id: args.id,
        peers,
        data_dir: args.data,
        seed: args.seed,
        cluster: args.cluster,
        clock_offset_file: args.clock_offset_file,
        events_file: args.events,
        limits: storage::Limits::default(),
    };
    Ok((opts, (args.peer_listen.unwrap_or(own), args.client_listen)))
}

/// Runs core `M` on a two-thread runtime until SIGTERM or SIGINT.
fn serve<M>(config: M::Config, opts: NodeOptions, (peer_addr, client_addr): Listen) -> Result<()>
where
    M: Machine + 'static,
    M::Peer: Send + Sync + 'static,
    M::Request: Send + Sync + 'static,
    M::Response: Send + Sync + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let peer_listener = TcpListener::bind(peer_addr)
            .await
            .with_context(|| format!("binding the peer port {peer_addr}"))?;
        let client_listener = TcpListener::bind(client_addr)
            .await
            .with_context(|| format!("binding the client port {client_addr}"))?;
        tracing::info!(id = opts.id, peers = ?opts.peers, client = %client_addr, "starting");
        driver::run::<M>(config, opts, peer_listener, client_listener, shutdown()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(extra: &[&str]) -> Common {
        let mut args = vec![
            "faultline-node",
            "coord",
            "--id",
            "1",
            "--peers",
            "1=127.0.0.1:7001",
            "--client-listen",
            "127.0.0.1:7000",
            "--data",
            "d",
            "--cluster",
            "c",
        ];
        args.extend_from_slice(extra);
        let System::Coord(common) = Cli::try_parse_from(args).unwrap().system else {
            panic!("parsed as coord")
        };
        common
    }

    /// Parses `faultline-node SYSTEM` with the common flags (node `id` of `peers`) and `extra`.
    fn parse(system: &str, id: &str, peers: &str, extra: &[&str]) -> Result<System, clap::Error> {
        let mut args = vec![
            "faultline-node",
            system,
            "--id",
            id,
            "--peers",
            peers,
            "--client-listen",
            "127.0.0.1:7000",
            "--data",
            "d",
            "--cluster",
            "c",
        ];
        args.extend_from_slice(extra);
        Ok(Cli::try_parse_from(args)?.system)
    }

    fn twopc(extra: &[&str]) -> Result<TwopcArgs, clap::Error> {
        match parse("twopc", "2", "1=127.0.0.1:7001,2=127.0.0.1:7002", extra)? {
            System::Twopc(a) => Ok(a),
            _ => panic!("parsed as another system"),
        }
    }

    #[test]
    fn twopc_takes_the_common_flags_and_an_optional_restore_file() {
        let plain = twopc(&["--events", "e.jsonl", "--bug", "commit-before-log"]).unwrap();
        assert_eq!(plain.restore, None);
        assert_eq!(plain.common.events, Some(PathBuf::from("e.jsonl")));
        assert_eq!(plain.common.bugs, vec!["commit-before-log".to_string()]);
        let restored = twopc(&["--restore", "part.bin"]).unwrap();
        assert_eq!(restored.restore, Some(PathBuf::from("part.bin")));
    }

    #[test]
    fn twopc_refuses_unknown_bugs_and_a_restore_on_the_coordinator_with_status_2() {
        let code = main_with(
            [
                "faultline-node",
                "twopc",
                "--id",
                "1",
                "--peers",
                "1=127.0.0.1:1,2=127.0.0.1:2",
                "--client-listen",
                "127.0.0.1:3",
                "--data",
                "d",
                "--cluster",
                "c",
                "--bug",
                "typo",
            ]
            .map(std::ffi::OsString::from),
        );
        assert_eq!(code, 2);
        let args = twopc(&["--restore", "p"]).unwrap();
        let mut args = args;
        args.common.id = 1;
        let err = run_twopc(args).unwrap_err();
        assert!(err.downcast_ref::<BadArgs>().is_some(), "{err:#}");
        assert!(
            err.to_string().contains("--restore is for participants"),
            "{err}"
        );
    }

    fn repdb(extra: &[&str]) -> Result<RepdbArgs, clap::Error> {
        match parse("repdb", "1", "1=127.0.0.1:7001", extra)? {
            System::Repdb(a) => Ok(a),
            _ => panic!("parsed as another system"),
        }
    }

    #[test]
    fn repdb_takes_a_mode_read_sets_and_its_bugs() {
        let plain = repdb(&[]).unwrap();
        assert_eq!(plain.replication, "certification");
        assert!(!plain.no_read_sets);
        let si = repdb(&[
            "--replication",
            "weak-voting",
            "--no-read-sets",
            "--bug",
            "apply-before-delivery",
        ])
        .unwrap();
        assert_eq!(si.replication, "weak-voting");
        assert!(si.no_read_sets);
        assert_eq!(si.common.bugs, vec!["apply-before-delivery".to_string()]);
    }

    #[test]
    fn repdb_refuses_unknown_modes_bugs_and_read_sets_it_cannot_drop_with_status_2() {
        let cases: &[(&[&str], &str)] = &[
            (&["--replication", "eager"], "unknown replication mode"),
            (&["--bug", "typo"], "nondeterministic-certification"),
            (
                &["--replication", "active", "--no-read-sets"],
                "--no-read-sets applies to certification and weak-voting",
            ),
        ];
        for (extra, says) in cases {
            let err = run_repdb(repdb(extra).unwrap()).unwrap_err();
            assert!(
                err.downcast_ref::<BadArgs>().is_some(),
                "{extra:?}: {err:#}"
            );
            assert!(err.to_string().contains(says), "{extra:?}: {err}");
        }
        let mut argv = vec!["faultline-node", "repdb", "--id", "1", "--peers"];
        argv.extend(["1=127.0.0.1:1", "--client-listen", "127.0.0.1:2"]);
        argv.extend(["--data", "d", "--cluster", "c", "--replication", "nope"]);
        assert_eq!(main_with(argv.into_iter().map(std::ffi::OsString::from)), 2);
    }

    #[test]
    fn the_events_file_is_optional() {
        assert_eq!(common(&[]).events, None);
        let with = common(&["--events", "n1.events.jsonl"]);
        assert_eq!(with.events, Some(PathBuf::from("n1.events.jsonl")));
    }
}
