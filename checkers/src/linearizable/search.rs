//! The linearizability search over one partition.
//!
//! Completed operations sit in a doubly linked list of call and return events in history
//! order (Lowe's just-in-time linearization): a call before the first pending return may be
//! linearized next; reaching a return means backtracking. Crashed operations have no return,
//! so they are kept out of the list, grouped into classes of identical inputs, and tried only
//! after every completed candidate at a configuration; within a class the earliest-invoked
//! unused member goes first, which is without loss of generality because members differ only
//! in when they became available. Visited configurations are memoized by
//! (first unlinearized op, linearized window, crashed-class counts, interned state).
//!
//! A configuration is also skipped when a failed one differs from it only by a blind write
//! it has linearized and that one has not, provided a completed op still to be linearized
//! must return first and is a write, a read of that value or a cas to it
//! (`hidden_write_dominates`): whatever completes this configuration completes that one too,
//! with the missing write placed just before the other write, which overwrites it unseen, or
//! just after the op that leaves its value. Long writes make many such pairs (the same prefix
//! with the write placed or not yet placed), and on 50,000-op cas-register histories this
//! visits 33% to 48% fewer configurations.
//!
//! On registers, a configuration is also dead when the op that must return first is illegal
//! and no value where it is legal can be reached with the ops left that may go before it
//! (`dead_end`): no order of them can help, so the search does not try them all. Its
//! ancestors back to where such a value becomes reachable are dead for the same reason, and
//! the search backjumps past them.
//!
//! A blind write is not tried right after a completed one of another value that it would
//! overwrite unseen, when the sibling without that one covers it (`overwrites_last`).
//!
//! After a completed op placed long before it had to be, a configuration is also dead when
//! the ops ahead need that op's value written more often than the producers left can write
//! it (`supply_short`).
//!
//! In the rival's orders, a crashed op is not tried where a completed op that may go now
//! does what it would do (`completed_does_it`): swapping the two gives a linearization that
//! keeps the crashed op, which never has to return, for later.

use super::compile::Partition;
use super::memo::{Memo, NO_WAY, WAYS};
use crate::datum::Datum;
use crate::model::{self, Input, ModelKind};
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// How many of a prefix's last operations an explanation keeps.
const PREFIX_TAIL: usize = 256;
/// How often (in search steps) a search looks at the clock and the shared flags.
const POLL_STEPS: u64 = 1 << 12;
/// Domain tags that keep the fingerprints of ops, crashed-class counts and states apart.
const OP_TAG: u64 = 1 << 62;
const CLASS_TAG: u64 = 2 << 62;
const STATE_TAG: u64 = 3 << 62;
/// Estimated bytes an interned state or a cached transition costs beyond the state's own size.
const STATE_OVERHEAD_BYTES: usize = 64;
/// How far ahead the growth check looks for reads that cannot be satisfied.
const GROWTH_LOOKAHEAD: usize = 512;
/// How many members of a write group on each side of its first unlinearized one the hidden
/// write check looks at. On 50,000-op cas-register histories looking further finds more, up
/// to about 32: 8 prunes a quarter fewer configurations, 128 no more than 32.
const HIDDEN_SCAN: usize = 32;
/// Most transitions one `dead_end` check may try: past them, a configuration not yet shown
/// dead is taken as live, and a backjump stops where it is.
const REACH_WORK: usize = 1 << 12;
/// How many list nodes the supply check (`supply_short`) looks ahead. Its walk is the
/// hottest loop of a large register check. On the 64 seeds of the 50,000-op cas-register
/// benchmark, 256 prunes what 512 did on 62 (the others differ by 6 and 585 configurations)
/// in 12% less time in all; 128 prunes far less (seed 14: 78,000 configurations to 2 million).
const SUPPLY_LOOKAHEAD: usize = 1 << 8;
/// A completed op placed more than this many history events before its return is needed (the
/// first pending return) is placed early, and the supply check runs after it. Not after a
/// crashed op: on the 50,000-op benchmark those checks cost more than they pruned.
const EARLY_EVENTS: usize = 64;
/// The supply check also stops this many history events past the first pending one: it
/// gathers crashed producers only up to there.
const SUPPLY_HORIZON_EVENTS: usize = 4 * SUPPLY_LOOKAHEAD;

const NONE: u32 = u32::MAX;
/// A transition not computed yet.
const UNKNOWN: u32 = u32::MAX - 1;
/// Most transitions kept in the dense table, so small models never hash a transition.
const DENSE_TRANSITIONS: usize = 1 << 20;
const HEAD: usize = 0;
/// The share of the memory limit the rival search of a race may use: one part in this many.
const RIVAL_SHARE: usize = 4;
/// Why a race's rival stopped once it used its share of memory.
const YIELDED: &str = "yielded";

/// The order in which a search tries the candidates of a configuration. Every order
/// reaches the same verdict; they differ in how soon (see `partitions::race`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Order {
    /// Whether a completed op that makes an illegal cas (dequeue, lock op) legal serves it,
    /// as one that makes a read legal does.
    pub(super) serve_enabling: bool,
    /// Whether the candidates that serve the urgent op go by their return, earliest first,
    /// rather than in call order: a slow op then stays available for later.
    pub(super) serving_by_return: bool,
    /// Whether a crashed op is kept for later where a completed op that may go now does
    /// its work (`completed_does_it`). It only prunes, but it changes which subtree a
    /// depth-first search enters first (see `partitions::RIVAL_ORDERS`).
    pub(super) keep_crashed: bool,
}

impl Order {
    /// The order a search takes alone.
    pub(super) const PRIMARY: Order = Order {
        serve_enabling: false,
        serving_by_return: false,
        keep_crashed: false,
    };
}

/// What every partition's search shares: deadline, memory, and which partition failed first.
pub(super) struct Shared<'a> {
    pub(super) deadline: Option<Instant>,
    pub(super) memory_limit_bytes: usize,
    pub(super) memory_used_bytes: AtomicUsize,
    pub(super) cancel: &'a AtomicBool,
    pub(super) max_prefixes: usize,
    /// The fewest configurations after which a racing search of the partition reached a
    /// verdict (`u64::MAX` until one has): a racing search that has visited more stops.
    pub(super) finish_line: AtomicU64,
}

#[cfg(test)]
impl Shared<'_> {
    /// No deadline, a gigabyte, one prefix: for tests of one search.
    pub(super) fn unlimited(cancel: &AtomicBool) -> Shared<'_> {
        Shared {
            deadline: None,
            memory_limit_bytes: 1 << 30,
            memory_used_bytes: AtomicUsize::new(0),
            cancel,
            max_prefixes: 1,
            finish_line: AtomicU64::new(u64::MAX),
        }
    }
}

pub(super) enum Verdict {
    Valid,
    Invalid(Stuck),
    Unknown(&'static str),
    /// The step budget ran out; `run` may be called again to go on.
    Paused,
}

pub(super) struct PartResult {
    pub(super) verdict: Verdict,
    /// Configurations visited, by every search of the partition's contestant in a race:
    /// what decides a race.
    pub(super) configurations: u64,
}

/// A furthest point the search reached without being able to go on.
#[derive(Clone)]
pub(super) struct StuckPrefix {
    /// Index (in the partition) of the op whose return could not be passed.
    pub(super) blocked: usize,
    pub(super) state: u32,
    /// Partition op indices, the last `PREFIX_TAIL` of the order.
    pub(super) order_tail: Vec<usize>,
    pub(super) elided: usize,
}

pub(super) struct Stuck {
    pub(super) prefixes: Vec<StuckPrefix>,
    pub(super) states: Vec<Datum>,
}

/// A pseudo-random 128-bit value for `x`: two SplitMix64 finalizers with different seeds.
/// Configurations are remembered by the XOR of these over their parts (Zobrist hashing), so
/// a move updates the fingerprint in constant time and a memo entry is 16 bytes whatever the
/// history's length. The memo keeps 96 of the bits (`memo`): distinct configurations share
/// a stored fingerprint with probability 2^-96 per pair, below 10^-11 for a check that
/// visits a billion configurations.
fn zobrist(x: u64) -> u128 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    (mix(x) as u128) << 64 | mix(x ^ 0x5851_f42d_4c95_7f2d) as u128
}

/// The fingerprint part of crashed class `class` having used `count` members; zero for none,
/// so classes never used cost nothing.
fn class_print(class: usize, count: u32) -> u128 {
    if count == 0 {
        0
    } else {
        zobrist(CLASS_TAG | (class as u64) << 32 | count as u64)
    }
}

/// A node of the event list: the call or the return of a completed op.
#[derive(Clone, Copy)]
struct Node {
    prev: u32,
    next: u32,
    /// Index into `Search::completed`.
    op: u32,
    is_call: bool,
    /// History index of the event, for availability of crashed ops.
    pos: usize,
}

/// Crashed ops with identical inputs, in invocation order.
struct Class {
    input: u32,
    /// (history invoke index, partition op index), sorted.
    members: Vec<(usize, usize)>,
}

