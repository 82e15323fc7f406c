//! Moving read-in weights from a file mapping into anonymous memory backed by 2 MiB pages, at
//! the same addresses (`--no-mmap`).
//!
//! Why: decode reads every active weight once per token, and a mixture of experts touches its
//! experts in no predictable order. When a big file's page cache sits in 4 KiB pages (the usual
//! state after the cache has lived under memory pressure), its millions of page-table entries
//! do not fit in the caches, so every expert touched costs TLB misses whose page walks go to
//! DRAM. The same bytes in 2 MiB pages need 512 times fewer entries. A file mapping cannot be
//! made to use 2 MiB pages on demand (that needs `CONFIG_READ_ONLY_THP_FOR_FS`, and depends on
//! the page cache's history), but anonymous memory can (`MADV_HUGEPAGE`).
//!
//! How: for each 2 MiB-aligned stretch, map fresh anonymous memory, ask for huge pages, copy the
//! bytes in, make it read-only, and `mremap` it over the stretch of the file mapping. The
//! kernel does the replacement under the address space's write lock, and the bytes are the
//! same before and after, so views of the weights stay valid throughout, even while read.

use std::io;

/// `madvise` advice (Linux UAPI, 6.1+): collapse the range into transparent huge pages now.
#[cfg(target_os = "linux")]
const MADV_COLLAPSE: libc::c_int = 25;

/// The size of a transparent huge page on x86-64 and on aarch64 with 4 KiB base pages.
pub const HUGE_PAGE: usize = 2 << 20;

/// Moves the whole 2 MiB-aligned huge pages inside `bytes` (part of a private or shared
/// read-only file mapping) into anonymous memory with `MADV_HUGEPAGE`, at the same addresses.
/// Returns the bytes moved (the unaligned ends, less than 2 MiB each, stay mapped).
///
/// On an error, the stretch being moved may be left unmapped: the caller must stop using the
/// weights (drop them), not continue.
#[cfg(target_os = "linux")]
pub fn move_to_huge_pages(bytes: &[u8]) -> io::Result<usize> {
    let start = (bytes.as_ptr() as usize).next_multiple_of(HUGE_PAGE);
    let end = (bytes.as_ptr() as usize + bytes.len()) / HUGE_PAGE * HUGE_PAGE;
    if end <= start {
        return Ok(0);
    }
    let len = end - start;
    let fresh = AlignedAnon::new(len)?;
    // SAFETY: `fresh` is a new private mapping of `len` writable bytes that nothing else sees;
    // `start..end` lies inside `bytes`, which is readable for the borrow; the two cannot
    // overlap because `fresh` was just mapped at an address the kernel chose.
    unsafe {
        // Huge pages where the kernel can give them; refusing (THP off) only costs the gain.
        libc::madvise(fresh.addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        std::ptr::copy_nonoverlapping(start as *const u8, fresh.addr as *mut u8, len);
        // The copy's page faults take a huge page only where one is free at that moment.
        // MADV_COLLAPSE (Linux 6.1) compacts memory to turn the rest into huge pages now,
        // whatever the THP settings say about faults; older kernels refuse it, harmlessly.
        libc::madvise(fresh.addr as *mut libc::c_void, len, MADV_COLLAPSE);
        if libc::mprotect(fresh.addr as *mut libc::c_void, len, libc::PROT_READ) != 0 {
            return Err(io::Error::last_os_error());
        }
        // Drop the file's cached pages that only this process maps: they are copied, and two
        // copies of a model rarely fit. Freeing them as we go also gives the next chunks'
        // huge pages free memory to come from. A reader in between would read the same
        // bytes from disk again. Pages other processes map stay; refusing (before Linux 5.4)
        // only costs memory.
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT);
    }
    // SAFETY: moves the mapping of `fresh` (owned here, read-only, the same bytes as
    // `start..end`) over `start..end`, which the caller's `bytes` covers. The kernel replaces
    // the old pages with the new ones under the address space's write lock, so a concurrent
    // reader of the weights sees either the file's bytes or the copy's, which are equal. The
    // kernel checks map-count limits before it unmaps the destination (`mremap_to`), so a
    // failure here leaves the file mapping in place except in the kernel running out of memory.
    let moved = unsafe {
        libc::mremap(
            fresh.addr as *mut libc::c_void,
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            start as *mut libc::c_void,
        )
    };
    if moved == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // The pages now live at `start`; `fresh` no longer has anything to unmap.
    std::mem::forget(fresh);
    Ok(len)
}

