//! The nodes' wall clocks as seen from the controller, for backends whose nodes are other
//! hosts (ssh): the run's event log merges lines stamped by each node's own clock, and hosts'
//! clocks differ by whatever NTP left them (or by seconds, on a host without it).
//!
//! The controller samples each host's clock over the backend ([`measure`]): it reads its own
//! clock, runs `date +%s%N` on the host, and reads its clock again. The host read its clock
//! somewhere in that round trip, so the midpoint estimates it and half the round trip bounds
//! the error; of several samples the one with the shortest round trip wins. Hosts are
//! sampled when the system is up and again when the run ends, and a node's time is mapped to
//! the controller's by interpolating between the two ([`HostClocks::to_controller`]), so a
//! clock that drifts during a long run is followed too.
//!
//! The samples are kept in the run directory ([`FILE`]) so `faultline analyze` merges the
//! same way. What the estimate cannot order (a message received within the error of its
//! send) the merge repairs from causality (`event_log`).

use crate::control::{Cmd, ControlError, Node, Remote};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The samples of a run, in its directory.
pub const FILE: &str = "host-clocks.json";
/// Round trips per estimate: the shortest of them is kept.
pub const SAMPLES_PER_ESTIMATE: usize = 5;
/// Bound on one sampling command: a host that does not answer in this time is not sampled.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Estimates kept per node: a run takes two; more would be a bug, not a longer run.
const MAX_ESTIMATES_PER_NODE: usize = 64;

/// One estimate of a node's clock: at controller time `at_ns`, the node's clock read
/// `at_ns + offset_ns`, give or take `rtt_ns / 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    pub at_ns: u64,
    pub offset_ns: i64,
    pub rtt_ns: u64,
}

/// Every node's estimates, by node name, each node's in time order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClocks {
    pub nodes: BTreeMap<String, Vec<Estimate>>,
}

/// Now on the controller's wall clock, in nanoseconds since the epoch.
pub fn controller_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The node's wall clock now, in nanoseconds since the epoch, as the node reads it.
pub fn node_now_ns(remote: &dyn Remote, node: &Node) -> Result<u64, ControlError> {
    let out = remote.exec(node, &Cmd::new("date +%s%N").timeout(SAMPLE_TIMEOUT))?;
    let text = out.stdout_text();
    let line = text.trim();
    match line.parse::<u64>() {
        Ok(ns) if out.success() && line.len() >= 10 => Ok(ns),
        _ => Err(ControlError::Unsupported {
            backend: "any",
            what: format!(
                "read the clock of {}: `date +%s%N` printed {line:?} (GNU coreutils' date is needed)",
                node.name
            ),
        }),
    }
}

/// Samples `node`'s clock [`SAMPLES_PER_ESTIMATE`] times and keeps the tightest.
pub fn measure(remote: &dyn Remote, node: &Node) -> Result<Estimate, ControlError> {
    let mut best: Option<Estimate> = None;
    for _ in 0..SAMPLES_PER_ESTIMATE {
        let before_ns = controller_now_ns();
        let started = Instant::now();
        let node_ns = node_now_ns(remote, node)?;
        let rtt_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let estimate = estimate(before_ns, rtt_ns, node_ns);
        if best.is_none_or(|b| estimate.rtt_ns < b.rtt_ns) {
            best = Some(estimate);
        }
    }
    Ok(best.expect("SAMPLES_PER_ESTIMATE > 0"))
}

/// The estimate from one round trip that began at controller time `before_ns`, took
/// `rtt_ns` (by the monotonic clock, so a step of the wall clock does not skew it), and in
/// which the node read `node_ns`.
fn estimate(before_ns: u64, rtt_ns: u64, node_ns: u64) -> Estimate {
    let at_ns = before_ns.saturating_add(rtt_ns / 2);
    let offset = i128::from(node_ns) - i128::from(at_ns);
    Estimate {
        at_ns,
        offset_ns: offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
        rtt_ns,
    }
}

