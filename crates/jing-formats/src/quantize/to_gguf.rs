//! [`quantize_to_gguf`]: a GGUF model (or split set) or an HF folder in, one GGUF file out, in
//! the types the [`rules`](super::rules) choose; the file llama.cpp's `llama-quantize` (or its
//! converter followed by `llama-quantize`) would write.
//!
//! Streaming: the plan (every tensor's name, dimensions and type) comes from headers alone, so
//! the output header is written first; then each tensor is read, converted and written in slabs
//! of rows, its rows spread over threads. Memory stays at a few slabs whatever the model's size.
//! The file is written as `OUT.partial` and renamed when complete, so a failed or interrupted
//! run never leaves a file that looks finished.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jing_tensor::DType;

use super::convert::{
    convert_rows, v_b_rows, KbRows, RowSource, StackedRows, ValueRows, WeightRows, SLAB_ELEMS,
};
use super::rules::{llama_order, plan_types, ModelFacts};
use super::target::QuantTarget;
use super::QuantEvent;
use crate::error::FormatError;
use crate::gguf::from_hf::{llama_permutation, plan_hf, HfSource};
use crate::gguf::{
    is_gguf_path, GgmlType, GgufFile, GgufStreamWriter, GgufTensorSpec, GgufValue,
    GGUF_ARCHITECTURES,
};
use crate::model_dir::ModelDir;

/// How to quantize.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub target: QuantTarget,
    /// Threads converting rows (at least 1).
    pub threads: usize,
    /// The type of the token embeddings instead of the target's (llama-quantize's
    /// `--token-embedding-type`; `f32` keeps bf16/f16/f32 embeddings exact).
    pub token_embedding_type: Option<DType>,
    /// Metadata to add after the model's, replacing keys of the same name (for an HF folder:
    /// the `tokenizer.*` keys, which this crate does not build).
    pub extra_metadata: Vec<(String, GgufValue)>,
}

impl QuantizeOptions {
    pub fn new(target: QuantTarget, threads: usize) -> QuantizeOptions {
        QuantizeOptions {
            target,
            threads: threads.max(1),
            token_embedding_type: None,
            extra_metadata: Vec::new(),
        }
    }
}

/// What [`quantize_to_gguf`] wrote.
#[derive(Clone, Debug, Default)]
pub struct QuantizeReport {
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data (without padding).
    pub data_bytes: u64,
    /// Bytes of the file.
    pub file_bytes: u64,
    /// Tensors per written GGML type (its name), most first.
    pub types: Vec<(String, usize)>,
    /// Tensors of a pure target that got another type because their rows are not whole blocks
    /// of it (llama.cpp's fallback), with the type they got.
    pub fallbacks: Vec<(String, DType)>,
    /// Tensors that were already in a block type and were quantized again (which loses more
    /// than quantizing from the float weights; llama-quantize asks for `--allow-requantize`).
    pub requantized: usize,
}

/// Bytes copied per write when a tensor keeps its stored type.
const COPY_CHUNK: usize = 64 << 20;

/// The model being read.
enum Input {
    Gguf(Arc<GgufFile>),
    Hf(Box<ModelDir>),
}

/// How a tensor's data is produced.
enum Data {
    /// The stored bytes of the GGUF tensor of that name.
    Copy,
    /// The GGUF tensor of that name, converted.
    FromGguf,
    /// HF tensors, converted.
    FromHf(HfSource),
}

struct Job {
    spec: GgufTensorSpec,
    /// The type written.
    dtype: Option<DType>,
    data: Data,
}

fn ggml_type_of(dtype: DType) -> GgmlType {
    dtype
        .ggml_type()
        .and_then(GgmlType::from_id)
        .expect("every type jing writes has a GGML id")
}

/// Write `input` (a `.gguf` file or any part of a split set, or an HF model folder) to `output`
/// as one GGUF file quantized as `opts.target` says, calling `progress` as it goes.
pub fn quantize_to_gguf(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(QuantEvent<'_>),
) -> Result<QuantizeReport, FormatError> {
    let source = open_input(input)?;
    check_output(input, &source, output)?;
    let (metadata, jobs, fallbacks, requantized) = match &source {
        Input::Gguf(file) => plan_gguf(file, opts)?,
        Input::Hf(dir) => plan_folder(dir, opts)?,
    };
    let partial = partial_path(output);
    let result = write_file(&source, &partial, &metadata, jobs, opts.threads, progress);
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, output).map_err(|e| FormatError::io(output, "rename", e))?;
    report.fallbacks = fallbacks;
    report.requantized = requantized;
    Ok(report)
}

