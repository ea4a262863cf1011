//! Seeded transactional histories (Elle's list-append and rw-register) with planted anomalies.
//!
//! [`generate`] simulates `clients` workers driving a strict-serializable key-value store: a
//! discrete event simulation in which every transaction is invoked, executes atomically against
//! an in-memory store at one instant between its invocation and its completion, and completes
//! after a random latency, with many transactions open at once. Executing each transaction at one
//! instant inside its interval makes the history strict serializable by construction: the order
//! of those instants is a serial order that respects real time. `fail`ed transactions never
//! execute; `info` ones execute (inside their interval) or not, at random.
//!
//! Like Elle's generators, the workload keeps `keys_active` keys in play; a key that has received
//! `max_writes_per_key` writes retires and a fresh key id takes its slot, so lists stay short and
//! the checker's per-key work stays bounded. Written values are unique per key (1, 2, 3, ...).
//!
//! With [`Options::plant`], a handful of extra transactions that create exactly one anomaly (see
//! [`Plant`]) are spliced in, as one contiguous block at a seeded position. They use fresh keys
//! and fresh process ids only, so they share nothing with the clean part but real time, and real
//! time alone cannot close a cycle through strict-serializable transactions (see
//! `splice`). The clean part is identical with and without a plant, apart from event times.
//!
//! The history is a pure function of the options: it rests on [`crate::rng::Rng`], whose streams
//! are pinned, so a seed reproduces a history byte for byte.

use crate::history::{jsonl, Format, History, Op, OpType, Process, Value, MAX_OPS};
use crate::rng::Rng;
use crate::sim_time::{draw_latency_ns, EventQueue};
use rustc_hash::FxHashMap;
use std::ops::Range;

/// Which of Elle's transactional workloads a history exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// `["append", k, v]` and `["r", k, [v ...]]`: reads reveal each key's whole version order.
    ListAppend,
    /// `["w", k, v]` and `["r", k, v]`: reads reveal one version, so orders must be inferred.
    RwRegister,
}

impl Workload {
    pub const ALL: &'static [Workload] = &[Workload::ListAppend, Workload::RwRegister];

    /// Elle's name for the workload.
    pub fn name(self) -> &'static str {
        match self {
            Workload::ListAppend => "list-append",
            Workload::RwRegister => "rw-register",
        }
    }
}

/// One anomaly to plant. [`Plant::name`] is the anomaly type a checker must report for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Plant {
    G0,
    G1a,
    G1b,
    G1c,
    GSingle,
    GNonadjacent,
    G2Item,
    GSingleProcess,
    GSingleRealtime,
    G0Realtime,
    G2ItemRealtime,
    G0Process,
    G1cProcess,
    G1cRealtime,
    GNonadjacentProcess,
    GNonadjacentRealtime,
    G2ItemProcess,
    Internal,
    DirtyUpdate,
    LostUpdate,
    DuplicateElements,
    IncompatibleOrder,
    CyclicVersions,
    FutureRead,
    GarbageRead,
}

impl Plant {
    /// Every plant, in declaration order (filter with [`Plant::applies_to`]).
    pub const ALL: &'static [Plant] = &[
        Plant::G0,
        Plant::G1a,
        Plant::G1b,
        Plant::G1c,
        Plant::GSingle,
        Plant::GNonadjacent,
        Plant::G2Item,
        Plant::GSingleProcess,
        Plant::GSingleRealtime,
        Plant::G0Realtime,
        Plant::G2ItemRealtime,
        Plant::G0Process,
        Plant::G1cProcess,
        Plant::G1cRealtime,
        Plant::GNonadjacentProcess,
        Plant::GNonadjacentRealtime,
        Plant::G2ItemProcess,
        Plant::Internal,
        Plant::DirtyUpdate,
        Plant::LostUpdate,
        Plant::DuplicateElements,
        Plant::IncompatibleOrder,
        Plant::CyclicVersions,
        Plant::FutureRead,
        Plant::GarbageRead,
    ];

    /// The anomaly type, exactly as the checker names it.
    pub fn name(&self) -> &'static str {
        match self {
            Plant::G0 => "G0",
            Plant::G1a => "G1a",
            Plant::G1b => "G1b",
            Plant::G1c => "G1c",
            Plant::GSingle => "G-single",
            Plant::GNonadjacent => "G-nonadjacent",
            Plant::G2Item => "G2-item",
            Plant::GSingleProcess => "G-single-process",
            Plant::GSingleRealtime => "G-single-realtime",
            Plant::G0Realtime => "G0-realtime",
            Plant::G2ItemRealtime => "G2-item-realtime",
            Plant::G0Process => "G0-process",
            Plant::G1cProcess => "G1c-process",
            Plant::G1cRealtime => "G1c-realtime",
            Plant::GNonadjacentProcess => "G-nonadjacent-process",
            Plant::GNonadjacentRealtime => "G-nonadjacent-realtime",
            Plant::G2ItemProcess => "G2-item-process",
            Plant::Internal => "internal",
            Plant::DirtyUpdate => "dirty-update",
            Plant::LostUpdate => "lost-update",
            Plant::DuplicateElements => "duplicate-elements",
            Plant::IncompatibleOrder => "incompatible-order",
            Plant::CyclicVersions => "cyclic-versions",
            Plant::FutureRead => "future-read",
            Plant::GarbageRead => "garbage-read",
        }
    }

    /// Whether the anomaly can be expressed in (and is checked for) the workload. Duplicates and
    /// incompatible orders need list reads; version cycles need rw-register's inferred orders
    /// (a list-append order comes from one longest read, so it cannot cycle); dirty updates
    /// need list reads to show a failed append followed by a committed one.
    pub fn applies_to(&self, workload: Workload) -> bool {
        match self {
            Plant::DuplicateElements | Plant::IncompatibleOrder => workload == Workload::ListAppend,
            Plant::CyclicVersions => workload == Workload::RwRegister,
            _ => true,
        }
    }
}

/// What to generate. [`Options::new`] gives Elle-like defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub workload: Workload,
    pub seed: u64,
    /// Transactions of the clean part (each one invocation and one completion).
    pub txns: usize,
    /// Concurrent workers (Jepsen's concurrency). At least 1.
    pub clients: usize,
    /// Keys in play at once. At least 1.
    pub keys_active: usize,
    /// Writes a key receives before it retires and a fresh key takes its place. At least 1.
    pub max_writes_per_key: usize,
    /// Each transaction has 1 to this many micro-ops. At least 1.
    pub max_ops_per_txn: usize,
    /// Probability that a micro-op is a read (otherwise a write or append).
    pub read_fraction: f64,
    /// Probability that a transaction crashes: completes `info`, executed or not.
    pub info_fraction: f64,
    /// Probability that a transaction fails: completes `fail`, never executed.
    pub fail_fraction: f64,
    pub plant: Option<Plant>,
}

