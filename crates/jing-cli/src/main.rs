//! `jing`: run DeepSeek models on the hardware you have.

mod bench;
mod chat;
mod commands;
mod load;
mod prompt;
mod quantize;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "jing",
    version,
    about = "Run DeepSeek-V3/R1/V2 models on your own hardware"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the model is and how to run it.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model folder (config.json, tokenizer.json, safetensors). Default: the bundled demo model.
    #[arg(long, short)]
    pub model: Option<PathBuf>,
    /// Compute threads (default: all cores).
    #[arg(long, short, value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Context length to allocate (default: the model's, at most 4096).
    #[arg(long)]
    pub max_model_len: Option<usize>,
    /// Quantize the float matmul weights while loading (q8_0, q4_k_m, q4_k, q6_k, ...; the
    /// types of `jing quantize --type`). Embeddings, norms and routers stay as stored.
    #[arg(long, value_parser = jing_formats::quantize::QuantTarget::parse)]
    pub quant: Option<jing_formats::quantize::QuantTarget>,
    /// Copy the weights out of the file mapping into this process's memory, in 2 MiB pages
    /// (Linux transparent huge pages), as llama.cpp's --no-mmap copies them out. Decode of a
    /// big mixture-of-experts file gets faster (far fewer TLB misses when the page cache holds
    /// the file in 4 KiB pages), but the memory is no longer shared with the page cache or
    /// with other processes, and the weights must fit in the available memory.
    #[arg(long)]
    pub no_mmap: bool,
    /// What the FP8 matmuls of DeepSeek's block-scaled checkpoints multiply their exact weights
    /// with: `f32`, the activations as they are (the reference's values), or `bf16`, the
    /// activations rounded to bf16, as DeepSeek's own inference code runs them. On CPUs with
    /// AVX512-BF16, `bf16` decodes faster (one `vdpbf16ps` per 32 weights).
    #[arg(long, default_value = "f32")]
    pub fp8_activations: jing_engine::Fp8Activations,
}

/// The prompt, as text or as token ids.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct PromptArgs {
    /// Prompt text (encoded with the model's tokenizer, BOS added as the tokenizer does).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Prompt token ids, comma separated (e.g. 0,5,7).
    #[arg(long, value_delimiter = ',')]
    pub prompt_ids: Option<Vec<u32>>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the model over the OpenAI and DeepSeek API (chat, completions, streaming).
    Serve(serve::ServeArgs),
    /// Generate text from a prompt and stream it.
    Run {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        prompt: PromptArgs,
        #[command(flatten)]
        options: commands::RunOptions,
        /// Print one JSON object {"prompt_ids","generated_ids","text"} instead of streaming.
        #[arg(long)]
        json: bool,
    },
    /// Chat with the model in the terminal (or pipe the user's lines in, one per turn).
    Chat {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        options: commands::RunOptions,
        /// System prompt.
        #[arg(long)]
        system: Option<String>,
        /// Do not print the model's reasoning (it is still generated).
        #[arg(long)]
        hide_reasoning: bool,
        /// Use this chat template file instead of the model's.
        #[arg(long)]
        chat_template: Option<PathBuf>,
    },
    /// Print the logits of a prompt as JSON (f32 activations).
    Logits {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        prompt: PromptArgs,
    },
    /// Render a conversation with the model's chat template and show the prompt and its token ids.
    Template {
        /// Model folder (tokenizer.json, tokenizer_config.json). Default: the bundled demo model.
        #[arg(long, short)]
        model: Option<PathBuf>,
        /// A JSON file with the messages (an array, or an object with "messages").
        #[arg(long)]
        messages: PathBuf,
        /// Append the opening of the assistant's turn.
        #[arg(long)]
        add_generation_prompt: bool,
        /// A JSON file with the tools (OpenAI function definitions).
        #[arg(long)]
        tools: Option<PathBuf>,
        /// Use this template file instead of the model's.
        #[arg(long)]
        chat_template: Option<PathBuf>,
        /// A template variable, NAME=JSON (e.g. thinking=true for DeepSeek-V3.1); repeatable.
        #[arg(long = "var", value_name = "NAME=JSON")]
        vars: Vec<String>,
        /// Print one JSON object {"prompt","ids"}.
        #[arg(long)]
        json: bool,
    },
    /// Measure prefill and decode speed against the machine's memory bandwidth.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Prompt tokens for the prefill measurement.
        #[arg(short = 'p', long = "prompt-tokens", default_value_t = 512)]
        prompt_tokens: usize,
        /// Tokens to generate for the decode measurement.
        #[arg(short = 'n', long = "gen-tokens", default_value_t = 128)]
        gen_tokens: usize,
        /// Repetitions (the median is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Megabytes read per pass of the bandwidth measurement.
        #[arg(long, default_value_t = 1024)]
        bandwidth_mb: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Write a GGUF file quantized to a type (or a llama.cpp mix) from a GGUF file or a
    /// Hugging Face folder; llama.cpp loads it too.
    Quantize(quantize::QuantizeArgs),
    /// Describe a model folder or a safetensors file: architecture, config, tensors, dtypes.
    Inspect {
        /// Model folder or .safetensors file.
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "`{s}` is not a thread count (a whole number of at least 1)"
        )),
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message already
/// includes (several error types quote their source in their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Run {
            model,
            prompt,
            options,
            json,
        } => commands::run(&model, &prompt, options, json),
        Command::Chat {
            model,
            options,
            system,
            hide_reasoning,
            chat_template,
        } => chat::chat(
            &model,
            &options,
            &chat::ChatOptions {
                system,
                chat_template,
                hide_reasoning,
            },
        ),
        Command::Bench {
            model,
            prompt_tokens,
            gen_tokens,
            reps,
            bandwidth_mb,
            json,
        } => bench::bench(
            &model,
            &bench::BenchOptions {
                prompt_tokens,
                gen_tokens,
                reps,
                bandwidth_bytes: bandwidth_mb * 1_000_000,
                json,
            },
        ),
        Command::Logits { model, prompt } => commands::logits(&model, &prompt),
        Command::Inspect { path, json } => commands::inspect(&path, json),
        Command::Quantize(args) => quantize::quantize(&args),
        Command::Template {
            model,
            messages,
            add_generation_prompt,
            tools,
            chat_template,
            vars,
            json,
        } => commands::template(&commands::TemplateArgs {
            model: model.unwrap_or_else(load::demo_model),
            messages,
            add_generation_prompt,
            tools,
            chat_template,
            vars,
            json,
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
