//! The client one worker of a PostgreSQL workload runs: one session at a time, opened on
//! first use and after any error that may have left it unusable, and each operation's end
//! recorded the way Jepsen's rules want it:
//!
//! - `ok`: COMMIT succeeded;
//! - `fail`: certainly not committed: any error before COMMIT (the server rolls back a
//!   transaction whose connection dies, and PostgreSQL aborts it on any `ERROR`), a
//!   serialization failure (40001) or deadlock (40P01) wherever it came, a transfer refused
//!   for want of funds, or a read-only transaction whatever happened (it changes nothing);
//! - `info`: COMMIT was sent and no certain answer came back (the connection was lost, the
//!   server ended the session, or the deadline passed).
//!
//! The deadline is the client's own, a little before the runner's, so that the client, not
//! the runner, decides between `fail` and `info`.

use super::conn::{Session, Target};
use super::ops::{self, OpError};
use super::{Isolation, Kind};
use crate::client::{Client, Outcome};
use checkers::history::Value;
use tokio::time::{timeout_at, Instant};

/// One worker's client.
pub struct PgClient {
    target: Target,
    kind: Kind,
    isolation: Isolation,
    session: Option<Session>,
}

impl PgClient {
    pub fn new(target: Target, kind: Kind, isolation: Isolation) -> PgClient {
        PgClient {
            target,
            kind,
            isolation,
            session: None,
        }
    }

    /// Connects if needed, then runs `op`.
    async fn attempt(&mut self, op: &ops::Op, committing: &mut bool) -> Result<Value, OpError> {
        if self
            .session
            .as_ref()
            .is_some_and(|s| s.in_txn || s.client.is_closed())
        {
            self.session = None;
        }
        if self.session.is_none() {
            let s = Session::open(&self.target, self.kind)
                .await
                .map_err(OpError::Aborted)?;
            self.session = Some(s);
        }
        let session = self.session.as_mut().expect("just opened");
        ops::run(session, self.isolation, op, committing).await
    }
}

impl Client for PgClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        let op = match ops::parse(self.kind, f, value) {
            Ok(op) => op,
            Err(why) => return Outcome::fail(value.clone(), format!("bad operation: {why}")),
        };
        let deadline = Instant::now() + self.target.op_timeout;
        let mut committing = false;
        let result = timeout_at(deadline, self.attempt(&op, &mut committing)).await;
        let writes = op.writes();
        match result {
            Ok(Ok(v)) => Outcome::ok(v),
            Ok(Err(e)) => {
                let keep = matches!(&e, OpError::Aborted(s) if s.plain_error)
                    || matches!(e, OpError::Refused(_));
                if !keep {
                    self.session = None;
                }
                match e {
                    OpError::Unknown(_) if writes => Outcome::info(value.clone(), e.to_string()),
                    _ => Outcome::fail(value.clone(), e.to_string()),
                }
            }
            Err(_) => {
                // The statement in flight is abandoned with its connection: the server rolls
                // back what was never committed.
                self.session = None;
                let ms = self.target.op_timeout.as_millis();
                match (committing, writes) {
                    (true, true) => Outcome::info(
                        value.clone(),
                        format!("commit outcome unknown: no answer to COMMIT within {ms} ms"),
                    ),
                    (true, false) => Outcome::fail(
                        value.clone(),
                        format!("no answer to COMMIT within {ms} ms (the transaction only read)"),
                    ),
                    (false, _) => Outcome::fail(
                        value.clone(),
                        format!("no answer within {ms} ms, before COMMIT was sent"),
                    ),
                }
            }
        }
    }
}

