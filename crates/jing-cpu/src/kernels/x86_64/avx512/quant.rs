//! The GGUF block-type matmul with AVX-512 VNNI on 256-bit vectors (see `x86_64::quant`):
//! `vpdpbusd` (u8 x i8, four products into i32) and `vpdpwssd` (i16 pairs into i32). A CPU with
//! AVX-512 but without VNNI uses the AVX2 version instead.
//!
//! `Q4_K`, `Q5_K` and `Q6_K` (most of the bytes of a `Q4_K_M` file) run on 512-bit vectors
//! here, in groups of [`G`] blocks: each block's exact integers stay in a vector of i32 lanes,
//! the group's vectors are reduced together ([`reduce4`]), the group's float terms are the
//! generic ones computed four at a time (the same f32 operations, no fused multiply-add), and
//! they are added to the row's sum one by one in block order. So the result is still the
//! generic kernel's bit for bit, while the per-block horizontal sums and scalar float steps
//! (which made these kernels compute-bound below DRAM speed) are gone.
//!
//! `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1` and `IQ4_NL` ([`dot32_zmm`]) also run on 512-bit vectors
//! here, four blocks per vector, with the float steps (and so the results) of the 256-bit
//! kernel.
//!
//! `Q2_K` and `Q3_K` (`k23`) take the same groups for one token; for several tokens they keep
//! the 256-bit kernels. `IQ2_XXS` and `IQ3_XXS` (`grid16`) take them too where the CPU has
//! AVX-512 VBMI, with their grids held in registers; without VBMI, the shared kernels.

use crate::kernels::x86_64::block;
use std::arch::x86_64::*;

/// `acc + Σ_4 u·x` per i32 lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_u8_i8(acc: __m256i, u: __m256i, x: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(acc, u, x)
}

/// `acc + Σ_2 (pair sum of u·x) · sc` per i32 lane (`vpmaddubsw` pairs must not saturate:
/// `u <= 63`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_u8_i8_scaled(acc: __m256i, u: __m256i, x: __m256i, sc: __m256i) -> __m256i {
    _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(u, x), sc)
}

/// `acc + Σ_4 w·x` per i32 lane, both signed: `|w| · (x with w's sign)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_i8_i8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
    dot_u8_i8(acc, _mm256_abs_epi8(w), _mm256_sign_epi8(x, w))
}

quant_kernels!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");

/// Blocks per group (see the module docs).
const G: usize = 4;

/// Interleaved rows: `Q4_K`, `Q6_K`, `Q8_0` and `Q5_0` by 16 (`rows16`), the layouts this table
/// makes.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn interleaved(w: &Weight, x: &QuantX, rows: Range<usize>, y: &OutMatrix) {
    match (w.layout, w.dtype) {
        (jing_tensor::RowLayout::Q4KRows16, DType::Q4K)
        | (jing_tensor::RowLayout::Q6KRows16, DType::Q6K)
        | (jing_tensor::RowLayout::Q8_0Rows16, DType::Q8_0)
        | (jing_tensor::RowLayout::Q5_0Rows16, DType::Q5_0) => rows16::matmul_rows16(w, x, rows, y),
        _ => crate::kernels::generic::matmul_q(w, x, rows, y),
    }
}

/// Whether `Q6_K` takes one token through the row loop's own decode path (see `drive_rows!`:
/// this kernel streams slower from DRAM there).
const Q6K_ONE_TOKEN: bool = false;

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q4_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_k4_zmm::<T, 144, 16, 0>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q5_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_k4_zmm::<T, 176, 48, 16>(w, x)
}

/// `SHUF_K4[h]`: for the 64 code bytes `64h..64h + 64` of a `Q4_K`/`Q5_K` block, whose low
/// nibbles are sub-blocks `4h` (first 32) and `4h + 2` (last 32) and high nibbles `4h + 1` and
/// `4h + 3`, makes the i16 scales that [`k4_block`]'s packed sums of four meet, from a vector
/// holding the block's 8 scale bytes in every lane (bytes `0..8`, see [`k4_scales_mins_x4`]).
/// `vpackssdw` of the low- and high-nibble sums puts, per 128-bit lane, four low-nibble sums
/// (words 0-3) before four high-nibble ones (words 4-7); lanes 0-1 hold sub-blocks `4h` and
/// `4h + 1`, lanes 2-3 `4h + 2` and `4h + 3`. An index with its top bit set makes a zero byte
/// (the high byte of each u8 -> i16).
static SHUF_K4: [[u8; 64]; 2] = {
    let mut t = [[0u8; 64]; 2];
    let mut h = 0;
    while h < 2 {
        let mut i = 0;
        while i < 64 {
            let high_nibble = (i % 16 >= 8) as usize;
            let j = 4 * h + high_nibble + if i < 32 { 0 } else { 2 };
            t[h][i] = if i % 2 == 0 { j as u8 } else { 0x80 };
            i += 1;
        }
        h += 1;
    }
    t
};

/// Per 128-bit lane: bytes `8..16` (a block's 8 mins, see [`k4_scales_mins_x4`]) as 8 i16.
static MINS_K4: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = if i % 2 == 0 {
            (8 + (i % 16) / 2) as u8
        } else {
            0x80
        };
        i += 1;
    }
    t
};

/// `IDX_Q6[h]`, i16 indices as little-endian bytes: the scales that [`q6_block`]'s packed sums
/// of four meet in half `h`. Each 128-bit lane `l` of `ua` (`ub`) is the 16 codes of sub-block
/// `8h + l` (`8h + 4 + l`), and `vpackssdw` puts, per lane, `ua`'s four sums (words 0-3)
/// before `ub`'s (words 4-7).
static IDX_Q6: [[u8; 64]; 2] = {
    let mut t = [[0u8; 64]; 2];
    let mut h = 0;
    while h < 2 {
        let mut i = 0;
        while i < 32 {
            let (lane, word) = (i / 8, i % 8);
            t[h][2 * i] = (8 * h + lane + if word >= 4 { 4 } else { 0 }) as u8;
            i += 1;
        }
        h += 1;
    }
    t
};

/// 64 bytes from the start of `b` (bounds-checked).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn ld64(b: &[u8]) -> __m512i {
    let b = &b[..64];
    // SAFETY: `b` has 64 bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

/// 64 activation codes from the start of `q` (bounds-checked).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn ldx64(q: &[i8]) -> __m512i {
    let q = &q[..64];
    // SAFETY: `q` has 64 bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(q.as_ptr().cast()) }
}

/// The `K` 64-byte tables of `t` (of bytes, or of wider lanes) as vectors.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tables<T, const K: usize>(t: &[T; K]) -> [__m512i; K] {
    // No `array::from_fn` in these kernels: its closure is not inlined into a function with
    // other target features, and the call spills every vector.
    let mut v = [_mm512_setzero_si512(); K];
    for (v, t) in v.iter_mut().zip(t) {
        *v = ld_table(t);
    }
    v
}

/// The 64-byte table `p` as a vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn ld_table<T>(p: &T) -> __m512i {
    const { assert!(size_of::<T>() == 64) };
    // SAFETY: `p` is 64 bytes (checked at compile time); the load is unaligned.
    unsafe { _mm512_loadu_si512((p as *const T).cast()) }
}

/// The u16 at `AT` of blocks `b0..b0 + N` of a row of `BB`-byte blocks (zero past `N`): the
/// blocks' f16 scales, for an f16 conversion of all of them at once.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn u16s<const N: usize, const BB: usize, const AT: usize>(w: &[u8], b0: usize) -> [u16; 8] {
    let mut h = [0u16; 8];
    for (b, h) in h[..N].iter_mut().enumerate() {
        let blk = block::<BB>(w, b0 + b);
        *h = u16::from_le_bytes([blk[AT], blk[AT + 1]]);
    }
    h
}

/// The first 4 of `h` (f16 bits) as f32 lanes (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn f16x4(h: &[u16; 8]) -> __m128 {
    // SAFETY: `h` is 8 u16 (16 bytes); the load is unaligned.
    _mm_cvtph_ps(unsafe { _mm_loadu_si128(h.as_ptr().cast()) })
}