#[cfg(not(target_os = "linux"))]
pub fn move_to_huge_pages(_bytes: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "moving weights into huge pages needs Linux (mremap)",
    ))
}

/// A private anonymous mapping of `len` bytes at a 2 MiB-aligned address (huge pages need the
/// alignment), unmapped on drop.
#[cfg(target_os = "linux")]
struct AlignedAnon {
    addr: usize,
    len: usize,
}

#[cfg(target_os = "linux")]
impl AlignedAnon {
    fn new(len: usize) -> io::Result<AlignedAnon> {
        // Map 2 MiB more than asked, then unmap the ends around the aligned middle.
        let padded = len + HUGE_PAGE;
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses; it aliases
        // nothing.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                padded,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let raw = raw as usize;
        let addr = raw.next_multiple_of(HUGE_PAGE);
        let head = addr - raw;
        let tail = padded - head - len;
        // SAFETY: both ends are parts of the mapping just made, outside `addr..addr + len`.
        unsafe {
            if head > 0 {
                libc::munmap(raw as *mut libc::c_void, head);
            }
            if tail > 0 {
                libc::munmap((addr + len) as *mut libc::c_void, tail);
            }
        }
        Ok(AlignedAnon { addr, len })
    }
}

#[cfg(target_os = "linux")]
impl Drop for AlignedAnon {
    fn drop(&mut self) {
        // SAFETY: the mapping is owned by this value and no view of it escaped.
        unsafe {
            libc::munmap(self.addr as *mut libc::c_void, self.len);
        }
    }
}

/// Asks for transparent huge pages (`MADV_HUGEPAGE`) for the whole 2 MiB-aligned pages inside
/// `buf`, memory not yet written (a `Vec`'s spare capacity), so that the pages its first writes
/// fault in are 2 MiB where the kernel has them (with THP in `madvise` mode, the common default,
/// anonymous memory gets them only when asked). Returns whether the kernel took the advice;
/// false off Linux or for a buffer too small to hold a whole huge page.
pub fn advise_huge_pages<T>(buf: &[std::mem::MaybeUninit<T>]) -> bool {
    #[cfg(target_os = "linux")]
    {
        let at = buf.as_ptr() as usize;
        let start = at.next_multiple_of(HUGE_PAGE);
        let end = (at + std::mem::size_of_val(buf)) / HUGE_PAGE * HUGE_PAGE;
        if end <= start {
            return false;
        }
        // SAFETY: the range lies within `buf`'s memory, which the caller owns; the advice
        // changes only the size of the pages faulted in later, never the contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = buf;
        false
    }
}

/// Bytes that weights rearranged in memory are carved from: 2 MiB-aligned anonymous chunks of
/// [`ARENA_CHUNK`] bytes advised into huge pages, each cut into consecutive pieces, one per
/// weight.
///
/// Why: a weight in a buffer of its own gets huge pages only for the whole 2 MiB-aligned
/// stretches inside it, so one of a few MiB (a mixture of experts' expert, a `[1536, 1536]`
/// projection) sat mostly or wholly in 4 KiB pages. The interleaved weights of the
/// V2-Lite-shaped 4-layer `Q4_K_M` file were 340 of 1390 MB in huge pages, those of the
/// Qwen2.5-1.5B-shaped one 690 of 970 MB. Streaming from 4 KiB pages cost one Zen 4 thread a
/// tenth or more: `[1536, 1536]` `Q4_K` matvecs ran at 24.4 GB/s in buffers of their own, and
/// larger ones faster as more of them fell in huge pages (27.3 GB/s for `[3072, 1536]`, 30.1
/// for `[12288, 1536]`).
///
/// A chunk lives while any of its pieces does (each piece holds it), and the arena only points
/// at its current chunk weakly, so dropping a model's weights returns their memory.
pub struct HugeArena {
    current: std::sync::Mutex<Option<(std::sync::Weak<Chunk>, usize)>>,
}

