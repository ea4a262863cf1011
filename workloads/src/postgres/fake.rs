//! A minimal PostgreSQL server for the client's tests: enough of the wire protocol (startup
//! without authentication, the extended protocol tokio-postgres prepares and runs its
//! statements with, simple queries for BEGIN/COMMIT/ROLLBACK) to run the workloads'
//! transactions, with COMMIT and appends answering as a test says. That is how the tests
//! reach what a real server does only by accident: a connection lost during COMMIT, a FATAL
//! error, an answer that never comes.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the server answers a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// As a healthy server would.
    Normally,
    /// An `ERROR` with this SQLSTATE (the transaction is aborted, the session lives).
    Error(&'static str),
    /// A `FATAL` error with this SQLSTATE, then the connection closes.
    Fatal(&'static str),
    /// The connection closes without a word.
    Close,
    /// Nothing, ever.
    Hang,
}

/// How the server answers COMMIT and writes (appends, register writes, bank updates).
#[derive(Clone, Copy, Debug)]
pub struct Script {
    pub commit: Answer,
    pub write: Answer,
}

/// Serves `script` on a fresh local port until the runtime ends.
pub async fn serve(script: Script) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(session(s, script));
        }
    });
    addr
}

fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    b
}

fn complete(tag: &str) -> Vec<u8> {
    msg(b'C', &cstr(tag))
}

fn ready(status: u8) -> Vec<u8> {
    msg(b'Z', &[status])
}

fn error(severity: &str, code: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', "scripted"),
    ] {
        body.push(field);
        body.extend(cstr(value));
    }
    body.push(0);
    msg(b'E', &body)
}

/// Parameter and column types of a statement, by its text: INT8 (20), TEXT (25).
fn types(sql: &str) -> (Vec<u32>, Vec<(&'static str, u32)>) {
    if sql.starts_with("SELECT v FROM lists") {
        (vec![20], vec![("v", 25)])
    } else if sql.starts_with("SELECT v FROM registers") || sql.starts_with("SELECT balance") {
        (vec![20], vec![("v", 20)])
    } else if sql.starts_with("SELECT id, balance") {
        (vec![], vec![("id", 20), ("balance", 20)])
    } else if sql.starts_with("INSERT INTO lists") {
        (vec![20, 25], vec![])
    } else {
        (vec![20, 20], vec![])
    }
}

async fn session(mut s: TcpStream, script: Script) {
    // Startup: length, then the rest; no authentication.
    let Ok(len) = s.read_u32().await else { return };
    let mut rest = vec![0u8; len.saturating_sub(4) as usize];
    if s.read_exact(&mut rest).await.is_err() {
        return;
    }
    let mut out = msg(b'R', &0u32.to_be_bytes());
    out.extend(ready(b'I'));
    if s.write_all(&out).await.is_err() {
        return;
    }
    // Prepared statements by name, and the one the last Parse, Describe or Bind named.
    let mut statements = std::collections::BTreeMap::new();
    let mut parsed = String::new();
    let mut status = b'I';
    loop {
        let Ok(kind) = s.read_u8().await else { return };
        let Ok(len) = s.read_u32().await else { return };
        let mut body = vec![0u8; len.saturating_sub(4) as usize];
        if s.read_exact(&mut body).await.is_err() {
            return;
        }
        let text = |b: &[u8]| {
            String::from_utf8_lossy(b.split(|&c| c == 0).next().unwrap_or(&[])).into_owned()
        };
        // The statement a Describe ('S', name) or Bind (portal, name) names.
        let named = |b: &[u8]| {
            let name = match kind {
                b'D' => text(&b[1..]),
                _ => text(&b[b.iter().position(|&c| c == 0).map_or(0, |i| i + 1)..]),
            };
            statements.get(&name).cloned().unwrap_or_default()
        };
        let answer = match kind {
            b'P' => {
                // Statement name, then the query.
                let name_end = body.iter().position(|&c| c == 0).unwrap_or(0);
                parsed = text(&body[name_end + 1..]);
                statements.insert(text(&body), parsed.clone());
                msg(b'1', &[])
            }
            b'D' => {
                parsed = named(&body);
                let (params, cols) = types(&parsed);
                let mut pd = (params.len() as u16).to_be_bytes().to_vec();
                for p in params {
                    pd.extend(p.to_be_bytes());
                }
                let mut out = msg(b't', &pd);
                if cols.is_empty() {
                    out.extend(msg(b'n', &[]));
                } else {
                    let mut rd = (cols.len() as u16).to_be_bytes().to_vec();
                    for (name, oid) in cols {
                        rd.extend(cstr(name));
                        rd.extend(0u32.to_be_bytes());
                        rd.extend(0u16.to_be_bytes());
                        rd.extend(oid.to_be_bytes());
                        rd.extend((-1i16).to_be_bytes());
                        rd.extend((-1i32).to_be_bytes());
                        rd.extend(0u16.to_be_bytes());
                    }
                    out.extend(msg(b'T', &rd));
                }
                out
            }
            b'B' => {
                parsed = named(&body);
                msg(b'2', &[])
            }
            // Every account holds 100 (INT8, in the binary format tokio-postgres asks for).
            b'E' if parsed.starts_with("SELECT balance") => {
                let mut row = 1u16.to_be_bytes().to_vec();
                row.extend(8u32.to_be_bytes());
                row.extend(100i64.to_be_bytes());
                [msg(b'D', &row), complete("SELECT 1")].concat()
            }
            // Lists and registers are empty.
            b'E' if parsed.starts_with("SELECT") => complete("SELECT 0"),
            b'E' => match script.write {
                Answer::Normally => complete("INSERT 0 1"),
                Answer::Error(code) => {
                    status = b'E';
                    error("ERROR", code)
                }
                Answer::Fatal(code) => {
                    let _ = s.write_all(&error("FATAL", code)).await;
                    return;
                }
                Answer::Close => return,
                Answer::Hang => std::future::pending().await,
            },
            b'S' => ready(status),
            b'Q' => {
                let q = text(&body);
                if q.starts_with("COMMIT") {
                    match script.commit {
                        Answer::Normally => {
                            status = b'I';
                            [complete("COMMIT"), ready(b'I')].concat()
                        }
                        Answer::Error(code) => {
                            status = b'I';
                            [error("ERROR", code), ready(b'I')].concat()
                        }
                        Answer::Fatal(code) => {
                            let _ = s.write_all(&error("FATAL", code)).await;
                            return;
                        }
                        Answer::Close => return,
                        Answer::Hang => std::future::pending().await,
                    }
                } else if q.starts_with("BEGIN") {
                    status = b'T';
                    [complete("BEGIN"), ready(b'T')].concat()
                } else {
                    status = b'I';
                    [complete("ROLLBACK"), ready(b'I')].concat()
                }
            }
            b'X' => return,
            _ => Vec::new(),
        };
        if s.write_all(&answer).await.is_err() {
            return;
        }
    }
}
