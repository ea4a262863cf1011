//! The leader's view of the future: its committed tree plus the transactions it has
//! proposed that have not committed yet (ZooKeeper's `outstandingChanges`).
//!
//! The leader prepares request after request without waiting for each to commit. The
//! second of two back-to-back `create /x` must fail with NodeExists although the first has
//! not reached the tree, and two back-to-back sequential creates must get different
//! numbers. So prepare reads through [`View`]: first the changes staged by the request being
//! prepared (earlier ops of the same multi), then the latest [`Outstanding`] change to the
//! path, then the committed tree. ZooKeeper's `getRecordForPath` does the same.
//!
//! A [`Record`] (ZooKeeper's `ChangeRecord`) holds only what prepare checks: versions,
//! owner, child count, ACL and data size. [`View::stage`] turns a transaction into record
//! changes; prepare stages each op so that the next sees it, and
//! [`Outstanding::propose`] stages a whole transaction and keeps the result under its zxid
//! until [`Outstanding::commit`] says the tree has it.
//!
//! Limits are checked against the committed counts plus every proposed *growth* (nodes,
//! bytes, sessions, ephemerals per session), ignoring proposed shrinkage. The bound is
//! conservative: a create right at a limit may be refused while a delete is in flight, but
//! no sequence of proposals can overshoot a limit once they commit.

use super::acl::acl_bytes;
use super::data_tree::Tree;
use super::node::{footprint, Node};
use super::txn::{CreateTxn, DeleteTxn, SetAclTxn, SetDataTxn, Txn, TxnOp, TxnOpRef};
use crate::api::{parent_path, Acl, ErrorCode, SessionId, Zxid};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What prepare needs to know of a znode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: SessionId,
    pub child_count: usize,
    pub acl: Vec<Acl>,
    pub data_len: usize,
}

impl Record {
    fn of(node: &Node) -> Record {
        let stat = node.persisted_stat();
        Record {
            version: stat.version,
            cversion: stat.cversion,
            aversion: stat.aversion,
            ephemeral_owner: stat.ephemeral_owner,
            child_count: node.num_children(),
            acl: node.acl().to_vec(),
            data_len: node.data().len(),
        }
    }

    fn created(txn: &CreateTxn) -> Record {
        Record {
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: txn.ephemeral_owner,
            child_count: 0,
            acl: txn.acl.clone(),
            data_len: txn.data.len(),
        }
    }
}

/// How much proposals may add to the tree's counts once they commit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Growth {
    nodes: u64,
    bytes: u64,
    sessions: u64,
    ephemerals: BTreeMap<SessionId, u64>,
}

impl Growth {
    fn add(&mut self, other: &Growth) {
        self.nodes += other.nodes;
        self.bytes += other.bytes;
        self.sessions += other.sessions;
        for (&session, &n) in &other.ephemerals {
            *self.ephemerals.entry(session).or_default() += n;
        }
    }

    fn sub(&mut self, other: &Growth) {
        self.nodes -= other.nodes;
        self.bytes -= other.bytes;
        self.sessions -= other.sessions;
        for (session, &n) in &other.ephemerals {
            let left = self.ephemerals.get_mut(session).expect("added before");
            *left -= n;
            if *left == 0 {
                self.ephemerals.remove(session);
            }
        }
    }
}

/// One proposed transaction's footprint in the outstanding changes.
#[derive(Clone, Debug)]
struct Proposal {
    zxid: Zxid,
    paths: Vec<String>,
    sessions: Vec<SessionId>,
    growth: Growth,
}

/// The leader's proposed, not yet committed changes. Empty on followers; cleared when
/// leadership changes (a new leader starts from its committed tree).
#[derive(Clone, Debug, Default)]
pub struct Outstanding {
    /// The latest proposed state of each path touched, `None` for deleted, and the zxid
    /// that set it.
    nodes: BTreeMap<String, (Zxid, Option<Record>)>,
    /// Sessions created (`Some(timeout)`) or closed (`None`) by proposals.
    sessions: BTreeMap<SessionId, (Zxid, Option<u64>)>,
    proposals: VecDeque<Proposal>,
    growth: Growth,
}

impl Outstanding {
    pub fn new() -> Outstanding {
        Outstanding::default()
    }

    /// Number of proposals not yet committed.
    pub fn len(&self) -> usize {
        self.proposals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.proposals.is_empty()
    }

    /// The zxid of the latest proposal still outstanding.
    pub fn last_zxid(&self) -> Option<Zxid> {
        self.proposals.back().map(|p| p.zxid)
    }

    /// Records that the leader proposed `txn` at `zxid`, prepared against `tree` and these
    /// outstanding changes. Call it right after [`prepare`](super::prepare()) and before
    /// preparing the next request. Fails, changing nothing, only if `txn` does not fit the
    /// view, which a transaction just prepared against it always does.
    ///
    /// # Panics
    /// If `zxid` is not above every zxid proposed or applied: Zab numbers proposals in
    /// order, and a view built out of order would be wrong.
    pub fn propose(&mut self, tree: &Tree, zxid: Zxid, txn: &Txn) -> Result<(), ErrorCode> {
        let newest = self.last_zxid().unwrap_or(0).max(tree.last_zxid());
        assert!(zxid > newest, "zxid {zxid:#x} proposed after {newest:#x}");
        let mut view = View::new(tree, self);
        view.stage(&txn.op)?;
        let staged = view.into_staged();
        self.record(zxid, staged);
        Ok(())
    }

