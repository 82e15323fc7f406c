//! Quantizing while a model loads (`--quant T`): the float matmul weights of a checkpoint
//! (bf16, f16, f32, DeepSeek FP8 with block scales) are converted to the target's types as the
//! model reads them, so they reach the backend as GGUF block weights. The model code does not
//! change: a [`TensorStore`] with a [`LoadPlan`] hands out converted [`Weight`]s.
//!
//! The model gets exactly the weights it would read from the file `jing quantize` writes for
//! the same target: the same [`rules`](super::rules) on the same GGUF names (fallback types
//! included), and DeepSeek's `kv_b_proj` quantized as the file's `attn_k_b` / `attn_v_b` parts
//! and rebuilt from them as the GGUF loader does. One difference: embeddings stay as stored (a
//! lookup reads one row per token, so quantizing them saves memory but no time); with
//! `--token-embedding-type f32` the file matches that too.
//!
//! [`TensorStore`]: crate::TensorStore

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use jing_tensor::{Bytes, DType, Weight};

use super::convert::{convert_all, v_b_rows, KbRows, WeightRows};
use super::rules::{plan_types, ModelFacts};
use super::target::QuantTarget;
use super::QuantEvent;
use crate::error::FormatError;
use crate::gguf::gguf_name_for;
use crate::gguf::hf::rebuild_kv_b;
use crate::store::TensorStore;

/// Called with the progress of a load-time conversion (from the loading thread).
pub type ProgressFn = Arc<dyn Fn(QuantEvent<'_>) + Send + Sync>;

/// Quantize weights as the model loads.
#[derive(Clone)]
pub struct LoadQuant {
    pub target: QuantTarget,
    /// Threads converting rows.
    pub threads: usize,
    /// Told how many bytes will be converted, then each tensor's progress.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for LoadQuant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadQuant")
            .field("target", &self.target.name)
            .field("threads", &self.threads)
            .finish()
    }
}

impl LoadQuant {
    pub fn new(target: QuantTarget, threads: usize) -> LoadQuant {
        LoadQuant {
            target,
            threads: threads.max(1),
            progress: None,
        }
    }

    fn report(&self, e: QuantEvent<'_>) {
        if let Some(p) = &self.progress {
            p(e);
        }
    }
}

/// DeepSeek MLA's `kv_b_proj` dimensions, for splitting it like the GGUF converter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MlaDims {
    pub nope: usize,
    pub v_head: usize,
}

/// What happens to a tensor.
#[derive(Clone, Copy, Debug)]
enum Conversion {
    /// Converted to this type.
    To(DType),
    /// `kv_b_proj`: its `attn_k_b` part converted to `k`, its `attn_v_b` part to `v`, then
    /// rebuilt as the GGUF loader rebuilds it.
    KvB { k: DType, v: DType, mla: MlaDims },
}

/// The conversion of each tensor (by HF name) that changes.
pub(crate) struct LoadPlan {
    quant: LoadQuant,
    conversions: HashMap<String, (usize, Conversion)>,
    /// The checkpoint, for errors.
    root: PathBuf,
}

/// `N` of `model.layers.N.` and `E` of `.mlp.experts.E.`.
fn index_after(name: &str, marker: &str) -> Option<usize> {
    let rest = &name[name.find(marker)? + marker.len()..];
    rest.split('.').next()?.parse().ok()
}

/// Embeddings are read a row at a time and stay as stored.
fn is_embedding(gguf: &str) -> bool {
    gguf == "token_embd.weight" || gguf.ends_with(".embed_tokens.weight")
}

/// `blk.N.attn_kv_b.weight` → `blk.N.attn_{k,v}_b.weight`.
fn kv_b_parts(gguf: &str) -> Option<(String, String)> {
    let layer = gguf.strip_suffix("attn_kv_b.weight")?;
    Some((
        format!("{layer}attn_k_b.weight"),
        format!("{layer}attn_v_b.weight"),
    ))
}

