//! Seeded synthetic histories of a register store, for linearizability tests and benchmarks.
//!
//! [`register_history`] simulates clients driving a linearizable store of cas-registers: a
//! discrete event simulation in which every operation is invoked, takes effect atomically at a
//! random point inside its interval, and completes after a random latency, with several clients'
//! operations open at once. Because the simulated store applies each effect at one instant between
//! invocation and completion, the history is linearizable by construction. In
//! [`Mode::StaleReads`] some reads instead return a value the register provably no longer held,
//! which makes the history not linearizable by construction, and the offending reads are named.
//!
//! The history is a pure function of the parameters: the same seed gives a byte-identical history
//! on every platform and version (it rests on [`crate::rng::Rng`], whose streams are pinned).
//!
//! Value conventions are Faultline's: `read` invokes with null and completes with the value or
//! null (unset; every register starts unset), `write v`, `cas [old, new]`; with keys every value
//! is wrapped as `[key, value]`. Failed ops complete `fail` (certainly no effect); crashed ops
//! complete `info` and their client continues under a new process id.

use crate::history::{Format, History, Op, OpType, Process, Value, MAX_OPS};
use crate::rng::Rng;
use crate::sim_time::{draw_latency_ns, EventQueue};
use rustc_hash::FxHashMap;

/// Whether the generated history is linearizable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Linearizable,
    /// Each ok read returns, with probability `rate`, a stale value when one exists (see
    /// [`register_history`]). At least one stale read is planted whenever `rate > 0`.
    StaleReads {
        rate: f64,
    },
}

/// What to generate. See [`RegisterParams::new`] for Jepsen-like defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterParams {
    /// Operations (invocations) to generate; each has one completion.
    pub ops: usize,
    /// Concurrent logical clients (Jepsen's concurrency). At least 1.
    pub clients: usize,
    /// Independent registers, named by the integers `0..keys`; 0 means a single unkeyed register.
    pub keys: usize,
    /// Written values are drawn from `0..values`, like Jepsen's cas-register (5). At least 1.
    pub values: u32,
    /// Fraction of ops that crash: they complete `info` and may or may not take effect.
    pub crash_rate: f64,
    /// Fraction of ops that fail without effect (besides cas ops whose old value mismatches).
    pub fail_rate: f64,
    pub mode: Mode,
    pub seed: u64,
}

impl RegisterParams {
    /// An unkeyed cas-register with values 0..5, no crashes or failures, linearizable.
    pub fn new(ops: usize, clients: usize, seed: u64) -> RegisterParams {
        RegisterParams {
            ops,
            clients,
            keys: 0,
            values: 5,
            crash_rate: 0.0,
            fail_rate: 0.0,
            mode: Mode::Linearizable,
            seed,
        }
    }

    /// Refuses parameters no history can satisfy, naming the parameter.
    fn validate(&self) {
        assert!(
            self.clients > 0,
            "RegisterParams: clients must be at least 1, got 0"
        );
        // Two events per op, plus the StaleReads epilogue's four, must fit a history.
        assert!(
            self.ops <= (MAX_OPS - 4) / 2,
            "RegisterParams: ops must be at most {} (a history holds {MAX_OPS} events), got {}",
            (MAX_OPS - 4) / 2,
            self.ops
        );
        assert!(
            self.values > 0,
            "RegisterParams: values must be at least 1 (written values are drawn from 0..values)"
        );
        let rate_ok = |r: f64| (0.0..=1.0).contains(&r);
        assert!(
            rate_ok(self.crash_rate),
            "RegisterParams: crash_rate must be in [0, 1], got {}",
            self.crash_rate
        );
        assert!(
            rate_ok(self.fail_rate),
            "RegisterParams: fail_rate must be in [0, 1], got {}",
            self.fail_rate
        );
        assert!(
            self.crash_rate + self.fail_rate <= 1.0,
            "RegisterParams: crash_rate + fail_rate must not exceed 1, got {} + {}",
            self.crash_rate,
            self.fail_rate
        );
        if let Mode::StaleReads { rate } = self.mode {
            assert!(
                rate_ok(rate),
                "RegisterParams: StaleReads rate must be in [0, 1], got {rate}"
            );
        }
    }
}

/// A generated history and the violations planted in it.
#[derive(Clone, Debug)]
pub struct Synth {
    pub history: History,
    /// Invoke indices of the stale reads planted by [`Mode::StaleReads`], in history order.
    pub planted: Vec<usize>,
}