/// Lane `j`: the sum of the 16 i32 lanes of `a[j]` (exact: the callers' sums fit i32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn reduce4(a: &[__m512i; G]) -> __m128i {
    let u = lane_sums4(a);
    let y = _mm256_add_epi32(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64::<1>(u));
    _mm_add_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256::<1>(y))
}

/// Per 128-bit lane `l`, i32 `j`: the sum of the 4 i32 of lane `l` of `a[j]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn lane_sums4(a: &[__m512i; 4]) -> __m512i {
    // Per 128-bit lane: [a0 + a2, b0 + b2, a1 + a3, b1 + b3] of a[0], a[1] (and a[2], a[3]).
    let t0 = _mm512_add_epi32(
        _mm512_unpacklo_epi32(a[0], a[1]),
        _mm512_unpackhi_epi32(a[0], a[1]),
    );
    let t1 = _mm512_add_epi32(
        _mm512_unpacklo_epi32(a[2], a[3]),
        _mm512_unpackhi_epi32(a[2], a[3]),
    );
    _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1))
}

/// How far ahead of the group being computed its weight bytes are prefetched.
const PREFETCH: usize = 8192;

/// Prefetches the `len` weight bytes `PREFETCH` past `at` of `w` (possibly past its end: the
/// next rows of the tensor, or nothing).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn prefetch(w: &[u8], at: usize, len: usize) {
    // The hardware prefetcher alone kept these kernels well below the bandwidth a plain read
    // reaches, once they computed fast enough to wait on memory.
    let p = w.as_ptr().wrapping_add(at + PREFETCH);
    for off in (0..len).step_by(64) {
        // A prefetch never faults, whatever the address (the intrinsic is safe).
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off).cast());
    }
}

/// `acc + Σ s·(sums of four u·x)`: the unsigned codes `u[0]` against activation codes
/// `xq[..64]` and `u[1]` against `xq[64..128]`, in sums of four products (`vpdpbusd`), packed
/// into one vector of i16 (`vpackssdw`: per 128-bit lane, four sums of `u[0]`, then four of
/// `u[1]`) that meets the i16 scales `s` in one `vpdpwssd`. Three multiplies and one scale
/// shuffle per 128 codes, where `vpmaddubsw` pairs took four and two (`Q4_K` 10% faster from
/// L2). Exact while a sum of four fits i16: `4·63·128` for `Q6_K`'s 6-bit codes, the largest
/// here (the test of the largest codes checks it).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn packed_sums(acc: __m512i, u: &[__m512i; 2], xq: &[i8], s: __m512i) -> __m512i {
    let zero = _mm512_setzero_si512();
    let s0 = _mm512_dpbusd_epi32(zero, u[0], ldx64(xq));
    let s1 = _mm512_dpbusd_epi32(zero, u[1], ldx64(&xq[64..]));
    _mm512_dpwssd_epi32(acc, _mm512_packs_epi32(s0, s1), s)
}

/// `Q4_K`/`Q5_K` (`BB` bytes per block, low nibbles at `QS`, fifth bits at `QH`, 0: none).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_k4_zmm<const T: usize, const BB: usize, const QS: usize, const QH: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
) -> [f32; T] {
    let mut out = [0.0f32; T];
    let shuf = tables(&SHUF_K4);
    let mins = ld64(&MINS_K4);
    by_groups!(w.len() / BB, |N, b0| k4_group::<T, N, BB, QS, QH>(
        w, x, b0, &shuf, mins, &mut out
    ));
    out
}

/// The 16 bytes at `AT` of blocks `b0..b0 + N` of a row of `BB`-byte blocks (`Q4_K`: `d`,
/// `dmin` and the 12 packed scale bytes at 0), one block per 128-bit lane, zero lanes past `N`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn block_heads<const N: usize, const BB: usize, const AT: usize>(w: &[u8], b0: usize) -> __m512i {
    let zero = _mm_setzero_si128();
    let mut v = _mm512_castsi128_si512(ld16(&block::<BB>(w, b0)[AT..]));
    v = _mm512_inserti32x4::<1>(
        v,
        if N > 1 {
            ld16(&block::<BB>(w, b0 + 1)[AT..])
        } else {
            zero
        },
    );
    v = _mm512_inserti32x4::<2>(
        v,
        if N > 2 {
            ld16(&block::<BB>(w, b0 + 2)[AT..])
        } else {
            zero
        },
    );
    _mm512_inserti32x4::<3>(
        v,
        if N > 3 {
            ld16(&block::<BB>(w, b0 + 3)[AT..])
        } else {
            zero
        },
    )
}

/// The 6-bit scales and mins of four `Q4_K`/`Q5_K` blocks (`heads`, from [`k4_heads`]) as
/// bytes: per 128-bit lane, the block's 8 scales then its 8 mins (the generic
/// `k4_scales_mins` for four blocks at once; done per block in scalar code, this unpacking
/// took a third of the kernel's time).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn k4_scales_mins_x4(heads: __m512i) -> __m512i {
    // Per lane, u32 words [d|dmin, a0, a1, a2] (a: the 12 scale bytes). Wanted:
    //   [a0 & 0x3f.., (a2 & 0x0f..) | hi2(a0), a1 & 0x3f.., (a2 >> 4 & 0x0f..) | hi2(a1)]
    // with hi2(a) = the top 2 bits of each byte of a moved to bits 4-5 = (a >> 2) & 0x30...
    let x = _mm512_shuffle_epi32::<0b11_10_11_01>(heads); // [a0, a2, a1, a2]
    let y = _mm512_shuffle_epi32::<0b10_10_01_01>(heads); // [a0, a0, a1, a1]
    let low = _mm512_and_si512(
        _mm512_srlv_epi32(x, _mm512_set4_epi32(4, 0, 0, 0)),
        _mm512_set4_epi32(0x0f0f_0f0f, 0x3f3f_3f3f, 0x0f0f_0f0f, 0x3f3f_3f3f),
    );
    let high = _mm512_and_si512(
        _mm512_srli_epi32::<2>(y),
        _mm512_set4_epi32(0x3030_3030, 0, 0x3030_3030, 0),
    );
    _mm512_or_si512(low, high)
}

/// The f16 pair in i32 `DW` of each 128-bit lane of `v` (a block's `[d | dmin << 16]`, from
/// its head bytes) as f32 lanes: `(d of lanes 0-3, dmin of lanes 0-3)` (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn f16_pairs_x4<const DW: i32>(v: __m512i) -> (__m128, __m128) {
    let dm = _mm512_castsi512_si128(_mm512_permutexvar_epi32(
        _mm512_zextsi128_si512(_mm_setr_epi32(DW, 4 + DW, 8 + DW, 12 + DW)),
        v,
    ));
    let f = _mm256_cvtph_ps(dm);
    // f = [d0, dmin0, d1, dmin1 | d2, dmin2, d3, dmin3].
    let (lo, hi) = (_mm256_castps256_ps128(f), _mm256_extractf128_ps::<1>(f));
    (
        _mm_shuffle_ps::<0b10_00_10_00>(lo, hi),
        _mm_shuffle_ps::<0b11_01_11_01>(lo, hi),
    )
}

/// Lane `j`: the sum of the 4 i32 of 128-bit lane `j` of `v`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn lane_sums(v: __m512i) -> __m128i {
    let a = _mm512_add_epi32(v, _mm512_shuffle_epi32::<0b01_00_11_10>(v));
    let a = _mm512_add_epi32(a, _mm512_shuffle_epi32::<0b10_11_00_01>(a));
    _mm512_castsi512_si128(_mm512_permutexvar_epi32(
        _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0),
        a,
    ))
}

