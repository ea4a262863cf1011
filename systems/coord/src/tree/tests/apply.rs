//! What apply refuses, and how.

use super::*;

#[test]
#[should_panic(expected = "applied after")]
fn applying_out_of_zxid_order_panics() {
    let mut tree = Tree::new();
    let txn = Txn {
        time_ms: 0,
        op: TxnOp::CreateSession {
            session: 1,
            timeout_ms: 1,
        },
    };
    apply(&mut tree, 5, &txn);
    apply(&mut tree, 5, &txn);
}

#[test]
fn a_txn_that_does_not_fit_the_tree_fails_on_every_replica_alike() {
    let mut tree = Tree::new();
    let orphan = Txn {
        time_ms: 0,
        op: TxnOp::Create(CreateTxn {
            path: "/no/parent".into(),
            data: vec![],
            acl: Acl::open(),
            ephemeral_owner: 0,
            parent_cversion: 1,
        }),
    };
    let (result, events) = apply(&mut tree, 1, &orphan);
    assert_eq!(result, TxnResult::Failed(ErrorCode::NoNode));
    assert!(events.is_empty());
    assert_eq!(tree.last_zxid(), 1);
    assert_eq!(tree.node_count(), 1);
}