impl HostClocks {
    /// Reads the run's samples; a run without them (its nodes share this host's clock)
    /// reads as none.
    pub fn load(dir: &Path) -> anyhow::Result<HostClocks> {
        let path = dir.join(FILE);
        if !path.is_file() {
            return Ok(HostClocks::default());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let clocks: HostClocks = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not host clock samples: {e}", path.display()))?;
        for (node, estimates) in &clocks.nodes {
            anyhow::ensure!(
                estimates.len() <= MAX_ESTIMATES_PER_NODE,
                "{}: {node} has more than {MAX_ESTIMATES_PER_NODE} estimates",
                path.display()
            );
            anyhow::ensure!(
                estimates.windows(2).all(|w| w[0].at_ns <= w[1].at_ns),
                "{}: {node}'s estimates are not in time order",
                path.display()
            );
        }
        Ok(clocks)
    }

    /// Writes the samples whole into the run directory (then renamed into place).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = dir.join(format!(".{FILE}.tmp"));
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&tmp, text + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(FILE))
            .map_err(|e| anyhow::anyhow!("cannot move {FILE} into place: {e}"))
    }

    /// Adds an estimate for `node`, keeping its estimates in time order.
    pub fn add(&mut self, node: &str, estimate: Estimate) {
        let list = self.nodes.entry(node.to_string()).or_default();
        if list.len() < MAX_ESTIMATES_PER_NODE {
            list.push(estimate);
            list.sort_by_key(|e| e.at_ns);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether `node`'s clock was sampled (its times need mapping).
    pub fn knows(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|e| !e.is_empty())
    }

    /// `node_ns`, read on `node`'s clock, as controller time: the offset is interpolated
    /// between the estimates around it (the nearest one outside them). A node never sampled
    /// shares the controller's clock.
    pub fn to_controller(&self, node: &str, node_ns: u64) -> u64 {
        let Some(estimates) = self.nodes.get(node).filter(|e| !e.is_empty()) else {
            return node_ns;
        };
        let offset = offset_at(estimates, node_ns);
        let t = i128::from(node_ns) - i128::from(offset);
        t.clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// The offset at node time `node_ns`, from estimates in time order (at least one).
fn offset_at(estimates: &[Estimate], node_ns: u64) -> i64 {
    let node_at = |e: &Estimate| i128::from(e.at_ns) + i128::from(e.offset_ns);
    let t = i128::from(node_ns);
    let after = estimates.iter().position(|e| node_at(e) > t);
    let (a, b) = match after {
        Some(0) => return estimates[0].offset_ns,
        None => return estimates[estimates.len() - 1].offset_ns,
        Some(i) => (&estimates[i - 1], &estimates[i]),
    };
    let (ta, tb) = (node_at(a), node_at(b));
    let (oa, ob) = (i128::from(a.offset_ns), i128::from(b.offset_ns));
    // ta <= t < tb, so the span is positive.
    let offset = oa + (ob - oa) * (t - ta) / (tb - ta);
    offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn an_estimate_puts_the_nodes_read_at_the_middle_of_the_round_trip() {
        // The node read 100 s + 31 ms; the round trip began at 100 s and took 2 ms.
        let e = estimate(100 * S, 2_000_000, 100 * S + 31_000_000);
        assert_eq!(e.at_ns, 100 * S + 1_000_000);
        assert_eq!(e.offset_ns, 30_000_000);
        assert_eq!(e.rtt_ns, 2_000_000);
        // A node behind the controller has a negative offset.
        assert_eq!(estimate(100 * S, 0, 80 * S).offset_ns, -20 * S as i64);
    }

    #[test]
    fn node_times_map_through_the_offset_interpolated_between_estimates() {
        let mut clocks = HostClocks::default();
        // n2 runs 30 s ahead at controller time 1000 s and 31 s ahead at 2000 s.
        clocks.add(
            "n2",
            Estimate {
                at_ns: 2000 * S,
                offset_ns: 31 * S as i64,
                rtt_ns: 1,
            },
        );
        clocks.add(
            "n2",
            Estimate {
                at_ns: 1000 * S,
                offset_ns: 30 * S as i64,
                rtt_ns: 1,
            },
        );
        assert_eq!(clocks.to_controller("n2", 1030 * S), 1000 * S);
        assert_eq!(clocks.to_controller("n2", 2031 * S), 2000 * S);
        // Halfway in node time, halfway in offset.
        assert_eq!(clocks.to_controller("n2", 1530 * S + S / 2), 1500 * S);
        // Outside the estimates: the nearest one's offset.
        assert_eq!(clocks.to_controller("n2", 530 * S), 500 * S);
        assert_eq!(clocks.to_controller("n2", 3031 * S), 3000 * S);
        // A node never sampled shares the controller's clock.
        assert_eq!(clocks.to_controller("n1", 1234), 1234);
        assert!(clocks.knows("n2") && !clocks.knows("n1"));
    }

    #[test]
    fn mapping_keeps_a_nodes_order() {
        let mut clocks = HostClocks::default();
        for (at, off) in [(10, 5_i64), (20, -5), (30, 7)] {
            clocks.add(
                "n1",
                Estimate {
                    at_ns: at * S,
                    offset_ns: off * S as i64,
                    rtt_ns: 1,
                },
            );
        }
        let mapped: Vec<u64> = (0..400)
            .map(|i| clocks.to_controller("n1", i * S / 10))
            .collect();
        assert!(mapped.windows(2).all(|w| w[0] <= w[1]), "{mapped:?}");
    }

    #[test]
    fn samples_survive_the_run_directory_and_bad_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("faultline-hostclock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(HostClocks::load(&dir).unwrap().is_empty());
        let mut clocks = HostClocks::default();
        clocks.add(
            "n3",
            Estimate {
                at_ns: 7,
                offset_ns: -3,
                rtt_ns: 2,
            },
        );
        clocks.save(&dir).unwrap();
        assert_eq!(HostClocks::load(&dir).unwrap(), clocks);
        std::fs::write(dir.join(FILE), "{\"nodes\": 3}").unwrap();
        let err = format!("{:#}", HostClocks::load(&dir).unwrap_err());
        assert!(
            err.contains(FILE) && err.contains("not host clock samples"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
