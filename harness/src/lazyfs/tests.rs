//! The lazy filesystem on real mounts (served by a thread of the test process): what is
//! synced survives a drop, what is not vanishes, sizes included.

use super::*;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// A mounted lazy filesystem over a fresh backing directory, unmounted when dropped.
struct Mounted {
    dir: PathBuf,
    mnt: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl Mounted {
    fn new(name: &str, max_dirty_mib: u64) -> Mounted {
        Mounted::with_sync_delay(name, max_dirty_mib, 0)
    }

    fn with_sync_delay(name: &str, max_dirty_mib: u64, sync_delay_ms: u64) -> Mounted {
        crate::control::local::running_as_root()
            .then_some(())
            .expect("the lazy filesystem tests mount FUSE filesystems: run them as root");
        assert!(
            Path::new("/dev/fuse").exists(),
            "no /dev/fuse: the lazy filesystem tests need the fuse kernel module"
        );
        let dir =
            std::env::temp_dir().join(format!("faultline-lazyfs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (backing, mnt) = (dir.join("backing"), dir.join("mnt"));
        std::fs::create_dir_all(&backing).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        let options = Options {
            backing,
            max_dirty_mib,
            sync_delay_ms,
        };
        let session = spawn(&options, &mnt).expect("mount the lazy filesystem");
        // The mount is served once the root answers as ours.
        for _ in 0..500 {
            if mnt.join(CONTROL_FILE).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(mnt.join(CONTROL_FILE).exists(), "the mount came up");
        Mounted {
            dir,
            mnt,
            session: Some(session),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    fn backing(&self, name: &str) -> PathBuf {
        self.dir.join("backing").join(name)
    }

    fn control(&self, command: &str) -> io::Result<()> {
        std::fs::write(self.path(CONTROL_FILE), command)
    }

    fn status(&self) -> Status {
        serde_json::from_slice(&std::fs::read(self.path(CONTROL_FILE)).unwrap()).unwrap()
    }

    fn drop_unsynced(&self) -> Dropped {
        self.control("drop\n").unwrap();
        self.status().last_drop
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        drop(self.session.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

#[test]
fn unsynced_writes_vanish_on_drop_and_synced_ones_survive() {
    let m = Mounted::new("drop", 64);
    let mut synced = rw(&m.path("synced"));
    synced.write_all(b"durable").unwrap();
    synced.sync_all().unwrap();
    drop(synced);

    let mut unsynced = rw(&m.path("unsynced"));
    unsynced.write_all(b"volatile").unwrap();
    drop(unsynced); // closing syncs nothing

    let mut partly = rw(&m.path("partly"));
    partly.write_all(b"first half;").unwrap();
    partly.sync_data().unwrap();
    partly.write_all(b" second half").unwrap();
    drop(partly);

    assert_eq!(
        std::fs::read(m.path("unsynced")).unwrap(),
        b"volatile",
        "read back before a drop"
    );
    assert_eq!(
        std::fs::read(m.backing("unsynced")).unwrap(),
        b"",
        "nothing reached the disk"
    );
    let status = m.status();
    assert_eq!(status.dirty_files, 2, "{status:?}");

    let dropped = m.drop_unsynced();
    assert_eq!(dropped.files, 2, "{dropped:?}");
    assert!(dropped.bytes >= 2 * overlay::PAGE_BYTES);
    assert_eq!(std::fs::read(m.path("synced")).unwrap(), b"durable");
    assert_eq!(std::fs::read(m.path("partly")).unwrap(), b"first half;");
    // Created but never synced: the name is durable, the contents are not.
    assert_eq!(std::fs::metadata(m.path("unsynced")).unwrap().len(), 0);
    assert_eq!(m.status().dirty_bytes, 0);
    assert_eq!(m.status().drops, 1);
}

#[test]
fn truncation_and_preallocation_are_unsynced_until_fsync() {
    let m = Mounted::new("sizes", 64);
    let mut f = rw(&m.path("log"));
    f.write_all(&[b'x'; 10_000]).unwrap();
    f.sync_all().unwrap();
    f.set_len(100).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 100);
    // Preallocation as etcd does it: fallocate mode 0 extends the size.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 64 << 20) };
    assert_eq!(rc, 0, "fallocate: {}", io::Error::last_os_error());
    assert_eq!(f.metadata().unwrap().len(), 64 << 20);
    let mut middle = [1u8; 16];
    f.read_exact_at(&mut middle, 5_000).unwrap();
    assert_eq!(middle, [0u8; 16], "the cut bytes never come back");
    let keep = unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, 1 << 30) };
    assert_eq!(keep, 0);
    let punch = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            10,
        )
    };
    assert_eq!(punch, -1, "hole punching is refused");
    drop(f);
    m.drop_unsynced();
    let after = std::fs::read(m.path("log")).unwrap();
    assert_eq!(after, vec![b'x'; 10_000], "size and bytes as last synced");

    let f = rw(&m.path("log"));
    f.set_len(100).unwrap();
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 1 << 20) };
    assert_eq!(rc, 0);
    f.write_all_at(b"end", (1 << 20) - 3).unwrap();
    f.sync_data().unwrap();
    drop(f);
    m.drop_unsynced();
    let after = std::fs::read(m.path("log")).unwrap();
    assert_eq!(after.len(), 1 << 20);
    assert_eq!(&after[..100], &[b'x'; 100][..]);
    assert!(after[100..(1 << 20) - 3].iter().all(|&b| b == 0));
    assert_eq!(&after[(1 << 20) - 3..], b"end");
    assert_eq!(
        std::fs::read(m.backing("log")).unwrap(),
        after,
        "the disk has it"
    );
}

#[test]
fn renames_keep_unsynced_data_with_the_file() {
    let m = Mounted::new("rename", 64);
    // etcd's pattern: a directory made under a temporary name, a file written in it, the
    // directory renamed, then the file synced through its open handle.
    std::fs::create_dir(m.path("wal.tmp")).unwrap();
    let mut seg = rw(&m.path("wal.tmp/0.wal"));
    seg.write_all(b"header").unwrap();
    std::fs::rename(m.path("wal.tmp"), m.path("wal")).unwrap();
    seg.write_all(b"+records").unwrap();
    seg.sync_all().unwrap();
    seg.write_all(b"+lost").unwrap();
    drop(seg);

    let mut tmp = rw(&m.path("snap.tmp"));
    tmp.write_all(b"snapshot").unwrap();
    drop(tmp);
    std::fs::rename(m.path("snap.tmp"), m.path("snap")).unwrap();
    assert_eq!(std::fs::read(m.path("snap")).unwrap(), b"snapshot");
    // Renamed over an existing, unsynced file: that one's data is gone with its name.
    std::fs::write(m.path("old"), b"old unsynced").unwrap();
    std::fs::rename(m.path("snap"), m.path("old")).unwrap();
    assert_eq!(std::fs::read(m.path("old")).unwrap(), b"snapshot");

    m.drop_unsynced();
    assert_eq!(
        std::fs::read(m.path("wal/0.wal")).unwrap(),
        b"header+records"
    );
    assert!(!m.path("wal.tmp").exists());
    assert_eq!(
        std::fs::read(m.path("old")).unwrap(),
        b"",
        "renamed, never synced"
    );
    assert!(!m.path("snap").exists());
    let listed: Vec<String> = std::fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !listed.iter().any(|n| n == CONTROL_FILE),
        "the control file is hidden: {listed:?}"
    );
    assert!(listed.iter().any(|n| n == "wal"), "{listed:?}");
}

#[test]
fn mapped_reads_see_written_and_reverted_data() {
    let m = Mounted::new("mmap", 64);
    let f = rw(&m.path("db"));
    f.write_all_at(&[7u8; 8192], 0).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b"unsynced page", 4096).unwrap();
    let map = |f: &File| {
        // SAFETY: a read-only shared mapping of 8 KiB of an open file, unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap: {}", io::Error::last_os_error());
        let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, 8192) }.to_vec();
        unsafe { libc::munmap(p, 8192) };
        bytes
    };
    let seen = map(&f);
    assert_eq!(&seen[4096..4109], b"unsynced page");
    assert_eq!(seen[0], 7);
    drop(f);
    m.drop_unsynced();
    let f = rw(&m.path("db"));
    let seen = map(&f);
    assert!(
        seen.iter().all(|&b| b == 7),
        "a fresh open maps what was synced"
    );
}