impl Options {
    /// 20 clients, 10 keys in play, 32 writes per key, up to 4 micro-ops, half of them reads,
    /// 1% crashed and 1% failed transactions, nothing planted.
    pub fn new(workload: Workload, seed: u64, txns: usize) -> Options {
        Options {
            workload,
            seed,
            txns,
            clients: 20,
            keys_active: 10,
            max_writes_per_key: 32,
            max_ops_per_txn: 4,
            read_fraction: 0.5,
            info_fraction: 0.01,
            fail_fraction: 0.01,
            plant: None,
        }
    }

    /// Refuses options no history can satisfy, naming the option.
    fn validate(&self) {
        assert!(
            self.clients > 0,
            "txn::synth::Options: clients must be at least 1"
        );
        assert!(
            self.keys_active > 0,
            "txn::synth::Options: keys_active must be at least 1"
        );
        assert!(
            self.max_writes_per_key > 0,
            "txn::synth::Options: max_writes_per_key must be at least 1"
        );
        assert!(
            self.max_ops_per_txn > 0,
            "txn::synth::Options: max_ops_per_txn must be at least 1"
        );
        assert!(
            self.txns <= MAX_TXNS,
            "txn::synth::Options: txns must be at most {MAX_TXNS} (a history holds {MAX_OPS} events), got {}",
            self.txns
        );
        let fraction_ok = |f: f64| (0.0..=1.0).contains(&f);
        for (name, f) in [
            ("read_fraction", self.read_fraction),
            ("info_fraction", self.info_fraction),
            ("fail_fraction", self.fail_fraction),
        ] {
            assert!(
                fraction_ok(f),
                "txn::synth::Options: {name} must be in [0, 1], got {f}"
            );
        }
        assert!(
            self.info_fraction + self.fail_fraction <= 1.0,
            "txn::synth::Options: info_fraction + fail_fraction must not exceed 1, got {} + {}",
            self.info_fraction,
            self.fail_fraction
        );
        if let Some(plant) = self.plant {
            assert!(
                plant.applies_to(self.workload),
                "txn::synth::Options: {} cannot be planted in a {} history",
                plant.name(),
                self.workload.name()
            );
        }
    }
}

/// Room left in a history for the largest plant's events.
const MAX_PLANT_EVENTS: usize = 64;
/// The most clean transactions a history can hold next to a plant.
pub const MAX_TXNS: usize = (MAX_OPS - MAX_PLANT_EVENTS) / 2;

/// A generated history and where its plant sits, for reports and tests.
#[derive(Clone, Debug)]
pub struct Generated {
    pub history: History,
    /// Event indices of the planted block (empty without a plant).
    pub planted: Range<usize>,
    /// Key ids only the plant uses (empty without a plant); the clean part uses lower ids.
    pub planted_keys: Range<u64>,
    /// Process ids only the plant uses; the clean part uses lower ids.
    pub planted_processes: Range<u64>,
}

/// The history described by `options` (see the module docs). Panics on invalid options.
pub fn generate(options: &Options) -> History {
    generate_detailed(options).history
}

/// [`generate`], also saying which events, keys and processes the plant added.
pub fn generate_detailed(options: &Options) -> Generated {
    options.validate();
    let mut rng = Rng::new(options.seed);
    // Drawn whatever the plant, so that the clean part never depends on it.
    let plant_seed = rng.next_u64();
    let clean = Sim::new(options, rng, false).run();
    assemble(options, clean, plant_seed)
}

/// The history as Faultline's JSON lines (the same writer every history goes through).
pub fn to_jsonl(history: &History) -> String {
    jsonl::write(&history.ops)
}

/// Splices the plant (if any) into the clean events and validates the result.
fn assemble(options: &Options, clean: Clean, plant_seed: u64) -> Generated {
    let Clean {
        mut events,
        next_key,
        next_process,
        ..
    } = clean;
    let mut planted = 0..0;
    let mut planted_keys = next_key..next_key;
    let mut planted_processes = next_process..next_process;
    if let Some(plant) = options.plant {
        let mut rng = Rng::new(plant_seed);
        let scenario = scenario(plant, options.workload);
        planted_keys = next_key..next_key + scenario.keys();
        planted_processes = next_process..next_process + scenario.processes();
        let block = scenario.events(&mut rng, next_key, next_process);
        let at = rng.below(events.len() as u64 + 1) as usize;
        planted = splice(&mut events, at, block);
    }
    let lines = (1..=events.len()).collect();
    let file = format!("synth-{}-seed-{}", options.workload.name(), options.seed);
    let history = History::new(&file, Format::JsonLines, events, lines)
        .expect("the simulation and the plant pair every invocation with one completion");
    Generated {
        history,
        planted,
        planted_keys,
        planted_processes,
    }
}

/// Spacing of the planted events in time.
const PLANT_STEP_NS: u64 = 1_000;

/// Inserts `block` before event `at`, with strictly increasing times that push later events back.
///
/// Why splicing cannot add a cycle: the block shares no key and no process with the clean part,
/// so the only edges between them are real-time ones. A path that leaves the block for clean
/// transactions and returns starts with `P1 -> C1` (P1 completed before C1 was invoked, so before
/// C1 executed), follows clean edges, which all agree with the clean execution order, and ends
/// with `Cn -> P2` (Cn executed before it completed, before P2 was invoked). So P1 completed
/// before P2 was invoked: the direct real-time edge P1 -> P2 already exists in the block.
fn splice(events: &mut Vec<Op>, at: usize, block: Vec<Op>) -> Range<usize> {
    let n = block.len();
    let base = match at {
        0 => 0,
        _ => events[at - 1].time.unwrap_or(0),
    };
    let shift = (n as u64 + 1) * PLANT_STEP_NS;
    for op in &mut events[at..] {
        op.time = op.time.map(|t| t + shift);
    }
    let timed = block.into_iter().enumerate().map(|(i, mut op)| {
        op.time = Some(base + (i as u64 + 1) * PLANT_STEP_NS);
        op
    });
    events.splice(at..at, timed);
    for (i, op) in events.iter_mut().enumerate().skip(at) {
        op.index = i as u64;
    }
    at..at + n
}

// ---------------------------------------------------------------------------------------------
// Micro-ops

/// One micro-op, in the form of an invocation (reads unset) or of a completion (reads filled).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Mop {
    Append {
        key: u64,
        value: u64,
    },
    Write {
        key: u64,
        value: u64,
    },
    /// A list read: None until executed (the invocation's null), then the list read.
    ReadList {
        key: u64,
        seen: Option<Vec<u64>>,
    },
    /// A register read: None is both "not executed yet" and "read the initial null", which the
    /// history writes the same way.
    ReadReg {
        key: u64,
        seen: Option<u64>,
    },
}

impl Mop {
    fn key(&self) -> u64 {
        match self {
            Mop::Append { key, .. }
            | Mop::Write { key, .. }
            | Mop::ReadList { key, .. }
            | Mop::ReadReg { key, .. } => *key,
        }
    }

