//! Host key checking against an OpenSSH known_hosts file, as `ssh` does it.
//!
//! libssh2 does the matching (plain and hashed host names), but four of its habits differ
//! from OpenSSH and are worked around here:
//! - it compares a host's key with entries of *any* key type, so a host listed with its
//!   ed25519 key that negotiated its ecdsa key looks like a changed key: only entries of the
//!   negotiated type are loaded for the check;
//! - its host key preference is fixed (ed25519 first), while a known_hosts file may list
//!   only another of the host's keys (an older file, `ssh-keyscan -t rsa`): the key types
//!   the file lists for the host are preferred in the handshake;
//! - it falls back from `[host]:port` to a bare `host` entry, accepting the key of the sshd on
//!   port 22 for any port: the name is built as OpenSSH builds it and checked on its own;
//! - it stops reading a file at the first line it cannot parse (a certificate authority, a
//!   security-key type): lines are read one at a time and the unparsable skipped.

use super::{SshConfig, SshError};
use ssh2::{
    CheckResult, HashType, HostKeyType, KnownHostFileKind, KnownHosts, MethodType, Session,
};
use std::path::Path;

/// One host key line of a known_hosts file.
struct Entry {
    /// `@revoked` lines name keys never to accept, for any host.
    revoked: bool,
    key_type: String,
    key_base64: String,
    /// The line without its marker, as libssh2 parses it.
    line: String,
}

/// The name known_hosts files use for a host: bare on port 22, else `[host]:port`.
pub(super) fn entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Orders the handshake's host key algorithms so the key types the file lists for the host
/// come first (the rest follow, so a host that dropped them still reaches the check and is
/// refused there with a clear message rather than failing the handshake).
pub(super) fn prefer_known_key_types(config: &SshConfig, host: &str, session: &Session) {
    let entries = load(&config.known_hosts);
    let name = entry_name(host, config.port);
    let mut known_types: Vec<&str> = Vec::new();
    for entry in entries.iter().filter(|e| !e.revoked) {
        if !known_types.contains(&entry.key_type.as_str())
            && lists(session, &entries, &entry.key_type, &name)
        {
            known_types.push(&entry.key_type);
        }
    }
    if known_types.is_empty() {
        return;
    }
    let Ok(supported) = session.supported_algs(MethodType::HostKey) else {
        return;
    };
    let mut order: Vec<&str> = known_types
        .iter()
        .flat_map(|t| algorithms_for(t))
        .filter(|a| supported.contains(a))
        .collect();
    let rest: Vec<&str> = supported
        .iter()
        .copied()
        .filter(|a| !order.contains(a))
        .collect();
    order.extend(rest);
    if let Err(e) = session.method_pref(MethodType::HostKey, &order.join(",")) {
        tracing::debug!(host, %e, "cannot order host key algorithms");
    }
}

/// Accepts the session's host key if known_hosts lists it for the host; otherwise refuses
/// (strict) or warns and accepts (relaxed).
pub(super) fn verify(config: &SshConfig, host: &str, session: &Session) -> Result<(), SshError> {
    let port = config.port;
    let known_hosts = config.known_hosts.display().to_string();
    let (key, kind) = session.host_key().ok_or_else(|| SshError::Session {
        host: host.into(),
        port,
        action: "read the host key",
        cause: "the server offered none".into(),
    })?;
    let fingerprint = fingerprint(session);
    let entries = load(&config.known_hosts);
    let name = entry_name(host, port);
    let offered = base64(key, true);
    if entries.iter().any(|e| e.revoked && e.key_base64 == offered) {
        return Err(SshError::RevokedHostKey {
            host: host.into(),
            port,
            fingerprint,
            known_hosts,
        });
    }
    let result = check(session, &entries, key_type_name(kind), &name, key);
    if matches!(result, CheckResult::Match) {
        return Ok(());
    }
    if !config.strict_host_key_checking {
        tracing::warn!(
            host, port, %fingerprint, %known_hosts, ?result,
            "accepting an unverified host key (strict host key checking is off)"
        );
        return Ok(());
    }
    Err(match result {
        CheckResult::Mismatch => SshError::HostKeyMismatch {
            host: host.into(),
            port,
            entry: name,
            fingerprint,
            known_hosts,
        },
        CheckResult::NotFound => SshError::UnknownHostKey {
            host: host.into(),
            port,
            fingerprint,
            known_hosts,
        },
        _ => SshError::Session {
            host: host.into(),
            port,
            action: "check the host key",
            cause: format!("libssh2 could not check it against {known_hosts}"),
        },
    })
}

