//! The client one worker runs: each history operation as requests to the replicas, and how
//! each answer is recorded (`ok`; `fail`: certainly not applied; `info`: maybe applied).
//!
//! Workers are spread over the replicas (worker `w` starts at replica `w % n`), because what
//! tells the modes apart is conflicting transactions delegated to different replicas. A
//! replica that cannot serve (down, cut off from its quorum, paused past the deadline) is
//! avoided for [`AWAY`], then tried again, so clients neither pile up on one survivor nor keep
//! failing on a dead replica.
//!
//! A transaction that writes may still commit after any error that came once it was sent
//! (its delegate forgets the client, not the broadcast): `info`. One that only reads changes
//! nothing, so it is `fail` whatever happened. A definite answer (`aborted`, `refused`) is
//! `fail`. Every completion names the replica asked (`node`) and, when it writes, the
//! transaction's id (`txn-id`).

use super::conn::{CallError, Conn};
use super::dump::{self, Status};
use super::workload::ClientContext;
use super::{node_name, txn_id, writes, READ_ONLY_IDS, TXN_ID_FIELD};
use crate::client::{Client, Outcome};
use checkers::history::Value;
use repdb::json::{mops_from_json, mops_to_json};
use repdb::proto::{AbortReason, Mop, Refusal, Request, Response, TxnId};
use serde_json::Map;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// How long a replica that could not serve is avoided.
pub const AWAY: Duration = Duration::from_secs(1);
/// `settle`: how long every replica must serve with nothing newly applied.
pub const SETTLED_AFTER: Duration = Duration::from_secs(2);
/// `settle`: time between polls of the replicas' status.
const POLL: Duration = Duration::from_millis(200);

/// One worker's client.
pub struct RepdbClient {
    nodes: Vec<SocketAddr>,
    conns: Vec<Conn>,
    home: usize,
    /// The replica used instead of `home` until the instant, after `home` failed.
    away: Option<(usize, Instant)>,
    timeout: Duration,
    worker: u32,
    read_only_seq: u64,
}

impl RepdbClient {
    pub fn new(ctx: ClientContext) -> RepdbClient {
        let nodes = if ctx.nodes.is_empty() {
            // Nothing to talk to: every call fails, definitely, naming this address.
            vec![SocketAddr::from(([127, 0, 0, 1], 0))]
        } else {
            ctx.nodes
        };
        RepdbClient {
            conns: nodes.iter().map(|&a| Conn::new(a)).collect(),
            home: ctx.worker as usize % nodes.len(),
            nodes,
            away: None,
            timeout: Duration::from_millis(ctx.op_timeout_ms.max(1)),
            worker: ctx.worker,
            read_only_seq: 0,
        }
    }

    /// The replica the next transaction goes to.
    fn replica(&mut self) -> usize {
        match self.away {
            Some((node, until)) if Instant::now() < until => node,
            _ => {
                self.away = None;
                self.home
            }
        }
    }

    /// Replica `node` could not serve: use the next one for a while.
    fn avoid(&mut self, node: usize) {
        let next = (node + 1) % self.nodes.len();
        self.away = Some((next, Instant::now() + AWAY));
    }

    /// A fresh id for a read-only transaction, unique among this run's workers.
    fn read_only_id(&mut self) -> TxnId {
        self.read_only_seq = (self.read_only_seq + 1) & 0xffff_ffff;
        READ_ONLY_IDS | (u64::from(self.worker) << 32) | self.read_only_seq
    }

    async fn txn(&mut self, value: &Value) -> Outcome {
        let mops = match mops_from_json(value) {
            Ok(m) => m,
            Err(e) => return Outcome::fail(value.clone(), format!("not a transaction: {e}")),
        };
        if mops
            .iter()
            .any(|m| matches!(m, Mop::Read { value: Some(_), .. }))
        {
            return Outcome::fail(value.clone(), "reads are invoked with nil");
        }
        let writes = writes(&mops);
        let id = if writes {
            match txn_id(&mops) {
                Some(id) => id,
                None => {
                    return Outcome::fail(
                        value.clone(),
                        "the first write's value names the transaction: it must be a positive \
                         integer below 2^62",
                    )
                }
            }
        } else {
            self.read_only_id()
        };
        let node = self.replica();
        let deadline = Instant::now() + self.timeout;
        let req = Request::Txn {
            id,
            ops: mops.clone(),
        };
        let answer = self.conns[node].call_until(&req, deadline).await;
        let outcome = self.judge(node, value, &mops, id, answer);
        let outcome = if outcome.node.is_none() {
            outcome.at_node(node_name(node as u32 + 1))
        } else {
            outcome
        };
        if writes {
            outcome.with_field(TXN_ID_FIELD, id)
        } else {
            outcome
        }
    }

