//! `faultline serve`: the store in a browser. The front page lists every run (system,
//! workload, nemeses, verdict, date) and filters by verdict; each run's report and files
//! open from it, and a run downloads as a tarball.
//!
//! A small HTTP/1.1 server of its own (GET and HEAD, one request per connection): the
//! pages are static files and a generated index, so a framework would only add weight.
//! It binds to localhost unless told otherwise, and never serves anything outside the
//! store: request paths are plain names only (no `..`, no absolute paths), and what they
//! name is resolved and must still lie under the store's real path, so a symbolic link
//! cannot lead out. [`serve`] takes a bound listener, so tests bind port 0.

pub mod index;
pub mod tarball;

use crate::exit::Exit;
use anyhow::Context;
use clap::Args;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Bytes of a request head read at most.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Connections served at once; more wait.
const MAX_CONNECTIONS: usize = 64;
/// A client that has not sent its request by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A response not written by then is abandoned.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on. The default serves this machine only; anything else exposes
    /// the store's histories and logs to whoever can reach the address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// The store to browse.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
}

pub fn run(args: ServeArgs) -> anyhow::Result<Exit> {
    let store = match std::fs::canonicalize(&args.store) {
        Ok(s) if s.is_dir() => s,
        _ => {
            eprintln!("faultline serve: no store at {}", args.store.display());
            return Ok(Exit::BadInput);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let listener = match TcpListener::bind(&args.bind).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("faultline serve: cannot listen on {}: {e}", args.bind);
                return Ok(Exit::BadInput);
            }
        };
        let addr = listener.local_addr()?;
        println!("serving {} at http://{addr}/", store.display());
        serve(listener, store).await?;
        Ok(Exit::Valid)
    })
}

/// Serves `store` (a canonical path) on `listener` until accepting fails.
pub async fn serve(listener: TcpListener, store: PathBuf) -> std::io::Result<()> {
    let store = Arc::new(store);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let (sock, _) = listener.accept().await?;
        let store = store.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(RESPONSE_TIMEOUT, handle(sock, &store)).await;
            drop(permit);
        });
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Index { verdict: Option<String> },
    File(PathBuf),
    Tarball { test: String, stamp: String },
}

/// A response before it is written.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Body,
    extra: Vec<(&'static str, String)>,
}

enum Body {
    Bytes(Vec<u8>),
    File(PathBuf, u64),
}

impl Response {
    fn text(status: &'static str, text: String) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Body::Bytes(text.into_bytes()),
            extra: Vec::new(),
        }
    }

    fn html(page: String) -> Response {
        Response {
            status: "200 OK",
            content_type: "text/html; charset=utf-8",
            body: Body::Bytes(page.into_bytes()),
            extra: Vec::new(),
        }
    }
}

async fn handle(mut sock: TcpStream, store: &Path) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut sock)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            return respond(
                &mut sock,
                Response::text("400 Bad Request", format!("{e}\n")),
                false,
            )
            .await
        }
        Err(_) => return Ok(()),
    };
    let (method, target) = match parse_request_line(&head) {
        Ok(r) => r,
        Err(e) => {
            return respond(
                &mut sock,
                Response::text("400 Bad Request", format!("{e}\n")),
                false,
            )
            .await
        }
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(
            &mut sock,
            Response::text("405 Method Not Allowed", "GET or HEAD only\n".into()),
            false,
        )
        .await;
    }
    let response = match route(&target) {
        Ok(r) => answer(r, store).await,
        Err(e) => Response::text("404 Not Found", format!("{e}\n")),
    };
    respond(&mut sock, response, head_only).await
}

/// The request head, up to the blank line.
async fn read_head(sock: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "the request ended before its head did",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return String::from_utf8(buf)
                .map_err(|_| std::io::Error::other("the request head is not UTF-8"));
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(std::io::Error::other(format!(
                "the request head exceeds {MAX_REQUEST_BYTES} bytes"
            )));
        }
    }
}

fn parse_request_line(head: &str) -> Result<(String, String), String> {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) if v.starts_with("HTTP/1.") && t.starts_with('/') => {
            Ok((m.to_string(), t.to_string()))
        }
        _ => Err(format!("not an HTTP/1 request line: {line:?}")),
    }
}

/// `%XX` decoded; None for a bad escape or a decoded NUL.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// What `target` asks for; only plain names reach the store.
fn route(target: &str) -> Result<Route, String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(path).ok_or("bad escape in the path")?;
    if path == "/" || path == "/index.html" {
        let verdict = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("verdict="))
            .filter(|v| index::VERDICTS.contains(v))
            .map(str::to_string);
        return Ok(Route::Index { verdict });
    }
    let plain = |rel: &str| -> Result<PathBuf, String> {
        let p = Path::new(rel);
        if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format!("no such page: {path}"));
        }
        Ok(p.to_path_buf())
    };
    if let Some(rest) = path.strip_prefix("/tar/") {
        let rest = rest.strip_suffix(".tar").ok_or("tarballs end in .tar")?;
        let (test, stamp) = rest
            .split_once('/')
            .ok_or("a tarball is /tar/TEST/STAMP.tar")?;
        plain(test)?;
        plain(stamp)?;
        if stamp.contains('/') {
            return Err("a tarball is /tar/TEST/STAMP.tar".into());
        }
        return Ok(Route::Tarball {
            test: test.into(),
            stamp: stamp.into(),
        });
    }
    if let Some(rest) = path.strip_prefix("/runs/") {
        return Ok(Route::File(plain(rest.trim_end_matches('/'))?));
    }
    Err(format!("no such page: {path}"))
}

