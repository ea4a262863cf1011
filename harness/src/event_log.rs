//! The run's event log, for the checkers of a system's own events (`checkers::atomic_commit`,
//! `recovery_line`, `consistent_cut`): each node's events file, plus what only the harness
//! knows, merged by time into `events.jsonl` in the run directory.
//!
//! What only the harness knows are the faults: the nemesis writes a `crash` line when it
//! has killed a node, a `recover` line before it starts one again, a `fault` line before a
//! network fault (partition, packet faults), a pause or a clock fault begins, and a `heal`
//! line once no fault of any kind is left in effect ([`EventJournal`]). The lines are
//! appended to `harness-events.jsonl` as they happen, so a controller that dies mid-run
//! leaves them too.
//!
//! A fault outlasts the harness's undoing it: peers redial broken connections with backoff
//! and messages wait meanwhile, so a vote can still time out a moment after a partition
//! heals or a node restarts. The checkers take an abort without a recorded fault for a
//! protocol bug (AC4), so the journal counts a restart as a `fault` (its peers lost their
//! connections to it) and stamps `heal` [`SETTLE`] after the last fault was undone, unless
//! another fault starts first (then the faults run into each other).
//!
//! Times are wall-clock nanoseconds since the epoch, the nodes' own clock: the nodes of the
//! backends whose logs are merged (local processes, network namespaces) share this host's
//! clock. A crash is stamped after the process is gone and a recovery before it starts, so
//! every line of a node's life falls between them. [`merge`] sorts all lines by time, stably,
//! so each file keeps its own order (the node's log never goes back in time).

use anyhow::Context;
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::warn;

/// The harness's own lines, in the run directory.
pub const HARNESS_FILE: &str = "harness-events.jsonl";
/// The merged log, in the run directory.
pub const MERGED_FILE: &str = "events.jsonl";
/// A node's events file as collected into `nodes/<node>/`.
pub const NODE_FILE: &str = "events.jsonl";
/// Bytes of event logs one merge reads in all: beyond this a run is refused, not risked.
pub const MAX_EVENT_BYTES: u64 = 2 << 30;
/// How long after its faults are undone a cluster counts as healed: the nodes redial a
/// peer within a second (`node::peers`) and a coordinator waits half a second for votes.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest line merged (the checkers' own limit).
const MAX_LINE_BYTES: usize = checkers::atomic_commit::MAX_LINE_BYTES;

/// The harness's lines of one run, appended as faults happen.
pub struct EventJournal {
    path: PathBuf,
    state: Mutex<Journal>,
}

struct Journal {
    file: File,
    last_ns: u64,
    /// A crash or fault was written since the last heal.
    faulted: bool,
    /// When the pending heal is due: everything was undone, and nothing failed since.
    heal_due_ns: Option<u64>,
}

