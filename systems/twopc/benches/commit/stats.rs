//! Latency distributions: nearest-rank percentiles over every sample, nothing dropped.

use serde::Serialize;
use std::time::Duration;

/// A distribution of latencies, in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Dist {
    pub samples: usize,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Dist {
    /// `None` for no samples, so an empty run never prints a made-up figure.
    pub fn of(samples: &[Duration]) -> Option<Dist> {
        if samples.is_empty() {
            return None;
        }
        let mut ns: Vec<u128> = samples.iter().map(Duration::as_nanos).collect();
        ns.sort_unstable();
        let us = |v: u128| v as f64 / 1000.0;
        let pct = |q: f64| {
            let i = ((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1;
            us(ns[i])
        };
        Some(Dist {
            samples: ns.len(),
            min_us: us(ns[0]),
            mean_us: us(ns.iter().sum::<u128>()) / ns.len() as f64,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            p999_us: pct(0.999),
            max_us: us(ns[ns.len() - 1]),
        })
    }
}

/// Milliseconds with three decimals, for the table.
pub fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}
