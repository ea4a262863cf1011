//! 2PC commit latency against its floor, and throughput with group commit (issue 6,
//! "Performance").
//!
//! ```text
//! cargo bench -p faultline-twopc --bench commit [-- OPTIONS]
//! ```
//!
//! 1. The floor's parts, measured in the directory the nodes' data goes to: a forced log
//!    write (`storage::Store::write` of one 100-byte `Append`, as the node's disk thread
//!    does it; raw `write` + `fdatasync` of 100 bytes) and the loopback round trip of one
//!    framed client request between two tokio tasks on two threads. Floor = 2 × forced
//!    write p50 + 2 × round trip p50.
//! 2. Four nodes (`node::driver::run::<TwoPc>`, node 1 coordinating, three participants)
//!    in this process on 127.0.0.1, each on its own thread and runtime with its own data
//!    directory. Accounts are preloaded by committed transactions of `Mop::Write`s; then
//!    one client runs sequential transfers (two `Mop::Add`s on two shards) for latency, and
//!    1, 4, 16, 64 clients (one connection each, disjoint accounts, so no lock conflicts)
//!    run transfers for a fixed time for throughput. A second sequential run that idles
//!    between transactions shows what the previous transaction's off-path writes (the
//!    participants' decision records, the coordinator's `end`) cost the next one. Finally every shard's state is read
//!    back and the balances must sum to what was preloaded.
//! 3. A plain table on stdout and a JSON report (`target/twopc-commit.json` by default).
//!
//! Options: `--txns N` (2000), `--warmup-txns N` (200), `--clients 1,4,16,64`, `--secs S`
//! (5), `--warmup-secs S` (1), `--fsync-samples N` (300), `--rtt-samples N` (2000),
//! `--gap-us N` (1000; the idle time between transactions of a second, diagnostic
//! sequential run, 0 to skip it), `--dir DIR` (the nodes' data and the probes go in a temp directory made in it; by default
//! in the target directory's `tmp`), `--out FILE` (`target/twopc-commit.json`). Relative
//! paths are taken from the workspace root (cargo runs benches in the package directory).

mod cluster;
mod facts;
mod floor;
mod stats;

use cluster::{Client, Cluster};
use facts::Machine;
use floor::Fsync;
use serde::Serialize;
use stats::{ms, Dist};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use twopc::proto::{AbortCause, Key, Mop, Request, Response, Value};
use twopc::TwoPcConfig;

const COMMAND: &str = "cargo bench -p faultline-twopc --bench commit";
/// Every single await (a connection, a request, a node stopping) fails the bench after
/// this long instead of hanging.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);
const NODES: usize = 4;
/// Each account's preloaded balance. Transfers alternate direction per client, so
/// balances stay within one of it and never go below zero.
const BALANCE: Value = 1_000;
/// How long the preload may retry while peer links come up.
const PRELOAD_DEADLINE: Duration = Duration::from_secs(30);
/// The account pair index of the latency client (throughput clients use 0..C).
const LATENCY_PAIR: usize = 1_000;

#[derive(Clone, Debug, Serialize)]
struct Args {
    txns: usize,
    warmup_txns: usize,
    clients: Vec<usize>,
    secs: f64,
    warmup_secs: f64,
    fsync_samples: usize,
    rtt_samples: usize,
    /// The diagnostic sequential run's idle time between transactions; 0 skips it.
    gap_us: u64,
    dir: Option<PathBuf>,
    out: Option<PathBuf>,
}

