//! A member that dies by going silent: a raw session (no heartbeats, no close) joins the
//! group and drops its connection. The server must expire it within its timeout and
//! delete its node; `CoordClient` cannot do this, since it pings and closes on drop.

use super::{ghost_name, DIR};
use coord::api::{child_path, Acl, CreateFlags, CreateRequest, Request, SessionId};
use coord::server::proto::{ClientMsg, ServerMsg};
use machine::wire;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How far a ghost got before it went silent.
#[derive(Debug, thiserror::Error)]
pub enum GhostError {
    /// No session was granted: nothing will expire.
    #[error("no session: {0}")]
    NoSession(String),
    /// The session exists (and will expire) but the create was refused.
    #[error("session {session:#x}: create refused: {why}")]
    Refused { session: SessionId, why: String },
    /// The session exists; the create's outcome is unknown.
    #[error("session {session:#x}: create unanswered: {why}")]
    Unanswered { session: SessionId, why: String },
}

/// A ghost's session: its id, the timeout the server granted, and its member's path.
#[derive(Clone, Debug)]
pub struct Ghost {
    pub session: SessionId,
    pub timeout_ms: u64,
    pub member: String,
}

/// Opens a session on `addr`, joins as `g-<session>` and goes silent, all within `timeout`.
pub async fn join_and_vanish(
    addr: SocketAddr,
    session_timeout_ms: u64,
    timeout: Duration,
) -> Result<Ghost, (Option<Ghost>, GhostError)> {
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| (None, GhostError::NoSession("connect timed out".into())))?
        .map_err(|e| (None, GhostError::NoSession(e.to_string())))?;
    let hello = ClientMsg::Connect {
        session: None,
        timeout_ms: session_timeout_ms,
        last_zxid: 0,
    };
    let granted = tokio::time::timeout(timeout, exchange(&mut stream, &hello)).await;
    let (session, timeout_ms) = match granted {
        Ok(Ok(ServerMsg::Connected {
            session,
            timeout_ms,
            ..
        })) => (session, timeout_ms),
        Ok(Ok(other)) => return Err((None, GhostError::NoSession(format!("{other:?}")))),
        Ok(Err(e)) => return Err((None, GhostError::NoSession(e))),
        Err(_) => return Err((None, GhostError::NoSession("no answer".into()))),
    };
    let ghost = Ghost {
        session,
        timeout_ms,
        member: ghost_name(session),
    };
    let create = ClientMsg::Op {
        xid: 1,
        request: Request::Create(CreateRequest {
            path: child_path(DIR, &ghost.member),
            data: Vec::new(),
            acl: Acl::open(),
            flags: CreateFlags::EPHEMERAL,
        }),
    };
    let answer = tokio::time::timeout(timeout, exchange(&mut stream, &create)).await;
    // Dropping the stream here, without a Close, is the silence.
    match answer {
        Ok(Ok(ServerMsg::Reply { result: Ok(_), .. })) => Ok(ghost),
        Ok(Ok(ServerMsg::Reply {
            result: Err(code), ..
        })) if code.is_definite() => {
            let why = code.to_string();
            Err((Some(ghost), GhostError::Refused { session, why }))
        }
        Ok(Ok(other)) => {
            let why = format!("{other:?}");
            Err((Some(ghost), GhostError::Unanswered { session, why }))
        }
        Ok(Err(why)) => Err((Some(ghost), GhostError::Unanswered { session, why })),
        Err(_) => {
            let why = "timed out".to_string();
            Err((Some(ghost), GhostError::Unanswered { session, why }))
        }
    }
}

/// Sends one message and reads the next that is not a watch event.
async fn exchange(stream: &mut TcpStream, msg: &ClientMsg) -> Result<ServerMsg, String> {
    let frame = wire::encode(msg).map_err(|e| e.to_string())?;
    stream.write_all(&frame).await.map_err(|e| e.to_string())?;
    loop {
        let mut header = [0u8; wire::HEADER_BYTES];
        stream
            .read_exact(&mut header)
            .await
            .map_err(|e| e.to_string())?;
        let len = wire::body_len(header).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; len];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        match wire::decode::<ServerMsg>(&body).map_err(|e| e.to_string())? {
            ServerMsg::Watch { .. } => continue,
            other => return Ok(other),
        }
    }
}
