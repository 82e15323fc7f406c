//! The executor: one pool wake-up per graph; every thread walks the nodes in order, takes its
//! share of each node, and meets the others at a barrier before the next node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use jing_graph::{
    select_experts, Backend, Batch, ExecError, Graph, KvCache, Op, Outputs, ValueType,
};

use crate::attention::{gqa_attention, mla_attention};
use crate::buffers::{f32_to_id, id_to_f32, share, Spare, Values};
use crate::claim::{self, Share};
use crate::kernels::activation;
use crate::kernels::{with_x_key, KernelTable, OutMatrix, QuantX, XKey, DEQUANT_MIN_TOKENS};
use crate::pool::{Barrier, Pool};
use crate::profile::{self, Profile};
use crate::scratch;

/// The CPU backend: a persistent pool and the kernel table chosen for this CPU.
pub struct CpuBackend {
    pool: Pool,
    kernels: KernelTable,
    /// Node buffers of earlier steps, reused (see [`Spare`]).
    spare: Mutex<Spare>,
    /// The schedule bookkeeping of a step, kept for the next.
    plan: Mutex<StepPlan>,
    /// Time per op, when `JING_PROFILE` is set (see [`crate::profile`]).
    profile: Option<Mutex<Profile>>,
}

impl Drop for CpuBackend {
    fn drop(&mut self) {
        if let Some(p) = &self.profile {
            eprint!("{}", p.lock().unwrap_or_else(|e| e.into_inner()).report());
        }
    }
}

/// When each node's buffer can be freed, and the work cursors: rebuilt every step into the
/// same memory, so a step of a graph no larger than earlier ones allocates nothing for them.
#[derive(Default)]
struct StepPlan {
    /// Per node, the last node that reads it (`Graph::last_uses`).
    last: Vec<usize>,
    /// `frees[free_at[i]..free_at[i + 1]]`: the buffers whose last reader is node `i`.
    free_at: Vec<usize>,
    frees: Vec<usize>,
    /// `shares[i * threads + t]`: thread `t`'s remaining share of matmul node `i`.
    shares: Vec<Share>,
    /// With `JING_PROFILE`: when node `i` started, in nanoseconds into the run.
    starts: Vec<AtomicU64>,
}

impl StepPlan {
    fn build(&mut self, graph: &Graph, threads: usize) {
        let n = graph.nodes.len();
        graph.last_uses_into(&mut self.last);
        let freed = |d: usize, l: usize| l != usize::MAX && l > d;
        // Counting sort of the freed nodes by their last reader.
        self.free_at.clear();
        self.free_at.resize(n + 1, 0);
        for (d, &l) in self.last.iter().enumerate() {
            if freed(d, l) {
                self.free_at[l + 1] += 1;
            }
        }
        for i in 0..n {
            self.free_at[i + 1] += self.free_at[i];
        }
        self.frees.clear();
        self.frees.resize(self.free_at[n], 0);
        // Fill each reader's run, advancing its start as a write cursor...
        for (d, &l) in self.last.iter().enumerate() {
            if freed(d, l) {
                self.frees[self.free_at[l]] = d;
                self.free_at[l] += 1;
            }
        }
        // ...after which each start holds the end of its run, the start of the next.
        for i in (1..=n).rev() {
            self.free_at[i] = self.free_at[i - 1];
        }
        self.free_at[0] = 0;
        self.shares
            .resize_with((n * threads).max(self.shares.len()), Share::default);
        for (i, nd) in graph.nodes.iter().enumerate() {
            let cols = match &nd.op {
                Op::MatMul { w, .. } => w.rows(),
                // One token's expert matmul: the columns of all its slots, slot after slot
                // (see `moe::matmul_id`).
                Op::MatMulId { .. } if nd.shape[0] == 1 => nd.shape[1] * nd.shape[2],
                _ => continue,
            };
            claim::split(&self.shares[i * threads..(i + 1) * threads], cols, ALIGN);
        }
        if profile::enabled() {
            self.starts
                .resize_with(n.max(self.starts.len()), AtomicU64::default);
        }
    }

