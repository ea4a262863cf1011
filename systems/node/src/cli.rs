//! The `faultline-node` command line, also reachable as `faultline node ...` so that the
//! controller can deploy itself as the node binary.
//!
//! ```text
//! faultline-node coord --id 1 --peers 1=10.0.0.1:7001,2=10.0.0.2:7001,3=10.0.0.3:7001 \
//!     --peer-listen 0.0.0.0:7001 --client-listen 0.0.0.0:7000 --data /var/lib/coord \
//!     --cluster run-42 [--seed 7] [--bug stale-sync] [--clock-offset-file FILE] \
//!     [--events FILE]
//! ```
//!
//! Exit status: 0 after SIGTERM or SIGINT, 2 for bad arguments, 1 when the node fails
//! (its disk, its data). Logs go to standard error.

use crate::{driver, NodeOptions};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use coord::server::config::{Bugs, CoordConfig};
use coord::server::CoordServer;
use machine::NodeId;
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

fn parse_peers(specs: &[String]) -> Result<BTreeMap<NodeId, SocketAddr>> {
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
    let System::Coord(args) = cli.system;
    match run_coord(args) {
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
    let peers = parse_peers(&args.peers).map_err(|e| BadArgs(format!("{e:#}")))?;
    let Some(own) = peers.get(&args.id).copied() else {
        return Err(BadArgs(format!("--id {} is not among --peers", args.id)).into());
    };
    let bugs = Bugs::parse(args.bugs.iter().map(String::as_str)).map_err(BadArgs)?;
    let config = CoordConfig::with_bugs(bugs);
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let peer_addr = args.peer_listen.unwrap_or(own);
        let peer_listener = TcpListener::bind(peer_addr)
            .await
            .with_context(|| format!("binding the peer port {peer_addr}"))?;
        let client_listener = TcpListener::bind(args.client_listen)
            .await
            .with_context(|| format!("binding the client port {}", args.client_listen))?;
        tracing::info!(id = opts.id, peers = ?opts.peers, client = %args.client_listen, "starting");
        driver::run::<CoordServer>(config, opts, peer_listener, client_listener, shutdown())
            .await?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown() {
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
        let System::Coord(common) = Cli::try_parse_from(args).unwrap().system;
        common
    }

    #[test]
    fn the_events_file_is_optional() {
        assert_eq!(common(&[]).events, None);
        let with = common(&["--events", "n1.events.jsonl"]);
        assert_eq!(with.events, Some(PathBuf::from("n1.events.jsonl")));
    }
}
