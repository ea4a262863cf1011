//! Recovery lines from recorded checkpoints and messages: orphan messages, the maximum
//! recovery line after failures, useless checkpoints (Z-cycles) and the domino effect.
//!
//! # Input
//!
//! The shared event log of [`crate::atomic_commit`] (same line format, same errors, same
//! limits); this checker reads these events and ignores all others:
//!
//! ```text
//! {"time":1,"node":"p1","event":"checkpoint","id":"c1"}     p1 saved its state
//! {"time":2,"node":"p1","event":"send","msg":"m1","to":"p2"}
//! {"time":3,"node":"p2","event":"receive","msg":"m1"}
//! {"time":4,"node":"p1","event":"crash"}                    p1's volatile state is lost
//! ```
//!
//! Checkpoint ids are unique per node; message ids are unique in the log (one send, at most
//! one receive, by the node the send names). Breaking these is a [`BadHistory`] at the line.
//!
//! # Model
//!
//! Every process p has an implicit initial checkpoint `C(p,0)`, its recorded checkpoints
//! `C(p,1..=k)` in log order, and its volatile state `C(p,k+1)`: its state at the end of the
//! log. Interval `I(p,i)` holds p's events between `C(p,i)` and `C(p,i+1)`. A crash (the
//! `crash` event, or the `failed` argument of [`CheckpointGraph::recovery_line`]) loses the
//! volatile state of the processes that crashed, as if they failed at the end of the log.
//!
//! The rollback-dependency graph (Wang's R-graph) has a node per checkpoint and volatile
//! state and an edge `A -> B` when rolling back past A forces rolling back past B:
//! - program order: `C(p,i) -> C(p,i+1)`;
//! - a message sent in `I(p,i)` and received in `I(q,j)`: `C(p,i+1) -> C(q,j+1)` (if p undoes
//!   the send, q must undo the receive).
//!
//! A global checkpoint (one position per process) is consistent when it has no orphan
//! message: one whose receive it records but whose send it does not. A receive with no send
//! anywhere in the log is an orphan in every state that records it.
//!
//! - The maximum recovery line after failures is one reachability pass from the failed
//!   processes' volatile states (and from each receive with no recorded send): per process,
//!   the last node not reached.
//! - `C(p,i)` is useless (in no consistent global checkpoint) exactly when it lies on a
//!   Z-cycle, which in the R-graph means `C(p,i+1)` reaches `C(p,i)`: both are in one strongly
//!   connected component. One SCC pass finds them all.
//!
//! # Checks (anomaly types) of [`check`]
//!
//! - `orphan-message`: in a coordinated global checkpoint (the checkpoints that share an id
//!   across nodes) a node's checkpoint records a receive that the sender's checkpoint of the
//!   same id does not record; or a receive has no recorded send at all. Comparing all ids
//!   with all messages is bounded by [`MAX_ORPHAN_WORK`] (beyond it the verdict gives up).
//! - `useless-checkpoint`: a checkpoint on a Z-cycle, with the cycle as a path of messages.
//! - `domino-effect`: after the failures the log records, the maximum recovery line rolls a
//!   process back to its initial state although it took checkpoints.
//!
//! The recovery line itself is the detail `recovery_line` (node -> `"initial"`, a checkpoint
//! id, or `"volatile"`).

use crate::atomic_commit::{EventKind, Events};
use crate::one_copy::TxnId;
use crate::verdict::{BadHistory, Verdict, MAX_EXPLANATIONS_PER_TYPE};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, EdgeRef};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// Id-by-message comparisons for coordinated global checkpoints before giving up.
pub const MAX_ORPHAN_WORK: u64 = 100_000_000;
/// The checker's name in verdicts.
pub const CHECKER: &str = "recovery-line";

/// One recorded checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub id: TxnId,
    /// The 1-based line of the `checkpoint` event.
    pub line: usize,
}

/// Where a message's send or receive happened: the process, its interval, the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub node: u32,
    /// `i` for interval `I(node,i)`: the number of checkpoints the node took before.
    pub interval: usize,
    pub line: usize,
}

/// One message: its send and (if recorded) its receive.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: TxnId,
    pub send: Option<Place>,
    pub receive: Option<Place>,
}

