//! Faultline's own coordination service (`systems/coord`) as a system under test.
//!
//! The node binary is the controller itself: `faultline node coord ...` runs the same
//! driver as `faultline-node` ([`OwnNode`] deploys it on every backend).
//!
//! On the local backend each node dials each peer through its own `LocalNet` proxy (the
//! node binary takes an address per peer), so partitions need no root. Clock faults reach
//! the nodes through the offset file their `--clock-offset-file` names, which is the file
//! the clock nemesis writes.

use super::own_node::OwnNode;
use super::{Cluster, Db, DbError, LogTail, MAX_TAIL_BYTES};
use crate::control::daemon::sh_quote;
use crate::control::{clock, Node};
use coord::server::proto::{ClientMsg, ServerMsg};
use machine::{wire, NodeId};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

pub const CLIENT_PORT: u16 = 7000;
pub const PEER_PORT: u16 = 7001;
const SYSTEM: &str = "coord";
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The transaction log's segments, relative to the node directory (see `systems/storage`).
pub const TXN_LOG_DIR: &str = "data/logs/txn";
/// Bytes of a segment header and of a record's frame header (length, checksum).
const SEGMENT_HEADER_BYTES: u64 = 24;
const FRAME_HEADER_BYTES: u64 = 8;
/// Largest segment read when looking for its tail.
const MAX_SEGMENT_BYTES: u64 = 256 << 20;

/// The coordination service, with the bugs to plant (`--bug`).
#[derive(Debug)]
pub struct Coord {
    pub bugs: Vec<String>,
    /// The run's seed: each node's core is seeded from it.
    pub seed: u64,
    own: OwnNode,
}

impl Default for Coord {
    fn default() -> Coord {
        Coord::new(Vec::new(), 0)
    }
}

impl Coord {
    pub fn new(bugs: Vec<String>, seed: u64) -> Coord {
        Coord {
            bugs,
            seed,
            own: OwnNode::new(SYSTEM, PEER_PORT),
        }
    }

    fn command(&self, cluster: &Cluster, node: &Node) -> Result<String, DbError> {
        let id = self.own.node_id(cluster, node)?;
        let mut cmd = vec![
            self.own.binary(cluster),
            "node coord".into(),
            format!("--id {id}"),
            format!("--peers {}", self.own.peers_arg(cluster, node)?),
            format!("--peer-listen {}:{PEER_PORT}", node.ip),
            format!("--client-listen {}:{CLIENT_PORT}", node.ip),
            "--data data".into(),
            format!("--cluster {}", sh_quote(&cluster.run_id)),
            format!(
                "--seed {}",
                self.seed ^ u64::from(id).wrapping_mul(0x9e37_79b9)
            ),
            format!("--clock-offset-file {}", clock::OFFSET_FILE),
        ];
        cmd.extend(self.bugs.iter().map(|b| format!("--bug {}", sh_quote(b))));
        Ok(cmd.join(" "))
    }
}

/// Asks a node for its role: (its id, the leader it knows, whether it serves).
pub fn status(addr: SocketAddr) -> std::io::Result<(NodeId, Option<NodeId>, bool)> {
    let mut s = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))?;
    s.set_write_timeout(Some(PROBE_TIMEOUT))?;
    let frame = wire::encode(&ClientMsg::Status).map_err(std::io::Error::other)?;
    s.write_all(&frame)?;
    let mut header = [0u8; wire::HEADER_BYTES];
    s.read_exact(&mut header)?;
    let mut body = vec![0; wire::body_len(header).map_err(std::io::Error::other)?];
    s.read_exact(&mut body)?;
    match wire::decode(&body).map_err(std::io::Error::other)? {
        ServerMsg::Status {
            id,
            leader,
            serving,
            ..
        } => Ok((id, leader, serving)),
        other => Err(std::io::Error::other(format!("not a status: {other:?}"))),
    }
}

impl Db for Coord {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn preflight(&self, cluster: &Cluster) -> Result<(), DbError> {
        let n = cluster.nodes.len();
        if !(1..=9).contains(&n) {
            return Err(DbError::Setup {
                system: SYSTEM,
                what: format!("runs 1 to 9 nodes, not {n}"),
            });
        }
        coord::server::config::Bugs::parse(self.bugs.iter().map(String::as_str)).map_err(
            |what| DbError::Setup {
                system: SYSTEM,
                what,
            },
        )?;
        self.own.own_binary().map(|_| ())
    }

