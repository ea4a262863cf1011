//! Turning a write request into a transaction, on the leader (ZooKeeper's
//! `PrepRequestProcessor`).
//!
//! Prepare is where every check happens and every choice is made: paths, sizes, ACLs,
//! versions, existence, the sequence number, the ephemerals a closing session leaves. It
//! reads the committed tree through the leader's [`Outstanding`] changes, so that requests
//! prepared back to back see each other. It changes nothing: the server records the
//! proposal with [`Outstanding::propose`].
//!
//! The checks run in ZooKeeper's order, so that a request failing two ways reports what
//! ZooKeeper would: e.g. a create checks the parent's ACL before whether the node exists,
//! and a delete checks the parent's DELETE permission before whether the node exists.

use super::acl::{self, fix_acl};
use super::node::footprint;
use super::outstanding::{Outstanding, Record, View};
use super::txn::{
    failed_multi_results, CheckTxn, CreateTxn, DeleteTxn, MultiTxnOp, SetAclTxn, SetDataTxn, Txn,
    TxnOp, TxnOpRef,
};
use super::Tree;
use crate::api::{
    parent_path, validate_path, validate_sequential_prefix, Acl, CheckRequest, CreateRequest,
    DeleteRequest, ErrorCode, Id, MultiOp, Perms, Request, SessionId, SetDataRequest, Zxid,
    MAX_CHILDREN_PER_NODE, MAX_DATA_BYTES, MAX_EPHEMERALS_PER_SESSION, MAX_MULTI_DATA_BYTES,
    MAX_MULTI_OPS, MAX_NODES, MAX_SESSIONS, MAX_TREE_BYTES,
};

/// Who is asking: the session and the identities its connection authenticated as.
#[derive(Clone, Copy, Debug)]
struct Caller<'a> {
    session: SessionId,
    auth: &'a [Id],
}

/// Prepares a write request (`Request::kind() == Write`) from `session`, whose connection
/// holds the identities `auth`, as the transaction to propose at `zxid`, stamped with the
/// leader's clock `time_ms`.
///
/// Errors are the client's answer and propose nothing. (ZooKeeper proposes failed writes
/// too, as error transactions; the server must instead hold such an answer until the
/// session's earlier writes are answered, to keep the client's FIFO order.) A multi with a
/// failing op is not an error: it prepares to [`TxnOp::MultiError`]. Never panics, whatever
/// the request holds.
pub fn prepare(
    tree: &Tree,
    outstanding: &Outstanding,
    session: SessionId,
    auth: &[Id],
    request: &Request,
    zxid: Zxid,
    time_ms: u64,
) -> Result<Txn, ErrorCode> {
    debug_assert!(zxid > outstanding.last_zxid().unwrap_or(0).max(tree.last_zxid()));
    let mut view = View::new(tree, outstanding);
    if !view.session_live(session) {
        return Err(ErrorCode::SessionExpired);
    }
    let caller = Caller { session, auth };
    let op = prepare_op(&mut view, caller, request)?;
    Ok(Txn { time_ms, op })
}

fn prepare_op(view: &mut View, caller: Caller, request: &Request) -> Result<TxnOp, ErrorCode> {
    match request {
        Request::Create(req) => prep_create(view, caller, req).map(TxnOp::Create),
        Request::Delete(req) => prep_delete(view, caller, req).map(TxnOp::Delete),
        Request::SetData(req) => prep_set_data(view, caller, req).map(TxnOp::SetData),
        Request::SetAcl { path, acl, version } => {
            prep_set_acl(view, caller, path, acl, *version).map(TxnOp::SetAcl)
        }
        Request::Multi { ops } => prep_multi(view, caller, ops),
        // Reads, sync and auth are not transactions: the server answers them itself.
        _ => Err(ErrorCode::BadArguments),
    }
}

/// Prepares the transaction recording a new session with its negotiated timeout
/// (ZooKeeper replicates session creation so that every server knows the session, and a
/// new leader can expire it). `session` must be non-zero and not live.
pub fn prepare_create_session(
    tree: &Tree,
    outstanding: &Outstanding,
    session: SessionId,
    timeout_ms: u64,
    time_ms: u64,
) -> Result<Txn, ErrorCode> {
    let mut view = View::new(tree, outstanding);
    if view.session_count() >= MAX_SESSIONS as u64 {
        return Err(ErrorCode::QuotaExceeded);
    }
    let op = TxnOp::CreateSession {
        session,
        timeout_ms,
    };
    view.stage(&op)?;
    Ok(Txn { time_ms, op })
}

/// What closing a session does to its ephemerals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Delete them: what ZooKeeper guarantees, on close and on expiry alike.
    DeleteEphemerals,
    /// Leave them: only for the "skip ephemeral cleanup on expiry" bug switch, which plants
    /// orphaned ephemerals for the membership checker to find.
    KeepEphemerals,
}

