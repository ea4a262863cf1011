//! The leader's side of an epoch: discovery, synchronization of each follower, then
//! broadcast with quorum commits.

use super::history::{Entry, Summary};
use super::link::{Link, LinkId};
use super::{
    encode, zxid, AfterPersist, LinkMsg, ProposeError, Role, RoleChange, Zab, ZabEvent, ZabOut,
    Zxid,
};
use machine::NodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// One follower as the leader sees it.
#[derive(Debug)]
struct Peer<T, A> {
    link: Link<LinkMsg<T, A>>,
    /// The follower has logged everything up to here (meaningful once `synced`).
    acked: Zxid,
    /// It acknowledged NEWLEADER: its log is this leader's history.
    synced: bool,
    /// Its synchronization was sent; proposals and commits now go to it.
    forwarding: bool,
}

#[derive(Debug)]
pub(super) struct Leader<T, A> {
    me: NodeId,
    /// The epoch being led; chosen once a quorum has reported its accepted epoch.
    epoch: Option<u32>,
    epoch_durable: bool,
    accepted_before: u32,
    infos: BTreeMap<NodeId, u32>,
    /// Promises: each follower's current epoch, summary, and whether its log was repaired.
    acks: BTreeMap<NodeId, (u32, Summary, bool)>,
    syncing: bool,
    own_current_durable: bool,
    established: bool,
    peers: BTreeMap<NodeId, Peer<T, A>>,
    counter: u32,
    started_ms: u64,
    pinged_ms: u64,
}

impl<T: Clone + Debug, A: Clone + Debug> Leader<T, A> {
    pub fn new(me: NodeId, accepted: u32, now_ms: u64) -> Self {
        Leader {
            me,
            epoch: None,
            epoch_durable: false,
            accepted_before: accepted,
            infos: BTreeMap::from([(me, accepted)]),
            acks: BTreeMap::new(),
            syncing: false,
            own_current_durable: false,
            established: false,
            peers: BTreeMap::new(),
            counter: 0,
            started_ms: now_ms,
            pinged_ms: now_ms,
        }
    }

    pub fn epoch(&self) -> u32 {
        self.epoch.unwrap_or(self.accepted_before)
    }

    pub fn next_zxid(&self) -> Option<Zxid> {
        let epoch = self.epoch?;
        (self.established && self.counter < u32::MAX).then(|| zxid(epoch, self.counter + 1))
    }

    /// Tells every follower this leadership is over.
    pub fn close_all(&mut self, out: &mut ZabOut<T, A>) {
        for p in self.peers.values_mut() {
            send(p, LinkMsg::Close, out);
        }
    }

    /// Sends on a follower's link once its synchronization is under way.
    pub fn send_to(&mut self, to: NodeId, body: LinkMsg<T, A>, out: &mut ZabOut<T, A>) -> bool {
        match self.peers.get_mut(&to) {
            Some(p) if p.forwarding => {
                send(p, body, out);
                true
            }
            _ => false,
        }
    }
}

fn send<T, A>(p: &mut Peer<T, A>, body: LinkMsg<T, A>, out: &mut ZabOut<T, A>) {
    let follower = p.link.id.follower;
    super::link_send(&mut p.link, follower, body, out);
}

fn me<T, A>(zab: &mut Zab<T, A>) -> &mut Leader<T, A> {
    match &mut zab.role {
        Role::Leading(l) => l,
        _ => unreachable!("only called while leading"),
    }
}

pub(super) fn start<T, A>(zab: &mut Zab<T, A>, now_ms: u64, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    maybe_choose_epoch(zab, now_ms, out);
}

pub(super) fn on_link<T, A>(
    zab: &mut Zab<T, A>,
    now_ms: u64,
    from: NodeId,
    link: LinkId,
    seq: u64,
    body: LinkMsg<T, A>,
    out: &mut ZabOut<T, A>,
) where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let l = me(zab);
    if link.leader != l.me || link.follower != from {
        return;
    }
    let known = l.peers.get(&from).is_some_and(|p| p.link.id == link);
    if !known {
        if seq != 0 || !matches!(body, LinkMsg::FollowerInfo { .. }) {
            return; // A straggler of a link this leader no longer keeps.
        }
        let peer = Peer {
            link: Link::new(link, now_ms),
            acked: 0,
            synced: false,
            forwarding: false,
        };
        l.peers.insert(from, peer);
        l.acks.remove(&from);
    }
    let peer = l.peers.get_mut(&from).expect("inserted above");
    let ready = match peer.link.receive(now_ms, seq, body) {
        Ok(ready) => ready,
        Err(_) => return drop_peer(zab, from, out),
    };
    for msg in ready {
        let still = matches!(&zab.role, Role::Leading(l) if l.peers.get(&from).is_some_and(|p| p.link.id == link));
        if !still {
            return;
        }
        handle(zab, now_ms, from, msg, out);
    }
}