const USAGE: &str = "usage: cargo bench -p faultline-twopc --bench commit -- [--txns N] \
[--warmup-txns N] [--clients 1,4,16,64] [--secs S] [--warmup-secs S] [--fsync-samples N] \
[--rtt-samples N] [--gap-us N] [--dir DIR] [--out FILE]";

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        txns: 2000,
        warmup_txns: 200,
        clients: vec![1, 4, 16, 64],
        secs: 5.0,
        warmup_secs: 1.0,
        fsync_samples: 300,
        rtt_samples: 2000,
        gap_us: 1000,
        dir: None,
        out: None,
    };
    let mut it = argv.iter().skip(1);
    while let Some(arg) = it.next() {
        // `cargo bench` passes `--bench` to harness-less targets.
        if arg == "--bench" {
            continue;
        }
        if arg == "--help" || arg == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let num = |v: String| {
            v.parse::<usize>()
                .map_err(|e| format!("{name} {v:?}: {e}\n{USAGE}"))
        };
        let secs = |v: String| match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
            _ => Err(format!("{name} {v:?}: not a number of seconds\n{USAGE}")),
        };
        match name {
            "--txns" => a.txns = num(value()?)?,
            "--warmup-txns" => a.warmup_txns = num(value()?)?,
            "--clients" => {
                a.clients = value()?
                    .split(',')
                    .map(|c| num(c.trim().to_string()))
                    .collect::<Result<_, _>>()?
            }
            "--secs" => a.secs = secs(value()?)?,
            "--warmup-secs" => a.warmup_secs = secs(value()?)?,
            "--fsync-samples" => a.fsync_samples = num(value()?)?,
            "--rtt-samples" => a.rtt_samples = num(value()?)?,
            "--gap-us" => a.gap_us = num(value()?)? as u64,
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "--out" => a.out = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.txns == 0 || a.fsync_samples == 0 || a.rtt_samples == 0 || a.secs <= 0.0 {
        return Err(format!(
            "--txns, --fsync-samples, --rtt-samples and --secs must be positive\n{USAGE}"
        ));
    }
    if a.clients.is_empty() || a.clients.iter().any(|&c| c == 0 || c > LATENCY_PAIR) {
        return Err(format!(
            "--clients: 1 to {LATENCY_PAIR} clients per run\n{USAGE}"
        ));
    }
    Ok(a)
}

#[derive(Serialize)]
struct Floor {
    definition: &'static str,
    /// The forced write figure used: `storage::Store` append, p50.
    forced_write_p50_us: f64,
    rtt_p50_us: f64,
    floor_us: f64,
    /// The same with raw write+fdatasync p50 in place of the store's.
    floor_raw_fdatasync_us: f64,
}

#[derive(Serialize)]
struct Latency {
    /// Idle time between one transaction's response and the next request.
    gap_us: u64,
    transactions: usize,
    warmup_transactions: usize,
    committed: usize,
    aborted: usize,
    refused: usize,
    first_abort: Option<String>,
    first_refusal: Option<String>,
    wall_secs: f64,
    committed_per_sec: f64,
    /// As in `Throughput`, over the measured transactions.
    process_cpu_percent: f64,
    machine_busy_percent: f64,
    /// Over committed transactions only.
    latency: Option<Dist>,
    p50_over_floor: Option<f64>,
    p99_over_floor: Option<f64>,
    goal: &'static str,
    goal_met: Option<bool>,
}

#[derive(Serialize)]
struct Throughput {
    clients: usize,
    measured_secs: f64,
    /// Committed transactions that began and ended inside the measured window.
    committed: usize,
    committed_per_sec: f64,
    latency: Option<Dist>,
    aborted: usize,
    refused: usize,
    first_abort: Option<String>,
    first_refusal: Option<String>,
    /// This process's CPU time (all nodes, their disk threads, the clients) over the
    /// window, in percent of one core.
    process_cpu_percent: f64,
    /// The whole machine's busy share over the window, in percent of all cores: this
    /// process and whatever else ran.
    machine_busy_percent: f64,
    /// The data device's completed writes and cache flushes per second over the window,
    /// from `/proc/diskstats`: the whole device, other work included.
    device_writes_per_sec: Option<f64>,
    device_flushes_per_sec: Option<f64>,
    committed_per_device_flush: Option<f64>,
}

#[derive(Serialize)]
struct BankCheck {
    accounts: usize,
    expected_total: i64,
    total: i64,
    ok: bool,
    /// Committed transactions each participant lists as applied (preload included).
    applied_per_participant: Vec<(machine::NodeId, usize)>,
    preload_transactions: usize,
    preload_retries: usize,
}

#[derive(Serialize)]
struct Report {
    command: &'static str,
    argv: Vec<String>,
    args: Args,
    machine: Machine,
    nodes: usize,
    participants: usize,
    record_bytes: usize,
    config: String,
    fsync: Fsync,
    fsync_after_run: Option<Fsync>,
    rtt: Dist,
    floor: Floor,
    latency: Latency,
    /// The same with `gap_us` idle between transactions: a diagnostic, not the headline.
    latency_with_gap: Option<Latency>,
    throughput: Vec<Throughput>,
    bank_check: BankCheck,
    load_average_at_end: String,
    /// Conditions that make the figures unreliable (other work on the CPU or the disk
    /// during the run, a floor that moved); empty when none was seen.
    warnings: Vec<String>,
    notes: Vec<String>,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match run(argv, args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("twopc commit bench FAILED: {e}");
            std::process::exit(1);
        }
    }
}

