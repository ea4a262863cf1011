//! Properties over random request sequences:
//! - pipelining changes no decision: preparing against outstanding proposals gives the
//!   same transactions and errors as preparing each request after the previous commits;
//! - replicas agree: applying the log, directly or through a snapshot taken midway, gives
//!   equal trees and digests, and no prepared transaction fails to apply;
//! - nothing panics on arbitrary paths, data, ACLs or snapshot bytes.

use super::*;
use crate::api::*;
use proptest::prelude::*;
use std::collections::VecDeque;

const SESSIONS: [SessionId; 3] = [0x11, 0x22, 0x33];
const PATHS: [&str; 8] = ["/a", "/b", "/a/b", "/a/c", "/b/a", "/a/b/c", "/a/", "/"];

fn bob() -> Vec<Id> {
    acl::authenticate("digest", b"bob:pw", None).unwrap()
}

fn auths() -> [Vec<Id>; 3] {
    let eve = acl::authenticate("digest", b"eve:pw", None).unwrap();
    [vec![], bob(), eve]
}

#[derive(Clone, Debug)]
enum Step {
    Write {
        session: usize,
        auth: usize,
        request: Request,
    },
    Open(usize),
    Close(usize, Cleanup),
    /// Commit up to this many pending proposals (when pipelining).
    Commit(usize),
}

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(&PATHS[..]).prop_map(String::from)
}

fn version() -> impl Strategy<Value = i32> {
    prop_oneof![Just(-1), 0..3i32]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4)
}

fn flags() -> impl Strategy<Value = CreateFlags> {
    any::<(bool, bool)>().prop_map(|(ephemeral, sequence)| CreateFlags {
        ephemeral,
        sequence,
    })
}

fn acl_list() -> impl Strategy<Value = Vec<Acl>> {
    let bob_all = vec![Acl::new(Perms::ALL, bob()[0].clone())];
    prop_oneof![
        4 => Just(Acl::open()),
        1 => Just(Acl::read_only()),
        1 => Just(Acl::creator_all()),
        1 => Just(bob_all),
    ]
}

fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        (path(), version())
            .prop_map(|(path, version)| MultiOp::Check(CheckRequest { path, version })),
        (path(), data(), acl_list(), flags()).prop_map(|(path, data, acl, flags)| {
            MultiOp::Create(CreateRequest {
                path,
                data,
                acl,
                flags,
            })
        }),
        (path(), version())
            .prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
        (path(), data(), version()).prop_map(|(path, data, version)| MultiOp::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
    ]
}

fn write_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        4 => (path(), data(), acl_list(), flags()).prop_map(|(path, data, acl, flags)| {
            Request::Create(CreateRequest { path, data, acl, flags })
        }),
        2 => (path(), version()).prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
        2 => (path(), data(), version()).prop_map(|(path, data, version)| Request::SetData(SetDataRequest {
            path,
            data,
            version
        })),
        1 => (path(), acl_list(), version()).prop_map(|(path, acl, version)| Request::SetAcl {
            path,
            acl,
            version
        }),
        2 => prop::collection::vec(multi_op(), 0..4).prop_map(|ops| Request::Multi { ops }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let cleanup = prop_oneof![
        4 => Just(Cleanup::DeleteEphemerals),
        1 => Just(Cleanup::KeepEphemerals),
    ];
    prop_oneof![
        10 => (0..3usize, 0..3usize, write_request()).prop_map(|(session, auth, request)| {
            Step::Write { session, auth, request }
        }),
        1 => (0..3usize).prop_map(Step::Open),
        1 => (0..3usize, cleanup).prop_map(|(s, c)| Step::Close(s, c)),
        3 => (0..4usize).prop_map(Step::Commit),
    ]
}

/// A leader run: what prepare decided at each step, and the committed log.
struct Run {
    decisions: Vec<Result<TxnOp, ErrorCode>>,
    log: Vec<(Zxid, Txn)>,
    tree: Tree,
}

