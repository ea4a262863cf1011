//! The participant's side of two-phase commit, as the store's own participants play it
//! (`twopc::participant`), with PostgreSQL doing the durable work:
//! - `Prepare`: run the shard's operations and `PREPARE TRANSACTION`; vote yes once it
//!   returned (PostgreSQL has then forced the prepared state to disk), no otherwise.
//! - `Decision`: `COMMIT PREPARED` or `ROLLBACK PREPARED`, then acknowledge. An abort for a
//!   transaction that never prepared here is recorded, so its late `Prepare` is refused.
//! - The termination protocol: a transaction prepared for longer than the decision timeout
//!   and not being worked on is in doubt (typically after a crash of this participant, of
//!   PostgreSQL, or of the coordinator); the participant asks the coordinator about it
//!   until a decision comes. A coordinator that lost it before deciding answers abort.
//!
//! Each step records the events of `checkers::atomic_commit` (`log yes` and `vote` once
//! prepared, `decide` once the decision is applied), the message events of
//! `checkers::recovery_line`, and `final-state` when asked for the shard's state. Steps on
//! one transaction never overlap: they hold its stripe of [`STRIPES`] locks.

use crate::pool::Pool;
use crate::shard::{self, Finished, Prepared, ShardError};
use machine::NodeId;
use node::events::EventLog;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use twopc::proto::{
    node_name, Body, Decision, Envelope, Event, Key, Mop, MsgId, RecordName, Request, Response,
    TxnId, Value, VoteName,
};

/// Locks that serialize the steps of one transaction (by id, modulo).
pub const STRIPES: usize = 256;

/// What a participant needs to know besides its database.
pub struct Setup {
    pub id: NodeId,
    /// The coordinator's id (node 1 of the store).
    pub coordinator: NodeId,
    /// This life's number, from the database: part of message ids.
    pub boots: u32,
    pub horizon: TxnId,
    /// How long a prepared transaction may wait for its decision before it is in doubt.
    pub decision_timeout: Duration,
    /// How long a Prepare may take before the vote would come too late to count: past
    /// it, the participant votes no instead.
    pub vote_budget: Duration,
    pub events: Option<EventLog>,
    /// A queue to each peer by id.
    pub outboxes: BTreeMap<NodeId, mpsc::Sender<Envelope>>,
}

pub struct Participant {
    id: NodeId,
    coordinator: NodeId,
    boots: u32,
    seq: AtomicU64,
    /// The highest horizon heard, and the one stored in the database.
    horizon: AtomicU64,
    saved_horizon: AtomicU64,
    decision_timeout: Duration,
    vote_budget: Duration,
    stripes: Vec<tokio::sync::Mutex<()>>,
    events: Option<Mutex<EventLog>>,
    outboxes: BTreeMap<NodeId, mpsc::Sender<Envelope>>,
    pool: Pool,
}

