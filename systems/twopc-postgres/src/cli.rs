//! `faultline node twopc-postgres`: one participant, next to its PostgreSQL server.
//!
//! ```text
//! faultline node twopc-postgres --id 2 --peers 1=10.0.0.1:7001,2=10.0.0.2:7001 \
//!     --client-listen 10.0.0.2:7000 --cluster run-42 --postgres 10.0.0.2:5432 \
//!     [--peer-listen ADDR] [--events FILE] [--user faultline] [--database faultline] \
//!     [--lock-timeout-ms 100] [--statement-timeout-ms 2000]
//! ```
//!
//! Node 1 is the coordinator (`faultline node twopc --id 1`); participants are 2 and up.
//! Until the database answers, the participant waits for it and serves nobody: it opens
//! its ports only once it has counted its boot. Exit status: 0 after SIGTERM or SIGINT,
//! 2 for bad arguments, 1 when it fails.

use crate::participant::{Participant, Setup};
use crate::pool::Pool;
use crate::serve;
use crate::shard::{self, ShardConfig};
use anyhow::{Context, Result};
use clap::Parser;
use machine::NodeId;
use node::events::EventLog;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The store's coordinator.
const COORDINATOR: NodeId = 1;
/// Sessions with the database at once: one per transaction step in flight.
const MAX_SESSIONS: usize = 32;
/// How long a step waits for a free session.
const SESSION_WAIT: Duration = Duration::from_millis(200);
/// How long a prepared transaction waits for its decision before it is in doubt (the
/// store's own participants wait 300 ms; a database round trip is slower).
const DECISION_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long a participant may take to vote: below the store's coordinator's vote timeout
/// (`twopc::config` 500 ms, measured from before the Prepare is sent), so that a yes never
/// arrives after the coordinator gave up waiting for it.
const VOTE_BUDGET: Duration = Duration::from_millis(350);
/// How often in-doubt transactions are looked for, and the horizon stored.
const SCAN_INTERVAL: Duration = Duration::from_millis(500);
/// Waits between attempts to reach the database at boot.
const BOOT_RETRY: Duration = Duration::from_millis(200);

