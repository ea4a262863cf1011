//! The lazy filesystem: a FUSE passthrough to a backing directory that keeps every write
//! that was never synced in memory, so that a disk fault can drop it, as a power failure
//! drops what the page cache held (Jepsen's lazyfs, in Rust on `fuser`).
//!
//! What is lazy and what is not:
//! - **File contents and sizes** (write, truncate, `fallocate`) stay in an [`overlay`] per
//!   file until `fsync` or `fdatasync` on any handle of that file writes them to the backing
//!   file and syncs it. Closing a file syncs nothing. Dropping reverts every file to its
//!   last-synced bytes and size: a file created and written but never synced reverts to
//!   empty.
//! - **Names** (create, mkdir, rename, unlink, link, symlink) and attributes (mode, owner,
//!   times) go to the backing directory at once and survive a drop, like a filesystem that
//!   journals metadata synchronously. A created file therefore survives a drop, empty.
//!
//! Control: the file [`CONTROL_FILE`] in the mount's root, hidden from listings. Writing
//! `drop` drops all unsynced data; writing `sync` writes it all back and syncs it; the
//! write returns once that is done. Reading it gives the state as JSON ([`Status`]).
//!
//! Limits: unsynced data is held in 4 KiB pages up to `max_dirty_bytes`; past it, all of it
//! is written back to the backing files (not synced), as a kernel writes back dirty pages
//! under memory pressure. Such data then survives a drop; `forced_write_backs` counts these
//! events. Inodes, handles, directory listings and control commands are bounded too.
//!
//! The kernel's caches must not outlive a drop: attributes and entries are never cached
//! (TTL 0) and page caches are invalidated whenever a file is opened, so a restarted
//! process reads the reverted contents. A process that keeps a file open (or mapped) across
//! a drop may still see its old pages: the disk fault kills the process first.
//!
//! Not supported: files changed in the backing directory behind the mount's back; rename
//! with `RENAME_EXCHANGE`; `fallocate` modes other than plain allocation and `KEEP_SIZE`
//! (`EOPNOTSUPP`, on which programs fall back to `ftruncate`). Locks (`flock`, `fcntl`) are
//! the kernel's own, local to this host.

pub mod overlay;
#[cfg(test)]
mod tests;

use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, MountOption, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    FUSE_ROOT_ID,
};
use overlay::Overlay;
use serde::Serialize;
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// The control file's name in the mount's root.
pub const CONTROL_FILE: &str = ".faultline-lazyfs";
/// The default bound on unsynced data held in memory.
pub const DEFAULT_MAX_DIRTY_MIB: u64 = 256;
/// Most unsynced data any mount may hold, whatever it is asked: 16 GiB.
pub const MAX_DIRTY_MIB: u64 = 16 << 10;
/// Most inodes remembered at once (the kernel forgets unused ones).
const MAX_INODES: usize = 1 << 20;
/// Most open file and directory handles.
const MAX_HANDLES: usize = 1 << 16;
/// Most entries a directory listing may have.
const MAX_DIR_ENTRIES: usize = 1 << 20;
/// Longest control command.
const MAX_CONTROL_BYTES: usize = 4096;
/// The control file's inode number, far above any the counter reaches.
const CONTROL_INO: u64 = 1 << 62;
/// Nothing is cached by the kernel: sizes change under it when unsynced data is dropped.
const TTL: Duration = Duration::ZERO;

/// Why a mount could not start.
#[derive(Debug, thiserror::Error)]
pub enum LazyFsError {
    #[error("the backing directory {path}: {cause}")]
    Backing { path: String, cause: String },
    #[error("the mount point {path}: {cause}")]
    Mountpoint { path: String, cause: String },
    #[error("--max-dirty-mib must be 1 to {MAX_DIRTY_MIB}, not {0}")]
    Limit(u64),
    #[error("cannot mount on {path}: {cause} (FUSE needs /dev/fuse and root, or fusermount3 from Debian's fuse3)")]
    Mount { path: String, cause: String },
}

/// What a lazy filesystem serves.
#[derive(Clone, Debug)]
pub struct Options {
    pub backing: PathBuf,
    pub max_dirty_mib: u64,
    /// Added to every fsync and fdatasync: a slow disk, which widens the window in which
    /// written data is not yet durable (requests are served one at a time, so it stalls
    /// everything behind it, as a busy disk queue does).
    pub sync_delay_ms: u64,
}

/// Upper bound of the added sync latency.
pub const MAX_SYNC_DELAY_MS: u64 = 10_000;

/// Upper bound of syncs waiting on a slow disk; more wait in the kernel's queue.
const MAX_PENDING_SYNCS: usize = 4096;

