//! `IQ2_XXS` with AVX-512 VBMI: the grid in registers instead of in memory.
//!
//! The 256 grid entries are 8 magnitudes each from {8, 25, 43}, so an entry packs into 16 bits
//! (2 per element) and the whole grid into 8 vectors. A block's 32 grid indices then become
//! their entries with 4 two-table word permutes and 3 blends, where the shared kernel makes 32
//! scalar loads and assembles them into vectors (about 26 of its 50 cycles per block on
//! Zen 5).
//!
//! - The indices are placed so that each qword gets the entries of one group of 8 elements in
//!   all four chunk pairs; `vpmultishiftqb` cuts a pair's entries into 2-bit fields, and
//!   `vpermb` makes the fields magnitudes.
//! - The 7-bit sign indices are cut out the same way and looked up in `KSIGNS`, held in two
//!   vectors (`vpermi2b`); a bit test per element makes each pair's sign mask (a store and
//!   reloads of the masks were slower: 10.1 against 11.6 GB/s).
//! - The signs go onto the activations (a masked subtract), the magnitudes into `vpmaddubsw`,
//!   the scales `2s + 1` into `vpdpwssd`, as in the shared kernel.
//! - Blocks go in groups of [`G`] (one reduction per group, the generic float terms in block
//!   order), so the result is the generic kernel's bit for bit.
//!
//! One Zen 5 thread, from L2: 6.3 -> 11.6 GB/s for one token; 128 tokens 66 -> 76 GOP/s.

use super::*;
use jing_tensor::quant::iq_tables::{IQ2XXS_GRID, KSIGNS};

/// The grid magnitudes, by 2-bit code.
const MAGNITUDES: [u8; 3] = [8, 25, 43];

/// `IQ2XXS_GRID` packed: bits `2j..2j + 2` of entry `e` are the code (index into
/// [`MAGNITUDES`]) of element `j`.
static GRID16: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut e = 0;
    while e < 256 {
        let g = IQ2XXS_GRID[e].to_le_bytes();
        let mut j = 0;
        while j < 8 {
            let code = match g[j] {
                8 => 0,
                25 => 1,
                43 => 2,
                _ => panic!("IQ2_XXS grid value outside MAGNITUDES"),
            };
            t[e] |= code << (2 * j);
            j += 1;
        }
        e += 1;
    }
    t
};

/// Byte `2w` (word `w = 4j + r`) picks the grid index of group `j` (8 elements) of chunk pair
/// `r` (chunks `2r`, `2r + 1`) from the block's 64 bytes after `d` (each chunk: 4 index bytes,
/// then its sign and scale word). So qword `j` gets the entries of group `j` of all four pairs.
static PICK: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut w = 0;
    while w < 32 {
        let (j, r) = (w / 4, w % 4);
        t[2 * w] = (8 * (2 * r + j / 4) + j % 4) as u8;
        w += 1;
    }
    t
};

/// `FIELDS[r]`: per qword, byte `k` takes bits `16r + 2k..16r + 2k + 8` (`vpmultishiftqb`
/// controls: the code of element `k` of word `r`'s entry in its low 2 bits).
static FIELDS: [[u8; 64]; 4] = {
    let mut t = [[0u8; 64]; 4];
    let mut r = 0;
    while r < 4 {
        let mut i = 0;
        while i < 64 {
            t[r][i] = (16 * r + 2 * (i % 8)) as u8;
            i += 1;
        }
        r += 1;
    }
    t
};

/// `vpermb` table: byte `b` (its low 6 bits) to the magnitude of code `b & 3`.
static TO_MAGNITUDE: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = if i % 4 < 3 { MAGNITUDES[i % 4] } else { 0 };
        i += 1;
    }
    t
};

/// Per qword `c` (chunk `c`: 4 index bytes, then a word of 4 seven-bit `KSIGNS` indices and
/// the 4-bit scale `s` on top), byte `k < 4` takes bits `32 + 7k..40 + 7k` (sign index `k` in
/// its low 7 bits).
static SIGN_FIELDS: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = if i % 8 < 4 {
            (32 + 7 * (i % 8)) as u8
        } else {
            0
        };
        i += 1;
    }
    t
};

/// Byte `4c + k` (`c < 8`, `k < 4`) takes byte `k` of qword `c`.
static PACK: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 32 {
        t[i] = (8 * (i / 4) + i % 4) as u8;
        i += 1;
    }
    t
};