    /// The buffers whose last reader is node `i`.
    fn frees(&self, i: usize) -> &[usize] {
        &self.frees[self.free_at[i]..self.free_at[i + 1]]
    }
}

impl CpuBackend {
    /// `threads` compute threads (default: all cores), the best kernels this CPU runs.
    pub fn new(threads: Option<usize>) -> CpuBackend {
        CpuBackend::with_kernels(threads, KernelTable::detect())
    }

    /// A backend with an explicit kernel table (tests run every table the CPU supports).
    pub fn with_kernels(threads: Option<usize>, kernels: KernelTable) -> CpuBackend {
        let n =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        CpuBackend {
            pool: Pool::new(n),
            kernels,
            spare: Mutex::new(Spare::default()),
            plan: Mutex::new(StepPlan::default()),
            profile: profile::enabled().then(|| Mutex::new(Profile::default())),
        }
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    pub fn kernels(&self) -> &KernelTable {
        &self.kernels
    }

    /// What this backend does to a matmul weight as it loads (for `jing_models`'
    /// `PrepareLinear`): where the table reads `Q4_K`, `Q6_K` and `Q8_0` rows interleaved by
    /// 16, such weights are interleaved (`Weight::interleave_rows16`, a copy in memory of its
    /// own); `None` where it keeps every weight as stored.
    #[allow(
        clippy::type_complexity,
        reason = "the structural type of jing_models::PrepareLinear, which this crate does not see"
    )]
    pub fn prepare_linear(
        &self,
    ) -> Option<
        std::sync::Arc<dyn Fn(&jing_tensor::Weight) -> Option<jing_tensor::Weight> + Send + Sync>,
    > {
        if !self.kernels.interleaved_rows16 {
            return None;
        }
        Some(std::sync::Arc::new(|w: &jing_tensor::Weight| {
            w.interleave_rows16()
        }))
    }
}

/// What every thread sees during one graph.
pub(crate) struct Ctx<'a> {
    pub graph: &'a Graph,
    pub batch: &'a Batch,
    pub vals: &'a Values,
    pub cache: &'a RwLock<&'a mut KvCache>,
    pub k: &'a KernelTable,
    pub tid: usize,
    pub nth: usize,
    /// `shares[i * nth + t]`: thread `t`'s remaining share of matmul node `i` (see
    /// [`crate::claim`]).
    pub shares: &'a [Share],
    /// This execution's number (unique in the process): with a node id it names a value, for
    /// activations quantized once and reused by the matmuls that share them.
    pub run: u64,
}

impl Ctx<'_> {
    /// The value of finished node `t`.
    pub fn get(&self, t: jing_graph::Tensor) -> &[f32] {
        // SAFETY: inputs precede their users and a barrier separates them; buffers are freed
        // only after their last reader's barrier.
        unsafe { self.vals.get(t.0) }
    }

    /// Split `rows` rows of `width` floats of node `i` between the threads and call
    /// `f(row, out_row)` for this thread's rows.
    fn rows(&self, i: usize, rows: usize, width: usize, mut f: impl FnMut(usize, &mut [f32])) {
        let (r0, r1) = share(rows, self.tid, self.nth, 1);
        if r0 == r1 {
            return;
        }
        // SAFETY: each thread gets a disjoint row range of node i's buffer.
        let out = unsafe { self.vals.out_range(i, r0 * width, r1 * width) };
        if width == 0 {
            return;
        }
        for (r, row) in (r0..r1).zip(out.chunks_mut(width)) {
            f(r, row);
        }
    }

    /// Split the elements of node `i` and call `f(index, out)` for this thread's elements.
    /// This thread's range of the `n` elements of node `i` and its output slice, for `f`.
    fn element_range(
        &self,
        i: usize,
        n: usize,
        f: impl FnOnce(std::ops::Range<usize>, &mut [f32]),
    ) {
        let (s, e) = share(n, self.tid, self.nth, 64);
        // SAFETY: disjoint element ranges per thread.
        let out = unsafe { self.vals.out_range(i, s, e) };
        f(s..e, out);
    }

    fn elements(&self, i: usize, n: usize, f: impl Fn(usize, &mut f32)) {
        let (s, e) = share(n, self.tid, self.nth, 64);
        // SAFETY: disjoint element ranges per thread.
        let out = unsafe { self.vals.out_range(i, s, e) };
        for (j, o) in (s..e).zip(out) {
            f(j, o);
        }
    }
}

