//! ZooKeeper's client protocol records (`zookeeper.jute`), opcodes and special xids.
//!
//! On the wire every message is a frame: a 4-byte big-endian length, then a jute body.
//! A session opens with a bare `ConnectRequest` / `ConnectResponse` pair; after that a
//! request is a `RequestHeader` (xid, opcode) and the opcode's record, and every message
//! from the server is a `ReplyHeader` (xid, zxid, err) and, when `err` is 0, the reply
//! record. A few negative xids are not requests: -1 marks a watch notification, -2 a
//! ping's answer, -8 the answer to the `SetWatches` a client sends after reconnecting.

use super::error::ErrorCode;
use super::jute::{JuteError, Reader, Writer};

/// Opcodes (`ZooDefs.OpCode`) this client sends.
pub mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    /// Create that answers with the new node's Stat as well as its path.
    pub const CREATE2: i32 = 15;
    pub const SET_WATCHES: i32 = 101;
    pub const CLOSE_SESSION: i32 = -11;
    /// In a multi reply, the header type of a failed (or rolled back) op.
    pub const ERROR: i32 = -1;
}

/// Xids the server and client reserve (`ClientCnxn`).
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const SET_WATCHES: i32 = -8;
}

/// The only protocol version ZooKeeper has.
pub const PROTOCOL_VERSION: i32 = 0;

/// ZooKeeper's `jute.maxbuffer` default (0xfffff): the server drops a connection whose
/// request is larger, and the largest znode value is a little less than this.
pub const JUTE_MAX_BUFFER_BYTES: usize = 0xfffff;

/// Largest frame this client reads or writes. A getData of the largest value is the
/// largest reply; headers and a Stat add well under 1 KiB. Anything larger is garbage.
pub const MAX_FRAME_BYTES: usize = JUTE_MAX_BUFFER_BYTES + 64 * 1024;

/// Largest number of ops this client puts in one multi.
pub const MAX_MULTI_OPS: usize = 1024;

/// A znode's metadata, as ZooKeeper's `Stat` record orders it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime_ms: i64,
    pub mtime_ms: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

/// Bytes of an encoded Stat: 6 longs and 5 ints.
pub const STAT_BYTES: usize = 6 * 8 + 5 * 4;

impl Stat {
    pub fn read(r: &mut Reader<'_>) -> Result<Stat, JuteError> {
        Ok(Stat {
            czxid: r.long()?,
            mzxid: r.long()?,
            ctime_ms: r.long()?,
            mtime_ms: r.long()?,
            version: r.int()?,
            cversion: r.int()?,
            aversion: r.int()?,
            ephemeral_owner: r.long()?,
            data_length: r.int()?,
            num_children: r.int()?,
            pzxid: r.long()?,
        })
    }
}

/// An identity in an authentication scheme, e.g. `world:anyone`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

/// One ACL entry. Perms are `ZooDefs.Perms` bits: READ 1, WRITE 2, CREATE 4, DELETE 8,
/// ADMIN 16.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    /// Anyone may do anything: `OPEN_ACL_UNSAFE`.
    pub fn open() -> Vec<Acl> {
        vec![Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]
    }

    fn write(&self, w: &mut Writer) {
        w.int(self.perms)
            .ustring(&self.id.scheme)
            .ustring(&self.id.id);
    }
}

/// `CreateMode`, by its wire flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
}

impl CreateMode {
    pub fn flags(self) -> i32 {
        match self {
            CreateMode::Persistent => 0,
            CreateMode::Ephemeral => 1,
            CreateMode::PersistentSequential => 2,
            CreateMode::EphemeralSequential => 3,
        }
    }
}

/// Opens a session (`session_id` 0, empty `passwd`) or resumes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The newest zxid the client has seen: a server behind it refuses the connection, so
    /// that a client never sees the tree go back in time.
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: bool,
}

impl ConnectRequest {
    pub fn frame(&self) -> Vec<u8> {
        let mut w = Writer::framed();
        w.int(PROTOCOL_VERSION)
            .long(self.last_zxid_seen)
            .int(self.timeout_ms)
            .long(self.session_id)
            .buffer(&self.passwd)
            .boolean(self.read_only);
        w.into_frame()
    }
}