#[derive(Parser)]
#[command(
    name = "faultline node twopc-postgres",
    about = "Runs a two-phase-commit participant whose shard is a PostgreSQL database"
)]
struct Cli {
    /// This participant's id (2 and up; node 1 coordinates), one of --peers.
    #[arg(long)]
    id: NodeId,
    /// Every member as ID=HOST:PORT (peer port), comma-separated, this node included.
    #[arg(long, value_delimiter = ',', required = true)]
    peers: Vec<String>,
    /// Where to accept peer connections (defaults to this node's --peers address).
    #[arg(long)]
    peer_listen: Option<SocketAddr>,
    /// Where to accept client connections (state queries).
    #[arg(long)]
    client_listen: SocketAddr,
    /// A token all members share; peers presenting another are refused.
    #[arg(long)]
    cluster: String,
    /// The PostgreSQL server holding this shard.
    #[arg(long, value_name = "HOST:PORT")]
    postgres: SocketAddr,
    #[arg(long, default_value = "faultline")]
    user: String,
    #[arg(long, default_value = "faultline")]
    database: String,
    /// How long a prepare waits for a row lock before voting no.
    #[arg(long, default_value_t = 100)]
    lock_timeout_ms: u64,
    /// The bound on every statement.
    #[arg(long, default_value_t = 2_000)]
    statement_timeout_ms: u64,
    /// Append events to FILE as JSON lines, for the event-log checkers.
    #[arg(long = "events", value_name = "FILE")]
    events: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadArgs(String);

/// Runs the command line `args` (the first is the program name); the exit status.
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
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("faultline node twopc-postgres: {e:#}");
            if e.downcast_ref::<BadArgs>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let peers = node::cli::parse_peers(&cli.peers).map_err(|e| BadArgs(format!("{e:#}")))?;
    let Some(own) = peers.get(&cli.id).copied() else {
        return Err(BadArgs(format!("--id {} is not among --peers", cli.id)).into());
    };
    if cli.id == COORDINATOR || !peers.contains_key(&COORDINATOR) {
        return Err(BadArgs(format!(
            "node {COORDINATOR} coordinates: participants are 2 and up, and --peers must name node {COORDINATOR}"
        ))
        .into());
    }
    let events = match &cli.events {
        Some(path) => Some(EventLog::open(path, cli.id)?),
        None => None,
    };
    let shard_cfg = ShardConfig {
        addr: cli.postgres,
        user: cli.user.clone(),
        database: cli.database.clone(),
        connect_timeout: Duration::from_secs(2),
        lock_timeout: Duration::from_millis(cli.lock_timeout_ms.max(1)),
        statement_timeout: Duration::from_millis(cli.statement_timeout_ms.max(1)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let boot = boot(&shard_cfg).await;
        tracing::info!(
            id = cli.id,
            boots = boot.boots,
            horizon = boot.horizon,
            "booted"
        );
        let mut outboxes = BTreeMap::new();
        for (&peer, &addr) in peers.iter().filter(|(p, _)| **p != cli.id) {
            outboxes.insert(
                peer,
                node::peers::dial_peer(cli.id, addr, cli.cluster.clone()),
            );
        }
        let setup = Setup {
            id: cli.id,
            coordinator: COORDINATOR,
            boots: boot.boots,
            horizon: boot.horizon,
            decision_timeout: DECISION_TIMEOUT,
            vote_budget: VOTE_BUDGET,
            events,
            outboxes,
        };
        let pool = Pool::new(shard_cfg, MAX_SESSIONS, SESSION_WAIT);
        let p = Arc::new(Participant::new(setup, pool));
        let listen = cli.peer_listen.unwrap_or(own);
        let peer_listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the peer port {listen}"))?;
        let client_listener = TcpListener::bind(cli.client_listen)
            .await
            .with_context(|| format!("binding the client port {}", cli.client_listen))?;
        let members: BTreeSet<NodeId> = peers.keys().copied().collect();
        tokio::spawn(serve::peers(peer_listener, p.clone(), members, cli.cluster));
        tokio::spawn(serve::clients(client_listener, p.clone()));
        tokio::spawn(housekeeping(p));
        node::cli::shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Counts this boot in the database, waiting for it as long as it takes: the participant
/// has nothing to offer without it, and the harness's readiness probe waits meanwhile.
async fn boot(cfg: &ShardConfig) -> shard::Boot {
    loop {
        let last = match shard::connect(cfg).await {
            Ok(c) => match shard::boot(&c).await {
                Ok(b) => return b,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        tracing::info!(error = %last, "waiting for the database");
        tokio::time::sleep(BOOT_RETRY).await;
    }
}

/// Asks about in-doubt transactions and stores the horizon, every [`SCAN_INTERVAL`].
async fn housekeeping(p: Arc<Participant>) {
    loop {
        tokio::time::sleep(SCAN_INTERVAL).await;
        match p.ask_about_in_doubt().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                transactions = n,
                "asked the coordinator about transactions in doubt"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot list the transactions in doubt"),
        }
        if let Err(e) = p.save_horizon().await {
            tracing::warn!(error = %e, "cannot store the horizon");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        let mut args = vec![
            "faultline node twopc-postgres",
            "--client-listen",
            "127.0.0.1:7000",
            "--cluster",
            "c",
            "--postgres",
            "127.0.0.1:5432",
        ];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args)
    }

    #[test]
    fn the_coordinator_cannot_be_a_participant() {
        let cli = parse(&["--id", "1", "--peers", "1=127.0.0.1:7001,2=127.0.0.2:7001"]).unwrap();
        let e = run(cli).unwrap_err();
        assert!(e.downcast_ref::<BadArgs>().is_some(), "{e:#}");
        assert!(e.to_string().contains("node 1 coordinates"), "{e:#}");
    }

    #[test]
    fn peers_must_be_well_formed() {
        let cli = parse(&["--id", "2", "--peers", "1=127.0.0.1:7001,2=nowhere"]).unwrap();
        let e = run(cli).unwrap_err();
        assert!(
            e.to_string().contains("\"nowhere\" is not HOST:PORT"),
            "{e:#}"
        );
        let cli = parse(&["--id", "3", "--peers", "1=127.0.0.1:7001,2=127.0.0.2:7001"]).unwrap();
        let e = run(cli).unwrap_err();
        assert!(
            e.to_string().contains("--id 3 is not among --peers"),
            "{e:#}"
        );
    }

    #[test]
    fn a_missing_postgres_address_is_a_usage_error() {
        let e = Cli::try_parse_from([
            "x",
            "--id",
            "2",
            "--peers",
            "1=127.0.0.1:1",
            "--client-listen",
            "127.0.0.1:1",
            "--cluster",
            "c",
        ]);
        let e = e.err().expect("refused");
        assert!(e.to_string().contains("--postgres"), "{e}");
    }
}
