//! Applying a committed transaction, on every replica, in zxid order (ZooKeeper's
//! `DataTree.processTxn`).
//!
//! Apply makes no decision: the transaction says what to do, and the zxid given alongside
//! stamps czxid, mzxid and pzxid. So every replica that applies the same transactions in
//! the same order holds the same tree, whatever its clock or timing. Apply still checks
//! that each change fits the tree (the parent exists, the node does not, ...) and refuses
//! one that does not, changing nothing; a transaction prepared against this history always
//! fits.
//!
//! Watch events are returned, not delivered: watches are local to the server a client is
//! connected to (see [`Watches`](super::Watches)), while apply runs everywhere.

use super::data_tree::Tree;
use super::node::{Node, PersistedStat};
use super::outstanding::{Outstanding, View};
use super::txn::{
    failed_multi_results, CreateTxn, MultiTxnOp, SetAclTxn, SetDataTxn, Txn, TxnOp, TxnResult,
};
use crate::api::{
    parent_path, ErrorCode, EventKind, OpResult, Reply, SessionId, Stat, WatchEvent, Zxid,
};

/// When a transaction happens: its zxid and the leader's clock.
#[derive(Clone, Copy, Debug)]
struct At {
    zxid: Zxid,
    time_ms: u64,
}

/// Applies `txn`, committed at `zxid`, to `tree`. Returns the result for the client and
/// the watch events, in order. Deterministic: depends on nothing but its arguments.
///
/// # Panics
/// If `zxid` is not above the last applied one: applying out of order would silently fork
/// this replica from the others.
/// Records that transaction `zxid` committed without touching the tree (a sync barrier),
/// so the tree's zxid stays the log's and later applies keep their order check.
pub fn skip(tree: &mut Tree, zxid: Zxid) {
    assert!(
        zxid > tree.last_zxid(),
        "zxid {zxid:#x} skipped after {:#x}",
        tree.last_zxid()
    );
    tree.set_last_zxid(zxid);
}

pub fn apply(tree: &mut Tree, zxid: Zxid, txn: &Txn) -> (TxnResult, Vec<WatchEvent>) {
    assert!(
        zxid > tree.last_zxid(),
        "zxid {zxid:#x} applied after {:#x}",
        tree.last_zxid()
    );
    let at = At {
        zxid,
        time_ms: txn.time_ms,
    };
    let mut events = Vec::new();
    let result = apply_op(tree, at, &txn.op, &mut events);
    tree.set_last_zxid(zxid);
    (result, events)
}

fn apply_op(tree: &mut Tree, at: At, op: &TxnOp, events: &mut Vec<WatchEvent>) -> TxnResult {
    let reply = match op {
        TxnOp::CreateSession {
            session,
            timeout_ms,
        } => return create_session(tree, *session, *timeout_ms),
        TxnOp::CloseSession {
            session,
            ephemerals,
        } => return close_session(tree, at, *session, ephemerals, events),
        TxnOp::Create(t) => create(tree, at, t, events).map(|stat| Reply::Create {
            path: t.path.clone(),
            stat,
        }),
        TxnOp::Delete(t) => delete(tree, at, &t.path, events).map(|()| Reply::Delete),
        TxnOp::SetData(t) => set_data(tree, at, t, events).map(|stat| Reply::SetData { stat }),
        TxnOp::SetAcl(t) => set_acl(tree, t).map(|stat| Reply::SetAcl { stat }),
        TxnOp::Multi(ops) => Ok(multi(tree, at, ops, events)),
        TxnOp::MultiError(results) => Ok(Reply::Multi {
            results: results.clone(),
        }),
    };
    match reply {
        Ok(reply) => TxnResult::Reply(reply),
        Err(code) => TxnResult::Failed(code),
    }
}

fn create_session(tree: &mut Tree, session: SessionId, timeout_ms: u64) -> TxnResult {
    if session == 0 || tree.session_timeout_ms(session).is_some() {
        return TxnResult::Failed(ErrorCode::BadArguments);
    }
    tree.add_session(session, timeout_ms);
    TxnResult::SessionCreated { session }
}

/// Deletes the listed ephemerals the session still owns, then forgets the session. A
/// listed path that is gone or owned by another is skipped, as ZooKeeper's `killSession`
/// ignores NoNode.
fn close_session(
    tree: &mut Tree,
    at: At,
    session: SessionId,
    paths: &[String],
    events: &mut Vec<WatchEvent>,
) -> TxnResult {
    if tree.session_timeout_ms(session).is_none() {
        return TxnResult::Failed(ErrorCode::SessionExpired);
    }
    let mut deleted = Vec::new();
    for path in paths {
        let owned = tree.node(path).map(|n| n.persisted_stat().ephemeral_owner);
        if owned == Some(session) && delete(tree, at, path, events).is_ok() {
            deleted.push(path.clone());
        }
    }
    tree.remove_session(session);
    TxnResult::SessionClosed { session, deleted }
}

