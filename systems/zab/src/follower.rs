//! The follower's side of an epoch: promise the epoch, take the leader's history, then log
//! and acknowledge proposals and apply commits.

use super::link::{Link, LinkId};
use super::{
    AfterPersist, DiskOp, LinkMsg, Role, RoleChange, SnapshotBlob, Zab, ZabEvent, ZabOut, Zxid,
    LOG, SNAPSHOT_BLOB,
};
use machine::MAX_BLOB_BYTES;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Discovery,
    Syncing,
    Broadcast,
}

#[derive(Debug)]
pub(super) struct Follower<T, A> {
    link: Link<LinkMsg<T, A>>,
    phase: Phase,
    started_ms: u64,
    /// A snapshot arriving in chunks: its zxid, total size, and the bytes so far.
    snap: Option<(Zxid, u64, Vec<u8>)>,
    /// The highest zxid acknowledged to the leader.
    acked: Zxid,
    /// Set once NEWLEADER is acknowledged: only then do proposal acks count.
    newleader_acked: bool,
}

impl<T: Clone + Debug, A: Clone + Debug> Follower<T, A> {
    pub fn new(id: LinkId, now_ms: u64) -> Self {
        Follower {
            link: Link::new(id, now_ms),
            phase: Phase::Discovery,
            started_ms: now_ms,
            snap: None,
            acked: 0,
            newleader_acked: false,
        }
    }

    pub fn leader(&self) -> u32 {
        self.link.id.leader
    }

    pub fn link_id(&self) -> LinkId {
        self.link.id
    }

    pub fn send(&mut self, body: LinkMsg<T, A>, out: &mut ZabOut<T, A>) {
        if let LinkMsg::AckNewLeader { last_zxid } = &body {
            self.newleader_acked = true;
            self.acked = self.acked.max(*last_zxid);
        }
        let leader = self.link.id.leader;
        super::link_send(&mut self.link, leader, body, out);
    }
}

fn me<T, A>(zab: &mut Zab<T, A>) -> &mut Follower<T, A> {
    match &mut zab.role {
        Role::Following(f) => f,
        _ => unreachable!("only called while following"),
    }
}

pub(super) fn on_link<T, A>(
    zab: &mut Zab<T, A>,
    now_ms: u64,
    link: LinkId,
    seq: u64,
    body: LinkMsg<T, A>,
    out: &mut ZabOut<T, A>,
) where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let f = me(zab);
    if link != f.link.id {
        return; // A previous connection's straggler.
    }
    let ready = match f.link.receive(now_ms, seq, body) {
        Ok(ready) => ready,
        Err(_) => return zab.become_looking(now_ms, out),
    };
    for msg in ready {
        let still_mine = matches!(&zab.role, Role::Following(f) if f.link.id == link);
        if !still_mine {
            return;
        }
        handle(zab, now_ms, msg, out);
    }
}

fn handle<T, A>(zab: &mut Zab<T, A>, now_ms: u64, msg: LinkMsg<T, A>, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    match msg {
        LinkMsg::NewEpoch { epoch } => new_epoch(zab, now_ms, epoch, out),
        LinkMsg::Snap {
            zxid,
            offset,
            total,
            bytes,
        } => snap_chunk(zab, now_ms, zxid, offset, total, bytes, out),
        LinkMsg::Trunc { zxid } => {
            if zxid < zab.committed {
                // The leader would cut what this node applied: only a planted bug does that.
                return zab.become_looking(now_ms, out);
            }
            let len = zab.history.truncate_after(zxid);
            zab.durable = zab.durable.min(zxid);
            zab.write(
                vec![DiskOp::TruncateTail {
                    log: LOG.into(),
                    len,
                }],
                out,
            );
        }
        LinkMsg::Diff { entries } => {
            let last = zab.history.last_zxid();
            let fresh: Vec<_> = entries.into_iter().filter(|e| e.zxid > last).collect();
            for e in &fresh {
                zab.history.push(e.clone());
            }
            if !fresh.is_empty() {
                zab.write_entries(&fresh, out);
            }
        }
        LinkMsg::NewLeader { epoch, last_zxid } => {
            zab.epochs.current = epoch;
            zab.epochs.accepted = zab.epochs.accepted.max(epoch);
            let token = zab.write_epochs(out);
            let link = me(zab).link.id;
            zab.after_persist.push((
                token,
                AfterPersist::FollowerSend(link, LinkMsg::AckNewLeader { last_zxid }),
            ));
        }
        LinkMsg::UpToDate { committed } => {
            zab.commit_through(committed, out);
            me(zab).phase = Phase::Broadcast;
            zab.recovered(out);
            zab.serving = true;
            out.events.push(ZabEvent::Role(RoleChange::Serving));
        }
        LinkMsg::Proposal(entry) => {
            if entry.zxid <= zab.history.last_zxid() {
                return;
            }
            let zxid = entry.zxid;
            zab.history.push(entry.clone());
            zab.write_entries(&[entry], out);
            if zab.cfg.bugs.ack_before_fsync {
                me(zab).send(LinkMsg::Ack { zxid }, out);
            }
        }
        LinkMsg::Commit { zxid } => zab.commit_through(zxid, out),
        LinkMsg::Ping => me(zab).send(LinkMsg::Pong, out),
        LinkMsg::App(msg) => {
            let from = me(zab).leader();
            out.events.push(ZabEvent::App { from, msg });
        }
        LinkMsg::Close => zab.become_looking(now_ms, out),
        LinkMsg::FollowerInfo { .. }
        | LinkMsg::AckEpoch { .. }
        | LinkMsg::AckNewLeader { .. }
        | LinkMsg::Ack { .. }
        | LinkMsg::Pong => {} // Leader-bound: a confused peer.
    }
}