/// One atomic step of the simulated store: the truth the history was generated from. In history
/// order the effects form a legal sequential execution, which is a linearization of the
/// (unplanted) history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    /// History events that precede the effect: it took place after event `position - 1` and
    /// before event `position`.
    pub position: usize,
    /// Invoke index of the operation.
    pub invoke: usize,
    /// The register (0 when unkeyed).
    pub key: u64,
    /// The register's value just before and just after; None is unset.
    pub before: Option<u32>,
    pub after: Option<u32>,
}

/// Generates a history of reads, writes and cas ops on a register store (see the module docs).
///
/// With [`Mode::StaleReads`], an ok read completes with a *stale* value `v` of its register: one
/// the register held, such that every op that could set it to `v` completed ok and was followed,
/// still before the read was invoked, by an ok write or cas to another value invoked after it
/// completed (for `v` = null: some ok write or cas completed before the read was invoked). No
/// linearization can then place the read where the register holds `v`. Crashed or still open ops
/// that could set `v` rule `v` out. If the simulation offers no such read at all (tiny histories),
/// an epilogue of one ok write and one stale read of null is appended, so the history then has
/// two more operations than `ops`. Apart from planted read values and that epilogue, a
/// StaleReads history equals the Linearizable history of the same parameters.
///
/// Memory besides the history itself is bounded by clients, pending crashed effects and the
/// registers and values touched, never by the number of ops.
///
/// Panics on invalid parameters (no clients, no values, rates outside [0, 1]).
pub fn register_history(p: &RegisterParams) -> Synth {
    Sim::new(p, false).run().0
}

/// [`register_history`] plus the store's effects in the order they happened, for tests and for
/// investigating a checker's verdict. The trace costs memory proportional to the ops.
pub fn register_history_traced(p: &RegisterParams) -> (Synth, Vec<Effect>) {
    let (synth, trace) = Sim::new(p, true).run();
    (synth, trace.unwrap_or_default())
}

/// Clients pause up to this long between ops.
const THINK_MAX_NS: u64 = 500_000;
/// A crashed op's effect, when it has one, lands within this many latencies of its invocation,
/// so it can fall long after its `info` completion while pending effects stay bounded.
const CRASH_EFFECT_LATENCIES: u64 = 4;
/// Spacing of the epilogue's events.
const EPILOGUE_STEP_NS: u64 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Read,
    Write(u32),
    Cas(u32, u32),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write(_) => "write",
            Kind::Cas(..) => "cas",
        }
    }

    /// The value this op would leave in the register if it took effect.
    fn sets(self) -> Option<u32> {
        match self {
            Kind::Read => None,
            Kind::Write(v) | Kind::Cas(_, v) => Some(v),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Ok,
    Fail,
    Crash,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Invoke(usize),
    /// The op takes effect on the store; `client` is None for a crashed op nobody waits for.
    Apply {
        client: Option<usize>,
        invoke: usize,
        key: u64,
        kind: Kind,
    },
    Complete(usize),
}

struct OpenOp {
    invoke: usize,
    key: u64,
    kind: Kind,
    fate: Fate,
    /// For reads: the value at the linearization point.
    observed: Option<u32>,
    /// For cas: whether the old value matched at the linearization point.
    cas_matched: bool,
    /// For reads in StaleReads mode: the ok setters completed before the read was invoked.
    recent_at_invoke: Recent,
}

struct Client {
    process: u64,
    open: Option<OpenOp>,
}

struct Sim<'p> {
    p: &'p RegisterParams,
    rng: Rng,
    queue: EventQueue<Action>,
    now_ns: u64,
    clients: Vec<Client>,
    /// The store: absent keys are unset.
    registers: FxHashMap<u64, u32>,
    events: Vec<Op>,
    invoked: usize,
    planting: Option<Planter>,
    planted: Vec<usize>,
    trace: Option<Vec<Effect>>,
}

