//! Nemeses: the faults a test injects, when, and how each one is carried out.
//!
//! The [`schedule`] decides, from the seed alone, when each fault class starts and stops and
//! whom it targets; the [`exec`]utor carries the ops out through the DB lifecycle and the
//! backend's network, and reports what it really did (which nodes were killed, which links
//! were cut) in the op's completion. Every start and stop is a `nemesis` op in the history.

pub mod disk;
pub mod exec;
pub mod schedule;
pub mod script;

use std::fmt;

/// A family of faults that starts and stops on its own interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultClass {
    Partition,
    Kill,
    Pause,
    Packet,
    Clock,
    Disk,
}

impl FaultClass {
    pub const ALL: [FaultClass; 6] = [
        FaultClass::Partition,
        FaultClass::Kill,
        FaultClass::Pause,
        FaultClass::Packet,
        FaultClass::Clock,
        FaultClass::Disk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultClass::Partition => "partition",
            FaultClass::Kill => "kill",
            FaultClass::Pause => "pause",
            FaultClass::Packet => "packet",
            FaultClass::Clock => "clock",
            FaultClass::Disk => "disk",
        }
    }

    /// The nemesis ops' `f` for this class's start and stop.
    pub fn start_f(self) -> String {
        format!("start-{}", self.name())
    }

    pub fn stop_f(self) -> String {
        format!("stop-{}", self.name())
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses `--nemesis` lists like `partition,kill` (`none` for no faults).
pub fn parse_classes(list: &str) -> Result<Vec<FaultClass>, String> {
    let mut classes = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if word == "none" {
            continue;
        }
        let class = FaultClass::ALL
            .into_iter()
            .find(|c| c.name() == word)
            .ok_or_else(|| {
                let known: Vec<&str> = FaultClass::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown fault class {word:?}: expected some of {} (comma-separated), or none",
                    known.join(", ")
                )
            })?;
        if !classes.contains(&class) {
            classes.push(class);
        }
    }
    classes.sort();
    Ok(classes)
}

/// Whom a kill or pause hits, chosen per fault from the seed (Jepsen's node specs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Targets {
    One,
    Minority,
    Majority,
    All,
    Primaries,
    /// One node that does not lead when the fault starts: where a client of a follower
    /// loses its session while the service goes on (not among the defaults).
    Follower,
    /// The node the newest lock holder's session lives on, as the lock workloads' clients
    /// report it (`workloads::focus`); no node while nobody holds the lock (not among the
    /// defaults).
    Holder,
}

impl Targets {
    pub const ALL: [Targets; 5] = [
        Targets::One,
        Targets::Minority,
        Targets::Majority,
        Targets::All,
        Targets::Primaries,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Targets::One => "one",
            Targets::Minority => "minority",
            Targets::Majority => "majority",
            Targets::All => "all",
            Targets::Primaries => "primaries",
            Targets::Follower => "follower",
            Targets::Holder => "holder",
        }
    }

    /// The specs `--nemesis-targets` names (comma-separated), in its order; the error names
    /// the unknown one and the known ones.
    pub fn parse_list(list: &str) -> Result<Vec<Targets>, String> {
        let known = [
            Targets::ALL.as_slice(),
            &[Targets::Follower, Targets::Holder],
        ]
        .concat();
        let mut specs = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let spec = known.iter().find(|t| t.name() == name).ok_or_else(|| {
                let names: Vec<&str> = known.iter().map(|t| t.name()).collect();
                format!(
                    "unknown nemesis target {name:?}: known targets are {}",
                    names.join(", ")
                )
            })?;
            if !specs.contains(spec) {
                specs.push(*spec);
            }
        }
        if specs.is_empty() {
            return Err("--nemesis-targets names no target".into());
        }
        Ok(specs)
    }

    /// How many of `n` nodes a fixed-size spec hits; None for primaries, known only when
    /// the fault starts.
    pub fn count(self, n: usize) -> Option<usize> {
        match self {
            Targets::One => Some(1.min(n)),
            Targets::Minority => Some(n.saturating_sub(1) / 2),
            Targets::Majority => Some(n / 2 + 1),
            Targets::All => Some(n),
            Targets::Primaries | Targets::Follower | Targets::Holder => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_lists_parse_and_refuse_by_name() {
        assert_eq!(
            parse_classes("kill, partition,kill").unwrap(),
            vec![FaultClass::Partition, FaultClass::Kill]
        );
        assert!(parse_classes("none").unwrap().is_empty());
        let err = parse_classes("partition,meteor").unwrap_err();
        assert!(err.contains("\"meteor\""), "{err}");
    }

    #[test]
    fn target_sizes_follow_the_names() {
        assert_eq!(
            Targets::parse_list("follower, one,follower"),
            Ok(vec![Targets::Follower, Targets::One])
        );
        let err = Targets::parse_list("one,leader").unwrap_err();
        assert!(
            err.contains("\"leader\"") && err.contains("follower"),
            "{err}"
        );
        assert!(Targets::parse_list(" , ").is_err());
        assert_eq!(Targets::Follower.count(3), None);
        assert_eq!(Targets::parse_list("holder"), Ok(vec![Targets::Holder]));
        assert_eq!(Targets::Holder.count(3), None);
        assert_eq!(Targets::Minority.count(5), Some(2));
        assert_eq!(Targets::Minority.count(3), Some(1));
        assert_eq!(Targets::Majority.count(5), Some(3));
        assert_eq!(Targets::One.count(3), Some(1));
        assert_eq!(Targets::All.count(3), Some(3));
        assert_eq!(Targets::Primaries.count(3), None);
    }
}
