//! Pieces every model shares: reading weights by name with shape checks, and the SwiGLU MLP.

use std::sync::Arc;

use jing_formats::TensorStore;
use jing_graph::{GraphBuilder, Tensor};
use jing_tensor::{Bytes, DType, Weight};

use crate::{LogitRows, ModelError};

pub type W = Arc<Weight>;

/// A backend's rearrangement of a matmul weight for its kernels, applied as the weight loads:
/// `None` keeps the weight as stored (see `CpuBackend::prepare_linear`, which copies weights
/// into 2 MiB pages, interleaves the rows of `Q4_K`, `Q6_K`, `Q8_0` and `Q5_0` weights and puts
/// long float rows in column panels where its kernels read them so).
pub type PrepareLinear = Arc<dyn Fn(&Weight) -> Option<Weight> + Send + Sync>;

/// Reads tensors from a store, checking shapes and counting bytes.
pub struct Loader<'a> {
    pub store: &'a TensorStore,
    pub bytes: usize,
    /// Applied to the weights [`Loader::linear`] loads.
    pub prepare: Option<&'a PrepareLinear>,
    /// The mapped bytes of weights `prepare` replaced: no weight views them any more. (Views
    /// of the mapped files, which the store keeps open anyway; a weight converted in memory,
    /// when quantizing at load, is freed as soon as it is replaced.)
    pub replaced: Vec<Bytes>,
}

impl<'a> Loader<'a> {
    pub fn new(store: &'a TensorStore, prepare: Option<&'a PrepareLinear>) -> Loader<'a> {
        Loader {
            store,
            bytes: 0,
            prepare,
            replaced: Vec::new(),
        }
    }

    /// The memory-mapped files, less the bytes of weights that were replaced as they loaded
    /// (`ModelInfo::mapped`: what reading the weights in must read).
    pub fn mapped(&self) -> Vec<Bytes> {
        self.store
            .maps()
            .iter()
            .flat_map(|m| m.without(&self.replaced))
            .collect()
    }

    /// Tensor `name` as [`Loader::tensor`] loads it, for a weight the model only ever
    /// multiplies (`x·Wᵀ` in a matmul node), so that the backend may rearrange its rows
    /// ([`PrepareLinear`]). Never for a weight read by rows as a kernel reads them (MLA's W_UK
    /// rows of `kv_b_proj`), nor for an embedding table alone (see [`Loader::lm_head`]).
    pub fn linear(&mut self, name: &str, expected: &[usize], why: &str) -> Result<W, ModelError> {
        let w = self.tensor(name, expected, why)?;
        Ok(self.prepared(w))
    }

    /// `w` as the backend rearranges it for its matmuls, or as it is.
    fn prepared(&mut self, w: W) -> W {
        self.prepared_in_slices(w, None)
    }

    /// A weight the model multiplies in slices of `per` rows, one matmul each (MLA's GGUF
    /// parts `attn_k_b [H, kvl, dn]` and `attn_v_b [H, dv, kvl]`, a head per slice), its rows
    /// those of every dimension but the last: as the backend rearranges it for its matmuls
    /// where every slice stays whole groups of the new layout (a slice view may not cut one,
    /// [`Weight::slice_rows`]), else as it is. The shape stays as stored.
    ///
    /// These were read as stored, from the file's 4 KiB pages and without the interleaved
    /// kernels. In a `Q8_0` file of a V3-shaped model (128 heads, one Zen 4 thread) the two
    /// products took 0.47 and 0.56 ms a layer; interleaved in 2 MiB pages, 0.35 and 0.37
    /// (docs/benchmarks.md, "eighteenth session").
    pub fn linear_in_slices(&mut self, w: W, per: usize) -> W {
        self.prepared_in_slices(w, Some(per))
    }

    /// Notes that no weight views `w`'s bytes any more: the model holds a copy of them
    /// (rearranged, or split as MLA's `kv_b_proj` is for such a backend).
    pub fn copied(&mut self, w: &Weight) {
        if w.data.is_mapped() {
            self.replaced.push(w.data.clone());
        }
    }

    /// [`Loader::prepared`], keeping the rearranged weight only where slices of `per` rows
    /// (when given) are whole groups of its layout.
    fn prepared_in_slices(&mut self, w: W, per: Option<usize>) -> W {
        // Matmul weights are 2-D: the rows of a 3-D part go in as one dimension.
        let flat = (w.shape.len() != 2).then(|| Weight {
            shape: vec![w.rows(), w.cols()],
            ..(*w).clone()
        });
        let rearranged = self
            .prepare
            .and_then(|prepare| prepare(flat.as_ref().unwrap_or(&w)))
            .filter(|r| per.is_none_or(|per| per.is_multiple_of(r.layout.group())));
        match rearranged {
            Some(rearranged) => {
                self.copied(&w);
                Arc::new(Weight {
                    shape: w.shape.clone(),
                    ..rearranged
                })
            }
            None => w,
        }
    }

    /// The LM head `[vocab, d]`; a checkpoint with tied embeddings may omit it and reuse
    /// `embed` (Qwen2.5-0.5B..3B store no `lm_head.weight`).
    ///
    /// A tied table is then prepared as a matmul weight, and `embed` becomes the prepared
    /// table too (one copy for both): the head reads all of it every step, the embedding one
    /// row per token, which every layout gives back ([`Weight::row_to_f32`]). The tied `Q6_K`
    /// head of a Qwen2.5-1.5B-shaped `Q4_K_M` file, a fifth of its decode time, streamed at
    /// 36-41 GB/s as stored while the interleaved projections of the same steps read 48-52
    /// (two Zen 4 threads, the host's fast phases); interleaved it read 42-51.
    pub fn lm_head(
        &mut self,
        tied: bool,
        embed: &mut W,
        vocab: usize,
        d: usize,
    ) -> Result<W, ModelError> {
        if tied && !self.store.contains("lm_head.weight") {
            *embed = self.prepared(embed.clone());
            return Ok(embed.clone());
        }
        self.linear("lm_head.weight", &[vocab, d], "vocab_size x hidden_size")
    }

    /// Tensor `name` with `expected` shape (`why` explains where the shape comes from).
    pub fn tensor(&mut self, name: &str, expected: &[usize], why: &str) -> Result<W, ModelError> {
        let w = self.store.get(name)?;
        self.check(name, w, expected, why)
    }

    /// `w` checked like [`Loader::tensor`] checks what it reads (shape, a weight type), and
    /// counted.
    pub fn check(
        &mut self,
        name: &str,
        w: Weight,
        expected: &[usize],
        why: &str,
    ) -> Result<W, ModelError> {
        if w.shape != expected {
            return Err(ModelError::Shape {
                tensor: name.to_string(),
                found: w.shape.clone(),
                expected: expected.to_vec(),
                why: why.to_string(),
            });
        }
        if !w.dtype.is_weight() {
            return Err(ModelError::Dtype {
                tensor: name.to_string(),
                dtype: w.dtype,
                what: "a weight (expected f32, f16, bf16, f8_e4m3 or a GGUF block type)".into(),
            });
        }
        if w.dtype == DType::F8E4M3 && w.shape.len() != 2 {
            return Err(ModelError::Dtype {
                tensor: name.to_string(),
                dtype: w.dtype,
                what: "a vector (FP8 is only supported for 2-D block-scaled weights)".into(),
            });
        }
        self.bytes += w.stored_bytes();
        Ok(Arc::new(w))
    }
}

