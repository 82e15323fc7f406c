//! Reading memory-mapped weights into memory at load time.
//!
//! Weights are zero-copy views of memory-mapped files, so without this the operating system
//! reads each page from disk the first time a kernel touches it. For a dense model that makes
//! the first token slow; for a mixture of experts it lasts much longer, because an expert's
//! pages are first touched whenever a token first selects it, hundreds of tokens in. Each first
//! touch of a page is also a page fault. llama.cpp reads its mapped file at load for the same
//! reason (`MAP_POPULATE`). This is that, with progress.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use jing_tensor::Bytes;

/// Bytes prefaulted per call: small enough for a smooth progress bar, large enough that the
/// call overhead is nothing.
const CHUNK: usize = 64 << 20;

/// Reads every byte of `maps` into memory and maps it into this process, on up to `threads`
/// threads (a fast disk serves several requests at once). `progress` is told the bytes done
/// after each chunk. Bytes that are not a mapped file are skipped.
pub fn prefault(maps: &[Bytes], threads: usize, progress: &(dyn Fn(u64) + Sync)) -> io::Result<()> {
    // Every (map, chunk) pair, claimed in order by the threads.
    let chunks: Vec<(usize, usize)> = maps
        .iter()
        .enumerate()
        .filter(|(_, m)| m.is_mapped())
        .flat_map(|(i, m)| (0..m.len()).step_by(CHUNK).map(move |at| (i, at)))
        .collect();
    let next = AtomicUsize::new(0);
    let work = || -> io::Result<()> {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(i, at)) = chunks.get(k) else {
                return Ok(());
            };
            let len = CHUNK.min(maps[i].len() - at);
            maps[i].slice(at..at + len).prefault()?;
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
    })
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
        prefault(&maps, 3, &|n| {
            done.fetch_add(n as usize, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(
            done.load(Ordering::Relaxed),
            len - 5,
            "the mapped bytes, once each"
        );
        assert!(maps[0].as_slice().iter().all(|&b| b == 7));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn available_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available_memory().is_some_and(|b| b > 0));
        }
    }
}
