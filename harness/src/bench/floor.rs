//! The physical floor under every figure: what one forced write and one loopback round trip
//! cost on this machine, measured where the cells keep their data. A replicated commit
//! cannot beat a forced write plus a round trip, so a report that shows both tells how far
//! each system is from what the hardware allows.

use super::metrics::Quantiles;
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes of each forced write: one small log record.
pub const FSYNC_BYTES: usize = 128;
/// Bytes each way of a round trip: one small request.
pub const RTT_BYTES: usize = 64;
/// A probe that takes longer than this gives up rather than stall the bench.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Floor {
    /// An appended record and `fdatasync`, in the store's filesystem.
    pub fsync: Quantiles,
    /// One request and its reply between two threads over loopback TCP (no Nagle delay).
    pub loopback_rtt: Quantiles,
}

/// Measures `fsync_samples` forced writes in a file under `dir` (removed afterwards) and
/// `rtt_samples` round trips.
pub fn measure(dir: &Path, fsync_samples: usize, rtt_samples: usize) -> std::io::Result<Floor> {
    assert!(
        fsync_samples > 0 && rtt_samples > 0,
        "a probe takes samples"
    );
    Ok(Floor {
        fsync: fsync(dir, fsync_samples)?,
        loopback_rtt: rtt(rtt_samples)?,
    })
}

fn fsync(dir: &Path, samples: usize) -> std::io::Result<Quantiles> {
    let path = dir.join("floor-fsync.probe");
    let result = (|| -> std::io::Result<Vec<u64>> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let record = [0x5a_u8; FSYNC_BYTES];
        let mut ns = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            file.write_all(&record)?;
            file.sync_data()?;
            ns.push(t.elapsed().as_nanos() as u64);
        }
        Ok(ns)
    })();
    let _ = std::fs::remove_file(&path);
    Ok(Quantiles::of(result?).expect("at least one sample"))
}

fn rtt(samples: usize) -> std::io::Result<Quantiles> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(PROBE_TIMEOUT))?;
        let mut buf = [0u8; RTT_BYTES];
        for _ in 0..samples {
            s.read_exact(&mut buf)?;
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let mut c = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    c.set_nodelay(true)?;
    c.set_read_timeout(Some(PROBE_TIMEOUT))?;
    let mut buf = [0x5a_u8; RTT_BYTES];
    let mut ns = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        c.write_all(&buf)?;
        c.read_exact(&mut buf)?;
        ns.push(t.elapsed().as_nanos() as u64);
    }
    echo.join()
        .map_err(|_| std::io::Error::other("the echo thread panicked"))??;
    Ok(Quantiles::of(ns).expect("at least one sample"))
}

/// What the machine is, beside the figures.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub load_average_at_start: String,
}

impl Machine {
    pub fn read() -> Machine {
        let field = |file: &str, key: &str| {
            std::fs::read_to_string(file)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find(|l| l.starts_with(key))
                        .and_then(|l| l.split_once(':'))
                        .map(|(_, v)| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        let read = |file: &str| {
            std::fs::read_to_string(file)
                .map(|t| t.trim().to_string())
                .unwrap_or_default()
        };
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: field("/proc/cpuinfo", "model name"),
            memory: field("/proc/meminfo", "MemTotal"),
            kernel: read("/proc/sys/kernel/osrelease"),
            load_average_at_start: read("/proc/loadavg"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probes_measure_every_sample_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let f = measure(dir.path(), 5, 20).unwrap();
        assert_eq!((f.fsync.samples, f.loopback_rtt.samples), (5, 20));
        assert!(f.fsync.p50_ms > 0.0 && f.loopback_rtt.p50_ms > 0.0);
        assert!(f.fsync.p50_ms <= f.fsync.max_ms);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let m = Machine::read();
        assert!(m.cores >= 1 && !m.kernel.is_empty());
    }
}
