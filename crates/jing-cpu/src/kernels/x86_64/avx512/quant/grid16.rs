//! `IQ2_XXS` and `IQ3_XXS` with AVX-512 VBMI: the grid in registers instead of in memory.
//!
//! Both grids have 256 entries whose elements take few values (`IQ2_XXS`: 8 elements from
//! {8, 25, 43}; `IQ3_XXS`: 4 from 8 values), so an entry packs into 16 bits and the whole grid
//! into 8 vectors. 32 grid indices then become their entries with 4 two-table word permutes
//! and 3 blends, where the shared kernel makes a scalar load per index and assembles the
//! loads into vectors (`IQ2_XXS`: about 26 of its 50 cycles per block on Zen 5).
//!
//! - The indices are placed so that each qword gets the entries of one group of 8 elements
//!   in several chunk pairs (64 elements); `vpmultishiftqb` cuts a pair's entries into code
//!   fields, and `vpermb` makes the fields magnitudes.
//! - The 7-bit sign indices are cut out the same way and looked up in `KSIGNS`, held in two
//!   vectors (`vpermi2b`); a bit test per element makes each pair's sign mask (a store and
//!   reloads of the masks were slower: 10.1 against 11.6 GB/s for `IQ2_XXS`).
//! - The signs go onto the activations (a masked subtract), the magnitudes into `vpmaddubsw`,
//!   the scales `2s + 1` into `vpdpwssd`, as in the shared kernel.
//! - Blocks go in groups of [`G`] (one reduction per group, the generic float terms in block
//!   order), so the results are the generic kernel's bit for bit.
//!
//! One Zen 5 thread, from L2, `IQ2_XXS`: 6.3 -> 11.6 GB/s for one token; 128 tokens 66 -> 76
//! GOP/s.

use super::*;
use jing_tensor::quant::iq_tables::{IQ2XXS_GRID, IQ3XXS_GRID, KSIGNS};

/// The magnitudes of the `IQ2_XXS` grid, by 2-bit code.
const MAGNITUDES2: [u8; 4] = [8, 25, 43, 0];

/// The magnitudes of the `IQ3_XXS` grid, by 3-bit code.
const MAGNITUDES3: [u8; 8] = [4, 12, 20, 28, 36, 44, 52, 62];

/// The code of grid magnitude `v` in `m` (its index).
const fn code_of(m: &[u8], v: u8) -> u16 {
    let mut i = 0;
    while i < m.len() {
        if m[i] == v {
            return i as u16;
        }
        i += 1;
    }
    panic!("grid value outside its magnitudes")
}

/// `IQ2XXS_GRID` packed: bits `2j..2j + 2` of entry `e` are the code of element `j`.
static GRID2: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut e = 0;
    while e < 256 {
        let g = IQ2XXS_GRID[e].to_le_bytes();
        let mut j = 0;
        while j < 8 {
            t[e] |= code_of(&MAGNITUDES2, g[j]) << (2 * j);
            j += 1;
        }
        e += 1;
    }
    t
};

/// `IQ3XXS_GRID` packed: bits `3j..3j + 3` of entry `e` are the code of element `j`.
static GRID3: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut e = 0;
    while e < 256 {
        let g = IQ3XXS_GRID[e].to_le_bytes();
        let mut j = 0;
        while j < 4 {
            t[e] |= code_of(&MAGNITUDES3, g[j]) << (3 * j);
            j += 1;
        }
        e += 1;
    }
    t
};

/// `IQ2_XXS`, after `d` (64 bytes; per chunk of 32 elements: 4 grid index bytes, then a word
/// of 4 seven-bit `KSIGNS` indices and the 4-bit scale `s` on top). Byte `2w` (word
/// `w = 4j + r`) picks the grid index of group `j` (8 elements, one entry) of chunk pair `r`
/// (chunks `2r`, `2r + 1`): qword `j` gets the entries of group `j` of all four pairs.
static PICK2: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut w = 0;
    while w < 32 {
        let (j, r) = (w / 4, w % 4);
        t[2 * w] = (8 * (2 * r + j / 4) + j % 4) as u8;
        w += 1;
    }
    t
};

