//! What clients ask and what they are told: ZooKeeper's data API, as serde types.
//!
//! The wire encodes these with postcard. Session handshakes, pings and the envelope that
//! pairs a reply with its request are the server's; this module holds the data operations
//! and their results, the [`Stat`] every znode carries, ZooKeeper's error codes, watch
//! events, and the limits and path rules every server enforces before touching the tree.
//!
//! The names and numbers follow ZooKeeper's `ZooDefs`, `KeeperException.Code` and
//! `PathUtils`, so that a reader who knows ZooKeeper recognizes them, and so that histories
//! of this service and of Apache ZooKeeper read alike.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A ZooKeeper transaction id: the epoch of the leader that proposed the transaction in the
/// high 32 bits and a counter within that epoch in the low 32 bits, so that comparing two
/// zxids as integers orders them as Zab delivers them.
pub type Zxid = u64;

/// A client session, as ZooKeeper names them (a 64-bit id chosen by the server that
/// created it). 0 means "no session": it is the `ephemeral_owner` of persistent znodes.
pub type SessionId = u64;

/// Builds a zxid from its epoch and counter.
pub fn make_zxid(epoch: u32, counter: u32) -> Zxid {
    (u64::from(epoch) << 32) | u64::from(counter)
}

/// The epoch of the leader that proposed `zxid`.
pub fn zxid_epoch(zxid: Zxid) -> u32 {
    (zxid >> 32) as u32
}

/// The position of `zxid` within its epoch.
pub fn zxid_counter(zxid: Zxid) -> u32 {
    zxid as u32
}

// ---------------------------------------------------------------------------------------
// Limits. ZooKeeper bounds a request by `jute.maxbuffer` (1 MiB by default) and leaves the
// tree unbounded; a deterministic core bounds everything, so that no client can make a
// transaction outgrow a log record or a snapshot outgrow a blob.
// ---------------------------------------------------------------------------------------

/// Longest path, in bytes. ZooKeeper has no separate limit; 1 KiB keeps the bounds below
/// (children lists, close-session transactions) small.
pub const MAX_PATH_BYTES: usize = 1024;

/// Largest znode data, in bytes: ZooKeeper's `jute.maxbuffer` default.
pub const MAX_DATA_BYTES: usize = 1 << 20;

/// Most children of one znode, so that a `getChildren` reply stays well under a wire frame
/// (`MAX_CHILDREN_PER_NODE * MAX_PATH_BYTES` = 4 MiB < `machine::MAX_MESSAGE_BYTES`).
/// ZooKeeper famously has no such limit, and a large enough directory breaks its clients.
pub const MAX_CHILDREN_PER_NODE: usize = 4096;

/// Most znodes in the tree, the root included.
pub const MAX_NODES: usize = 250_000;

/// Most bytes the tree may hold, counted as each node's path, data, ACL and a fixed
/// overhead, so that a snapshot stays below `machine::MAX_BLOB_BYTES` (256 MiB).
pub const MAX_TREE_BYTES: u64 = 128 << 20;

/// Most ephemeral znodes one session may own, so that the transaction closing the session,
/// which lists them all, fits in one log record.
pub const MAX_EPHEMERALS_PER_SESSION: usize = 2048;

/// Most live sessions.
pub const MAX_SESSIONS: usize = 65_536;

/// Most operations in one `multi`.
pub const MAX_MULTI_OPS: usize = 128;

/// Most data bytes in one `multi`, all operations together: ZooKeeper bounds the whole
/// request by `jute.maxbuffer`, so one multi carries at most what one setData does.
pub const MAX_MULTI_DATA_BYTES: usize = MAX_DATA_BYTES;

/// Most entries in one ACL.
pub const MAX_ACL_ENTRIES: usize = 16;

/// Most paths in one `SetWatches`; a client holding more sends several (ZooKeeper splits
/// at 128 KiB of paths).
pub const MAX_SET_WATCHES_PATHS: usize = 1024;

