//! Real client processes (`sh` scripts) behind the stdio transport: answers, every kind of
//! misbehaviour, restarts, the stderr log and that nothing outlives its channel.

use super::super::{JsonlClient, MAX_LINE_BYTES};
use super::*;
use crate::client::{Client, Outcome};
use checkers::history::{OpType, Value};
use serde_json::json;

/// Answers by `f`: misbehaves as the op names, and otherwise answers `ok` with
/// `[its pid, the pid of a sleep it started]`, so tests see which process answered and
/// that everything it started dies with it.
const SCRIPT: &str = r#"
sleep 300 </dev/null >/dev/null 2>&1 &
bg=$!
echo "script $$ up" >&2
while read -r line; do
  id=$(printf '%s' "$line" | sed 's/.*"id":\([0-9]*\).*/\1/')
  case "$line" in
    *'"f":"info"'*) printf '{"id":%s,"type":"info","error":"lost"}\n' "$id" ;;
    *'"f":"fail"'*) printf '{"id":%s,"type":"fail","error":"refused"}\n' "$id" ;;
    *'"f":"garbage"'*) echo 'this is not json' ;;
    *'"f":"other-id"'*) printf '{"id":999,"type":"ok"}\n' ;;
    *'"f":"long"'*) head -c 1100000 /dev/zero | tr '\0' a; echo ;;
    *'"f":"hang"'*) sleep 60 ;;
    *'"f":"exit"'*) echo 'exiting on purpose' >&2; exit 3 ;;
    *'"f":"chatty"'*) printf '{"id":%s,"type":"ok","value":[%s,%s]}\nunasked\n' "$id" $$ $bg ;;
    *) printf '{"id":%s,"type":"ok","value":[%s,%s]}\n' "$id" $$ $bg ;;
  esac
done
"#;

fn client(dir: &Path, timeout_ms: u64) -> JsonlClient {
    let command = ChildCommand::new(SCRIPT, dir).stderr_log(dir.join("logs/worker-2.log"));
    JsonlClient::child(command, 2, timeout_ms)
}

/// The (script, sleep) pids of an `ok` answer.
fn pids(o: &Outcome) -> (i64, i64) {
    assert_eq!(o.op_type, OpType::Ok, "{o:?}");
    (o.value[0].as_i64().unwrap(), o.value[1].as_i64().unwrap())
}

fn error(o: &Outcome) -> String {
    o.error
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Whether `pid` is a process that has not exited (a zombie has).
fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(") ")
            .next()
            .is_some_and(|rest| !rest.starts_with('Z'))
    })
}

/// Waits up to two seconds for every one of `pids` to die; false if one did not.
async fn all_die(pids: &[i64]) -> bool {
    for _ in 0..200 {
        if !pids.iter().any(|&p| alive(p)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn one_process_serves_operations_until_an_info_retires_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = client(dir.path(), 2000);
    let first = pids(&c.invoke("read", &json!(["k", null])).await);
    assert_eq!(pids(&c.invoke("write", &json!(["k", 1])).await), first);
    let o = c.invoke("fail", &json!(["k", 2])).await;
    assert_eq!((o.op_type, error(&o)), (OpType::Fail, "refused".into()));
    assert_eq!(pids(&c.invoke("read", &json!(["k", null])).await), first);
    // An `info` answer is taken as it is, and the process (with what it started) is
    // replaced: it may still owe the system something for that operation.
    let o = c.invoke("info", &json!(["k", 3])).await;
    assert_eq!((o.op_type, error(&o)), (OpType::Info, "lost".into()));
    assert!(
        all_die(&[first.0, first.1]).await,
        "{first:?} outlived its info"
    );
    let second = pids(&c.invoke("read", &json!(["k", null])).await);
    assert_ne!(second.0, first.0);
    drop(c);
    assert!(
        all_die(&[second.0, second.1]).await,
        "{second:?} outlived its client"
    );
}

#[tokio::test]
async fn misbehaviour_is_info_with_a_reason_and_a_fresh_process_follows() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/worker-2.log");
    let mut c = client(dir.path(), 700);
    for (f, want) in [
        ("garbage", "a response that is not JSON".to_string()),
        ("other-id", "a response to request".to_string()),
        ("long", format!("longer than {MAX_LINE_BYTES} bytes")),
        ("hang", "timed out".to_string()),
        (
            "exit",
            format!(
                "the client process closed its stdout (exit status: 3); its stderr is in {}",
                log.display()
            ),
        ),
    ] {
        let before = pids(&c.invoke("read", &json!(["k", null])).await);
        let o = c.invoke(f, &json!(["k", 1])).await;
        assert_eq!(o.op_type, OpType::Info, "{f}: {o:?}");
        assert!(error(&o).contains(&want), "{f}: {}", error(&o));
        assert!(
            all_die(&[before.0, before.1]).await,
            "{f}: {before:?} lives on"
        );
        let after = pids(&c.invoke("read", &json!(["k", null])).await);
        assert_ne!(after.0, before.0, "{f}: the same process answered again");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("exiting on purpose"), "{text}");
    assert!(text.contains("--- faultline: client process "), "{text}");
}

#[tokio::test]
async fn output_nobody_asked_for_retires_the_process_before_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = client(dir.path(), 2000);
    let chatty = pids(&c.invoke("chatty", &json!(["k", null])).await);
    // Let the unasked line arrive: it must not be taken for the next answer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let next = pids(&c.invoke("read", &json!(["k", null])).await);
    assert_ne!(next.0, chatty.0);
    assert!(all_die(&[chatty.0, chatty.1]).await);
}

#[tokio::test]
async fn a_process_that_cannot_start_fails_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let mut c = JsonlClient::child(ChildCommand::new("cat", &missing), 0, 1000);
    let o = c.invoke("write", &json!(["k", 1])).await;
    assert_eq!(o.op_type, OpType::Fail, "{o:?}");
    assert!(
        error(&o).contains("cannot start the client process in")
            && error(&o).contains("no-such-dir"),
        "{}",
        error(&o)
    );
    // An unwritable log is refused the same way, before anything starts.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let command = ChildCommand::new("cat", dir.path()).stderr_log(blocker.join("log"));
    let o = JsonlClient::child(command, 0, 1000)
        .invoke("write", &json!(["k", 1]))
        .await;
    assert_eq!(o.op_type, OpType::Fail, "{o:?}");
    assert!(
        error(&o).contains("cannot open the client's stderr log"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn the_stderr_log_stops_at_its_budget_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let loud = r#"head -c 5000 /dev/zero | tr '\0' e >&2; read -r line; echo garbage"#;
    let mut command = ChildCommand::new(loud, dir.path()).stderr_log(&log);
    command.stderr_log_max_bytes = 3000;
    let mut c = JsonlClient::child(command, 0, 1000);
    for _ in 0..3 {
        let o = c.invoke("read", &json!(["k", null])).await;
        assert_eq!(o.op_type, OpType::Info, "{o:?}");
    }
    // The last drain may still be writing when the op returns.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.len(), 3000 + CUT_NOTE.len(), "{text}");
    assert_eq!(text.matches("budget spent").count(), 1);
}
