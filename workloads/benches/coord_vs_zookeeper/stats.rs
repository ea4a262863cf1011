//! Latencies and throughput of one workload run.

use serde::Serialize;
use std::time::Duration;

/// Most latency samples one load task keeps; a run longer than that at this rate would
/// need a histogram instead, and says so by counting what it dropped.
pub const MAX_SAMPLES_PER_TASK: usize = 4_000_000;

/// What one load task measured inside the measurement window.
#[derive(Default)]
pub struct Samples {
    pub latencies_us: Vec<u32>,
    pub dropped: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Samples {
    pub fn record(&mut self, latency: Duration) {
        if self.latencies_us.len() < MAX_SAMPLES_PER_TASK {
            self.latencies_us
                .push(latency.as_micros().min(u32::MAX as u128) as u32);
        } else {
            self.dropped += 1;
        }
    }

    pub fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

/// One row half: a system's figures for a workload.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub ops: u64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub errors: u64,
    pub first_error: Option<String>,
}

pub fn summarize(parts: Vec<Samples>, measured: Duration) -> Summary {
    let mut all: Vec<u32> = Vec::new();
    let (mut errors, mut dropped, mut first_error) = (0, 0, None);
    for p in parts {
        all.extend_from_slice(&p.latencies_us);
        errors += p.errors;
        dropped += p.dropped;
        first_error = first_error.or(p.first_error);
    }
    all.sort_unstable();
    let ops = all.len() as u64 + dropped;
    let pct = |q: f64| {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1;
        f64::from(all[i]) / 1000.0
    };
    Summary {
        ops,
        ops_per_sec: ops as f64 / measured.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        errors,
        first_error,
    }
}
