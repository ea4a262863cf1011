//! Uploads and downloads over SFTP (a subsystem of the same sessions, so no second login).

use super::OpError;
use ssh2::{ErrorCode, FileStat, OpenFlags, OpenType, Session, Sftp};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Transfer chunk: libssh2 pipelines SFTP requests within one call, so larger chunks keep
/// more requests in flight.
const CHUNK_BYTES: usize = 256 * 1024;
/// Mode of directories created for uploads.
const DIR_MODE: i32 = 0o755;

/// Copies `local` to `remote` (a path on the host), creating its parent directories and
/// keeping the local file's permission bits (an uploaded binary stays executable).
pub(super) fn upload(
    session: &Session,
    io_timeout_ms: u32,
    local: &Path,
    remote: &Path,
) -> Result<(), OpError> {
    let local_error = |e: std::io::Error| OpError::Failed {
        cause: format!("{}: {e}", local.display()),
        keep: true,
    };
    let mut source = std::fs::File::open(local).map_err(local_error)?;
    let mode = source.metadata().map_err(local_error)?.permissions().mode() & 0o7777;
    let sftp = open_sftp(session, io_timeout_ms)?;
    if let Some(parent) = remote.parent() {
        make_dirs(&sftp, parent)?;
    }
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
    let mut target = sftp
        .open_mode(remote, flags, mode as i32, OpenType::File)
        .map_err(|e| remote_error(remote, e))?;
    copy(&mut source, &mut target).map_err(|e| match e {
        CopyError::Read(e) => local_error(e),
        CopyError::Write(e) => broken(remote, e),
    })?;
    target.close().map_err(|e| remote_error(remote, e))?;
    // The server's umask applied at creation, and an existing file kept its old mode.
    let stat = FileStat {
        size: None,
        uid: None,
        gid: None,
        perm: Some(mode),
        atime: None,
        mtime: None,
    };
    sftp.setstat(remote, stat)
        .map_err(|e| remote_error(remote, e))
}

/// Copies `remote` (a path on the host) to `local`, creating local parent directories. The
/// local file is only created once the remote one is open.
pub(super) fn download(
    session: &Session,
    io_timeout_ms: u32,
    remote: &Path,
    local: &Path,
) -> Result<(), OpError> {
    let sftp = open_sftp(session, io_timeout_ms)?;
    let mut source = sftp.open(remote).map_err(|e| remote_error(remote, e))?;
    let local_error = |e: std::io::Error| OpError::Failed {
        cause: format!("{}: {e}", local.display()),
        keep: true,
    };
    if let Some(parent) = local.parent() {
        std::fs::create_dir_all(parent).map_err(local_error)?;
    }
    let mut target = std::fs::File::create(local).map_err(local_error)?;
    copy(&mut source, &mut target).map_err(|e| match e {
        CopyError::Read(e) => broken(remote, e),
        CopyError::Write(e) => local_error(e),
    })?;
    target.sync_all().map_err(local_error)
}

/// Opens the SFTP subsystem; failing here had no effect on the host, so it may be retried
/// on a fresh session.
fn open_sftp(session: &Session, io_timeout_ms: u32) -> Result<Sftp, OpError> {
    session.set_blocking(true);
    session.set_timeout(io_timeout_ms);
    session
        .sftp()
        .map_err(|e| OpError::NotStarted(format!("cannot start SFTP: {e}")))
}

/// `mkdir -p` over SFTP: creates each missing ancestor in turn.
fn make_dirs(sftp: &Sftp, dir: &Path) -> Result<(), OpError> {
    if dir.as_os_str().is_empty() || is_dir(sftp, dir) {
        return Ok(());
    }
    let mut path = PathBuf::new();
    for part in dir.components() {
        path.push(part);
        if is_dir(sftp, &path) {
            continue;
        }
        if let Err(e) = sftp.mkdir(&path, DIR_MODE) {
            // Another upload may have made it meanwhile.
            if !is_dir(sftp, &path) {
                return Err(remote_error(&path, e));
            }
        }
    }
    Ok(())
}

fn is_dir(sftp: &Sftp, path: &Path) -> bool {
    sftp.stat(path).is_ok_and(|s| s.is_dir())
}

/// An SFTP status (no such file, permission denied) leaves the session healthy; any other
/// error may have broken it.
fn remote_error(path: &Path, e: ssh2::Error) -> OpError {
    let keep = matches!(e.code(), ErrorCode::SFTP(_));
    let cause = match e.code() {
        ErrorCode::SFTP(LIBSSH2_FX_NO_SUCH_FILE) => format!("{}: no such file", path.display()),
        _ => format!("{}: {e}", path.display()),
    };
    OpError::Failed { cause, keep }
}

/// The SFTP status for a missing file (`SSH_FX_NO_SUCH_FILE`).
const LIBSSH2_FX_NO_SUCH_FILE: i32 = 2;

/// A transfer error midway through a remote file: the session may be broken.
fn broken(path: &Path, e: std::io::Error) -> OpError {
    OpError::Failed {
        cause: format!("{}: {e}", path.display()),
        keep: false,
    }
}

/// Which side of a copy failed: the local side's errors leave the session healthy.
enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> Result<(), CopyError> {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = from.read(&mut buf).map_err(CopyError::Read)?;
        if n == 0 {
            return to.flush().map_err(CopyError::Write);
        }
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}
