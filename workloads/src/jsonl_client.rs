//! The client for systems Faultline does not know: JSON lines over TCP, so a system in any
//! language can be tested without writing Rust (README, "Bring your own system").
//!
//! Each operation is one request line and one response line on one connection, in order:
//!
//! ```text
//! → {"id": 7, "worker": 3, "f": "write", "value": ["k1", 4]}
//! ← {"id": 7, "type": "ok", "value": ["k1", 4]}
//! ← {"id": 7, "type": "fail", "error": "not leader"}
//! ```
//!
//! `type` is the history's: `ok` took effect, `fail` certainly did not, `info` may have.
//! `value` is the completed op's value (a read's result); when absent, the request's value
//! stands. `error` is any JSON. Whatever else goes wrong once the request may have left
//! (the connection drops, the deadline passes, the line is not such a response, or answers
//! another id) is recorded `info` and the connection is dropped, so a late answer is never
//! taken for the next request's; a request that could not be sent at all is `fail`.

use crate::client::{Client, Outcome};
use checkers::history::{OpType, Value};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Longest response line read; a longer one is garbage.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One worker's connection to one node.
pub struct JsonlClient {
    addr: SocketAddr,
    /// The harness's worker this client serves (its processes change after each `info`).
    worker: u64,
    timeout: Duration,
    next_id: u64,
    conn: Option<BufReader<TcpStream>>,
}

impl JsonlClient {
    pub fn new(addr: SocketAddr, worker: u64, timeout_ms: u64) -> JsonlClient {
        JsonlClient {
            addr,
            worker,
            timeout: Duration::from_millis(timeout_ms.max(1)),
            next_id: 0,
            conn: None,
        }
    }

    async fn call(&mut self, f: &str, value: &Value) -> Outcome {
        let deadline = Instant::now() + self.timeout;
        self.next_id += 1;
        let id = self.next_id;
        if self.conn.is_none() {
            match timeout_at(deadline, TcpStream::connect(self.addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    self.conn = Some(BufReader::new(s));
                }
                Ok(Err(e)) => {
                    return Outcome::fail(value.clone(), format!("connect {}: {e}", self.addr))
                }
                Err(_) => {
                    return Outcome::fail(
                        value.clone(),
                        format!("connect {}: timed out", self.addr),
                    )
                }
            }
        }
        let mut line = json!({"id": id, "worker": self.worker, "f": f, "value": value}).to_string();
        line.push('\n');
        let conn = self.conn.as_mut().expect("connected above");
        let result = timeout_at(deadline, async {
            conn.get_mut()
                .write_all(line.as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
            let mut reply = Vec::new();
            let mut limited = (&mut *conn).take(MAX_LINE_BYTES as u64 + 1);
            limited
                .read_until(b'\n', &mut reply)
                .await
                .map_err(|e| format!("receive: {e}"))?;
            if reply.is_empty() {
                return Err("the node closed the connection".to_string());
            }
            if reply.len() > MAX_LINE_BYTES {
                return Err(format!(
                    "a response line longer than {MAX_LINE_BYTES} bytes"
                ));
            }
            Ok(reply)
        })
        .await;
        let reply = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.conn = None;
                return Outcome::info(value.clone(), e);
            }
            Err(_) => {
                self.conn = None;
                return Outcome::info(value.clone(), "timed out");
            }
        };
        match parse_response(&reply, id, value) {
            Ok(o) => o,
            Err(why) => {
                self.conn = None;
                Outcome::info(value.clone(), why)
            }
        }
    }
}

impl Client for JsonlClient {
    async fn invoke(&mut self, f: &str, value: &Value) -> Outcome {
        self.call(f, value).await
    }
}

