//! The runner: drives clients from a generator with concurrent workers and records every
//! invocation and completion in the history as it happens.
//!
//! One scheduler task owns the generator, the seeded RNG and the history writer; each worker
//! task owns one client and runs one operation at a time. Jepsen's rules hold: a worker's
//! process id is retired when its operation ends `info` (the worker goes on under
//! `id + concurrency`), and an operation that outlives its timeout is recorded as `info`,
//! never `fail`, because it may still take effect.

use crate::generator::{Completion, Context, Gen, Invocation, Next, Thread};
use crate::store::HistoryWriter;
use checkers::history::{Op, OpType, Process, Value};
use checkers::rng::Rng;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use workloads::client::{Client, Outcome};

/// How a run is driven.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub concurrency: u32,
    pub seed: u64,
    pub op_timeout: Duration,
}

/// What a run recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    pub invocations: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

struct Job {
    f: String,
    value: Value,
}

struct Done {
    worker: Thread,
    outcome: Outcome,
}

/// What a completion records besides its type and value.
struct Completed {
    error: Option<Value>,
    node: Option<String>,
    extra: serde_json::Map<String, Value>,
}

/// Live counters for the progress line, updated as events are recorded.
#[derive(Debug, Default)]
pub struct Live {
    pub invocations: AtomicU64,
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
    /// Faults now in effect, as the nemesis reports them.
    pub faults: Mutex<BTreeSet<String>>,
}

/// What a run may have besides clients.
pub struct Hooks<N> {
    /// The worker for `Thread::Nemesis` ops, recorded as process `nemesis`.
    pub nemesis: Option<N>,
    /// Set to true to stop: no new operations start, those in flight finish (or time out).
    pub stop: Option<watch::Receiver<bool>>,
    pub live: Arc<Live>,
    /// Time zero of the history's `time` field, shared by runs that append to one history.
    pub epoch: Instant,
    /// The nemesis's timeout per operation (restarting a cluster member can take a while).
    pub nemesis_timeout: Duration,
}

impl<N> Hooks<N> {
    pub fn new(nemesis: Option<N>) -> Hooks<N> {
        Hooks {
            nemesis,
            stop: None,
            live: Arc::default(),
            epoch: Instant::now(),
            nemesis_timeout: Duration::from_secs(120),
        }
    }
}

/// A nemesis that never runs: the type of `Hooks::nemesis` for runs without one.
pub struct NoNemesis;

impl Client for NoNemesis {
    async fn invoke(&mut self, _f: &str, value: &Value) -> Outcome {
        Outcome::fail(value.clone(), "no nemesis")
    }
}

/// Runs `gen` to exhaustion against clients made by `make_client(worker)`, appending every
/// event to `history`. Must be called inside a tokio runtime.
pub async fn run<C, M>(
    config: &RunConfig,
    gen: Gen,
    make_client: M,
    history: &mut HistoryWriter,
) -> anyhow::Result<RunSummary>
where
    C: Client,
    M: Fn(u32) -> C,
{
    run_with(
        config,
        gen,
        make_client,
        Hooks::<NoNemesis>::new(None),
        history,
    )
    .await
}

