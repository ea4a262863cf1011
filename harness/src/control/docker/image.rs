//! The node image, built by the harness itself `FROM scratch`: no registry is needed (CI
//! machines and this one have none), and the image holds exactly a static busybox (shell and
//! tools for [`Remote::exec`](crate::control::Remote::exec) and the daemon scripts) plus the
//! files the caller names (the node binary).
//!
//! The tag is a hash of everything that goes in, so building the same content again finds the
//! tag and does nothing.

use super::{cli, DockerError};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Image repository name; the tag is the content hash.
pub const IMAGE_REPOSITORY: &str = "faultline-node";

/// Where busybox is looked for when the spec names none: Debian's `busybox-static` installs
/// `/bin/busybox`.
const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox", "/usr/local/bin/busybox"];

/// A build copies files and writes one layer; ten minutes means the engine is stuck.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// Bumped when the layout below changes, so old tags are not mistaken for new content.
const LAYOUT_VERSION: &str = "faultline-node-image v1";

/// `PATH` inside the image: busybox's applets are in /bin, extra files may go anywhere.
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Only root exists inside; a passwd file lets tools print names instead of numbers.
const ETC_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n";
const ETC_GROUP: &str = "root:x:0:\n";

/// Serialises builds in this process: parallel tests building the same image would otherwise
/// build it twice on a 2-core machine.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// What goes into the image.
#[derive(Clone, Debug, Default)]
pub struct ImageSpec {
    /// The static busybox to install as /bin/busybox; None searches the usual places.
    pub busybox: Option<PathBuf>,
    /// (host path, absolute path in the image), copied with their permissions, in order.
    pub extra_files: Vec<(PathBuf, PathBuf)>,
}

/// A built image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// `faultline-node:<content hash>`.
    pub tag: String,
    /// False when an image with this content already existed (nothing was built).
    pub built: bool,
}

impl ImageSpec {
    /// Builds the image unless one with the same content exists.
    pub fn build(&self) -> Result<Image, DockerError> {
        cli::engine_version()?;
        let _serial = BUILD_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let context = TempDir::new("faultline-image")?;
        let hash = self.write_context(context.path())?;
        let tag = format!("{IMAGE_REPOSITORY}:{hash:032x}");
        if image_exists(&tag) {
            return Ok(Image { tag, built: false });
        }
        cli::run_with_timeout(
            &[
                "build",
                "-q",
                "-t",
                &tag,
                &context.path().display().to_string(),
            ],
            BUILD_TIMEOUT,
        )?;
        Ok(Image { tag, built: true })
    }

    /// Lays out the build context (Dockerfile and `rootfs/`), hashing exactly what was
    /// written, so the tag cannot disagree with the content even if a source file changes
    /// meanwhile.
    fn write_context(&self, dir: &Path) -> Result<u128, DockerError> {
        let mut hash = Fnv128::new();
        hash.update(LAYOUT_VERSION.as_bytes());
        let dockerfile = dockerfile();
        hash.update(dockerfile.as_bytes());
        write_file(&dir.join("Dockerfile"), dockerfile.as_bytes())?;
        let rootfs = dir.join("rootfs");
        for d in ["bin", "etc", "root", "faultline", "tmp"] {
            create_dir(&rootfs.join(d))?;
        }
        set_mode(&rootfs.join("tmp"), 0o1777)?;
        write_file(&rootfs.join("etc/passwd"), ETC_PASSWD.as_bytes())?;
        write_file(&rootfs.join("etc/group"), ETC_GROUP.as_bytes())?;
        self.install_busybox(&rootfs, &mut hash)?;
        for (host, in_image) in &self.extra_files {
            install_file(host, &rootfs, in_image, &mut hash)?;
        }
        Ok(hash.finish())
    }

    fn install_busybox(&self, rootfs: &Path, hash: &mut Fnv128) -> Result<(), DockerError> {
        let source = match &self.busybox {
            Some(path) => path.clone(),
            None => find_busybox()?,
        };
        let bytes = fs::read(&source).map_err(|e| io_error(&source, e))?;
        if !is_static_elf(&bytes) {
            return Err(DockerError::BusyboxNotStatic { path: source });
        }
        hash.update(&bytes);
        let target = rootfs.join("bin/busybox");
        write_file(&target, &bytes)?;
        set_mode(&target, 0o755)?;
        for applet in applets(&source)? {
            hash.update(applet.as_bytes());
            hash.update(b"\0");
            let link = rootfs.join("bin").join(&applet);
            symlink("busybox", &link).map_err(|e| io_error(&link, e))?;
        }
        Ok(())
    }
}

impl Image {
    /// Removes the image (tests that build one-off images use this to leave none behind).
    pub fn remove(&self) -> Result<(), DockerError> {
        cli::run(&["image", "rm", &self.tag]).map(|_| ())
    }
}

fn dockerfile() -> String {
    format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         ENV PATH={IMAGE_PATH}\n\
         LABEL io.faultline.image=\"1\"\n\
         CMD [\"/bin/sh\"]\n"
    )
}

fn image_exists(tag: &str) -> bool {
    cli::run(&["image", "inspect", "--format", "{{.Id}}", tag]).is_ok()
}

fn find_busybox() -> Result<PathBuf, DockerError> {
    BUSYBOX_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| DockerError::BusyboxMissing {
            searched: BUSYBOX_CANDIDATES.join(", "),
        })
}

