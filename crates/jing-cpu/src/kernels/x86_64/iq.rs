//! The codebook IQ kernels (`IQ1_S`, `IQ1_M`, `IQ2_XXS`, `IQ2_XS`, `IQ2_S`, `IQ3_XXS`,
//! `IQ3_S`), stamped out inside [`quant_kernels!`] by [`iq_kernels!`] for each ISA.
//!
//! They compute the integers of the integer form (`jing_tensor::quant::iq`) straight from the
//! block, 32 codes (a chunk) at a time, without building the signed codes: the code `c = ±g`
//! of a grid type is an unsigned grid magnitude `g` (at most 62) and a sign, and
//! `c·q = g·(±q)`, so the signs go onto the activation codes (`neg_where`, from a 32-bit mask
//! with one bit per code: a masked subtract with AVX-512, a byte compare with AVX2) and the
//! grid bytes go into `dot_u8_i8_scaled` unchanged. The `IQ1` codes `c = 8g + δ`
//! (`g ∈ {-1, 0, 1}`, `δ = ±1`) are looked up biased, `u = 8g + 8` (`IQ1_U`): `IQ1_S` (one
//! `δ` per chunk) subtracts `Σ_j m_j (8 - δ)·S_j` per block with the activations' sub-block
//! sums `S_j`; `IQ1_M` (one `δ` per 8 codes) adds `δ + 1` to `u` and subtracts
//! `9·Σ_j m_j·S_j`. Every product stays exact (`|u·q + u·q| <= 2·62·127`), so the integer `I`
//! of a block is the generic kernel's, and the float step is its `k_term_sym`, in block
//! order: the results are bit-identical.
//!
//! Per block, the vector work is done once (`prep`): the sign bits of every chunk (the 7-bit
//! `KSIGNS` indices of the XXS/XS types expanded with their parity bit), the scales, and the
//! grid indices of the types whose indices are split over several fields; then each chunk
//! loads its four 8-byte (or eight 4-byte) grid entries with scalar loads and assembles them
//! (measured faster than `vpgather` on Zen 5), and its signs and scales as plain loads. Two
//! accumulators per token (even and odd chunks) halve the dependency chain of the
//! multiply-adds, which one token alone would otherwise wait on.

