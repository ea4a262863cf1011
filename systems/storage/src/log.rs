//! One log on disk: a directory `logs/<name>/` holding a sealed `meta` file (the first
//! position, which `DropPrefix` and `TruncateTail` move) and contiguous segment files.
//! Records below `first` may linger in a segment that straddles it; they are never read.
//! Every change is ordered so that a crash part-way leaves a log that recovers to the old
//! records, the new ones, or the old ones cut at some later position: never a gap.

use crate::disk::Disk;
use crate::error::{corrupt, io_err, Result, StorageError};
use crate::fsutil::{is_temp, list_dir, remove_temp, sync_dir, temp_name};
use crate::limits::Limits;
use crate::record;
use crate::report::{RecoveryReport, TornTail};
use crate::sealed::{self, Kind};
use crate::segment::{self, HEADER_BYTES};
use std::fs;
use std::path::{Path, PathBuf};

/// The sealed file holding a log's first position.
pub(crate) const META_FILE: &str = "meta";
/// Appends are written in chunks of about this size, bounding the buffer of one call.
const WRITE_CHUNK_BYTES: usize = 1 << 20;
/// Entries a log directory may hold besides its segments (meta and crash leftovers).
const EXTRA_ENTRIES: usize = 8;

/// One segment as the store tracks it, without its records.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SegmentInfo {
    start: u64,
    count: u64,
    /// File size: header plus frames.
    bytes: u64,
}

impl SegmentInfo {
    fn end(&self) -> u64 {
        self.start + self.count
    }

    /// Wholly below `first`: holds nothing readable and is not where appends go.
    fn is_below(&self, first: u64) -> bool {
        self.start < first && self.end() <= first
    }
}

/// A log's files and positions.
#[derive(Debug)]
pub(crate) struct LogFiles {
    name: String,
    dir: PathBuf,
    first: u64,
    /// Contiguous, ascending; the last one takes appends.
    segments: Vec<SegmentInfo>,
    /// Frames appended but not yet written to the last segment.
    chunk: Chunk,
}

impl LogFiles {
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The position the next record takes (buffered records included).
    pub fn end(&self) -> u64 {
        let written = self.segments.last().map_or(self.first, SegmentInfo::end);
        let end = written + self.chunk.records;
        debug_assert!(end >= self.first, "log {} ends below its first", self.name);
        end
    }

    fn segment_path(&self, start: u64) -> PathBuf {
        self.dir.join(segment::file_name(start))
    }

    /// Creates an empty log starting at `first`. The directory is built under a temp name
    /// and renamed, so a log directory always has its meta file.
    pub fn create(logs_dir: &Path, name: &str, first: u64, disk: &mut Disk) -> Result<LogFiles> {
        let temp = logs_dir.join(temp_name(name));
        if temp.exists() {
            remove_temp(&temp)?;
        }
        fs::create_dir(&temp).map_err(io_err("create directory", &temp))?;
        write_meta(&temp, first, disk)?;
        sync_dir(&temp, &mut disk.stats)?;
        let dir = logs_dir.join(name);
        fs::rename(&temp, &dir).map_err(io_err("rename", &dir))?;
        disk.mark_dir(logs_dir);
        Ok(LogFiles {
            name: name.to_owned(),
            dir,
            first,
            segments: Vec::new(),
            chunk: Chunk::default(),
        })
    }

    /// Appends `records` at `end()`, rotating segments at `limits.segment_bytes`. Frames
    /// are buffered (up to `WRITE_CHUNK_BYTES`) so that consecutive appends to this log
    /// reach the file in one write; `flush` before anything reads or syncs the file.
    pub fn append(&mut self, records: &[Vec<u8>], limits: &Limits, disk: &mut Disk) -> Result<()> {
        let total = records.len() as u64;
        if self.end().checked_add(total).is_none() {
            return Err(StorageError::TooLarge {
                what: "log position",
                len: total,
                max: u64::MAX - self.end(),
            });
        }
        for payload in records {
            if self.segments.is_empty() {
                self.start_segment(limits, disk)?;
            }
            if self.is_full(payload.len(), limits) {
                self.flush(disk)?;
                // The old segment must be whole on disk before a later one exists.
                disk.sync_round()?;
                self.start_segment(limits, disk)?;
            }
            let position = self.end();
            record::encode(position, payload, &mut self.chunk.bytes);
            self.chunk.records += 1;
            if self.chunk.bytes.len() >= WRITE_CHUNK_BYTES {
                self.flush(disk)?;
            }
        }
        Ok(())
    }

