use super::*;
use crate::coord::workloads::lock::test_history::Builder;
use checkers::history::OpType::{Info, Ok as OkT};

fn acquire(b: Builder, p: u64, token: u64) -> Builder {
    b.done(p, "acquire", OkT, json!({ "token": token }))
}

fn write(b: Builder, p: u64, token: u64, id: &str, seq: u64) -> Builder {
    b.done(
        p,
        "write",
        OkT,
        json!({ "token": token, "id": id, "seq": seq }),
    )
}

fn read(b: Builder, log: Value) -> Builder {
    b.done(9, "read", OkT, json!({ "log": log }))
}

/// Two holders in turn, each writing, then the final read of both writes.
fn two_holders() -> Builder {
    let b = acquire(Builder::default(), 0, 10);
    let b = write(b, 0, 10, "w0n1", 0).done(0, "release", OkT, json!({"token": 10}));
    let b = acquire(b, 1, 20);
    write(b, 1, 20, "w1n1", 1)
}

fn kinds(v: &Verdict) -> Vec<String> {
    v.details["reported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn successive_holders_with_rising_tokens_are_valid() {
    let h = read(two_holders(), json!([[10, "w0n1", 0], [20, "w1n1", 1]])).build();
    let v = check(&h, true);
    assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
    assert_eq!(v.details["grants"], 2);
    assert_eq!(v.details["accepted"], 2);
}

#[test]
fn an_empty_history_is_valid() {
    let v = check(&Builder::default().nemesis("start-pause").build(), true);
    assert_eq!(v.valid, Validity::Valid);
    assert_eq!(v.details["accepted"], 0);
}

#[test]
fn a_stale_write_in_the_log_is_caught_even_when_its_answer_was_lost() {
    // Holder 0 (token 10) writes, stalls; its next write's answer is lost (info); holder 1
    // (token 20) writes; the store applies 0's delayed write afterwards.
    let b = acquire(Builder::default(), 0, 10);
    let b = write(b, 0, 10, "w0n1", 0);
    let b = b.invoke(0, "write");
    let b = acquire(b, 1, 20);
    let b = write(b, 1, 20, "w1n1", 1);
    let b = b.info(0, "write", json!({ "token": 10, "id": "w0n2" }));
    let log = json!([[10, "w0n1", 0], [20, "w1n1", 1], [10, "w0n2", 2]]);
    let v = check(&read(b, log).build(), false);
    assert_eq!(v.valid, Validity::Invalid);
    assert_eq!(kinds(&v), ["stale-write"]);
    assert!(v.explanation.contains("known-unsafe"), "{}", v.explanation);
    assert!(
        v.explanation.contains("w0n2") && v.explanation.contains("token 10"),
        "names the stale write and its token: {}",
        v.explanation
    );
    assert_eq!(v.details["reported"][0]["tokens"], json!([20, 10]));
}

#[test]
fn without_a_final_read_the_ok_writes_places_order_them() {
    let b = acquire(Builder::default(), 0, 10);
    let b = b.invoke(0, "write");
    let b = acquire(b, 1, 20);
    let b = write(b, 1, 20, "w1n1", 4);
    let b = b.ok(0, "write", json!({ "token": 10, "id": "w0n1", "seq": 5 }));
    let v = check(&b.build(), true);
    assert_eq!(kinds(&v), ["stale-write"]);
    // The same writes in the other order are fine.
    let b = acquire(Builder::default(), 0, 10);
    let b = write(b, 0, 10, "w0n1", 4);
    let b = write(acquire(b, 1, 20), 1, 20, "w1n1", 5);
    assert_eq!(check(&b.build(), true).valid, Validity::Valid);
}

#[test]
fn two_holders_with_one_token_are_caught() {
    let b = acquire(acquire(Builder::default(), 0, 10), 1, 10);
    let v = check(&b.build(), true);
    assert_eq!(v.valid, Validity::Invalid);
    assert!(kinds(&v).contains(&"duplicate-token".to_string()));
}

#[test]
fn a_later_acquire_with_an_older_token_is_caught_but_overlapping_ones_are_not() {
    let b = acquire(acquire(Builder::default(), 0, 20), 1, 10);
    let v = check(&b.build(), true);
    assert_eq!(kinds(&v), ["token-order"]);
    // Overlapping: 1 invoked before 0 completed, so either order of tokens is possible.
    let b = Builder::default().invoke(0, "acquire").invoke(1, "acquire");
    let b = b.ok(0, "acquire", json!({"token": 20}));
    let b = b.ok(1, "acquire", json!({"token": 10}));
    assert_eq!(check(&b.build(), true).valid, Validity::Valid);
}

#[test]
fn info_acquires_claim_nothing() {
    // An info acquire may hold the lock, but its token is unknown: no rule applies to it.
    let b = Builder::default().done(0, "acquire", Info, Value::Null);
    let b = write(acquire(b, 1, 20), 1, 20, "w1n1", 0);
    let v = check(&read(b, json!([[20, "w1n1", 0]])).build(), true);
    assert_eq!(v.valid, Validity::Valid, "{}", v.explanation);
}

#[test]
fn a_write_missing_from_the_final_read_is_lost() {
    let v = check(&read(two_holders(), json!([[10, "w0n1", 0]])).build(), true);
    assert_eq!(kinds(&v), ["lost-write"]);
}

#[test]
fn a_token_nobody_was_granted_is_foreign() {
    let b = acquire(Builder::default(), 0, 10);
    let v = check(&read(b, json!([[10, "a", 0], [11, "b", 1]])).build(), true);
    assert_eq!(kinds(&v), ["foreign-token"]);
}

#[test]
fn malformed_events_give_an_unknown_verdict_naming_them() {
    let b = Builder::default().done(0, "acquire", OkT, json!({ "token": "ten" }));
    let v = check(&b.build(), true);
    assert_eq!(v.valid, Validity::Unknown);
    assert!(v.explanation.contains("event 1") && v.explanation.contains("token"));
    let b = read(Builder::default(), json!([[1, "a"]]));
    assert_eq!(check(&b.build(), true).valid, Validity::Unknown);
    let b = Builder::default().done(0, "frobnicate", OkT, Value::Null);
    assert!(check(&b.build(), true).explanation.contains("frobnicate"));
}
