//! Opening a model folder for the commands: the bundled demo by default, a progress display
//! while loading, and errors that say what to do next.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use jing_engine::Engine;
use jing_tokenizer::Tokenizer;

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
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    spinner.set_message(format!("loading {}", dir.display()));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let start = Instant::now();
    let engine = Engine::load(&dir, args.threads, args.max_model_len)
        .with_context(|| format!("cannot load the model in {}", dir.display()))?;
    let (tokenizer, generation) = tokenizer_and_generation(&dir)?;
    let info = engine.model().info();
    spinner.finish_and_clear();
    eprintln!(
        "loaded {} ({}, {} layers, {:.1} MB of weights) in {:.2?} on {}",
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
