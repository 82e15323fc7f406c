//! Continuous batching. Every step the scheduler
//! 1. drops requests whose receiver went away (the client disconnected),
//! 2. admits waiting requests while fewer than `max_num_seqs` run, giving each a cache slot
//!    that already holds the longest prefix of its prompt it can find (prefix cache),
//! 3. builds one batch: one token for every decoding sequence, then prompt chunks of the
//!    prefilling ones until `max_batch_tokens` is reached (so a long prompt never stalls the
//!    running decodes),
//! 4. runs it as one graph (the weights are read once for the whole batch), samples the
//!    sequences whose logits were computed, and sends their tokens.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jing_graph::Batch;
use jing_models::LogitRows;
use tokio::sync::mpsc as tmpsc;

use crate::handle::{Command, Shared};
use crate::{
    Admission, AdmissionInfo, Engine, Event, Finish, FinishReason, GeneratedToken,
    GenerationRequest, Sampler, ServeConfig, TokenLogprob, Usage,
};

/// A request on its way to the engine thread.
pub(crate) struct Pending {
    pub req: GenerationRequest,
    pub tx: tmpsc::UnboundedSender<Event>,
    pub queued_at: Instant,
    pub admission: AdmissionInfo,
}

/// A running sequence.
struct Sequence {
    req: GenerationRequest,
    tx: tmpsc::UnboundedSender<Event>,
    sampler: Sampler,
    slot: usize,
    /// Positions of `prompt ++ generated` whose cache rows are written.
    computed: usize,
    generated: Vec<u32>,
    cached_tokens: usize,
    queue_time: Duration,
}

impl Sequence {
    fn token(&self, i: usize) -> u32 {
        let n = self.req.prompt.len();
        if i < n {
            self.req.prompt[i]
        } else {
            self.generated[i - n]
        }
    }

    fn is_prefilling(&self) -> bool {
        self.computed < self.req.prompt.len()
    }
}

/// A finished sequence's slot, kept for prefix reuse.
struct Retained {
    slot: usize,
    /// The tokens whose rows the slot holds.
    tokens: Vec<u32>,
}

/// Where a new sequence's prompt prefix comes from.
enum PrefixSource {
    Fresh,
    /// Take over a retained slot (index into `retained`), keeping `len` positions.
    Retained(usize, usize),
    /// Copy `len` positions of a running sequence's slot.
    Running(usize, usize),
}

pub(crate) struct Scheduler {
    cfg: ServeConfig,
    shared: Arc<Shared>,
    waiting: VecDeque<Pending>,
    running: Vec<Sequence>,
    /// Oldest first.
    retained: VecDeque<Retained>,
}

/// Length of the common prefix of `a` and `b`.
fn common_prefix(a: &[u32], b: impl Iterator<Item = u32>) -> usize {
    a.iter().zip(b).take_while(|(x, y)| **x == *y).count()
}