fn target_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    // target/release/deps/commit-<hash> -> target
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not under a target directory", exe.display()))
}

/// `path` as given if absolute, else under the workspace root.
fn from_workspace(path: &Path) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn run(argv: Vec<String>, args: Args) -> Result<(), String> {
    let target = target_dir()?;
    let parent = match &args.dir {
        Some(d) => from_workspace(d),
        None => target.join("tmp"),
    };
    let out = match &args.out {
        Some(o) => from_workspace(o),
        None => target.join("twopc-commit.json"),
    };
    // Fail now, not after the run, if the report cannot be written.
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .map_err(|e| format!("opening {} for the report: {e}", out.display()))?;
    std::fs::create_dir_all(&parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let work = tempfile::Builder::new()
        .prefix("twopc-commit-")
        .tempdir_in(&parent)
        .map_err(|e| format!("a temp directory in {}: {e}", parent.display()))?;
    let machine = facts::machine(work.path());
    let block = facts::block_name(&machine.filesystem.device);
    let ticks_per_sec = facts::clock_ticks();
    let fs = &machine.filesystem;
    eprintln!(
        "data in {} ({} {} on {}, write cache: {})",
        fs.dir, fs.fs_type, fs.mount_options, fs.device, fs.write_cache
    );

    eprintln!(
        "measuring forced writes ({} samples each)...",
        args.fsync_samples
    );
    let fsync = floor::fsync(&work.path().join("fsync"), args.fsync_samples)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("client runtime: {e}"))?;
    eprintln!(
        "measuring loopback round trips ({} samples)...",
        args.rtt_samples
    );
    let rtt = rt.block_on(floor::rtt(args.rtt_samples))?;

    let f = fsync.store_append.p50_us;
    let r = rtt.p50_us;
    let floor = Floor {
        definition: "2 × forced write p50 (storage::Store append) + 2 × loopback RTT p50",
        forced_write_p50_us: f,
        rtt_p50_us: r,
        floor_us: 2.0 * f + 2.0 * r,
        floor_raw_fdatasync_us: 2.0 * fsync.raw_append.p50_us + 2.0 * r,
    };

    let config = TwoPcConfig::default();
    let cluster = Cluster::start(&work.path().join("nodes"), NODES, &config)?;
    let outcome = rt.block_on(measure_cluster(
        &cluster,
        &args,
        &config,
        &floor,
        block.as_deref(),
        ticks_per_sec,
    ));
    // Stop the nodes whatever happened, then report the first failure.
    let stopped = cluster.shutdown();
    let (latency, latency_with_gap, throughput, bank_check) = outcome?;
    stopped?;

    eprintln!("measuring forced writes again, after the run...");
    let fsync_after_run = floor::fsync(&work.path().join("fsync-after"), args.fsync_samples)?;

    let mut report = Report {
        command: COMMAND,
        argv,
        notes: notes(&config, &bank_check),
        args: args.clone(),
        machine,
        nodes: NODES,
        participants: NODES - 1,
        record_bytes: floor::RECORD_BYTES,
        config: format!("{config:?}"),
        fsync,
        fsync_after_run: Some(fsync_after_run),
        rtt,
        floor,
        latency,
        latency_with_gap,
        throughput,
        bank_check,
        load_average_at_end: facts::load_average(),
        warnings: Vec::new(),
    };
    report.warnings = warnings(&report);
    println!("{}", table(&report));
    let out = out.canonicalize().unwrap_or(out);
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&out, json + "\n").map_err(|e| format!("writing {}: {e}", out.display()))?;
    println!("JSON report: {}", out.display());
    if !report.bank_check.ok {
        return Err(format!(
            "the balances sum to {}, not the {} preloaded",
            report.bank_check.total, report.bank_check.expected_total
        ));
    }
    Ok(())
}

/// A client's two accounts, on two different shards (`key % participants`), disjoint from
/// every other pair; pairs rotate over the shard pairs so load spreads evenly.
fn pair(i: usize, participants: usize) -> (Key, Key) {
    let p = participants as u64;
    let i = i as u64;
    (2 * p * i + i % p, 2 * p * i + p + (i + 1) % p)
}

/// A transfer of one unit, `a` to `b` when `forward`, else back.
fn transfer((a, b): (Key, Key), forward: bool) -> Request {
    let (from, to) = if forward { (a, b) } else { (b, a) };
    Request::Txn {
        ops: vec![
            Mop::Add {
                key: from,
                delta: -1,
            },
            Mop::Add { key: to, delta: 1 },
        ],
    }
}