impl<'p> Sim<'p> {
    fn new(p: &'p RegisterParams, trace: bool) -> Sim<'p> {
        p.validate();
        let mut rng = Rng::new(p.seed);
        // Drawn in every mode, so that planting never shifts the main stream: a StaleReads
        // history is the Linearizable one with some read values replaced.
        let plant_seed = rng.next_u64();
        let planting = match p.mode {
            Mode::Linearizable => None,
            Mode::StaleReads { rate } => Some(Planter::new(rate, plant_seed)),
        };
        Sim {
            p,
            rng,
            queue: EventQueue::default(),
            now_ns: 0,
            // Clients beyond the ops would never invoke; not simulating them bounds memory.
            clients: (0..p.clients.min(p.ops.max(1)) as u64)
                .map(|process| Client {
                    process,
                    open: None,
                })
                .collect(),
            registers: FxHashMap::default(),
            // Exact, so that a long history is never copied by a reallocation.
            events: Vec::with_capacity(2 * p.ops + 4),
            invoked: 0,
            planting,
            planted: Vec::new(),
            trace: trace.then(Vec::new),
        }
    }

    fn run(mut self) -> (Synth, Option<Vec<Effect>>) {
        for c in 0..self.clients.len() {
            let start_ns = self.rng.below(THINK_MAX_NS + 1);
            self.schedule(start_ns, Action::Invoke(c));
        }
        while let Some((time_ns, action)) = self.queue.pop() {
            self.now_ns = time_ns;
            match action {
                Action::Invoke(c) => self.invoke(c),
                Action::Apply {
                    client,
                    invoke,
                    key,
                    kind,
                } => self.apply(client, invoke, key, kind),
                Action::Complete(c) => self.complete(c),
            }
        }
        if self.planting.is_some() && self.planted.is_empty() {
            self.epilogue();
        }
        // Planted in completion order; reported in invocation (history) order.
        self.planted.sort_unstable();
        let lines = (1..=self.events.len()).collect();
        let file = format!("synth-seed-{}", self.p.seed);
        let history = History::new(&file, Format::JsonLines, self.events, lines)
            .expect("the simulation pairs every invocation with one completion");
        let synth = Synth {
            history,
            planted: self.planted,
        };
        (synth, self.trace)
    }

    fn schedule(&mut self, time_ns: u64, action: Action) {
        self.queue.schedule(time_ns, action);
    }

    fn invoke(&mut self, c: usize) {
        if self.invoked == self.p.ops {
            return; // The client retires.
        }
        self.invoked += 1;
        let kind = self.draw_kind();
        let key = self.draw_key();
        let fate = self.draw_fate();
        let latency_ns = draw_latency_ns(&mut self.rng);
        let value = self.invoke_value(key, kind);
        let invoke = self.emit(OpType::Invoke, c, kind, value);
        match fate {
            Fate::Ok => {
                let at_ns = self.now_ns + self.rng.below(latency_ns + 1);
                self.schedule_apply(at_ns, Some(c), invoke, key, kind);
            }
            // Half of the crashed writes and cas ops reach the store anyway, perhaps after the
            // client gave up; crashed reads have no effect to speak of.
            Fate::Crash if kind != Kind::Read && self.rng.chance(0.5) => {
                let span_ns = latency_ns.saturating_mul(CRASH_EFFECT_LATENCIES);
                let at_ns = self.now_ns + self.rng.below(span_ns + 1);
                self.schedule_apply(at_ns, None, invoke, key, kind);
            }
            Fate::Crash | Fate::Fail => {}
        }
        self.schedule(self.now_ns + latency_ns, Action::Complete(c));
        let recent_at_invoke = match &mut self.planting {
            Some(planter) => planter.on_invoke(key, kind),
            None => Recent::default(),
        };
        self.clients[c].open = Some(OpenOp {
            invoke,
            key,
            kind,
            fate,
            observed: None,
            cas_matched: false,
            recent_at_invoke,
        });
    }

    fn schedule_apply(
        &mut self,
        at_ns: u64,
        client: Option<usize>,
        invoke: usize,
        key: u64,
        kind: Kind,
    ) {
        let action = Action::Apply {
            client,
            invoke,
            key,
            kind,
        };
        self.schedule(at_ns, action);
    }

    fn draw_kind(&mut self) -> Kind {
        let values = u64::from(self.p.values);
        let rng = &mut self.rng;
        match rng.below(3) {
            0 => Kind::Read,
            1 => Kind::Write(rng.below(values) as u32),
            _ => {
                let old = rng.below(values) as u32;
                Kind::Cas(old, rng.below(values) as u32)
            }
        }
    }

    fn draw_key(&mut self) -> u64 {
        match self.p.keys {
            0 => 0,
            keys => self.rng.below(keys as u64),
        }
    }

    fn draw_fate(&mut self) -> Fate {
        let x = self.rng.unit_f64();
        if x < self.p.crash_rate {
            Fate::Crash
        } else if x < self.p.crash_rate + self.p.fail_rate {
            Fate::Fail
        } else {
            Fate::Ok
        }
    }

    /// The op takes effect on the store at this instant.
    fn apply(&mut self, client: Option<usize>, invoke: usize, key: u64, kind: Kind) {
        let before = self.registers.get(&key).copied();
        let matched = matches!(kind, Kind::Cas(old, _) if before == Some(old));
        let after = match kind {
            Kind::Read => before,
            Kind::Write(v) => Some(v),
            Kind::Cas(_, new) if matched => Some(new),
            Kind::Cas(..) => before,
        };
        if let Some(v) = after {
            self.registers.insert(key, v);
        }
        if let Some(c) = client {
            let op = self.clients[c]
                .open
                .as_mut()
                .expect("an op applies while open");
            debug_assert_eq!(op.invoke, invoke);
            op.observed = before;
            op.cas_matched = matched;
        }
        if let Some(trace) = &mut self.trace {
            trace.push(Effect {
                position: self.events.len(),
                invoke,
                key,
                before,
                after,
            });
        }
    }

    fn complete(&mut self, c: usize) {
        let op = self.clients[c]
            .open
            .take()
            .expect("a client completes its open op");
        let invoked_value = self.invoke_value(op.key, op.kind);
        let (op_type, value) = match (op.fate, op.kind) {
            (Fate::Crash, _) => (OpType::Info, invoked_value),
            (Fate::Fail, _) => (OpType::Fail, invoked_value),
            (Fate::Ok, Kind::Read) => (OpType::Ok, self.read_result(&op)),
            (Fate::Ok, Kind::Cas(..)) if !op.cas_matched => (OpType::Fail, invoked_value),
            (Fate::Ok, _) => (OpType::Ok, invoked_value),
        };
        let completion = self.emit(op_type, c, op.kind, value);
        if let Some(planter) = &mut self.planting {
            planter.on_complete(op.key, op.kind, op.invoke, completion, op_type);
        }
        if op_type == OpType::Info {
            // Jepsen's convention: the worker goes on as a new process, never reusing an id.
            self.clients[c].process += self.p.clients as u64;
        }
        let think_ns = self.rng.below(THINK_MAX_NS + 1);
        self.schedule(self.now_ns + think_ns, Action::Invoke(c));
    }

    /// What an ok read returns: what it observed, or a planted stale value.
    fn read_result(&mut self, op: &OpenOp) -> Value {
        let planted = match &mut self.planting {
            Some(planter) => {
                let force = self.planted.is_empty();
                planter.stale_value(op.key, &op.recent_at_invoke, force, self.p.values)
            }
            None => None,
        };
        let returned = match planted {
            Some(stale) => {
                debug_assert_ne!(stale, op.observed, "a stale value is never the current one");
                self.planted.push(op.invoke);
                stale
            }
            None => op.observed,
        };
        self.wrap(op.key, returned.map_or(Value::Null, Value::from))
    }

    /// When no read could be made stale: one ok write, then a read of null, which is stale
    /// because nothing ever writes null. Every other op has completed and applied by now.
    fn epilogue(&mut self) {
        let (c, key) = (0, 0);
        let write = Kind::Write(0);
        self.now_ns += EPILOGUE_STEP_NS;
        let value = self.invoke_value(key, write);
        let invoke = self.emit(OpType::Invoke, c, write, value.clone());
        self.apply(None, invoke, key, write);
        self.now_ns += EPILOGUE_STEP_NS;
        self.emit(OpType::Ok, c, write, value);
        self.now_ns += EPILOGUE_STEP_NS;
        let value = self.invoke_value(key, Kind::Read);
        let read = self.emit(OpType::Invoke, c, Kind::Read, value);
        self.now_ns += EPILOGUE_STEP_NS;
        let stale = self.wrap(key, Value::Null);
        self.emit(OpType::Ok, c, Kind::Read, stale);
        self.planted.push(read);
    }

    /// Appends one event and returns its index.
    fn emit(&mut self, op_type: OpType, c: usize, kind: Kind, value: Value) -> usize {
        let index = self.events.len();
        let process = Process::Client(self.clients[c].process);
        let mut op = Op::new(index as u64, op_type, process, kind.name(), value);
        op.time = Some(self.now_ns);
        self.events.push(op);
        index
    }

    fn invoke_value(&self, key: u64, kind: Kind) -> Value {
        let v = match kind {
            Kind::Read => Value::Null,
            Kind::Write(v) => Value::from(v),
            Kind::Cas(old, new) => Value::from(vec![old, new]),
        };
        self.wrap(key, v)
    }

    fn wrap(&self, key: u64, v: Value) -> Value {
        match self.p.keys {
            0 => v,
            _ => Value::Array(vec![Value::from(key), v]),
        }
    }
}

/// The two most recently *invoked* ok ops that set a register, among those completed so far,
/// with distinct values: enough to find the latest-invoked ok setter of any value other than v.
#[derive(Clone, Copy, Debug, Default)]
struct Recent {
    /// (invoke index, value set), newest first; `second` sets a value other than `first`'s.
    first: Option<(usize, u32)>,
    second: Option<(usize, u32)>,
}

impl Recent {
    fn offer(&mut self, invoke: usize, v: u32) {
        match self.first {
            None => self.first = Some((invoke, v)),
            Some((i, w)) if w == v => self.first = Some((i.max(invoke), v)),
            Some((i, w)) if invoke > i => {
                self.second = Some((i, w));
                self.first = Some((invoke, v));
            }
            Some(_) => match self.second {
                Some((j, w)) if w == v => self.second = Some((j.max(invoke), v)),
                Some((j, _)) if invoke <= j => {}
                _ => self.second = Some((invoke, v)),
            },
        }
    }

