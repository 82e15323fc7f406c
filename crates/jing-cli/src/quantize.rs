//! `jing quantize IN OUT --type T`: write a GGUF file (one llama.cpp also loads) from a GGUF
//! model or a Hugging Face folder, quantized to one type or one of llama.cpp's mixes, streamed
//! tensor by tensor with a progress bar.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use jing_formats::quantize::{quantize_to_gguf, QuantEvent, QuantTarget, QuantizeOptions};
use jing_formats::{human_bytes, Config, DType, CONFIG_FILE};
use jing_tokenizer::Tokenizer;

/// `jing quantize` arguments.
#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// A .gguf file (or any part of a split set), or a Hugging Face model folder (config.json,
    /// tokenizer.json, bf16/f16/f32 or FP8 safetensors) of DeepSeek-V2/V3/R1, Qwen2 or Llama.
    pub input: PathBuf,
    /// The GGUF file to write.
    pub output: PathBuf,
    /// One type for every weight (q8_0, q6_k, q5_k, q4_k, q3_k, q2_k, q5_0, q5_1, q4_0, q4_1,
    /// bf16, f16, f32) or a llama.cpp mix (q4_k_m, q5_k_m). Norms and routers are not quantized.
    #[arg(long = "type", value_parser = QuantTarget::parse)]
    pub target: QuantTarget,
    /// Store the token embeddings in this type instead (f32, f16, bf16, q8_0, ...), as
    /// llama-quantize's option of the same name.
    #[arg(long, value_parser = parse_single_type)]
    pub token_embedding_type: Option<DType>,
    /// Threads quantizing rows (default: all cores).
    #[arg(long, short, value_parser = crate::parse_threads)]
    pub threads: Option<usize>,
}

/// One tensor type (a target name that is not a mix).
fn parse_single_type(s: &str) -> Result<DType, String> {
    let t = QuantTarget::parse(s)?;
    match t.mix {
        None => Ok(t.base),
        Some(_) => Err(format!("`{s}` is a mix; give one type such as q8_0 or f32")),
    }
}

/// A byte progress bar for a conversion, driven by its [`QuantEvent`]s.
pub struct QuantProgress {
    bar: ProgressBar,
}

impl QuantProgress {
    /// A bar labelled `what` (hidden until the conversion says how much there is to do).
    pub fn new(what: &str) -> QuantProgress {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        QuantProgress { bar }
    }

    pub fn event(&self, e: QuantEvent<'_>) {
        match e {
            QuantEvent::Start { bytes, .. } => self.bar.set_length(bytes),
            QuantEvent::Tensor { name, dtype, .. } => {
                self.bar.set_message(format!("{name} {dtype}"))
            }
            QuantEvent::Progress { bytes } => self.bar.inc(bytes),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The tokenizer metadata of an HF folder (llama.cpp's files carry the tokenizer).
fn folder_tokenizer(dir: &Path) -> Result<Vec<(String, jing_formats::gguf::GgufValue)>> {
    let config = Config::from_file(&dir.join(CONFIG_FILE))?;
    let vocab = config.usize("vocab_size")?;
    Tokenizer::gguf_metadata(dir, vocab).with_context(|| {
        format!(
            "cannot write the tokenizer of {} into GGUF metadata",
            dir.display()
        )
    })
}

pub fn quantize(args: &QuantizeArgs) -> Result<ExitCode> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut opts = QuantizeOptions::new(args.target, threads);
    opts.token_embedding_type = args.token_embedding_type;
    if args.input.is_dir() {
        opts.extra_metadata = folder_tokenizer(&args.input)?;
    }
    let start = Instant::now();
    let progress = QuantProgress::new(&format!("quantizing to {}", args.target));
    let result = quantize_to_gguf(&args.input, &args.output, &opts, &mut |e| progress.event(e));
    progress.finish();
    let report = result.with_context(|| {
        format!(
            "cannot quantize {} to {}",
            args.input.display(),
            args.output.display()
        )
    })?;
    let types: Vec<String> = report
        .types
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    eprintln!(
        "wrote {} ({}, {} tensors: {}) in {:.1?} with {threads} threads",
        args.output.display(),
        human_bytes(report.file_bytes),
        report.tensors,
        types.join(", "),
        start.elapsed()
    );
    if report.requantized > 0 {
        eprintln!(
            "note: {} tensors were already quantized and were quantized again; quantizing the original bf16/f16 weights loses less",
            report.requantized
        );
    }
    if !report.fallbacks.is_empty() {
        let shown: Vec<String> = report
            .fallbacks
            .iter()
            .take(6)
            .map(|(n, t)| format!("{n} -> {t}"))
            .collect();
        let more = report.fallbacks.len().saturating_sub(shown.len());
        eprintln!(
            "{} tensors have rows that are not whole {} blocks and use another type, as llama.cpp does: {}{}",
            report.fallbacks.len(),
            args.target.base,
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        );
    }
    Ok(ExitCode::SUCCESS)
}
