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
//! Times are wall-clock nanoseconds since the epoch, by the clock of whoever wrote the line.
//! Local processes, network namespaces and containers share this host's clock; ssh hosts
//! have their own, which [`HostClocks`] maps to the controller's, and there the nemesis
//! stamps a crash or a recovery by the node's clock as well. A crash is stamped after the
//! process is gone and a recovery before it starts, so every line of a node's life falls
//! between them. [`merge`] orders the lines by time, keeping each file's own order (a
//! node's log never goes back in time) and every receive after its send.

use crate::host_clock::HostClocks;
use anyhow::Context;
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{info, warn};

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

    /// `node`'s process is gone: its volatile state is lost. `reading` is the node's own
    /// clock read after it was gone, on a backend whose nodes have clocks of their own.
    pub fn crash(&self, node: &str, reading: Option<&NodeReading>) {
        self.failure(with_reading(
            json!({"node": node, "event": "crash"}),
            reading,
        ));
    }

    /// `node` is about to start again from its disk; its peers lost their connections to
    /// it, a fault until they are back. `reading`: the node's clock read before the start.
    pub fn recover(&self, node: &str, reading: Option<&NodeReading>) {
        let mut j = self.lock();
        self.failing(&mut j);
        let at = j.stamp();
        let line = with_reading(json!({"node": node, "event": "recover"}), reading);
        self.write(&mut j, at, line);
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

/// A node's own clock, read by the harness: which host (the cluster's node name, as the
/// run's [`HostClocks`] know it) and what it read, in nanoseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReading {
    pub clock: String,
    pub node_ns: u64,
}

/// A crash or a recovery stamped by the node's own clock as well: the node's lines and its
/// crashes then order by one clock, whatever the estimate of that clock's offset.
fn with_reading(mut line: Value, reading: Option<&NodeReading>) -> Value {
    if let (Value::Object(m), Some(r)) = (&mut line, reading) {
        m.insert("clock".into(), json!(r.clock));
        m.insert("node_time".into(), json!(r.node_ns));
    }
    line
}

impl Journal {
    /// Now, in wall-clock nanoseconds, never before the last line written.
    fn stamp(&mut self) -> u64 {
        let now = crate::host_clock::controller_now_ns();
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
    /// Lines stamped by another host's clock, mapped to the controller's ([`HostClocks`]).
    pub mapped: usize,
    /// Lines moved later so they follow what they causally follow: a receive its send, or
    /// anything its own node wrote before it ([`causal_order`]).
    pub repaired: usize,
}

/// One source file: its path, and the node whose clock stamped it (None: the harness's).
struct Source {
    path: PathBuf,
    node: Option<String>,
}

/// The files merged for the run at `dir`: the harness's, then each node's, by name.
fn sources(dir: &Path) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    let harness = dir.join(HARNESS_FILE);
    if harness.is_file() {
        out.push(Source {
            path: harness,
            node: None,
        });
    }
    let nodes = dir.join("nodes");
    if nodes.is_dir() {
        let mut found: Vec<Source> = std::fs::read_dir(&nodes)
            .with_context(|| format!("cannot list {}", nodes.display()))?
            .filter_map(|e| e.ok())
            .map(|e| Source {
                path: e.path().join(NODE_FILE),
                node: Some(e.file_name().to_string_lossy().into_owned()),
            })
            .filter(|s| s.path.is_file())
            .collect();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        out.extend(found);
    }
    Ok(out)
}

/// Whether the run at `dir` has event logs to merge (its system records events).
pub fn has_sources(dir: &Path) -> bool {
    sources(dir).is_ok_and(|s| s.iter().any(|s| s.node.is_some()))
}

/// One line to merge: its time on the controller's clock, and what orders it causally.
struct Line<'a> {
    time_ns: u64,
    /// The time written in the line.
    carried_ns: u64,
    text: &'a str,
    /// The time the line carried, when that was another host's clock.
    node_time_ns: Option<u64>,
    /// The message id (as JSON text) of a `send` or a `receive`.
    send: Option<String>,
    receive: Option<String>,
}

