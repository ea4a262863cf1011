//! A core that does whatever a mechanics test needs and remembers what happened to it.

use machine::{
    Boot, BootError, ClientId, DiskOp, Durable, Effects, Input, Machine, NodeId, MAX_MESSAGE_BYTES,
};
use serde::{Deserialize, Serialize};
use sim::{ClientIo, SimClient};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct ProbeConfig {
    /// Send a ping to every other node on each tick.
    pub ping: bool,
    /// Append `RECORDS_PER_WRITE` counter records on each tick.
    pub append: bool,
    /// Answer each ping with two pings: the queue grows without bound.
    pub storm: bool,
    /// Send one message over the size limit on the first tick.
    pub oversized: bool,
}

pub const RECORDS_PER_WRITE: u64 = 3;
pub const LOG: &str = "log";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Ping {
    Ping(u64),
    Blob(Vec<u8>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum EchoReq {
    Echo(u64),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum EchoResp {
    Echo(u64),
}

pub struct Probe {
    pub id: NodeId,
    members: Vec<NodeId>,
    config: ProbeConfig,
    pub ticks: u64,
    pub received: BTreeMap<NodeId, u64>,
    /// The last `now_ms` each kind of input saw.
    pub last_now_ms: u64,
    /// Records appended (emitted) and records known durable (a `Persisted` covers them).
    pub emitted_records: u64,
    pub persisted_records: u64,
    /// Record count at each write token's end.
    token_ends: BTreeMap<u64, u64>,
    /// How many records the disk held at boot.
    pub recovered_records: u64,
    pub boot_seed: u64,
    pub disconnected: Vec<ClientId>,
}

/// The log's records as the counters they encode.
pub fn counters(durable: &Durable) -> Vec<u64> {
    durable.logs.get(LOG).map_or(Vec::new(), |l| {
        l.records
            .iter()
            .map(|r| u64::from_be_bytes(r[..8].try_into().unwrap()))
            .collect()
    })
}

impl Machine for Probe {
    type Config = ProbeConfig;
    type Peer = Ping;
    type Request = EchoReq;
    type Response = EchoResp;
    type Event = ();

    fn boot(
        boot: Boot<'_, ProbeConfig>,
        durable: Durable,
        _out: &mut Effects<Self>,
    ) -> Result<Probe, BootError> {
        let recovered = counters(&durable);
        if recovered.iter().enumerate().any(|(i, &c)| c != i as u64) {
            return Err(BootError(format!(
                "log is not a counter prefix: {recovered:?}"
            )));
        }
        let n = recovered.len() as u64;
        Ok(Probe {
            id: boot.id,
            members: boot.members.to_vec(),
            config: boot.config.clone(),
            ticks: 0,
            received: BTreeMap::new(),
            last_now_ms: boot.now_ms,
            emitted_records: n,
            persisted_records: n,
            token_ends: BTreeMap::new(),
            recovered_records: n,
            boot_seed: boot.seed,
            disconnected: Vec::new(),
        })
    }

    fn step(&mut self, now_ms: u64, input: Input<Self>, out: &mut Effects<Self>) {
        self.last_now_ms = now_ms;
        match input {
            Input::Tick => self.tick(out),
            Input::Peer { from, .. } => {
                *self.received.entry(from).or_default() += 1;
                if self.config.storm {
                    out.send(from, Ping::Ping(0));
                    out.send(from, Ping::Ping(1));
                }
            }
            Input::Request {
                client,
                req: EchoReq::Echo(n),
            } => out.reply(client, EchoResp::Echo(n)),
            Input::Disconnected { client } => self.disconnected.push(client),
            Input::Persisted { token } => {
                let end = self.token_ends.remove(&token).expect("a token we wrote");
                assert!(end >= self.persisted_records, "persisted out of order");
                self.persisted_records = end;
            }
        }
    }
}

impl Probe {
    fn tick(&mut self, out: &mut Effects<Self>) {
        self.ticks += 1;
        if self.config.ping || (self.config.storm && self.ticks == 1) {
            for &m in self.members.iter().filter(|&&m| m != self.id) {
                out.send(m, Ping::Ping(self.ticks));
            }
        }
        if self.config.oversized && self.ticks == 1 {
            let to = self.members[0];
            out.send(to, Ping::Blob(vec![7; MAX_MESSAGE_BYTES]));
        }
        if self.config.append {
            let first = self.emitted_records;
            self.emitted_records += RECORDS_PER_WRITE;
            let records = (first..self.emitted_records)
                .map(|c| c.to_be_bytes().to_vec())
                .collect();
            let token = self.ticks;
            self.token_ends.insert(token, self.emitted_records);
            out.write(
                token,
                vec![DiskOp::Append {
                    log: LOG.into(),
                    records,
                }],
            );
        }
    }
}

/// Sends `Echo(n)` for n = 0, 1, ... and expects it back.
pub struct EchoClient {
    next: u64,
    pub limit: u64,
}

impl EchoClient {
    pub fn new(limit: u64) -> EchoClient {
        EchoClient { next: 0, limit }
    }
}

impl SimClient<Probe> for EchoClient {
    fn on_idle(&mut self, io: &mut ClientIo<'_, Probe>) {
        if self.next == self.limit {
            io.stop();
            return;
        }
        let n = self.next;
        self.next += 1;
        io.invoke("echo", n.into(), EchoReq::Echo(n));
    }

    fn on_response(&mut self, io: &mut ClientIo<'_, Probe>, resp: EchoResp) {
        let EchoResp::Echo(n) = resp;
        let open = io.open().expect("echo replies answer an open op");
        assert_eq!(
            open.value,
            serde_json::Value::from(n),
            "replies arrive in order"
        );
        io.ok(n.into());
    }
}
