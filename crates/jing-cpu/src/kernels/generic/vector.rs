//! f32 vector helpers (the attention kernel's inner loops), plain.

/// `Σ a[k] · b[k]`, accumulated in order in f32. Panics if the lengths differ.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(
        a.len(),
        b.len(),
        "dot of {} and {} values",
        a.len(),
        b.len()
    );
    let mut s = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

/// `y[k] += a · x[k]` (a product, then a sum: two roundings). Panics if the lengths differ.
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "axpy of {} into {} values",
        x.len(),
        y.len()
    );
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// `(K, n)` of a [`RowsDotFn`](crate::kernels::RowsDotFn) or
/// [`RowsAxpyFn`](crate::kernels::RowsAxpyFn) call: `a` is `[m, K]` (`q` or `o`), `b` is `[m, n]`
/// (`s` or `p`), and `kv` holds rows `0..n` of `K` values each, `stride` apart. Panics, naming
/// what disagrees, otherwise.
pub fn rows_shape(a: usize, m: usize, kv: usize, stride: usize, b: usize) -> (usize, usize) {
    assert!(m > 0 || (a == 0 && b == 0), "{a} and {b} values for 0 rows");
    let (k, n) = (a.checked_div(m).unwrap_or(0), b.checked_div(m).unwrap_or(0));
    assert!(
        a == m * k && b == m * n,
        "{a} and {b} values are not {m} rows"
    );
    assert!(
        n == 0 || (stride >= k && kv >= (n - 1) * stride + k),
        "{n} cache rows of {k} values {stride} apart need more than the {kv} given"
    );
    (k, n)
}

/// `s[i, j] = q_i · kv_j` (see [`RowsDotFn`](crate::kernels::RowsDotFn)), each a [`dot`]:
/// accumulated in order in f32.
pub fn rows_dot(q: &[f32], m: usize, kv: &[f32], stride: usize, s: &mut [f32]) {
    let (k, n) = rows_shape(q.len(), m, kv.len(), stride, s.len());
    for i in 0..m {
        for j in 0..n {
            s[i * n + j] = dot(&q[i * k..(i + 1) * k], &kv[j * stride..j * stride + k]);
        }
    }
}

/// `o_i += Σ_j p[i, j] · kv_j` (see [`RowsAxpyFn`](crate::kernels::RowsAxpyFn)), row after row
/// `j`, each an [`axpy`] (a product, then a sum).
pub fn rows_axpy(p: &[f32], m: usize, kv: &[f32], stride: usize, o: &mut [f32]) {
    let (k, _) = rows_shape(o.len(), m, kv.len(), stride, p.len());
    rows_axpy_cols(p, m, kv, stride, o, 0..k);
}

/// [`rows_axpy`] for the columns `cols` of `o` only (the SIMD versions' tail); the shapes
/// already checked.
pub fn rows_axpy_cols(
    p: &[f32],
    m: usize,
    kv: &[f32],
    stride: usize,
    o: &mut [f32],
    cols: std::ops::Range<usize>,
) {
    let (k, n) = (o.len() / m.max(1), p.len() / m.max(1));
    for j in 0..n {
        let row = &kv[j * stride + cols.start..j * stride + cols.end];
        for i in 0..m {
            axpy(
                p[i * n + j],
                row,
                &mut o[i * k + cols.start..i * k + cols.end],
            );
        }
    }
}