/// The server's answer. A timeout of 0 or less means the session to resume has expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// Servers before 3.4 do not send it.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    pub fn decode(body: &[u8]) -> Result<ConnectResponse, JuteError> {
        let mut r = Reader::new(body);
        let resp = ConnectResponse {
            protocol_version: r.int()?,
            timeout_ms: r.int()?,
            session_id: r.long()?,
            passwd: r.buffer()?,
            read_only: if r.remaining() > 0 {
                Some(r.boolean()?)
            } else {
                None
            },
        };
        r.finish()?;
        Ok(resp)
    }
}

/// The header of every message from the server after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    /// The server's last zxid when it answered (-1 in some notifications).
    pub zxid: i64,
    /// 0, or a `KeeperException.Code`.
    pub err: i32,
}

impl ReplyHeader {
    pub fn read(r: &mut Reader<'_>) -> Result<ReplyHeader, JuteError> {
        Ok(ReplyHeader {
            xid: r.int()?,
            zxid: r.long()?,
            err: r.int()?,
        })
    }
}

/// One op of a multi: ZooKeeper's transactional ops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiOp {
    Create {
        path: String,
        data: Vec<u8>,
        acl: Vec<Acl>,
        mode: CreateMode,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    /// Fails the multi unless the node has this data version (-1: exists at all).
    Check {
        path: String,
        version: i32,
    },
}

impl MultiOp {
    /// Creates go as create2, so that their results carry a Stat.
    fn opcode(&self) -> i32 {
        match self {
            MultiOp::Create { .. } => op::CREATE2,
            MultiOp::Delete { .. } => op::DELETE,
            MultiOp::SetData { .. } => op::SET_DATA,
            MultiOp::Check { .. } => op::CHECK,
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            MultiOp::Create {
                path,
                data,
                acl,
                mode,
            } => write_create(w, path, data, acl, *mode),
            MultiOp::Delete { path, version } | MultiOp::Check { path, version } => {
                w.ustring(path).int(*version);
            }
            MultiOp::SetData {
                path,
                data,
                version,
            } => {
                w.ustring(path).buffer(data).int(*version);
            }
        }
    }
}

fn write_create(w: &mut Writer, path: &str, data: &[u8], acl: &[Acl], mode: CreateMode) {
    w.ustring(path).buffer(data).int(len_i32(acl.len()));
    for a in acl {
        a.write(w);
    }
    w.int(mode.flags());
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The outcome of one op of a multi.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// ZooKeeper 3.8 answers a create in a multi with a plain create result (no Stat)
    /// even when the op was sent as create2; `stat` is `None` then.
    Create {
        path: String,
        stat: Option<Stat>,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    /// In a failed multi, an op that would have succeeded but was rolled back with the
    /// rest (ZooKeeper sends it as an error result with code 0).
    RolledBack,
    /// The op that failed the multi, and after it every op not tried
    /// (`RuntimeInconsistency`).
    Error(ErrorCode),
}

/// The first error of a multi's results, the one ZooKeeper's Java client throws.
pub fn multi_error(results: &[OpResult]) -> Option<ErrorCode> {
    results.iter().find_map(|r| match r {
        OpResult::Error(code) => Some(*code),
        _ => None,
    })
}

/// The paths whose watches a reconnected client asks the new server to keep, with the
/// zxid they were set at: the server fires at once those whose node changed since.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
}

/// A request after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Sent as create2.
    Create {
        path: String,
        data: Vec<u8>,
        acl: Vec<Acl>,
        mode: CreateMode,
    },
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    /// Sent as getChildren2, which answers with the parent's Stat too.
    GetChildren {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Multi(Vec<MultiOp>),
    CloseSession,
}

impl Request {
    pub fn opcode(&self) -> i32 {
        match self {
            Request::Create { .. } => op::CREATE2,
            Request::Delete { .. } => op::DELETE,
            Request::Exists { .. } => op::EXISTS,
            Request::GetData { .. } => op::GET_DATA,
            Request::SetData { .. } => op::SET_DATA,
            Request::GetChildren { .. } => op::GET_CHILDREN2,
            Request::Sync { .. } => op::SYNC,
            Request::Multi(_) => op::MULTI,
            Request::CloseSession => op::CLOSE_SESSION,
        }
    }