/// A position in a process: `0` the initial state, `1..=k` its checkpoints, `k+1` volatile.
pub type Position = usize;

/// A chosen checkpoint of one process, by name, for [`CheckpointGraph::orphans`].
#[derive(Clone, Debug, PartialEq)]
pub enum Chosen {
    Initial,
    Checkpoint(TxnId),
    Volatile,
}

/// An orphan message of a global checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Orphan {
    /// Index into [`CheckpointGraph::messages`].
    pub message: usize,
}

/// The checkpoints, messages and R-graph of one log.
#[derive(Clone, Debug)]
pub struct CheckpointGraph {
    /// Process names (all nodes of the log).
    pub nodes: Vec<String>,
    /// Per process, its recorded checkpoints in order (`C(p,1)` first).
    pub checkpoints: Vec<Vec<Checkpoint>>,
    pub messages: Vec<Message>,
    /// Processes with a `crash` event, in order of first crash.
    pub crashed: Vec<u32>,
    /// The R-graph; an edge's weight is the message that caused it (None: program order).
    pub graph: DiGraph<(), Option<u32>>,
    /// Per process, the graph index of `C(p,0)`; `C(p,i)` is `base + i`.
    base: Vec<usize>,
}

/// Builds the checkpoint graph of a parsed log.
pub fn build(ev: &Events) -> Result<CheckpointGraph, BadHistory> {
    let n = ev.nodes.len();
    let mut checkpoints: Vec<Vec<Checkpoint>> = vec![Vec::new(); n];
    let mut messages: Vec<Message> = Vec::new();
    let mut by_msg: FxHashMap<TxnId, usize> = FxHashMap::default();
    let mut ids_seen: FxHashMap<(u32, TxnId), usize> = FxHashMap::default();
    let mut crashed: Vec<u32> = Vec::new();
    // The declared receiver of each message, to check the receive against.
    let mut to: Vec<Option<u32>> = Vec::new();
    for e in &ev.events {
        let Some(node) = e.node else { continue };
        let here = |cps: &Vec<Vec<Checkpoint>>| Place {
            node,
            interval: cps[node as usize].len(),
            line: e.line,
        };
        match &e.kind {
            EventKind::Checkpoint { id } => {
                if let Some(l) = ids_seen.insert((node, id.clone()), e.line) {
                    return Err(ev.bad(
                        e.line,
                        format!(
                            "{} already took checkpoint {id} at line {l}",
                            ev.node_name(node)
                        ),
                    ));
                }
                checkpoints[node as usize].push(Checkpoint {
                    id: id.clone(),
                    line: e.line,
                });
            }
            EventKind::Send { msg, to: dest } => {
                let place = here(&checkpoints);
                let m = message(&mut messages, &mut by_msg, &mut to, msg);
                if let Some(s) = messages[m].send {
                    return Err(ev.bad(
                        e.line,
                        format!("message {msg} already sent at line {}", s.line),
                    ));
                }
                if let Some(r) = messages[m].receive {
                    if r.node != *dest {
                        return Err(receiver_mismatch(ev, e.line, msg, *dest, r));
                    }
                }
                messages[m].send = Some(place);
                to[m] = Some(*dest);
            }
            EventKind::Receive { msg } => {
                let place = here(&checkpoints);
                let m = message(&mut messages, &mut by_msg, &mut to, msg);
                if let Some(r) = messages[m].receive {
                    return Err(ev.bad(
                        e.line,
                        format!("message {msg} already received at line {}", r.line),
                    ));
                }
                if let Some(dest) = to[m] {
                    if dest != node {
                        return Err(ev.bad(
                            e.line,
                            format!(
                                "{} received message {msg}, which was sent to {}",
                                ev.node_name(node),
                                ev.node_name(dest)
                            ),
                        ));
                    }
                }
                messages[m].receive = Some(place);
            }
            EventKind::Crash if !crashed.contains(&node) => crashed.push(node),
            _ => {}
        }
    }
    Ok(assemble(ev, checkpoints, messages, crashed))
}