    fn with_key(&self, key: u64) -> Mop {
        let mut m = self.clone();
        match &mut m {
            Mop::Append { key: k, .. }
            | Mop::Write { key: k, .. }
            | Mop::ReadList { key: k, .. }
            | Mop::ReadReg { key: k, .. } => *k = key,
        }
        m
    }

    /// The invocation's form: what was asked, with reads not yet answered.
    fn unanswered(&self) -> Mop {
        match self {
            Mop::ReadList { key, .. } => Mop::ReadList {
                key: *key,
                seen: None,
            },
            Mop::ReadReg { key, .. } => Mop::ReadReg {
                key: *key,
                seen: None,
            },
            other => other.clone(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Mop::Append { key, value } => mop_json("append", *key, Value::from(*value)),
            Mop::Write { key, value } => mop_json("w", *key, Value::from(*value)),
            Mop::ReadList { key, seen } => {
                let v = seen
                    .as_ref()
                    .map_or(Value::Null, |l| l.iter().copied().collect());
                mop_json("r", *key, v)
            }
            Mop::ReadReg { key, seen } => {
                mop_json("r", *key, seen.map_or(Value::Null, Value::from))
            }
        }
    }
}

fn mop_json(f: &str, key: u64, v: Value) -> Value {
    Value::Array(vec![Value::from(f), Value::from(key), v])
}

fn txn_json(mops: &[Mop]) -> Value {
    Value::Array(mops.iter().map(Mop::to_json).collect())
}

/// The simulated store: each key's list (list-append) or value (rw-register). A key never
/// written reads as the empty list or null.
#[derive(Default)]
struct Store {
    lists: FxHashMap<u64, Vec<u64>>,
    registers: FxHashMap<u64, u64>,
}

impl Store {
    /// Executes a transaction atomically and returns its completion's value. Reads go straight
    /// from the store into JSON: a million transactions are mostly allocation, so no
    /// intermediate copy of a list is made.
    fn execute(&mut self, mops: &[Mop]) -> Value {
        let answered = mops.iter().map(|m| match *m {
            Mop::Append { key, value } => {
                self.lists.entry(key).or_default().push(value);
                m.to_json()
            }
            Mop::Write { key, value } => {
                self.registers.insert(key, value);
                m.to_json()
            }
            Mop::ReadList { key, .. } => {
                let list = self.lists.get(&key).map_or(&[][..], Vec::as_slice);
                mop_json("r", key, list.iter().copied().collect())
            }
            Mop::ReadReg { key, .. } => {
                let v = self.registers.get(&key).copied();
                mop_json("r", key, v.map_or(Value::Null, Value::from))
            }
        });
        Value::Array(answered.collect())
    }
}

// ---------------------------------------------------------------------------------------------
// The clean simulation

/// Workers pause up to this long between transactions.
const THINK_MAX_NS: u64 = 500_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Ok,
    Fail,
    /// Completes `info`; `executes` says whether it reached the store.
    Info {
        executes: bool,
    },
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Invoke(usize),
    Execute(usize),
    Complete(usize),
}

struct Open {
    /// Event index of the invocation.
    invoke: usize,
    mops: Vec<Mop>,
    fate: Fate,
    /// The completion's value, once executed.
    result: Option<Value>,
}

struct Worker {
    process: u64,
    open: Option<Open>,
}

/// One execution on the store, for tests that replay the serial order.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Executed {
    /// Events that precede the execution: it happened after event `position - 1`.
    position: usize,
    /// Event index of the invocation.
    invoke: usize,
}

/// The keys in play: `keys_active` slots, each holding a key and the writes it has received.
struct KeyPool {
    slots: Vec<(u64, usize)>,
    next_key: u64,
    max_writes: usize,
}

impl KeyPool {
    fn new(active: usize, max_writes: usize) -> KeyPool {
        KeyPool {
            slots: (0..active as u64).map(|k| (k, 0)).collect(),
            next_key: active as u64,
            max_writes,
        }
    }

    /// The next value for the key in `slot`; retires the key once it has had its writes.
    fn write(&mut self, slot: usize) -> (u64, u64) {
        let (key, writes) = &mut self.slots[slot];
        *writes += 1;
        let written = (*key, *writes as u64);
        if *writes == self.max_writes {
            self.slots[slot] = (self.next_key, 0);
            self.next_key += 1;
        }
        written
    }
}

/// The clean part: events and the first ids it left unused.
struct Clean {
    events: Vec<Op>,
    next_key: u64,
    next_process: u64,
    /// The execution order, when asked for; only the tests replay it.
    #[cfg_attr(not(test), allow(dead_code))]
    trace: Option<Vec<Executed>>,
}

struct Sim<'o> {
    o: &'o Options,
    rng: Rng,
    queue: EventQueue<Action>,
    now_ns: u64,
    workers: Vec<Worker>,
    keys: KeyPool,
    store: Store,
    events: Vec<Op>,
    invoked: usize,
    trace: Option<Vec<Executed>>,
}

