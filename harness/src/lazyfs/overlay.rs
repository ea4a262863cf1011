//! What one file has been told since it was last synced: the pages written and the size
//! set, kept off the backing file until `fsync`, so that dropping them reverts the file to
//! its last-synced contents exactly, size included.
//!
//! The backing file holds the synced contents only. Reads merge: a written page wins; other
//! bytes come from the backing file up to `synced_valid` (a truncation since the last sync
//! hides what lay beyond it, even if the file grew again), and are zero past that.
//!
//! Invariants: `synced_valid <= size`; every byte at or past `size` in a held page is zero.

use std::collections::BTreeMap;
use std::io;

/// The unit of unsynced data: a write to part of a page fills the rest from the backing file.
pub const PAGE_BYTES: u64 = 4096;

/// The synced contents an overlay reads through to.
pub trait Backing {
    /// Reads at `offset`, like `pread`: fewer bytes than asked only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl Backing for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

/// A file's changes since its last sync.
#[derive(Debug)]
pub struct Overlay {
    /// The size the file has now.
    size: u64,
    /// How many bytes of the backing file still show through.
    synced_valid: u64,
    /// Page index -> the page's bytes as written.
    pages: BTreeMap<u64, Box<[u8]>>,
}

impl Overlay {
    /// No changes yet over a backing file of `synced_len` bytes.
    pub fn new(synced_len: u64) -> Overlay {
        Overlay {
            size: synced_len,
            synced_valid: synced_len,
            pages: BTreeMap::new(),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Memory held for unsynced data: whole pages.
    pub fn held_bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE_BYTES
    }

    /// Reads `len` bytes at `offset` as the file now is (short at the end of the file).
    pub fn read(&self, backing: &dyn Backing, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let end = self.size.min(offset.saturating_add(len as u64));
        let mut out = vec![0u8; (end - offset) as usize];
        // What the backing file still shows, in one read.
        let through = self.synced_valid.min(end);
        if offset < through {
            let want = &mut out[..(through - offset) as usize];
            read_full(backing, want, offset)?;
        }
        let (first, last) = (offset / PAGE_BYTES, (end - 1) / PAGE_BYTES);
        for (&index, page) in self.pages.range(first..=last) {
            let page_start = index * PAGE_BYTES;
            let from = offset.max(page_start);
            let to = end.min(page_start + PAGE_BYTES);
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&page[(from - page_start) as usize..(to - page_start) as usize]);
        }
        Ok(out)
    }

    /// Writes `data` at `offset`; the file grows to cover it.
    pub fn write(&mut self, backing: &dyn Backing, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
        if data.is_empty() {
            return Ok(());
        }
        let (first, last) = (offset / PAGE_BYTES, (end - 1) / PAGE_BYTES);
        for index in first..=last {
            let page_start = index * PAGE_BYTES;
            if !self.pages.contains_key(&index) {
                let page = self.load_page(backing, index)?;
                self.pages.insert(index, page);
            }
            let page = self.pages.get_mut(&index).expect("inserted above");
            let from = offset.max(page_start);
            let to = end.min(page_start + PAGE_BYTES);
            page[(from - page_start) as usize..(to - page_start) as usize]
                .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
        }
        self.size = self.size.max(end);
        Ok(())
    }

    /// The page as the file shows it now, without any held page.
    fn load_page(&self, backing: &dyn Backing, index: u64) -> io::Result<Box<[u8]>> {
        let mut page = vec![0u8; PAGE_BYTES as usize].into_boxed_slice();
        let page_start = index * PAGE_BYTES;
        let through = self.synced_valid.min(page_start + PAGE_BYTES);
        if page_start < through {
            read_full(
                backing,
                &mut page[..(through - page_start) as usize],
                page_start,
            )?;
        }
        Ok(page)
    }

    /// Sets the size: truncating drops what lay beyond (the backing file's bytes there stay
    /// hidden even if the file grows again); growing reads as zeros.
    pub fn set_size(&mut self, size: u64) {
        if size < self.size {
            let keep = size.div_ceil(PAGE_BYTES);
            self.pages.split_off(&keep);
            if size % PAGE_BYTES != 0 {
                if let Some(page) = self.pages.get_mut(&(size / PAGE_BYTES)) {
                    page[(size % PAGE_BYTES) as usize..].fill(0);
                }
            }
            self.synced_valid = self.synced_valid.min(size);
        }
        self.size = size;
    }

    /// Whether the file is as the backing file has it.
    pub fn is_clean(&self, synced_len: u64) -> bool {
        self.pages.is_empty() && self.size == synced_len && self.synced_valid == synced_len
    }

