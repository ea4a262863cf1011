//! Finding and classifying dependency cycles.
//!
//! Every cycle lives inside one strongly connected component, so the search runs per component
//! and never looks at the acyclic rest. Within a component it goes from the most to the least
//! damning evidence: cycles of data edges only (ww, wr, rw), then cycles that also need process
//! edges, then realtime edges. In each of those tiers it looks for G0 (ww only), G1c (ww and
//! wr), G-single (exactly one rw), G-nonadjacent (several rw, none adjacent) and G2-item (any rw),
//! each by restricting the edge kinds, recomputing components, and searching breadth-first from
//! an anchor edge back to its tail, which gives the shortest cycle through that edge.
//!
//! Existence is cheap: any edge inside a non-trivial component lies on a cycle. Precise
//! classification can cost more, so the anchors tried per search are bounded, and an exhausted
//! bound is reported as an incomplete search rather than as the absence of the anomaly.

use super::graph::{Graph, PROCESS, REALTIME, RW, WR, WW};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::time::Instant;

/// Anchor edges tried per (component, tier, class) before the search is called incomplete.
pub const MAX_ANCHORS: usize = 256;

/// A cycle: `nodes[i] --kinds[i]--> nodes[(i + 1) % n]`, one kind per edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    pub nodes: Vec<u32>,
    pub kinds: Vec<u8>,
}

impl Cycle {
    /// The anomaly this cycle witnesses: G0, G1c, G-single, G-nonadjacent or G2-item, with
    /// `-process` or `-realtime` when it needs such edges.
    pub fn class(&self) -> String {
        let n = self.kinds.len();
        let rw = self.kinds.iter().filter(|&&k| k == RW).count();
        let base = match rw {
            0 if self.kinds.contains(&WR) => "G1c",
            0 => "G0",
            1 => "G-single",
            _ if (0..n).all(|i| !(self.kinds[i] == RW && self.kinds[(i + 1) % n] == RW)) => {
                "G-nonadjacent"
            }
            _ => "G2-item",
        };
        let suffix = if self.kinds.contains(&REALTIME) {
            "-realtime"
        } else if self.kinds.contains(&PROCESS) {
            "-process"
        } else {
            ""
        };
        format!("{base}{suffix}")
    }
}

/// The best single kind to show for an edge with kinds `mask`, among `allowed`: data kinds
/// first (they make the stronger claim), and rw last among them (fewer rw, stronger class).
fn pick(mask: u8, allowed: u8) -> u8 {
    let m = mask & allowed;
    [WW, WR, RW, PROCESS, REALTIME]
        .into_iter()
        .find(|k| m & k != 0)
        .unwrap_or(0)
}

/// What one search produced.
#[derive(Default)]
pub struct Found {
    pub cycles: Vec<Cycle>,
    /// Class names whose search hit its anchor bound or the deadline.
    pub incomplete: Vec<String>,
    pub timed_out: bool,
}

/// The tiers: extra edge kinds allowed, and the kind a cycle must use to belong to the tier.
const TIERS: [(u8, u8, &str); 3] = [
    (0, 0, ""),
    (PROCESS, PROCESS, "-process"),
    (PROCESS | REALTIME, REALTIME, "-realtime"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Any cycle within the mask that uses the anchor kind.
    Any,
    /// Exactly one rw edge.
    SingleRw,
    /// At least two rw edges, no two adjacent.
    Nonadjacent,
}

/// (name, data kinds allowed, anchor kind in the data tier, shape)
const CLASSES: [(&str, u8, u8, Shape); 5] = [
    ("G0", WW, WW, Shape::Any),
    ("G1c", WW | WR, WR, Shape::Any),
    ("G-single", WW | WR | RW, RW, Shape::SingleRw),
    ("G-nonadjacent", WW | WR | RW, RW, Shape::Nonadjacent),
    ("G2-item", WW | WR | RW, RW, Shape::Any),
];

/// Searches one strongly connected component (sorted node list) of the full graph for the
/// classes `wanted` accepts (those that would rule out a model being checked).
pub fn search_component(
    g: &Graph,
    scc: &[u32],
    deadline: Option<Instant>,
    wanted: &dyn Fn(&str) -> bool,
) -> Found {
    let mut found = Found::default();
    let mut classes_found: Vec<String> = Vec::new();
    for (extra, require, suffix) in TIERS {
        for (name, data, anchor_kind, shape) in CLASSES {
            let class = format!("{name}{suffix}");
            if classes_found.contains(&class) || shadowed(&class, &classes_found) || !wanted(&class)
            {
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                found.timed_out = true;
                found.incomplete.push(class);
                continue;
            }
            let mask = data | extra;
            let anchor = if require != 0 { require } else { anchor_kind };
            let mut search = Search {
                g,
                mask,
                shape,
                anchor,
                deadline,
            };
            let (cycles, complete) = search.run(scc, &class);
            for c in cycles {
                let cls = c.class();
                if !classes_found.contains(&cls) && !shadowed(&cls, &classes_found) {
                    classes_found.push(cls);
                    found.cycles.push(c);
                }
            }
            if !complete && !classes_found.contains(&class) {
                found.incomplete.push(class);
            }
        }
    }
    found
}

/// Whether `class` is a process or realtime variant of a class already witnessed by a cycle
/// that needs fewer kinds of edges: it would add nothing but a weaker proof.
fn shadowed(class: &str, found: &[String]) -> bool {
    let weaker: Vec<String> = if let Some(base) = class.strip_suffix("-realtime") {
        vec![base.to_string(), format!("{base}-process")]
    } else if let Some(base) = class.strip_suffix("-process") {
        vec![base.to_string()]
    } else {
        Vec::new()
    };
    weaker.iter().any(|w| found.contains(w))
}

struct Search<'a> {
    g: &'a Graph,
    mask: u8,
    shape: Shape,
    anchor: u8,
    deadline: Option<Instant>,
}

