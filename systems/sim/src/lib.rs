//! A seeded, deterministic, single-threaded simulator for Faultline's protocol cores.
//!
//! It drives any [`machine::Machine`] over a virtual network, virtual disks, skewed and
//! jumping clocks, and simulated clients whose operations are recorded as a Faultline history
//! for the checkers. Everything random comes from one seed, so a failing run replays exactly:
//! `SIM_SEED=<seed> cargo test -- <test> --exact`. The models are FoundationDB's and
//! TigerBeetle's (VOPR) simulators.
//!
//! The fault model, exactly:
//! - Peer messages: each delayed independently by [`Latency`] (so reordered), lost with
//!   `NetConfig::loss` (or a loss burst's rate), duplicated with `NetConfig::duplicate`, and
//!   dropped if their directed link is blocked when sent or when they arrive, or if the
//!   receiver is crashed on arrival. Every message's postcard encoding is measured; one over
//!   `machine::MAX_MESSAGE_BYTES` stops the run.
//! - Client connections: in order both ways, never lost while they live; they die when the
//!   node crashes or closes them, or the client times out or reconnects. Never partitioned.
//! - Disks: writes complete in order after a random latency, then `Persisted`. A crash loses
//!   the writes in flight, or keeps a random prefix of their ops with the last `Append` torn
//!   ([`CrashLoss`]). No corruption: that is the storage layer's business.
//! - Nodes: crash (memory lost, reboot later from the disk), pause (no ticks, inputs wait),
//!   clock offset, drift and jumps (`now_ms` is the node's own clock).
//! - The random plan ([`FaultConfig`]) starts partitions (random halves, one node isolated,
//!   random directed links), crashes, pauses, clock jumps and loss bursts, each ending on its
//!   own schedule, with at most a minority down by default.
//!
//! Systems that record events (`Machine::Event` other than `()`, `Effects::record`) get an
//! event log for the checkers of `checkers::atomic_commit`, `recovery_line` and
//! `consistent_cut`: set `SimConfig::record_events`, then read `Sim::events_jsonl` (or the
//! parsed `Sim::events`). Each core event becomes one line with the virtual time in ns and the
//! node (`"n2"`) added, in the order the simulator processed them; the simulator adds `crash`,
//! `recover`, `fault` and `heal` lines (see `sim/events.rs` for exactly when). The log is
//! bounded by `Limits::max_events` and `max_event_bytes`. `Sim::with_disks` boots nodes from
//! given disk contents, e.g. blobs restored from another cluster's snapshot.
//!
//! Usage (`tests/sim/register.rs` is a complete, living example):
//!
//! ```ignore
//! let seed = sim::seed_from_env(7);
//! let mut sim: Sim<MyCore> = Sim::new(seed, SimConfig::chaos(3), MyConfig::default())?;
//! sim.add_client(MyWorkload::new()); // impl SimClient<MyCore>
//! sim.set_invariant(|cluster| at_most_one_leader(cluster));
//! sim.run_until(|s| s.clients_done(), 60_000)?;
//! let history = sim.history()?;
//! sim::check_linearizable(&history, ModelKind::Register, Duration::from_secs(10))?;
//! // Or over many seeds, stopping at the first failure with its replay line:
//! sim::sweep(50, |seed| run_one(seed)).unwrap_or_else(|f| panic!("{f}"));
//! ```

pub mod client;
pub mod clock;
pub mod config;
pub mod disk;
pub mod error;
mod event_log;
pub mod fault;
pub mod history;
pub mod net;
pub mod node;
mod queue;
pub mod seeds;
mod sim;
mod trace;
mod wire;

pub use client::{ClientConfig, ClientIo, OpenOp, SimClient};
pub use clock::ClockConfig;
pub use config::{Limits, SimConfig, MAX_NODES};
pub use disk::{CrashLoss, CrashReport, DiskConfig};
pub use error::{ErrorKind, SimError};
pub use event_log::MAX_EVENT_LINE_BYTES;
pub use fault::{Fault, FaultConfig, FaultWeights};
pub use history::check_linearizable;
pub use net::{Latency, NetConfig};
pub use node::Cluster;
pub use seeds::{replay_hint, seed_from_env, sweep, sweep_seeds, SeedFailure};
pub use sim::{Invariant, Sim, Stats};
pub use trace::TraceConfig;