/// `rel` under `store`, resolved; None unless it exists and is still inside the store.
fn inside(store: &Path, rel: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(store.join(rel)).ok()?;
    real.starts_with(store).then_some(real)
}

async fn answer(route: Route, store: &Path) -> Response {
    let not_found = || Response::text("404 Not Found", "no such file in the store\n".into());
    match route {
        Route::Index { verdict } => Response::html(index::page(store, verdict.as_deref())),
        Route::File(rel) => {
            let Some(real) = inside(store, &rel) else {
                return not_found();
            };
            if real.is_dir() {
                return Response::html(listing(&real, &rel));
            }
            let Ok(meta) = std::fs::metadata(&real) else {
                return not_found();
            };
            Response {
                status: "200 OK",
                content_type: content_type(&real),
                body: Body::File(real, meta.len()),
                extra: Vec::new(),
            }
        }
        Route::Tarball { test, stamp } => {
            let rel = Path::new(&test).join(&stamp);
            let Some(real) = inside(store, &rel).filter(|r| r.is_dir()) else {
                return not_found();
            };
            let name = format!("{test}-{stamp}");
            match tokio::task::spawn_blocking(move || tarball::archive(&real, &name)).await {
                Ok(Ok(bytes)) => Response {
                    status: "200 OK",
                    content_type: "application/x-tar",
                    body: Body::Bytes(bytes),
                    extra: vec![(
                        "Content-Disposition",
                        format!("attachment; filename=\"{test}-{stamp}.tar\""),
                    )],
                },
                Ok(Err(e)) => Response::text("500 Internal Server Error", format!("{e}\n")),
                Err(e) => Response::text("500 Internal Server Error", format!("{e}\n")),
            }
        }
    }
}

/// A directory's entries as links.
fn listing(dir: &Path, rel: &Path) -> String {
    let names: Vec<(String, bool)> = crate::store::list_dir(dir, crate::store::EntryKind::All)
        .into_iter()
        .map(|n| {
            let is_dir = dir.join(&n).is_dir();
            (n, is_dir)
        })
        .collect();
    let base = format!("/runs/{}", rel.display());
    let items: Vec<String> = names
        .iter()
        .map(|(n, is_dir)| {
            let slash = if *is_dir { "/" } else { "" };
            let n = checkers::linearizable::report::esc(n);
            format!("<li><a href=\"{base}/{n}{slash}\">{n}{slash}</a></li>")
        })
        .collect();
    index::html(
        &rel.display().to_string(),
        &format!(
            "<p><a href=\"/\">all runs</a></p>\n<ul>\n{}\n</ul>\n",
            items.join("\n")
        ),
    )
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "tar" => "application/x-tar",
        // History lines, logs, EDN, TOML: shown as text rather than downloaded.
        _ => "text/plain; charset=utf-8",
    }
}

async fn respond(sock: &mut TcpStream, r: Response, head_only: bool) -> std::io::Result<()> {
    let len = match &r.body {
        Body::Bytes(b) => b.len() as u64,
        Body::File(_, len) => *len,
    };
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {len}\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n",
        r.status, r.content_type
    );
    for (k, v) in &r.extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).await?;
    if !head_only {
        match r.body {
            Body::Bytes(b) => sock.write_all(&b).await?,
            Body::File(path, len) => {
                let file = tokio::fs::File::open(&path).await?;
                // Exactly the length announced, even if the file grows meanwhile.
                tokio::io::copy(&mut file.take(len), sock).await?;
            }
        }
    }
    sock.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_reach_the_store() {
        assert_eq!(route("/").unwrap(), Route::Index { verdict: None });
        assert_eq!(
            route("/?verdict=invalid").unwrap(),
            Route::Index {
                verdict: Some("invalid".into())
            }
        );
        assert_eq!(
            route("/?verdict=<script>").unwrap(),
            Route::Index { verdict: None }
        );
        assert_eq!(
            route("/runs/t/s/report.html").unwrap(),
            Route::File("t/s/report.html".into())
        );
        assert_eq!(route("/runs/t/s/").unwrap(), Route::File("t/s".into()));
        assert_eq!(
            route("/tar/t/s1.tar").unwrap(),
            Route::Tarball {
                test: "t".into(),
                stamp: "s1".into()
            }
        );
        for bad in [
            "/runs/../etc/passwd",
            "/runs/t/../../x",
            "/runs/%2e%2e/%2e%2e/etc/passwd",
            "/runs//etc/passwd",
            "/runs/t/%00",
            "/runs/",
            "/tar/../x.tar",
            "/tar/t/s",
            "/etc/passwd",
        ] {
            assert!(route(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_out_of_the_store_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let store = d.path().join("store");
        std::fs::create_dir_all(store.join("t/s")).unwrap();
        std::fs::write(d.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), store.join("t/s/leak")).unwrap();
        std::fs::write(store.join("t/s/ok.txt"), "y").unwrap();
        let store = std::fs::canonicalize(&store).unwrap();
        assert!(inside(&store, Path::new("t/s/leak")).is_none());
        assert!(inside(&store, Path::new("t/s/ok.txt")).is_some());
        assert!(inside(&store, Path::new("t/s/missing")).is_none());
    }

    #[test]
    fn request_lines_are_http1_gets_with_paths() {
        assert_eq!(
            parse_request_line("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap(),
            ("GET".into(), "/".into())
        );
        assert!(parse_request_line("GET http://evil/ HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request_line("garbage\r\n\r\n").is_err());
        assert_eq!(percent_decode("/a%20b").unwrap(), "/a b");
        assert!(percent_decode("/a%2").is_none());
    }
}