fn open_input(input: &Path) -> Result<Input, FormatError> {
    if input.is_file() && is_gguf_path(input) {
        return Ok(Input::Gguf(Arc::new(GgufFile::open(input)?)));
    }
    if input.is_dir() {
        return Ok(Input::Hf(Box::new(ModelDir::open(input)?)));
    }
    if input.exists() {
        return Err(FormatError::Quantize {
            path: input.to_path_buf(),
            what: "the input must be a .gguf file or a Hugging Face model folder".into(),
        });
    }
    Err(FormatError::MissingFile {
        path: input.to_path_buf(),
        what: "model to quantize".into(),
        hint: "give a .gguf file or a Hugging Face model folder".into(),
    })
}

/// `dir/name.partial`.
fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    output.with_file_name(name)
}

/// The output must be a new file path, not one of the inputs (they are memory-mapped while
/// the output is written).
fn check_output(input: &Path, source: &Input, output: &Path) -> Result<(), FormatError> {
    let bad = |what: String| FormatError::Quantize {
        path: output.to_path_buf(),
        what,
    };
    if output.is_dir() {
        return Err(bad(
            "the output is a folder; give a file name ending in .gguf".into(),
        ));
    }
    if !is_gguf_path(output) {
        return Err(bad("the output file name must end in .gguf".into()));
    }
    let canonical = |p: &Path| -> Option<PathBuf> {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = parent.unwrap_or(Path::new(".")).canonicalize().ok()?;
        Some(dir.join(p.file_name()?))
    };
    let out = canonical(output)
        .ok_or_else(|| bad("the output's folder does not exist; create it first".into()))?;
    let inputs: Vec<PathBuf> = match source {
        Input::Gguf(f) => f.paths().iter().map(|p| p.to_path_buf()).collect(),
        Input::Hf(_) => vec![input.to_path_buf()],
    };
    if inputs
        .iter()
        .any(|p| canonical(p).as_deref() == Some(out.as_path()))
    {
        return Err(bad(
            "the output would overwrite the input; write to a new file".into(),
        ));
    }
    Ok(())
}

/// Metadata in order with `key` set to `value` (replaced where it is, else appended).
fn set_key(metadata: &mut Vec<(String, GgufValue)>, key: &str, value: GgufValue) {
    match metadata.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => metadata.push((key.to_string(), value)),
    }
}

/// Metadata, tensors, fallbacks and the number of requantized tensors.
type Plan = (
    Vec<(String, GgufValue)>,
    Vec<Job>,
    Vec<(String, DType)>,
    usize,
);

/// Fallbacks of a pure quantized target: planned types other than the target's (and than the
/// token embeddings' type asked for).
fn fallbacks_of(opts: &QuantizeOptions, types: &BTreeMap<String, DType>) -> Vec<(String, DType)> {
    let target = &opts.target;
    if target.mix.is_some() || !target.is_quantized() {
        return Vec::new();
    }
    let asked = |n: &str| opts.token_embedding_type.is_some() && n == "token_embd.weight";
    types
        .iter()
        .filter(|(n, &t)| t != target.base && !asked(n))
        .map(|(n, &t)| (n.clone(), t))
        .collect()
}

