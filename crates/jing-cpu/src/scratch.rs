//! Per-thread scratch memory of the ops. The pool's threads live as long as the backend (and
//! thread 0 is the engine's own thread), so buffers kept here are reused by every later node
//! and step: once a step of some size has run, the same step allocates nothing.
//!
//! Each buffer is borrowed for one op's share and never across a call that could borrow it
//! again (a nested borrow would panic, which the executor turns into the step's error, not
//! into wrong results).

use std::cell::RefCell;
use std::thread::LocalKey;

use jing_tensor::Weight;

use crate::kernels::QuantX;

thread_local! {
    /// A 1-D weight (norm gain, bias) as f32.
    static WEIGHT: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A second one (the router bias next to nothing else; kept apart for clarity).
    static BIAS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Expert ids of one token.
    static IDS: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
    /// The activations of the current matmul, quantized for its block weight.
    static QUANT_X: RefCell<QuantX> = RefCell::new(QuantX::default());
    /// A rope node's cos and sin for one position.
    static ROPE: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `w` (1-D, or any weight read whole) as f32 for the duration of `f`.
pub(crate) fn weight_f32<R>(w: &Weight, f: impl FnOnce(&[f32]) -> R) -> R {
    with_f32(&WEIGHT, w, f)
}

/// As [`weight_f32`], in a second buffer (for an op that needs one while a caller holds the
/// first).
pub(crate) fn bias_f32<R>(w: &Weight, f: impl FnOnce(&[f32]) -> R) -> R {
    with_f32(&BIAS, w, f)
}

fn with_f32<R>(
    key: &'static LocalKey<RefCell<Vec<f32>>>,
    w: &Weight,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    key.with_borrow_mut(|buf| {
        buf.clear();
        buf.resize(w.numel(), 0.0);
        for (r, row) in buf.chunks_exact_mut(w.cols().max(1)).enumerate() {
            w.row_to_f32(r, row);
        }
        f(buf)
    })
}

/// This thread's activation-quantization buffer, for the duration of `f`.
pub(crate) fn quant_x<R>(f: impl FnOnce(&mut QuantX) -> R) -> R {
    QUANT_X.with_borrow_mut(f)
}

/// `n` zeroed ids for the duration of `f`.
pub(crate) fn ids<R>(n: usize, f: impl FnOnce(&mut [i32]) -> R) -> R {
    IDS.with_borrow_mut(|buf| {
        buf.clear();
        buf.resize(n, 0);
        f(buf)
    })
}

/// This thread's rope angle buffers (`cos`, `sin`), `n` each, for the duration of `f`.
pub(crate) fn rope_angles<R>(n: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    ROPE.with_borrow_mut(|(cos, sin)| {
        cos.resize(n, 0.0);
        sin.resize(n, 0.0);
        f(cos, sin)
    })
}
