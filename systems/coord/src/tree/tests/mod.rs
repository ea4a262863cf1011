//! Scenario tests: requests through prepare, propose, apply and commit, as a leader runs
//! them, checked against ZooKeeper's semantics.

use super::*;
use crate::api::*;
use std::collections::VecDeque;

mod apply;
mod auth;
mod limits;
mod multi;
mod ops;
mod pipeline;
mod sessions;
mod snapshots;
mod watches;

const S1: SessionId = 0x100;
const S2: SessionId = 0x200;
const EPOCH: u32 = 1;

/// A single-replica leader: prepares into `outstanding`, commits on demand.
struct Leader {
    tree: Tree,
    outstanding: Outstanding,
    pending: VecDeque<(Zxid, Txn)>,
    counter: u32,
    time_ms: u64,
    watches: Watches<u64>,
    /// Watchers fired by the last commits, with their events.
    fired: Vec<(u64, WatchEvent)>,
}

impl Leader {
    fn new() -> Leader {
        let mut leader = Leader {
            tree: Tree::new(),
            outstanding: Outstanding::new(),
            pending: VecDeque::new(),
            counter: 0,
            time_ms: 1_000,
            watches: Watches::new(),
            fired: Vec::new(),
        };
        for session in [S1, S2] {
            leader.open(session);
        }
        leader
    }

    fn next_zxid(&mut self) -> Zxid {
        self.counter += 1;
        self.time_ms += 10;
        make_zxid(EPOCH, self.counter)
    }

    fn open(&mut self, session: SessionId) {
        let txn = prepare_create_session(&self.tree, &self.outstanding, session, 5000, 0);
        self.propose_txn(txn.unwrap());
        self.commit_all();
    }

    fn propose_txn(&mut self, txn: Txn) -> Zxid {
        let zxid = self.next_zxid();
        self.outstanding.propose(&self.tree, zxid, &txn).unwrap();
        self.pending.push_back((zxid, txn));
        zxid
    }

    /// Prepares and proposes without committing.
    fn propose(
        &mut self,
        session: SessionId,
        auth: &[Id],
        req: Request,
    ) -> Result<Zxid, ErrorCode> {
        let zxid = make_zxid(EPOCH, self.counter + 1);
        let (tree, out) = (&self.tree, &self.outstanding);
        let txn = prepare(tree, out, session, auth, &req, zxid, self.time_ms + 10)?;
        Ok(self.propose_txn(txn))
    }

    fn commit_all(&mut self) -> Vec<TxnResult> {
        let mut results = Vec::new();
        self.fired.clear();
        while let Some((zxid, txn)) = self.pending.pop_front() {
            let (result, events) = apply(&mut self.tree, zxid, &txn);
            self.outstanding.commit(zxid);
            for event in events {
                for watcher in self.watches.trigger(&event) {
                    self.fired.push((watcher, event.clone()));
                }
            }
            results.push(result);
        }
        assert!(self.outstanding.is_empty());
        assert_eq!(self.tree.check_invariants(), Ok(()));
        results
    }

    fn write_as(
        &mut self,
        session: SessionId,
        auth: &[Id],
        req: Request,
    ) -> Result<Reply, ErrorCode> {
        self.propose(session, auth, req)?;
        let result = self.commit_all().pop().unwrap();
        result.into_reply().expect("a data op")
    }

    fn write(&mut self, req: Request) -> Result<Reply, ErrorCode> {
        self.write_as(S1, &[], req)
    }

    fn read_as(&mut self, watcher: u64, auth: &[Id], req: Request) -> Result<Reply, ErrorCode> {
        read(&self.tree, &mut self.watches, &watcher, auth, &req)
    }

    fn close(&mut self, session: SessionId, cleanup: Cleanup) -> TxnResult {
        let txn = prepare_close_session(&self.tree, &self.outstanding, session, cleanup, 0);
        self.propose_txn(txn.unwrap());
        self.commit_all().pop().unwrap()
    }

    /// Creates a sequential node under `prefix`; the path it got.
    fn create_sequential(&mut self, prefix: &str) -> String {
        created_path(self.write(create_with(prefix, b"", CreateFlags::SEQUENCE)))
    }

    fn stat(&self, path: &str) -> Stat {
        self.tree
            .stat(path)
            .unwrap_or_else(|| panic!("{path} missing"))
    }

    fn last_zxid(&self) -> Zxid {
        make_zxid(EPOCH, self.counter)
    }
}

fn create(path: &str, data: &[u8]) -> Request {
    create_with(path, data, CreateFlags::PERSISTENT)
}

fn create_with(path: &str, data: &[u8], flags: CreateFlags) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: data.to_vec(),
        acl: Acl::open(),
        flags,
    })
}

fn create_acl(path: &str, acl: Vec<Acl>) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Vec::new(),
        acl,
        flags: CreateFlags::PERSISTENT,
    })
}

fn delete(path: &str, version: i32) -> Request {
    Request::Delete(DeleteRequest {
        path: path.into(),
        version,
    })
}

fn set(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: data.to_vec(),
        version,
    })
}

fn get(path: &str, watch: bool) -> Request {
    Request::GetData {
        path: path.into(),
        watch,
    }
}

fn created_path(reply: Result<Reply, ErrorCode>) -> String {
    match reply {
        Ok(Reply::Create { path, .. }) => path,
        other => panic!("not a create: {other:?}"),
    }
}

fn digest_user(credential: &str) -> Vec<Id> {
    acl::authenticate("digest", credential.as_bytes(), None).unwrap()
}