impl EventJournal {
    /// Creates (or appends to) the journal at `path`.
    pub fn create(path: &Path) -> anyhow::Result<EventJournal> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(EventJournal {
            path: path.to_path_buf(),
            state: Mutex::new(Journal {
                file,
                last_ns: 0,
                faulted: false,
                heal_due_ns: None,
            }),
        })
    }

    /// `node`'s process is gone: its volatile state is lost.
    pub fn crash(&self, node: &str) {
        self.failure(json!({"node": node, "event": "crash"}));
    }

    /// `node` is about to start again from its disk; its peers lost their connections to
    /// it, a fault until they are back.
    pub fn recover(&self, node: &str) {
        let mut j = self.lock();
        self.failing(&mut j);
        let at = j.stamp();
        self.write(&mut j, at, json!({"node": node, "event": "recover"}));
        self.write(
            &mut j,
            at,
            json!({"event": "fault", "fault": "restart", "restarted": node}),
        );
    }

    /// A fault that is not a crash (`what`: partition, packet, pause, clock) begins.
    pub fn fault(&self, what: &str) {
        self.failure(json!({"event": "fault", "fault": what}));
    }

    /// Every fault is undone: a heal is due [`SETTLE`] from now, if something failed.
    pub fn heal(&self) {
        let mut j = self.lock();
        if j.faulted {
            let due = j.stamp().saturating_add(SETTLE.as_nanos() as u64);
            j.heal_due_ns = Some(due);
        }
    }

    /// Writes a pending heal (at its due time), at the end of the run.
    pub fn finish(&self) {
        let mut j = self.lock();
        if let Some(due) = j.heal_due_ns.take() {
            self.write_heal(&mut j, due);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failure(&self, event: Value) {
        let mut j = self.lock();
        self.failing(&mut j);
        let at = j.stamp();
        self.write(&mut j, at, event);
    }

    /// Something fails now: a heal that is due by now happened first; one not yet due
    /// never happens (this failure continues the fault).
    fn failing(&self, j: &mut Journal) {
        if let Some(due) = j.heal_due_ns.take() {
            if due <= j.stamp() {
                self.write_heal(j, due);
            }
        }
        j.faulted = true;
    }

    fn write_heal(&self, j: &mut Journal, at_ns: u64) {
        j.last_ns = j.last_ns.max(at_ns);
        let at = j.last_ns;
        self.write(j, at, json!({"event": "heal"}));
        j.faulted = false;
    }

    fn write(&self, j: &mut Journal, at_ns: u64, event: Value) {
        let mut line = json!({ "time": at_ns });
        if let (Value::Object(m), Value::Object(e)) = (&mut line, event) {
            m.extend(e);
        }
        let text = format!("{line}\n");
        // A lost line would mislead the checkers; it is logged, and the run goes on.
        if let Err(e) = j.file.write_all(text.as_bytes()) {
            warn!("cannot write {}: {e}", self.path.display());
        }
    }
}

impl Journal {
    /// Now, in wall-clock nanoseconds, never before the last line written.
    fn stamp(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.last_ns = self.last_ns.max(now);
        self.last_ns
    }
}

impl Drop for EventJournal {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What a merge read and wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    pub files: usize,
    pub lines: usize,
    /// Torn last lines cut off (a node killed mid-write).
    pub torn: usize,
}

/// The files merged for the run at `dir`: the harness's, then each node's, by name.
fn sources(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let harness = dir.join(HARNESS_FILE);
    if harness.is_file() {
        out.push(harness);
    }
    let nodes = dir.join("nodes");
    if nodes.is_dir() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&nodes)
            .with_context(|| format!("cannot list {}", nodes.display()))?
            .filter_map(|e| e.ok().map(|e| e.path().join(NODE_FILE)))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Whether the run at `dir` has event logs to merge (its system records events).
pub fn has_sources(dir: &Path) -> bool {
    sources(dir).is_ok_and(|s| s.iter().any(|p| !p.ends_with(HARNESS_FILE)))
}

/// Merges the run's event files into `events.jsonl` (written whole, then renamed into
/// place). A line without a non-negative integer `time` is an error naming the file and
/// line; a torn last line (no newline) is cut off.
pub fn merge(dir: &Path) -> anyhow::Result<Merged> {
    let files = sources(dir)?;
    let mut texts = Vec::with_capacity(files.len());
    let mut budget = MAX_EVENT_BYTES;
    for f in &files {
        let len = std::fs::metadata(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .len();
        budget = budget.checked_sub(len).with_context(|| {
            format!("the event logs are larger than {MAX_EVENT_BYTES} bytes in all")
        })?;
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read {} as UTF-8 text", f.display()))?;
        texts.push(text);
    }
    let mut merged = Merged {
        files: files.len(),
        ..Merged::default()
    };
    // (time, line): sorted stably, so equal times keep file order and each file its own.
    let mut lines: Vec<(u64, &str)> = Vec::new();
    for (f, text) in files.iter().zip(&texts) {
        let whole = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        if whole.len() < text.len() {
            warn!("{}: cut a torn last line", f.display());
            merged.torn += 1;
        }
        for (i, line) in whole.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = || format!("{} line {}", f.display(), i + 1);
            anyhow::ensure!(
                line.len() <= MAX_LINE_BYTES,
                "{}: longer than {MAX_LINE_BYTES} bytes",
                at()
            );
            #[derive(serde::Deserialize)]
            struct Stamp {
                time: u64,
            }
            let stamp: Stamp = serde_json::from_str(line)
                .with_context(|| format!("{}: not an event with a nanosecond \"time\"", at()))?;
            lines.push((stamp.time, line));
        }
    }
    lines.sort_by_key(|(t, _)| *t);
    merged.lines = lines.len();
    let mut out = String::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
    for (_, l) in &lines {
        out.push_str(l);
        out.push('\n');
    }
    let target = dir.join(MERGED_FILE);
    let tmp = dir.join(format!(".{MERGED_FILE}.tmp"));
    std::fs::write(&tmp, out).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &target)
        .with_context(|| format!("cannot move {} into place", target.display()))?;
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("faultline-events-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("nodes/n1")).unwrap();
        std::fs::create_dir_all(d.join("nodes/n2")).unwrap();
        d
    }

    #[test]
    fn node_logs_and_the_journal_merge_by_time_keeping_each_files_order() {
        let d = dir("merge");
        std::fs::write(
            d.join("nodes/n1/events.jsonl"),
            "{\"time\":10,\"node\":\"n1\",\"event\":\"a\"}\n{\"time\":30,\"node\":\"n1\",\"event\":\"b\"}\n{\"time\":31,\"no",
        )
        .unwrap();
        std::fs::write(
            d.join("nodes/n2/events.jsonl"),
            "{\"time\":20,\"node\":\"n2\",\"event\":\"c\"}\n{\"time\":30,\"node\":\"n2\",\"event\":\"d\"}\n",
        )
        .unwrap();
        let j = EventJournal::create(&d.join(HARNESS_FILE)).unwrap();
        j.heal(); // nothing failed: no line
        j.crash("n2");
        j.recover("n2");
        j.heal();
        j.heal(); // still pending: one line
        j.finish();
        let m = merge(&d).unwrap();
        assert_eq!(
            m,
            Merged {
                files: 3,
                lines: 8,
                torn: 1
            }
        );
        let text = std::fs::read_to_string(d.join(MERGED_FILE)).unwrap();
        let events: Vec<String> = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["event"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(&events[..4], ["a", "c", "b", "d"], "{text}");
        assert_eq!(
            &events[4..],
            ["crash", "recover", "fault", "heal"],
            "{text}"
        );
        assert!(has_sources(&d));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// The journal's lines: (event, time).
    fn journal_lines(path: &Path) -> Vec<(String, u64)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["event"].as_str().unwrap().to_string(),
                    v["time"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_heal_is_stamped_after_the_settling_time_unless_a_fault_comes_first() {
        let d = dir("settle");
        let path = d.join(HARNESS_FILE);
        let j = EventJournal::create(&path).unwrap();
        j.fault("partition");
        j.heal();
        j.fault("pause"); // within the settling time: the faults run into each other
        j.heal();
        j.finish();
        let lines = journal_lines(&path);
        let names: Vec<&str> = lines.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(names, ["fault", "fault", "heal"]);
        let settle = SETTLE.as_nanos() as u64;
        assert!(lines[2].1 >= lines[1].1 + settle, "{lines:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_line_without_a_time_is_an_error_naming_file_and_line() {
        let d = dir("bad");
        std::fs::write(
            d.join("nodes/n2/events.jsonl"),
            "{\"time\":1}\n{\"event\":\"x\"}\n",
        )
        .unwrap();
        let err = format!("{:#}", merge(&d).unwrap_err());
        assert!(err.contains("n2/events.jsonl line 2"), "{err}");
        assert!(!d.join(MERGED_FILE).exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