    /// The latest invocation of an ok op that set something other than `v` (None: null).
    fn newest_setting_other_than(&self, v: Option<u32>) -> Option<usize> {
        match (self.first, v) {
            (Some((_, w)), Some(v)) if w == v => self.second.map(|(i, _)| i),
            (first, _) => first.map(|(i, _)| i),
        }
    }
}

/// What StaleReads needs to know about the ops that could set a register to one value.
#[derive(Clone, Copy, Debug, Default)]
struct Setters {
    /// Invoked and not yet completed: they may take effect during any read.
    open: u32,
    /// Some crashed: it may take effect at any time, so this value is never provably stale.
    crashed: bool,
    /// Completion index of the last ok one.
    last_ok_completion: Option<usize>,
}

/// Finds stale values for reads, from the history alone (never from the hidden truth), so that a
/// planted value is stale for every linearization, not just the simulated one.
struct Planter {
    rate: f64,
    rng: Rng,
    recent: FxHashMap<u64, Recent>,
    setters: FxHashMap<(u64, u32), Setters>,
}

impl Planter {
    fn new(rate: f64, seed: u64) -> Planter {
        Planter {
            rate,
            rng: Rng::new(seed),
            recent: FxHashMap::default(),
            setters: FxHashMap::default(),
        }
    }

