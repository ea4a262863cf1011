//! Each node's virtual disk: what is durable, plus the writes still in flight.
//!
//! Writes complete in the order they were emitted, each after a random latency (pipelined: a
//! write never completes before the one ahead of it). Completing a write applies its ops to the
//! durable state with `Durable::apply`, the model the file-backed store shares, and the node is
//! told `Persisted { token }`. A crash loses the writes still in flight; with
//! [`CrashLoss::RandomPrefix`] a random prefix of their ops survives instead, the last one
//! possibly an `Append` torn after some of its records. That is everything the machine contract
//! allows recovery to return, and nothing more: the storage layer detects corruption, so the
//! simulator never hands a core corrupt bytes.

use crate::net::Latency;
use checkers::rng::Rng;
use machine::{DiskOp, Durable, Write};
use std::collections::VecDeque;

/// What a crash does to writes not yet reported persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashLoss {
    /// All of them are lost.
    AllPending,
    /// A random prefix of their ops (over write boundaries) survives, the last possibly an
    /// `Append` torn after a prefix of its records. The most hostile choice the contract allows.
    RandomPrefix,
}

#[derive(Clone, Debug)]
pub struct DiskConfig {
    /// Time from a write's emission (or the previous write's completion) to its completion.
    pub latency: Latency,
    pub crash_loss: CrashLoss,
    /// A node with more writes in flight than this stops the run: its core writes faster than
    /// any disk drains, or forgot to wait for `Persisted`.
    pub max_pending_writes: usize,
}

impl Default for DiskConfig {
    fn default() -> DiskConfig {
        DiskConfig {
            latency: Latency::Uniform {
                min_ms: 1,
                max_ms: 5,
            },
            crash_loss: CrashLoss::RandomPrefix,
            max_pending_writes: 10_000,
        }
    }
}

/// What a crash kept of the writes in flight, for tests and the trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Writes in flight at the crash.
    pub pending_writes: usize,
    /// Ops applied whole, out of `pending_ops`.
    pub kept_ops: usize,
    pub pending_ops: usize,
    /// `(kept, of)` records of an `Append` cut by the crash.
    pub torn_append: Option<(usize, usize)>,
}

/// The disk has `max_pending_writes` in flight already.
#[derive(Debug)]
pub(crate) struct DiskFull;

pub(crate) struct Disk {
    synced: Durable,
    pending: VecDeque<Write>,
    last_done_ms: u64,
    /// Bumped by each crash, so completions scheduled before it are recognized as stale.
    pub generation: u64,
}

impl Disk {
    /// An empty disk.
    #[cfg(test)]
    pub fn new() -> Disk {
        Disk::with_synced(Durable::default())
    }

    /// A disk that already holds `synced`, durably.
    pub fn with_synced(synced: Durable) -> Disk {
        Disk {
            synced,
            pending: VecDeque::new(),
            last_done_ms: 0,
            generation: 0,
        }
    }

