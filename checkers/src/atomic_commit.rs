//! Atomic commit (two-phase commit) checked from the events that processes and clients record,
//! and the event log that this checker, [`crate::recovery_line`] and [`crate::consistent_cut`]
//! share.
//!
//! # Input: the event log
//!
//! JSON lines, one object per line, in the spirit of Faultline's history (Jepsen op maps).
//! Blank lines are skipped. Every line has:
//!
//! - `"time"` (integer, nanoseconds, >= 0): when the event happened. Times never go backwards
//!   in file order; the checkers use file order as the order of events.
//! - `"event"` (string): what happened (below).
//! - `"node"` (string, non-empty): the process it happened on (`"coordinator"`, `"p1"`, ...).
//!   Required for every event except `heal` and `fault`, where it is optional and ignored.
//!
//! Transaction, message, checkpoint and snapshot ids are JSON integers or strings (`7` and
//! `"7"` are different ids). Other fields are allowed and ignored, as in Jepsen op maps.
//!
//! Atomic commit events:
//!
//! ```text
//! {"time":1,"node":"c","event":"participants","txn":1,"nodes":["p1","p2"]}  c coordinates txn 1
//! {"time":2,"node":"c","event":"log","txn":1,"record":"start"}     a forced log record:
//!                                                 start | yes | abort | commit | end
//! {"time":3,"node":"p1","event":"log","txn":1,"record":"yes"}
//! {"time":4,"node":"p1","event":"vote","txn":1,"vote":"yes"}       yes | no
//! {"time":5,"node":"c","event":"decide","txn":1,"decision":"commit"}   commit | abort, any
//!                                                 process, also after recovery
//! {"time":6,"node":"p2","event":"crash"}
//! {"time":7,"node":"p2","event":"recover"}
//! {"time":8,"event":"fault"}                      a network fault began (partition, loss)
//! {"time":9,"event":"heal"}                       every fault healed
//! {"time":10,"node":"p1","event":"final-state","applied":[1,3]}   txns this shard holds
//! ```
//!
//! The node of the `participants` line is the transaction's coordinator. A transaction has at
//! most one `participants` line (repeating the same one is allowed). The events of the other
//! checkers are documented there: `checkpoint`, `send`, `receive` in [`crate::recovery_line`];
//! `snapshot-start`, `snapshot-finish`, `commit` in [`crate::consistent_cut`]. Each checker
//! ignores the others' events, so one log can feed all three.
//!
//! A line that is not a JSON object, lacks a field or has one of the wrong type, an unknown
//! event, or more than [`MAX_EVENTS`] events, [`MAX_NODES`] nodes, [`MAX_TXNS`] transactions or
//! [`MAX_LIST_ENTRIES`] list entries in all is a [`BadHistory`] naming the 1-based line.
//!
//! # Checks (anomaly types)
//!
//! - `AC1-disagreement`: two processes' first decisions on a transaction differ.
//! - `AC2-decision-changed`: one process decided both commit and abort (also across a crash).
//! - `AC3-commit-without-unanimous-yes`: some process decided commit although a participant
//!   had not voted yes before that decision, or voted no.
//! - `AC4-abort-without-cause`: some process decided abort although every participant voted
//!   yes and no failure touched the transaction: no crash of its coordinator or a participant,
//!   none of them down, and no fault in effect, from its first event to the first abort.
//!   (A timeout nobody recorded as a fault counts as no failure.)
//! - `AC5-undecided-after-heal`: after the last `heal` (with no crash or fault after it), a
//!   participant voted yes but never decided. Without a `heal`, AC5 is not checked.
//! - `final-state-missing`: a transaction somebody decided to commit is missing from the
//!   `final-state` of one of its participants (nodes without a `final-state` are not judged).
//! - `final-state-aborted-applied`: a transaction decided abort (and never commit) is in some
//!   node's `final-state`.
//! - `decision-before-log`: the coordinator decided before forcing that decision's log record.
//! - `vote-before-log`: a participant voted yes before forcing its `yes` record.
//! - `decided-alone`: a participant recovered in doubt (it had logged `yes` but no decision),
//!   then decided before any other process had decided: it must have asked someone.
//!
//! The last `final-state` line of a node wins. Checks that need the participants skip
//! transactions without a `participants` line (counted in the detail
//! `txns_without_participants`). All work is linear in the log, plus a logarithmic search per
//! transaction member in the crash, recovery and fault lines.

use crate::one_copy::TxnId;
use crate::verdict::{BadHistory, Verdict};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Map, Value};

/// Events in one log: a long test run records a few million; beyond that we refuse.
pub const MAX_EVENTS: usize = 10_000_000;
/// Processes: more is not a cluster we test, and per-node tables stay small.
pub const MAX_NODES: usize = 4096;
/// Distinct transaction ids over the whole log.
pub const MAX_TXNS: usize = 1_000_000;
/// Entries of all lists (`nodes`, `applied`, `before`, `after`) together.
pub const MAX_LIST_ENTRIES: usize = 50_000_000;
/// Longest line we accept.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// The checker's name in verdicts.
pub const CHECKER: &str = "atomic-commit";

/// A forced log record of two-phase commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogRecord {
    Start,
    Yes,
    Abort,
    Commit,
    End,
}

impl LogRecord {
    fn parse(s: &str) -> Option<LogRecord> {
        Some(match s {
            "start" => LogRecord::Start,
            "yes" => LogRecord::Yes,
            "abort" => LogRecord::Abort,
            "commit" => LogRecord::Commit,
            "end" => LogRecord::End,
            _ => return None,
        })
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// What one line says happened. Nodes and transactions are interned indices into
/// [`Events::nodes`] and [`Events::txns`]; other ids stay as written.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    Participants {
        txn: u32,
        nodes: Vec<u32>,
    },
    Vote {
        txn: u32,
        yes: bool,
    },
    Decide {
        txn: u32,
        commit: bool,
    },
    Log {
        txn: u32,
        record: LogRecord,
    },
    Crash,
    Recover,
    Fault,
    Heal,
    FinalState {
        applied: Vec<u32>,
    },
    Checkpoint {
        id: TxnId,
    },
    Send {
        msg: TxnId,
        to: u32,
    },
    Receive {
        msg: TxnId,
    },
    SnapshotStart {
        snapshot: TxnId,
    },
    SnapshotFinish {
        snapshot: TxnId,
        before: Vec<u32>,
        after: Vec<u32>,
    },
    Commit {
        txn: u32,
    },
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The 1-based source line.
    pub line: usize,
    pub time_ns: u64,
    /// The node, absent only for `heal` and `fault` lines that give none.
    pub node: Option<u32>,
    pub kind: EventKind,
}

