//! The GGUF block-type matmul kernels, written once for 256-bit vectors and stamped out per ISA
//! by [`quant_kernels!`]: the AVX2 table and the AVX-512 VNNI table differ only in the three
//! integer dot-product primitives the invoking module defines (with its target features), and
//! in the kernels each module brings itself: `Q4_K`/`Q5_K` (AVX2 in `avx2::quant`, VNNI on
//! 512-bit vectors in `avx512::quant`), and the VNNI module's 512-bit `Q2_K`, `Q3_K`, `Q6_K`,
//! `IQ4_XS`, `Q4_0`/`Q4_1`/`Q5_0`/`Q5_1` and `Q8_0`, and with VBMI `IQ2_XXS`/`IQ3_XXS` (the
//! AVX2 module takes the 256-bit ones here):
//!
//! - `dot_u8_i8(acc, u, x)`: `acc + Σ_4 u·x` per i32 lane (`u` unsigned bytes, `x` signed;
//!   AVX2: `vpmaddubsw` + `vpmaddwd`, VNNI: `vpdpbusd`);
//! - `dot_u8_i8_scaled(acc, u, x, sc)`: `acc + Σ_2 (u·x + u·x)·sc` with `sc` i16 lanes
//!   (AVX2: `vpmaddubsw` + `vpmaddwd`, VNNI: `vpmaddubsw` + `vpdpwssd`);
//! - `dot_i8_i8(acc, w, x)`: both signed (`|w| · sign(x, w)` into the unsigned form).
//!
//! `vpmaddubsw` saturates its i16 pair sums: every caller keeps `u <= 63` or `|w| <= 127`
//! against `|x| <= 127` (the activation codes), so a pair stays below 32 767 and nothing
//! saturates. All integer dot products are therefore exact and equal to the generic ones.
//!
//! The IQ types use their integer form (`jing_tensor::quant::iq`: signed codes `c` with
//! `|c| <= 127`, an i16 scale per 16): per 32 codes `dot_u8_i8_scaled(|c|, q·sign(c), m)`;
//! the grid types (`x86_64::iq`, `iq_kernels!`) take `|c|` from the grid and put the signs
//! on `q`, `IQ4_XS`/`IQ4_NL` get their codes by a byte shuffle of their 16 values (`IQ4_XS`
//! on 512-bit vectors in the VNNI module). The 256-element ones take the K-quant float step
//! (bit-identical to generic), `IQ4_NL` the 32-element one.
//!
//! The float steps:
//! - K-quants (and `Q8_K`): the integers of a 256-block are reduced to one exact i32 (a
//!   horizontal sum; `Q4_K`/`Q5_K` reduce several blocks' or tokens' together), then the generic
//!   float step (`k_term`) runs in block order, so these results are bit-identical to the
//!   generic kernel's.
//! - 32-element types: eight blocks at a time, their eight exact i32 sums (a transposing
//!   horizontal add) times `d·dx` go into an f32 vector with fused multiply-adds, and the lanes
//!   are summed at the end of the row. The terms are the generic ones; only their rounding
//!   (`fma` rounds once) and summation order differ: with `nb` blocks, `|simd - generic| <=
//!   2·(nb + 4)·u·Σ_b |term_b|` (`u = 2^-24`), and `Σ_b |term_b| <= Σ_k (|ŵ_k| + 2μ_k)·|x̂_k|`
//!   (`μ` the block min of Q4_1/Q5_1). The unit tests check exactly this bound.

/// Calls `$group::<N>(b0)` over the `nb` blocks of a row: full groups of `G` (the invoking
/// module's group size), then the rest as one group of `N < G` (the grouped kernels of both
/// tables).
macro_rules! by_groups {
    ($nb:expr, |$n:ident, $b0:ident| $call:expr) => {{
        let nb = $nb;
        let mut $b0 = 0;
        while $b0 + G <= nb {
            {
                const $n: usize = G;
                $call;
            }
            $b0 += G;
        }
        match nb - $b0 {
            1 => {
                const $n: usize = 1;
                $call
            }
            2 => {
                const $n: usize = 2;
                $call
            }
            3 => {
                const $n: usize = 3;
                $call
            }
            _ => {}
        }
    }};
}

