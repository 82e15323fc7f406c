//! `Q2_K` for one token on AVX2, in groups of [`G`] blocks as `Q4_K` (see the parent module):
//! a vector per block of exact i32 lanes, the group's reduced together by horizontal adds, the
//! generic float terms four at a time and added in block order (the generic kernel's result,
//! bit for bit). Each chunk of 32 codes (two sub-blocks of 16, one per 128-bit lane) takes its
//! two scales by one byte shuffle. Several tokens keep the shared 256-bit kernel (block by
//! block).
//!
//! One Zen 5 thread (`JING_TABLE=avx2`), from L2: 15.4 -> 19.5 GB/s. The same grouping for
//! `Q3_K` measured no faster (14.6 either way), so it keeps the shared kernel.

use super::*;
use jing_tensor::quant::q2_k;

/// `Q2_SCALE[c]`: for chunk `c` (sub-blocks `2c` and `2c + 1`), from a vector holding a
/// block's 16 scale bytes in each 128-bit lane, scale `2c` as i16 in the low lane and scale
/// `2c + 1` in the high lane (an index with its top bit set makes a zero byte).
static Q2_SCALE: [[u8; 32]; 8] = {
    let mut t = [[0u8; 32]; 8];
    let mut c = 0;
    while c < 8 {
        let mut i = 0;
        while i < 32 {
            t[c][i] = if i % 2 == 0 {
                (2 * c + i / 16) as u8
            } else {
                0x80
            };
            i += 1;
        }
        c += 1;
    }
    t
};

/// The f16 at `AT` of blocks `b0..b0 + N` of a row of `BB`-byte blocks as f32 lanes (zero
/// past `N`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16x4_at<const N: usize, const BB: usize, const AT: usize>(w: &[u8], b0: usize) -> __m128 {
    let mut h = [0u16; 8];
    for (b, h) in h[..N].iter_mut().enumerate() {
        let blk = block::<BB>(w, b0 + b);
        *h = u16::from_le_bytes([blk[AT], blk[AT + 1]]);
    }
    // SAFETY: `h` is 8 u16 (16 bytes); the load is unaligned.
    _mm_cvtph_ps(unsafe { _mm_loadu_si128(h.as_ptr().cast()) })
}

/// The `Q2_K` kernel of the AVX2 table.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q2_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    if T > 1 {
        return dot_q2_k_ymm::<T>(w, x);
    }
    let (x, mut acc) = (&x[0], 0.0f32);
    by_groups!(w.len() / 84, |N, b0| q2_group::<N>(w, x, b0, &mut acc));
    let mut out = [0.0f32; T];
    out[0] = acc;
    out
}

/// Blocks `b0..b0 + N` of a `Q2_K` row for one token: `Σ_b k_term(I_b, M_b)` added to `acc`
/// in block order, `I = Σ_j sc_j Σ u·q` and `M = Σ_j m_j·S_j` (generic `dot_q2_k`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q2_group<const N: usize>(w: &[u8], x: &XRow<'_>, b0: usize, acc: &mut f32) {
    prefetch(w, 84 * b0, 84 * N);
    let zero = _mm256_setzero_si256();
    // Written out per block (as `k4_group`): per block, its I lanes and its M lanes.
    let (i0, m0) = q2_block(block::<84>(w, b0), x, b0);
    let (i1, m1) = if N > 1 {
        q2_block(block::<84>(w, b0 + 1), x, b0 + 1)
    } else {
        (zero, zero)
    };
    let (i2, m2) = if N > 2 {
        q2_block(block::<84>(w, b0 + 2), x, b0 + 2)
    } else {
        (zero, zero)
    };
    let (i3, m3) = if N > 3 {
        q2_block(block::<84>(w, b0 + 3), x, b0 + 3)
    } else {
        (zero, zero)
    };
    let (i, m) = (sums4([i0, i1, i2, i3]), sums4([m0, m1, m2, m3]));
    let d = f16x4_at::<N, 84, { q2_k::D }>(w, b0);
    let dmin = f16x4_at::<N, 84, { q2_k::DMIN }>(w, b0);
    add_min_terms::<N>(acc, x, b0, (d, dmin), (i, m));
}

/// One `Q2_K` block `b` (`blk`) for one token: i32 lanes summing to `I`, and i32 lanes
/// summing to `M`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q2_block(blk: &[u8; 84], x: &XRow<'_>, b: usize) -> (__m256i, __m256i) {
    let nib = _mm_set1_epi8(0x0f);
    let three = _mm256_set1_epi8(3);
    let raw = ld16(&blk[q2_k::SCALES..]);
    // The 16 scales (low nibbles) in both lanes.
    let sc = _mm256_broadcastsi128_si256(_mm_and_si128(raw, nib));
    let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(raw), nib));
    let xq = &x.qs[256 * b..256 * b + 256];
    let mut acc = _mm256_setzero_si256();
    for h in 0..2 {
        let q = ld32(&blk[q2_k::QS + 32 * h..]);
        let u = [
            _mm256_and_si256(q, three),
            _mm256_and_si256(_mm256_srli_epi16::<2>(q), three),
            _mm256_and_si256(_mm256_srli_epi16::<4>(q), three),
            _mm256_and_si256(_mm256_srli_epi16::<6>(q), three),
        ];
        for (s, &u) in u.iter().enumerate() {
            let c = 4 * h + s;
            let scv = _mm256_shuffle_epi8(sc, table32(&Q2_SCALE[c]));
            acc = dot_u8_i8_scaled(acc, u, ldx(&xq[32 * c..]), scv);
        }
    }
    let m = _mm256_madd_epi16(mins, ld_i16x16(&x.sums[16 * b..]));
    (acc, m)
}
