//! The executor: one pool wake-up per graph; every thread walks the nodes in order and takes
//! its share of each. The nodes go in phases, runs of consecutive nodes none of which reads
//! another of its run (q, k and v of one `x`; gate and up); the threads meet at a barrier only
//! between phases. A thread done with its share of one node of a phase (stealing included)
//! goes on to the next, so one matmul's tail overlaps the next one's start, and the small
//! matmuls of a phase stream as one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use jing_graph::{
    select_experts, Backend, Batch, ExecError, Graph, KvCache, Op, Outputs, ValueType,
};

use crate::attention::{gqa_attention, mla_attention};
use crate::buffers::{f32_to_id, id_to_f32, share, Spare, Values};
use crate::claim::{self, Share};
use crate::kernels::activation;
use crate::kernels::{
    with_x_key, Fp8Activations, KernelTable, OutMatrix, QuantX, XKey, DEQUANT_MIN_TOKENS,
};
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
    /// `phase_at[p]..phase_at[p + 1]`: the nodes of phase `p` (see the module comment).
    phase_at: Vec<usize>,
    /// `shares[i * threads + t]`: thread `t`'s remaining share of matmul node `i`.
    shares: Vec<Share>,
    /// With `JING_PROFILE`: when node `i` started, in nanoseconds into the run.
    starts: Vec<AtomicU64>,
    /// With `JING_PROFILE`: nanoseconds thread `t` waited for the others, at the barriers
    /// and after its last node.
    waits: Vec<AtomicU64>,
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
        // A node starts a new phase when it reads a node of the current one.
        self.phase_at.clear();
        for (i, nd) in graph.nodes.iter().enumerate() {
            let start = self.phase_at.last().copied();
            if start.is_none_or(|s| nd.op.inputs().any(|t| t.0 >= s)) {
                self.phase_at.push(i);
            }
        }
        self.phase_at.push(n);
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
            self.waits.resize_with(threads, AtomicU64::default);
            self.waits
                .iter()
                .for_each(|w| w.store(0, Ordering::Relaxed));
        }
    }

    /// The buffers whose last reader is node `i`.
    fn frees(&self, i: usize) -> &[usize] {
        &self.frees[self.free_at[i]..self.free_at[i + 1]]
    }

    fn phases(&self) -> usize {
        self.phase_at.len().saturating_sub(1)
    }

    /// The nodes of phase `p`.
    fn phase(&self, p: usize) -> std::ops::Range<usize> {
        self.phase_at[p]..self.phase_at[p + 1]
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
    /// `PrepareLinear`): a copy in memory of its own, in 2 MiB pages (the file's page cache is
    /// mostly in 4 KiB pages, which slow a weight stream down: `HugeArena`), with the rows of
    /// `Q4_K`, `Q6_K`, `Q8_0` and `Q5_0` weights interleaved by 16 where the table reads them so
    /// (`Weight::interleave_rows16`), f32, f16 and bf16 weights in panels of lines
    /// (`Weight::in_panel_lines`) and FP8 weights with rows longer than a panel in column panels
    /// (`Weight::in_panels`) where the table has them, every other weight as stored
    /// (`Weight::in_huge_pages`).
    #[allow(
        clippy::type_complexity,
        reason = "the structural type of jing_models::PrepareLinear, which this crate does not see"
    )]
    pub fn prepare_linear(
        &self,
    ) -> Option<
        std::sync::Arc<dyn Fn(&jing_tensor::Weight) -> Option<jing_tensor::Weight> + Send + Sync>,
    > {
        let (interleave, panels) = (self.kernels.interleaved_rows16, self.kernels.float_panels);
        let fp8_lines = self.kernels.fp8_in_lines();
        Some(std::sync::Arc::new(move |w: &jing_tensor::Weight| {
            let interleaved = interleave.then(|| w.interleave_rows16()).flatten();
            let in_panels = || {
                let fp8 = || fp8_lines.then(|| w.fp8_in_panel_lines()).flatten();
                let rearranged = || {
                    fp8()
                        .or_else(|| w.in_panel_lines())
                        .or_else(|| w.in_panels())
                };
                panels.then(rearranged).flatten()
            };
            interleaved.or_else(in_panels).or_else(|| w.in_huge_pages())
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
        // SAFETY: inputs are in earlier phases than their users, and a barrier separates the
        // phases; buffers are freed only after the barrier that ends their last reader's phase.
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
        let fp8 = match self.kernels.fp8_activations {
            Fp8Activations::F32 => "",
            Fp8Activations::Bf16 => ", FP8 against bf16 activations",
        };
        format!(
            "cpu ({} kernels, {} threads{fp8})",
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
            // The barrier, timed into `waits[tid]` under `JING_PROFILE`.
            let meet = |tid: usize| {
                let arrived = self.profile.is_some().then(|| t0.elapsed());
                barrier.wait();
                if let Some(a) = arrived {
                    let waited = (t0.elapsed() - a).as_nanos() as u64;
                    plan.waits[tid].fetch_add(waited, Ordering::Relaxed);
                }
            };
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
                for p in 0..plan.phases() {
                    if tid == 0 {
                        // SAFETY: only thread 0 touches these cells now. Phase p has not
                        // started. Thread 0 passed the barrier that started phase p - 1, so
                        // every thread finished phase p - 2, where the freed buffers had their
                        // last readers (the other threads may still be computing phase p - 1,
                        // which neither reads them nor touches the cells of phase p).
                        unsafe {
                            if p > 1 {
                                for j in plan.phase(p - 2) {
                                    for &d in plan.frees(j) {
                                        vals.free(d);
                                    }
                                }
                            }
                            for i in plan.phase(p) {
                                vals.alloc(i, graph.nodes[i].numel());
                            }
                        }
                    }
                    meet(tid);
                    for i in plan.phase(p) {
                        if tid == 0 && self.profile.is_some() {
                            let at = t0.elapsed().as_nanos() as u64;
                            plan.starts[i].store(at, Ordering::Relaxed);
                        }
                        // A bug in a kernel must not hang the other threads at the next
                        // barrier (or take the process down): it becomes this step's error.
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            node(&ctx, i)
                        }))
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
                }
                if self.profile.is_some() {
                    // The wait for the last thread to finish, at one more barrier.
                    meet(tid);
                }
            });
            if let Some(p) = &self.profile {
                let starts: Vec<f64> = plan.starts[..n]
                    .iter()
                    .map(|t| t.load(Ordering::Relaxed) as f64 * 1e-9)
                    .collect();
                let end = t0.elapsed().as_secs_f64();
                let waited: u64 = plan.waits.iter().map(|w| w.load(Ordering::Relaxed)).sum();
                let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
                p.add(graph, &starts, end);
                p.add_waits(plan.phases(), waited as f64 * 1e-9, nth, end);
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

#[cfg(test)]
mod tests {
    use super::*;
    use jing_graph::GraphBuilder;
    use jing_tensor::{quant, Bytes, DType, RowLayout, Weight};
    use std::sync::Arc;

    /// A `[rows, cols]` weight of `dtype` with values from `seed`.
    fn weight(dtype: DType, rows: usize, cols: usize, seed: u32) -> Arc<Weight> {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| ((i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 8) as f32 / 2e7 - 0.4)
            .collect();
        let bytes = match dtype {
            DType::F32 => Bytes::from_f32(&v),
            // e4m3 codes with no NaN among them (0x7F and 0xFF are NaN).
            DType::F8E4M3 => Bytes::from_vec(v.iter().map(|&f| f.to_bits() as u8 & 0xF7).collect()),
            d => Bytes::from_vec(quant::quantize(d, &v, cols)),
        };
        Arc::new(Weight::new("w", dtype, vec![rows, cols], bytes).unwrap())
    }

    /// Two tokens of fixed activations times `w` through a graph on `cpu`: `[2][N]`.
    fn two_tokens_times(cpu: &CpuBackend, w: &Arc<Weight>) -> Vec<f32> {
        let mut g = GraphBuilder::new(2);
        let x = g.input("x", w.cols());
        let y = g.matmul(x, w);
        g.output("y", y);
        let graph = g.finish();
        let mut batch = Batch::sequence(0, 0, &[1, 2]);
        let xs: Vec<f32> = (0..2 * w.cols()).map(|i| (i as f32 * 0.37).sin()).collect();
        batch.inputs = vec![("x".to_string(), xs)];
        let mut cache = KvCache::new(1, 1, 1);
        let step = cpu.execute(&graph, &batch, &mut cache).unwrap();
        step.get("y").unwrap().1.to_vec()
    }

    /// The backend's layout for each kind of weight, and a graph on two threads over weights
    /// in column panels and in panels of lines giving what it gives over the rows as stored.
    #[test]
    fn prepared_weights_are_laid_out_for_the_table_and_compute_the_same() {
        let cpu = CpuBackend::new(Some(2));
        let prepare = cpu
            .prepare_linear()
            .expect("the CPU backend prepares weights");
        let long = weight(DType::F32, 128, jing_tensor::panels::PANEL_COLS + 64, 5);
        let short = weight(DType::F32, 64, 64, 6);
        let few = weight(DType::F32, 32, 64, 8);
        let long_fp8 = weight(DType::F8E4M3, 64, jing_tensor::panels::PANEL_COLS + 64, 9);
        let q8 = weight(DType::Q8_0, 32, 64, 7);
        let table = cpu.kernels();
        let layout = |w: &Weight| prepare(w).map(|p| p.layout);
        // `l` where the table reads float panels, else the rows as stored.
        let or_rows = |l: RowLayout| {
            Some(if table.float_panels {
                l
            } else {
                RowLayout::Rows
            })
        };
        let rows16 = table.interleaved_rows16.then_some(RowLayout::Q8_0Rows16);
        assert_eq!(layout(&long), or_rows(RowLayout::PanelLines));
        assert_eq!(layout(&short), or_rows(RowLayout::PanelLines));
        assert_eq!(layout(&few), Some(RowLayout::Rows));
        assert_eq!(layout(&long_fp8), or_rows(RowLayout::Panels));
        assert_eq!(layout(&q8), Some(rows16.unwrap_or(RowLayout::Rows)));
        for w in [&long, &short, &long_fp8] {
            let stored = two_tokens_times(&cpu, w);
            let prepared = two_tokens_times(&cpu, &Arc::new(prepare(w).unwrap()));
            for (a, b) in stored.iter().zip(&prepared) {
                assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    /// With FP8 against bf16 activations, FP8 weights go in panels of lines on a table whose
    /// bf16 kernel reads them so (and as before elsewhere), and compute what the rows as
    /// stored do.
    #[test]
    fn fp8_weights_against_bf16_activations_are_laid_out_for_the_table() {
        use crate::kernels::Fp8Activations;
        for table in KernelTable::available() {
            let table = table.with_fp8_activations(Fp8Activations::Bf16);
            let cpu = CpuBackend::with_kernels(Some(2), table);
            let prepare = cpu.prepare_linear().expect("prepares weights");
            // Scale blocks of 128 columns (whole lines), and of 48 (not whole lines).
            let fp8 = |cols: usize, block: usize| {
                let w = weight(DType::F8E4M3, 64, cols, 9);
                let grid = [1, cols.div_ceil(block)];
                let scales: Vec<f32> = (0..grid[1]).map(|i| 0.5 + i as f32 / 8.0).collect();
                let w = Arc::unwrap_or_clone(w)
                    .with_block_scale("s", &grid, Bytes::from_f32(&scales), [64, block])
                    .unwrap();
                Arc::new(w)
            };
            let long = fp8(jing_tensor::panels::PANEL_COLS + 128, 128);
            let short = fp8(256, 128);
            let narrow = fp8(jing_tensor::panels::PANEL_COLS + 96, 48);
            let layout = |w: &Weight| prepare(w).map(|p| p.layout);
            let (lines, panels) = (table.fp8_in_lines(), table.float_panels);
            let want = |in_lines: bool, panels_else: bool| {
                Some(match (lines && in_lines, panels && panels_else) {
                    (true, _) => RowLayout::PanelLines,
                    (false, true) => RowLayout::Panels,
                    (false, false) => RowLayout::Rows,
                })
            };
            assert_eq!(layout(&long), want(true, true), "{}", table.name);
            assert_eq!(layout(&short), want(true, false), "{}", table.name);
            assert_eq!(layout(&narrow), want(false, false), "{}", table.name);
            for w in [&long, &short] {
                let stored = two_tokens_times(&cpu, w);
                let prepared = two_tokens_times(&cpu, &Arc::new(prepare(w).unwrap()));
                // Both round x to bf16; they differ in the order of their sums only.
                for (a, b) in stored.iter().zip(&prepared) {
                    assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn siblings_share_a_phase_and_a_reader_starts_the_next() {
        let mut g = GraphBuilder::new(1);
        let x = g.input("x", 64); //                                    node 0
        let a = g.matmul(x, &weight(DType::F32, 32, 64, 1)); //         node 1
        let b = g.matmul(x, &weight(DType::F32, 32, 64, 2)); //         node 2
        let s = g.add(a, b); //                                         node 3, reads 1 and 2
        let c = g.matmul(x, &weight(DType::F32, 32, 64, 3)); //         node 4, reads only x
        let t = g.add(s, c); //                                         node 5
        g.output("t", t);
        let graph = g.finish();
        let mut plan = StepPlan::default();
        plan.build(&graph, 2);
        let phases: Vec<_> = (0..plan.phases()).map(|p| plan.phase(p)).collect();
        assert_eq!(phases, [0..1, 1..3, 3..5, 5..6]);
    }

    /// Many matmuls of one `x` (one phase), on three threads, again and again: the same bits
    /// as on one thread, where phases change nothing (every column of a matmul is computed by
    /// one thread, whichever it is).
    #[test]
    fn phases_on_three_threads_give_one_threads_bits() {
        let mut g = GraphBuilder::new(3);
        let x = g.input("x", 64);
        let h = g.rms_norm(x, &weight(DType::F32, 1, 64, 9), 1e-6);
        let ys: Vec<_> = [16, 48, 200, 64, 16, 96]
            .into_iter()
            .enumerate()
            .map(|(i, rows)| {
                let dtype = [DType::Q8_0, DType::F32, DType::Q4_0][i % 3];
                g.matmul(h, &weight(dtype, rows, 64, i as u32))
            })
            .collect();
        // Every sibling's first 16 columns, added up: [3, 16].
        let mut sum = g.slice(ys[0], 0, 16);
        for &y in &ys[1..] {
            let y16 = g.slice(y, 0, 16);
            sum = g.add(sum, y16);
        }
        g.output("sum", sum);
        let graph = g.finish();
        let mut batch = Batch::sequence(0, 0, &[1, 2, 3]);
        let xs: Vec<f32> = (0..3 * 64).map(|i| (i as f32 * 0.37).sin()).collect();
        batch.inputs = vec![("x".to_string(), xs)];
        let mut cache = KvCache::new(1, 1, 1);
        let one = CpuBackend::new(Some(1))
            .execute(&graph, &batch, &mut cache)
            .unwrap()
            .values[0]
            .2
            .clone();
        let backend = CpuBackend::new(Some(3));
        let mut plan = StepPlan::default();
        plan.build(&graph, 3);
        assert_eq!(plan.phase(2), 2..8, "the six matmuls are one phase");
        for _ in 0..200 {
            let got = backend.execute(&graph, &batch, &mut cache).unwrap();
            assert!(
                got.values[0]
                    .2
                    .iter()
                    .zip(&one)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "three threads gave other values"
            );
        }
    }
}