/// The fields of a line the merge reads.
#[derive(serde::Deserialize)]
struct Head {
    time: u64,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    msg: Option<Value>,
    /// On the harness's lines stamped by a node's clock: the node, and its reading.
    #[serde(default)]
    clock: Option<String>,
    #[serde(default)]
    node_time: Option<u64>,
}

/// Merges the run's event files into `events.jsonl` (written whole, then renamed into
/// place). A line without a non-negative integer `time` is an error naming the file and
/// line; a torn last line (no newline) is cut off.
///
/// Lines stamped by another host's clock (the run's [`HostClocks`]) are mapped to the
/// controller's clock first, keeping the node's own reading as `node_time`. The order is
/// then time order, except where causality says otherwise ([`causal_order`]).
pub fn merge(dir: &Path) -> anyhow::Result<Merged> {
    let clocks = HostClocks::load(dir)?;
    let files = sources(dir)?;
    let mut texts = Vec::with_capacity(files.len());
    let mut budget = MAX_EVENT_BYTES;
    for f in &files {
        let len = std::fs::metadata(&f.path)
            .with_context(|| format!("cannot read {}", f.path.display()))?
            .len();
        budget = budget.checked_sub(len).with_context(|| {
            format!("the event logs are larger than {MAX_EVENT_BYTES} bytes in all")
        })?;
        let text = std::fs::read_to_string(&f.path)
            .with_context(|| format!("cannot read {} as UTF-8 text", f.path.display()))?;
        texts.push(text);
    }
    let mut merged = Merged {
        files: files.len(),
        ..Merged::default()
    };
    let mut streams: Vec<Vec<Line>> = Vec::with_capacity(files.len());
    for (f, text) in files.iter().zip(&texts) {
        let (lines, torn) = read_lines(f, text, &clocks)?;
        merged.torn += usize::from(torn);
        merged.mapped += lines.iter().filter(|l| l.node_time_ns.is_some()).count();
        streams.push(lines);
    }
    let order = causal_order(&streams);
    merged.lines = order.len();
    let mut out = String::with_capacity(texts.iter().map(String::len).sum::<usize>() + 1024);
    for (file, index, time_ns) in order {
        let line = &streams[file][index];
        if time_ns != line.time_ns {
            merged.repaired += 1;
        }
        out.push_str(&restamp(line, time_ns)?);
        out.push('\n');
    }
    if merged.repaired > 0 {
        info!(
            "moved {} event lines after the lines they causally follow",
            merged.repaired
        );
    }
    let target = dir.join(MERGED_FILE);
    let tmp = dir.join(format!(".{MERGED_FILE}.tmp"));
    std::fs::write(&tmp, out).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &target)
        .with_context(|| format!("cannot move {} into place", target.display()))?;
    Ok(merged)
}

/// The whole lines of one file, with times on the controller's clock and never below the
/// line before (a mapping or a reading can jitter; the file's order is the node's), and
/// whether a torn last line was cut off.
fn read_lines<'a>(
    f: &Source,
    text: &'a str,
    clocks: &HostClocks,
) -> anyhow::Result<(Vec<Line<'a>>, bool)> {
    let whole = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let torn = whole.len() < text.len();
    if torn {
        warn!("{}: cut a torn last line", f.path.display());
    }
    let mut lines = Vec::new();
    for (i, text) in whole.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", f.path.display(), i + 1);
        anyhow::ensure!(
            text.len() <= MAX_LINE_BYTES,
            "{}: longer than {MAX_LINE_BYTES} bytes",
            at()
        );
        let head: Head = serde_json::from_str(text)
            .with_context(|| format!("{}: not an event with a nanosecond \"time\"", at()))?;
        // The node whose clock stamped the line, and its reading.
        let stamped = match (&f.node, &head.clock, head.node_time) {
            (Some(node), _, _) => Some((node.as_str(), head.time)),
            (None, Some(node), Some(ns)) => Some((node.as_str(), ns)),
            _ => None,
        };
        let (time_ns, node_time_ns) = match stamped {
            Some((node, ns)) if clocks.knows(node) => (clocks.to_controller(node, ns), Some(ns)),
            _ => (head.time, None),
        };
        let msg = || head.msg.as_ref().map(Value::to_string);
        lines.push(Line {
            time_ns,
            carried_ns: head.time,
            text,
            node_time_ns,
            send: (head.event.as_deref() == Some("send")).then(msg).flatten(),
            receive: (head.event.as_deref() == Some("receive"))
                .then(msg)
                .flatten(),
        });
    }
    // The harness's lines come from several clocks (its own, and nodes' at crashes and
    // recoveries): they are ordered by time. A node's file is in the node's order.
    if f.node.is_none() {
        lines.sort_by_key(|l| l.time_ns);
    }
    let mut floor_ns = 0;
    for l in &mut lines {
        floor_ns = floor_ns.max(l.time_ns);
        l.time_ns = floor_ns;
    }
    Ok((lines, torn))
}

