//! Generators: which operation to invoke next, when, and on which worker.
//!
//! As in Jepsen, a generator is asked for its next operation given a context (the time and
//! which workers are free) and answers with an invocation, "pending" (nothing yet: ask again
//! later or when something completes) or "exhausted". It is told every completion, so it can
//! react (`until_ok`). Generators are pure and synchronous: all randomness comes from the
//! run's seeded [`Rng`] and all time from the context, so a schedule replays exactly from its
//! seed, and a simulated clock tests them without sleeping.

use checkers::history::{OpType, Value};
use checkers::rng::Rng;

/// A worker: one of the client threads, or the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Thread {
    Client(u32),
    Nemesis,
}

/// What a generator knows when asked.
#[derive(Clone, Debug)]
pub struct Context {
    /// Nanoseconds since the test started.
    pub time_ns: u64,
    /// Workers with no operation in flight, sorted.
    pub free: Vec<Thread>,
    /// All workers, sorted.
    pub threads: Vec<Thread>,
}

impl Context {
    fn free_client(&self) -> Option<Thread> {
        self.free
            .iter()
            .copied()
            .find(|t| matches!(t, Thread::Client(_)))
    }

    fn all_free(&self, within: impl Fn(Thread) -> bool) -> bool {
        self.threads
            .iter()
            .filter(|&&t| within(t))
            .all(|t| self.free.contains(t))
    }
}

/// An operation to invoke at `time_ns` (not before) on `thread`.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub time_ns: u64,
    pub thread: Thread,
    pub f: String,
    pub value: Value,
}

/// A generator's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Op(Invocation),
    /// Nothing now; ask again at `until_ns` or when an operation completes.
    Pending {
        until_ns: Option<u64>,
    },
    Exhausted,
}

/// A completion, as generators see it.
#[derive(Clone, Debug)]
pub struct Completion {
    pub thread: Thread,
    pub op_type: OpType,
    pub f: String,
}

pub trait Generator: Send {
    /// The next operation. Called again after an `Op` is taken, and whenever the context
    /// changes after a `Pending`.
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next;

    /// An operation this generator produced (or any, for wrappers) completed.
    fn completed(&mut self, _c: &Completion) {}
}

pub type Gen = Box<dyn Generator>;

/// Endless operations from `make`, each on the first free client.
pub fn from_fn<F>(make: F) -> Gen
where
    F: FnMut(&mut Rng) -> (String, Value) + Send + 'static,
{
    struct FromFn<F>(F);
    impl<F: FnMut(&mut Rng) -> (String, Value) + Send> Generator for FromFn<F> {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            match ctx.free_client() {
                Some(thread) => {
                    let (f, value) = (self.0)(rng);
                    Next::Op(Invocation {
                        time_ns: ctx.time_ns,
                        thread,
                        f,
                        value,
                    })
                }
                None => Next::Pending { until_ns: None },
            }
        }
    }
    Box::new(FromFn(make))
}

/// A fixed list of operations for the nemesis, one after another.
pub fn nemesis_script(ops: Vec<(String, Value)>) -> Gen {
    struct Script(std::collections::VecDeque<(String, Value)>);
    impl Generator for Script {
        fn next(&mut self, ctx: &Context, _rng: &mut Rng) -> Next {
            if self.0.is_empty() {
                return Next::Exhausted;
            }
            if !ctx.free.contains(&Thread::Nemesis) {
                return Next::Pending { until_ns: None };
            }
            let (f, value) = self.0.pop_front().expect("not empty");
            Next::Op(Invocation {
                time_ns: ctx.time_ns,
                thread: Thread::Nemesis,
                f,
                value,
            })
        }
    }
    Box::new(Script(ops.into()))
}