fn handle<T, A>(
    zab: &mut Zab<T, A>,
    now_ms: u64,
    from: NodeId,
    msg: LinkMsg<T, A>,
    out: &mut ZabOut<T, A>,
) where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    match msg {
        LinkMsg::FollowerInfo { accepted_epoch } => {
            let l = me(zab);
            l.infos.insert(from, accepted_epoch);
            match l.epoch {
                Some(epoch) if l.epoch_durable => {
                    let p = l.peers.get_mut(&from).expect("known");
                    send(p, LinkMsg::NewEpoch { epoch }, out);
                }
                Some(_) => {}
                None => maybe_choose_epoch(zab, now_ms, out),
            }
        }
        LinkMsg::AckEpoch {
            current_epoch,
            summary,
            repaired,
        } => ack_epoch(zab, now_ms, from, (current_epoch, summary, repaired), out),
        LinkMsg::AckNewLeader { last_zxid } => {
            let l = me(zab);
            let established = l.established;
            let p = l.peers.get_mut(&from).expect("known");
            p.synced = true;
            p.acked = p.acked.max(last_zxid);
            if established {
                let committed = zab.committed;
                let p = me(zab).peers.get_mut(&from).expect("known");
                send(p, LinkMsg::UpToDate { committed }, out);
            }
            update_commit(zab, out);
        }
        LinkMsg::Ack { zxid } => {
            let p = me(zab).peers.get_mut(&from).expect("known");
            if p.synced {
                p.acked = p.acked.max(zxid);
            }
            update_commit(zab, out);
        }
        LinkMsg::App(msg) => out.events.push(ZabEvent::App { from, msg }),
        LinkMsg::Close => drop_peer(zab, from, out),
        LinkMsg::Pong => {}
        LinkMsg::NewEpoch { .. }
        | LinkMsg::Snap { .. }
        | LinkMsg::Trunc { .. }
        | LinkMsg::Diff { .. }
        | LinkMsg::NewLeader { .. }
        | LinkMsg::UpToDate { .. }
        | LinkMsg::Proposal(_)
        | LinkMsg::Commit { .. }
        | LinkMsg::Ping => {} // Follower-bound: a confused peer.
    }
}

/// Discovery: once a quorum reported its accepted epoch, lead the epoch after all of them.
fn maybe_choose_epoch<T, A>(zab: &mut Zab<T, A>, _now_ms: u64, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let quorum = zab.quorum();
    let l = me(zab);
    if l.epoch.is_some() || l.infos.len() < quorum {
        return;
    }
    let epoch = l.infos.values().max().copied().unwrap_or(0) + 1;
    l.epoch = Some(epoch);
    zab.epochs.accepted = epoch;
    let token = zab.write_epochs(out);
    zab.after_persist
        .push((token, AfterPersist::LeaderEpochDurable(epoch)));
    out.events
        .push(ZabEvent::Role(RoleChange::Leading { epoch }));
}

/// The new epoch is promised on this node's disk: ask the followers for theirs.
pub(super) fn epoch_durable<T, A>(
    zab: &mut Zab<T, A>,
    now_ms: u64,
    epoch: u32,
    out: &mut ZabOut<T, A>,
) where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let Role::Leading(l) = &mut zab.role else {
        return;
    };
    if l.epoch != Some(epoch) {
        return;
    }
    l.epoch_durable = true;
    for p in l.peers.values_mut() {
        send(p, LinkMsg::NewEpoch { epoch }, out);
    }
    maybe_start_sync(zab, now_ms, out);
}

