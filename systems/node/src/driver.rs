//! The loop that owns a core: one input at a time, effects dispatched after each step.

use crate::clock::Clock;
use crate::disk::{DiskReport, DiskThread};
use crate::events::EventLog;
use crate::{clients, peers, NodeError, NodeOptions, MAX_PENDING_INPUTS};
use machine::{Boot, ClientId, Effects, Input, Machine, NodeId, TICK_MS};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;
use storage::Store;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What connection tasks hand to the driver.
pub enum Inbound<M: Machine> {
    Peer(NodeId, M::Peer),
    Request(ClientId, M::Request),
    Connected(ClientId, mpsc::Sender<M::Response>),
    Disconnected(ClientId),
}

/// Runs a node until `shutdown` completes or its disk fails. Listeners are passed in so
/// tests can bind port 0.
pub async fn run<M>(
    config: M::Config,
    opts: NodeOptions,
    peer_listener: TcpListener,
    client_listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError>
where
    M: Machine + 'static,
    M::Peer: Send + Sync + 'static,
    M::Request: Send + Sync + 'static,
    M::Response: Send + Sync + 'static,
{
    if !opts.peers.contains_key(&opts.id) {
        return Err(NodeError::NotAMember {
            id: opts.id,
            peers: opts.peers.keys().copied().collect(),
        });
    }
    let (store, durable, report) =
        Store::open(&opts.data_dir, opts.limits.clone()).map_err(|source| NodeError::Storage {
            dir: opts.data_dir.clone(),
            source,
        })?;
    if !report.is_clean() {
        tracing::warn!(?report, "recovered from a damaged disk");
    }
    // Opened before the core boots, because booting may record events.
    let events = match &opts.events_file {
        Some(path) => Some(EventLog::open(path, opts.id)?),
        None => None,
    };
    let (disk_tx, mut disk_rx) = mpsc::unbounded_channel();
    let disk = DiskThread::start(store, disk_tx);
    let mut clock = Clock::new(opts.clock_offset_file.clone());
    let members: Vec<NodeId> = opts.peers.keys().copied().collect();
    let mut out = Effects::default();
    let boot = Boot {
        id: opts.id,
        members: &members,
        config: &config,
        seed: opts.seed,
        now_ms: clock.now_ms(),
    };
    let mut core = M::boot(boot, durable, &mut out)?;
    let (in_tx, mut in_rx) = mpsc::channel::<Inbound<M>>(MAX_PENDING_INPUTS);
    let mut links = Links::<M> {
        peers: opts
            .peers
            .iter()
            .filter(|(id, _)| **id != opts.id)
            .map(|(id, addr)| (*id, peers::dial::<M>(opts.id, *addr, opts.cluster.clone())))
            .collect(),
        clients: HashMap::new(),
        disk,
        events,
    };
    let member_set: BTreeSet<NodeId> = members.iter().copied().collect();
    let acceptors = [
        tokio::spawn(peers::accept::<M>(
            peer_listener,
            member_set,
            opts.cluster.clone(),
            in_tx.clone(),
        )),
        tokio::spawn(clients::accept::<M>(client_listener, in_tx)),
    ];
    let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    links.dispatch(&mut out)?;
    tokio::pin!(shutdown);
    let result = loop {
        let input = tokio::select! {
            biased;
            _ = &mut shutdown => break Ok(()),
            Some(report) = disk_rx.recv() => match report {
                DiskReport::Persisted(token) => Input::Persisted { token },
                DiskReport::Failed(e) => break Err(NodeError::Disk(e)),
            },
            Some(inbound) = in_rx.recv() => match links.admit(inbound) {
                Some(input) => input,
                None => continue,
            },
            _ = tick.tick() => Input::Tick,
        };
        core.step(clock.now_ms(), input, &mut out);
        if let Err(e) = links.dispatch(&mut out) {
            break Err(e);
        }
    };
    for a in acceptors {
        a.abort();
    }
    result
}

/// Where effects go.
struct Links<M: Machine> {
    peers: BTreeMap<NodeId, mpsc::Sender<M::Peer>>,
    clients: HashMap<ClientId, mpsc::Sender<M::Response>>,
    disk: DiskThread,
    /// The event log, if the node keeps one.
    events: Option<EventLog>,
}

impl<M: Machine> Links<M> {
    /// Turns a connection event into an input, tracking which clients are connected.
    fn admit(&mut self, inbound: Inbound<M>) -> Option<Input<M>> {
        match inbound {
            Inbound::Peer(from, msg) => Some(Input::Peer { from, msg }),
            Inbound::Request(client, req) => self
                .clients
                .contains_key(&client)
                .then_some(Input::Request { client, req }),
            Inbound::Connected(client, tx) => {
                self.clients.insert(client, tx);
                None
            }
            Inbound::Disconnected(client) => self
                .clients
                .remove(&client)
                .map(|_| Input::Disconnected { client }),
        }
    }

    fn dispatch(&mut self, out: &mut Effects<M>) -> Result<(), NodeError> {
        let Effects {
            sends,
            replies,
            writes,
            closes,
            events,
        } = out.take();
        for w in writes {
            self.disk.submit(w).map_err(NodeError::Disk)?;
        }
        // Before the sends and replies: whatever a peer or client can see then has its line
        // written, stamped before anyone could react to it. A kill in between leaves a line
        // for an effect that never left (a lost message, which the checkers tolerate), never
        // an effect without its line (a receive whose send is missing, an orphan to the
        // recovery-line checker), and a reaction on another node is never stamped earlier
        // than its cause when the logs are merged by time.
        if let Some(log) = &mut self.events {
            log.write_step(events)?;
        }
        for (to, msg) in sends {
            if let Some(tx) = self.peers.get(&to) {
                let _ = tx.try_send(msg); // Full or gone: the message is lost, as on a network.
            }
        }
        for (client, resp) in replies {
            let Some(tx) = self.clients.get(&client) else {
                continue;
            };
            if tx.try_send(resp).is_err() {
                tracing::warn!(client, "disconnected a client that stopped reading");
                self.clients.remove(&client);
            }
        }
        for client in closes {
            self.clients.remove(&client);
        }
        Ok(())
    }
}