    fn record(&mut self, zxid: Zxid, staged: Staged) {
        let paths: Vec<String> = staged.nodes.keys().cloned().collect();
        let sessions: Vec<SessionId> = staged.sessions.keys().copied().collect();
        for (path, state) in staged.nodes {
            self.nodes.insert(path, (zxid, state));
        }
        for (session, state) in staged.sessions {
            self.sessions.insert(session, (zxid, state));
        }
        self.growth.add(&staged.growth);
        let growth = staged.growth;
        self.proposals.push_back(Proposal {
            zxid,
            paths,
            sessions,
            growth,
        });
    }

    /// Forgets the proposals up to `zxid`, which the tree has now applied: call it after
    /// applying each committed transaction. A path's change stays while a later proposal
    /// still overrides the tree's state of it.
    pub fn commit(&mut self, zxid: Zxid) {
        while self.proposals.front().is_some_and(|p| p.zxid <= zxid) {
            let done = self.proposals.pop_front().expect("checked");
            for path in done.paths {
                if self.nodes.get(&path).is_some_and(|(z, _)| *z <= zxid) {
                    self.nodes.remove(&path);
                }
            }
            for session in done.sessions {
                if self.sessions.get(&session).is_some_and(|(z, _)| *z <= zxid) {
                    self.sessions.remove(&session);
                }
            }
            self.growth.sub(&done.growth);
        }
    }

    /// Forgets everything: on losing or gaining leadership.
    pub fn clear(&mut self) {
        *self = Outstanding::new();
    }
}

/// What a view staged, to keep as outstanding.
struct Staged {
    nodes: BTreeMap<String, Option<Record>>,
    sessions: BTreeMap<SessionId, Option<u64>>,
    growth: Growth,
}

/// The tree as it will be once the outstanding proposals and the staged ops commit.
pub(crate) struct View<'a> {
    tree: &'a Tree,
    outstanding: &'a Outstanding,
    nodes: BTreeMap<String, Option<Record>>,
    sessions: BTreeMap<SessionId, Option<u64>>,
    growth: Growth,
}