fn cause(c: &AbortCause) -> String {
    match c {
        AbortCause::VotedNo { node, why } => format!("n{node} voted no: {why}"),
        AbortCause::VoteTimeout => "vote timeout".into(),
    }
}

type Measured = (Latency, Option<Latency>, Vec<Throughput>, BankCheck);

async fn measure_cluster(
    cluster: &Cluster,
    args: &Args,
    config: &TwoPcConfig,
    floor: &Floor,
    block: Option<&str>,
    ticks_per_sec: u64,
) -> Result<Measured, String> {
    let participants = cluster.participants();
    let coordinator = cluster.client_addr(1);
    let max_clients = args.clients.iter().copied().max().unwrap_or(1);
    let mut keys: Vec<Key> = Vec::new();
    for i in (0..max_clients).chain([LATENCY_PAIR]) {
        let (a, b) = pair(i, participants.len());
        keys.extend([a, b]);
    }

    eprintln!("preloading {} accounts...", keys.len());
    let mut client = Client::connect(coordinator).await?;
    let (preload_transactions, preload_retries) =
        preload(&mut client, &keys, config.max_ops_per_txn).await?;
    cluster.check_alive()?;

    eprintln!(
        "sequential transfers: {} warm-up, {} measured...",
        args.warmup_txns, args.txns
    );
    let n = participants.len();
    let latency = sequential(&mut client, args, floor, n, ticks_per_sec, Duration::ZERO).await?;
    cluster.check_alive()?;
    let latency_with_gap = if args.gap_us > 0 {
        eprintln!(
            "sequential transfers with {} µs idle between them (diagnostic)...",
            args.gap_us
        );
        let gap = Duration::from_micros(args.gap_us);
        let l = sequential(&mut client, args, floor, n, ticks_per_sec, gap).await?;
        cluster.check_alive()?;
        Some(l)
    } else {
        None
    };
    drop(client);
    cluster.check_alive()?;

    let mut throughput = Vec::new();
    for &c in &args.clients {
        eprintln!(
            "{c} concurrent clients: {} s warm-up, {} s measured...",
            args.warmup_secs, args.secs
        );
        let row = concurrent(
            coordinator,
            c,
            participants.len(),
            args,
            block,
            ticks_per_sec,
        )
        .await?;
        cluster.check_alive()?;
        throughput.push(row);
    }

    let mut total = 0i64;
    let mut applied_per_participant = Vec::new();
    for &p in &participants {
        let mut c = Client::connect(cluster.client_addr(p)).await?;
        match c.call(&Request::State).await? {
            Response::State { kv, applied, .. } => {
                total += kv.iter().map(|(_, v)| v).sum::<i64>();
                applied_per_participant.push((p, applied.len()));
            }
            other => return Err(format!("n{p} answered State with {other:?}")),
        }
    }
    let expected_total = keys.len() as i64 * BALANCE;
    let bank = BankCheck {
        accounts: keys.len(),
        expected_total,
        total,
        ok: total == expected_total,
        applied_per_participant,
        preload_transactions,
        preload_retries,
    };
    Ok((latency, latency_with_gap, throughput, bank))
}

/// Writes `BALANCE` to every key in committed transactions of at most `max_ops` writes,
/// retrying an aborted or refused one (peer links may still be coming up).
async fn preload(
    client: &mut Client,
    keys: &[Key],
    max_ops: usize,
) -> Result<(usize, usize), String> {
    let deadline = Instant::now() + PRELOAD_DEADLINE;
    let (mut txns, mut retries) = (0, 0);
    for chunk in keys.chunks(max_ops.max(1)) {
        let req = Request::Txn {
            ops: chunk
                .iter()
                .map(|&key| Mop::Write {
                    key,
                    value: BALANCE,
                })
                .collect(),
        };
        loop {
            let last = match client.call(&req).await? {
                Response::Committed { .. } => break,
                Response::Aborted { cause: c, .. } => cause(&c),
                Response::Refused { why } => why,
                other => return Err(format!("the preload got {other:?}")),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "the preload did not commit within {PRELOAD_DEADLINE:?}; last: {last}"
                ));
            }
            retries += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        txns += 1;
    }
    Ok((txns, retries))
}