/// `REPEAT[r]`: qword `j` is byte `8r + j` eight times (the sign byte of group `j` of chunk
/// pair `r`, for a bit test per element).
static REPEAT: [[u8; 64]; 4] = {
    let mut t = [[0u8; 64]; 4];
    let mut r = 0;
    while r < 4 {
        let mut i = 0;
        while i < 64 {
            t[r][i] = (8 * r + i / 8) as u8;
            i += 1;
        }
        r += 1;
    }
    t
};

/// `SCALE_PAIR[p]`: words 0-15 take word `4·2p`, words 16-31 word `4·(2p + 1)` (the low words
/// of the qwords holding the scales of chunks `2p` and `2p + 1`).
static SCALE_PAIR: [[u16; 32]; 4] = {
    let mut t = [[0u16; 32]; 4];
    let mut p = 0;
    while p < 4 {
        let mut w = 0;
        while w < 32 {
            t[p][w] = (4 * (2 * p + w / 16)) as u16;
            w += 1;
        }
        p += 1;
    }
    t
};

/// The vectors the kernel keeps (loaded once per row).
struct Consts {
    grid: [__m512i; 8],
    pick: __m512i,
    fields: [__m512i; 4],
    to_magnitude: __m512i,
    ksigns: [__m512i; 2],
    sign_fields: __m512i,
    pack: __m512i,
    repeat: [__m512i; 4],
    scale_pair: [__m512i; 4],
}

/// 64 bytes of `p` (a 64-byte table).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
fn ld_table<T>(p: &T) -> __m512i {
    const { assert!(size_of::<T>() == 64) };
    // SAFETY: `p` is 64 bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512((p as *const T).cast()) }
}

impl Consts {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    fn new() -> Consts {
        let g = |i: usize| -> &[u16; 32] { GRID16[32 * i..32 * i + 32].try_into().expect("32") };
        Consts {
            grid: [
                ld_table(g(0)),
                ld_table(g(1)),
                ld_table(g(2)),
                ld_table(g(3)),
                ld_table(g(4)),
                ld_table(g(5)),
                ld_table(g(6)),
                ld_table(g(7)),
            ],
            pick: ld_table(&PICK),
            fields: [
                ld_table(&FIELDS[0]),
                ld_table(&FIELDS[1]),
                ld_table(&FIELDS[2]),
                ld_table(&FIELDS[3]),
            ],
            to_magnitude: ld_table(&TO_MAGNITUDE),
            ksigns: [
                ld_table::<[u8; 64]>(KSIGNS[..64].try_into().expect("64")),
                ld_table::<[u8; 64]>(KSIGNS[64..].try_into().expect("64")),
            ],
            sign_fields: ld_table(&SIGN_FIELDS),
            pack: ld_table(&PACK),
            repeat: [
                ld_table(&REPEAT[0]),
                ld_table(&REPEAT[1]),
                ld_table(&REPEAT[2]),
                ld_table(&REPEAT[3]),
            ],
            scale_pair: [
                ld_table(&SCALE_PAIR[0]),
                ld_table(&SCALE_PAIR[1]),
                ld_table(&SCALE_PAIR[2]),
                ld_table(&SCALE_PAIR[3]),
            ],
        }
    }
}

/// The `IQ2_XXS` kernel.
///
/// # Safety
/// The CPU has AVX-512 VBMI (and the VNNI table's features).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
pub(super) unsafe fn dot_iq2_xxs_vbmi<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    let mut out = [0.0f32; T];
    let c = Consts::new();
    by_groups!(w.len() / 66, |N, b0| iq2_xxs_group::<T, N>(
        w, x, b0, &c, &mut out
    ));
    out
}