fn ack_epoch<T, A>(
    zab: &mut Zab<T, A>,
    now_ms: u64,
    from: NodeId,
    (current_epoch, summary, repaired): (u32, Summary, bool),
    out: &mut ZabOut<T, A>,
) where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let own = (zab.epochs.current, zab.history.last_zxid());
    let syncing = me(zab).syncing;
    if !syncing && !zab.cfg.bugs.elect_stale_leader && (current_epoch, summary.last_zxid()) > own {
        // A follower is ahead: this node must not lead, or it would drop what they hold.
        return zab.become_looking(now_ms, out);
    }
    me(zab)
        .acks
        .insert(from, (current_epoch, summary.clone(), repaired));
    if syncing {
        sync_peer(zab, from, &summary, out);
    } else {
        maybe_start_sync(zab, now_ms, out);
    }
}

/// A quorum promised the epoch: make it current and synchronize everyone who promised.
fn maybe_start_sync<T, A>(zab: &mut Zab<T, A>, _now_ms: u64, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let quorum = zab.quorum();
    let everyone = zab.members.len();
    let own_whole = !zab.repaired;
    let l = me(zab);
    if l.syncing || !l.epoch_durable {
        return;
    }
    // Only promises from whole logs count towards the quorum that must intersect every
    // commit's; a repaired log may have lost the very entry that intersection is for. With
    // every member's promise, nothing that survives anywhere can be missed.
    let whole = l.acks.values().filter(|(_, _, r)| !r).count() + usize::from(own_whole);
    if whole < quorum && l.acks.len() + 1 < everyone {
        return;
    }
    l.syncing = true;
    let epoch = l.epoch.expect("chosen before it is durable");
    let promised: Vec<(NodeId, Summary)> = l
        .acks
        .iter()
        .map(|(n, (_, s, _))| (*n, s.clone()))
        .collect();
    zab.epochs.current = epoch;
    let token = zab.write_epochs(out);
    zab.after_persist
        .push((token, AfterPersist::LeaderCurrentEpoch(epoch)));
    for (n, summary) in promised {
        sync_peer(zab, n, &summary, out);
    }
}

pub(super) fn current_epoch_durable<T, A>(
    zab: &mut Zab<T, A>,
    _now_ms: u64,
    epoch: u32,
    out: &mut ZabOut<T, A>,
) where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    if let Role::Leading(l) = &mut zab.role {
        if l.epoch == Some(epoch) {
            l.own_current_durable = true;
            update_commit(zab, out);
        }
    }
}

/// Brings one follower's log to this leader's history: SNAP or TRUNC, then DIFF, then
/// NEWLEADER.
fn sync_peer<T, A>(zab: &mut Zab<T, A>, to: NodeId, summary: &Summary, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let mut msgs: Vec<LinkMsg<T, A>> = Vec::new();
    let from = match zab.history.common_prefix(summary) {
        Some(point) => {
            if summary.last_zxid() > point {
                msgs.push(LinkMsg::Trunc { zxid: point });
            }
            point
        }
        None => {
            let snap = &zab.snapshot;
            assert!(
                zab.history.base <= snap.zxid,
                "the log must reach back to the snapshot"
            );
            snap_chunks(snap.zxid, &snap.bytes, zab.cfg.max_chunk_bytes, &mut msgs);
            snap.zxid
        }
    };
    diff_chunks(zab.history.after(from), zab.cfg.max_chunk_bytes, &mut msgs);
    let epoch = me(zab).epoch.expect("chosen");
    msgs.push(LinkMsg::NewLeader {
        epoch,
        last_zxid: zab.history.last_zxid(),
    });
    let Some(p) = me(zab).peers.get_mut(&to) else {
        return;
    };
    for m in msgs {
        send(p, m, out);
    }
    p.forwarding = true;
}

fn snap_chunks<T, A>(zxid: Zxid, bytes: &[u8], max: usize, msgs: &mut Vec<LinkMsg<T, A>>) {
    let total = bytes.len() as u64;
    let mut offset = 0usize;
    loop {
        let end = (offset + max).min(bytes.len());
        msgs.push(LinkMsg::Snap {
            zxid,
            offset: offset as u64,
            total,
            bytes: bytes[offset..end].to_vec(),
        });
        offset = end;
        if offset >= bytes.len() {
            break;
        }
    }
}

fn diff_chunks<T: Clone + Serialize, A>(
    entries: &[Entry<T>],
    max: usize,
    msgs: &mut Vec<LinkMsg<T, A>>,
) {
    let mut chunk = Vec::new();
    let mut size = 0;
    for e in entries {
        let len = encode(e).len();
        if !chunk.is_empty() && size + len > max {
            msgs.push(LinkMsg::Diff {
                entries: std::mem::take(&mut chunk),
            });
            size = 0;
        }
        chunk.push(e.clone());
        size += len;
    }
    if !chunk.is_empty() {
        msgs.push(LinkMsg::Diff { entries: chunk });
    }
}