#[derive(Clone, Copy)]
enum Choice {
    /// A completed op, linearized from this list node, the `rank`th candidate of its
    /// configuration; the candidates after it are alternatives.
    Node { node: usize, rank: usize },
    /// A read-only op linearized as soon as it was legal: without loss of generality, so
    /// the configuration before it has no alternatives.
    Forced(usize),
    /// A member of a crashed class, tried while the first pending return was this node;
    /// `urgent` in the pass over the classes that make that op legal.
    Crashed {
        class: usize,
        ret_node: usize,
        urgent: bool,
    },
}

struct Frame {
    choice: Choice,
    /// State before the choice.
    state: u32,
    /// Partition op index chosen.
    op: usize,
}

/// Where a paused search stands.
#[derive(Clone, Copy)]
enum Cursor {
    /// At a configuration not yet looked at: forced reads come first.
    Fresh,
    /// Trying the state-changing candidates (in `cands`) from `rank` on, below the first
    /// pending return `ret_node`; `late` once past the candidates that serve that op.
    List {
        rank: usize,
        ret_node: usize,
        late: bool,
    },
    /// Trying crashed classes from `from`, below the pending return `ret_node`; `urgent`:
    /// only those that make that op legal, between the serving candidates and the rest.
    Crashed {
        ret_node: usize,
        from: usize,
        urgent: bool,
    },
    /// The configuration is exhausted: backtrack.
    Backtrack,
}

pub(super) struct Search<'a> {
    part: &'a Partition,
    kind: ModelKind,
    initial: &'a Datum,
    shared: &'a Shared<'a>,
    /// Partition op indices of completed ops, in invocation order.
    completed: Vec<usize>,
    /// Interned input per completed op.
    completed_input: Vec<u32>,
    /// History positions of each completed op's invocation and return: read on every
    /// configuration, so kept here rather than behind `part.ops[completed[c]]`.
    invoke_at: Vec<u32>,
    return_at: Vec<u32>,
    /// Scratch for sorting candidates: (return position, node) packed.
    sort_keys: Vec<u64>,
    /// Scratch for `dead_end`: the inputs that may still go, the values they reach.
    reach_inputs: Vec<u32>,
    reach_values: Vec<u32>,
    /// For each state, the last `dead_end` round that reached it.
    reach_marks: Vec<u32>,
    reach_round: u32,
    read_only: Vec<bool>,
    /// The current configuration's state-changing candidates: list nodes (see `order_candidates`).
    cands: Vec<usize>,
    /// How many of `cands` (at the front) serve the op that must return first.
    serving: usize,
    /// Whether the op that must return first is a read.
    serving_read: bool,
    /// Completed ops grouped by input, each group sorted by return position.
    groups: Vec<Vec<u32>>,
    /// For each completed op: its place in its group.
    group_rank: Vec<u32>,
    /// For each group: no member before this place is unlinearized.
    group_first: Vec<u32>,
    /// The groups of completed blind writes.
    write_groups: Vec<usize>,
    /// For each of `write_groups`: the groups of completed ops that leave the register at
    /// that group's value (reads of it, cas ops to it).
    write_sinks: Vec<Vec<usize>>,
    /// Whether `hidden_write_dominates` prunes (off only to measure it in tests).
    hidden_writes: bool,
    /// Whether `overwrites_last` prunes (off only to measure it in tests).
    overwrites: bool,
    /// The order in which candidates are tried (see `order_candidates`).
    pub(super) order: Order,
    /// Whether another search of this partition races this one (see `Shared::finish_line`).
    pub(super) racing: bool,
    /// Whether this search is the rival of a race, which gives way once it holds its share
    /// of memory.
    pub(super) rival: bool,
    /// Configurations visited by searches of the same partition this one follows in a race
    /// (see `partitions::run_rival`): a race compares a contestant's configurations over all
    /// of its searches.
    pub(super) configurations_before: u64,
    nodes: Vec<Node>,
    /// For each completed op, its call and return nodes.
    call_node: Vec<usize>,
    ret_node: Vec<usize>,
    classes: Vec<Class>,
    /// Whether any input only grows the state, so the growth lookahead can prune.
    growth: bool,
    /// Transitions by `state * inputs.len() + input` for the first `dense_rows` states;
    /// `UNKNOWN` where not computed yet. Later states use `transitions`.
    dense: Vec<u32>,
    dense_rows: usize,
    /// For each class, the classes it subsumes (see `model::subsumes`).
    subsumed: Vec<Vec<usize>>,
    /// For each class and input, flattened (`class * inputs.len() + input`): whether the
    /// class's crashed op does what a completed op of that input does, wherever that one is
    /// legal (see `model::covers`).
    class_covers: Vec<bool>,
    /// Whether a class's step ignores the state (a blind write).
    blind: Vec<bool>,
    /// For each input, the interned state it leaves a register at when it changes it, NONE
    /// for inputs that never change it; empty when some input's result depends on the state
    /// it follows, which turns `dead_end` off.
    results: Vec<u32>,
    /// For each input, on registers: the value it leaves when it changes the register to it
    /// from another (`produces`), the value it needs before (`needs`: reads, cas ops), and
    /// the value it leaves whenever it is legal (`leaves`: reads, writes, cas ops); NONE
    /// where there is none. `not_equal`: the value a failed cas saw the register was not.
    produces: Vec<u32>,
    needs: Vec<u32>,
    leaves: Vec<u32>,
    not_equal: Vec<u32>,
    /// The value a supply check is due for at the next fresh configuration, or NONE.
    supply_due: u32,
    /// How early a completed op must be placed for the supply check to run after it
    /// (`EARLY_EVENTS`; tests lower it to check after every op, or raise it to turn it off).
    supply_early_events: usize,
    /// Scratch for `supply_short`: returns of the producers in reach, crashed ones' invokes.
    supply_rets: Vec<u32>,
    supply_crashed: Vec<u32>,
    used: Vec<u32>,
    lin: Vec<u64>,
    /// Zobrist fingerprint of the linearized set.
    print: u128,
    /// Zobrist fingerprint of the crashed-class counts, and its interned id.
    crash_print: u128,
    used_id: u32,
    /// Interned crashed-class count vectors (`used` at some point), flattened.
    used_sets: Vec<u32>,
    used_set_ids: FxHashMap<u128, u32>,
    inputs: Vec<Input>,
    states: Vec<Datum>,
    state_ids: FxHashMap<Datum, u32>,
    transitions: FxHashMap<u64, u32>,
    /// Visited configurations: fingerprint of (linearized set, state) to the crashed-class
    /// count vectors it was visited with (see `memoize`).
    memo: Memo,
    /// Configurations explored: memo insertions, counting each crashed-usage vector.
    explored: u64,
    bytes: usize,
    /// The memo's share of `bytes`.
    memo_bytes: usize,
    reported_bytes: usize,
    steps: u64,
    /// (position of the blocking return, ops linearized) of the furthest dead end so far.
    best_progress: (usize, usize),
    stuck: Vec<StuckPrefix>,
    // The search's position, kept between budgeted runs.
    remaining: usize,
    state: u32,
    stack: Vec<Frame>,
    cursor: Cursor,
    done: bool,
}

