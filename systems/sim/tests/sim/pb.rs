//! A primary-backup register: node 1 is the primary; writes are appended to every node's log
//! and acknowledged once the primary and a majority in all have persisted them. Bug switches
//! make it wrong in the two classic ways.

use checkers::history::Value;
use machine::{Boot, BootError, ClientId, DiskOp, Durable, Effects, Input, Machine, NodeId};
use serde::{Deserialize, Serialize};
use sim::{ClientIo, SimClient};
use std::collections::{BTreeMap, VecDeque};

pub const PRIMARY: NodeId = 1;
const LOG: &str = "reg";
/// Entries a retransmission carries at most.
const RESEND_BATCH: u64 = 8;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bug {
    #[default]
    None,
    /// The primary acknowledges a write (and serves it to reads) before anything is durable.
    AckBeforePersist,
    /// Backups serve reads from their own, lagging, log.
    StaleBackupReads,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PbPeer {
    Replicate { seq: u64, value: u64 },
    Ack { seq: u64 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PbReq {
    Write(u64),
    Read,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum PbResp {
    WriteOk,
    ReadOk(Option<u64>),
    NotPrimary,
}

pub struct Pb {
    id: NodeId,
    members: Vec<NodeId>,
    bug: Bug,
    /// Values by position (seq - 1): what this node has appended, durable or not.
    pub log: Vec<u64>,
    /// How many log entries are durable here.
    pub persisted: u64,
    /// Primary: how many entries are durable on a majority (itself included).
    pub committed: u64,
    /// Primary: how far each backup has persisted.
    acks: BTreeMap<NodeId, u64>,
    /// Log length at each write token's end.
    tokens: BTreeMap<u64, u64>,
    next_token: u64,
    /// Primary: write replies waiting for their entry to commit.
    waiting: VecDeque<(u64, ClientId)>,
}

fn decode(durable: &Durable) -> Result<Vec<u64>, BootError> {
    let Some(log) = durable.logs.get(LOG) else {
        return Ok(Vec::new());
    };
    log.records
        .iter()
        .map(|r| {
            let bytes: [u8; 8] = r[..]
                .try_into()
                .map_err(|_| BootError("bad record".into()))?;
            Ok(u64::from_be_bytes(bytes))
        })
        .collect()
}

impl Machine for Pb {
    type Config = Bug;
    type Peer = PbPeer;
    type Request = PbReq;
    type Response = PbResp;
    type Event = ();

    fn boot(
        boot: Boot<'_, Bug>,
        durable: Durable,
        _out: &mut Effects<Self>,
    ) -> Result<Pb, BootError> {
        let log = decode(&durable)?;
        let n = log.len() as u64;
        Ok(Pb {
            id: boot.id,
            members: boot.members.to_vec(),
            bug: *boot.config,
            log,
            persisted: n,
            // Everything durable here was either committed or its writer was told nothing
            // (its connection died with this node), so it may count as committed.
            committed: n,
            acks: BTreeMap::new(),
            tokens: BTreeMap::new(),
            next_token: 0,
            waiting: VecDeque::new(),
        })
    }

    fn step(&mut self, _now_ms: u64, input: Input<Self>, out: &mut Effects<Self>) {
        match input {
            Input::Tick => self.resend(out),
            Input::Request { client, req } => self.request(client, req, out),
            Input::Peer { from, msg } => self.peer(from, msg, out),
            Input::Persisted { token } => {
                self.persisted = self.tokens.remove(&token).expect("our token");
                if self.id == PRIMARY {
                    self.advance_commit(out);
                } else {
                    out.send(
                        PRIMARY,
                        PbPeer::Ack {
                            seq: self.persisted,
                        },
                    );
                }
            }
            Input::Disconnected { client } => self.waiting.retain(|&(_, c)| c != client),
        }
    }
}

impl Pb {
    fn request(&mut self, client: ClientId, req: PbReq, out: &mut Effects<Self>) {
        let primary = self.id == PRIMARY;
        match req {
            PbReq::Read if primary => {
                let visible = match self.bug {
                    Bug::AckBeforePersist => self.log.len() as u64,
                    _ => self.committed,
                };
                out.reply(client, PbResp::ReadOk(self.value_at(visible)));
            }
            PbReq::Read if self.bug == Bug::StaleBackupReads => {
                out.reply(client, PbResp::ReadOk(self.log.last().copied()));
            }
            PbReq::Write(value) if primary => {
                let seq = self.append(value, out);
                for &b in self.members.iter().filter(|&&m| m != PRIMARY) {
                    out.send(b, PbPeer::Replicate { seq, value });
                }
                if self.bug == Bug::AckBeforePersist {
                    out.reply(client, PbResp::WriteOk);
                } else {
                    self.waiting.push_back((seq, client));
                }
            }
            _ => out.reply(client, PbResp::NotPrimary),
        }
    }

    fn value_at(&self, len: u64) -> Option<u64> {
        len.checked_sub(1).map(|i| self.log[i as usize])
    }

    /// Appends `value` at the end of the log; returns its seq.
    fn append(&mut self, value: u64, out: &mut Effects<Self>) -> u64 {
        self.log.push(value);
        let seq = self.log.len() as u64;
        self.next_token += 1;
        self.tokens.insert(self.next_token, seq);
        let records = vec![value.to_be_bytes().to_vec()];
        out.write(
            self.next_token,
            vec![DiskOp::Append {
                log: LOG.into(),
                records,
            }],
        );
        seq
    }

    fn peer(&mut self, from: NodeId, msg: PbPeer, out: &mut Effects<Self>) {
        match msg {
            PbPeer::Replicate { seq, value } if self.id != PRIMARY => {
                self.replicate(seq, value, out)
            }
            PbPeer::Ack { seq } if self.id == PRIMARY => {
                let acked = self.acks.entry(from).or_default();
                *acked = (*acked).max(seq);
                self.advance_commit(out);
            }
            _ => {}
        }
    }

    /// A backup mirrors the primary's log: appends the next entry, overwrites a diverged one.
    fn replicate(&mut self, seq: u64, value: u64, out: &mut Effects<Self>) {
        let len = self.log.len() as u64;
        if seq > len + 1 {
            return;
        }
        if seq <= len {
            if self.log[seq as usize - 1] == value {
                if self.persisted >= seq {
                    out.send(PRIMARY, PbPeer::Ack { seq });
                }
                return;
            }
            self.log.truncate(seq as usize - 1);
            self.persisted = self.persisted.min(seq - 1);
            // Writes still in flight can no longer make entries from `seq` on durable.
            for end in self.tokens.values_mut() {
                *end = (*end).min(seq - 1);
            }
            let cut = DiskOp::TruncateTail {
                log: LOG.into(),
                len: seq - 1,
            };
            self.next_token += 1;
            self.tokens.insert(self.next_token, seq - 1);
            out.write(self.next_token, vec![cut]);
        }
        self.append(value, out);
    }

    fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// Commits the longest prefix durable on the primary and a majority; answers its writers.
    fn advance_commit(&mut self, out: &mut Effects<Self>) {
        let mut acked: Vec<u64> = self.acks.values().map(|&a| a.min(self.persisted)).collect();
        acked.push(self.persisted);
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let majority_len = acked.get(self.majority() - 1).copied().unwrap_or(0);
        self.committed = self.committed.max(majority_len);
        while let Some(&(seq, client)) = self.waiting.front() {
            if seq > self.committed {
                break;
            }
            self.waiting.pop_front();
            out.reply(client, PbResp::WriteOk);
        }
    }

    /// The primary re-sends what each backup has not acknowledged, a batch per tick.
    fn resend(&mut self, out: &mut Effects<Self>) {
        if self.id != PRIMARY {
            return;
        }
        let len = self.log.len() as u64;
        for &b in self.members.iter().filter(|&&m| m != PRIMARY) {
            let from = self.acks.get(&b).copied().unwrap_or(0);
            for seq in from + 1..=len.min(from + RESEND_BATCH) {
                let value = self.log[seq as usize - 1];
                out.send(b, PbPeer::Replicate { seq, value });
            }
        }
    }
}

/// Reads and writes of unique values; follows `NotPrimary` to the primary.
pub struct RegisterClient {
    id: u64,
    written: u64,
    ops_left: u64,
}

impl RegisterClient {
    pub fn new(id: u64, ops: u64) -> RegisterClient {
        RegisterClient {
            id,
            written: 0,
            ops_left: ops,
        }
    }
}

impl SimClient<Pb> for RegisterClient {
    fn on_idle(&mut self, io: &mut ClientIo<'_, Pb>) {
        if self.ops_left == 0 {
            io.stop();
            return;
        }
        self.ops_left -= 1;
        if io.rng().chance(0.5) {
            io.invoke("read", Value::Null, PbReq::Read);
        } else {
            self.written += 1;
            let value = self.id * 1_000_000 + self.written;
            io.invoke("write", value.into(), PbReq::Write(value));
        }
    }

    fn on_response(&mut self, io: &mut ClientIo<'_, Pb>, resp: PbResp) {
        let Some(op) = io.open() else {
            return;
        };
        match resp {
            PbResp::WriteOk => {
                let v = op.value.clone();
                io.ok(v)
            }
            PbResp::ReadOk(v) => io.ok(v.map_or(Value::Null, Value::from)),
            PbResp::NotPrimary => {
                io.fail("not primary");
                io.reconnect(Some(PRIMARY));
            }
        }
    }
}