fn last_dim(graph: &Graph, t: jing_graph::Tensor) -> usize {
    *graph.node(t).shape.last().unwrap_or(&1)
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!(
            "cpu ({} kernels, {} threads)",
            self.kernels.name,
            self.threads()
        )
    }

    fn execute(
        &self,
        graph: &Graph,
        batch: &Batch,
        cache: &mut KvCache,
    ) -> Result<Outputs, ExecError> {
        graph.validate_batch(batch)?;
        let n = graph.nodes.len();
        let mut plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        plan.build(graph, self.pool.threads());
        let plan = &*plan;
        let spare = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|e| e.into_inner()));
        let mut vals = Values::new(n, spare);
        let cache = RwLock::new(cache);
        let error: Mutex<Option<ExecError>> = Mutex::new(None);
        let nth = self.threads();
        let barrier = Barrier::new(nth);
        {
            let vals = &vals;
            let run = RUNS.fetch_add(1, Ordering::Relaxed);
            let t0 = std::time::Instant::now();
            self.pool.run(&|tid| {
                let ctx = Ctx {
                    graph,
                    batch,
                    vals,
                    cache: &cache,
                    k: &self.kernels,
                    tid,
                    nth,
                    shares: &plan.shares[..n * nth],
                    run,
                };
                for i in 0..n {
                    if tid == 0 {
                        // SAFETY: only thread 0 touches these cells now. Node i has not
                        // started. Thread 0 passed the barrier that started node i - 1, so
                        // every thread finished node i - 2, the last reader of the freed
                        // buffers (the other threads may still be computing node i - 1,
                        // which neither reads them nor touches cell i).
                        unsafe {
                            if i > 1 {
                                for &d in plan.frees(i - 2) {
                                    vals.free(d);
                                }
                            }
                            vals.alloc(i, graph.nodes[i].numel());
                        }
                    }
                    barrier.wait();
                    if tid == 0 && self.profile.is_some() {
                        plan.starts[i].store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    }
                    // A bug in a kernel must not hang the other threads at the next barrier
                    // (or take the process down): it becomes this step's error.
                    let r =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| node(&ctx, i)))
                            .unwrap_or_else(|p| {
                                Err(ExecError::Internal(panic_message(&graph.nodes[i].name, p)))
                            });
                    if let Err(e) = r {
                        error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                    }
                }
            });
            if let Some(p) = &self.profile {
                let starts: Vec<f64> = plan.starts[..n]
                    .iter()
                    .map(|t| t.load(Ordering::Relaxed) as f64 * 1e-9)
                    .collect();
                let end = t0.elapsed().as_secs_f64();
                p.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .add(graph, &starts, end);
            }
        }
        if let Some(e) = error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            *self.spare.lock().unwrap_or_else(|e| e.into_inner()) = vals.into_spare();
            return Err(e);
        }
        let values = graph
            .outputs
            .iter()
            .map(|(name, t)| {
                let mut v = vals.copy_out(t.0);
                if graph.node(*t).ty == ValueType::I32 {
                    // Ids are kept as bit patterns inside the executor; outputs give numbers.
                    v.iter_mut().for_each(|x| *x = f32_to_id(*x) as f32);
                }
                (name.clone(), graph.node(*t).shape.clone(), v)
            })
            .collect();
        *self.spare.lock().unwrap_or_else(|e| e.into_inner()) = vals.into_spare();
        Ok(Outputs { values })
    }
}

