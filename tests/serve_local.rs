//! End to end on `faultline serve`: a store with a real repdb run (its report drawn by the
//! harness) and an unchecked one is served on a port of its own; the index lists and
//! filters runs, a run downloads as a tarball `tar` reads, nothing outside the store is
//! served, and headless Chromium (Debian's `chromium`) loads the index, opens the report
//! and renders its plots.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The server, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(store: &Path) -> Server {
    let mut child = faultline(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--store",
        store.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "serving STORE at http://127.0.0.1:PORT/"
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    Server { child, addr }
}

/// Sends a raw request line; the status line and the body.
fn get(addr: &str, target: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    (
        head.lines().next().unwrap().to_string(),
        raw[split + 4..].to_vec(),
    )
}

fn require_chromium() {
    require_tool("chromium", "chromium");
}

fn chromium(args: &[&str]) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn the_store_is_browsed_filtered_downloaded_and_rendered_in_chromium() {
    require_chromium();
    let store = store("serve");
    let out = faultline(&[
        "test",
        "--system",
        "repdb",
        "--workload",
        "list-append",
        "--nodes",
        "3",
        "--time-limit",
        "3",
        "--nemesis",
        "kill",
        "--nemesis-interval",
        "1",
        "--seed",
        "3",
        "--store",
        store.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = run_dir(&store);
    let test = run
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let stamp = run.file_name().unwrap().to_str().unwrap().to_string();
    // A run whose checking never happened, and a link that points out of the store.
    let unchecked = store.join("other").join("20200101T000000.000Z");
    std::fs::create_dir_all(&unchecked).unwrap();
    std::fs::write(
        unchecked.join("test.json"),
        r#"{"args":{"system":"etcd","workload":"register","nemesis":"none"}}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", run.join("leak")).unwrap();

    let server = start(&store);
    let (status, body) = get(&server.addr, "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let index = String::from_utf8(body).unwrap();
    assert!(
        index.contains(
            "<td>repdb</td><td>list-append</td><td>kill</td><td class=\"verdict\">valid</td>"
        ),
        "{index}"
    );
    assert!(
        index.contains(
            "<td>etcd</td><td>register</td><td>none</td><td class=\"verdict\">unchecked</td>"
        ),
        "{index}"
    );
    let (_, valid_only) = get(&server.addr, "/?verdict=valid");
    let valid_only = String::from_utf8(valid_only).unwrap();
    assert!(
        valid_only.contains("repdb") && !valid_only.contains("<td>etcd</td>"),
        "{valid_only}"
    );

    // Nothing outside the store, whatever the path says.
    for bad in [
        "/runs/../../../../etc/passwd",
        "/runs/%2e%2e/%2e%2e/etc/passwd",
        &format!("/runs/{test}/{stamp}/leak"),
    ] {
        let (status, body) = get(&server.addr, bad);
        assert!(status.starts_with("HTTP/1.1 404"), "{bad}: {status}");
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{bad}");
    }

    // A run as a tarball.
    let (status, tar) = get(&server.addr, &format!("/tar/{test}/{stamp}.tar"));
    assert_eq!(status, "HTTP/1.1 200 OK");
    let tar_path = store.join("run.tar");
    std::fs::write(&tar_path, &tar).unwrap();
    let listed = Command::new("tar")
        .arg("-tf")
        .arg(&tar_path)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listed = text(&listed.stdout);
    for f in ["report.html", "history.jsonl", "results.json", "test.json"] {
        assert!(
            listed.lines().any(|l| l == format!("{test}-{stamp}/{f}")),
            "{f}: {listed}"
        );
    }
    assert!(!listed.contains("leak"), "{listed}");

    // Chromium loads the index, follows it to the report, and renders the plots.
    let base = format!("http://{}", server.addr);
    let dom = chromium(&["--dump-dom", &format!("{base}/")]);
    let report_href = format!("/runs/{test}/{stamp}/report.html");
    assert!(dom.contains(&format!("href=\"{report_href}\"")), "{dom}");
    let report = chromium(&["--dump-dom", &format!("{base}{report_href}")]);
    assert!(
        report.contains("<h2>Latency and throughput</h2>"),
        "{report}"
    );
    assert!(
        report.matches("<svg").count() >= 3,
        "latency, throughput and timeline plots"
    );
    assert!(report.contains("<circle"), "latency dots");
    assert!(report.contains("txn latency"));
    let shot: PathBuf = store.join("report.png");
    chromium(&[
        "--window-size=1000,1600",
        &format!("--screenshot={}", shot.display()),
        &format!("{base}{report_href}"),
    ]);
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&png), (1000, 1600));
    // A blank page compresses to a few kilobytes; plots with thousands of dots do not.
    assert!(
        png.len() > 40_000,
        "the screenshot has content: {} bytes",
        png.len()
    );
}

#[test]
fn a_missing_store_or_a_busy_address_is_refused() {
    let out = faultline(&["serve", "--store", "/nonexistent/store"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(text(&out.stderr).contains("no store at /nonexistent/store"));
    let store = store("serve-busy");
    std::fs::create_dir_all(&store).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = faultline(&["serve", "--bind", &addr, "--store", store.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(
        text(&out.stderr).contains(&format!("cannot listen on {addr}")),
        "{}",
        text(&out.stderr)
    );
}
