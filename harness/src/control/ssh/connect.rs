//! Opening an authenticated session: TCP connect and handshake (retried with backoff, as a
//! host that is booting or whose sshd is restarting refuses or resets for a moment), then the
//! host key check and key authentication (never retried: they fail the same way again).

use super::known_hosts;
use super::{SshConfig, SshError};
use ssh2::Session;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// The longest wait between two connection attempts, however many retries are configured.
const MAX_BACKOFF_MS: u64 = 10_000;

/// An authenticated session to `host`, in blocking mode with the I/O timeout set.
pub(super) fn connect(config: &SshConfig, host: &str) -> Result<Session, SshError> {
    let session = handshake_with_retries(config, host)?;
    known_hosts::verify(config, host, &session)?;
    authenticate(config, host, &session)?;
    session.set_timeout(config.io_timeout_ms);
    tracing::debug!(host, port = config.port, "SSH session open");
    Ok(session)
}

fn handshake_with_retries(config: &SshConfig, host: &str) -> Result<Session, SshError> {
    let attempts = config.connect_retries.saturating_add(1);
    let mut backoff_ms = config.retry_backoff_ms;
    let mut cause = String::new();
    for attempt in 1..=attempts {
        match handshake(config, host) {
            Ok(session) => return Ok(session),
            Err(e) => cause = e,
        }
        if attempt < attempts {
            tracing::debug!(host, attempt, %cause, backoff_ms, "SSH connect failed; retrying");
            std::thread::sleep(Duration::from_millis(backoff_ms));
            backoff_ms = backoff_ms.saturating_mul(2).min(MAX_BACKOFF_MS);
        }
    }
    Err(SshError::Unreachable {
        host: host.into(),
        port: config.port,
        attempts,
        cause,
    })
}

/// One attempt at a TCP connection and an SSH handshake; every failure here is worth a retry.
fn handshake(config: &SshConfig, host: &str) -> Result<Session, String> {
    let tcp = tcp_connect(host, config.port, config.connect_timeout_ms)?;
    let mut session = Session::new().map_err(|e| format!("cannot create a session: {e}"))?;
    session.set_timeout(config.connect_timeout_ms);
    known_hosts::prefer_known_key_types(config, host, &session);
    session.set_tcp_stream(tcp);
    session
        .handshake()
        .map_err(|e| format!("SSH handshake failed: {e}"))?;
    Ok(session)
}

/// Connects to the first of the host's addresses that answers.
fn tcp_connect(host: &str, port: u16, timeout_ms: u32) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let timeout = Duration::from_millis(u64::from(timeout_ms.max(1)));
    let mut last = format!("{host} has no addresses");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => {
                // Commands and their replies are small messages: do not let Nagle hold them.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

fn authenticate(config: &SshConfig, host: &str, session: &Session) -> Result<(), SshError> {
    let auth_error = |cause: String| SshError::Auth {
        user: config.user.clone(),
        host: host.into(),
        port: config.port,
        key: config.private_key.display().to_string(),
        cause,
    };
    // libssh2 reports a missing or unreadable key as a generic auth failure: say which.
    std::fs::File::open(&config.private_key).map_err(|e| auth_error(e.to_string()))?;
    let public = public_key_path(config);
    session
        .userauth_pubkey_file(&config.user, public.as_deref(), &config.private_key, None)
        .map_err(|e| auth_error(e.to_string()))?;
    if !session.authenticated() {
        return Err(auth_error("the server did not accept the key".into()));
    }
    Ok(())
}

/// `<key>.pub` when it exists; without it libssh2 derives the public key from the private.
fn public_key_path(config: &SshConfig) -> Option<PathBuf> {
    let mut name = config.private_key.clone().into_os_string();
    name.push(".pub");
    let path = PathBuf::from(name);
    path.exists().then_some(path)
}
