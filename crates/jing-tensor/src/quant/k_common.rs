//! Pieces shared by the K-quant reference quantizers: llama.cpp's rounding, and its searches
//! for a sub-block's scale (and min). The searches are deterministic f32 arithmetic; they are
//! written so that every product and sum happens in the same order as in the reference, which
//! is what makes the resulting bytes identical.

/// Round to nearest, ties to even, by adding 1.5 · 2^23 and reading the low mantissa bits
/// (valid for |v| < 2^22, which every caller guarantees by construction).
#[inline(always)]
pub fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0f32).to_bits();
    (bits & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Below this magnitude a group counts as all zero.
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// Symmetric codes for a sub-block with `2 · nmax` levels (`L[i] ∈ 0..2·nmax`, value
/// `scale · (L[i] - nmax)`), weighting each element by `x²`: start from the scale that maps
/// the largest-magnitude element onto `-nmax`, then try 18 nearby scales and keep the one with
/// the best weighted least-squares fit. Returns the scale (0 for an all-zero group).
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let nm = nmax as f32;
    let fit = |iscale: f32, l_out: Option<&mut [i8]>| -> (f32, f32) {
        let mut sumlx = 0.0f32;
        let mut suml2 = 0.0f32;
        let mut l_out = l_out;
        for (i, &v) in x.iter().enumerate() {
            let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
            if let Some(o) = l_out.as_deref_mut() {
                o[i] = (l + nmax) as i8;
            }
            let w = v * v;
            let lf = l as f32;
            sumlx += w * v * lf;
            suml2 += w * lf * lf;
        }
        (sumlx, suml2)
    };
    let iscale = -nm / max;
    let (sumlx, suml2) = fit(iscale, Some(l_out));
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nm + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale, None);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            fit(iscale, Some(l_out));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Symmetric codes with `2 · nmax` levels for `Q3_K` (`L[i] ∈ 0..2·nmax`): the max-magnitude
/// start, then up to 5 passes that move single codes while the `x²`-weighted fit improves.
/// Returns the scale.
pub(crate) fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..x.len()].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (i, &v) in x.iter().enumerate() {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        l_out[i] = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (i, &v) in x.iter().enumerate() {
            let w = v * v;
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * v * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l_out[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * v * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for l in l_out[..x.len()].iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Asymmetric codes `L[i] ∈ 0..=nmax` for a sub-block (value `scale · L[i] - min`), with
/// per-element `weights`: start from the range `[min(x, 0), max(x)]`, then try `nstep + 1`
/// scales `(nmax + rmin + rdelta · is) / range` and solve the weighted least-squares scale and
/// offset for each, keeping the one with the smallest weighted error (absolute if `use_mad`,
/// else squared). Returns `(scale, min)` with the min as a non-negative number to subtract.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out[..n].fill(0);
        return (0.0, -min);
    }
    let nm = nmax as f32;
    let err = |d: f32, w: f32| if use_mad { w * d.abs() } else { w * (d * d) };
    let mut iscale = nm / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += err(diff, weights[i]);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nm) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += err(diff, weights[i]);
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Unpack the 12 scale bytes of `Q4_K`/`Q5_K`: eight 6-bit scales and eight 6-bit mins.
/// Bytes 0..4 hold scales 0..4 in their low 6 bits, bytes 4..8 mins 0..4; scales and mins 4..8
/// have their low 4 bits in bytes 8..12 (scale low nibble, min high nibble) and their top 2
/// bits in the top 2 bits of bytes 0..4 (scales) and 4..8 (mins).
#[inline]
pub fn unpack_scales_mins_k4(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0x0f) | ((s[j] >> 6) << 4);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (sc, mn)
}

/// The inverse of [`unpack_scales_mins_k4`] (values must be < 64).
pub(crate) fn pack_scales_mins_k4(sc: &[u8; 8], mn: &[u8; 8], s: &mut [u8]) {
    for j in 0..4 {
        s[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4);
    }
}

/// The `Q4_K`/`Q5_K` sub-block search with llama.cpp's reference settings: weights
/// `sqrt(mean(x²)) + |x|`, then [`make_qkx2_quants`].
pub(crate) fn qkx2_sub_block(
    nmax: i32,
    x: &[f32],
    l_out: &mut [u8],
    rmin: f32,
    nstep: i32,
) -> (f32, f32) {
    let mut sum_x2 = 0.0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    let av_x = (sum_x2 / 32.0).sqrt();
    let mut w = [0.0f32; 32];
    for (w, &v) in w.iter_mut().zip(x) {
        *w = av_x + v.abs();
    }
    make_qkx2_quants(nmax, x, &w[..x.len()], l_out, rmin, 0.1, nstep, false)
}

/// Quantize the 8 sub-block scales and mins of a `Q4_K`/`Q5_K` super-block to 6 bits against
/// their maxima, then recompute every code against the rounded scales. Returns the packed
/// scale bytes, `d`, `dmin` (as stored) and the codes (`0..=nmax`).
pub(crate) fn k4_finish(
    x: &[f32],
    scales: &[f32; 8],
    mins: &[f32; 8],
    l: &mut [u8; 256],
    nmax: i32,
) -> ([u8; 12], u16, u16) {
    let max_scale = scales
        .iter()
        .fold(0.0f32, |a, &s| if s > a { s } else { a });
    let max_min = mins.iter().fold(0.0f32, |a, &s| if s > a { s } else { a });
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let mut packed = [0u8; 12];
    pack_scales_mins_k4(&ls, &lm, &mut packed);
    let d = super::f16_bits(max_scale / 63.0);
    let dmin = super::f16_bits(max_min / 63.0);
    let df = crate::f16_to_f32(d);
    let dminf = crate::f16_to_f32(dmin);
    for j in 0..8 {
        let dj = df * ls[j] as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dminf * lm[j] as f32;
        for i in 0..32 {
            let q = nearest_int((x[32 * j + i] + dm) / dj).clamp(0, nmax);
            l[32 * j + i] = q as u8;
        }
    }
    (packed, d, dmin)
}