/// An fsync a slow disk is still working on.
struct PendingSync {
    ino: u64,
    datasync: bool,
    due: std::time::Instant,
    reply: ReplyEmpty,
}

impl std::fmt::Debug for PendingSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PendingSync(ino {}, due {:?})", self.ino, self.due)
    }
}

/// Mounts on `mountpoint` and serves until unmounted (`fusermount3 -u`), then writes back
/// and syncs what is unsynced: a clean unmount loses nothing.
pub fn mount(options: &Options, mountpoint: &Path) -> Result<(), LazyFsError> {
    let mut fs = LazyFs::new(options)?;
    fs.mountpoint = Some(mountpoint.to_path_buf());
    check_mountpoint(mountpoint)?;
    fuser::mount2(fs, mountpoint, &mount_options()).map_err(|e| LazyFsError::Mount {
        path: mountpoint.display().to_string(),
        cause: e.to_string(),
    })
}

/// Mounts on `mountpoint` served by a thread of this process, until the session is dropped.
pub fn spawn(
    options: &Options,
    mountpoint: &Path,
) -> Result<fuser::BackgroundSession, LazyFsError> {
    let mut fs = LazyFs::new(options)?;
    fs.mountpoint = Some(mountpoint.to_path_buf());
    check_mountpoint(mountpoint)?;
    fuser::spawn_mount2(fs, mountpoint, &mount_options()).map_err(|e| LazyFsError::Mount {
        path: mountpoint.display().to_string(),
        cause: e.to_string(),
    })
}

fn mount_options() -> Vec<MountOption> {
    vec![
        MountOption::FSName("faultline-lazyfs".into()),
        MountOption::Subtype("lazyfs".into()),
        MountOption::DefaultPermissions,
        // Daemons of any user on the node use it (the mount is made by root).
        MountOption::AllowOther,
    ]
}

fn check_mountpoint(mountpoint: &Path) -> Result<(), LazyFsError> {
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(LazyFsError::Mountpoint {
            path: mountpoint.display().to_string(),
            cause: "not a directory".into(),
        }),
        Err(e) => Err(LazyFsError::Mountpoint {
            path: mountpoint.display().to_string(),
            cause: e.to_string(),
        }),
    }
}

/// What the control file reports.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Status {
    /// Unsynced data held now, in whole pages.
    pub dirty_bytes: u64,
    pub dirty_files: u64,
    pub max_dirty_bytes: u64,
    /// Drops so far, and what the last one dropped.
    pub drops: u64,
    pub last_drop: Dropped,
    /// Times the bound on unsynced data forced everything back to the backing files.
    pub forced_write_backs: u64,
}

/// What one drop discarded.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Dropped {
    pub files: u64,
    pub bytes: u64,
}

struct Inode {
    /// Where it is in the backing directory (the newest name it was reached by).
    path: PathBuf,
    /// (st_dev, st_ino) in the backing directory; None once its last name is gone, so a
    /// recycled backing inode number never meets this one's unsynced data.
    key: Option<(u64, u64)>,
    lookups: u64,
    /// Open handles.
    open: u32,
    /// The backing file, while the file is open or has unsynced data.
    file: Option<File>,
    overlay: Option<Overlay>,
}

enum Handle {
    File(u64),
    Dir(Vec<(u64, FileType, OsString)>),
    Control,
}

struct LazyFs {
    root: PathBuf,
    max_dirty_bytes: u64,
    sync_delay_ms: u64,
    /// Syncs that a slow disk has not finished: a drop overtakes them (they fail), as a
    /// power cut would. Completed when the waker thread pokes the control file.
    pending_syncs: std::collections::VecDeque<PendingSync>,
    /// Where this filesystem is mounted, for the waker threads of delayed syncs.
    mountpoint: Option<PathBuf>,
    inodes: HashMap<u64, Inode>,
    by_key: HashMap<(u64, u64), u64>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    dirty_bytes: u64,
    status: Status,
    as_root: bool,
}

fn errno(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn cstring(path: &Path) -> Result<CString, i32> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)
}

fn file_type(t: std::fs::FileType) -> FileType {
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_fifo() {
        FileType::NamedPipe
    } else if t.is_socket() {
        FileType::Socket
    } else if t.is_block_device() {
        FileType::BlockDevice
    } else if t.is_char_device() {
        FileType::CharDevice
    } else {
        FileType::RegularFile
    }
}

fn time(secs: i64, nanos: i64) -> SystemTime {
    let nanos = Duration::from_nanos(nanos.clamp(0, 999_999_999) as u64);
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64) + nanos
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos
    }
}