/// The merged order, as (file, line, time) with times never decreasing: by time, ties in
/// file order, except that a receive waits for its send in another file, and a line moved
/// later moves the rest of its file with it. On one host's clock this is plain time order
/// (a node writes a send before the message leaves); across hosts it repairs what the clock
/// estimates cannot resolve, as Lamport's clocks do. A receive whose send never comes first
/// (a log that contradicts itself) is released when nothing else can go, unrepaired, for
/// the checkers to judge.
fn causal_order(streams: &[Vec<Line>]) -> Vec<(usize, usize, u64)> {
    let mut sends: HashMap<&str, usize> = HashMap::new();
    for (file, lines) in streams.iter().enumerate() {
        for l in lines {
            if let Some(m) = &l.send {
                sends.entry(m.as_str()).or_insert(file);
            }
        }
    }
    let mut merge = CausalMerge {
        streams,
        sends,
        sent_ns: HashMap::new(),
        parked: BTreeMap::new(),
        next: vec![0; streams.len()],
        floor_ns: vec![0; streams.len()],
        ready: BinaryHeap::new(),
        release: None,
    };
    let total: usize = streams.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    for file in 0..streams.len() {
        merge.enqueue(file);
    }
    let mut last_ns = 0;
    while out.len() < total {
        let Some(Reverse((time_ns, file))) = merge.ready.pop() else {
            // Everything left waits for a send that cannot come first: release the earliest.
            let (&(_, file), _) = merge.parked.iter().next().expect("lines are left");
            merge.parked.retain(|&(_, f), _| f != file);
            merge.release = Some(file);
            merge.enqueue(file);
            continue;
        };
        last_ns = last_ns.max(time_ns);
        let index = merge.next[file];
        out.push((file, index, last_ns));
        merge.floor_ns[file] = last_ns;
        merge.next[file] += 1;
        if let Some(m) = &streams[file][index].send {
            merge.sent(m, file, last_ns);
        }
        merge.enqueue(file);
    }
    out
}

/// The state of [`causal_order`]: each file's next line, and the heads that may go.
struct CausalMerge<'s, 'a> {
    streams: &'s [Vec<Line<'a>>],
    /// The file of each message's first send.
    sends: HashMap<&'s str, usize>,
    /// When each message's send went out (merged time).
    sent_ns: HashMap<&'s str, u64>,
    /// Files whose head is a receive waiting for its send: (head time, file) -> message.
    parked: BTreeMap<(u64, usize), &'s str>,
    next: Vec<usize>,
    floor_ns: Vec<u64>,
    /// Heads free to go, earliest first (ties: the earlier file).
    ready: BinaryHeap<Reverse<(u64, usize)>>,
    /// A file whose parked head goes without its send.
    release: Option<usize>,
}