    /// Returns, for a read, the ok setters completed before it was invoked.
    fn on_invoke(&mut self, key: u64, kind: Kind) -> Recent {
        match kind.sets() {
            Some(v) => {
                self.setters.entry((key, v)).or_default().open += 1;
                Recent::default()
            }
            None => self.recent.get(&key).copied().unwrap_or_default(),
        }
    }

    fn on_complete(&mut self, key: u64, kind: Kind, invoke: usize, completion: usize, t: OpType) {
        let Some(v) = kind.sets() else { return };
        let s = self.setters.entry((key, v)).or_default();
        s.open -= 1;
        match t {
            OpType::Ok => {
                s.last_ok_completion = Some(completion);
                self.recent.entry(key).or_default().offer(invoke, v);
            }
            OpType::Info => s.crashed = true,
            OpType::Fail | OpType::Invoke => {}
        }
    }

    /// A stale value (None: null) for an ok read of `key` about to complete, if one exists and
    /// the dice (or `force`) say to plant it.
    fn stale_value(
        &mut self,
        key: u64,
        at_invoke: &Recent,
        force: bool,
        values: u32,
    ) -> Option<Option<u32>> {
        if !force && !self.rng.chance(self.rate) {
            return None;
        }
        // Prefer a written value; null (stale once anything was written) is the fallback.
        let v = self.rng.below(u64::from(values)) as u32;
        [Some(v), None]
            .into_iter()
            .find(|&candidate| self.is_stale(key, candidate, at_invoke))
    }