/// Longest ACL scheme or id, and longest `addAuth` credential, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// An upper bound of one transaction's encoded size: the larger of a multi of creates with
/// the biggest paths and ACLs plus all its data, and a close-session listing the most
/// ephemerals. Checked below against the log's record limit.
pub const MAX_TXN_BYTES: usize = {
    let acl = MAX_ACL_ENTRIES * (2 * MAX_ID_BYTES + 16);
    let multi = MAX_MULTI_OPS * (MAX_PATH_BYTES + acl + 64) + MAX_MULTI_DATA_BYTES;
    let close = MAX_EPHEMERALS_PER_SESSION * (MAX_PATH_BYTES + 8) + 64;
    if multi > close {
        multi
    } else {
        close
    }
};

/// Room in a log record for what the replication layer wraps around a transaction.
const TXN_ENVELOPE_BYTES: usize = 64 << 10;

const _: () = assert!(MAX_TXN_BYTES + TXN_ENVELOPE_BYTES <= machine::MAX_RECORD_BYTES);
const _: () = assert!(MAX_CHILDREN_PER_NODE * (MAX_PATH_BYTES + 8) < machine::MAX_MESSAGE_BYTES);
const _: () = assert!(MAX_TREE_BYTES * 2 <= machine::MAX_BLOB_BYTES as u64);
const _: () = assert!(MAX_SET_WATCHES_PATHS * (MAX_PATH_BYTES + 8) < machine::MAX_MESSAGE_BYTES);

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// A data operation, as the API slide lists them. Session connect, ping and close are the
/// server's messages and are not here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Create(CreateRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    GetData {
        path: String,
        watch: bool,
    },
    /// Unlike the other reads, sets its watch even when the node does not exist, so that a
    /// client can wait for a node to appear.
    Exists {
        path: String,
        watch: bool,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    /// Waits until the server has applied every write the leader committed before the
    /// sync: a read after it sees them all.
    Sync {
        path: String,
    },
    /// All or nothing: either every op applies at one zxid or none does.
    Multi {
        ops: Vec<MultiOp>,
    },
    GetAcl {
        path: String,
    },
    /// `version` is the ACL version (`Stat::aversion`), -1 for any.
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// Adds an identity to this connection, e.g. scheme `digest` with `user:password`.
    AddAuth {
        scheme: String,
        auth: Vec<u8>,
    },
    /// Carries a client's watches to the server it reconnected to (ZooKeeper's
    /// `setWatches`): watches belong to a connection, and a session outlives its
    /// connections.
    SetWatches(SetWatchesRequest),
}

/// The watches a client still holds, and the newest state it had seen when its last
/// connection broke. The server fires at once every watch whose change it has applied
/// after `relative_zxid` (the client missed that notification), and registers the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetWatchesRequest {
    pub relative_zxid: Zxid,
    /// Data watches set by getData, or by exists on a node that existed.
    pub data: Vec<String>,
    /// Data watches set by exists on a node that did not exist: they wait for a create.
    pub exist: Vec<String>,
    /// Child watches, set by getChildren.
    pub child: Vec<String>,
}

impl SetWatchesRequest {
    pub fn len(&self) -> usize {
        self.data.len() + self.exist.len() + self.child.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The writes a multi may also hold, as records shared by both (as ZooKeeper's
/// `CreateRequest`, `DeleteRequest` and `SetDataRequest` are).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    pub path: String,
    pub data: Vec<u8>,
    pub acl: Vec<Acl>,
    pub flags: CreateFlags,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub path: String,
    /// -1 deletes whatever the version.
    pub version: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetDataRequest {
    pub path: String,
    pub data: Vec<u8>,
    /// -1 writes whatever the version.
    pub version: i32,
}

/// Fails the multi unless the node exists with this data version (-1: any version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    pub path: String,
    pub version: i32,
}

/// One operation of a `multi`. ZooKeeper's multi takes exactly these four.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MultiOp {
    Check(CheckRequest),
    Create(CreateRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
}

/// How a server handles a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Answered from the local tree by whichever server the client is connected to.
    Read,
    /// Sent to the leader, prepared into a transaction, broadcast, applied everywhere.
    Write,
    /// Answered once this server has applied everything the leader committed before it.
    Sync,
    /// Changes the connection's identities; nothing is replicated.
    Auth,
}

impl Request {
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::GetData { .. }
            | Request::Exists { .. }
            | Request::GetChildren { .. }
            | Request::GetAcl { .. }
            | Request::SetWatches(_) => RequestKind::Read,
            Request::Create(_)
            | Request::Delete(_)
            | Request::SetData(_)
            | Request::SetAcl { .. }
            | Request::Multi { .. } => RequestKind::Write,
            Request::Sync { .. } => RequestKind::Sync,
            Request::AddAuth { .. } => RequestKind::Auth,
        }
    }
}

