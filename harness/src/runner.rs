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
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a client reports for one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// `Ok`, `Fail` or `Info`.
    pub op_type: OpType,
    pub value: Value,
    pub error: Option<Value>,
}

/// A client of the system under test, one per worker.
pub trait Client: Send + 'static {
    fn invoke(&mut self, f: &str, value: &Value) -> impl Future<Output = Outcome> + Send;
}

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
    worker: u32,
    outcome: Outcome,
}

/// Runs `gen` to exhaustion against clients made by `make_client(worker)`, appending every
/// event to `history`. Must be called inside a tokio runtime.
pub async fn run<C, M>(
    config: &RunConfig,
    mut gen: Gen,
    make_client: M,
    history: &mut HistoryWriter,
) -> anyhow::Result<RunSummary>
where
    C: Client,
    M: Fn(u32) -> C,
{
    assert!(config.concurrency > 0, "concurrency must be at least 1");
    let n = config.concurrency;
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(n as usize);
    let mut jobs = Vec::with_capacity(n as usize);
    for worker in 0..n {
        let (tx, rx) = mpsc::channel::<Job>(1);
        jobs.push(tx);
        tokio::spawn(work(
            worker,
            make_client(worker),
            rx,
            done_tx.clone(),
            config.op_timeout,
        ));
    }
    drop(done_tx);
    let mut sched = Scheduler::new(n, config.seed);
    loop {
        let ctx = sched.context();
        match gen.next(&ctx, &mut sched.rng) {
            Next::Op(inv) => sched.dispatch(inv, &jobs, history).await?,
            Next::Pending { until_ns } => {
                sched
                    .wait(until_ns, &mut done_rx, &mut gen, history)
                    .await?;
            }
            Next::Exhausted if sched.busy == 0 => break,
            Next::Exhausted => sched.wait(None, &mut done_rx, &mut gen, history).await?,
        }
        while let Ok(done) = done_rx.try_recv() {
            sched.complete(done, &mut gen, history)?;
        }
    }
    Ok(sched.summary)
}

/// A worker: runs one job at a time with its client, under the timeout.
async fn work<C: Client>(
    worker: u32,
    mut client: C,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::Sender<Done>,
    op_timeout: Duration,
) {
    while let Some(job) = jobs.recv().await {
        let outcome =
            match tokio::time::timeout(op_timeout, client.invoke(&job.f, &job.value)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome {
                    op_type: OpType::Info,
                    value: job.value.clone(),
                    error: Some(Value::from("timeout")),
                },
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
    /// Per worker: its current process id and the `f` of the op in flight.
    process: Vec<u64>,
    in_flight: Vec<Option<String>>,
    busy: u32,
    index: u64,
    summary: RunSummary,
}

impl Scheduler {
    fn new(concurrency: u32, seed: u64) -> Scheduler {
        Scheduler {
            start: Instant::now(),
            rng: Rng::new(seed),
            concurrency,
            threads: (0..concurrency).map(Thread::Client).collect(),
            process: (0..concurrency as u64).collect(),
            in_flight: vec![None; concurrency as usize],
            busy: 0,
            index: 0,
            summary: RunSummary {
                invocations: 0,
                ok: 0,
                fail: 0,
                info: 0,
            },
        }
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn context(&self) -> Context {
        let free = self
            .threads
            .iter()
            .copied()
            .filter(|t| matches!(t, Thread::Client(w) if self.in_flight[*w as usize].is_none()))
            .collect();
        Context {
            time_ns: self.now_ns(),
            free,
            threads: self.threads.clone(),
        }
    }

    fn record(
        &mut self,
        history: &mut HistoryWriter,
        worker: u32,
        op_type: OpType,
        f: &str,
        value: Value,
        error: Option<Value>,
    ) -> anyhow::Result<()> {
        let mut op = Op::new(
            self.index,
            op_type,
            Process::Client(self.process[worker as usize]),
            f,
            value,
        );
        op.time = Some(self.now_ns());
        op.error = error;
        history.append(&op)?;
        self.index += 1;
        Ok(())
    }

    async fn dispatch(
        &mut self,
        inv: Invocation,
        jobs: &[mpsc::Sender<Job>],
        history: &mut HistoryWriter,
    ) -> anyhow::Result<()> {
        let Thread::Client(worker) = inv.thread else {
            anyhow::bail!("the runner has no nemesis worker yet");
        };
        let wait_ns = inv.time_ns.saturating_sub(self.now_ns());
        if wait_ns > 0 {
            tokio::time::sleep(Duration::from_nanos(wait_ns)).await;
        }
        self.record(
            history,
            worker,
            OpType::Invoke,
            &inv.f,
            inv.value.clone(),
            None,
        )?;
        self.in_flight[worker as usize] = Some(inv.f.clone());
        self.busy += 1;
        self.summary.invocations += 1;
        jobs[worker as usize]
            .send(Job {
                f: inv.f,
                value: inv.value,
            })
            .await
            .map_err(|_| anyhow::anyhow!("worker {worker} stopped"))
    }

    /// Waits for a completion, or until `until_ns` if the generator has something then.
    async fn wait(
        &mut self,
        until_ns: Option<u64>,
        done_rx: &mut mpsc::Receiver<Done>,
        gen: &mut Gen,
        history: &mut HistoryWriter,
    ) -> anyhow::Result<()> {
        let deadline = until_ns.map(|ns| self.start + Duration::from_nanos(ns));
        let done = match deadline {
            Some(at) => tokio::select! {
                done = done_rx.recv() => done,
                _ = tokio::time::sleep_until(at) => return Ok(()),
            },
            None if self.busy == 0 => {
                anyhow::bail!("the generator is pending with nothing in flight")
            }
            None => done_rx.recv().await,
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
        let w = done.worker as usize;
        let Some(f) = self.in_flight[w].take() else {
            anyhow::bail!("worker {w} completed an op it was not running");
        };
        self.busy -= 1;
        let Outcome {
            op_type,
            value,
            error,
        } = done.outcome;
        let op_type = match op_type {
            OpType::Invoke => OpType::Info,
            t => t,
        };
        self.record(history, done.worker, op_type, &f, value, error)?;
        match op_type {
            OpType::Ok => self.summary.ok += 1,
            OpType::Fail => self.summary.fail += 1,
            _ => {
                self.summary.info += 1;
                // The op may still take effect: this process id is retired.
                self.process[w] += self.concurrency as u64;
            }
        }
        gen.completed(&Completion {
            thread: Thread::Client(done.worker),
            op_type,
            f,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