/// `IQ3_XXS`, from its 64 grid index bytes (8 per chunk, 4 elements each): `PICK3[h]`, byte
/// `2w` (word `w = 4j + s`) picks entry `2j + s % 2` of chunk pair `2h + s / 2` (group `j`
/// takes two entries): qword `j` gets the entries of group `j` of pairs `2h` and `2h + 1`.
static PICK3: [[u8; 64]; 2] = {
    let mut t = [[0u8; 64]; 2];
    let mut h = 0;
    while h < 2 {
        let mut w = 0;
        while w < 32 {
            let (j, s) = (w / 4, w % 4);
            let (r, e) = (2 * h + s / 2, 2 * j + s % 2);
            t[h][2 * w] = (8 * (2 * r + e / 8) + e % 8) as u8;
            w += 1;
        }
        h += 1;
    }
    t
};

/// `FIELDS2[r]`: per qword, byte `k` takes bits `16r + 2k..16r + 2k + 8` (`vpmultishiftqb`
/// controls: the code of element `k` of word `r`'s entry in its low 2 bits).
static FIELDS2: [[u8; 64]; 4] = {
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

/// `FIELDS3[p]`: per qword, byte `k` takes the code of element `k % 4` of the entry in word
/// `2(p % 2) + k / 4` in its low 3 bits.
static FIELDS3: [[u8; 64]; 4] = {
    let mut t = [[0u8; 64]; 4];
    let mut p = 0;
    while p < 4 {
        let mut i = 0;
        while i < 64 {
            let k = i % 8;
            t[p][i] = (16 * (2 * (p % 2) + k / 4) + 3 * (k % 4)) as u8;
            i += 1;
        }
        p += 1;
    }
    t
};

/// A `vpermb` table: byte `b` (its low 6 bits) to the magnitude of code `b % m.len()`.
const fn to_magnitude<const M: usize>(m: &[u8; M]) -> [u8; 64] {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = m[i % M];
        i += 1;
    }
    t
}
static TO_MAGNITUDE2: [u8; 64] = to_magnitude(&MAGNITUDES2);
static TO_MAGNITUDE3: [u8; 64] = to_magnitude(&MAGNITUDES3);

/// `vpmultishiftqb` controls for the sign indices: `IQ2_XXS` (byte `k < 4` of qword `c`: bits
/// `32 + 7k..`, chunk `c`'s word in the high half), then `IQ3_XXS` (its sign words packed, two
/// per qword: bytes `k < 4` at `7k`, bytes `4 + k` at `32 + 7k`).
static SIGN_FIELDS2: [u8; 64] = {
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
static SIGN_FIELDS3: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        let k = i % 8;
        t[i] = (32 * (k / 4) + 7 * (k % 4)) as u8;
        i += 1;
    }
    t
};