impl<'a> View<'a> {
    pub(crate) fn new(tree: &'a Tree, outstanding: &'a Outstanding) -> View<'a> {
        View {
            tree,
            outstanding,
            nodes: BTreeMap::new(),
            sessions: BTreeMap::new(),
            growth: Growth::default(),
        }
    }

    fn into_staged(self) -> Staged {
        Staged {
            nodes: self.nodes,
            sessions: self.sessions,
            growth: self.growth,
        }
    }

    pub(crate) fn node(&self, path: &str) -> Option<Record> {
        if let Some(state) = self.nodes.get(path) {
            return state.clone();
        }
        if let Some((_, state)) = self.outstanding.nodes.get(path) {
            return state.clone();
        }
        self.tree.node(path).map(Record::of)
    }

    pub(crate) fn session_live(&self, session: SessionId) -> bool {
        if let Some(state) = self.sessions.get(&session) {
            return state.is_some();
        }
        if let Some((_, state)) = self.outstanding.sessions.get(&session) {
            return state.is_some();
        }
        self.tree.session_timeout_ms(session).is_some()
    }

    /// Upper bounds of the counts once everything in view commits.
    pub(crate) fn node_count(&self) -> u64 {
        self.tree.node_count() as u64 + self.outstanding.growth.nodes + self.growth.nodes
    }

    pub(crate) fn footprint_bytes(&self) -> u64 {
        self.tree.footprint_bytes() + self.outstanding.growth.bytes + self.growth.bytes
    }

    pub(crate) fn session_count(&self) -> u64 {
        self.tree.session_count() as u64 + self.outstanding.growth.sessions + self.growth.sessions
    }

    pub(crate) fn ephemeral_count(&self, session: SessionId) -> u64 {
        let proposed = |g: &Growth| g.ephemerals.get(&session).copied().unwrap_or(0);
        self.tree.ephemeral_count(session) as u64
            + proposed(&self.outstanding.growth)
            + proposed(&self.growth)
    }

    /// The ephemerals `session` will own once everything in view commits, sorted
    /// (ZooKeeper's closeSession prep: the tree's set, plus outstanding creates, minus
    /// outstanding deletes).
    pub(crate) fn ephemerals_of(&self, session: SessionId) -> Vec<String> {
        let committed = self.tree.ephemerals(session);
        let outstanding = self.outstanding.nodes.iter().map(|(p, (_, r))| (p, r));
        let proposed = outstanding
            .chain(self.nodes.iter())
            .filter_map(|(path, record)| {
                let owner = record.as_ref()?.ephemeral_owner;
                (owner == session).then_some(path.as_str())
            });
        let candidates: BTreeSet<&str> = committed.chain(proposed).collect();
        // A candidate may since be deleted, or deleted and created again by another owner.
        let owned = |path: &&str| {
            self.node(path)
                .is_some_and(|r| r.ephemeral_owner == session)
        };
        candidates
            .into_iter()
            .filter(owned)
            .map(str::to_string)
            .collect()
    }

    // -----------------------------------------------------------------------------------
    // Staging: a transaction's effect on records. Mirrors apply, on records instead of
    // nodes, and fails with the error apply would meet.
    // -----------------------------------------------------------------------------------

    pub(crate) fn stage(&mut self, op: &TxnOp) -> Result<(), ErrorCode> {
        match op {
            TxnOp::CreateSession {
                session,
                timeout_ms,
            } => self.stage_create_session(*session, *timeout_ms),
            TxnOp::CloseSession {
                session,
                ephemerals,
            } => self.stage_close_session(*session, ephemerals),
            TxnOp::Create(t) => self.stage_ref(TxnOpRef::Create(t)),
            TxnOp::Delete(t) => self.stage_ref(TxnOpRef::Delete(t)),
            TxnOp::SetData(t) => self.stage_ref(TxnOpRef::SetData(t)),
            TxnOp::SetAcl(t) => self.stage_ref(TxnOpRef::SetAcl(t)),
            TxnOp::Multi(ops) => ops.iter().try_for_each(|op| self.stage_ref(op.as_op())),
            TxnOp::MultiError(_) => Ok(()),
        }
    }

    pub(crate) fn stage_ref(&mut self, op: TxnOpRef<'_>) -> Result<(), ErrorCode> {
        match op {
            TxnOpRef::Check(t) => self.node(&t.path).map(drop).ok_or(ErrorCode::NoNode),
            TxnOpRef::Create(t) => self.stage_create(t),
            TxnOpRef::Delete(t) => self.stage_delete(t),
            TxnOpRef::SetData(t) => self.stage_set_data(t),
            TxnOpRef::SetAcl(t) => self.stage_set_acl(t),
        }
    }

    fn stage_create_session(
        &mut self,
        session: SessionId,
        timeout_ms: u64,
    ) -> Result<(), ErrorCode> {
        if session == 0 || self.session_live(session) {
            return Err(ErrorCode::BadArguments);
        }
        self.sessions.insert(session, Some(timeout_ms));
        self.growth.sessions += 1;
        Ok(())
    }

    fn stage_close_session(
        &mut self,
        session: SessionId,
        paths: &[String],
    ) -> Result<(), ErrorCode> {
        if !self.session_live(session) {
            return Err(ErrorCode::SessionExpired);
        }
        for path in paths {
            if self
                .node(path)
                .is_some_and(|r| r.ephemeral_owner == session)
            {
                self.stage_delete(&DeleteTxn { path: path.clone() })?;
            }
        }
        self.sessions.insert(session, None);
        Ok(())
    }

    fn stage_create(&mut self, t: &CreateTxn) -> Result<(), ErrorCode> {
        let parent_path = parent_path(&t.path).ok_or(ErrorCode::BadArguments)?;
        let mut parent = self.node(parent_path).ok_or(ErrorCode::NoNode)?;
        if self.node(&t.path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if parent.ephemeral_owner != 0 {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        parent.child_count += 1;
        parent.cversion = t.parent_cversion;
        self.nodes.insert(parent_path.to_string(), Some(parent));
        self.nodes.insert(t.path.clone(), Some(Record::created(t)));
        self.growth.nodes += 1;
        self.growth.bytes += footprint(t.path.len(), t.data.len(), &t.acl);
        if t.ephemeral_owner != 0 {
            *self.growth.ephemerals.entry(t.ephemeral_owner).or_default() += 1;
        }
        Ok(())
    }

    fn stage_delete(&mut self, t: &DeleteTxn) -> Result<(), ErrorCode> {
        let node = self.node(&t.path).ok_or(ErrorCode::NoNode)?;
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        let parent_path = parent_path(&t.path).ok_or(ErrorCode::BadArguments)?;
        let mut parent = self.node(parent_path).ok_or(ErrorCode::NoNode)?;
        parent.child_count -= 1;
        self.nodes.insert(parent_path.to_string(), Some(parent));
        self.nodes.insert(t.path.clone(), None);
        Ok(())
    }

    fn stage_set_data(&mut self, t: &SetDataTxn) -> Result<(), ErrorCode> {
        let mut node = self.node(&t.path).ok_or(ErrorCode::NoNode)?;
        self.growth.bytes += t.data.len().saturating_sub(node.data_len) as u64;
        node.version = t.version;
        node.data_len = t.data.len();
        self.nodes.insert(t.path.clone(), Some(node));
        Ok(())
    }

    fn stage_set_acl(&mut self, t: &SetAclTxn) -> Result<(), ErrorCode> {
        let mut node = self.node(&t.path).ok_or(ErrorCode::NoNode)?;
        self.growth.bytes += acl_bytes(&t.acl).saturating_sub(acl_bytes(&node.acl));
        node.acl = t.acl.clone();
        node.aversion = t.aversion;
        self.nodes.insert(t.path.clone(), Some(node));
        Ok(())
    }
}