impl LazyFs {
    fn new(options: &Options) -> Result<LazyFs, LazyFsError> {
        if !(1..=MAX_DIRTY_MIB).contains(&options.max_dirty_mib) {
            return Err(LazyFsError::Limit(options.max_dirty_mib));
        }
        let backing_err = |cause: String| LazyFsError::Backing {
            path: options.backing.display().to_string(),
            cause,
        };
        let root =
            std::fs::canonicalize(&options.backing).map_err(|e| backing_err(e.to_string()))?;
        let meta = std::fs::metadata(&root).map_err(|e| backing_err(e.to_string()))?;
        if !meta.is_dir() {
            return Err(backing_err("not a directory".into()));
        }
        let mut fs = LazyFs {
            root: root.clone(),
            max_dirty_bytes: options.max_dirty_mib << 20,
            sync_delay_ms: options.sync_delay_ms.min(MAX_SYNC_DELAY_MS),
            pending_syncs: std::collections::VecDeque::new(),
            mountpoint: None,
            inodes: HashMap::new(),
            by_key: HashMap::new(),
            next_ino: FUSE_ROOT_ID + 1,
            handles: HashMap::new(),
            next_fh: 1,
            dirty_bytes: 0,
            status: Status::default(),
            as_root: crate::control::local::running_as_root(),
        };
        let key = (meta.dev(), meta.ino());
        fs.by_key.insert(key, FUSE_ROOT_ID);
        fs.inodes.insert(
            FUSE_ROOT_ID,
            Inode {
                path: root,
                key: Some(key),
                lookups: u64::MAX / 2,
                open: 0,
                file: None,
                overlay: None,
            },
        );
        Ok(fs)
    }

    fn inode(&self, ino: u64) -> Result<&Inode, i32> {
        self.inodes.get(&ino).ok_or(libc::ESTALE)
    }

