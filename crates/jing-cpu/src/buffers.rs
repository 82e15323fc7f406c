//! Node values during one graph execution, shared by the pool threads.
//!
//! Thread 0 allocates a node's buffer before the barrier that starts the node's phase (see
//! [`crate::exec`]), and frees buffers after the barrier that ends their last reader's phase;
//! in between, threads write disjoint parts of the node's buffer and only read buffers of
//! earlier phases. That schedule is what makes the unsynchronised access below sound.

use std::cell::UnsafeCell;

use crate::kernels::OutMatrix;

pub struct Values {
    cells: Vec<UnsafeCell<Vec<f32>>>,
    /// Freed buffers, reused by later allocations (thread 0 only, like `alloc` and `free`).
    spare: UnsafeCell<Spare>,
}

/// Buffers kept for reuse, so that a step allocates only what earlier steps never needed: the
/// same graph every decode step finds its buffers here (no allocator calls, no fresh pages to
/// fault in and zero).
#[derive(Default)]
pub struct Spare {
    bufs: Vec<Vec<f32>>,
}

impl Spare {
    /// Most floats kept between steps (512 MiB): a long prefill's buffers beyond that are
    /// returned to the allocator rather than held while the server idles.
    const MAX_FLOATS: usize = 128 << 20;

    /// The smallest kept buffer that holds `len` floats, else a new one; `len` long.
    ///
    /// A kept buffer keeps what it held: every op writes all of its output (`WeightedSum`,
    /// which adds into it, zeroes it first), so zeroing it again here only cost time, about
    /// 1% of a decode step (5 MB per Qwen2.5-1.5B step, zeroed by thread 0 while the others
    /// waited; twice that when the threads sat on two core complexes). With debug assertions
    /// (the test builds), every buffer taken is filled with NaN instead, so that an op leaving
    /// part of its output unwritten shows as NaN in the tests' results.
    fn take(&mut self, len: usize) -> Vec<f32> {
        let best = (self.bufs.iter().enumerate())
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let mut v = self.bufs.swap_remove(i);
                if cfg!(debug_assertions) {
                    v.clear();
                    v.resize(len, f32::NAN);
                } else {
                    // Writes only past the old length, if at all.
                    v.resize(len, 0.0);
                }
                v
            }
            None if cfg!(debug_assertions) => vec![f32::NAN; len],
            None => vec![0.0; len],
        }
    }

    fn put(&mut self, v: Vec<f32>) {
        if v.capacity() > 0 {
            self.bufs.push(v);
        }
    }

    /// Keep at most [`Spare::MAX_FLOATS`], the largest buffers first.
    fn trim(&mut self) {
        self.bufs.sort_by_key(|b| std::cmp::Reverse(b.capacity()));
        let mut kept = 0;
        self.bufs.retain(|b| {
            kept += b.capacity();
            kept <= Self::MAX_FLOATS
        });
    }
}

// SAFETY: see the module comment: the executor's barriers order every allocation, write,
// read and free of a cell, so no two threads race on the same elements.
unsafe impl Sync for Values {}

impl Values {
    /// `n` empty cells, allocating from `spare` (see [`Values::into_spare`]).
    pub fn new(n: usize, mut spare: Spare) -> Values {
        // Room for every cell's buffer, so that freeing never grows the list mid-step.
        spare.bufs.reserve(n);
        Values {
            cells: (0..n).map(|_| UnsafeCell::new(Vec::new())).collect(),
            spare: UnsafeCell::new(spare),
        }
    }

    /// Every buffer still held (after the outputs were taken), for the next step.
    pub fn into_spare(self) -> Spare {
        let mut spare = self.spare.into_inner();
        for c in self.cells {
            spare.put(c.into_inner());
        }
        spare.trim();
        spare
    }

    /// Allocate node `i`'s buffer (thread 0, before the barrier of the node's phase).
    ///
    /// # Safety
    /// No other thread may access cell `i` concurrently.
    pub unsafe fn alloc(&self, i: usize, len: usize) {
        // SAFETY: exclusive by the caller's contract; `spare` is touched only here and in
        // `free`, by the same thread.
        unsafe {
            let spare = &mut *self.spare.get();
            let old = std::mem::replace(&mut *self.cells[i].get(), spare.take(len));
            spare.put(old);
        }
    }

    /// Free node `i`'s buffer (thread 0, after its last reader finished).
    ///
    /// # Safety
    /// No other thread may access cell `i` concurrently.
    pub unsafe fn free(&self, i: usize) {
        // SAFETY: exclusive by the caller's contract; `spare` as in `alloc`.
        unsafe {
            let v = std::mem::take(&mut *self.cells[i].get());
            (*self.spare.get()).put(v);
        }
    }

    /// Read node `i`'s value.
    ///
    /// # Safety
    /// Node `i` must be finished (a barrier separates its computation from this read) and not
    /// freed while the slice is used.
    pub unsafe fn get(&self, i: usize) -> &[f32] {
        // SAFETY: by the caller's contract nobody writes the cell while it is read.
        unsafe { (*self.cells[i].get()).as_slice() }
    }

    /// Elements `start..end` of node `i`'s buffer, for the thread that owns them.
    ///
    /// # Safety
    /// Only threads computing node `i` may call this, with pairwise disjoint ranges.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn out_range(&self, i: usize, start: usize, end: usize) -> &mut [f32] {
        // SAFETY: the buffer is allocated (thread 0 did so before the barrier of the node's
        // phase) and the ranges of the threads are disjoint, so these slices never alias.
        unsafe {
            let v = &mut *self.cells[i].get();
            assert!(start <= end && end <= v.len());
            std::slice::from_raw_parts_mut(v.as_mut_ptr().add(start), end - start)
        }
    }

    /// Node `i`'s buffer as a matrix with leading dimension `ld`, for strided disjoint writes.
    ///
    /// # Safety
    /// Only threads computing node `i` may call this, writing disjoint elements.
    pub unsafe fn out_matrix(&self, i: usize, ld: usize) -> OutMatrix<'_> {
        // SAFETY: allocated buffer; writers are disjoint by the caller's contract.
        unsafe {
            let v = &mut *self.cells[i].get();
            OutMatrix::from_raw(v.as_mut_ptr(), v.len(), ld)
        }
    }

    /// A copy of node `i`'s value (after the run). Copied, not taken: the buffer stays for the
    /// next step, so its spare list keeps every buffer the step needs (a taken one would be
    /// missed and would send later requests to larger buffers, one allocation cascading into
    /// several).
    pub fn copy_out(&mut self, i: usize) -> Vec<f32> {
        self.cells[i].get_mut().clone()
    }
}

/// Ids are kept in f32 buffers as their bit patterns (never used in arithmetic).
#[inline(always)]
pub fn id_to_f32(id: i32) -> f32 {
    f32::from_bits(id as u32)
}

#[inline(always)]
pub fn f32_to_id(v: f32) -> usize {
    v.to_bits() as usize
}

/// The share `[start, end)` of `n` items for thread `tid` of `nth`, in multiples of `align`.
pub fn share(n: usize, tid: usize, nth: usize, align: usize) -> (usize, usize) {
    let blocks = n.div_ceil(align);
    let per = blocks.div_ceil(nth);
    let start = (tid * per * align).min(n);
    let end = ((tid + 1) * per * align).min(n);
    (start, end)
}
