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