    pub fn synced(&self) -> &Durable {
        &self.synced
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Queues `write`; returns when it completes: at least `latency_ms` from now, and never
    /// before the write ahead of it.
    pub fn submit(
        &mut self,
        write: Write,
        now_ms: u64,
        latency_ms: u64,
        limit: usize,
    ) -> Result<u64, DiskFull> {
        if self.pending.len() >= limit {
            return Err(DiskFull);
        }
        let done_ms = now_ms.saturating_add(latency_ms).max(self.last_done_ms);
        self.last_done_ms = done_ms;
        self.pending.push_back(write);
        Ok(done_ms)
    }

    /// Makes the oldest pending write durable and returns its token.
    pub fn complete(&mut self) -> u64 {
        let write = self
            .pending
            .pop_front()
            .expect("a disk completion is scheduled only for a pending write");
        for op in &write.ops {
            self.synced.apply(op);
        }
        write.token
    }

    /// Loses what the crash loses, per `mode`, and makes later completions stale.
    pub fn crash(&mut self, mode: CrashLoss, rng: &mut Rng) -> CrashReport {
        let pending: Vec<Write> = self.pending.drain(..).collect();
        self.generation += 1;
        self.last_done_ms = 0;
        let ops: Vec<&DiskOp> = pending.iter().flat_map(|w| &w.ops).collect();
        let mut report = CrashReport {
            pending_writes: pending.len(),
            pending_ops: ops.len(),
            ..CrashReport::default()
        };
        if mode == CrashLoss::AllPending || ops.is_empty() {
            return report;
        }
        report.kept_ops = rng.below(ops.len() as u64 + 1) as usize;
        for op in &ops[..report.kept_ops] {
            self.synced.apply(op);
        }
        if let Some(DiskOp::Append { log, records }) = ops.get(report.kept_ops) {
            report.torn_append = Some(self.tear(log, records, rng)).filter(|&(_, of)| of > 0);
        }
        report
    }

    /// Applies a strict prefix (possibly empty) of an append's records.
    fn tear(&mut self, log: &str, records: &[Vec<u8>], rng: &mut Rng) -> (usize, usize) {
        if records.is_empty() {
            return (0, 0);
        }
        let kept = rng.below(records.len() as u64) as usize;
        if kept > 0 {
            self.synced.apply(&DiskOp::Append {
                log: log.to_string(),
                records: records[..kept].to_vec(),
            });
        }
        (kept, records.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(token: u64, recs: &[u8]) -> Write {
        Write {
            token,
            ops: vec![DiskOp::Append {
                log: "log".into(),
                records: recs.iter().map(|&r| vec![r]).collect(),
            }],
        }
    }

    fn records(d: &Disk) -> Vec<u8> {
        d.synced()
            .logs
            .get("log")
            .map(|l| l.records.iter().map(|r| r[0]).collect())
            .unwrap_or_default()
    }

    #[test]
    fn completions_are_in_order_even_when_a_later_write_is_faster() {
        let mut d = Disk::new();
        let a = d.submit(append(1, &[1]), 0, 9, 10).unwrap();
        let b = d.submit(append(2, &[2]), 1, 1, 10).unwrap();
        assert!(b >= a, "write 2 completes at {b}, before write 1 at {a}");
        assert_eq!(d.complete(), 1);
        assert_eq!(records(&d), vec![1]);
    }

    #[test]
    fn a_crash_loses_exactly_the_pending_writes() {
        let mut d = Disk::new();
        d.submit(append(1, &[1, 2]), 0, 1, 10).unwrap();
        d.submit(append(2, &[3]), 0, 1, 10).unwrap();
        d.complete();
        let report = d.crash(CrashLoss::AllPending, &mut Rng::new(0));
        assert_eq!(records(&d), vec![1, 2]);
        assert_eq!((report.pending_writes, report.kept_ops), (1, 0));
        assert_eq!(d.pending_len(), 0);
    }

    #[test]
    fn random_prefix_crashes_keep_prefixes_and_sometimes_tear_an_append() {
        let mut torn = 0;
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut d = Disk::new();
            d.submit(append(1, &[1]), 0, 1, 10).unwrap();
            d.complete();
            d.submit(append(2, &[2, 3, 4]), 0, 1, 10).unwrap();
            d.submit(append(3, &[5, 6]), 0, 1, 10).unwrap();
            let report = d.crash(CrashLoss::RandomPrefix, &mut Rng::new(seed));
            let got = records(&d);
            assert!(
                [1, 2, 3, 4, 5, 6].starts_with(&got) && got.starts_with(&[1]),
                "{got:?}"
            );
            if let Some((kept, of)) = report.torn_append {
                assert!(kept < of);
                torn += usize::from(kept > 0);
            }
            seen.insert(got.len());
        }
        assert!(torn > 0, "no append was ever torn mid-way");
        assert_eq!(seen.len(), 6, "every prefix length should occur: {seen:?}");
    }

    #[test]
    fn the_pending_bound_is_enforced() {
        let mut d = Disk::new();
        d.submit(append(1, &[1]), 0, 1, 1).unwrap();
        assert!(d.submit(append(2, &[2]), 0, 1, 1).is_err());
    }
}
