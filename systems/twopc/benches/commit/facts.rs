//! What the machine is: cores, CPU, kernel, load, the data directory's filesystem and
//! device; and counters sampled around each run (this process's CPU time, the device's
//! writes and cache flushes).

use serde::Serialize;
use std::path::Path;
use std::process::Command;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub load_average_at_start: String,
    pub faultline: String,
    /// `git status --porcelain` when the bench ran: the code measured is the working tree
    /// as built, these changes included.
    pub working_tree_changes: Vec<String>,
    pub filesystem: Filesystem,
}

#[derive(Clone, Debug, Serialize)]
pub struct Filesystem {
    /// The directory the nodes' data and the fsync probes live in.
    pub dir: String,
    /// From `/proc/self/mounts`: the mount with the longest mount point above `dir`.
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    pub mount_options: String,
    /// `df -T` of `dir`, its data line.
    pub df: String,
    /// `/sys/block/<dev>/queue/write_cache` and `rotational`, if the device has them.
    pub write_cache: String,
    pub rotational: String,
}

pub fn machine(dir: &Path) -> Machine {
    let repo = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| command_line(Command::new("git").arg("-C").arg(repo).args(args));
    let dirty = git(&["status", "--porcelain"]);
    let changes = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["status", "--porcelain"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim_end().to_string())
                .collect()
        })
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: field("/proc/cpuinfo", "model name"),
        memory: field("/proc/meminfo", "MemTotal"),
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        load_average_at_start: load_average(),
        faultline: format!(
            "{} (git {}{})",
            env!("CARGO_PKG_VERSION"),
            git(&["rev-parse", "--short", "HEAD"]),
            if dirty.is_empty() || dirty == "?" {
                ""
            } else {
                ", uncommitted changes"
            }
        ),
        working_tree_changes: changes,
        filesystem: filesystem(dir),
    }
}

pub fn load_average() -> String {
    read_trim("/proc/loadavg")
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn field(path: &str, prefix: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or("?");
    line.split_once(':')
        .map_or(line, |(_, v)| v)
        .trim()
        .to_string()
}

/// The first line of a command's output, or why it did not run.
fn command_line(cmd: &mut Command) -> String {
    match cmd.output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Ok(o) => format!("? ({})", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => format!("? ({e})"),
    }
}

fn filesystem(dir: &Path) -> Filesystem {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let best = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() >= 4 && canon.starts_with(f[1])).then(|| (f[0], f[1], f[2], f[3]))
        })
        .max_by_key(|(_, mp, _, _)| mp.len());
    let (device, mount_point, fs_type, options) = best.unwrap_or(("?", "?", "?", "?"));
    let df = match Command::new("df").arg("-T").arg(&canon).output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .unwrap_or("?")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        Err(e) => format!("? ({e})"),
    };
    let queue = |what: &str| match block_name(device) {
        Some(b) => read_trim(&format!("/sys/block/{b}/queue/{what}")),
        None => "?".into(),
    };
    Filesystem {
        dir: canon.display().to_string(),
        device: device.into(),
        mount_point: mount_point.into(),
        fs_type: fs_type.into(),
        mount_options: options.into(),
        df,
        write_cache: queue("write_cache"),
        rotational: queue("rotational"),
    }
}

/// `vda` for `/dev/vda`; `None` for devices that are not block devices in `/sys/block`.
pub fn block_name(device: &str) -> Option<String> {
    let name = device.strip_prefix("/dev/")?;
    Path::new("/sys/block")
        .join(name)
        .exists()
        .then(|| name.to_string())
}

/// Counters read at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// This process's user + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// The device's completed writes and cache flushes (`/proc/diskstats`), if known.
    pub dev_writes: Option<u64>,
    pub dev_flushes: Option<u64>,
    /// The whole machine's CPU time, all and idle (idle + iowait), from `/proc/stat`.
    pub machine_ticks: u64,
    pub machine_idle_ticks: u64,
}

pub fn counters(block: Option<&str>) -> Counters {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime is field 14 and stime field 15; `f[0]` is field 3.
    let cpu_ticks = tick(11) + tick(12);
    let (mut dev_writes, mut dev_flushes) = (None, None);
    if let Some(block) = block {
        let stats = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
        if let Some(line) = stats
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(block))
        {
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(3)
                .filter_map(|x| x.parse().ok())
                .collect();
            dev_writes = v.get(4).copied();
            dev_flushes = v.get(15).copied();
        }
    }
    let all = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = all
        .lines()
        .find(|l| l.starts_with("cpu "))
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let machine_ticks = cpu.iter().take(8).sum();
    let machine_idle_ticks = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    Counters {
        cpu_ticks,
        dev_writes,
        dev_flushes,
        machine_ticks,
        machine_idle_ticks,
    }
}

/// Between two readings: this process's CPU in percent of one core, and the machine's
/// busy share in percent of all its cores.
pub fn cpu_use(a: Counters, b: Counters, ticks_per_sec: u64, secs: f64) -> (f64, f64) {
    let own = b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64;
    let own_pct = 100.0 * own / ticks_per_sec.max(1) as f64 / secs;
    let all = b.machine_ticks.saturating_sub(a.machine_ticks) as f64;
    let idle = b.machine_idle_ticks.saturating_sub(a.machine_idle_ticks) as f64;
    let busy_pct = if all > 0.0 {
        100.0 * (all - idle) / all
    } else {
        f64::NAN
    };
    (own_pct, busy_pct)
}

/// Clock ticks per second for `/proc/self/stat` (`getconf CLK_TCK`; 100 if unknown).
pub fn clock_ticks() -> u64 {
    command_line(Command::new("getconf").arg("CLK_TCK"))
        .parse()
        .unwrap_or(100)
}