/// Picks one of `gens` at random for each operation (weights equal); exhausted ones drop out.
pub fn mix(gens: Vec<Gen>) -> Gen {
    struct Mix(Vec<Gen>);
    impl Generator for Mix {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            while !self.0.is_empty() {
                let i = rng.below(self.0.len() as u64) as usize;
                match self.0[i].next(ctx, rng) {
                    Next::Exhausted => {
                        self.0.remove(i);
                    }
                    other => return other,
                }
            }
            Next::Exhausted
        }
        fn completed(&mut self, c: &Completion) {
            self.0.iter_mut().for_each(|g| g.completed(c));
        }
    }
    Box::new(Mix(gens))
}

/// Spaces operations out: on average one per `mean_interval_ns`, each delay drawn uniformly
/// from 0 to twice the mean (Jepsen's stagger).
/// How far behind its schedule [`stagger`] may fall and still catch up.
pub const STAGGER_MAX_LAG_NS: u64 = 100_000_000;

pub fn stagger(mean_interval_ns: u64, inner: Gen) -> Gen {
    struct Stagger {
        mean_ns: u64,
        next_at_ns: Option<u64>,
        inner: Gen,
    }
    impl Generator for Stagger {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            let at = *self.next_at_ns.get_or_insert(ctx.time_ns);
            if ctx.time_ns < at {
                return Next::Pending { until_ns: Some(at) };
            }
            match self.inner.next(ctx, rng) {
                Next::Op(op) => {
                    let delay = rng.below(2 * self.mean_ns + 1);
                    // Scheduled from when this op was due, not from when it went out: the
                    // runner wakes a little late (timers are coarse), and counting from the
                    // wake-up would lose that much every op and offer far less than the rate
                    // at a few hundred ops/s. Behind by more than STAGGER_MAX_LAG_NS (every
                    // worker busy), it starts afresh rather than burst to catch up.
                    let base = if ctx.time_ns > at.saturating_add(STAGGER_MAX_LAG_NS) {
                        ctx.time_ns
                    } else {
                        at
                    };
                    self.next_at_ns = Some(base + delay);
                    Next::Op(op)
                }
                other => other,
            }
        }
        fn completed(&mut self, c: &Completion) {
            self.inner.completed(c);
        }
    }
    Box::new(Stagger {
        mean_ns: mean_interval_ns,
        next_at_ns: None,
        inner,
    })
}

/// Stops `inner` `limit_ns` after it is first asked.
pub fn time_limit(limit_ns: u64, inner: Gen) -> Gen {
    struct TimeLimit {
        limit_ns: u64,
        deadline_ns: Option<u64>,
        inner: Gen,
    }
    impl Generator for TimeLimit {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            let deadline = *self
                .deadline_ns
                .get_or_insert(ctx.time_ns.saturating_add(self.limit_ns));
            if ctx.time_ns >= deadline {
                return Next::Exhausted;
            }
            match self.inner.next(ctx, rng) {
                Next::Pending { until_ns } => Next::Pending {
                    until_ns: Some(until_ns.map_or(deadline, |u| u.min(deadline))),
                },
                Next::Op(op) if op.time_ns >= deadline => Next::Exhausted,
                other => other,
            }
        }
        fn completed(&mut self, c: &Completion) {
            self.inner.completed(c);
        }
    }
    Box::new(TimeLimit {
        limit_ns,
        deadline_ns: None,
        inner,
    })
}

/// At most `n` operations from `inner`.
pub fn limit(n: u64, inner: Gen) -> Gen {
    struct Limit(u64, Gen);
    impl Generator for Limit {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            if self.0 == 0 {
                return Next::Exhausted;
            }
            let next = self.1.next(ctx, rng);
            if matches!(next, Next::Op(_)) {
                self.0 -= 1;
            }
            next
        }
        fn completed(&mut self, c: &Completion) {
            self.1.completed(c);
        }
    }
    Box::new(Limit(n, inner))
}

