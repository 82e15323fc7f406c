use std::path::Path;

use jing_cpu::kernels::{Fp8Activations, KernelTable};
use jing_cpu::CpuBackend;
use jing_formats::ModelDir;
use jing_graph::{Backend, Batch, ExecError, Graph, KvCache};
use jing_models::{load_model_dir, CausalLm, LoadQuant, LogitRows, ModelError};

use crate::rearrange::{limit_prepare, LoadObserver};

use crate::{Sampler, SamplingParams};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("the prompt is empty: give at least one token")]
    EmptyPrompt,
    #[error("token id {id} is outside the vocabulary ({vocab} entries)")]
    TokenId { id: u32, vocab: usize },
    #[error("{needed} tokens (the prompt plus the tokens to generate) do not fit the context of {limit} tokens: shorten the prompt, generate fewer tokens (--max-tokens) or allocate a longer context (--max-model-len)")]
    TooLong { needed: usize, limit: usize },
}

/// Logits of one step for the rows asked for, `[rows, vocab]`, and the final-normed hidden
/// states of the same rows.
pub struct StepLogits {
    pub logits: Vec<f32>,
    pub hidden: Vec<f32>,
    pub vocab: usize,
}

impl StepLogits {
    pub fn row(&self, r: usize) -> &[f32] {
        &self.logits[r * self.vocab..(r + 1) * self.vocab]
    }
}

/// A model, a backend and a cache: runs prefill and decode steps for single sequences.
pub struct Engine {
    model: Box<dyn CausalLm>,
    backend: Box<dyn Backend>,
    pub(crate) cache: KvCache,
    /// The last step's graph with the batch size and logit rows it was built for: a model's
    /// graph depends on nothing else (tokens, positions and slots are read when it runs), so
    /// consecutive decode steps of the same batch shape reuse it instead of rebuilding
    /// hundreds of nodes every token.
    last_graph: Option<(usize, LogitRows, Graph)>,
}

impl Engine {
    /// Load the model at `path` on the CPU backend with `threads` threads (default: all) and a
    /// context of `max_len` tokens (default: the model's, capped at 4096).
    pub fn load(
        path: &Path,
        threads: Option<usize>,
        max_len: Option<usize>,
    ) -> Result<Engine, EngineError> {
        Engine::load_with(path, threads, max_len, None)
    }

    /// [`Engine::load`], quantizing the float matmul weights as they load when `quant` is
    /// given (see [`LoadQuant`]).
    pub fn load_with(
        path: &Path,
        threads: Option<usize>,
        max_len: Option<usize>,
        quant: Option<&LoadQuant>,
    ) -> Result<Engine, EngineError> {
        Engine::load_observed(path, threads, max_len, quant, Fp8Activations::F32, None)
    }

    /// [`Engine::load_with`], with FP8 matmuls multiplying the activations as `fp8` says, and
    /// reporting the weights the backend rearranges as they load to `observer` (see
    /// [`crate::LoadEvent`]: a progress bar for a long load).
    pub fn load_observed(
        path: &Path,
        threads: Option<usize>,
        max_len: Option<usize>,
        quant: Option<&LoadQuant>,
        fp8: Fp8Activations,
        observer: Option<LoadObserver>,
    ) -> Result<Engine, EngineError> {
        // The backend first: it says how it wants the matmul weights laid out as they load
        // (only when the model fits in memory, see `rearrange`).
        let kernels = KernelTable::detect().with_fp8_activations(fp8);
        let cpu = CpuBackend::with_kernels(threads, kernels);
        let dir = ModelDir::open(path).map_err(ModelError::from)?;
        let prepare = limit_prepare(
            cpu.prepare_linear(),
            &dir,
            jing_formats::available_memory(),
            observer,
        );
        let model = load_model_dir(dir, quant, prepare.as_ref())?;
        Ok(Engine::new(model, Box::new(cpu), max_len))
    }

    pub fn new(
        model: Box<dyn CausalLm>,
        backend: Box<dyn Backend>,
        max_len: Option<usize>,
    ) -> Engine {
        let info = model.info();
        let max_len = max_len.unwrap_or(info.max_position_embeddings.min(4096));
        let cache = KvCache::new(info.cache_layers, info.cache_width, max_len);
        Engine {
            model,
            backend,
            cache,
            last_graph: None,
        }
    }