struct Leader {
    tree: Tree,
    outstanding: Outstanding,
    pending: VecDeque<(Zxid, Txn)>,
    log: Vec<(Zxid, Txn)>,
    counter: u32,
}

impl Leader {
    fn commit(&mut self, n: usize) {
        for _ in 0..n {
            let Some((zxid, txn)) = self.pending.pop_front() else {
                return;
            };
            let (result, _) = apply(&mut self.tree, zxid, &txn);
            assert!(
                !matches!(result, TxnResult::Failed(_)),
                "{txn:?}: {result:?}"
            );
            self.outstanding.commit(zxid);
            self.log.push((zxid, txn));
        }
    }

    fn prepare(&self, step: &Step, zxid: Zxid, time_ms: u64) -> Option<Result<Txn, ErrorCode>> {
        let (tree, out) = (&self.tree, &self.outstanding);
        Some(match step {
            Step::Write {
                session,
                auth,
                request,
            } => {
                let auth = &auths()[*auth];
                prepare(tree, out, SESSIONS[*session], auth, request, zxid, time_ms)
            }
            Step::Open(s) => prepare_create_session(tree, out, SESSIONS[*s], 100, time_ms),
            Step::Close(s, cleanup) => {
                prepare_close_session(tree, out, SESSIONS[*s], *cleanup, time_ms)
            }
            Step::Commit(_) => return None,
        })
    }
}

fn run(steps: &[Step], pipelined: bool) -> Run {
    let mut leader = Leader {
        tree: Tree::new(),
        outstanding: Outstanding::new(),
        pending: VecDeque::new(),
        log: Vec::new(),
        counter: 0,
    };
    let mut decisions = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if let Step::Commit(n) = step {
            leader.commit(if pipelined { *n } else { 0 });
            continue;
        }
        let zxid = make_zxid(1, leader.counter + 1);
        let prepared = leader
            .prepare(step, zxid, i as u64 * 10)
            .expect("not a commit");
        if let Ok(txn) = &prepared {
            leader.outstanding.propose(&leader.tree, zxid, txn).unwrap();
            leader.pending.push_back((zxid, txn.clone()));
            leader.counter += 1;
        }
        decisions.push(prepared.map(|txn| txn.op));
        if !pipelined {
            leader.commit(usize::MAX);
        }
    }
    leader.commit(usize::MAX);
    assert!(leader.outstanding.is_empty());
    Run {
        decisions,
        log: leader.log,
        tree: leader.tree,
    }
}

/// Sessions open first, so that most writes have a live session to run in.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..80).prop_map(|mut steps| {
        steps.splice(0..0, (0..3).map(Step::Open));
        steps
    })
}

fn replay(log: &[(Zxid, Txn)]) -> Tree {
    let mut tree = Tree::new();
    for (zxid, txn) in log {
        let (result, _) = apply(&mut tree, *zxid, txn);
        assert!(!matches!(result, TxnResult::Failed(_)));
    }
    tree
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn pipelining_changes_no_decision(steps in steps()) {
        let pipelined = run(&steps, true);
        let sequential = run(&steps, false);
        prop_assert_eq!(&pipelined.decisions, &sequential.decisions);
        prop_assert_eq!(pipelined.tree.digest(), sequential.tree.digest());
        prop_assert_eq!(pipelined.tree, sequential.tree);
    }

    #[test]
    fn replicas_agree_directly_and_through_a_snapshot(steps in steps(), cut in 0.0..1.0f64) {
        let leader = run(&steps, true);
        let direct = replay(&leader.log);
        let at = (leader.log.len() as f64 * cut) as usize;
        let before = replay(&leader.log[..at]);
        let mut restored = Tree::from_snapshot(&before.to_snapshot()).unwrap();
        prop_assert_eq!(restored.digest(), before.digest());
        for (zxid, txn) in &leader.log[at..] {
            apply(&mut restored, *zxid, txn);
        }
        prop_assert_eq!(direct.check_invariants(), Ok(()));
        prop_assert_eq!(restored.check_invariants(), Ok(()));
        prop_assert_eq!(direct.digest(), leader.tree.digest());
        prop_assert_eq!(restored.digest(), leader.tree.digest());
        prop_assert_eq!(restored.to_snapshot(), leader.tree.to_snapshot());
        prop_assert_eq!(&restored, &leader.tree);
    }

    #[test]
    fn transactions_survive_the_wire(steps in steps()) {
        for (_, txn) in run(&steps, true).log {
            let bytes = postcard::to_stdvec(&txn).unwrap();
            prop_assert!(bytes.len() <= MAX_TXN_BYTES);
            prop_assert_eq!(postcard::from_bytes::<Txn>(&bytes).unwrap(), txn);
        }
    }
}

