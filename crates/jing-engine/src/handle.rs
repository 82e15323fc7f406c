//! The serving engine's front door: a thread that owns the [`Engine`] (model, backend, cache)
//! and runs the scheduler, and a cheap, cloneable handle that async code uses to submit
//! requests and read counters. Compute never runs on the caller's (tokio) threads: requests
//! go in over a channel, events come back over one channel per request.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc as tmpsc;

use crate::scheduler::{Pending, Scheduler};
use crate::{AdmissionInfo, Engine, Event, GenerationRequest};

/// How the serving engine batches and queues.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Sequences decoded together at most (vLLM's `--max-num-seqs`).
    pub max_num_seqs: usize,
    /// Tokens computed in one step at most: every running decode plus as much prefill as
    /// fits (long prompts are prefilled in chunks of this size so that running decodes go on).
    pub max_batch_tokens: usize,
    /// Requests waiting for a place at most; beyond this, `submit` answers `QueueFull`.
    pub max_waiting: usize,
    /// Prompt tokens waiting at most (admission on tokens, so a few huge prompts cannot
    /// queue up minutes of prefill).
    pub max_waiting_tokens: usize,
    /// Tokens of finished sequences kept in the cache for prefix reuse.
    pub prefix_cache_tokens: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_num_seqs: 16,
            max_batch_tokens: 512,
            max_waiting: 256,
            max_waiting_tokens: 1 << 20,
            prefix_cache_tokens: 32 * 1024,
        }
    }
}

/// Why a request was not accepted. Every case is known before any work is done, so a server
/// can answer with an HTTP error instead of a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{needed} tokens (the prompt's {prompt} plus max_tokens {max_tokens}) do not fit the context of {limit} tokens: shorten the prompt or ask for fewer tokens")]
    TooLong {
        prompt: usize,
        max_tokens: usize,
        needed: usize,
        limit: usize,
    },
    #[error("the server is busy ({waiting} requests are waiting): retry later")]
    QueueFull { waiting: usize },
    #[error("the server is shutting down and accepts no new requests")]
    ShuttingDown,
}

/// A snapshot of the engine's counters (for `/metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Sequences in the running batch.
    pub running: usize,
    /// Requests waiting for a place.
    pub waiting: usize,
    /// Cache positions held by running sequences.
    pub kv_used_tokens: usize,
    /// Cache positions the running batch may hold at most (`max_num_seqs · max_model_len`).
    pub kv_capacity_tokens: usize,
    /// Cache positions kept from finished sequences for prefix reuse.
    pub prefix_cache_tokens: usize,
    pub prompt_tokens_total: u64,
    /// Prompt tokens served from the prefix cache instead of computed.
    pub cached_prompt_tokens_total: u64,
    pub generation_tokens_total: u64,
    pub finished_stop_total: u64,
    pub finished_length_total: u64,
    /// Requests whose receiver went away (client disconnected, stop string matched).
    pub cancelled_total: u64,
    pub failed_total: u64,
    /// Steps (graphs) run.
    pub steps_total: u64,
    /// Tokens computed over all steps (decode and prefill).
    pub batch_tokens_total: u64,
}

/// Counters shared between the engine thread and the handles.
#[derive(Default)]
pub(crate) struct Shared {
    pub accepting: AtomicBool,
    pub running: AtomicUsize,
    pub waiting: AtomicUsize,
    pub waiting_tokens: AtomicUsize,
    pub kv_used_tokens: AtomicUsize,
    pub prefix_cache_tokens: AtomicUsize,
    pub prompt_tokens_total: AtomicU64,
    pub cached_prompt_tokens_total: AtomicU64,
    pub generation_tokens_total: AtomicU64,
    pub finished_stop_total: AtomicU64,
    pub finished_length_total: AtomicU64,
    pub cancelled_total: AtomicU64,
    pub failed_total: AtomicU64,
    pub steps_total: AtomicU64,
    pub batch_tokens_total: AtomicU64,
}

