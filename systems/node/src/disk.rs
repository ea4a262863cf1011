//! The disk thread: owns the store, and makes writes durable in order, many per fsync.
//!
//! The core emits writes as it steps; while one round of fsyncs is under way more writes
//! queue up, and the next round takes them all (group commit). A round reports the last
//! token it made durable, which by the contract covers every write before it.

use machine::Write;
use std::sync::mpsc;
use storage::Store;
use tokio::sync::mpsc as tmpsc;

/// Upper bound of writes one round takes, so one round's latency stays bounded.
pub const MAX_WRITES_PER_ROUND: usize = 1024;

/// What the disk thread tells the driver.
#[derive(Debug)]
pub enum DiskReport {
    Persisted(u64),
    Failed(String),
}

/// A handle to the disk thread; dropping it stops the thread after pending writes.
pub struct DiskThread {
    tx: mpsc::Sender<Write>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl DiskThread {
    pub fn start(mut store: Store, reports: tmpsc::UnboundedSender<DiskReport>) -> Self {
        let (tx, rx) = mpsc::channel::<Write>();
        let handle = std::thread::Builder::new()
            .name("disk".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_WRITES_PER_ROUND {
                        match rx.try_recv() {
                            Ok(w) => batch.push(w),
                            Err(_) => break,
                        }
                    }
                    let last = batch.last().expect("non-empty").token;
                    let report = match store.write(&batch) {
                        Ok(()) => DiskReport::Persisted(last),
                        Err(e) => DiskReport::Failed(e.to_string()),
                    };
                    let failed = matches!(report, DiskReport::Failed(_));
                    if reports.send(report).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("spawn the disk thread");
        DiskThread {
            tx,
            handle: Some(handle),
        }
    }

    pub fn submit(&self, write: Write) -> Result<(), String> {
        self.tx
            .send(write)
            .map_err(|_| "the disk thread has stopped".to_string())
    }
}

impl Drop for DiskThread {
    fn drop(&mut self) {
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
