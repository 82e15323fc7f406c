use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use jing_engine::SamplingParams;
use serde_json::{json, Value};

use crate::load::load;
use crate::prompt::prompt_ids;
use crate::{ModelArgs, PromptArgs};

pub struct RunOptions {
    pub max_tokens: usize,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub seed: u64,
    pub ignore_eos: bool,
    pub json: bool,
}

/// A sampling default from `generation_config.json` (only when it asks for sampling).
fn generation_default(gen: &Option<Value>, key: &str) -> Option<f64> {
    let g = gen.as_ref()?;
    if g.get("do_sample").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    g.get(key).and_then(Value::as_f64)
}

/// `jing run`.
/// Reject sampling flags before loading anything (a real model takes a while to open).
fn check_flags(o: &RunOptions) -> Result<()> {
    if let Some(t) = o.temperature {
        anyhow::ensure!(
            t.is_finite() && t >= 0.0,
            "--temperature must be a finite number >= 0 (0 is greedy), got {t}"
        );
    }
    if let Some(p) = o.top_p {
        anyhow::ensure!(p > 0.0 && p <= 1.0, "--top-p must be in (0, 1], got {p}");
    }
    Ok(())
}

pub fn run(model: &ModelArgs, prompt: &PromptArgs, o: RunOptions) -> Result<ExitCode> {
    check_flags(&o)?;
    let mut m = load(model)?;
    let ids = prompt_ids(prompt, &m.tokenizer)?;
    let params = SamplingParams {
        temperature: o
            .temperature
            .or_else(|| generation_default(&m.generation, "temperature").map(|v| v as f32))
            .unwrap_or(0.0),
        top_p: o
            .top_p
            .or_else(|| generation_default(&m.generation, "top_p").map(|v| v as f32))
            .unwrap_or(1.0),
        top_k: o
            .top_k
            .or_else(|| generation_default(&m.generation, "top_k").map(|v| v as usize))
            .unwrap_or(0),
        seed: o.seed,
    };
    anyhow::ensure!(
        params.temperature.is_finite() && params.temperature >= 0.0 && params.top_p > 0.0 && params.top_p <= 1.0,
        "generation_config.json has an invalid temperature or top_p; pass --temperature and --top-p"
    );
    let stop: Vec<u32> = if o.ignore_eos {
        Vec::new()
    } else {
        m.tokenizer.eos_ids()
    };
    let mut decoder = m.tokenizer.incremental_decoder(true);
    let mut text = String::new();
    let mut stdout = std::io::stdout().lock();
    let start = Instant::now();
    let mut first_token = None;
    let mut decode_error = None;
    let generated = m
        .engine
        .generate(&ids, o.max_tokens, &params, &stop, |tok| {
            first_token.get_or_insert_with(|| start.elapsed());
            if stop.contains(&tok) {
                return false;
            }
            match decoder.push(tok) {
                Ok(Some(piece)) => {
                    if !o.json {
                        let _ = stdout.write_all(piece.as_bytes());
                        let _ = stdout.flush();
                    }
                    text.push_str(&piece);
                }
                Ok(None) => {}
                Err(e) => decode_error = Some(e),
            }
            true
        })?;
    if let Some(e) = decode_error {
        return Err(e).context("detokenizing the output");
    }
    let tail = decoder.flush()?;
    text.push_str(&tail);
    if o.json {
        let out = json!({"prompt_ids": ids, "generated_ids": generated, "text": text});
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(stdout, "{tail}")?;
        let total = start.elapsed();
        let prefill = first_token.unwrap_or(total);
        let decode_tokens = generated.len().saturating_sub(1);
        let decode_s = (total - prefill).as_secs_f64();
        let tok_s = if decode_s > 0.0 {
            decode_tokens as f64 / decode_s
        } else {
            0.0
        };
        // Decode reads every active weight once per token: this is the bandwidth it achieved.
        let gb_s = tok_s * m.engine.model().info().active_bytes_per_token as f64 / 1e9;
        eprintln!(
            "prompt {} tokens in {:.2?} ({:.1} tok/s); generated {} tokens, decode {:.1} tok/s ({:.1} GB/s of active weights)",
            ids.len(),
            prefill,
            ids.len() as f64 / prefill.as_secs_f64().max(1e-9),
            generated.len(),
            tok_s,
            gb_s
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `jing logits`.
pub fn logits(model: &ModelArgs, prompt: &PromptArgs) -> Result<ExitCode> {
    let mut m = load(model)?;
    let ids = prompt_ids(prompt, &m.tokenizer)?;
    let out = m.engine.score(&ids)?;
    let n = ids.len();
    let argmax: Vec<usize> = (0..n).map(|r| jing_engine::argmax(out.row(r))).collect();
    let last: Vec<f32> = out.row(n - 1).to_vec();
    let v = json!({"prompt_ids": ids, "argmax": argmax, "last_logits": last});
    println!("{v}");
    Ok(ExitCode::SUCCESS)
}

/// `jing inspect`.
pub fn inspect(path: &Path, json_out: bool) -> Result<ExitCode> {
    let report = jing_formats::inspect(path)?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{report}");
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