impl Scheduler {
    pub fn new(cfg: ServeConfig, shared: Arc<Shared>) -> Scheduler {
        Scheduler {
            cfg,
            shared,
            waiting: VecDeque::new(),
            running: Vec::new(),
            retained: VecDeque::new(),
        }
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    pub fn command(&mut self, cmd: Command, engine: &mut Engine) {
        match cmd {
            Command::Submit(p) => self.waiting.push_back(*p),
            Command::AbortAll(msg) => {
                for p in std::mem::take(&mut self.waiting) {
                    self.unqueue(&p);
                    let _ = p.tx.send(Event::Error(msg.clone()));
                    Shared::add(&self.shared.failed_total, 1);
                }
                for seq in std::mem::take(&mut self.running) {
                    let _ = seq.tx.send(Event::Error(msg.clone()));
                    Shared::add(&self.shared.failed_total, 1);
                    self.retain(seq, engine);
                }
                self.publish();
            }
        }
    }

    fn unqueue(&self, p: &Pending) {
        self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
        self.shared
            .waiting_tokens
            .fetch_sub(p.req.prompt.len(), Ordering::SeqCst);
    }

    /// Publish the gauges.
    fn publish(&self) {
        let s = &self.shared;
        s.running.store(self.running.len(), Ordering::SeqCst);
        s.kv_used_tokens.store(
            self.running.iter().map(|q| q.computed).sum(),
            Ordering::Relaxed,
        );
        s.prefix_cache_tokens.store(
            self.retained.iter().map(|r| r.tokens.len()).sum(),
            Ordering::Relaxed,
        );
    }

    /// One scheduling round and one step.
    pub fn step(&mut self, engine: &mut Engine) {
        self.reap_cancelled(engine);
        self.admit(engine);
        self.publish();
        if self.running.is_empty() {
            return;
        }
        self.run_batch(engine);
        self.publish();
    }

    fn reap_cancelled(&mut self, engine: &mut Engine) {
        let waiting = std::mem::take(&mut self.waiting);
        for p in waiting {
            if p.tx.is_closed() {
                self.unqueue(&p);
                Shared::add(&self.shared.cancelled_total, 1);
            } else {
                self.waiting.push_back(p);
            }
        }
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].tx.is_closed() {
                let seq = self.running.remove(i);
                Shared::add(&self.shared.cancelled_total, 1);
                self.retain(seq, engine);
            } else {
                i += 1;
            }
        }
    }

    fn admit(&mut self, engine: &mut Engine) {
        while self.running.len() < self.cfg.max_num_seqs {
            let Some(p) = self.waiting.pop_front() else {
                break;
            };
            self.unqueue(&p);
            let prompt = &p.req.prompt;
            // Reuse at most all but the last prompt token: its logits must be computed.
            let limit = prompt.len() - 1;
            let (slot, cached) = match self.best_prefix(prompt, limit) {
                PrefixSource::Fresh => (engine.cache.alloc_slot(), 0),
                PrefixSource::Retained(i, len) => {
                    let r = self.retained.remove(i).expect("index from best_prefix");
                    engine.cache.truncate(r.slot, len);
                    (r.slot, len)
                }
                PrefixSource::Running(i, len) => match engine.cache.fork(self.running[i].slot, len)
                {
                    Ok(slot) => (slot, len),
                    Err(_) => (engine.cache.alloc_slot(), 0),
                },
            };
            Shared::add(&self.shared.prompt_tokens_total, prompt.len());
            Shared::add(&self.shared.cached_prompt_tokens_total, cached);
            let queue_time = p.queued_at.elapsed();
            let _ = p.admission.0.set(Admission {
                cached_tokens: cached,
                queue_time,
            });
            let sampler = Sampler::new(p.req.params.clone()).with_prompt(prompt);
            self.running.push(Sequence {
                sampler,
                slot,
                computed: cached,
                generated: Vec::new(),
                cached_tokens: cached,
                queue_time,
                req: p.req,
                tx: p.tx,
            });
        }
    }

    /// The longest prefix of `prompt` (at most `limit` tokens) held by a retained slot or a
    /// running sequence.
    fn best_prefix(&self, prompt: &[u32], limit: usize) -> PrefixSource {
        let mut best = PrefixSource::Fresh;
        let mut best_len = 0;
        for (i, r) in self.retained.iter().enumerate() {
            let len = common_prefix(prompt, r.tokens.iter().copied()).min(limit);
            if len > best_len {
                (best, best_len) = (PrefixSource::Retained(i, len), len);
            }
        }
        for (i, q) in self.running.iter().enumerate() {
            let len = common_prefix(prompt, (0..q.computed).map(|j| q.token(j))).min(limit);
            // Taking over a slot is free, copying is not: prefer a retained slot on a tie.
            if len > best_len {
                (best, best_len) = (PrefixSource::Running(i, len), len);
            }
        }
        best
    }

    /// Keep a finished sequence's cache rows for prefix reuse, evicting the oldest kept
    /// slots beyond the budget.
    fn retain(&mut self, seq: Sequence, engine: &mut Engine) {
        let len = seq.computed.min(engine.cache.slot_len(seq.slot));
        if len == 0 || self.cfg.prefix_cache_tokens == 0 {
            engine.cache.free_slot(seq.slot);
        } else {
            let tokens = (0..len).map(|j| seq.token(j)).collect();
            self.retained.push_back(Retained {
                slot: seq.slot,
                tokens,
            });
        }
        let mut kept: usize = self.retained.iter().map(|r| r.tokens.len()).sum();
        while kept > self.cfg.prefix_cache_tokens {
            let Some(old) = self.retained.pop_front() else {
                break;
            };
            kept -= old.tokens.len();
            engine.cache.free_slot(old.slot);
        }
    }

    /// Build the batch, run it, sample and send.
    fn run_batch(&mut self, engine: &mut Engine) {
        let mut batch = Batch::default();
        // (sequence index, tokens added this step, row of its logits if sampled)
        let mut plan: Vec<(usize, usize, Option<usize>)> = Vec::new();
        let mut rows = Vec::new();
        let push = |batch: &mut Batch, seq: &Sequence, n: usize| {
            for j in seq.computed..seq.computed + n {
                batch.tokens.push(seq.token(j));
                batch.positions.push(j);
                batch.slots.push(seq.slot);
            }
        };
        // Every decoding sequence contributes its one pending token.
        for (i, seq) in self.running.iter().enumerate() {
            if !seq.is_prefilling() {
                push(&mut batch, seq, 1);
                rows.push(batch.len() - 1);
                plan.push((i, 1, Some(rows.len() - 1)));
            }
        }
        // Then prompt chunks, oldest first, within the token budget.
        let mut budget = self.cfg.max_batch_tokens.saturating_sub(batch.len());
        if batch.is_empty() {
            budget = budget.max(1);
        }
        for (i, seq) in self.running.iter().enumerate() {
            if budget == 0 {
                break;
            }
            if seq.is_prefilling() {
                let n = (seq.req.prompt.len() - seq.computed).min(budget);
                budget -= n;
                push(&mut batch, seq, n);
                let row = if seq.computed + n == seq.req.prompt.len() {
                    rows.push(batch.len() - 1);
                    Some(rows.len() - 1)
                } else {
                    None
                };
                plan.push((i, n, row));
            }
        }
        Shared::add(&self.shared.steps_total, 1);
        Shared::add(&self.shared.batch_tokens_total, batch.len());

        let logits = match engine.run_batch(&batch, LogitRows::Rows(rows)) {
            Ok(l) => l,
            Err(e) => {
                // The step failed as a whole: end the requests in it, keep the others.
                let msg = format!("the engine failed on this request: {e}");
                let mut failed: Vec<usize> = plan.iter().map(|&(i, _, _)| i).collect();
                failed.sort_unstable();
                for &i in failed.iter().rev() {
                    let seq = self.running.remove(i);
                    let _ = seq.tx.send(Event::Error(msg.clone()));
                    Shared::add(&self.shared.failed_total, 1);
                    engine.cache.free_slot(seq.slot);
                }
                return;
            }
        };

        let mut finished = Vec::new();
        let mut scratch = Vec::new();
        for &(i, n, row) in &plan {
            let seq = &mut self.running[i];
            seq.computed += n;
            let Some(r) = row else { continue };
            match sample_next(seq, logits.row(r), &mut scratch) {
                Ok(step) => {
                    if let Some(done) = step {
                        finished.push((i, Some(done)));
                    }
                }
                Err(msg) => {
                    let _ = seq.tx.send(Event::Error(msg));
                    Shared::add(&self.shared.failed_total, 1);
                    finished.push((i, None));
                }
            }
        }
        let generated: usize = plan.iter().filter(|p| p.2.is_some()).count();
        Shared::add(&self.shared.generation_tokens_total, generated);

        finished.sort_unstable_by_key(|f| f.0);
        for (i, done) in finished.into_iter().rev() {
            let seq = self.running.remove(i);
            if let Some(fin) = done {
                let counter = match fin.reason {
                    FinishReason::Stop => &self.shared.finished_stop_total,
                    FinishReason::Length => &self.shared.finished_length_total,
                };
                Shared::add(counter, 1);
                let _ = seq.tx.send(Event::Finished(fin));
            }
            self.retain(seq, engine);
        }
    }
}