#[test]
fn concurrent_writers_keep_exactly_what_each_synced() {
    let m = Mounted::new("concurrent", 64);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let path = m.path(&format!("w{w}"));
            std::thread::spawn(move || {
                let mut f = rw(&path);
                let mut synced = Vec::new();
                for i in 0..200u32 {
                    let chunk = format!("writer {w} chunk {i};");
                    f.write_all(chunk.as_bytes()).unwrap();
                    if i % 50 == 49 {
                        f.sync_data().unwrap();
                        synced = std::fs::read(&path).unwrap();
                    }
                }
                f.write_all(b"tail that is never synced").unwrap();
                synced
            })
        })
        .collect();
    let expected: Vec<Vec<u8>> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    m.drop_unsynced();
    for (w, want) in expected.iter().enumerate() {
        let got = std::fs::read(m.path(&format!("w{w}"))).unwrap();
        assert_eq!(&got, want, "writer {w}");
        assert!(got.ends_with(format!("writer {w} chunk 199;").as_bytes()));
    }
}

#[test]
fn the_bound_on_unsynced_data_writes_it_back() {
    let m = Mounted::new("limit", 1);
    let mut f = rw(&m.path("big"));
    let chunk = vec![3u8; 256 << 10];
    for _ in 0..6 {
        f.write_all(&chunk).unwrap();
    }
    let status = m.status();
    assert!(status.forced_write_backs >= 1, "{status:?}");
    assert!(status.dirty_bytes <= 1 << 20, "{status:?}");
    assert_eq!(status.max_dirty_bytes, 1 << 20);
    drop(f);
    m.drop_unsynced();
    let kept = std::fs::metadata(m.path("big")).unwrap().len();
    assert!(kept >= 1 << 20, "what was written back survives: {kept}");
    assert!(kept < 6 * (256 << 10), "what came after is lost: {kept}");

    assert!(matches!(
        LazyFs::new(&Options {
            backing: m.backing(""),
            max_dirty_mib: 0,
            sync_delay_ms: 0,
        }),
        Err(LazyFsError::Limit(0))
    ));
}