impl<'a> Search<'a> {
    pub(super) fn new(
        part: &'a Partition,
        initial: &'a Datum,
        kind: ModelKind,
        shared: &'a Shared<'a>,
    ) -> Search<'a> {
        let mut s = Search {
            part,
            kind,
            initial,
            shared,
            completed: Vec::new(),
            completed_input: Vec::new(),
            invoke_at: Vec::new(),
            return_at: Vec::new(),
            sort_keys: Vec::new(),
            reach_inputs: Vec::new(),
            reach_values: Vec::new(),
            reach_marks: Vec::new(),
            reach_round: 0,
            read_only: Vec::new(),
            cands: Vec::new(),
            serving: 0,
            serving_read: false,
            groups: Vec::new(),
            group_rank: Vec::new(),
            group_first: Vec::new(),
            write_groups: Vec::new(),
            write_sinks: Vec::new(),
            hidden_writes: true,
            overwrites: true,
            order: Order::PRIMARY,
            racing: false,
            rival: false,
            configurations_before: 0,
            nodes: Vec::new(),
            call_node: Vec::new(),
            ret_node: Vec::new(),
            classes: Vec::new(),
            growth: false,
            dense: Vec::new(),
            dense_rows: 0,
            subsumed: Vec::new(),
            class_covers: Vec::new(),
            blind: Vec::new(),
            results: Vec::new(),
            produces: Vec::new(),
            needs: Vec::new(),
            leaves: Vec::new(),
            not_equal: Vec::new(),
            supply_due: NONE,
            supply_early_events: EARLY_EVENTS,
            supply_rets: Vec::new(),
            supply_crashed: Vec::new(),
            used: Vec::new(),
            lin: Vec::new(),
            print: 0,
            crash_print: 0,
            used_id: 0,
            used_sets: Vec::new(),
            used_set_ids: FxHashMap::default(),
            inputs: Vec::new(),
            states: Vec::new(),
            state_ids: FxHashMap::default(),
            transitions: FxHashMap::default(),
            memo: Memo::new(),
            explored: 0,
            bytes: 0,
            memo_bytes: 0,
            reported_bytes: 0,
            steps: 0,
            best_progress: (0, 0),
            stuck: Vec::new(),
            remaining: 0,
            state: 0,
            stack: Vec::new(),
            cursor: Cursor::Fresh,
            done: false,
        };
        s.build();
        s
    }

    fn build(&mut self) {
        let mut input_ids: FxHashMap<Input, u32> = FxHashMap::default();
        let mut class_of: FxHashMap<u32, usize> = FxHashMap::default();
        for (j, op) in self.part.ops.iter().enumerate() {
            let id = *input_ids.entry(op.input.clone()).or_insert_with(|| {
                self.inputs.push(op.input.clone());
                (self.inputs.len() - 1) as u32
            });
            if op.crashed() {
                let c = *class_of.entry(id).or_insert_with(|| {
                    self.classes.push(Class {
                        input: id,
                        members: Vec::new(),
                    });
                    self.classes.len() - 1
                });
                self.classes[c].members.push((op.invoke, j));
            } else {
                self.completed.push(j);
                self.completed_input.push(id);
                let ret = op.ret.expect("completed ops have a return");
                let position =
                    |p: usize| u32::try_from(p).expect("history positions fit in 32 bits");
                self.invoke_at.push(position(op.invoke));
                self.return_at.push(position(ret));
                self.read_only.push(op.input.is_read_only());
            }
        }
        self.used = vec![0; self.classes.len()];
        self.used_id = self.intern_used();
        self.growth = self
            .inputs
            .iter()
            .any(|i| matches!(i, Input::Append(_) | Input::Add(_)));
        self.blind = self
            .classes
            .iter()
            .map(|k| matches!(self.inputs[k.input as usize], Input::Write(_)))
            .collect();
        self.subsumed = self
            .classes
            .iter()
            .map(|general| {
                let g = &self.inputs[general.input as usize];
                (0..self.classes.len())
                    .filter(|&o| model::subsumes(g, &self.inputs[self.classes[o].input as usize]))
                    .collect()
            })
            .collect();
        self.class_covers = self
            .classes
            .iter()
            .flat_map(|k| {
                let general = &self.inputs[k.input as usize];
                self.inputs.iter().map(|i| model::covers(general, i))
            })
            .collect();
        self.lin = vec![0; self.completed.len().div_ceil(64)];
        self.build_groups();
        self.remaining = self.completed.len();
        self.build_list();
        let init = self.kind.init(self.initial);
        self.state = self.intern(init);
        self.build_results();
    }

    fn build_results(&mut self) {
        let results: Option<Vec<Option<Datum>>> = self
            .inputs
            .iter()
            .map(|i| model::register_result(i).map(|r| r.cloned()))
            .collect();
        let Some(results) = results else {
            return;
        };
        self.results = results
            .into_iter()
            .map(|r| r.map_or(NONE, |d| self.intern(d)))
            .collect();
        for k in 0..self.inputs.len() {
            let (produces, needs, leaves, not_equal) = match self.inputs[k].clone() {
                Input::Write(v) => (Some(v.clone()), None, Some(v), None),
                Input::Cas(old, new) => {
                    let produces = (old != new).then(|| new.clone());
                    (produces, Some(old), Some(new), None)
                }
                Input::CasUnknown(old, new) => ((old != new).then_some(new), None, None, None),
                Input::Read(v) => (None, Some(v.clone()), Some(v), None),
                Input::NotEqual(v) => (None, None, None, Some(v)),
                _ => unreachable!("registers have only these inputs"),
            };
            let mut id = |d: Option<Datum>| d.map_or(NONE, |d| self.intern(d));
            let ids = [id(produces), id(needs), id(leaves), id(not_equal)];
            self.produces.push(ids[0]);
            self.needs.push(ids[1]);
            self.leaves.push(ids[2]);
            self.not_equal.push(ids[3]);
        }
    }

    fn build_groups(&mut self) {
        self.groups = vec![Vec::new(); self.inputs.len()];
        for (c, &input) in self.completed_input.iter().enumerate() {
            self.groups[input as usize].push(c as u32);
        }
        let ret_of = |c: u32| self.part.ops[self.completed[c as usize]].ret;
        for g in &mut self.groups {
            g.sort_by_key(|&c| (ret_of(c), c));
        }
        self.group_rank = vec![0; self.completed.len()];
        for g in &self.groups {
            for (rank, &c) in g.iter().enumerate() {
                self.group_rank[c as usize] = rank as u32;
            }
        }
        self.group_first = vec![0; self.groups.len()];
        self.write_groups = (0..self.groups.len())
            .filter(|&g| matches!(self.inputs[g], Input::Write(_)) && !self.groups[g].is_empty())
            .collect();
        self.write_sinks = self
            .write_groups
            .iter()
            .map(|&g| {
                let Input::Write(v) = &self.inputs[g] else {
                    unreachable!("write groups hold writes")
                };
                (0..self.groups.len())
                    .filter(|&h| !self.groups[h].is_empty())
                    .filter(|&h| match &self.inputs[h] {
                        Input::Read(r) => r == v,
                        Input::Cas(_, new) => new == v,
                        _ => false,
                    })
                    .collect()
            })
            .collect();
    }

    fn is_lin(&self, c: usize) -> bool {
        self.lin[c / 64] >> (c % 64) & 1 == 1
    }

    /// Whether an identical op that must return no later than `c` could go next instead.
    /// Swapping two identical ops changes no state and breaks no real-time order, so only
    /// the earliest-returning available one of a group needs trying.
    fn dominated(&self, c: usize, bound: usize) -> bool {
        let g = self.completed_input[c] as usize;
        let group = &self.groups[g];
        let rank = self.group_rank[c] as usize;
        (self.group_first[g] as usize..rank).any(|k| {
            let m = group[k] as usize;
            !self.is_lin(m) && (self.invoke_at[m] as usize) < bound
        })
    }

    fn build_list(&mut self) {
        let n = self.completed.len();
        let mut events: Vec<(usize, u32, bool)> = Vec::with_capacity(2 * n);
        for (c, &j) in self.completed.iter().enumerate() {
            let op = &self.part.ops[j];
            events.push((op.invoke, c as u32, true));
            events.push((
                op.ret.expect("completed ops have a return"),
                c as u32,
                false,
            ));
        }
        events.sort_unstable_by_key(|e| e.0);
        self.call_node = vec![0; n];
        self.ret_node = vec![0; n];
        self.nodes.push(Node {
            prev: 0,
            next: 0,
            op: NONE,
            is_call: false,
            pos: usize::MAX,
        });
        for (pos, op, is_call) in events {
            let id = self.nodes.len();
            let prev = id - 1;
            self.nodes[prev].next = id as u32;
            self.nodes.push(Node {
                prev: prev as u32,
                next: HEAD as u32,
                op,
                is_call,
                pos,
            });
            if is_call {
                self.call_node[op as usize] = id;
            } else {
                self.ret_node[op as usize] = id;
            }
        }
        let last = self.nodes.len() - 1;
        self.nodes[HEAD].prev = last as u32;
    }

    fn intern(&mut self, d: Datum) -> u32 {
        if let Some(&id) = self.state_ids.get(&d) {
            return id;
        }
        let id = self.states.len() as u32;
        self.bytes += 2 * d.approx_bytes() + STATE_OVERHEAD_BYTES;
        let width = self.inputs.len();
        if self.dense_rows == id as usize && (id as usize + 1) * width <= DENSE_TRANSITIONS {
            self.dense.resize((id as usize + 1) * width, UNKNOWN);
            self.dense_rows += 1;
            self.bytes += width * 4;
        }
        self.states.push(d.clone());
        self.state_ids.insert(d, id);
        id
    }

    /// The state after `input` from `state`, cached; None if the model forbids it.
    fn transition(&mut self, state: u32, input: u32) -> Option<u32> {
        let width = self.inputs.len();
        let dense_at = (state as usize) * width + input as usize;
        let cached = if (state as usize) < self.dense_rows {
            self.dense[dense_at]
        } else {
            let k = (state as u64) << 32 | input as u64;
            self.transitions.get(&k).copied().unwrap_or(UNKNOWN)
        };
        let to = if cached != UNKNOWN {
            cached
        } else {
            let next = model::step(
                &self.states[state as usize],
                &self.inputs[input as usize],
                self.initial,
            );
            let to = match next {
                Some(d) => self.intern(d),
                None => NONE,
            };
            if (state as usize) < self.dense_rows {
                self.dense[dense_at] = to;
            } else {
                self.bytes += STATE_OVERHEAD_BYTES / 2;
                self.transitions
                    .insert((state as u64) << 32 | input as u64, to);
            }
            to
        };
        (to != NONE).then_some(to)
    }

    fn unlink(&mut self, node: usize) {
        let Node { prev, next, .. } = self.nodes[node];
        self.nodes[prev as usize].next = next;
        self.nodes[next as usize].prev = prev;
    }

    fn relink(&mut self, node: usize) {
        let Node { prev, next, .. } = self.nodes[node];
        self.nodes[prev as usize].next = node as u32;
        self.nodes[next as usize].prev = node as u32;
    }

    fn set_lin(&mut self, c: usize) {
        self.lin[c / 64] |= 1 << (c % 64);
        self.print ^= zobrist(OP_TAG | c as u64);
        let g = self.completed_input[c] as usize;
        if self.group_rank[c] == self.group_first[g] {
            let group = &self.groups[g];
            let mut first = self.group_first[g] as usize;
            while first < group.len() && self.is_lin(group[first] as usize) {
                first += 1;
            }
            self.group_first[g] = first as u32;
        }
    }

    fn clear_lin(&mut self, c: usize) {
        self.lin[c / 64] &= !(1 << (c % 64));
        self.print ^= zobrist(OP_TAG | c as u64);
        let g = self.completed_input[c] as usize;
        self.group_first[g] = self.group_first[g].min(self.group_rank[c]);
    }

    /// Moves crashed class `class` from `from` used members to `to`.
    fn set_used(&mut self, class: usize, to: u32) {
        let from = self.used[class];
        self.crash_print ^= class_print(class, from) ^ class_print(class, to);
        self.used[class] = to;
        self.used_id = self.intern_used();
    }

    /// The id of the current `used` vector, storing it the first time it is seen.
    fn intern_used(&mut self) -> u32 {
        if let Some(&id) = self.used_set_ids.get(&self.crash_print) {
            return id;
        }
        let id = self.used_set_ids.len() as u32;
        self.used_sets.extend_from_slice(&self.used);
        self.bytes += self.used.len() * 4 + STATE_OVERHEAD_BYTES;
        self.used_set_ids.insert(self.crash_print, id);
        id
    }

    /// Whether used set `a` is at or below used set `b` in every class.
    fn used_below(&self, a: u32, b: u32) -> bool {
        if a == b {
            return true;
        }
        let n = self.used.len();
        let sa = &self.used_sets[a as usize * n..(a as usize + 1) * n];
        let sb = &self.used_sets[b as usize * n..(b as usize + 1) * n];
        sa.iter().zip(sb).all(|(x, y)| x <= y)
    }

    /// Records the configuration (current `lin`, `used`, `state`); false if it need not be
    /// explored. That is when the same linearized set and state were reached before with at
    /// most these crashed ops used: that configuration can do everything this one can, and it
    /// has failed or is being explored above us.
    fn memoize(&mut self, state: u32, exclude: u32) -> bool {
        let key = self.print ^ zobrist(STATE_TAG | state as u64);
        let current = self.used_id;
        let Some(mut ways) = self.memo.get(key) else {
            if self.hidden_writes && self.hidden_write_dominates(key, exclude) {
                return false;
            }
            let mut fresh = [NO_WAY; WAYS];
            fresh[0] = current;
            self.memo.set(key, fresh);
            self.explored += 1;
            return true;
        };
        if self.classes.is_empty() || ways.contains(&current) {
            return false;
        }
        for way in ways.iter().take_while(|&&w| w != NO_WAY) {
            if self.used_below(*way, current) {
                return false;
            }
        }
        // Keep the smaller vectors: they prune more.
        let slot = (0..WAYS)
            .find(|&i| ways[i] == NO_WAY || self.used_below(current, ways[i]))
            .unwrap_or(WAYS - 1);
        ways[slot] = current;
        self.memo.set(key, ways);
        self.explored += 1;
        true
    }

    fn visited_below(&self, key: u128) -> bool {
        match self.memo.get(key) {
            None => false,
            Some(ways) => ways
                .iter()
                .take_while(|&&w| w != NO_WAY)
                .any(|&w| self.used_below(w, self.used_id)),
        }
    }

    /// Whether the configuration with fingerprint `key` is dominated by a visited one that
    /// lacks one linearized blind write `w` of value `v`. That holds when a completed op still
    /// to be linearized must return before `w` does and is a blind write, or leaves the
    /// register at `v` (a read of `v`, a cas to `v`): any completion of this configuration
    /// gives one of that one, with `w` placed just before that write, which overwrites it
    /// unseen, or just after that op, where it changes nothing. `exclude` is an op that
    /// configuration may be an ancestor of this one without: it is skipped, since the ancestor
    /// has not failed yet and may still be the way to a linearization.
    fn hidden_write_dominates(&self, key: u128, exclude: u32) -> bool {
        let first_ret = |g: usize| {
            self.groups[g]
                .get(self.group_first[g] as usize)
                .map(|&c| self.ret_of(c))
        };
        let any_write = self.write_groups.iter().filter_map(|&g| first_ret(g)).min();
        for (&g, sinks) in self.write_groups.iter().zip(&self.write_sinks) {
            let sink = sinks.iter().filter_map(|&h| first_ret(h)).min();
            let Some(bound) = any_write.into_iter().chain(sink).min() else {
                continue;
            };
            let group = &self.groups[g];
            let first = self.group_first[g] as usize;
            // Linearized members before the first unlinearized one, latest return first.
            for &c in group[first.saturating_sub(HIDDEN_SCAN)..first].iter().rev() {
                if self.ret_of(c) <= bound {
                    break;
                }
                if c != exclude && self.visited_below(key ^ zobrist(OP_TAG | c as u64)) {
                    return true;
                }
            }
            let after = (first + 1).min(group.len())..group.len().min(first + 1 + HIDDEN_SCAN);
            for &c in &group[after] {
                if self.is_lin(c as usize)
                    && c != exclude
                    && self.ret_of(c) > bound
                    && self.visited_below(key ^ zobrist(OP_TAG | c as u64))
                {
                    return true;
                }
            }
        }
        false
    }

    /// Whether a blind write of input `by` placed now (returning at `by_return`, or crashed)
    /// would overwrite, unseen, a completed blind write `w` of another value placed just
    /// before it by choice, while a completed op still to be linearized must return before
    /// `w` and is a blind write or leaves `w`'s value. Any completion of this configuration
    /// then gives one of its sibling without `w` (the same ops and state, tried from the
    /// parent), with `w` placed just before that write or just after that op, as in
    /// `hidden_write_dominates`: this one is skipped.
    ///
    /// A completed write skips only when it returns before `w`. Without that, two writes
    /// hidden before the same later write each count on the sibling that places the other
    /// first, and both orders are skipped (it changed verdicts on small histories). With
    /// it, take the valid linearization whose sequence of returns is least in lexicographic
    /// order: a skipped pair in it would give a valid one with a smaller return where `w`
    /// stood, so this rule never skips it. A crashed write skips without that condition.
    /// A completed write that serves a pending read is never skipped (see `advance`).
    fn overwrites_last(&self, by: u32, by_return: Option<u32>) -> bool {
        let Some(&Frame {
            choice: Choice::Node { node, .. },
            ..
        }) = self.stack.last()
        else {
            return false;
        };
        let w = self.nodes[node].op;
        let input = self.completed_input[w as usize];
        if !self.is_write(input) || input == by {
            return false;
        }
        if by_return.is_some_and(|r| r > self.return_at[w as usize]) {
            return false;
        }
        let first_ret = |g: usize| {
            self.groups[g]
                .get(self.group_first[g] as usize)
                .map(|&c| self.ret_of(c))
        };
        let k = self
            .write_groups
            .binary_search(&(input as usize))
            .expect("a completed write's group is a write group");
        let any_write = self.write_groups.iter().filter_map(|&g| first_ret(g));
        let sink = self.write_sinks[k].iter().filter_map(|&h| first_ret(h));
        any_write
            .chain(sink)
            .min()
            .is_some_and(|b| b < self.ret_of(w))
    }

    fn is_write(&self, input: u32) -> bool {
        matches!(self.inputs[input as usize], Input::Write(_))
    }

    /// The history position of completed op `c`'s return.
    fn ret_of(&self, c: u32) -> usize {
        self.return_at[c as usize] as usize
    }

    /// Counts the memo as it is, or at the peak of its next growth when that is near, so
    /// the limit holds at that peak.
    fn track_memo_bytes(&mut self) {
        let (now, at_growth) = self.memo.bytes();
        let memo_bytes = if self.memo.near_growth() {
            at_growth
        } else {
            now
        };
        self.bytes = self.bytes - self.memo_bytes + memo_bytes;
        self.memo_bytes = memo_bytes;
    }

    /// Tells the shared budget how this search's memory changed (it shrinks when the memo's
    /// growth headroom is no longer needed); returns the shared total.
    fn report_bytes(&mut self) -> usize {
        let used = &self.shared.memory_used_bytes;
        let total = if self.bytes >= self.reported_bytes {
            let grown = self.bytes - self.reported_bytes;
            used.fetch_add(grown, Ordering::Relaxed) + grown
        } else {
            let shrunk = self.reported_bytes - self.bytes;
            used.fetch_sub(shrunk, Ordering::Relaxed) - shrunk
        };
        self.reported_bytes = self.bytes;
        total
    }

    /// Looks at the clock, the memory budget and the cancel flag. Some(cause) to stop.
    fn poll(&mut self) -> Option<&'static str> {
        let s = self.shared;
        self.track_memo_bytes();
        let total_bytes = self.report_bytes();
        // The rival of a race gives way early, so the race leaves the primary most of the
        // memory it would have had alone (`run` frees the rival's memo).
        if self.racing && self.rival && self.bytes > s.memory_limit_bytes / RIVAL_SHARE {
            return Some(YIELDED);
        }
        if total_bytes > s.memory_limit_bytes {
            return Some("memory-limit");
        }
        if s.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some("timeout");
        }
        if s.cancel.load(Ordering::Relaxed) {
            return Some("cancelled");
        }
        let configurations = self.configurations_before + self.explored;
        if self.racing && configurations > s.finish_line.load(Ordering::Relaxed) {
            return Some("overtaken");
        }
        None
    }

    /// Whether the partition holds a completed op that can be illegal (a read, a cas, a
    /// dequeue, a lock op, a transaction), so that another `Order` changes the search.
    pub(super) fn orders_differ(&self) -> bool {
        self.completed_input.iter().any(|&i| {
            !matches!(
                self.inputs[i as usize],
                Input::Write(_) | Input::Append(_) | Input::Add(_) | Input::Enqueue(_)
            )
        })
    }

    /// Gives up the search, before dropping it: a race moves on to its next order. All of
    /// its memory goes back to the shared budget.
    pub(super) fn retire(&mut self) {
        self.done = true;
        self.memo = Memo::new();
        self.bytes = 0;
        self.memo_bytes = 0;
        self.report_bytes();
    }

    #[cfg(test)]
    pub(super) fn memo_len(&self) -> usize {
        self.memo.len()
    }

    /// Configurations visited so far.
    pub(super) fn configurations(&self) -> u64 {
        self.explored
    }

    /// Searches for at most `budget` more steps.
    pub(super) fn run(&mut self, budget: u64) -> PartResult {
        let verdict = if self.done {
            Verdict::Unknown("cancelled")
        } else {
            self.search(self.steps.saturating_add(budget))
        };
        if !matches!(verdict, Verdict::Paused) {
            self.done = true;
            if matches!(verdict, Verdict::Unknown(YIELDED)) {
                self.memo = Memo::new();
            }
            self.track_memo_bytes();
            self.report_bytes();
        }
        let configurations = self.configurations_before + self.explored;
        let verdict = match verdict {
            Verdict::Invalid(_) => Verdict::Invalid(Stuck {
                prefixes: std::mem::take(&mut self.stuck),
                states: std::mem::take(&mut self.states),
            }),
            other => other,
        };
        PartResult {
            verdict,
            configurations,
        }
    }

    /// Linearizes completed op `c` from list node `node` if that leads somewhere new.
    fn advance(&mut self, c: usize, next: u32, choice: Choice) -> bool {
        self.set_lin(c);
        let input = self.completed_input[c];
        // A write that serves the pending read leads straight to that read, and to the
        // dead-end check after it, which backjumps past hopeless orders; skipping it there
        // made a search of 20 concurrent writes try 2^15 orders instead.
        let serving =
            self.serving_read && matches!(choice, Choice::Node { rank, .. } if rank < self.serving);
        if (self.overwrites
            && !serving
            && self.is_write(input)
            && self.overwrites_last(input, Some(self.return_at[c])))
            || !self.memoize(next, c as u32)
        {
            self.clear_lin(c);
            return false;
        }
        self.stack.push(Frame {
            choice,
            state: self.state,
            op: self.completed[c],
        });
        self.unlink(self.call_node[c]);
        self.unlink(self.ret_node[c]);
        self.remaining -= 1;
        self.state = next;
        true
    }

    fn search(&mut self, step_limit: u64) -> Verdict {
        loop {
            if self.remaining == 0 {
                return Verdict::Valid;
            }
            self.steps += 1;
            if self.steps & (POLL_STEPS - 1) == 0 {
                if let Some(cause) = self.poll() {
                    return Verdict::Unknown(cause);
                }
            }
            if self.steps >= step_limit {
                return Verdict::Paused;
            }
            self.cursor = match self.cursor {
                Cursor::Fresh => self.take_forced_read(),
                Cursor::List {
                    rank,
                    ret_node,
                    late,
                } => self.walk_list(rank, ret_node, late),
                Cursor::Crashed {
                    ret_node,
                    from,
                    urgent,
                } => self.try_crashed(ret_node, from, urgent),
                Cursor::Backtrack => match self.backtrack() {
                    Some(c) => c,
                    None => {
                        return Verdict::Invalid(Stuck {
                            prefixes: Vec::new(),
                            states: Vec::new(),
                        })
                    }
                },
            };
        }
    }

    /// At a new configuration, a legal read-only candidate goes first, with no alternative:
    /// any linearization that places it later can place it here instead, because it changes
    /// no state and everything that must precede it in real time is already linearized.
    /// The same walk gathers the state-changing candidates, in case there is none.
    fn take_forced_read(&mut self) -> Cursor {
        let due = std::mem::replace(&mut self.supply_due, NONE);
        if due != NONE && self.supply_short(due) {
            return Cursor::Backtrack;
        }
        self.cands.clear();
        let mut entry = self.nodes[HEAD].next as usize;
        while self.nodes[entry].is_call {
            let node = self.nodes[entry];
            let c = node.op as usize;
            if !self.read_only[c] {
                self.cands.push(entry);
            } else if self
                .transition(self.state, self.completed_input[c])
                .is_some()
            {
                let state = self.state;
                return if self.advance(c, state, Choice::Forced(entry)) {
                    Cursor::Fresh
                } else {
                    Cursor::Backtrack
                };
            }
            entry = node.next as usize;
        }
        if let Some(dead_at) = self.growth.then(|| self.unreachable_read()).flatten() {
            self.note_stuck(dead_at);
            return Cursor::Backtrack;
        }
        if let Some(frames) = self.dead_end(entry) {
            self.note_stuck(entry);
            for _ in 0..frames {
                self.undo();
            }
            return Cursor::Backtrack;
        }
        self.order_candidates(entry);
        Cursor::List {
            rank: 0,
            ret_node: entry,
            late: false,
        }
    }

    /// While every op that can still go first only grows the state (appends, adds), every
    /// read must see an extension of the current state. Walks the list as far as that holds
    /// (at most `GROWTH_LOOKAHEAD` nodes) and returns the return node of a read that no
    /// order can satisfy: this configuration is dead.
    fn unreachable_read(&self) -> Option<usize> {
        let crashed_limit = self.first_non_growing_crashed();
        let state = &self.states[self.state as usize];
        let mut entry = self.nodes[HEAD].next as usize;
        for _ in 0..GROWTH_LOOKAHEAD {
            if entry == HEAD || self.nodes[entry].pos >= crashed_limit {
                return None;
            }
            let node = self.nodes[entry];
            let c = node.op as usize;
            let input = &self.inputs[self.completed_input[c] as usize];
            if node.is_call && !model::only_grows(input) {
                return None;
            }
            if !node.is_call && self.read_only[c] && !model::reachable_by_growth(state, input) {
                return Some(entry);
            }
            entry = node.next as usize;
        }
        None
    }

    /// The earliest invocation of an unused crashed op that does not only grow the state.
    fn first_non_growing_crashed(&self) -> usize {
        self.classes
            .iter()
            .zip(&self.used)
            .filter(|(class, _)| !model::only_grows(&self.inputs[class.input as usize]))
            .filter_map(|(class, &used)| class.members.get(used as usize).map(|m| m.0))
            .min()
            .unwrap_or(usize::MAX)
    }

    /// Fills `cands` with the configuration's state-changing candidates, in the order
    /// `order_candidates` gives; returns the first pending return's node.
    fn collect_candidates(&mut self) -> usize {
        self.cands.clear();
        let mut entry = self.nodes[HEAD].next as usize;
        while self.nodes[entry].is_call {
            let node = self.nodes[entry];
            if !self.read_only[node.op as usize] {
                self.cands.push(entry);
            }
            entry = node.next as usize;
        }
        self.order_candidates(entry);
        entry
    }

    /// Puts the candidates that serve the op that must return first (at `ret_node`) before
    /// the others: those in list order, the others by their return, earliest first. The
    /// order changes nothing about the verdict, only how soon a valid history's
    /// linearization is found. An op that need not go now is best placed just in time, and
    /// the op that must return soonest is the likeliest to be needed next; in call order a
    /// slow op invoked long ago would be tried first, and each wrong early placement could
    /// be patched up with crashed ops until they run out far later (on 50,000-op
    /// cas-register histories with 2% crashed ops, return order visits 2 to 6 times fewer
    /// configurations).
    fn order_candidates(&mut self, ret_node: usize) {
        self.serving = 0;
        if ret_node == HEAD {
            return;
        }
        let urgent = self.nodes[ret_node].op as usize;
        self.serving_read = self.read_only[urgent];
        let mut cands = std::mem::take(&mut self.cands);
        let mut front = 0;
        for k in 0..cands.len() {
            let c = self.nodes[cands[k]].op as usize;
            if self.serves(c, urgent) {
                cands[front..=k].rotate_right(1);
                front += 1;
            }
        }
        if self.order.serving_by_return {
            self.sort_by_return(&mut cands[..front]);
        }
        self.sort_by_return(&mut cands[front..]);
        self.cands = cands;
        self.serving = front;
    }

    /// Sorts candidate nodes by their op's return, earliest first.
    fn sort_by_return(&mut self, cands: &mut [usize]) {
        // Sorting packed integers rather than by a key looked up per comparison: this sort
        // runs at every configuration.
        let mut keys = std::mem::take(&mut self.sort_keys);
        keys.clear();
        keys.extend(
            cands
                .iter()
                .map(|&n| u64::from(self.return_at[self.nodes[n].op as usize]) << 32 | n as u64),
        );
        keys.sort_unstable();
        for (slot, key) in cands.iter_mut().zip(&keys) {
            *slot = (key & u64::from(u32::MAX)) as usize;
        }
        self.sort_keys = keys;
    }

    /// Whether linearizing `c` now helps the op `urgent` that must return first.
    fn serves(&mut self, c: usize, urgent: usize) -> bool {
        if c == urgent {
            return true;
        }
        if !self.read_only[urgent] && !self.order.serve_enabling {
            return false;
        }
        let input = self.completed_input[c];
        self.enables(input, urgent)
    }

    /// Whether `input` now takes the state to one where `urgent`, illegal now, is legal.
    fn enables(&mut self, input: u32, urgent: usize) -> bool {
        let wanted = self.completed_input[urgent];
        if self.transition(self.state, wanted).is_some() {
            return false;
        }
        match self.transition(self.state, input) {
            Some(next) => self.transition(next, wanted).is_some(),
            None => false,
        }
    }

    /// Tries the state-changing candidates from `rank` on. Read-only candidates are not among
    /// them: at a configuration without a forced read they are all illegal.
    fn walk_list(&mut self, rank: usize, ret_node: usize, late: bool) -> Cursor {
        let bound = self.nodes[ret_node].pos;
        // The serving candidates first, then the crashed classes that serve (a crashed
        // write is often what a read waits for), then the rest: the order finds a valid
        // history's linearization without exploring unrelated subtrees first.
        let end = if late { self.cands.len() } else { self.serving };
        for k in rank..end {
            let node = self.cands[k];
            let c = self.nodes[node].op as usize;
            if self.dominated(c, bound) {
                continue;
            }
            if let Some(next) = self.transition(self.state, self.completed_input[c]) {
                if self.absorbs_crashed(c, next) {
                    continue;
                }
                if self.advance(c, next, Choice::Node { node, rank: k }) {
                    let early = (self.return_at[c] as usize).saturating_sub(bound);
                    if early > self.supply_early_events {
                        self.supply_due = self.produces_of(self.completed_input[c]);
                    }
                    return Cursor::Fresh;
                }
            }
        }
        if !late {
            return Cursor::Crashed {
                ret_node,
                from: 0,
                urgent: true,
            };
        }
        // No completed op can go next past the first pending return.
        Cursor::Crashed {
            ret_node,
            from: 0,
            urgent: false,
        }
    }

    /// Whether another available crashed class reaches `next` too and is subsumed by
    /// `class`: using that one and keeping `class` for later covers every order this one
    /// would try.
    fn more_specific_available(&mut self, class: usize, next: u32, bound: usize) -> bool {
        for k in 0..self.subsumed[class].len() {
            let other = self.subsumed[class][k];
            let Some(&(invoke, _)) = self.classes[other].members.get(self.used[other] as usize)
            else {
                continue;
            };
            if invoke < bound
                && self.transition(self.state, self.classes[other].input) == Some(next)
            {
                return true;
            }
        }
        false
    }

    /// Whether a completed op that may go now (invoked before the first pending return, at
    /// `ret_node`) and is legal does what crashed class `class` would do here. Any
    /// linearization that places the crashed op now and that completed op later gives one
    /// that swaps them: the completed op goes now and reaches the same state, and the crashed
    /// op, which has no return, goes where the completed op stood and does the same there.
    /// So the crashed op is kept for later, where no completed op may be left to do its work:
    /// spent early on a step a completed op could take, it leaves a read hundreds of events
    /// on without its only writer, and the search finds out only after trying every order of
    /// the ops between (seed 22 of the 50,000-op cas-register benchmark).
    fn completed_does_it(&mut self, class: usize, ret_node: usize) -> bool {
        let width = self.inputs.len();
        let covers = class * width;
        let mut entry = self.nodes[HEAD].next as usize;
        while entry != ret_node && self.nodes[entry].is_call {
            let input = self.completed_input[self.nodes[entry].op as usize];
            if self.class_covers[covers + input as usize]
                && self.transition(self.state, input).is_some()
            {
                return true;
            }
            entry = self.nodes[entry].next as usize;
        }
        false
    }

    /// Whether the last move was a crashed op that completed op `c`, reaching `next`, makes
    /// pointless: `c` reaches `next` without it too, so the order without the crashed op
    /// (which may never happen) covers this one.
    fn absorbs_crashed(&mut self, c: usize, next: u32) -> bool {
        match self.stack.last() {
            Some(&Frame {
                choice: Choice::Crashed { .. },
                state: before,
                ..
            }) => self.transition(before, self.completed_input[c]) == Some(next),
            _ => false,
        }
    }

    /// Tries crashed classes from `from` on, in order: the first that is available (invoked
    /// before the pending return), legal and leads somewhere new.
    fn try_crashed(&mut self, ret_node: usize, from: usize, urgent: bool) -> Cursor {
        let bound = self.nodes[ret_node].pos;
        let waiting = self.nodes[ret_node].op as usize;
        // After a crashed op, a blind write would overwrite it: the order without the first
        // (which may never happen) covers that one.
        let chained = matches!(
            self.stack.last(),
            Some(Frame {
                choice: Choice::Crashed { .. },
                ..
            })
        );
        for class in from..self.classes.len() {
            if chained && self.blind[class] {
                continue;
            }
            let used = self.used[class] as usize;
            let Some(&(invoke, member)) = self.classes[class].members.get(used) else {
                continue;
            };
            if invoke >= bound {
                continue;
            }
            if urgent && (ret_node == HEAD || !self.enables(self.classes[class].input, waiting)) {
                continue;
            }
            let Some(next) = self.transition(self.state, self.classes[class].input) else {
                continue;
            };
            // A crashed op that changes nothing is never needed: it may as well never happen.
            if next == self.state
                || self.more_specific_available(class, next, bound)
                || (self.order.keep_crashed && self.completed_does_it(class, ret_node))
            {
                continue;
            }
            if self.overwrites
                && self.blind[class]
                && self.overwrites_last(self.classes[class].input, None)
            {
                continue;
            }
            self.set_used(class, used as u32 + 1);
            let exclude = self.last_completed();
            if self.memoize(next, exclude) {
                self.stack.push(Frame {
                    choice: Choice::Crashed {
                        class,
                        ret_node,
                        urgent,
                    },
                    state: self.state,
                    op: member,
                });
                self.state = next;
                return Cursor::Fresh;
            }
            self.set_used(class, used as u32);
        }
        if urgent {
            let ret_node = self.collect_candidates();
            return Cursor::List {
                rank: self.serving,
                ret_node,
                late: true,
            };
        }
        self.note_stuck(ret_node);
        Cursor::Backtrack
    }

    /// The completed op linearized last on the current path, or NONE.
    fn last_completed(&self) -> u32 {
        for f in self.stack.iter().rev() {
            if let Choice::Node { node, .. } | Choice::Forced(node) = f.choice {
                return self.nodes[node].op;
            }
        }
        NONE
    }

    /// Undoes the last choice, and returns it.
    fn undo(&mut self) -> Option<Frame> {
        let frame = self.stack.pop()?;
        self.state = frame.state;
        match frame.choice {
            Choice::Node { node, .. } | Choice::Forced(node) => {
                let c = self.nodes[node].op as usize;
                self.relink(self.ret_node[c]);
                self.relink(self.call_node[c]);
                self.clear_lin(c);
                self.remaining += 1;
            }
            Choice::Crashed { class, .. } => self.set_used(class, self.used[class] - 1),
        }
        Some(frame)
    }

    /// Undoes the last choice; where to go on from, or None when nothing is left.
    fn backtrack(&mut self) -> Option<Cursor> {
        let frame = self.undo()?;
        Some(match frame.choice {
            Choice::Node { rank, .. } => {
                let ret_node = self.collect_candidates();
                Cursor::List {
                    rank: rank + 1,
                    ret_node,
                    late: rank >= self.serving,
                }
            }
            // A forced read was the configuration's only move.
            Choice::Forced(_) => Cursor::Backtrack,
            Choice::Crashed {
                class,
                ret_node,
                urgent,
            } => Cursor::Crashed {
                ret_node,
                from: class + 1,
                urgent,
            },
        })
    }

    /// The input of the op a frame linearized.
    fn frame_input(&self, frame: &Frame) -> u32 {
        match frame.choice {
            Choice::Node { node, .. } | Choice::Forced(node) => {
                self.completed_input[self.nodes[node].op as usize]
            }
            Choice::Crashed { class, .. } => self.classes[class].input,
        }
    }

    /// Whether the configuration is dead because the op that must return first (at
    /// `ret_node`) is illegal in the current state and no value where it is legal can be
    /// reached with the ops that may still go before it: the completed ops invoked before
    /// that return and the crashed ops that are available, each applied any number of times
    /// (an over-approximation, so a value found unreachable is). If so, returns how many of
    /// the last choices lead only to dead configurations too: undoing them adds their op
    /// and their starting state to what is reachable, and the walk stops where that reaches
    /// a value where the op is legal. Registers only: there an op's result does not depend
    /// on the state it follows, so the values are few and the closure small.
    fn dead_end(&mut self, ret_node: usize) -> Option<usize> {
        if self.results.is_empty() || ret_node == HEAD {
            return None;
        }
        let blocked = self.completed_input[self.nodes[ret_node].op as usize];
        if self.transition(self.state, blocked).is_some() {
            return None;
        }
        let mut inputs = std::mem::take(&mut self.reach_inputs);
        let mut values = std::mem::take(&mut self.reach_values);
        inputs.clear();
        values.clear();
        let mut entry = self.nodes[HEAD].next as usize;
        while entry != ret_node {
            inputs.push(self.completed_input[self.nodes[entry].op as usize]);
            entry = self.nodes[entry].next as usize;
        }
        let bound = self.nodes[ret_node].pos;
        for (class, &used) in self.classes.iter().zip(&self.used) {
            if class
                .members
                .get(used as usize)
                .is_some_and(|m| m.0 < bound)
            {
                inputs.push(class.input);
            }
        }
        inputs.retain(|&i| self.results[i as usize] != NONE);
        inputs.sort_unstable();
        inputs.dedup();
        self.reach_round = self.reach_round.wrapping_add(1);
        if self.reach_round == 0 {
            // The marks wrapped around: clear them, so no old mark matches.
            self.reach_marks.fill(0);
            self.reach_round = 1;
        }
        self.reach_insert(&mut values, self.state);
        let mut work = REACH_WORK;
        let dead = self.reaches(&mut values, &inputs, blocked, &mut work) == Some(false);
        let mut live = self.stack.len();
        while dead && live > 0 {
            let frame = &self.stack[live - 1];
            let (input, before) = (self.frame_input(frame), frame.state);
            if self.results[input as usize] != NONE && !inputs.contains(&input) {
                inputs.push(input);
            }
            self.reach_insert(&mut values, before);
            // Out of work, the walk stops: the configurations passed are dead all the same.
            if self.reaches(&mut values, &inputs, blocked, &mut work) != Some(false) {
                break;
            }
            live -= 1;
        }
        self.reach_inputs = inputs;
        self.reach_values = values;
        dead.then(|| self.stack.len() - live)
    }

    /// The value `input` produces (see `produces`), NONE where it produces none or the model
    /// is not a register.
    fn produces_of(&self, input: u32) -> u32 {
        self.produces.get(input as usize).copied().unwrap_or(NONE)
    }

    /// Whether the ops ahead need value `v` written more often than the producers left can
    /// write it: then no order completes this configuration. A window is a stretch the
    /// linearization must cross from another value to `v`: from an op that leaves another
    /// value (or from now, if the register holds another) to a later op that needs `v`, real
    /// time forcing the one before the other. Windows that follow one another in real time
    /// each need a producer of their own (a write of `v`, a cas from another value to it,
    /// completed or crashed) that can go inside: invoked before the window's end returns,
    /// and not forced before the previous window's end. Matching windows in order, each to
    /// the fitting producer that returns first, finds a producer for every window if any
    /// assignment does. An op placed long before it had to be uses up a producer that may be
    /// needed hundreds of events later, where the search would only find out after trying
    /// every order of the ops between. Looks `SUPPLY_LOOKAHEAD` nodes and
    /// `SUPPLY_HORIZON_EVENTS` events ahead: windows past them are not counted, which only
    /// prunes less.
    fn supply_short(&mut self, v: u32) -> bool {
        let mut rets = std::mem::take(&mut self.supply_rets);
        let mut crashed = std::mem::take(&mut self.supply_crashed);
        rets.clear();
        crashed.clear();
        let first = self.nodes[self.nodes[HEAD].next as usize].pos;
        let horizon = first.saturating_add(SUPPLY_HORIZON_EVENTS);
        for (class, &used) in self.classes.iter().zip(&self.used) {
            if self.produces[class.input as usize] == v {
                let left = &class.members[used as usize..];
                let near = left.iter().take_while(|m| m.0 < horizon);
                crashed.extend(near.map(|m| m.0 as u32));
            }
        }
        crashed.sort_unstable();
        let mut next_crashed = 0;
        // Crashed producers invoked so far: they never return, so they fit every window
        // from here on, and go last.
        let mut crashed_ready = 0usize;
        // Whether the next window's start is here already: the register holds another value.
        let mut open = self.state != v;
        // The earliest return of an op leaving another value invoked after the last window.
        let mut open_ret = u32::MAX;
        let (mut last_end, mut last_end_invoke) = (0, 0);
        let mut short = false;
        let mut entry = self.nodes[HEAD].next as usize;
        for _ in 0..SUPPLY_LOOKAHEAD {
            if entry == HEAD {
                break;
            }
            let node = self.nodes[entry];
            if node.pos >= horizon {
                // Crashed producers past the horizon were not gathered.
                break;
            }
            let pos = node.pos as u32;
            while crashed.get(next_crashed).is_some_and(|&i| i < pos) {
                crashed_ready += 1;
                next_crashed += 1;
            }
            let c = node.op as usize;
            let input = self.completed_input[c] as usize;
            entry = node.next as usize;
            if node.is_call {
                if self.produces[input] == v {
                    rets.push(self.return_at[c]);
                }
                continue;
            }
            let leaves_other = self.leaves[input] != NONE && self.leaves[input] != v;
            if (leaves_other || self.not_equal[input] == v) && self.invoke_at[c] > last_end {
                open_ret = open_ret.min(pos);
            }
            if self.needs[input] != v || !(open || open_ret < self.invoke_at[c]) {
                continue;
            }
            // A window ends here: the producer returning first that is not forced before the
            // last window's end.
            rets.retain(|&r| r > last_end_invoke);
            if let Some(k) = (0..rets.len()).min_by_key(|&k| rets[k]) {
                rets.swap_remove(k);
            } else if crashed_ready > 0 {
                crashed_ready -= 1;
            } else {
                short = true;
                break;
            }
            (last_end, last_end_invoke) = (pos, self.invoke_at[c]);
            open = false;
            open_ret = u32::MAX;
        }
        self.supply_rets = rets;
        self.supply_crashed = crashed;
        short
    }

    /// Grows `values` towards every value `inputs` reach from it; whether one of them is a
    /// state where input `blocked` is legal. None once `work` transitions have been tried,
    /// which registers with many distinct values could need: the check only prunes, so
    /// giving up is always safe.
    fn reaches(
        &mut self,
        values: &mut Vec<u32>,
        inputs: &[u32],
        blocked: u32,
        work: &mut usize,
    ) -> Option<bool> {
        let mut checked = 0;
        loop {
            for &value in &values[checked..] {
                if self.transition(value, blocked).is_some() {
                    return Some(true);
                }
            }
            checked = values.len();
            let mut grown = false;
            for &input in inputs {
                // A write leaves its value whatever the state: no need to try each one.
                let from = if matches!(self.inputs[input as usize], Input::Write(_)) {
                    0..1
                } else {
                    0..values.len()
                };
                for k in from {
                    *work = work.checked_sub(1)?;
                    if let Some(to) = self.transition(values[k], input) {
                        if self.reach_insert(values, to) {
                            grown = true;
                        }
                    }
                }
            }
            if !grown {
                return Some(false);
            }
        }
    }

    /// Adds `value` to `values` unless it is there (marked in `reach_marks` with the current
    /// `reach_round`); whether it was added.
    fn reach_insert(&mut self, values: &mut Vec<u32>, value: u32) -> bool {
        let v = value as usize;
        if self.reach_marks.len() <= v {
            self.reach_marks.resize(self.states.len().max(v + 1), 0);
        }
        if self.reach_marks[v] == self.reach_round {
            return false;
        }
        self.reach_marks[v] = self.reach_round;
        values.push(value);
        true
    }

    /// Keeps the furthest points where the search got stuck, for the explanation: those whose
    /// blocking return comes latest in the history (as Knossos reports the event at which
    /// every configuration dies), then the deepest.
    fn note_stuck(&mut self, ret_node: usize) {
        let progress = (
            self.nodes[ret_node].pos,
            self.completed.len() - self.remaining,
        );
        if progress < self.best_progress {
            return;
        }
        if progress > self.best_progress {
            self.best_progress = progress;
            self.stuck.clear();
        }
        let blocked = self.completed[self.nodes[ret_node].op as usize];
        let last = self.stack.last().map(|f| f.op);
        let state = self.state;
        let seen = self.stuck.iter().any(|p| {
            p.blocked == blocked && p.state == state && p.order_tail.last().copied() == last
        });
        if seen || self.stuck.len() >= self.shared.max_prefixes {
            return;
        }
        let tail_from = self.stack.len().saturating_sub(PREFIX_TAIL);
        self.stuck.push(StuckPrefix {
            blocked,
            state,
            order_tail: self.stack[tail_from..].iter().map(|f| f.op).collect(),
            elided: tail_from,
        });
    }
}