/// Runs `phases` one after another; a phase starts only once the previous one is exhausted
/// and every worker is free again, so phases never overlap (Jepsen's `phases`).
pub fn phases(phases: Vec<Gen>) -> Gen {
    struct Phases(std::collections::VecDeque<Gen>);
    impl Generator for Phases {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            loop {
                let Some(current) = self.0.front_mut() else {
                    return Next::Exhausted;
                };
                match current.next(ctx, rng) {
                    Next::Exhausted => {
                        self.0.pop_front();
                        if !ctx.all_free(|_| true) {
                            // Wait for the finished phase's ops before starting the next.
                            self.0.push_front(barrier());
                        }
                    }
                    other => return other,
                }
            }
        }
        fn completed(&mut self, c: &Completion) {
            if let Some(g) = self.0.front_mut() {
                g.completed(c);
            }
        }
    }
    Box::new(Phases(phases.into()))
}

/// Pending until every worker is free, then exhausted.
fn barrier() -> Gen {
    struct Barrier;
    impl Generator for Barrier {
        fn next(&mut self, ctx: &Context, _rng: &mut Rng) -> Next {
            if ctx.all_free(|_| true) {
                Next::Exhausted
            } else {
                Next::Pending { until_ns: None }
            }
        }
    }
    Box::new(Barrier)
}

/// What several generators asked in turn answered, when none had an op: pending if any is,
/// waking at the earliest time any asked for; exhausted if all are.
#[derive(Default)]
struct Waits {
    pending: bool,
    wake_ns: Option<u64>,
}

impl Waits {
    fn pending(&mut self, until_ns: Option<u64>) {
        self.pending = true;
        self.wake_ns = match (self.wake_ns, until_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    fn answer(self) -> Next {
        if self.pending {
            Next::Pending {
                until_ns: self.wake_ns,
            }
        } else {
            Next::Exhausted
        }
    }
}

/// Runs the client and nemesis schedules side by side: whichever has an operation now goes
/// first (the nemesis on ties); exhausted when both are.
pub fn clients_and_nemesis(clients: Gen, nemesis: Gen) -> Gen {
    struct Both {
        clients: Option<Gen>,
        nemesis: Option<Gen>,
    }
    impl Generator for Both {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            let mut waits = Waits::default();
            for slot in [&mut self.nemesis, &mut self.clients] {
                let Some(g) = slot.as_mut() else { continue };
                match g.next(ctx, rng) {
                    Next::Op(op) => return Next::Op(op),
                    Next::Pending { until_ns } => waits.pending(until_ns),
                    Next::Exhausted => *slot = None,
                }
            }
            waits.answer()
        }
        fn completed(&mut self, c: &Completion) {
            let slot = match c.thread {
                Thread::Nemesis => &mut self.nemesis,
                Thread::Client(_) => &mut self.clients,
            };
            if let Some(g) = slot {
                g.completed(c);
            }
        }
    }
    Box::new(Both {
        clients: Some(clients),
        nemesis: Some(nemesis),
    })
}

/// Repeats `inner`'s operations until one of them completes `ok` (e.g. a final read that
/// must succeed), then is exhausted. Completions of other generators' ops do not count: a
/// worker has one op in flight, so the workers it dispatched to say which are its own.
pub fn until_ok(inner: Gen) -> Gen {
    struct UntilOk {
        inner: Gen,
        in_flight: Vec<Thread>,
        done: bool,
    }
    impl Generator for UntilOk {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            if self.done {
                return Next::Exhausted;
            }
            let next = self.inner.next(ctx, rng);
            if let Next::Op(op) = &next {
                self.in_flight.push(op.thread);
            }
            next
        }
        fn completed(&mut self, c: &Completion) {
            if let Some(i) = self.in_flight.iter().position(|&t| t == c.thread) {
                self.in_flight.swap_remove(i);
                self.done |= c.op_type == OpType::Ok;
            }
            self.inner.completed(c);
        }
    }
    Box::new(UntilOk {
        inner,
        in_flight: Vec::new(),
        done: false,
    })
}

