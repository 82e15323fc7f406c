//! Opening a model folder for the commands: the bundled demo by default, a progress display
//! while loading, and errors that say what to do next.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jing_engine::{Engine, LoadEvent, LoadObserver};
use jing_models::LoadQuant;
use jing_tokenizer::Tokenizer;

use crate::quantize::QuantProgress;
use crate::ModelArgs;

/// The demo model shipped in the repository: a tiny DeepSeek-V3-architecture model trained by
/// `scripts/train_demo.py` to reason R1-style about arithmetic (`models/deepseek-r1-demo`).
pub fn demo_model() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/deepseek-r1-demo");
    p.canonicalize().unwrap_or(p)
}

pub struct Loaded {
    pub engine: Engine,
    pub tokenizer: Tokenizer,
    /// `generation_config.json`, when present.
    pub generation: Option<serde_json::Value>,
}

/// The tokenizer of a model folder or GGUF file (its metadata holds the tokenizer and chat
/// template).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let tok = if jing_formats::gguf::is_gguf_path(path) && path.is_file() {
        Tokenizer::from_gguf(path)
    } else {
        Tokenizer::from_model_dir(path)
    };
    tok.with_context(|| format!("cannot load the tokenizer of {}", path.display()))
}

/// The tokenizer and the generation config (`generation_config.json`, or what a GGUF file's
/// metadata implies).
fn tokenizer_and_generation(path: &Path) -> Result<(Tokenizer, Option<serde_json::Value>)> {
    if jing_formats::gguf::is_gguf_path(path) && path.is_file() {
        let file = jing_formats::gguf::GgufFile::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let tokenizer = Tokenizer::from_gguf_file(&file)
            .with_context(|| format!("cannot load the tokenizer of {}", path.display()))?;
        let generation = jing_formats::gguf::generation_config(&file)?;
        return Ok((tokenizer, generation));
    }
    let tokenizer = load_tokenizer(path)?;
    let generation = std::fs::read_to_string(path.join("generation_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Ok((tokenizer, generation))
}

/// Load the model and tokenizer named by `args`.
pub fn load(args: &ModelArgs) -> Result<Loaded> {
    let dir = args.model.clone().unwrap_or_else(demo_model);
    if !dir.exists() {
        anyhow::bail!(
            "model path {} does not exist: pass --model with a Hugging Face model folder or a .gguf file",
            dir.display()
        );
    }
    let start = Instant::now();
    // Quantizing at load shows a byte progress bar; a plain load (memory-mapped) a spinner.
    let progress = args
        .quant
        .map(|t| Arc::new(QuantProgress::new(&format!("quantizing to {t}"))));
    let spinner = if progress.is_some() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    spinner.set_message(format!("loading {}", dir.display()));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let quant = args.quant.map(|target| {
        let threads = args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut q = LoadQuant::new(target, threads);
        if let Some(p) = &progress {
            let p = p.clone();
            q.progress = Some(Arc::new(move |e| p.event(e)));
        }
        q
    });
    // Weights the backend rearranges for its kernels are read from the file as they load: a
    // byte bar in place of the spinner.
    let rearranging = ProgressBar::hidden();
    let observer: LoadObserver = {
        let (bar, spinner) = (rearranging.clone(), spinner.clone());
        Arc::new(move |e| match e {
            LoadEvent::Rearranging { bytes } => {
                spinner.finish_and_clear();
                bar.set_style(
                    ProgressStyle::with_template(
                        "rearranging weights for the CPU kernels [{bar:30}] {bytes}/{total_bytes} \
                         {bytes_per_sec} eta {eta}",
                    )
                    .expect("valid template"),
                );
                bar.set_length(bytes);
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            LoadEvent::Rearranged { bytes } => bar.inc(bytes),
        })
    };
    let engine = Engine::load_observed(
        &dir,
        args.threads,
        args.max_model_len,
        quant.as_ref(),
        args.fp8_activations,
        Some(observer),
    );
    rearranging.finish_and_clear();
    if let Some(p) = &progress {
        p.finish();
    }
    let engine = engine.with_context(|| format!("cannot load the model in {}", dir.display()))?;
    let (tokenizer, generation) = tokenizer_and_generation(&dir)?;
    spinner.finish_and_clear();
    read_weights_in(&engine, args.threads, args.no_mmap)?;
    let info = engine.model().info();
    let quantized = args
        .quant
        .map(|t| format!(", quantized to {t}"))
        .unwrap_or_default();
    eprintln!(
        "loaded {} ({}, {} layers, {:.1} MB of weights{quantized}) in {:.2?} on {}",
        dir.display(),
        info.architecture,
        info.n_layers,
        info.total_bytes as f64 / 1e6,
        start.elapsed(),
        engine.backend_name()
    );
    Ok(Loaded {
        engine,
        tokenizer,
        generation,
    })
}

/// Reads the memory-mapped weights into memory now, with a progress bar, when they fit (see
/// [`jing_formats::prefault`]); otherwise says that they will be read from disk as used. With
/// `no_mmap`, moves them into huge pages of this process's memory, and fails if they do not fit.
fn read_weights_in(engine: &Engine, threads: Option<usize>, no_mmap: bool) -> Result<()> {
    let maps = &engine.model().info().mapped;
    let total: u64 = maps.iter().map(|m| m.len() as u64).sum();
    if total == 0 {
        if no_mmap {
            eprintln!("note: --no-mmap has nothing to do: the weights are already in memory");
        }
        return Ok(());
    }
    let gb = |b: u64| b as f64 / 1e9;
    if let Some(avail) = jing_formats::available_memory() {
        if total > avail {
            if no_mmap {
                anyhow::bail!(
                    "--no-mmap needs the weights ({:.1} GB) in memory, but only {:.1} GB is \
                     available: run without --no-mmap (the file is then read as it is used)",
                    gb(total),
                    gb(avail)
                );
            }
            eprintln!(
                "note: the weights ({:.1} GB) are larger than the available memory ({:.1} GB): \
                 they stay on disk and are read as they are used, which makes decode much \
                 slower; a machine with more memory, or a smaller quantization, avoids that",
                gb(total),
                gb(avail)
            );
            return Ok(());
        }
    }
    let (residency, verb) = if no_mmap {
        (
            jing_formats::Residency::HugePages,
            "copying weights into huge pages",
        )
    } else {
        (
            jing_formats::Residency::Mapped,
            "reading weights into memory",
        )
    };
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{verb} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
        ))
        .expect("valid template"),
    );
    // A few requests in flight keep a fast disk busy; more than 4 only queue.
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 4);
    let read = jing_formats::prefault(maps, threads, residency, &|n| bar.inc(n));
    bar.finish_and_clear();
    match read {
        Ok(moved) if no_mmap => {
            // What the kernel gave: huge pages need free 2 MiB stretches, and THP may be off.
            let huge = jing_tensor::huge_pages::anon_huge_page_bytes().unwrap_or(0);
            // Weights the backend rearranged as they loaded (copied into 2 MiB pages, some
            // interleaved) are in memory already and not part of the mapping any more.
            let rearranged = (engine.model().info().total_bytes as u64).saturating_sub(total);
            let also = if rearranged > 0 {
                format!(
                    " (another {} were rearranged into it as they loaded)",
                    HumanBytes(rearranged)
                )
            } else {
                String::new()
            };
            eprintln!(
                "--no-mmap: {} of {} of weights copied into this process's memory, {} of it in \
                 2 MiB pages{also}",
                HumanBytes(moved),
                HumanBytes(total),
                HumanBytes(huge.min(moved))
            );
            if huge < moved / 2 {
                eprintln!(
                    "note: the kernel gave few huge pages (see \
                     /sys/kernel/mm/transparent_hugepage/enabled: it must be [always] or \
                     [madvise]); without them --no-mmap gains little"
                );
            }
            Ok(())
        }
        Ok(_) => {
            // Experts are read a few MB here and there: in 4 KiB pages each of those reads
            // walks page tables that miss the caches (on a 27-layer V2-Lite-shaped Q8_0 file,
            // decode was 14 tok/s mapped so and 16.5-20 with --no-mmap).
            let huge = jing_tensor::huge_pages::file_huge_page_bytes();
            if let Some(huge) = huge.filter(|&h| total >= 1 << 30 && h < total / 5 * 4) {
                eprintln!(
                    "note: only {} of the {} of mapped weights are in 2 MiB pages (the page \
                     cache holds the rest of the file in 4 KiB pages); --no-mmap copies the weights into \
                     2 MiB pages of this process's memory, which makes decode faster (most for \
                     mixtures of experts) at the cost of a copy at load",
                    HumanBytes(huge),
                    HumanBytes(total)
                );
            }
            Ok(())
        }
        // Part of the weights may be unmapped now: the model cannot be used.
        Err(e) if no_mmap => Err(anyhow::anyhow!(
            "could not copy the weights into memory ({e}): run without --no-mmap"
        )),
        // Reading ahead only saves time later: if the system refuses, the weights are still
        // read as they are used.
        Err(e) => {
            eprintln!(
                "note: could not read the weights into memory ahead of use ({e}); continuing"
            );
            Ok(())
        }
    }
}