    /// What replica `node`'s answer (or its absence) to transaction `id` means.
    fn judge(
        &mut self,
        node: usize,
        value: &Value,
        sent: &[Mop],
        id: TxnId,
        answer: Result<Response, CallError>,
    ) -> Outcome {
        let writes = writes(sent);
        let maybe = |why: String| {
            if writes {
                Outcome::info(value.clone(), why)
            } else {
                Outcome::fail(value.clone(), why)
            }
        };
        match answer {
            Ok(Response::Committed {
                id: got,
                replica,
                ops,
            }) if got == id => match answer_matches(sent, &ops) {
                Ok(()) => Outcome::ok(mops_to_json(&ops)),
                Err(why) => maybe(format!("the answer does not match the request: {why}")),
            }
            .at_node(node_name(replica)),
            Ok(Response::Aborted {
                id: got,
                replica,
                reason,
            }) if got == id => {
                if reason == AbortReason::NotServing {
                    self.avoid(node);
                }
                Outcome::fail(value.clone(), format!("aborted: {reason}"))
                    .at_node(node_name(replica))
            }
            Ok(Response::Refused {
                id: got,
                replica,
                why,
            }) if got.is_none_or(|g| g == id) => {
                if matches!(
                    why,
                    Refusal::NotServing | Refusal::Broken(_) | Refusal::Busy { .. }
                ) {
                    self.avoid(node);
                }
                Outcome::fail(value.clone(), format!("refused: {why}")).at_node(node_name(replica))
            }
            Ok(Response::Unknown {
                id: got,
                replica,
                why,
            }) if got == id => {
                self.avoid(node);
                maybe(format!("unknown: {why}")).at_node(node_name(replica))
            }
            Ok(other) => {
                // An answer to something else: the connection cannot be trusted any more.
                self.conns[node] = Conn::new(self.nodes[node]);
                maybe(format!("unexpected answer {other:?}"))
            }
            Err(e) => {
                self.avoid(node);
                if e.is_definite() {
                    Outcome::fail(value.clone(), e.to_string())
                } else {
                    maybe(e.to_string())
                }
            }
        }
    }

