//! `/metrics` in the Prometheus text format, under vLLM's metric names (`vllm:…`, with a
//! `model_name` label) so that existing vLLM dashboards and tooling read a jing server as they
//! are. Metrics vLLM has no name for are `jing:…`.
//!
//! Gauges and token counters come from the engine's own counters ([`EngineStats`]); latency
//! histograms and per-request outcomes are measured here, per choice, from the server's side
//! (they exclude network time):
//! - time to first token: from submission to the first generated token;
//! - inter-token latency: between consecutive generated tokens;
//! - end-to-end latency: from submission to the last token;
//! - queue time: the engine's own measure ([`jing_engine::Finish::queue_time`]).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use jing_engine::EngineStats;

/// A histogram with fixed buckets.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket counts (not cumulative), plus one for +Inf.
    counts: Vec<AtomicU64>,
    /// Sum in nanoseconds.
    sum_ns: AtomicU64,
}

/// TTFT buckets: 50, 100, 250, 500 ms and 1, 2, 5 s among them, so SLO lines have a bucket.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.05, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 2.5, 5.0,
    7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// Inter-token latency buckets (vLLM's).
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// Request-level latency buckets (vLLM's, plus sub-second ones for small models).
const REQUEST_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
];

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += counts[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Counters by a label value, in first-seen order.
#[derive(Default)]
struct Labeled {
    values: Mutex<Vec<(&'static str, u64)>>,
}

impl Labeled {
    fn with(initial: &[&'static str]) -> Labeled {
        Labeled {
            values: Mutex::new(initial.iter().map(|&v| (v, 0)).collect()),
        }
    }

    fn inc(&self, value: &'static str) {
        let mut v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        match v.iter_mut().find(|(k, _)| *k == value) {
            Some((_, n)) => *n += 1,
            None => v.push((value, 1)),
        }
    }

    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The server's measurements.
pub struct Metrics {
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
    pub queue: Histogram,
    /// Finished choices by reason: `stop`, `length`, `abort` (client gone), `error`.
    finished: Labeled,
    /// Requests turned away before any work, by reason.
    rejected: Labeled,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(REQUEST_BUCKETS),
            queue: Histogram::new(REQUEST_BUCKETS),
            finished: Labeled::with(&["stop", "length", "abort", "error"]),
            rejected: Labeled::with(&["invalid", "queue_full", "unavailable", "unauthorized"]),
        }
    }
}

/// A label value in the exposition format.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// A choice ended (`stop`, `length`, `abort` or `error`).
    pub fn finished(&self, reason: &'static str) {
        self.finished.inc(reason);
    }

    /// A request was turned away (`invalid`, `queue_full`, `unavailable`, `unauthorized`).
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.inc(reason);
    }

    /// The exposition text. `stats` is `None` while the model loads.
    pub fn render(&self, model_name: &str, stats: Option<&EngineStats>) -> String {
        let l = format!("model_name=\"{}\"", escape(model_name));
        let mut out = String::with_capacity(8 << 10);
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name}{{{l}}} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name}{{{l}}} {v}");
        };
        let s = stats.cloned().unwrap_or_default();
        gauge(
            &mut out,
            "vllm:num_requests_running",
            "Sequences in the running batch.",
            s.running as f64,
        );
        gauge(
            &mut out,
            "vllm:num_requests_waiting",
            "Requests waiting for a place in the batch.",
            s.waiting as f64,
        );
        let usage = if s.kv_capacity_tokens == 0 {
            0.0
        } else {
            s.kv_used_tokens as f64 / s.kv_capacity_tokens as f64
        };
        gauge(
            &mut out,
            "vllm:kv_cache_usage_perc",
            "Fraction of the KV cache held by running sequences (0 to 1).",
            usage,
        );
        counter(
            &mut out,
            "vllm:prompt_tokens_total",
            "Prompt tokens admitted.",
            s.prompt_tokens_total,
        );
        counter(
            &mut out,
            "vllm:generation_tokens_total",
            "Tokens generated.",
            s.generation_tokens_total,
        );
        counter(
            &mut out,
            "vllm:prefix_cache_queries_total",
            "Prompt tokens looked up in the prefix cache.",
            s.prompt_tokens_total,
        );
        counter(
            &mut out,
            "vllm:prefix_cache_hits_total",
            "Prompt tokens served from the prefix cache.",
            s.cached_prompt_tokens_total,
        );
        let _ = writeln!(
            out,
            "# HELP vllm:request_success_total Finished choices by finish reason."
        );
        let _ = writeln!(out, "# TYPE vllm:request_success_total counter");
        for (reason, n) in self.finished.snapshot() {
            let _ = writeln!(
                out,
                "vllm:request_success_total{{{l},finished_reason=\"{reason}\"}} {n}"
            );
        }
        self.ttft.render(
            &mut out,
            "vllm:time_to_first_token_seconds",
            "Time from submission to the first generated token.",
            &l,
        );
        self.itl.render(
            &mut out,
            "vllm:inter_token_latency_seconds",
            "Time between consecutive generated tokens.",
            &l,
        );
        self.e2e.render(
            &mut out,
            "vllm:e2e_request_latency_seconds",
            "Time from submission to the last generated token.",
            &l,
        );
        self.queue.render(
            &mut out,
            "vllm:request_queue_time_seconds",
            "Time spent waiting for a place in the running batch.",
            &l,
        );
        let _ = writeln!(
            out,
            "# HELP jing:request_rejected_total Requests turned away before any work, by reason."
        );
        let _ = writeln!(out, "# TYPE jing:request_rejected_total counter");
        for (reason, n) in self.rejected.snapshot() {
            let _ = writeln!(
                out,
                "jing:request_rejected_total{{{l},reason=\"{reason}\"}} {n}"
            );
        }
        counter(
            &mut out,
            "jing:requests_cancelled_total",
            "Engine requests ended because their receiver went away (client gone, stop string).",
            s.cancelled_total,
        );
        counter(
            &mut out,
            "jing:engine_steps_total",
            "Batched steps the engine ran.",
            s.steps_total,
        );
        counter(
            &mut out,
            "jing:engine_batch_tokens_total",
            "Tokens computed over all engine steps (prefill and decode).",
            s.batch_tokens_total,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_tables_are_increasing() {
        for t in [TTFT_BUCKETS, ITL_BUCKETS, REQUEST_BUCKETS] {
            assert!(t.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn histograms_are_cumulative() {
        let m = Metrics::default();
        m.ttft.observe(Duration::from_millis(30));
        m.ttft.observe(Duration::from_secs(3));
        m.finished("stop");
        let text = m.render("tiny", None);
        assert!(text.contains(
            "vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"0.04\"} 1\n"
        ));
        assert!(text.contains(
            "vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"2.5\"} 1\n"
        ));
        assert!(text
            .contains("vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"5\"} 2\n"));
        assert!(text.contains("vllm:time_to_first_token_seconds_count{model_name=\"tiny\"} 2\n"));
        assert!(text.contains(
            "vllm:request_success_total{model_name=\"tiny\",finished_reason=\"stop\"} 1\n"
        ));
    }
}