    /// Whether a record of `payload_bytes` must go to a new segment. A segment holds at
    /// least one record whatever its size.
    fn is_full(&self, payload_bytes: usize, limits: &Limits) -> bool {
        let active = self.segments.last().expect("a segment is active");
        let bytes =
            active.bytes + self.chunk.bytes.len() as u64 + record::frame_bytes(payload_bytes);
        active.count + self.chunk.records > 0 && bytes > limits.segment_bytes
    }

    /// Writes buffered frames to the active segment (not synced).
    pub fn flush(&mut self, disk: &mut Disk) -> Result<()> {
        if self.chunk.records == 0 {
            return Ok(());
        }
        let active = self.segments.last().expect("a segment is active").clone();
        let path = self.segment_path(active.start);
        disk.write_at(&self.name, &path, active.bytes, &self.chunk.bytes)?;
        let last = self.segments.last_mut().expect("a segment is active");
        last.bytes += self.chunk.bytes.len() as u64;
        last.count += self.chunk.records;
        disk.stats.records_appended += self.chunk.records;
        self.chunk.bytes.clear();
        self.chunk.records = 0;
        Ok(())
    }

    fn start_segment(&mut self, limits: &Limits, disk: &mut Disk) -> Result<()> {
        if self.segments.len() >= limits.max_segments_per_log {
            return Err(StorageError::TooLarge {
                what: "segments in one log",
                len: self.segments.len() as u64 + 1,
                max: limits.max_segments_per_log as u64,
            });
        }
        assert_eq!(self.chunk.records, 0, "flushed before a new segment");
        let start = self.end();
        segment::create(&self.dir, start, &mut disk.stats)?;
        disk.mark_dir(&self.dir);
        self.segments.push(SegmentInfo {
            start,
            count: 0,
            bytes: HEADER_BYTES,
        });
        Ok(())
    }

    /// Keeps positions below `len` (`len < end()`); below `first` it empties the log and
    /// moves `first` down to `len`, as `Durable::apply` does. Durable on return.
    pub fn truncate_tail(&mut self, len: u64, disk: &mut Disk) -> Result<()> {
        assert!(len < self.end(), "caller skips no-op truncations");
        assert_eq!(self.chunk.records, 0, "flushed before a destructive op");
        // Highest first, each removal durable before the next, so no crash leaves a gap.
        // At or below `first` nothing readable stays, so every segment goes.
        while self
            .segments
            .last()
            .is_some_and(|s| s.start >= len || len <= self.first)
        {
            self.remove_last_segment(disk)?;
        }
        if let Some(last) = self.segments.last().cloned() {
            if last.end() > len {
                let path = self.segment_path(last.start);
                let offset = segment::record_offset(&path, last.start, len - last.start)?;
                segment::truncate(&path, offset, &mut disk.stats)?;
                let active = self.segments.last_mut().expect("checked above");
                active.count = len - last.start;
                active.bytes = offset;
            }
        }
        if len < self.first {
            write_meta(&self.dir, len, disk)?;
            sync_dir(&self.dir, &mut disk.stats)?;
            self.first = len;
        }
        Ok(())
    }

    fn remove_last_segment(&mut self, disk: &mut Disk) -> Result<()> {
        let last = self.segments.pop().expect("caller checked");
        disk.forget(&self.name);
        let path = self.segment_path(last.start);
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        sync_dir(&self.dir, &mut disk.stats)
    }