fn plan_gguf(file: &GgufFile, opts: &QuantizeOptions) -> Result<Plan, FormatError> {
    let path = file.path().to_path_buf();
    let arch = file.architecture().unwrap_or("").to_string();
    if !GGUF_ARCHITECTURES.contains(&arch.as_str()) {
        return Err(FormatError::Quantize {
            path,
            what: format!(
                "architecture `{arch}` is not supported; jing quantizes {}",
                GGUF_ARCHITECTURES.join(", ")
            ),
        });
    }
    let key = |k: &str| format!("{arch}.{k}");
    let n_head = file.opt_usize(&key("attention.head_count"))?.unwrap_or(0);
    let facts = ModelFacts {
        n_layer_all: file.usize(&key("block_count"))?,
        n_expert: file.opt_usize(&key("expert_count"))?.unwrap_or(0),
        n_head,
        n_head_kv: file
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(n_head),
        arch,
    };
    let shapes: Vec<(String, Vec<u64>)> = file
        .tensors()
        .map(|t| (t.info.name.clone(), t.info.ne.clone()))
        .collect();
    let types =
        plan_types(&opts.target, &facts, &shapes, opts.token_embedding_type).map_err(|what| {
            FormatError::Quantize {
                path: path.clone(),
                what,
            }
        })?;
    let mut jobs = Vec::new();
    let mut requantized = 0;
    for t in file.tensors() {
        let info = t.info;
        let (ggml_type, dtype, data) = match types.get(&info.name) {
            Some(&want) if want.ggml_type() != Some(info.ggml_type.id) => {
                if !info.ggml_type.dtype().is_some_and(DType::is_weight) {
                    return Err(FormatError::Quantize {
                        path: t.file.to_path_buf(),
                        what: format!(
                            "tensor `{}` is stored as {}, which jing cannot read to convert it to {want}",
                            info.name, info.ggml_type
                        ),
                    });
                }
                requantized += (info.ggml_type.block_size > 1 && want.is_quantized()) as usize;
                (ggml_type_of(want), Some(want), Data::FromGguf)
            }
            _ => (info.ggml_type, info.ggml_type.dtype(), Data::Copy),
        };
        jobs.push(Job {
            spec: GgufTensorSpec {
                name: info.name.clone(),
                ggml_type,
                ne: info.ne.clone(),
            },
            dtype,
            data,
        });
    }
    let mut metadata: Vec<(String, GgufValue)> = file
        .metadata()
        .iter()
        .filter(|(k, _)| !k.starts_with("split."))
        .cloned()
        .collect();
    set_key(
        &mut metadata,
        "general.quantization_version",
        GgufValue::U32(2),
    );
    set_key(
        &mut metadata,
        "general.file_type",
        GgufValue::U32(opts.target.file_type),
    );
    for (k, v) in &opts.extra_metadata {
        set_key(&mut metadata, k, v.clone());
    }
    let sorted: BTreeMap<String, DType> = types.into_iter().collect();
    Ok((metadata, jobs, fallbacks_of(opts, &sorted), requantized))
}

fn plan_folder(dir: &ModelDir, opts: &QuantizeOptions) -> Result<Plan, FormatError> {
    let conv = plan_hf(dir, opts.target.file_type)?;
    let shapes: Vec<(String, Vec<u64>)> = conv
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.ne.clone()))
        .collect();
    let types = plan_types(
        &opts.target,
        &conv.facts,
        &shapes,
        opts.token_embedding_type,
    )
    .map_err(|what| FormatError::Quantize {
        path: dir.dir.clone(),
        what,
    })?;
    let mut jobs = Vec::new();
    for t in conv.tensors {
        // What llama.cpp's converter keeps in float keeps f32 (norms, biases, the router).
        let dtype = types.get(&t.name).copied().unwrap_or(DType::F32);
        jobs.push(Job {
            spec: GgufTensorSpec {
                name: t.name,
                ggml_type: ggml_type_of(dtype),
                ne: t.ne,
            },
            dtype: Some(dtype),
            data: Data::FromHf(t.source),
        });
    }
    let mut metadata = conv.metadata;
    for (k, v) in &opts.extra_metadata {
        set_key(&mut metadata, k, v.clone());
    }
    let sorted: BTreeMap<String, DType> = types.into_iter().collect();
    Ok((metadata, jobs, fallbacks_of(opts, &sorted), 0))
}

/// The rows of an HF-sourced tensor.
fn hf_rows<'a>(dir: &'a ModelDir, src: &HfSource) -> Result<Box<dyn RowSource + 'a>, FormatError> {
    let get = |n: &str| dir.store.get(n);
    let bad = |what: String| FormatError::Quantize {
        path: dir.dir.clone(),
        what,
    };
    Ok(match src {
        HfSource::Tensor {
            name,
            permute_heads,
        } => {
            let weight = get(name)?;
            let Some(heads) = *permute_heads else {
                return Ok(Box::new(WeightRows {
                    weight,
                    order: None,
                }));
            };
            // Q/K rows (or bias elements) per head must pair up.
            let n = weight.shape[0];
            if heads == 0 || !n.is_multiple_of(2 * heads) {
                return Err(bad(format!(
                    "`{name}` has {n} rows, which {heads} heads of even size cannot split"
                )));
            }
            let order = llama_permutation(n, heads);
            if weight.shape.len() == 1 {
                let values = weight.to_f32_vec();
                let permuted: Vec<f32> = order.iter().map(|&i| values[i]).collect();
                Box::new(ValueRows {
                    values: permuted,
                    cols: n,
                })
            } else {
                Box::new(WeightRows {
                    weight,
                    order: Some(order),
                })
            }
        }
        HfSource::Stacked { names } => Box::new(StackedRows {
            parts: names.iter().map(|n| get(n)).collect::<Result<_, _>>()?,
        }),
        HfSource::KB { name, nope, v_head } => Box::new(KbRows {
            kv_b: get(name)?,
            nope: *nope,
            v_head: *v_head,
        }),
        HfSource::VB { name, nope, v_head } => {
            let weight = get(name)?;
            let order = v_b_rows(weight.rows(), *nope, *v_head);
            Box::new(WeightRows {
                weight,
                order: Some(order),
            })
        }
        HfSource::Values(values) => Box::new(ValueRows {
            values: values.clone(),
            cols: values.len(),
        }),
    })
}

