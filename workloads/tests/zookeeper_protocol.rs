//! The ZooKeeper client against a fake server that sends garbage: every malformed frame
//! ends in an error naming the server, never a panic, an allocation of what a length
//! claims, or a hang.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use workloads::zookeeper::{Client, Config, Error};

/// A listener whose connections are handed, after the client's ConnectRequest has been
/// read, to `serve`.
async fn fake_server<F, Fut>(serve: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            if read_frame(&mut stream).await.is_some() {
                serve(stream).await;
            }
        }
    });
    addr
}

async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let len = stream.read_u32().await.ok()?;
    let mut body = vec![0; len as usize];
    stream.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// A ConnectResponse granting `timeout_ms` to session 0x42.
fn connect_response(timeout_ms: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&timeout_ms.to_be_bytes());
    body.extend_from_slice(&0x42i64.to_be_bytes());
    body.extend_from_slice(&16i32.to_be_bytes());
    body.extend_from_slice(&[7; 16]);
    body.push(0);
    frame(&body)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn config(addr: &str) -> Config {
    let mut c = Config::new(&[addr.to_string()]);
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(3);
    c
}

async fn handshake_error(reply: Vec<u8>) -> Error {
    let addr = fake_server(move |mut s| {
        let reply = reply.clone();
        async move {
            let _ = s.write_all(&reply).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
    .await;
    let err = Client::connect(config(&addr)).await.err().expect("refused");
    assert!(err.to_string().contains(&addr), "names the server: {err}");
    err
}

#[tokio::test]
async fn oversized_negative_and_truncated_handshakes_are_protocol_errors() {
    for len in [i32::MAX, -1, (64 << 20)] {
        let err = handshake_error(len.to_be_bytes().to_vec()).await;
        assert!(
            matches!(&err, Error::Protocol { why, .. } if why.contains("frame length")),
            "length {len}: {err}"
        );
    }
    let err = handshake_error(frame(&[0, 0, 0])).await;
    assert!(
        matches!(&err, Error::Protocol { why, .. } if why.contains("truncated")),
        "{err}"
    );
    let mut trailing = connect_response(4000);
    trailing.extend_from_slice(&[0; 3]);
    let len = (trailing.len() - 4) as u32;
    trailing[..4].copy_from_slice(&len.to_be_bytes());
    let err = handshake_error(trailing).await;
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
}

#[tokio::test]
async fn a_server_that_says_the_session_expired_ends_the_session() {
    let err = handshake_error(connect_response(0)).await;
    assert!(
        matches!(err, Error::SessionExpired { session: 0, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_the_handshake() {
    let addr = fake_server(|s| async move {
        let _open = s;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let started = std::time::Instant::now();
    let err = Client::connect(config(&addr)).await.err().expect("timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// After a valid handshake the server answers the first request with `reply`.
async fn request_error(reply: Vec<u8>) -> (Error, Client) {
    let addr = fake_server(move |mut s| {
        let reply = reply.clone();
        async move {
            s.write_all(&connect_response(6000)).await.unwrap();
            if read_frame(&mut s).await.is_some() {
                let _ = s.write_all(&reply).await;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
    .await;
    let client = Client::connect(config(&addr)).await.unwrap();
    let err = client.get_data("/x").await.expect_err("garbage reply");
    assert!(err.to_string().contains(&addr), "names the server: {err}");
    (err, client)
}

#[tokio::test]
async fn garbage_replies_fail_the_request_and_drop_the_connection() {
    let oversized = (u32::MAX / 2).to_be_bytes().to_vec();
    let (err, _c) = request_error(oversized).await;
    assert!(
        matches!(&err, Error::ConnectionLoss { why, .. } if why.contains("frame length")),
        "{err}"
    );
    // A reply to an xid never sent (the first request's xid is 1).
    let mut wrong_xid = 99i32.to_be_bytes().to_vec();
    wrong_xid.extend_from_slice(&[0; 12]);
    let (err, _c) = request_error(frame(&wrong_xid)).await;
    assert!(
        matches!(&err, Error::Protocol { why, .. } if why.contains("out of order")),
        "{err}"
    );
    // A getData reply whose data length points past the frame.
    let mut lying = 1i32.to_be_bytes().to_vec();
    lying.extend_from_slice(&[0; 12]);
    lying.extend_from_slice(&1_000_000i32.to_be_bytes());
    let (err, c) = request_error(frame(&lying)).await;
    assert!(
        matches!(&err, Error::Protocol { why, .. } if why.contains("truncated")),
        "{err}"
    );
    assert_eq!(c.session_id(), 0x42);
}

#[tokio::test]
async fn oversized_requests_are_refused_before_sending() {
    let addr = fake_server(|mut s| async move {
        s.write_all(&connect_response(6000)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let client = Client::connect(config(&addr)).await.unwrap();
    let err = client
        .set_data("/big", &vec![0; 2 << 20], -1)
        .await
        .expect_err("too large");
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(err.is_definite(), "nothing was sent");
}
