use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Something that owns bytes for as long as any view of them lives: a memory map, or a vector.
pub trait ByteOwner: Send + Sync + 'static {
    fn as_bytes(&self) -> &[u8];

    /// Whether the bytes are a file mapped into memory (read from disk on first touch).
    fn is_mapped(&self) -> bool {
        false
    }

    /// Make `range` resident and mapped before it is used (a no-op for bytes in memory).
    fn prefault(&self, _range: Range<usize>) -> std::io::Result<()> {
        Ok(())
    }

    /// Move the whole 2 MiB pages of `range` into anonymous memory backed by huge pages, at the
    /// same addresses (see [`crate::huge_pages`]); returns the bytes moved. Bytes already in
    /// this process's memory stay where they are (0 moved).
    fn move_to_huge_pages(&self, _range: Range<usize>) -> std::io::Result<usize> {
        Ok(0)
    }
}

impl ByteOwner for memmap2::Mmap {
    fn as_bytes(&self) -> &[u8] {
        self
    }

    fn is_mapped(&self) -> bool {
        true
    }

    fn prefault(&self, range: Range<usize>) -> std::io::Result<()> {
        prefault_map(self, range)
    }

    fn move_to_huge_pages(&self, range: Range<usize>) -> std::io::Result<usize> {
        crate::huge_pages::move_to_huge_pages(&self[range])
    }
}

/// Reads `range` of a map from disk and fills this process's page tables for it, so that the
/// first decode steps neither wait on the disk nor take a page fault per 4 KiB.
#[cfg(target_os = "linux")]
fn prefault_map(map: &memmap2::Mmap, range: Range<usize>) -> std::io::Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    // MADV_POPULATE_READ (Linux 5.14): what touching every page would do, without the loop.
    // Older kernels refuse it (EINVAL): touch one byte per page instead.
    match map.advise_range(memmap2::Advice::PopulateRead, range.start, range.len()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(22) => {
            touch_pages(&map[range]);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn prefault_map(map: &memmap2::Mmap, range: Range<usize>) -> std::io::Result<()> {
    touch_pages(&map[range]);
    Ok(())
}

/// Reads one byte of every 4 KiB of `bytes` (what faulting them in by hand takes).
fn touch_pages(bytes: &[u8]) {
    let mut sum = 0u8;
    for page in bytes.chunks(4096) {
        sum = sum.wrapping_add(page[0]);
    }
    std::hint::black_box(sum);
}

impl ByteOwner for Vec<u8> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

/// A cheap-to-clone, read-only view of a byte range inside a shared owner (zero-copy: a tensor
/// read from a memory-mapped safetensors file is a `Bytes` pointing into the map).
#[derive(Clone)]
pub struct Bytes {
    owner: Arc<dyn ByteOwner>,
    range: Range<usize>,
}

impl Bytes {
    /// View `range` of `owner`. Panics if the range is out of bounds (callers validate first).
    pub fn new(owner: Arc<dyn ByteOwner>, range: Range<usize>) -> Bytes {
        assert!(range.start <= range.end && range.end <= owner.as_bytes().len());
        Bytes { owner, range }
    }

    /// Own a vector (used for tensors built in memory: tests, converted weights).
    pub fn from_vec(v: Vec<u8>) -> Bytes {
        let len = v.len();
        Bytes {
            owner: Arc::new(v),
            range: 0..len,
        }
    }

    /// f32 values as little-endian bytes.
    pub fn from_f32(v: &[f32]) -> Bytes {
        Bytes::from_vec(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.owner.as_bytes()[self.range.clone()]
    }

    pub fn len(&self) -> usize {
        self.range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// Whether these bytes are in a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.owner.is_mapped()
    }

    /// Read these bytes into memory now, if they are a mapped file (see
    /// [`ByteOwner::prefault`]).
    pub fn prefault(&self) -> std::io::Result<()> {
        self.owner.prefault(self.range.clone())
    }

    /// Move these bytes into huge pages of this process's memory, if they are a mapped file
    /// (see [`ByteOwner::move_to_huge_pages`]). On an error the view may be unusable: drop it.
    pub fn move_to_huge_pages(&self) -> std::io::Result<usize> {
        self.owner.move_to_huge_pages(self.range.clone())
    }

    /// These bytes' place in their owner (a file mapping: their offsets in the file).
    pub fn owner_range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// Whether `other` views the same owner (the same mapped file) as this.
    pub fn same_owner(&self, other: &Bytes) -> bool {
        Arc::ptr_eq(&self.owner, &other.owner)
    }

    /// This view less the parts `drop` cover (views of any owner; those of another owner are
    /// ignored): the rest, as views in order.
    pub fn without(&self, drop: &[Bytes]) -> Vec<Bytes> {
        let mut cut: Vec<Range<usize>> = drop
            .iter()
            .filter(|d| self.same_owner(d))
            .map(|d| d.range.start.max(self.range.start)..d.range.end.min(self.range.end))
            .filter(|r| r.start < r.end)
            .collect();
        cut.sort_by_key(|r| r.start);
        let mut rest = Vec::new();
        let mut at = self.range.start;
        for r in cut {
            if r.start > at {
                rest.push(at..r.start);
            }
            at = at.max(r.end);
        }
        if at < self.range.end {
            rest.push(at..self.range.end);
        }
        rest.into_iter()
            .map(|r| Bytes {
                owner: self.owner.clone(),
                range: r,
            })
            .collect()
    }

    /// A sub-view, relative to this view.
    pub fn slice(&self, range: Range<usize>) -> Bytes {
        assert!(range.start <= range.end && range.end <= self.len());
        Bytes {
            owner: self.owner.clone(),
            range: self.range.start + range.start..self.range.start + range.end,
        }
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `without` leaves the parts no dropped view covers, ignoring views of other owners and
    /// overlaps.
    #[test]
    fn without_leaves_the_uncovered_parts() {
        let file = Bytes::from_vec((0..100u8).collect());
        let view = file.slice(10..90);
        let other = Bytes::from_vec(vec![0; 100]);
        let drop = [
            file.slice(30..40),
            file.slice(35..50),
            file.slice(0..12),
            file.slice(85..100),
            other.slice(50..60),
        ];
        let rest: Vec<Range<usize>> = view.without(&drop).iter().map(Bytes::owner_range).collect();
        assert_eq!(rest, [12..30, 50..85]);
        assert_eq!(view.without(&[])[0].as_slice(), view.as_slice());
        assert!(view.without(std::slice::from_ref(&file)).is_empty());
    }
}
