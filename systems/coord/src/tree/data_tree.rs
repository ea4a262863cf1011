//! The replicated state: znodes, the sessions that own ephemerals, and the zxid of the last
//! transaction applied (ZooKeeper's `DataTree` plus the session table it snapshots along).
//!
//! Nodes live in one map keyed by full path, as in ZooKeeper, so that a lookup is one probe;
//! each node also keeps its children's names for getChildren. The indexes (children,
//! ephemerals per session), the byte count and the digest are all derived from the nodes,
//! and every mutation below keeps them in step; [`Tree::check_invariants`] recomputes them
//! from scratch to prove it.

use super::digest::{mix, Fnv64};
use super::node::{Node, PersistedStat};
use crate::api::{node_name, parent_path, Acl, SessionId, Stat, Zxid};
use std::collections::{BTreeMap, BTreeSet};

/// The state every replica holds and changes only by applying transactions in zxid order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    /// Live sessions and their negotiated timeouts. The server's session tracker (who is
    /// connected where, when each expires) is not replicated; this table is, so that a new
    /// leader knows which sessions to expire, as ZooKeeper's `sessionsWithTimeouts`.
    sessions: BTreeMap<SessionId, u64>,
    /// Each session's ephemeral paths, so that closing a session finds them without a walk
    /// of the tree (ZooKeeper's `DataTree.ephemerals`). Survives the session only under
    /// the "skip ephemeral cleanup" bug, which leaves orphans here.
    ephemerals: BTreeMap<SessionId, BTreeSet<String>>,
    last_zxid: Zxid,
    footprint_bytes: u64,
    /// Wrapping sum of every node's digest: updated in O(1) per change.
    nodes_digest: u64,
    sessions_digest: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// A tree holding only the root, open to everyone, as a fresh ZooKeeper's (less its
    /// `/zookeeper` system subtree, which we do not have).
    pub fn new() -> Tree {
        Tree::with_root(Node::new(
            "/",
            Vec::new(),
            Acl::open(),
            PersistedStat::default(),
        ))
    }

    /// A tree holding only `root`, to build on with [`Tree::insert_node`].
    pub(crate) fn with_root(root: Node) -> Tree {
        assert!(root.children.is_empty() && !root.is_ephemeral());
        let mut tree = Tree {
            nodes: BTreeMap::new(),
            sessions: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            last_zxid: 0,
            footprint_bytes: 0,
            nodes_digest: 0,
            sessions_digest: 0,
        };
        tree.account_added("/", &root);
        tree.nodes.insert("/".to_string(), root);
        tree
    }

    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.node(path).map(Node::stat)
    }

    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    /// Number of znodes, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Every path in bytewise order, so parents before children.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// What the nodes count against `MAX_TREE_BYTES`.
    pub fn footprint_bytes(&self) -> u64 {
        self.footprint_bytes
    }

    /// The zxid of the last transaction applied (or of the snapshot loaded).
    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }

    /// Live sessions with their timeouts, by id.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, u64)> + '_ {
        self.sessions.iter().map(|(&id, &timeout)| (id, timeout))
    }

    pub fn session_timeout_ms(&self, session: SessionId) -> Option<u64> {
        self.sessions.get(&session).copied()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The ephemeral paths `session` owns, sorted.
    pub fn ephemerals(&self, session: SessionId) -> impl Iterator<Item = &str> {
        self.ephemerals
            .get(&session)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    pub fn ephemeral_count(&self, session: SessionId) -> usize {
        self.ephemerals.get(&session).map_or(0, BTreeSet::len)
    }

    /// Sessions that own ephemerals, live or not: a non-live one is an orphan owner.
    pub fn ephemeral_owners(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.ephemerals.keys().copied()
    }

    /// A fingerprint of the whole replicated state (nodes, sessions, last zxid): replicas
    /// that applied the same transactions have equal digests, and a difference means they
    /// diverged. O(1): maintained as nodes change.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv64::new();
        h.u64(self.nodes_digest).u64(self.sessions_digest);
        h.u64(self.last_zxid);
        h.finish()
    }

    // -----------------------------------------------------------------------------------
    // Mutations, for apply and snapshot loading. Each keeps children, ephemerals, bytes and
    // digest in step; the callers have checked that the change fits the tree.
    // -----------------------------------------------------------------------------------

    /// Adds a node under its existing parent.
    pub(crate) fn insert_node(&mut self, path: &str, node: Node) {
        let parent = parent_path(path).expect("the root is never inserted");
        let name = node_name(path).to_string();
        let siblings = &mut self.nodes.get_mut(parent).expect("parent exists").children;
        assert!(siblings.insert(name), "{path} already exists");
        if node.is_ephemeral() {
            let owned = self
                .ephemerals
                .entry(node.stat.ephemeral_owner)
                .or_default();
            owned.insert(path.to_string());
        }
        self.account_added(path, &node);
        self.nodes.insert(path.to_string(), node);
    }

    /// Removes a childless node.
    pub(crate) fn remove_node(&mut self, path: &str) -> Node {
        let node = self.nodes.remove(path).expect("node exists");
        assert!(node.children.is_empty(), "{path} has children");
        let parent = parent_path(path).expect("the root is never removed");
        let siblings = &mut self.nodes.get_mut(parent).expect("parent exists").children;
        siblings.remove(node_name(path));
        if node.is_ephemeral() {
            self.forget_ephemeral(node.stat.ephemeral_owner, path);
        }
        self.account_removed(path, &node);
        node
    }

    fn forget_ephemeral(&mut self, owner: SessionId, path: &str) {
        if let Some(owned) = self.ephemerals.get_mut(&owner) {
            owned.remove(path);
            if owned.is_empty() {
                self.ephemerals.remove(&owner);
            }
        }
    }

    /// Changes a node's Stat only: cheap, since the content hash stays.
    pub(crate) fn update_stat(&mut self, path: &str, f: impl FnOnce(&mut PersistedStat)) {
        let node = self.nodes.get_mut(path).expect("node exists");
        self.nodes_digest = self.nodes_digest.wrapping_sub(node.digest());
        let owner = node.stat.ephemeral_owner;
        f(&mut node.stat);
        assert_eq!(owner, node.stat.ephemeral_owner, "ownership never changes");
        self.nodes_digest = self.nodes_digest.wrapping_add(node.digest());
    }

    /// Changes a node's data or ACL (and Stat), rehashing its content.
    pub(crate) fn update_content(&mut self, path: &str, f: impl FnOnce(&mut Node)) {
        let node = self.nodes.get_mut(path).expect("node exists");
        let (old_digest, old_bytes) = (node.digest(), node.footprint(path));
        let owner = node.stat.ephemeral_owner;
        f(node);
        assert_eq!(owner, node.stat.ephemeral_owner, "ownership never changes");
        node.rehash_content(path);
        let (new_digest, new_bytes) = (node.digest(), node.footprint(path));
        self.nodes_digest = self.nodes_digest.wrapping_sub(old_digest);
        self.nodes_digest = self.nodes_digest.wrapping_add(new_digest);
        self.footprint_bytes = self.footprint_bytes - old_bytes + new_bytes;
    }

    pub(crate) fn add_session(&mut self, session: SessionId, timeout_ms: u64) {
        let old = self.sessions.insert(session, timeout_ms);
        assert!(old.is_none(), "session {session:#x} already exists");
        self.sessions_digest = self
            .sessions_digest
            .wrapping_add(session_digest(session, timeout_ms));
    }

    pub(crate) fn remove_session(&mut self, session: SessionId) {
        let timeout_ms = self.sessions.remove(&session).expect("session exists");
        self.sessions_digest = self
            .sessions_digest
            .wrapping_sub(session_digest(session, timeout_ms));
    }

    pub(crate) fn set_last_zxid(&mut self, zxid: Zxid) {
        self.last_zxid = zxid;
    }

    fn account_added(&mut self, path: &str, node: &Node) {
        self.footprint_bytes += node.footprint(path);
        self.nodes_digest = self.nodes_digest.wrapping_add(node.digest());
    }

    fn account_removed(&mut self, path: &str, node: &Node) {
        self.footprint_bytes -= node.footprint(path);
        self.nodes_digest = self.nodes_digest.wrapping_sub(node.digest());
    }

    // -----------------------------------------------------------------------------------
    // Invariants
    // -----------------------------------------------------------------------------------

    /// Recomputes every derived structure from the nodes and compares: children sets,
    /// ephemeral index, byte count, digests, ephemerals childless. Slow (a walk of the
    /// whole tree); for tests and the simulator's consistency checks.
    pub fn check_invariants(&self) -> Result<(), String> {
        let fresh = self.rebuilt()?;
        let pairs = [
            ("footprint", self.footprint_bytes, fresh.footprint_bytes),
            ("node digest", self.nodes_digest, fresh.nodes_digest),
            (
                "session digest",
                self.sessions_digest,
                fresh.sessions_digest,
            ),
        ];
        for (what, kept, recomputed) in pairs {
            if kept != recomputed {
                return Err(format!(
                    "{what}: kept {kept:#x}, recomputed {recomputed:#x}"
                ));
            }
        }
        if self.ephemerals != fresh.ephemerals {
            return Err("the ephemeral index differs from the nodes' owners".into());
        }
        self.check_structure()
    }

    /// A copy rebuilt from this tree's nodes and sessions through the mutations above.
    fn rebuilt(&self) -> Result<Tree, String> {
        let old_root = self.nodes.get("/").ok_or("no root")?;
        let root = Node::new(
            "/",
            old_root.data.clone(),
            old_root.acl.clone(),
            old_root.stat,
        );
        let mut fresh = Tree::with_root(root);
        for (path, node) in self.nodes.iter().filter(|(p, _)| p.as_str() != "/") {
            let parent = parent_path(path).ok_or(format!("bad path {path}"))?;
            if !fresh.contains(parent) {
                return Err(format!("{path} has no parent"));
            }
            let copy = Node::new(path, node.data.clone(), node.acl.clone(), node.stat);
            fresh.insert_node(path, copy);
        }
        for (&session, &timeout_ms) in &self.sessions {
            fresh.add_session(session, timeout_ms);
        }
        Ok(fresh)
    }

    fn check_structure(&self) -> Result<(), String> {
        for (path, node) in &self.nodes {
            for name in &node.children {
                let child = crate::api::child_path(path, name);
                if !self.contains(&child) {
                    return Err(format!("{path} lists missing child {name}"));
                }
            }
            if node.is_ephemeral() && !node.children.is_empty() {
                return Err(format!("ephemeral {path} has children"));
            }
        }
        Ok(())
    }
}