/// Executions so far, in every backend of the process (see [`Ctx::run`]).
static RUNS: AtomicU64 = AtomicU64::new(0);

/// This thread's share of node `i`.
fn node(c: &Ctx, i: usize) -> Result<(), ExecError> {
    let g = c.graph;
    let nd = &g.nodes[i];
    let width = *nd.shape.last().unwrap_or(&1);
    let rows = nd.numel().checked_div(width).unwrap_or(0);
    match &nd.op {
        Op::Embed { table } => c.rows(i, rows, width, |r, out| {
            table.row_to_f32(c.batch.tokens[r] as usize, out)
        }),
        Op::Input { name } => {
            let src = c
                .batch
                .input(name)
                .ok_or_else(|| ExecError::MissingInput(name.clone()))?;
            c.rows(i, rows, width, |r, out| {
                out.copy_from_slice(&src[r * width..(r + 1) * width])
            })
        }
        Op::MatMul { x, w } => {
            let xv = c.get(*x);
            let n_out = w.rows();
            let m = xv.len() / w.cols();
            // Threads take chunks of output columns from their own share, then from the others'
            // (`claim`), so a thread the OS preempts delays one chunk, not a fixed half.
            //
            // Many tokens with a block weight (prefill): each call converts all of `x` for its
            // dequantized tiles, so fewer, larger chunks (two per thread) keep that from
            // repeating eight times per thread; the work per chunk is large anyway.
            let per_thread = if w.dtype.is_quantized() && m >= DEQUANT_MIN_TOKENS {
                2
            } else {
                8
            };
            let chunk = matmul_chunk(n_out, c.nth, per_thread);
            // SAFETY: every chunk is claimed by exactly one thread, which alone writes those
            // columns of every output row.
            let y = unsafe { c.vals.out_matrix(i, n_out) };
            // `x` named by its node: each thread quantizes it (block weights) or rearranges it
            // (float weights) once, when it claims its first chunk, not once per chunk; q, k
            // and v (gate and up) share theirs.
            scratch::quant_x(|xq| {
                let shares = &c.shares[i * c.nth..(i + 1) * c.nth];
                while let Some(cols) = claim::next(shares, c.tid, chunk, ALIGN) {
                    matmul_with(c, w, xv, m, cols, &y, xq, Some((c.run, x.0, 0)));
                }
            })
        }
        Op::RmsNorm { x, w, eps } => {
            let xv = c.get(*x);
            scratch::weight_f32(w, |wv| {
                c.rows(i, rows, width, |r, out| {
                    let row = &xv[r * width..(r + 1) * width];
                    let var = (c.k.dot)(row, row) / width as f32;
                    let inv = 1.0 / (var + eps).sqrt();
                    for ((o, &v), &g) in out.iter_mut().zip(row).zip(wv) {
                        *o = g * (v * inv);
                    }
                })
            })
        }
        Op::Add { a, b } => {
            let (av, bv) = (c.get(*a), c.get(*b));
            c.elements(i, nd.numel(), |j, o| *o = av[j] + bv[j])
        }
        Op::AddBias { x, bias } => {
            let xv = c.get(*x);
            scratch::weight_f32(bias, |b| {
                c.rows(i, rows, width, |r, out| {
                    for ((o, &v), &bb) in out.iter_mut().zip(&xv[r * width..(r + 1) * width]).zip(b)
                    {
                        *o = v + bb;
                    }
                })
            })
        }
        Op::Mul { a, b } => {
            let (av, bv) = (c.get(*a), c.get(*b));
            c.elements(i, nd.numel(), |j, o| *o = av[j] * bv[j])
        }
        Op::Scale { x, s } => {
            let xv = c.get(*x);
            c.elements(i, nd.numel(), |j, o| *o = xv[j] * s)
        }
        Op::SiluMul { gate, up } => {
            let (gv, uv) = (c.get(*gate), c.get(*up));
            c.element_range(i, nd.numel(), |r, out| {
                activation::silu_mul(&gv[r.clone()], &uv[r], out)
            })
        }
        Op::Sigmoid { x } => {
            let xv = c.get(*x);
            c.element_range(i, nd.numel(), |r, out| activation::sigmoid(&xv[r], out))
        }
        Op::Softmax { x } => {
            let xv = c.get(*x);
            c.rows(i, rows, width, |r, out| {
                out.copy_from_slice(&xv[r * width..(r + 1) * width]);
                softmax(out);
            })
        }
        Op::Slice { x, start, len } => {
            let (xv, d) = (c.get(*x), last_dim(g, *x));
            c.rows(i, rows, width, |r, out| {
                out.copy_from_slice(&xv[r * d + start..r * d + start + len])
            })
        }
        Op::Concat { a, b } => {
            let (av, bv) = (c.get(*a), c.get(*b));
            let (da, db) = (last_dim(g, *a), last_dim(g, *b));
            c.rows(i, rows, width, |r, out| {
                out[..da].copy_from_slice(&av[r * da..(r + 1) * da]);
                out[da..].copy_from_slice(&bv[r * db..(r + 1) * db]);
            })
        }
        Op::Reshape { x } => {
            let xv = c.get(*x);
            c.elements(i, nd.numel(), |j, o| *o = xv[j])
        }
        Op::Rope { x, freqs } => {
            let xv = c.get(*x);
            let heads = nd.shape[1];
            // The angles once per token, not once per head: sin/cos were most of the op.
            scratch::rope_angles(freqs.dim() / 2, |cos, sin| {
                let mut at = None;
                c.rows(i, rows, width, |r, out| {
                    let pos = c.batch.positions[r / heads];
                    if at != Some(pos) {
                        freqs.angles(pos, cos, sin);
                        at = Some(pos);
                    }
                    out.copy_from_slice(&xv[r * width..(r + 1) * width]);
                    freqs.rotate(out, cos, sin);
                })
            })
        }
        Op::TakeRows { x, rows: take } => {
            let xv = c.get(*x);
            let w = g.node(*x).numel() / g.node(*x).shape[0].max(1);
            c.rows(i, take.len(), w, |r, out| {
                out.copy_from_slice(&xv[take[r] * w..(take[r] + 1) * w])
            })
        }
        Op::MoeSelect {
            scores,
            bias,
            top_k,
            n_group,
            topk_group,
            group_score,
        } => {
            let (sv, e) = (c.get(*scores), last_dim(g, *scores));
            let select = |bias: Option<&[f32]>| {
                scratch::ids(*top_k, |ids| {
                    c.rows(i, rows, width, |r, out| {
                        select_experts(
                            &sv[r * e..(r + 1) * e],
                            bias,
                            *top_k,
                            *n_group,
                            *topk_group,
                            *group_score,
                            ids,
                        );
                        for (o, &id) in out.iter_mut().zip(ids.iter()) {
                            *o = id_to_f32(id);
                        }
                    })
                })
            };
            match bias {
                Some(b) => scratch::bias_f32(b, |b| select(Some(b))),
                None => select(None),
            }
        }
        Op::GatherCols { x, ids } => {
            let (xv, iv, e) = (c.get(*x), c.get(*ids), last_dim(g, *x));
            c.rows(i, rows, width, |r, out| {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = xv[r * e + f32_to_id(iv[r * width + j])];
                }
            })
        }
        Op::NormalizeRows { x } => {
            let xv = c.get(*x);
            c.rows(i, rows, width, |r, out| {
                let row = &xv[r * width..(r + 1) * width];
                let s: f32 = row.iter().sum::<f32>() + 1e-20;
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = v / s;
                }
            })
        }
        Op::MatMulId { x, experts, ids } => crate::moe::matmul_id(c, i, *x, experts, *ids),
        Op::WeightedSum { x, w } => {
            let (xv, wv) = (c.get(*x), c.get(*w));
            let k = g.node(*x).shape[1];
            c.rows(i, rows, width, |r, out| {
                out.fill(0.0);
                for j in 0..k {
                    (c.k.axpy)(
                        wv[r * k + j],
                        &xv[(r * k + j) * width..(r * k + j + 1) * width],
                        out,
                    );
                }
            })
        }
        Op::KvWrite {
            layer,
            left: c_kv,
            right: k_pe,
        } => {
            // Thread 0 alone: the cache needs exclusive access, and the copy is small.
            if c.tid == 0 {
                let (av, bv) = (c.get(*c_kv), c.get(*k_pe));
                let (da, db) = (last_dim(g, *c_kv), last_dim(g, *k_pe));
                // SAFETY: only thread 0 writes this node.
                let out = unsafe { c.vals.out_range(i, 0, nd.numel()) };
                let mut cache = c.cache.write().unwrap_or_else(|e| e.into_inner());
                for (r, row) in out.chunks_mut(width).enumerate() {
                    row[..da].copy_from_slice(&av[r * da..(r + 1) * da]);
                    row[da..].copy_from_slice(&bv[r * db..(r + 1) * db]);
                    cache.write(c.batch.slots[r], *layer, c.batch.positions[r], row)?;
                }
            }
        }
        Op::MlaAttention(a) => mla_attention(c, i, a)?,
        Op::Attention(a) => gqa_attention(c, i, a)?,
    }
    Ok(())
}

