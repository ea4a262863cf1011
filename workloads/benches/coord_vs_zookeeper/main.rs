//! Faultline's coord against Apache ZooKeeper 3.8: the same write and read workloads on
//! three servers of each, on this host, with the same durability (both fsync their log
//! before acknowledging a write), one system at a time.
//!
//! ```text
//! cargo bench -p faultline-workloads --bench coord_vs_zookeeper
//! ```
//!
//! Settings come from the environment: `BENCH_SECS` (measured seconds per workload, 10),
//! `BENCH_WARMUP_SECS` (2), `BENCH_CLIENTS` (sessions, 12), `BENCH_WINDOW` (requests each
//! session keeps outstanding, 8). Prints a markdown table and writes it as JSON to
//! `target/bench/coord_vs_zookeeper.json`. `BENCH_SERVER_CPU_PERCENT=P` gives each server
//! process P % of one core of its own ([`cpu_cap`]), as separate hosts would, so that
//! the read rows can show scaling with servers.

mod coord;
mod cpu_cap;
mod stats;

use serde::Serialize;
use stats::{summarize, Samples, Summary};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workloads::zookeeper::ensemble::{self, Ensemble, EnsembleConfig};
use workloads::zookeeper::{self as zk, CreateMode};

const COMMAND: &str = "cargo bench -p faultline-workloads --bench coord_vs_zookeeper";
const KEYS: usize = 64;
const VALUE_BYTES: usize = 100;
const SERVERS: usize = 3;

#[derive(Clone, Copy)]
struct Plan {
    warmup: Duration,
    measure: Duration,
    clients: usize,
    window: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Write,
    Read,
}

/// One workload: what the clients do and on how many servers they are spread.
#[derive(Clone, Copy)]
struct Workload {
    name: &'static str,
    kind: Kind,
    servers: usize,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "write: setData 100 B",
        kind: Kind::Write,
        servers: 3,
    },
    Workload {
        name: "read: getData, clients on 1 server",
        kind: Kind::Read,
        servers: 1,
    },
    Workload {
        name: "read: getData, clients on 2 servers",
        kind: Kind::Read,
        servers: 2,
    },
    Workload {
        name: "read: getData, clients on 3 servers",
        kind: Kind::Read,
        servers: 3,
    },
];

/// A session of either system, as the load loop sees it.
trait Store: Send + Sync + 'static {
    fn write(&self, key: usize, value: &[u8]) -> impl Future<Output = Result<(), String>> + Send;
    fn read(&self, key: usize) -> impl Future<Output = Result<(), String>> + Send;
}

fn key_path(key: usize) -> String {
    format!("/bench/k{key:02}")
}

struct ZkStore(zk::Client);