impl LoadPlan {
    /// Plan the conversion of `store`'s float weights; `arch`, `n_head`, `n_head_kv` and (for
    /// DeepSeek from safetensors) the MLA dimensions come from the config, layer and expert
    /// counts from the tensor names.
    pub(crate) fn new(
        store: &TensorStore,
        arch: &str,
        n_head: usize,
        n_head_kv: usize,
        mla: Option<MlaDims>,
        quant: LoadQuant,
    ) -> Result<LoadPlan, FormatError> {
        let mut layers = 0;
        let mut experts = 0;
        // (HF name, GGUF name, stored type, stored bytes) of every float weight.
        let mut candidates: Vec<(String, String, DType, usize)> = Vec::new();
        let mut shapes: BTreeSet<(String, Vec<u64>)> = BTreeSet::new();
        for t in store.iter() {
            if let Some(l) = index_after(t.name, "model.layers.") {
                layers = layers.max(l + 1);
            }
            if let Some(e) = index_after(t.name, ".mlp.experts.") {
                experts = experts.max(e + 1);
            }
            let Some(gguf) = gguf_name_for(t.name) else {
                continue;
            };
            if is_embedding(&gguf) || !t.dtype.is_float() {
                continue;
            }
            let ne: Vec<u64> = t.shape.iter().rev().map(|&d| d as u64).collect();
            match (kv_b_parts(&gguf), mla, t.shape) {
                // The GGUF file holds kv_b as its two MLA parts: plan those.
                (Some((k_b, v_b)), Some(m), &[rows, kv_lora]) => {
                    let heads = (rows / (m.nope + m.v_head)) as u64;
                    let kvl = kv_lora as u64;
                    shapes.insert((k_b, vec![m.nope as u64, kvl, heads]));
                    shapes.insert((v_b, vec![kvl, m.v_head as u64, heads]));
                }
                _ => {
                    shapes.insert((gguf.clone(), ne));
                }
            }
            candidates.push((t.name.to_string(), gguf, t.dtype, t.byte_len));
        }
        let facts = ModelFacts {
            arch: arch.to_string(),
            n_layer_all: layers,
            n_expert: experts,
            n_head,
            n_head_kv,
        };
        let shapes: Vec<(String, Vec<u64>)> = shapes.into_iter().collect();
        let planned = plan_types(&quant.target, &facts, &shapes, None).map_err(|what| {
            FormatError::Quantize {
                path: store.root().to_path_buf(),
                what,
            }
        })?;
        let mut conversions = HashMap::new();
        let mut bytes = 0u64;
        for (name, gguf, stored, len) in candidates {
            let conversion = match (kv_b_parts(&gguf), mla) {
                (Some((k_b, v_b)), Some(m)) => match (planned.get(&k_b), planned.get(&v_b)) {
                    (Some(&k), Some(&v)) => Conversion::KvB { k, v, mla: m },
                    _ => continue,
                },
                _ => match planned.get(&gguf) {
                    Some(&t) if t != stored => Conversion::To(t),
                    _ => continue,
                },
            };
            conversions.insert(name, (conversions.len(), conversion));
            bytes += len as u64;
        }
        quant.report(QuantEvent::Start {
            tensors: conversions.len(),
            bytes,
        });
        Ok(LoadPlan {
            quant,
            conversions,
            root: store.root().to_path_buf(),
        })
    }

    /// Number of tensors the plan converts.
    pub(crate) fn len(&self) -> usize {
        self.conversions.len()
    }

    fn weight(
        &self,
        name: &str,
        dtype: DType,
        shape: Vec<usize>,
        data: Vec<u8>,
    ) -> Result<Weight, FormatError> {
        Weight::new(name, dtype, shape, Bytes::from_vec(data)).map_err(|source| {
            FormatError::Weight {
                path: self.root.clone(),
                source: Box::new(source),
            }
        })
    }

    /// `kv_b_proj` `w` converted to the GGUF file's `attn_k_b` `[H, kv_lora, nope]` (type `k`)
    /// and `attn_v_b` `[H, v, kv_lora]` (type `v`).
    fn split_kv_b(
        &self,
        w: Weight,
        k: DType,
        v: DType,
        mla: MlaDims,
    ) -> Result<(Weight, Weight), FormatError> {
        let threads = self.quant.threads;
        let (rows, kv_lora) = (w.rows(), w.cols());
        let heads = rows / (mla.nope + mla.v_head);
        let k_src = KbRows {
            kv_b: w.clone(),
            nope: mla.nope,
            v_head: mla.v_head,
        };
        let k_b = self.weight(
            "attn_k_b",
            k,
            vec![heads, kv_lora, mla.nope],
            convert_all(&k_src, k, threads),
        )?;
        let v_src = WeightRows {
            order: Some(v_b_rows(rows, mla.nope, mla.v_head)),
            weight: w,
        };
        let v_b = self.weight(
            "attn_v_b",
            v,
            vec![heads, mla.v_head, kv_lora],
            convert_all(&v_src, v, threads),
        )?;
        Ok((k_b, v_b))
    }

    /// For a `kv_b_proj` the plan converts: its two GGUF parts (see [`Self::split_kv_b`]),
    /// converted from the stored `w`, which MLA uses as they are. `None` for other names.
    pub(crate) fn mla_parts(
        &self,
        name: &str,
        w: impl FnOnce() -> Result<Weight, FormatError>,
    ) -> Option<Result<(Weight, Weight), FormatError>> {
        let &(index, Conversion::KvB { k, v, mla }) = self.conversions.get(name)? else {
            return None;
        };
        self.quant.report(QuantEvent::Tensor {
            index,
            name,
            dtype: k,
        });
        let parts = w().and_then(|w| {
            let stored = w.stored_bytes() as u64;
            let parts = self.split_kv_b(w, k, v, mla)?;
            self.quant.report(QuantEvent::Progress { bytes: stored });
            Ok(parts)
        });
        Some(parts)
    }

    /// `w` (the stored tensor `name`) converted if the plan says so, else as it is.
    pub(crate) fn apply(&self, name: &str, w: Weight) -> Result<Weight, FormatError> {
        let Some(&(index, conversion)) = self.conversions.get(name) else {
            return Ok(w);
        };
        let threads = self.quant.threads;
        let stored = w.stored_bytes() as u64;
        let converted = match conversion {
            Conversion::To(dtype) => {
                self.quant.report(QuantEvent::Tensor { index, name, dtype });
                let shape = w.shape.clone();
                let src = WeightRows {
                    weight: w,
                    order: None,
                };
                self.weight(name, dtype, shape, convert_all(&src, dtype, threads))?
            }
            Conversion::KvB { k, v, mla } => {
                self.quant.report(QuantEvent::Tensor {
                    index,
                    name,
                    dtype: k,
                });
                let (k_b, v_b) = self.split_kv_b(w, k, v, mla)?;
                rebuild_kv_b(&self.root, name, &k_b, &v_b)?
            }
        };
        self.quant.report(QuantEvent::Progress { bytes: stored });
        Ok(converted)
    }
}
