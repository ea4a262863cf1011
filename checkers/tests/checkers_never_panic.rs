//! Every checker that reads a history or an event log answers mutated input with a verdict or
//! an error naming a line, never a panic: small random edits of valid inputs reach deep into
//! the readers and the analyses behind them.

use checkers::history::{jsonl, parse, Format};
use checkers::txn::{self, synth, Options, Workload};
use checkers::{atomic_commit, bank, consistent_cut, long_fork, one_copy, recovery_line, set_full};
use proptest::prelude::*;

/// A small clean transactional history with one plant, as JSON lines.
fn txn_text(w: synth::Workload, seed: u64) -> String {
    let mut o = synth::Options::new(w, seed, 12);
    o.clients = 3;
    o.plant = Some(synth::Plant::ALL[seed as usize % synth::Plant::ALL.len()])
        .filter(|p| p.applies_to(w));
    jsonl::write(&synth::generate(&o).ops)
}

const EVENT_LOG: &str = r#"{"time":1,"node":"c","event":"participants","txn":1,"nodes":["p1","p2"]}
{"time":2,"node":"c","event":"log","txn":1,"record":"start"}
{"time":3,"node":"c","event":"send","msg":"m1","to":"p1"}
{"time":4,"node":"p1","event":"receive","msg":"m1"}
{"time":5,"node":"p1","event":"log","txn":1,"record":"yes"}
{"time":6,"node":"p1","event":"vote","txn":1,"vote":"yes"}
{"time":7,"node":"p1","event":"checkpoint","id":1}
{"time":8,"node":"p2","event":"crash"}
{"time":9,"node":"p2","event":"recover"}
{"time":10,"node":"c","event":"log","txn":1,"record":"commit"}
{"time":11,"node":"c","event":"decide","txn":1,"decision":"commit"}
{"time":12,"node":"p1","event":"snapshot-start","snapshot":"s"}
{"time":13,"node":"p1","event":"snapshot-finish","snapshot":"s","before":[1],"after":[]}
{"time":14,"node":"p1","event":"commit","txn":1}
{"event":"heal","time":15}
{"time":16,"node":"p1","event":"final-state","applied":[1]}
"#;

const BANK: &str = r#"{"type":"invoke","process":0,"f":"read","value":null}
{"type":"ok","process":0,"f":"read","value":{"a":5,"b":5}}
{"type":"invoke","process":1,"f":"transfer","value":{"from":"a","to":"b","amount":2}}
{"type":"ok","process":1,"f":"transfer","value":{"from":"a","to":"b","amount":2}}
{"type":"invoke","process":0,"f":"read","value":null}
{"type":"ok","process":0,"f":"read","value":{"a":3,"b":7}}
"#;

/// Applies (position, byte, insert|delete|replace) edits; positions wrap around the text.
fn mutate(sample: &str, edits: &[(u64, u8, u8)]) -> Vec<u8> {
    let mut bytes = sample.as_bytes().to_vec();
    for (at, byte, kind) in edits {
        let i = (*at % (bytes.len() as u64 + 1)) as usize;
        match kind {
            0 => bytes.insert(i, *byte),
            1 if i < bytes.len() => {
                bytes.remove(i);
            }
            _ if i < bytes.len() => bytes[i] = *byte,
            _ => bytes.push(*byte),
        }
    }
    bytes
}

/// Bytes from the characters JSON is made of, so edits often keep lines parseable.
fn json_byte() -> impl Strategy<Value = u8> {
    prop::sample::select(b"{}[]\",:0123456789-nulltrueabc \n".to_vec())
}

fn edits() -> impl Strategy<Value = Vec<(u64, u8, u8)>> {
    prop::collection::vec((any::<u64>(), json_byte(), 0u8..3), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn transactional_checkers_never_panic(seed in 0u64..64, list in any::<bool>(), e in edits()) {
        let (sw, w) = if list {
            (synth::Workload::ListAppend, Workload::ListAppend)
        } else {
            (synth::Workload::RwRegister, Workload::RwRegister)
        };
        let bytes = mutate(&txn_text(sw, seed), &e);
        let mut o = Options::new(w);
        o.versions.linearizable_keys = seed % 2 == 0;
        if let Ok(h) = parse("m.jsonl", &bytes, None) {
            let _ = txn::check(&h, &o);
            let _ = long_fork::check(&h, &long_fork::Options::default());
            let _ = one_copy::check(&h, &one_copy::parse_apply_logs("l", "{\"replica\":\"n1\",\"applied\":[1]}").unwrap());
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = txn::check_text("m.jsonl", text, Format::JsonLines, &o);
        }
    }

    #[test]
    fn event_log_checkers_never_panic(e in edits()) {
        let bytes = mutate(EVENT_LOG, &e);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = atomic_commit::check_text("e.jsonl", text);
            let _ = recovery_line::check_text("e.jsonl", text);
            let _ = consistent_cut::check_text("e.jsonl", text, None);
        }
    }

    #[test]
    fn history_checkers_never_panic(e in edits()) {
        let bytes = mutate(BANK, &e);
        if let Ok(h) = parse("b.jsonl", &bytes, None) {
            let _ = bank::check(&h, &bank::Options::default());
            let _ = set_full::check(&h, &set_full::Options::default());
            let _ = checkers::set::check(&h, &checkers::set::Options::default());
            let _ = checkers::counter::check(&h, &checkers::counter::Options::default());
            let _ = checkers::unique_ids::check(&h, &checkers::unique_ids::Options::default());
            let _ = checkers::total_queue::check(&h, &checkers::total_queue::Options::default());
        }
    }
}

/// The mutations above are only worth something if they reach the analyses: over a fixed set of
/// seeded edits, each family of checkers must both judge some inputs and refuse others.
#[test]
fn mutations_reach_both_verdicts_and_errors() {
    let mut rng = checkers::rng::Rng::new(7);
    let (mut txn_ok, mut txn_err, mut log_ok, mut log_err) = (0, 0, 0, 0);
    for round in 0..400u64 {
        let e: Vec<(u64, u8, u8)> = (0..1 + rng.below(2))
            .map(|_| {
                let at = rng.next_u64();
                let bytes = b"{}[]\",:0123456789-nulltrueabc \n";
                (
                    at,
                    bytes[rng.below(bytes.len() as u64) as usize],
                    rng.below(3) as u8,
                )
            })
            .collect();
        let text = txn_text(synth::Workload::ListAppend, round % 64);
        let bytes = mutate(&text, &e);
        match std::str::from_utf8(&bytes).ok().map(|t| {
            txn::check_text(
                "m.jsonl",
                t,
                Format::JsonLines,
                &Options::new(Workload::ListAppend),
            )
        }) {
            Some(Ok(_)) => txn_ok += 1,
            _ => txn_err += 1,
        }
        let bytes = mutate(EVENT_LOG, &e);
        match std::str::from_utf8(&bytes)
            .ok()
            .map(|t| atomic_commit::check_text("e", t))
        {
            Some(Ok(_)) => log_ok += 1,
            _ => log_err += 1,
        }
    }
    assert!(
        txn_ok > 20 && txn_err > 20,
        "txn: {txn_ok} judged, {txn_err} refused"
    );
    assert!(
        log_ok > 5 && log_err > 20,
        "log: {log_ok} judged, {log_err} refused"
    );
}
