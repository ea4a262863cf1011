//! Clients: connecting, invoking, completing, timing out, and recording it all.

use super::{ClientSlot, Conn, Event, Sim};
use crate::client::{Action, ClientConfig, ClientIo, OpenOp, SimClient};
use crate::error::ErrorKind;
use crate::history;
use crate::trace::Note;
use checkers::history::{OpType, Process, Value};
use checkers::rng::Rng;
use machine::{ClientId, Machine, NodeId};

impl<M: Machine> Sim<M> {
    /// Adds a client with the run's default `ClientConfig`; it connects now. Returns its index.
    pub fn add_client(&mut self, client: impl SimClient<M> + 'static) -> usize {
        let config = self.config.client.clone();
        self.add_client_with(client, config)
    }

    /// Adds a client with its own timing and first node.
    pub fn add_client_with(
        &mut self,
        client: impl SimClient<M> + 'static,
        config: ClientConfig,
    ) -> usize {
        config.check();
        let limit = self.config.limits.max_clients;
        assert!(self.clients.len() < limit, "more than {limit} clients");
        if let Some(n) = config.node {
            assert!(self.is_member(n), "client's node n{n} is not a member");
        }
        let index = self.clients.len();
        let node = config.node;
        let process = self.new_process();
        self.clients.push(ClientSlot {
            client: Box::new(client),
            config,
            rng: Rng::new(self.streams.client_base.wrapping_add(index as u64)),
            process,
            conn: None,
            node: None,
            open: None,
            next_seq: 0,
            wake_generation: 0,
            stopped: false,
        });
        self.schedule(self.now_ms, Event::ClientConnect { index, node });
        index
    }

    /// Whether every client has stopped with no operation open.
    pub fn clients_done(&self) -> bool {
        self.clients.iter().all(|c| c.stopped && c.open.is_none())
    }

    /// The operation client `index` has open.
    pub fn client_open_op(&self, index: usize) -> Option<&OpenOp> {
        self.clients[index].open.as_ref()
    }

    fn new_process(&mut self) -> u64 {
        let p = self.next_process;
        self.next_process += 1;
        p
    }

    pub(super) fn on_connect(&mut self, index: usize, node: Option<NodeId>) {
        let slot = &mut self.clients[index];
        if slot.stopped || slot.conn.is_some() {
            return;
        }
        let node = node.unwrap_or_else(|| *slot.rng.pick(&self.members));
        let conn = self.next_conn;
        self.next_conn += 1;
        slot.conn = Some(conn);
        slot.node = Some(node);
        let target = &self.nodes[node as usize - 1];
        self.conns.insert(
            conn,
            Conn {
                client: index,
                node,
                incarnation: target.incarnation,
                to_node_ms: self.now_ms,
                to_client_ms: self.now_ms,
                closing: false,
            },
        );
        if target.machine.is_none() {
            // Connection refused: the client learns of it after a round trip.
            let latency_ms = self.config.net.client_latency.sample(&mut self.streams.net);
            self.conns.get_mut(&conn).expect("just added").closing = true;
            self.schedule(self.now_ms + latency_ms, Event::ConnDown { conn });
            return;
        }
        self.call_client(index, |c, io| c.on_connect(io));
        self.call_idle(index);
    }

    pub(super) fn on_wake(&mut self, index: usize, generation: u64) {
        if self.clients[index].wake_generation == generation {
            self.note(Note::ClientWake { index });
            self.call_idle(index);
        }
    }

    /// Asks an idle, connected client for its next operation; asks again later if it has none.
    fn call_idle(&mut self, index: usize) {
        let slot = &self.clients[index];
        if slot.stopped || slot.conn.is_none() || slot.open.is_some() {
            return;
        }
        self.call_client(index, |c, io| c.on_idle(io));
        let slot = &self.clients[index];
        if !slot.stopped && slot.conn.is_some() && slot.open.is_none() {
            self.wake_later(index);
        }
    }