/// Blocks `b0..b0 + N` of a `Q4_K`/`Q5_K` row: per token, `Σ_b k_term(I_b, M_b)` added to
/// `out` in block order, with `I = Σ_j sc_j Σ u·q` and `M = Σ_j m_j·S_j` (generic `dot_k4`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn k4_group<const T: usize, const N: usize, const BB: usize, const QS: usize, const QH: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
    b0: usize,
    shuf: &[__m512i; 2],
    mins: __m512i,
    out: &mut [f32; T],
) {
    prefetch(w, BB * b0, BB * N);
    let heads = block_heads::<N, BB, 0>(w, b0);
    let sm = k4_scales_mins_x4(heads);
    // Written out per block (not a loop over j) so that every block's vectors stay in
    // registers: as a loop the compiler kept them in memory, indexed by j. Each block gets
    // its lane of `sm` in every lane.
    let zero = [_mm512_setzero_si512(); T];
    let mut r = [zero; G];
    r[0] = k4_block::<T, BB, QS, QH>(block::<BB>(w, b0), x, b0, shuf, {
        _mm512_shuffle_i32x4::<0b00_00_00_00>(sm, sm)
    });
    if N > 1 {
        r[1] = k4_block::<T, BB, QS, QH>(block::<BB>(w, b0 + 1), x, b0 + 1, shuf, {
            _mm512_shuffle_i32x4::<0b01_01_01_01>(sm, sm)
        });
    }
    if N > 2 {
        r[2] = k4_block::<T, BB, QS, QH>(block::<BB>(w, b0 + 2), x, b0 + 2, shuf, {
            _mm512_shuffle_i32x4::<0b10_10_10_10>(sm, sm)
        });
    }
    if N > 3 {
        r[3] = k4_block::<T, BB, QS, QH>(block::<BB>(w, b0 + 3), x, b0 + 3, shuf, {
            _mm512_shuffle_i32x4::<0b11_11_11_11>(sm, sm)
        });
    }
    // Per lane (block), its 8 mins as i16.
    let mins = _mm512_shuffle_epi8(sm, mins);
    let (d, dmin) = f16_pairs_x4::<0>(heads);
    for t in 0..T {
        let i = reduce4(&[r[0][t], r[1][t], r[2][t], r[3][t]]);
        // M = Σ_j m_j · S_j (the sums of 32 codes), per block.
        let m = lane_sums(_mm512_madd_epi16(mins, sums32_x4::<N>(&x[t], b0)));
        add_min_terms::<N>(&mut out[t], &x[t], b0, (d, dmin), (i, m));
    }
}

/// The 8 sums of 32 codes of blocks `b0..b0 + N` of `x`, zero past `N`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn sums32_x4<const N: usize>(x: &XRow<'_>, b0: usize) -> __m512i {
    let s = &x.sums32[8 * b0..8 * (b0 + N)];
    if N == G {
        // SAFETY: `s` has 32 i16 (64 bytes); the load is unaligned.
        unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
    } else {
        let mut p = [0i16; 8 * G];
        p[..8 * N].copy_from_slice(s);
        // SAFETY: `p` is 32 i16 (64 bytes); the load is unaligned.
        unsafe { _mm512_loadu_si512(p.as_ptr().cast()) }
    }
}

/// One `Q4_K`/`Q5_K` block `b` (`blk`, `BB` bytes), whose 8 scale bytes are bytes `0..8` of
/// every 128-bit lane of `scales`: per token, i32 lanes summing to `I`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn k4_block<const T: usize, const BB: usize, const QS: usize, const QH: usize>(
    blk: &[u8; BB],
    x: &[XRow<'_>; T],
    b: usize,
    shuf: &[__m512i; 2],
    scales: __m512i,
) -> [__m512i; T] {
    let nib = _mm512_set1_epi8(0x0f);
    let one = _mm512_set1_epi8(1);
    // The activations in the order of the nibbles (`QuantX::qs_k4`).
    let mut xs: [&[i8]; T] = [&[]; T];
    for t in 0..T {
        xs[t] = &x[t].qs_k4[256 * b..256 * b + 256];
    }
    let qh = if QH > 0 {
        _mm512_broadcast_i64x4(ld32(&blk[QH..]))
    } else {
        _mm512_setzero_si512()
    };
    let mut acc = [_mm512_setzero_si512(); T];
    for h in 0..2 {
        let q = ld64(&blk[QS + 64 * h..]);
        let mut lo = _mm512_and_si512(q, nib);
        let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), nib);
        if QH > 0 {
            // The fifth bit of sub-block j is bit j of qh; the low half of `lo` is sub-block
            // 4h, its high half 4h + 2 (and one more for `hi`).
            let c_lo = _mm512_inserti64x4::<1>(
                _mm512_set1_epi16((4 * h) as i16),
                _mm256_set1_epi16((4 * h + 2) as i16),
            );
            let c_hi = _mm512_add_epi16(c_lo, _mm512_set1_epi16(1));
            let h0 = _mm512_and_si512(_mm512_srlv_epi16(qh, c_lo), one);
            let h1 = _mm512_and_si512(_mm512_srlv_epi16(qh, c_hi), one);
            lo = _mm512_or_si512(lo, _mm512_slli_epi16::<4>(h0));
            hi = _mm512_or_si512(hi, _mm512_slli_epi16::<4>(h1));
        }
        let s = _mm512_shuffle_epi8(scales, shuf[h]);
        for t in 0..T {
            acc[t] = packed_sums(acc[t], &[lo, hi], &xs[t][128 * h..], s);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q6_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    let mut out = [0.0f32; T];
    let idx = tables(&IDX_Q6);
    by_groups!(w.len() / 210, |N, b0| q6_group::<T, N>(
        w, x, b0, &idx, &mut out
    ));
    out
}

/// Blocks `b0..b0 + N` of a `Q6_K` row: per token, `Σ_b k_term_sym(I_b)` added to `out` in
/// block order, `I = Σ_j sc_j Σ (u - 32)·q` (generic `dot_q6_k`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q6_group<const T: usize, const N: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
    b0: usize,
    idx: &[__m512i; 2],
    out: &mut [f32; T],
) {
    prefetch(w, 210 * b0, 210 * N);
    // Written out per block, as in `k4_group`.
    let mut acc = [[_mm512_setzero_si512(); T]; G];
    acc[0] = q6_block::<T>(block::<210>(w, b0), x, b0, idx);
    if N > 1 {
        acc[1] = q6_block::<T>(block::<210>(w, b0 + 1), x, b0 + 1, idx);
    }
    if N > 2 {
        acc[2] = q6_block::<T>(block::<210>(w, b0 + 2), x, b0 + 2, idx);
    }
    if N > 3 {
        acc[3] = q6_block::<T>(block::<210>(w, b0 + 3), x, b0 + 3, idx);
    }
    let dh = u16s::<N, 210, 208>(w, b0);
    add_sym_terms::<T, N>(&acc, &dh, x, b0, out);
}

/// The end of a group of a type with one f16 scale per block and no min (`Q6_K`, `IQ4_XS`):
/// per token, `k_term_sym(I_b) = (dx·d)·I` of blocks `b0..b0 + N` added to `out` in block
/// order, from each block's i32 lanes `acc[b][t]` and its scale bits `dh[b]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn add_sym_terms<const T: usize, const N: usize>(
    acc: &[[__m512i; T]; G],
    dh: &[u16; 8],
    x: &[XRow<'_>; T],
    b0: usize,
    out: &mut [f32; T],
) {
    add_sym_terms_f32::<T, N>(acc, f16x4(dh), x, b0, out);
}

/// [`add_sym_terms`] with the blocks' scales `d` as f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn add_sym_terms_f32<const T: usize, const N: usize>(
    acc: &[[__m512i; T]; G],
    d: __m128,
    x: &[XRow<'_>; T],
    b0: usize,
    out: &mut [f32; T],
) {
    for t in 0..T {
        let i = _mm_cvtepi32_ps(reduce4(&[acc[0][t], acc[1][t], acc[2][t], acc[3][t]]));
        let terms = _mm_mul_ps(_mm_mul_ps(dx4::<N>(&x[t], b0), d), i);
        add_terms::<N>(&mut out[t], terms);
    }
}

