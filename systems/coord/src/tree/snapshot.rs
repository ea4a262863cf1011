//! Snapshots: the whole tree as bytes, to persist, to send a follower too far behind for a
//! diff, and to load on restart before replaying the log after it.
//!
//! ZooKeeper's snapshots are *fuzzy*: taken while transactions apply, so replaying the log
//! from before the snapshot's start must be idempotent. Ours are exact (the core takes one
//! between two transactions, at `last_zxid`), so replay starts right after it.
//!
//! The format is postcard: a format number, the last zxid, the sessions, and every node
//! in path order (parents before children) with its data, ACL and persisted Stat. Children
//! lists, the ephemeral index, byte counts and the digest are derived, not stored, so a
//! snapshot cannot contradict itself. There is no checksum: the storage layer checksums
//! blobs. Loading validates the structure, so a snapshot from a buggy or hostile peer is
//! refused rather than trusted.

use super::data_tree::Tree;
use super::node::{Node, PersistedStat};
use crate::api::{parent_path, validate_path, Acl, SessionId, Zxid};
use serde::{Deserialize, Serialize};

/// Bumped on any change to the encoding.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Why bytes are not a loadable snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("undecodable snapshot: {0}")]
    Decode(String),
    #[error("snapshot format {0}, expected {SNAPSHOT_FORMAT}")]
    Format(u32),
    #[error("invalid snapshot: {0}")]
    Invalid(String),
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: u32,
    last_zxid: Zxid,
    sessions: Vec<(SessionId, u64)>,
    nodes: Vec<NodeOut<'a>>,
}

#[derive(Serialize)]
struct NodeOut<'a> {
    path: &'a str,
    data: &'a [u8],
    acl: &'a [Acl],
    stat: &'a PersistedStat,
}

/// The same layout, owned, for reading.
#[derive(Deserialize)]
struct SnapshotIn {
    format: u32,
    last_zxid: Zxid,
    sessions: Vec<(SessionId, u64)>,
    nodes: Vec<NodeIn>,
}

#[derive(Deserialize)]
struct NodeIn {
    path: String,
    data: Vec<u8>,
    acl: Vec<Acl>,
    stat: PersistedStat,
}

impl Tree {
    /// The tree as snapshot bytes. Equal trees give equal bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let nodes = self
            .paths()
            .map(|path| {
                let node = self.node(path).expect("listed");
                NodeOut {
                    path,
                    data: node.data(),
                    acl: node.acl(),
                    stat: node.persisted_stat(),
                }
            })
            .collect();
        let snapshot = SnapshotOut {
            format: SNAPSHOT_FORMAT,
            last_zxid: self.last_zxid(),
            sessions: self.sessions().collect(),
            nodes,
        };
        postcard::to_stdvec(&snapshot).expect("serializing to memory cannot fail")
    }

    /// Loads a tree from snapshot bytes, checking that it is one: the format, every path
    /// valid with its parent before it, no duplicates, no children under ephemerals, no
    /// session 0, nothing after the end.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Tree, SnapshotError> {
        let (snapshot, rest) = postcard::take_from_bytes::<SnapshotIn>(bytes)
            .map_err(|e| SnapshotError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(invalid(format!("{} bytes after the end", rest.len())));
        }
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format(snapshot.format));
        }
        let mut nodes = snapshot.nodes.into_iter();
        let root = nodes.next().ok_or_else(|| invalid("no root".into()))?;
        let mut tree = tree_with_root(root)?;
        for node in nodes {
            insert_checked(&mut tree, node)?;
        }
        for (session, timeout_ms) in snapshot.sessions {
            if session == 0 || tree.session_timeout_ms(session).is_some() {
                return Err(invalid(format!("session {session:#x} is 0 or repeated")));
            }
            tree.add_session(session, timeout_ms);
        }
        tree.set_last_zxid(snapshot.last_zxid);
        Ok(tree)
    }
}

fn invalid(why: String) -> SnapshotError {
    SnapshotError::Invalid(why)
}

fn tree_with_root(root: NodeIn) -> Result<Tree, SnapshotError> {
    if root.path != "/" || root.stat.ephemeral_owner != 0 {
        return Err(invalid(format!(
            "first node {:?} is not the root",
            root.path
        )));
    }
    Ok(Tree::with_root(Node::new(
        "/", root.data, root.acl, root.stat,
    )))
}

fn insert_checked(tree: &mut Tree, node: NodeIn) -> Result<(), SnapshotError> {
    validate_path(&node.path).map_err(|e| invalid(format!("{:?}: {e}", node.path)))?;
    let parent = parent_path(&node.path).ok_or_else(|| invalid("a second root".into()))?;
    let parent_node = tree
        .node(parent)
        .ok_or_else(|| invalid(format!("{} precedes its parent", node.path)))?;
    if parent_node.is_ephemeral() {
        return Err(invalid(format!("{} is under an ephemeral", node.path)));
    }
    if tree.contains(&node.path) {
        return Err(invalid(format!("{} is repeated", node.path)));
    }
    let path = node.path;
    tree.insert_node(&path, Node::new(&path, node.data, node.acl, node.stat));
    Ok(())
}

/// Hand-made snapshots, for tests of what loading refuses.
#[cfg(test)]
pub(crate) mod raw {
    use super::*;

    #[derive(Clone, Debug)]
    pub(crate) struct RawNode {
        path: String,
        stat: PersistedStat,
    }

    impl RawNode {
        pub(crate) fn new(path: &str, ephemeral_owner: SessionId) -> RawNode {
            let stat = PersistedStat {
                ephemeral_owner,
                ..PersistedStat::default()
            };
            RawNode {
                path: path.to_string(),
                stat,
            }
        }
    }

    pub(crate) fn encode(sessions: &[(SessionId, u64)], nodes: &[RawNode]) -> Vec<u8> {
        let acl = Acl::open();
        let nodes = nodes.iter().map(|n| NodeOut {
            path: &n.path,
            data: &[],
            acl: &acl,
            stat: &n.stat,
        });
        let snapshot = SnapshotOut {
            format: SNAPSHOT_FORMAT,
            last_zxid: 1,
            sessions: sessions.to_vec(),
            nodes: nodes.collect(),
        };
        postcard::to_stdvec(&snapshot).unwrap()
    }
}