async fn sequential(
    client: &mut Client,
    args: &Args,
    floor: &Floor,
    participants: usize,
    ticks_per_sec: u64,
    gap: Duration,
) -> Result<Latency, String> {
    let accounts = pair(LATENCY_PAIR, participants);
    let mut forward = true;
    let mut lat = Vec::with_capacity(args.txns);
    let (mut aborted, mut refused) = (0, 0);
    let (mut first_abort, mut first_refusal) = (None, None);
    let mut began_all = Instant::now();
    let mut c0 = facts::counters(None);
    for i in 0..args.warmup_txns + args.txns {
        let measured = i >= args.warmup_txns;
        if i == args.warmup_txns {
            c0 = facts::counters(None);
            began_all = Instant::now();
        }
        if !gap.is_zero() && i > 0 {
            tokio::time::sleep(gap).await;
        }
        let req = transfer(accounts, forward);
        let began = Instant::now();
        let resp = client.call(&req).await?;
        let took = began.elapsed();
        match resp {
            Response::Committed { .. } => {
                forward = !forward;
                if measured {
                    lat.push(took);
                }
            }
            Response::Aborted { cause: c, .. } if measured => {
                aborted += 1;
                first_abort.get_or_insert_with(|| cause(&c));
            }
            Response::Refused { why } if measured => {
                refused += 1;
                first_refusal.get_or_insert(why);
            }
            Response::Aborted { .. } | Response::Refused { .. } => {}
            other => return Err(format!("a transfer got {other:?}")),
        }
    }
    let wall = began_all.elapsed().as_secs_f64();
    let (own_cpu, busy) = facts::cpu_use(c0, facts::counters(None), ticks_per_sec, wall);
    let dist = Dist::of(&lat);
    let over = |v: Option<f64>, by: f64| v.map(|v| v / by);
    let p50 = dist.as_ref().map(|d| d.p50_us);
    let p99 = dist.as_ref().map(|d| d.p99_us);
    Ok(Latency {
        gap_us: gap.as_micros() as u64,
        transactions: args.txns,
        warmup_transactions: args.warmup_txns,
        committed: lat.len(),
        aborted,
        refused,
        first_abort,
        first_refusal,
        wall_secs: wall,
        committed_per_sec: lat.len() as f64 / wall,
        process_cpu_percent: own_cpu,
        machine_busy_percent: busy,
        p50_over_floor: over(p50, floor.floor_us),
        p99_over_floor: over(p99, floor.floor_us),
        goal: "p50 within 1.5 × floor",
        goal_met: p50.map(|p| p <= 1.5 * floor.floor_us),
        latency: dist,
    })
}

#[derive(Default)]
struct ClientResult {
    lat: Vec<Duration>,
    aborted: usize,
    refused: usize,
    first_abort: Option<String>,
    first_refusal: Option<String>,
}

async fn concurrent(
    coordinator: std::net::SocketAddr,
    clients: usize,
    participants: usize,
    args: &Args,
    block: Option<&str>,
    ticks_per_sec: u64,
) -> Result<Throughput, String> {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Client::connect(coordinator).await?);
    }
    let warmup = Duration::from_secs_f64(args.warmup_secs);
    let measure = Duration::from_secs_f64(args.secs);
    let from = tokio::time::Instant::now() + warmup;
    let end = from + measure;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut client) in conns.into_iter().enumerate() {
        let accounts = pair(i, participants);
        tasks.spawn(async move {
            let mut out = ClientResult::default();
            let mut forward = true;
            loop {
                let began = tokio::time::Instant::now();
                if began >= end {
                    return Ok::<_, String>(out);
                }
                let resp = client
                    .call(&transfer(accounts, forward))
                    .await
                    .map_err(|e| format!("client {i}: {e}"))?;
                let done = tokio::time::Instant::now();
                let counted = began >= from && done <= end;
                match resp {
                    Response::Committed { .. } => {
                        forward = !forward;
                        if counted {
                            out.lat.push(done - began);
                        }
                    }
                    Response::Aborted { cause: c, .. } => {
                        if counted {
                            out.aborted += 1;
                            out.first_abort.get_or_insert_with(|| cause(&c));
                        }
                    }
                    Response::Refused { why } => {
                        if counted {
                            out.refused += 1;
                            out.first_refusal.get_or_insert(why);
                        }
                    }
                    other => return Err(format!("client {i}: a transfer got {other:?}")),
                }
            }
        });
    }
    tokio::time::sleep_until(from).await;
    let c0 = facts::counters(block);
    let t0 = Instant::now();
    tokio::time::sleep_until(end).await;
    let c1 = facts::counters(block);
    let window = t0.elapsed().as_secs_f64();
    let mut all = ClientResult::default();
    let joined = tokio::time::timeout(STEP_TIMEOUT * 2, async {
        while let Some(r) = tasks.join_next().await {
            let r = r.map_err(|e| format!("a client task: {e}"))??;
            all.lat.extend(r.lat);
            all.aborted += r.aborted;
            all.refused += r.refused;
            all.first_abort = all.first_abort.take().or(r.first_abort);
            all.first_refusal = all.first_refusal.take().or(r.first_refusal);
        }
        Ok::<_, String>(())
    })
    .await;
    match joined {
        Ok(r) => r?,
        Err(_) => return Err(format!("{clients} clients did not finish after the window")),
    }
    let rate = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / window),
        _ => None,
    };
    let (own_cpu, busy) = facts::cpu_use(c0, c1, ticks_per_sec, window);
    let committed = all.lat.len();
    let committed_per_sec = committed as f64 / measure.as_secs_f64();
    let flushes = rate(c0.dev_flushes, c1.dev_flushes);
    Ok(Throughput {
        clients,
        measured_secs: measure.as_secs_f64(),
        committed,
        committed_per_sec,
        latency: Dist::of(&all.lat),
        aborted: all.aborted,
        refused: all.refused,
        first_abort: all.first_abort,
        first_refusal: all.first_refusal,
        process_cpu_percent: own_cpu,
        machine_busy_percent: busy,
        device_writes_per_sec: rate(c0.dev_writes, c1.dev_writes),
        device_flushes_per_sec: flushes,
        committed_per_device_flush: flushes.filter(|f| *f > 0.0).map(|f| committed_per_sec / f),
    })
}