impl Participant {
    pub fn new(setup: Setup, pool: Pool) -> Participant {
        assert_ne!(
            setup.id, setup.coordinator,
            "the coordinator holds no shard"
        );
        Participant {
            id: setup.id,
            coordinator: setup.coordinator,
            boots: setup.boots,
            seq: AtomicU64::new(0),
            horizon: AtomicU64::new(setup.horizon),
            saved_horizon: AtomicU64::new(setup.horizon),
            decision_timeout: setup.decision_timeout,
            vote_budget: setup.vote_budget,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            events: setup.events.map(Mutex::new),
            outboxes: setup.outboxes,
            pool,
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Appends events to the node's event log. A log that cannot be written stops the
    /// process: the checkers would otherwise judge a run with events missing.
    fn record(&self, events: Vec<Event>) {
        let Some(log) = &self.events else {
            return;
        };
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = log.write_step(events) {
            eprintln!("faultline node twopc-postgres: {e}");
            std::process::exit(1);
        }
    }

    /// Sends `body` to `to` (dropped if its queue is full, as a congested link would).
    fn send(&self, to: NodeId, body: Body) {
        let Some(outbox) = self.outboxes.get(&to) else {
            return;
        };
        let id = MsgId {
            node: self.id,
            incarnation: self.boots,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        self.record(vec![Event::Send {
            msg: id.to_string(),
            to: node_name(to),
        }]);
        let _ = outbox.try_send(Envelope { id, ckpt: 0, body });
    }

    fn stripe(&self, txn: TxnId) -> &tokio::sync::Mutex<()> {
        &self.stripes[(txn % STRIPES as u64) as usize]
    }

    fn advance_horizon(&self, horizon: TxnId) {
        self.horizon.fetch_max(horizon, Ordering::Relaxed);
    }

    /// One message from peer `from`.
    pub async fn on_envelope(&self, from: NodeId, env: Envelope) {
        self.record(vec![Event::Receive {
            msg: env.id.to_string(),
        }]);
        let from_coordinator = from == self.coordinator;
        match env.body {
            Body::Prepare {
                txn,
                participants,
                ops,
                horizon,
                ..
            } if from_coordinator => {
                self.advance_horizon(horizon);
                self.on_prepare(txn, &participants, &ops).await;
            }
            Body::Decision {
                txn,
                commit,
                horizon,
                ..
            } if from_coordinator => {
                self.advance_horizon(horizon);
                self.on_decision(txn, commit, true).await;
            }
            Body::DecisionResp { txn, commit, .. } => self.on_decision(txn, commit, false).await,
            Body::DecisionReq { txn, .. } => {
                if let Ok(lease) = self.pool.get().await {
                    if let Ok(Some(commit)) = shard::known_decision(&lease, txn).await {
                        let resp = Body::DecisionResp {
                            txn,
                            commit,
                            txn_marker: None,
                        };
                        self.send(from, resp);
                    }
                }
            }
            // This shard takes no part in snapshots: PostgreSQL has no consistent-cut
            // marker to hang one on.
            Body::SnapshotStart { snapshot, .. } if from_coordinator => {
                self.send(
                    from,
                    Body::SnapshotFinished {
                        snapshot,
                        ok: false,
                    },
                );
            }
            _ => {}
        }
    }

    async fn on_prepare(&self, txn: TxnId, participants: &[NodeId], ops: &[Mop]) {
        if txn < self.horizon.load(Ordering::Relaxed) {
            return; // A duplicate of something long finished.
        }
        // A yes after the coordinator stopped waiting would only be an abort without a
        // cause: the waits below (this transaction's stripe, a session, row locks, the
        // PREPARE's fsync) all count against the budget.
        let deadline = tokio::time::Instant::now() + self.vote_budget;
        let _held = self.stripe(txn).lock().await;
        let outcome = match self.pool.get().await {
            Ok(lease) => shard::prepare(&lease, txn, participants, ops, deadline).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Prepared::Yes(reads)) => {
                self.record(vec![
                    Event::Log {
                        txn,
                        record: RecordName::Yes,
                    },
                    Event::Vote {
                        txn,
                        vote: VoteName::Yes,
                    },
                ]);
                self.vote(txn, true, reads, String::new());
            }
            Ok(Prepared::No(why)) => self.vote_no(txn, why),
            Err(e) => self.vote_no(txn, e.to_string()),
            Ok(Prepared::Duplicate) => {}
        }
    }

    /// A participant voting no decides abort (the seed's rule), and may forget it.
    fn vote_no(&self, txn: TxnId, why: String) {
        self.record(vec![
            Event::Vote {
                txn,
                vote: VoteName::No,
            },
            Event::Decide {
                txn,
                decision: Decision::Abort,
            },
        ]);
        self.vote(txn, false, Vec::new(), why);
    }

    fn vote(&self, txn: TxnId, yes: bool, reads: Vec<(Key, Option<Value>)>, why: String) {
        let body = Body::Vote {
            txn,
            yes,
            reads,
            why,
        };
        self.send(self.coordinator, body);
    }

    /// Applies a decision; acknowledges the coordinator's once it is durable here. A failure
    /// leaves it unacknowledged, and the coordinator sends it again.
    async fn on_decision(&self, txn: TxnId, commit: bool, from_coordinator: bool) {
        let _held = self.stripe(txn).lock().await;
        let finished = match self.pool.get().await {
            Ok(lease) => shard::finish(&lease, txn, commit).await,
            Err(e) => Err(e),
        };
        match finished {
            Ok(Finished::Resolved) | Ok(Finished::NeverPrepared) => {
                let mut events = vec![Event::Decide {
                    txn,
                    decision: Decision::of(commit),
                }];
                if commit && finished.as_ref().ok() == Some(&Finished::Resolved) {
                    events.push(Event::Commit { txn });
                }
                self.record(events);
            }
            Ok(Finished::AlreadyFinished) => {}
            Err(e) => {
                tracing::warn!(txn, commit, error = %e, "could not apply a decision; waiting for it again");
                return;
            }
        }
        if from_coordinator {
            self.send(self.coordinator, Body::Ack { txn });
        }
    }

    /// The termination protocol's question for every transaction in doubt: prepared longer
    /// than the decision timeout, and not being worked on.
    pub async fn ask_about_in_doubt(&self) -> Result<usize, ShardError> {
        let lease = self.pool.get().await?;
        let doubtful = shard::in_doubt(&lease, self.decision_timeout).await?;
        drop(lease);
        let mut asked = 0;
        for (txn, participants) in doubtful {
            // Held: its Prepare or decision is being handled right now.
            let Ok(_held) = self.stripe(txn).try_lock() else {
                continue;
            };
            asked += 1;
            self.send(self.coordinator, Body::DecisionReq { txn, participants });
        }
        Ok(asked)
    }

    /// Stores the horizon if it moved, forgetting the recorded aborts below it.
    pub async fn save_horizon(&self) -> Result<(), ShardError> {
        let heard = self.horizon.load(Ordering::Relaxed);
        if heard <= self.saved_horizon.load(Ordering::Relaxed) {
            return Ok(());
        }
        let lease = self.pool.get().await?;
        shard::save_horizon(&lease, heard).await?;
        self.saved_horizon.fetch_max(heard, Ordering::Relaxed);
        Ok(())
    }

    /// A client's request: only state queries concern a participant.
    pub async fn on_request(&self, req: Request) -> Response {
        match req {
            Request::State => match self.state().await {
                Ok(resp) => resp,
                Err(e) => Response::Refused {
                    why: format!("n{}: cannot read the shard: {e}", self.id),
                },
            },
            Request::SnapshotState { snapshot } => Response::SnapshotState {
                snapshot,
                part: None,
            },
            Request::Txn { .. } | Request::Snapshot => Response::Refused {
                why: format!(
                    "n{} is a participant; transactions and snapshots go to the coordinator n{}",
                    self.id, self.coordinator
                ),
            },
        }
    }

    async fn state(&self) -> Result<Response, ShardError> {
        let lease = self.pool.get().await?;
        let (kv, applied, applied_truncated) = shard::state(&lease).await?;
        self.record(vec![Event::FinalState {
            applied: applied.clone(),
        }]);
        Ok(Response::State {
            kv,
            applied,
            applied_truncated,
        })
    }
}
