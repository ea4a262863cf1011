//! The floor's parts, measured on this machine: a forced log write (through the storage
//! crate, and raw) and a loopback round trip of one framed client request.

use crate::stats::Dist;
use crate::STEP_TIMEOUT;
use machine::{DiskOp, Write};
use node::frame;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};
use storage::{Limits, Store};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use twopc::proto::{Mop, Request};

/// Bytes of each forced record.
pub const RECORD_BYTES: usize = 100;
/// Unmeasured forced writes before the samples (file creation, first segment).
const FSYNC_WARMUP: usize = 20;
/// Unmeasured round trips before the samples.
const RTT_WARMUP: usize = 200;

/// Forced-write latencies, three ways, in one directory.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Fsync {
    /// `storage::Store::write` of one `Write` holding one `Append` of one record, as the
    /// node's disk thread does for a batch: frame, crc, `pwrite` at the log's end, then
    /// `fdatasync` (the file grows with every record).
    pub store_append: Dist,
    /// `write` of the bytes at the end of a plain file, then `fdatasync` (the file grows).
    pub raw_append: Dist,
    /// `pwrite` over the same bytes of a preallocated, synced file, then `fdatasync` (no
    /// size change): what a log that preallocated its segments would pay. Context only.
    pub raw_overwrite: Dist,
}

/// Measures forced writes in `dir` (created; left for the caller to remove).
pub fn fsync(dir: &Path, samples: usize) -> Result<Fsync, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let record = vec![0x5a_u8; RECORD_BYTES];

    let store_dir = dir.join("store");
    let (mut store, _, _) = Store::open(&store_dir, Limits::default())
        .map_err(|e| format!("opening a store in {}: {e}", store_dir.display()))?;
    let mut token = 0;
    let store_append = time_each(samples, || {
        token += 1;
        let write = Write {
            token,
            ops: vec![DiskOp::Append {
                log: "txn".into(),
                records: vec![record.clone()],
            }],
        };
        let began = Instant::now();
        store
            .write(std::slice::from_ref(&write))
            .map_err(|e| format!("store write: {e}"))?;
        Ok(began.elapsed())
    })?;

    let path = dir.join("raw-append");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    let raw_append = time_each(samples, || {
        let began = Instant::now();
        file.write_all(&record)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("write+fdatasync {}: {e}", path.display()))?;
        Ok(began.elapsed())
    })?;

    let path = dir.join("raw-overwrite");
    let file = File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    file.write_all_at(&[0u8; 4096], 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("preallocating {}: {e}", path.display()))?;
    let raw_overwrite = time_each(samples, || {
        let began = Instant::now();
        file.write_all_at(&record, 0)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("pwrite+fdatasync {}: {e}", path.display()))?;
        Ok(began.elapsed())
    })?;

    Ok(Fsync {
        store_append: Dist::of(&store_append).expect("samples > 0"),
        raw_append: Dist::of(&raw_append).expect("samples > 0"),
        raw_overwrite: Dist::of(&raw_overwrite).expect("samples > 0"),
    })
}

fn time_each(
    samples: usize,
    mut one: impl FnMut() -> Result<Duration, String>,
) -> Result<Vec<Duration>, String> {
    for _ in 0..FSYNC_WARMUP {
        one()?;
    }
    (0..samples).map(|_| one()).collect()
}

/// The request the round trip carries: a transfer, as clients send it.
pub fn probe_request() -> Request {
    Request::Txn {
        ops: vec![
            Mop::Add { key: 1, delta: -1 },
            Mop::Add { key: 2, delta: 1 },
        ],
    }
}

/// Round trips of one framed request between a client task on the caller's runtime and an
/// echo task on a runtime of its own thread (as every node has), over loopback TCP with
/// `TCP_NODELAY`, one at a time.
pub async fn rtt(samples: usize) -> Result<Dist, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let echo = std::thread::Builder::new()
        .name("rtt-echo".into())
        .spawn(move || echo(listener))
        .map_err(|e| format!("spawning the echo thread: {e}"))?;
    let stream = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connecting to the echo task timed out".to_string())?
        .map_err(|e| format!("connecting to the echo task: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let req = probe_request();
    let mut out = Vec::with_capacity(samples);
    for i in 0..RTT_WARMUP + samples {
        let began = Instant::now();
        let back = tokio::time::timeout(STEP_TIMEOUT, async {
            frame::write(&mut w, &req).await?;
            frame::read::<Request>(&mut r).await
        })
        .await
        .map_err(|_| format!("round trip {i} timed out after {STEP_TIMEOUT:?}"))?
        .map_err(|e| format!("round trip {i}: {e}"))?;
        let took = began.elapsed();
        if back.as_ref() != Some(&req) {
            return Err(format!("round trip {i}: the echo sent back {back:?}"));
        }
        if i >= RTT_WARMUP {
            out.push(took);
        }
    }
    drop((r, w));
    echo.join()
        .map_err(|_| "the echo thread panicked".to_string())??;
    Ok(Dist::of(&out).expect("samples > 0"))
}

fn echo(listener: std::net::TcpListener) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("echo runtime: {e}"))?;
    rt.block_on(async move {
        let listener = TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        let (stream, _) = tokio::time::timeout(STEP_TIMEOUT, listener.accept())
            .await
            .map_err(|_| "the echo task got no connection".to_string())?
            .map_err(|e| format!("echo accept: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        loop {
            let next = tokio::time::timeout(STEP_TIMEOUT, frame::read::<Request>(&mut r))
                .await
                .map_err(|_| "the echo task waited too long for a frame".to_string())?
                .map_err(|e| format!("echo read: {e}"))?;
            let Some(req) = next else {
                return Ok(());
            };
            frame::write(&mut w, &req)
                .await
                .map_err(|e| format!("echo write: {e}"))?;
        }
    })
}
