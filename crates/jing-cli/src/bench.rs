//! `jing bench`: how fast a model runs here, against what the machine allows. Decode reads
//! every active weight once per token, so its ceiling is the memory read bandwidth divided by
//! the active bytes per token (the roofline); the command measures that bandwidth itself,
//! before the first repetition and after each, and sets each repetition's decode against the
//! mean of the two measurements around it, so the percentage holds on a shared, drifting
//! machine. (A Zen 4 VM's two vCPUs read 33-36 GB/s while the host kept them on one core
//! complex, and 42-60 while it kept them on two, switching every few seconds to minutes; a
//! bandwidth measured once, or the highest of two, put decode anywhere from 53% to 119%.)

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use jing_cpu::kernels::stream_read;
use jing_engine::{argmax, Engine};
use jing_models::LogitRows;
use serde_json::json;

use crate::load::load;
use crate::ModelArgs;

/// `jing bench` options.
pub struct BenchOptions {
    /// Prompt tokens for the prefill measurement.
    pub prompt_tokens: usize,
    /// Tokens generated for the decode measurement.
    pub gen_tokens: usize,
    /// Repetitions; the median is reported.
    pub reps: usize,
    /// Bytes read per pass of the bandwidth measurement.
    pub bandwidth_bytes: usize,
    pub json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The read bandwidth of `threads` threads streaming over a buffer much larger than the
/// caches, GB/s (median of `reps` passes), read the way the kernels read weights (front to
/// back, prefetching ahead: [`jing_cpu::kernels::stream_read`]).
pub fn read_bandwidth(threads: usize, bytes: usize, reps: usize) -> f64 {
    let words = (bytes / 8).max(threads * 1024);
    // In 2 MiB pages where the kernel has them, as the weights are with --no-mmap (and, on a
    // fresh page cache, mapped): in 4 KiB pages the loop read a quarter to a half slower on a
    // Zen 5 VM, and decode then showed above 100% of its "roofline".
    let mut buf: Vec<u64> = jing_tensor::huge_pages::vec_in_huge_pages(words);
    buf.extend(0..words as u64);
    let chunk = words.div_ceil(threads);
    let mut passes = Vec::new();
    let mut sink = 0u64;
    // One warm-up pass (page faults, frequency ramp), then the measured ones.
    for pass in 0..=reps {
        let start = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|part| s.spawn(move || stream_read(part)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        let secs = start.elapsed().as_secs_f64();
        sink = sums.iter().fold(sink, |a, v| a.wrapping_add(*v));
        if pass > 0 {
            passes.push((words * 8) as f64 / secs / 1e9);
        }
    }
    std::hint::black_box(sink);
    median(passes)
}

/// A deterministic prompt of `n` ordinary tokens (no special ids near 0).
fn bench_prompt(n: usize, vocab: usize) -> Vec<u32> {
    let span = (vocab.saturating_sub(200)).max(1) as u64;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (100 + x % span) as u32
        })
        .collect()
}

struct Run {
    prefill: Duration,
    decode: Duration,
}

/// One prefill of `prompt` and `gen` greedy decode steps in a fresh sequence.
fn one_run(engine: &mut Engine, prompt: &[u32], gen: usize) -> Result<Run> {
    let slot = engine.new_sequence();
    let result = (|| {
        let n = prompt.len();
        let start = Instant::now();
        let logits = engine.step(slot, 0, prompt, LogitRows::Rows(vec![n - 1]))?;
        let prefill = start.elapsed();
        let mut tok = argmax(logits.row(0)) as u32;
        let start = Instant::now();
        for i in 0..gen {
            let logits = engine.step(slot, n + i, &[tok], LogitRows::Rows(vec![0]))?;
            tok = argmax(logits.row(0)) as u32;
        }
        Ok(Run {
            prefill,
            decode: start.elapsed(),
        })
    })();
    engine.end_sequence(slot);
    result
}

