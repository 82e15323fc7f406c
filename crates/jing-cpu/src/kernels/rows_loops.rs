//! The loop nest every ISA's `rows_axpy` (`RowsAxpyFn`) shares.

/// Column blocks of `$step` up to `$end` outermost, so that a block of the cache rows stays in
/// L1/L2 for every group of heads; then groups of heads, each through
/// `$block::<H>(p, n, h0, kv, stride, cols, o, k)` with `H` a constant, one of `$h` (the last
/// the most per group). A macro, not a generic function, so that the blocks inline into the
/// caller's `#[target_feature]` function. The caller has checked the shapes (`rows_shape`),
/// `$m > 0` and `$end <= K`.
macro_rules! rows_axpy_loops {
    ($block:ident, $p:expr, $m:expr, $kv:expr, $stride:expr, $o:expr, $end:expr, $step:expr,
     [$($h:literal),+]) => {{
        const MOST: usize = {
            let h = [$($h),+];
            h[h.len() - 1]
        };
        let (p, m, kv, stride, o) = ($p, $m, $kv, $stride, $o);
        let (k, n) = (o.len() / m, p.len() / m);
        for c in (0..$end).step_by($step) {
            let cols = c..k.min(c + $step);
            for h0 in (0..m).step_by(MOST) {
                // SAFETY: (every arm) the caller checked the shapes; heads h0..h0 + H <= m,
                // columns `cols` within 0..K.
                unsafe {
                    match MOST.min(m - h0) {
                        $($h => $block::<$h>(p, n, h0, kv, stride, cols.clone(), o, k),)+
                        _ => unreachable!("1..={MOST} heads"),
                    }
                }
            }
        }
    }};
}