    fn inode_mut(&mut self, ino: u64) -> Result<&mut Inode, i32> {
        self.inodes.get_mut(&ino).ok_or(libc::ESTALE)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<PathBuf, i32> {
        if name.as_bytes().contains(&b'/') || name == ".." || name == "." {
            return Err(libc::EINVAL);
        }
        Ok(self.inode(parent)?.path.join(name))
    }

    fn is_control(&self, parent: u64, name: &OsStr) -> bool {
        parent == FUSE_ROOT_ID && name == CONTROL_FILE
    }

    /// The inode for what `path` names now, created on first sight, counted as looked up.
    fn remember(&mut self, path: PathBuf, meta: &Metadata) -> Result<u64, i32> {
        let key = (meta.dev(), meta.ino());
        if let Some(&ino) = self.by_key.get(&key) {
            let inode = self.inodes.get_mut(&ino).expect("keys name inodes");
            inode.path = path;
            inode.lookups += 1;
            return Ok(ino);
        }
        if self.inodes.len() >= MAX_INODES {
            warn!("lazyfs: {MAX_INODES} inodes in use; refusing more");
            return Err(libc::ENFILE);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.by_key.insert(key, ino);
        self.inodes.insert(
            ino,
            Inode {
                path,
                key: Some(key),
                lookups: 1,
                open: 0,
                file: None,
                overlay: None,
            },
        );
        Ok(ino)
    }

    fn metadata(&self, ino: u64) -> Result<Metadata, i32> {
        let inode = self.inode(ino)?;
        match &inode.file {
            Some(f) => f.metadata(),
            None => std::fs::symlink_metadata(&inode.path),
        }
        .map_err(errno)
    }

    fn attr(&self, ino: u64, meta: &Metadata) -> FileAttr {
        let mut size = meta.size();
        let mut blocks = meta.blocks();
        if let Some(o) = self.inodes.get(&ino).and_then(|i| i.overlay.as_ref()) {
            size = o.size();
            blocks = blocks.max(size.div_ceil(512));
        }
        FileAttr {
            ino,
            size,
            blocks,
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind: file_type(meta.file_type()),
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: meta.blksize() as u32,
            flags: 0,
        }
    }

    fn attr_of(&self, ino: u64) -> Result<FileAttr, i32> {
        let meta = self.metadata(ino)?;
        Ok(self.attr(ino, &meta))
    }

    fn control_attr(&self) -> FileAttr {
        let now = SystemTime::now();
        FileAttr {
            ino: CONTROL_INO,
            size: 0,
            blocks: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind: FileType::RegularFile,
            perm: 0o600,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Opens the backing file of a regular file's inode, if it is not open yet.
    fn ensure_file(&mut self, ino: u64) -> Result<(), i32> {
        let inode = self.inode_mut(ino)?;
        if inode.file.is_some() {
            return Ok(());
        }
        let rw = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&inode.path);
        let file = match rw {
            Ok(f) => f,
            // A read-only backing file (as a non-root user) is still readable.
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                File::open(&inode.path).map_err(errno)?
            }
            Err(e) => return Err(errno(e)),
        };
        inode.file = Some(file);
        Ok(())
    }

    /// Runs `change` on the file's overlay (created on first change), keeping the count of
    /// held bytes, and enforces the bound on them.
    fn change<T>(
        &mut self,
        ino: u64,
        change: impl FnOnce(&mut Overlay, &File) -> io::Result<T>,
    ) -> Result<T, i32> {
        self.ensure_file(ino)?;
        let inode = self.inode_mut(ino)?;
        let file = inode.file.as_ref().expect("opened above");
        if inode.overlay.is_none() {
            inode.overlay = Some(Overlay::new(file.metadata().map_err(errno)?.len()));
        }
        let overlay = inode.overlay.as_mut().expect("created above");
        let before = overlay.held_bytes();
        let result = change(overlay, file).map_err(errno);
        let after = overlay.held_bytes();
        self.dirty_bytes = self.dirty_bytes + after - before;
        if self.dirty_bytes > self.max_dirty_bytes {
            self.write_back_all(false);
            self.status.forced_write_backs += 1;
        }
        result
    }

    /// Writes the file's unsynced data back to its backing file and syncs it (`datasync`:
    /// `fdatasync`, else `fsync`). A file without unsynced data is synced all the same.
    fn sync(&mut self, ino: u64, datasync: bool) -> Result<(), i32> {
        let inode = self.inode_mut(ino)?;
        let Some(file) = inode.file.as_ref() else {
            return Ok(());
        };
        if let Some(overlay) = &inode.overlay {
            overlay.write_back(file).map_err(errno)?;
        }
        let synced = if datasync {
            file.sync_data()
        } else {
            file.sync_all()
        };
        synced.map_err(errno)?;
        if let Some(overlay) = inode.overlay.take() {
            self.dirty_bytes -= overlay.held_bytes();
        }
        self.close_if_idle(ino);
        Ok(())
    }

    /// The inodes holding unsynced data.
    fn dirty_inodes(&self) -> Vec<u64> {
        self.inodes
            .iter()
            .filter(|(_, i)| i.overlay.is_some())
            .map(|(&ino, _)| ino)
            .collect()
    }

    /// Writes every file's unsynced data back; `and_sync` syncs each too. Errors are logged
    /// and leave that file's data unsynced.
    fn write_back_all(&mut self, and_sync: bool) {
        for ino in self.dirty_inodes() {
            let inode = self.inodes.get_mut(&ino).expect("listed above");
            let (Some(file), Some(overlay)) = (&inode.file, &inode.overlay) else {
                continue;
            };
            let done =
                overlay
                    .write_back(file)
                    .and_then(|()| if and_sync { file.sync_data() } else { Ok(()) });
            match done {
                Ok(()) => {
                    let held = overlay.held_bytes();
                    inode.overlay = None;
                    self.dirty_bytes -= held;
                    self.close_if_idle(ino);
                }
                Err(e) => warn!("lazyfs: cannot write back {}: {e}", inode.path.display()),
            }
        }
    }

    /// Drops every unsynced change: files revert to their last-synced contents and sizes.
    fn drop_unsynced(&mut self) -> Dropped {
        let mut dropped = Dropped::default();
        for ino in self.dirty_inodes() {
            let inode = self.inodes.get_mut(&ino).expect("listed above");
            let overlay = inode.overlay.take().expect("listed as dirty");
            dropped.files += 1;
            dropped.bytes += overlay.held_bytes();
            self.close_if_idle(ino);
        }
        self.dirty_bytes -= dropped.bytes;
        self.status.drops += 1;
        self.status.last_drop = dropped;
        info!(
            "lazyfs: dropped {} bytes unsynced in {} files",
            dropped.bytes, dropped.files
        );
        dropped
    }

    /// Closes the backing file of an inode nobody has open and nothing unsynced, and forgets
    /// the inode once the kernel has too.
    fn close_if_idle(&mut self, ino: u64) {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        if inode.open > 0 || inode.overlay.is_some() {
            return;
        }
        inode.file = None;
        if inode.lookups == 0 {
            if let Some(key) = inode.key {
                self.by_key.remove(&key);
            }
            self.inodes.remove(&ino);
        }
    }

    /// The name `path` (an inode's with `meta`) is gone: if it was the last, the inode's data
    /// is gone with it once nobody has it open.
    fn unlinked(&mut self, meta: &Metadata) {
        if meta.nlink() > 1 || meta.is_dir() && meta.nlink() > 2 {
            return;
        }
        let key = (meta.dev(), meta.ino());
        let Some(ino) = self.by_key.remove(&key) else {
            return;
        };
        let inode = self.inodes.get_mut(&ino).expect("keys name inodes");
        inode.key = None;
        if inode.open == 0 {
            if let Some(overlay) = inode.overlay.take() {
                self.dirty_bytes -= overlay.held_bytes();
            }
        }
        self.close_if_idle(ino);
    }

    fn new_handle(&mut self, handle: Handle) -> Result<u64, i32> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(libc::EMFILE);
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, handle);
        Ok(fh)
    }