fn wild_id() -> impl Strategy<Value = Id> {
    let scheme = prop_oneof![
        Just("world".to_string()),
        Just("digest".into()),
        Just("auth".into()),
        ".{0,8}"
    ];
    (scheme, ".{0,12}").prop_map(|(scheme, id)| Id { scheme, id })
}

fn wild_acl() -> impl Strategy<Value = Vec<Acl>> {
    let entry = (any::<u32>(), wild_id()).prop_map(|(perms, id)| Acl::new(Perms(perms & 63), id));
    prop::collection::vec(entry, 0..3)
}

fn wild_path() -> impl Strategy<Value = String> {
    prop_oneof![
        path(),
        "[/a.\\x00\u{e000}]{0,8}",
        ".{0,16}",
        Just("/".repeat(MAX_PATH_BYTES))
    ]
}

fn wild_request() -> impl Strategy<Value = Request> {
    let data = prop::collection::vec(any::<u8>(), 0..16);
    prop_oneof![
        (wild_path(), data.clone(), wild_acl(), flags()).prop_map(|(path, data, acl, flags)| {
            Request::Create(CreateRequest {
                path,
                data,
                acl,
                flags,
            })
        }),
        (wild_path(), any::<i32>())
            .prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
        (wild_path(), data, any::<i32>()).prop_map(|(path, data, version)| Request::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        (wild_path(), wild_acl(), any::<i32>()).prop_map(|(path, acl, version)| Request::SetAcl {
            path,
            acl,
            version
        }),
        (wild_path(), any::<bool>()).prop_map(|(path, watch)| Request::GetData { path, watch }),
        (wild_path(), any::<bool>()).prop_map(|(path, watch)| Request::Exists { path, watch }),
        (wild_path(), any::<bool>()).prop_map(|(path, watch)| Request::GetChildren { path, watch }),
        wild_path().prop_map(|path| Request::GetAcl { path }),
        prop::collection::vec(multi_op(), 0..3).prop_map(|ops| Request::Multi { ops }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nothing_panics_on_arbitrary_requests(requests in prop::collection::vec(wild_request(), 1..30)) {
        let mut tree = Tree::new();
        let mut watches = Watches::new();
        let session = SESSIONS[0];
        let open = prepare_create_session(&tree, &Outstanding::new(), session, 1, 0).unwrap();
        apply(&mut tree, 1, &open);
        for (i, request) in requests.iter().enumerate() {
            let zxid = i as u64 + 2;
            let none = Outstanding::new();
            if let Ok(txn) = prepare(&tree, &none, session, &bob(), request, zxid, 0) {
                let (result, _) = apply(&mut tree, zxid, &txn);
                prop_assert!(!matches!(result, TxnResult::Failed(_)));
            } else {
                tree.set_last_zxid(zxid);
            }
            let _ = read(&tree, &mut watches, &1u64, &bob(), request);
        }
        prop_assert_eq!(tree.check_invariants(), Ok(()));
    }

    #[test]
    fn loading_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(tree) = Tree::from_snapshot(&bytes) {
            prop_assert_eq!(tree.check_invariants(), Ok(()));
        }
    }
}
