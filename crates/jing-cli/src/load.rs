//! Opening a model folder for the commands: the bundled demo by default, a progress display
//! while loading, and errors that say what to do next.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use jing_engine::Engine;
use jing_tokenizer::Tokenizer;

use crate::ModelArgs;

/// The demo model shipped in the repository.
pub fn demo_model() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/deepseek-v3-tiny");
    p.canonicalize().unwrap_or(p)
}

pub struct Loaded {
    pub engine: Engine,
    pub tokenizer: Tokenizer,
    /// `generation_config.json`, when present.
    pub generation: Option<serde_json::Value>,
}

/// Load the model and tokenizer named by `args`.
pub fn load(args: &ModelArgs) -> Result<Loaded> {
    let dir = args.model.clone().unwrap_or_else(demo_model);
    if !dir.exists() {
        anyhow::bail!(
            "model path {} does not exist: pass --model DIR with a Hugging Face model folder",
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
    let tokenizer = Tokenizer::from_model_dir(&dir)
        .with_context(|| format!("cannot load the tokenizer of {}", dir.display()))?;
    let generation = std::fs::read_to_string(dir.join("generation_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
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