fn write_file(
    source: &Input,
    path: &Path,
    metadata: &[(String, GgufValue)],
    mut jobs: Vec<Job>,
    threads: usize,
    progress: &mut dyn FnMut(QuantEvent<'_>),
) -> Result<QuantizeReport, FormatError> {
    jobs.sort_by(|a, b| llama_order(&a.spec.name, &b.spec.name));
    let io = |action: &'static str| move |e: std::io::Error| FormatError::io(path, action, e);
    let file = File::create(path).map_err(io("create"))?;
    let specs: Vec<GgufTensorSpec> = jobs.iter().map(|j| j.spec.clone()).collect();
    let mut w = GgufStreamWriter::new(BufWriter::with_capacity(8 << 20, file), metadata, specs)
        .map_err(io("write"))?;
    progress(QuantEvent::Start {
        tensors: jobs.len(),
        bytes: w.data_bytes(),
    });
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (index, job) in jobs.iter().enumerate() {
        let name = job.spec.name.as_str();
        *counts.entry(job.spec.ggml_type.name).or_default() += 1;
        if let Some(dtype) = job.dtype {
            progress(QuantEvent::Tensor { index, name, dtype });
        }
        let size = w.size_of(index);
        let rows: Box<dyn RowSource + '_> = match (&job.data, source) {
            (Data::Copy, Input::Gguf(file)) => {
                let bytes = file.bytes(name).expect("planned from this file");
                for chunk in bytes.as_slice().chunks(COPY_CHUNK) {
                    w.write(chunk).map_err(io("write"))?;
                    progress(QuantEvent::Progress {
                        bytes: chunk.len() as u64,
                    });
                }
                continue;
            }
            (Data::FromGguf, Input::Gguf(file)) => Box::new(WeightRows {
                weight: file.weight(name)?,
                order: None,
            }),
            (Data::FromHf(src), Input::Hf(dir)) => hf_rows(dir, src)?,
            _ => unreachable!("jobs are planned from their own input"),
        };
        let dtype = job.dtype.expect("converted tensors have a jing type");
        let cols = rows.cols();
        let n_rows = rows.rows();
        let elems: u64 = job.spec.ne.iter().product();
        if cols as u64 != job.spec.ne[0] || (n_rows * cols) as u64 != elems {
            return Err(FormatError::Quantize {
                path: path.to_path_buf(),
                what: format!(
                    "tensor `{name}`: the source has {n_rows} rows of {cols}, the header says {:?}",
                    job.spec.ne
                ),
            });
        }
        let row_bytes = dtype.row_bytes(cols);
        debug_assert_eq!((n_rows * row_bytes) as u64, size);
        let slab_rows = (SLAB_ELEMS / cols.max(1)).clamp(1, n_rows.max(1));
        let mut buf = vec![0u8; slab_rows * row_bytes];
        let mut start = 0;
        while start < n_rows {
            let end = (start + slab_rows).min(n_rows);
            let out = &mut buf[..(end - start) * row_bytes];
            convert_rows(rows.as_ref(), start..end, dtype, threads, out);
            w.write(out).map_err(io("write"))?;
            progress(QuantEvent::Progress {
                bytes: out.len() as u64,
            });
            start = end;
        }
    }
    let data_bytes = w.data_bytes();
    let out = w.finish().map_err(io("write"))?;
    let file = out.into_inner().map_err(|e| io("write")(e.into_error()))?;
    file.sync_all().map_err(io("write"))?;
    let file_bytes = file.metadata().map_err(io("read the size of"))?.len();
    let mut types: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(QuantizeReport {
        tensors: jobs.len(),
        data_bytes,
        file_bytes,
        types,
        fallbacks: Vec::new(),
        requantized: 0,
    })
}