/// Bytes per arena chunk: 16 huge pages. A piece larger than half a chunk gets a chunk of its
/// own (rounded up to whole huge pages), so no more than half a chunk is left unused at a time.
pub const ARENA_CHUNK: usize = 32 << 20;

/// Pieces start at multiples of this (a cache line).
const PIECE_ALIGN: usize = 64;

/// One chunk: a mapping advised into huge pages (heap memory where there is no `mmap`).
struct Chunk {
    #[cfg(target_os = "linux")]
    map: AlignedAnon,
    #[cfg(not(target_os = "linux"))]
    heap: *mut [u8],
}

// SAFETY: the heap memory is owned by the chunk and freed once, on drop; the pieces that
// write to it write disjoint ranges (see `ArenaBuf`).
#[cfg(not(target_os = "linux"))]
unsafe impl Send for Chunk {}
// SAFETY: as above.
#[cfg(not(target_os = "linux"))]
unsafe impl Sync for Chunk {}

#[cfg(not(target_os = "linux"))]
impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: `heap` came from `Box::into_raw` in `Chunk::new` and is freed only here.
        drop(unsafe { Box::from_raw(self.heap) });
    }
}

impl Chunk {
    fn new(len: usize) -> io::Result<Chunk> {
        #[cfg(target_os = "linux")]
        {
            let map = AlignedAnon::new(len)?;
            // SAFETY: the range is the fresh mapping this chunk owns; the advice changes only the
            // size of the pages its first writes fault in. Refusing (THP off) costs the gain only.
            unsafe { libc::madvise(map.addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
            Ok(Chunk { map })
        }
        #[cfg(not(target_os = "linux"))]
        Ok(Chunk {
            heap: Box::into_raw(vec![0u8; len].into_boxed_slice()),
        })
    }

    fn base(&self) -> *mut u8 {
        #[cfg(target_os = "linux")]
        {
            self.map.addr as *mut u8
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.heap.cast::<u8>()
        }
    }
}

/// A piece of an arena chunk, written once through [`ArenaBuf::as_mut_slice`] and then read as
/// [`crate::Bytes`] ([`ArenaBuf::freeze`]). Zeroed when handed out.
pub struct ArenaBuf {
    chunk: std::sync::Arc<Chunk>,
    at: usize,
    len: usize,
}

// SAFETY: the piece's bytes belong to it alone (the arena hands out disjoint ranges, under its
// lock), its chunk stays mapped while it holds it, and `&mut self` guards the writes.
unsafe impl Send for ArenaBuf {}
// SAFETY: shared access only reads (`as_bytes`); writing needs `&mut self`.
unsafe impl Sync for ArenaBuf {}

impl ArenaBuf {
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `at..at + len` lies in the chunk, which this piece keeps mapped, and no other
        // piece covers it; `&mut self` makes this the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.chunk.base().add(self.at), self.len) }
    }

    /// The written piece as read-only bytes.
    pub fn freeze(self) -> crate::Bytes {
        let len = self.len;
        crate::Bytes::new(std::sync::Arc::new(self), 0..len)
    }
}

impl crate::bytes::ByteOwner for ArenaBuf {
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: as in `as_mut_slice`; once frozen the piece is never written again.
        unsafe { std::slice::from_raw_parts(self.chunk.base().add(self.at), self.len) }
    }
}