pub fn bench(model: &ModelArgs, o: &BenchOptions) -> Result<ExitCode> {
    if o.prompt_tokens == 0 || o.gen_tokens == 0 || o.reps == 0 {
        anyhow::bail!("-p, -n and --reps must be at least 1");
    }
    let mut args = model.clone();
    let needed = o.prompt_tokens + o.gen_tokens;
    args.max_model_len = Some(args.max_model_len.unwrap_or(needed).max(needed));
    let mut m = load(&args)?;
    let threads = model.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let info = m.engine.model().info().clone();
    let prompt = bench_prompt(o.prompt_tokens, info.vocab_size);

    eprintln!(
        "prefill {} tokens and decode {} tokens, {} repetitions (plus one warm-up), measuring \
         the read bandwidth ({} threads, {} MB per pass) before the first and after each...",
        o.prompt_tokens,
        o.gen_tokens,
        o.reps,
        threads,
        o.bandwidth_bytes / 1_000_000
    );
    one_run(&mut m.engine, &prompt, 2.min(o.gen_tokens)).context("warm-up run")?;
    let sample = || read_bandwidth(threads, o.bandwidth_bytes, 3);
    let mut bandwidths = vec![sample()];
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..o.reps {
        let r = one_run(&mut m.engine, &prompt, o.gen_tokens)?;
        prefill.push(o.prompt_tokens as f64 / r.prefill.as_secs_f64());
        decode.push(o.gen_tokens as f64 / r.decode.as_secs_f64());
        bandwidths.push(sample());
    }
    let active = info.active_bytes_per_token as f64;
    // Each repetition against the bandwidth measured around it, GB/s.
    let around: Vec<f64> = bandwidths.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    let fraction = median(
        decode
            .iter()
            .zip(&around)
            .map(|(tg, bw)| tg * active / (bw * 1e9))
            .collect(),
    );
    let pp = median(prefill.clone());
    let tg = median(decode.clone());
    let achieved = tg * active / 1e9;
    let bandwidth = median(around.clone());
    let roofline = bandwidth * 1e9 / active;
    if o.json {
        let out = json!({
            "model": info.architecture,
            "threads": threads,
            "backend": m.engine.backend_name(),
            "prompt_tokens": o.prompt_tokens,
            "gen_tokens": o.gen_tokens,
            "reps": o.reps,
            "no_mmap": model.no_mmap,
            "prefill_tok_s": pp,
            "prefill_tok_s_all": prefill,
            "decode_tok_s": tg,
            "decode_tok_s_all": decode,
            "active_bytes_per_token": info.active_bytes_per_token,
            "total_weight_bytes": info.total_bytes,
            "decode_gb_s": achieved,
            "read_bandwidth_gb_s": bandwidth,
            "read_bandwidth_gb_s_all": bandwidths,
            "decode_roofline_tok_s": roofline,
            "decode_fraction_of_roofline": fraction,
        });
        println!("{out}");
    } else {
        println!("{} on {}", info.architecture, m.engine.backend_name());
        println!(
            "  prefill  pp{:<5} {:>9.1} tok/s   (median of {})",
            o.prompt_tokens, pp, o.reps
        );
        println!(
            "  decode   tg{:<5} {:>9.2} tok/s   (median of {})",
            o.gen_tokens, tg, o.reps
        );
        println!(
            "  active weights {:.1} MB/token -> {:.1} GB/s achieved",
            active / 1e6,
            achieved
        );
        let (lo, hi) = bandwidths
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &b| {
                (lo.min(b), hi.max(b))
            });
        println!(
            "  read bandwidth {bandwidth:.1} GB/s ({lo:.1}-{hi:.1}) -> roofline {roofline:.1} \
             tok/s; decode at {:.0}% of it (median over repetitions)",
            100.0 * fraction
        );
    }
    Ok(ExitCode::SUCCESS)
}
