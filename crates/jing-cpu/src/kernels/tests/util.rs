//! Test data: a seeded xorshift generator, random weights of every dtype, the f64 reference
//! and the error bound the kernels are held to.

use jing_tensor::{Bytes, DType, Weight};

/// Marsaglia's xorshift64: enough randomness for test data, reproducible from a seed.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    pub fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform(-1.0, 1.0)).collect()
    }
}

/// Unit roundoff of f32 (half an ulp of 1).
pub const U: f64 = f32::EPSILON as f64 / 2.0;

/// The bound every matmul/dot result is checked against:
/// `|err| <= 2 · (K + 4) · u · Σ_k |x_k · w_k| + 1e-30`.
///
/// Derivation: a length-K dot product summed in f32 in any order (sequential, lane-wise plus a
/// tree) has `|err| <= γ_K · Σ|x·w|`, `γ_K = K·u / (1 - K·u)`. The block-scaled form adds one
/// rounding per block for the scale product and `K / width` additions of block totals
/// (<= K + 1 more), and the f64 reference itself uses `row_to_f32`'s rounded `code · scale`
/// (one more `u` per term). So `(2K + 2) · u` bounds every version against the reference;
/// `2 · (K + 4)` leaves a little slack for `1/(1 - K·u)`. Two versions differ by at most
/// twice that in the worst case, but rounding errors are random, so in practice versions
/// differ by about `sqrt(K) · u · Σ|x·w|`, far inside the same bound, which SIMD-vs-generic is
/// also held to.
pub fn bound(k: usize, abs_sum: f64) -> f64 {
    2.0 * (k as f64 + 4.0) * U * abs_sum + 1e-30
}

/// A random f16 bit pattern: normals with exponents 2^-4..2^3 and, one time in eight, a
/// subnormal.
fn f16_bits(rng: &mut XorShift) -> u16 {
    let r = rng.next_u64();
    let sign = ((r & 1) as u16) << 15;
    let man = ((r >> 1) & 0x3ff) as u16;
    let exp = if (r >> 11) & 7 == 0 {
        0
    } else {
        11 + ((r >> 14) % 8) as u16
    };
    sign | (exp << 10) | man
}

/// A random e4m3fn code, never NaN (`0x7f`, `0xff`).
pub fn fp8_code(rng: &mut XorShift) -> u8 {
    loop {
        let c = rng.next_u64() as u8;
        if c & 0x7f != 0x7f {
            return c;
        }
    }
}

/// A random `[n, k]` weight of `dtype`; with `block`, random block scales (`2^e · [1, 2)`,
/// `e ∈ -3..3`) attached.
pub fn weight(
    rng: &mut XorShift,
    dtype: DType,
    n: usize,
    k: usize,
    block: Option<[usize; 2]>,
) -> Weight {
    let numel = n * k;
    let bytes: Vec<u8> = match dtype {
        DType::F32 => (0..numel)
            .flat_map(|_| rng.uniform(-1.0, 1.0).to_le_bytes())
            .collect(),
        DType::BF16 => (0..numel)
            .flat_map(|_| ((rng.uniform(-2.0, 2.0).to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
        DType::F16 => (0..numel)
            .flat_map(|_| f16_bits(rng).to_le_bytes())
            .collect(),
        DType::F8E4M3 => (0..numel).map(|_| fp8_code(rng)).collect(),
        other => panic!("no random {other} weights"),
    };
    let w = Weight::new("w", dtype, vec![n, k], Bytes::from_vec(bytes)).unwrap();
    match block {
        None => w,
        Some(b) => {
            let shape = [n.div_ceil(b[0]), k.div_ceil(b[1])];
            let scales: Vec<f32> = (0..shape[0] * shape[1])
                .map(|_| {
                    let e = (rng.next_u64() % 7) as i32 - 3;
                    rng.uniform(1.0, 2.0) * 2f32.powi(e)
                })
                .collect();
            w.with_block_scale("s", &shape, Bytes::from_f32(&scales), b)
                .unwrap()
        }
    }
}

/// `(y, Σ|x·w|)` for every `(i, n)`, `[m][N]`, in f64 from the dequantized rows.
pub fn reference(w: &Weight, x: &[f32], m: usize) -> Vec<(f64, f64)> {
    let (n, k) = (w.rows(), w.cols());
    let mut row = vec![0.0f32; k];
    let mut out = vec![(0.0, 0.0); m * n];
    for r in 0..n {
        w.row_to_f32(r, &mut row);
        for i in 0..m {
            let xi = &x[i * k..(i + 1) * k];
            let (mut s, mut a) = (0.0f64, 0.0f64);
            for (&xv, &wv) in xi.iter().zip(&row) {
                let p = xv as f64 * wv as f64;
                s += p;
                a += p.abs();
            }
            out[i * n + r] = (s, a);
        }
    }
    out
}