/// One `Q6_K` block `b` (`blk`): per token, i32 lanes summing to `I`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q6_block<const T: usize>(
    blk: &[u8; 210],
    x: &[XRow<'_>; T],
    b: usize,
    idx: &[__m512i; 2],
) -> [__m512i; T] {
    let nib = _mm512_set1_epi8(0x0f);
    let three = _mm512_set1_epi8(3);
    let mut xs: [&[i8]; T] = [&[]; T];
    for t in 0..T {
        xs[t] = &x[t].qs[256 * b..256 * b + 256];
    }
    let mut acc = [_mm512_setzero_si512(); T];
    // The 16 i8 scales as i16 (lanes 0..16; `IDX_Q6` reads no others).
    let sc = _mm256_cvtepi8_epi16(ld16(&blk[192..]));
    let scz = _mm512_zextsi256_si512(sc);
    for h in 0..2 {
        // Half h (elements 128h..128h + 128): low bits ql[64h..64h + 64], high bits
        // qh[32h..32h + 32]; bits 2s..2s + 2 of qh[l] belong to element 32s + l.
        let q = ld64(&blk[64 * h..]);
        let qh = ld32(&blk[128 + 32 * h..]);
        let qh2 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), _mm256_srli_epi16::<2>(qh));
        // Elements 0..64 (low nibbles, qh bits 0-1 and 2-3) and 64..128 (high nibbles, bits
        // 4-5 and 6-7) of the half, in order. The masks keep each byte's bits in that byte
        // across the 16-bit shifts.
        let ua = _mm512_or_si512(
            _mm512_and_si512(q, nib),
            _mm512_slli_epi16::<4>(_mm512_and_si512(qh2, three)),
        );
        let ub = _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi16::<4>(q), nib),
            _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srli_epi16::<4>(qh2), three)),
        );
        let s = _mm512_permutexvar_epi16(idx[h], scz);
        for t in 0..T {
            acc[t] = packed_sums(acc[t], &[ua, ub], &xs[t][128 * h..], s);
        }
    }
    for t in 0..T {
        // Σ sc_j (u - 32)·x = Σ sc_j u·x - 32 Σ sc_j S_j.
        let off = _mm256_madd_epi16(sc, ld_i16x16(&x[t].sums[16 * b..]));
        let off = _mm512_zextsi256_si512(_mm256_slli_epi32::<5>(off));
        acc[t] = _mm512_sub_epi32(acc[t], off);
    }
    acc
}

/// `x` with byte `l` negated where bit `l` of `bits` is set (a masked subtract from 0).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn neg_where(x: __m256i, bits: u32) -> __m256i {
    _mm256_mask_sub_epi8(x, bits, _mm256_setzero_si256(), x)
}

/// `IQ4_SCALE[i]`, i16 indices as little-endian bytes: lanes 0-15 take scale `2i`, lanes 16-31
/// scale `2i + 1` of a vector of the eight `IQ4_XS` scales (one per 32 codes).
static IQ4_SCALE: [[u8; 64]; 4] = {
    let mut t = [[0u8; 64]; 4];
    let mut i = 0;
    while i < 4 {
        let mut l = 0;
        while l < 32 {
            t[i][2 * l] = (2 * i + l / 16) as u8;
            l += 1;
        }
        i += 1;
    }
    t
};

/// The constant vectors of [`iq4_xs_block`]: the 16 values in each 128-bit lane, the nibble
/// mask, the two qword permutes and the scale picks (`IQ4_SCALE`).
struct Iq4Consts {
    kv: __m512i,
    nib: __m512i,
    perm: [__m512i; 2],
    sidx: [__m512i; 4],
}

/// `IQ4_XS` on 512-bit vectors, four sub-blocks of 32 per step: the codes of 64 bytes of
/// nibbles by a byte shuffle, put in element order by a qword permute (low and high nibbles of
/// one sub-block side by side), then `|c|·(q with c's sign)` with the scales `s - 32` of each
/// 256-bit half. Blocks go in groups of [`G`] as `Q4_K`'s do (one reduction per group, the
/// generic float terms added in block order; for up to 2 tokens): the generic kernel's result,
/// bit for bit.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_iq4_xs<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    let mut out = [0.0f32; T];
    let k = Iq4Consts {
        // SAFETY: `KVALUES_IQ4NL` is 16 bytes; the load is unaligned.
        kv: _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()) }),
        nib: _mm512_set1_epi8(0x0f),
        // Qwords [sub-block j: low nibbles, high nibbles] for j = 0, 1 (and 2, 3) of the four.
        perm: [
            _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11),
            _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15),
        ],
        sidx: tables(&IQ4_SCALE),
    };
    if T > 2 {
        // Four blocks of four tokens' vectors would not fit the registers: block by block.
        for b in 0..w.len() / 136 {
            let blk = block::<136>(w, b);
            let sv = _mm512_castsi256_si512(_mm256_castsi128_si256(_mm256_cvtepi32_epi16(
                iq4_xs_scales(blk),
            )));
            let mut acc = [[_mm512_setzero_si512(); T]; 2];
            for h in 0..2 {
                let q = ld64(&blk[8 + 64 * h..]);
                let lo = _mm512_shuffle_epi8(k.kv, _mm512_and_si512(q, k.nib));
                let hi =
                    _mm512_shuffle_epi8(k.kv, _mm512_and_si512(_mm512_srli_epi16::<4>(q), k.nib));
                for j in 0..2 {
                    let c = _mm512_permutex2var_epi64(lo, k.perm[j], hi);
                    let neg = _mm512_movepi8_mask(c);
                    let ac = _mm512_abs_epi8(c);
                    let sc = _mm512_permutexvar_epi16(k.sidx[2 * h + j], sv);
                    for t in 0..T {
                        let xq = ldx64(&x[t].qs[256 * b + 128 * h + 64 * j..]);
                        let xs = _mm512_mask_sub_epi8(xq, neg, _mm512_setzero_si512(), xq);
                        let p = _mm512_maddubs_epi16(ac, xs);
                        acc[j][t] = _mm512_dpwssd_epi32(acc[j][t], p, sc);
                    }
                }
            }
            let d = f16_at(blk, 0);
            for t in 0..T {
                let i = _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0][t], acc[1][t]));
                out[t] += k_term_sym(x[t].d[b], d, i);
            }
        }
    } else {
        by_groups!(w.len() / 136, |N, b0| iq4_xs_group::<T, N>(
            w, x, b0, &k, &mut out
        ));
    }
    out
}

/// Blocks `b0..b0 + N` of an `IQ4_XS` row into `out`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn iq4_xs_group<const T: usize, const N: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
    b0: usize,
    k: &Iq4Consts,
    out: &mut [f32; T],
) {
    // Written out per block, as in `k4_group`, so that the vectors stay in registers.
    let mut r = [[_mm512_setzero_si512(); T]; G];
    let mut dh = [0u16; 8];
    r[0] = iq4_xs_block(block::<136>(w, b0), x, b0, k);
    dh[0] = u16::from_le_bytes([w[136 * b0], w[136 * b0 + 1]]);
    if N > 1 {
        r[1] = iq4_xs_block(block::<136>(w, b0 + 1), x, b0 + 1, k);
        dh[1] = u16::from_le_bytes([w[136 * (b0 + 1)], w[136 * (b0 + 1) + 1]]);
    }
    if N > 2 {
        r[2] = iq4_xs_block(block::<136>(w, b0 + 2), x, b0 + 2, k);
        dh[2] = u16::from_le_bytes([w[136 * (b0 + 2)], w[136 * (b0 + 2) + 1]]);
    }
    if N > 3 {
        r[3] = iq4_xs_block(block::<136>(w, b0 + 3), x, b0 + 3, k);
        dh[3] = u16::from_le_bytes([w[136 * (b0 + 3)], w[136 * (b0 + 3) + 1]]);
    }
    add_sym_terms::<T, N>(&r, &dh, x, b0, out);
}

/// The exact integers of `IQ4_XS` block `b` (`blk`) for each token, in i32 lanes to be summed.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn iq4_xs_block<const T: usize>(
    blk: &[u8; 136],
    x: &[XRow<'_>; T],
    b: usize,
    k: &Iq4Consts,
) -> [__m512i; T] {
    let sv = _mm512_castsi256_si512(_mm256_castsi128_si256(_mm256_cvtepi32_epi16(
        iq4_xs_scales(blk),
    )));
    let mut acc = [[_mm512_setzero_si512(); T]; 2];
    for h in 0..2 {
        let q = ld64(&blk[8 + 64 * h..]);
        let lo = _mm512_shuffle_epi8(k.kv, _mm512_and_si512(q, k.nib));
        let hi = _mm512_shuffle_epi8(k.kv, _mm512_and_si512(_mm512_srli_epi16::<4>(q), k.nib));
        for j in 0..2 {
            let c = _mm512_permutex2var_epi64(lo, k.perm[j], hi);
            let neg = _mm512_movepi8_mask(c);
            let ac = _mm512_abs_epi8(c);
            let sc = _mm512_permutexvar_epi16(k.sidx[2 * h + j], sv);
            for t in 0..T {
                let xq = ldx64(&x[t].qs[256 * b + 128 * h + 64 * j..]);
                let xs = _mm512_mask_sub_epi8(xq, neg, _mm512_setzero_si512(), xq);
                acc[j][t] = _mm512_dpwssd_epi32(acc[j][t], _mm512_maddubs_epi16(ac, xs), sc);
            }
        }
    }
    let mut r = [_mm512_setzero_si512(); T];
    for t in 0..T {
        r[t] = _mm512_add_epi32(acc[0][t], acc[1][t]);
    }
    r
}