/// ZooKeeper's create modes as two independent flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CreateFlags {
    /// Deleted when the creating session ends. Ephemeral nodes cannot have children.
    pub ephemeral: bool,
    /// The name gets the parent's child version (`cversion`) appended as `%010d`, so that
    /// names are unique under the parent and increase in creation order.
    pub sequence: bool,
}

impl CreateFlags {
    pub const PERSISTENT: CreateFlags = CreateFlags::new(false, false);
    pub const EPHEMERAL: CreateFlags = CreateFlags::new(true, false);
    pub const SEQUENCE: CreateFlags = CreateFlags::new(false, true);
    pub const EPHEMERAL_SEQUENCE: CreateFlags = CreateFlags::new(true, true);

    pub const fn new(ephemeral: bool, sequence: bool) -> CreateFlags {
        CreateFlags {
            ephemeral,
            sequence,
        }
    }
}

// ---------------------------------------------------------------------------------------
// ACLs
// ---------------------------------------------------------------------------------------

/// Permission bits, with ZooKeeper's values (`ZooDefs.Perms`). Note that CREATE and DELETE
/// are checked on the *parent* of the node created or deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Perms(pub u32);

impl Perms {
    pub const READ: Perms = Perms(1);
    pub const WRITE: Perms = Perms(2);
    pub const CREATE: Perms = Perms(4);
    pub const DELETE: Perms = Perms(8);
    pub const ADMIN: Perms = Perms(16);
    pub const ALL: Perms = Perms(31);
    pub const NONE: Perms = Perms(0);

    /// Whether any bit of `other` is set here: ZooKeeper grants access when an entry holds
    /// any of the permissions asked for.
    pub fn intersects(self, other: Perms) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether only known bits are set.
    pub fn is_valid(self) -> bool {
        self.0 & !Perms::ALL.0 == 0
    }
}

impl std::ops::BitOr for Perms {
    type Output = Perms;
    fn bitor(self, rhs: Perms) -> Perms {
        Perms(self.0 | rhs.0)
    }
}

impl fmt::Display for Perms {
    /// As `zkCli` prints them: `cdrwa`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letters = [
            (Perms::CREATE, 'c'),
            (Perms::DELETE, 'd'),
            (Perms::READ, 'r'),
            (Perms::WRITE, 'w'),
            (Perms::ADMIN, 'a'),
        ];
        for (perm, letter) in letters {
            if self.intersects(perm) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// An identity in an authentication scheme: `world:anyone`, or `digest:user:hash`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_string(),
            id: id.to_string(),
        }
    }

    /// Everyone: ZooKeeper's `ANYONE_ID_UNSAFE`.
    pub fn anyone() -> Id {
        Id::new("world", "anyone")
    }

    /// In an ACL given to create or setACL, stands for every identity the caller has
    /// authenticated as: ZooKeeper's `AUTH_IDS`.
    pub fn auth_ids() -> Id {
        Id::new("auth", "")
    }
}

/// One ACL entry: who may do what.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Acl {
    pub perms: Perms,
    pub id: Id,
}

impl Acl {
    pub fn new(perms: Perms, id: Id) -> Acl {
        Acl { perms, id }
    }

    /// Anyone may do anything: ZooKeeper's `OPEN_ACL_UNSAFE`, the root's ACL.
    pub fn open() -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, Id::anyone())]
    }

    /// Anyone may read: ZooKeeper's `READ_ACL_UNSAFE`.
    pub fn read_only() -> Vec<Acl> {
        vec![Acl::new(Perms::READ, Id::anyone())]
    }

    /// The creator's identities may do anything: ZooKeeper's `CREATOR_ALL_ACL`.
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, Id::auth_ids())]
    }
}

// ---------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------

