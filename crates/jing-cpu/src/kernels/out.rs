use std::marker::PhantomData;

/// A row-major f32 output matrix that several pool threads write at once, each into its own
/// disjoint set of elements (a matmul splits the output columns, i.e. weight rows, between
/// threads). Element `(i, n)` lives at `ptr + i * ld + n`.
#[derive(Clone, Copy)]
pub struct OutMatrix<'a> {
    ptr: *mut f32,
    len: usize,
    ld: usize,
    _life: PhantomData<&'a mut [f32]>,
}

// SAFETY: OutMatrix is only a pointer to a buffer the creator borrows mutably for 'a; writers
// promise (see `write`) to touch disjoint elements, so sharing it between threads is sound.
unsafe impl Send for OutMatrix<'_> {}
// SAFETY: as above.
unsafe impl Sync for OutMatrix<'_> {}

impl<'a> OutMatrix<'a> {
    /// Wrap `buf` as a matrix with leading dimension `ld`.
    pub fn new(buf: &'a mut [f32], ld: usize) -> OutMatrix<'a> {
        OutMatrix {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            ld,
            _life: PhantomData,
        }
    }

    /// Wrap a raw buffer of `len` floats.
    ///
    /// # Safety
    /// `ptr..ptr + len` must stay valid and unaliased by references for `'a`, except through
    /// other `OutMatrix` views whose writers touch disjoint elements.
    pub unsafe fn from_raw(ptr: *mut f32, len: usize, ld: usize) -> OutMatrix<'a> {
        OutMatrix {
            ptr,
            len,
            ld,
            _life: PhantomData,
        }
    }

    pub fn ld(&self) -> usize {
        self.ld
    }

    /// The same matrix from row `r` on: its element `(i, n)` is this one's `(r + i, n)`.
    pub fn from_row(&self, r: usize) -> OutMatrix<'a> {
        let skip = r * self.ld;
        assert!(skip <= self.len, "row {r} past the end of the matrix");
        OutMatrix {
            // `skip <= len`: within the buffer or one past its end.
            ptr: self.ptr.wrapping_add(skip),
            len: self.len - skip,
            ld: self.ld,
            _life: PhantomData,
        }
    }

    /// Store `v` at `(i, n)`.
    ///
    /// # Safety
    /// No other thread may read or write element `(i, n)` during the lifetime of this matrix.
    #[inline(always)]
    pub unsafe fn write(&self, i: usize, n: usize, v: f32) {
        let idx = i * self.ld + n;
        debug_assert!(idx < self.len);
        // SAFETY: bounds checked in debug builds; the caller guarantees exclusive access.
        unsafe { *self.ptr.add(idx) = v }
    }

    /// Add `v` to `(i, n)`.
    ///
    /// # Safety
    /// As [`OutMatrix::write`].
    #[inline(always)]
    pub unsafe fn add(&self, i: usize, n: usize, v: f32) {
        let idx = i * self.ld + n;
        debug_assert!(idx < self.len);
        // SAFETY: bounds checked in debug builds; the caller guarantees exclusive access.
        unsafe { *self.ptr.add(idx) += v }
    }
}