fn receiver_mismatch(ev: &Events, line: usize, msg: &TxnId, dest: u32, r: Place) -> BadHistory {
    ev.bad(
        line,
        format!(
            "message {msg} is sent to {} but {} received it at line {}",
            ev.node_name(dest),
            ev.node_name(r.node),
            r.line
        ),
    )
}

/// The index of message `id`, created on first sight.
fn message(
    messages: &mut Vec<Message>,
    by_msg: &mut FxHashMap<TxnId, usize>,
    to: &mut Vec<Option<u32>>,
    id: &TxnId,
) -> usize {
    *by_msg.entry(id.clone()).or_insert_with(|| {
        messages.push(Message {
            id: id.clone(),
            send: None,
            receive: None,
        });
        to.push(None);
        messages.len() - 1
    })
}

/// Lays out the R-graph: each process's positions consecutively, then the edges.
fn assemble(
    ev: &Events,
    checkpoints: Vec<Vec<Checkpoint>>,
    messages: Vec<Message>,
    crashed: Vec<u32>,
) -> CheckpointGraph {
    let mut graph: DiGraph<(), Option<u32>> = DiGraph::new();
    let mut base = Vec::with_capacity(checkpoints.len());
    for cps in &checkpoints {
        base.push(graph.node_count());
        // Initial state, checkpoints, volatile state.
        for i in 0..cps.len() + 2 {
            let node = graph.add_node(());
            if i > 0 {
                graph.add_edge(NodeIndex::new(node.index() - 1), node, None);
            }
        }
    }
    for (m, msg) in messages.iter().enumerate() {
        if let (Some(s), Some(r)) = (msg.send, msg.receive) {
            let from = NodeIndex::new(base[s.node as usize] + s.interval + 1);
            let to = NodeIndex::new(base[r.node as usize] + r.interval + 1);
            graph.add_edge(from, to, Some(m as u32));
        }
    }
    CheckpointGraph {
        nodes: ev.nodes.clone(),
        checkpoints,
        messages,
        crashed,
        graph,
        base,
    }
}

/// The maximum recovery line: per process, the position it restarts from.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveryLine {
    /// Per process, its [`Position`].
    pub positions: Vec<Position>,
    /// Processes rolled back to their initial state although they took checkpoints.
    pub domino: Vec<u32>,
}

impl CheckpointGraph {
    fn graph_node(&self, p: u32, pos: Position) -> NodeIndex {
        NodeIndex::new(self.base[p as usize] + pos)
    }

    /// The volatile position `k+1` of process `p`.
    pub fn volatile(&self, p: u32) -> Position {
        self.checkpoints.get(p as usize).map_or(0, |c| c.len() + 1)
    }

    /// A position in words: `initial`, `checkpoint c1 (line 4)`, `volatile state`.
    pub fn describe(&self, p: u32, pos: Position) -> String {
        if pos == 0 {
            "initial state".into()
        } else if pos == self.volatile(p) {
            "volatile state".into()
        } else {
            match self.checkpoints[p as usize].get(pos - 1) {
                Some(c) => format!("checkpoint {} (line {})", c.id, c.line),
                None => "?".into(),
            }
        }
    }

    /// A position as the `recovery_line` detail writes it.
    fn label(&self, p: u32, pos: Position) -> serde_json::Value {
        if pos == 0 {
            "initial".into()
        } else if pos == self.volatile(p) {
            "volatile".into()
        } else {
            match self.checkpoints[p as usize].get(pos - 1) {
                Some(c) => id_json(&c.id),
                None => serde_json::Value::Null,
            }
        }
    }

    /// The position of a chosen checkpoint of process `p`.
    fn position(&self, p: u32, c: &Chosen) -> Result<Position, String> {
        match c {
            Chosen::Initial => Ok(0),
            Chosen::Volatile => Ok(self.volatile(p)),
            Chosen::Checkpoint(id) => self.checkpoints[p as usize]
                .iter()
                .position(|cp| &cp.id == id)
                .map(|i| i + 1)
                .ok_or_else(|| format!("{} took no checkpoint {id}", self.nodes[p as usize])),
        }
    }

