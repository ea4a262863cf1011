//! A core that records real events, for the event log's tests: a checkpoint at each boot
//! (numbered by the boots its disk remembers), a `send` per gossip message and a `receive` per
//! message heard, and on request any raw JSON value, so tests can also feed the log bad events.

use machine::{Boot, BootError, DiskOp, Durable, Effects, Input, Machine, NodeId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The blob that counts boots: 8 bytes, big-endian.
pub const BOOTS: &str = "boots";

#[derive(Clone, Debug, Default)]
pub struct JournalConfig {
    /// Gossip to the next member every this many ticks (0: never).
    pub gossip_every: u64,
    /// Recorded, as it is, on each life's first tick.
    pub raw_on_first_tick: Option<Value>,
}

/// What the core records: a checker's event, or a raw value for tests of bad events.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Recorded {
    Event(JournalEvent),
    Raw(Value),
}

/// Events of `checkers::recovery_line`, in its line format.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum JournalEvent {
    Checkpoint { id: String },
    Send { msg: String, to: String },
    Receive { msg: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Gossip(pub String);

pub struct Journal {
    id: NodeId,
    members: Vec<NodeId>,
    config: JournalConfig,
    ticks: u64,
    sent: u64,
    /// This life's number: the boots the disk remembered, plus one.
    pub boots: u64,
}

/// A disk that remembers `boots` boots.
pub fn disk_with_boots(boots: u64) -> Durable {
    let mut d = Durable::default();
    d.blobs.insert(BOOTS.into(), boots.to_be_bytes().to_vec());
    d
}

impl Machine for Journal {
    type Config = JournalConfig;
    type Peer = Gossip;
    type Request = ();
    type Response = ();
    type Event = Recorded;

    fn boot(
        boot: Boot<'_, JournalConfig>,
        durable: Durable,
        out: &mut Effects<Self>,
    ) -> Result<Journal, BootError> {
        let before = match durable.blobs.get(BOOTS) {
            None => 0,
            Some(b) => u64::from_be_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| BootError(format!("{BOOTS} is {} bytes, not 8", b.len())))?,
            ),
        };
        let boots = before + 1;
        out.write(
            1,
            vec![DiskOp::Put {
                name: BOOTS.into(),
                bytes: boots.to_be_bytes().to_vec(),
            }],
        );
        out.record(Recorded::Event(JournalEvent::Checkpoint {
            id: format!("boot-{boots}"),
        }));
        Ok(Journal {
            id: boot.id,
            members: boot.members.to_vec(),
            config: boot.config.clone(),
            ticks: 0,
            sent: 0,
            boots,
        })
    }

    fn step(&mut self, _now_ms: u64, input: Input<Self>, out: &mut Effects<Self>) {
        match input {
            Input::Tick => {
                self.ticks += 1;
                if self.ticks == 1 {
                    if let Some(raw) = &self.config.raw_on_first_tick {
                        out.record(Recorded::Raw(raw.clone()));
                    }
                }
                let every = self.config.gossip_every;
                if every > 0 && self.ticks % every == 0 && self.members.len() > 1 {
                    let i = self.members.iter().position(|&m| m == self.id).unwrap_or(0);
                    let to = self.members[(i + 1) % self.members.len()];
                    self.sent += 1;
                    let msg = format!("n{}-{}-{}", self.id, self.boots, self.sent);
                    out.record(Recorded::Event(JournalEvent::Send {
                        msg: msg.clone(),
                        to: format!("n{to}"),
                    }));
                    out.send(to, Gossip(msg));
                }
            }
            Input::Peer { msg, .. } => {
                out.record(Recorded::Event(JournalEvent::Receive { msg: msg.0 }));
            }
            Input::Request { .. } | Input::Disconnected { .. } | Input::Persisted { .. } => {}
        }
    }
}