/// `IQ2_XXS`: byte `4c + k` (`c < 8`, `k < 4`) takes byte `k` of qword `c` (the sign indices
/// of chunk `c` in a row; `IQ3_XXS`'s are in that order already).
static PACK2: [u8; 64] = {
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

/// `SCALE_PAIR[p]`: words 0-15 take word `at·2p`, words 16-31 word `at·(2p + 1)`: the scales
/// of chunks `2p` and `2p + 1`, one per `at` words (`IQ2_XXS`: 4, a qword per chunk;
/// `IQ3_XXS`: 2, a dword).
const fn scale_pair(at: usize) -> [[u16; 32]; 4] {
    let mut t = [[0u16; 32]; 4];
    let mut p = 0;
    while p < 4 {
        let mut w = 0;
        while w < 32 {
            t[p][w] = (at * (2 * p + w / 16)) as u16;
            w += 1;
        }
        p += 1;
    }
    t
}
static SCALE_PAIR2: [[u16; 32]; 4] = scale_pair(4);
static SCALE_PAIR3: [[u16; 32]; 4] = scale_pair(2);

/// The vectors a grid type's kernel keeps (loaded once per row).
struct Grid16 {
    grid: [__m512i; 8],
    pick: [__m512i; 2],
    fields: [__m512i; 4],
    to_magnitude: __m512i,
    ksigns: [__m512i; 2],
    sign_fields: __m512i,
    pack: __m512i,
    repeat: [__m512i; 4],
    scale_pair: [__m512i; 4],
}

impl Grid16 {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    fn new(grid: &[u16; 256], pick: [__m512i; 2], fields: [__m512i; 4]) -> Grid16 {
        let g = |i: usize| -> &[u16; 32] { grid[32 * i..32 * i + 32].try_into().expect("32") };
        let half = |i: usize| -> &[u8; 64] { KSIGNS[64 * i..64 * i + 64].try_into().expect("64") };
        Grid16 {
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
            pick,
            fields,
            to_magnitude: _mm512_setzero_si512(),
            ksigns: [ld_table(half(0)), ld_table(half(1))],
            sign_fields: _mm512_setzero_si512(),
            pack: ld_table(&PACK2),
            repeat: tables(&REPEAT),
            scale_pair: [_mm512_setzero_si512(); 4],
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    fn iq2_xxs() -> Grid16 {
        let pick = ld_table(&PICK2);
        Grid16 {
            to_magnitude: ld_table(&TO_MAGNITUDE2),
            sign_fields: ld_table(&SIGN_FIELDS2),
            scale_pair: tables(&SCALE_PAIR2),
            ..Grid16::new(&GRID2, [pick, pick], tables(&FIELDS2))
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    fn iq3_xxs() -> Grid16 {
        Grid16 {
            to_magnitude: ld_table(&TO_MAGNITUDE3),
            sign_fields: ld_table(&SIGN_FIELDS3),
            scale_pair: tables(&SCALE_PAIR3),
            ..Grid16::new(&GRID3, tables(&PICK3), tables(&FIELDS3))
        }
    }

    /// The packed entries of the 32 grid indices that `pick[h]` takes from `v` (word by word).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    fn entries(&self, v: __m512i, h: usize) -> __m512i {
        let idx = _mm512_maskz_permutexvar_epi8(0x5555_5555_5555_5555, self.pick[h], v);
        let g = &self.grid;
        let quarter = |k: usize| _mm512_permutex2var_epi16(g[2 * k], idx, g[2 * k + 1]);
        let (q0, q1, q2, q3) = (quarter(0), quarter(1), quarter(2), quarter(3));
        let bit6 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(0x40));
        let bit7 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(0x80));
        _mm512_mask_blend_epi16(
            bit7,
            _mm512_mask_blend_epi16(bit6, q0, q1),
            _mm512_mask_blend_epi16(bit6, q2, q3),
        )
    }

    /// Chunk pair `p` (elements `64p..64p + 64` of block `b`) into `acc`: its magnitudes from
    /// `entries` (as `fields[p]` reads them), its signs from `sign_bytes` (byte `8p + j`:
    /// group `j`), its scales from `scales` (as `scale_pair[p]` reads them).
    #[allow(
        clippy::too_many_arguments,
        reason = "the vectors of one step of a block"
    )]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    fn pair<const T: usize>(
        &self,
        acc: &mut [__m512i; T],
        x: &[XRow<'_>; T],
        b: usize,
        p: usize,
        entries: __m512i,
        sign_bytes: __m512i,
        scales: __m512i,
    ) {
        let codes = _mm512_multishift_epi64_epi8(self.fields[p], entries);
        let g = _mm512_permutexvar_epi8(codes, self.to_magnitude);
        let sc = _mm512_permutexvar_epi16(self.scale_pair[p], scales);
        let negative = _mm512_test_epi8_mask(
            _mm512_permutexvar_epi8(self.repeat[p], sign_bytes),
            _mm512_set1_epi64(0x8040_2010_0804_0201u64 as i64),
        );
        for t in 0..T {
            let xq = ldx64(&x[t].qs[256 * b + 64 * p..]);
            let xq = _mm512_mask_sub_epi8(xq, negative, _mm512_setzero_si512(), xq);
            acc[t] = _mm512_dpwssd_epi32(acc[t], _mm512_maddubs_epi16(g, xq), sc);
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
    let c = Grid16::iq2_xxs();
    by_groups!(w.len() / 66, |N, b0| grid16_group::<T, N, 66>(
        w, x, b0, &c, 0.125, &mut out
    ));
    out
}

/// The `IQ3_XXS` kernel.
///
/// # Safety
/// The CPU has AVX-512 VBMI (and the VNNI table's features).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
pub(super) unsafe fn dot_iq3_xxs_vbmi<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    let mut out = [0.0f32; T];
    let c = Grid16::iq3_xxs();
    by_groups!(w.len() / 98, |N, b0| grid16_group::<T, N, 98>(
        w, x, b0, &c, 0.25, &mut out
    ));
    out
}

/// One block of `BB` bytes (66: `IQ2_XXS`, 98: `IQ3_XXS`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
fn grid16_block<const T: usize, const BB: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
    b: usize,
    c: &Grid16,
) -> [__m512i; T] {
    if BB == 66 {
        iq2_xxs_block(block::<66>(w, b), x, b, c)
    } else {
        iq3_xxs_block(block::<98>(w, b), x, b, c)
    }
}

/// Blocks `b0..b0 + N` of a row of `BB`-byte blocks of a grid type with `d` at 0: per token,
/// `k_term_sym(I_b)` with `dc = d·dc_scale` (the generic kernel's `dc`, exact) added to `out`
/// in block order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
fn grid16_group<const T: usize, const N: usize, const BB: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
    b0: usize,
    c: &Grid16,
    dc_scale: f32,
    out: &mut [f32; T],
) {
    prefetch(w, BB * b0, BB * N);
    // Written out per block, as in `k4_group`.
    let zero = [_mm512_setzero_si512(); T];
    let mut r = [zero; G];
    r[0] = grid16_block::<T, BB>(w, x, b0, c);
    if N > 1 {
        r[1] = grid16_block::<T, BB>(w, x, b0 + 1, c);
    }
    if N > 2 {
        r[2] = grid16_block::<T, BB>(w, x, b0 + 2, c);
    }
    if N > 3 {
        r[3] = grid16_block::<T, BB>(w, x, b0 + 3, c);
    }
    let d = f16x4(&u16s::<N, BB, 0>(w, b0));
    let dc = _mm_mul_ps(d, _mm_set1_ps(dc_scale));
    add_sym_terms_f32::<T, N>(&r, dc, x, b0, out);
}