    /// The operation's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Create { .. } => "create",
            Request::Delete { .. } => "delete",
            Request::Exists { .. } => "exists",
            Request::GetData { .. } => "getData",
            Request::SetData { .. } => "setData",
            Request::GetChildren { .. } => "getChildren",
            Request::Sync { .. } => "sync",
            Request::Multi(_) => "multi",
            Request::CloseSession => "closeSession",
        }
    }

    /// The path the request names, for errors ("" for multi and closeSession).
    pub fn path(&self) -> &str {
        match self {
            Request::Create { path, .. }
            | Request::Delete { path, .. }
            | Request::Exists { path, .. }
            | Request::GetData { path, .. }
            | Request::SetData { path, .. }
            | Request::GetChildren { path, .. }
            | Request::Sync { path } => path,
            Request::Multi(_) | Request::CloseSession => "",
        }
    }

    /// The whole frame: length, RequestHeader, record.
    pub fn frame(&self, xid: i32) -> Vec<u8> {
        let mut w = Writer::framed();
        w.int(xid).int(self.opcode());
        self.write(&mut w);
        w.into_frame()
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Request::Create {
                path,
                data,
                acl,
                mode,
            } => write_create(w, path, data, acl, *mode),
            Request::Delete { path, version } => {
                w.ustring(path).int(*version);
            }
            Request::Exists { path, watch }
            | Request::GetData { path, watch }
            | Request::GetChildren { path, watch } => {
                w.ustring(path).boolean(*watch);
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                w.ustring(path).buffer(data).int(*version);
            }
            Request::Sync { path } => {
                w.ustring(path);
            }
            Request::Multi(ops) => write_multi(w, ops),
            Request::CloseSession => {}
        }
    }
}

/// A multi is a sequence of (MultiHeader, op) closed by a header with type -1 and done.
fn write_multi(w: &mut Writer, ops: &[MultiOp]) {
    for o in ops {
        w.int(o.opcode()).boolean(false).int(-1);
        o.write(w);
    }
    w.int(-1).boolean(true).int(-1);
}

/// A ping: a RequestHeader alone.
pub fn ping_frame() -> Vec<u8> {
    let mut w = Writer::framed();
    w.int(xid::PING).int(op::PING);
    w.into_frame()
}

impl SetWatches {
    pub fn frame(&self) -> Vec<u8> {
        let mut w = Writer::framed();
        w.int(xid::SET_WATCHES).int(op::SET_WATCHES);
        w.long(self.relative_zxid)
            .strings(&self.data)
            .strings(&self.exist)
            .strings(&self.child);
        w.into_frame()
    }
}

/// A successful reply's record, by the request it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Created {
        path: String,
        stat: Stat,
    },
    /// exists and setData.
    Stat(Stat),
    Data {
        data: Vec<u8>,
        stat: Stat,
    },
    Children {
        children: Vec<String>,
        stat: Stat,
    },
    Synced {
        path: String,
    },
    Multi(Vec<OpResult>),
    /// delete and closeSession.
    Empty,
}

impl Response {
    /// Decodes the record after a ReplyHeader with err 0 (and a multi's body whatever its
    /// err); every byte must belong to it.
    pub fn decode(request: &Request, r: &mut Reader<'_>) -> Result<Response, JuteError> {
        let resp = match request {
            Request::Create { .. } => Response::Created {
                path: r.ustring()?,
                stat: Stat::read(r)?,
            },
            Request::Exists { .. } | Request::SetData { .. } => Response::Stat(Stat::read(r)?),
            Request::GetData { .. } => Response::Data {
                data: r.buffer()?,
                stat: Stat::read(r)?,
            },
            Request::GetChildren { .. } => Response::Children {
                children: r.strings()?,
                stat: Stat::read(r)?,
            },
            Request::Sync { .. } => Response::Synced { path: r.ustring()? },
            Request::Multi(ops) => Response::Multi(read_multi(r, ops.len())?),
            Request::Delete { .. } | Request::CloseSession => Response::Empty,
        };
        r.finish()?;
        Ok(resp)
    }
}

/// Reads (MultiHeader, result) pairs until the done header. At most `ops` results: a
/// reply with more than the request had ops is garbage.
fn read_multi(r: &mut Reader<'_>, ops: usize) -> Result<Vec<OpResult>, JuteError> {
    let mut results = Vec::with_capacity(ops.min(MAX_MULTI_OPS));
    loop {
        let (kind, done, _err) = (r.int()?, r.boolean()?, r.int()?);
        if done {
            return Ok(results);
        }
        if results.len() == ops {
            return Err(JuteError::Unknown {
                what: "multi result beyond the request's ops, type",
                value: kind,
            });
        }
        results.push(read_op_result(r, kind)?);
    }
}

