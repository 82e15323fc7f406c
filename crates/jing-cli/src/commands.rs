use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use jing_engine::{SamplingParams, StopMatcher};
use serde_json::{json, Value};

use crate::load::load;
use crate::prompt::prompt_ids;
use crate::{ModelArgs, PromptArgs};

/// How `jing run` and `jing chat` generate.
#[derive(clap::Args)]
pub struct RunOptions {
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy (default: generation_config.json, else 0).
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Nucleus sampling threshold (default: generation_config.json, else 1).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Keep the K most likely tokens (default: generation_config.json, else all).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Drop tokens less likely than MIN_P times the best one.
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Divide (multiply, if negative) the logits of tokens seen in the prompt or output.
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Subtract from the logit of every token already generated.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtract from a token's logit once per time it was generated.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Stop when the output contains this text (repeatable; the text itself is not printed).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Random seed: the same seed gives the same output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep generating past end-of-sequence tokens.
    #[arg(long)]
    pub ignore_eos: bool,
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
/// The sampling parameters: flags first, then `generation_config.json` when it asks for
/// sampling, then greedy.
pub(crate) fn sampling(o: &RunOptions, generation: &Option<Value>) -> SamplingParams {
    SamplingParams {
        temperature: o
            .temperature
            .or_else(|| generation_default(generation, "temperature").map(|v| v as f32))
            .unwrap_or(0.0),
        top_p: o
            .top_p
            .or_else(|| generation_default(generation, "top_p").map(|v| v as f32))
            .unwrap_or(1.0),
        top_k: o
            .top_k
            .or_else(|| generation_default(generation, "top_k").map(|v| v as usize))
            .unwrap_or(0),
        min_p: o.min_p,
        repetition_penalty: o.repetition_penalty,
        presence_penalty: o.presence_penalty,
        frequency_penalty: o.frequency_penalty,
        logit_bias: Vec::new(),
        seed: o.seed,
    }
}

pub fn run(
    model: &ModelArgs,
    prompt: &PromptArgs,
    o: RunOptions,
    json_out: bool,
) -> Result<ExitCode> {
    // Reject bad flags before loading anything (a real model takes a while to open).
    sampling(&o, &None)
        .validate()
        .map_err(|e| anyhow::anyhow!("--{}", e.replace('_', "-")))?;
    let mut m = load(model)?;
    let ids = prompt_ids(prompt, &m.tokenizer)?;
    let params = sampling(&o, &m.generation);
    params
        .validate()
        .map_err(|e| anyhow::anyhow!("generation_config.json: {e}; override it with the flag"))?;
    let stop: Vec<u32> = if o.ignore_eos {
        Vec::new()
    } else {
        m.tokenizer.eos_ids()
    };
    let mut decoder = m.tokenizer.incremental_decoder(true);
    let mut stops = StopMatcher::new(&o.stop);
    let mut text = String::new();
    let mut stdout = std::io::stdout().lock();
    // Text that passed the stop matcher: printed when streaming, kept for --json.
    let mut emit = |piece: &str, text: &mut String| {
        if !json_out {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        }
        text.push_str(piece);
    };
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
                    let out = stops.push(&piece);
                    emit(&out.text, &mut text);
                    if out.stopped_by.is_some() {
                        return false;
                    }
                }
                Ok(None) => {}
                Err(e) => decode_error = Some(e),
            }
            true
        })?;
    if let Some(e) = decode_error {
        return Err(e).context("detokenizing the output");
    }
    if !stops.is_stopped() {
        let out = stops.push(&decoder.flush()?);
        emit(&out.text, &mut text);
        if out.stopped_by.is_none() {
            let rest = stops.finish();
            emit(&rest, &mut text);
        }
    }
    if json_out {
        let out = json!({"prompt_ids": ids, "generated_ids": generated, "text": text});
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(stdout)?;
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

/// What `jing template` renders.
pub struct TemplateArgs {
    pub model: std::path::PathBuf,
    pub messages: std::path::PathBuf,
    pub add_generation_prompt: bool,
    pub tools: Option<std::path::PathBuf>,
    pub chat_template: Option<std::path::PathBuf>,
    pub vars: Vec<String>,
    pub json: bool,
}

fn read_json(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON ({what})", path.display()))
}

/// `jing template`: the exact prompt and token ids the model would get.
pub fn template(a: &TemplateArgs) -> Result<ExitCode> {
    use jing_tokenizer::template::{ChatTemplate, RenderOptions, SpecialTokens};
    let tokenizer = crate::load::load_tokenizer(&a.model)?;
    let template = match &a.chat_template {
        Some(file) => ChatTemplate::from_file(file, SpecialTokens::from_tokenizer(&tokenizer))?,
        None => ChatTemplate::for_model(&a.model, &tokenizer)?,
    };
    let messages = match read_json(&a.messages, "messages")? {
        Value::Array(m) => m,
        Value::Object(mut o) => match o.remove("messages") {
            Some(Value::Array(m)) => m,
            _ => anyhow::bail!(
                "{}: expected an array of messages or an object with \"messages\"",
                a.messages.display()
            ),
        },
        _ => anyhow::bail!(
            "{}: expected an array of messages or an object with \"messages\"",
            a.messages.display()
        ),
    };
    let mut opts = RenderOptions::default().with_generation_prompt(a.add_generation_prompt);
    if let Some(path) = &a.tools {
        match read_json(path, "tools")? {
            Value::Array(t) => opts = opts.with_tools(t),
            _ => anyhow::bail!("{}: expected an array of tools", path.display()),
        }
    }
    for var in &a.vars {
        let (name, value) = var.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("--var {var}: expected NAME=JSON, e.g. thinking=true")
        })?;
        let value: Value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        opts = opts.with_variable(name, value);
    }
    let prompt = template.render(&messages, &opts)?;
    // The template writes BOS itself, so the prompt is encoded without adding special tokens.
    let ids = tokenizer.encode(&prompt, false)?;
    if a.json {
        println!("{}", json!({"prompt": prompt, "ids": ids}));
    } else {
        println!("{prompt}");
        println!("---");
        println!("{} tokens: {ids:?}", ids.len());
    }
    Ok(ExitCode::SUCCESS)
}
