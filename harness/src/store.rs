//! The run store: `store/<test-name>/<timestamp>/`, written while the run goes so that a
//! crashed or interrupted controller leaves everything it recorded behind.
//!
//! The history is appended one complete line per `write(2)`, so a controller killed at any
//! instant leaves a file of whole lines that `faultline check` reads as a prefix of the run.
//! JSON documents (`test.json`, `results.json`) are replaced atomically (temporary file, fsync,
//! rename), so a reader never sees half of one. `store/latest` points at the newest run.

use anyhow::{bail, Context};
use checkers::history::{jsonl, Op};
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest test name accepted: it becomes a directory name.
const MAX_TEST_NAME_BYTES: usize = 128;
/// How many same-millisecond runs of one test get distinct directories before we give up.
const MAX_SAME_TIME_RUNS: u32 = 1000;

/// The root of all stored runs.
pub struct Store {
    root: PathBuf,
}

/// One run's directory.
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl Store {
    pub fn open(root: &Path) -> anyhow::Result<Store> {
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create store {}", root.display()))?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// Creates `<root>/<test_name>/<timestamp>/` with its `nodes/` folder and points
    /// `<root>/latest` at it.
    pub fn create_run(&self, test_name: &str, started: SystemTime) -> anyhow::Result<RunDir> {
        check_test_name(test_name)?;
        let stamp = timestamp(started);
        let test_dir = self.root.join(test_name);
        fs::create_dir_all(&test_dir)
            .with_context(|| format!("cannot create {}", test_dir.display()))?;
        let (name, path) = (0..MAX_SAME_TIME_RUNS)
            .map(|n| match n {
                0 => stamp.clone(),
                n => format!("{stamp}-{n}"),
            })
            .map(|name| (name.clone(), test_dir.join(name)))
            .find(|(_, path)| fs::create_dir(path).is_ok())
            .with_context(|| {
                format!("cannot create a run directory under {}", test_dir.display())
            })?;
        fs::create_dir_all(path.join("nodes"))?;
        self.point_latest(&Path::new(test_name).join(name))?;
        Ok(RunDir { path })
    }

    /// Replaces the `latest` link atomically: a new link under a temporary name, renamed over.
    fn point_latest(&self, target: &Path) -> anyhow::Result<()> {
        let tmp = self.root.join(format!(".latest.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).context("cannot create the latest link")?;
        fs::rename(&tmp, self.root.join("latest")).context("cannot replace the latest link")?;
        Ok(())
    }
}

impl RunDir {
    /// Writes `name` (e.g. `test.json`) atomically and durably.
    pub fn write_json(&self, name: &str, value: &Value) -> anyhow::Result<()> {
        let path = self.path.join(name);
        let tmp = self.path.join(format!(".{name}.tmp"));
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        let mut file =
            File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    pub fn history(&self) -> anyhow::Result<HistoryWriter> {
        HistoryWriter::create(&self.path.join("history.jsonl"))
    }

    /// Where a node's logs are collected.
    pub fn node_dir(&self, node: &str) -> anyhow::Result<PathBuf> {
        check_test_name(node)?;
        let dir = self.path.join("nodes").join(node);
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

/// Appends ops to a history file, one complete line per write, so that the file holds whole
/// lines whenever the process dies.
pub struct HistoryWriter {
    file: File,
    line: String,
    written: u64,
}

impl HistoryWriter {
    /// Creates (or truncates) the file.
    pub fn create(path: &Path) -> anyhow::Result<HistoryWriter> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("cannot write history {}", path.display()))?;
        Ok(HistoryWriter {
            file,
            line: String::with_capacity(256),
            written: 0,
        })
    }

    /// Appends one op. It is in the kernel's hands when this returns: a controller crash
    /// after it cannot lose it.
    pub fn append(&mut self, op: &Op) -> anyhow::Result<()> {
        self.line.clear();
        jsonl::write_op(&mut self.line, op);
        self.file
            .write_all(self.line.as_bytes())
            .context("cannot append to the history")?;
        self.written += 1;
        Ok(())
    }

    /// Ops appended so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Forces the history to disk; returns how many ops it holds.
    pub fn finish(self) -> anyhow::Result<u64> {
        self.file.sync_all().context("cannot sync the history")?;
        Ok(self.written)
    }
}

/// Test and node names become directory names: keep them to a safe alphabet.
fn check_test_name(name: &str) -> anyhow::Result<()> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if name.is_empty()
        || name.len() > MAX_TEST_NAME_BYTES
        || !name.chars().all(safe)
        || name.starts_with('.')
    {
        bail!("name {name:?} must be 1 to {MAX_TEST_NAME_BYTES} characters of A-Z a-z 0-9 . _ - and not start with a dot");
    }
    Ok(())
}

/// `YYYYMMDDTHHMMSS.mmmZ` in UTC, so runs sort by name.
pub fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `<parent>/<timestamp>/`, made fresh (with `-1`, `-2`... when started in the same
/// millisecond), for directories that are not runs: benches' and campaigns' reports.
pub fn stamped_dir(parent: &Path) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let stamp = timestamp(SystemTime::now());
    (0..MAX_SAME_TIME_RUNS)
        .map(|n| match n {
            0 => parent.join(&stamp),
            n => parent.join(format!("{stamp}-{n}")),
        })
        .find(|path| fs::create_dir(path).is_ok())
        .with_context(|| format!("cannot create a directory under {}", parent.display()))
}

/// A UTF-8 file of at most `max_bytes`; the error names the file and the problem.
pub fn read_text(path: &Path, max_bytes: usize) -> Result<String, String> {
    let name = path.display();
    let bytes = fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    if bytes.len() > max_bytes {
        return Err(format!("{name}: larger than {max_bytes} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| format!("{name}: not UTF-8 text"))
}

/// `value` as pretty JSON with a final newline.
pub fn write_json_file(path: &Path, value: &Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// What a directory listing keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Real directories (not links to them, like `latest`).
    Dirs,
    /// Regular files (not links).
    Files,
    /// Anything.
    All,
}

/// The names in `dir` of `kind`, sorted; none if it cannot be read.
pub fn list_dir(dir: &Path, kind: EntryKind) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_type().is_ok_and(|t| match kind {
                        EntryKind::Dirs => t.is_dir(),
                        EntryKind::Files => t.is_file(),
                        EntryKind::All => true,
                    })
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::history::{OpType, Process};
    use std::time::Duration;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("faultline-store-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn timestamps_are_utc_and_sortable() {
        let at = |secs: u64, millis: u64| {
            timestamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
        };
        assert_eq!(at(0, 0), "19700101T000000.000Z");
        assert_eq!(at(951_782_400, 7), "20000229T000000.007Z");
        assert_eq!(at(1_796_083_199, 999), "20261130T235959.999Z");
        assert_eq!(at(4_107_542_399, 0), "21000228T235959.000Z");
        assert!(at(1_796_083_199, 0) < at(1_796_083_200, 0));
    }

    #[test]
    fn runs_get_their_own_directories_and_latest_follows() {
        let root = scratch("layout");
        let store = Store::open(&root).unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let a = store.create_run("etcd-register", t).unwrap();
        let b = store.create_run("etcd-register", t).unwrap();
        assert_ne!(a.path, b.path, "same-millisecond runs do not collide");
        assert!(a.path.join("nodes").is_dir());
        assert_eq!(
            fs::read_link(root.join("latest")).unwrap(),
            Path::new("etcd-register").join("19700112T134640.000Z-1")
        );
        b.write_json("test.json", &serde_json::json!({"seed": 7}))
            .unwrap();
        let back: Value =
            serde_json::from_str(&fs::read_to_string(root.join("latest/test.json")).unwrap())
                .unwrap();
        assert_eq!(back["seed"], 7);
    }

    #[test]
    fn unsafe_names_are_refused() {
        let store = Store::open(&scratch("names")).unwrap();
        for bad in ["", "../escape", "a/b", ".hidden", &"x".repeat(200)] {
            let e = store.create_run(bad, UNIX_EPOCH).unwrap_err().to_string();
            assert!(e.contains("must be 1 to 128 characters"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn history_writer_writes_checkable_lines() {
        let root = scratch("history");
        let run = Store::open(&root)
            .unwrap()
            .create_run("t", UNIX_EPOCH)
            .unwrap();
        let mut w = run.history().unwrap();
        let mut op = Op::new(
            0,
            OpType::Invoke,
            Process::Client(0),
            "write",
            Value::from(1),
        );
        w.append(&op).unwrap();
        op.index = 1;
        op.op_type = OpType::Ok;
        w.append(&op).unwrap();
        assert_eq!(w.finish().unwrap(), 2);
        let text = fs::read_to_string(run.path.join("history.jsonl")).unwrap();
        let h = jsonl::read("history.jsonl", &text).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.partner, vec![Some(1), Some(0)]);
    }
}
