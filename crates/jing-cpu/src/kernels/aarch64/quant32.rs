//! The 32-element block types (`Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0`) of
//! [`quant_kernels!`]: each block unpacked to two vectors of 16 signed weight values, dotted
//! with the activation codes, and four blocks' exact sums scaled at once (see `quant`).

/// Part of [`quant_kernels!`] (uses its helpers and the invoking module's `dot_i8`).
macro_rules! quant_kernels_32 {
    ($feat:literal) => {
        /// The skeleton of the 32-element types: groups of 4 blocks (`BB` bytes each)
        /// unpacked by `$unpack` (`(block bytes) -> [elements 0..16, 16..32]` as signed
        /// values), with the block min's f16 at `$min_at` (if any). A short last group is
        /// padded with zero blocks (zero scales and activation scales, so their terms are +0).
        macro_rules! dot32 {
            ($name:ident, $bb:expr, $unpack:ident, $min_at:expr) => {
                #[target_feature(enable = $feat)]
                fn $name<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
                    const BB: usize = $bb;
                    let nb = w.len() / BB;
                    let mut acc = [vdupq_n_f32(0.0); T];
                    for b0 in (0..nb).step_by(4) {
                        let live = 4.min(nb - b0);
                        let mut p = [[vdupq_n_s32(0); 4]; T];
                        // The f16 scales (and mins) of the group's blocks, as bits.
                        let (mut dh, mut mh) = ([0u16; 4], [0u16; 4]);
                        for j in 0..live {
                            let blk = &w[BB * (b0 + j)..BB * (b0 + j + 1)];
                            let [lo, hi]: [int8x16_t; 2] = $unpack(blk);
                            for t in 0..T {
                                let q = &x[t].qs[32 * (b0 + j)..32 * (b0 + j + 1)];
                                p[t][j] = dot_i8(dot16(lo, q), hi, ld_i8(&q[16..]));
                            }
                            dh[j] = u16::from_le_bytes([blk[0], blk[1]]);
                            if let Some(at) = $min_at {
                                mh[j] = u16::from_le_bytes([blk[at], blk[at + 1]]);
                            }
                        }
                        let dw = f16x4(dh);
                        let mw = f16x4(mh);
                        for t in 0..T {
                            let (dx, s) = scales_and_sums(&x[t], b0, live);
                            let isum = vcvtq_f32_s32(reduce4(&p[t]));
                            acc[t] = vfmaq_f32(acc[t], vmulq_f32(dw, dx), isum);
                            if $min_at.is_some() {
                                acc[t] = vfmaq_f32(acc[t], vmulq_f32(mw, dx), vcvtq_f32_s32(s));
                            }
                        }
                    }
                    let mut out = [0.0f32; T];
                    for t in 0..T {
                        out[t] = vaddvq_f32(acc[t]);
                    }
                    out
                }
            };
        }

        /// The activation scales `dx` and code sums `S` of the 32-blocks `b0..b0 + live`
        /// (`live <= 4`), zeros in the lanes beyond.
        #[inline]
        #[target_feature(enable = $feat)]
        fn scales_and_sums(x: &XRow<'_>, b0: usize, live: usize) -> (float32x4_t, int32x4_t) {
            if live == 4 {
                return (ld_f32(&x.d[b0..]), vpaddlq_s16(ld_i16(&x.sums[2 * b0..])));
            }
            let (mut d, mut s) = ([0.0f32; 4], [0i16; 8]);
            d[..live].copy_from_slice(&x.d[b0..b0 + live]);
            s[..2 * live].copy_from_slice(&x.sums[2 * b0..2 * (b0 + live)]);
            (ld_f32(&d), vpaddlq_s16(ld_i16(&s)))
        }

        /// The 32 4-bit codes of 16 packed bytes: low nibbles (elements 0..16), then high.
        #[inline]
        #[target_feature(enable = $feat)]
        fn nibbles(q: uint8x16_t) -> [uint8x16_t; 2] {
            [vandq_u8(q, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(q)]
        }

        /// Byte `l` of the pair (elements 0..16, 16..32) is `0x10` where bit `l` of `qh` is
        /// set, else 0.
        #[inline]
        #[target_feature(enable = $feat)]
        fn fifth_bits(qh: u32) -> [uint8x16_t; 2] {
            let v = vreinterpretq_u8_u32(vdupq_n_u32(qh));
            [spread_bits(v, 0), spread_bits(v, 2)]
        }

        /// Byte `i` is `0x10` where bit `i % 8` of byte `a + i / 8` of `v` is set, else 0.
        #[inline]
        #[target_feature(enable = $feat)]
        fn spread_bits(v: uint8x16_t, a: u8) -> uint8x16_t {
            let idx = vcombine_u8(vdup_n_u8(a), vdup_n_u8(a + 1));
            // Byte i of the mask is bit i % 8.
            let bits = vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201));
            vandq_u8(vtstq_u8(vqtbl1q_u8(v, idx), bits), vdupq_n_u8(0x10))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_q4_0(b: &[u8]) -> [int8x16_t; 2] {
            let [lo, hi] = nibbles(ld_u8(&b[2..]));
            [minus(lo, 8), minus(hi, 8)]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_q4_1(b: &[u8]) -> [int8x16_t; 2] {
            let [lo, hi] = nibbles(ld_u8(&b[4..]));
            [minus(lo, 0), minus(hi, 0)]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_q5_0(b: &[u8]) -> [int8x16_t; 2] {
            let [lo, hi] = nibbles(ld_u8(&b[6..]));
            let [f0, f1] = fifth_bits(u32_at(b, 2));
            [minus(vorrq_u8(lo, f0), 16), minus(vorrq_u8(hi, f1), 16)]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_q5_1(b: &[u8]) -> [int8x16_t; 2] {
            let [lo, hi] = nibbles(ld_u8(&b[8..]));
            let [f0, f1] = fifth_bits(u32_at(b, 4));
            [minus(vorrq_u8(lo, f0), 0), minus(vorrq_u8(hi, f1), 0)]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn unpack_q8_0(b: &[u8]) -> [int8x16_t; 2] {
            [
                vreinterpretq_s8_u8(ld_u8(&b[2..])),
                vreinterpretq_s8_u8(ld_u8(&b[18..])),
            ]
        }

        dot32!(dot_q4_0, 18, unpack_q4_0, None::<usize>);
        dot32!(dot_q4_1, 20, unpack_q4_1, Some(2usize));
        dot32!(dot_q5_0, 22, unpack_q5_0, None::<usize>);
        dot32!(dot_q5_1, 24, unpack_q5_1, Some(2usize));
        dot32!(dot_q8_0, 34, unpack_q8_0, None::<usize>);
    };
}