/// How `name` and `key` compare with the entries of one key type.
fn check(
    session: &Session,
    entries: &[Entry],
    key_type: &str,
    name: &str,
    key: &[u8],
) -> CheckResult {
    match collection(session, entries, key_type) {
        // As `check` and not `check_port`: see the module documentation on port fallback.
        Some(known) => known.check(name, key),
        None => CheckResult::Failure,
    }
}

/// Whether the file lists `name` with a key of `key_type` (any key: a placeholder never
/// matches, so a listed host shows as a mismatch).
fn lists(session: &Session, entries: &[Entry], key_type: &str, name: &str) -> bool {
    matches!(
        check(session, entries, key_type, name, b"\0"),
        CheckResult::Mismatch
    )
}

/// The entries of one key type, in libssh2's form; lines it cannot parse are skipped.
fn collection(session: &Session, entries: &[Entry], key_type: &str) -> Option<KnownHosts> {
    let mut known = session.known_hosts().ok()?;
    for entry in entries
        .iter()
        .filter(|e| !e.revoked && e.key_type == key_type)
    {
        if let Err(e) = known.read_str(&entry.line, KnownHostFileKind::OpenSSH) {
            tracing::debug!(line = %entry.line, %e, "skipping a known_hosts line libssh2 cannot parse");
        }
    }
    Some(known)
}

/// The file's host key lines. A missing or unreadable file lists nothing, so in strict mode
/// every host is refused, with the error naming the file.
fn load(path: &Path) -> Vec<Entry> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            tracing::debug!(path = %path.display(), %e, "no known_hosts");
            return Vec::new();
        }
    };
    text.lines().filter_map(parse_line).collect()
}

/// `[@marker] names key-type base64-key [comment]`; None for blanks, comments and
/// certificate authorities (not supported).
fn parse_line(line: &str) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (revoked, rest) = match line.strip_prefix('@') {
        Some(marked) => {
            let (marker, rest) = marked.split_once(char::is_whitespace)?;
            (marker == "revoked", rest.trim_start())
        }
        None => (false, line),
    };
    if line.starts_with('@') && !revoked {
        return None;
    }
    let mut fields = rest.split_whitespace();
    let (_names, key_type, key_base64) = (fields.next()?, fields.next()?, fields.next()?);
    Some(Entry {
        revoked,
        key_type: key_type.to_string(),
        key_base64: key_base64.to_string(),
        line: rest.to_string(),
    })
}

/// The known_hosts key type of a negotiated host key (RSA keys are `ssh-rsa` whatever the
/// signature algorithm).
fn key_type_name(kind: HostKeyType) -> &'static str {
    match kind {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

/// The handshake algorithms that prove a key of `key_type`.
fn algorithms_for(key_type: &str) -> Vec<&str> {
    match key_type {
        "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        other => vec![other],
    }
}

/// The key's fingerprint as `ssh-keygen -l` and `ssh` print it.
fn fingerprint(session: &Session) -> String {
    match session.host_key_hash(HashType::Sha256) {
        Some(hash) => format!("SHA256:{}", base64(hash, false)),
        None => "unknown fingerprint".into(),
    }
}

/// Standard base64 (the alphabet of known_hosts keys and fingerprints).
fn base64(bytes: &[u8], pad: bool) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if pad {
            out.extend(std::iter::repeat_n('=', 3 - chunk.len()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"", true), "");
        assert_eq!(base64(b"f", true), "Zg==");
        assert_eq!(base64(b"fo", true), "Zm8=");
        assert_eq!(base64(b"foo", true), "Zm9v");
        assert_eq!(base64(b"foob", false), "Zm9vYg");
        assert_eq!(base64(&[0xfb, 0xff], true), "+/8=");
    }

    #[test]
    fn names_carry_the_port_unless_it_is_22() {
        assert_eq!(entry_name("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(entry_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
    }

    #[test]
    fn lines_are_parsed_as_openssh_writes_them() {
        let e = parse_line("[h]:2222,10.0.0.1 ssh-ed25519 AAAAC3Nz comment here").unwrap();
        assert_eq!((e.revoked, e.key_type.as_str()), (false, "ssh-ed25519"));
        assert_eq!(e.key_base64, "AAAAC3Nz");
        let r = parse_line("@revoked * ssh-rsa AAAAB3").unwrap();
        assert!(r.revoked);
        assert_eq!(r.line, "* ssh-rsa AAAAB3");
        assert!(parse_line("@cert-authority *.example ssh-rsa AAAA").is_none());
        assert!(parse_line("# comment").is_none());
        assert!(parse_line("   ").is_none());
        assert!(parse_line("host-only").is_none());
    }
}