impl HugeArena {
    pub const fn new() -> HugeArena {
        HugeArena {
            current: std::sync::Mutex::new(None),
        }
    }

    /// The arena of this process's rearranged weights.
    pub fn global() -> &'static HugeArena {
        static ARENA: HugeArena = HugeArena::new();
        &ARENA
    }

    /// A zeroed piece of `len` bytes, from the current chunk while it has room.
    pub fn alloc(&self, len: usize) -> io::Result<ArenaBuf> {
        use std::sync::Arc;
        if len > ARENA_CHUNK / 2 {
            let chunk = Arc::new(Chunk::new(len.next_multiple_of(HUGE_PAGE))?);
            return Ok(ArenaBuf { chunk, at: 0, len });
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((weak, used)) = current.as_mut() {
            if let Some(chunk) = weak.upgrade() {
                let at = used.next_multiple_of(PIECE_ALIGN);
                if at + len <= ARENA_CHUNK {
                    *used = at + len;
                    return Ok(ArenaBuf { chunk, at, len });
                }
            }
        }
        let chunk = Arc::new(Chunk::new(ARENA_CHUNK)?);
        *current = Some((Arc::downgrade(&chunk), len));
        Ok(ArenaBuf { chunk, at: 0, len })
    }
}

impl Default for HugeArena {
    fn default() -> HugeArena {
        HugeArena::new()
    }
}

/// An empty vector with room for `capacity` elements, advised into 2 MiB pages
/// ([`advise_huge_pages`]) before anything is written to it: for buffers streamed as weights
/// are, where 4 KiB pages would make page walks part of what is measured.
pub fn vec_in_huge_pages<T>(capacity: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(capacity);
    advise_huge_pages(v.spare_capacity_mut());
    v
}

/// Bytes of this process's anonymous memory in transparent huge pages (`AnonHugePages` of
/// `/proc/self/smaps_rollup`), when the system says.
pub fn anon_huge_page_bytes() -> Option<u64> {
    rollup_bytes("AnonHugePages")
}

/// Bytes of this process's file mappings mapped in 2 MiB pages (`FilePmdMapped` of
/// `/proc/self/smaps_rollup`: page-cache folios of 2 MiB mapped whole), when the system says.
pub fn file_huge_page_bytes() -> Option<u64> {
    rollup_bytes("FilePmdMapped")
}

fn rollup_bytes(field: &str) -> Option<u64> {
    smaps_field(
        &std::fs::read_to_string("/proc/self/smaps_rollup").ok()?,
        field,
    )
}