    pub fn model(&self) -> &dyn CausalLm {
        self.model.as_ref()
    }

    pub fn backend_name(&self) -> String {
        self.backend.name()
    }

    pub fn max_len(&self) -> usize {
        self.cache.max_len()
    }

    /// Start a sequence: a fresh cache slot for [`Engine::step`].
    pub fn new_sequence(&mut self) -> usize {
        self.cache.alloc_slot()
    }

    /// End a sequence started with [`Engine::new_sequence`], freeing its cache rows.
    pub fn end_sequence(&mut self, slot: usize) {
        self.cache.free_slot(slot);
    }

    fn check_ids(&self, ids: &[u32]) -> Result<(), EngineError> {
        let vocab = self.model.info().vocab_size;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(EngineError::TokenId { id, vocab });
        }
        Ok(())
    }

    /// Run `tokens` at positions `start..` of `slot`, returning logits for `rows`.
    pub fn step(
        &mut self,
        slot: usize,
        start: usize,
        tokens: &[u32],
        rows: LogitRows,
    ) -> Result<StepLogits, EngineError> {
        self.check_ids(tokens)?;
        if start + tokens.len() > self.cache.max_len() {
            return Err(EngineError::TooLong {
                needed: start + tokens.len(),
                limit: self.cache.max_len(),
            });
        }
        let batch = Batch::sequence(slot, start, tokens);
        self.run_batch(&batch, rows)
    }

    /// Run one step over `batch` (tokens of any number of sequences, each in its own cache
    /// slot, continuing where that slot's cache ends), returning logits for `rows` (indices
    /// into the batch's tokens).
    pub fn run_batch(&mut self, batch: &Batch, rows: LogitRows) -> Result<StepLogits, EngineError> {
        let reuse = matches!(&self.last_graph, Some((n, r, _)) if *n == batch.len() && *r == rows);
        if !reuse {
            let graph = self.model.build_step(batch, &rows);
            self.last_graph = Some((batch.len(), rows, graph));
        }
        let (_, _, graph) = self.last_graph.as_ref().expect("built above");
        let out = self.backend.execute(graph, batch, &mut self.cache)?;
        let (shape, logits) = out.get("logits").expect("models output logits");
        let vocab = shape[1];
        let hidden = out
            .get("hidden")
            .map(|(_, h)| h.to_vec())
            .unwrap_or_default();
        Ok(StepLogits {
            logits: logits.to_vec(),
            hidden,
            vocab,
        })
    }

    /// Logits at every position of `ids` (a fresh sequence), `[len, vocab]`.
    pub fn score(&mut self, ids: &[u32]) -> Result<StepLogits, EngineError> {
        if ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let slot = self.cache.alloc_slot();
        let r = self.step(slot, 0, ids, LogitRows::All);
        self.cache.free_slot(slot);
        r
    }

    /// Generate up to `max_tokens` tokens after `prompt`, calling `on_token` with each; stops
    /// early at a token in `stop_ids` (which is passed to `on_token` and included) or when
    /// `on_token` returns false. Returns the generated ids.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        params: &SamplingParams,
        stop_ids: &[u32],
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Result<Vec<u32>, EngineError> {
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let needed = prompt.len() + max_tokens;
        if needed > self.cache.max_len() {
            return Err(EngineError::TooLong {
                needed,
                limit: self.cache.max_len(),
            });
        }
        let slot = self.cache.alloc_slot();
        let result = (|| {
            let mut sampler = Sampler::new(params.clone()).with_prompt(prompt);
            let mut out = Vec::new();
            let n = prompt.len();
            let mut logits = self.step(slot, 0, prompt, LogitRows::Rows(vec![n - 1]))?;
            while out.len() < max_tokens {
                let tok = sampler.sample(logits.row(0));
                out.push(tok);
                let go_on = on_token(tok);
                if !go_on || stop_ids.contains(&tok) || out.len() == max_tokens {
                    break;
                }
                logits = self.step(slot, n + out.len() - 1, &[tok], LogitRows::Rows(vec![0]))?;
            }
            Ok(out)
        })();
        self.cache.free_slot(slot);
        result
    }
}