    /// Gives a newly made node to the caller (when the mount runs as root, which makes it).
    fn chown_to(&self, req: &Request<'_>, path: &Path) -> Result<(), i32> {
        if self.as_root {
            std::os::unix::fs::lchown(path, Some(req.uid()), Some(req.gid())).map_err(errno)?;
        }
        Ok(())
    }

    /// Makes a new name in `parent` with `make` (mknod, mkdir, symlink), gives it to the
    /// caller, and looks it up.
    fn make_node(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        make: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<(u64, FileAttr), i32> {
        if self.is_control(parent, name) {
            return Err(libc::EEXIST);
        }
        let path = self.child(parent, name)?;
        make(&path).map_err(errno)?;
        self.chown_to(req, &path)?;
        self.entry_for(path)
    }

    fn entry_for(&mut self, path: PathBuf) -> Result<(u64, FileAttr), i32> {
        let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
        let ino = self.remember(path, &meta)?;
        Ok((ino, self.attr(ino, &meta)))
    }

    fn status(&self) -> Status {
        Status {
            dirty_bytes: self.dirty_bytes,
            dirty_files: self.inodes.values().filter(|i| i.overlay.is_some()).count() as u64,
            max_dirty_bytes: self.max_dirty_bytes,
            ..self.status.clone()
        }
    }

    /// Answers the fsync only after the disk's latency, leaving the data unsynced until
    /// then: the filesystem keeps serving (a drop may come first), and a waker thread
    /// pokes the control file when the sync is due.
    fn delay_sync(&mut self, ino: u64, datasync: bool, reply: ReplyEmpty, control: PathBuf) {
        let delay = std::time::Duration::from_millis(self.sync_delay_ms);
        self.pending_syncs.push_back(PendingSync {
            ino,
            datasync,
            due: std::time::Instant::now() + delay,
            reply,
        });
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = std::fs::metadata(control);
        });
    }

    /// Completes the delayed syncs due by `now` (all of them when `None`), in order.
    fn finish_syncs(&mut self, now: Option<std::time::Instant>) {
        while let Some(p) = self.pending_syncs.front() {
            if now.is_some_and(|now| p.due > now) {
                return;
            }
            let p = self.pending_syncs.pop_front().expect("peeked");
            match self.sync(p.ino, p.datasync) {
                Ok(()) => p.reply.ok(),
                Err(e) => p.reply.error(e),
            }
        }
    }

    fn control(&mut self, command: &[u8]) -> Result<(), i32> {
        if command.len() > MAX_CONTROL_BYTES {
            return Err(libc::EFBIG);
        }
        match std::str::from_utf8(command).map(str::trim) {
            Ok("drop") => {
                // What the disk was still syncing is lost with the rest.
                for p in self.pending_syncs.drain(..) {
                    p.reply.error(libc::EIO);
                }
                self.drop_unsynced();
                Ok(())
            }
            Ok("sync") => {
                self.finish_syncs(None);
                self.write_back_all(true);
                Ok(())
            }
            // `echo drop > file` truncates first, then writes.
            Ok("") => Ok(()),
            _ => {
                warn!(
                    "lazyfs: unknown control command {:?}: expected drop or sync",
                    String::from_utf8_lossy(command)
                );
                Err(libc::EINVAL)
            }
        }
    }

    fn read_file(&self, ino: u64, offset: u64, size: usize) -> Result<Vec<u8>, i32> {
        let inode = self.inode(ino)?;
        let file = inode.file.as_ref().ok_or(libc::EBADF)?;
        match &inode.overlay {
            Some(o) => o.read(file, offset, size).map_err(errno),
            None => {
                let mut buf = vec![0u8; size];
                let mut done = 0;
                while done < size {
                    match std::os::unix::fs::FileExt::read_at(
                        file,
                        &mut buf[done..],
                        offset + done as u64,
                    ) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(errno(e)),
                    }
                }
                buf.truncate(done);
                Ok(buf)
            }
        }
    }

    fn set_times(
        &self,
        ino: u64,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<(), i32> {
        let spec = |t: Option<TimeOrNow>| match t {
            None => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            Some(TimeOrNow::Now) => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            Some(TimeOrNow::SpecificTime(t)) => {
                let (secs, nanos) = match t.duration_since(SystemTime::UNIX_EPOCH) {
                    Ok(d) => (d.as_secs() as i64, d.subsec_nanos() as i64),
                    Err(e) => (-(e.duration().as_secs() as i64), 0),
                };
                libc::timespec {
                    tv_sec: secs,
                    tv_nsec: nanos,
                }
            }
        };
        let times = [spec(atime), spec(mtime)];
        let path = cstring(&self.inode(ino)?.path)?;
        // SAFETY: a valid NUL-terminated path and two timespecs, as utimensat requires.
        let rc = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                path.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(errno(io::Error::last_os_error()));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr_inner(
        &mut self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<FileAttr, i32> {
        let path = self.inode(ino)?.path.clone();
        if let Some(mode) = mode {
            let perm = std::fs::Permissions::from_mode(mode & 0o7777);
            match &self.inode(ino)?.file {
                Some(f) => f.set_permissions(perm),
                None => std::fs::set_permissions(&path, perm),
            }
            .map_err(errno)?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(&path, uid, gid).map_err(errno)?;
        }
        if let Some(size) = size {
            if self.metadata(ino)?.is_dir() {
                return Err(libc::EISDIR);
            }
            self.change(ino, |o, _| {
                o.set_size(size);
                Ok(())
            })?;
            self.close_if_idle(ino);
        }
        if atime.is_some() || mtime.is_some() {
            self.set_times(ino, atime, mtime)?;
        }
        self.attr_of(ino)
    }

    fn rename_inner(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<(), i32> {
        if self.is_control(parent, name) || self.is_control(newparent, newname) {
            return Err(libc::EPERM);
        }
        let from = self.child(parent, name)?;
        let to = self.child(newparent, newname)?;
        let replaced = std::fs::symlink_metadata(&to).ok();
        match flags {
            0 => std::fs::rename(&from, &to).map_err(errno)?,
            f if f == libc::RENAME_NOREPLACE => {
                let (a, b) = (cstring(&from)?, cstring(&to)?);
                // SAFETY: two valid NUL-terminated paths relative to the working directory.
                let rc = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_NOREPLACE,
                    )
                };
                if rc != 0 {
                    return Err(errno(io::Error::last_os_error()));
                }
            }
            _ => return Err(libc::EINVAL),
        }
        if let Some(meta) = replaced {
            let moved = std::fs::symlink_metadata(&to).map_err(errno)?;
            if (meta.dev(), meta.ino()) != (moved.dev(), moved.ino()) {
                self.unlinked(&meta);
            }
        }
        // Everything at or under the old name now lives under the new one.
        for inode in self.inodes.values_mut() {
            if let Ok(rest) = inode.path.strip_prefix(&from) {
                inode.path = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
            }
        }
        Ok(())
    }

    fn create_inner(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64), i32> {
        if self.is_control(parent, name) {
            return Err(libc::EEXIST);
        }
        let path = self.child(parent, name)?;
        let existed = std::fs::symlink_metadata(&path).is_ok();
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).mode(mode & !umask & 0o7777);
        if flags & libc::O_EXCL != 0 {
            opts.create_new(true);
        } else {
            opts.create(true);
        }
        // Never O_TRUNC on the backing file: truncation is unsynced like any other change.
        let file = opts
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(errno)?;
        if !existed {
            self.chown_to(req, &path)?;
        }
        let meta = file.metadata().map_err(errno)?;
        let ino = self.remember(path, &meta)?;
        let inode = self.inodes.get_mut(&ino).expect("remembered");
        if inode.file.is_none() {
            inode.file = Some(file);
        }
        inode.open += 1;
        if existed && flags & libc::O_TRUNC != 0 {
            self.change(ino, |o, _| {
                o.set_size(0);
                Ok(())
            })?;
        }
        let fh = match self.new_handle(Handle::File(ino)) {
            Ok(fh) => fh,
            Err(e) => {
                self.inode_mut(ino)?.open -= 1;
                return Err(e);
            }
        };
        Ok((self.attr_of(ino)?, fh))
    }

    fn fallocate_inner(
        &mut self,
        ino: u64,
        offset: i64,
        length: i64,
        mode: i32,
    ) -> Result<(), i32> {
        if offset < 0 || length <= 0 {
            return Err(libc::EINVAL);
        }
        let end = (offset as u64)
            .checked_add(length as u64)
            .ok_or(libc::EFBIG)?;
        match mode {
            // Allocation without a size change: nothing a drop could undo.
            libc::FALLOC_FL_KEEP_SIZE => Ok(()),
            0 => self.change(ino, |o, _| {
                if end > o.size() {
                    o.set_size(end);
                }
                Ok(())
            }),
            _ => Err(libc::EOPNOTSUPP),
        }
    }
}