/// The value of `field` (a line `Field:   N kB`) of an smaps text, in bytes.
fn smaps_field(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(field))?;
    let mut words = line.split_whitespace().skip(1);
    let n: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(n * 1024)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Advice for a buffer not yet written: none for one too small to hold a whole huge page;
    /// for a large one, whatever the kernel does, the buffer then holds what is written to it.
    #[test]
    fn huge_page_advice_for_spare_capacity() {
        let mut small: Vec<u64> = Vec::with_capacity(1000);
        assert!(!advise_huge_pages(small.spare_capacity_mut()));
        let n = 3 * HUGE_PAGE / 8 + 17;
        let mut big: Vec<u64> = Vec::with_capacity(n);
        let advised = advise_huge_pages(big.spare_capacity_mut());
        big.extend((0..n as u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        assert!(big
            .iter()
            .enumerate()
            .all(|(i, &v)| v == (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        eprintln!("MADV_HUGEPAGE taken: {advised}");
    }

    /// Pieces are disjoint, zeroed and keep what was written; they come from 2 MiB-aligned
    /// chunks; a large piece gets a chunk of its own; a chunk whose pieces are all gone is
    /// not reused (it was unmapped).
    #[test]
    fn arena_pieces() {
        let arena = HugeArena::new();
        let sizes = [1000usize, 3 << 20, 64, 0, 20 << 20, 5 << 20, 777];
        let mut bufs: Vec<ArenaBuf> = sizes.iter().map(|&n| arena.alloc(n).unwrap()).collect();
        for (k, b) in bufs.iter_mut().enumerate() {
            let s = b.as_mut_slice();
            assert!(s.iter().all(|&v| v == 0), "piece {k} zeroed");
            s.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (i * 31 + k) as u8);
        }
        let starts: Vec<usize> = bufs
            .iter()
            .map(|b| b.chunk.base() as usize + b.at)
            .collect();
        for (k, b) in bufs.iter().enumerate() {
            assert_eq!(
                b.chunk.base() as usize % HUGE_PAGE,
                0,
                "chunk of piece {k} aligned"
            );
            assert_eq!(starts[k] % PIECE_ALIGN, 0, "piece {k} on a line");
            for (j, c) in bufs.iter().enumerate().filter(|&(j, _)| j != k) {
                let (a, e) = (starts[k], starts[k] + b.len);
                assert!(
                    e <= starts[j] || starts[j] + c.len <= a,
                    "pieces {k} and {j} overlap"
                );
            }
        }
        let big = &bufs[4];
        assert_eq!(
            (big.at, std::sync::Arc::strong_count(&big.chunk)),
            (0, 1),
            "own chunk"
        );
        let frozen: Vec<crate::Bytes> = bufs.into_iter().map(ArenaBuf::freeze).collect();
        for (k, b) in frozen.iter().enumerate() {
            assert_eq!(b.len(), sizes[k]);
            assert!(b
                .as_slice()
                .iter()
                .enumerate()
                .all(|(i, &v)| v == (i * 31 + k) as u8));
        }
        drop(frozen);
        // Every piece is gone: the next one starts a fresh chunk.
        let fresh = arena.alloc(10).unwrap();
        assert_eq!(fresh.at, 0);
    }

    #[test]
    fn smaps_fields_in_bytes() {
        let text = "7f00-7f10 ---p 00000000 00:00 0 [rollup]\nRss:  2048 kB\n\
                    AnonHugePages:   4096 kB\nFilePmdMapped:      0 kB\nShmemPmdMapped: 7 kB\n";
        assert_eq!(smaps_field(text, "AnonHugePages"), Some(4 << 20));
        assert_eq!(smaps_field(text, "FilePmdMapped"), Some(0));
        assert_eq!(smaps_field(text, "PmdMapped"), None, "whole names only");
        assert_eq!(smaps_field("Rss: 12 pages", "Rss"), None, "kB only");
    }

    #[test]
    fn moved_weights_keep_their_bytes_and_addresses() {
        let dir = std::env::temp_dir().join(format!("jing-huge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("weights.bin");
        // Three huge pages and a bit, in a pattern that shows any shifted or lost page.
        let len = 3 * HUGE_PAGE + 12_345;
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the test owns the file and does not modify it while it is mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let before = map.as_ptr();
        // Start inside the map so that the first aligned page is not at its start.
        let moved = move_to_huge_pages(&map[100..]).unwrap();
        let aligned_start = (map.as_ptr() as usize + 100).next_multiple_of(HUGE_PAGE);
        let aligned_end = (map.as_ptr() as usize + len) / HUGE_PAGE * HUGE_PAGE;
        assert_eq!(moved, aligned_end.saturating_sub(aligned_start));
        assert!(moved >= 2 * HUGE_PAGE, "moved {moved} bytes");
        assert_eq!(map.as_ptr(), before);
        assert!(map[..] == data[..], "the bytes changed");
        // Moving again (now anonymous memory) is harmless, and a slice too short for a whole
        // huge page moves nothing.
        move_to_huge_pages(&map[..]).unwrap();
        assert!(map[..] == data[..]);
        assert_eq!(move_to_huge_pages(&map[..HUGE_PAGE / 2]).unwrap(), 0);
        drop(map);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
