//! Writes an example linearizability report, to see what `report::html` draws.
//!
//! ```text
//! cargo run -p faultline-checkers --example report_demo -- /tmp/report.html
//! ```
//!
//! The history is a small cas-register run with six client processes, a crashed write, an op
//! that never completed and a network partition; p2's final read of 4 is stale. The outcome is
//! built by hand, so that the picture does not change when the search does; it is what
//! `linearizable::check` with `ModelKind::CasRegister` reports for this history.

use checkers::history::{Format, History, Op, OpType, Process, Value};
use checkers::linearizable::{report, Failure, OpSummary, Outcome, Prefix, Semantics, Validity};
use serde_json::json;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "report.html".to_string());
    let history = history();
    let outcome = outcome(&history);
    let page = report::html(
        &history,
        &outcome,
        "report_demo: cas-register with a stale read",
    );
    if let Err(e) = std::fs::write(&path, page) {
        eprintln!("cannot write {path}: {e}");
        std::process::exit(1);
    }
    println!("wrote {path}");
}

fn history() -> History {
    use OpType::*;
    let events: Vec<(OpType, Option<u64>, &str, Value)> = vec![
        (Invoke, Some(0), "write", json!(1)),
        (Invoke, Some(1), "read", Value::Null),
        (Ok, Some(0), "write", json!(1)),
        (Invoke, Some(2), "write", json!(2)),
        (Ok, Some(1), "read", json!(1)),
        (Info, None, "start-partition", json!(["n1", "n2"])),
        (Invoke, Some(3), "cas", json!([2, 3])),
        (Ok, Some(2), "write", json!(2)),
        (Invoke, Some(4), "write", json!(4)),
        (Fail, Some(3), "cas", json!([2, 3])),
        (Invoke, Some(5), "read", Value::Null),
        (Invoke, Some(0), "read", Value::Null),
        (Ok, Some(5), "read", json!(2)),
        (Info, Some(4), "write", json!(4)),
        (Ok, Some(0), "read", json!(4)),
        (Invoke, Some(1), "write", json!(5)),
        (Ok, Some(1), "write", json!(5)),
        (Info, None, "stop-partition", json!("healed")),
        (Invoke, Some(2), "read", Value::Null),
        (Invoke, Some(3), "cas", json!([5, 6])),
        (Ok, Some(2), "read", json!(4)),
        (Invoke, Some(5), "write", json!(7)),
        (Ok, Some(5), "write", json!(7)),
        (Invoke, Some(0), "read", Value::Null),
        (Ok, Some(0), "read", json!(7)),
    ];
    let ops: Vec<Op> = events
        .into_iter()
        .enumerate()
        .map(|(i, (t, p, f, v))| {
            let process = p.map_or_else(Process::nemesis, Process::Client);
            let mut op = Op::new(i as u64, t, process, f, v);
            op.time = Some(i as u64 * 1_000_000);
            op
        })
        .collect();
    let lines = (1..=ops.len()).collect();
    History::new("demo.jsonl", Format::JsonLines, ops, lines).expect("a valid demo history")
}

fn outcome(h: &History) -> Outcome {
    let prefix = |order: &[usize], state: &str| Prefix {
        order: order.to_vec(),
        elided: 0,
        state: state.to_string(),
        reason: format!("can't read 4 from cas-register {state}"),
    };
    // write 1, read 1, write 2, read 2, the crashed write 4, read 4, write 5, then maybe cas 5→6.
    let order = [0, 1, 3, 10, 8, 11, 15, 19];
    Outcome {
        valid: Validity::Invalid,
        cause: None,
        model: "cas-register".to_string(),
        semantics: Semantics::for_format(Format::JsonLines),
        ops: 11,
        crashed_ops: 2,
        partitions: 1,
        configurations: 11,
        failure: Some(Failure {
            key: None,
            op: OpSummary::from_history(h, 18),
            concurrent: vec![
                OpSummary::from_history(h, 8),
                OpSummary::from_history(h, 19),
            ],
            prefixes: vec![prefix(&order, "6"), prefix(&order[..7], "5")],
        }),
    }
}