    /// Schedules `on_idle` after the think time, replacing any wake already scheduled.
    fn wake_later(&mut self, index: usize) {
        let slot = &mut self.clients[index];
        let (lo, hi) = slot.config.think_ms;
        let delay_ms = slot.rng.between(lo, hi).max(1);
        slot.wake_generation += 1;
        let generation = slot.wake_generation;
        self.schedule(
            self.now_ms + delay_ms,
            Event::ClientWake { index, generation },
        );
    }

    pub(super) fn on_response(&mut self, conn: ClientId, resp: M::Response, digest: u64) {
        let Some(index) = self.conns.get(&conn).map(|c| c.client) else {
            return;
        };
        if self.clients[index].conn != Some(conn) {
            return;
        }
        self.stats.responses_delivered += 1;
        self.note_msg(
            Note::Response {
                client: conn,
                digest,
            },
            &resp,
        );
        self.call_client(index, |c, io| c.on_response(io, resp));
    }

    pub(super) fn on_timeout(&mut self, index: usize, seq: u64) {
        if self.clients[index]
            .open
            .as_ref()
            .is_some_and(|op| op.seq == seq)
        {
            self.end_op(
                index,
                OpType::Info,
                Value::Null,
                Some(Value::from("timeout")),
            );
            self.lose_connection(index, true);
        }
    }

    /// The node's end of `conn` died (crash, close, refusal).
    pub(super) fn on_conn_down(&mut self, conn: ClientId) {
        let Some(index) = self.conns.get(&conn).map(|c| c.client) else {
            return;
        };
        if self.clients[index].conn != Some(conn) {
            return;
        }
        self.note(Note::ClientClosed { client: conn });
        if self.clients[index].open.is_some() {
            let error = Some(Value::from("connection lost"));
            self.end_op(index, OpType::Info, Value::Null, error);
        }
        self.lose_connection(index, false);
    }

    /// Drops the client's connection (telling the node if `tell_node`), lets the client know,
    /// and schedules the next connection.
    fn lose_connection(&mut self, index: usize, tell_node: bool) {
        self.drop_conn(index, tell_node);
        self.call_client(index, |c, io| c.on_disconnect(io));
        self.reconnect_later(index, None);
    }

    fn reconnect_later(&mut self, index: usize, node: Option<NodeId>) {
        let slot = &mut self.clients[index];
        let (lo, hi) = slot.config.reconnect_ms;
        let delay_ms = slot.rng.between(lo, hi);
        slot.wake_generation += 1;
        self.schedule(self.now_ms + delay_ms, Event::ClientConnect { index, node });
    }

    /// Forgets the client's connection; the node hears `Disconnected` after the requests
    /// already on their way.
    fn drop_conn(&mut self, index: usize, tell_node: bool) {
        let slot = &mut self.clients[index];
        slot.node = None;
        let Some(conn) = slot.conn.take() else {
            return;
        };
        let c = self
            .conns
            .remove(&conn)
            .expect("a client's connection is registered");
        if tell_node && !c.closing {
            let latency_ms = self.config.net.client_latency.sample(&mut self.streams.net);
            let at_ms = c.to_node_ms.max(self.now_ms + latency_ms);
            let (node, incarnation) = (c.node, c.incarnation);
            self.schedule(
                at_ms,
                Event::Disconnected {
                    conn,
                    node,
                    incarnation,
                },
            );
        }
    }