/// What tests of searches share.
#[cfg(test)]
pub(super) mod testing {
    use super::{PartResult, Verdict};
    use crate::history::Format;
    use crate::linearizable::compile::{self, Compiled};
    use crate::linearizable::Semantics;
    use crate::model::ModelKind;
    use crate::synth::{register_history, RegisterParams};

    /// A synthetic cas-register history, compiled: one partition.
    pub(in crate::linearizable) fn compiled(p: &RegisterParams) -> Compiled {
        let h = register_history(p).history;
        let sem = Semantics::for_format(Format::JsonLines);
        let compiled = compile::compile(&h, ModelKind::CasRegister, &sem).unwrap();
        assert_eq!(compiled.partitions.len(), 1);
        compiled
    }

    /// Whether a search that reached a verdict found the history valid.
    pub(in crate::linearizable) fn valid(r: &PartResult) -> bool {
        match r.verdict {
            Verdict::Valid => true,
            Verdict::Invalid(_) => false,
            _ => panic!("no verdict"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{compiled, valid};
    use super::*;
    use crate::synth::{Mode, RegisterParams};

    /// (valid, configurations) of a one-partition check with or without hidden-write pruning.
    fn search(p: &RegisterParams, hidden_writes: bool) -> (bool, u64) {
        search_with(p, |s| s.hidden_writes = hidden_writes)
    }

    /// (valid, configurations) of a one-partition check, set up by `tune`.
    fn search_with(p: &RegisterParams, tune: impl FnOnce(&mut Search)) -> (bool, u64) {
        let compiled = compiled(p);
        let cancel = AtomicBool::new(false);
        let shared = Shared::unlimited(&cancel);
        let part = &compiled.partitions[0];
        let mut s = Search::new(part, &compiled.initial, ModelKind::CasRegister, &shared);
        tune(&mut s);
        let r = s.run(u64::MAX);
        (valid(&r), r.configurations)
    }

    /// The supply check only prunes configurations no order completes: run after every op
    /// (the most it can prune), it keeps every verdict of the search without it, on valid
    /// histories and on ones with planted stale reads, with crashed and failed ops.
    #[test]
    fn the_supply_check_keeps_every_verdict() {
        let mut invalid = 0;
        for seed in 1..=60 {
            let mut p = RegisterParams {
                crash_rate: 0.05,
                fail_rate: 0.05,
                values: 2 + (seed % 4) as u32,
                ..RegisterParams::new(300, 3 + (seed % 6) as usize, seed)
            };
            if seed % 2 == 0 {
                p.mode = Mode::StaleReads { rate: 0.01 };
            }
            let (with, _) = search_with(&p, |s| s.supply_early_events = 0);
            let (without, _) = search_with(&p, |s| s.supply_early_events = usize::MAX);
            assert_eq!(with, without, "seed {seed}: the verdict changed");
            invalid += usize::from(!with);
        }
        assert!(
            invalid > 10,
            "only {invalid} invalid histories: the test lost its teeth"
        );
    }

    /// On histories where a long op can be placed far too early, the check ends the search
    /// of the orders after it long before the read that needed it is reached.
    #[test]
    fn the_supply_check_visits_fewer_configurations() {
        assert_prunes(|s| s.supply_early_events = usize::MAX);
    }

    /// On six valid 4,000-op, 30-client histories with 2% crashed ops, the search visits
    /// fewer configurations in all than the search that `without` sets up.
    fn assert_prunes(without: impl Fn(&mut Search)) {
        assert_prunes_in(Order::PRIMARY, without);
    }

    /// `assert_prunes` with the search in `order`.
    fn assert_prunes_in(order: Order, without: impl Fn(&mut Search)) {
        let (mut pruned, mut plain) = (0, 0);
        for seed in 1..=6 {
            let p = RegisterParams {
                crash_rate: 0.02,
                ..RegisterParams::new(4000, 30, seed)
            };
            let (valid, with_count) = search_with(&p, |s| s.order = order);
            let (valid_without, without_count) = search_with(&p, |s| {
                s.order = order;
                without(s);
            });
            assert!(valid && valid_without, "seed {seed}");
            pruned += with_count;
            plain += without_count;
        }
        assert!(pruned < plain, "{pruned} vs {plain} configurations");
    }

    /// The rival's last order.
    const RIVAL: Order = crate::linearizable::partitions::RIVAL_ORDERS[1].0;

    /// Checks 600 small histories (valid ones and ones with planted stale reads, with failed
    /// ops and with crashed ops at `crash_rates` in turn) in the primary's order and the
    /// rival's, each with a pruning rule on and off (`rule`), and asserts the same verdict.
    /// Returns (invalid verdicts, searches the rule pruned).
    fn rule_keeps_verdicts(
        crash_rates: [f64; 4],
        rule: impl Fn(&mut Search, bool),
    ) -> (usize, usize) {
        let (mut invalid, mut fewer) = (0, 0);
        for seed in 1..=600 {
            let mut p = RegisterParams {
                crash_rate: crash_rates[(seed % 4) as usize],
                fail_rate: [0.0, 0.05, 0.1][(seed % 3) as usize],
                values: 2 + (seed % 5) as u32,
                ..RegisterParams::new(
                    20 + (seed % 11) as usize * 40,
                    2 + (seed % 13) as usize,
                    seed,
                )
            };
            if seed % 2 == 0 {
                p.mode = Mode::StaleReads { rate: 0.01 };
            }
            for order in [Order::PRIMARY, RIVAL] {
                let (with, pruned) = search_with(&p, |s| {
                    s.order = order;
                    rule(s, true);
                });
                let (without, plain) = search_with(&p, |s| {
                    s.order = order;
                    rule(s, false);
                });
                assert_eq!(with, without, "seed {seed}, {order:?}: the verdict changed");
                invalid += usize::from(!with);
                fewer += usize::from(pruned < plain);
            }
        }
        (invalid, fewer)
    }

    /// Skipping a write that would overwrite a completed one placed just before it keeps
    /// every verdict, with and without crashed ops; and it does skip.
    #[test]
    fn skipping_overwriting_writes_keeps_every_verdict() {
        let (invalid, fewer) =
            rule_keeps_verdicts([0.0, 0.02, 0.05, 0.1], |s, on| s.overwrites = on);
        assert!(
            invalid > 400 && fewer > 50,
            "{invalid} invalid, {fewer} searches pruned: the test lost its teeth"
        );
    }

    /// Keeping a crashed op for later where a completed op does its work keeps every verdict,
    /// in either order (the primary's does not keep them, but the rule holds in it too);
    /// and it does prune.
    #[test]
    fn keeping_crashed_ops_for_later_keeps_every_verdict() {
        let (invalid, fewer) =
            rule_keeps_verdicts([0.02, 0.05, 0.1, 0.2], |s, on| s.order.keep_crashed = on);
        assert!(
            invalid > 400 && fewer > 100,
            "{invalid} invalid, {fewer} searches pruned: the test lost its teeth"
        );
    }

    /// In the rival's order, on histories with long writes and crashed ops, keeping crashed
    /// ops for later visits fewer configurations.
    #[test]
    fn keeping_crashed_ops_for_later_visits_fewer_configurations() {
        assert_prunes_in(RIVAL, |s| s.order.keep_crashed = false);
    }

    /// Two writes hidden before the same later one: `w1` (returning last) and `w2` must both
    /// go before `w3`, the value read next. Skipping `w2` after `w1` as well as `w1` after
    /// `w2`, each for the sibling that places the other first, would skip every order.
    #[test]
    fn writes_hidden_before_the_same_write_keep_an_order() {
        let p = RegisterParams {
            values: 4,
            ..RegisterParams::new(16, 5, 5483)
        };
        assert_eq!(
            search_with(&p, |_| {}),
            search_with(&p, |s| s.overwrites = false)
        );
        let (valid, _) = search_with(&p, |_| {});
        assert!(valid, "a valid history was found invalid");
    }

    /// On histories with long writes, skipping overwriting writes visits fewer
    /// configurations.
    #[test]
    fn skipping_overwriting_writes_visits_fewer_configurations() {
        assert_prunes(|s| s.overwrites = false);
    }

    #[test]
    fn hidden_write_pruning_keeps_verdicts_and_visits_fewer_configurations() {
        let (mut with, mut without) = (0, 0);
        for seed in 1..=6 {
            let mut p = RegisterParams {
                crash_rate: 0.02,
                ..RegisterParams::new(4000, 30, seed)
            };
            if seed % 3 == 0 {
                p.mode = Mode::StaleReads { rate: 0.001 };
            }
            let (valid, pruned) = search(&p, true);
            let (valid_without, plain) = search(&p, false);
            assert_eq!(valid, valid_without, "seed {seed}: the verdict changed");
            assert_eq!(valid, seed % 3 != 0, "seed {seed}");
            with += pruned;
            without += plain;
        }
        // Long writes overlap in every one of these histories: the pruning must show.
        assert!(
            with * 10 < without * 9,
            "{with} vs {without} configurations"
        );
    }
}