impl<'o> Sim<'o> {
    fn new(o: &'o Options, rng: Rng, trace: bool) -> Sim<'o> {
        Sim {
            o,
            rng,
            queue: EventQueue::default(),
            now_ns: 0,
            // Workers beyond the transactions would never invoke; not simulating them bounds memory.
            workers: (0..o.clients.min(o.txns) as u64)
                .map(|process| Worker {
                    process,
                    open: None,
                })
                .collect(),
            keys: KeyPool::new(o.keys_active, o.max_writes_per_key),
            store: Store::default(),
            // Exact, so that a long history is never copied by a reallocation.
            events: Vec::with_capacity(2 * o.txns + MAX_PLANT_EVENTS),
            invoked: 0,
            trace: trace.then(Vec::new),
        }
    }

    fn run(mut self) -> Clean {
        for w in 0..self.workers.len() {
            let start_ns = self.rng.below(THINK_MAX_NS + 1);
            self.schedule(start_ns, Action::Invoke(w));
        }
        while let Some((time_ns, action)) = self.queue.pop() {
            self.now_ns = time_ns;
            match action {
                Action::Invoke(w) => self.invoke(w),
                Action::Execute(w) => self.execute(w),
                Action::Complete(w) => self.complete(w),
            }
        }
        let next_process = self
            .events
            .iter()
            .filter_map(|op| match op.process {
                Process::Client(p) => Some(p + 1),
                Process::Named(_) => None,
            })
            .max()
            .unwrap_or(0);
        Clean {
            events: self.events,
            next_key: self.keys.next_key,
            next_process,
            trace: self.trace,
        }
    }

    fn schedule(&mut self, time_ns: u64, action: Action) {
        self.queue.schedule(time_ns, action);
    }

    fn invoke(&mut self, w: usize) {
        if self.invoked == self.o.txns {
            return; // The worker retires.
        }
        self.invoked += 1;
        let mops = self.draw_txn();
        let fate = self.draw_fate();
        let latency_ns = draw_latency_ns(&mut self.rng);
        let invoke = self.emit(OpType::Invoke, w, txn_json(&mops));
        if matches!(fate, Fate::Ok | Fate::Info { executes: true }) {
            // Scheduled before the completion, so it precedes it even at the same instant.
            let at_ns = self.now_ns + self.rng.below(latency_ns + 1);
            self.schedule(at_ns, Action::Execute(w));
        }
        self.schedule(self.now_ns + latency_ns, Action::Complete(w));
        self.workers[w].open = Some(Open {
            invoke,
            mops,
            fate,
            result: None,
        });
    }

    /// 1 to `max_ops_per_txn` micro-ops on keys in play.
    fn draw_txn(&mut self) -> Vec<Mop> {
        let n = self.rng.between(1, self.o.max_ops_per_txn as u64) as usize;
        (0..n).map(|_| self.draw_mop()).collect()
    }

    fn draw_mop(&mut self) -> Mop {
        let slot = self.rng.below(self.o.keys_active as u64) as usize;
        let read = self.rng.chance(self.o.read_fraction);
        match (read, self.o.workload) {
            (true, Workload::ListAppend) => Mop::ReadList {
                key: self.keys.slots[slot].0,
                seen: None,
            },
            (true, Workload::RwRegister) => Mop::ReadReg {
                key: self.keys.slots[slot].0,
                seen: None,
            },
            (false, workload) => {
                let (key, value) = self.keys.write(slot);
                match workload {
                    Workload::ListAppend => Mop::Append { key, value },
                    Workload::RwRegister => Mop::Write { key, value },
                }
            }
        }
    }

    fn draw_fate(&mut self) -> Fate {
        let x = self.rng.unit_f64();
        // Drawn for every transaction, so the stream does not depend on the fractions' outcome.
        let executes = self.rng.chance(0.5);
        if x < self.o.info_fraction {
            Fate::Info { executes }
        } else if x < self.o.info_fraction + self.o.fail_fraction {
            Fate::Fail
        } else {
            Fate::Ok
        }
    }

    /// The worker's open transaction executes atomically, now.
    fn execute(&mut self, w: usize) {
        let open = self.workers[w]
            .open
            .as_mut()
            .expect("a transaction executes while open");
        open.result = Some(self.store.execute(&open.mops));
        if let Some(trace) = &mut self.trace {
            trace.push(Executed {
                position: self.events.len(),
                invoke: open.invoke,
            });
        }
    }

    fn complete(&mut self, w: usize) {
        let open = self.workers[w]
            .open
            .take()
            .expect("a worker completes its open transaction");
        let (op_type, value) = match open.fate {
            Fate::Ok => {
                let result = open
                    .result
                    .expect("an ok transaction executed before completing");
                (OpType::Ok, result)
            }
            // Jepsen completes failed and crashed transactions with what was asked.
            Fate::Fail => (OpType::Fail, self.events[open.invoke].value.clone()),
            Fate::Info { .. } => (OpType::Info, self.events[open.invoke].value.clone()),
        };
        self.emit(op_type, w, value);
        if op_type == OpType::Info {
            // Jepsen's convention: the worker goes on as a new process, never reusing an id.
            self.workers[w].process += self.o.clients as u64;
        }
        let think_ns = self.rng.below(THINK_MAX_NS + 1);
        self.schedule(self.now_ns + think_ns, Action::Invoke(w));
    }

    /// Appends one event and returns its index.
    fn emit(&mut self, op_type: OpType, w: usize, value: Value) -> usize {
        let index = self.events.len();
        let process = Process::Client(self.workers[w].process);
        let mut op = Op::new(index as u64, op_type, process, "txn", value);
        op.time = Some(self.now_ns);
        self.events.push(op);
        index
    }
}

// ---------------------------------------------------------------------------------------------
// Plants

/// A planted transaction. Keys and processes are local (0, 1, ...) until placed; `mops` is the
/// completion's form (reads answered) for an `ok` transaction.
#[derive(Clone, Debug)]
struct PTxn {
    process: u64,
    outcome: OpType,
    mops: Vec<Mop>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Invoke(usize),
    Complete(usize),
}

#[derive(Clone, Debug)]
enum Schedule {
    /// Every invocation (in a seeded order), then every completion: all transactions overlap,
    /// so there is no real-time edge among them.
    Concurrent,
    /// Exactly this order, for anomalies that need real time or a process to close.
    InOrder(Vec<Step>),
}

#[derive(Clone, Debug)]
struct Scenario {
    txns: Vec<PTxn>,
    schedule: Schedule,
}

impl Scenario {
    fn concurrent(txns: Vec<PTxn>) -> Scenario {
        Scenario {
            txns,
            schedule: Schedule::Concurrent,
        }
    }

    /// Runs `order` one transaction after another (each completes before the next is invoked).
    fn sequential(txns: Vec<PTxn>, order: &[usize]) -> Scenario {
        let steps = order
            .iter()
            .flat_map(|&t| [Step::Invoke(t), Step::Complete(t)])
            .collect();
        Scenario {
            txns,
            schedule: Schedule::InOrder(steps),
        }
    }

    fn keys(&self) -> u64 {
        self.txns
            .iter()
            .flat_map(|t| t.mops.iter().map(|m| m.key() + 1))
            .max()
            .unwrap_or(0)
    }

    fn processes(&self) -> u64 {
        self.txns.iter().map(|t| t.process + 1).max().unwrap_or(0)
    }

    fn steps(&self, rng: &mut Rng) -> Vec<Step> {
        match &self.schedule {
            Schedule::InOrder(steps) => steps.clone(),
            Schedule::Concurrent => {
                let mut invokes: Vec<usize> = (0..self.txns.len()).collect();
                let mut completes = invokes.clone();
                shuffle(rng, &mut invokes);
                shuffle(rng, &mut completes);
                let invokes = invokes.into_iter().map(Step::Invoke);
                invokes
                    .chain(completes.into_iter().map(Step::Complete))
                    .collect()
            }
        }
    }

    /// The block of events, with keys from `first_key` and processes from `first_process`.
    fn events(&self, rng: &mut Rng, first_key: u64, first_process: u64) -> Vec<Op> {
        self.steps(rng)
            .into_iter()
            .map(|step| {
                let (t, completion) = match step {
                    Step::Invoke(t) => (t, false),
                    Step::Complete(t) => (t, true),
                };
                let txn = &self.txns[t];
                let answered = completion && txn.outcome == OpType::Ok;
                let mops: Vec<Mop> = txn
                    .mops
                    .iter()
                    .map(|m| {
                        let m = m.with_key(first_key + m.key());
                        if answered {
                            m
                        } else {
                            m.unanswered()
                        }
                    })
                    .collect();
                let op_type = if completion {
                    txn.outcome
                } else {
                    OpType::Invoke
                };
                let process = Process::Client(first_process + txn.process);
                Op::new(0, op_type, process, "txn", txn_json(&mops))
            })
            .collect()
    }
}

/// Fisher-Yates with the project's RNG.
fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// Builds planted transactions for one workload, so that most plants read the same in both.
struct Build(Workload);

const X: u64 = 0;
const Y: u64 = 1;
const Z: u64 = 2;
const W: u64 = 3;

impl Build {
    /// Writes `value` to `key`: an append or a register write.
    fn put(&self, key: u64, value: u64) -> Mop {
        match self.0 {
            Workload::ListAppend => Mop::Append { key, value },
            Workload::RwRegister => Mop::Write { key, value },
        }
    }