    fn setup(&self, cluster: &Cluster, node: &Node) -> Result<(), DbError> {
        self.own.install(cluster, node, &self.data_dir())?;
        self.start(cluster, node)
    }

    fn wait_ready(
        &self,
        _cluster: &Cluster,
        node: &Node,
        timeout: Duration,
    ) -> Result<(), DbError> {
        self.own
            .wait_serving(node, timeout, || match status(self.client_addr(node)) {
                Ok((_, _, true)) => Ok(()),
                Ok((_, leader, false)) => Err(format!("not serving yet (leader {leader:?})")),
                Err(e) => Err(e.to_string()),
            })
    }

    /// Every node that says it leads: a deposed leader may still think so.
    fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        super::nodes_where(
            cluster,
            |n| matches!(status(self.client_addr(n)), Ok((id, Some(leader), _)) if id == leader),
        )
    }

    super::own_node::shared_db_methods!(CLIENT_PORT);
}

/// The newest segment of the log in [`TXN_LOG_DIR`] (both reference systems keep their
/// log there) and where its records end, read while the node is killed.
pub fn txn_log_tail(cluster: &Cluster, node: &Node, own: &OwnNode) -> Result<LogTail, DbError> {
    super::newest_log_tail(
        cluster,
        node,
        own.system(),
        TXN_LOG_DIR,
        |names| {
            names
                .lines()
                .map(str::trim)
                .filter(|n| n.ends_with(".seg") && !n.starts_with('.'))
                .max()
                .map(str::to_string)
        },
        |local, file| read_bounded(local).and_then(|bytes| segment_tail(&bytes, file)),
    )
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_SEGMENT_BYTES {
        return Err(format!(
            "segment of {len} bytes is larger than {MAX_SEGMENT_BYTES}"
        ));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// Walks a segment's frames (`len u32 | crc u32 | payload`) after its header to the end of
/// the last whole one. Checksums are the node's business; a tail fault only needs where
/// records end.
pub fn segment_tail(bytes: &[u8], file: &Path) -> Result<LogTail, String> {
    let len = bytes.len() as u64;
    if len < SEGMENT_HEADER_BYTES {
        return Err(format!(
            "{}: {len} bytes, shorter than a segment header",
            file.display()
        ));
    }
    let (mut end, mut last, mut starts) = (SEGMENT_HEADER_BYTES, None, Vec::new());
    while end + FRAME_HEADER_BYTES <= len {
        let at = end as usize;
        let payload = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as u64;
        let next = end + FRAME_HEADER_BYTES + payload;
        if payload == 0 || next > len {
            break;
        }
        last = Some(end);
        starts.push(end);
        end = next;
    }
    let last_record = last.ok_or_else(|| format!("{}: no records", file.display()))?;
    let from = end.saturating_sub(MAX_TAIL_BYTES as u64) as usize;
    Ok(LogTail {
        file: file.to_path_buf(),
        records_end: end,
        last_record,
        file_len: len,
        tail: bytes[from..end as usize].to_vec(),
        boundaries: LogTail::starts_in_tail(end, &starts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::{DiskOp, Write as DiskWrite};

    /// A segment written by the real store: the tail ends after its last record.
    #[test]
    fn the_tail_of_a_real_segment_is_found() {
        let dir = std::env::temp_dir().join(format!("faultline-coord-tail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut store, _, _) = storage::Store::open(&dir, storage::Limits::default()).unwrap();
        let records: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + i as usize]).collect();
        store
            .write(&[DiskWrite {
                token: 1,
                ops: vec![DiskOp::Append {
                    log: "txn".into(),
                    records: records.clone(),
                }],
            }])
            .unwrap();
        let seg_dir = dir.join("logs/txn");
        let seg = std::fs::read_dir(&seg_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let bytes = std::fs::read(&seg).unwrap();
        let tail = segment_tail(&bytes, &seg).unwrap();
        let framed: u64 = records.iter().map(|r| 8 + r.len() as u64).sum();
        assert_eq!(tail.records_end, 24 + framed);
        assert_eq!(tail.last_record, tail.records_end - 8 - 14);
        assert_eq!(tail.file_len, bytes.len() as u64);
        // A torn last frame is not counted.
        let torn = &bytes[..bytes.len() - 3];
        assert_eq!(
            segment_tail(torn, &seg).unwrap().records_end,
            tail.last_record
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_segment_without_records_is_an_error_naming_it() {
        let err = segment_tail(&[0u8; 24], Path::new("data/logs/txn/0.seg")).unwrap_err();
        assert!(err.contains("data/logs/txn/0.seg: no records"), "{err}");
    }
}