/// A znode's metadata, as ZooKeeper's `Stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stat {
    /// The zxid that created the node: a fencing token, since it increases with every
    /// create.
    pub czxid: Zxid,
    /// The zxid that last changed the data (the create, or the last setData).
    pub mzxid: Zxid,
    /// The zxid that last added or removed a child.
    pub pzxid: Zxid,
    /// Leader's clock when the node was created, in ms since the Unix epoch.
    pub ctime_ms: u64,
    /// Leader's clock at the last data change.
    pub mtime_ms: u64,
    /// Data version: 0 at create, +1 per setData. The `version` of conditional writes.
    pub version: i32,
    /// Child version: +1 per child created. Sequence suffixes come from it.
    pub cversion: i32,
    /// ACL version: +1 per setACL.
    pub aversion: i32,
    /// The session owning this ephemeral node, 0 for a persistent one.
    pub ephemeral_owner: SessionId,
    pub data_length: u32,
    pub num_children: u32,
}

/// The successful outcome of one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The path created, with its sequence suffix if any, and its Stat (ZooKeeper's create2).
    Create {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    GetData {
        data: Vec<u8>,
        stat: Stat,
    },
    /// `None` when the node does not exist. (ZooKeeper's wire answers NoNode and its client
    /// library turns that into a null Stat; we say it directly.)
    Exists {
        stat: Option<Stat>,
    },
    /// Children's names (not paths), sorted bytewise.
    GetChildren {
        children: Vec<String>,
        stat: Stat,
    },
    Sync {
        path: String,
    },
    /// One result per op, in order. A failed multi is also answered this way: see
    /// [`OpResult`] and [`multi_error`].
    Multi {
        results: Vec<OpResult>,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    SetAcl {
        stat: Stat,
    },
    AddAuth,
    SetWatches,
}

/// The outcome of one op of a multi.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    Check,
    Create {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    /// In a failed multi, an op before the failing one: it would have succeeded, but
    /// nothing applied. (ZooKeeper reports these as `ErrorResult(OK)`.)
    RolledBack,
    /// In a failed multi, the op that failed with its error, and every op after it with
    /// `RuntimeInconsistency`, as ZooKeeper does: they were not tried.
    Error(ErrorCode),
}

/// The error a failed multi reports as a whole: its first failing op's, as ZooKeeper's
/// client throws it. `None` when the multi succeeded.
pub fn multi_error(results: &[OpResult]) -> Option<ErrorCode> {
    results.iter().find_map(|r| match r {
        OpResult::Error(code) => Some(*code),
        _ => None,
    })
}

/// ZooKeeper's error codes (`KeeperException.Code`), the ones this service can return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum ErrorCode {
    #[error("system error")]
    SystemError,
    /// Also marks the ops after the failing one in a failed multi.
    #[error("runtime inconsistency")]
    RuntimeInconsistency,
    #[error("data inconsistency")]
    DataInconsistency,
    /// The connection was lost; the request may or may not have been applied.
    #[error("connection loss")]
    ConnectionLoss,
    #[error("marshalling error")]
    MarshallingError,
    #[error("unimplemented")]
    Unimplemented,
    /// The request timed out; it may or may not have been applied.
    #[error("operation timeout")]
    OperationTimeout,
    /// An invalid path, oversized data or a malformed request.
    #[error("bad arguments")]
    BadArguments,
    #[error("unknown session")]
    UnknownSession,
    #[error("no node")]
    NoNode,
    /// The node's ACL does not grant the caller's identities the permission needed.
    #[error("not authenticated")]
    NoAuth,
    /// A conditional write named a version other than the node's.
    #[error("bad version")]
    BadVersion,
    #[error("ephemeral nodes may not have children")]
    NoChildrenForEphemerals,
    #[error("node exists")]
    NodeExists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("session expired")]
    SessionExpired,
    #[error("invalid ACL")]
    InvalidAcl,
    #[error("authentication failed")]
    AuthFailed,
    #[error("session moved")]
    SessionMoved,
    /// One of the limits above (children, nodes, bytes, ephemerals, sessions) is reached.
    #[error("quota exceeded")]
    QuotaExceeded,
    #[error("throttled")]
    Throttled,
}

