//! Scripted situations the random fault plan reaches rarely or cannot be asserted on:
//! a replica that missed compacted history catches up by snapshot; weak voting survives a
//! delegate that dies before deciding; bad requests get error replies; a seed replays
//! exactly.

mod common;

use checkers::txn::Workload;
use common::*;
use machine::NodeId;
use repdb::proto::{AbortReason, Mop, Refusal, Request, Response, Val};
use repdb::{Mode, Replica};
use sim::{ClientConfig, ClientIo, SimClient};
use std::cell::RefCell;
use std::rc::Rc;

fn leader(sim: &sim::Sim<Replica>) -> Option<NodeId> {
    sim.members().iter().copied().find(|&n| {
        sim.node(n)
            .is_some_and(|r| r.zab().is_leading() && r.is_serving())
    })
}

#[test]
fn a_replica_that_missed_compacted_history_catches_up_by_snapshot_and_converges() {
    let mut setup = Setup::new(Mode::Certification, Workload::ListAppend, Plan::Quiet);
    setup.run_ms = 4_000;
    let mut config = setup.config();
    // Keep almost no log below each snapshot, so n3 cannot be sent a DIFF.
    config.zab.log_retain = 2;
    let (mut sim, shared) = start_with(7, &setup, config).unwrap();
    sim.run_until(|s| leader(s).is_some(), 5_000).unwrap();
    sim.crash(3);
    sim.run_until(|s| s.clients_done(), 60_000).unwrap();
    let leader = leader(&sim).expect("n1 and n2 keep a leader");
    let log = &sim.durable(leader).logs["txn"];
    assert!(
        log.first > 50,
        "the leader's log was not compacted: {log:?}"
    );
    assert!(!sim.durable(3).blobs.contains_key("snapshot"));
    sim.restart(3);
    let out = finish(&mut sim, &setup, &shared).unwrap();
    assert!(
        out.anomalies().is_empty() && out.diverged.is_empty(),
        "{out:?}"
    );
    assert!(out.applied >= 100, "{out:?}");
    assert!(
        sim.durable(3).blobs.contains_key("snapshot"),
        "n3 caught up without a snapshot"
    );
}

#[test]
fn weak_voting_aborts_the_write_set_of_a_delegate_that_died_before_deciding() {
    let setup = Setup::new(Mode::WeakVoting, Workload::ListAppend, Plan::Quiet);
    let (mut sim, shared) = start(11, &setup).unwrap();
    // The moment the leader delivers a write set another replica delegates, that replica
    // has not yet heard the commit, so it has not decided: crash it then, and keep it down
    // past the leader's timeout.
    let waiting = |s: &sim::Sim<Replica>| {
        let l = leader(s)?;
        s.node(l)?
            .db()
            .voting()
            .find(|v| v.txn.delegate != l && v.decision.is_none())
            .map(|v| (l, v.txn.delegate, v.txn.id))
    };
    sim.run_until(|s| waiting(s).is_some(), 10_000).unwrap();
    let (l, delegate, victim) = waiting(&sim).expect("found");
    sim.crash(delegate);
    // The leader's timeout (1 s) aborts it and the queue behind it drains.
    sim.run_until(
        |s| {
            s.node(l)
                .is_some_and(|r| r.db().voting().all(|v| v.txn.id != victim))
        },
        3_000,
    )
    .unwrap();
    sim.restart(delegate);
    let dumps = {
        let out = finish(&mut sim, &setup, &shared).unwrap();
        assert!(
            out.anomalies().is_empty() && out.diverged.is_empty(),
            "{out:?}"
        );
        assert!(out.applied >= 50, "{out:?}");
        dump_all(&mut sim).unwrap()
    };
    for (node, d) in dumps {
        assert!(
            !d.applied.contains(&victim),
            "n{node} applied {victim}, which its silent delegate never decided"
        );
    }
}

/// Sends a fixed list of requests one after another (some in pairs, pipelined) once the
/// replica serves, and records every answer.
struct Script {
    steps: Vec<Vec<Request>>,
    next: usize,
    waiting: usize,
    serving: bool,
    answers: Rc<RefCell<Vec<Response>>>,
}

impl SimClient<Replica> for Script {
    fn on_idle(&mut self, io: &mut ClientIo<'_, Replica>) {
        if self.waiting > 0 {
            return;
        }
        if !self.serving {
            self.waiting = 1;
            return io.send(Request::Status);
        }
        let Some(step) = self.steps.get(self.next) else {
            return io.stop();
        };
        self.next += 1;
        self.waiting = step.len();
        for req in step.clone() {
            io.send(req);
        }
    }