fn notes(config: &TwoPcConfig, bank: &BankCheck) -> Vec<String> {
    vec![
        "Floor, as issue 6 states it: two forced log writes and two message round trips, \
         2 × forced-write p50 + 2 × loopback RTT p50, both measured here before the nodes \
         start. The forced write is storage::Store::write of one 100-byte Append (the node's \
         own primitive); the raw write+fdatasync figure is reported beside it."
            .into(),
        "On the client's path: client -> coordinator, VOTE_REQ -> each participant forces \
         `yes` (the participants in parallel) -> vote -> the coordinator forces `commit` -> \
         reply. The floor's two forced writes are `yes` and `commit`, its two round trips \
         client<->coordinator and VOTE_REQ<->vote. A coordinator that forced `start` before \
         sending VOTE_REQ would add a third forced write in sequence; the one benchmarked is \
         whatever systems/twopc/src held when this binary was built (see \
         machine.working_tree_changes). Participants' decision records and the coordinator's \
         `end` are off the client's path but share the disks."
            .into(),
        "Client-observed latency: from writing the request frame to reading the response \
         frame, on the client's connection to node 1."
            .into(),
        format!(
            "Nodes run in this process: each node a tokio current-thread runtime on its own \
             thread plus the driver's disk thread; the clients share one current-thread \
             runtime on the main thread. All of it shares the machine's {} cores with \
             whatever else runs (load averages in the report). All four data directories \
             are on one filesystem, so concurrent fsyncs of different nodes share one \
             journal and one device.",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        format!(
            "Default TwoPcConfig: every node checkpoints every {} ms (a blob write and a log \
             prefix drop, holding inputs until durable), vote timeout {} ms; the WAL keeps \
             {} write in flight and batches what is appended meanwhile; the event log is off \
             (events_file: None).",
            config.checkpoint_interval_ms,
            config.vote_timeout_ms,
            twopc::wal::MAX_IN_FLIGHT
        ),
        format!(
            "Accounts preloaded by committed transactions of Mop::Write ({} of them, at most \
             max_ops_per_txn = {} operations each; {} retries while peer links came up). \
             Throughput clients each own two accounts on different shards and alternate \
             the transfer's direction, so no lock conflicts and no overdrafts by design; \
             aborts and refusals are counted, not hidden.",
            bank.preload_transactions, config.max_ops_per_txn, bank.preload_retries
        ),
        "Device writes and flushes per second come from /proc/diskstats for the data \
         device: the whole device, including other work on the host. CPU %: this process \
         (nodes, disk threads, clients) in percent of one core; busy %: the whole machine \
         (/proc/stat) in percent of all cores, other work included."
            .into(),
    ]
}

fn x(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}×"))
}