/// A parsed event log with interned node and transaction names.
#[derive(Clone, Debug, Default)]
pub struct Events {
    pub file: String,
    pub events: Vec<Event>,
    /// Node names in order of first appearance.
    pub nodes: Vec<String>,
    /// Transaction ids in order of first appearance.
    pub txns: Vec<TxnId>,
    node_index: FxHashMap<String, u32>,
    txn_index: FxHashMap<TxnId, u32>,
}

impl Events {
    /// The name of an interned node.
    pub fn node_name(&self, n: u32) -> &str {
        self.nodes
            .get(n as usize)
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// The id of an interned transaction, as JSON writes it.
    pub fn txn_name(&self, t: u32) -> String {
        self.txns
            .get(t as usize)
            .map(|id| id.to_string())
            .unwrap_or_else(|| "?".into())
    }

    /// The index of a node by name, if the log mentions it.
    pub fn node(&self, name: &str) -> Option<u32> {
        self.node_index.get(name).copied()
    }

    /// A [`BadHistory`] at `line` of this log.
    pub fn bad(&self, line: usize, problem: impl Into<String>) -> BadHistory {
        BadHistory {
            file: self.file.clone(),
            line,
            problem: problem.into(),
        }
    }
}

/// The input bounds, apart so that tests can cross them with small inputs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub events: usize,
    pub nodes: usize,
    pub txns: usize,
    pub list_entries: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        events: MAX_EVENTS,
        nodes: MAX_NODES,
        txns: MAX_TXNS,
        list_entries: MAX_LIST_ENTRIES,
    };
}

/// Parses an event log (format in the module docs). `file` names the input in errors.
pub fn parse_events(file: &str, text: &str) -> Result<Events, BadHistory> {
    parse_events_with_limits(file, text, Limits::DEFAULT)
}

/// [`parse_events`] under explicit limits.
pub fn parse_events_with_limits(
    file: &str,
    text: &str,
    limits: Limits,
) -> Result<Events, BadHistory> {
    let mut ev = Events {
        file: file.to_string(),
        ..Events::default()
    };
    let mut reader = Reader {
        limits,
        list_entries: 0,
        last_time_ns: 0,
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        if ev.events.len() >= limits.events {
            return Err(ev.bad(
                line,
                format!("more than {} events (the limit)", limits.events),
            ));
        }
        let event = reader
            .event(&mut ev, trimmed, line)
            .map_err(|p| ev.bad(line, p))?;
        ev.events.push(event);
    }
    Ok(ev)
}

/// Parsing state carried across lines: the limits and what counts against them.
struct Reader {
    limits: Limits,
    list_entries: usize,
    last_time_ns: u64,
}

impl Reader {
    /// Reads one non-blank line into an event.
    fn event(&mut self, ev: &mut Events, text: &str, line: usize) -> Result<Event, String> {
        if text.len() > MAX_LINE_BYTES {
            return Err("line longer than 64 MiB (the limit)".into());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(m) = value else {
            return Err("expected a JSON object such as {\"time\": 1, \"node\": \"p1\", \"event\": \"crash\"}".into());
        };
        let time_ns = match m.get("time") {
            Some(v) => v
                .as_u64()
                .ok_or("field \"time\" must be a non-negative integer (nanoseconds)")?,
            None => return Err("missing field \"time\" (nanoseconds)".into()),
        };
        if time_ns < self.last_time_ns {
            return Err(format!(
                "time goes backwards: {time_ns} ns after {} ns",
                self.last_time_ns
            ));
        }
        self.last_time_ns = time_ns;
        let name = str_field(&m, "event")?;
        let node_optional = matches!(name, "heal" | "fault");
        let node = match m.get("node") {
            Some(_) if node_optional => None,
            Some(_) => Some(self.node(ev, str_field(&m, "node")?)?),
            None if node_optional => None,
            None => return Err(format!("missing field \"node\" in a {name:?} event")),
        };
        let kind = self.kind(ev, &m, name)?;
        Ok(Event {
            line,
            time_ns,
            node,
            kind,
        })
    }

    /// The event-specific fields of event `name`.
    fn kind(
        &mut self,
        ev: &mut Events,
        m: &Map<String, Value>,
        name: &str,
    ) -> Result<EventKind, String> {
        Ok(match name {
            "participants" => EventKind::Participants {
                txn: self.txn(ev, m, "txn")?,
                nodes: self.node_list(ev, m, "nodes")?,
            },
            "vote" => EventKind::Vote {
                txn: self.txn(ev, m, "txn")?,
                yes: match str_field(m, "vote")? {
                    "yes" => true,
                    "no" => false,
                    other => return Err(format!("vote must be \"yes\" or \"no\", not {other:?}")),
                },
            },
            "decide" => EventKind::Decide {
                txn: self.txn(ev, m, "txn")?,
                commit: match str_field(m, "decision")? {
                    "commit" => true,
                    "abort" => false,
                    other => {
                        return Err(format!(
                            "decision must be \"commit\" or \"abort\", not {other:?}"
                        ))
                    }
                },
            },
            "log" => EventKind::Log {
                txn: self.txn(ev, m, "txn")?,
                record: {
                    let r = str_field(m, "record")?;
                    LogRecord::parse(r).ok_or_else(|| {
                        format!("record must be start, yes, abort, commit or end, not {r:?}")
                    })?
                },
            },
            "crash" => EventKind::Crash,
            "recover" => EventKind::Recover,
            "fault" => EventKind::Fault,
            "heal" => EventKind::Heal,
            "final-state" => EventKind::FinalState {
                applied: self.txn_list(ev, m, "applied")?,
            },
            "checkpoint" => EventKind::Checkpoint {
                id: id_field(m, "id")?,
            },
            "send" => EventKind::Send {
                msg: id_field(m, "msg")?,
                to: self.node(ev, str_field(m, "to")?)?,
            },
            "receive" => EventKind::Receive {
                msg: id_field(m, "msg")?,
            },
            "snapshot-start" => EventKind::SnapshotStart {
                snapshot: id_field(m, "snapshot")?,
            },
            "snapshot-finish" => EventKind::SnapshotFinish {
                snapshot: id_field(m, "snapshot")?,
                before: self.txn_list(ev, m, "before")?,
                after: self.txn_list(ev, m, "after")?,
            },
            "commit" => EventKind::Commit {
                txn: self.txn(ev, m, "txn")?,
            },
            other => return Err(format!("unknown event {other:?}")),
        })
    }

    /// Interns a node name, refusing one node too many.
    fn node(&mut self, ev: &mut Events, name: &str) -> Result<u32, String> {
        if name.is_empty() {
            return Err("node name is empty".into());
        }
        if let Some(&n) = ev.node_index.get(name) {
            return Ok(n);
        }
        if ev.nodes.len() >= self.limits.nodes {
            return Err(format!(
                "more than {} nodes (the limit): {name:?} is one too many",
                self.limits.nodes
            ));
        }
        // Fits: the limit is far below u32::MAX.
        let n = ev.nodes.len() as u32;
        ev.nodes.push(name.to_string());
        ev.node_index.insert(name.to_string(), n);
        Ok(n)
    }

    /// Interns a transaction id, refusing one transaction too many.
    fn intern_txn(&mut self, ev: &mut Events, id: TxnId) -> Result<u32, String> {
        if let Some(&t) = ev.txn_index.get(&id) {
            return Ok(t);
        }
        if ev.txns.len() >= self.limits.txns {
            return Err(format!(
                "more than {} transactions (the limit): {id} is one too many",
                self.limits.txns
            ));
        }
        let t = ev.txns.len() as u32;
        ev.txns.push(id.clone());
        ev.txn_index.insert(id, t);
        Ok(t)
    }

    fn txn(&mut self, ev: &mut Events, m: &Map<String, Value>, key: &str) -> Result<u32, String> {
        let id = id_field(m, key)?;
        self.intern_txn(ev, id)
    }

    /// Counts `len` more list entries against the limit.
    fn count_entries(&mut self, len: usize) -> Result<(), String> {
        self.list_entries = self.list_entries.saturating_add(len);
        if self.list_entries > self.limits.list_entries {
            return Err(format!(
                "more than {} list entries in all (the limit)",
                self.limits.list_entries
            ));
        }
        Ok(())
    }

    fn txn_list(
        &mut self,
        ev: &mut Events,
        m: &Map<String, Value>,
        key: &str,
    ) -> Result<Vec<u32>, String> {
        let items = array_field(m, key)?;
        self.count_entries(items.len())?;
        let mut out = Vec::with_capacity(items.len());
        for v in items {
            let id = TxnId::from_json(v).ok_or_else(|| {
                format!("{key:?} must hold transaction ids (integers or strings), not {v}")
            })?;
            out.push(self.intern_txn(ev, id)?);
        }
        Ok(out)
    }

    fn node_list(
        &mut self,
        ev: &mut Events,
        m: &Map<String, Value>,
        key: &str,
    ) -> Result<Vec<u32>, String> {
        let items = array_field(m, key)?;
        self.count_entries(items.len())?;
        let mut out = Vec::with_capacity(items.len());
        for v in items {
            let name = v
                .as_str()
                .ok_or_else(|| format!("{key:?} must hold node names (strings), not {v}"))?;
            let n = self.node(ev, name)?;
            if out.contains(&n) {
                return Err(format!("{key:?} names node {name:?} twice"));
            }
            out.push(n);
        }
        Ok(out)
    }
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!("field {key:?} must be a string, not {v}")),
        None => Err(format!("missing field {key:?}")),
    }
}

