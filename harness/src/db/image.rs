//! Host files for the docker backend's node image, which is built `FROM scratch` (there is
//! no registry to pull a base image from): whole directory trees, the shared libraries of
//! their programs, and small files written for the image.
//!
//! The image builder copies regular files only, so a file reached through a symlink is
//! copied under the path it is reached by; programs that find their data relative to their
//! own path (a JVM, PostgreSQL's `initdb`) keep their places.

use super::{binary_with_libs_at, DbError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A package's tree holds a few thousand files; one much larger is not what was meant.
const MAX_TREE_FILES: usize = 20_000;

/// (host path holding the bytes, path in the image).
pub type ImageFile = (PathBuf, PathBuf);

/// Every regular file under `root` (following symlinks; dangling ones are left out), at the
/// same path in the image, except the top-level entries named in `skip`.
pub fn tree(system: &'static str, root: &Path, skip: &[&str]) -> Result<Vec<ImageFile>, DbError> {
    let mut files = Vec::new();
    walk(root, root, skip, &mut files).map_err(|e| DbError::Setup {
        system,
        what: format!("cannot copy {} into the image: {e}", root.display()),
    })?;
    if files.len() > MAX_TREE_FILES {
        return Err(DbError::Setup {
            system,
            what: format!(
                "{} holds more than {MAX_TREE_FILES} files: refusing to copy it into the image",
                root.display()
            ),
        });
    }
    Ok(files)
}

fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut Vec<ImageFile>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if out.len() > MAX_TREE_FILES {
            return Ok(());
        }
        let path = entry.path();
        if dir == root && skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(root, &path, skip, out)?;
        } else if meta.is_file() {
            out.push((path.canonicalize()?, path));
        }
    }
    Ok(())
}

/// The shared libraries that the ELF files among `files` load, outside `own` (which the
/// files themselves provide), each at its own path.
pub fn libraries(
    system: &'static str,
    files: &[ImageFile],
    own: &Path,
) -> Result<Vec<ImageFile>, DbError> {
    let mut libs = BTreeSet::new();
    for (host, _) in files.iter().filter(|(h, _)| is_elf(h)) {
        for (lib, _) in binary_with_libs_at(system, host)?.into_iter().skip(1) {
            if !lib.starts_with(own) {
                libs.insert(lib);
            }
        }
    }
    Ok(libs.into_iter().map(|l| (l.clone(), l)).collect())
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// A host file holding `body` with `mode`, for the image: written once per content under
/// the temp directory (atomically, as parallel runs may write the same one).
pub fn host_file(system: &'static str, body: &str, mode: u32) -> Result<PathBuf, DbError> {
    use std::os::unix::fs::PermissionsExt;
    let tag = body.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = std::env::temp_dir().join(format!("faultline-image-{tag:016x}-{mode:o}"));
    let io = |e: std::io::Error| DbError::Setup {
        system,
        what: format!("cannot write {}: {e}", path.display()),
    };
    if std::fs::read_to_string(&path).ok().as_deref() != Some(body) {
        let partial = path.with_extension(format!("{}.partial", std::process::id()));
        std::fs::write(&partial, body).map_err(io)?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode)).map_err(io)?;
        std::fs::rename(&partial, &path).map_err(io)?;
    }
    Ok(path)
}

/// `binary` from the controller's PATH, resolved.
pub fn on_path(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(binary))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_follows_links_skips_what_is_named_and_leaves_dangling_links_out() {
        let dir = std::env::temp_dir().join(format!("faultline-image-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/sub")).unwrap();
        std::fs::create_dir_all(dir.join("root/man")).unwrap();
        std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
        std::fs::write(dir.join("root/sub/a"), "a").unwrap();
        std::fs::write(dir.join("root/man/m"), "m").unwrap();
        std::fs::write(dir.join("elsewhere/b"), "b").unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere/b"), dir.join("root/b")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("root/dangling")).unwrap();
        let files = tree("test", &dir.join("root"), &["man"]).unwrap();
        let root = dir.join("root");
        assert_eq!(
            files,
            vec![
                (dir.join("elsewhere/b"), root.join("b")),
                (root.join("sub/a"), root.join("sub/a")),
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_host_file_is_written_once_per_content_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let body = format!("#!/bin/sh\necho {}\n", std::process::id());
        let a = host_file("test", &body, 0o755).unwrap();
        let b = host_file("test", &body, 0o755).unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), body);
        let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
        assert_ne!(host_file("test", "other", 0o644).unwrap(), a);
    }
}
