//! Partition topologies: which nodes stop hearing from which, as Jepsen's nemeses choose them.
//!
//! A [`Grudge`] maps each node to the nodes whose traffic it drops. Backends turn it into
//! iptables rules or cut proxy links; the nemesis records it in the history. Every topology
//! is a pure function of the nodes and the run's seeded [`Rng`], so a partition replays from
//! the seed.

use checkers::rng::Rng;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Node → the nodes it drops traffic from.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

/// Each node drops traffic from every node outside its own component.
pub fn complete_grudge(components: &[Vec<String>]) -> Grudge {
    let mut grudge = Grudge::new();
    for (i, component) in components.iter().enumerate() {
        let others: BTreeSet<String> = components
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, c)| c.iter().cloned())
            .collect();
        for node in component {
            grudge.insert(node.clone(), others.clone());
        }
    }
    grudge
}

fn shuffled(nodes: &[String], rng: &mut Rng) -> Vec<String> {
    let mut v = nodes.to_vec();
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// Two random halves (the first is the smaller when the count is odd).
pub fn random_halves(nodes: &[String], rng: &mut Rng) -> Grudge {
    let v = shuffled(nodes, rng);
    let (a, b) = v.split_at(v.len() / 2);
    complete_grudge(&[a.to_vec(), b.to_vec()])
}

/// One random node cut off from all others.
pub fn isolate_one(nodes: &[String], rng: &mut Rng) -> Grudge {
    let v = shuffled(nodes, rng);
    let (one, rest) = v.split_at(v.len().min(1));
    complete_grudge(&[one.to_vec(), rest.to_vec()])
}

/// The given nodes (the primaries) cut off from the rest, together.
pub fn isolate(nodes: &[String], isolated: &[String]) -> Grudge {
    let rest: Vec<String> = nodes
        .iter()
        .filter(|n| !isolated.contains(n))
        .cloned()
        .collect();
    complete_grudge(&[isolated.to_vec(), rest])
}

/// Nodes in a random ring; each hears only itself and its nearest neighbours, a bare
/// majority, so every node sees a majority but no two see the same one (Jepsen's
/// majorities-ring). Needs at least five nodes to differ from a full mesh.
pub fn majorities_ring(nodes: &[String], rng: &mut Rng) -> Grudge {
    let ring = shuffled(nodes, rng);
    let n = ring.len();
    let majority = n / 2 + 1;
    let left = (majority - 1) / 2;
    let mut grudge = Grudge::new();
    for (i, node) in ring.iter().enumerate() {
        let heard: BTreeSet<&String> = (0..majority)
            .map(|k| &ring[(i + n - left + k) % n])
            .collect();
        let dropped = ring
            .iter()
            .filter(|m| !heard.contains(m))
            .cloned()
            .collect();
        grudge.insert(node.clone(), dropped);
    }
    grudge
}

/// Two halves joined by one bridge node that hears both; the halves do not hear each other.
pub fn bridge(nodes: &[String], rng: &mut Rng) -> Grudge {
    let v = shuffled(nodes, rng);
    if v.len() < 3 {
        return random_halves(nodes, rng);
    }
    let (bridge, rest) = v.split_first().expect("at least three nodes");
    let (a, b) = rest.split_at(rest.len() / 2);
    let mut grudge = complete_grudge(&[a.to_vec(), b.to_vec()]);
    grudge.insert(bridge.clone(), BTreeSet::new());
    grudge
}

/// The grudge as the nemesis records it in the history: `{node: [dropped...]}`.
pub fn to_json(grudge: &Grudge) -> Value {
    Value::Object(
        grudge
            .iter()
            .map(|(n, d)| {
                (
                    n.clone(),
                    Value::from(d.iter().cloned().collect::<Vec<_>>()),
                )
            })
            .collect(),
    )
}

/// Whether `a` and `b` can exchange messages both ways under `grudge`.
pub fn connected(grudge: &Grudge, a: &str, b: &str) -> bool {
    let drops = |x: &str, y: &str| grudge.get(x).is_some_and(|d| d.contains(y));
    !drops(a, b) && !drops(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    /// Who each node hears from (itself included).
    fn heard(g: &Grudge, all: &[String], node: &str) -> BTreeSet<String> {
        all.iter()
            .filter(|m| !g[node].contains(*m))
            .cloned()
            .collect()
    }

    #[test]
    fn halves_split_in_two_sides_that_cannot_talk() {
        for seed in 0..50 {
            let all = nodes(5);
            let g = random_halves(&all, &mut Rng::new(seed));
            let sizes: BTreeSet<usize> = all.iter().map(|n| heard(&g, &all, n).len()).collect();
            assert_eq!(sizes, BTreeSet::from([2, 3]), "seed {seed}");
            for a in &all {
                for b in &all {
                    assert_eq!(
                        connected(&g, a, b),
                        heard(&g, &all, a).contains(b),
                        "symmetric"
                    );
                }
            }
        }
    }

    #[test]
    fn isolation_cuts_exactly_the_chosen_nodes() {
        let all = nodes(5);
        let g = isolate(&all, &["n2".to_string()]);
        assert_eq!(heard(&g, &all, "n2"), BTreeSet::from(["n2".to_string()]));
        assert_eq!(heard(&g, &all, "n1").len(), 4);
        let one = isolate_one(&all, &mut Rng::new(3));
        assert_eq!(
            all.iter()
                .filter(|n| heard(&one, &all, n).len() == 1)
                .count(),
            1
        );
    }

    #[test]
    fn ring_gives_every_node_a_different_majority() {
        for n in [5, 7, 9] {
            let all = nodes(n);
            let g = majorities_ring(&all, &mut Rng::new(n as u64));
            let views: BTreeSet<BTreeSet<String>> =
                all.iter().map(|m| heard(&g, &all, m)).collect();
            assert_eq!(views.len(), n, "no two nodes see the same majority");
            assert!(all.iter().all(|m| heard(&g, &all, m).len() == n / 2 + 1));
        }
    }

    #[test]
    fn bridge_node_hears_both_halves() {
        let all = nodes(5);
        let g = bridge(&all, &mut Rng::new(1));
        let bridges: Vec<&String> = all
            .iter()
            .filter(|m| heard(&g, &all, m).len() == 5)
            .collect();
        assert_eq!(bridges.len(), 1);
        let bridge = bridges[0];
        for m in all.iter().filter(|m| *m != bridge) {
            let h = heard(&g, &all, m);
            assert_eq!(h.len(), 3, "{m} hears its side of two and the bridge");
            assert!(h.contains(bridge));
        }
        let sides: BTreeSet<BTreeSet<String>> = all
            .iter()
            .filter(|m| *m != bridge)
            .map(|m| {
                heard(&g, &all, m)
                    .into_iter()
                    .filter(|x| x != bridge)
                    .collect()
            })
            .collect();
        assert_eq!(sides.len(), 2, "two sides that do not hear each other");
    }

    #[test]
    fn same_seed_same_partition_and_json_shape() {
        let all = nodes(5);
        let a = random_halves(&all, &mut Rng::new(9));
        assert_eq!(a, random_halves(&all, &mut Rng::new(9)));
        let json = to_json(&a);
        assert_eq!(json.as_object().unwrap().len(), 5);
        assert!(json["n1"].is_array());
    }
}