impl Search<'_> {
    /// Cycles found (stopping at the first of class `want`) and whether the search was complete.
    fn run(&mut self, scc: &[u32], want: &str) -> (Vec<Cycle>, bool) {
        let mut out = Vec::new();
        let mut tried = 0usize;
        for sub in self.g.components(self.mask, Some(scc)) {
            let member: FxHashMap<u32, ()> = sub.iter().map(|&n| (n, ())).collect();
            for &a in &sub {
                for (b, kinds) in self.g.out(a) {
                    if kinds & self.anchor == 0
                        || kinds & self.mask == 0
                        || !member.contains_key(&b)
                    {
                        continue;
                    }
                    if tried >= MAX_ANCHORS || self.deadline.is_some_and(|d| Instant::now() >= d) {
                        return (out, false);
                    }
                    tried += 1;
                    if let Some(c) = self.through(a, b, &member) {
                        let hit = c.class() == want;
                        out.push(c);
                        if hit {
                            return (out, true);
                        }
                    }
                }
            }
        }
        (out, true)
    }

    /// The shortest cycle of this search's shape through the anchor edge `a -> b`.
    fn through(&self, a: u32, b: u32, member: &FxHashMap<u32, ()>) -> Option<Cycle> {
        let anchor_kind = pick(self.g.kinds(a, b) & self.anchor, self.anchor);
        match self.shape {
            Shape::Any => {
                let path = bfs(self.g, b, a, self.mask, member)?;
                Some(close(self.g, a, anchor_kind, path, self.mask))
            }
            Shape::SingleRw => {
                let rest = self.mask & !RW;
                if self.anchor != RW {
                    // Tier anchors (process/realtime): the single rw must come from the path.
                    let path = bfs(self.g, b, a, self.mask, member)?;
                    return Some(close(self.g, a, anchor_kind, path, self.mask));
                }
                let path = bfs(self.g, b, a, rest, member)?;
                Some(close(self.g, a, RW, path, rest))
            }
            Shape::Nonadjacent => {
                let g = self.g;
                if self.g.kinds(a, b) & RW == 0 {
                    let path = bfs(g, b, a, self.mask, member)?;
                    return Some(close(g, a, anchor_kind, path, self.mask));
                }
                nonadjacent(g, a, b, self.mask, member)
            }
        }
    }
}