fn new_epoch<T, A>(zab: &mut Zab<T, A>, now_ms: u64, epoch: u32, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    if epoch < zab.epochs.accepted {
        // Promised a later epoch to someone else already.
        return zab.become_looking(now_ms, out);
    }
    let ack = LinkMsg::AckEpoch {
        current_epoch: zab.epochs.current,
        summary: zab.history.summary(zab.committed),
        repaired: zab.repaired,
    };
    me(zab).phase = Phase::Syncing;
    if epoch == zab.epochs.accepted {
        return me(zab).send(ack, out);
    }
    zab.epochs.accepted = epoch;
    let token = zab.write_epochs(out);
    let link = me(zab).link.id;
    zab.after_persist
        .push((token, AfterPersist::FollowerSend(link, ack)));
}

#[allow(clippy::too_many_arguments)]
fn snap_chunk<T, A>(
    zab: &mut Zab<T, A>,
    now_ms: u64,
    zxid: Zxid,
    offset: u64,
    total: u64,
    bytes: Vec<u8>,
    out: &mut ZabOut<T, A>,
) where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let f = me(zab);
    if offset == 0 {
        f.snap = Some((zxid, total, Vec::new()));
    }
    let ok = match &mut f.snap {
        Some((z, t, buf)) if *z == zxid && *t == total && buf.len() as u64 == offset => {
            let fits = (total as usize) <= MAX_BLOB_BYTES && offset + bytes.len() as u64 <= total;
            if fits {
                buf.extend_from_slice(&bytes);
            }
            fits
        }
        _ => false,
    };
    if !ok {
        return zab.become_looking(now_ms, out);
    }
    let complete = matches!(&f.snap, Some((_, t, buf)) if buf.len() as u64 == *t);
    if !complete {
        return;
    }
    let (zxid, _, bytes) = f.snap.take().expect("complete");
    let first = zab.history.reset(zxid);
    zab.committed = zxid;
    zab.durable = zxid;
    zab.snapshot = SnapshotBlob {
        zxid,
        bytes: bytes.clone(),
    };
    let blob = super::encode(&zab.snapshot);
    zab.write(
        vec![
            DiskOp::Put {
                name: SNAPSHOT_BLOB.into(),
                bytes: blob,
            },
            DiskOp::DropPrefix {
                log: LOG.into(),
                first,
            },
        ],
        out,
    );
    out.events.push(ZabEvent::Restore { zxid, bytes });
}

/// Acknowledges what reached the disk since the last ack.
pub(super) fn on_durable<T, A>(zab: &mut Zab<T, A>, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug,
    A: Clone + Debug,
{
    let durable = zab.durable;
    let f = me(zab);
    if f.newleader_acked && durable > f.acked {
        f.acked = durable;
        f.send(LinkMsg::Ack { zxid: durable }, out);
    }
}

pub(super) fn tick<T, A>(zab: &mut Zab<T, A>, now_ms: u64, out: &mut ZabOut<T, A>)
where
    T: Clone + Debug + Serialize + DeserializeOwned,
    A: Clone + Debug,
{
    let cfg = &zab.cfg;
    let f = match &zab.role {
        Role::Following(f) => f,
        _ => return,
    };
    let silent = now_ms.saturating_sub(f.link.last_heard_ms) > cfg.sync_limit_ms;
    let slow_start =
        f.phase != Phase::Broadcast && now_ms.saturating_sub(f.started_ms) > cfg.init_limit_ms;
    let gap = f.link.check_gap(now_ms, cfg.gap_timeout_ms).is_err();
    // The leader may still have been looking when FOLLOWERINFO arrived, and dropped it.
    let unanswered = f.phase == Phase::Discovery
        && !f.link.received_any()
        && now_ms.saturating_sub(f.link.last_heard_ms) >= cfg.election_resend_ms;
    if silent || slow_start || gap {
        zab.become_looking(now_ms, out);
    } else if unanswered {
        let leader = f.leader();
        let started_ms = f.started_ms;
        zab.become_following(now_ms, leader, out);
        me(zab).started_ms = started_ms;
    }
}