/// The outcome a response line gives for request `id` with `value`; the error says what
/// is wrong with a line that is not such a response.
pub fn parse_response(line: &[u8], id: u64, value: &Value) -> Result<Outcome, String> {
    let text = std::str::from_utf8(line).map_err(|_| "a response that is not UTF-8".to_string())?;
    let shown: String = text.trim_end().chars().take(200).collect();
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("a response that is not JSON ({e}): {shown}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("a response that is not an object: {shown}"))?;
    match obj.get("id").and_then(Value::as_u64) {
        Some(got) if got == id => {}
        Some(got) => return Err(format!("a response to request {got}, not {id}")),
        None => return Err(format!("a response without a numeric id: {shown}")),
    }
    let op_type = match obj.get("type").and_then(Value::as_str) {
        Some("ok") => OpType::Ok,
        Some("fail") => OpType::Fail,
        Some("info") => OpType::Info,
        _ => {
            return Err(format!(
                "a response whose type is not ok, fail or info: {shown}"
            ))
        }
    };
    let value = obj.get("value").cloned().unwrap_or_else(|| value.clone());
    let mut outcome = match op_type {
        OpType::Ok => Outcome::ok(value),
        OpType::Fail => Outcome::fail(value, ""),
        _ => Outcome::info(value, ""),
    };
    outcome.error = obj.get("error").cloned().filter(|e| !e.is_null());
    if op_type != OpType::Ok && outcome.error.is_none() {
        outcome.error = Some(Value::from(op_type.as_str()));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    #[test]
    fn responses_map_to_outcomes_and_garbage_is_named() {
        let v = json!(["k", 1]);
        let o = parse_response(br#"{"id":3,"type":"ok","value":["k",5]}"#, 3, &v).unwrap();
        assert_eq!((o.op_type, o.value), (OpType::Ok, json!(["k", 5])));
        let o = parse_response(br#"{"id":3,"type":"fail","error":"not leader"}"#, 3, &v).unwrap();
        assert_eq!(
            (o.op_type, o.value, o.error),
            (OpType::Fail, v.clone(), Some(json!("not leader")))
        );
        let o = parse_response(br#"{"id":3,"type":"info"}"#, 3, &v).unwrap();
        assert_eq!((o.op_type, o.error), (OpType::Info, Some(json!("info"))));
        for (line, want) in [
            (&b"hello"[..], "not JSON"),
            (br#"[1]"#, "not an object"),
            (br#"{"id":2,"type":"ok"}"#, "a response to request 2, not 3"),
            (br#"{"type":"ok"}"#, "without a numeric id"),
            (br#"{"id":3,"type":"maybe"}"#, "not ok, fail or info"),
            (b"\xff\xfe", "not UTF-8"),
        ] {
            let e = parse_response(line, 3, &v).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[tokio::test]
    async fn a_node_that_answers_garbage_or_hangs_yields_info_and_a_fresh_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // First connection: one good answer, then garbage. Second: silence.
            let (s, _) = listener.accept().await.unwrap();
            let mut s = BufReader::new(s);
            let mut line = String::new();
            s.read_line(&mut line).await.unwrap();
            let req: Value = serde_json::from_str(&line).unwrap();
            let reply = format!("{{\"id\":{},\"type\":\"ok\",\"value\":7}}\n", req["id"]);
            s.get_mut().write_all(reply.as_bytes()).await.unwrap();
            line.clear();
            s.read_line(&mut line).await.unwrap();
            s.get_mut().write_all(b"GARBAGE\n").await.unwrap();
            let (mut quiet, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = quiet.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let mut c = JsonlClient::new(addr, 4, 300);
        let o = c.invoke("read", &json!("k")).await;
        assert_eq!((o.op_type, o.value), (OpType::Ok, json!(7)));
        let o = c.invoke("read", &json!("k")).await;
        assert_eq!(o.op_type, OpType::Info);
        assert!(o.error.unwrap().as_str().unwrap().contains("not JSON"));
        let o = c.invoke("write", &json!(["k", 1])).await;
        assert_eq!(
            (o.op_type, o.error),
            (OpType::Info, Some(json!("timed out")))
        );
        // Nobody listens any more on a closed port: certainly not applied.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let o = JsonlClient::new(closed, 1, 300)
            .invoke("write", &json!(["k", 1]))
            .await;
        assert_eq!(o.op_type, OpType::Fail);
    }
}