// ---- 32-element Q4/Q5 types on 512-bit vectors ------------------------------------------------

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q4_0<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot32_zmm::<T, 18, 2, 0, 0, 3, false>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q4_1<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot32_zmm::<T, 20, 4, 0, 2, 0, false>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q5_0<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot32_zmm::<T, 22, 6, 2, 0, 4, false>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q5_1<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot32_zmm::<T, 24, 8, 4, 2, 0, false>(w, x)
}

/// `IQ4_NL`: `Q4_0`'s layout with a table of 16 signed values for the nibbles, which the
/// 512-bit path takes as `value + 128` (unsigned, for `vpdpbusd`) and `Q8_0`'s `128·S`
/// correction. The 256-bit shared kernel it replaces ran 19.5 GB/s from L2 on rows of 2048 and
/// 4.6 on rows of 128 (one thread); llama.cpp's quantizer gives this type to the tensors whose
/// rows are not whole 256-blocks in its i-quant mixes (DeepSeek's `attn_k_b`; V2-Lite's
/// experts' `ffn_down` too).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_iq4_nl<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot32_zmm::<T, 18, 2, 0, 0, 7, true>(w, x)
}

/// `IQ4_NL`'s 16 values plus 128, as u8, in every 128-bit lane (a `vpshufb` table).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn iq4_nl_table_u8() -> __m512i {
    // SAFETY: `KVALUES_IQ4NL` is 16 bytes; the load is unaligned.
    let t = unsafe { _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()) };
    _mm512_xor_si512(_mm512_broadcast_i32x4(t), _mm512_set1_epi8(0x80u8 as i8))
}

/// The `Q4_0`/`Q4_1`/`Q5_0`/`Q5_1`/`IQ4_NL` kernel (blocks of `BB` bytes: f16 `d` at 0, the f16
/// min at `MIN` if nonzero, the fifth bits at `QH` if nonzero, 16 nibble bytes at `QS`; with
/// `LUT`, each nibble stands for `IQ4_NL`'s value plus 128; codes offset by `2^SH` if `SH` is
/// nonzero) with the float steps of the 256-bit one (`dot32!`): groups
/// of 8 blocks whose 8 exact integer sums go into an f32 vector with the same fused
/// multiply-adds, lane `j` for block `8g + j`, the last `nb % 8` blocks as one group padded
/// with zero terms, the lanes summed at the end. So the results equal that kernel's bit for
/// bit. Only the integer part differs (it made the 256-bit kernel compute-bound, at about half
/// the speed of `Q8_0`): four blocks per 512-bit vector, one block per 128-bit lane (low
/// nibbles in one vector, high ones in another, against the activations rearranged to match),
/// the scales and fifth bits of a group gathered by two word permutes, and the fifth bits
/// added under byte masks. A short row (`attn_k_b`: 4 blocks) takes masked loads, no copies.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot32_zmm<
    const T: usize,
    const BB: usize,
    const QS: usize,
    const QH: usize,
    const MIN: usize,
    const SH: u32,
    const LUT: bool,
>(
    w: &[u8],
    x: &[XRow<'_>; T],
) -> [f32; T] {
    let nb = w.len() / BB;
    let groups = nb / 8;
    let mut acc = [_mm256_setzero_ps(); T];
    // The group size is a constant in every call: the loops unroll and the vectors stay in
    // registers (with a run-time count they went through memory, at half the speed).
    macro_rules! group {
        ($n:literal) => {
            group32::<T, BB, QS, QH, MIN, SH, LUT, $n>(w, x, 8 * groups, 1, &mut acc, None)
        };
    }
    group32::<T, BB, QS, QH, MIN, SH, LUT, 8>(w, x, 0, groups, &mut acc, None);
    match nb - 8 * groups {
        1 => group!(1),
        2 => group!(2),
        3 => group!(3),
        4 => group!(4),
        5 => group!(5),
        6 => group!(6),
        7 => group!(7),
        _ => {}
    }
    let mut out = [0.0f32; T];
    for t in 0..T {
        out[t] = hsum_ps(acc[t]);
    }
    out
}

/// Where [`group_words`] finds the words of a group of 8 `BB`-byte blocks (f16 `d` at 0, the
/// min at `MIN`, the fifth bits at `QH`; 0: none): for result word `i` (`0..8`: `d` of block
/// `i`; `8..16`: the min of block `i - 8`; `16..32`: the fifth-bit words, block `(i - 16) / 2`),
/// `.0[i]` its word in the group's first 128 bytes, `.1[i]` its word in the 64 bytes at
/// `8·BB - 64` (the group's last), `.2` bit `i` set where it is in the second.
const fn heads_index(bb: usize, qh: usize, min: usize) -> ([u16; 32], [u16; 32], u32) {
    let (mut a, mut c, mut k) = ([0u16; 32], [0u16; 32], 0u32);
    let c_word = (8 * bb - 64) / 2;
    let mut i = 0;
    while i < 32 {
        let byte = if i < 8 {
            bb * i
        } else if i < 16 {
            if min == 0 {
                usize::MAX
            } else {
                bb * (i - 8) + min
            }
        } else if qh == 0 {
            usize::MAX
        } else {
            bb * ((i - 16) / 2) + qh + 2 * (i % 2)
        };
        if byte != usize::MAX {
            let word = byte / 2;
            if word < 64 {
                a[i] = word as u16;
            } else {
                c[i] = (word - c_word) as u16;
                k |= 1 << i;
            }
        }
        i += 1;
    }
    (a, c, k)
}

/// Where [`group_codes`] finds the packed bytes (16 at `qs` of each `BB`-byte block) of a group
/// of 8 blocks: word `i` of block `4h + i / 8` is word `.h[i]` of the group's words `0..64`
/// (`h = 0`), or of words `32..64` then `4·BB - 32..4·BB` (`h = 1`: its second 64 bytes and
/// last 64 bytes, which together hold blocks 4-7 for `BB <= 24`).
const fn codes_index(bb: usize, qs: usize) -> [[u16; 32]; 2] {
    let mut t = [[0u16; 32]; 2];
    let mut i = 0;
    while i < 32 {
        let w0 = (bb * (i / 8) + qs) / 2 + i % 8;
        t[0][i] = w0 as u16;
        let w1 = (bb * (4 + i / 8) + qs) / 2 + i % 8;
        t[1][i] = if w1 < 64 {
            w1 - 32
        } else {
            32 + w1 - (4 * bb - 32)
        } as u16;
        i += 1;
    }
    t
}

/// The [`heads_index`] and [`codes_index`] of a block layout.
struct Heads<const BB: usize, const QS: usize, const QH: usize, const MIN: usize>;

impl<const BB: usize, const QS: usize, const QH: usize, const MIN: usize> Heads<BB, QS, QH, MIN> {
    const INDEX: ([u16; 32], [u16; 32], u32) = heads_index(BB, QH, MIN);
    const CODES: [[u16; 32]; 2] = codes_index(BB, QS);
}

/// Bits `off..off + 64` of the mask of the first `len` bytes.
#[inline(always)]
const fn byte_mask(off: usize, len: usize) -> u64 {
    if len <= off {
        0
    } else if len - off >= 64 {
        !0
    } else {
        (1u64 << (len - off)) - 1
    }
}

/// The `len` bytes from `at` of `w` (`len <= 64`), zero above `len`; no load at all for 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn ld_upto64(w: &[u8], at: usize, mask: u64) -> __m512i {
    if mask == 0 {
        return _mm512_setzero_si512();
    }
    let b = &w[at..at + (64 - mask.leading_zeros() as usize)];
    // SAFETY: the mask selects the bytes of `b` (its set bits are the low `b.len()`); the
    // masked-off bytes are not read.
    unsafe { _mm512_maskz_loadu_epi8(mask, b.as_ptr().cast()) }
}