impl<'s> CausalMerge<'s, '_> {
    /// Queues `file`'s next line, or parks it until its send has gone out.
    fn enqueue(&mut self, file: usize) {
        let Some(line) = self.streams[file].get(self.next[file]) else {
            return;
        };
        let mut time_ns = line.time_ns.max(self.floor_ns[file]);
        let released = self.release == Some(file);
        self.release = None;
        if let Some(m) = line.receive.as_deref() {
            match (self.sends.get(m), self.sent_ns.get(m)) {
                // A receive goes strictly after its send, so ties cannot reorder them.
                (_, Some(&sent)) => time_ns = time_ns.max(sent.saturating_add(1)),
                (Some(&from), None) if from != file && !released => {
                    let (m, _) = self.sends.get_key_value(m).expect("just found");
                    self.parked.insert((time_ns, file), m);
                    return;
                }
                _ => {}
            }
        }
        self.ready.push(Reverse((time_ns, file)));
    }

    /// `m`'s send went out at `time_ns`: the receives waiting for it may go.
    fn sent(&mut self, m: &str, file: usize, time_ns: u64) {
        let Some((&key, &from)) = self.sends.get_key_value(m) else {
            return;
        };
        if from != file || self.sent_ns.contains_key(key) {
            return;
        }
        self.sent_ns.insert(key, time_ns);
        let waiting: Vec<(u64, usize)> = self
            .parked
            .iter()
            .filter(|(_, &w)| w == key)
            .map(|(&k, _)| k)
            .collect();
        for k in waiting {
            self.parked.remove(&k);
            self.enqueue(k.1);
        }
    }
}

