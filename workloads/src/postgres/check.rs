//! Judging a PostgreSQL run. list-append and rw-register go through the transactional
//! checkers twice: once at the model the isolation level claims (read-committed,
//! snapshot-isolation for repeatable read, serializable), which decides the run's
//! validity, and once against strict serializability, which searches every cycle class,
//! so that the results name every anomaly the history shows, including those the claimed
//! level allows (G-single and lost updates at read committed, write skew under snapshot
//! isolation). rw-register's version orders also follow real time per key, which a single
//! server guarantees. The bank is judged by Jepsen's bank checker: read-modify-write transfers
//! keep the total only where lost updates are impossible, so a read committed run is
//! expected to fail it.
//!
//! Pure: history in, verdicts out.

use super::client::is_conflict_error;
use super::{Isolation, Kind, ACCOUNTS, INITIAL_BALANCE};
use checkers::bank;
use checkers::history::{History, OpType};
use checkers::txn::{self, Model, Workload};
use checkers::verdict::{BadHistory, Verdict};
use std::time::Duration;

/// The name of the verdict that lists every anomaly, whatever the claimed level allows.
pub const ALL_ANOMALIES: &str = "all-anomalies";

/// What a run's history says.
#[derive(Clone, Debug)]
pub struct Judgement {
    /// The verdict that decides the run: the claimed model's, or the bank's.
    pub verdict: Verdict,
    /// For list-append and rw-register: the search for every anomaly (checked against
    /// strict serializability); informational, it does not decide validity.
    pub all_anomalies: Option<Verdict>,
    /// The model the run was checked at (None for the bank).
    pub model: Option<Model>,
    /// The cycles behind every anomaly found (the all-anomalies search's), for pictures.
    pub cycles: Vec<checkers::txn::render::CycleView>,
}

impl Judgement {
    /// Every anomaly type found, sorted.
    pub fn anomaly_types(&self) -> Vec<String> {
        let mut all = self.verdict.anomaly_types.clone();
        if let Some(a) = &self.all_anomalies {
            all.extend(a.anomaly_types.iter().cloned());
        }
        all.sort();
        all.dedup();
        all
    }
}

/// Operation counts for the details: how many ended each way, and how many failed because
/// PostgreSQL refused to serialize them (40001) or broke a deadlock (40P01).
fn tally(history: &History, v: &mut Verdict) {
    let clients = history.ops.iter().filter(|op| op.process.is_client());
    let (mut ok, mut fail, mut info) = (0u64, 0u64, 0u64);
    let (mut serialization, mut deadlocks) = (0u64, 0u64);
    for op in clients {
        match op.op_type {
            OpType::Ok => ok += 1,
            OpType::Fail => {
                fail += 1;
                let error = op.error.as_ref().and_then(|e| e.as_str()).unwrap_or("");
                if is_conflict_error(error) {
                    if error.starts_with("40P01") {
                        deadlocks += 1;
                    } else {
                        serialization += 1;
                    }
                }
            }
            OpType::Info => info += 1,
            OpType::Invoke => {}
        }
    }
    v.detail("ops_ok", ok);
    v.detail("ops_fail", fail);
    v.detail("ops_info", info);
    v.detail("serialization_failures", serialization);
    v.detail("deadlocks", deadlocks);
}