/// The codes of `q` (at most 64), zero above its length.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn ldx_upto64(q: &[i8]) -> __m512i {
    let mask = byte_mask(0, q.len());
    // SAFETY: the mask selects the bytes of `q` (its set bits are the low `q.len()`, at most
    // 64); the masked-off bytes are not read.
    unsafe { _mm512_maskz_loadu_epi8(mask, q.as_ptr().cast()) }
}

/// The `N` blocks of `wg` (`N·BB` bytes, zero-padded to 8): the word lanes of
/// [`heads_index`] (`d` in words 0-7, the mins in 8-15, the fifth-bit words in dwords 8-15),
/// and the group's bytes `0..64`, `64..128` and `8·BB - 64..8·BB` (for [`group_codes`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn group_words<
    const BB: usize,
    const QS: usize,
    const QH: usize,
    const MIN: usize,
    const N: usize,
>(
    wg: &[u8],
) -> (__m512i, [__m512i; 3]) {
    let (ia, ic, k) = Heads::<BB, QS, QH, MIN>::INDEX;
    let len = N * BB;
    let a = ld_upto64(wg, 0, byte_mask(0, len));
    let b = ld_upto64(wg, 64, byte_mask(64, len));
    // The last 64 bytes of a whole group (zero for the missing blocks of a partial group).
    let c_at = 8 * BB - 64;
    let c = ld_upto64(wg, c_at, byte_mask(c_at, len));
    // SAFETY: (both) `ia`, `ic` are 32 u16 (64 bytes); the loads are unaligned.
    let (ia, ic) = unsafe {
        (
            _mm512_loadu_si512(ia.as_ptr().cast()),
            _mm512_loadu_si512(ic.as_ptr().cast()),
        )
    };
    let h = _mm512_permutex2var_epi16(a, ia, b);
    let h = if k == 0 {
        h
    } else {
        _mm512_mask_permutexvar_epi16(h, k, ic, c)
    };
    (h, [a, b, c])
}

/// The packed bytes of blocks `4h..4h + 4` of a group, one block per 128-bit lane, from the
/// bytes [`group_words`] loaded.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn group_codes<const BB: usize, const QS: usize, const QH: usize, const MIN: usize>(
    bytes: &[__m512i; 3],
    h: usize,
) -> __m512i {
    let idx = &Heads::<BB, QS, QH, MIN>::CODES[h];
    // SAFETY: `idx` is 32 u16 (64 bytes); the load is unaligned.
    let idx = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
    if h == 0 {
        _mm512_permutex2var_epi16(bytes[0], idx, bytes[1])
    } else {
        _mm512_permutex2var_epi16(bytes[1], idx, bytes[2])
    }
}

/// `SPREAD[h]` (per 128-bit lane): byte `l` is byte `2h + l / 8` of the lane's first dword (the
/// fifth bits of the block's low (`h = 0`) or high (`h = 1`) nibbles) for the bit test with
/// `0x8040_2010_0804_0201` bytes.
static SPREAD: [[u8; 64]; 2] = {
    let mut t = [[0u8; 64]; 2];
    let mut h = 0;
    while h < 2 {
        let mut i = 0;
        while i < 64 {
            t[h][i] = (2 * h + (i % 16) / 8) as u8;
            i += 1;
        }
        h += 1;
    }
    t
};

/// `count` groups of `N` blocks (`1 <= N <= 8`) of a row from block `first`, each a group of
/// [`dot32_zmm`]: the terms added to `acc`, lanes `N..8` with zero terms.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn group32<
    const T: usize,
    const BB: usize,
    const QS: usize,
    const QH: usize,
    const MIN: usize,
    const SH: u32,
    const LUT: bool,
    const N: usize,
>(
    w: &[u8],
    x: &[XRow<'_>; T],
    first: usize,
    count: usize,
    acc: &mut [__m256; T],
    mut pairs: Option<&mut [f32]>,
) {
    // The loop over groups is here, not in the caller: as a call per group (the compiler
    // would not inline it) every group reloaded the constant vectors, repeated the bounds
    // checks and paid a `vzeroupper`.
    for g in 0..count {
        let b0 = first + N * g;
        // The activations' first block for the group: the weights' own, or (row pairs: the
        // token's 4 blocks twice) block 0 for every group.
        let xb = if pairs.is_some() { 0 } else { b0 };
        let wg = &w[BB * b0..BB * (b0 + N)];
        prefetch(w, BB * b0, 8 * BB);
        // The word permutes need even offsets, and 8 blocks within the three 64-byte chunks.
        const {
            assert!(
                BB >= 16
                    && BB <= 24
                    && BB.is_multiple_of(2)
                    && QS.is_multiple_of(2)
                    && QH.is_multiple_of(2)
                    && MIN.is_multiple_of(2)
            )
        };
        let (heads, bytes) = group_words::<BB, QS, QH, MIN, N>(wg);
        let nib = _mm512_set1_epi8(0x0f);
        // `SPREAD` and `bits` find each code's fifth bit (see below).
        let spread = [ld64(&SPREAD[0]), ld64(&SPREAD[1])];
        let bits = _mm512_set1_epi64(0x8040_2010_0804_0201u64 as i64);
        // `p[t][c]`: blocks `4c..4c + 4` of the group, block `4c + j` in 128-bit lane `j`.
        let mut p = [[_mm512_setzero_si512(); 2]; T];
        for c in 0..N.div_ceil(4) {
            // The packed bytes of the (up to) four blocks, one per lane (zero for missing ones).
            // One token: by word permutes of the bytes already loaded (fewer instructions than 4
            // loads and 3 inserts: 34 against 27 GB/s in L2 for `Q5_0`); a tile of tokens: by
            // those loads and inserts (the permutes made it a third slower there, for no reason
            // found yet).
            let z = if T == 1 {
                group_codes::<BB, QS, QH, MIN>(&bytes, c)
            } else {
                let mut q = [_mm_setzero_si128(); 4];
                for (j, q) in q.iter_mut().enumerate() {
                    if 4 * c + j < N {
                        *q = ld16(&wg[BB * (4 * c + j) + QS..]);
                    }
                }
                _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_set_m128i(q[1], q[0])),
                    _mm256_set_m128i(q[3], q[2]),
                )
            };
            let zhi = _mm512_srli_epi16::<4>(z);
            let (lo, hi) = if LUT {
                // `IQ4_NL`: each nibble's value plus 128 (unsigned; `SH` = 7 takes the 128
                // back out of the sums).
                let kv = iq4_nl_table_u8();
                (
                    _mm512_shuffle_epi8(kv, _mm512_and_si512(z, nib)),
                    _mm512_shuffle_epi8(kv, _mm512_and_si512(zhi, nib)),
                )
            } else if QH == 0 {
                (_mm512_and_si512(z, nib), _mm512_and_si512(zhi, nib))
            } else {
                // Lane `j`: block `4c + j`'s fifth-bit word; byte `l` of the low (high) nibbles
                // gets `0x10` where its bit `l` (`16 + l`) is set.
                let c4 = 4 * c as i32;
                let idx = _mm512_setr_epi32(
                    8 + c4,
                    8 + c4,
                    8 + c4,
                    8 + c4,
                    9 + c4,
                    9 + c4,
                    9 + c4,
                    9 + c4,
                    10 + c4,
                    10 + c4,
                    10 + c4,
                    10 + c4,
                    11 + c4,
                    11 + c4,
                    11 + c4,
                    11 + c4,
                );
                let h = _mm512_permutexvar_epi32(idx, heads);
                let m_lo = _mm512_test_epi8_mask(_mm512_shuffle_epi8(h, spread[0]), bits);
                let m_hi = _mm512_test_epi8_mask(_mm512_shuffle_epi8(h, spread[1]), bits);
                // The nibble, with `0x10` where the fifth bit is set: a zero-masked move and one
                // ternary-logic step (a masked add took three steps after the and).
                let sixteen = _mm512_set1_epi8(0x10);
                (
                    _mm512_ternarylogic_epi32::<0xEA>(z, nib, _mm512_maskz_mov_epi8(m_lo, sixteen)),
                    _mm512_ternarylogic_epi32::<0xEA>(
                        zhi,
                        nib,
                        _mm512_maskz_mov_epi8(m_hi, sixteen),
                    ),
                )
            };
            // The activations of those blocks in the order of the codes (`QuantX::qs_nib4`): the
            // first halves of the `n` blocks, then their second halves (zero past `n`).
            let n = N - 4 * c;
            for t in 0..T {
                let xq = &x[t].qs_nib4[32 * (xb + 4 * c)..];
                let (x_lo, x_hi) = if n >= 4 {
                    (ldx64(xq), ldx64(&xq[64..]))
                } else {
                    (ldx_upto64(&xq[..16 * n]), ldx_upto64(&xq[16 * n..32 * n]))
                };
                let a = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, x_lo);
                p[t][c] = _mm512_dpbusd_epi32(a, hi, x_hi);
            }
        }
        let dw = _mm256_cvtph_ps(_mm512_castsi512_si128(heads));
        let mw = _mm256_cvtph_ps(_mm512_extracti32x4_epi32::<1>(heads));
        for t in 0..T {
            let (dx, s) = x_scales_sums::<N>(&x[t], xb);
            let mut isum = reduce8_lanes(&p[t]);
            if SH != 0 {
                // `Σ (u - 2^SH)·x = Σ u·x - 2^SH·S`.
                isum = _mm256_sub_epi32(isum, _mm256_sll_epi32(s, _mm_cvtsi32_si128(SH as i32)));
            }
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(isum), acc[t]);
            if MIN != 0 {
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(mw, dx), _mm256_cvtepi32_ps(s), acc[t]);
            }
        }
        if let Some(out) = pairs.as_deref_mut() {
            write_pair(out, g, &mut acc[0]);
        }
    }
}