    /// Runs one client callback, then carries out what it asked for.
    fn call_client(
        &mut self,
        index: usize,
        call: impl FnOnce(&mut dyn SimClient<M>, &mut ClientIo<'_, M>),
    ) {
        let mut actions = std::mem::take(&mut self.client_actions);
        let slot = &mut self.clients[index];
        let mut io = ClientIo {
            now_ms: self.now_ms,
            node: slot.node,
            members: &self.members,
            rng: &mut slot.rng,
            open: slot.open.as_ref(),
            open_now: slot.open.is_some(),
            actions: &mut actions,
        };
        call(slot.client.as_mut(), &mut io);
        for action in actions.drain(..) {
            self.apply_action(index, action);
        }
        self.client_actions = actions;
    }

    fn apply_action(&mut self, index: usize, action: Action<M>) {
        match action {
            Action::Invoke { f, value } => self.begin_op(index, f, value),
            Action::Send(req) => self.send_request(index, req),
            Action::Complete {
                op_type,
                value,
                error,
            } => {
                self.end_op(index, op_type, value, error);
                self.wake_later(index);
            }
            Action::Reconnect(node) => {
                if self.clients[index].open.is_some() {
                    let error = Some(Value::from("reconnected"));
                    self.end_op(index, OpType::Info, Value::Null, error);
                }
                self.drop_conn(index, true);
                self.reconnect_later(index, node);
            }
            Action::Stop => {
                let slot = &mut self.clients[index];
                slot.stopped = true;
                slot.wake_generation += 1;
            }
        }
    }

    fn begin_op(&mut self, index: usize, f: String, value: Value) {
        let slot = &mut self.clients[index];
        let seq = slot.next_seq;
        slot.next_seq += 1;
        let timeout_ms = slot.config.timeout_ms;
        let event = history::Event {
            op_type: OpType::Invoke,
            process: Process::Client(slot.process),
            f: &f,
            value: value.clone(),
            node: slot.node.map(|n| format!("n{n}")),
            error: None,
        };
        slot.open = Some(OpenOp {
            f: f.clone(),
            value,
            invoked_ms: self.now_ms,
            seq,
        });
        self.stats.ops_invoked += 1;
        self.record(event);
        self.schedule(
            self.now_ms + timeout_ms,
            Event::ClientTimeout { index, seq },
        );
    }

    /// Ends the open operation; `info` retires the process. A `Null` value on `fail` / `info`
    /// becomes the invoked value, as Jepsen writes completions.
    fn end_op(&mut self, index: usize, op_type: OpType, value: Value, error: Option<Value>) {
        let slot = &mut self.clients[index];
        let op = slot.open.take().expect("ending an operation that is open");
        let value = match op_type {
            OpType::Fail | OpType::Info if value.is_null() => op.value,
            _ => value,
        };
        let event = history::Event {
            op_type,
            process: Process::Client(slot.process),
            f: &op.f,
            value,
            node: slot.node.map(|n| format!("n{n}")),
            error,
        };
        self.record(event);
        match op_type {
            OpType::Ok => self.stats.ops_ok += 1,
            OpType::Fail => self.stats.ops_fail += 1,
            OpType::Info | OpType::Invoke => self.stats.ops_info += 1,
        }
        if op_type == OpType::Info {
            self.clients[index].process = self.new_process();
        }
    }

    fn send_request(&mut self, index: usize, req: M::Request) {
        let slot = &self.clients[index];
        let conn = slot.conn.expect("ClientIo only sends while connected");
        let node = slot.node.expect("a connected client has a node");
        let Some(digest) = self.measure("request", node, &req) else {
            return;
        };
        let latency_ms = self.config.net.client_latency.sample(&mut self.streams.net);
        let c = self
            .conns
            .get_mut(&conn)
            .expect("a client's connection is registered");
        c.to_node_ms = c.to_node_ms.max(self.now_ms + latency_ms);
        let (at_ms, incarnation) = (c.to_node_ms, c.incarnation);
        self.schedule(
            at_ms,
            Event::Request {
                conn,
                node,
                incarnation,
                req,
                digest,
            },
        );
    }

    pub(super) fn record(&mut self, event: history::Event<'_>) {
        if self.recorder.push(self.now_ms, event).is_err() {
            let limit = self.config.limits.max_history_ops;
            self.fail(ErrorKind::HistoryFull { limit });
        }
    }
}
