//! The simulator: one virtual clock, one event queue, every node, disk, link and client.
//!
//! Determinism comes from three rules. Everything random is drawn from streams derived from
//! the one seed (network, disk, faults, clocks, each node's boots, each client), never from
//! the OS or the wall clock. Events are ordered by (time, scheduling sequence), so ties break
//! the same way every run. Nothing iterates a hash map: collections that are walked are
//! vectors or B-trees. Under those rules the same seed replays the same run, event for event,
//! which the trace hash checks.

mod clients;
mod events;
mod faults;
mod nodes;
mod run;

use crate::client::{ClientConfig, OpenOp, SimClient};
use crate::clock::Clock;
use crate::config::{Limits, SimConfig};
use crate::disk::{CrashReport, Disk};
use crate::error::{ErrorKind, SimError};
use crate::event_log::EventLog;
use crate::fault::Fault;
use crate::history::Recorder;
use crate::net::Links;
use crate::node::{Cluster, Node, Ticks};
use crate::queue::EventQueue;
use crate::trace::Trace;
use checkers::atomic_commit::{self, Events};
use checkers::history::{History, HistoryError, Op};
use checkers::rng::Rng;
use checkers::verdict::BadHistory;
use machine::{ClientId, Durable, Effects, Machine, NodeId};
use std::collections::{BTreeMap, VecDeque};

/// Something scheduled to happen at a virtual time.
pub(crate) enum Event<M: Machine> {
    Tick {
        node: NodeId,
        generation: u64,
    },
    Peer {
        from: NodeId,
        to: NodeId,
        msg: M::Peer,
        digest: u64,
    },
    Request {
        conn: ClientId,
        node: NodeId,
        incarnation: u64,
        req: M::Request,
        digest: u64,
    },
    /// The client closed `conn`; the node hears of it.
    Disconnected {
        conn: ClientId,
        node: NodeId,
        incarnation: u64,
    },
    DiskDone {
        node: NodeId,
        generation: u64,
    },
    Response {
        conn: ClientId,
        resp: M::Response,
        digest: u64,
    },
    /// The connection died at the node's end (crash or close); the client hears of it.
    ConnDown {
        conn: ClientId,
    },
    ClientConnect {
        index: usize,
        node: Option<NodeId>,
    },
    ClientWake {
        index: usize,
        generation: u64,
    },
    ClientTimeout {
        index: usize,
        seq: u64,
    },
    Fault(Fault),
    /// The random plan draws its next fault.
    PlanFault,
}

/// The independent random streams of a run, each derived from the seed in a fixed order.
pub(crate) struct Streams {
    pub net: Rng,
    pub disk: Rng,
    pub fault: Rng,
    pub clock: Rng,
    /// Client `i`'s stream is `Rng::new(client_base + i)`.
    pub client_base: u64,
}

impl Streams {
    fn new(master: &mut Rng) -> Streams {
        Streams {
            net: Rng::new(master.next_u64()),
            disk: Rng::new(master.next_u64()),
            fault: Rng::new(master.next_u64()),
            clock: Rng::new(master.next_u64()),
            client_base: master.next_u64(),
        }
    }
}

/// A client and its connection state.
pub(crate) struct ClientSlot<M: Machine> {
    pub client: Box<dyn SimClient<M>>,
    pub config: ClientConfig,
    pub rng: Rng,
    /// The Jepsen process id; a new one after each `info`.
    pub process: u64,
    pub conn: Option<ClientId>,
    pub node: Option<NodeId>,
    pub open: Option<OpenOp>,
    pub next_seq: u64,
    /// Only the wake with the latest generation fires.
    pub wake_generation: u64,
    pub stopped: bool,
}

/// One client connection, TCP-like: in order both ways, dead once either end is.
pub(crate) struct Conn {
    pub client: usize,
    pub node: NodeId,
    /// The node's incarnation when the connection opened; a crash kills the connection.
    pub incarnation: u64,
    /// When the last request / response sent on it arrives, to keep each direction in order.
    pub to_node_ms: u64,
    pub to_client_ms: u64,
    /// The node's end is closed: further replies are dropped.
    pub closing: bool,
}