/// A multi is checked whole against a scratch view before anything changes, so it
/// applies entirely or not at all.
fn multi(tree: &mut Tree, at: At, ops: &[MultiTxnOp], events: &mut Vec<WatchEvent>) -> Reply {
    if let Err((failed_at, code)) = check_multi(tree, ops) {
        let results = failed_multi_results(ops.len(), failed_at, code);
        return Reply::Multi { results };
    }
    let results = ops
        .iter()
        .map(|op| multi_op(tree, at, op, events).expect("staging agrees with apply"))
        .collect();
    Reply::Multi { results }
}

fn check_multi(tree: &Tree, ops: &[MultiTxnOp]) -> Result<(), (usize, ErrorCode)> {
    let none = Outstanding::new();
    let mut view = View::new(tree, &none);
    for (i, op) in ops.iter().enumerate() {
        view.stage_ref(op.as_op()).map_err(|code| (i, code))?;
    }
    Ok(())
}

fn multi_op(
    tree: &mut Tree,
    at: At,
    op: &MultiTxnOp,
    events: &mut Vec<WatchEvent>,
) -> Result<OpResult, ErrorCode> {
    Ok(match op {
        MultiTxnOp::Check(t) => {
            tree.node(&t.path).ok_or(ErrorCode::NoNode)?;
            OpResult::Check
        }
        MultiTxnOp::Create(t) => OpResult::Create {
            path: t.path.clone(),
            stat: create(tree, at, t, events)?,
        },
        MultiTxnOp::Delete(t) => {
            delete(tree, at, &t.path, events)?;
            OpResult::Delete
        }
        MultiTxnOp::SetData(t) => OpResult::SetData {
            stat: set_data(tree, at, t, events)?,
        },
    })
}

// ---------------------------------------------------------------------------------------
// Node changes. Each checks, then changes; never half of one.
// ---------------------------------------------------------------------------------------

/// Creates the node and bumps its parent: cversion as the transaction says, pzxid to this
/// zxid. Fires NodeCreated on the path and NodeChildrenChanged on the parent.
fn create(
    tree: &mut Tree,
    at: At,
    t: &CreateTxn,
    events: &mut Vec<WatchEvent>,
) -> Result<Stat, ErrorCode> {
    let parent = parent_path(&t.path).ok_or(ErrorCode::BadArguments)?;
    let parent_node = tree.node(parent).ok_or(ErrorCode::NoNode)?;
    if parent_node.is_ephemeral() {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    if tree.contains(&t.path) {
        return Err(ErrorCode::NodeExists);
    }
    let stat = PersistedStat::created(at.zxid, at.time_ms, t.ephemeral_owner);
    let node = Node::new(&t.path, t.data.clone(), t.acl.clone(), stat);
    tree.insert_node(&t.path, node);
    tree.update_stat(parent, |s| {
        s.cversion = t.parent_cversion;
        s.pzxid = at.zxid;
    });
    events.push(event(&t.path, EventKind::NodeCreated, at));
    events.push(event(parent, EventKind::NodeChildrenChanged, at));
    Ok(tree.stat(&t.path).expect("just created"))
}

/// Deletes a childless node. The parent's pzxid moves to this zxid; its cversion stays,
/// as in ZooKeeper, where only creates advance it. Fires NodeDeleted on the path (data and
/// child watches alike) and NodeChildrenChanged on the parent.
fn delete(
    tree: &mut Tree,
    at: At,
    path: &str,
    events: &mut Vec<WatchEvent>,
) -> Result<(), ErrorCode> {
    let node = tree.node(path).ok_or(ErrorCode::NoNode)?;
    if node.num_children() > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    let parent = parent_path(path).ok_or(ErrorCode::BadArguments)?;
    tree.remove_node(path);
    tree.update_stat(parent, |s| s.pzxid = s.pzxid.max(at.zxid));
    events.push(event(path, EventKind::NodeDeleted, at));
    events.push(event(parent, EventKind::NodeChildrenChanged, at));
    Ok(())
}

/// Replaces the data whole. Fires NodeDataChanged.
fn set_data(
    tree: &mut Tree,
    at: At,
    t: &SetDataTxn,
    events: &mut Vec<WatchEvent>,
) -> Result<Stat, ErrorCode> {
    tree.node(&t.path).ok_or(ErrorCode::NoNode)?;
    tree.update_content(&t.path, |node| {
        node.data = t.data.clone();
        node.stat.version = t.version;
        node.stat.mzxid = at.zxid;
        node.stat.mtime_ms = at.time_ms;
    });
    events.push(event(&t.path, EventKind::NodeDataChanged, at));
    Ok(tree.stat(&t.path).expect("exists"))
}

/// Replaces the ACL. Fires no watch and leaves mzxid alone, as in ZooKeeper: an ACL is not
/// data.
fn set_acl(tree: &mut Tree, t: &SetAclTxn) -> Result<Stat, ErrorCode> {
    tree.node(&t.path).ok_or(ErrorCode::NoNode)?;
    tree.update_content(&t.path, |node| {
        node.acl = t.acl.clone();
        node.stat.aversion = t.aversion;
    });
    Ok(tree.stat(&t.path).expect("exists"))
}

fn event(path: &str, kind: EventKind, at: At) -> WatchEvent {
    WatchEvent {
        path: path.to_string(),
        kind,
        zxid: at.zxid,
    }
}
