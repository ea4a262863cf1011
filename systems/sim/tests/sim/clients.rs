use crate::probe::{EchoClient, ProbeConfig};
use crate::{ok, probe_sim};
use checkers::history::{Op, OpType, Process, Value};
use sim::ClientConfig;

fn client_ops(ops: &[Op]) -> Vec<&Op> {
    ops.iter().filter(|o| o.process.is_client()).collect()
}

#[test]
fn clients_invoke_and_complete_in_order_and_the_history_is_valid() {
    let mut sim = probe_sim(20, ProbeConfig::default(), |_| {});
    sim.add_client(EchoClient::new(50));
    sim.add_client(EchoClient::new(50));
    ok(sim.run_until(|s| s.clients_done(), 60_000));
    let history = sim.history().unwrap();
    assert_eq!(history.len(), 200);
    let ops = client_ops(&history.ops);
    assert!(ops
        .iter()
        .all(|o| matches!(o.op_type, OpType::Invoke | OpType::Ok)));
    for p in [0, 1] {
        let values: Vec<&Value> = ops
            .iter()
            .filter(|o| o.process == Process::Client(p) && o.op_type == OpType::Ok)
            .map(|o| &o.value)
            .collect();
        assert_eq!(
            values,
            (0..50u64)
                .map(Value::from)
                .collect::<Vec<_>>()
                .iter()
                .collect::<Vec<_>>()
        );
    }
    let times: Vec<u64> = history.ops.iter().map(|o| o.time.unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "times go back");
    assert!(history
        .ops
        .iter()
        .all(|o| o.node.as_deref().is_some_and(|n| n.starts_with('n'))));
    // The JSON lines read back as the same history.
    let reread = checkers::history::jsonl::read("x.jsonl", &sim.history_jsonl()).unwrap();
    assert_eq!(reread.ops, history.ops);
}

#[test]
fn a_timeout_ends_the_op_as_info_and_the_client_continues_as_a_new_process() {
    let mut sim = probe_sim(21, ProbeConfig::default(), |_| {});
    let config = ClientConfig {
        node: Some(2),
        timeout_ms: 100,
        ..ClientConfig::default()
    };
    sim.add_client_with(EchoClient::new(1_000), config);
    ok(sim.run_for(50));
    sim.pause(2);
    ok(sim.run_for(300));
    let ops = client_ops(sim.history_ops());
    let info = ops
        .iter()
        .position(|o| o.op_type == OpType::Info)
        .expect("the op sent to a paused node times out");
    assert_eq!(ops[info].error, Some(Value::from("timeout")));
    let next = ops[info + 1..]
        .iter()
        .find(|o| o.op_type == OpType::Invoke)
        .unwrap();
    assert_ne!(
        next.process, ops[info].process,
        "a crashed process does not invoke again"
    );
    // The paused node gets the request, then the disconnect, when it resumes; its reply is
    // dropped because the connection is gone.
    sim.resume(2);
    ok(sim.run_for(50));
    assert_eq!(sim.node(2).unwrap().disconnected.len(), 1);
    assert!(sim.stats().replies_dropped >= 1);
    sim.history().expect("still a valid history");
}

#[test]
fn a_crash_drops_connections_and_open_ops_end_as_info() {
    let mut sim = probe_sim(22, ProbeConfig::default(), |_| {});
    let config = ClientConfig {
        node: Some(3),
        ..ClientConfig::default()
    };
    sim.add_client_with(EchoClient::new(1_000), config);
    ok(sim.run_until(|s| s.client_open_op(0).is_some(), 1_000));
    sim.crash(3);
    ok(sim.run_for(20));
    let ops = client_ops(sim.history_ops());
    let last = ops.last().unwrap();
    assert_eq!(last.op_type, OpType::Info);
    assert_eq!(last.error, Some(Value::from("connection lost")));
    let count = ops.len();
    // The client reconnects elsewhere and carries on.
    ok(sim.run_for(2_000));
    assert!(client_ops(sim.history_ops()).len() > count + 10);
}
