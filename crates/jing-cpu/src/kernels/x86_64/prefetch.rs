//! Software prefetch of the weight row streams, shared by the AVX2 and AVX-512 float matmuls.

use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};

/// How far ahead (bytes) a row stream prefetches into L1 when its rows are long. Measured on
/// Zen 5: the hardware prefetchers alone leave BF16 decode at ~60% of a plain read loop's
/// bandwidth, prefetching brings it to ~75%; 2 KiB was best among 0.5..8 KiB (and L1 vs L2
/// hints made no difference).
const PREFETCH: usize = 2048;

/// Groups of rows at most this long prefetch the next group instead (see
/// [`prefetch_distance`]). 32 KiB takes in BF16 and F16 rows of 4096 (8 KiB): `[4096, 4096]`
/// BF16 from DRAM on one Zen 5 thread, AVX2, went from 23-25 GB/s (in-row 2 KiB) to 27-31
/// (two groups on, 64 KiB ahead), F16 AVX2 from 26-27 to 33; AVX-512 stayed at 26-28 either
/// way, FP8 (under 16 KiB already) unchanged.
const NEXT_GROUP_MAX: usize = 32 * 1024;

/// How far ahead of the bytes being read a group of `R` consecutive rows prefetches:
/// [`PREFETCH`] bytes further along the same row, or, when the group is short (`R ·
/// row_bytes <= NEXT_GROUP_MAX`), the group two groups on, `2 · R · row_bytes` ahead. Rows of
/// one or two bytes per weight are a few KiB: `PREFETCH` ahead in the row then mostly lands in
/// rows the group streams already and leaves DRAM latency uncovered. Measured on one Zen 5
/// thread, `[22528, 2048]` matvec from DRAM, GB/s (in-row 2 KiB / next group / two groups on):
/// FP8 AVX-512 18.5 / 34.8 / 41.6 (Q8_0: 32), FP8 AVX2 16.8 / 22.8 / 23.0 (its decode is the
/// limit there), BF16 AVX2 22.0 / 37.4 / 39.3, BF16 AVX-512 26.0 / 27.3 / 27.9; three groups
/// on was worse. (An AVX-512 BF16 kernel without widening, even and odd weights split by shift
/// and mask against `x` reordered once per call, ran 75-85 GB/s from L2 but streamed
/// `[8192, 2048]` from DRAM at 24-27 whatever the prefetch: in-row 1, 2, 4 or 8 KiB, one, two
/// or three groups on, 256-bit loads and 64-byte aligned rows all gave 23-28. It was dropped:
/// it helped only m >= 2, and its summation order made bf16 weights give other bits than the
/// same values stored as f32.)
///
/// On AMD family 19h (Zen 3, Zen 4) a short group prefetches [`FAMILY_19H_AHEAD`] bytes on
/// instead, see there.
#[inline(always)]
fn prefetch_distance<const R: usize>(row_bytes: usize, ahead_19h: usize) -> usize {
    if R * row_bytes > NEXT_GROUP_MAX {
        PREFETCH
    } else if family_19h() {
        ahead_19h
    } else {
        2 * R * row_bytes
    }
}

/// How far ahead a short group prefetches on AMD family 19h. Measured on a Zen 4 (2 vCPUs,
/// 2 MiB pages; `quant_matvec`, then `jing bench -p 1 -n 48 -t 2 --no-mmap` on the V2-Lite-4
/// FP8 checkpoint, three settings in turn, six rounds): two groups on (32 KiB for bf16 rows of
/// 2048, 16 KiB for FP8) streamed one thread at 15-16 GB/s (bf16) and 17 (FP8) against a read
/// loop's 33; 8 KiB gave 17 and 18-21; 12 KiB 21-22 and 18-19, and decoded that file at
/// 40.9-42.8 tok/s against 35.5-37.8 (8 KiB: 38.8-41.3). Zen 5 had measured two groups on best.
const FAMILY_19H_AHEAD: usize = 12 * 1024;

/// [`FAMILY_19H_AHEAD`] for the AVX-512 FP8 kernel, which since its decode got faster streams
/// more from 8 KiB ahead. One Zen 4 thread, 16 weights of 5.5 MiB in 2 MiB pages in turn, GB/s
/// with 12 / 10 / 8 / 7 KiB (two rounds): `[4096, 1408]` 22.8 / 23.6 / 24.1 / 23.8,
/// `[2816, 2048]` 23.1 / 24.3 / 24.7 / 24.6, `[2048, 2816]` 17.2 / 18.8 / 20.6 / 18.3. Two
/// threads on a busy host varied more between runs (22-28 GB/s) than between distances.
pub(super) const FAMILY_19H_AHEAD_FP8: usize = 8 * 1024;