/// [`run`] with a nemesis, a stop signal and live counters. History indices continue from
/// what `history` already holds.
pub async fn run_with<C, M, N>(
    config: &RunConfig,
    mut gen: Gen,
    make_client: M,
    hooks: Hooks<N>,
    history: &mut HistoryWriter,
) -> anyhow::Result<RunSummary>
where
    C: Client,
    M: Fn(u32) -> C,
    N: Client,
{
    assert!(config.concurrency > 0, "concurrency must be at least 1");
    let n = config.concurrency;
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(n as usize + 1);
    let mut jobs = Vec::with_capacity(n as usize);
    for worker in 0..n {
        let (tx, rx) = mpsc::channel::<Job>(1);
        jobs.push(tx);
        tokio::spawn(work(
            Thread::Client(worker),
            make_client(worker),
            rx,
            done_tx.clone(),
            config.op_timeout,
        ));
    }
    let nemesis_jobs = hooks.nemesis.map(|nemesis| {
        let (tx, rx) = mpsc::channel::<Job>(1);
        tokio::spawn(work(
            Thread::Nemesis,
            nemesis,
            rx,
            done_tx.clone(),
            hooks.nemesis_timeout,
        ));
        tx
    });
    drop(done_tx);
    let mut stop = hooks.stop;
    let mut sched = Scheduler::new(
        n,
        config.seed,
        nemesis_jobs.is_some(),
        hooks.live,
        hooks.epoch,
    );
    sched.index = history.written();
    loop {
        if stop.as_ref().is_some_and(|s| *s.borrow()) {
            gen = Box::new(Drained);
        }
        let ctx = sched.context();
        match gen.next(&ctx, &mut sched.rng) {
            Next::Op(inv) => {
                let to = match inv.thread {
                    Thread::Client(w) => &jobs[w as usize],
                    Thread::Nemesis => nemesis_jobs.as_ref().ok_or_else(|| {
                        anyhow::anyhow!("a nemesis op, but this run has no nemesis")
                    })?,
                };
                sched.dispatch(inv, to, history).await?
            }
            Next::Pending { until_ns } => {
                sched
                    .wait(until_ns, &mut done_rx, &mut gen, history, stop.as_mut())
                    .await?;
            }
            Next::Exhausted if sched.busy == 0 => break,
            Next::Exhausted => {
                sched
                    .wait(None, &mut done_rx, &mut gen, history, None)
                    .await?
            }
        }
        while let Ok(done) = done_rx.try_recv() {
            sched.complete(done, &mut gen, history)?;
        }
    }
    Ok(sched.summary)
}

/// What a stopped run's generator becomes: nothing more to start.
struct Drained;

impl crate::generator::Generator for Drained {
    fn next(&mut self, _ctx: &Context, _rng: &mut Rng) -> Next {
        Next::Exhausted
    }
}

/// A worker: runs one job at a time with its client, under the timeout.
async fn work<C: Client>(
    worker: Thread,
    mut client: C,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::Sender<Done>,
    op_timeout: Duration,
) {
    while let Some(job) = jobs.recv().await {
        let outcome =
            match tokio::time::timeout(op_timeout, client.invoke(&job.f, &job.value)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::info(job.value.clone(), "timeout"),
            };
        if done.send(Done { worker, outcome }).await.is_err() {
            return;
        }
    }
}

struct Scheduler {
    start: Instant,
    rng: Rng,
    concurrency: u32,
    /// Every worker, sorted, as generators see them.
    threads: Vec<Thread>,
    /// Per client worker: its current process id and the `f` of the op in flight.
    process: Vec<u64>,
    in_flight: Vec<Option<String>>,
    nemesis_in_flight: Option<String>,
    busy: u32,
    index: u64,
    summary: RunSummary,
    live: Arc<Live>,
}

