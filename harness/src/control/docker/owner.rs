//! Which process owns a cluster's containers and network, so that what a dead process left
//! behind (killed with SIGKILL, aborted: no Drop ran) is removed by the next cluster created on
//! the same host, keeping the count bounded.
//!
//! The owner is `host:pid:start` (start = the process's start time in clock ticks since boot),
//! so a recycled pid is not mistaken for the owner. Resources owned on another host (a shared
//! engine) are never touched: we cannot see whether their owner lives.

use super::cli;

/// Label on every container and network this backend creates.
pub(super) const OWNER_LABEL: &str = "io.faultline.owner";

/// This process, as written in the label.
pub(super) fn this_process() -> String {
    let pid = std::process::id();
    format!(
        "{}:{pid}:{}",
        hostname(),
        live_start_ticks(pid).unwrap_or(0)
    )
}

/// Removes containers, then networks, whose owner on this host is gone. Best effort: a
/// failure here must not stop a new cluster, and what is missed is retried next time.
pub(super) fn reap_orphans() {
    let label = format!("label={OWNER_LABEL}");
    let format = format!("{{{{.Names}}}}\t{{{{.Label \"{OWNER_LABEL}\"}}}}");
    if let Ok(list) = cli::run(&["ps", "-a", "--filter", &label, "--format", &format]) {
        let dead = orphans(&list);
        if !dead.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(dead.iter().map(String::as_str));
            let _ = cli::run(&args);
        }
    }
    let format = format.replace(".Names", ".Name");
    if let Ok(list) = cli::run(&["network", "ls", "--filter", &label, "--format", &format]) {
        for network in orphans(&list) {
            let _ = cli::run(&["network", "rm", &network]);
        }
    }
}

/// Names, from `name<TAB>owner` lines, whose owner is a dead process on this host.
fn orphans(list: &str) -> Vec<String> {
    let host = hostname();
    list.lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(_, owner)| is_dead_here(owner, &host))
        .map(|(name, _)| name.to_string())
        .collect()
}

fn is_dead_here(owner: &str, host: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(owner_host)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(start), Ok(pid)) = (start.parse::<u64>(), pid.parse::<u32>()) else {
        return false;
    };
    owner_host == host && live_start_ticks(pid) != Some(start)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The start time (field 22 of /proc/<pid>/stat, read after the command name, which may hold
/// spaces) of a live process; None for none, or a zombie: a killed owner lingers as one for a
/// moment, and will never drop its cluster.
fn live_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_owners_on_this_host_are_orphans() {
        let me = this_process();
        let host = hostname();
        let gone = format!("{host}:{}:1", std::process::id());
        let list =
            format!("alive\t{me}\nrecycled-pid\t{gone}\nelsewhere\tother-host:1:1\nunlabelled\t\n");
        assert_eq!(orphans(&list), vec!["recycled-pid".to_string()]);
    }
}