    /// Polls every replica until all serve and none applied anything for [`SETTLED_AFTER`].
    async fn settle(&mut self, value: &Value) -> Outcome {
        let deadline = Instant::now() + self.timeout;
        let mut last: Option<(Vec<Status>, Instant)> = None;
        loop {
            let mut statuses = Vec::with_capacity(self.conns.len());
            let mut problem = None;
            for (i, conn) in self.conns.iter_mut().enumerate() {
                let name = node_name(i as u32 + 1);
                match dump::status(conn, deadline).await {
                    Ok(s) if s.serving => statuses.push(s),
                    Ok(_) => problem = Some(format!("{name} does not serve")),
                    Err(e) => problem = Some(format!("{name}: {e}")),
                }
            }
            let now = Instant::now();
            if problem.is_none() {
                let same = last.as_ref().is_some_and(|(prev, _)| {
                    prev.iter()
                        .zip(&statuses)
                        .all(|(a, b)| a.applied == b.applied && a.version == b.version)
                });
                match &last {
                    Some((_, since)) if same && now.duration_since(*since) >= SETTLED_AFTER => {
                        let m: Map<String, Value> = statuses
                            .iter()
                            .map(|s| (s.replica.clone(), s.to_json()))
                            .collect();
                        return Outcome::ok(Value::Object(m));
                    }
                    _ if same => {}
                    _ => last = Some((statuses, now)),
                }
            } else {
                last = None;
            }
            if now + POLL >= deadline {
                let why = problem.unwrap_or_else(|| {
                    format!(
                        "the replicas were still applying transactions (settling takes {} ms \
                         without any; the operation timeout allows {} ms)",
                        SETTLED_AFTER.as_millis(),
                        self.timeout.as_millis()
                    )
                });
                return Outcome::fail(value.clone(), format!("not settled: {why}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One replica's whole apply log and state.
    async fn apply_log(&mut self, value: &Value) -> Outcome {
        let Some(node) = value["replica"]
            .as_str()
            .and_then(|n| n.strip_prefix('n'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| (1..=self.nodes.len()).contains(&n))
        else {
            return Outcome::fail(
                value.clone(),
                format!(
                    "apply-log takes {{\"replica\": \"nK\"}} with K from 1 to {}",
                    self.nodes.len()
                ),
            );
        };
        let name = node_name(node as u32);
        let deadline = Instant::now() + self.timeout;
        match dump::fetch(&mut self.conns[node - 1], &name, deadline).await {
            Ok(d) => Outcome::ok(d.to_json()),
            Err(e) => Outcome::fail(value.clone(), e.to_string()),
        }
        .at_node(name)
    }
}

impl Client for RepdbClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        match f {
            "txn" => self.txn(value).await,
            "settle" => self.settle(value).await,
            "apply-log" => self.apply_log(value).await,
            other => Outcome::fail(
                value.clone(),
                format!("unknown operation {other:?} for the replicated database"),
            ),
        }
    }
}

/// Whether a committed transaction's micro-ops are the ones sent, with reads filled in.
pub fn answer_matches(sent: &[Mop], got: &[Mop]) -> Result<(), String> {
    if sent.len() != got.len() {
        return Err(format!(
            "{} micro-ops sent, {} answered",
            sent.len(),
            got.len()
        ));
    }
    for (i, (s, g)) in sent.iter().zip(got).enumerate() {
        let same = match (s, g) {
            (Mop::Read { key: a, .. }, Mop::Read { key: b, .. }) => a == b,
            _ => s == g,
        };
        if !same {
            return Err(format!("micro-op {i}: sent {s:?}, answered {g:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use repdb::proto::Val;

    fn client(nodes: usize, worker: u32) -> RepdbClient {
        RepdbClient::new(ClientContext {
            nodes: (0..nodes)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)))
                .collect(),
            worker,
            op_timeout_ms: 100,
        })
    }

    #[test]
    fn workers_spread_over_replicas_and_avoid_a_failed_one_for_a_while() {
        let mut c = client(3, 4);
        assert_eq!(c.replica(), 1);
        c.avoid(1);
        assert_eq!(c.replica(), 2);
        c.away = Some((2, Instant::now()));
        assert_eq!(c.replica(), 1, "back home once the time is up");
    }

    #[test]
    fn read_only_ids_differ_between_workers_and_never_name_a_write() {
        let (mut a, mut b) = (client(3, 0), client(3, 1));
        let (x, y) = (a.read_only_id(), b.read_only_id());
        assert_ne!(x, y);
        assert_ne!(a.read_only_id(), x);
        assert!(x >= READ_ONLY_IDS && y >= READ_ONLY_IDS);
    }

    #[test]
    fn answers_are_judged_by_what_they_say_and_whether_the_transaction_writes() {
        let mut c = client(3, 0);
        let sent = vec![
            Mop::Read {
                key: 1,
                value: None,
            },
            Mop::Append { key: 1, value: 9 },
        ];
        let value = mops_to_json(&sent);
        let mut got = sent.clone();
        got[0] = Mop::Read {
            key: 1,
            value: Some(Val::List(vec![3])),
        };
        let ok = c.judge(
            0,
            &value,
            &sent,
            9,
            Ok(Response::Committed {
                id: 9,
                replica: 2,
                ops: got,
            }),
        );
        assert_eq!(ok.op_type, checkers::history::OpType::Ok);
        assert_eq!(ok.node.as_deref(), Some("n2"));
        assert_eq!(ok.value[0], serde_json::json!(["r", 1, [3]]));
        let lost = c.judge(0, &value, &sent, 9, Err(CallError::Indefinite("x".into())));
        assert_eq!(lost.op_type, checkers::history::OpType::Info);
        let read = [Mop::Read {
            key: 1,
            value: None,
        }];
        let lost_read = c.judge(0, &value, &read, 5, Err(CallError::Indefinite("x".into())));
        assert_eq!(lost_read.op_type, checkers::history::OpType::Fail);
        let aborted = c.judge(
            0,
            &value,
            &sent,
            9,
            Ok(Response::Aborted {
                id: 9,
                replica: 1,
                reason: AbortReason::ReadConflict { key: 1 },
            }),
        );
        assert_eq!(aborted.op_type, checkers::history::OpType::Fail);
        let other = c.judge(
            0,
            &value,
            &sent,
            9,
            Ok(Response::Aborted {
                id: 8,
                replica: 1,
                reason: AbortReason::DuplicateId,
            }),
        );
        assert_eq!(other.op_type, checkers::history::OpType::Info, "not ours");
        assert!(answer_matches(&sent, &sent[..1]).is_err());
    }
}