/// Judges a run of `kind` at `isolation`; each search gives up (unknown) after
/// `time_limit`.
pub fn judge(
    kind: Kind,
    isolation: Isolation,
    history: &History,
    time_limit: Duration,
) -> Result<Judgement, BadHistory> {
    let workload = match kind {
        Kind::ListAppend => Workload::ListAppend,
        Kind::RwRegister => Workload::RwRegister,
        Kind::Bank => {
            let options = bank::Options {
                total: Some(ACCOUNTS * INITIAL_BALANCE),
                negative_balances_allowed: false,
                accounts: Some((0..ACCOUNTS).map(|a| a.to_string()).collect()),
            };
            let mut verdict = bank::check(history, &options)?;
            verdict.detail("isolation", isolation.name());
            tally(history, &mut verdict);
            return Ok(Judgement {
                verdict,
                all_anomalies: None,
                model: None,
                cycles: Vec::new(),
            });
        }
    };
    let options = |model: Model| {
        let mut o = txn::Options::new(workload);
        o.models = vec![model];
        o.time_limit = Some(time_limit);
        // One server keeps each key in one row, updated under its lock in commit order: a
        // version read or written by a transaction that completed before another began
        // precedes that one's write. Without this, registers' version orders are mostly
        // unknown and write skew goes unseen.
        o.versions.linearizable_keys = kind == Kind::RwRegister;
        o
    };
    let model = isolation.model();
    let mut verdict = txn::check(history, &options(model))?.verdict;
    verdict.detail("isolation", isolation.name());
    tally(history, &mut verdict);
    let everything = txn::check(history, &options(Model::StrictSerializable))?;
    let mut all = everything.verdict;
    all.checker = ALL_ANOMALIES.into();
    Ok(Judgement {
        verdict,
        all_anomalies: Some(all),
        model: Some(model),
        cycles: everything.cycles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::history::{self, Format};

    fn parse(lines: &[&str]) -> History {
        let text = lines.join("\n");
        history::parse("t.jsonl", text.as_bytes(), Some(Format::JsonLines)).unwrap()
    }

    /// Write skew: each transaction read the key the other wrote, and neither saw the
    /// other's write. Snapshot isolation allows it; serializability does not.
    fn write_skew() -> History {
        parse(&[
            r#"{"type":"invoke","process":0,"f":"txn","value":[["r",1,null],["append",2,10]]}"#,
            r#"{"type":"invoke","process":1,"f":"txn","value":[["r",2,null],["append",1,20]]}"#,
            r#"{"type":"ok","process":0,"f":"txn","value":[["r",1,[]],["append",2,10]]}"#,
            r#"{"type":"ok","process":1,"f":"txn","value":[["r",2,[]],["append",1,20]]}"#,
            r#"{"type":"invoke","process":2,"f":"txn","value":[["r",1,null],["r",2,null]]}"#,
            r#"{"type":"ok","process":2,"f":"txn","value":[["r",1,[20]],["r",2,[10]]]}"#,
            r#"{"type":"invoke","process":3,"f":"txn","value":[["append",1,30]]}"#,
            r#"{"type":"fail","process":3,"f":"txn","value":[["append",1,30]],"error":"40001: could not serialize access due to concurrent update"}"#,
        ])
    }

    #[test]
    fn write_skew_is_valid_at_repeatable_read_and_reported_all_the_same() {
        let h = write_skew();
        let limit = Duration::from_secs(10);
        let j = judge(Kind::ListAppend, Isolation::RepeatableRead, &h, limit).unwrap();
        assert_eq!(j.verdict.valid, checkers::verdict::Validity::Valid);
        assert_eq!(j.model, Some(Model::SnapshotIsolation));
        assert!(
            j.anomaly_types().contains(&"G2-item".to_string()),
            "{:?}",
            j.anomaly_types()
        );
        assert_eq!(j.verdict.details["serialization_failures"], 1);
        assert_eq!(j.verdict.details["isolation"], "repeatable-read");
        let s = judge(Kind::ListAppend, Isolation::Serializable, &h, limit).unwrap();
        assert_eq!(s.verdict.valid, checkers::verdict::Validity::Invalid);
        assert!(s.verdict.anomaly_types.contains(&"G2-item".to_string()));
    }

    #[test]
    fn the_bank_holds_reads_to_the_initial_total() {
        let h = parse(&[
            r#"{"type":"invoke","process":0,"f":"read","value":null}"#,
            r#"{"type":"ok","process":0,"f":"read","value":{"0":100,"1":100,"2":100,"3":100,"4":100,"5":100,"6":100,"7":101}}"#,
        ]);
        let j = judge(
            Kind::Bank,
            Isolation::ReadCommitted,
            &h,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(j.verdict.valid, checkers::verdict::Validity::Invalid);
        assert_eq!(j.verdict.anomaly_types, vec!["wrong-total"]);
        assert!(j.all_anomalies.is_none() && j.model.is_none());
    }
}