fn dist_cells(d: &Option<Dist>) -> String {
    match d {
        Some(d) => format!(
            "{:>9} {:>9} {:>9} {:>9}",
            ms(d.p50_us),
            ms(d.p99_us),
            ms(d.p999_us),
            ms(d.max_us)
        ),
        None => format!("{:>9} {:>9} {:>9} {:>9}", "-", "-", "-", "-"),
    }
}

/// The share of the machine's CPU outside this process beyond which a phase is flagged, in
/// percent. It includes kernel threads working for the nodes (ext4 journal commits,
/// loopback softirqs), which a quiet run put at 8 to 30%, so only more points at other work.
const MAX_OTHER_WORK_PERCENT: f64 = 40.0;
/// A forced-write p50 that moved by more than this factor between the measurements before
/// and after the run, or a p99 this many times its p50, flags the floor.
const MAX_FSYNC_DRIFT: f64 = 1.5;
const MAX_FSYNC_SPREAD: f64 = 10.0;

fn warnings(r: &Report) -> Vec<String> {
    let mut w = Vec::new();
    let cores = r.machine.nproc.max(1) as f64;
    let mut phases: Vec<(String, f64, f64)> = Vec::new();
    for l in std::iter::once(&r.latency).chain(&r.latency_with_gap) {
        phases.push((
            format!("the sequential run with {} µs gaps", l.gap_us),
            l.machine_busy_percent,
            l.process_cpu_percent,
        ));
    }
    for t in &r.throughput {
        phases.push((
            format!("the {}-client run", t.clients),
            t.machine_busy_percent,
            t.process_cpu_percent,
        ));
    }
    for (phase, busy, own) in phases {
        let other = busy - own / cores;
        if other > MAX_OTHER_WORK_PERCENT {
            w.push(format!(
                "about {other:.0}% of the machine's CPU went outside this process during \
                 {phase} (machine {busy:.0}% busy, this process {:.0}% of it): other work \
                 competed with the nodes",
                own / cores
            ));
        }
    }
    let before = &r.fsync.store_append;
    if let Some(after) = r.fsync_after_run.as_ref().map(|a| &a.store_append) {
        let drift = after.p50_us / before.p50_us;
        if !(1.0 / MAX_FSYNC_DRIFT..=MAX_FSYNC_DRIFT).contains(&drift) {
            w.push(format!(
                "the forced-write p50 moved from {} ms before the run to {} ms after it: \
                 the floor is not stable, so the multiples of it are not reliable",
                ms(before.p50_us),
                ms(after.p50_us)
            ));
        }
    }
    for (name, d) in [
        ("storage::Store", &r.fsync.store_append),
        ("raw write+fdatasync", &r.fsync.raw_append),
    ] {
        if d.p99_us > MAX_FSYNC_SPREAD * d.p50_us {
            w.push(format!(
                "{name} forced writes were erratic before the run (p99 {} ms = {:.0}× p50 \
                 {} ms): the disk was likely busy with other work while the floor was measured",
                ms(d.p99_us),
                d.p99_us / d.p50_us,
                ms(d.p50_us)
            ));
        }
    }
    w
}

fn latency_lines(t: &mut String, label: &str, l: &Latency, unreliable: bool) {
    *t += &format!(
        "sequential commit latency ({label}), 1 client, {} transfers over 2 shards \
         ({} warm-up): {} committed, {} aborted, {} refused, {:.0} txns/s; CPU: this \
         process {:.0}% of one core, machine {:.0}% busy\n",
        l.transactions,
        l.warmup_transactions,
        l.committed,
        l.aborted,
        l.refused,
        l.committed_per_sec,
        l.process_cpu_percent,
        l.machine_busy_percent
    );
    *t += &format!(
        "{:>9} {:>9} {:>9} {:>9} | {:>9} {:>9}\n{} | {:>9} {:>9}\n",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "p50/floor",
        "p99/floor",
        dist_cells(&l.latency),
        x(l.p50_over_floor),
        x(l.p99_over_floor),
    );
    *t += &format!(
        "goal ({}): {}\n",
        l.goal,
        match (l.goal_met, unreliable) {
            (Some(true), false) => "met",
            (Some(false), false) => "NOT met",
            (Some(true), true) => "met as measured, but UNRELIABLE (see warnings)",
            (Some(false), true) => "NOT met as measured, and UNRELIABLE (see warnings)",
            (None, _) => "no committed transactions",
        }
    );
    if let Some(a) = &l.first_abort {
        *t += &format!("first abort: {a}\n");
    }
    if let Some(a) = &l.first_refusal {
        *t += &format!("first refusal: {a}\n");
    }
}