    /// Whether every op that could have set `key` to `v` is followed, before the read's
    /// invocation, by an ok op setting another value that was invoked after it completed.
    fn is_stale(&self, key: u64, v: Option<u32>, at_invoke: &Recent) -> bool {
        let newest_other = at_invoke.newest_setting_other_than(v);
        let Some(v) = v else {
            // Only the initial state is null, and any ok setter overwrote it.
            return newest_other.is_some();
        };
        let Some(s) = self.setters.get(&(key, v)) else {
            return false; // Never written: reading it would be wrong, but not stale.
        };
        match (s.open, s.crashed, s.last_ok_completion, newest_other) {
            (0, false, Some(done), Some(other_invoke)) => other_invoke > done,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::jsonl;

    fn params(ops: usize, clients: usize, seed: u64) -> RegisterParams {
        RegisterParams {
            crash_rate: 0.05,
            fail_rate: 0.05,
            ..RegisterParams::new(ops, clients, seed)
        }
    }

    fn stale(mut p: RegisterParams, rate: f64) -> RegisterParams {
        p.mode = Mode::StaleReads { rate };
        p
    }

    fn text(s: &Synth) -> String {
        jsonl::write(&s.history.ops)
    }

    #[test]
    fn same_seed_gives_identical_bytes() {
        for p in [params(2000, 7, 9), stale(params(2000, 7, 9), 0.1)] {
            let a = register_history(&p);
            let b = register_history(&p);
            assert_eq!(text(&a), text(&b));
            assert_eq!(a.planted, b.planted);
            assert_eq!(a.history.file, "synth-seed-9");
        }
    }

    #[test]
    fn different_seeds_differ() {
        let a = register_history(&params(500, 4, 1));
        let b = register_history(&params(500, 4, 2));
        assert_ne!(text(&a), text(&b));
    }

    #[test]
    fn every_invocation_completes_once_and_info_matches_crash_rate() {
        let p = RegisterParams {
            crash_rate: 0.1,
            fail_rate: 0.05,
            ..RegisterParams::new(20_000, 10, 3)
        };
        let h = register_history(&p).history;
        assert_eq!(h.len(), 40_000);
        let count = |t| h.ops.iter().filter(|o| o.op_type == t).count() as f64;
        assert!(h.partner.iter().all(Option::is_some));
        let info = count(OpType::Info) / 20_000.0;
        assert!((info - 0.1).abs() < 0.01, "info fraction {info}");
        // Random failures plus cas ops whose old value mismatched.
        let fail = count(OpType::Fail) / 20_000.0;
        assert!(fail > 0.05, "fail fraction {fail}");
    }

    #[test]
    fn crashed_clients_continue_under_fresh_processes() {
        let p = RegisterParams {
            crash_rate: 0.3,
            ..RegisterParams::new(3000, 4, 8)
        };
        let h = register_history(&p).history;
        let mut seen = std::collections::BTreeSet::new();
        for op in &h.ops {
            let Process::Client(pid) = op.process else {
                panic!("only clients")
            };
            seen.insert(pid);
        }
        // History::new already refused any reuse after info; here: ids keep the worker (mod 4).
        assert!(seen.len() > 100, "{} process ids", seen.len());
        assert!(seen.iter().all(|&pid| pid < 4 + 4 * 3000));
    }

    fn max_open_ops(h: &History) -> usize {
        let (mut open, mut max) = (0usize, 0usize);
        for op in &h.ops {
            if op.op_type == OpType::Invoke {
                open += 1;
                max = max.max(open);
            } else {
                open -= 1;
            }
        }
        max
    }

    #[test]
    fn ops_really_overlap() {
        for clients in [1, 2, 5, 8, 30] {
            let h = register_history(&params(5000, clients, 4)).history;
            let max = max_open_ops(&h);
            assert!(
                max >= clients.min(5),
                "clients {clients}: at most {max} open at once"
            );
            assert!(max <= clients);
        }
    }

    #[test]
    fn times_are_set_and_monotone() {
        let h = register_history(&params(3000, 6, 5)).history;
        let times: Vec<u64> = h.ops.iter().map(|o| o.time.expect("time set")).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        // Varying latencies: some ops are far slower than others.
        let mut latencies: Vec<u64> = (0..h.len())
            .filter(|&i| h.ops[i].op_type == OpType::Invoke)
            .map(|i| times[h.partner[i].unwrap()] - times[i])
            .collect();
        latencies.sort_unstable();
        assert!(latencies[latencies.len() - 1] > 20 * latencies[latencies.len() / 10]);
    }

    #[test]
    fn values_follow_the_conventions() {
        let p = RegisterParams {
            keys: 3,
            ..params(2000, 5, 6)
        };
        let h = register_history(&p).history;
        for op in &h.ops {
            let Value::Array(kv) = &op.value else {
                panic!("keyed value not wrapped: {:?}", op.value)
            };
            assert!(
                kv.len() == 2 && kv[0].as_u64().is_some_and(|k| k < 3),
                "{kv:?}"
            );
            let v = &kv[1];
            match (op.f.as_str(), op.op_type) {
                ("read", OpType::Invoke) => assert!(v.is_null()),
                ("read", _) => assert!(v.is_null() || v.as_u64().is_some_and(|x| x < 5)),
                ("write", _) => assert!(v.as_u64().is_some_and(|x| x < 5)),
                ("cas", _) => assert!(v.as_array().is_some_and(|a| a.len() == 2)),
                other => panic!("unexpected {other:?}"),
            }
        }
        let unkeyed = register_history(&params(200, 3, 6)).history;
        assert!(unkeyed
            .ops
            .iter()
            .any(|o| o.f == "write" && o.value.is_u64()));
    }

    /// The register's value at every history position, replayed from the trace.
    fn values_by_position(h: &History, trace: &[Effect], key: u64) -> Vec<Option<u32>> {
        let mut out = Vec::with_capacity(h.len() + 1);
        let mut value = None;
        let mut effects = trace.iter().filter(|e| e.key == key).peekable();
        for pos in 0..=h.len() {
            while let Some(e) = effects.next_if(|e| e.position == pos) {
                value = e.after;
            }
            // out[pos]: the value just before event `pos`.
            out.push(value);
        }
        out
    }

    fn key_and_value(p: &RegisterParams, v: &Value) -> (u64, Value) {
        match p.keys {
            0 => (0, v.clone()),
            _ => (v[0].as_u64().unwrap(), v[1].clone()),
        }
    }

    #[test]
    fn the_trace_is_a_linearization_of_the_history() {
        for keys in [0, 4] {
            let p = RegisterParams {
                keys,
                crash_rate: 0.1,
                ..params(4000, 8, 10)
            };
            let (s, trace) = register_history_traced(&p);
            let h = &s.history;
            let mut registers: FxHashMap<u64, u32> = FxHashMap::default();
            for e in &trace {
                assert_eq!(registers.get(&e.key).copied(), e.before, "replay of {e:?}");
                if let Some(v) = e.after {
                    registers.insert(e.key, v);
                }
                let c = h.partner[e.invoke].unwrap();
                assert!(e.invoke < e.position, "{e:?} before its invocation");
                let done = &h.ops[c];
                if done.op_type == OpType::Info {
                    continue;
                }
                assert!(e.position <= c, "{e:?} after its completion");
                if done.op_type == OpType::Fail {
                    // A cas whose old value did not match at its linearization point.
                    assert_eq!((done.f.as_str(), e.before), ("cas", e.after), "{e:?}");
                    continue;
                }
                assert_eq!(done.op_type, OpType::Ok, "{e:?}: only ok ops apply");
                let (_, v) = key_and_value(&p, &done.value);
                if done.f == "read" {
                    assert_eq!(v.as_u64().map(|x| x as u32), e.before);
                }
            }
            let applied: std::collections::BTreeSet<usize> =
                trace.iter().map(|e| e.invoke).collect();
            for i in 0..h.len() {
                let op = &h.ops[i];
                if op.op_type == OpType::Invoke
                    && h.ops[h.partner[i].unwrap()].op_type == OpType::Ok
                {
                    assert!(applied.contains(&i), "ok op {i} never applied");
                }
            }
        }
    }

    #[test]
    fn stale_reads_are_planted_and_truly_stale() {
        for (keys, crash_rate, seed) in [(0, 0.0, 1), (0, 0.05, 2), (3, 0.1, 3), (0, 0.2, 4)] {
            let p = RegisterParams {
                keys,
                crash_rate,
                ..stale(params(3000, 6, seed), 0.05)
            };
            let (s, trace) = register_history_traced(&p);
            assert!(s.planted.len() >= 2, "{:?}: {} planted", p, s.planted.len());
            let mut non_null = 0;
            assert!(s.planted.windows(2).all(|w| w[0] < w[1]), "history order");
            for &r in &s.planted {
                if assert_truly_stale(&p, &s.history, &trace, r) {
                    non_null += 1;
                }
            }
            if crash_rate == 0.0 {
                assert!(non_null > 0, "only null was planted");
            }
        }
    }

    /// Checks planted read `r` against the truth and against the history; true for a non-null
    /// value.
    fn assert_truly_stale(p: &RegisterParams, h: &History, trace: &[Effect], r: usize) -> bool {
        let c = h.partner[r].unwrap();
        assert_eq!(
            (h.ops[r].f.as_str(), h.ops[c].op_type),
            ("read", OpType::Ok)
        );
        let (key, v) = key_and_value(p, &h.ops[c].value);
        let v = v.as_u64().map(|x| x as u32);
        let truth = values_by_position(h, trace, key);
        // The register held v before the read was invoked, and no longer during the read.
        assert!(truth[..=r].contains(&v), "read {r}: {v:?} was never held");
        assert!(!truth[r + 1..=c].contains(&v), "read {r}: {v:?} is current");
        // From the history alone: every op that could set v was overwritten before r.
        let setters_of = |i: usize| {
            let (k, iv) = key_and_value(p, &h.ops[i].value);
            let sets = match h.ops[i].f.as_str() {
                "write" => iv.as_u64(),
                "cas" => iv[1].as_u64(),
                _ => None,
            };
            (k == key && h.ops[i].op_type == OpType::Invoke)
                .then_some(sets)
                .flatten()
        };
        let ok = |i: usize| h.ops[h.partner[i].unwrap()].op_type == OpType::Ok;
        let overwritten_after = |done: Option<usize>| {
            (0..r).any(|w| {
                setters_of(w).is_some_and(|x| Some(x as u32) != v)
                    && ok(w)
                    && !matches!(done, Some(d) if w <= d)
                    && h.partner[w].unwrap() < r
            })
        };
        if v.is_none() {
            assert!(overwritten_after(None), "read {r}: null before any write");
            return false;
        }
        for y in (0..c).filter(|&y| setters_of(y).map(|x| x as u32) == v) {
            let outcome = h.ops[h.partner[y].unwrap()].op_type;
            if outcome == OpType::Fail {
                continue;
            }
            assert_eq!(
                outcome,
                OpType::Ok,
                "read {r}: setter {y} of {v:?} may be pending"
            );
            assert!(
                overwritten_after(h.partner[y]),
                "read {r}: setter {y} not overwritten"
            );
        }
        true
    }

    #[test]
    fn stale_mode_only_changes_planted_reads() {
        let p = params(3000, 6, 12);
        let plain = register_history(&p).history;
        let s = register_history(&stale(p, 0.1));
        assert_eq!(plain.len(), s.history.len());
        let changed: Vec<usize> = (0..plain.len())
            .filter(|&i| plain.ops[i] != s.history.ops[i])
            .collect();
        let mut planted_completions: Vec<usize> = s
            .planted
            .iter()
            .map(|&r| s.history.partner[r].unwrap())
            .collect();
        planted_completions.sort_unstable();
        assert_eq!(changed, planted_completions);
    }

    #[test]
    fn tiny_stale_histories_still_get_a_violation() {
        for ops in [0, 1, 2] {
            let s = register_history(&stale(RegisterParams::new(ops, 3, 1), 0.5));
            assert_eq!(s.planted.len(), 1, "ops {ops}");
            assert!(s.history.len() <= 2 * ops + 4);
        }
    }

    #[test]
    fn zero_ops_is_an_empty_history() {
        assert!(register_history(&RegisterParams::new(0, 3, 1))
            .history
            .is_empty());
    }

    #[test]
    #[should_panic(expected = "clients must be at least 1")]
    fn zero_clients_is_refused() {
        register_history(&RegisterParams::new(10, 0, 1));
    }

    #[test]
    #[should_panic(expected = "crash_rate must be in [0, 1]")]
    fn bad_rates_are_refused() {
        register_history(&RegisterParams {
            crash_rate: 1.5,
            ..RegisterParams::new(10, 1, 1)
        });
    }

    #[test]
    fn recent_tracks_the_newest_setter_of_another_value() {
        let mut r = Recent::default();
        r.offer(5, 1);
        assert_eq!(r.newest_setting_other_than(Some(1)), None);
        assert_eq!(r.newest_setting_other_than(Some(2)), Some(5));
        r.offer(3, 2);
        r.offer(9, 1);
        r.offer(7, 1);
        assert_eq!(r.newest_setting_other_than(Some(1)), Some(3));
        assert_eq!(r.newest_setting_other_than(None), Some(9));
        r.offer(10, 2);
        assert_eq!(r.newest_setting_other_than(Some(2)), Some(9));
        assert_eq!(r.newest_setting_other_than(Some(1)), Some(10));
        r.offer(4, 3);
        assert_eq!(r.newest_setting_other_than(Some(2)), Some(9));
    }
}