/// Sample `seq`'s next token from `row` (raw logits), send it, and say whether the sequence
/// is done.
fn sample_next(
    seq: &mut Sequence,
    row: &[f32],
    scratch: &mut Vec<f32>,
) -> Result<Option<Finish>, String> {
    let tok = match seq.req.constraint.as_mut() {
        Some(c) => {
            scratch.clear();
            scratch.extend_from_slice(row);
            c.mask(scratch)?;
            if scratch.iter().all(|&v| v == f32::NEG_INFINITY) {
                return Err("the output constraint allows no token here".into());
            }
            let tok = seq.sampler.sample(scratch);
            c.commit(tok)?;
            tok
        }
        None => seq.sampler.sample(row),
    };
    let usage = |seq: &Sequence, completion| Usage {
        prompt_tokens: seq.req.prompt.len(),
        cached_tokens: seq.cached_tokens,
        completion_tokens: completion,
    };
    if seq.req.stop_ids.contains(&tok) {
        return Ok(Some(Finish {
            reason: FinishReason::Stop,
            stop_token: Some(tok),
            usage: usage(seq, seq.generated.len() + 1),
            queue_time: seq.queue_time,
        }));
    }
    let logprob = seq.req.logprobs.map(|k| logprobs(row, tok, k));
    seq.generated.push(tok);
    // A receiver that went away is noticed at the start of the next step.
    let _ = seq
        .tx
        .send(Event::Token(GeneratedToken { id: tok, logprob }));
    let constraint_done = seq.req.constraint.as_ref().is_some_and(|c| c.is_finished());
    let reason = if constraint_done {
        Some(FinishReason::Stop)
    } else if seq.generated.len() >= seq.req.max_tokens {
        Some(FinishReason::Length)
    } else {
        None
    };
    Ok(reason.map(|reason| Finish {
        reason,
        stop_token: None,
        usage: usage(seq, seq.generated.len()),
        queue_time: seq.queue_time,
    }))
}