/// The IQ grid kernels for one ISA; expanded inside [`quant_kernels!`], whose helpers (`ldx`,
/// `hsum_i32`, `u32_at`, `k_term_sym`) they use, with `neg_where` and `dot_u8_i8_scaled` from
/// the invoking module.
macro_rules! iq_kernels {
    ($feat:literal) => {
        use std::hint::black_box;
        use jing_tensor::quant::iq_tables::{
            IQ1S_GRID8, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID,
        };

        /// `IQ1_S`/`IQ1_M` grid entries biased by 8: bytes `8g + 8` (`g ∈ {-1, 0, 1}`).
        static IQ1_U: [u64; 2048] = {
            let mut t = [0u64; 2048];
            let mut i = 0;
            while i < 2048 {
                let g = IQ1S_GRID8[i].to_le_bytes();
                let mut j = 0;
                while j < 8 {
                    t[i] |= (((g[j] as i8 as i32) + 8) as u64) << (8 * j);
                    j += 1;
                }
                i += 1;
            }
            t
        };

        /// Sign bytes from the 7-bit `KSIGNS` indices in the bytes of `t` (bit 7 of each 0):
        /// bit 7 set where the other 7 have odd parity (llama.cpp's `KSIGNS`).
        #[inline]
        #[target_feature(enable = $feat)]
        fn with_parity(t: __m256i) -> __m256i {
            // 0x80 for the nibbles of odd parity.
            let odd = _mm256_setr_epi8(
                0, -128, -128, 0, -128, 0, 0, -128, -128, 0, 0, -128, 0, -128, -128, 0, //
                0, -128, -128, 0, -128, 0, 0, -128, -128, 0, 0, -128, 0, -128, -128, 0,
            );
            let nib = _mm256_set1_epi8(0x0f);
            let lo = _mm256_shuffle_epi8(odd, _mm256_and_si256(t, nib));
            let hi = _mm256_shuffle_epi8(odd, _mm256_and_si256(_mm256_srli_epi16::<4>(t), nib));
            _mm256_or_si256(t, _mm256_xor_si256(lo, hi))
        }

        /// The sign bits of 8 chunks from their `IQ2_XXS`/`IQ3_XXS` words (4 × 7-bit `KSIGNS`
        /// indices each, in the i32 lanes of `a`): lane `c` has bit `l` set where code `l`
        /// of chunk `c` is negative.
        #[inline]
        #[target_feature(enable = $feat)]
        fn ksigns8(a: __m256i) -> __m256i {
            let k = |v: i32| _mm256_set1_epi32(v);
            let t01 = _mm256_or_si256(
                _mm256_and_si256(a, k(0x7f)),
                _mm256_and_si256(_mm256_slli_epi32::<1>(a), k(0x7f00)),
            );
            let t23 = _mm256_or_si256(
                _mm256_and_si256(_mm256_slli_epi32::<2>(a), k(0x7f_0000)),
                _mm256_and_si256(_mm256_slli_epi32::<3>(a), k(0x7f00_0000)),
            );
            with_parity(_mm256_or_si256(t01, t23))
        }

        /// i32 lanes `(2s + 1) | (2s + 1) << 16` of 4-bit `s` in the i32 lanes of `n`: the
        /// scale of a chunk for both of its 16-code halves.
        #[inline]
        #[target_feature(enable = $feat)]
        fn odd_pair(n: __m256i) -> __m256i {
            let m = _mm256_add_epi32(_mm256_slli_epi32::<1>(n), _mm256_set1_epi32(1));
            _mm256_or_si256(m, _mm256_slli_epi32::<16>(m))
        }

        /// Four 8-byte grid entries of `t` as one vector, entry `i` in bytes `8i..8i + 8`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn grid4<const N: usize>(t: &[u64; N], i: [usize; 4]) -> __m256i {
            _mm256_set_epi64x(
                t[i[3]] as i64,
                t[i[2]] as i64,
                t[i[1]] as i64,
                t[i[0]] as i64,
            )
        }

        /// How [`iq_chunk`] reads its `signs`: sign bits of the codes, nothing (`PLAIN`), or a
        /// byte per 8-code group to add to the grid magnitudes (`DELTA`).
        const SIGNED: u8 = 0;
        const PLAIN: u8 = 1;
        const DELTA: u8 = 2;

        /// One chunk of 32 codes into the accumulators `acc` of the tokens: grid magnitudes
        /// `g`, code `l` negative where bit `l` of `signs` is set (`MODE`), `m` the i16 scales
        /// of its two 16-code halves (equal if `PER32`); `at` the chunk's first activation.
        #[inline]
        #[target_feature(enable = $feat)]
        fn iq_chunk<const T: usize, const MODE: u8, const PER32: bool>(
            acc: &mut [__m256i; T],
            x: &[XRow<'_>; T],
            at: usize,
            g: __m256i,
            signs: u32,
            m: u32,
        ) {
            // i16 lanes: the low half of `m` in lanes 0-7, the high half in lanes 8-15.
            let spread = _mm256_setr_epi8(
                0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, //
                2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
            );
            let sc = if PER32 {
                _mm256_set1_epi32(m as i32)
            } else {
                _mm256_shuffle_epi8(_mm256_set1_epi32(m as i32), spread)
            };
            let g = if MODE == DELTA {
                // Byte `k` of `signs` added to the 8 codes of group `k`.
                let spread = _mm256_setr_epi8(
                    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
                    2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
                );
                _mm256_add_epi8(g, _mm256_shuffle_epi8(_mm256_set1_epi32(signs as i32), spread))
            } else {
                g
            };
            for t in 0..T {
                let mut xq = ldx(&x[t].qs[at..]);
                if MODE == SIGNED {
                    xq = neg_where(xq, signs);
                }
                acc[t] = dot_u8_i8_scaled(acc[t], g, xq, sc);
            }
        }

        /// `acc[t] - Σ_j m_j·S_j` for the bias of the `IQ1` codes (`m`: 16 i16 weights).
        #[inline]
        #[target_feature(enable = $feat)]
        fn iq1_unbias<const T: usize>(
            acc: &mut [__m256i; T],
            x: &[XRow<'_>; T],
            b: usize,
            m: __m256i,
        ) {
            for t in 0..T {
                let s = _mm256_madd_epi16(m, ld_i16x16(&x[t].sums[16 * b..]));
                acc[t] = _mm256_sub_epi32(acc[t], s);
            }
        }

        /// Block `b` of a row of `BB`-byte blocks, with its length in the type.
        #[inline(always)]
        fn iq_block<const BB: usize>(w: &[u8], b: usize) -> &[u8; BB] {
            w[BB * b..BB * (b + 1)].try_into().expect("BB bytes")
        }

        #[inline(always)]
        fn u16_at(b: &[u8], at: usize) -> u32 {
            u16::from_le_bytes([b[at], b[at + 1]]) as u32
        }

        /// The 8 bytes at the start of `b` in the low half of a vector.
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_u64(b: &[u8]) -> __m128i {
            let v = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
            _mm_cvtsi64_si128(v as i64)
        }

        /// The 8 i32 of a vector as an array.
        #[inline]
        #[target_feature(enable = $feat)]
        fn lanes(v: __m256i) -> [u32; 8] {
            let mut a = [0u32; 8];
            // SAFETY: `a` is 32 bytes; the store is unaligned.
            unsafe { _mm256_storeu_si256(a.as_mut_ptr().cast(), v) };
            a
        }

        /// A grid type's kernel: `$prep(blk, idx)` gives the block's sign slots (i32 lane `c`:
        /// chunk `c`'s, read as `$mode` says), its scales (i32 lane `c`: those of chunk `c`'s
        /// two halves, as i16) and, for the biased `IQ1` codes, the i16 weights of the sums
        /// `S_j` that unbias them, and may write the grid index of each 8-code group to `idx`;
        /// `$grid(blk, idx, c)` gives chunk `c`'s grid magnitudes, `$dc(blk)` the block's `dc`;
        /// `$per32` is true where both halves of a chunk have the same scale, `$opaque_idx`
        /// where reloading the indices from memory measured faster than the optimizer's
        /// extracts from the vectors that stored them. Even and odd chunks go to two
        /// accumulators.
        macro_rules! iq_dot {
            (
                                $name:ident, $bb:literal, $prep:ident, $grid:ident, $dc:ident,
                                $mode:ident, $per32:literal, $opaque_idx:literal
                            ) => {
                // Not inlined into `run` (measured no slower, and a smaller `run`).
                #[inline(never)]
                #[target_feature(enable = $feat)]
                fn $name<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
                    let mut out = [0.0f32; T];
                    let mut idx = [0u16; 64];
                    for b in 0..w.len() / $bb {
                        let blk = iq_block::<$bb>(w, b);
                        let (sv, mv, uv) = $prep(blk, &mut idx);
                        let (signs, ms) = (lanes(sv), lanes(mv));
                        // Opaque to the optimizer: the chunks load their bytes from memory
                        // (cheap loads) rather than extract them from the vectors `$prep`
                        // loaded (two uops each).
                        let gi = if $opaque_idx { black_box(&idx) } else { &idx };
                        let gb = black_box(blk);
                        let mut a0 = [_mm256_setzero_si256(); T];
                        let mut a1 = [_mm256_setzero_si256(); T];
                        for c in (0..8).step_by(2) {
                            let at = 256 * b + 32 * c;
                            let g = $grid(gb, gi, c);
                            iq_chunk::<T, { $mode }, $per32>(&mut a0, x, at, g, signs[c], ms[c]);
                            let g = $grid(gb, gi, c + 1);
                            let (s, m) = (signs[c + 1], ms[c + 1]);
                            iq_chunk::<T, { $mode }, $per32>(&mut a1, x, at + 32, g, s, m);
                        }
                        if $mode != SIGNED {
                            iq1_unbias(&mut a0, x, b, uv);
                        }
                        let dc = $dc(blk);
                        for t in 0..T {
                            let i = hsum_i32(_mm256_add_epi32(a0[t], a1[t]));
                            out[t] += k_term_sym(x[t].d[b], dc, i);
                        }
                    }
                    out
                }
            };
        }

        /// Four 8-byte entries of `t` at the indices `idx[4c..4c + 4]` as one vector, entry
        /// `k` in bytes `8k..8k + 8`.
        ///
        /// # Safety
        /// The four indices are below `N`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn grid4_at<const N: usize>(t: &[u64; N], idx: &[u16; 64], c: usize) -> __m256i {
            let i = &idx[4 * c..4 * c + 4];
            debug_assert!(i.iter().all(|&i| (i as usize) < N));
            // SAFETY: the caller's indices are within `t`.
            let e = |k: usize| unsafe { *t.get_unchecked(i[k] as usize) } as i64;
            _mm256_set_epi64x(e(3), e(2), e(1), e(0))
        }

        /// The 32 bytes at the start of `b` widened to u16, in two vectors.
        #[inline]
        #[target_feature(enable = $feat)]
        fn widen32(b: &[u8]) -> [__m256i; 2] {
            [
                _mm256_cvtepu8_epi16(ld16(b)),
                _mm256_cvtepu8_epi16(ld16(&b[16..])),
            ]
        }

        /// Stores two vectors of 16 u16 as the 32 indices `idx`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn store_idx(idx: &mut [u16; 64], v: [__m256i; 2]) {
            // SAFETY: `idx` is 64 bytes; the stores are unaligned.
            unsafe {
                _mm256_storeu_si256(idx.as_mut_ptr().cast(), v[0]);
                _mm256_storeu_si256(idx[16..].as_mut_ptr().cast(), v[1]);
            }
        }

        /// `d/8` and `d/4` of the types with `d` at 0.
        #[inline]
        #[target_feature(enable = $feat)]
        fn dc_8(blk: &[u8]) -> f32 {
            f16_at(blk, 0) * 0.125
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn dc_4(blk: &[u8]) -> f32 {
            f16_at(blk, 0) * 0.25
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn dc_1(blk: &[u8]) -> f32 {
            f16_at(blk, 0)
        }

        /// The scales of the types with 8 bytes of 4-bit `s` (low nibble first) at `at`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn nibble_scales(blk: &[u8], at: usize) -> __m256i {
            let n = _mm256_cvtepu8_epi32(ld_u64(&blk[at..]));
            let lo = _mm256_and_si256(n, _mm256_set1_epi32(15));
            let hi = _mm256_srli_epi32::<4>(n);
            let m = _mm256_or_si256(lo, _mm256_slli_epi32::<16>(hi));
            _mm256_add_epi16(_mm256_add_epi16(m, m), _mm256_set1_epi16(1))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn prep_iq2_xxs(blk: &[u8; 66], _idx: &mut [u16; 64]) -> (__m256i, __m256i, __m256i) {
            // The 8 words after each chunk's 4 grid bytes.
            let (v0, v1) = (
                _mm256_castsi256_ps(ld32(&blk[2..])),
                _mm256_castsi256_ps(ld32(&blk[34..])),
            );
            let a = _mm256_castps_si256(_mm256_shuffle_ps::<0b11_01_11_01>(v0, v1));
            let a = _mm256_permute4x64_epi64::<0b11_01_10_00>(a);
            (ksigns8(a), odd_pair(_mm256_srli_epi32::<28>(a)), _mm256_setzero_si256())
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn grid_iq2_xxs(blk: &[u8; 66], _idx: &[u16; 64], c: usize) -> __m256i {
            let i = |k: usize| blk[2 + 8 * c + k] as usize;
            grid4(&IQ2XXS_GRID, [i(0), i(1), i(2), i(3)])
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn prep_iq3_xxs(blk: &[u8; 98], _idx: &mut [u16; 64]) -> (__m256i, __m256i, __m256i) {
            let a = ld32(&blk[66..]);
            (ksigns8(a), odd_pair(_mm256_srli_epi32::<28>(a)), _mm256_setzero_si256())
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn grid_iq3_xxs(blk: &[u8; 98], _idx: &[u16; 64], c: usize) -> __m256i {
            let e = |k: usize| IQ3XXS_GRID[blk[2 + 8 * c + k] as usize] as i32;
            _mm256_setr_epi32(e(0), e(1), e(2), e(3), e(4), e(5), e(6), e(7))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn prep_iq2_xs(blk: &[u8; 74], idx: &mut [u16; 64]) -> (__m256i, __m256i, __m256i) {
            let (v0, v1) = (ld32(&blk[2..]), ld32(&blk[34..]));
            let nine = _mm256_set1_epi16(511);
            store_idx(
                idx,
                [_mm256_and_si256(v0, nine), _mm256_and_si256(v1, nine)],
            );
            // The 7-bit sign index of every group, then its sign byte, in order.
            let s0 = with_parity(_mm256_srli_epi16::<9>(v0));
            let s1 = with_parity(_mm256_srli_epi16::<9>(v1));
            let s = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(s0, s1));
            (s, nibble_scales(blk, 66), _mm256_setzero_si256())
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn grid_iq2_xs(_: &[u8; 74], idx: &[u16; 64], c: usize) -> __m256i {
            // SAFETY: the indices are 9-bit, `IQ2XS_GRID` has 512 entries.
            unsafe { grid4_at(&IQ2XS_GRID, idx, c) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn prep_iq2_s(blk: &[u8; 82], idx: &mut [u16; 64]) -> (__m256i, __m256i, __m256i) {
            // u16 lane `g`: byte `g / 4` of the high bits, its bits `2(g % 4)..` moved to bits
            // 14-15 (then 8-9) and put above the low 8 bits of the index.
            let h = _mm256_broadcastsi128_si256(ld_u64(&blk[66..]));
            let z = -128;
            let bytes = [
                _mm256_setr_epi8(
                    0, z, 0, z, 0, z, 0, z, 1, z, 1, z, 1, z, 1, z, //
                    2, z, 2, z, 2, z, 2, z, 3, z, 3, z, 3, z, 3, z,
                ),
                _mm256_setr_epi8(
                    4, z, 4, z, 4, z, 4, z, 5, z, 5, z, 5, z, 5, z, //
                    6, z, 6, z, 6, z, 6, z, 7, z, 7, z, 7, z, 7, z,
                ),
            ];
            let mul = _mm256_setr_epi16(
                1 << 14,
                1 << 12,
                1 << 10,
                1 << 8,
                1 << 14,
                1 << 12,
                1 << 10,
                1 << 8, //
                1 << 14,
                1 << 12,
                1 << 10,
                1 << 8,
                1 << 14,
                1 << 12,
                1 << 10,
                1 << 8,
            );
            let lo = widen32(&blk[2..]);
            let mut v = [_mm256_setzero_si256(); 2];
            for p in 0..2 {
                let hp = _mm256_mullo_epi16(_mm256_shuffle_epi8(h, bytes[p]), mul);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<6>(hp), _mm256_set1_epi16(0x300));
                v[p] = _mm256_or_si256(lo[p], hi);
            }
            store_idx(idx, v);
            (ld32(&blk[34..]), nibble_scales(blk, 74), _mm256_setzero_si256())
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn grid_iq2_s(_: &[u8; 82], idx: &[u16; 64], c: usize) -> __m256i {
            // SAFETY: the indices are 10-bit, `IQ2S_GRID` has 1024 entries.
            unsafe { grid4_at(&IQ2S_GRID, idx, c) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn prep_iq3_s(blk: &[u8; 110], idx: &mut [u16; 64]) -> (__m256i, __m256i, __m256i) {
            // u16 lane `e` (of 16): bit `e % 8` of byte `e / 8` of the ninth bits, as 0x100.
            let h = _mm256_broadcastsi128_si256(ld_u64(&blk[66..]));
            let bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
            for p in 0..4 {
                let z = -128;
                let (b0, b1) = (2 * p as i8, 2 * p as i8 + 1);
                let bytes = _mm256_setr_epi8(
                    b0, z, b0, z, b0, z, b0, z, b0, z, b0, z, b0, z, b0, z, //
                    b1, z, b1, z, b1, z, b1, z, b1, z, b1, z, b1, z, b1, z,
                );
                let hb = _mm256_and_si256(_mm256_shuffle_epi8(h, bytes), bit);
                let ninth = _mm256_and_si256(_mm256_cmpeq_epi16(hb, bit), _mm256_set1_epi16(0x100));
                let lo = _mm256_cvtepu8_epi16(ld16(&blk[2 + 16 * p..]));
                // SAFETY: `idx[16p..16p + 16]` is 32 bytes; the store is unaligned.
                unsafe {
                    _mm256_storeu_si256(idx[16 * p..].as_mut_ptr().cast(), _mm256_or_si256(lo, ninth))
                };
            }
            let s = _mm256_set1_epi32(u32_at(blk, 106) as i32);
            let n = _mm256_srlv_epi32(s, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
            (
                ld32(&blk[74..]),
                odd_pair(_mm256_and_si256(n, _mm256_set1_epi32(15))),
                _mm256_setzero_si256(),
            )
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn grid_iq3_s(_: &[u8; 110], idx: &[u16; 64], c: usize) -> __m256i {
            let i = &idx[8 * c..8 * c + 8];
            debug_assert!(i.iter().all(|&i| i < 512));
            // SAFETY: the indices are 9-bit, `IQ3S_GRID` has 512 entries.
            let e = |k: usize| unsafe { *IQ3S_GRID.get_unchecked(i[k] as usize) } as i32;
            _mm256_setr_epi32(e(0), e(1), e(2), e(3), e(4), e(5), e(6), e(7))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn prep_iq1_s(blk: &[u8; 50], idx: &mut [u16; 64]) -> (__m256i, __m256i, __m256i) {
            // u16 lane `g`: word `g / 4` of the high bits, its bits `3(g % 4)..` moved to bits
            // 13-15 (then 8-10).
            let hw = ld16(&blk[34..]);
            let h = _mm256_broadcastsi128_si256(hw);
            let words = [
                _mm256_setr_epi8(
                    0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, //
                    4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7,
                ),
                _mm256_setr_epi8(
                    8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, //
                    12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15,
                ),
            ];
            let mul = _mm256_setr_epi16(
                1 << 13,
                1 << 10,
                1 << 7,
                1 << 4,
                1 << 13,
                1 << 10,
                1 << 7,
                1 << 4, //
                1 << 13,
                1 << 10,
                1 << 7,
                1 << 4,
                1 << 13,
                1 << 10,
                1 << 7,
                1 << 4,
            );
            let lo = widen32(&blk[2..]);
            let mut v = [_mm256_setzero_si256(); 2];
            for p in 0..2 {
                let hp = _mm256_shuffle_epi8(h, words[p]);
                let hi = _mm256_srli_epi16::<5>(_mm256_mullo_epi16(hp, mul));
                let hi = _mm256_and_si256(hi, _mm256_set1_epi16(0x700));
                v[p] = _mm256_or_si256(lo[p], hi);
            }
            store_idx(idx, v);
            // The scale in bits 12-14 of each word.
            let n = _mm256_and_si256(
                _mm256_srli_epi32::<12>(_mm256_cvtepu16_epi32(hw)),
                _mm256_set1_epi32(7),
            );
            // The bias of chunk `c` is `8 - δ`: 7, or 9 where bit 15 is set.
            let k = _mm256_add_epi32(
                _mm256_set1_epi32(7),
                _mm256_slli_epi32::<1>(_mm256_srli_epi32::<15>(_mm256_cvtepu16_epi32(hw))),
            );
            let m = odd_pair(n);
            let u = _mm256_mullo_epi16(m, _mm256_or_si256(k, _mm256_slli_epi32::<16>(k)));
            (_mm256_setzero_si256(), m, u)
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn grid_iq1_s(_: &[u8; 50], idx: &[u16; 64], c: usize) -> __m256i {
            // SAFETY: the indices are 11-bit, `IQ1_U` has 2048 entries.
            unsafe { grid4_at(&IQ1_U, idx, c) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn prep_iq1_m(blk: &[u8; 56], idx: &mut [u16; 64]) -> (__m256i, __m256i, __m256i) {
            // The index of group `g`: byte `g`, then the nibble `g` of the 16 bytes at 32.
            let nb = ld16(&blk[32..]);
            let f = _mm_set1_epi8(15);
            let (lo, hi) = (
                _mm_and_si128(nb, f),
                _mm_and_si128(_mm_srli_epi16::<4>(nb), f),
            );
            let (n0, n1) = (_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi));
            // Bit 3 of the nibble: the sign of `δ`; the codes are `u + δ + 1 - 9` with `u` from
            // `IQ1_U`, so 2 is added where `δ = +1`.
            let f8 = _mm_set1_epi8(8);
            let d0 = _mm_srli_epi16::<2>(_mm_andnot_si128(n0, f8));
            let d1 = _mm_srli_epi16::<2>(_mm_andnot_si128(n1, f8));
            let (n0, n1) = (_mm_and_si128(n0, _mm_set1_epi8(7)), _mm_and_si128(n1, _mm_set1_epi8(7)));
            let (q0, q1) = (ld16(&blk[..]), ld16(&blk[16..]));
            store_idx(
                idx,
                [
                    _mm256_set_m128i(_mm_unpackhi_epi8(q0, n0), _mm_unpacklo_epi8(q0, n0)),
                    _mm256_set_m128i(_mm_unpackhi_epi8(q1, n1), _mm_unpacklo_epi8(q1, n1)),
                ],
            );
            // i16 lane `j`: scale word `j / 4`, its bits `3(j % 4)..` moved to bits 12-14.
            let w =
                _mm256_set1_epi64x(u64::from_le_bytes(blk[48..56].try_into().expect("8")) as i64);
            let words = _mm256_setr_epi8(
                0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, //
                4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7,
            );
            let mul = _mm256_setr_epi16(
                4096, 512, 64, 8, 4096, 512, 64, 8, 4096, 512, 64, 8, 4096, 512, 64, 8,
            );
            let v = _mm256_mullo_epi16(_mm256_shuffle_epi8(w, words), mul);
            let n = _mm256_and_si256(_mm256_srli_epi16::<12>(v), _mm256_set1_epi16(7));
            let m = _mm256_add_epi16(_mm256_add_epi16(n, n), _mm256_set1_epi16(1));
            let u = _mm256_mullo_epi16(m, _mm256_set1_epi16(9));
            (_mm256_set_m128i(d1, d0), m, u)
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn grid_iq1_m(_: &[u8; 56], idx: &[u16; 64], c: usize) -> __m256i {
            // SAFETY: the indices are 11-bit, `IQ1_U` has 2048 entries.
            unsafe { grid4_at(&IQ1_U, idx, c) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn dc_iq1_m(blk: &[u8; 56]) -> f32 {
            let sw = |i: usize| u16_at(blk, 48 + 2 * i);
            let bits =
                (sw(0) >> 12) | ((sw(1) >> 8) & 0xf0) | ((sw(2) >> 4) & 0xf00) | (sw(3) & 0xf000);
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))) * 0.125
        }

        iq_dot!(dot_iq2_xxs_ymm, 66, prep_iq2_xxs, grid_iq2_xxs, dc_8, SIGNED, true, false);
        iq_dot!(dot_iq3_xxs_ymm, 98, prep_iq3_xxs, grid_iq3_xxs, dc_4, SIGNED, true, false);
        iq_dot!(dot_iq2_xs, 74, prep_iq2_xs, grid_iq2_xs, dc_8, SIGNED, false, true);
        iq_dot!(dot_iq2_s, 82, prep_iq2_s, grid_iq2_s, dc_8, SIGNED, false, false);
        iq_dot!(dot_iq3_s, 110, prep_iq3_s, grid_iq3_s, dc_1, SIGNED, true, false);
        iq_dot!(dot_iq1_s, 50, prep_iq1_s, grid_iq1_s, dc_8, PLAIN, true, false);
        iq_dot!(dot_iq1_m, 56, prep_iq1_m, grid_iq1_m, dc_iq1_m, DELTA, false, false);
    };
}