impl Shared {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

pub(crate) enum Command {
    Submit(Box<Pending>),
    /// End every request, running or waiting, with an error event carrying this message.
    AbortAll(String),
}

/// The events of one request. Dropping it cancels the request: the engine notices within
/// one step and frees its place.
pub struct RequestStream {
    rx: tmpsc::UnboundedReceiver<Event>,
    /// The number of prompt tokens (for a usage report when the request is cut short).
    pub prompt_tokens: usize,
    admission: AdmissionInfo,
}

impl RequestStream {
    /// The request's admission (prefix-cache hits, queue time), set when it starts running;
    /// the handle stays valid after the stream is dropped.
    pub fn admission(&self) -> AdmissionInfo {
        self.admission.clone()
    }

    /// The next event, or `None` once the request has ended and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The same, blocking the calling thread (not for use on an async runtime).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        self.rx.blocking_recv()
    }
}

struct Inner {
    tx: Mutex<mpsc::Sender<Command>>,
    shared: Arc<Shared>,
    config: ServeConfig,
    max_len: usize,
    vocab: usize,
}

/// A handle to the engine thread. Clones share the thread; it ends when the last handle is
/// dropped and no request remains.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

impl EngineHandle {
    /// Move `engine` onto its own thread and start serving.
    pub fn start(engine: Engine, config: ServeConfig) -> EngineHandle {
        let shared = Arc::new(Shared::default());
        shared.accepting.store(true, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        let max_len = engine.max_len();
        let vocab = engine.model().info().vocab_size;
        let thread_shared = Arc::clone(&shared);
        let thread_config = config.clone();
        std::thread::Builder::new()
            .name("jing-engine".into())
            .spawn(move || run(engine, rx, thread_shared, thread_config))
            .expect("the OS can start the engine thread");
        EngineHandle {
            inner: Arc::new(Inner {
                tx: Mutex::new(tx),
                shared,
                config,
                max_len,
                vocab,
            }),
        }
    }

    /// The context length: prompt plus generated tokens at most.
    pub fn max_model_len(&self) -> usize {
        self.inner.max_len
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.vocab
    }

    pub fn config(&self) -> &ServeConfig {
        &self.inner.config
    }

    /// Check `req` and queue it. All checks (ids, lengths, ranges, room in the queue) happen
    /// here, before any work, so the caller can still answer with a plain error.
    pub fn submit(&self, req: GenerationRequest) -> Result<RequestStream, SubmitError> {
        let shared = &self.inner.shared;
        if !shared.accepting.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        self.check(&req)?;
        let prompt_tokens = req.prompt.len();
        // Reserve a place in the queue (undone below if the engine thread is gone).
        let waiting = shared.waiting.fetch_add(1, Ordering::SeqCst);
        let queued_tokens = shared
            .waiting_tokens
            .fetch_add(prompt_tokens, Ordering::SeqCst);
        let cfg = &self.inner.config;
        if waiting >= cfg.max_waiting
            || (waiting > 0 && queued_tokens + prompt_tokens > cfg.max_waiting_tokens)
        {
            shared.waiting.fetch_sub(1, Ordering::SeqCst);
            shared
                .waiting_tokens
                .fetch_sub(prompt_tokens, Ordering::SeqCst);
            return Err(SubmitError::QueueFull { waiting });
        }
        let (tx, rx) = tmpsc::unbounded_channel();
        let admission = AdmissionInfo::default();
        let pending = Pending {
            req,
            tx,
            queued_at: Instant::now(),
            admission: admission.clone(),
        };
        let sent = self
            .inner
            .tx
            .lock()
            .map_err(|_| SubmitError::ShuttingDown)?
            .send(Command::Submit(Box::new(pending)));
        if sent.is_err() {
            shared.waiting.fetch_sub(1, Ordering::SeqCst);
            shared
                .waiting_tokens
                .fetch_sub(prompt_tokens, Ordering::SeqCst);
            return Err(SubmitError::ShuttingDown);
        }
        Ok(RequestStream {
            rx,
            prompt_tokens,
            admission,
        })
    }

    fn check(&self, req: &GenerationRequest) -> Result<(), SubmitError> {
        if req.prompt.is_empty() {
            return Err(SubmitError::Invalid(
                "the prompt is empty: give at least one token".into(),
            ));
        }
        if req.max_tokens == 0 {
            return Err(SubmitError::Invalid("max_tokens must be at least 1".into()));
        }
        let vocab = self.inner.vocab;
        if let Some(&id) = req.prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(SubmitError::Invalid(format!(
                "token id {id} is outside the vocabulary ({vocab} entries)"
            )));
        }
        req.params.validate().map_err(SubmitError::Invalid)?;
        if let Some(&(id, _)) = req
            .params
            .logit_bias
            .iter()
            .find(|&&(id, _)| id as usize >= vocab)
        {
            return Err(SubmitError::Invalid(format!(
                "logit_bias names token id {id}, outside the vocabulary ({vocab} entries)"
            )));
        }
        let needed = req.prompt.len().saturating_add(req.max_tokens);
        if needed > self.inner.max_len {
            return Err(SubmitError::TooLong {
                prompt: req.prompt.len(),
                max_tokens: req.max_tokens,
                needed,
                limit: self.inner.max_len,
            });
        }
        Ok(())
    }