/// Row pairs (`short_rows`): the two rows of group `g`, lanes 0-3 and 4-7 of `acc` (summed in
/// the order of `hsum_ps`, so they equal the one-row kernel's results bit for bit), into
/// `out[2g]` and `out[2g + 1]`; `acc` starts the next pair at zero.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn write_pair(out: &mut [f32], g: usize, acc: &mut __m256) {
    out[2 * g] = hsum4(_mm256_castps256_ps128(*acc));
    out[2 * g + 1] = hsum4(_mm256_extractf128_ps::<1>(*acc));
    *acc = _mm256_setzero_ps();
}

/// A token's activation scales and code sums (per 32) of blocks `b0..b0 + N` (`N <= 8`), in
/// lanes `0..N`, zero above.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn x_scales_sums<const N: usize>(x: &XRow<'_>, b0: usize) -> (__m256, __m256i) {
    let d = &x.d[b0..b0 + N];
    let sums = &x.sums[2 * b0..2 * (b0 + N)];
    // SAFETY: the masks select the `N` f32 of `d` and the `2N` i16 of `sums`; the masked-off
    // elements are not read.
    let (dx, s) = unsafe {
        (
            _mm256_maskz_loadu_ps(((1u32 << N) - 1) as u8, d.as_ptr()),
            _mm256_maskz_loadu_epi16(((1u32 << (2 * N)) - 1) as u16, sums.as_ptr()),
        )
    };
    (dx, _mm256_madd_epi16(s, _mm256_set1_epi16(1)))
}

/// Lane `j`: the sum of the 4 i32 of 128-bit lane `j % 4` of `p[j / 4]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn reduce8_lanes(p: &[__m512i; 2]) -> __m256i {
    // Per 128-bit lane: [a0 + a2, b0 + b2, a1 + a3, b1 + b3] of p[0], p[1].
    let t = _mm512_add_epi32(
        _mm512_unpacklo_epi32(p[0], p[1]),
        _mm512_unpackhi_epi32(p[0], p[1]),
    );
    // Per 128-bit lane `j`: [A, B, A, B], the lane's sums of p[0] and p[1].
    let u = _mm512_add_epi32(t, _mm512_shuffle_epi32::<0b01_00_11_10>(t));
    let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_castsi512_si256(_mm512_permutexvar_epi32(idx, u))
}

// ---- Q8_0 on 512-bit vectors ------------------------------------------------------------------

/// Bytes per `Q8_0` block: f16 `d`, then 32 i8 codes.
const Q8_BB: usize = 34;

/// `Q8_0` with the float steps of the 256-bit kernel (`dot32!`, and so its results bit for bit):
/// groups of 8 blocks whose 8 exact integer sums go into an f32 vector with the same fused
/// multiply-adds, the last `nb % 8` blocks as one group with zero terms in the missing lanes.
/// The integer part, which bounded that kernel (three instructions per block for the signed
/// product, a horizontal add per 8 blocks, the scales gathered one by one), works on two
/// blocks per 512-bit vector: the codes offset to unsigned (`w + 128`, one xor) go straight
/// into `vpdpbusd` against the activations as stored, and `128·S` (`S` the activation codes'
/// sum per block, which the quantizer keeps) is taken off the block sums.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q8_0<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    let nb = w.len() / Q8_BB;
    let groups = nb / 8;
    let mut acc = [_mm256_setzero_ps(); T];
    // The group size is a constant in every call (see `dot32_zmm`).
    group_q8::<T, 8>(w, x, 0, groups, &mut acc, None);
    let b0 = 8 * groups;
    match nb - b0 {
        1 => group_q8::<T, 1>(w, x, b0, 1, &mut acc, None),
        2 => group_q8::<T, 2>(w, x, b0, 1, &mut acc, None),
        3 => group_q8::<T, 3>(w, x, b0, 1, &mut acc, None),
        4 => group_q8::<T, 4>(w, x, b0, 1, &mut acc, None),
        5 => group_q8::<T, 5>(w, x, b0, 1, &mut acc, None),
        6 => group_q8::<T, 6>(w, x, b0, 1, &mut acc, None),
        7 => group_q8::<T, 7>(w, x, b0, 1, &mut acc, None),
        _ => {}
    }
    let mut out = [0.0f32; T];
    for t in 0..T {
        out[t] = hsum_ps(acc[t]);
    }
    out
}

/// `IDX_Q8[h]`: word `j` (`j < 4`) is the word of block `4h + j`'s f16 scale (byte `34·(4h + j)`
/// of the group) within the two 64-byte chunks at `128h` (word 0 of the group's 8·34 bytes:
/// `0, 17, 34, 51`, then `68 - 64, ..` for blocks 4-7); the other words are unused.
static IDX_Q8: [[u16; 32]; 2] = {
    let mut t = [[0u16; 32]; 2];
    let mut h = 0;
    while h < 2 {
        let mut j = 0;
        while j < 4 {
            t[h][4 * h + j] = (17 * (4 * h + j) - 64 * h) as u16;
            j += 1;
        }
        h += 1;
    }
    t
};