/// A generator of its own for every client thread, made by `make(thread)` on first use
/// (Jepsen's `each-thread`): per-thread schedules, such as a final read by every worker, or
/// a register workload where each worker owns its keys. Each copy only ever sees its own
/// thread as free; exhausted when every copy is.
pub fn each_thread<F>(make: F) -> Gen
where
    F: Fn(Thread) -> Gen + Send + 'static,
{
    struct EachThread<F> {
        make: F,
        gens: std::collections::BTreeMap<Thread, Option<Gen>>,
    }
    impl<F: Fn(Thread) -> Gen + Send> Generator for EachThread<F> {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            let mut waits = Waits::default();
            for &thread in ctx
                .threads
                .iter()
                .filter(|t| matches!(t, Thread::Client(_)))
            {
                let slot = self
                    .gens
                    .entry(thread)
                    .or_insert_with(|| Some((self.make)(thread)));
                let Some(gen) = slot else { continue };
                let own = Context {
                    time_ns: ctx.time_ns,
                    free: ctx.free.iter().copied().filter(|t| *t == thread).collect(),
                    threads: vec![thread],
                };
                match gen.next(&own, rng) {
                    Next::Op(op) if op.thread == thread => return Next::Op(op),
                    Next::Op(op) => {
                        panic!("each_thread: a copy for {thread:?} chose {:?}", op.thread)
                    }
                    Next::Pending { until_ns } => waits.pending(until_ns),
                    Next::Exhausted => *slot = None,
                }
            }
            waits.answer()
        }
        fn completed(&mut self, c: &Completion) {
            if let Some(Some(gen)) = self.gens.get_mut(&c.thread) {
                gen.completed(c);
            }
        }
    }
    Box::new(EachThread {
        make,
        gens: std::collections::BTreeMap::new(),
    })
}

/// `inner`'s operations one at a time: the next only once the last completed (a setup
/// that would conflict with itself, queries that need asking once).
pub fn one_at_a_time(inner: Gen) -> Gen {
    struct OneAtATime {
        in_flight: Option<Thread>,
        inner: Gen,
    }
    impl Generator for OneAtATime {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            if self.in_flight.is_some() {
                return Next::Pending { until_ns: None };
            }
            let next = self.inner.next(ctx, rng);
            if let Next::Op(op) = &next {
                self.in_flight = Some(op.thread);
            }
            next
        }
        fn completed(&mut self, c: &Completion) {
            if self.in_flight == Some(c.thread) {
                self.in_flight = None;
            }
            self.inner.completed(c);
        }
    }
    Box::new(OneAtATime {
        in_flight: None,
        inner,
    })
}

/// `inner` on a clock that starts when it is first asked, for schedules written from time
/// zero (the nemesis's) that may run after an earlier phase.
pub fn relative(inner: Gen) -> Gen {
    struct Relative {
        start_ns: Option<u64>,
        inner: Gen,
    }
    impl Generator for Relative {
        fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next {
            let start = *self.start_ns.get_or_insert(ctx.time_ns);
            let shifted = Context {
                time_ns: ctx.time_ns - start,
                ..ctx.clone()
            };
            match self.inner.next(&shifted, rng) {
                Next::Op(mut op) => {
                    op.time_ns = op.time_ns.saturating_add(start);
                    Next::Op(op)
                }
                Next::Pending { until_ns } => Next::Pending {
                    until_ns: until_ns.map(|u| u.saturating_add(start)),
                },
                Next::Exhausted => Next::Exhausted,
            }
        }
        fn completed(&mut self, c: &Completion) {
            self.inner.completed(c);
        }
    }
    Box::new(Relative {
        start_ns: None,
        inner,
    })
}

/// Nothing for `duration_ns` after it is first asked, then exhausted: a pause between phases.
pub fn sleep(duration_ns: u64) -> Gen {
    struct Sleep(u64, Option<u64>);
    impl Generator for Sleep {
        fn next(&mut self, ctx: &Context, _rng: &mut Rng) -> Next {
            let until = *self.1.get_or_insert(ctx.time_ns.saturating_add(self.0));
            if ctx.time_ns >= until {
                Next::Exhausted
            } else {
                Next::Pending {
                    until_ns: Some(until),
                }
            }
        }
    }
    Box::new(Sleep(duration_ns, None))
}

#[cfg(test)]
mod tests;
