//! A Java runtime for the docker backend's node image, which is built `FROM scratch` out of
//! host files (there is no registry to pull a JDK image from): the JVM that `java` on the
//! controller's PATH resolves to, the shared libraries its native parts load, and a `java`
//! on the image's PATH that runs it.
//!
//! Files reached through symlinks are copied under the path they are reached by, because the
//! image builder copies regular files only; the JVM finds its home from its own path, so the
//! launcher keeps its place under that home and the image's `java` is a one-line script.

use super::{binary_with_libs_at, DbError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where the image's `java` goes: first on the image's PATH.
const IMAGE_JAVA: &str = "/usr/local/bin/java";
/// Parts of a JDK home a server never loads.
const SKIPPED: &[&str] = &[
    "jmods", "include", "man", "legal", "docs", "demo", "src.zip",
];
/// A JDK home holds a few thousand files; a tree much larger is not one.
const MAX_FILES: usize = 20_000;

/// The JVM's files, their libraries and the `java` script, as (host path, image path).
pub fn image_files(system: &'static str) -> Result<Vec<(PathBuf, PathBuf)>, DbError> {
    let setup = |what: String| DbError::Setup { system, what };
    let java = find_on_path("java").ok_or_else(|| {
        setup(
            "no java on the controller's PATH to put in the image: install Debian's \
               default-jre-headless"
                .into(),
        )
    })?;
    let launcher = java
        .canonicalize()
        .map_err(|e| setup(format!("cannot resolve {}: {e}", java.display())))?;
    let home = launcher
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| setup(format!("{} is not in a JVM's bin/", launcher.display())))?
        .to_path_buf();
    let mut files = Vec::new();
    walk(&home, &home, &mut files).map_err(|e| setup(format!("{}: {e}", home.display())))?;
    if files.len() > MAX_FILES {
        return Err(setup(format!(
            "{} holds more than {MAX_FILES} files: not a JVM home",
            home.display()
        )));
    }
    let mut libs = BTreeSet::new();
    for (host, _) in files.iter().filter(|(h, _)| is_native(h)) {
        for (lib, _) in binary_with_libs_at(system, host)?.into_iter().skip(1) {
            if !lib.starts_with(&home) {
                libs.insert(lib);
            }
        }
    }
    files.extend(libs.into_iter().map(|l| (l.clone(), l)));
    files.push((
        launcher_script(system, &launcher)?,
        PathBuf::from(IMAGE_JAVA),
    ));
    Ok(files)
}

fn find_on_path(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(binary))
            .find(|p| p.is_file())
    })
}

/// Every regular file under `dir` (following symlinks), as (where its bytes are, where it
/// appears under `home`); dangling links are left out, as the JVM cannot have used them.
fn walk(home: &Path, dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if dir == home && SKIPPED.iter().any(|s| name == *s) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(home, &path, out)?;
        } else if meta.is_file() {
            out.push((path.canonicalize()?, path));
        }
        if out.len() > MAX_FILES {
            return Ok(());
        }
    }
    Ok(())
}

fn is_native(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".so") || path.parent().is_some_and(|p| p.ends_with("bin"))
}

/// A host file holding `exec <launcher> "$@"`, written once per content: the image builder
/// copies host files, and the launcher must stay under its JVM home.
fn launcher_script(system: &'static str, launcher: &Path) -> Result<PathBuf, DbError> {
    use std::os::unix::fs::PermissionsExt;
    let body = format!("#!/bin/sh\nexec {} \"$@\"\n", launcher.display());
    let tag = body.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = std::env::temp_dir().join(format!("faultline-java-{tag:016x}"));
    let io = |e: std::io::Error| DbError::Setup {
        system,
        what: format!("cannot write {}: {e}", path.display()),
    };
    if std::fs::read_to_string(&path).ok().as_deref() != Some(body.as_str()) {
        let partial = path.with_extension(format!("{}.partial", std::process::id()));
        std::fs::write(&partial, &body).map_err(io)?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        std::fs::rename(&partial, &path).map_err(io)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_holds_the_jvm_its_libraries_and_a_java_on_the_path() {
        let files = image_files("test").expect("a JVM is installed (default-jre-headless)");
        let in_image: Vec<&Path> = files.iter().map(|(_, i)| i.as_path()).collect();
        assert!(in_image.contains(&Path::new(IMAGE_JAVA)), "{in_image:?}");
        assert!(
            in_image.iter().any(|p| p.ends_with("lib/server/libjvm.so")),
            "{in_image:?}"
        );
        assert!(
            in_image.iter().any(|p| p.ends_with("lib/modules")),
            "{in_image:?}"
        );
        assert!(
            in_image.iter().any(|p| p.ends_with("libc.so.6")),
            "the C library libjvm loads: {in_image:?}"
        );
        assert!(
            !in_image
                .iter()
                .any(|p| p.components().any(|c| c.as_os_str() == "jmods")),
            "{in_image:?}"
        );
        for (host, _) in &files {
            assert!(host.is_file(), "{} is a regular file", host.display());
        }
        let (script, _) = files
            .iter()
            .find(|(_, i)| i == Path::new(IMAGE_JAVA))
            .unwrap();
        let body = std::fs::read_to_string(script).unwrap();
        assert!(body.starts_with("#!/bin/sh\nexec /"), "{body}");
    }
}
