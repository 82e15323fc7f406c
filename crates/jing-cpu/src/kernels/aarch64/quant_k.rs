//! The K-quants (`Q2_K` .. `Q6_K`) and `Q8_K` of [`quant_kernels!`]. A 256-block goes in
//! groups of four sub-blocks: their weights are unpacked to signed values once per group (and
//! shared by every token of the pass), each sub-block's dot product is reduced to one i32 lane
//! ([`reduce4`]), and the four lanes are multiplied by their sub-block scales and added in i32.
//! The block's exact `I` (and `M`) then go through the generic float step, so the results are
//! bit-identical to the generic kernel's.

/// Part of [`quant_kernels!`] (uses its helpers and the invoking module's `dot_i8`).
macro_rules! quant_kernels_k {
    ($feat:literal) => {
        /// Lane `i` is `Σ u[i]·q[16i..16i + 16]`: four 16-element sub-blocks.
        #[inline]
        #[target_feature(enable = $feat)]
        fn sub_dots4(u: &[int8x16_t; 4], q: &[i8]) -> int32x4_t {
            reduce4(&[
                dot16(u[0], q),
                dot16(u[1], &q[16..]),
                dot16(u[2], &q[32..]),
                dot16(u[3], &q[48..]),
            ])
        }

        /// Lane `i` is `Σ u[i]·q[32i..32i + 32]`: four 32-element sub-blocks (each as its
        /// elements 0..16 and 16..32).
        #[inline]
        #[target_feature(enable = $feat)]
        fn sub_dots4x32(u: &[[int8x16_t; 2]; 4], q: &[i8]) -> int32x4_t {
            let mut p = [vdupq_n_s32(0); 4];
            for i in 0..4 {
                p[i] = dot_i8(
                    dot16(u[i][0], &q[32 * i..]),
                    u[i][1],
                    ld_i8(&q[32 * i + 16..]),
                );
            }
            reduce4(&p)
        }

        /// `Σ_j m[j] · s[j]` over 16 small unsigned `m` (< 64) and the i16 `s`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn mins_dot16(m: uint8x16_t, s: &[i16]) -> i32 {
            let lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m)));
            let hi = vreinterpretq_s16_u16(vmovl_high_u8(m));
            vaddvq_s32(vaddq_s32(
                dot_i16(lo, ld_i16(s)),
                dot_i16(hi, ld_i16(&s[8..])),
            ))
        }

        /// 8 bytes as two i32 vectors (`[0..4, 4..8]`).
        #[inline]
        #[target_feature(enable = $feat)]
        fn widen_u8x8(v: &[u8; 8]) -> [int32x4_t; 2] {
            // SAFETY: `v` has 8 bytes; NEON loads need no alignment.
            let w = vmovl_u8(unsafe { vld1_u8(v.as_ptr()) });
            [
                vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w))),
                vreinterpretq_s32_u32(vmovl_high_u16(w)),
            ]
        }

        #[target_feature(enable = $feat)]
        fn dot_q2_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            let mut out = [0.0f32; T];
            for (b, blk) in w.chunks_exact(84).enumerate() {
                let raw = ld_u8(&blk[q2_k::SCALES..]);
                let sc = widen_i8(vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f))));
                let qs = &blk[q2_k::QS..q2_k::QS + 64];
                let mut acc = [vdupq_n_s32(0); T];
                for c in 0..4 {
                    // Sub-blocks 4c..4c + 4 (elements 64c..64c + 64): in half h, the bit pairs
                    // s and s + 1 of bytes 0..16 and 16..32.
                    let (h, s) = (c / 2, 2 * (c % 2));
                    let q = [ld_u8(&qs[32 * h..]), ld_u8(&qs[32 * h + 16..])];
                    let u = [
                        minus(two_bits(q[0], 2 * s), 0),
                        minus(two_bits(q[1], 2 * s), 0),
                        minus(two_bits(q[0], 2 * s + 2), 0),
                        minus(two_bits(q[1], 2 * s + 2), 0),
                    ];
                    for t in 0..T {
                        let p = sub_dots4(&u, &x[t].qs[256 * b + 64 * c..]);
                        acc[t] = vmlaq_s32(acc[t], p, sc[c]);
                    }
                }
                let (d, dmin) = (f16_at(blk, q2_k::D), f16_at(blk, q2_k::DMIN));
                let mins = vshrq_n_u8::<4>(raw);
                for t in 0..T {
                    let m = mins_dot16(mins, &x[t].sums[16 * b..]);
                    out[t] += k_term(x[t].d[b], d, vaddvq_s32(acc[t]), dmin, m);
                }
            }
            out
        }

        /// `Q3_K` codes `u - 4` of 16 elements: the bit pair `2s` of `q` and, as the third
        /// bit, bit `hb` of `hm`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn q3_codes(q: uint8x16_t, hm: uint8x16_t, s: usize, hb: usize) -> int8x16_t {
            minus(
                vorrq_u8(two_bits(q, 2 * s), vshlq_n_u8::<2>(bit(hm, hb))),
                4,
            )
        }

        #[target_feature(enable = $feat)]
        fn dot_q3_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            let mut out = [0.0f32; T];
            for (b, blk) in w.chunks_exact(110).enumerate() {
                let sc16 = q3_k::unpack_scales(&blk[q3_k::SCALES..q3_k::SCALES + 12]);
                // SAFETY: `sc16` has 16 bytes; NEON loads need no alignment.
                let sc = widen_i8(unsafe { vld1q_s8(sc16.as_ptr()) });
                let hm = [ld_u8(&blk[q3_k::HMASK..]), ld_u8(&blk[q3_k::HMASK + 16..])];
                let qs = &blk[q3_k::QS..q3_k::QS + 64];
                let mut acc = [vdupq_n_s32(0); T];
                for c in 0..4 {
                    // As Q2_K; element 128h + 32s + l has its third bit in bit 4h + s of
                    // hmask[l].
                    let (h, s) = (c / 2, 2 * (c % 2));
                    let q = [ld_u8(&qs[32 * h..]), ld_u8(&qs[32 * h + 16..])];
                    let u = [
                        q3_codes(q[0], hm[0], s, 4 * h + s),
                        q3_codes(q[1], hm[1], s, 4 * h + s),
                        q3_codes(q[0], hm[0], s + 1, 4 * h + s + 1),
                        q3_codes(q[1], hm[1], s + 1, 4 * h + s + 1),
                    ];
                    for t in 0..T {
                        let p = sub_dots4(&u, &x[t].qs[256 * b + 64 * c..]);
                        acc[t] = vmlaq_s32(acc[t], p, sc[c]);
                    }
                }
                let d = f16_at(blk, q3_k::D);
                for t in 0..T {
                    out[t] += k_term_sym(x[t].d[b], d, vaddvq_s32(acc[t]));
                }
            }
            out
        }

        /// `Q4_K` and `Q5_K`: `BB` bytes per block, `QS` the offset of the low nibbles, `QH`
        /// the offset of the fifth bits (0: none). Sub-block `j` (32 elements) is nibble
        /// `j % 2` of bytes `32(j / 2)..` of the low nibbles, and bit `j` of the fifth bits.
        #[inline]
        #[target_feature(enable = $feat)]
        fn dot_k4<const T: usize, const BB: usize, const QS: usize, const QH: usize>(
            w: &[u8],
            x: &[XRow<'_>; T],
        ) -> [f32; T] {
            let mut out = [0.0f32; T];
            for (b, blk) in w.chunks_exact(BB).enumerate() {
                let (sc, mn) = unpack_scales_mins_k4(&blk[4..16]);
                let scv = widen_u8x8(&sc);
                let qh = if QH > 0 {
                    [ld_u8(&blk[QH..]), ld_u8(&blk[QH + 16..])]
                } else {
                    [vdupq_n_u8(0); 2]
                };
                let mut acc = [vdupq_n_s32(0); T];
                for c in 0..2 {
                    let mut u = [[vdupq_n_s8(0); 2]; 4];
                    for i in 0..4 {
                        let j = 4 * c + i;
                        let at = QS + 32 * (j / 2);
                        let q = [ld_u8(&blk[at..]), ld_u8(&blk[at + 16..])];
                        for e in 0..2 {
                            let mut v = if j % 2 == 0 {
                                vandq_u8(q[e], vdupq_n_u8(0x0f))
                            } else {
                                vshrq_n_u8::<4>(q[e])
                            };
                            if QH > 0 {
                                v = vorrq_u8(v, vshlq_n_u8::<4>(bit(qh[e], j)));
                            }
                            u[i][e] = minus(v, 0);
                        }
                    }
                    for t in 0..T {
                        let p = sub_dots4x32(&u, &x[t].qs[256 * b + 128 * c..]);
                        acc[t] = vmlaq_s32(acc[t], p, scv[c]);
                    }
                }
                // M = Σ_j m_j · (S_2j + S_2j+1): the sums of 32 codes fit i16.
                // SAFETY: `mn` has 8 bytes; NEON loads need no alignment.
                let mins = vreinterpretq_s16_u16(vmovl_u8(unsafe { vld1_u8(mn.as_ptr()) }));
                let (d, dmin) = (f16_at(blk, 0), f16_at(blk, 2));
                for t in 0..T {
                    let s = &x[t].sums[16 * b..];
                    let s32 = vpaddq_s16(ld_i16(s), ld_i16(&s[8..]));
                    let m = vaddvq_s32(dot_i16(mins, s32));
                    out[t] += k_term(x[t].d[b], d, vaddvq_s32(acc[t]), dmin, m);
                }
            }
            out
        }

        #[target_feature(enable = $feat)]
        fn dot_q4_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            dot_k4::<T, 144, 16, 0>(w, x)
        }

        #[target_feature(enable = $feat)]
        fn dot_q5_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            dot_k4::<T, 176, 48, 16>(w, x)
        }

        #[target_feature(enable = $feat)]
        fn dot_q6_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            let mut out = [0.0f32; T];
            for (b, blk) in w.chunks_exact(210).enumerate() {
                let sc = widen_i8(vreinterpretq_s8_u8(ld_u8(&blk[q6_k::SCALES..])));
                let mut acc = [vdupq_n_s32(0); T];
                for c in 0..4 {
                    // Half h; its element 32s + l (s < 4) has its low 4 bits in nibble s / 2 of
                    // ql[32(s % 2) + l] and its top 2 bits in bits 2s.. of qh[l].
                    let h = c / 2;
                    let ql = &blk[q6_k::QL + 64 * h..q6_k::QL + 64 * h + 64];
                    let qh = &blk[q6_k::QH + 32 * h..q6_k::QH + 32 * h + 32];
                    let mut u = [vdupq_n_s8(0); 4];
                    for (i, u) in u.iter_mut().enumerate() {
                        let (s, e) = (2 * (c % 2) + i / 2, i % 2);
                        let l = ld_u8(&ql[32 * (s % 2) + 16 * e..]);
                        let low = if s < 2 {
                            vandq_u8(l, vdupq_n_u8(0x0f))
                        } else {
                            vshrq_n_u8::<4>(l)
                        };
                        let high = two_bits(ld_u8(&qh[16 * e..]), 2 * s);
                        *u = minus(vorrq_u8(low, vshlq_n_u8::<4>(high)), 32);
                    }
                    for t in 0..T {
                        let p = sub_dots4(&u, &x[t].qs[256 * b + 64 * c..]);
                        acc[t] = vmlaq_s32(acc[t], p, sc[c]);
                    }
                }
                let d = f16_at(blk, q6_k::D);
                for t in 0..T {
                    out[t] += k_term_sym(x[t].d[b], d, vaddvq_s32(acc[t]));
                }
            }
            out
        }

        #[target_feature(enable = $feat)]
        fn dot_q8_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
            let mut out = [0.0f32; T];
            for (b, blk) in w.chunks_exact(292).enumerate() {
                let mut acc = [vdupq_n_s32(0); T];
                for c in 0..16 {
                    let v = vreinterpretq_s8_u8(ld_u8(&blk[4 + 16 * c..]));
                    for t in 0..T {
                        acc[t] = dot_i8(acc[t], v, ld_i8(&x[t].qs[256 * b + 16 * c..]));
                    }
                }
                let d = f32_at(blk, 0);
                for t in 0..T {
                    out[t] += k_term_sym(x[t].d[b], d, vaddvq_s32(acc[t]));
                }
            }
            out
        }
    };
}