/// Whether an outcome's error is PostgreSQL refusing to serialize (40001) or breaking a
/// deadlock (40P01): what serializable and repeatable read do instead of an anomaly.
pub fn is_conflict_error(error: &str) -> bool {
    error.starts_with("40001:") || error.starts_with("40P01:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::conn::SqlError;
    use crate::postgres::fake::{self, Answer, Script};
    use checkers::history::OpType;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn target(addr: std::net::SocketAddr) -> Target {
        Target {
            addr,
            connect_timeout: Duration::from_millis(300),
            op_timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn no_server_is_a_fail_and_bad_ops_are_refused_before_connecting() {
        rt().block_on(async {
            let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let dead = unused.local_addr().unwrap();
            drop(unused);
            let mut c = PgClient::new(target(dead), Kind::ListAppend, Isolation::Serializable);
            let v = serde_json::json!([["append", 1, 2]]);
            let out = c.invoke("txn", &v).await;
            assert_eq!(out.op_type, OpType::Fail, "{out:?}");
            assert!(out.error.unwrap().as_str().unwrap().contains("connection"));
            let out = c.invoke("transfer", &v).await;
            assert_eq!(out.op_type, OpType::Fail);
            assert!(out
                .error
                .unwrap()
                .as_str()
                .unwrap()
                .starts_with("bad operation"));
        });
    }

    #[test]
    fn a_silent_server_times_out_before_commit_as_a_fail() {
        rt().block_on(async {
            // Accepts and reads, never answers the startup message.
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((mut s, _)) = l.accept().await {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    held.push(s);
                }
            });
            let mut c = PgClient::new(target(addr), Kind::Bank, Isolation::ReadCommitted);
            let v = serde_json::json!({"from": 0, "to": 1, "amount": 1});
            let out = c.invoke("transfer", &v).await;
            assert_eq!(out.op_type, OpType::Fail, "{out:?}");
        });
    }

    /// Runs `f` `value` as `kind` against a fake server answering as `script` says.
    fn against(script: Script, kind: Kind, f: &str, value: serde_json::Value) -> Outcome {
        rt().block_on(async {
            let addr = fake::serve(script).await;
            let mut c = PgClient::new(target(addr), kind, Isolation::Serializable);
            c.invoke(f, &value).await
        })
    }

    fn append() -> serde_json::Value {
        serde_json::json!([["r", 1, null], ["append", 1, 7]])
    }

    fn commit(answer: Answer) -> Script {
        Script {
            commit: answer,
            write: Answer::Normally,
        }
    }

    fn error_of(o: &Outcome) -> String {
        o.error
            .as_ref()
            .and_then(|e| e.as_str())
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn a_commit_answered_is_ok_with_what_the_reads_saw() {
        let o = against(commit(Answer::Normally), Kind::ListAppend, "txn", append());
        assert_eq!(o.op_type, OpType::Ok, "{o:?}");
        assert_eq!(o.value, serde_json::json!([["r", 1, []], ["append", 1, 7]]));
        let reg = serde_json::json!([["r", 2, null], ["w", 2, 5]]);
        let o = against(commit(Answer::Normally), Kind::RwRegister, "txn", reg);
        assert_eq!(
            o.value,
            serde_json::json!([["r", 2, null], ["w", 2, 5]]),
            "{o:?}"
        );
    }

    #[test]
    fn serialization_failures_and_errors_at_commit_are_fails() {
        for code in ["40001", "40P01", "23505"] {
            let o = against(
                commit(Answer::Error(code)),
                Kind::ListAppend,
                "txn",
                append(),
            );
            assert_eq!(o.op_type, OpType::Fail, "{code}: {o:?}");
            assert!(error_of(&o).starts_with(code), "{o:?}");
        }
    }

    #[test]
    fn a_commit_without_a_certain_answer_is_info() {
        for answer in [Answer::Close, Answer::Fatal("57P01"), Answer::Hang] {
            let o = against(commit(answer), Kind::ListAppend, "txn", append());
            assert_eq!(o.op_type, OpType::Info, "{answer:?}: {o:?}");
            assert!(error_of(&o).starts_with("commit outcome unknown"), "{o:?}");
        }
        // A transfer writes too.
        let t = serde_json::json!({"from": 0, "to": 1, "amount": 1});
        let o = against(commit(Answer::Close), Kind::Bank, "transfer", t);
        assert_eq!(o.op_type, OpType::Info, "{o:?}");
    }

    #[test]
    fn a_read_only_transaction_is_a_fail_whatever_its_commit_did() {
        let read = serde_json::json!([["r", 1, null], ["r", 2, null]]);
        for answer in [Answer::Close, Answer::Hang] {
            let o = against(commit(answer), Kind::ListAppend, "txn", read.clone());
            assert_eq!(o.op_type, OpType::Fail, "{answer:?}: {o:?}");
        }
        let o = against(
            commit(Answer::Close),
            Kind::Bank,
            "read",
            serde_json::Value::Null,
        );
        assert_eq!(o.op_type, OpType::Fail, "{o:?}");
    }

    #[test]
    fn anything_before_commit_is_a_fail() {
        for write in [
            Answer::Error("40P01"),
            Answer::Error("40001"),
            Answer::Fatal("57P01"),
            Answer::Close,
            Answer::Hang,
        ] {
            let script = Script {
                commit: Answer::Normally,
                write,
            };
            let o = against(script, Kind::ListAppend, "txn", append());
            assert_eq!(o.op_type, OpType::Fail, "{write:?}: {o:?}");
        }
    }

    #[test]
    fn the_session_survives_an_error_and_is_replaced_after_a_lost_connection() {
        rt().block_on(async {
            let addr = fake::serve(commit(Answer::Error("40001"))).await;
            let mut c = PgClient::new(target(addr), Kind::ListAppend, Isolation::Serializable);
            for _ in 0..3 {
                let o = c.invoke("txn", &append()).await;
                assert_eq!(o.op_type, OpType::Fail);
                assert!(c.session.is_some(), "an ERROR leaves the session usable");
            }
            let addr = fake::serve(commit(Answer::Close)).await;
            let mut c = PgClient::new(target(addr), Kind::ListAppend, Isolation::Serializable);
            let o = c.invoke("txn", &append()).await;
            assert_eq!(o.op_type, OpType::Info);
            assert!(c.session.is_none(), "a lost connection is dropped");
            // The next operation connects afresh.
            let o = c.invoke("txn", &append()).await;
            assert_eq!(o.op_type, OpType::Info, "{o:?}");
        });
    }

    #[test]
    fn conflicts_are_recognised_by_sqlstate() {
        assert!(is_conflict_error(
            "40001: could not serialize access due to concurrent update"
        ));
        assert!(is_conflict_error("40P01: deadlock detected"));
        assert!(!is_conflict_error("23505: duplicate key"));
        assert!(!is_conflict_error(
            &SqlError::local("connection: closed").what
        ));
    }
}