/// Counters of what happened, for tests that assert faults actually bit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub peer_sent: u64,
    pub peer_delivered: u64,
    pub peer_lost: u64,
    /// Dropped by a partition, at sending or at arrival.
    pub peer_blocked: u64,
    pub peer_duplicated: u64,
    /// Arrived at a crashed node, or overflowed a paused one's inbox.
    pub peer_dropped_at_node: u64,
    pub requests_delivered: u64,
    pub responses_delivered: u64,
    /// Replies to connections that were gone or closing.
    pub replies_dropped: u64,
    pub writes_completed: u64,
    pub crashes: u64,
    pub boots: u64,
    pub pauses: u64,
    pub faults: u64,
    pub ops_invoked: u64,
    pub ops_ok: u64,
    pub ops_fail: u64,
    pub ops_info: u64,
    pub max_queue_len: usize,
}

/// A run in progress. See the crate docs for an example.
pub struct Sim<M: Machine> {
    seed: u64,
    config: SimConfig,
    machine_config: M::Config,
    members: Vec<NodeId>,
    now_ms: u64,
    steps: u64,
    queue: EventQueue<Event<M>>,
    nodes: Vec<Node<M>>,
    links: Links,
    /// The loss rate of an active loss burst.
    burst_loss: Option<f64>,
    streams: Streams,
    clients: Vec<ClientSlot<M>>,
    conns: BTreeMap<ClientId, Conn>,
    next_conn: ClientId,
    next_process: u64,
    recorder: Recorder,
    events: EventLog,
    /// A fault, crash or pause was logged and no `heal` line since.
    unhealed: bool,
    trace: Trace,
    stats: Stats,
    invariant: Option<Invariant<M>>,
    /// The first fatal problem found inside an event; the step returns it.
    fatal: Option<ErrorKind>,
    /// Reused between steps to avoid allocating.
    effects: Effects<M>,
    client_actions: Vec<crate::client::Action<M>>,
}