/// The log-softmax of `row` at `chosen`, and its `k` largest entries.
pub(crate) fn logprobs(row: &[f32], chosen: u32, k: usize) -> TokenLogprob {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
    let log_z = max as f64 + sum.ln();
    let lp = |v: f32| (v as f64 - log_z) as f32;
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k > 0 {
        for (i, &v) in row.iter().enumerate() {
            if top.len() < k || v > top[top.len() - 1].1 {
                let at = top.partition_point(|&(_, w)| w >= v);
                top.insert(at, (i as u32, v));
                top.truncate(k);
            }
        }
    }
    TokenLogprob {
        logprob: lp(row[chosen as usize]),
        top: top.into_iter().map(|(i, v)| (i, lp(v))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_are_a_log_softmax_with_the_top_entries_in_order() {
        let row = [1.0f32, 3.0, 2.0, 3.0, -1.0];
        let lp = logprobs(&row, 2, 3);
        let z: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
        assert!((lp.logprob as f64 - (2.0 - z.ln())).abs() < 1e-6);
        let ids: Vec<u32> = lp.top.iter().map(|t| t.0).collect();
        // Ties keep the lower id first.
        assert_eq!(ids, vec![1, 3, 2]);
        assert!((lp.top[0].1 as f64 - (3.0 - z.ln())).abs() < 1e-6);
        assert!(logprobs(&row, 0, 0).top.is_empty());
    }

    #[test]
    fn common_prefix_stops_at_the_first_difference() {
        assert_eq!(common_prefix(&[1, 2, 3], [1, 2, 4].into_iter()), 2);
        assert_eq!(common_prefix(&[1, 2], [1, 2, 3].into_iter()), 2);
        assert_eq!(common_prefix(&[], [1].into_iter()), 0);
    }
}