/// Shortest path `from ... to` using edges with a kind in `mask`, within `member`.
fn bfs(g: &Graph, from: u32, to: u32, mask: u8, member: &FxHashMap<u32, ()>) -> Option<Vec<u32>> {
    let mut parent: FxHashMap<u32, u32> = FxHashMap::default();
    parent.insert(from, from);
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut path = vec![to];
            let mut cur = to;
            while cur != from {
                cur = parent[&cur];
                path.push(cur);
            }
            path.reverse();
            return Some(path);
        }
        for (m, kinds) in g.out(n) {
            if kinds & mask != 0 && member.contains_key(&m) && !parent.contains_key(&m) {
                parent.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    None
}

/// The cycle `a -anchor-> path[0]=b -> ... -> path[last]=a`.
fn close(g: &Graph, a: u32, anchor_kind: u8, path: Vec<u32>, mask: u8) -> Cycle {
    debug_assert_eq!(path.last(), Some(&a));
    let mut nodes = vec![a];
    let mut kinds = vec![anchor_kind];
    for w in path.windows(2) {
        nodes.push(w[0]);
        kinds.push(pick(g.kinds(w[0], w[1]), mask));
    }
    Cycle { nodes, kinds }
}

/// A cycle through rw edge `a -> b` with at least one more rw edge and no two rw edges
/// adjacent: breadth-first over (node, last edge was rw, a second rw was taken).
/// (node, the last edge was rw, a second rw edge was taken)
type State = (u32, bool, bool);
/// Breadth-first parents: state -> (previous state, kind of the edge taken).
type Parents = FxHashMap<State, (State, u8)>;

fn nonadjacent(g: &Graph, a: u32, b: u32, mask: u8, member: &FxHashMap<u32, ()>) -> Option<Cycle> {
    let start: State = (b, true, false);
    let mut parent: Parents = FxHashMap::default();
    parent.insert(start, (start, 0));
    let mut queue = VecDeque::from([start]);
    while let Some(s @ (n, last_rw, second)) = queue.pop_front() {
        for (m, kinds) in g.out(n) {
            if !member.contains_key(&m) {
                continue;
            }
            let plain = pick(kinds & !RW, mask & !RW);
            let mut steps: Vec<(State, u8)> = Vec::with_capacity(2);
            if plain != 0 {
                steps.push(((m, false, second), plain));
            }
            if !last_rw && kinds & RW != 0 && mask & RW != 0 {
                steps.push(((m, true, true), RW));
            }
            for (next, kind) in steps {
                // The edge closing the cycle into `a` must not be rw: `a -> b` is.
                if next.0 == a && (next.1 || !next.2) {
                    continue;
                }
                if parent.contains_key(&next) {
                    continue;
                }
                parent.insert(next, (s, kind));
                if next.0 == a {
                    return Some(unwind(a, start, next, &parent));
                }
                queue.push_back(next);
            }
        }
    }
    None
}

fn unwind(a: u32, start: State, end: State, parent: &Parents) -> Cycle {
    let mut rev: Vec<(u32, u8)> = Vec::new();
    let mut cur = end;
    while cur != start {
        let (prev, kind) = parent[&cur];
        rev.push((prev.0, kind));
        cur = prev;
    }
    rev.reverse();
    let mut nodes = vec![a];
    let mut kinds = vec![RW];
    for (n, k) in rev {
        nodes.push(n);
        kinds.push(k);
    }
    Cycle { nodes, kinds }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::graph::ALL;
    fn graph(n: usize, edges: &[(u32, u32, u8)]) -> Graph {
        Graph::from_edges(n, edges)
    }

    fn classes(g: &Graph) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for scc in g.components(ALL, None) {
            let f = search_component(g, &scc, None, &|_| true);
            assert!(f.incomplete.is_empty(), "{:?}", f.incomplete);
            for c in f.cycles {
                let n = c.nodes.len();
                for i in 0..n {
                    let (x, y) = (c.nodes[i], c.nodes[(i + 1) % n]);
                    assert!(g.kinds(x, y) & c.kinds[i] != 0, "cycle uses a real edge");
                }
                out.push(c.class());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn classifies_each_shape() {
        assert_eq!(classes(&graph(2, &[(0, 1, WW), (1, 0, WW)])), vec!["G0"]);
        assert_eq!(classes(&graph(2, &[(0, 1, WW), (1, 0, WR)])), vec!["G1c"]);
        assert_eq!(
            classes(&graph(2, &[(0, 1, RW), (1, 0, WR)])),
            vec!["G-single"]
        );
        assert_eq!(
            classes(&graph(2, &[(0, 1, RW), (1, 0, RW)])),
            vec!["G2-item"]
        );
        assert_eq!(
            classes(&graph(4, &[(0, 1, RW), (1, 2, WR), (2, 3, RW), (3, 0, WW)])),
            vec!["G-nonadjacent"]
        );
        assert_eq!(
            classes(&graph(2, &[(0, 1, RW), (1, 0, REALTIME)])),
            vec!["G-single-realtime"]
        );
        assert_eq!(
            classes(&graph(3, &[(0, 1, WW), (1, 2, PROCESS), (2, 0, WW)])),
            vec!["G0-process"]
        );
    }

    #[test]
    fn prefers_the_strongest_evidence_in_one_component() {
        // A G0 cycle 0<->1 and, through 2, a realtime cycle: both reported, G0 first.
        let g = graph(3, &[(0, 1, WW), (1, 0, WW), (1, 2, RW), (2, 0, REALTIME)]);
        let cs = classes(&g);
        assert!(cs.contains(&"G0".to_string()), "{cs:?}");
        assert!(cs.contains(&"G-single-realtime".to_string()), "{cs:?}");
        // A pair with both ww and rw witnesses both classes.
        assert_eq!(
            classes(&graph(2, &[(0, 1, WW | RW), (1, 0, WW)])),
            vec!["G-single", "G0"]
        );
    }

    #[test]
    fn adjacent_rw_edges_are_not_nonadjacent() {
        // 0 -rw-> 1 -rw-> 2 -ww-> 0: two adjacent rw edges only.
        let g = graph(3, &[(0, 1, RW), (1, 2, RW), (2, 0, WW)]);
        assert_eq!(classes(&g), vec!["G2-item"]);
    }
}
