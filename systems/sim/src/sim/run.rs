//! The event loop: pop the earliest event, deliver it, check the invariant, repeat.

use super::{Event, Sim};
use crate::error::{ErrorKind, SimError};
use crate::node::Cluster;
use crate::trace::Note;
use machine::{Input, Machine};

impl<M: Machine> Sim<M> {
    /// Delivers the next event. `Ok(false)` when nothing is scheduled (every node crashed and
    /// no client or fault pending). After an error other than an invariant's, the run should
    /// not be continued.
    pub fn step(&mut self) -> Result<bool, SimError> {
        let Some(time_ms) = self.queue.peek_time_ms() else {
            return Ok(false);
        };
        self.check_limits(time_ms)?;
        let (time_ms, event) = self.queue.pop().expect("peeked");
        assert!(
            time_ms >= self.now_ms,
            "event at {time_ms} after {}",
            self.now_ms
        );
        self.now_ms = time_ms;
        self.steps += 1;
        self.dispatch(event);
        self.take_fatal()?;
        self.check_invariant()
    }

    /// Refuses to deliver an event past the time limit or beyond the step limit. Checked before
    /// the event leaves the queue, so a stopped run can still be inspected as it was.
    fn check_limits(&self, time_ms: u64) -> Result<(), SimError> {
        let limits = &self.config.limits;
        if time_ms > limits.max_time_ms {
            let limit_ms = limits.max_time_ms;
            return Err(self.error(ErrorKind::TimeLimit { limit_ms }));
        }
        if self.steps >= limits.max_steps {
            let limit = limits.max_steps;
            return Err(self.error(ErrorKind::StepLimit { limit }));
        }
        Ok(())
    }

    /// Runs every event due in the next `duration_ms`, then sets the clock to its end.
    pub fn run_for(&mut self, duration_ms: u64) -> Result<(), SimError> {
        let until_ms = self.now_ms.saturating_add(duration_ms);
        while self.queue.peek_time_ms().is_some_and(|t| t <= until_ms) {
            self.step()?;
        }
        if until_ms > self.config.limits.max_time_ms {
            let limit_ms = self.config.limits.max_time_ms;
            return Err(self.error(ErrorKind::TimeLimit { limit_ms }));
        }
        self.now_ms = until_ms;
        Ok(())
    }

    /// Runs until `done` holds (checked before each step), for at most `max_ms` of virtual
    /// time; past that, a `Deadline` error. Never hangs: the step and time limits still apply.
    pub fn run_until(
        &mut self,
        mut done: impl FnMut(&Sim<M>) -> bool,
        max_ms: u64,
    ) -> Result<(), SimError> {
        let deadline_ms = self.now_ms.saturating_add(max_ms);
        loop {
            if done(self) {
                return Ok(());
            }
            match self.queue.peek_time_ms() {
                Some(t) if t <= deadline_ms => {
                    self.step()?;
                }
                _ => {
                    self.now_ms = deadline_ms.min(self.config.limits.max_time_ms);
                    return Err(self.error(ErrorKind::Deadline { max_ms }));
                }
            }
        }
    }

    fn check_invariant(&mut self) -> Result<bool, SimError> {
        let Some(check) = self.invariant.as_mut() else {
            return Ok(true);
        };
        let view = Cluster {
            nodes: &self.nodes,
            now_ms: self.now_ms,
        };
        match check(&view) {
            Ok(()) => Ok(true),
            Err(msg) => Err(self.error(ErrorKind::Invariant(msg))),
        }
    }

    fn dispatch(&mut self, event: Event<M>) {
        match event {
            Event::Tick { node, generation } => self.on_tick(node, generation),
            Event::Peer {
                from,
                to,
                msg,
                digest,
            } => self.on_peer(from, to, msg, digest),
            Event::Request {
                conn,
                node,
                incarnation,
                req,
                digest,
            } => {
                if self.slot(node).incarnation == incarnation {
                    self.note(Note::Request {
                        client: conn,
                        node,
                        digest,
                    });
                    self.stats.requests_delivered += 1;
                    self.deliver(node, Input::Request { client: conn, req });
                }
            }
            Event::Disconnected {
                conn,
                node,
                incarnation,
            } => {
                if self.slot(node).incarnation == incarnation {
                    self.note(Note::Disconnected { client: conn, node });
                    self.deliver(node, Input::Disconnected { client: conn });
                }
            }
            Event::DiskDone { node, generation } => self.on_disk_done(node, generation),
            Event::Response { conn, resp, digest } => self.on_response(conn, resp, digest),
            Event::ConnDown { conn } => self.on_conn_down(conn),
            Event::ClientConnect { index, node } => self.on_connect(index, node),
            Event::ClientWake { index, generation } => self.on_wake(index, generation),
            Event::ClientTimeout { index, seq } => self.on_timeout(index, seq),
            Event::Fault(fault) => self.apply_fault(fault),
            Event::PlanFault => self.on_plan_fault(),
        }
    }

    /// Folds a delivered event into the trace.
    pub(super) fn note(&mut self, note: Note) {
        self.trace.record(self.steps, self.now_ms, note, None);
    }

    /// Like `note`, with the message's `Debug` text when the trace keeps it.
    pub(super) fn note_msg(&mut self, note: Note, msg: &dyn std::fmt::Debug) {
        let detail = self.trace.wants_detail().then(|| format!("{msg:?}"));
        self.trace.record(self.steps, self.now_ms, note, detail);
    }
}