/// A check over the whole cluster, run after every step.
pub type Invariant<M> = Box<dyn FnMut(&Cluster<'_, M>) -> Result<(), String>>;

impl<M: Machine> Sim<M> {
    /// Builds the cluster and boots every node at time 0 from an empty disk. Fails if a node
    /// refuses to boot. Panics on a nonsensical `config` (see `SimConfig::check`).
    pub fn new(
        seed: u64,
        config: SimConfig,
        machine_config: M::Config,
    ) -> Result<Sim<M>, SimError> {
        Sim::with_disks(seed, config, machine_config, BTreeMap::new())
    }

    /// Like [`Sim::new`], but the nodes in `disks` boot from what it gives them (durably
    /// written, as if an earlier life had left it): a test boots a new cluster from blobs
    /// restored from another cluster's snapshot this way. Nodes not in `disks` start empty.
    /// Panics if `disks` names a node that is not a member (a test's setup bug).
    pub fn with_disks(
        seed: u64,
        config: SimConfig,
        machine_config: M::Config,
        mut disks: BTreeMap<NodeId, Durable>,
    ) -> Result<Sim<M>, SimError> {
        config.check();
        if let Some(&n) = disks.keys().find(|&&n| n == 0 || n > config.nodes) {
            panic!(
                "a disk for n{n}, which is not a member of 1..={}",
                config.nodes
            );
        }
        let mut master = Rng::new(seed);
        let mut streams = Streams::new(&mut master);
        let members: Vec<NodeId> = (1..=config.nodes).collect();
        let nodes = members
            .iter()
            .map(|&id| Node {
                id,
                machine: None,
                paused: false,
                incarnation: 0,
                disk: Disk::with_synced(disks.remove(&id).unwrap_or_default()),
                clock: Clock::new(&config.clock, &mut streams.clock),
                ticks: Ticks::default(),
                inbox: VecDeque::new(),
                boot_rng: Rng::new(master.next_u64()),
                last_crash: None,
            })
            .collect();
        let mut sim = Sim {
            seed,
            machine_config,
            queue: EventQueue::new(config.limits.max_queue),
            links: Links::new(members.len()),
            recorder: Recorder::new(config.limits.max_history_ops),
            events: EventLog::default(),
            unhealed: false,
            trace: Trace::new(config.trace.clone()),
            members,
            now_ms: 0,
            steps: 0,
            nodes,
            burst_loss: None,
            streams,
            clients: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            next_process: 0,
            stats: Stats::default(),
            invariant: None,
            fatal: None,
            effects: Effects::default(),
            client_actions: Vec::new(),
            config,
        };
        for id in sim.members.clone() {
            sim.boot(id);
        }
        sim.schedule_first_fault();
        sim.take_fatal()?;
        Ok(sim)
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Events delivered so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn limits_mut(&mut self) -> &mut Limits {
        &mut self.config.limits
    }

    /// Installs the check run after every step; its `Err` stops the run.
    pub fn set_invariant(
        &mut self,
        check: impl FnMut(&Cluster<'_, M>) -> Result<(), String> + 'static,
    ) {
        self.invariant = Some(Box::new(check));
    }

    /// Read access to every node.
    pub fn cluster(&self) -> Cluster<'_, M> {
        Cluster {
            nodes: &self.nodes,
            now_ms: self.now_ms,
        }
    }

    /// The node's core, unless it is crashed.
    pub fn node(&self, id: NodeId) -> Option<&M> {
        self.slot(id).machine.as_ref()
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.slot(id).machine.is_some()
    }

    pub fn is_paused(&self, id: NodeId) -> bool {
        self.slot(id).paused
    }

    /// What the node's disk holds durably.
    pub fn durable(&self, id: NodeId) -> &Durable {
        self.slot(id).disk.synced()
    }

    /// Writes the node has emitted that are not yet durable.
    pub fn pending_writes(&self, id: NodeId) -> usize {
        self.slot(id).disk.pending_len()
    }

    /// What the node's last crash kept of its writes in flight.
    pub fn last_crash(&self, id: NodeId) -> Option<&CrashReport> {
        self.slot(id).last_crash.as_ref()
    }

    /// The node's clock reading now.
    pub fn local_ms(&self, id: NodeId) -> u64 {
        self.slot(id).clock.local_ms(self.now_ms)
    }

    /// The directed links currently blocked.
    pub fn blocked_links(&self) -> Vec<(NodeId, NodeId)> {
        self.links.blocked()
    }

    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.links.is_blocked(from, to)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The running hash of every event delivered so far: equal for equal seeds.
    pub fn trace_hash(&self) -> u64 {
        self.trace.hash()
    }

    /// The last events as text, oldest first (as many as `TraceConfig::keep_last`).
    pub fn trace_tail(&self) -> Vec<String> {
        self.trace.tail_text()
    }

    /// The recorded events so far.
    pub fn history_ops(&self) -> &[Op] {
        self.recorder.ops()
    }

    /// The recorded history, validated, named after the seed for checker messages.
    pub fn history(&self) -> Result<History, HistoryError> {
        self.recorder
            .history(&format!("sim-seed-{}.jsonl", self.seed))
    }

    /// The history as JSON lines, as `faultline check` reads it.
    pub fn history_jsonl(&self) -> String {
        self.recorder.jsonl()
    }

    /// The event log so far as JSON lines (empty unless `SimConfig::record_events`), the
    /// format `checkers::atomic_commit::parse_events` reads; see `event_log` for the lines.
    pub fn events_jsonl(&self) -> &str {
        self.events.text()
    }

    /// Lines in the event log so far.
    pub fn events_len(&self) -> usize {
        self.events.len()
    }

    /// The event log parsed by the checkers' reader, named after the seed in its errors.
    pub fn events(&self) -> Result<Events, BadHistory> {
        atomic_commit::parse_events(
            &format!("sim-seed-{}-events.jsonl", self.seed),
            self.events.text(),
        )
    }

    fn slot(&self, id: NodeId) -> &Node<M> {
        assert!(self.is_member(id), "n{id} is not a member");
        &self.nodes[id as usize - 1]
    }

    fn slot_mut(&mut self, id: NodeId) -> &mut Node<M> {
        assert!(self.is_member(id), "n{id} is not a member");
        &mut self.nodes[id as usize - 1]
    }

    fn is_member(&self, id: NodeId) -> bool {
        (1..=self.members.len() as NodeId).contains(&id)
    }

    /// Schedules `event`; a full queue becomes the step's error.
    fn schedule(&mut self, time_ms: u64, event: Event<M>) {
        debug_assert!(time_ms >= self.now_ms, "scheduling into the past");
        if self.queue.push(time_ms, event).is_err() {
            self.fail(ErrorKind::QueueFull {
                limit: self.config.limits.max_queue,
            });
        }
        self.stats.max_queue_len = self.stats.max_queue_len.max(self.queue.len());
    }

    /// Records the first fatal problem of this step.
    fn fail(&mut self, kind: ErrorKind) {
        self.fatal.get_or_insert(kind);
    }

    fn take_fatal(&mut self) -> Result<(), SimError> {
        match self.fatal.take() {
            Some(kind) => Err(self.error(kind)),
            None => Ok(()),
        }
    }

    fn error(&self, kind: ErrorKind) -> SimError {
        SimError::new(
            kind,
            self.seed,
            self.steps,
            self.now_ms,
            self.trace.tail_text(),
        )
    }
}
