//! Reads, answered by any server from its own tree (ZooKeeper's `FinalRequestProcessor`
//! for getData, exists, getChildren, getACL).
//!
//! A read is not ordered with writes elsewhere: a follower answers from whatever prefix of
//! the log it has applied, so a read may be stale. That is ZooKeeper's contract; `sync`
//! before a read (the server's business) makes it see every write committed before.
//!
//! Permissions: getData and getChildren need READ, getACL needs READ or ADMIN, and exists
//! needs nothing, as in ZooKeeper: the Stat is not secret.

use super::acl;
use super::data_tree::Tree;
use super::watch::{WatchType, Watches};
use crate::api::{
    validate_path, Acl, ErrorCode, EventKind, Id, Perms, Reply, Request, SetWatchesRequest, Stat,
    WatchEvent, Zxid, MAX_SET_WATCHES_PATHS,
};

impl Tree {
    /// The node's data and Stat, if `auth` may READ it.
    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Vec<u8>, Stat), ErrorCode> {
        validate_path(path)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        acl::check(node.acl(), auth, Perms::READ)?;
        Ok((node.data().to_vec(), node.stat()))
    }

    /// The node's Stat, `None` if it does not exist.
    pub fn exists(&self, path: &str) -> Result<Option<Stat>, ErrorCode> {
        validate_path(path)?;
        Ok(self.stat(path))
    }

    /// The children's names, sorted, and the node's Stat, if `auth` may READ it.
    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<(Vec<String>, Stat), ErrorCode> {
        validate_path(path)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        acl::check(node.acl(), auth, Perms::READ)?;
        Ok((node.children().map(str::to_string).collect(), node.stat()))
    }

    /// The node's ACL (digests hidden unless `auth` has ADMIN) and Stat, if `auth` may READ
    /// or ADMIN it.
    pub fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        validate_path(path)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        acl::check(node.acl(), auth, Perms::READ | Perms::ADMIN)?;
        Ok((acl::redact(node.acl(), auth), node.stat()))
    }
}

/// Answers a read request (`Request::kind() == Read`) from `tree` for a connection holding
/// identities `auth`, registering `watcher` as asked. A watch is set only if the read
/// succeeds, except that exists sets it on a missing node too. Other requests get
/// `BadArguments`, `SetWatches` too: it answers with events besides its reply
/// ([`set_watches`]).
pub fn read<W: Ord + Clone>(
    tree: &Tree,
    watches: &mut Watches<W>,
    watcher: &W,
    auth: &[Id],
    request: &Request,
) -> Result<Reply, ErrorCode> {
    match request {
        Request::GetData { path, watch } => {
            let (data, stat) = tree.get_data(path, auth)?;
            register(watches, *watch, WatchType::Data, path, watcher)?;
            Ok(Reply::GetData { data, stat })
        }
        Request::Exists { path, watch } => {
            let stat = tree.exists(path)?;
            register(watches, *watch, WatchType::Data, path, watcher)?;
            Ok(Reply::Exists { stat })
        }
        Request::GetChildren { path, watch } => {
            let (children, stat) = tree.get_children(path, auth)?;
            register(watches, *watch, WatchType::Child, path, watcher)?;
            Ok(Reply::GetChildren { children, stat })
        }
        Request::GetAcl { path } => {
            let (acl, stat) = tree.get_acl(path, auth)?;
            Ok(Reply::GetAcl { acl, stat })
        }
        _ => Err(ErrorCode::BadArguments),
    }
}

/// Carries a reconnected client's watches to this server (ZooKeeper's
/// `DataTree.setWatches`): each watch whose change this server applied after
/// `relative_zxid`, the newest state the client had seen, fires now, since its notification
/// was lost with the old connection; the others are registered. Returns the events to send
/// before the answer, in zxid order, as the client expects notifications.
///
/// A fired event carries the zxid of the latest change it reports (a data watch: the
/// node's mzxid; a child watch: its pzxid), or, for a node gone, this server's last zxid:
/// the deletion's own zxid is not kept, and an upper bound keeps the client's order.
pub fn set_watches<W: Ord + Clone>(
    tree: &Tree,
    watches: &mut Watches<W>,
    watcher: &W,
    request: &SetWatchesRequest,
) -> Result<Vec<WatchEvent>, ErrorCode> {
    if request.len() > MAX_SET_WATCHES_PATHS {
        return Err(ErrorCode::BadArguments);
    }
    let all = request
        .data
        .iter()
        .chain(&request.exist)
        .chain(&request.child);
    for path in all {
        validate_path(path)?;
    }
    let since = request.relative_zxid;
    let gone = tree.last_zxid();
    let mut fired = Vec::new();
    let mut fire = |path: &str, kind: EventKind, zxid: Zxid| {
        fired.push(WatchEvent {
            path: path.to_string(),
            kind,
            zxid,
        });
    };
    for path in &request.data {
        match tree.stat(path) {
            None => fire(path, EventKind::NodeDeleted, gone),
            Some(s) if s.mzxid > since => fire(path, EventKind::NodeDataChanged, s.mzxid),
            Some(_) => watches.add(WatchType::Data, path, watcher.clone())?,
        }
    }
    for path in &request.exist {
        match tree.stat(path) {
            Some(s) => fire(path, EventKind::NodeCreated, s.mzxid),
            None => watches.add(WatchType::Data, path, watcher.clone())?,
        }
    }
    for path in &request.child {
        match tree.stat(path) {
            None => fire(path, EventKind::NodeDeleted, gone),
            Some(s) if s.pzxid > since => fire(path, EventKind::NodeChildrenChanged, s.pzxid),
            Some(_) => watches.add(WatchType::Child, path, watcher.clone())?,
        }
    }
    // A node gone fires its data and child watches with one event, as a live delete does.
    fired.sort_by(|a, b| (a.zxid, &a.path, a.kind).cmp(&(b.zxid, &b.path, b.kind)));
    fired.dedup();
    Ok(fired)
}

fn register<W: Ord + Clone>(
    watches: &mut Watches<W>,
    wanted: bool,
    kind: WatchType,
    path: &str,
    watcher: &W,
) -> Result<(), ErrorCode> {
    if wanted {
        watches.add(kind, path, watcher.clone())
    } else {
        Ok(())
    }
}