/// One `IQ2_XXS` block `b` (`blk`): per token, i32 lanes summing to `I = Σ_c m_c Σ c·q`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
fn iq2_xxs_block<const T: usize>(
    blk: &[u8; 66],
    x: &[XRow<'_>; T],
    b: usize,
    c: &Grid16,
) -> [__m512i; T] {
    // After `d`: per chunk, 4 grid index bytes, then the word of its signs and scale.
    let v = ld64(&blk[2..]);
    // Byte 8r + j: the sign byte of group j of chunk pair r (bit l: element l negative).
    let sign_idx = _mm512_permutexvar_epi8(c.pack, _mm512_multishift_epi64_epi8(c.sign_fields, v));
    let sign_bytes = _mm512_permutex2var_epi8(c.ksigns[0], sign_idx, c.ksigns[1]);
    // Per qword c: 2s + 1 (chunk c's scale) in its low word.
    let s = _mm512_srli_epi64::<60>(v);
    let scales = _mm512_or_si512(_mm512_add_epi64(s, s), _mm512_set1_epi64(1));
    let entries = c.entries(v, 0);
    let mut acc = [_mm512_setzero_si512(); T];
    for p in 0..4 {
        c.pair(&mut acc, x, b, p, entries, sign_bytes, scales);
    }
    acc
}

/// One `IQ3_XXS` block `b` (`blk`): per token, i32 lanes summing to `I = Σ_c m_c Σ c·q`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
fn iq3_xxs_block<const T: usize>(
    blk: &[u8; 98],
    x: &[XRow<'_>; T],
    b: usize,
    c: &Grid16,
) -> [__m512i; T] {
    // After `d`: the 64 grid indices (8 per chunk), then a word per chunk of its signs and
    // scale.
    let v = ld64(&blk[2..]);
    let words = _mm512_zextsi256_si512(ld32(&blk[66..]));
    // Byte 8r + j: the sign byte of group j of chunk pair r (bit l: element l negative).
    let sign_idx = _mm512_multishift_epi64_epi8(c.sign_fields, words);
    let sign_bytes = _mm512_permutex2var_epi8(c.ksigns[0], sign_idx, c.ksigns[1]);
    // Per dword c: 2s + 1 (chunk c's scale) in its low word.
    let s = _mm512_srli_epi32::<28>(words);
    let scales = _mm512_or_si512(_mm512_add_epi32(s, s), _mm512_set1_epi32(1));
    // Pairs 0 and 1, then 2 and 3.
    let entries = [c.entries(v, 0), c.entries(v, 1)];
    let mut acc = [_mm512_setzero_si512(); T];
    for p in 0..4 {
        c.pair(&mut acc, x, b, p, entries[p / 2], sign_bytes, scales);
    }
    acc
}
