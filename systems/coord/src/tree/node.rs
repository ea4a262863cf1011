//! A znode as the tree stores it: data, ACL, the persisted part of its Stat, and the names
//! of its children (ZooKeeper's `DataNode`).

use super::acl::acl_bytes;
use super::digest::{mix, Fnv64};
use crate::api::{Acl, SessionId, Stat, Zxid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What the tree stores of a Stat; the data length and the number of children are derived
/// from the node itself (ZooKeeper's `StatPersisted`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedStat {
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub pzxid: Zxid,
    pub ctime_ms: u64,
    pub mtime_ms: u64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: SessionId,
}

impl PersistedStat {
    /// The Stat of a node created at `zxid`: every zxid is the creating one, every version
    /// 0 (ZooKeeper's `DataTree.createStat`).
    pub fn created(zxid: Zxid, time_ms: u64, ephemeral_owner: SessionId) -> PersistedStat {
        PersistedStat {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime_ms: time_ms,
            mtime_ms: time_ms,
            ephemeral_owner,
            ..PersistedStat::default()
        }
    }

    fn hash_into(&self, h: &mut Fnv64) {
        h.u64(self.czxid).u64(self.mzxid).u64(self.pzxid);
        h.u64(self.ctime_ms).u64(self.mtime_ms);
        h.i32(self.version).i32(self.cversion).i32(self.aversion);
        h.u64(self.ephemeral_owner);
    }
}

/// Bytes a node costs beyond its path, data and ACL (its Stat and bookkeeping), for the
/// tree's byte limit.
pub(crate) const NODE_OVERHEAD_BYTES: u64 = 96;

/// What a node counts against `MAX_TREE_BYTES`.
pub(crate) fn footprint(path_len: usize, data_len: usize, acl: &[Acl]) -> u64 {
    path_len as u64 + data_len as u64 + acl_bytes(acl) + NODE_OVERHEAD_BYTES
}

/// One znode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub(crate) data: Vec<u8>,
    pub(crate) acl: Vec<Acl>,
    pub(crate) stat: PersistedStat,
    /// Names, not paths; a sorted set, so that getChildren answers the same on every
    /// replica (ZooKeeper's is a hash set and its clients sort).
    pub(crate) children: BTreeSet<String>,
    /// Hash of path, data and ACL, kept so that a Stat change (every child created under a
    /// parent changes the parent's) does not rehash a megabyte of data.
    pub(crate) content_hash: u64,
}

impl Node {
    pub(crate) fn new(path: &str, data: Vec<u8>, acl: Vec<Acl>, stat: PersistedStat) -> Node {
        let mut node = Node {
            data,
            acl,
            stat,
            children: BTreeSet::new(),
            content_hash: 0,
        };
        node.rehash_content(path);
        node
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn acl(&self) -> &[Acl] {
        &self.acl
    }

    pub fn persisted_stat(&self) -> &PersistedStat {
        &self.stat
    }

    /// Children's names in bytewise order.
    pub fn children(&self) -> impl Iterator<Item = &str> {
        self.children.iter().map(String::as_str)
    }

    pub fn num_children(&self) -> usize {
        self.children.len()
    }

    pub fn is_ephemeral(&self) -> bool {
        self.stat.ephemeral_owner != 0
    }

    /// The full Stat a client sees.
    pub fn stat(&self) -> Stat {
        let s = &self.stat;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            pzxid: s.pzxid,
            ctime_ms: s.ctime_ms,
            mtime_ms: s.mtime_ms,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            data_length: self.data.len() as u32,
            num_children: self.children.len() as u32,
        }
    }

    pub(crate) fn footprint(&self, path: &str) -> u64 {
        footprint(path.len(), self.data.len(), &self.acl)
    }

    pub(crate) fn rehash_content(&mut self, path: &str) {
        let mut h = Fnv64::new();
        h.bytes(path.as_bytes()).bytes(&self.data);
        h.u64(self.acl.len() as u64);
        for entry in &self.acl {
            h.u64(u64::from(entry.perms.0));
            h.bytes(entry.id.scheme.as_bytes())
                .bytes(entry.id.id.as_bytes());
        }
        self.content_hash = h.finish();
    }

    /// This node's share of the tree digest. Children are left out: each child's path
    /// already stands for it in its own hash.
    pub(crate) fn digest(&self) -> u64 {
        let mut h = Fnv64::new();
        h.u64(self.content_hash);
        self.stat.hash_into(&mut h);
        mix(h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_covers_data_acl_and_stat() {
        let stat = PersistedStat::created(5, 1000, 0);
        let node = Node::new("/a", b"x".to_vec(), Acl::open(), stat);
        let other_data = Node::new("/a", b"y".to_vec(), Acl::open(), stat);
        let other_acl = Node::new("/a", b"x".to_vec(), Acl::read_only(), stat);
        let other_path = Node::new("/b", b"x".to_vec(), Acl::open(), stat);
        let mut other_stat = node.clone();
        other_stat.stat.version = 1;
        for other in [other_data, other_acl, other_path, other_stat] {
            assert_ne!(node.digest(), other.digest());
        }
    }

    #[test]
    fn stat_is_derived_from_the_node() {
        let mut node = Node::new(
            "/a",
            vec![0; 7],
            Acl::open(),
            PersistedStat::created(9, 3, 4),
        );
        node.children.insert("b".into());
        let stat = node.stat();
        assert_eq!((stat.czxid, stat.mzxid, stat.pzxid), (9, 9, 9));
        assert_eq!((stat.data_length, stat.num_children), (7, 1));
        assert_eq!(stat.ephemeral_owner, 4);
        assert!(node.is_ephemeral());
    }
}