/// The line with its merged time: unchanged text when the time is the one it carried,
/// else rewritten with `time` set and the node's own reading kept as `node_time`.
fn restamp(line: &Line, time_ns: u64) -> anyhow::Result<String> {
    if line.node_time_ns.is_none() && time_ns == line.carried_ns {
        return Ok(line.text.to_string());
    }
    let mut v: serde_json::Map<String, Value> = serde_json::from_str(line.text)?;
    if let Some(ns) = line.node_time_ns {
        v.entry("node_time").or_insert(json!(ns));
    }
    v.insert("time".into(), json!(time_ns));
    Ok(Value::Object(v).to_string())
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
        j.crash("n2", None);
        j.recover("n2", None);
        j.heal();
        j.heal(); // still pending: one line
        j.finish();
        let m = merge(&d).unwrap();
        assert_eq!(
            m,
            Merged {
                files: 3,
                lines: 8,
                torn: 1,
                ..Merged::default()
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

    /// The merged lines as (event, time) pairs.
    fn merged_events(d: &Path) -> Vec<(String, u64)> {
        journal_lines(&d.join(MERGED_FILE))
    }

    #[test]
    fn lines_of_skewed_hosts_map_to_the_controllers_clock_and_receives_follow_sends() {
        use crate::host_clock::Estimate;
        const S: u64 = 1_000_000_000;
        let d = dir("skew");
        std::fs::create_dir_all(d.join("nodes/n3")).unwrap();
        let mut clocks = HostClocks::default();
        // n2's host runs 30 s ahead and n3's 20 s behind; the estimate of n3 is 1 ms off.
        for (node, offset_ns) in [("n2", 30 * S as i64), ("n3", -20 * S as i64 + 1_000_000)] {
            clocks.add(
                node,
                Estimate {
                    at_ns: 1000 * S,
                    offset_ns,
                    rtt_ns: 2_000_000,
                },
            );
        }
        clocks.save(&d).unwrap();
        let t = |node_s: u64, ms: u64| node_s * S + ms * 1_000_000;
        // n1 is on the controller's clock (never sampled).
        std::fs::write(
            d.join("nodes/n1/events.jsonl"),
            format!(
                "{{\"time\":{},\"node\":\"n1\",\"event\":\"a\"}}\n",
                t(1000, 5)
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("nodes/n2/events.jsonl"),
            format!(
                "{{\"time\":{},\"node\":\"n2\",\"event\":\"send\",\"msg\":7,\"to\":\"n3\"}}\n\
                 {{\"time\":{},\"node\":\"n2\",\"event\":\"b\"}}\n",
                t(1030, 10),
                t(1030, 20)
            ),
        )
        .unwrap();
        // n3 received 0.5 ms after the send, which the 1 ms error puts before it.
        std::fs::write(
            d.join("nodes/n3/events.jsonl"),
            format!(
                "{{\"time\":{},\"node\":\"n3\",\"event\":\"receive\",\"msg\":7}}\n\
                 {{\"time\":{},\"node\":\"n3\",\"event\":\"c\"}}\n",
                t(980, 11) - 500_000,
                t(980, 11) - 400_000
            ),
        )
        .unwrap();
        // The crash of n2 is stamped on the controller's clock 1 ms before n2's last line
        // maps to, but by n2's own clock after it.
        let j = EventJournal::create(&d.join(HARNESS_FILE)).unwrap();
        j.crash(
            "n2",
            Some(&NodeReading {
                clock: "n2".into(),
                node_ns: t(1030, 25),
            }),
        );
        drop(j);
        let raw = std::fs::read_to_string(d.join(HARNESS_FILE)).unwrap();
        let mut v: Value = serde_json::from_str(raw.trim()).unwrap();
        v["time"] = json!(t(1000, 19));
        std::fs::write(d.join(HARNESS_FILE), format!("{v}\n")).unwrap();

        let m = merge(&d).unwrap();
        assert_eq!((m.files, m.lines, m.mapped), (4, 6, 5), "{m:?}");
        assert_eq!(m.repaired, 2, "the receive and the line after it: {m:?}");
        let events = merged_events(&d);
        let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(
            names,
            ["a", "send", "receive", "c", "b", "crash"],
            "{events:?}"
        );
        let times: Vec<u64> = events.iter().map(|(_, t)| *t).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        assert_eq!(times[1], t(1000, 10), "the send on the controller's clock");
        assert_eq!(times[2], times[1] + 1, "the receive just after its send");
        assert_eq!(times[5], t(1000, 25), "the crash by n2's clock");
        let text = std::fs::read_to_string(d.join(MERGED_FILE)).unwrap();
        let send: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(send["node_time"], json!(t(1030, 10)), "{text}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn receives_that_wait_on_each_other_are_released_in_time_order() {
        let d = dir("cycle");
        // Each node receives the other's message before sending its own: no order satisfies
        // both, and the merge must still end with every line, times never decreasing.
        std::fs::write(
            d.join("nodes/n1/events.jsonl"),
            "{\"time\":10,\"node\":\"n1\",\"event\":\"receive\",\"msg\":2}\n\
             {\"time\":20,\"node\":\"n1\",\"event\":\"send\",\"msg\":1,\"to\":\"n2\"}\n",
        )
        .unwrap();
        std::fs::write(
            d.join("nodes/n2/events.jsonl"),
            "{\"time\":11,\"node\":\"n2\",\"event\":\"receive\",\"msg\":1}\n\
             {\"time\":21,\"node\":\"n2\",\"event\":\"send\",\"msg\":2,\"to\":\"n1\"}\n",
        )
        .unwrap();
        let m = merge(&d).unwrap();
        assert_eq!(m.lines, 4);
        let events = merged_events(&d);
        let times: Vec<u64> = events.iter().map(|(_, t)| *t).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{events:?}");
        // n1's receive goes first (released); then n1's send lets n2's receive follow it.
        let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(names, ["receive", "send", "receive", "send"], "{events:?}");
        assert_eq!(times, [10, 20, 21, 21], "{events:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn on_one_clock_the_merge_is_time_order() {
        let d = dir("oneclock");
        std::fs::write(
            d.join("nodes/n1/events.jsonl"),
            "{\"time\":5,\"node\":\"n1\",\"event\":\"send\",\"msg\":\"m\",\"to\":\"n2\"}\n\
             {\"time\":9,\"node\":\"n1\",\"event\":\"x\"}\n",
        )
        .unwrap();
        std::fs::write(
            d.join("nodes/n2/events.jsonl"),
            "{\"time\":5,\"node\":\"n2\",\"event\":\"y\"}\n\
             {\"time\":6,\"node\":\"n2\",\"event\":\"receive\",\"msg\":\"m\"}\n",
        )
        .unwrap();
        let m = merge(&d).unwrap();
        assert_eq!((m.mapped, m.repaired), (0, 0), "{m:?}");
        let raw = std::fs::read_to_string(d.join(MERGED_FILE)).unwrap();
        let first = raw.lines().next().unwrap();
        assert_eq!(
            first, "{\"time\":5,\"node\":\"n1\",\"event\":\"send\",\"msg\":\"m\",\"to\":\"n2\"}",
            "lines on the controller's clock are copied as they are"
        );
        let names: Vec<String> = merged_events(&d).into_iter().map(|(e, _)| e).collect();
        assert_eq!(names, ["send", "y", "receive", "x"]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