macro_rules! reply_err {
    ($reply:expr, $result:expr, $ok:expr) => {
        match $result {
            Ok(v) => ($ok)(v),
            Err(e) => $reply.error(e),
        }
    };
}

impl Filesystem for LazyFs {
    fn init(&mut self, _req: &Request<'_>, _config: &mut KernelConfig) -> Result<(), i32> {
        info!("lazyfs: serving {}", self.root.display());
        Ok(())
    }

    /// A clean unmount writes back and syncs everything: only a drop loses data.
    fn destroy(&mut self) {
        self.finish_syncs(None);
        self.write_back_all(true);
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        if self.is_control(parent, name) {
            return reply.entry(&TTL, &self.control_attr(), 0);
        }
        let result = self
            .child(parent, name)
            .and_then(|path| self.entry_for(path));
        reply_err!(reply, result, |(_, attr)| reply.entry(&TTL, &attr, 0));
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.lookups = inode.lookups.saturating_sub(nlookup);
            self.close_if_idle(ino);
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        if ino == CONTROL_INO {
            // The waker of a delayed sync pokes here.
            self.finish_syncs(Some(std::time::Instant::now()));
            return reply.attr(&TTL, &self.control_attr());
        }
        reply_err!(reply, self.attr_of(ino), |attr| reply.attr(&TTL, &attr));
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        if ino == CONTROL_INO {
            // `echo drop > control` truncates it first; there is nothing to truncate.
            return reply.attr(&TTL, &self.control_attr());
        }
        let result = self.setattr_inner(ino, mode, uid, gid, size, atime, mtime);
        reply_err!(reply, result, |attr| reply.attr(&TTL, &attr));
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        let result = self
            .inode(ino)
            .and_then(|i| std::fs::read_link(&i.path).map_err(errno));
        reply_err!(reply, result, |target: PathBuf| reply
            .data(target.as_os_str().as_bytes()));
    }