    /// Positions from named choices; processes not named keep their volatile state.
    pub fn positions(&self, chosen: &[(&str, Chosen)]) -> Result<Vec<Position>, String> {
        let mut out: Vec<Position> = (0..self.nodes.len() as u32)
            .map(|p| self.volatile(p))
            .collect();
        for (name, c) in chosen {
            let p = self
                .nodes
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| format!("no node {name:?} in the log"))?;
            out[p] = self.position(p as u32, c)?;
        }
        Ok(out)
    }

    /// Whether message `m` is an orphan of the global checkpoint at `positions`: its receive
    /// recorded, its send not (or never sent).
    pub fn is_orphan(&self, m: usize, positions: &[Position]) -> bool {
        let Some(msg) = self.messages.get(m) else {
            return false;
        };
        let Some(r) = msg.receive else { return false };
        let recorded = |pl: Place| {
            positions
                .get(pl.node as usize)
                .is_some_and(|&g| pl.interval < g)
        };
        recorded(r) && msg.send.is_none_or(|s| !recorded(s))
    }

    /// The orphan messages of the global checkpoint that takes `chosen` per node (nodes not
    /// named keep their volatile state). Errors name an unknown node or checkpoint.
    pub fn orphans(&self, chosen: &[(&str, Chosen)]) -> Result<Vec<Orphan>, String> {
        let positions = self.positions(chosen)?;
        Ok((0..self.messages.len())
            .filter(|&m| self.is_orphan(m, &positions))
            .map(|message| Orphan { message })
            .collect())
    }

    /// The maximum recovery line after processes `failed` lose their volatile state: one
    /// reachability pass from their volatile states (and from every receive that has no
    /// recorded send, which no consistent state can hold).
    pub fn recovery_line(&self, failed: &[u32]) -> RecoveryLine {
        let mut dfs = Dfs::empty(&self.graph);
        let roots = failed
            .iter()
            .filter(|&&p| (p as usize) < self.nodes.len())
            .map(|&p| self.graph_node(p, self.volatile(p)))
            .chain(
                self.messages
                    .iter()
                    .filter(|m| m.send.is_none())
                    .filter_map(|m| m.receive.map(|r| self.graph_node(r.node, r.interval + 1))),
            );
        for root in roots {
            dfs.move_to(root);
            while dfs.next(&self.graph).is_some() {}
        }
        let mut positions = Vec::with_capacity(self.nodes.len());
        let mut domino = Vec::new();
        for p in 0..self.nodes.len() as u32 {
            // Position 0 is never reached: no edge enters an initial state.
            let pos = (0..=self.volatile(p))
                .rev()
                .find(|&i| !dfs.discovered.contains(self.graph_node(p, i).index()))
                .unwrap_or(0);
            if pos == 0 && !self.checkpoints[p as usize].is_empty() {
                domino.push(p);
            }
            positions.push(pos);
        }
        RecoveryLine { positions, domino }
    }

    /// Useless checkpoints, as (process, position): those on a Z-cycle, found as a
    /// checkpoint in one strongly connected component with its successor.
    pub fn useless_checkpoints(&self) -> Vec<(u32, Position)> {
        let mut component = vec![0usize; self.graph.node_count()];
        for (c, scc) in petgraph::algo::kosaraju_scc(&self.graph).iter().enumerate() {
            for n in scc {
                component[n.index()] = c;
            }
        }
        let mut out = Vec::new();
        for p in 0..self.nodes.len() as u32 {
            for pos in 1..self.volatile(p) {
                let here = self.graph_node(p, pos).index();
                if component[here] == component[here + 1] {
                    out.push((p, pos));
                }
            }
        }
        out
    }

    /// A shortest R-graph path from `from` to `to` (breadth first), as its edges' messages.
    fn path_messages(&self, from: NodeIndex, to: NodeIndex) -> Vec<u32> {
        let mut pred: Vec<Option<(NodeIndex, Option<u32>)>> = vec![None; self.graph.node_count()];
        let mut queue = VecDeque::from([from]);
        let mut seen = vec![false; self.graph.node_count()];
        seen[from.index()] = true;
        while let Some(n) = queue.pop_front() {
            if n == to {
                break;
            }
            for e in self.graph.edges(n) {
                let t = e.target();
                if !seen[t.index()] {
                    seen[t.index()] = true;
                    pred[t.index()] = Some((n, *e.weight()));
                    queue.push_back(t);
                }
            }
        }
        let mut msgs = Vec::new();
        let mut at = to;
        while let Some((p, m)) = pred[at.index()] {
            msgs.extend(m);
            at = p;
        }
        msgs.reverse();
        msgs
    }

    /// A message in words: `m1 (p1 line 3 -> p2 line 5)`.
    fn describe_message(&self, m: u32) -> String {
        let Some(msg) = self.messages.get(m as usize) else {
            return "?".into();
        };
        let end = |pl: Option<Place>| match pl {
            Some(pl) => format!("{} line {}", self.nodes[pl.node as usize], pl.line),
            None => "unrecorded".into(),
        };
        format!("{} ({} -> {})", msg.id, end(msg.send), end(msg.receive))
    }
}

