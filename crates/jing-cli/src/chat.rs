//! `jing chat`: an interactive conversation in the terminal, or a scripted one from a pipe.
//!
//! Each turn renders the whole conversation with the model's chat template, generates the
//! answer, shows the reasoning (dimmed, or hidden with `--hide-reasoning`) apart from the
//! answer, and keeps only the answer in the history (as R1's template expects). Ctrl-C stops
//! the current answer without leaving; `/reset`, `/system TEXT` and `/exit` manage the session.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use jing_engine::{SamplingParams, StopMatcher};
use jing_tokenizer::reasoning::{ReasoningConfig, ReasoningMode, ReasoningSplitter};
use jing_tokenizer::template::{ChatTemplate, RenderOptions, SpecialTokens};
use serde_json::{json, Value};

use crate::commands::{sampling, RunOptions};
use crate::load::load;
use crate::ModelArgs;

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// `jing chat` options beyond the model and sampling ones.
pub struct ChatOptions {
    pub system: Option<String>,
    /// A template file to use instead of the model's.
    pub chat_template: Option<std::path::PathBuf>,
    pub hide_reasoning: bool,
}

/// The reasoning mode a rendered prompt implies: R1-style templates end the prompt with the
/// opening `<think>` tag, so the model writes only the closing one.
fn reasoning_mode(prompt: &str) -> ReasoningMode {
    if prompt.trim_end().ends_with("<think>") {
        ReasoningMode::Forced
    } else {
        ReasoningMode::Optional
    }
}

pub fn chat(model: &ModelArgs, o: &RunOptions, c: &ChatOptions) -> Result<ExitCode> {
    sampling(o, &None)
        .validate()
        .map_err(|e| anyhow::anyhow!("--{}", e.replace('_', "-")))?;
    let mut m = load(model)?;
    let dir = model.model.clone().unwrap_or_else(crate::load::demo_model);
    let template = match &c.chat_template {
        Some(file) => ChatTemplate::from_file(file, SpecialTokens::from_tokenizer(&m.tokenizer))?,
        None => ChatTemplate::for_model(&dir, &m.tokenizer)?,
    };
    let params: SamplingParams = sampling(o, &m.generation);
    params
        .validate()
        .map_err(|e| anyhow::anyhow!("generation_config.json: {e}; override it with the flag"))?;
    let eos = if o.ignore_eos {
        Vec::new()
    } else {
        m.tokenizer.eos_ids()
    };

    let interactive = std::io::stdin().is_terminal();
    let color = std::io::stdout().is_terminal();
    let stop_requested = Arc::new(AtomicBool::new(false));
    {
        let flag = stop_requested.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }
    if interactive {
        eprintln!("chat with the model: /reset clears the history, /system TEXT sets the system prompt, /exit leaves; Ctrl-C stops an answer");
    }

    let mut system = c.system.clone();
    let mut history: Vec<Value> = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut stdout = std::io::stdout();
    loop {
        if interactive {
            print!("> ");
            stdout.flush()?;
        }
        stop_requested.store(false, Ordering::SeqCst);
        let Some(line) = lines.next() else { break };
        let line = line.context("reading the conversation from standard input")?;
        let line = line.trim_end_matches(['\r', '\n']);
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.clear();
                eprintln!("(history cleared)");
                continue;
            }
            cmd if cmd.starts_with("/system") => {
                let text = cmd["/system".len()..].trim();
                system = (!text.is_empty()).then(|| text.to_string());
                history.clear();
                eprintln!(
                    "(system prompt {}; history cleared)",
                    if system.is_some() { "set" } else { "removed" }
                );
                continue;
            }
            _ => {}
        }
        history.push(json!({"role": "user", "content": line}));
        let mut messages: Vec<Value> = Vec::new();
        if let Some(s) = &system {
            messages.push(json!({"role": "system", "content": s}));
        }
        messages.extend(history.iter().cloned());
        let opts = RenderOptions::default().with_generation_prompt(true);
        let prompt = match template.render(&messages, &opts) {
            Ok(p) => p,
            Err(e) => {
                history.pop();
                eprintln!("error: {e}");
                continue;
            }
        };
        // The template writes BOS itself.
        let ids = m.tokenizer.encode(&prompt, false)?;
        let mut splitter = ReasoningSplitter::new(ReasoningConfig::new(reasoning_mode(&prompt)));
        let mut decoder = m.tokenizer.incremental_decoder(true);
        let mut stops = StopMatcher::new(&o.stop);
        let mut answer = String::new();
        let mut in_reasoning = false;
        let mut show = |d: jing_tokenizer::reasoning::Delta,
                        answer: &mut String,
                        out: &mut std::io::Stdout| {
            if !d.reasoning.is_empty() && !c.hide_reasoning {
                if !in_reasoning && color {
                    let _ = write!(out, "{DIM}");
                }
                in_reasoning = true;
                let _ = write!(out, "{}", d.reasoning);
            }
            if !d.answer.is_empty() {
                if in_reasoning {
                    let _ = writeln!(out, "{}", if color { RESET } else { "" });
                    in_reasoning = false;
                }
                let _ = write!(out, "{}", d.answer);
                answer.push_str(&d.answer);
            }
            let _ = out.flush();
        };
        let start = Instant::now();
        let mut first = None;
        let result = m.engine.generate(&ids, o.max_tokens, &params, &eos, |tok| {
            first.get_or_insert_with(|| start.elapsed());
            if eos.contains(&tok) || stop_requested.load(Ordering::SeqCst) {
                return false;
            }
            let piece = decoder.push(tok).ok().flatten().unwrap_or_default();
            let out = stops.push(&piece);
            let d = splitter.push_token(&out.text);
            show(d, &mut answer, &mut stdout);
            out.stopped_by.is_none()
        });
        let generated = match result {
            Ok(g) => g,
            Err(e) => {
                history.pop();
                eprintln!("\nerror: {e}");
                continue;
            }
        };
        if !stops.is_stopped() {
            let tail = decoder.flush().unwrap_or_default();
            let out = stops.push(&tail);
            let d = splitter.push(&out.text);
            show(d, &mut answer, &mut stdout);
            if out.stopped_by.is_none() {
                let rest = stops.finish();
                let d = splitter.push(&rest);
                show(d, &mut answer, &mut stdout);
            }
        }
        let d = splitter.finish();
        show(d, &mut answer, &mut stdout);
        if in_reasoning && color {
            write!(stdout, "{RESET}")?;
        }
        writeln!(stdout)?;
        let interrupted = stop_requested.swap(false, Ordering::SeqCst);
        let total = start.elapsed();
        let decode_s = (total - first.unwrap_or(total)).as_secs_f64();
        let tok_s = if decode_s > 0.0 {
            generated.len().saturating_sub(1) as f64 / decode_s
        } else {
            0.0
        };
        eprintln!(
            "({} tokens, {} reasoning, {tok_s:.1} tok/s{})",
            generated.len(),
            splitter.reasoning_tokens(),
            if interrupted { ", stopped" } else { "" }
        );
        history.push(json!({"role": "assistant", "content": answer}));
    }
    Ok(ExitCode::SUCCESS)
}