    fn on_response(&mut self, _io: &mut ClientIo<'_, Replica>, resp: Response) {
        self.waiting = self.waiting.saturating_sub(1);
        match resp {
            Response::Status { serving, .. } if !self.serving => self.serving = serving,
            other => self.answers.borrow_mut().push(other),
        }
    }
}

#[test]
fn bad_requests_get_error_replies_naming_the_replica() {
    let setup = Setup::new(Mode::Certification, Workload::ListAppend, Plan::Quiet);
    let mut sim = sim::Sim::new(5, sim_config(Plan::Quiet, NODES), setup.config()).unwrap();
    let answers = Rc::new(RefCell::new(Vec::new()));
    let read = |key| Mop::Read { key, value: None };
    let txn = |id, ops| Request::Txn { id, ops };
    let steps = vec![
        vec![txn(1, vec![])],
        vec![txn(2, (0..65).map(read).collect())],
        vec![txn(
            3,
            vec![Mop::Read {
                key: 1,
                value: Some(Val::Int(1)),
            }],
        )],
        vec![txn(4, vec![Mop::Append { key: 1, value: 1 }])],
        vec![txn(5, vec![Mop::Write { key: 1, value: 2 }])],
        vec![txn(4, vec![Mop::Append { key: 2, value: 1 }])],
        vec![
            txn(6, vec![Mop::Append { key: 3, value: 1 }]),
            txn(6, vec![Mop::Append { key: 3, value: 2 }]),
        ],
        vec![txn(7, vec![read(1), read(9)])],
        vec![Request::ApplyLog { from: 1_000 }],
        vec![Request::State { from_key: 0 }],
    ];
    let count = steps.iter().map(Vec::len).sum::<usize>();
    let client = Script {
        steps,
        next: 0,
        waiting: 0,
        serving: false,
        answers: answers.clone(),
    };
    let cfg = ClientConfig {
        node: Some(2),
        ..sim.config().client.clone()
    };
    sim.add_client_with(client, cfg);
    sim.run_until(|s| s.clients_done(), 10_000).unwrap();
    let answers = answers.borrow();
    assert_eq!(answers.len(), count, "{answers:#?}");
    let refused = |i: usize| match &answers[i] {
        Response::Refused {
            replica: 2, why, ..
        } => why.clone(),
        other => panic!("answer {i}: {other:?}"),
    };
    let aborted = |i: usize| match &answers[i] {
        Response::Aborted {
            replica: 2, reason, ..
        } => reason.clone(),
        other => panic!("answer {i}: {other:?}"),
    };
    assert!(matches!(refused(0), Refusal::Malformed(m) if m.contains("at least one")));
    assert!(matches!(refused(1), Refusal::Malformed(m) if m.contains("65 micro-ops")));
    assert!(matches!(refused(2), Refusal::Malformed(m) if m.contains("nil")));
    assert!(matches!(
        answers[3],
        Response::Committed {
            id: 4,
            replica: 2,
            ..
        }
    ));
    assert_eq!(aborted(4), AbortReason::WrongType { key: 1 });
    assert_eq!(aborted(5), AbortReason::DuplicateId);
    // The duplicate is refused at once, before the first is done.
    assert_eq!(refused(6), Refusal::DuplicatePending);
    assert!(matches!(answers[7], Response::Committed { id: 6, .. }));
    match &answers[8] {
        Response::Committed { ops, .. } => assert_eq!(
            ops,
            &vec![
                Mop::Read {
                    key: 1,
                    value: Some(Val::List(vec![1]))
                },
                Mop::Read {
                    key: 9,
                    value: None
                }
            ]
        ),
        other => panic!("{other:?}"),
    }
    match &answers[9] {
        Response::ApplyLog { from, ids, end, .. } => {
            assert_eq!((*from, ids.len(), *end), (2, 0, 2))
        }
        other => panic!("{other:?}"),
    }
    match &answers[10] {
        Response::State {
            entries, next_key, ..
        } => {
            assert_eq!(
                entries,
                &vec![(1, Val::List(vec![1])), (3, Val::List(vec![1]))]
            );
            assert_eq!(*next_key, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_seed_replays_exactly() {
    let setup = Setup::new(Mode::WeakVoting, Workload::RwRegister, Plan::Chaos);
    let once = || {
        let (mut sim, shared) = start(42, &setup).unwrap();
        let out = finish(&mut sim, &setup, &shared).unwrap();
        (sim.trace_hash(), sim.history_jsonl(), out.applied)
    };
    let (a, b) = (once(), once());
    assert_eq!(a.0, b.0, "trace hashes differ");
    assert_eq!(a.1, b.1, "histories differ");
    assert_eq!(a.2, b.2);
}