/// `count` groups of `N` blocks (`1 <= N <= 8`) of a `Q8_0` row from block `first`, each a
/// group of [`dot_q8_0`]: the terms added to `acc`, lanes `N..8` with zero terms.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn group_q8<const T: usize, const N: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
    first: usize,
    count: usize,
    acc: &mut [__m256; T],
    mut pairs: Option<&mut [f32]>,
) {
    // The loop over groups is here, not in the caller (see `group32`).
    for g in 0..count {
        let b0 = first + N * g;
        // The activations' first block for the group: the weights' own, or (row pairs: the
        // token's 4 blocks twice) block 0 for every group.
        let xb = if pairs.is_some() { 0 } else { b0 };
        let wg = &w[Q8_BB * b0..Q8_BB * (b0 + N)];
        prefetch(w, Q8_BB * b0, 8 * Q8_BB);
        let len = N * Q8_BB;
        // The 8 f16 scales in words 0-7 (zero for missing blocks: the masked loads stop at `len`).
        let dh = {
            // SAFETY: (both) `IDX_Q8[h]` is 32 u16 (64 bytes); the loads are unaligned.
            let (i0, i1) = unsafe {
                (
                    _mm512_loadu_si512(IDX_Q8[0].as_ptr().cast()),
                    _mm512_loadu_si512(IDX_Q8[1].as_ptr().cast()),
                )
            };
            let (a, b) = (
                ld_upto64(wg, 0, byte_mask(0, len)),
                ld_upto64(wg, 64, byte_mask(64, len)),
            );
            let lo = _mm512_maskz_permutex2var_epi16(0x0f, a, i0, b);
            if N > 4 {
                let (c, d) = (
                    ld_upto64(wg, 128, byte_mask(128, len)),
                    ld_upto64(wg, 192, byte_mask(192, len)),
                );
                _mm512_or_si512(lo, _mm512_maskz_permutex2var_epi16(0xf0, c, i1, d))
            } else {
                lo
            }
        };
        let dw = _mm256_cvtph_ps(_mm512_castsi512_si128(dh));
        let offset = _mm512_set1_epi8(0x80u8 as i8);
        // `p[t][c]`: blocks `2c` and `2c + 1` of the group, one per 256-bit half (zero for a
        // missing block: its activations are zero).
        let mut p = [[_mm512_setzero_si512(); 4]; T];
        // The codes through a reference the compiler cannot relate to the loads above: it
        // otherwise built them out of those four vectors, with about 30 shuffles per group in
        // place of 8 loads.
        let codes = std::hint::black_box(wg);
        for c in 0..N.div_ceil(2) {
            let lo = _mm512_castsi256_si512(ld32(&codes[Q8_BB * 2 * c + 2..]));
            let z = if 2 * c + 1 < N {
                _mm512_inserti64x4::<1>(lo, ld32(&codes[Q8_BB * (2 * c + 1) + 2..]))
            } else {
                lo
            };
            // `w + 128` as unsigned bytes.
            let u = _mm512_xor_si512(z, offset);
            for t in 0..T {
                let xq = &x[t].qs[32 * (xb + 2 * c)..];
                let xv = if 2 * c + 1 < N {
                    ldx64(xq)
                } else {
                    _mm512_zextsi256_si512(ldx(xq))
                };
                p[t][c] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, xv);
            }
        }
        for t in 0..T {
            let (dx, s) = x_scales_sums::<N>(&x[t], xb);
            // `Σ w·x = Σ (w + 128)·x - 128·S`.
            let isum = _mm256_sub_epi32(reduce_pairs8(&p[t]), _mm256_slli_epi32::<7>(s));
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(isum), acc[t]);
        }
        if let Some(out) = pairs.as_deref_mut() {
            write_pair(out, g, &mut acc[0]);
        }
    }
}

/// Lane `j`: the sum of the 8 i32 of 256-bit half `j % 2` of `p[j / 2]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn reduce_pairs8(p: &[__m512i; 4]) -> __m256i {
    // Per 128-bit lane `l`: that lane's sums of p[0], p[1], p[2], p[3].
    let u = lane_sums4(p);
    // Lanes 0 and 2: the sums of the 256-bit halves (lanes 0 + 1, 2 + 3).
    let v = _mm512_add_epi32(u, _mm512_shuffle_i64x2::<0b10_11_00_01>(u, u));
    // Block order: half 0 of p[0], half 1 of p[0], half 0 of p[1], ...
    let idx = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_castsi512_si256(_mm512_permutexvar_epi32(idx, v))
}

// ---- rows of 4 blocks, two at a time ----------------------------------------------------------

/// One token over rows of 4 blocks of 32 (MLA's `attn_k_b`, K = 128, one head's `[512, 128]`
/// per layer): two consecutive rows are 8 consecutive blocks, taken as one 8-block group of
/// the type's kernel against the token's 4 blocks twice; lanes 0-3 make the first row's sum and
/// lanes 4-7 the second's, each in the order of `hsum_ps`, so the results equal the one-row
/// kernel's bit for bit. That halves the per-row work (the scale gather, the reduction, the
/// call), which on rows this short costs more than the codes: one head's `[512, 128]` in L2,
/// one thread, `Q8_0` went from 19.5 to 35 GB/s, `Q5_0` from 12.6 to 24. False (nothing
/// done) for other shapes and types.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn short_rows(
    d: DType,
    data: &[u8],
    rb: usize,
    rows: Range<usize>,
    x: &QuantX,
    y: &OutMatrix,
) -> bool {
    if d.block_size() != 32 || rb != 4 * d.block_bytes() {
        return false;
    }
    // The token's 4 blocks twice: codes (in both orders, for `Q4_0`..`Q5_1` weights), scales
    // and 16-code sums.
    let xr = x.row(0);
    let (mut qs, mut nib4, mut dx, mut sums) = ([0i8; 256], [0i8; 256], [0.0f32; 8], [0i16; 16]);
    let has_nib4 = !xr.qs_nib4.is_empty();
    for h in 0..2 {
        qs[128 * h..128 * (h + 1)].copy_from_slice(&xr.qs[..128]);
        if has_nib4 {
            nib4[128 * h..128 * (h + 1)].copy_from_slice(&xr.qs_nib4[..128]);
        }
        dx[4 * h..4 * (h + 1)].copy_from_slice(&xr.d[..4]);
        sums[8 * h..8 * (h + 1)].copy_from_slice(&xr.sums[..8]);
    }
    let x2 = [XRow {
        qs: &qs,
        d: &dx,
        sums: &sums,
        qs_k4: &[],
        sums32: &[],
        qs_nib4: if has_nib4 { &nib4 } else { &[] },
    }];
    macro_rules! pairs {
        ($group:expr, $dot:ident) => {{
            // Up to 32 pairs per call, their sums kept here and then written out.
            let mut out = [0.0f32; 64];
            let mut n = rows.start;
            while n + 2 <= rows.end {
                let pairs = ((rows.end - n) / 2).min(32);
                let mut acc = [_mm256_setzero_ps()];
                let out = &mut out[..2 * pairs];
                let w = &data[n * rb..(n + 2 * pairs) * rb];
                $group(w, &x2, 0, pairs, &mut acc, Some(&mut *out));
                for (i, &v) in out.iter().enumerate() {
                    // SAFETY: the caller owns columns `rows` of `y` (MatmulQFn contract),
                    // checked to lie within its leading dimension.
                    unsafe { y.write(0, n + i, v) };
                }
                n += 2 * pairs;
            }
            if n < rows.end {
                let v = $dot::<1>(&data[n * rb..(n + 1) * rb], &[xr])[0];
                // SAFETY: as above.
                unsafe { y.write(0, n, v) };
            }
        }};
    }
    match d {
        DType::Q8_0 => pairs!(group_q8::<1, 8>, dot_q8_0),
        DType::Q4_0 => pairs!(group32::<1, 18, 2, 0, 0, 3, false, 8>, dot_q4_0),
        DType::Q4_1 => pairs!(group32::<1, 20, 4, 0, 2, 0, false, 8>, dot_q4_1),
        DType::Q5_0 => pairs!(group32::<1, 22, 6, 2, 0, 4, false, 8>, dot_q5_0),
        DType::Q5_1 => pairs!(group32::<1, 24, 8, 4, 2, 0, false, 8>, dot_q5_1),
        DType::IQ4NL => pairs!(group32::<1, 18, 2, 0, 0, 7, true, 8>, dot_iq4_nl),
        _ => return false,
    }
    true
}

/// The sum of the 4 lanes, in the order of the last two steps of `hsum_ps`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn hsum4(v: __m128) -> f32 {
    let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
}

mod grid16;
mod k23;
mod rows16;
use k23::{dot_q2_k, dot_q3_k};

/// `IQ2_XXS`: the grid-in-registers kernel (`grid16`) where the CPU has VBMI.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_iq2_xxs<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    if std::arch::is_x86_feature_detected!("avx512vbmi") {
        // SAFETY: the CPU has VBMI (checked) and this table's features.
        return unsafe { grid16::dot_iq2_xxs_vbmi::<T>(w, x) };
    }
    dot_iq2_xxs_ymm::<T>(w, x)
}

/// `IQ3_XXS`: the grid-in-registers kernel (`grid16`) where the CPU has VBMI.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_iq3_xxs<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    if std::arch::is_x86_feature_detected!("avx512vbmi") {
        // SAFETY: the CPU has VBMI (checked) and this table's features.
        return unsafe { grid16::dot_iq3_xxs_vbmi::<T>(w, x) };
    }
    dot_iq3_xxs_ymm::<T>(w, x)
}
