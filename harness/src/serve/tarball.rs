//! A run directory as a POSIX ustar archive, built in memory: runs are bounded (history
//! size limits, node logs capped by the collectors), and the archive is refused past
//! [`MAX_TARBALL_BYTES`] rather than grown without end.

use std::path::Path;

/// The largest archive served.
pub const MAX_TARBALL_BYTES: u64 = 1 << 30;
/// Files one archive may hold.
pub const MAX_FILES: usize = 100_000;
const BLOCK: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the run is larger than {MAX_TARBALL_BYTES} bytes")]
    TooLarge,
    #[error("the run has more than {MAX_FILES} files")]
    TooManyFiles,
    #[error("{0}: a path longer than ustar allows")]
    LongPath(String),
}

/// `dir` as a tar archive whose entries sit under `prefix/`. Symbolic links are skipped:
/// nothing outside the run is ever archived.
pub fn archive(dir: &Path, prefix: &str) -> Result<Vec<u8>, TarError> {
    let mut files = Vec::new();
    collect(dir, prefix, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for (name, path, is_dir) in files {
        let data = if is_dir {
            Vec::new()
        } else {
            std::fs::read(&path).map_err(|e| TarError::Io(path.display().to_string(), e))?
        };
        if out.len() as u64 + data.len() as u64 + 2 * BLOCK as u64 > MAX_TARBALL_BYTES {
            return Err(TarError::TooLarge);
        }
        out.extend_from_slice(&header(&name, data.len() as u64, is_dir)?);
        out.extend_from_slice(&data);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
    Ok(out)
}

fn collect(
    dir: &Path,
    name: &str,
    out: &mut Vec<(String, std::path::PathBuf, bool)>,
) -> Result<(), TarError> {
    out.push((format!("{name}/"), dir.to_path_buf(), true));
    let entries = std::fs::read_dir(dir).map_err(|e| TarError::Io(dir.display().to_string(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TarError::Io(dir.display().to_string(), e))?;
        if out.len() >= MAX_FILES {
            return Err(TarError::TooManyFiles);
        }
        let kind = entry
            .file_type()
            .map_err(|e| TarError::Io(entry.path().display().to_string(), e))?;
        let child = format!("{name}/{}", entry.file_name().to_string_lossy());
        if kind.is_dir() {
            collect(&entry.path(), &child, out)?;
        } else if kind.is_file() {
            out.push((child, entry.path(), false));
        }
    }
    Ok(())
}

/// One ustar header block.
fn header(name: &str, size: u64, is_dir: bool) -> Result<[u8; BLOCK], TarError> {
    let mut h = [0u8; BLOCK];
    let bytes = name.as_bytes();
    // ustar splits long names into a 155-byte prefix and a 100-byte name at a slash.
    let (prefix, base) = if bytes.len() <= 100 {
        (&[][..], bytes)
    } else {
        let split = (0..bytes.len())
            .rev()
            .find(|&i| bytes[i] == b'/' && i <= 155 && bytes.len() - i - 1 <= 100 && i > 0)
            .ok_or_else(|| TarError::LongPath(name.to_string()))?;
        (&bytes[..split], &bytes[split + 1..])
    };
    h[..base.len()].copy_from_slice(base);
    let mode: &[u8] = if is_dir { b"0000755\0" } else { b"0000644\0" };
    h[100..108].copy_from_slice(mode);
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = if is_dir { b'5' } else { b'0' };
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    // The checksum counts its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn tar_reads_back_every_file_and_skips_links() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join("nodes/n1")).unwrap();
        std::fs::write(run.join("history.jsonl"), "{}\n").unwrap();
        std::fs::write(run.join("nodes/n1/node.log"), vec![b'x'; 1000]).unwrap();
        let deep = format!("nodes/{}", "d".repeat(90));
        std::fs::create_dir_all(run.join(&deep)).unwrap();
        std::fs::write(run.join(&deep).join("long-name.log"), "y").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", run.join("escape")).unwrap();
        let bytes = archive(&run, "t-1").unwrap();
        assert_eq!(bytes.len() % BLOCK, 0);
        let tar_path = dir.path().join("run.tar");
        std::fs::write(&tar_path, &bytes).unwrap();
        let out = Command::new("tar")
            .arg("-tf")
            .arg(&tar_path)
            .output()
            .expect("tar from Debian's tar");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = String::from_utf8_lossy(&out.stdout);
        for want in [
            "t-1/history.jsonl",
            "t-1/nodes/n1/node.log",
            &format!("t-1/{deep}/long-name.log"),
        ] {
            assert!(listed.lines().any(|l| l == want), "{want} in {listed}");
        }
        assert!(!listed.contains("escape"), "{listed}");
        let x = dir.path().join("x");
        std::fs::create_dir_all(&x).unwrap();
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&tar_path)
            .arg("-C")
            .arg(&x)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read(x.join("t-1/nodes/n1/node.log"))
                .unwrap()
                .len(),
            1000
        );
    }
}