    /// Makes the backing file hold what the file is now. The caller syncs it.
    pub fn write_back(&self, file: &std::fs::File) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let synced_len = file.metadata()?.len();
        if self.synced_valid < synced_len {
            // Cut first, so that growing again below leaves zeros, not old bytes.
            file.set_len(self.synced_valid)?;
        }
        for (&index, page) in &self.pages {
            let page_start = index * PAGE_BYTES;
            if page_start >= self.size {
                break;
            }
            let len = (self.size - page_start).min(PAGE_BYTES) as usize;
            file.write_all_at(&page[..len], page_start)?;
        }
        file.set_len(self.size)
    }
}

/// Reads all of `buf` or up to the backing file's end, zero-filling the rest.
fn read_full(backing: &dyn Backing, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match backing.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::rng::Rng;
    use std::cell::RefCell;

    /// An in-memory backing file.
    struct Mem(RefCell<Vec<u8>>);

    impl Backing for Mem {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let v = self.0.borrow();
            if offset >= v.len() as u64 {
                return Ok(0);
            }
            let n = buf.len().min(v.len() - offset as usize);
            buf[..n].copy_from_slice(&v[offset as usize..offset as usize + n]);
            Ok(n)
        }
    }

    fn read_all(o: &Overlay, b: &Mem) -> Vec<u8> {
        o.read(b, 0, o.size() as usize + 10).unwrap()
    }

    #[test]
    fn writes_show_through_reads_and_leave_the_backing_untouched() {
        let b = Mem(RefCell::new(b"synced contents".to_vec()));
        let mut o = Overlay::new(15);
        o.write(&b, 7, b"CONTENTS and more").unwrap();
        assert_eq!(read_all(&o, &b), b"synced CONTENTS and more");
        assert_eq!(o.size(), 24);
        assert_eq!(
            &*b.0.borrow(),
            b"synced contents",
            "nothing reached the backing"
        );
        assert_eq!(o.held_bytes(), PAGE_BYTES);
        assert_eq!(o.read(&b, 20, 100).unwrap(), b"more");
        assert!(o.read(&b, 24, 10).unwrap().is_empty());
    }

    #[test]
    fn truncation_hides_old_bytes_even_when_the_file_grows_again() {
        let b = Mem(RefCell::new(vec![7u8; 10_000]));
        let mut o = Overlay::new(10_000);
        o.set_size(100);
        o.set_size(9_000);
        let all = read_all(&o, &b);
        assert_eq!(all.len(), 9_000);
        assert!(all[..100].iter().all(|&x| x == 7));
        assert!(
            all[100..].iter().all(|&x| x == 0),
            "no old bytes past the cut"
        );
        o.write(&b, 8_000, b"x").unwrap();
        assert_eq!(read_all(&o, &b)[7_999..8_001], [0, b'x']);
    }

    #[test]
    fn a_truncation_inside_a_written_page_zeroes_its_tail() {
        let b = Mem(RefCell::new(Vec::new()));
        let mut o = Overlay::new(0);
        o.write(&b, 0, &[1u8; 5000]).unwrap();
        o.set_size(10);
        o.set_size(5000);
        let all = read_all(&o, &b);
        assert!(all[..10].iter().all(|&x| x == 1));
        assert!(all[10..].iter().all(|&x| x == 0));
        assert_eq!(o.held_bytes(), PAGE_BYTES, "the second page is gone");
    }

    /// Random writes and size changes against a plain byte vector as the reference; then the
    /// write-back makes the backing file equal to it.
    #[test]
    fn random_operations_match_a_plain_file_and_write_back_exactly() {
        let dir = std::env::temp_dir().join(format!("faultline-overlay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for seed in 0..20 {
            let mut rng = Rng::new(seed);
            let initial: Vec<u8> = (0..rng.below(20_000)).map(|i| i as u8 | 1).collect();
            let path = dir.join(format!("f{seed}"));
            std::fs::write(&path, &initial).unwrap();
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let mut o = Overlay::new(initial.len() as u64);
            let mut model = initial.clone();
            for step in 0..60 {
                if rng.below(4) == 0 {
                    let size = rng.below(30_000) as usize;
                    o.set_size(size as u64);
                    model.resize(size, 0);
                } else {
                    let off = rng.below(30_000) as usize;
                    let data: Vec<u8> = (0..1 + rng.below(9_000))
                        .map(|_| rng.below(256) as u8)
                        .collect();
                    o.write(&file, off as u64, &data).unwrap();
                    if model.len() < off + data.len() {
                        model.resize(off + data.len(), 0);
                    }
                    model[off..off + data.len()].copy_from_slice(&data);
                }
                let off = rng.below(model.len() as u64 + 1);
                let got = o.read(&file, off, 7_000).unwrap();
                let want = &model[off as usize..model.len().min(off as usize + 7_000)];
                assert_eq!(got, want, "seed {seed} step {step}");
            }
            assert_eq!(std::fs::read(&path).unwrap(), initial, "backing untouched");
            o.write_back(&file).unwrap();
            assert_eq!(
                std::fs::read(&path).unwrap(),
                model,
                "seed {seed} write-back"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