#[test]
fn unlinked_files_free_their_unsynced_data_and_bad_commands_are_refused() {
    let m = Mounted::new("unlink", 64);
    std::fs::write(m.path("gone"), vec![1u8; 100_000]).unwrap();
    assert!(m.status().dirty_bytes >= 100_000);
    std::fs::remove_file(m.path("gone")).unwrap();
    assert_eq!(m.status().dirty_bytes, 0);
    assert_eq!(m.status().dirty_files, 0);

    let err = m.control("explode").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    assert!(
        std::fs::remove_file(m.path(CONTROL_FILE)).is_err(),
        "the control file stays"
    );

    // `sync` keeps everything.
    let mut f = rw(&m.path("kept"));
    f.write_all(b"kept by sync").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut back = String::new();
    f.read_to_string(&mut back).unwrap();
    assert_eq!(back, "kept by sync");
    drop(f);
    m.control("sync").unwrap();
    m.drop_unsynced();
    assert_eq!(std::fs::read(m.path("kept")).unwrap(), b"kept by sync");
    assert_eq!(m.status().last_drop, Dropped::default());
}

#[test]
fn a_slow_disk_delays_every_sync_and_loses_what_it_had_not_finished() {
    let m = Mounted::with_sync_delay("slow", 16, 150);
    let mut f = rw(&m.path("log"));
    f.write_all(b"first").unwrap();
    let started = std::time::Instant::now();
    f.sync_data().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "fdatasync took the disk's latency: {:?}",
        started.elapsed()
    );
    f.write_all(b" second").unwrap();
    drop(f);
    m.drop_unsynced();
    assert_eq!(std::fs::read(m.path("log")).unwrap(), b"first");
}

#[test]
fn a_drop_overtakes_a_sync_the_slow_disk_has_not_finished() {
    let m = Mounted::with_sync_delay("overtaken", 16, 2_000);
    let mut f = rw(&m.path("log"));
    f.write_all(b"never durable").unwrap();
    let syncer = std::thread::spawn(move || f.sync_data());
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    m.drop_unsynced();
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "the drop did not wait for the slow sync"
    );
    let synced = syncer.join().unwrap();
    assert!(synced.is_err(), "the overtaken sync failed: {synced:?}");
    assert_eq!(std::fs::read(m.path("log")).unwrap(), b"");
}

#[test]
fn bad_backing_directories_are_refused_by_name() {
    let err = LazyFs::new(&Options {
        backing: "/nonexistent/faultline".into(),
        max_dirty_mib: 1,
        sync_delay_ms: 0,
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("/nonexistent/faultline"), "{err}");
}