fn id_field(m: &Map<String, Value>, key: &str) -> Result<TxnId, String> {
    match m.get(key) {
        Some(v) => TxnId::from_json(v)
            .ok_or_else(|| format!("field {key:?} must be an integer or a string, not {v}")),
        None => Err(format!("missing field {key:?}")),
    }
}

fn array_field<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a Vec<Value>, String> {
    match m.get(key) {
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(format!("field {key:?} must be an array, not {v}")),
        None => Err(format!("missing field {key:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------------------------

/// What one process did for one transaction: the first line of each kind of event.
#[derive(Clone, Copy, Debug, Default)]
struct Member {
    yes_vote: Option<usize>,
    no_vote: Option<usize>,
    /// First line of each log record, indexed by [`LogRecord::slot`].
    log: [Option<usize>; 5],
    first_commit: Option<usize>,
    first_abort: Option<usize>,
}

impl Member {
    /// The line and kind (true: commit) of this process's first decision.
    fn first_decision(&self) -> Option<(usize, bool)> {
        match (self.first_commit, self.first_abort) {
            (Some(c), Some(a)) => Some(if c < a { (c, true) } else { (a, false) }),
            (Some(c), None) => Some((c, true)),
            (None, Some(a)) => Some((a, false)),
            (None, None) => None,
        }
    }

    /// The first line where this process forced a decision record (commit or abort).
    fn decision_logged(&self) -> Option<usize> {
        let c = self.log[LogRecord::Commit.slot()];
        let a = self.log[LogRecord::Abort.slot()];
        c.into_iter().chain(a).min()
    }
}

/// Everything recorded about one transaction.
#[derive(Clone, Debug, Default)]
struct Txn {
    first_line: usize,
    /// Participants, coordinator, line.
    participants: Option<(Vec<u32>, u32, usize)>,
    /// Members by node, in order of first appearance.
    members: Vec<(u32, Member)>,
}

impl Txn {
    /// The member record of node `n` (members are sorted by node after gathering).
    fn member(&self, n: u32) -> Option<&Member> {
        self.members
            .binary_search_by_key(&n, |(m, _)| *m)
            .ok()
            .and_then(|i| self.members.get(i))
            .map(|(_, m)| m)
    }

    /// The two earliest first decisions by distinct processes, as (line, node).
    fn earliest_deciders(&self) -> [Option<(usize, u32)>; 2] {
        let mut best: [Option<(usize, u32)>; 2] = [None, None];
        for (n, m) in &self.members {
            let Some((l, _)) = m.first_decision() else {
                continue;
            };
            if best[0].is_none_or(|(b, _)| l < b) {
                best[1] = best[0];
                best[0] = Some((l, *n));
            } else if best[1].is_none_or(|(b, _)| l < b) {
                best[1] = Some((l, *n));
            }
        }
        best
    }
}

/// Per-node lines of crashes and recoveries, and the global fault and heal lines, in order.
#[derive(Clone, Debug, Default)]
struct Failures {
    crashes: Vec<Vec<usize>>,
    recovers: Vec<Vec<usize>>,
    faults: Vec<usize>,
    heals: Vec<usize>,
}

/// The last line in sorted `lines` strictly before `line`.
fn last_before(lines: &[usize], line: usize) -> Option<usize> {
    let i = lines.partition_point(|&l| l < line);
    i.checked_sub(1).and_then(|i| lines.get(i).copied())
}

/// Whether sorted `lines` has one in `from..=to`.
fn any_within(lines: &[usize], from: usize, to: usize) -> bool {
    let i = lines.partition_point(|&l| l < from);
    lines.get(i).is_some_and(|&l| l <= to)
}

impl Failures {
    /// Whether `node` crashed within `from..=to` or was down at `from`.
    fn node_failed(&self, node: u32, from: usize, to: usize) -> bool {
        let crashes = self.crashes.get(node as usize).map_or(&[][..], |v| v);
        let recovers = self.recovers.get(node as usize).map_or(&[][..], |v| v);
        if any_within(crashes, from, to) {
            return true;
        }
        match last_before(crashes, from) {
            Some(c) => last_before(recovers, from).is_none_or(|r| r < c),
            None => false,
        }
    }

    /// Whether a network fault began within `from..=to` or was in effect at `from`.
    fn fault_within(&self, from: usize, to: usize) -> bool {
        if any_within(&self.faults, from, to) {
            return true;
        }
        match last_before(&self.faults, from) {
            Some(f) => last_before(&self.heals, from).is_none_or(|h| h < f),
            None => false,
        }
    }
}

/// What one pass over the log gathers for the checks.
struct Gathered {
    txns: Vec<Txn>,
    failures: Failures,
    /// Per node: the line and applied set of its last `final-state`.
    final_states: Vec<Option<(usize, FxHashSet<u32>)>>,
}

/// The member record of `node` in `txn`, created on first sight.
fn member_of<'a>(
    txns: &'a mut [Txn],
    index: &mut FxHashMap<(u32, u32), usize>,
    txn: u32,
    node: u32,
    line: usize,
) -> &'a mut Member {
    let t = &mut txns[txn as usize];
    if t.first_line == 0 {
        t.first_line = line;
    }
    let i = *index.entry((txn, node)).or_insert_with(|| {
        t.members.push((node, Member::default()));
        t.members.len() - 1
    });
    &mut t.members[i].1
}

/// Gathers per-transaction members, failures and final states in one pass over the log.
fn gather(ev: &Events) -> Result<Gathered, BadHistory> {
    let mut txns: Vec<Txn> = vec![Txn::default(); ev.txns.len()];
    let mut member_index: FxHashMap<(u32, u32), usize> = FxHashMap::default();
    let mut failures = Failures {
        crashes: vec![Vec::new(); ev.nodes.len()],
        recovers: vec![Vec::new(); ev.nodes.len()],
        ..Failures::default()
    };
    let mut final_states: Vec<Option<(usize, FxHashSet<u32>)>> = vec![None; ev.nodes.len()];
    for e in &ev.events {
        let line = e.line;
        let node = e.node.unwrap_or(0);
        match &e.kind {
            EventKind::Participants { txn, nodes } => {
                let t = &mut txns[*txn as usize];
                if t.first_line == 0 {
                    t.first_line = line;
                }
                match &t.participants {
                    Some((ps, c, l)) if (ps != nodes || *c != node) => {
                        return Err(ev.bad(
                            line,
                            format!(
                                "transaction {} already has other participants or another coordinator (line {l})",
                                ev.txn_name(*txn)
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => t.participants = Some((nodes.clone(), node, line)),
                }
            }
            EventKind::Vote { txn, yes } => {
                let m = member_of(&mut txns, &mut member_index, *txn, node, line);
                let slot = if *yes {
                    &mut m.yes_vote
                } else {
                    &mut m.no_vote
                };
                slot.get_or_insert(line);
            }
            EventKind::Decide { txn, commit } => {
                let m = member_of(&mut txns, &mut member_index, *txn, node, line);
                let slot = if *commit {
                    &mut m.first_commit
                } else {
                    &mut m.first_abort
                };
                slot.get_or_insert(line);
            }
            EventKind::Log { txn, record } => {
                member_of(&mut txns, &mut member_index, *txn, node, line).log[record.slot()]
                    .get_or_insert(line);
            }
            EventKind::Crash => failures.crashes[node as usize].push(line),
            EventKind::Recover => failures.recovers[node as usize].push(line),
            EventKind::Fault => failures.faults.push(line),
            EventKind::Heal => failures.heals.push(line),
            EventKind::FinalState { applied } => {
                final_states[node as usize] = Some((line, applied.iter().copied().collect()));
            }
            _ => {}
        }
    }
    for t in &mut txns {
        // Sorted by node, so that checks find a member by binary search.
        t.members.sort_by_key(|(n, _)| *n);
    }
    Ok(Gathered {
        txns,
        failures,
        final_states,
    })
}

/// Checks atomic commit over a parsed log (checks in the module docs).
pub fn check(ev: &Events) -> Result<Verdict, BadHistory> {
    let g = gather(ev)?;
    let mut v = Verdict::new(CHECKER);
    let ac5_from = ac5_applies(&g.failures);
    let mut without_participants = 0usize;
    let mut committed = 0usize;
    let mut aborted = 0usize;
    for (t, txn) in g.txns.iter().enumerate() {
        let t = t as u32;
        check_agreement(ev, t, txn, &mut v);
        let outcome = first_decisions(txn);
        if outcome.0.is_some() {
            committed += 1;
        } else if outcome.1.is_some() {
            aborted += 1;
        }
        if txn.members.is_empty() && txn.participants.is_none() {
            continue; // only mentioned in a final state, a snapshot or a commit event
        }
        check_protocol_logs(ev, t, txn, &g.failures, &mut v);
        let Some((parts, coord, _)) = &txn.participants else {
            without_participants += 1;
            continue;
        };
        check_votes(ev, t, txn, parts, *coord, &g.failures, &mut v);
        if let Some(heal) = ac5_from {
            check_ac5(ev, t, txn, parts, heal, &mut v);
        }
        check_final_state(ev, t, txn, parts, &g.final_states, &mut v);
    }
    check_aborted_applied(ev, &g.txns, &g.final_states, &mut v);
    v.detail("events", ev.events.len());
    v.detail("nodes", ev.nodes.len());
    v.detail("txns_committed", committed);
    v.detail("txns_aborted", aborted);
    v.detail("txns_without_participants", without_participants);
    v.detail("ac5_checked", ac5_from.is_some());
    Ok(v)
}

/// Parses and checks in one step.
pub fn check_text(file: &str, text: &str) -> Result<Verdict, BadHistory> {
    check(&parse_events(file, text)?)
}

/// The line of the last heal, if AC5 applies: there is one and nothing failed after it.
fn ac5_applies(f: &Failures) -> Option<usize> {
    let heal = *f.heals.last()?;
    let later = |lines: &[usize]| lines.last().is_some_and(|&l| l > heal);
    if later(&f.faults) || f.crashes.iter().any(|c| later(c)) {
        return None;
    }
    Some(heal)
}

/// A decision's line and the node that made it.
type Decider = Option<(usize, u32)>;

/// The first commit and first abort decision, each as (line, node), over all processes.
fn first_decisions(txn: &Txn) -> (Decider, Decider) {
    let mut commit: Option<(usize, u32)> = None;
    let mut abort: Option<(usize, u32)> = None;
    for (n, m) in &txn.members {
        if let Some(l) = m.first_commit {
            if commit.is_none_or(|(c, _)| l < c) {
                commit = Some((l, *n));
            }
        }
        if let Some(l) = m.first_abort {
            if abort.is_none_or(|(a, _)| l < a) {
                abort = Some((l, *n));
            }
        }
    }
    (commit, abort)
}

fn decision_word(commit: bool) -> &'static str {
    if commit {
        "commit"
    } else {
        "abort"
    }
}

/// AC1 (processes' first decisions agree) and AC2 (no process changes its decision).
fn check_agreement(ev: &Events, t: u32, txn: &Txn, v: &mut Verdict) {
    let mut first_commit: Option<(usize, u32)> = None;
    let mut first_abort: Option<(usize, u32)> = None;
    for (n, m) in &txn.members {
        if let (Some(c), Some(a)) = (m.first_commit, m.first_abort) {
            let (first, later) = if c < a {
                ((c, true), (a, false))
            } else {
                ((a, false), (c, true))
            };
            v.anomaly(
                "AC2-decision-changed",
                format!(
                    "txn {}: {} decided {} at line {}, then {} at line {}",
                    ev.txn_name(t),
                    ev.node_name(*n),
                    decision_word(first.1),
                    first.0,
                    decision_word(later.1),
                    later.0
                ),
            );
        }
        match m.first_decision() {
            Some((l, true)) if first_commit.is_none_or(|(c, _)| l < c) => {
                first_commit = Some((l, *n))
            }
            Some((l, false)) if first_abort.is_none_or(|(a, _)| l < a) => {
                first_abort = Some((l, *n))
            }
            _ => {}
        }
    }
    if let (Some((c, cn)), Some((a, an))) = (first_commit, first_abort) {
        v.anomaly(
            "AC1-disagreement",
            format!(
                "txn {}: {} decided commit at line {c} but {} decided abort at line {a}",
                ev.txn_name(t),
                ev.node_name(cn),
                ev.node_name(an)
            ),
        );
    }
}

/// The log-before-act rules: the coordinator forces its decision before deciding, a
/// participant forces `yes` before voting yes, and a participant in doubt after recovery
/// waits for someone else's decision.
fn check_protocol_logs(ev: &Events, t: u32, txn: &Txn, f: &Failures, v: &mut Verdict) {
    let coord = txn.participants.as_ref().map(|(_, c, _)| *c);
    for (n, m) in &txn.members {
        if Some(*n) == coord {
            for (commit, decided) in [(true, m.first_commit), (false, m.first_abort)] {
                let Some(d) = decided else { continue };
                let record = if commit {
                    LogRecord::Commit
                } else {
                    LogRecord::Abort
                };
                if m.log[record.slot()].is_none_or(|l| l > d) {
                    v.anomaly(
                        "decision-before-log",
                        format!(
                            "txn {}: coordinator {} decided {} at line {d} without an earlier forced {} log record{}",
                            ev.txn_name(t),
                            ev.node_name(*n),
                            decision_word(commit),
                            decision_word(commit),
                            m.log[record.slot()].map(|l| format!(" (logged at line {l})")).unwrap_or_default()
                        ),
                    );
                }
            }
            continue;
        }
        if let Some(y) = m.yes_vote {
            let logged = m.log[LogRecord::Yes.slot()];
            if logged.is_none_or(|l| l > y) {
                v.anomaly(
                    "vote-before-log",
                    format!(
                        "txn {}: {} voted yes at line {y} without an earlier forced yes log record{}",
                        ev.txn_name(t),
                        ev.node_name(*n),
                        logged.map(|l| format!(" (logged at line {l})")).unwrap_or_default()
                    ),
                );
            }
        }
        check_decided_alone(ev, t, txn, *n, m, f, v);
    }
}

/// A participant recovered in doubt and then decided before anybody else had.
fn check_decided_alone(
    ev: &Events,
    t: u32,
    txn: &Txn,
    n: u32,
    m: &Member,
    f: &Failures,
    v: &mut Verdict,
) {
    let (Some((d, commit)), Some(yes)) = (m.first_decision(), m.log[LogRecord::Yes.slot()]) else {
        return;
    };
    let recovers = f.recovers.get(n as usize).map_or(&[][..], |r| r);
    let Some(r) = last_before(recovers, d) else {
        return;
    };
    let in_doubt = yes < r && m.decision_logged().is_none_or(|l| l > r);
    if !in_doubt {
        return;
    }
    let someone_before = txn
        .earliest_deciders()
        .into_iter()
        .flatten()
        .any(|(l, o)| o != n && l < d);
    if !someone_before {
        v.anomaly(
            "decided-alone",
            format!(
                "txn {}: {} logged yes at line {yes}, recovered at line {r} without a decision record, and decided {} at line {d} before any other process decided",
                ev.txn_name(t),
                ev.node_name(n),
                decision_word(commit)
            ),
        );
    }
}

/// AC3 (commit needs every participant's yes first) and AC4 (all yes and no failure: commit).
fn check_votes(
    ev: &Events,
    t: u32,
    txn: &Txn,
    parts: &[u32],
    coord: u32,
    f: &Failures,
    v: &mut Verdict,
) {
    let member = |p: u32| txn.member(p).copied();
    let (commit, abort) = first_decisions(txn);
    if let Some((c, cn)) = commit {
        let lacking: Vec<String> = parts
            .iter()
            .filter(|&&p| {
                let m = member(p).unwrap_or_default();
                m.no_vote.is_some() || m.yes_vote.is_none_or(|y| y > c)
            })
            .map(|&p| ev.node_name(p).to_string())
            .collect();
        if !lacking.is_empty() {
            v.anomaly(
                "AC3-commit-without-unanimous-yes",
                format!(
                    "txn {}: {} decided commit at line {c} but participant(s) {} had not voted yes before (or voted no)",
                    ev.txn_name(t),
                    ev.node_name(cn),
                    lacking.join(", ")
                ),
            );
        }
    }
    if let Some((a, an)) = abort {
        let all_yes = parts.iter().all(|&p| {
            let m = member(p).unwrap_or_default();
            m.yes_vote.is_some() && m.no_vote.is_none()
        });
        let from = txn.first_line;
        let failed = f.fault_within(from, a)
            || parts
                .iter()
                .chain(std::iter::once(&coord))
                .any(|&p| f.node_failed(p, from, a));
        if all_yes && !failed {
            v.anomaly(
                "AC4-abort-without-cause",
                format!(
                    "txn {}: {} decided abort at line {a} although every participant ({}) voted yes and no crash or fault touched it between lines {from} and {a}",
                    ev.txn_name(t),
                    ev.node_name(an),
                    names(ev, parts)
                ),
            );
        }
    }
}

/// AC5: after the last heal, every participant that voted yes has decided.
fn check_ac5(ev: &Events, t: u32, txn: &Txn, parts: &[u32], heal: usize, v: &mut Verdict) {
    for &p in parts {
        let Some(m) = txn.member(p) else {
            continue;
        };
        if let (Some(y), None) = (m.yes_vote, m.first_decision()) {
            v.anomaly(
                "AC5-undecided-after-heal",
                format!(
                    "txn {}: {} voted yes at line {y} but never decided, although faults healed at line {heal}",
                    ev.txn_name(t),
                    ev.node_name(p)
                ),
            );
        }
    }
}

/// Committed transactions are on the final state of every participant that gave one.
fn check_final_state(
    ev: &Events,
    t: u32,
    txn: &Txn,
    parts: &[u32],
    finals: &[Option<(usize, FxHashSet<u32>)>],
    v: &mut Verdict,
) {
    let (Some((c, cn)), _) = first_decisions(txn) else {
        return;
    };
    for &p in parts {
        if let Some(Some((l, applied))) = finals.get(p as usize) {
            if !applied.contains(&t) {
                v.anomaly(
                    "final-state-missing",
                    format!(
                        "txn {}: {} decided commit at line {c} but participant {}'s final state (line {l}) lacks it",
                        ev.txn_name(t),
                        ev.node_name(cn),
                        ev.node_name(p)
                    ),
                );
            }
        }
    }
}

/// Aborted transactions (decided abort, never commit) are on no node's final state: one pass
/// over the final states, so the work is their size, not transactions times nodes.
fn check_aborted_applied(
    ev: &Events,
    txns: &[Txn],
    finals: &[Option<(usize, FxHashSet<u32>)>],
    v: &mut Verdict,
) {
    for (node, fs) in finals.iter().enumerate() {
        let Some((l, applied)) = fs else { continue };
        let mut applied: Vec<u32> = applied.iter().copied().collect();
        applied.sort_unstable();
        for t in applied {
            let Some(txn) = txns.get(t as usize) else {
                continue;
            };
            if let (None, Some((a, an))) = first_decisions(txn) {
                v.anomaly(
                    "final-state-aborted-applied",
                    format!(
                        "txn {}: {} decided abort at line {a} (nobody decided commit) but {}'s final state (line {l}) holds it",
                        ev.txn_name(t),
                        ev.node_name(an),
                        ev.node_name(node as u32)
                    ),
                );
            }
        }
    }
}

fn names(ev: &Events, nodes: &[u32]) -> String {
    nodes
        .iter()
        .map(|&n| ev.node_name(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A log from event objects without `time`: line i gets time i, so tests stay short.
#[cfg(test)]
pub(crate) fn test_log(lines: &[&str]) -> String {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{{\"time\":{i},{}\n", l.trim_start_matches('{')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Validity;

    use super::test_log as log;

    fn verdict(lines: &[&str]) -> Verdict {
        check_text("t.jsonl", &log(lines)).expect("valid log")
    }

    fn kinds(v: &Verdict) -> Vec<&str> {
        v.anomaly_types.iter().map(String::as_str).collect()
    }

    /// A clean two-participant commit: lines 1..=12.
    const CLEAN: &[&str] = &[
        r#"{"node":"c","event":"participants","txn":1,"nodes":["p1","p2"]}"#,
        r#"{"node":"c","event":"log","txn":1,"record":"start"}"#,
        r#"{"node":"p1","event":"log","txn":1,"record":"yes"}"#,
        r#"{"node":"p1","event":"vote","txn":1,"vote":"yes"}"#,
        r#"{"node":"p2","event":"log","txn":1,"record":"yes"}"#,
        r#"{"node":"p2","event":"vote","txn":1,"vote":"yes"}"#,
        r#"{"node":"c","event":"log","txn":1,"record":"commit"}"#,
        r#"{"node":"c","event":"decide","txn":1,"decision":"commit"}"#,
        r#"{"node":"p1","event":"decide","txn":1,"decision":"commit"}"#,
        r#"{"node":"p2","event":"decide","txn":1,"decision":"commit"}"#,
        r#"{"event":"heal"}"#,
        r#"{"node":"p1","event":"final-state","applied":[1]}"#,
        r#"{"node":"p2","event":"final-state","applied":[1]}"#,
    ];

    /// CLEAN with line `i` (0-based) replaced or removed, and extra lines appended.
    fn edit(
        replace: &[(usize, Option<&'static str>)],
        extra: &[&'static str],
    ) -> Vec<&'static str> {
        let mut out: Vec<&str> = Vec::new();
        for (i, l) in CLEAN.iter().enumerate() {
            match replace.iter().find(|(j, _)| *j == i) {
                Some((_, Some(r))) => out.push(r),
                Some((_, None)) => {}
                None => out.push(l),
            }
        }
        out.extend_from_slice(extra);
        out
    }

    #[test]
    fn clean_commit_is_valid() {
        let v = verdict(CLEAN);
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["txns_committed"], 1);
        assert_eq!(v.details["ac5_checked"], true);
    }

    #[test]
    fn clean_abort_after_no_vote_is_valid() {
        let v = verdict(&edit(
            &[
                (4, None),
                (
                    5,
                    Some(r#"{"node":"p2","event":"vote","txn":1,"vote":"no"}"#),
                ),
                (
                    6,
                    Some(r#"{"node":"c","event":"log","txn":1,"record":"abort"}"#),
                ),
                (
                    7,
                    Some(r#"{"node":"c","event":"decide","txn":1,"decision":"abort"}"#),
                ),
                (
                    8,
                    Some(r#"{"node":"p1","event":"decide","txn":1,"decision":"abort"}"#),
                ),
                (
                    9,
                    Some(r#"{"node":"p2","event":"decide","txn":1,"decision":"abort"}"#),
                ),
                (
                    11,
                    Some(r#"{"node":"p1","event":"final-state","applied":[]}"#),
                ),
                (
                    12,
                    Some(r#"{"node":"p2","event":"final-state","applied":[]}"#),
                ),
            ],
            &[],
        ));
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(v.details["txns_aborted"], 1);
    }

    #[test]
    fn ac1_disagreement_names_both_deciders() {
        let v = verdict(&edit(
            &[(
                9,
                Some(r#"{"node":"p2","event":"decide","txn":1,"decision":"abort"}"#),
            )],
            &[],
        ));
        assert!(kinds(&v).contains(&"AC1-disagreement"), "{}", v.explain());
        let proof = &v.anomalies["AC1-disagreement"][0];
        assert!(proof.contains("c decided commit at line 8"), "{proof}");
        assert!(proof.contains("p2 decided abort at line 10"), "{proof}");
        assert!(!kinds(&v).contains(&"AC2-decision-changed"));
    }

    #[test]
    fn ac2_decision_changed_across_recovery() {
        let v = verdict(&edit(
            &[],
            &[
                r#"{"node":"p1","event":"crash"}"#,
                r#"{"node":"p1","event":"recover"}"#,
                r#"{"node":"p1","event":"decide","txn":1,"decision":"abort"}"#,
            ],
        ));
        assert!(
            kinds(&v).contains(&"AC2-decision-changed"),
            "{}",
            v.explain()
        );
        assert!(v.anomalies["AC2-decision-changed"][0]
            .contains("p1 decided commit at line 9, then abort at line 16"));
        assert!(
            !kinds(&v).contains(&"AC1-disagreement"),
            "first decisions agree"
        );
    }

    #[test]
    fn ac3_commit_without_unanimous_yes() {
        let v = verdict(&edit(
            &[(
                5,
                Some(r#"{"node":"p2","event":"vote","txn":1,"vote":"no"}"#),
            )],
            &[],
        ));
        assert!(
            kinds(&v).contains(&"AC3-commit-without-unanimous-yes"),
            "{}",
            v.explain()
        );
        assert!(v.anomalies["AC3-commit-without-unanimous-yes"][0].contains("participant(s) p2"));
        // A yes that arrives only after the commit is no better.
        let late = verdict(&edit(
            &[(5, None)],
            &[r#"{"node":"p2","event":"vote","txn":1,"vote":"yes"}"#],
        ));
        assert!(kinds(&late).contains(&"AC3-commit-without-unanimous-yes"));
    }

    /// CLEAN, but everybody aborts although everybody voted yes.
    fn all_yes_abort(extra_before_abort: Option<&'static str>) -> Vec<&'static str> {
        let mut lines = edit(
            &[
                (
                    6,
                    Some(r#"{"node":"c","event":"log","txn":1,"record":"abort"}"#),
                ),
                (
                    7,
                    Some(r#"{"node":"c","event":"decide","txn":1,"decision":"abort"}"#),
                ),
                (
                    8,
                    Some(r#"{"node":"p1","event":"decide","txn":1,"decision":"abort"}"#),
                ),
                (
                    9,
                    Some(r#"{"node":"p2","event":"decide","txn":1,"decision":"abort"}"#),
                ),
                (
                    11,
                    Some(r#"{"node":"p1","event":"final-state","applied":[]}"#),
                ),
                (
                    12,
                    Some(r#"{"node":"p2","event":"final-state","applied":[]}"#),
                ),
            ],
            &[],
        );
        if let Some(e) = extra_before_abort {
            lines.insert(6, e);
        }
        lines
    }

    #[test]
    fn ac4_abort_without_cause_unless_something_failed() {
        let v = verdict(&all_yes_abort(None));
        assert_eq!(
            kinds(&v),
            vec!["AC4-abort-without-cause"],
            "{}",
            v.explain()
        );
        for failure in [
            r#"{"node":"p2","event":"crash"}"#,
            r#"{"node":"c","event":"crash"}"#,
            r#"{"event":"fault"}"#,
        ] {
            let v = verdict(&all_yes_abort(Some(failure)));
            assert!(
                !kinds(&v).contains(&"AC4-abort-without-cause"),
                "{failure}: {}",
                v.explain()
            );
        }
        // A crash of a node outside the transaction is no excuse.
        let v = verdict(&all_yes_abort(Some(r#"{"node":"p9","event":"crash"}"#)));
        assert!(kinds(&v).contains(&"AC4-abort-without-cause"));
        // A node already down when the transaction began is a failure too.
        let mut lines = all_yes_abort(None);
        lines.insert(0, r#"{"node":"p2","event":"crash"}"#);
        let v = verdict(&lines);
        assert!(
            !kinds(&v).contains(&"AC4-abort-without-cause"),
            "{}",
            v.explain()
        );
    }

    #[test]
    fn ac5_undecided_after_heal_only_with_a_heal() {
        let v = verdict(&edit(&[(9, None)], &[]));
        assert!(
            kinds(&v).contains(&"AC5-undecided-after-heal"),
            "{}",
            v.explain()
        );
        assert!(v.anomalies["AC5-undecided-after-heal"][0].contains("p2 voted yes at line 6"));
        let no_heal = verdict(&edit(&[(9, None), (10, None)], &[]));
        assert!(!kinds(&no_heal).contains(&"AC5-undecided-after-heal"));
        assert_eq!(no_heal.details["ac5_checked"], false);
        // A crash after the last heal means faults had not healed at the end.
        let crashed = verdict(&edit(&[(9, None)], &[r#"{"node":"p2","event":"crash"}"#]));
        assert!(!kinds(&crashed).contains(&"AC5-undecided-after-heal"));
    }

    #[test]
    fn final_state_rules() {
        let v = verdict(&edit(
            &[(
                12,
                Some(r#"{"node":"p2","event":"final-state","applied":[]}"#),
            )],
            &[],
        ));
        assert_eq!(kinds(&v), vec!["final-state-missing"], "{}", v.explain());
        assert!(v.anomalies["final-state-missing"][0]
            .contains("participant p2's final state (line 13)"));
        let mut lines = all_yes_abort(Some(r#"{"event":"fault"}"#));
        lines.push(r#"{"node":"p1","event":"final-state","applied":[1]}"#);
        let v = verdict(&lines);
        assert_eq!(
            kinds(&v),
            vec!["final-state-aborted-applied"],
            "{}",
            v.explain()
        );
    }

    #[test]
    fn decision_before_log() {
        let v = verdict(&edit(
            &[
                (
                    6,
                    Some(r#"{"node":"c","event":"decide","txn":1,"decision":"commit"}"#),
                ),
                (
                    7,
                    Some(r#"{"node":"c","event":"log","txn":1,"record":"commit"}"#),
                ),
            ],
            &[],
        ));
        assert_eq!(kinds(&v), vec!["decision-before-log"], "{}", v.explain());
        assert!(v.anomalies["decision-before-log"][0]
            .contains("coordinator c decided commit at line 7"));
        assert!(v.anomalies["decision-before-log"][0].contains("logged at line 8"));
    }

    #[test]
    fn vote_before_log() {
        let v = verdict(&edit(&[(2, None)], &[]));
        assert_eq!(kinds(&v), vec!["vote-before-log"], "{}", v.explain());
        assert!(v.anomalies["vote-before-log"][0].contains("p1 voted yes at line 3"));
    }

    #[test]
    fn decided_alone_after_recovery_in_doubt() {
        // p2 crashes after voting yes; the coordinator never decides; p2 recovers and commits.
        let lines = &[
            r#"{"node":"c","event":"participants","txn":1,"nodes":["p1","p2"]}"#,
            r#"{"node":"c","event":"log","txn":1,"record":"start"}"#,
            r#"{"node":"p1","event":"log","txn":1,"record":"yes"}"#,
            r#"{"node":"p1","event":"vote","txn":1,"vote":"yes"}"#,
            r#"{"node":"p2","event":"log","txn":1,"record":"yes"}"#,
            r#"{"node":"p2","event":"vote","txn":1,"vote":"yes"}"#,
            r#"{"node":"p2","event":"crash"}"#,
            r#"{"node":"p2","event":"recover"}"#,
            r#"{"node":"p2","event":"decide","txn":1,"decision":"commit"}"#,
        ];
        let v = verdict(lines);
        assert!(kinds(&v).contains(&"decided-alone"), "{}", v.explain());
        assert!(v.anomalies["decided-alone"][0].contains("recovered at line 8"));
        // Deciding after the coordinator did is the termination protocol working.
        let mut ok = lines.to_vec();
        ok.insert(8, r#"{"node":"c","event":"log","txn":1,"record":"commit"}"#);
        ok.insert(
            9,
            r#"{"node":"c","event":"decide","txn":1,"decision":"commit"}"#,
        );
        let v = verdict(&ok);
        assert!(!kinds(&v).contains(&"decided-alone"), "{}", v.explain());
    }

    #[test]
    fn bad_input_names_the_line() {
        let cases: &[(&str, &str)] = &[
            ("{\"time\":0,\"node\":\"c\",\"event\":\"crash\"}\nnot json\n", "not valid JSON"),
            ("{\"time\":0,\"node\":\"c\",\"event\":\"crash\"}\n[1]\n", "expected a JSON object"),
            ("{\"time\":0,\"node\":\"c\",\"event\":\"crash\"}\n{\"time\":1,\"event\":\"crash\"}\n", "missing field \"node\""),
            ("{\"time\":0,\"node\":\"c\",\"event\":\"crash\"}\n{\"time\":1,\"node\":\"c\",\"event\":\"explode\"}\n", "unknown event"),
            ("{\"time\":5,\"node\":\"c\",\"event\":\"crash\"}\n{\"time\":1,\"node\":\"c\",\"event\":\"crash\"}\n", "time goes backwards"),
            ("{\"time\":0,\"node\":\"c\",\"event\":\"crash\"}\n{\"time\":1,\"node\":\"c\",\"event\":\"vote\",\"txn\":1,\"vote\":\"maybe\"}\n", "vote must be"),
            ("{\"time\":0,\"node\":\"c\",\"event\":\"crash\"}\n{\"time\":1,\"node\":\"c\",\"event\":\"decide\",\"txn\":[1],\"decision\":\"commit\"}\n", "integer or a string"),
            ("{\"time\":0,\"node\":\"c\",\"event\":\"crash\"}\n{\"time\":-1,\"node\":\"c\",\"event\":\"crash\"}\n", "non-negative"),
        ];
        for (text, problem) in cases {
            let e = parse_events("f", text).expect_err(text);
            assert_eq!(e.line, 2, "{text}: {e}");
            assert!(e.problem.contains(problem), "{text}: {e}");
        }
        let dup = log(&[
            r#"{"node":"c","event":"participants","txn":1,"nodes":["p1"]}"#,
            r#"{"node":"c","event":"participants","txn":1,"nodes":["p2"]}"#,
        ]);
        let e = check_text("f", &dup).expect_err("conflicting participants");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn limits_are_named() {
        let small = Limits {
            events: 2,
            nodes: 2,
            txns: 1,
            list_entries: 2,
        };
        let three = log(&[
            r#"{"node":"a","event":"crash"}"#,
            r#"{"node":"a","event":"recover"}"#,
            r#"{"node":"a","event":"crash"}"#,
        ]);
        let e = parse_events_with_limits("f", &three, small).expect_err("events");
        assert!(
            e.problem.contains("more than 2 events") && e.line == 3,
            "{e}"
        );
        let nodes = log(&[
            r#"{"node":"a","event":"crash"}"#,
            r#"{"node":"b","event":"participants","txn":1,"nodes":["c"]}"#,
        ]);
        let e = parse_events_with_limits("f", &nodes, small).expect_err("nodes");
        assert!(
            e.problem.contains("more than 2 nodes") && e.line == 2,
            "{e}"
        );
        let txns = log(&[
            r#"{"node":"a","event":"commit","txn":1}"#,
            r#"{"node":"a","event":"commit","txn":2}"#,
        ]);
        let e = parse_events_with_limits("f", &txns, small).expect_err("txns");
        assert!(
            e.problem.contains("more than 1 transactions") && e.line == 2,
            "{e}"
        );
        let lists = log(&[r#"{"node":"a","event":"final-state","applied":[1,1,1]}"#]);
        let e = parse_events_with_limits("f", &lists, small).expect_err("lists");
        assert!(e.problem.contains("more than 2 list entries"), "{e}");
    }
}
