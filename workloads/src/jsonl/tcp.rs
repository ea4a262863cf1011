//! The TCP transport: one connection per worker to its node's client port, for systems that
//! speak the protocol themselves.

use super::Channel;
use std::net::SocketAddr;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// A connection to `addr`, or why there is none by `deadline`.
pub(super) async fn open(addr: SocketAddr, deadline: Instant) -> Result<Channel, String> {
    let stream = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect {addr}: {e}")),
        Err(_) => return Err(format!("connect {addr}: timed out")),
    };
    // One small line each way per operation: waiting to coalesce only adds latency.
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    Ok(Channel {
        reader: Box::new(BufReader::new(read)),
        writer: Box::new(write),
        closed: "the node closed the connection",
        child: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::JsonlClient;
    use crate::client::Client;
    use checkers::history::{OpType, Value};
    use serde_json::json;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

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
        let mut c = JsonlClient::tcp(addr, 4, 300);
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
        let o = JsonlClient::tcp(closed, 1, 300)
            .invoke("write", &json!(["k", 1]))
            .await;
        assert_eq!(o.op_type, OpType::Fail);
    }

    #[tokio::test]
    async fn a_connection_the_node_closed_while_idle_is_reopened_not_risked() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // Each connection answers one request, then closes: as a node restarted
            // between operations would have.
            for _ in 0..2 {
                let (s, _) = listener.accept().await.unwrap();
                let mut s = BufReader::new(s);
                let mut line = String::new();
                s.read_line(&mut line).await.unwrap();
                let req: Value = serde_json::from_str(&line).unwrap();
                let reply = format!("{{\"id\":{},\"type\":\"ok\"}}\n", req["id"]);
                s.get_mut().write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let mut c = JsonlClient::tcp(addr, 0, 1000);
        let o = c.invoke("write", &json!(["k", 1])).await;
        assert_eq!(o.op_type, OpType::Ok);
        // Let the close arrive before the next request.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let o = c.invoke("write", &json!(["k", 2])).await;
        assert_eq!((o.op_type, o.error), (OpType::Ok, None));
    }
}