impl ErrorCode {
    const CODES: [(ErrorCode, i32); 21] = [
        (ErrorCode::SystemError, -1),
        (ErrorCode::RuntimeInconsistency, -2),
        (ErrorCode::DataInconsistency, -3),
        (ErrorCode::ConnectionLoss, -4),
        (ErrorCode::MarshallingError, -5),
        (ErrorCode::Unimplemented, -6),
        (ErrorCode::OperationTimeout, -7),
        (ErrorCode::BadArguments, -8),
        (ErrorCode::UnknownSession, -12),
        (ErrorCode::NoNode, -101),
        (ErrorCode::NoAuth, -102),
        (ErrorCode::BadVersion, -103),
        (ErrorCode::NoChildrenForEphemerals, -108),
        (ErrorCode::NodeExists, -110),
        (ErrorCode::NotEmpty, -111),
        (ErrorCode::SessionExpired, -112),
        (ErrorCode::InvalidAcl, -114),
        (ErrorCode::AuthFailed, -115),
        (ErrorCode::SessionMoved, -118),
        (ErrorCode::QuotaExceeded, -125),
        (ErrorCode::Throttled, -127),
    ];

    /// ZooKeeper's numeric code.
    pub fn code(self) -> i32 {
        let entry = Self::CODES.iter().find(|(c, _)| *c == self);
        entry.expect("every code is listed").1
    }

    pub fn from_code(code: i32) -> Option<ErrorCode> {
        Self::CODES
            .iter()
            .find(|(_, n)| *n == code)
            .map(|(c, _)| *c)
    }

    /// Whether the request certainly did not take effect. Connection loss and timeouts
    /// leave it unknown, which a history records as `info`, not `fail`.
    pub fn is_definite(self) -> bool {
        !matches!(
            self,
            ErrorCode::ConnectionLoss | ErrorCode::OperationTimeout
        )
    }
}

// ---------------------------------------------------------------------------------------
// Watches
// ---------------------------------------------------------------------------------------

/// What happened to a watched node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
    NodeChildrenChanged,
}

/// A change that may fire watches. As in ZooKeeper, it says what changed, not the new
/// value: the client reads again (and may set a new watch) to learn it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchEvent {
    pub path: String,
    pub kind: EventKind,
    /// The transaction that made the change, so that a client can order notifications
    /// against the zxids of its replies.
    pub zxid: Zxid,
}

// ---------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------

/// Why a path is not a valid znode path (ZooKeeper's `PathUtils.validatePath`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path of {0} bytes is longer than {MAX_PATH_BYTES}")]
    TooLong(usize),
    #[error("path does not start with '/'")]
    NotAbsolute,
    #[error("path ends with '/'")]
    TrailingSlash,
    #[error("empty node name at byte {0}")]
    EmptyName(usize),
    #[error("relative component '.' or '..' at byte {0}")]
    Relative(usize),
    #[error("invalid character {0:?} at byte {1}")]
    BadChar(char, usize),
}

impl From<PathError> for ErrorCode {
    fn from(_: PathError) -> ErrorCode {
        ErrorCode::BadArguments
    }
}

/// Checks a znode path as ZooKeeper does: absolute, no trailing slash except for the root,
/// no empty, `.` or `..` components, no NUL, control characters, or characters ZooKeeper
/// reserves (U+007F..=U+009F, the private use area U+E000..=U+F8FF, U+FFF0..=U+FFFF);
/// plus our length limit.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(path.len()));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(PathError::TrailingSlash);
    }
    let mut at = 1;
    for name in path[1..].split('/') {
        validate_name(name, at)?;
        at += name.len() + 1;
    }
    Ok(())
}

/// Checks the path a sequential create names: ZooKeeper validates it with a digit appended,
/// since the sequence suffix will follow, so `/queue/` is a valid prefix (children named
/// `/queue/0000000000`, ...).
pub fn validate_sequential_prefix(path: &str) -> Result<(), PathError> {
    validate_path(&format!("{path}1"))
}

fn validate_name(name: &str, at: usize) -> Result<(), PathError> {
    if name.is_empty() {
        return Err(PathError::EmptyName(at));
    }
    if name == "." || name == ".." {
        return Err(PathError::Relative(at));
    }
    for (i, c) in name.char_indices() {
        if is_reserved_char(c) {
            return Err(PathError::BadChar(c, at + i));
        }
    }
    Ok(())
}

fn is_reserved_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
}