fn table(r: &Report) -> String {
    let m = &r.machine;
    let fs = &m.filesystem;
    let mut t = format!(
        "twopc commit: latency against the floor, throughput with group commit\n\
         command: {}  (argv: {})\n\
         machine: {} cores, {}, {}, Linux {}, load {} at start, {} at end; faultline {}\n\
         data:    {} on {} ({}, {}; df: {}); device write cache: {}, rotational: {}\n\
         cluster: {} nodes in-process (n1 coordinates, {} participants), loopback TCP\n\n",
        r.command,
        r.argv.join(" "),
        m.nproc,
        m.cpu_model,
        m.memory,
        m.kernel,
        m.load_average_at_start,
        r.load_average_at_end,
        m.faultline,
        fs.dir,
        fs.device,
        fs.fs_type,
        fs.mount_options,
        fs.df,
        fs.write_cache,
        fs.rotational,
        r.nodes,
        r.participants,
    );
    t += &format!(
        "{:<58} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
        "floor part (ms)", "samples", "p50", "p99", "p99.9", "max"
    );
    let mut row = |name: &str, d: &Dist| {
        t += &format!(
            "{:<58} {:>7} {}\n",
            name,
            d.samples,
            dist_cells(&Some(d.clone()))
        );
    };
    row(
        "forced write: storage::Store append 100 B",
        &r.fsync.store_append,
    );
    row(
        "forced write: raw write+fdatasync 100 B (file grows)",
        &r.fsync.raw_append,
    );
    row(
        "  context: pwrite+fdatasync 100 B, preallocated",
        &r.fsync.raw_overwrite,
    );
    row("loopback RTT: framed transfer request", &r.rtt);
    if let Some(a) = &r.fsync_after_run {
        row(
            "after the run: storage::Store append 100 B",
            &a.store_append,
        );
        row("after the run: raw write+fdatasync 100 B", &a.raw_append);
    }
    let fl = &r.floor;
    t += &format!(
        "\nfloor = 2 × {} + 2 × {} = {} ms   (with raw fdatasync: {} ms)\n\n",
        ms(fl.forced_write_p50_us),
        ms(fl.rtt_p50_us),
        ms(fl.floor_us),
        ms(fl.floor_raw_fdatasync_us),
    );
    let unreliable = !r.warnings.is_empty();
    if unreliable {
        t += &format!(
            "WARNING: {} condition(s) make these figures unreliable; listed at the end\n\n",
            r.warnings.len()
        );
    }
    latency_lines(&mut t, "back to back", &r.latency, unreliable);
    if let Some(l) = &r.latency_with_gap {
        t += "\n";
        latency_lines(
            &mut t,
            &format!("diagnostic, {} µs idle between transactions", l.gap_us),
            l,
            unreliable,
        );
    }
    t += &format!(
        "\nthroughput with group commit: {} s measured after {} s warm-up, one connection \
         per client, disjoint accounts\n\
         {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>10} {:>12}\n",
        r.args.secs,
        r.args.warmup_secs,
        "clients",
        "commits/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "aborted",
        "refused",
        "CPU %",
        "busy %",
        "dev fl/s",
        "commits/fl",
    );
    let opt = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
    for row in &r.throughput {
        t += &format!(
            "{:>7} {:>10.0} {} {:>8} {:>8} {:>7.0} {:>7.0} {:>10} {:>12}\n",
            row.clients,
            row.committed_per_sec,
            dist_cells(&row.latency),
            row.aborted,
            row.refused,
            row.process_cpu_percent,
            row.machine_busy_percent,
            opt(row.device_flushes_per_sec, 0),
            opt(row.committed_per_device_flush, 2),
        );
        if let Some(a) = &row.first_abort {
            t += &format!("        first abort: {a}\n");
        }
        if let Some(a) = &row.first_refusal {
            t += &format!("        first refusal: {a}\n");
        }
    }
    let b = &r.bank_check;
    t += &format!(
        "\nbank check: {} accounts sum to {} (expected {}): {}; applied per participant: {:?}\n\n",
        b.accounts,
        b.total,
        b.expected_total,
        if b.ok { "ok" } else { "MISMATCH" },
        b.applied_per_participant
    );
    for n in &r.notes {
        t += &format!("- {n}\n");
    }
    if !r.warnings.is_empty() {
        t += "\nWARNINGS: these figures were taken on a busy machine\n";
        for w in &r.warnings {
            t += &format!("- {w}\n");
        }
    }
    t
}