/// `y[:, rows] = x · W[rows]ᵀ` as the table's matmul computes it, quantizing `x` into the
/// caller's kept `xq` for a block weight (the table's `matmul` would allocate its own).
///
/// `key`, when given, names `x` (see [`QuantX::quantize_keyed`]): `x` is then not read when
/// `xq` already holds it quantized for `w`.
#[allow(
    clippy::too_many_arguments,
    reason = "the matmul's operands and its two buffers"
)]
pub(crate) fn matmul_with(
    c: &Ctx,
    w: &jing_tensor::Weight,
    x: &[f32],
    m: usize,
    rows: std::ops::Range<usize>,
    y: &OutMatrix,
    xq: &mut QuantX,
    key: Option<XKey>,
) {
    if w.dtype.is_quantized() && m < DEQUANT_MIN_TOKENS {
        match key {
            Some(key) => xq.quantize_keyed(key, w.dtype, x, m),
            None => xq.quantize(w.dtype, x, m),
        }
        (c.k.matmul_q)(w, xq, rows, y);
    } else {
        match key {
            Some(key) => with_x_key(key, || (c.k.matmul)(w, x, m, rows, y)),
            None => (c.k.matmul)(w, x, m, rows, y),
        }
    }
}

/// Output columns per claimed chunk: about 8 chunks per thread (enough to even out a
/// preempted thread), a multiple of 16 rows for the kernels, at least 16.
pub(crate) fn matmul_chunk(n: usize, threads: usize, per_thread: usize) -> usize {
    (n.div_ceil(threads * per_thread)).div_ceil(ALIGN).max(1) * ALIGN
}

/// Output columns of a matmul start at a multiple of this in every thread's chunks: 16 f32
/// are a cache line of `y`, which two threads must not both write.
pub(crate) const ALIGN: usize = 16;

fn panic_message(node: &str, p: Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("node `{node}` failed: {msg}")
}

pub(crate) fn softmax(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    let inv = 1.0 / s;
    row.iter_mut().for_each(|v| *v *= inv);
}
