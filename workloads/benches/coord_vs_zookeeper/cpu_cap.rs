//! A CPU budget per server (`BENCH_SERVER_CPU_PERCENT`): each server process in a cgroup
//! (v1 `cpu` controller) of its own with a CFS quota, as if each ran on a small host.
//!
//! On one 2-core machine the servers otherwise share the same cores with the load
//! generator, so adding a server adds no capacity and read scaling cannot show. With a
//! budget per server, a server's share of the machine is fixed, as a host's would be, and
//! spreading reads over more servers has more CPU to use.

use std::path::{Path, PathBuf};

const CPU_CGROUP: &str = "/sys/fs/cgroup/cpu";
const PERIOD_US: u64 = 100_000;

/// The groups made; dropping moves their processes back and removes them.
pub struct CpuCaps {
    groups: Vec<PathBuf>,
}

impl CpuCaps {
    /// Puts each of `pids` in a group `faultline-bench-<tag>-<i>` allowed `percent` of
    /// one core.
    pub fn apply(percent: u64, pids: &[u32], tag: &str) -> Result<CpuCaps, String> {
        let root = Path::new(CPU_CGROUP);
        if !root.join("cpu.cfs_quota_us").exists() {
            return Err(format!(
                "BENCH_SERVER_CPU_PERCENT needs the cgroup v1 cpu controller at {CPU_CGROUP} \
                 (with write access: run as root)"
            ));
        }
        let mut caps = CpuCaps { groups: Vec::new() };
        for (i, pid) in pids.iter().enumerate() {
            let group = root.join(format!("faultline-bench-{tag}-{}-{i}", std::process::id()));
            let write = |file: &str, text: String| {
                std::fs::write(group.join(file), text)
                    .map_err(|e| format!("{}: {e}", group.join(file).display()))
            };
            std::fs::create_dir_all(&group).map_err(|e| format!("{}: {e}", group.display()))?;
            caps.groups.push(group.clone());
            write("cpu.cfs_period_us", PERIOD_US.to_string())?;
            write("cpu.cfs_quota_us", (PERIOD_US * percent / 100).to_string())?;
            // cgroup.procs moves every thread of the process (a JVM has dozens).
            write("cgroup.procs", pid.to_string())?;
        }
        Ok(caps)
    }
}

impl Drop for CpuCaps {
    fn drop(&mut self) {
        let root = Path::new(CPU_CGROUP);
        for group in &self.groups {
            let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = std::fs::write(root.join("cgroup.procs"), pid);
            }
            let _ = std::fs::remove_dir(group);
        }
    }
}

/// The budget asked for, if any: a percentage of one core, 1 to 100.
pub fn from_env() -> Option<u64> {
    let v = std::env::var("BENCH_SERVER_CPU_PERCENT").ok()?;
    let percent: u64 = v
        .parse()
        .ok()
        .filter(|p| (1..=100).contains(p))
        .unwrap_or_else(|| panic!("BENCH_SERVER_CPU_PERCENT={v}: a percentage from 1 to 100"));
    Some(percent)
}