/// Whether this CPU is AMD family 19h (Zen 3 and Zen 4; measured on Zen 4 only), read once.
fn family_19h() -> bool {
    static FAMILY_19H: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAMILY_19H.get_or_init(|| {
        let (vendor, id) = (std::arch::x86_64::__cpuid(0), std::arch::x86_64::__cpuid(1));
        let amd = (vendor.ebx, vendor.edx, vendor.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
        let base = (id.eax >> 8) & 0xf;
        let family = if base == 0xf {
            base + ((id.eax >> 20) & 0xff)
        } else {
            base
        };
        amd && family == 0x19
    })
}

/// The software prefetch of a group of `R` weight rows that a kernel streams side by side
/// (each step reads the same columns of every row).
///
/// A short group (see [`prefetch_distance`]) of consecutive rows prefetches the group two on
/// in address order, `R` steps' worth of bytes per step, so that DRAM sees one sequential
/// stream, as the Q8_0 kernel's one row at a time does. Prefetching the same columns of each
/// row two groups on made `R` streams a row apart, which served decode less well when the
/// host's memory was busy: the V2-Lite-4 FP8 file (FP8 projections, bf16 lm_head) decoded at
/// 39.3-40.0 GB/s with this against 35.6-37.4 without, on two threads in the same minutes
/// (`jing bench -p 1 -n 64 -t 2`, alternating). Long rows, or rows that are not consecutive,
/// prefetch further along each row.
pub(super) struct GroupPrefetch<const R: usize> {
    rows: [*const u8; R],
    ahead: usize,
    linear: bool,
}

impl<const R: usize> GroupPrefetch<R> {
    /// For rows starting at `rows`, `row_bytes` long.
    #[inline(always)]
    pub(super) fn new(rows: [*const u8; R], row_bytes: usize) -> GroupPrefetch<R> {
        Self::with_19h_ahead(rows, row_bytes, FAMILY_19H_AHEAD)
    }

    /// As [`GroupPrefetch::new`], except that on AMD family 19h a short group prefetches
    /// `ahead_19h` bytes ahead.
    #[inline(always)]
    pub(super) fn with_19h_ahead(
        rows: [*const u8; R],
        row_bytes: usize,
        ahead_19h: usize,
    ) -> GroupPrefetch<R> {
        let ahead = prefetch_distance::<R>(row_bytes, ahead_19h);
        let consecutive = (0..R).all(|r| rows[r] == rows[0].wrapping_add(r * row_bytes));
        GroupPrefetch {
            rows,
            ahead,
            linear: consecutive && R * row_bytes <= NEXT_GROUP_MAX,
        }
    }

    /// Prefetch for a step that reads bytes `at..at + len` of every row.
    #[inline(always)]
    pub(super) fn step(&self, at: usize, len: usize) {
        if self.linear {
            // The step's share of the group `ahead` bytes on: R·len bytes, in order.
            prefetch_ahead(self.rows[0], R * at, R * len, self.ahead);
        } else {
            for row in self.rows {
                prefetch_ahead(row, at, len, self.ahead);
            }
        }
    }
}

/// Prefetch the lines `ahead` bytes past `row[at..at + len]` (at most one per 64 bytes; for
/// steps shorter than a line, only from steps that start a line).
#[inline(always)]
pub(crate) fn prefetch_ahead(row: *const u8, at: usize, len: usize, ahead: usize) {
    if len >= 64 || at.is_multiple_of(64) {
        let mut o = 0;
        while o < len.max(1) {
            // SAFETY: a prefetch is a hint, never a memory access: any address is allowed
            // (`wrapping_add` keeps the pointer arithmetic itself defined).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(at + ahead + o).cast()) };
            o += 64;
        }
    }
}

/// Prefetch the line holding `p` (any address: a prefetch never faults).
#[inline(always)]
pub(crate) fn prefetch_line(p: *const u8) {
    // SAFETY: a prefetch is a hint, never a memory access: any address is allowed.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
}

/// How far ahead a stream read in address order (rows interleaved by 16, rows in lines) is
/// prefetched in software, on CPUs other than AMD family 19h; there the hardware prefetcher
/// follows such a stream best alone (the Zen 4 measurements at [`GroupPrefetch`] and in the
/// `rows16` kernels), and these streams are not prefetched. Measured on one Zen 5 thread (2
/// vCPUs, 2 MiB pages), where the hardware prefetcher alone left them far below a read loop:
/// `quant_matvec`'s `[8960, 1536]` from DRAM, interleaved against as stored, GB/s, none / 4 /
/// 8 KiB ahead: `Q4_K` 12.9 / 29.8-31.3 / 29.5-32.3 (stored 33.1-35.7), `Q6_K` 20.9 / 34.6 /
/// 33.0-35.5, `Q8_0` 32.2 / 35.3-36.7 / 37.3-37.6; the V3-shaped FP8 checkpoint's FP8
/// matmuls in lines against bf16 activations (`JING_PROFILE=shapes`, `[18432, 7168]`) none /
/// 4 / 8 / 16 / 32 KiB: 28.4-29.7 (whole decode) / 32.5 / 36.4-36.7 / 34.4-34.9 / 33.6; the
/// AVX2 bf16 kernel in lines (the one bf16 matvecs take on AVX-512 CPUs too), `[2048, 7168]`,
/// none / 8 KiB: 31.2-31.5 / 37.9-38.8.
const STREAM_AHEAD: usize = 8 * 1024;

/// How far ahead of its position a stream read in address order prefetches (see
/// [`STREAM_AHEAD`]); 0 on AMD family 19h, which leaves such streams to the hardware.
pub(crate) fn stream_ahead() -> usize {
    if family_19h() {
        0
    } else {
        STREAM_AHEAD
    }
}

/// The software prefetch of a group of [`RUN`] rows in lines (one stream: the group's lines
/// of a column step lie together, and the groups follow each other in address order), from
/// [`stream_ahead`]: at each step that starts a line, the group's lines that many bytes on.
///
/// [`RUN`]: jing_tensor::panels::RUN
pub(super) struct LinesPrefetch {
    row0: *const u8,
    ahead: usize,
}

impl LinesPrefetch {
    /// For the group whose first row starts at `row0`.
    #[inline(always)]
    pub(super) fn new(row0: *const u8) -> LinesPrefetch {
        LinesPrefetch {
            row0,
            ahead: stream_ahead(),
        }
    }

    /// Prefetch for a step that reads byte `at` of every row of the group onwards.
    #[inline(always)]
    pub(super) fn step(&self, at: usize) {
        use jing_tensor::panels::{line_at, LINE, RUN};
        if self.ahead != 0 && at.is_multiple_of(LINE) {
            prefetch_ahead(self.row0, line_at(at), RUN * LINE, self.ahead);
        }
    }
}
