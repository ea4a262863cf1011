use super::*;
use crate::coord::workloads::lock::test_history::Builder;
use checkers::history::OpType::{Info, Ok as OkT};

fn node(token: u64, session: u64) -> Value {
    json!({ "token": token, "session": session, "path": format!("/e/n-{token}") })
}

fn volunteer(b: Builder, p: u64, token: u64, session: u64) -> Builder {
    b.done(p, "volunteer", OkT, node(token, session))
}

fn lead(b: Builder, p: u64, token: u64, session: u64) -> Builder {
    b.done(p, "lead", OkT, node(token, session))
}

fn observe(b: Builder, p: u64, leader: Option<(u64, u64)>) -> Builder {
    let l = leader.map_or(Value::Null, |(t, s)| node(t, s));
    b.done(p, "observe", OkT, json!({ "leader": l }))
}

fn kinds(v: &Verdict) -> Vec<String> {
    v.details["reported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect()
}

/// 0 leads in epoch 10, resigns; 1 (epoch 20) takes over; observers agree.
fn succession() -> Builder {
    let b = volunteer(volunteer(Builder::default(), 0, 10, 100), 1, 20, 200);
    let b = observe(lead(b, 0, 10, 100), 5, Some((10, 100)));
    let b = b.done(0, "resign", OkT, json!({ "token": 10 }));
    observe(lead(b, 1, 20, 200), 5, Some((20, 200)))
}

#[test]
fn a_succession_of_leaders_is_valid() {
    let b = observe(succession(), 6, None);
    let v = check(&b.build());
    assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
    assert_eq!(v.details["epochs"], 2);
    assert_eq!(v.details["claims"], 4);
}

#[test]
fn an_empty_history_is_valid() {
    assert_eq!(check(&Builder::default().build()).valid, Validity::Valid);
}

#[test]
fn two_sessions_in_one_epoch_are_two_leaders() {
    let b = observe(succession(), 6, Some((20, 999)));
    let v = check(&b.build());
    assert_eq!(kinds(&v), ["epoch-conflict"]);
    assert!(v.explanation.contains("epoch 20"), "{}", v.explanation);
}

#[test]
fn leading_without_a_candidacy_or_after_resigning_is_caught() {
    let v = check(&lead(Builder::default(), 0, 10, 100).build());
    assert_eq!(kinds(&v), ["non-member-leader"]);
    let b = volunteer(Builder::default(), 0, 10, 100);
    let b = b.done(0, "resign", OkT, json!({ "token": 10 }));
    let v = check(&lead(b, 0, 10, 100).build());
    assert_eq!(kinds(&v), ["non-member-leader"]);
}

#[test]
fn observing_a_resigned_or_unborn_or_unknown_leader_is_caught() {
    let b = volunteer(Builder::default(), 0, 10, 100);
    let b = b.done(0, "resign", OkT, json!({ "token": 10 }));
    assert_eq!(
        kinds(&check(&observe(b, 5, Some((10, 100))).build())),
        ["resigned-leader"]
    );
    let b = volunteer(observe(Builder::default(), 5, Some((10, 100))), 0, 10, 100);
    assert_eq!(kinds(&check(&b.build())), ["leader-before-candidacy"]);
    let b = observe(Builder::default(), 5, Some((10, 100)));
    assert_eq!(kinds(&check(&b.build())), ["unknown-leader"]);
}

#[test]
fn an_info_volunteer_may_be_the_leader_nobody_heard_of() {
    let b = Builder::default().done(0, "volunteer", Info, Value::Null);
    let v = check(&observe(b, 5, Some((10, 100))).build());
    assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
    // A volunteer never answered counts as unknown too.
    let b = Builder::default().invoke(0, "volunteer");
    assert_eq!(
        check(&observe(b, 5, Some((10, 100))).build()).valid,
        Validity::Valid
    );
}

#[test]
fn an_older_epoch_after_a_newer_one_is_caught_but_not_when_they_overlap() {
    let b = volunteer(volunteer(Builder::default(), 0, 10, 100), 1, 20, 200);
    let b = observe(observe(b, 5, Some((20, 200))), 6, Some((10, 100)));
    assert_eq!(kinds(&check(&b.build())), ["epoch-regress"]);
    let b = volunteer(volunteer(Builder::default(), 0, 10, 100), 1, 20, 200);
    let b = b.invoke(5, "observe").invoke(6, "observe");
    let b = b.ok(5, "observe", json!({ "leader": node(20, 200) }));
    let b = b.ok(6, "observe", json!({ "leader": node(10, 100) }));
    assert_eq!(check(&b.build()).valid, Validity::Valid);
}

#[test]
fn malformed_events_give_an_unknown_verdict() {
    let b = Builder::default().done(0, "observe", OkT, json!({ "who": 1 }));
    let v = check(&b.build());
    assert_eq!(v.valid, Validity::Unknown);
    assert!(v.explanation.contains("leader"), "{}", v.explanation);
    let b = Builder::default().done(0, "lead", OkT, json!({ "token": 1 }));
    assert!(check(&b.build()).explanation.contains("session"));
}