/// `silu(x·W_gateᵀ) ⊙ (x·W_upᵀ)`, then `·W_downᵀ`.
pub struct Mlp {
    pub gate: W,
    pub up: W,
    pub down: W,
}

impl Mlp {
    pub fn load(
        ld: &mut Loader,
        prefix: &str,
        d: usize,
        inter: usize,
        why: &str,
    ) -> Result<Mlp, ModelError> {
        Ok(Mlp {
            gate: ld.linear(&format!("{prefix}.gate_proj.weight"), &[inter, d], why)?,
            up: ld.linear(&format!("{prefix}.up_proj.weight"), &[inter, d], why)?,
            down: ld.linear(&format!("{prefix}.down_proj.weight"), &[d, inter], why)?,
        })
    }

    pub fn bytes(&self) -> usize {
        self.gate.stored_bytes() + self.up.stored_bytes() + self.down.stored_bytes()
    }
}

/// SwiGLU MLP: `down(silu(gate(x)) ⊙ up(x))`.
pub fn mlp(g: &mut GraphBuilder, w: &Mlp, x: Tensor) -> Tensor {
    let gate = g.matmul(x, &w.gate); //                 [T, I]
    let up = g.matmul(x, &w.up); //                     [T, I]
    let act = g.silu_mul(gate, up);
    g.matmul(act, &w.down) //                           [T, d]
}

/// The end of every causal LM step: keep the rows that need logits, apply the final norm and the
/// LM head, and output `logits [R, vocab]` and the normed `hidden [R, d]`.
pub fn finish_step(
    mut g: GraphBuilder,
    h: Tensor,
    rows: &LogitRows,
    norm: &W,
    head: &W,
    eps: f32,
) -> jing_graph::Graph {
    let h = match rows {
        LogitRows::All => h,
        LogitRows::Rows(r) => g.take_rows(h, r.clone()),
    };
    let h = g.rms_norm(h, norm, eps); //                                [R, d]
    let logits = g.matmul(h, head); //                                  [R, vocab]
    g.output("logits", logits);
    g.output("hidden", h);
    g.finish()
}
