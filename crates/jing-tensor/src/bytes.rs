use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Something that owns bytes for as long as any view of them lives: a memory map, or a vector.
pub trait ByteOwner: Send + Sync + 'static {
    fn as_bytes(&self) -> &[u8];
}

impl ByteOwner for memmap2::Mmap {
    fn as_bytes(&self) -> &[u8] {
        self
    }
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
