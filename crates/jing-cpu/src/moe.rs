//! Expert-indexed matmul: the rows of a batch are grouped by expert, so each selected expert's
//! weights are read once per step however many tokens chose it, and experts no token chose are
//! never touched.

use std::sync::Arc;

use jing_graph::Tensor;
use jing_tensor::Weight;

use crate::buffers::{f32_to_id, share};
use crate::claim;
use crate::exec::{matmul_chunk, matmul_with, Ctx, ALIGN};
use crate::kernels::{OutMatrix, QuantX};

/// Node `i = matmul_id(x, experts, ids)`: `out[t, j] = x[t] (or x[t, j]) · experts[ids[t, j]]ᵀ`.
pub(crate) fn matmul_id(
    c: &Ctx,
    i: usize,
    x: Tensor,
    experts: &Arc<Vec<Arc<Weight>>>,
    ids: Tensor,
) {
    let g = c.graph;
    let (xv, iv) = (c.get(x), c.get(ids));
    let shape = &g.nodes[i].shape;
    let (k, n) = (shape[1], shape[2]);
    let kin = experts[0].cols();
    let shared_x = g.node(x).shape.len() == 2;
    if iv.len() == k {
        one_token(c, i, xv, shared_x, experts, iv, n, x.0);
        return;
    }
    let (s, e) = share(n, c.tid, c.nth, 16);
    if s == e {
        return;
    }
    SCRATCH.with_borrow_mut(|scratch| {
        let MoeScratch {
            by_expert,
            xs,
            ys,
            xq,
        } = scratch;
        // Slots (t·k + j) grouped by expert, in slot order.
        by_expert.iter_mut().for_each(Vec::clear);
        by_expert.resize_with(experts.len().max(by_expert.len()), Vec::new);
        for (slot, &id) in iv.iter().enumerate() {
            by_expert[f32_to_id(id)].push(slot);
        }
        // SAFETY: this thread writes only columns s..e of the output rows.
        let out = unsafe { c.vals.out_matrix(i, n) };
        for (expert, slots) in by_expert.iter().enumerate() {
            if slots.is_empty() {
                continue;
            }
            let m = slots.len();
            ys.clear();
            ys.resize(m * n, 0.0);
            let y = OutMatrix::new(ys, n);
            // Gather the slots' input rows: [m, K].
            xs.clear();
            for &slot in slots {
                let row = if shared_x { slot / k } else { slot };
                xs.extend_from_slice(&xv[row * kin..(row + 1) * kin]);
            }
            matmul_with(c, &experts[expert], xs, m, s..e, &y, xq, None);
            for (r, &slot) in slots.iter().enumerate() {
                for col in s..e {
                    // SAFETY: column `col` of every row belongs to this thread.
                    unsafe { out.write(slot, col, ys[r * n + col]) };
                }
            }
        }
    });
}

/// [`matmul_id`] for one token (decode): the `k` slots' output columns, slot after slot
/// (`k·n`), are claimed like a matmul's (see [`crate::claim`]), so each thread streams whole
/// experts (its contiguous share: half the slots' on two threads, not half of every expert)
/// and takes chunks from the back of a slower thread's share. Each slot's outputs go straight
/// into its row of the node's value. The input is one `x` for every slot (`shared_x`: gate and
/// up, quantized once for all of them and the other matmuls of this `x`) or a row per slot
/// (down: each quantized once per thread that works on its slot).
#[allow(clippy::too_many_arguments, reason = "the node's operands")]
fn one_token(
    c: &Ctx,
    i: usize,
    xv: &[f32],
    shared_x: bool,
    experts: &[Arc<Weight>],
    iv: &[f32],
    n: usize,
    x_node: usize,
) {
    let (k, kin) = (iv.len(), experts[0].cols());
    let chunk = matmul_chunk(k * n, c.nth, 8);
    let shares = &c.shares[i * c.nth..(i + 1) * c.nth];
    // SAFETY: every column of `0..k·n` is claimed by exactly one thread, which alone writes
    // it: column `slot·n + col` is element `(slot, col)`.
    let out = unsafe { c.vals.out_matrix(i, n) };
    SCRATCH.with_borrow_mut(|scratch| {
        while let Some(cols) = claim::next(shares, c.tid, chunk, ALIGN) {
            // The chunk's pieces within each slot.
            let mut at = cols.start;
            while at < cols.end {
                let slot = at / n;
                let end = cols.end.min((slot + 1) * n);
                let expert = &experts[f32_to_id(iv[slot])];
                let (x, key) = if shared_x {
                    (xv, (c.run, x_node, 0))
                } else {
                    (&xv[slot * kin..(slot + 1) * kin], (c.run, x_node, slot))
                };
                let y = out.from_row(slot);
                let cols = at - slot * n..end - slot * n;
                matmul_with(c, expert, x, 1, cols, &y, &mut scratch.xq, Some(key));
                at = end;
            }
        }
    });
}

/// One pool thread's buffers for [`matmul_id`], kept across nodes and steps (the pool's threads
/// live as long as the backend), so routing a step allocates nothing once the batch size was
/// seen.
#[derive(Default)]
struct MoeScratch {
    /// Slots per expert.
    by_expert: Vec<Vec<usize>>,
    /// The gathered input rows of one expert, `[m, K]`.
    xs: Vec<f32>,
    /// Their outputs, `[m, N]`.
    ys: Vec<f32>,
    /// `xs` quantized for a block-quantized expert.
    xq: QuantX,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<MoeScratch> = std::cell::RefCell::new(MoeScratch::default());
}