/// The applet names busybox was built with (its own `--list`), one symlink each.
fn applets(busybox: &Path) -> Result<Vec<String>, DockerError> {
    let out = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| io_error(busybox, e))?;
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "busybox" && !n.contains('/'))
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(DockerError::BusyboxNotStatic {
            path: busybox.to_path_buf(),
        });
    }
    Ok(names)
}

/// Copies `host` to `in_image` under `rootfs`, streaming it through the hash; the mode and
/// the path are hashed too, since both change the image.
fn install_file(
    host: &Path,
    rootfs: &Path,
    in_image: &Path,
    hash: &mut Fnv128,
) -> Result<(), DockerError> {
    let relative = image_relative(in_image)?;
    let target = rootfs.join(relative);
    if let Some(parent) = target.parent() {
        create_dir(parent)?;
    }
    let mut source = fs::File::open(host).map_err(|e| io_error(host, e))?;
    let meta = source.metadata().map_err(|e| io_error(host, e))?;
    if !meta.is_file() {
        return Err(io_error(host, std::io::Error::other("not a regular file")));
    }
    let mode = meta.permissions().mode() & 0o7777;
    hash.update(in_image.as_os_str().as_encoded_bytes());
    hash.update(&mode.to_le_bytes());
    // A later file may replace an earlier one (or an applet link) at the same path.
    let _ = fs::remove_file(&target);
    let mut sink = fs::File::create(&target).map_err(|e| io_error(&target, e))?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = source.read(&mut buf).map_err(|e| io_error(host, e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        sink.write_all(&buf[..n])
            .map_err(|e| io_error(&target, e))?;
    }
    set_mode(&target, mode)
}

/// An image path must be absolute and plain (no `..`), so it cannot land outside the rootfs.
fn image_relative(in_image: &Path) -> Result<PathBuf, DockerError> {
    let mut components = in_image.components();
    let absolute = components.next() == Some(Component::RootDir);
    let rest: PathBuf = components.clone().collect();
    let plain = components.all(|c| matches!(c, Component::Normal(_)));
    if !absolute || !plain || rest.as_os_str().is_empty() {
        return Err(DockerError::BadImagePath {
            path: in_image.to_path_buf(),
        });
    }
    Ok(rest)
}

/// Whether `bytes` is an ELF executable needing no dynamic loader (no PT_INTERP program
/// header): only such a binary runs in an image with no libc. Debian's plain `busybox`
/// package is dynamic; `busybox-static` is not.
pub(super) fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u64 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return false;
    }
    let little = bytes[5] == 1;
    let uint = |at: usize, len: usize| -> Option<u64> {
        let b = bytes.get(at..at + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if little { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    // (e_phoff, its width, e_phentsize, e_phnum) for ELF32 and ELF64.
    let (phoff, entsize, count) = match bytes[4] {
        1 => (uint(0x1c, 4), uint(0x2a, 2), uint(0x2c, 2)),
        2 => (uint(0x20, 8), uint(0x36, 2), uint(0x38, 2)),
        _ => return false,
    };
    let (Some(phoff), Some(entsize), Some(count)) = (phoff, entsize, count) else {
        return false;
    };
    (0..count).all(|i| {
        let at = (phoff + i * entsize) as usize;
        uint(at, 4).is_some_and(|p_type| p_type != PT_INTERP)
    })
}

/// FNV-1a over 128 bits: stable across Rust releases (unlike `DefaultHasher`), so tags stay
/// valid between toolchains, and wide enough that distinct contents do not collide by chance.
/// Not a defence against someone crafting a collision; image content is ours.
struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    fn new() -> Fnv128 {
        Fnv128(Self::OFFSET)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> u128 {
        self.0
    }
}

/// A directory removed when dropped, also on error and panic paths.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<TempDir, DockerError> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", super::unique_suffix()));
        create_dir(&dir)?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn create_dir(dir: &Path) -> Result<(), DockerError> {
    fs::create_dir_all(dir).map_err(|e| io_error(dir, e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DockerError> {
    fs::write(path, bytes).map_err(|e| io_error(path, e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), DockerError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> DockerError {
    DockerError::Io {
        path: path.to_path_buf(),
        cause: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_must_be_absolute_and_plain() {
        assert_eq!(
            image_relative(Path::new("/usr/bin/node")).unwrap(),
            PathBuf::from("usr/bin/node")
        );
        for bad in ["usr/bin/node", "/usr/../etc/x", "/"] {
            assert!(image_relative(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn static_elf_is_told_from_dynamic() {
        // The test binary itself is dynamically linked (it needs libc's loader).
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!is_static_elf(&me));
        assert!(!is_static_elf(
            b"#!/bin/sh\necho not elf at all, long enough to be parsed ok\n"
        ));
        if let Ok(busybox) = find_busybox() {
            assert!(is_static_elf(&fs::read(busybox).unwrap()));
        }
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let h = |b: &[u8]| {
            let mut f = Fnv128::new();
            f.update(b);
            f.finish()
        };
        // Published FNV-1a 128 test vector for the empty input is the offset basis.
        assert_eq!(h(b""), Fnv128::OFFSET);
        assert_ne!(h(b"a"), h(b"b"));
        assert_eq!(h(b"faultline"), h(b"faultline"));
    }
}