/// Prepares the transaction ending `session` (closed by its client or expired by the
/// leader). The ephemerals to delete are listed now, from the committed tree plus
/// outstanding creates and deletes, so that one proposed just before the close is not
/// left behind (ZooKeeper's fix for ZOOKEEPER-1208). Fails with `SessionExpired` when the
/// session is not live (already closed, or its close already proposed): from then on,
/// every request of the session fails the same way.
pub fn prepare_close_session(
    tree: &Tree,
    outstanding: &Outstanding,
    session: SessionId,
    cleanup: Cleanup,
    time_ms: u64,
) -> Result<Txn, ErrorCode> {
    let mut view = View::new(tree, outstanding);
    let ephemerals = match cleanup {
        Cleanup::DeleteEphemerals => view.ephemerals_of(session),
        Cleanup::KeepEphemerals => Vec::new(),
    };
    let op = TxnOp::CloseSession {
        session,
        ephemerals,
    };
    view.stage(&op)?;
    Ok(Txn { time_ms, op })
}

// ---------------------------------------------------------------------------------------
// One op each. Every one stages its transaction into the view, so that the next op of the
// same multi sees it.
// ---------------------------------------------------------------------------------------

fn prep_create(
    view: &mut View,
    caller: Caller,
    req: &CreateRequest,
) -> Result<CreateTxn, ErrorCode> {
    let CreateRequest {
        path,
        data,
        acl,
        flags,
    } = req;
    if flags.sequence {
        validate_sequential_prefix(path)?;
    } else {
        validate_path(path)?;
    }
    check_data(data)?;
    let parent_path = create_parent(path);
    let acl = fix_acl(acl, caller.auth)?;
    let parent = view.node(parent_path).ok_or(ErrorCode::NoNode)?;
    acl::check(&parent.acl, caller.auth, Perms::CREATE)?;
    let path = if flags.sequence {
        // The parent's child version names the child: unique and increasing under one
        // parent, since every create under it bumps the version. Signed, as ZooKeeper's:
        // past 2^31-1 names go negative.
        format!("{path}{:010}", parent.cversion)
    } else {
        path.to_string()
    };
    validate_path(&path)?;
    if view.node(&path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if parent.ephemeral_owner != 0 {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let ephemeral_owner = if flags.ephemeral { caller.session } else { 0 };
    let bytes = footprint(path.len(), data.len(), &acl);
    check_create_limits(view, &parent, ephemeral_owner, bytes)?;
    let txn = CreateTxn {
        path,
        data: data.to_vec(),
        acl,
        ephemeral_owner,
        parent_cversion: parent.cversion.wrapping_add(1),
    };
    view.stage_ref(TxnOpRef::Create(&txn))?;
    Ok(txn)
}

/// The parent a create names: the path up to its last slash (ZooKeeper's
/// `validatePathForCreate`). So a sequential prefix `/queue/` names children of `/queue`,
/// `/` names children of the root, and a plain create of `/` finds the root as its own
/// parent and fails with NodeExists, as in ZooKeeper.
fn create_parent(validated: &str) -> &str {
    match validated.rfind('/') {
        Some(0) | None => "/",
        Some(slash) => &validated[..slash],
    }
}

fn check_create_limits(
    view: &View,
    parent: &Record,
    ephemeral_owner: SessionId,
    bytes: u64,
) -> Result<(), ErrorCode> {
    let owner_full = ephemeral_owner != 0
        && view.ephemeral_count(ephemeral_owner) >= MAX_EPHEMERALS_PER_SESSION as u64;
    let full = parent.child_count >= MAX_CHILDREN_PER_NODE
        || view.node_count() >= MAX_NODES as u64
        || view.footprint_bytes() + bytes > MAX_TREE_BYTES
        || owner_full;
    if full {
        Err(ErrorCode::QuotaExceeded)
    } else {
        Ok(())
    }
}

fn prep_delete(
    view: &mut View,
    caller: Caller,
    req: &DeleteRequest,
) -> Result<DeleteTxn, ErrorCode> {
    let DeleteRequest { path, version } = req;
    validate_path(path)?;
    let parent_path = parent_path(path).ok_or(ErrorCode::BadArguments)?;
    let parent = view.node(parent_path).ok_or(ErrorCode::NoNode)?;
    acl::check(&parent.acl, caller.auth, Perms::DELETE)?;
    let node = view.node(path).ok_or(ErrorCode::NoNode)?;
    check_version(node.version, *version)?;
    if node.child_count > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    let txn = DeleteTxn {
        path: path.to_string(),
    };
    view.stage_ref(TxnOpRef::Delete(&txn))?;
    Ok(txn)
}

fn prep_set_data(
    view: &mut View,
    caller: Caller,
    req: &SetDataRequest,
) -> Result<SetDataTxn, ErrorCode> {
    let SetDataRequest {
        path,
        data,
        version,
    } = req;
    validate_path(path)?;
    check_data(data)?;
    let node = view.node(path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, caller.auth, Perms::WRITE)?;
    check_version(node.version, *version)?;
    check_growth(view, data.len().saturating_sub(node.data_len) as u64)?;
    let txn = SetDataTxn {
        path: path.to_string(),
        data: data.to_vec(),
        version: next_version(node.version),
    };
    view.stage_ref(TxnOpRef::SetData(&txn))?;
    Ok(txn)
}

fn prep_set_acl(
    view: &mut View,
    caller: Caller,
    path: &str,
    acl: &[Acl],
    version: i32,
) -> Result<SetAclTxn, ErrorCode> {
    validate_path(path)?;
    let acl = fix_acl(acl, caller.auth)?;
    let node = view.node(path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, caller.auth, Perms::ADMIN)?;
    check_version(node.aversion, version)?;
    let grown = acl::acl_bytes(&acl).saturating_sub(acl::acl_bytes(&node.acl));
    check_growth(view, grown)?;
    let txn = SetAclTxn {
        path: path.to_string(),
        acl,
        aversion: next_version(node.aversion),
    };
    // Later requests in the pipeline are checked against the new ACL, not the committed
    // one (ZooKeeper fixed this time-of-check bug late: its ChangeRecord lacked the ACL).
    view.stage_ref(TxnOpRef::SetAcl(&txn))?;
    Ok(txn)
}

fn prep_check(view: &View, caller: Caller, req: &CheckRequest) -> Result<CheckTxn, ErrorCode> {
    let CheckRequest { path, version } = req;
    validate_path(path)?;
    let node = view.node(path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, caller.auth, Perms::READ)?;
    check_version(node.version, *version)?;
    Ok(CheckTxn {
        path: path.to_string(),
    })
}

/// All or nothing. Each op is prepared against the view the ops before it staged; at the
/// first failure the view is dropped and the multi becomes an error multi (ZooKeeper rolls
/// its outstanding changes back instead; a throwaway view needs no rollback).
fn prep_multi(view: &mut View, caller: Caller, ops: &[MultiOp]) -> Result<TxnOp, ErrorCode> {
    let data_bytes: usize = ops.iter().map(multi_op_data_len).sum();
    if ops.len() > MAX_MULTI_OPS || data_bytes > MAX_MULTI_DATA_BYTES {
        return Err(ErrorCode::BadArguments);
    }
    let mut txns = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        match prep_multi_op(view, caller, op) {
            Ok(txn) => txns.push(txn),
            Err(code) => return Ok(TxnOp::MultiError(failed_multi_results(ops.len(), i, code))),
        }
    }
    Ok(TxnOp::Multi(txns))
}

fn prep_multi_op(view: &mut View, caller: Caller, op: &MultiOp) -> Result<MultiTxnOp, ErrorCode> {
    Ok(match op {
        MultiOp::Check(req) => MultiTxnOp::Check(prep_check(view, caller, req)?),
        MultiOp::Create(req) => MultiTxnOp::Create(prep_create(view, caller, req)?),
        MultiOp::Delete(req) => MultiTxnOp::Delete(prep_delete(view, caller, req)?),
        MultiOp::SetData(req) => MultiTxnOp::SetData(prep_set_data(view, caller, req)?),
    })
}

fn multi_op_data_len(op: &MultiOp) -> usize {
    match op {
        MultiOp::Create(req) => req.data.len(),
        MultiOp::SetData(req) => req.data.len(),
        MultiOp::Check(_) | MultiOp::Delete(_) => 0,
    }
}

fn check_data(data: &[u8]) -> Result<(), ErrorCode> {
    if data.len() > MAX_DATA_BYTES {
        Err(ErrorCode::BadArguments)
    } else {
        Ok(())
    }
}

fn check_growth(view: &View, bytes: u64) -> Result<(), ErrorCode> {
    if view.footprint_bytes() + bytes > MAX_TREE_BYTES {
        Err(ErrorCode::QuotaExceeded)
    } else {
        Ok(())
    }
}

/// A conditional write names the version it expects; -1 means any.
fn check_version(current: i32, expected: i32) -> Result<(), ErrorCode> {
    if expected != -1 && expected != current {
        Err(ErrorCode::BadVersion)
    } else {
        Ok(())
    }
}

/// The version after a write. Versions wrap as Java ints do, but skip -1, which would read
/// as "any version" (ZOOKEEPER-4743).
fn next_version(current: i32) -> i32 {
    match current.wrapping_add(1) {
        -1 => 0,
        next => next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_wrap_but_never_to_any() {
        assert_eq!(next_version(0), 1);
        assert_eq!(next_version(i32::MAX), i32::MIN);
        assert_eq!(next_version(-2), 0);
        assert_eq!(check_version(3, -1), Ok(()));
        assert_eq!(check_version(3, 3), Ok(()));
        assert_eq!(check_version(3, 2), Err(ErrorCode::BadVersion));
    }
}