/// Checks a parsed log (checks in the module docs).
pub fn check(ev: &Events) -> Result<Verdict, BadHistory> {
    let g = build(ev)?;
    let mut v = Verdict::new(CHECKER);
    check_unsent_receives(&g, &mut v);
    check_coordinated_orphans(&g, &mut v);
    check_useless(&g, &mut v);
    let line = g.recovery_line(&g.crashed);
    for &p in &line.domino {
        v.anomaly(
            "domino-effect",
            format!(
                "{} rolls back to its initial state, discarding all {} of its checkpoints, after the failure of {}",
                g.nodes[p as usize],
                g.checkpoints[p as usize].len(),
                names(&g, &g.crashed)
            ),
        );
    }
    let mut detail = serde_json::Map::new();
    for (p, &pos) in line.positions.iter().enumerate() {
        detail.insert(g.nodes[p].clone(), g.label(p as u32, pos));
    }
    v.detail("recovery_line", serde_json::Value::Object(detail));
    v.detail("failed", names(&g, &g.crashed));
    v.detail(
        "checkpoints",
        g.checkpoints.iter().map(Vec::len).sum::<usize>(),
    );
    v.detail("messages", g.messages.len());
    Ok(v)
}

/// An id as JSON: an integer stays a number, a string a string.
fn id_json(id: &TxnId) -> serde_json::Value {
    match id {
        TxnId::Int(i) => i64::try_from(*i).map_or_else(|_| i.to_string().into(), Into::into),
        TxnId::Str(s) => s.as_str().into(),
    }
}

