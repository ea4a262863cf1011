//! What one cell measured, read off its history alone: the history is the record, so a
//! figure can always be recomputed from the stored run.
//!
//! The window is the workload phase: client operations invoked in `[0, seconds)`. Final
//! reads, settling and dumps come after healing and are not load. Throughput counts ok
//! completions per second of window; the abort rate is the share of attempts that
//! certainly did not happen (`fail`: a certification abort, a serialization failure, a
//! lock conflict); `info` (unknown outcome, timeouts among them) is counted apart.

use checkers::history::{History, OpType};
use serde::Serialize;

/// Latency quantiles in milliseconds (nearest rank over every sample).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Quantiles {
    pub samples: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Quantiles {
    /// None for no samples: an empty run never shows a made-up figure.
    pub fn of(mut ns: Vec<u64>) -> Option<Quantiles> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let ms = |v: u64| v as f64 / 1e6;
        let rank = |q: f64| {
            let i = ((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1;
            ms(ns[i])
        };
        let sum: u128 = ns.iter().map(|&v| u128::from(v)).sum();
        Some(Quantiles {
            samples: ns.len(),
            mean_ms: sum as f64 / ns.len() as f64 / 1e6,
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            p99_ms: rank(0.99),
            max_ms: ms(ns[ns.len() - 1]),
        })
    }
}

/// One cell's figures.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Metrics {
    pub window_s: f64,
    /// Client operations invoked in the window.
    pub attempted: u64,
    pub ok: u64,
    pub fail: u64,
    /// Indeterminate, or never completed.
    pub info: u64,
    pub ok_per_s: f64,
    /// fail / attempted.
    pub abort_rate: f64,
    /// info / attempted.
    pub info_rate: f64,
    /// Invocation to ok completion.
    pub ok_latency: Option<Quantiles>,
    /// Invocation to fail completion: how long an abort takes to learn.
    pub fail_latency: Option<Quantiles>,
    /// Ok completions in each second of the window, for throughput over time.
    pub ok_per_second: Vec<u64>,
}

/// The problem when a history cannot be measured.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{0}: an event has no time, so nothing can be measured")]
    NoTime(String),
}

/// Measures the client operations `history` invoked in its first `window_ns`.
pub fn measure(history: &History, window_ns: u64) -> Result<Metrics, MetricsError> {
    assert!(window_ns > 0, "a window has a length");
    let seconds = window_ns.div_ceil(1_000_000_000) as usize;
    let mut m = Metrics {
        window_s: window_ns as f64 / 1e9,
        attempted: 0,
        ok: 0,
        fail: 0,
        info: 0,
        ok_per_s: 0.0,
        abort_rate: 0.0,
        info_rate: 0.0,
        ok_latency: None,
        fail_latency: None,
        ok_per_second: vec![0; seconds],
    };
    let (mut ok_ns, mut fail_ns) = (Vec::new(), Vec::new());
    let no_time = || MetricsError::NoTime(history.file.clone());
    for (i, op) in history.ops.iter().enumerate() {
        if op.op_type != OpType::Invoke || !op.process.is_client() {
            continue;
        }
        let start = op.time.ok_or_else(no_time)?;
        if start >= window_ns {
            continue;
        }
        m.attempted += 1;
        let Some(done) = history.completion(i) else {
            m.info += 1;
            continue;
        };
        let end = done.time.ok_or_else(no_time)?;
        let took = end.saturating_sub(start);
        match done.op_type {
            OpType::Ok => {
                m.ok += 1;
                ok_ns.push(took);
                if end < window_ns {
                    m.ok_per_second[(end / 1_000_000_000) as usize] += 1;
                }
            }
            OpType::Fail => {
                m.fail += 1;
                fail_ns.push(took);
            }
            OpType::Info | OpType::Invoke => m.info += 1,
        }
    }
    if m.attempted > 0 {
        m.abort_rate = m.fail as f64 / m.attempted as f64;
        m.info_rate = m.info as f64 / m.attempted as f64;
    }
    m.ok_per_s = m.ok as f64 / m.window_s;
    m.ok_latency = Quantiles::of(ok_ns);
    m.fail_latency = Quantiles::of(fail_ns);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::history::{parse, Format};

    fn history(lines: &[&str]) -> History {
        parse(
            "h.jsonl",
            lines.join("\n").as_bytes(),
            Some(Format::JsonLines),
        )
        .unwrap()
    }

    #[test]
    fn counts_the_window_only_and_tells_aborts_from_unknowns() {
        let h = history(&[
            r#"{"index":0,"time":0,"type":"invoke","process":0,"f":"txn","value":[]}"#,
            r#"{"index":1,"time":100000,"type":"invoke","process":1,"f":"txn","value":[]}"#,
            r#"{"index":2,"time":2000000,"type":"ok","process":0,"f":"txn","value":[]}"#,
            r#"{"index":3,"time":3000000,"type":"fail","process":1,"f":"txn","value":[]}"#,
            r#"{"index":4,"time":5000000,"type":"invoke","process":0,"f":"txn","value":[]}"#,
            r#"{"index":5,"time":1200000000,"type":"ok","process":0,"f":"txn","value":[]}"#,
            r#"{"index":6,"time":1300000000,"type":"invoke","process":"nemesis","f":"start-kill","value":null}"#,
            r#"{"index":7,"time":1400000000,"type":"invoke","process":1,"f":"txn","value":[]}"#,
            r#"{"index":8,"time":1500000000,"type":"info","process":1,"f":"txn","value":[]}"#,
            r#"{"index":9,"time":1600000000,"type":"invoke","process":2,"f":"txn","value":[]}"#,
            // After the window: the final reads.
            r#"{"index":10,"time":2500000000,"type":"invoke","process":3,"f":"settle","value":null}"#,
            r#"{"index":11,"time":2600000000,"type":"ok","process":3,"f":"settle","value":null}"#,
        ]);
        let m = measure(&h, 2_000_000_000).unwrap();
        assert_eq!((m.attempted, m.ok, m.fail, m.info), (5, 2, 1, 2));
        assert_eq!(m.ok_per_s, 1.0);
        assert_eq!(m.abort_rate, 0.2);
        assert_eq!(m.info_rate, 0.4);
        assert_eq!(m.ok_per_second, [1, 1]);
        let ok = m.ok_latency.unwrap();
        assert_eq!((ok.samples, ok.p50_ms, ok.max_ms), (2, 2.0, 1195.0));
        assert_eq!(m.fail_latency.unwrap().p99_ms, 2.9);
    }

    #[test]
    fn a_history_without_times_is_an_error_and_an_empty_one_has_no_latency() {
        let h = history(&[r#"{"index":0,"type":"invoke","process":0,"f":"txn","value":[]}"#]);
        assert!(measure(&h, 1_000_000_000)
            .unwrap_err()
            .to_string()
            .contains("no time"));
        let m = measure(&history(&[]), 1_000_000_000).unwrap();
        assert_eq!((m.attempted, m.ok_per_s, m.abort_rate), (0, 0.0, 0.0));
        assert!(m.ok_latency.is_none());
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let q = Quantiles::of((1..=100).map(|v| v * 1_000_000).collect()).unwrap();
        assert_eq!(
            (q.p50_ms, q.p95_ms, q.p99_ms, q.max_ms, q.mean_ms),
            (50.0, 95.0, 99.0, 100.0, 50.5)
        );
        assert!(Quantiles::of(Vec::new()).is_none());
    }
}