    fn mknod(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let result = self.make_node(req, parent, name, |path| {
            let c = CString::new(path.as_os_str().as_bytes())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: a valid NUL-terminated path; mode and device as the kernel passed them.
            let rc = unsafe { libc::mknod(c.as_ptr(), mode & !umask, rdev as libc::dev_t) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
        reply_err!(reply, result, |(_, attr)| reply.entry(&TTL, &attr, 0));
    }

    fn mkdir(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self.make_node(req, parent, name, |path| {
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(path)
        });
        reply_err!(reply, result, |(_, attr)| reply.entry(&TTL, &attr, 0));
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let result = (|| {
            if self.is_control(parent, name) {
                return Err(libc::EPERM);
            }
            let path = self.child(parent, name)?;
            let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
            std::fs::remove_file(&path).map_err(errno)?;
            self.unlinked(&meta);
            Ok(())
        })();
        reply_err!(reply, result, |()| reply.ok());
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let result = (|| {
            let path = self.child(parent, name)?;
            let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
            std::fs::remove_dir(&path).map_err(errno)?;
            self.unlinked(&meta);
            Ok(())
        })();
        reply_err!(reply, result, |()| reply.ok());
    }

    fn symlink(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let result = self.make_node(req, parent, link_name, |path| {
            std::os::unix::fs::symlink(target, path)
        });
        reply_err!(reply, result, |(_, attr)| reply.entry(&TTL, &attr, 0));
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let result = self.rename_inner(parent, name, newparent, newname, flags);
        reply_err!(reply, result, |()| reply.ok());
    }

    fn link(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            if self.is_control(newparent, newname) {
                return Err(libc::EEXIST);
            }
            let from = self.inode(ino)?.path.clone();
            let to = self.child(newparent, newname)?;
            std::fs::hard_link(&from, &to).map_err(errno)?;
            self.entry_for(to)
        })();
        reply_err!(reply, result, |(_, attr)| reply.entry(&TTL, &attr, 0));
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if ino == CONTROL_INO {
            let result = self.new_handle(Handle::Control);
            return reply_err!(reply, result, |fh| reply
                .opened(fh, fuser::consts::FOPEN_DIRECT_IO));
        }
        let result = (|| {
            self.ensure_file(ino)?;
            let fh = self.new_handle(Handle::File(ino))?;
            self.inode_mut(ino)?.open += 1;
            if flags & libc::O_TRUNC != 0 {
                self.change(ino, |o, _| {
                    o.set_size(0);
                    Ok(())
                })?;
            }
            Ok(fh)
        })();
        // No FOPEN_KEEP_CACHE: the kernel drops the file's cached pages on every open, so
        // nothing from before a drop is read after it.
        reply_err!(reply, result, |fh| reply.opened(fh, 0));
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let offset = offset.max(0) as u64;
        if ino == CONTROL_INO {
            let mut text = serde_json::to_vec(&self.status()).unwrap_or_default();
            text.push(b'\n');
            let from = (offset as usize).min(text.len());
            let to = text.len().min(from + size as usize);
            return reply.data(&text[from..to]);
        }
        let result = self.read_file(ino, offset, size as usize);
        reply_err!(reply, result, |data: Vec<u8>| reply.data(&data));
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        if ino == CONTROL_INO {
            let result = self.control(data);
            return reply_err!(reply, result, |()| reply.written(data.len() as u32));
        }
        if offset < 0 {
            return reply.error(libc::EINVAL);
        }
        let result = self.change(ino, |o, file| o.write(file, offset as u64, data));
        reply_err!(reply, result, |()| reply.written(data.len() as u32));
    }

    fn flush(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _lock_owner: u64,
        reply: ReplyEmpty,
    ) {
        // Closing syncs nothing.
        reply.ok();
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Some(Handle::File(ino)) = self.handles.remove(&fh) {
            if let Some(inode) = self.inodes.get_mut(&ino) {
                inode.open = inode.open.saturating_sub(1);
                // The last handle of a file without a name: its data goes with it.
                if inode.open == 0 && inode.key.is_none() {
                    if let Some(overlay) = inode.overlay.take() {
                        self.dirty_bytes -= overlay.held_bytes();
                    }
                }
            }
            self.close_if_idle(ino);
        }
        reply.ok();
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, datasync: bool, reply: ReplyEmpty) {
        if ino == CONTROL_INO {
            return reply.ok();
        }
        if self.sync_delay_ms > 0 && self.pending_syncs.len() < MAX_PENDING_SYNCS {
            if let Some(mnt) = &self.mountpoint {
                return self.delay_sync(ino, datasync, reply, mnt.join(CONTROL_FILE));
            }
        }
        reply_err!(reply, self.sync(ino, datasync), |()| reply.ok());
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let result = (|| {
            let path = self.inode(ino)?.path.clone();
            let parent = if ino == FUSE_ROOT_ID { ino } else { 0 };
            let mut entries = vec![
                (ino, FileType::Directory, OsString::from(".")),
                (parent.max(1), FileType::Directory, OsString::from("..")),
            ];
            for entry in std::fs::read_dir(&path).map_err(errno)? {
                let entry = entry.map_err(errno)?;
                if entries.len() >= MAX_DIR_ENTRIES {
                    warn!(
                        "lazyfs: {} has more than {MAX_DIR_ENTRIES} entries",
                        path.display()
                    );
                    return Err(libc::EOVERFLOW);
                }
                let kind = entry
                    .file_type()
                    .map(file_type)
                    .unwrap_or(FileType::RegularFile);
                // The backing inode number: informational only (lookups name inodes).
                let raw = std::os::unix::fs::DirEntryExt::ino(&entry);
                entries.push((raw.max(2), kind, entry.file_name()));
            }
            self.new_handle(Handle::Dir(entries))
        })();
        reply_err!(reply, result, |fh| reply.opened(fh, 0));
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let Some(Handle::Dir(entries)) = self.handles.get(&fh) else {
            return reply.error(libc::EBADF);
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(*ino, i as i64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        reply: ReplyEmpty,
    ) {
        self.handles.remove(&fh);
        reply.ok();
    }

    fn fsyncdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Names are durable at once; syncing the backing directory makes them so on disk.
        let result = self.inode(ino).and_then(|i| {
            File::open(&i.path)
                .and_then(|d| d.sync_all())
                .map_err(errno)
        });
        reply_err!(reply, result, |()| reply.ok());
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let result = (|| {
            let path = cstring(&self.root)?;
            // SAFETY: statvfs fills the zeroed struct from a valid NUL-terminated path.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
                return Err(errno(io::Error::last_os_error()));
            }
            Ok(st)
        })();
        reply_err!(reply, result, |st: libc::statvfs| reply.statfs(
            st.f_blocks,
            st.f_bfree,
            st.f_bavail,
            st.f_files,
            st.f_ffree,
            st.f_bsize as u32,
            st.f_namemax as u32,
            st.f_frsize as u32,
        ));
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let result = self.create_inner(req, parent, name, mode, umask, flags);
        reply_err!(reply, result, |(attr, fh)| reply
            .created(&TTL, &attr, 0, fh, 0));
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let result = self.fallocate_inner(ino, offset, length, mode);
        reply_err!(reply, result, |()| reply.ok());
    }
}
