//! One TCP connection to one server: the session handshake, a reader task that turns
//! frames into messages, and framed writes. Frames are `machine::wire`'s: a 4-byte
//! little-endian length, then postcard, refused above `machine::MAX_MESSAGE_BYTES` before
//! anything is allocated.

use coord::api::{ErrorCode, SessionId, Zxid};
use coord::server::proto::{ClientMsg, ServerMsg};
use machine::wire;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Messages read ahead of the session task. When it is full the reader stops reading, and
/// TCP pushes back on the server.
const READ_AHEAD: usize = 256;

/// What the client says when it connects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hello {
    pub session: Option<SessionId>,
    pub timeout_ms: u64,
    pub last_zxid: Zxid,
}

/// What the server granted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Granted {
    pub session: SessionId,
    pub timeout_ms: u64,
    pub zxid: Zxid,
}

/// Why an attempt to connect to one server did not give a session.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// The server says the session is gone: trying elsewhere is pointless.
    Expired,
    /// This server cannot take the session now; another may.
    Retry(String),
}

pub(crate) struct Conn {
    pub addr: SocketAddr,
    writer: OwnedWriteHalf,
    frames: mpsc::Receiver<Result<ServerMsg, String>>,
    reader: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Connects to `addr` and opens or resumes a session there, all within `timeout`.
pub(crate) async fn open(
    addr: SocketAddr,
    hello: Hello,
    timeout: Duration,
) -> Result<(Conn, Granted), AttemptError> {
    match tokio::time::timeout(timeout, handshake(addr, hello)).await {
        Ok(result) => result,
        Err(_) => Err(AttemptError::Retry(format!(
            "{addr}: no session within {} ms",
            timeout.as_millis()
        ))),
    }
}

async fn handshake(addr: SocketAddr, hello: Hello) -> Result<(Conn, Granted), AttemptError> {
    let retry = |why: String| AttemptError::Retry(format!("{addr}: {why}"));
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| retry(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (r, writer) = stream.into_split();
    let (tx, frames) = mpsc::channel(READ_AHEAD);
    let reader = tokio::spawn(read_frames(r, tx));
    let mut conn = Conn {
        addr,
        writer,
        frames,
        reader,
    };
    let connect = ClientMsg::Connect {
        session: hello.session,
        timeout_ms: hello.timeout_ms,
        last_zxid: hello.last_zxid,
    };
    conn.write(&connect).await.map_err(retry)?;
    let first = conn.recv().await.map_err(retry)?;
    let granted = match first {
        ServerMsg::Connected {
            session,
            timeout_ms,
            zxid,
        } => Granted {
            session,
            timeout_ms,
            zxid,
        },
        ServerMsg::Refused {
            code: ErrorCode::SessionExpired,
        } if hello.session.is_some() => return Err(AttemptError::Expired),
        ServerMsg::Refused { code } => return Err(retry(format!("refused: {code}"))),
        other => return Err(retry(format!("answered the handshake with {other:?}"))),
    };
    if granted.zxid < hello.last_zxid {
        // The server promises to catch up first; one that does not would take us back.
        return Err(retry(format!(
            "at zxid {:#x}, behind the client's {:#x}",
            granted.zxid, hello.last_zxid
        )));
    }
    if hello.session.is_some_and(|s| s != granted.session) {
        return Err(retry(format!(
            "resumed session {:#x} instead",
            granted.session
        )));
    }
    Ok((conn, granted))
}

impl Conn {
    /// Writes one message. Not cancel-safe: callers bound it with a timeout and drop the
    /// connection if it fails.
    pub async fn write(&mut self, msg: &ClientMsg) -> Result<(), String> {
        let frame = wire::encode(msg).map_err(|e| e.to_string())?;
        self.writer
            .write_all(&frame)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// The next message from the server. Cancel-safe.
    pub async fn recv(&mut self) -> Result<ServerMsg, String> {
        match self.frames.recv().await {
            Some(msg) => msg,
            None => Err("the reader stopped".into()),
        }
    }
}

/// Reads frames until the stream ends or breaks, reporting the end as an error.
async fn read_frames(mut r: OwnedReadHalf, tx: mpsc::Sender<Result<ServerMsg, String>>) {
    loop {
        let msg = read_frame(&mut r).await;
        let end = msg.is_err();
        if tx.send(msg).await.is_err() || end {
            return;
        }
    }
}

async fn read_frame(r: &mut OwnedReadHalf) -> Result<ServerMsg, String> {
    let mut header = [0u8; wire::HEADER_BYTES];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err("the server closed the connection".into())
        }
        Err(e) => return Err(format!("read: {e}")),
    }
    let len = wire::body_len(header).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .await
        .map_err(|e| format!("read: {e}"))?;
    wire::decode(&body).map_err(|e| e.to_string())
}