    /// The counters now.
    pub fn stats(&self) -> EngineStats {
        let s = &self.inner.shared;
        let u = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EngineStats {
            running: u(&s.running),
            waiting: u(&s.waiting),
            kv_used_tokens: u(&s.kv_used_tokens),
            kv_capacity_tokens: self.inner.config.max_num_seqs * self.inner.max_len,
            prefix_cache_tokens: u(&s.prefix_cache_tokens),
            prompt_tokens_total: c(&s.prompt_tokens_total),
            cached_prompt_tokens_total: c(&s.cached_prompt_tokens_total),
            generation_tokens_total: c(&s.generation_tokens_total),
            finished_stop_total: c(&s.finished_stop_total),
            finished_length_total: c(&s.finished_length_total),
            cancelled_total: c(&s.cancelled_total),
            failed_total: c(&s.failed_total),
            steps_total: c(&s.steps_total),
            batch_tokens_total: c(&s.batch_tokens_total),
        }
    }

    /// Whether new requests are accepted.
    pub fn is_accepting(&self) -> bool {
        self.inner.shared.accepting.load(Ordering::SeqCst)
    }

    /// Refuse new requests from now on (`ShuttingDown`); running and queued ones go on.
    pub fn stop_accepting(&self) {
        self.inner.shared.accepting.store(false, Ordering::SeqCst);
    }

    /// End every running and queued request with an error event carrying `message`.
    pub fn abort_all(&self, message: &str) {
        if let Ok(tx) = self.inner.tx.lock() {
            let _ = tx.send(Command::AbortAll(message.to_string()));
        }
    }

    /// Whether no request is running or waiting.
    pub fn is_idle(&self) -> bool {
        let s = &self.inner.shared;
        s.running.load(Ordering::SeqCst) == 0 && s.waiting.load(Ordering::SeqCst) == 0
    }
}

/// The engine thread: block while idle, otherwise take every new command and run one step.
fn run(mut engine: Engine, rx: mpsc::Receiver<Command>, shared: Arc<Shared>, cfg: ServeConfig) {
    let mut sched = Scheduler::new(cfg, shared);
    let mut handles_gone = false;
    loop {
        if sched.is_idle() {
            if handles_gone {
                return;
            }
            match rx.recv() {
                Ok(cmd) => sched.command(cmd, &mut engine),
                Err(_) => return,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(cmd) => sched.command(cmd, &mut engine),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    handles_gone = true;
                    break;
                }
            }
        }
        sched.step(&mut engine);
    }
}
