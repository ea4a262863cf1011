//! The runner against in-process clients: a linearizable register (its history must check
//! valid), and a client too slow for its timeout (every op info, process ids retired).

use super::*;
use crate::generator::{from_fn, limit, mix, time_limit};
use checkers::history::jsonl;
use checkers::linearizable::{check, Options, Semantics, Validity};
use checkers::model::ModelKind;
use serde_json::json;
use std::sync::{Arc, Mutex};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-runner-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `gen` and records the history at `path`.
fn record<C: Client>(
    path: &std::path::Path,
    config: &RunConfig,
    gen: Gen,
    make: impl Fn(u32) -> C,
) -> RunSummary {
    runtime().block_on(async {
        let mut history = HistoryWriter::create(path).unwrap();
        let summary = run(config, gen, make, &mut history).await.unwrap();
        history.finish().unwrap();
        summary
    })
}

/// A register behind a mutex: every op takes effect atomically between invoke and complete,
/// after a short, varying delay, so ops overlap.
struct Register {
    cell: Arc<Mutex<Option<i64>>>,
    delay_us: u64,
}

impl Client for Register {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        self.delay_us = (self.delay_us * 7 + 13) % 300;
        tokio::time::sleep(Duration::from_micros(self.delay_us)).await;
        let mut cell = self.cell.lock().unwrap();
        let ok = Outcome::ok;
        match f {
            "read" => ok(json!(*cell)),
            "write" => {
                *cell = value.as_i64();
                ok(value.clone())
            }
            _ => {
                let (old, new) = (value[0].as_i64(), value[1].as_i64());
                if *cell == old {
                    *cell = new;
                    ok(value.clone())
                } else {
                    Outcome::fail(value.clone(), "mismatch")
                }
            }
        }
    }
}

fn register_ops() -> Gen {
    mix(vec![
        from_fn(|_| ("read".into(), Value::Null)),
        from_fn(|rng| ("write".into(), json!(rng.below(5)))),
        from_fn(|rng| ("cas".into(), json!([rng.below(5), rng.below(5)]))),
    ])
}

#[test]
fn a_linearizable_register_records_a_valid_history() {
    let path = scratch("register.jsonl");
    let cell = Arc::new(Mutex::new(None));
    let config = RunConfig {
        concurrency: 8,
        seed: 1,
        op_timeout: Duration::from_secs(5),
    };
    let summary = record(
        &path,
        &config,
        time_limit(300_000_000, register_ops()),
        |_| Register {
            cell: cell.clone(),
            delay_us: 1,
        },
    );
    assert!(summary.invocations > 100, "{summary:?}");
    assert_eq!(
        summary.invocations,
        summary.ok + summary.fail + summary.info
    );
    assert!(summary.ok > 0 && summary.fail > 0, "{summary:?}");
    let h = jsonl::read("register.jsonl", &std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(h.len() as u64, 2 * summary.invocations);
    let o = check(
        &h,
        ModelKind::CasRegister,
        &Options::new(Semantics::for_format(h.format)),
    )
    .unwrap();
    assert_eq!(o.valid, Validity::Valid, "{}", o.explain(&h));
}

/// Never answers in time.
struct Slow;

impl Client for Slow {
    async fn invoke(&mut self, _f: &str, value: &Value) -> Outcome {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Outcome::ok(value.clone())
    }
}

#[test]
fn timeouts_are_info_and_retire_the_process() {
    let path = scratch("slow.jsonl");
    let config = RunConfig {
        concurrency: 3,
        seed: 1,
        op_timeout: Duration::from_millis(5),
    };
    let summary = record(
        &path,
        &config,
        limit(9, from_fn(|_| ("write".into(), json!(1)))),
        |_| Slow,
    );
    assert_eq!(
        summary,
        RunSummary {
            invocations: 9,
            ok: 0,
            fail: 0,
            info: 9
        }
    );
    // The history reader enforces that a process never invokes after its op crashed.
    let h = jsonl::read("slow.jsonl", &std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut processes: Vec<u64> = h
        .ops
        .iter()
        .filter(|o| o.op_type == OpType::Invoke)
        .map(|o| match o.process {
            Process::Client(p) => p,
            _ => unreachable!(),
        })
        .collect();
    processes.sort();
    assert_eq!(
        processes,
        (0..9).collect::<Vec<u64>>(),
        "ids move on by the concurrency"
    );
    assert!(h
        .ops
        .iter()
        .filter(|o| o.op_type == OpType::Info)
        .all(|o| o.error == Some(json!("timeout"))));
}

/// Says which node answered and names the transaction, as clients of replicated systems do.
struct Annotating;

impl Client for Annotating {
    async fn invoke(&mut self, _f: &str, value: &Value) -> Outcome {
        Outcome::ok(value.clone())
            .at_node("n2")
            .with_field("txn-id", 7)
    }
}

#[test]
fn a_completion_records_the_node_and_fields_its_client_gives() {
    let path = scratch("annotated.jsonl");
    let config = RunConfig {
        concurrency: 1,
        seed: 1,
        op_timeout: Duration::from_secs(5),
    };
    record(
        &path,
        &config,
        limit(1, from_fn(|_| ("txn".into(), json!([["r", 1, null]])))),
        |_| Annotating,
    );
    let h = jsonl::read("annotated.jsonl", &std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(h.ops.len(), 2);
    assert_eq!(h.ops[0].node, None, "an invocation has not been answered");
    assert_eq!(h.ops[1].node.as_deref(), Some("n2"));
    assert_eq!(h.ops[1].extra.get("txn-id"), Some(&json!(7)));
}