fn read_op_result(r: &mut Reader<'_>, kind: i32) -> Result<OpResult, JuteError> {
    Ok(match kind {
        op::CREATE => OpResult::Create {
            path: r.ustring()?,
            stat: None,
        },
        op::CREATE2 => OpResult::Create {
            path: r.ustring()?,
            stat: Some(Stat::read(r)?),
        },
        op::DELETE => OpResult::Delete,
        op::SET_DATA => OpResult::SetData {
            stat: Stat::read(r)?,
        },
        op::CHECK => OpResult::Check,
        op::ERROR => match ErrorCode::from_code(r.int()?) {
            None => OpResult::RolledBack,
            Some(code) => OpResult::Error(code),
        },
        value => {
            return Err(JuteError::Unknown {
                what: "multi result type",
                value,
            })
        }
    })
}

/// What happened to a watched node (`Watcher.Event.EventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A change of the session's state, not of a node.
    None,
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
    NodeChildrenChanged,
    Other(i32),
}

impl EventType {
    pub fn from_code(code: i32) -> EventType {
        match code {
            -1 => EventType::None,
            1 => EventType::NodeCreated,
            2 => EventType::NodeDeleted,
            3 => EventType::NodeDataChanged,
            4 => EventType::NodeChildrenChanged,
            other => EventType::Other(other),
        }
    }
}

/// The session state a notification reports (`Watcher.Event.KeeperState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeeperState {
    Disconnected,
    SyncConnected,
    Expired,
    Closed,
    Other(i32),
}

impl KeeperState {
    pub fn from_code(code: i32) -> KeeperState {
        match code {
            0 => KeeperState::Disconnected,
            3 => KeeperState::SyncConnected,
            -112 => KeeperState::Expired,
            7 => KeeperState::Closed,
            other => KeeperState::Other(other),
        }
    }
}

/// A watch notification: what changed, not the new value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchedEvent {
    pub kind: EventType,
    pub state: KeeperState,
    pub path: String,
    /// The notification header's zxid (-1 when the server does not say).
    pub zxid: i64,
}

impl WatchedEvent {
    /// Decodes the `WatcherEvent` record after a notification's header.
    pub fn decode(zxid: i64, r: &mut Reader<'_>) -> Result<WatchedEvent, JuteError> {
        let event = WatchedEvent {
            kind: EventType::from_code(r.int()?),
            state: KeeperState::from_code(r.int()?),
            path: r.ustring()?,
            zxid,
        };
        r.finish()?;
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_is_laid_out_as_zookeeper_reads_it() {
        let frame = ConnectRequest {
            last_zxid_seen: 0x1_0000_0002,
            timeout_ms: 4000,
            session_id: 7,
            passwd: vec![9; 16],
            read_only: false,
        }
        .frame();
        // length, version, zxid, timeout, session, passwd (4 + 16), readOnly
        assert_eq!(frame.len(), 4 + 4 + 8 + 4 + 8 + 4 + 16 + 1);
        assert_eq!(&frame[..4], &((frame.len() - 4) as u32).to_be_bytes());
        assert_eq!(&frame[8..16], &0x1_0000_0002i64.to_be_bytes());
        assert_eq!(&frame[16..20], &4000i32.to_be_bytes());
    }

    #[test]
    fn a_failed_multi_reply_decodes_per_op() {
        let mut w = Writer::new();
        w.int(op::ERROR).boolean(false).int(0).int(0);
        w.int(op::ERROR).boolean(false).int(-101).int(-101);
        w.int(-1).boolean(true).int(-1);
        let bytes = w.into_bytes();
        let ops = vec![
            MultiOp::Check {
                path: "/a".into(),
                version: -1,
            };
            2
        ];
        let resp = Response::decode(&Request::Multi(ops), &mut Reader::new(&bytes)).unwrap();
        let Response::Multi(results) = resp else {
            panic!("{resp:?}")
        };
        assert_eq!(
            results,
            vec![OpResult::RolledBack, OpResult::Error(ErrorCode::NoNode)]
        );
        assert_eq!(multi_error(&results), Some(ErrorCode::NoNode));
    }

    #[test]
    fn a_multi_reply_with_more_results_than_ops_is_garbage() {
        let mut w = Writer::new();
        w.int(op::CHECK).boolean(false).int(0);
        w.int(op::CHECK).boolean(false).int(0);
        w.int(-1).boolean(true).int(-1);
        let bytes = w.into_bytes();
        let ops = vec![MultiOp::Check {
            path: "/a".into(),
            version: -1,
        }];
        assert!(Response::decode(&Request::Multi(ops), &mut Reader::new(&bytes)).is_err());
    }
}