fn names(g: &CheckpointGraph, ps: &[u32]) -> String {
    if ps.is_empty() {
        return "no process".into();
    }
    ps.iter()
        .map(|&p| g.nodes[p as usize].as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A receive whose send nobody recorded is an orphan in every state that records it.
fn check_unsent_receives(g: &CheckpointGraph, v: &mut Verdict) {
    for msg in &g.messages {
        if let (None, Some(r)) = (msg.send, msg.receive) {
            v.anomaly(
                "orphan-message",
                format!(
                    "{} received message {} at line {} but no send of it is recorded: every checkpoint of {} after line {} is inconsistent",
                    g.nodes[r.node as usize], msg.id, r.line, g.nodes[r.node as usize], r.line
                ),
            );
        }
    }
}

/// Orphans in each coordinated global checkpoint (checkpoints sharing an id across nodes),
/// bounded by [`MAX_ORPHAN_WORK`].
fn check_coordinated_orphans(g: &CheckpointGraph, v: &mut Verdict) {
    // Per id, the position of that checkpoint on each node that took it, in order of first use.
    let mut order: Vec<&TxnId> = Vec::new();
    let mut by_id: FxHashMap<&TxnId, Vec<(u32, Position)>> = FxHashMap::default();
    for (p, cps) in g.checkpoints.iter().enumerate() {
        for (i, c) in cps.iter().enumerate() {
            let e = by_id.entry(&c.id).or_default();
            if e.is_empty() {
                order.push(&c.id);
            }
            e.push((p as u32, i + 1));
        }
    }
    order.retain(|id| by_id.get(id).is_some_and(|v| v.len() > 1));
    let work = (order.len() as u64).saturating_mul(g.messages.len() as u64);
    v.detail("global_checkpoints", order.len());
    if work > MAX_ORPHAN_WORK {
        v.give_up(format!(
            "orphan search over {} global checkpoints x {} messages exceeds the limit of {MAX_ORPHAN_WORK}",
            order.len(),
            g.messages.len()
        ));
        return;
    }
    let mut positions: Vec<Option<Position>> = vec![None; g.nodes.len()];
    for id in order {
        let members = by_id.get(id).map_or(&[][..], |v| v);
        for &(p, pos) in members {
            positions[p as usize] = Some(pos);
        }
        for msg in &g.messages {
            let (Some(s), Some(r)) = (msg.send, msg.receive) else {
                continue;
            };
            let (Some(gs), Some(gr)) = (positions[s.node as usize], positions[r.node as usize])
            else {
                continue;
            };
            if r.interval < gr && s.interval >= gs {
                v.anomaly(
                    "orphan-message",
                    format!(
                        "global checkpoint {id}: {}'s {} records receiving message {} (line {}) but {}'s {} does not record sending it (line {})",
                        g.nodes[r.node as usize],
                        g.describe(r.node, gr),
                        msg.id,
                        r.line,
                        g.nodes[s.node as usize],
                        g.describe(s.node, gs),
                        s.line
                    ),
                );
            }
        }
        for &(p, _) in members {
            positions[p as usize] = None;
        }
    }
}

/// Useless checkpoints, each explained by the Z-cycle's messages (a sample of them).
fn check_useless(g: &CheckpointGraph, v: &mut Verdict) {
    let useless = g.useless_checkpoints();
    v.detail("useless_checkpoints", useless.len());
    for (k, &(p, pos)) in useless.iter().enumerate() {
        let cycle = if k < MAX_EXPLANATIONS_PER_TYPE {
            let msgs = g.path_messages(g.graph_node(p, pos + 1), g.graph_node(p, pos));
            let msgs: Vec<String> = msgs.iter().map(|&m| g.describe_message(m)).collect();
            format!(": Z-cycle through messages {}", msgs.join(", "))
        } else {
            String::new()
        };
        v.anomaly(
            "useless-checkpoint",
            format!(
                "{}'s {} is in no consistent global checkpoint{cycle}",
                g.nodes[p as usize],
                g.describe(p, pos)
            ),
        );
    }
}

/// Parses and checks in one step.
pub fn check_text(file: &str, text: &str) -> Result<Verdict, BadHistory> {
    check(&crate::atomic_commit::parse_events(file, text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic_commit::{parse_events, test_log};
    use crate::verdict::Validity;

    fn graph(lines: &[&str]) -> CheckpointGraph {
        build(&parse_events("t", &test_log(lines)).expect("parses")).expect("builds")
    }

    fn verdict(lines: &[&str]) -> Verdict {
        check_text("t", &test_log(lines)).expect("valid log")
    }

    fn node(g: &CheckpointGraph, name: &str) -> u32 {
        g.nodes.iter().position(|n| n == name).expect("node") as u32
    }

    /// The textbook orphan: q checkpoints after receiving m, p's checkpoint precedes the send.
    const ORPHAN: &[&str] = &[
        r#"{"node":"p","event":"checkpoint","id":"c1"}"#,
        r#"{"node":"p","event":"send","msg":"m","to":"q"}"#,
        r#"{"node":"q","event":"receive","msg":"m"}"#,
        r#"{"node":"q","event":"checkpoint","id":"c1"}"#,
        r#"{"node":"p","event":"crash"}"#,
    ];

    #[test]
    fn orphan_message_in_a_chosen_global_checkpoint() {
        let g = graph(ORPHAN);
        let c1 = Chosen::Checkpoint(TxnId::Str("c1".into()));
        let orphans = g
            .orphans(&[("p", c1.clone()), ("q", c1.clone())])
            .expect("known");
        assert_eq!(orphans, vec![Orphan { message: 0 }]);
        assert!(g
            .orphans(&[("p", Chosen::Volatile), ("q", c1.clone())])
            .expect("known")
            .is_empty());
        assert!(g
            .orphans(&[("p", c1.clone()), ("q", Chosen::Initial)])
            .expect("known")
            .is_empty());
        assert!(g.orphans(&[("r", Chosen::Initial)]).is_err());
        assert!(g
            .orphans(&[("p", Chosen::Checkpoint(TxnId::Int(9)))])
            .is_err());
        // The checker finds it in the coordinated global checkpoint c1, and q must roll back.
        let v = verdict(ORPHAN);
        assert!(
            v.anomaly_types.contains(&"orphan-message".to_string()),
            "{}",
            v.explain()
        );
        let proof = &v.anomalies["orphan-message"][0];
        assert!(proof.contains("global checkpoint \"c1\": q's checkpoint \"c1\" (line 4) records receiving message \"m\" (line 3)"), "{proof}");
        assert_eq!(
            v.details["recovery_line"],
            serde_json::json!({"p": "c1", "q": "initial"})
        );
    }

    #[test]
    fn receive_without_a_recorded_send_is_an_orphan() {
        let v = verdict(&[
            r#"{"node":"q","event":"receive","msg":"m"}"#,
            r#"{"node":"q","event":"checkpoint","id":"c1"}"#,
        ]);
        assert_eq!(
            v.anomaly_types,
            vec!["domino-effect", "orphan-message"],
            "{}",
            v.explain()
        );
        assert!(v.anomalies["orphan-message"][0].contains("line 1"));
        assert_eq!(
            v.details["recovery_line"],
            serde_json::json!({"q": "initial"})
        );
    }

    /// The domino effect: every checkpoint follows a receive whose send follows the other
    /// process's last checkpoint, so p's failure cascades both back to the start.
    const DOMINO: &[&str] = &[
        r#"{"node":"q","event":"send","msg":"m0","to":"p"}"#,
        r#"{"node":"p","event":"receive","msg":"m0"}"#,
        r#"{"node":"p","event":"checkpoint","id":"p1"}"#,
        r#"{"node":"p","event":"send","msg":"m1","to":"q"}"#,
        r#"{"node":"q","event":"receive","msg":"m1"}"#,
        r#"{"node":"q","event":"checkpoint","id":"q1"}"#,
        r#"{"node":"q","event":"send","msg":"m2","to":"p"}"#,
        r#"{"node":"p","event":"receive","msg":"m2"}"#,
        r#"{"node":"p","event":"checkpoint","id":"p2"}"#,
        r#"{"node":"p","event":"send","msg":"m3","to":"q"}"#,
        r#"{"node":"q","event":"receive","msg":"m3"}"#,
        r#"{"node":"q","event":"checkpoint","id":"q2"}"#,
        r#"{"node":"q","event":"send","msg":"m4","to":"p"}"#,
        r#"{"node":"p","event":"receive","msg":"m4"}"#,
        r#"{"node":"p","event":"crash"}"#,
    ];

    #[test]
    fn domino_effect_rolls_both_back_to_the_start() {
        let g = graph(DOMINO);
        let line = g.recovery_line(&[node(&g, "p")]);
        assert_eq!(line.positions, vec![0, 0]);
        assert_eq!(line.domino.len(), 2);
        let v = verdict(DOMINO);
        assert!(
            v.anomaly_types.contains(&"domino-effect".to_string()),
            "{}",
            v.explain()
        );
        assert_eq!(
            v.details["recovery_line"],
            serde_json::json!({"p": "initial", "q": "initial"})
        );
        assert!(v.anomalies["domino-effect"][0].contains("after the failure of p"));
        // Every checkpoint here is on a Z-cycle.
        assert_eq!(g.useless_checkpoints().len(), 4);
    }

    #[test]
    fn without_the_last_messages_the_line_stops_early() {
        // Cut DOMINO after p2: p's failure only undoes p's volatile state. (q is node 0.)
        let g = graph(&DOMINO[..9]);
        let (p, q) = (node(&g, "p") as usize, node(&g, "q") as usize);
        let line = g.recovery_line(&[p as u32]);
        assert_eq!(
            (line.positions[p], line.positions[q]),
            (2, 2),
            "p at p2, q volatile"
        );
        assert!(line.domino.is_empty());
        // q failing undoes m2's send, so p2, then m1's send, q1, m0's send, p1: dominoes.
        let line = g.recovery_line(&[q as u32]);
        assert_eq!(line.positions, vec![0, 0]);
        assert_eq!(line.domino.len(), 2);
    }

    /// A Z-cycle (Netzer and Xu): q sends m2 before receiving m1, p receives m2 before its
    /// checkpoint c1 and sends m1 after it. No causal path, yet c1 is useless.
    const Z_CYCLE: &[&str] = &[
        r#"{"node":"q","event":"send","msg":"m2","to":"p"}"#,
        r#"{"node":"p","event":"receive","msg":"m2"}"#,
        r#"{"node":"p","event":"checkpoint","id":"c1"}"#,
        r#"{"node":"p","event":"send","msg":"m1","to":"q"}"#,
        r#"{"node":"p","event":"checkpoint","id":"c2"}"#,
        r#"{"node":"q","event":"receive","msg":"m1"}"#,
        r#"{"node":"q","event":"checkpoint","id":"d1"}"#,
    ];

    #[test]
    fn z_cycle_makes_a_checkpoint_useless() {
        let g = graph(Z_CYCLE);
        assert_eq!(g.useless_checkpoints(), vec![(node(&g, "p"), 1)]);
        let v = verdict(Z_CYCLE);
        assert_eq!(
            v.anomaly_types,
            vec!["useless-checkpoint"],
            "{}",
            v.explain()
        );
        let proof = &v.anomalies["useless-checkpoint"][0];
        assert!(proof.contains("p's checkpoint \"c1\" (line 3)"), "{proof}");
        assert!(
            proof.contains("\"m1\" (p line 4 -> q line 6), \"m2\" (q line 1 -> p line 2)"),
            "{proof}"
        );
        // No crash recorded: nobody rolls back.
        assert_eq!(
            v.details["recovery_line"],
            serde_json::json!({"q": "volatile", "p": "volatile"})
        );
        // p failing loses only its volatile state: it restarts from c2.
        assert_eq!(
            g.recovery_line(&[node(&g, "p")]).positions[node(&g, "p") as usize],
            2
        );
    }

    #[test]
    fn coordinated_checkpoints_are_clean() {
        let v = verdict(&[
            r#"{"node":"p","event":"checkpoint","id":1}"#,
            r#"{"node":"q","event":"checkpoint","id":1}"#,
            r#"{"node":"p","event":"send","msg":1,"to":"q"}"#,
            r#"{"node":"q","event":"receive","msg":1}"#,
            r#"{"node":"p","event":"checkpoint","id":2}"#,
            r#"{"node":"q","event":"checkpoint","id":2}"#,
            r#"{"node":"q","event":"send","msg":2,"to":"p"}"#,
            r#"{"node":"q","event":"crash"}"#,
        ]);
        assert_eq!(v.valid, Validity::Valid, "{}", v.explain());
        assert_eq!(
            v.details["recovery_line"],
            serde_json::json!({"p": "volatile", "q": 2})
        );
        assert_eq!(v.details["global_checkpoints"], 2);
    }

    #[test]
    fn bad_messages_name_the_line() {
        let cases: &[(&[&str], &str)] = &[
            (
                &[
                    r#"{"node":"p","event":"checkpoint","id":1}"#,
                    r#"{"node":"p","event":"checkpoint","id":1}"#,
                ],
                "already took checkpoint 1 at line 1",
            ),
            (
                &[
                    r#"{"node":"p","event":"send","msg":1,"to":"q"}"#,
                    r#"{"node":"p","event":"send","msg":1,"to":"q"}"#,
                ],
                "already sent",
            ),
            (
                &[
                    r#"{"node":"p","event":"send","msg":1,"to":"q"}"#,
                    r#"{"node":"r","event":"receive","msg":1}"#,
                ],
                "which was sent to q",
            ),
            (
                &[
                    r#"{"node":"r","event":"receive","msg":1}"#,
                    r#"{"node":"p","event":"send","msg":1,"to":"q"}"#,
                ],
                "but r received it",
            ),
            (
                &[
                    r#"{"node":"q","event":"receive","msg":1}"#,
                    r#"{"node":"q","event":"receive","msg":1}"#,
                ],
                "already received",
            ),
        ];
        for (lines, problem) in cases {
            let e = check_text("t", &test_log(lines)).expect_err(problem);
            assert_eq!(e.line, 2, "{e}");
            assert!(e.problem.contains(problem), "{e}");
        }
    }
}