    /// Forgets positions below `first` (`first > self.first`). The new first position is
    /// durable before any segment goes, so a crash never exposes a gap.
    pub fn drop_prefix(&mut self, first: u64, disk: &mut Disk) -> Result<()> {
        assert!(first > self.first, "caller skips no-op prefix drops");
        assert_eq!(self.chunk.records, 0, "flushed before a destructive op");
        write_meta(&self.dir, first, disk)?;
        sync_dir(&self.dir, &mut disk.stats)?;
        self.first = first;
        let keep_from = self.segments.partition_point(|s| s.is_below(first));
        if keep_from == self.segments.len() {
            disk.forget(&self.name);
        }
        for s in self.segments.drain(..keep_from) {
            let path = self.dir.join(segment::file_name(s.start));
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
        if keep_from > 0 {
            disk.mark_dir(&self.dir);
        }
        Ok(())
    }

    /// Reads the log in `dir` back, truncating a torn tail of its last segment once
    /// `before_cut` has durably recorded that it will.
    pub fn recover(
        dir: PathBuf,
        name: &str,
        limits: &Limits,
        report: &mut RecoveryReport,
        before_cut: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<(LogFiles, machine::Log)> {
        let mut stats = crate::fsutil::Stats::default();
        let (first, paths) = list_log_dir(&dir, limits, report)?;
        let mut log = LogFiles {
            name: name.to_owned(),
            dir,
            first,
            segments: Vec::with_capacity(paths.len()),
            chunk: Chunk::default(),
        };
        let mut records = Vec::new();
        let last = paths.len().saturating_sub(1);
        for (i, (start, path)) in paths.into_iter().enumerate() {
            let scan = segment::scan(&path, start, first)?;
            if let Some(bad) = &scan.bad {
                if i != last {
                    return Err(corrupt(
                        &path,
                        scan.valid_bytes,
                        format!("{bad} in a segment that is not the last"),
                    ));
                }
                before_cut(name)?;
                segment::truncate(&path, scan.valid_bytes, &mut stats)?;
                report.torn_tails.push(TornTail {
                    log: name.to_owned(),
                    file: path.clone(),
                    position: start + scan.count,
                    offset: scan.valid_bytes,
                    bytes_dropped: scan.file_bytes - scan.valid_bytes,
                    reason: bad.to_string(),
                });
            }
            let info = SegmentInfo {
                start,
                count: scan.count,
                bytes: scan.valid_bytes,
            };
            if info.is_below(first) {
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
                report.removed.push(path);
                continue;
            }
            log.check_next(&info, &path)?;
            log.segments.push(info);
            records.extend(scan.kept);
        }
        if report.removed.iter().any(|p| p.parent() == Some(&log.dir)) {
            sync_dir(&log.dir, &mut stats)?;
        }
        Ok((log, machine::Log { first, records }))
    }

    /// Checks `next` continues the segments so far without a gap or overlap.
    fn check_next(&self, next: &SegmentInfo, path: &Path) -> Result<()> {
        let (expected, ok) = match self.segments.last() {
            Some(prev) => (prev.end(), next.start == prev.end()),
            None => (self.first, next.start <= self.first),
        };
        if ok {
            return Ok(());
        }
        Err(StorageError::Gap {
            log: self.name.clone(),
            path: path.to_path_buf(),
            expected,
            found: next.start,
        })
    }
}

/// Frames waiting to be written to the active segment.
#[derive(Debug, Default)]
struct Chunk {
    bytes: Vec<u8>,
    records: u64,
}

fn write_meta(dir: &Path, first: u64, disk: &mut Disk) -> Result<()> {
    sealed::write(
        dir,
        META_FILE,
        Kind::LogMeta,
        &first.to_le_bytes(),
        &mut disk.stats,
    )
}

fn read_meta(path: &Path) -> Result<u64> {
    let payload = sealed::read(path, Kind::LogMeta, 8)?;
    let bytes: [u8; 8] = payload
        .try_into()
        .map_err(|_| corrupt(path, sealed::HEADER_BYTES, "log metadata is not 8 bytes"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Reads a log directory's meta and lists its segments by first position, removing crash
/// leftovers and refusing anything else.
fn list_log_dir(
    dir: &Path,
    limits: &Limits,
    report: &mut RecoveryReport,
) -> Result<(u64, Vec<(u64, PathBuf)>)> {
    let mut first = None;
    let mut segments = Vec::new();
    for (name, path) in list_dir(dir, limits.max_segments_per_log + EXTRA_ENTRIES)? {
        if is_temp(&name) {
            report.removed.push(remove_temp(&path)?);
        } else if name == META_FILE {
            first = Some(read_meta(&path)?);
        } else if let Some(start) = segment::parse_file_name(&name) {
            segments.push((start, path));
        } else {
            return Err(StorageError::Unexpected {
                path,
                what: "neither a segment nor log metadata".into(),
            });
        }
    }
    if segments.len() > limits.max_segments_per_log {
        return Err(StorageError::TooLarge {
            what: "segments in one log",
            len: segments.len() as u64,
            max: limits.max_segments_per_log as u64,
        });
    }
    let first = first.ok_or_else(|| corrupt(dir.join(META_FILE), 0, "log metadata is missing"))?;
    segments.sort();
    Ok((first, segments))
}
