//! The dependency graph: transactions as nodes, typed dependencies as edges.
//!
//! Edges are stored once per ordered pair with a bitmask of their kinds, in compressed sparse
//! rows (forward and reverse), so a million transactions with tens of millions of edges fit in a
//! few hundred MiB. Strongly connected components come from petgraph's iterative Kosaraju over
//! a [`View`]: the graph restricted to some edge kinds and, optionally, to one component. Cycles
//! can only live inside a component, which is what keeps cycle search cheap on valid histories.

use petgraph::visit::{
    GraphBase, IntoNeighbors, IntoNeighborsDirected, IntoNodeIdentifiers, VisitMap, Visitable,
};
use petgraph::Direction;

/// Edge kinds, as bits of a mask.
pub const WW: u8 = 1;
pub const WR: u8 = 2;
pub const RW: u8 = 4;
pub const PROCESS: u8 = 8;
pub const REALTIME: u8 = 16;
/// Dependencies the data itself proves.
pub const DATA: u8 = WW | WR | RW;
pub const ALL: u8 = DATA | PROCESS | REALTIME;

/// The name of a single edge kind, as explanations and reports print it.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        WW => "ww",
        WR => "wr",
        RW => "rw",
        PROCESS => "process",
        REALTIME => "realtime",
        _ => "?",
    }
}

/// Edges added before [`Builder::finish`]; most limits live with the caller.
#[derive(Default)]
pub struct Builder {
    edges: Vec<(u32, u32, u8)>,
}

impl Builder {
    pub fn add(&mut self, from: u32, to: u32, kind: u8) {
        debug_assert!(kind != 0 && kind & !ALL == 0);
        if from != to {
            self.edges.push((from, to, kind));
        }
    }

    pub fn len(&self) -> usize {
        self.edges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Sorts, merges parallel edges into one with the union of their kinds, and packs the rows.
    pub fn finish(mut self, nodes: usize) -> Graph {
        self.edges.sort_unstable_by_key(|&(a, b, _)| (a, b));
        let mut merged: Vec<(u32, u32, u8)> = Vec::with_capacity(self.edges.len());
        for (a, b, k) in self.edges {
            match merged.last_mut() {
                Some(last) if last.0 == a && last.1 == b => last.2 |= k,
                _ => merged.push((a, b, k)),
            }
        }
        let forward = Rows::pack(nodes, merged.iter().copied());
        merged.sort_unstable_by_key(|&(a, b, _)| (b, a));
        let reverse = Rows::pack(nodes, merged.iter().map(|&(a, b, k)| (b, a, k)));
        Graph { forward, reverse }
    }
}

/// Adjacency in compressed sparse rows: `targets[offsets[n]..offsets[n + 1]]`.
struct Rows {
    offsets: Vec<u32>,
    targets: Vec<u32>,
    kinds: Vec<u8>,
}

impl Rows {
    /// `edges` must be sorted by source.
    fn pack(nodes: usize, edges: impl Iterator<Item = (u32, u32, u8)>) -> Rows {
        let mut offsets = Vec::with_capacity(nodes + 1);
        let mut targets = Vec::new();
        let mut kinds = Vec::new();
        offsets.push(0u32);
        for (a, b, k) in edges {
            assert!(
                (a as usize) < nodes && (b as usize) < nodes,
                "edge to a node that does not exist"
            );
            while offsets.len() <= a as usize {
                offsets.push(targets.len() as u32);
            }
            targets.push(b);
            kinds.push(k);
        }
        while offsets.len() <= nodes {
            offsets.push(targets.len() as u32);
        }
        Rows {
            offsets,
            targets,
            kinds,
        }
    }

    fn row(&self, n: u32) -> (&[u32], &[u8]) {
        let (s, e) = (
            self.offsets[n as usize] as usize,
            self.offsets[n as usize + 1] as usize,
        );
        (&self.targets[s..e], &self.kinds[s..e])
    }
}

/// The finished graph over nodes `0..node_count()`.
pub struct Graph {
    forward: Rows,
    reverse: Rows,
}

impl Graph {
    /// A graph of `n` nodes from a list of edges, as tests and small inferences build them.
    pub fn from_edges(n: usize, edges: &[(u32, u32, u8)]) -> Graph {
        let mut b = Builder::default();
        for &(x, y, k) in edges {
            b.add(x, y, k);
        }
        b.finish(n)
    }

    pub fn node_count(&self) -> usize {
        self.forward.offsets.len() - 1
    }

    pub fn edge_count(&self) -> usize {
        self.forward.targets.len()
    }

    /// Successors of `n` with the kinds of each edge.
    pub fn out(&self, n: u32) -> impl Iterator<Item = (u32, u8)> + '_ {
        let (t, k) = self.forward.row(n);
        t.iter().copied().zip(k.iter().copied())
    }

    /// The kinds of the edge `a -> b` (0 if none).
    pub fn kinds(&self, a: u32, b: u32) -> u8 {
        let (t, k) = self.forward.row(a);
        t.binary_search(&b).map_or(0, |i| k[i])
    }