    /// Reads the version made by writing `values` in order: the whole list, or the last value
    /// (null for none).
    fn get(&self, key: u64, values: &[u64]) -> Mop {
        match self.0 {
            Workload::ListAppend => Mop::ReadList {
                key,
                seen: Some(values.to_vec()),
            },
            Workload::RwRegister => Mop::ReadReg {
                key,
                seen: values.last().copied(),
            },
        }
    }

    fn ok(&self, process: u64, mops: Vec<Mop>) -> PTxn {
        PTxn {
            process,
            outcome: OpType::Ok,
            mops,
        }
    }

    fn failed(&self, process: u64, mops: Vec<Mop>) -> PTxn {
        PTxn {
            process,
            outcome: OpType::Fail,
            mops,
        }
    }
}

/// The transactions that create `plant` in `workload`, on local keys X, Y, Z, W and local
/// processes 0, 1, ... Each ok transaction is written as it completes. Unless the schedule says
/// otherwise all transactions overlap, so real time orders none of them. A last "witness" reader
/// shows the version orders list-append needs (its reads are final versions, so it only has
/// incoming edges and closes no cycle).
fn scenario(plant: Plant, workload: Workload) -> Scenario {
    let b = Build(workload);
    match plant {
        // ww x: T0 -> T1, ww y: T1 -> T0.
        Plant::G0 => g0(&b),
        // An ok read of a failed write.
        Plant::G1a => Scenario::concurrent(vec![
            b.failed(0, vec![b.put(X, 1)]),
            b.ok(1, vec![b.get(X, &[1])]),
        ]),
        // A read of T0's first write to x, which T0 overwrote in the same transaction.
        Plant::G1b => Scenario::concurrent(vec![
            b.ok(0, vec![b.put(X, 1), b.put(X, 2)]),
            b.ok(1, vec![b.get(X, &[1])]),
            b.ok(2, vec![b.get(X, &[1, 2])]),
        ]),
        // wr y: T1 -> T0, wr x: T0 -> T1 (each read the other's write).
        Plant::G1c => Scenario::concurrent(vec![
            b.ok(0, vec![b.put(X, 1), b.get(Y, &[1])]),
            b.ok(1, vec![b.put(Y, 1), b.get(X, &[1])]),
        ]),
        // Read skew: wr x: T0 -> T1, rw y: T1 -> T0.
        Plant::GSingle => Scenario::concurrent(vec![
            b.ok(0, vec![b.put(X, 1), b.put(Y, 1)]),
            b.ok(1, vec![b.get(X, &[1]), b.get(Y, &[])]),
            b.ok(2, vec![b.get(Y, &[1])]),
        ]),
        // rw x: T0 -> T1, wr z: T1 -> T2, rw y: T2 -> T3, wr w: T3 -> T0.
        Plant::GNonadjacent => Scenario::concurrent(vec![
            b.ok(0, vec![b.get(X, &[]), b.get(W, &[1])]),
            b.ok(1, vec![b.put(X, 1), b.put(Z, 1)]),
            b.ok(2, vec![b.get(Z, &[1]), b.get(Y, &[])]),
            b.ok(3, vec![b.put(Y, 1), b.put(W, 1)]),
            b.ok(4, vec![b.get(X, &[1]), b.get(Y, &[1])]),
        ]),
        // Write skew: rw x: T0 -> T1, rw y: T1 -> T0.
        Plant::G2Item => Scenario::concurrent(vec![
            b.ok(0, vec![b.get(X, &[]), b.put(Y, 1)]),
            b.ok(1, vec![b.get(Y, &[]), b.put(X, 1)]),
            b.ok(2, vec![b.get(X, &[1]), b.get(Y, &[1])]),
        ]),
        Plant::GSingleProcess => g_single_process(&b),
        Plant::GSingleRealtime => g_single_realtime(&b),
        Plant::G0Realtime => g0_realtime(&b),
        Plant::G2ItemRealtime => g2_item_realtime(&b),
        Plant::G0Process => g0_realtime_on(&b, true),
        Plant::G1cProcess => g1c_ordered(&b, true),
        Plant::G1cRealtime => g1c_ordered(&b, false),
        Plant::GNonadjacentProcess => g_nonadjacent_ordered(&b, true),
        Plant::GNonadjacentRealtime => g_nonadjacent_ordered(&b, false),
        Plant::G2ItemProcess => g2_item_ordered(&b, true),
        // T0 writes x=1 and then reads T1's x=2 instead of its own write.
        Plant::Internal => Scenario::concurrent(vec![
            b.ok(0, vec![b.put(X, 1), b.get(X, &[2])]),
            b.ok(1, vec![b.put(X, 2)]),
        ]),
        // list-append: x = [1 (failed), 2 (committed)].
        Plant::DirtyUpdate if b.0 == Workload::ListAppend => Scenario::concurrent(vec![
            b.failed(0, vec![b.put(X, 1)]),
            b.ok(1, vec![b.put(X, 2)]),
            b.ok(2, vec![b.get(X, &[1, 2])]),
        ]),
        // rw-register: T1 reads the failed x=1 and writes x=2 over it.
        Plant::DirtyUpdate => Scenario::concurrent(vec![
            b.failed(0, vec![b.put(X, 1)]),
            b.ok(1, vec![b.get(X, &[1]), b.put(X, 2)]),
        ]),
        // T1 and T2 both read x at T0's version and both write x.
        Plant::LostUpdate => Scenario::concurrent(vec![
            b.ok(0, vec![b.put(X, 1)]),
            b.ok(1, vec![b.get(X, &[1]), b.put(X, 2)]),
            b.ok(2, vec![b.get(X, &[1]), b.put(X, 3)]),
            b.ok(3, vec![b.get(X, &[1, 2, 3])]),
        ]),
        Plant::DuplicateElements => Scenario::concurrent(vec![
            b.ok(0, vec![b.put(X, 1)]),
            b.ok(1, vec![b.get(X, &[1, 1])]),
        ]),
        Plant::IncompatibleOrder => Scenario::concurrent(vec![
            b.ok(0, vec![b.put(X, 1)]),
            b.ok(1, vec![b.put(X, 2)]),
            b.ok(2, vec![b.get(X, &[1, 2])]),
            b.ok(3, vec![b.get(X, &[2, 1])]),
        ]),
        // T0 orders x: 1 < 2, T1 orders x: 2 < 1 (each reads then writes).
        Plant::CyclicVersions => Scenario::concurrent(vec![
            b.ok(0, vec![b.get(X, &[1]), b.put(X, 2)]),
            b.ok(1, vec![b.get(X, &[2]), b.put(X, 1)]),
        ]),
        // T0 reads its own write before making it.
        Plant::FutureRead => Scenario::concurrent(vec![b.ok(0, vec![b.get(X, &[1]), b.put(X, 1)])]),
        // Nobody ever writes x.
        Plant::GarbageRead => Scenario::concurrent(vec![b.ok(0, vec![b.get(X, &[1])])]),
    }
}

/// A write cycle. List-append: T0 appends x=1, y=2 and T1 appends x=2, y=1, and a witness reads
/// x=[1,2], y=[1,2]. Rw-register can only order versions inside a transaction that reads one
/// and writes the next, so each transaction reads the other's first write before overwriting
/// it (which adds wr edges along the same cycle; the ww-only cycle is still there).
fn g0(b: &Build) -> Scenario {
    match b.0 {
        Workload::ListAppend => Scenario::concurrent(vec![
            b.ok(0, vec![b.put(X, 1), b.put(Y, 2)]),
            b.ok(1, vec![b.put(X, 2), b.put(Y, 1)]),
            b.ok(2, vec![b.get(X, &[1, 2]), b.get(Y, &[1, 2])]),
        ]),
        Workload::RwRegister => Scenario::concurrent(vec![
            b.ok(0, vec![b.put(X, 1), b.get(Y, &[1]), b.put(Y, 2)]),
            b.ok(1, vec![b.put(Y, 1), b.get(X, &[1]), b.put(X, 2)]),
        ]),
    }
}

/// One process writes x=1, then reads x at the initial version: process (and real-time)
/// T0 -> T1, rw x: T1 -> T0. The witness overlaps both, so adds no real-time edge.
fn g_single_process(b: &Build) -> Scenario {
    let txns = vec![
        b.ok(0, vec![b.put(X, 1)]),
        b.ok(0, vec![b.get(X, &[])]),
        b.ok(1, vec![b.get(X, &[1])]),
    ];
    use Step::*;
    let steps = vec![
        Invoke(2),
        Invoke(0),
        Complete(0),
        Invoke(1),
        Complete(1),
        Complete(2),
    ];
    Scenario {
        txns,
        schedule: Schedule::InOrder(steps),
    }
}

/// A stale read by another process: T0 writes x=1 and completes, then T1 reads x at the initial
/// version: real-time T0 -> T1, rw x: T1 -> T0. The witness comes last.
fn g_single_realtime(b: &Build) -> Scenario {
    let txns = vec![
        b.ok(0, vec![b.put(X, 1)]),
        b.ok(1, vec![b.get(X, &[])]),
        b.ok(2, vec![b.get(X, &[1])]),
    ];
    Scenario::sequential(txns, &[0, 1, 2])
}

/// T0 writes x=1 and completes; then T1 writes x=2, yet x's order puts 2 first: real-time
/// T0 -> T1, ww x: T1 -> T0. List-append shows the order with a last witness reading [2, 1];
/// rw-register needs T0 itself to read 2 before writing 1 (a wr edge T1 -> T0 as well).
fn g0_realtime(b: &Build) -> Scenario {
    g0_realtime_on(b, false)
}

/// [`g0_realtime`]; with `same_process` T0 and T1 run on one process, so the closing edge is a
/// process edge (G0-process).
fn g0_realtime_on(b: &Build, same_process: bool) -> Scenario {
    let p1 = if same_process { 0 } else { 1 };
    let txns = match b.0 {
        Workload::ListAppend => vec![
            b.ok(0, vec![b.put(X, 1)]),
            b.ok(p1, vec![b.put(X, 2)]),
            b.ok(2, vec![b.get(X, &[2, 1])]),
        ],
        Workload::RwRegister => vec![
            b.ok(0, vec![b.get(X, &[2]), b.put(X, 1)]),
            b.ok(p1, vec![b.put(X, 2)]),
        ],
    };
    let order: Vec<usize> = (0..txns.len()).collect();
    Scenario::sequential(txns, &order)
}

/// Two adjacent rw edges closed by real time: rw x: T0 -> T1, rw y: T1 -> T2, and T2 completes
/// before T0 is invoked. T1 overlaps both T0 and T2, so the only real-time edge in the cycle is
/// T2 -> T0 (a T1 -> T0 or T2 -> T1 edge would make a shorter G-single-realtime cycle instead).
fn g2_item_realtime(b: &Build) -> Scenario {
    g2_item_ordered(b, false)
}

/// [`g2_item_realtime`]; with `same_process` T2 and T0 run on one process, so the closing edge
/// is a process edge (G2-item-process).
fn g2_item_ordered(b: &Build, same_process: bool) -> Scenario {
    let p2 = if same_process { 0 } else { 2 };
    let txns = vec![
        b.ok(0, vec![b.get(X, &[])]),
        b.ok(1, vec![b.put(X, 1), b.get(Y, &[])]),
        b.ok(p2, vec![b.put(Y, 1)]),
        b.ok(3, vec![b.get(X, &[1]), b.get(Y, &[1])]),
    ];
    use Step::*;
    let steps = vec![
        Invoke(1),
        Invoke(2),
        Complete(2),
        Invoke(0),
        Complete(0),
        Complete(1),
        Invoke(3),
        Complete(3),
    ];
    Scenario {
        txns,
        schedule: Schedule::InOrder(steps),
    }
}

/// T0 writes x and reads T1's y; T1 writes y and runs after T0 (on the same process when
/// `same_process`, else on another one, invoked after T0 completed): wr y: T1 -> T0 closed by
/// a process or real-time edge T0 -> T1.
fn g1c_ordered(b: &Build, same_process: bool) -> Scenario {
    let p1 = if same_process { 0 } else { 1 };
    let txns = vec![
        b.ok(0, vec![b.put(X, 1), b.get(Y, &[1])]),
        b.ok(p1, vec![b.put(Y, 1)]),
        b.ok(2, vec![b.get(X, &[1])]),
    ];
    Scenario::sequential(txns, &[0, 1, 2])
}

/// rw x: T0 -> T1, wr z: T1 -> T2, rw y: T2 -> T3, and T3 -> T0 by process order (T3 and T0
/// on one process) or real time. T1 overlaps T0 and T3 overlaps T2, so no shorter real-time
/// cycle (a G-single) exists.
fn g_nonadjacent_ordered(b: &Build, same_process: bool) -> Scenario {
    let p3 = if same_process { 0 } else { 3 };
    let txns = vec![
        b.ok(0, vec![b.get(X, &[])]),
        b.ok(1, vec![b.put(X, 1), b.put(Z, 1)]),
        b.ok(2, vec![b.get(Z, &[1]), b.get(Y, &[])]),
        b.ok(p3, vec![b.put(Y, 1)]),
        b.ok(4, vec![b.get(X, &[1]), b.get(Y, &[1]), b.get(Z, &[1])]),
    ];
    use Step::*;
    let steps = vec![
        Invoke(1),
        Invoke(2),
        Invoke(3),
        Complete(3),
        Invoke(0),
        Complete(0),
        Complete(1),
        Complete(2),
        Invoke(4),
        Complete(4),
    ];
    Scenario {
        txns,
        schedule: Schedule::InOrder(steps),
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::{FxHashMap, FxHashSet};

    fn small(workload: Workload, seed: u64) -> Options {
        Options {
            clients: 6,
            keys_active: 4,
            max_writes_per_key: 5,
            max_ops_per_txn: 4,
            info_fraction: 0.05,
            fail_fraction: 0.05,
            ..Options::new(workload, seed, 400)
        }
    }

    /// The clean part and its serial execution order.
    fn traced(o: &Options) -> (History, Vec<Executed>) {
        o.validate();
        let mut rng = Rng::new(o.seed);
        rng.next_u64();
        let clean = Sim::new(o, rng, true).run();
        let trace = clean.trace.clone().expect("traced");
        let g = assemble(
            &Options {
                plant: None,
                ..o.clone()
            },
            clean,
            0,
        );
        (g.history, trace)
    }

    fn mops_of(v: &Value) -> &Vec<Value> {
        v.as_array().expect("a txn value is a list of micro-ops")
    }

    fn key_of(m: &Value) -> u64 {
        m[1].as_u64().expect("keys are integers")
    }

    #[test]
    fn same_seed_same_history_and_different_seed_different() {
        for &w in Workload::ALL {
            let a = to_jsonl(&generate(&small(w, 7)));
            assert_eq!(a, to_jsonl(&generate(&small(w, 7))));
            assert_ne!(a, to_jsonl(&generate(&small(w, 8))));
            for &p in Plant::ALL.iter().filter(|p| p.applies_to(w)) {
                let o = Options {
                    plant: Some(p),
                    ..small(w, 7)
                };
                assert_eq!(to_jsonl(&generate(&o)), to_jsonl(&generate(&o)), "{p:?}");
            }
        }
    }

    /// A second, independent store over the history's own JSON: answers the reads of an
    /// invocation's micro-ops as a serial execution would.
    #[derive(Default)]
    struct Replay {
        state: FxHashMap<u64, Value>,
    }

    impl Replay {
        fn run(&mut self, w: Workload, invocation: &Value) -> Value {
            let answered = mops_of(invocation).iter().map(|m| {
                let k = key_of(m);
                let mut m = m.clone();
                match (m[0].as_str().unwrap(), w) {
                    ("append", _) => {
                        let list = self.state.entry(k).or_insert_with(|| Value::Array(vec![]));
                        list.as_array_mut().unwrap().push(m[2].clone());
                    }
                    ("w", _) => {
                        self.state.insert(k, m[2].clone());
                    }
                    ("r", Workload::ListAppend) => {
                        m[2] = self.state.get(&k).cloned().unwrap_or(Value::Array(vec![]))
                    }
                    ("r", Workload::RwRegister) => {
                        m[2] = self.state.get(&k).cloned().unwrap_or(Value::Null)
                    }
                    (f, _) => panic!("unknown micro-op {f}"),
                }
                m
            });
            Value::Array(answered.collect())
        }
    }

    /// Replaying the executed transactions in execution order against a fresh store reproduces
    /// every ok read, and each execution lies inside its transaction's interval: the serial order
    /// is a strict serialization. Failed transactions never execute; fail and info completions
    /// repeat their invocations.
    #[test]
    fn clean_history_is_strict_serializable_by_construction() {
        for &w in Workload::ALL {
            for seed in 0..5 {
                let o = small(w, seed);
                let (h, trace) = traced(&o);
                assert_eq!(h.len(), 2 * o.txns);
                let mut replay = Replay::default();
                let mut executed = FxHashSet::default();
                for e in &trace {
                    let c = h.partner[e.invoke].expect("every transaction completes");
                    assert!(
                        e.invoke < e.position && e.position <= c,
                        "{e:?} outside its interval"
                    );
                    assert!(executed.insert(e.invoke), "executed twice");
                    let answered = replay.run(w, &h.ops[e.invoke].value);
                    match h.ops[c].op_type {
                        OpType::Ok => assert_eq!(answered, h.ops[c].value),
                        OpType::Info => {}
                        t => panic!("a {t:?} transaction executed"),
                    }
                }
                for (i, op) in h.ops.iter().enumerate() {
                    assert_eq!(op.f, "txn");
                    let partner = h.partner[i].expect("every transaction completes");
                    match op.op_type {
                        OpType::Ok => assert!(executed.contains(&partner), "ok never executed"),
                        OpType::Fail | OpType::Info => assert_eq!(op.value, h.ops[partner].value),
                        OpType::Invoke => {}
                    }
                }
            }
        }
    }

    #[test]
    fn limits_and_conventions_are_respected() {
        for &w in Workload::ALL {
            let o = small(w, 3);
            let h = generate(&o);
            let mut writes: FxHashMap<(u64, u64), usize> = FxHashMap::default();
            let mut per_key: FxHashMap<u64, usize> = FxHashMap::default();
            let mut open = 0usize;
            for op in &h.ops {
                if op.op_type != OpType::Invoke {
                    open -= 1;
                    continue;
                }
                open += 1;
                assert!(open <= o.clients);
                let mops = mops_of(&op.value);
                assert!((1..=o.max_ops_per_txn).contains(&mops.len()));
                for m in mops {
                    let f = m[0].as_str().unwrap();
                    if f == "r" {
                        assert!(m[2].is_null(), "invocations leave reads unanswered");
                        continue;
                    }
                    assert_eq!(
                        f,
                        if w == Workload::ListAppend {
                            "append"
                        } else {
                            "w"
                        }
                    );
                    let k = key_of(m);
                    *writes.entry((k, m[2].as_u64().unwrap())).or_default() += 1;
                    *per_key.entry(k).or_default() += 1;
                }
            }
            assert!(writes.values().all(|&n| n == 1), "values unique per key");
            assert!(per_key.values().all(|&n| n <= o.max_writes_per_key));
            let total: usize = per_key.values().sum();
            assert!(per_key.len() <= o.keys_active + total / o.max_writes_per_key);
            let processes: FxHashSet<u64> = h
                .ops
                .iter()
                .filter_map(|op| match op.process {
                    Process::Client(p) => Some(p),
                    _ => None,
                })
                .collect();
            let workers: FxHashSet<u64> = processes.iter().map(|p| p % o.clients as u64).collect();
            assert!(workers.len() <= o.clients);
        }
    }

    #[test]
    fn list_reads_stay_short_because_keys_retire() {
        let o = Options {
            max_writes_per_key: 3,
            ..small(Workload::ListAppend, 1)
        };
        let h = generate(&o);
        for op in h.ops.iter().filter(|op| op.op_type == OpType::Ok) {
            for m in mops_of(&op.value).iter().filter(|m| m[0] == "r") {
                assert!(m[2].as_array().unwrap().len() <= 3);
            }
        }
    }

    /// The values of ops without index and time, for comparing a history with its clean part.
    fn bare(ops: &[Op]) -> Vec<(OpType, Process, Value)> {
        ops.iter()
            .map(|op| (op.op_type, op.process.clone(), op.value.clone()))
            .collect()
    }

    #[test]
    fn each_plant_adds_only_fresh_keys_and_processes_to_an_unchanged_clean_part() {
        for &w in Workload::ALL {
            for seed in 0..4 {
                let clean = generate(&small(w, seed));
                for &p in Plant::ALL.iter().filter(|p| p.applies_to(w)) {
                    let o = Options {
                        plant: Some(p),
                        ..small(w, seed)
                    };
                    let g = generate_detailed(&o);
                    let h = &g.history;
                    assert!(!g.planted.is_empty(), "{p:?}");
                    let outside: Vec<Op> = h.ops[..g.planted.start]
                        .iter()
                        .chain(&h.ops[g.planted.end..])
                        .cloned()
                        .collect();
                    assert_eq!(
                        bare(&outside),
                        bare(&clean.ops),
                        "{p:?} changed the clean part"
                    );
                    let clean_keys: FxHashSet<u64> = clean
                        .ops
                        .iter()
                        .flat_map(|op| mops_of(&op.value).iter().map(key_of))
                        .collect();
                    assert!(clean_keys.iter().all(|k| *k < g.planted_keys.start));
                    for op in &h.ops[g.planted.clone()] {
                        for m in mops_of(&op.value) {
                            assert!(g.planted_keys.contains(&key_of(m)), "{p:?}: {op:?}");
                        }
                        match op.process {
                            Process::Client(q) => assert!(g.planted_processes.contains(&q)),
                            _ => panic!("named process"),
                        }
                    }
                    assert!(clean.ops.iter().all(|op| match op.process {
                        Process::Client(q) => q < g.planted_processes.start,
                        _ => false,
                    }));
                    let times: Vec<u64> = h.ops.iter().map(|op| op.time.unwrap()).collect();
                    assert!(times.windows(2).all(|t| t[0] <= t[1]), "time goes back");
                    let planted_times = &times[g.planted.clone()];
                    assert!(planted_times.windows(2).all(|t| t[0] < t[1]));
                }
            }
        }
    }

    #[test]
    fn plants_work_in_tiny_and_empty_histories() {
        for &w in Workload::ALL {
            for &p in Plant::ALL.iter().filter(|p| p.applies_to(w)) {
                for txns in [0, 1, 2] {
                    let o = Options {
                        plant: Some(p),
                        ..Options::new(w, 5, txns)
                    };
                    let g = generate_detailed(&o);
                    assert_eq!(g.history.len(), 2 * txns + g.planted.len());
                }
            }
        }
    }

    #[test]
    fn concurrent_plants_overlap_every_transaction() {
        for &w in Workload::ALL {
            for &p in Plant::ALL.iter().filter(|p| p.applies_to(w)) {
                let s = scenario(p, w);
                if let Schedule::Concurrent = s.schedule {
                    let processes: FxHashSet<u64> = s.txns.iter().map(|t| t.process).collect();
                    assert_eq!(processes.len(), s.txns.len(), "{p:?} reuses a process");
                    let steps = s.steps(&mut Rng::new(1));
                    let first_completion = steps
                        .iter()
                        .position(|s| matches!(s, Step::Complete(_)))
                        .unwrap();
                    assert_eq!(first_completion, s.txns.len());
                }
            }
        }
    }

    #[test]
    fn written_values_are_unique_per_key_in_every_plant() {
        for &w in Workload::ALL {
            for &p in Plant::ALL.iter().filter(|p| p.applies_to(w)) {
                let s = scenario(p, w);
                let mut seen = FxHashSet::default();
                for t in &s.txns {
                    for m in &t.mops {
                        if let Mop::Append { key, value } | Mop::Write { key, value } = m {
                            assert!(
                                seen.insert((*key, *value)),
                                "{p:?} writes {key}={value} twice"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_planted_g_single_realtime_reads_as_designed() {
        let o = Options {
            plant: Some(Plant::GSingleRealtime),
            ..Options::new(Workload::ListAppend, 1, 0)
        };
        let text = to_jsonl(&generate(&o));
        let expected = concat!(
            "{\"index\":0,\"time\":1000,\"type\":\"invoke\",\"process\":0,\"f\":\"txn\",\"value\":[[\"append\",0,1]]}\n",
            "{\"index\":1,\"time\":2000,\"type\":\"ok\",\"process\":0,\"f\":\"txn\",\"value\":[[\"append\",0,1]]}\n",
            "{\"index\":2,\"time\":3000,\"type\":\"invoke\",\"process\":1,\"f\":\"txn\",\"value\":[[\"r\",0,null]]}\n",
            "{\"index\":3,\"time\":4000,\"type\":\"ok\",\"process\":1,\"f\":\"txn\",\"value\":[[\"r\",0,[]]]}\n",
            "{\"index\":4,\"time\":5000,\"type\":\"invoke\",\"process\":2,\"f\":\"txn\",\"value\":[[\"r\",0,null]]}\n",
            "{\"index\":5,\"time\":6000,\"type\":\"ok\",\"process\":2,\"f\":\"txn\",\"value\":[[\"r\",0,[1]]]}\n",
        );
        // With no clean transactions the fresh keys start at keys_active.
        assert_eq!(text, expected.replace(",0,", ",10,"));
    }

    #[test]
    #[should_panic(expected = "cannot be planted")]
    fn inapplicable_plant_is_refused() {
        generate(&Options {
            plant: Some(Plant::CyclicVersions),
            ..Options::new(Workload::ListAppend, 0, 10)
        });
    }

    #[test]
    #[should_panic(expected = "clients must be at least 1")]
    fn zero_clients_are_refused() {
        generate(&Options {
            clients: 0,
            ..Options::new(Workload::RwRegister, 0, 10)
        });
    }

    /// `cargo test --release -p faultline-checkers --lib txn::synth -- --ignored` to time it.
    #[test]
    #[ignore]
    fn a_million_transactions_take_seconds() {
        for &w in Workload::ALL {
            let start = std::time::Instant::now();
            let h = generate(&Options::new(w, 1, 1_000_000));
            let elapsed = start.elapsed();
            eprintln!("{}: {} events in {elapsed:?}", w.name(), h.len());
            assert!(elapsed.as_secs() < 10);
        }
    }
}
