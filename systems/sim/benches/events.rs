//! Simulator throughput on a trivial core, in events delivered per second.
//!
//! Each node keeps `IN_FLIGHT` pings circulating (every ping received is passed on to the next
//! node) and ticks every `TICK_MS`, so the run is almost all queue, network and dispatch: the
//! simulator's own cost. Variants show what the trace tail and an invariant add.
//!
//! Run with `cargo bench -p faultline-sim --bench events`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use machine::{Boot, BootError, Durable, Effects, Input, Machine, NodeId};
use sim::{Sim, SimConfig, TraceConfig};

const IN_FLIGHT: u64 = 16;
const VIRTUAL_MS: u64 = 2_000;

struct Relay {
    next: NodeId,
    seen: u64,
}

impl Machine for Relay {
    type Config = ();
    type Event = ();
    type Peer = u64;
    type Request = ();
    type Response = ();

    fn boot(boot: Boot<'_, ()>, _: Durable, out: &mut Effects<Self>) -> Result<Relay, BootError> {
        let next = boot.id % boot.members.len() as NodeId + 1;
        for i in 0..IN_FLIGHT {
            out.send(next, i);
        }
        Ok(Relay { next, seen: 0 })
    }

    fn step(&mut self, _now_ms: u64, input: Input<Self>, out: &mut Effects<Self>) {
        if let Input::Peer { msg, .. } = input {
            self.seen += 1;
            out.send(self.next, msg + 1);
        }
    }
}

fn run(config: &SimConfig, invariant: bool) -> u64 {
    let mut sim: Sim<Relay> = Sim::new(1, config.clone(), ()).unwrap();
    if invariant {
        sim.set_invariant(|c| match c.live().all(|(_, r)| r.seen < u64::MAX) {
            true => Ok(()),
            false => Err("overflow".into()),
        });
    }
    sim.run_for(VIRTUAL_MS).unwrap();
    sim.steps()
}

fn bench(c: &mut Criterion) {
    let plain = SimConfig {
        nodes: 5,
        trace: TraceConfig {
            keep_last: 0,
            debug_messages: false,
        },
        ..SimConfig::default()
    };
    let with_tail = SimConfig {
        trace: TraceConfig::default(),
        ..plain.clone()
    };
    let mut group = c.benchmark_group("sim");
    for (name, config, invariant) in [
        ("relay", &plain, false),
        ("relay+tail", &with_tail, false),
        ("relay+tail+invariant", &with_tail, true),
    ] {
        let steps = run(config, invariant);
        group.throughput(Throughput::Elements(steps));
        group.bench_function(name, |b| b.iter(|| run(config, invariant)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
