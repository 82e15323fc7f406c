//! Reading memory-mapped weights into memory at load time.
//!
//! Weights are zero-copy views of memory-mapped files, so without this the operating system
//! reads each page from disk the first time a kernel touches it. For a dense model that makes
//! the first token slow; for a mixture of experts it lasts much longer, because an expert's
//! pages are first touched whenever a token first selects it, hundreds of tokens in. Each first
//! touch of a page is also a page fault. llama.cpp reads its mapped file at load for the same
//! reason (`MAP_POPULATE`). This is that, with progress.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use jing_tensor::Bytes;

/// Bytes prefaulted per call: small enough for a smooth progress bar, large enough that the
/// call overhead is nothing. A multiple of the huge page, so that chunks starting at aligned
/// addresses move into huge pages whole.
const CHUNK: usize = 64 << 20;

/// Where the weights live once read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// In the page cache, mapped into this process (shared with other processes, evictable).
    Mapped,
    /// Copied into this process's anonymous memory in 2 MiB pages (`--no-mmap`; see
    /// [`jing_tensor::huge_pages`]).
    HugePages,
}

/// Reads every byte of `maps` into memory and maps it into this process, on up to `threads`
/// threads (a fast disk serves several requests at once); with [`Residency::HugePages`] also
/// moves it into huge pages. `progress` is told the bytes done after each chunk. Bytes that are
/// not a mapped file are skipped. Returns the bytes moved into huge pages.
///
/// After an error with [`Residency::HugePages`], some weights may be unmapped: drop the model.
pub fn prefault(
    maps: &[Bytes],
    threads: usize,
    residency: Residency,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<u64> {
    // Every (map, start, len) chunk, claimed in order by the threads. Chunks end at addresses
    // that are multiples of CHUNK, so that none splits a huge page.
    let chunks: Vec<(usize, usize, usize)> = maps
        .iter()
        .enumerate()
        .filter(|(_, m)| m.is_mapped())
        .flat_map(|(i, m)| {
            let base = m.as_slice().as_ptr() as usize;
            let mut at = 0;
            std::iter::from_fn(move || {
                if at >= m.len() {
                    return None;
                }
                let end = ((base + at + 1).next_multiple_of(CHUNK) - base).min(m.len());
                let chunk = (i, at, end - at);
                at = end;
                Some(chunk)
            })
        })
        .collect();
    let next = AtomicUsize::new(0);
    let moved = AtomicU64::new(0);
    let work = || -> io::Result<()> {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(i, at, len)) = chunks.get(k) else {
                return Ok(());
            };
            let chunk = maps[i].slice(at..at + len);
            chunk.prefault()?;
            if residency == Residency::HugePages {
                let n = chunk.move_to_huge_pages()?;
                moved.fetch_add(n as u64, Ordering::Relaxed);
            }
            progress(len as u64);
        }
    };
    let threads = threads.clamp(1, chunks.len().max(1));
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut result = work();
        for h in others {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a prefault thread panicked")));
            result = result.and(r);
        }
        result
    })?;
    Ok(moved.load(Ordering::Relaxed))
}

/// The memory this machine can give without swapping (`MemAvailable` of `/proc/meminfo`: free
/// memory plus the page cache it can drop, which includes a model file already cached), when
/// known.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn prefault_reads_every_mapped_byte_and_reports_them() {
        let dir = std::env::temp_dir().join(format!("jing-prefault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("weights.bin");
        // Two chunks and a tail, so that threads split one map.
        let len = 2 * CHUNK + 12_345;
        std::fs::write(&path, vec![7u8; len]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the test owns the file and does not modify it while it is mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let mapped = Bytes::new(Arc::new(map), 0..len);
        let in_memory = Bytes::from_vec(vec![1; 1000]);
        assert!(mapped.is_mapped() && !in_memory.is_mapped());
        let done = AtomicUsize::new(0);
        let maps = [mapped.slice(5..len), in_memory];
        let moved = prefault(&maps, 3, Residency::Mapped, &|n| {
            done.fetch_add(n as usize, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(moved, 0);
        assert_eq!(
            done.load(Ordering::Relaxed),
            len - 5,
            "the mapped bytes, once each"
        );
        assert!(maps[0].as_slice().iter().all(|&b| b == 7));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn prefault_into_huge_pages_keeps_every_byte() {
        let dir = std::env::temp_dir().join(format!("jing-prefault-huge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("weights.bin");
        // A chunk and a tail, in a pattern that shows a shifted or lost page.
        let len = CHUNK + 3 * jing_tensor::huge_pages::HUGE_PAGE + 999;
        let data: Vec<u8> = (0..len).map(|i| (i ^ (i >> 12)) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the test owns the file and does not modify it while it is mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let mapped = Bytes::new(Arc::new(map), 0..len);
        let done = AtomicUsize::new(0);
        let moved = prefault(
            std::slice::from_ref(&mapped),
            2,
            Residency::HugePages,
            &|n| {
                done.fetch_add(n as usize, Ordering::Relaxed);
            },
        )
        .unwrap();
        assert_eq!(done.load(Ordering::Relaxed), len);
        // All but the unaligned ends (under a huge page each) moved.
        let huge = jing_tensor::huge_pages::HUGE_PAGE as u64;
        assert!(moved + 2 * huge > len as u64, "moved {moved} of {len}");
        assert!(mapped.as_slice() == &data[..], "the bytes changed");
        drop(mapped);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn available_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available_memory().is_some_and(|b| b > 0));
        }
    }
}