impl Scheduler {
    fn new(
        concurrency: u32,
        seed: u64,
        nemesis: bool,
        live: Arc<Live>,
        start: Instant,
    ) -> Scheduler {
        let mut threads: Vec<Thread> = (0..concurrency).map(Thread::Client).collect();
        if nemesis {
            threads.push(Thread::Nemesis);
        }
        Scheduler {
            start,
            rng: Rng::new(seed),
            concurrency,
            threads,
            process: (0..concurrency as u64).collect(),
            in_flight: vec![None; concurrency as usize],
            nemesis_in_flight: None,
            busy: 0,
            index: 0,
            summary: RunSummary {
                invocations: 0,
                ok: 0,
                fail: 0,
                info: 0,
            },
            live,
        }
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn slot(&mut self, thread: Thread) -> &mut Option<String> {
        match thread {
            Thread::Client(w) => &mut self.in_flight[w as usize],
            Thread::Nemesis => &mut self.nemesis_in_flight,
        }
    }

    fn is_free(&self, thread: Thread) -> bool {
        match thread {
            Thread::Client(w) => self.in_flight[w as usize].is_none(),
            Thread::Nemesis => self.nemesis_in_flight.is_none(),
        }
    }

    fn context(&self) -> Context {
        let free = self
            .threads
            .iter()
            .copied()
            .filter(|t| self.is_free(*t))
            .collect();
        Context {
            time_ns: self.now_ns(),
            free,
            threads: self.threads.clone(),
        }
    }

    fn process_of(&self, thread: Thread) -> Process {
        match thread {
            Thread::Client(w) => Process::Client(self.process[w as usize]),
            Thread::Nemesis => Process::nemesis(),
        }
    }

    /// Appends one event; `completion` carries what a client said beyond type and value.
    fn record(
        &mut self,
        history: &mut HistoryWriter,
        thread: Thread,
        op_type: OpType,
        f: &str,
        value: Value,
        completion: Option<Completed>,
    ) -> anyhow::Result<()> {
        let mut op = Op::new(self.index, op_type, self.process_of(thread), f, value);
        op.time = Some(self.now_ns());
        if let Some(c) = completion {
            op.error = c.error;
            op.node = c.node;
            op.extra = c.extra;
        }
        history.append(&op)?;
        self.index += 1;
        Ok(())
    }

    async fn dispatch(
        &mut self,
        inv: Invocation,
        to: &mpsc::Sender<Job>,
        history: &mut HistoryWriter,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.is_free(inv.thread),
            "the generator chose {:?}, which is busy",
            inv.thread
        );
        let wait_ns = inv.time_ns.saturating_sub(self.now_ns());
        if wait_ns > 0 {
            tokio::time::sleep(Duration::from_nanos(wait_ns)).await;
        }
        self.record(
            history,
            inv.thread,
            OpType::Invoke,
            &inv.f,
            inv.value.clone(),
            None,
        )?;
        *self.slot(inv.thread) = Some(inv.f.clone());
        self.busy += 1;
        if let Thread::Client(_) = inv.thread {
            self.summary.invocations += 1;
            self.live.invocations.fetch_add(1, Ordering::Relaxed);
        }
        to.send(Job {
            f: inv.f,
            value: inv.value,
        })
        .await
        .map_err(|_| anyhow::anyhow!("worker {:?} stopped", inv.thread))
    }

    /// Waits for a completion, or until `until_ns` if the generator has something then, or
    /// until `stop` is set.
    async fn wait(
        &mut self,
        until_ns: Option<u64>,
        done_rx: &mut mpsc::Receiver<Done>,
        gen: &mut Gen,
        history: &mut HistoryWriter,
        stop: Option<&mut watch::Receiver<bool>>,
    ) -> anyhow::Result<()> {
        let deadline = until_ns.map(|ns| self.start + Duration::from_nanos(ns));
        if self.busy == 0 && deadline.is_none() && stop.is_none() {
            anyhow::bail!("the generator is pending with nothing in flight");
        }
        let stopped = async {
            match stop {
                Some(s) if !*s.borrow() => {
                    let _ = s.changed().await;
                }
                // Already stopped, or nobody can stop us: never wakes.
                _ => std::future::pending::<()>().await,
            }
        };
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        let done = tokio::select! {
            done = done_rx.recv(), if self.busy > 0 => done,
            _ = sleep => return Ok(()),
            _ = stopped => return Ok(()),
        };
        match done {
            Some(done) => self.complete(done, gen, history),
            None => anyhow::bail!("every worker stopped"),
        }
    }

    fn complete(
        &mut self,
        done: Done,
        gen: &mut Gen,
        history: &mut HistoryWriter,
    ) -> anyhow::Result<()> {
        let thread = done.worker;
        let Some(f) = self.slot(thread).take() else {
            anyhow::bail!("worker {thread:?} completed an op it was not running");
        };
        self.busy -= 1;
        let Outcome {
            op_type,
            value,
            error,
            node,
            extra,
        } = done.outcome;
        let op_type = match op_type {
            OpType::Invoke => OpType::Info,
            t => t,
        };
        let completed = Completed { error, node, extra };
        self.record(history, thread, op_type, &f, value, Some(completed))?;
        if let Thread::Client(w) = thread {
            self.count(op_type);
            if !matches!(op_type, OpType::Ok | OpType::Fail) {
                // The op may still take effect: this process id is retired.
                self.process[w as usize] += self.concurrency as u64;
            }
        }
        gen.completed(&Completion { thread, op_type, f });
        Ok(())
    }

    fn count(&mut self, op_type: OpType) {
        let (total, live) = match op_type {
            OpType::Ok => (&mut self.summary.ok, &self.live.ok),
            OpType::Fail => (&mut self.summary.fail, &self.live.fail),
            _ => (&mut self.summary.info, &self.live.info),
        };
        *total += 1;
        live.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
