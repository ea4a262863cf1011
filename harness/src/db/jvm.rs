//! A Java runtime for the docker backend's node image: the JVM home that `java` on the
//! controller's PATH resolves to (less what a server never loads), the shared libraries its
//! native parts load, and a `java` on the image's PATH. The JVM finds its home from its own
//! path, so the launcher keeps its place under that home and the image's `java` is a
//! one-line script.

use super::image::{self, ImageFile};
use super::DbError;
use std::path::{Path, PathBuf};

/// Where the image's `java` goes: first on the image's PATH.
const IMAGE_JAVA: &str = "/usr/local/bin/java";
/// Parts of a JDK home a server never loads.
const SKIPPED: &[&str] = &[
    "jmods", "include", "man", "legal", "docs", "demo", "src.zip",
];

/// The JVM's files, their libraries and the `java` script.
pub fn image_files(system: &'static str) -> Result<Vec<ImageFile>, DbError> {
    let setup = |what: String| DbError::Setup { system, what };
    let java = image::on_path("java").ok_or_else(|| {
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
    let mut files = image::tree(system, &home, SKIPPED)?;
    files.extend(image::libraries(system, &files, &home)?);
    let script = format!("#!/bin/sh\nexec {} \"$@\"\n", launcher.display());
    files.push((
        image::host_file(system, &script, 0o755)?,
        PathBuf::from(IMAGE_JAVA),
    ));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_holds_the_jvm_its_libraries_and_a_java_on_the_path() {
        let files = image_files("test").expect("a JVM is installed (default-jre-headless)");
        let in_image: Vec<&Path> = files.iter().map(|(_, i)| i.as_path()).collect();
        assert!(in_image.contains(&Path::new(IMAGE_JAVA)), "{in_image:?}");
        for part in ["lib/server/libjvm.so", "lib/modules", "libc.so.6"] {
            assert!(
                in_image.iter().any(|p| p.ends_with(part)),
                "{part}: {in_image:?}"
            );
        }
        assert!(
            !in_image
                .iter()
                .any(|p| p.components().any(|c| c.as_os_str() == "jmods")),
            "{in_image:?}"
        );
        let (script, _) = files
            .iter()
            .find(|(_, i)| i == Path::new(IMAGE_JAVA))
            .unwrap();
        let body = std::fs::read_to_string(script).unwrap();
        assert!(body.starts_with("#!/bin/sh\nexec /"), "{body}");
    }
}