impl Store for ZkStore {
    async fn write(&self, key: usize, value: &[u8]) -> Result<(), String> {
        let r = self.0.set_data(&key_path(key), value, -1).await;
        r.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn read(&self, key: usize) -> Result<(), String> {
        self.0
            .get_data(&key_path(key))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

struct CoordStore(coord::Conn);

impl Store for CoordStore {
    async fn write(&self, key: usize, value: &[u8]) -> Result<(), String> {
        let request = ::coord::api::Request::SetData(::coord::api::SetDataRequest {
            path: key_path(key),
            data: value.to_vec(),
            version: -1,
        });
        self.0.call(request).await.map(|_| ())
    }

    async fn read(&self, key: usize) -> Result<(), String> {
        let request = ::coord::api::Request::GetData {
            path: key_path(key),
            watch: false,
        };
        self.0.call(request).await.map(|_| ())
    }
}

/// Unmeasured load before the first workload, so that ZooKeeper's JIT has compiled its
/// hot paths (and coord's caches are as warm) before anything counts.
const PRIMING: Duration = Duration::from_secs(3);

async fn prime<S: Store>(stores: &[Arc<S>], plan: Plan) {
    let primer = Plan {
        warmup: PRIMING,
        measure: Duration::ZERO,
        ..plan
    };
    for w in [WORKLOADS[0], WORKLOADS[3]] {
        run_tasks(stores, w.kind, primer).await;
    }
}

/// Runs `workload` with every store keeping `window` requests outstanding.
async fn run<S: Store>(stores: &[Arc<S>], workload: Workload, plan: Plan) -> Summary {
    summarize(run_tasks(stores, workload.kind, plan).await, plan.measure)
}

async fn run_tasks<S: Store>(stores: &[Arc<S>], kind: Kind, plan: Plan) -> Vec<Samples> {
    let start = Instant::now();
    let (measure_from, end) = (start + plan.warmup, start + plan.warmup + plan.measure);
    let mut tasks = Vec::new();
    for (c, store) in stores.iter().enumerate() {
        for w in 0..plan.window {
            let store = store.clone();
            let seed = (c * plan.window + w) as u64 + 1;
            tasks.push(tokio::spawn(load(store, kind, seed, measure_from, end)));
        }
    }
    let mut parts = Vec::new();
    for t in tasks {
        parts.push(t.await.expect("a load task"));
    }
    parts
}

/// One outstanding request slot: issues the next request when the last one returns.
/// Counts what completes inside the measurement window.
async fn load<S: Store>(
    store: Arc<S>,
    kind: Kind,
    seed: u64,
    from: Instant,
    end: Instant,
) -> Samples {
    let mut samples = Samples::default();
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let value = vec![b'v'; VALUE_BYTES];
    loop {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let key = (rng % KEYS as u64) as usize;
        let began = Instant::now();
        if began >= end {
            return samples;
        }
        let outcome = match kind {
            Kind::Write => store.write(key, &value).await,
            Kind::Read => store.read(key).await,
        };
        let done = Instant::now();
        if began < from || done > end {
            continue;
        }
        match outcome {
            Ok(()) => samples.record(done - began),
            Err(e) => samples.error(e),
        }
    }
}

/// Stores for `clients` sessions spread round-robin over the first `servers` servers.
async fn zk_stores(addrs: &[String], clients: usize, servers: usize) -> Vec<Arc<ZkStore>> {
    let mut stores = Vec::new();
    for i in 0..clients {
        let mut config = zk::Config::new(&[addrs[i % servers].clone()]);
        config.session_timeout = Duration::from_secs(30);
        config.request_timeout = Duration::from_secs(10);
        let client = zk::Client::connect(config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stores.push(Arc::new(ZkStore(client)));
    }
    stores
}

async fn coord_stores(
    addrs: &[SocketAddr],
    clients: usize,
    servers: usize,
) -> Vec<Arc<CoordStore>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stores = Vec::new();
    for i in 0..clients {
        let conn = coord::Conn::open(addrs[i % servers], deadline)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stores.push(Arc::new(CoordStore(conn)));
    }
    stores
}

/// Each server on its own CPU budget, when `BENCH_SERVER_CPU_PERCENT` asks for one.
fn caps(pids: &[u32], tag: &str) -> Option<cpu_cap::CpuCaps> {
    let percent = cpu_cap::from_env()?;
    Some(cpu_cap::CpuCaps::apply(percent, pids, tag).unwrap_or_else(|e| panic!("{e}")))
}

#[derive(Serialize)]
struct Row {
    workload: &'static str,
    kind: Kind,
    servers_with_clients: usize,
    zookeeper: Summary,
    coord: Summary,
}

async fn bench_zookeeper(dir: &Path, plan: Plan) -> (Vec<Summary>, String) {
    let config = EnsembleConfig {
        tick_ms: 2000,
        jvm_opts: vec!["-Xmx1g".into()],
        log_level: "warn".into(),
        ..EnsembleConfig::for_tests(SERVERS, dir)
    };
    let ensemble = Ensemble::start(config).unwrap_or_else(|e| panic!("{e}"));
    let pids: Vec<u32> = ensemble.pids().into_iter().flatten().collect();
    let _caps = caps(&pids, "zookeeper");
    let addrs = ensemble.client_addrs();
    let setup = zk_stores(&addrs, 1, 1).await.remove(0);
    let value = vec![b'v'; VALUE_BYTES];
    let _ = setup.0.create("/bench", b"", CreateMode::Persistent).await;
    for k in 0..KEYS {
        let created = setup
            .0
            .create(&key_path(k), &value, CreateMode::Persistent)
            .await;
        created.unwrap_or_else(|e| panic!("{e}"));
    }
    let modes: Vec<String> = (0..SERVERS)
        .map(|i| ensemble.mode(i).unwrap_or_default())
        .collect();
    prime(&zk_stores(&addrs, plan.clients, SERVERS).await, plan).await;
    let mut out = Vec::new();
    for w in WORKLOADS {
        let stores = zk_stores(&addrs, plan.clients, w.servers).await;
        for s in &stores {
            s.0.sync("/bench").await.unwrap_or_else(|e| panic!("{e}"));
        }
        let summary = run(&stores, w, plan).await;
        eprintln!(
            "zookeeper  {:<40} {:>9.0} ops/s",
            w.name, summary.ops_per_sec
        );
        out.push(summary);
    }
    (
        out,
        format!("ZooKeeper servers 1..3 were {}", modes.join(", ")),
    )
}

async fn bench_coord(dir: &Path, plan: Plan) -> Vec<Summary> {
    let bin = coord::node_binary().unwrap_or_else(|e| panic!("{e}"));
    let cluster = coord::Cluster::start(&bin, dir, SERVERS).unwrap_or_else(|e| panic!("{e}"));
    let _caps = caps(&cluster.pids(), "coord");
    let setup = coord_stores(&cluster.clients, 1, 1).await.remove(0);
    let create = |path: String, data: Vec<u8>| {
        ::coord::api::Request::Create(::coord::api::CreateRequest {
            path,
            data,
            acl: ::coord::api::Acl::open(),
            flags: ::coord::api::CreateFlags::PERSISTENT,
        })
    };
    setup
        .0
        .call(create("/bench".into(), vec![]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for k in 0..KEYS {
        let made = setup
            .0
            .call(create(key_path(k), vec![b'v'; VALUE_BYTES]))
            .await;
        made.unwrap_or_else(|e| panic!("{e}"));
    }
    prime(
        &coord_stores(&cluster.clients, plan.clients, SERVERS).await,
        plan,
    )
    .await;
    let mut out = Vec::new();
    for w in WORKLOADS {
        let stores = coord_stores(&cluster.clients, plan.clients, w.servers).await;
        for s in &stores {
            let sync = ::coord::api::Request::Sync {
                path: "/bench".into(),
            };
            s.0.call(sync).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let summary = run(&stores, w, plan).await;
        eprintln!(
            "coord      {:<40} {:>9.0} ops/s",
            w.name, summary.ops_per_sec
        );
        out.push(summary);
    }
    out
}

#[derive(Serialize)]
struct Machine {
    cores: usize,
    cpu: String,
    memory: String,
    kernel: String,
    load_average_at_start: String,
    java: String,
    zookeeper: String,
    faultline: String,
    data_filesystem: String,
}

#[derive(Serialize)]
struct Report {
    command: &'static str,
    machine: Machine,
    measured_secs: u64,
    warmup_secs: u64,
    clients: usize,
    window_per_client: usize,
    keys: usize,
    value_bytes: usize,
    notes: Vec<String>,
    rows: Vec<Row>,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn first_line(path: &str, prefix: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or("?");
    line.split_once(':')
        .map_or(line, |(_, v)| v)
        .trim()
        .to_string()
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    match std::process::Command::new(cmd).args(args).output() {
        Ok(o) => {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("?")
                .trim()
                .to_string()
        }
        Err(e) => format!("unavailable: {e}"),
    }
}

/// The device both data directories live on, refusing to compare across filesystems.
fn same_filesystem(a: &Path, b: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let (da, db) = (
        std::fs::metadata(a).unwrap().dev(),
        std::fs::metadata(b).unwrap().dev(),
    );
    assert_eq!(
        da,
        db,
        "{} and {} are on different filesystems",
        a.display(),
        b.display()
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let root = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/"))
        .unwrap_or("?");
    format!(
        "device {da:#x} for both ({}); / is {}",
        a.parent().unwrap().display(),
        root
    )
}

fn machine(data: &Path) -> Machine {
    let git = |args: &[&str]| command_output("git", args);
    let repo = env!("CARGO_MANIFEST_DIR");
    let dirty = git(&["-C", repo, "status", "--porcelain"]);
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu: first_line("/proc/cpuinfo", "model name"),
        memory: first_line("/proc/meminfo", "MemTotal"),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .into(),
        load_average_at_start: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .into(),
        java: command_output("java", &["-version"]),
        zookeeper: ensemble::installed_version().unwrap_or_else(|| "?".into()),
        faultline: format!(
            "{} (git {}{})",
            env!("CARGO_PKG_VERSION"),
            git(&["-C", repo, "rev-parse", "--short", "HEAD"]),
            if dirty.is_empty() || dirty == "?" {
                ""
            } else {
                ", uncommitted changes"
            }
        ),
        data_filesystem: same_filesystem(&data.join("zookeeper"), &data.join("coord")),
    }
}

fn cell(s: &Summary) -> String {
    format!(
        "{:.0} | {:.2} | {:.2} | {:.2}",
        s.ops_per_sec, s.p50_ms, s.p99_ms, s.p999_ms
    )
}

fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let mut t = format!(
        "## coord vs Apache ZooKeeper {}, 3 servers each on one host\n\n\
         Command: `{}`\n\n\
         Machine: {} cores ({}), {}, Linux {}; load average at start {}; {}\n\
         Faultline {}; data on {}\n\
         {} s measured after {} s warm-up per workload; {} sessions, {} requests outstanding each; \
         {} znodes of {} B\n\n\
         | workload | ZooKeeper ops/s | p50 ms | p99 ms | p99.9 ms | coord ops/s | p50 ms | p99 ms | p99.9 ms |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        m.zookeeper, r.command, m.cores, m.cpu, m.memory, m.kernel, m.load_average_at_start,
        m.java, m.faultline, m.data_filesystem, r.measured_secs, r.warmup_secs, r.clients,
        r.window_per_client, r.keys, r.value_bytes
    );
    for row in &r.rows {
        t += &format!(
            "| {} | {} | {} |\n",
            row.workload,
            cell(&row.zookeeper),
            cell(&row.coord)
        );
    }
    t += "\n";
    for n in &r.notes {
        t += &format!("- {n}\n");
    }
    t
}

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // target/release/deps/<bench> -> target
    exe.ancestors().nth(3).expect("under target/").to_path_buf()
}

fn main() {
    ensemble::check_installed().unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan {
        warmup: Duration::from_secs(env_u64("BENCH_WARMUP_SECS", 2)),
        measure: Duration::from_secs(env_u64("BENCH_SECS", 10).max(1)),
        clients: env_u64("BENCH_CLIENTS", 12).clamp(1, 1000) as usize,
        window: env_u64("BENCH_WINDOW", 8).clamp(1, 256) as usize,
    };
    let out = target_dir().join("bench");
    let work = out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    for sub in ["zookeeper", "coord"] {
        std::fs::create_dir_all(work.join(sub)).expect("creating the data directories");
    }
    let machine = machine(&work);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (zk, zk_note) = rt.block_on(bench_zookeeper(&work.join("zookeeper"), plan));
    let co = rt.block_on(bench_coord(&work.join("coord"), plan));
    let rows: Vec<Row> = WORKLOADS
        .iter()
        .zip(zk.into_iter().zip(co))
        .map(|(w, (zookeeper, coord))| Row {
            workload: w.name,
            kind: w.kind,
            servers_with_clients: w.servers,
            zookeeper,
            coord,
        })
        .collect();
    let report = Report {
        command: COMMAND,
        measured_secs: plan.measure.as_secs(),
        warmup_secs: plan.warmup.as_secs(),
        clients: plan.clients,
        window_per_client: plan.window,
        keys: KEYS,
        value_bytes: VALUE_BYTES,
        notes: [notes(&machine, zk_note), error_notes(&rows)].concat(),
        machine,
        rows,
    };
    let table = markdown(&report);
    println!("{table}");
    let json = serde_json::to_string_pretty(&report).expect("the report serializes");
    let path = out.join("coord_vs_zookeeper.json");
    std::fs::write(&path, json).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("JSON: {}", path.display());
}

/// A note per workload and system that had failed requests, so no error hides in a rate.
fn error_notes(rows: &[Row]) -> Vec<String> {
    let mut notes = Vec::new();
    for r in rows {
        for (system, s) in [("ZooKeeper", &r.zookeeper), ("coord", &r.coord)] {
            if s.errors > 0 {
                let first = s.first_error.as_deref().unwrap_or("?");
                notes.push(format!(
                    "{system}, {}: {} failed requests (first: {first})",
                    r.workload, s.errors
                ));
            }
        }
    }
    notes
}

fn notes(m: &Machine, zk_note: String) -> Vec<String> {
    if let Some(p) = cpu_cap::from_env() {
        return vec![
            format!(
                "CPU budget per server: each server process (a JVM for ZooKeeper, a \
                 faultline-node for coord) runs in a cgroup of its own limited to {p} % of one \
                 core, as on small separate hosts; the load generator shares the rest of the \
                 {} cores. Read rows measure how reads scale when each server adds capacity.",
                m.cores
            ),
            "Durability: ZooKeeper forceSync=yes; coord fsyncs before acknowledging. Both \
             data directories on one filesystem."
                .into(),
            zk_note,
        ];
    }
    vec![
        format!(
            "Shared CPU: 3 server processes (JVMs for ZooKeeper, faultline-node for coord) and this \
             load generator share {} cores, and other work on the host may too (load above). \
             Throughput here is bounded by CPU, not by the protocols' parallelism.",
            m.cores
        ),
        "Read scaling: all servers share those cores, so adding servers adds no CPU; the \
         read rows show how each system spreads load, not the scaling of a real deployment."
            .into(),
        "Durability: ZooKeeper forceSync=yes (fsync of its transaction log before acking); \
         coord fsyncs its log before acknowledging. Both data directories on one filesystem."
            .into(),
        "One system runs at a time, each after 3 s of unmeasured writes then reads (JIT \
         warm-up); coord runs as 3 faultline-node processes (release build), \
         ZooKeeper as 3 QuorumPeerMain JVMs (-Xmx1g, tickTime 2000). Each session is pinned \
         to one server; ZooKeeper clients are this crate's Rust client, coord clients a \
         minimal pipelined connection in the bench."
            .into(),
        zk_note,
    ]
}