/// Blocks `b0..b0 + N` of an `IQ2_XXS` row: per token, `k_term_sym(I_b)` with `dc = d/8`
/// added to `out` in block order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
fn iq2_xxs_group<const T: usize, const N: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
    b0: usize,
    c: &Consts,
    out: &mut [f32; T],
) {
    prefetch(w, 66 * b0, 66 * N);
    // Written out per block, as in `k4_group`.
    let zero = [_mm512_setzero_si512(); T];
    let mut r = [zero; G];
    let mut dh = [0u16; 8];
    r[0] = iq2_xxs_block::<T>(block::<66>(w, b0), x, b0, c);
    dh[0] = u16::from_le_bytes([w[66 * b0], w[66 * b0 + 1]]);
    if N > 1 {
        r[1] = iq2_xxs_block::<T>(block::<66>(w, b0 + 1), x, b0 + 1, c);
        dh[1] = u16::from_le_bytes([w[66 * b0 + 66], w[66 * b0 + 67]]);
    }
    if N > 2 {
        r[2] = iq2_xxs_block::<T>(block::<66>(w, b0 + 2), x, b0 + 2, c);
        dh[2] = u16::from_le_bytes([w[66 * b0 + 132], w[66 * b0 + 133]]);
    }
    if N > 3 {
        r[3] = iq2_xxs_block::<T>(block::<66>(w, b0 + 3), x, b0 + 3, c);
        dh[3] = u16::from_le_bytes([w[66 * b0 + 198], w[66 * b0 + 199]]);
    }
    // SAFETY: `dh` is 8 u16 (16 bytes); the load is unaligned.
    let d = _mm_cvtph_ps(unsafe { _mm_loadu_si128(dh.as_ptr().cast()) });
    // dc = d/8, as the generic kernel's `dc_8` (exact).
    let dc = _mm_mul_ps(d, _mm_set1_ps(0.125));
    for t in 0..T {
        let i = _mm_cvtepi32_ps(reduce4(&[r[0][t], r[1][t], r[2][t], r[3][t]]));
        let terms = _mm_mul_ps(_mm_mul_ps(dx4::<N>(&x[t], b0), dc), i);
        add_terms::<N>(&mut out[t], terms);
    }
}

/// One `IQ2_XXS` block `b` (`blk`): per token, i32 lanes summing to `I = Σ_c m_c Σ c·q`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
fn iq2_xxs_block<const T: usize>(
    blk: &[u8; 66],
    x: &[XRow<'_>; T],
    b: usize,
    c: &Consts,
) -> [__m512i; T] {
    // After `d`: per chunk, 4 grid index bytes, then the word of its signs and scale.
    let v = ld64(&blk[2..]);
    // The sign bytes of the 8 chunks (bit j of byte 4c + k: element 8k + j of chunk c is
    // negative), as 4 masks of two chunks each.
    let sign_idx = _mm512_permutexvar_epi8(c.pack, _mm512_multishift_epi64_epi8(c.sign_fields, v));
    let sign_bytes = _mm512_permutex2var_epi8(c.ksigns[0], sign_idx, c.ksigns[1]);
    let element_bit = _mm512_set1_epi64(0x8040_2010_0804_0201u64 as i64);
    // Per qword c: 2s + 1 (chunk c's scale) in its low word.
    let s = _mm512_srli_epi64::<60>(v);
    let scales = _mm512_or_si512(_mm512_add_epi64(s, s), _mm512_set1_epi64(1));
    // Word 4j + r: the grid index (zero-extended) of group j of chunk pair r, then its entry.
    let idx = _mm512_maskz_permutexvar_epi8(0x5555_5555_5555_5555, c.pick, v);
    let quarter = |k: usize| _mm512_permutex2var_epi16(c.grid[2 * k], idx, c.grid[2 * k + 1]);
    let (q0, q1, q2, q3) = (quarter(0), quarter(1), quarter(2), quarter(3));
    let bit6 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(0x40));
    let bit7 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(0x80));
    let entries = _mm512_mask_blend_epi16(
        bit7,
        _mm512_mask_blend_epi16(bit6, q0, q1),
        _mm512_mask_blend_epi16(bit6, q2, q3),
    );
    let mut acc = [_mm512_setzero_si512(); T];
    for p in 0..4 {
        // The 64 magnitudes of chunks 2p and 2p + 1.
        let codes = _mm512_multishift_epi64_epi8(c.fields[p], entries);
        let g = _mm512_permutexvar_epi8(codes, c.to_magnitude);
        let sc = _mm512_permutexvar_epi16(c.scale_pair[p], scales);
        let negative = _mm512_test_epi8_mask(
            _mm512_permutexvar_epi8(c.repeat[p], sign_bytes),
            element_bit,
        );
        for t in 0..T {
            let xq = ldx64(&x[t].qs[256 * b + 64 * p..]);
            let xq = _mm512_mask_sub_epi8(xq, negative, _mm512_setzero_si512(), xq);
            acc[t] = _mm512_dpwssd_epi32(acc[t], _mm512_maddubs_epi16(g, xq), sc);
        }
    }
    acc
}