    /// Strongly connected components with at least two nodes, of the edges in `mask`, within
    /// `within` (all nodes when None). Each component is sorted.
    pub fn components(&self, mask: u8, within: Option<&[u32]>) -> Vec<Vec<u32>> {
        let mut member = Vec::new();
        if let Some(nodes) = within {
            member = vec![false; self.node_count()];
            for &n in nodes {
                member[n as usize] = true;
            }
        }
        let view = View {
            graph: self,
            mask,
            member: within.map(|_| member.as_slice()),
            nodes: within,
        };
        let mut sccs: Vec<Vec<u32>> = petgraph::algo::kosaraju_scc(&view)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        for c in &mut sccs {
            c.sort_unstable();
        }
        sccs.sort_unstable_by_key(|c| c[0]);
        sccs
    }
}

/// The graph restricted to edge kinds in `mask` and, when `member` is set, to member nodes.
pub struct View<'a> {
    graph: &'a Graph,
    mask: u8,
    member: Option<&'a [bool]>,
    nodes: Option<&'a [u32]>,
}

impl View<'_> {
    fn keeps(&self, n: u32, kinds: u8) -> bool {
        kinds & self.mask != 0 && self.member.is_none_or(|m| m[n as usize])
    }
}

impl GraphBase for View<'_> {
    type NodeId = u32;
    type EdgeId = ();
}

impl<'a, 'b> IntoNeighbors for &'b View<'a> {
    type Neighbors = std::vec::IntoIter<u32>;
    fn neighbors(self, a: u32) -> Self::Neighbors {
        self.neighbors_directed(a, Direction::Outgoing)
    }
}

impl<'a, 'b> IntoNeighborsDirected for &'b View<'a> {
    type NeighborsDirected = std::vec::IntoIter<u32>;
    fn neighbors_directed(self, a: u32, d: Direction) -> Self::NeighborsDirected {
        let rows = match d {
            Direction::Outgoing => &self.graph.forward,
            Direction::Incoming => &self.graph.reverse,
        };
        let (t, k) = rows.row(a);
        t.iter()
            .zip(k)
            .filter(|&(&n, &kinds)| self.keeps(n, kinds))
            .map(|(&n, _)| n)
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl<'a> IntoNodeIdentifiers for &View<'a> {
    type NodeIdentifiers = Box<dyn Iterator<Item = u32> + 'a>;
    fn node_identifiers(self) -> Self::NodeIdentifiers {
        match self.nodes {
            Some(nodes) => Box::new(nodes.iter().copied()),
            None => Box::new(0..self.graph.node_count() as u32),
        }
    }
}

impl Visitable for View<'_> {
    type Map = Visited;
    fn visit_map(&self) -> Visited {
        Visited(vec![0; self.graph.node_count().div_ceil(64)])
    }
    fn reset_map(&self, map: &mut Visited) {
        map.0.iter_mut().for_each(|w| *w = 0);
        map.0.resize(self.graph.node_count().div_ceil(64), 0);
    }
}

/// A bitset of visited nodes for petgraph's traversals.
pub struct Visited(Vec<u64>);

impl VisitMap<u32> for Visited {
    fn visit(&mut self, a: u32) -> bool {
        let (w, b) = (a as usize / 64, 1u64 << (a % 64));
        let first = self.0[w] & b == 0;
        self.0[w] |= b;
        first
    }
    fn is_visited(&self, a: &u32) -> bool {
        self.0[*a as usize / 64] & (1u64 << (a % 64)) != 0
    }
    fn unvisit(&mut self, a: u32) -> bool {
        let was = self.is_visited(&a);
        self.0[a as usize / 64] &= !(1u64 << (a % 64));
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(u32, u32, u8)]) -> Graph {
        Graph::from_edges(n, edges)
    }

    #[test]
    fn parallel_edges_merge_their_kinds() {
        let g = graph(3, &[(0, 1, WW), (0, 1, RW), (1, 2, WR), (2, 2, WW)]);
        assert_eq!(g.edge_count(), 2, "merged, and the self-loop dropped");
        assert_eq!(g.kinds(0, 1), WW | RW);
        assert_eq!(g.kinds(1, 0), 0);
        assert_eq!(g.out(1).collect::<Vec<_>>(), vec![(2, WR)]);
    }

    #[test]
    fn components_respect_the_mask_and_the_restriction() {
        // 0 -ww-> 1 -rw-> 0, and 2 -realtime-> 3 -ww-> 2; 4 alone.
        let g = graph(5, &[(0, 1, WW), (1, 0, RW), (2, 3, REALTIME), (3, 2, WW)]);
        assert_eq!(g.components(ALL, None), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(g.components(DATA, None), vec![vec![0, 1]]);
        assert_eq!(g.components(WW | WR, None), Vec::<Vec<u32>>::new());
        assert_eq!(g.components(ALL, Some(&[2, 3])), vec![vec![2, 3]]);
        assert_eq!(g.components(ALL, Some(&[1, 2, 3])), vec![vec![2, 3]]);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 300_000u32;
        let mut edges: Vec<(u32, u32, u8)> = (0..n - 1).map(|i| (i, i + 1, REALTIME)).collect();
        edges.push((n - 1, 0, WW));
        let g = graph(n as usize, &edges);
        let c = g.components(ALL, None);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].len(), n as usize);
    }
}