/// The parent of a valid non-root path: `/a/b` -> `/a`, `/a` -> `/`.
pub fn parent_path(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let slash = path.rfind('/')?;
    Some(if slash == 0 { "/" } else { &path[..slash] })
}

/// The last component of a valid non-root path: `/a/b` -> `b`.
pub fn node_name(path: &str) -> &str {
    path.rfind('/').map_or(path, |slash| &path[slash + 1..])
}

/// The path of `name` under `parent`.
pub fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxids_order_by_epoch_then_counter() {
        let z = make_zxid(3, 7);
        assert_eq!((zxid_epoch(z), zxid_counter(z)), (3, 7));
        assert!(make_zxid(2, u32::MAX) < make_zxid(3, 0));
    }

    #[test]
    fn paths_are_checked_as_zookeeper_does() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/...", "/a/.b", "/é", "/a-1/b_2"] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        let bad = [
            ("", PathError::Empty),
            ("a", PathError::NotAbsolute),
            ("/a/", PathError::TrailingSlash),
            ("//a", PathError::EmptyName(1)),
            ("/a//b", PathError::EmptyName(3)),
            ("/a/.", PathError::Relative(3)),
            ("/../a", PathError::Relative(1)),
            ("/a\0b", PathError::BadChar('\0', 2)),
            ("/a\u{1}", PathError::BadChar('\u{1}', 2)),
            ("/\u{e000}", PathError::BadChar('\u{e000}', 1)),
            ("/\u{fff0}", PathError::BadChar('\u{fff0}', 1)),
        ];
        for (path, err) in bad {
            assert_eq!(validate_path(path), Err(err), "{path:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(validate_path(&long), Err(PathError::TooLong(long.len())));
        assert_eq!(ErrorCode::from(PathError::Empty), ErrorCode::BadArguments);
    }

    #[test]
    fn a_sequential_prefix_may_end_in_a_slash() {
        assert_eq!(validate_sequential_prefix("/queue/"), Ok(()));
        assert_eq!(validate_sequential_prefix("/lock-"), Ok(()));
        assert!(validate_sequential_prefix("/a//").is_err());
    }

    #[test]
    fn path_helpers_split_and_join() {
        assert_eq!(parent_path("/a/b"), Some("/a"));
        assert_eq!(parent_path("/a"), Some("/"));
        assert_eq!(parent_path("/"), None);
        assert_eq!(node_name("/a/b"), "b");
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
    }

    #[test]
    fn error_codes_have_zookeepers_numbers() {
        assert_eq!(ErrorCode::NoNode.code(), -101);
        assert_eq!(ErrorCode::NodeExists.code(), -110);
        assert_eq!(ErrorCode::BadVersion.code(), -103);
        for (code, n) in ErrorCode::CODES {
            assert_eq!(ErrorCode::from_code(n), Some(code));
            assert_eq!(code.code(), n);
        }
        assert_eq!(ErrorCode::from_code(0), None);
    }

    #[test]
    fn perms_print_as_zkcli_does() {
        assert_eq!(Perms::ALL.to_string(), "cdrwa");
        assert_eq!((Perms::READ | Perms::ADMIN).to_string(), "ra");
        assert!(!Perms(32).is_valid());
    }

    #[test]
    fn a_failed_multi_reports_its_first_error() {
        let results = [
            OpResult::RolledBack,
            OpResult::Error(ErrorCode::NodeExists),
            OpResult::Error(ErrorCode::RuntimeInconsistency),
        ];
        assert_eq!(multi_error(&results), Some(ErrorCode::NodeExists));
        assert_eq!(multi_error(&[OpResult::Delete]), None);
    }

    #[test]
    fn requests_round_trip_through_postcard() {
        let req = Request::Multi {
            ops: vec![
                MultiOp::Check(CheckRequest {
                    path: "/a".into(),
                    version: 3,
                }),
                MultiOp::Create(CreateRequest {
                    path: "/a/b-".into(),
                    data: vec![1, 2],
                    acl: Acl::open(),
                    flags: CreateFlags::EPHEMERAL_SEQUENCE,
                }),
            ],
        };
        let bytes = postcard::to_stdvec(&req).unwrap();
        assert_eq!(postcard::from_bytes::<Request>(&bytes).unwrap(), req);
        assert_eq!(req.kind(), RequestKind::Write);
    }
}