fn session_digest(session: SessionId, timeout_ms: u64) -> u64 {
    mix(Fnv64::new().u64(session).u64(timeout_ms).finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, owner: SessionId) -> Node {
        Node::new(
            path,
            b"d".to_vec(),
            Acl::open(),
            PersistedStat::created(1, 0, owner),
        )
    }

    #[test]
    fn a_new_tree_holds_only_an_open_root() {
        let tree = Tree::new();
        assert_eq!(tree.node_count(), 1);
        assert_eq!(tree.node("/").unwrap().acl(), Acl::open().as_slice());
        assert_eq!(tree.check_invariants(), Ok(()));
    }

    #[test]
    fn mutations_keep_indexes_and_digest_in_step() {
        let mut tree = Tree::new();
        let empty = tree.digest();
        tree.insert_node("/a", node("/a", 0));
        tree.insert_node("/a/e", node("/a/e", 7));
        assert_eq!(tree.ephemerals(7).collect::<Vec<_>>(), ["/a/e"]);
        tree.update_stat("/a", |s| s.cversion = 2);
        tree.update_content("/a", |n| n.data = vec![0; 100]);
        assert_eq!(tree.check_invariants(), Ok(()));
        tree.remove_node("/a/e");
        tree.remove_node("/a");
        assert_eq!(tree.ephemeral_count(7), 0);
        assert_eq!(tree.check_invariants(), Ok(()));
        assert_eq!(tree.digest(), empty);
    }

    #[test]
    fn sessions_count_in_the_digest() {
        let mut tree = Tree::new();
        let before = tree.digest();
        tree.add_session(5, 3000);
        assert_ne!(tree.digest(), before);
        tree.remove_session(5);
        assert_eq!(tree.digest(), before);
    }
}
