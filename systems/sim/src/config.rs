//! Everything a run is configured with, apart from the seed and the cores' own config.

use crate::client::ClientConfig;
use crate::clock::ClockConfig;
use crate::disk::DiskConfig;
use crate::fault::FaultConfig;
use crate::net::NetConfig;
use crate::trace::TraceConfig;

/// Bounds that turn runaway runs into errors instead of hangs or exhausted memory.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Events delivered in the whole run.
    pub max_steps: u64,
    /// Virtual time the run may reach.
    pub max_time_ms: u64,
    /// Events scheduled at once.
    pub max_queue: usize,
    /// Events in the recorded history.
    pub max_history_ops: usize,
    /// Lines in the event log (see `SimConfig::record_events`).
    pub max_events: usize,
    /// Bytes of the event log.
    pub max_event_bytes: usize,
    /// Inputs waiting for a paused node; past it, peer messages and requests are dropped (a
    /// frozen process's socket buffers fill up too).
    pub max_paused_inbox: usize,
    /// Clients added over the run.
    pub max_clients: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_steps: 200_000_000,
            max_time_ms: 24 * 3600 * 1000,
            max_queue: 1_000_000,
            max_history_ops: 2_000_000,
            max_events: 2_000_000,
            max_event_bytes: 256 << 20,
            max_paused_inbox: 10_000,
            max_clients: 10_000,
        }
    }
}

/// Most nodes a cluster may have (the link matrix is n²).
pub const MAX_NODES: u32 = 64;

/// One run's setup.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Nodes `1..=nodes`.
    pub nodes: u32,
    pub net: NetConfig,
    pub disk: DiskConfig,
    pub clock: ClockConfig,
    pub faults: FaultConfig,
    /// Defaults for clients added with `Sim::add_client`.
    pub client: ClientConfig,
    pub limits: Limits,
    pub trace: TraceConfig,
    /// Whether faults are recorded in the history as `nemesis` info events.
    pub record_nemesis: bool,
    /// Whether the run keeps an event log (`Sim::events_jsonl`): the events cores record
    /// with `Effects::record`, plus `crash`, `recover`, `fault` and `heal` lines from the
    /// simulator. Turn it on for systems whose `Machine::Event` is not `()`; with it off,
    /// a core that records an event stops the run (`ErrorKind::EventsOff`), because a log
    /// without the simulator's own lines would mislead the checkers.
    pub record_events: bool,
}

impl Default for SimConfig {
    /// Three nodes on a reliable network with random latency, no faults.
    fn default() -> SimConfig {
        SimConfig {
            nodes: 3,
            net: NetConfig::default(),
            disk: DiskConfig::default(),
            clock: ClockConfig::default(),
            faults: FaultConfig::default(),
            client: ClientConfig::default(),
            limits: Limits::default(),
            trace: TraceConfig::default(),
            record_nemesis: true,
            record_events: false,
        }
    }
}

impl SimConfig {
    /// A flaky network and the full random fault plan.
    pub fn chaos(nodes: u32) -> SimConfig {
        SimConfig {
            nodes,
            net: NetConfig::flaky(),
            faults: FaultConfig::chaos(),
            ..SimConfig::default()
        }
    }

    /// Panics on settings that cannot make sense; a test's setup bug, not a finding.
    pub fn check(&self) {
        assert!(
            (1..=MAX_NODES).contains(&self.nodes),
            "nodes {} not in 1..={MAX_NODES}",
            self.nodes
        );
        self.net.check();
        self.disk.latency.check();
        assert!(
            self.disk.max_pending_writes > 0,
            "max_pending_writes must be positive"
        );
        self.faults.check();
        self.client.check();
        let l = &self.limits;
        assert!(
            l.max_steps > 0 && l.max_time_ms > 0 && l.max_queue > 0,
            "zero limit"
        );
        assert!(
            l.max_events <= checkers::atomic_commit::MAX_EVENTS,
            "max_events {} over the checkers' limit of {}",
            l.max_events,
            checkers::atomic_commit::MAX_EVENTS
        );
    }
}
