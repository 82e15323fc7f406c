//! The row loop every ISA's quantized matmul (`matmul_q`) shares: each weight row is taken
//! once per tile of up to [`TILE`] tokens, so its blocks are unpacked once per pass.

/// Most tokens one weight row is multiplied with per pass.
pub(crate) const TILE: usize = 4;

/// `[f32; T]` padded to [`TILE`].
#[inline(always)]
pub(crate) fn widen<const T: usize>(v: [f32; T]) -> [f32; TILE] {
    let mut o = [0.0; TILE];
    o[..T].copy_from_slice(&v);
    o
}

/// `y[t, n] = $dot::<T>(row n of $data, [x.row(t) for the tile's tokens])` for `n ∈ $rows`
/// and every token of `$x` (a `QuantX`), `$rb` bytes per row; `$one_token` (default true) takes
/// a single token through its own loop. A macro, not a generic function, so that the dot
/// products inline into the caller's `#[target_feature]` function. The caller owns columns
/// `$rows` of `$y` (the `MatmulQFn` contract) and has checked them against its leading
/// dimension.
macro_rules! drive_rows {
    ($dot:ident, $data:expr, $rb:expr, $rows:expr, $x:expr, $y:expr) => {
        drive_rows!($dot, $data, $rb, $rows, $x, $y, true)
    };
    ($dot:ident, $data:expr, $rb:expr, $rows:expr, $x:expr, $y:expr, $one_token:expr) => {{
        use $crate::kernels::quant_rows::{widen, TILE};
        let (data, rb, x, y) = ($data, $rb, $x, $y);
        if $one_token && x.m == 1 {
            // Decode: the token's row views made once (per row they cost as much as the dot
            // product of a short row: `attn_k_b` rows have 4 blocks). One Zen 5 thread,
            // `[1408, 2048]` from DRAM: Q8_0 30.5 -> 33.7 GB/s, Q4_K 30.5 -> 35, Q5_0 22 ->
            // 24.6; but the AVX-512 `Q6_K` kernel streamed 35.7 -> 30.5 in this loop (not
            // explained: not its inlining), so that table keeps it on the tiled loop below.
            let xr = [x.row(0)];
            for n in $rows {
                let out = $dot::<1>(&data[n * rb..(n + 1) * rb], &xr);
                // SAFETY: the caller owns columns `$rows` of `y` (MatmulQFn contract), checked
                // to lie within its leading dimension.
                unsafe { y.write(0, n, out[0]) };
            }
        } else {
            for n in $rows {
                let wr = &data[n * rb..(n + 1) * rb];
                let mut t0 = 0;
                while t0 < x.m {
                    let count = TILE.min(x.m - t0);
                    let out: [f32; TILE] = match count {
                        1 => widen($dot::<1>(wr, &[x.row(t0)])),
                        2 => widen($dot::<2>(wr, &std::array::from_fn(|t| x.row(t0 + t)))),
                        3 => widen($dot::<3>(wr, &std::array::from_fn(|t| x.row(t0 + t)))),
                        _ => $dot::<4>(wr, &std::array::from_fn(|t| x.row(t0 + t))),
                    };
                    for (t, &v) in out[..count].iter().enumerate() {
                        // SAFETY: the caller owns columns `$rows` of `y` (MatmulQFn contract),
                        // checked to lie within its leading dimension.
                        unsafe { y.write(t0 + t, n, v) };
                    }
                    t0 += count;
                }
            }
        }
    }};
}