/// Commits what a quorum has logged; establishes the epoch on the first quorum of
/// NEWLEADER acknowledgements.
fn update_commit<T, A>(zab: &mut Zab<T, A>, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let quorum = zab.quorum();
    let own = if zab.cfg.bugs.ack_before_fsync {
        zab.history.last_zxid()
    } else {
        zab.durable
    };
    let l = me(zab);
    if !l.own_current_durable {
        return;
    }
    let mut logged: Vec<Zxid> = l
        .peers
        .values()
        .filter(|p| p.synced)
        .map(|p| p.acked)
        .collect();
    logged.push(own);
    if logged.len() < quorum {
        return;
    }
    let newly_established = !l.established;
    l.established = true;
    logged.sort_unstable_by(|a, b| b.cmp(a));
    let point = logged[quorum - 1];
    let before = zab.committed;
    zab.commit_through(point, out);
    let committed = zab.committed;
    let l = me(zab);
    if committed > before {
        for p in l.peers.values_mut().filter(|p| p.forwarding) {
            send(p, LinkMsg::Commit { zxid: committed }, out);
        }
    }
    if newly_established {
        for p in l.peers.values_mut().filter(|p| p.synced) {
            send(p, LinkMsg::UpToDate { committed }, out);
        }
        zab.recovered(out);
        zab.serving = true;
        out.events.push(ZabEvent::Role(RoleChange::Serving));
    }
}

pub(super) fn on_durable<T, A>(zab: &mut Zab<T, A>, _now_ms: u64, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    update_commit(zab, out);
}

pub(super) fn propose<T, A>(
    zab: &mut Zab<T, A>,
    txn: T,
    out: &mut ZabOut<T, A>,
) -> Result<Zxid, ProposeError>
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let l = me(zab);
    let Some(zxid) = l.next_zxid() else {
        return Err(ProposeError::NotReady);
    };
    l.counter += 1;
    let entry = Entry { zxid, txn };
    for p in l.peers.values_mut().filter(|p| p.forwarding) {
        send(p, LinkMsg::Proposal(entry.clone()), out);
    }
    zab.history.push(entry.clone());
    zab.write_entries(&[entry], out);
    if zab.quorum() == 1 || zab.cfg.bugs.ack_before_fsync {
        update_commit(zab, out);
    }
    Ok(zxid)
}

fn drop_peer<T, A>(zab: &mut Zab<T, A>, from: NodeId, out: &mut ZabOut<T, A>) {
    let l = me(zab);
    if let Some(mut p) = l.peers.remove(&from) {
        send(&mut p, LinkMsg::Close, out);
    }
    l.acks.remove(&from);
    l.infos.remove(&from);
}

pub(super) fn tick<T, A>(zab: &mut Zab<T, A>, now_ms: u64, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let (sync_limit, gap_timeout, init_limit, heartbeat) = (
        zab.cfg.sync_limit_ms,
        zab.cfg.gap_timeout_ms,
        zab.cfg.init_limit_ms,
        zab.cfg.heartbeat_ms,
    );
    let quorum = zab.quorum();
    let l = me(zab);
    let dead: Vec<NodeId> = l
        .peers
        .iter()
        .filter(|(_, p)| {
            now_ms.saturating_sub(p.link.last_heard_ms) > sync_limit
                || p.link.check_gap(now_ms, gap_timeout).is_err()
        })
        .map(|(n, _)| *n)
        .collect();
    for n in dead {
        drop_peer(zab, n, out);
    }
    let l = me(zab);
    if !l.established {
        if now_ms.saturating_sub(l.started_ms) > init_limit {
            zab.become_looking(now_ms, out);
        }
        return;
    }
    if l.peers.values().filter(|p| p.synced).count() + 1 < quorum {
        return zab.become_looking(now_ms, out); // Lost the quorum: stop leading.
    }
    if now_ms.saturating_sub(l.pinged_ms) >= heartbeat {
        l.pinged_ms = now_ms;
        for p in l.peers.values_mut().filter(|p| p.forwarding) {
            send(p, LinkMsg::Ping, out);
        }
    }
}