/// Stamps out the quantized matmul for one ISA (see the module docs). The invoking module
/// provides `dot_u8_i8`, `dot_u8_i8_scaled` and `dot_i8_i8` compiled with the features `$feat`,
/// `short_rows` (a faster path for one token over very short rows, or `false` to decline),
/// `Q6K_ONE_TOKEN` (whether `Q6_K` takes `drive_rows!`'s one-token loop), `interleaved` (the
/// matmul of weights whose rows are interleaved, `jing_tensor::RowLayout`),
/// and the kernels `dot_q4_k`, `dot_q5_k` (its own), `dot_q2_k`, `dot_q3_k`, `dot_q6_k`,
/// `dot_iq2_xxs`, `dot_iq3_xxs`, `dot_iq4_xs`, `dot_iq4_nl`, `dot_q4_0`, `dot_q4_1`, `dot_q5_0`,
/// `dot_q5_1` and `dot_q8_0` (from the 256-bit `dot_q2_k_ymm`, `dot_q6_k_ymm`,
/// `dot_iq2_xxs_ymm`, `dot_iq4_xs_ymm`, `dot_iq4_nl_ymm`, `dot_q4_0_ymm`, .. here, or its own).
macro_rules! quant_kernels {
    ($feat:literal) => {
        use crate::kernels::generic::quant::{f32_at, k_term, k_term_sym, u32_at};
        use crate::kernels::layout::check_matmul_q;
        use crate::kernels::qact::{QuantX, XRow};
        use crate::kernels::OutMatrix;
        use jing_tensor::quant::iq_tables::KVALUES_IQ4NL;
        use jing_tensor::quant::{q2_k, q3_k};
        use jing_tensor::{DType, Weight};
        use std::ops::Range;

        /// The quantized matmul of the table ([`MatmulQFn`](crate::kernels::MatmulQFn)).
        pub(crate) fn matmul_q(w: &Weight, x: &QuantX, rows: Range<usize>, y: &OutMatrix) {
            check_matmul_q(w, x, &rows, y);
            // SAFETY: only reachable through the kernel table, which checked the CPU
            // features; the contract on `y` is the caller's and `check_matmul_q` checked the
            // shapes.
            unsafe { run(w, x, rows, y) }
        }

        /// # Safety
        /// The CPU has the features `$feat`; the MatmulQFn contract on `y` holds and the
        /// shapes are checked.
        #[target_feature(enable = $feat)]
        unsafe fn run(w: &Weight, x: &QuantX, rows: Range<usize>, y: &OutMatrix) {
            // The row slices from the data once (`row_data` per row costs a call into the
            // byte owner).
            if w.layout != jing_tensor::RowLayout::Rows {
                return interleaved(w, x, rows, y);
            }
            let (data, rb) = (w.data.as_slice(), w.row_bytes());
            if x.m == 1 && short_rows(w.dtype, data, rb, rows.clone(), x, y) {
                return;
            }
            macro_rules! drive {
                ($dot:ident) => {
                    drive_rows!($dot, data, rb, rows.clone(), x, y)
                };
            }
            match w.dtype {
                DType::Q4_0 => drive!(dot_q4_0),
                DType::Q4_1 => drive!(dot_q4_1),
                DType::Q5_0 => drive!(dot_q5_0),
                DType::Q5_1 => drive!(dot_q5_1),
                DType::Q8_0 => drive!(dot_q8_0),
                DType::Q2K => drive!(dot_q2_k),
                DType::Q3K => drive!(dot_q3_k),
                DType::Q4K => drive!(dot_q4_k),
                DType::Q5K => drive!(dot_q5_k),
                DType::Q6K => drive_rows!(dot_q6_k, data, rb, rows.clone(), x, y, Q6K_ONE_TOKEN),
                DType::Q8K => drive!(dot_q8_k),
                DType::IQ2XXS => drive!(dot_iq2_xxs),
                DType::IQ2XS => drive!(dot_iq2_xs),
                DType::IQ2S => drive!(dot_iq2_s),
                DType::IQ3XXS => drive!(dot_iq3_xxs),
                DType::IQ3S => drive!(dot_iq3_s),
                DType::IQ1S => drive!(dot_iq1_s),
                DType::IQ1M => drive!(dot_iq1_m),
                DType::IQ4NL => drive!(dot_iq4_nl),
                DType::IQ4XS => drive!(dot_iq4_xs),
                d => unreachable!("matmul_q with {d}"),
            }
        }

        // ---- the float steps of the grouped K-quant kernels ------------------------------

        /// The activation scales of blocks `b0..b0 + N`, zero-padded to `G` lanes (`G`: the
        /// invoking module's group size, 4).
        #[inline]
        #[target_feature(enable = $feat)]
        fn dx4<const N: usize>(x: &XRow<'_>, b0: usize) -> __m128 {
            let mut d = [0.0f32; G];
            d[..N].copy_from_slice(&x.d[b0..b0 + N]);
            // SAFETY: `d` is 4 f32; the load is unaligned.
            unsafe { _mm_loadu_ps(d.as_ptr()) }
        }

        /// `acc += terms[j]` for `j` in `0..N`, in that order (the generic summation order).
        #[inline]
        #[target_feature(enable = $feat)]
        fn add_terms<const N: usize>(acc: &mut f32, terms: __m128) {
            let mut a = [0.0f32; G];
            // SAFETY: `a` is 4 f32; the store is unaligned.
            unsafe { _mm_storeu_ps(a.as_mut_ptr(), terms) };
            for v in &a[..N] {
                *acc += v;
            }
        }

        /// `acc += k_term(I_b, M_b) = (dx·d)·I - (dx·dmin)·M` of blocks `b0..b0 + N` (lanes of
        /// `i` and `m`) in block order, with the blocks' `d` and `dmin` as f32 lanes (the
        /// generic float steps, lane by lane, no fused multiply-add).
        #[inline]
        #[target_feature(enable = $feat)]
        fn add_min_terms<const N: usize>(
            acc: &mut f32,
            x: &XRow<'_>,
            b0: usize,
            (d, dmin): (__m128, __m128),
            (i, m): (__m128i, __m128i),
        ) {
            let dx = dx4::<N>(x, b0);
            let terms = _mm_sub_ps(
                _mm_mul_ps(_mm_mul_ps(dx, d), _mm_cvtepi32_ps(i)),
                _mm_mul_ps(_mm_mul_ps(dx, dmin), _mm_cvtepi32_ps(m)),
            );
            add_terms::<N>(acc, terms);
        }

        // ---- loads and small helpers ---------------------------------------------------

        /// 16 bytes from the start of `b` (bounds-checked).
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld16(b: &[u8]) -> __m128i {
            let b = &b[..16];
            // SAFETY: `b` has 16 bytes; the load is unaligned.
            unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
        }

        /// 32 bytes from the start of `b` (bounds-checked).
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld32(b: &[u8]) -> __m256i {
            let b = &b[..32];
            // SAFETY: `b` has 32 bytes; the load is unaligned.
            unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
        }

        /// 32 activation codes from the start of `q` (bounds-checked).
        #[inline]
        #[target_feature(enable = $feat)]
        fn ldx(q: &[i8]) -> __m256i {
            let q = &q[..32];
            // SAFETY: `q` has 32 bytes; the load is unaligned.
            unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }
        }

        /// 16 i16 from the start of `s` (bounds-checked).
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_i16x16(s: &[i16]) -> __m256i {
            let s = &s[..16];
            // SAFETY: `s` has 16 i16 (32 bytes); the load is unaligned.
            unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
        }

        /// 8 f32 from the start of `v` (bounds-checked).
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_f32x8(v: &[f32]) -> __m256 {
            let v = &v[..8];
            // SAFETY: `v` has 8 f32; the load is unaligned.
            unsafe { _mm256_loadu_ps(v.as_ptr()) }
        }

        /// Sum of the 8 i32 lanes (exact: the callers' sums fit i32).
        #[inline]
        #[target_feature(enable = $feat)]
        fn hsum_i32(v: __m256i) -> i32 {
            let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
            _mm_cvtsi128_si32(s)
        }

        /// Sum of the 8 f32 lanes.
        #[inline]
        #[target_feature(enable = $feat)]
        fn hsum_ps(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
        }

        /// Lane `j` of the result is the sum of the 8 lanes of `p[j]`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn reduce8(p: &[__m256i; 8]) -> __m256i {
            let h01 = _mm256_hadd_epi32(p[0], p[1]);
            let h23 = _mm256_hadd_epi32(p[2], p[3]);
            let h45 = _mm256_hadd_epi32(p[4], p[5]);
            let h67 = _mm256_hadd_epi32(p[6], p[7]);
            // a = [Σlo p0..p3 | Σhi p0..p3], b the same for p4..p7 (lo/hi: lanes 0-3 / 4-7).
            let a = _mm256_hadd_epi32(h01, h23);
            let b = _mm256_hadd_epi32(h45, h67);
            _mm256_add_epi32(
                _mm256_permute2x128_si256::<0x20>(a, b),
                _mm256_permute2x128_si256::<0x31>(a, b),
            )
        }

        /// The 32 codes of 16 packed bytes: low nibbles (elements 0..16), then high nibbles.
        #[inline]
        #[target_feature(enable = $feat)]
        fn nibbles32(q: __m128i) -> __m256i {
            let m = _mm_set1_epi8(0x0f);
            let lo = _mm_and_si128(q, m);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(q), m);
            _mm256_set_m128i(hi, lo)
        }

        /// Byte `l` is `0x10` where bit `l` of `qh` is set, else 0.
        #[inline]
        #[target_feature(enable = $feat)]
        fn fifth_bits(qh: u32) -> __m256i {
            let v = _mm256_set1_epi32(qh as i32);
            let spread = _mm256_setr_epi8(
                0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
            );
            let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
            let b = _mm256_and_si256(_mm256_shuffle_epi8(v, spread), bits);
            _mm256_and_si256(_mm256_cmpeq_epi8(b, bits), _mm256_set1_epi8(0x10))
        }

        /// The eight 32-block sums `S` of the activation blocks `8g..8g + 8`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn block_sums8(x: &XRow<'_>, g: usize) -> __m256i {
            _mm256_madd_epi16(ld_i16x16(&x.sums[16 * g..]), _mm256_set1_epi16(1))
        }

        /// The f16 at `at` of `b` as f32 (F16C; exact, like the generic kernel's conversion).
        #[inline]
        #[target_feature(enable = $feat)]
        fn f16_at(b: &[u8], at: usize) -> f32 {
            let h = u16::from_le_bytes([b[at], b[at + 1]]);
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
        }

        /// Lanes: i16 scale `j` (of the 8 in each half of `v`) in all 16 lanes; `SHUF[j]`
        /// picks bytes `2j, 2j + 1` of each 128-bit half.
        static SHUF: [[u8; 32]; 8] = {
            let mut t = [[0u8; 32]; 8];
            let mut j = 0;
            while j < 8 {
                let mut i = 0;
                while i < 32 {
                    t[j][i] = (2 * j + i % 2) as u8;
                    i += 1;
                }
                j += 1;
            }
            t
        };

        /// i16 lane `j` of each 128-bit half of `v`, broadcast to its half.
        #[inline]
        #[target_feature(enable = $feat)]
        fn pick16(v: __m256i, j: usize) -> __m256i {
            // SAFETY: `SHUF[j]` is 32 bytes; the load is unaligned.
            _mm256_shuffle_epi8(v, unsafe { _mm256_loadu_si256(SHUF[j].as_ptr().cast()) })
        }

        /// Eight f16 at `at + i · stride` of `w` as f32.
        #[inline]
        #[target_feature(enable = $feat)]
        fn f16x8(w: &[u8], at: usize, stride: usize) -> __m256 {
            // A loop, not `array::from_fn`: its closure would not inline into this
            // target-feature function (a call per group, with the vectors spilled around it).
            let mut h = [0u16; 8];
            for (i, v) in h.iter_mut().enumerate() {
                *v = u16::from_le_bytes([w[at + i * stride], w[at + i * stride + 1]]);
            }
            // SAFETY: `h` is 8 u16 (16 bytes); the load is unaligned.
            _mm256_cvtph_ps(unsafe { _mm_loadu_si128(h.as_ptr().cast()) })
        }

        // ---- 32-element block types ------------------------------------------------------

        /// The skeleton of the 32-element types: groups of 8 blocks unpacked by `$unpack`
        /// (`(block bytes) -> u8 or i8 codes`), dotted with `$dot`, corrected by `$fix`
        /// (`(isum, S) -> isum`), with the block min's f16 at `$min_at` (if any); the
        /// leftover blocks as one zero-padded group. `#[$m]`: an attribute of the kernel (a
        /// doc line, or an `allow` for the ones an ISA module may replace).
        macro_rules! dot32 {
            (
                        #[$m:meta] $name:ident, $bb:expr, $dot:ident, $unpack:expr, $fix:expr,
                        $min_at:expr
                    ) => {
                #[$m]
                #[target_feature(enable = $feat)]
                fn $name<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
                    const BB: usize = $bb;
                    let nb = w.len() / BB;
                    let groups = nb / 8;
                    let mut acc = [_mm256_setzero_ps(); T];
                    for g in 0..groups {
                        let wg = &w[8 * BB * g..8 * BB * (g + 1)];
                        let mut p = [[_mm256_setzero_si256(); 8]; T];
                        for j in 0..8 {
                            let blk = &wg[BB * j..BB * (j + 1)];
                            let u: __m256i = $unpack(blk);
                            for t in 0..T {
                                let xq = ldx(&x[t].qs[256 * g + 32 * j..]);
                                p[t][j] = $dot(_mm256_setzero_si256(), u, xq);
                            }
                        }
                        let dw = f16x8(wg, 0, BB);
                        let mw: Option<__m256> = match $min_at {
                            Some(at) => Some(f16x8(wg, at, BB)),
                            None => None,
                        };
                        for t in 0..T {
                            let s = block_sums8(&x[t], g);
                            let isum: __m256i = $fix(reduce8(&p[t]), s);
                            let dx = ld_f32x8(&x[t].d[8 * g..]);
                            acc[t] = _mm256_fmadd_ps(
                                _mm256_mul_ps(dw, dx),
                                _mm256_cvtepi32_ps(isum),
                                acc[t],
                            );
                            if let Some(mw) = mw {
                                acc[t] = _mm256_fmadd_ps(
                                    _mm256_mul_ps(mw, dx),
                                    _mm256_cvtepi32_ps(s),
                                    acc[t],
                                );
                            }
                        }
                    }
                    // The last `nb % 8` blocks: the same steps on a group padded with zero
                    // blocks (zero scales and activation scales, so their terms are +0).
                    // Rows of only a few blocks (`attn_k_b`, K = 128) and the tails of expert
                    // rows (K = 1408: 44 blocks) make this worth the SIMD path.
                    let rem = nb - 8 * groups;
                    if rem > 0 {
                        let wg = &w[8 * BB * groups..];
                        let mut p = [[_mm256_setzero_si256(); 8]; T];
                        let (mut dh, mut mh) = ([0u16; 8], [0u16; 8]);
                        for j in 0..rem {
                            let blk = &wg[BB * j..BB * (j + 1)];
                            let u: __m256i = $unpack(blk);
                            for t in 0..T {
                                let xq = ldx(&x[t].qs[256 * groups + 32 * j..]);
                                p[t][j] = $dot(_mm256_setzero_si256(), u, xq);
                            }
                            dh[j] = u16::from_le_bytes([blk[0], blk[1]]);
                            if let Some(at) = $min_at {
                                mh[j] = u16::from_le_bytes([blk[at], blk[at + 1]]);
                            }
                        }
                        // SAFETY: (both) `dh`, `mh` are 8 u16 (16 bytes); the loads are
                        // unaligned.
                        let dw = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(dh.as_ptr().cast()) });
                        let mw = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(mh.as_ptr().cast()) });
                        for t in 0..T {
                            let mut sp = [0i16; 16];
                            sp[..2 * rem]
                                .copy_from_slice(&x[t].sums[16 * groups..16 * groups + 2 * rem]);
                            let mut dp = [0.0f32; 8];
                            dp[..rem].copy_from_slice(&x[t].d[8 * groups..8 * groups + rem]);
                            let s = _mm256_madd_epi16(ld_i16x16(&sp), _mm256_set1_epi16(1));
                            let isum: __m256i = $fix(reduce8(&p[t]), s);
                            let dx = ld_f32x8(&dp);
                            acc[t] = _mm256_fmadd_ps(
                                _mm256_mul_ps(dw, dx),
                                _mm256_cvtepi32_ps(isum),
                                acc[t],
                            );
                            if $min_at.is_some() {
                                acc[t] = _mm256_fmadd_ps(
                                    _mm256_mul_ps(mw, dx),
                                    _mm256_cvtepi32_ps(s),
                                    acc[t],
                                );
                            }
                        }
                    }
                    let mut out = [0.0f32; T];
                    for t in 0..T {
                        out[t] = hsum_ps(acc[t]);
                    }
                    out
                }
            };
        }

        /// `isum` unchanged (no offset).
        #[inline]
        #[target_feature(enable = $feat)]
        fn no_fix(i: __m256i, _s: __m256i) -> __m256i {
            i
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_q4_0(b: &[u8]) -> __m256i {
            nibbles32(ld16(&b[2..]))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_q4_1(b: &[u8]) -> __m256i {
            nibbles32(ld16(&b[4..]))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_q5_0(b: &[u8]) -> __m256i {
            _mm256_or_si256(nibbles32(ld16(&b[6..])), fifth_bits(u32_at(b, 2)))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_q5_1(b: &[u8]) -> __m256i {
            _mm256_or_si256(nibbles32(ld16(&b[8..])), fifth_bits(u32_at(b, 4)))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_q8_0(b: &[u8]) -> __m256i {
            ld32(&b[2..])
        }

        /// `Σ (u - 8)·x = Σ u·x - 8·S`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn fix8(i: __m256i, s: __m256i) -> __m256i {
            _mm256_sub_epi32(i, _mm256_slli_epi32::<3>(s))
        }

        /// `Σ (u - 16)·x = Σ u·x - 16·S`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn fix16(i: __m256i, s: __m256i) -> __m256i {
            _mm256_sub_epi32(i, _mm256_slli_epi32::<4>(s))
        }

        // The Q4/Q5 types on 256-bit vectors (the AVX2 table's; the VNNI module brings 512-bit
        // ones).
        dot32!(
            #[allow(dead_code, reason = "an ISA may bring its own Q4_0 kernel")]
            dot_q4_0_ymm,
            18,
            dot_u8_i8,
            unpack_q4_0,
            fix8,
            None::<usize>
        );
        dot32!(
            #[allow(dead_code, reason = "an ISA may bring its own Q4_1 kernel")]
            dot_q4_1_ymm,
            20,
            dot_u8_i8,
            unpack_q4_1,
            no_fix,
            Some(2usize)
        );
        dot32!(
            #[allow(dead_code, reason = "an ISA may bring its own Q5_0 kernel")]
            dot_q5_0_ymm,
            22,
            dot_u8_i8,
            unpack_q5_0,
            fix16,
            None::<usize>
        );
        dot32!(
            #[allow(dead_code, reason = "an ISA may bring its own Q5_1 kernel")]
            dot_q5_1_ymm,
            24,
            dot_u8_i8,
            unpack_q5_1,
            no_fix,
            Some(2usize)
        );
        dot32!(
            #[allow(dead_code, reason = "an ISA may bring its own Q8_0 kernel")]
            dot_q8_0_ymm,
            34,
            dot_i8_i8,
            unpack_q8_0,
            no_fix,
            None::<usize>
        );
        dot32!(
            #[allow(dead_code, reason = "an ISA may bring its own IQ4_NL kernel")]
            dot_iq4_nl_ymm,
            18,
            dot_i8_i8,
            unpack_iq4_nl,
            no_fix,
            None::<usize>
        );

        /// The 16 `IQ4` values in both 128-bit lanes (a `vpshufb` table).
        #[inline]
        #[target_feature(enable = $feat)]
        fn iq4_table() -> __m256i {
            // SAFETY: `KVALUES_IQ4NL` is 16 bytes; the load is unaligned.
            let t = unsafe { _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()) };
            _mm256_broadcastsi128_si256(t)
        }

        /// The 32 signed codes of an `IQ4_NL` block.
        #[allow(dead_code, reason = "only the 256-bit IQ4_NL kernel uses it")]
        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_iq4_nl(b: &[u8]) -> __m256i {
            _mm256_shuffle_epi8(iq4_table(), nibbles32(ld16(&b[2..])))
        }

        // ---- K-quants -----------------------------------------------------------------------

        /// Bits `shift..shift + 2` of every byte (`shift` < 8), as 0..=3.
        #[allow(dead_code, reason = "only the 256-bit Q2_K/Q3_K kernels use it")]
        #[inline]
        #[target_feature(enable = $feat)]
        fn two_bits(q: __m256i, shift: i32) -> __m256i {
            _mm256_and_si256(
                _mm256_srl_epi16(q, _mm_cvtsi32_si128(shift)),
                _mm256_set1_epi8(3),
            )
        }

        /// i16 lanes `[v_j × 8 | v_j+1 × 8]` for an even `j` from 16 i16 `v` (sub-blocks `j`
        /// and `j + 1` of 16 elements in one vector of 32).
        #[inline]
        #[target_feature(enable = $feat)]
        fn pair16(halves: &[__m256i; 2], j: usize) -> __m256i {
            let h = &halves[j / 8];
            _mm256_blend_epi32::<0xf0>(pick16(*h, j % 8), pick16(*h, j % 8 + 1))
        }

        /// Each 8-lane half of 16 i16 in both 128-bit lanes (for [`pair16`]).
        #[inline]
        #[target_feature(enable = $feat)]
        fn halves16(v: __m256i) -> [__m256i; 2] {
            [
                _mm256_permute2x128_si256::<0x00>(v, v),
                _mm256_permute2x128_si256::<0x11>(v, v),
            ]
        }

        #[allow(dead_code, reason = "an ISA may bring its own Q2_K kernel")]
        #[target_feature(enable = $feat)]
        fn dot_q2_k_ymm<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            let mut out = [0.0f32; T];
            let nib = _mm_set1_epi8(0x0f);
            for (b, blk) in w.chunks_exact(84).enumerate() {
                let raw = ld16(&blk[q2_k::SCALES..]);
                let sc = halves16(_mm256_cvtepu8_epi16(_mm_and_si128(raw, nib)));
                let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(raw), nib));
                let mut acc = [_mm256_setzero_si256(); T];
                for h in 0..2 {
                    let q = ld32(&blk[q2_k::QS + 32 * h..]);
                    for s in 0..4 {
                        let u = two_bits(q, 2 * s as i32);
                        let scv = pair16(&sc, 8 * h + 2 * s);
                        for t in 0..T {
                            let xq = ldx(&x[t].qs[256 * b + 128 * h + 32 * s..]);
                            acc[t] = dot_u8_i8_scaled(acc[t], u, xq, scv);
                        }
                    }
                }
                let (d, dmin) = (f16_at(blk, q2_k::D), f16_at(blk, q2_k::DMIN));
                for t in 0..T {
                    let m = hsum_i32(_mm256_madd_epi16(mins, ld_i16x16(&x[t].sums[16 * b..])));
                    out[t] += k_term(x[t].d[b], d, hsum_i32(acc[t]), dmin, m);
                }
            }
            out
        }

        /// The 16 signed 6-bit scales of a `Q3_K` block (layout: `q3_k::unpack_scales`) as i16.
        #[allow(dead_code, reason = "only the 256-bit Q3_K kernel uses it")]
        #[inline]
        #[target_feature(enable = $feat)]
        fn q3_scales(s: &[u8]) -> __m256i {
            let a = [u32_at(s, 0), u32_at(s, 4), u32_at(s, 8)];
            let (k4, k2) = (0x0f0f_0f0f_u32, 0x0303_0303_u32);
            let r0 = (a[0] & k4) | ((a[2] & k2) << 4);
            let r1 = (a[1] & k4) | (((a[2] >> 2) & k2) << 4);
            let r2 = ((a[0] >> 4) & k4) | (((a[2] >> 4) & k2) << 4);
            let r3 = ((a[1] >> 4) & k4) | (((a[2] >> 6) & k2) << 4);
            let v = _mm256_cvtepu8_epi16(_mm_set_epi32(r3 as i32, r2 as i32, r1 as i32, r0 as i32));
            _mm256_sub_epi16(v, _mm256_set1_epi16(32))
        }

        #[allow(dead_code, reason = "an ISA may bring its own Q3_K kernel")]
        #[target_feature(enable = $feat)]
        fn dot_q3_k_ymm<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            let mut out = [0.0f32; T];
            for (b, blk) in w.chunks_exact(110).enumerate() {
                let sc16 = q3_scales(&blk[q3_k::SCALES..q3_k::SCALES + 12]);
                let sc = halves16(sc16);
                let hm = ld32(&blk[q3_k::HMASK..]);
                let mut acc = [_mm256_setzero_si256(); T];
                for h in 0..2 {
                    let q = ld32(&blk[q3_k::QS + 32 * h..]);
                    for s in 0..4 {
                        let high = _mm256_and_si256(
                            _mm256_srl_epi16(hm, _mm_cvtsi32_si128((4 * h + s) as i32)),
                            _mm256_set1_epi8(1),
                        );
                        let u = _mm256_or_si256(
                            two_bits(q, 2 * s as i32),
                            _mm256_slli_epi16::<2>(high),
                        );
                        let scv = pair16(&sc, 8 * h + 2 * s);
                        for t in 0..T {
                            let xq = ldx(&x[t].qs[256 * b + 128 * h + 32 * s..]);
                            acc[t] = dot_u8_i8_scaled(acc[t], u, xq, scv);
                        }
                    }
                }
                let d = f16_at(blk, q3_k::D);
                for t in 0..T {
                    // Σ sc_j (u - 4)·x = Σ sc_j u·x - 4 Σ sc_j S_j.
                    let off = hsum_i32(_mm256_madd_epi16(sc16, ld_i16x16(&x[t].sums[16 * b..])));
                    out[t] += k_term_sym(x[t].d[b], d, hsum_i32(acc[t]) - 4 * off);
                }
            }
            out
        }

        /// `Q6_K` on 256-bit vectors.
        #[inline]
        #[target_feature(enable = $feat)]
        #[allow(dead_code, reason = "an ISA may bring its own Q6_K kernel")]
        fn dot_q6_k_ymm<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            let mut out = [0.0f32; T];
            let nib = _mm256_set1_epi8(0x0f);
            let three = _mm256_set1_epi8(3);
            for (b, blk) in w.chunks_exact(210).enumerate() {
                // The 16 i8 scales as i16, and each half of them in both 128-bit lanes.
                let sc = _mm256_cvtepi8_epi16(ld16(&blk[192..]));
                let sc_halves = halves16(sc);
                let mut acc = [_mm256_setzero_si256(); T];
                for h in 0..2 {
                    let ql0 = ld32(&blk[64 * h..]);
                    let ql1 = ld32(&blk[64 * h + 32..]);
                    let qh = ld32(&blk[128 + 32 * h..]);
                    let u = [
                        _mm256_or_si256(
                            _mm256_and_si256(ql0, nib),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(qh, three)),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(ql1, nib),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(
                                _mm256_srli_epi16::<2>(qh),
                                three,
                            )),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), nib),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(
                                _mm256_srli_epi16::<4>(qh),
                                three,
                            )),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), nib),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(
                                _mm256_srli_epi16::<6>(qh),
                                three,
                            )),
                        ),
                    ];
                    for (s, &u) in u.iter().enumerate() {
                        // Sub-blocks 8h + 2s (low 16 elements) and 8h + 2s + 1 (high 16).
                        let scv = pair16(&sc_halves, 8 * h + 2 * s);
                        for t in 0..T {
                            let xq = ldx(&x[t].qs[256 * b + 128 * h + 32 * s..]);
                            acc[t] = dot_u8_i8_scaled(acc[t], u, xq, scv);
                        }
                    }
                }
                let d = f16_at(blk, 208);
                for t in 0..T {
                    // Σ sc_j (u - 32)·x = Σ sc_j u·x - 32 Σ sc_j S_j.
                    let off = hsum_i32(_mm256_madd_epi16(sc, ld_i16x16(&x[t].sums[16 * b..])));
                    let i = hsum_i32(acc[t]) - 32 * off;
                    out[t] += k_term_sym(x[t].d[b], d, i);
                }
            }
            out
        }

        // ---- IQ types -------------------------------------------------------------------------

        /// `acc + Σ m·c·q` over 32 signed codes `c` (`|c| <= 127`) against 32 activation codes,
        /// `m` the i16 scale of each 16 (lanes 0-7 / 8-15 of `sc`).
        #[inline]
        #[target_feature(enable = $feat)]
        fn dot_signed_scaled(acc: __m256i, c: __m256i, q: __m256i, sc: __m256i) -> __m256i {
            dot_u8_i8_scaled(acc, _mm256_abs_epi8(c), _mm256_sign_epi8(q, c), sc)
        }

        iq_kernels!($feat);

        /// The scales `s - 32` of the eight sub-blocks of an `IQ4_XS` block in i32 lanes.
        #[inline]
        #[target_feature(enable = $feat)]
        fn iq4_xs_scales(blk: &[u8; 136]) -> __m256i {
            let low = _mm256_srlv_epi32(
                _mm256_set1_epi32(u32_at(blk, 4) as i32),
                _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28),
            );
            let high = _mm256_srlv_epi32(
                _mm256_set1_epi32(u16::from_le_bytes([blk[2], blk[3]]) as i32),
                _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14),
            );
            let s = _mm256_or_si256(
                _mm256_and_si256(low, _mm256_set1_epi32(15)),
                _mm256_slli_epi32::<4>(_mm256_and_si256(high, _mm256_set1_epi32(3))),
            );
            _mm256_sub_epi32(s, _mm256_set1_epi32(32))
        }

        /// `IQ4_XS` on 256-bit vectors: the codes by a byte shuffle of the nibbles, the 6-bit
        /// scales `s - 32` of the eight sub-blocks unpacked together; even and odd sub-blocks
        /// go to two accumulators (a shorter dependency chain).
        #[inline]
        #[target_feature(enable = $feat)]
        #[allow(dead_code, reason = "an ISA may bring its own IQ4_XS kernel")]
        fn dot_iq4_xs_ymm<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            let mut out = [0.0f32; T];
            let kv = iq4_table();
            for (b, blk) in w.chunks_exact(136).enumerate() {
                let blk: &[u8; 136] = blk.try_into().expect("136 bytes");
                // i32 lane `ib`: `s - 32` in both i16 halves.
                let s = iq4_xs_scales(blk);
                let s = _mm256_or_si256(
                    _mm256_and_si256(s, _mm256_set1_epi32(0xffff)),
                    _mm256_slli_epi32::<16>(s),
                );
                let mut sc = [0i32; 8];
                // SAFETY: `sc` is 32 bytes; the store is unaligned.
                unsafe { _mm256_storeu_si256(sc.as_mut_ptr().cast(), s) };
                let mut acc = [[_mm256_setzero_si256(); T]; 2];
                for ib in (0..8).step_by(2) {
                    for k in 0..2 {
                        let q = ld16(&blk[8 + 16 * (ib + k)..]);
                        let c = _mm256_shuffle_epi8(kv, nibbles32(q));
                        let scv = _mm256_set1_epi32(sc[ib + k]);
                        for t in 0..T {
                            let xq = ldx(&x[t].qs[256 * b + 32 * (ib + k)..]);
                            acc[k][t] = dot_signed_scaled(acc[k][t], c, xq, scv);
                        }
                    }
                }
                let d = f16_at(blk, 0);
                for t in 0..T {
                    let i = hsum_i32(_mm256_add_epi32(acc[0][t], acc[1][t]));
                    out[t] += k_term_sym(x[t].d[b], d, i);
                }
            }
            out
        }

        #[target_feature(enable = $feat)]
        fn dot_q8_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            let mut out = [0.0f32; T];
            for (b, blk) in w.chunks_exact(292).enumerate() {
                let mut acc = [_mm256_setzero_si256(); T];
                for c in 0..8 {
                    let v = ld32(&blk[4 + 32 * c..]);
                    for t in 0..T {
                        acc[t] = dot_i8_i8(acc[t], v, ldx(&x[t].qs[256 * b + 32 * c..]));
                    }
                }
                let d = f32_at(blk, 0);
                for t in 0..T {
                    out[t] += k_term_sym(x[t].d[b], d, hsum_i32(acc[t]));
                }
            }
            out
        }
    };
}
