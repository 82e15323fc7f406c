//! [`Tokenizer::from_gguf`]: the tokenizer and chat template a GGUF file carries in its
//! metadata, rebuilt as a Hugging Face `tokenizers` tokenizer.
//!
//! llama.cpp's converter stores a byte-level BPE vocabulary as `tokenizer.ggml.model = "gpt2"`
//! with the token texts (`tokenizer.ggml.tokens`, byte-level spelling), their kinds
//! (`token_type`: 1 normal, 3 control, 4 user-defined, 5 unused padding), the merges (`"a b"`),
//! the BOS/EOS ids, `add_bos_token`, the chat template, and the *name* of the pre-tokenizer
//! (`tokenizer.ggml.pre`), not its regexes. The name is mapped back here to the pre-tokenizer
//! the model's own `tokenizer.json` has (DeepSeek-V3, DeepSeek-LLM/V2, Qwen2 and its
//! R1-Distill variant, Llama-3, GPT-2), so that ids equal the Hugging Face tokenizer's:
//!
//! - control tokens become special added tokens, user-defined tokens non-special added tokens
//!   (both matched before BPE, as in HF and llama.cpp); unused padding tokens are left out;
//! - `add_bos_token` / `add_eos_token` become a `TemplateProcessing` post-processor, so
//!   `encode(text, true)` adds them like llama.cpp does;
//! - `tokenizer.chat_template` (and named `tokenizer.chat_template.NAME` templates) become the
//!   tokenizer's chat template; BOS/EOS texts are the tokens at the BOS/EOS ids.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use jing_formats::gguf::GgufFile;
use serde_json::{json, Map, Value};

use crate::config::{GenerationConfig, TokenizerConfig};
use crate::error::{Result, TokenizerError};
use crate::tokenizer::Tokenizer;

/// The `tokenizer.ggml.pre` names this crate knows, and the model family each one means.
pub const GGUF_PRE_TOKENIZERS: &[(&str, &str)] = &[
    ("deepseek-v3", "DeepSeek-V3 / R1"),
    ("deepseek-llm", "DeepSeek-LLM / V2"),
    ("qwen2", "Qwen2"),
    ("deepseek-r1-qwen", "DeepSeek-R1-Distill-Qwen"),
    ("llama-bpe", "Llama-3"),
    ("llama3", "Llama-3"),
    ("llama-v3", "Llama-3"),
    ("gpt-2", "GPT-2"),
];

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_NORMAL: i64 = 1;
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;
const TOKEN_UNUSED: i64 = 5;

/// DeepSeek-V3's pre-tokenizer (its `tokenizer.json`, verbatim).
const DEEPSEEK_V3_SPLITS: &[&str] = &[
    r"\p{N}{1,3}",
    "[\u{4e00}-\u{9fa5}\u{3040}-\u{309f}\u{30a0}-\u{30ff}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
];

/// DeepSeek-LLM / V2's pre-tokenizer splits (its `tokenizer.json`, verbatim, non-ASCII
/// characters escaped), followed there by single-digit splitting.
const DEEPSEEK_LLM_SPLITS: &[&str] = &[
    "[\u{d}\u{a}]",
    "\\s?[A-Za-z\u{b5}\u{c0}-\u{d6}\u{d8}-\u{f6}\u{f8}-\u{1ba}\u{1bc}-\u{1bf}\u{1c4}-\u{293}\u{295}-\u{2af}\u{370}-\u{373}\u{376}\u{377}\u{37b}-\u{37d}\u{37f}\u{386}\u{388}-\u{38a}\u{38c}\u{38e}-\u{3a1}\u{3a3}-\u{3f5}\u{3f7}-\u{481}\u{48a}-\u{52f}\u{531}-\u{556}\u{10a0}-\u{10c5}\u{13a0}-\u{13f5}\u{13f8}-\u{13fd}\u{1c90}-\u{1cba}\u{1cbd}-\u{1cbf}\u{1d00}-\u{1d2b}\u{1d6b}-\u{1d77}\u{1d79}-\u{1d9a}\u{1e00}-\u{1f15}\u{1f18}-\u{1f1d}\u{1f20}-\u{1f45}\u{1f48}-\u{1f4d}\u{1f50}-\u{1f57}\u{1f59}\u{1f5b}\u{1f5d}\u{1f5f}-\u{1f7d}\u{1f80}-\u{1fb4}\u{1fb6}-\u{1fbc}\u{1fbe}\u{1fc2}-\u{1fc4}\u{1fc6}-\u{1fcc}\u{1fd0}-\u{1fd3}\u{1fd6}-\u{1fdb}\u{1fe0}-\u{1fec}\u{1ff2}-\u{1ff4}\u{1ff6}-\u{1ffc}\u{2102}\u{2107}\u{210a}-\u{2113}\u{2115}\u{2119}-\u{211d}\u{2124}\u{2126}\u{2128}\u{212a}-\u{212d}\u{212f}-\u{2134}\u{2139}\u{213c}-\u{213f}\u{2145}-\u{2149}\u{214e}\u{2183}\u{2184}\u{2c00}-\u{2c7b}\u{2c7e}-\u{2ce4}\u{2ceb}-\u{2cee}\u{2cf2}\u{2cf3}\u{a640}-\u{a66d}\u{a680}-\u{a69b}\u{a722}-\u{a76f}\u{a771}-\u{a787}\u{a78b}-\u{a78e}\u{ab70}-\u{abbf}\u{fb00}-\u{fb06}\u{fb13}-\u{fb17}\u{ff21}-\u{ff3a}\u{ff41}-\u{ff5a}\u{10400}-\u{1044f}\u{104b0}-\u{104d3}\u{104d8}-\u{104fb}\u{10c80}-\u{10cb2}\u{10cc0}-\u{10cf2}\u{118a0}-\u{118df}\u{1e900}-\u{1e943}]+",
    "\\s?[!-/:-~\u{ff01}-\u{ff0f}\u{ff1a}-\u{ff5e}\u{2018}-\u{201f}\u{3000}-\u{3002}]+",
    "\\s+$",
    "[\u{4e00}-\u{9fa5}\u{800}-\u{4e00}\u{ac00}-\u{d7ff}]+",
];

/// Qwen2's pre-tokenizer regex (its `tokenizer.json`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Llama-3's pre-tokenizer regex (its `tokenizer.json`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn split(regex: &str) -> Value {
    json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false})
}

fn byte_level_no_regex() -> Value {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false})
}

/// The pre-tokenizer (as `tokenizer.json` writes it) and BPE `ignore_merges` for a
/// `tokenizer.ggml.pre` name.
pub(crate) fn pre_tokenizer(pre: &str) -> Option<(Value, bool)> {
    let seq = |mut parts: Vec<Value>| {
        parts.push(byte_level_no_regex());
        json!({"type": "Sequence", "pretokenizers": parts})
    };
    Some(match pre {
        "deepseek-v3" => (
            seq(DEEPSEEK_V3_SPLITS.iter().copied().map(split).collect()),
            false,
        ),
        "deepseek-llm" => {
            let mut parts: Vec<Value> = DEEPSEEK_LLM_SPLITS.iter().copied().map(split).collect();
            parts.push(json!({"type": "Digits", "individual_digits": true}));
            (seq(parts), false)
        }
        "qwen2" | "deepseek-r1-qwen" => (seq(vec![split(QWEN2_SPLIT)]), false),
        "llama-bpe" | "llama3" | "llama-v3" => (seq(vec![split(LLAMA3_SPLIT)]), true),
        "gpt-2" => (
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}),
            false,
        ),
        _ => return None,
    })
}

impl Tokenizer {
    /// Loads the tokenizer and chat template stored in a GGUF file's metadata (any part of a
    /// split set; only the first part's metadata is read).
    ///
    /// # Errors
    ///
    /// A missing or invalid GGUF file, a tokenizer model other than `gpt2` (byte-level BPE), an
    /// unknown `tokenizer.ggml.pre`, metadata of the wrong type or inconsistent (token types or
    /// BOS/EOS ids that do not fit the token list, merges of unknown tokens). Every error names
    /// the file and the metadata key.
    pub fn from_gguf(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(TokenizerError::MissingFile {
                path: path.to_path_buf(),
                hint: "give the path of a .gguf model file",
            });
        }
        let file = GgufFile::open(path).map_err(|e| TokenizerError::InvalidConfig {
            path: path.to_path_buf(),
            field: "(GGUF file)".into(),
            message: e.to_string(),
        })?;
        Self::from_gguf_file(&file)
    }

    /// [`from_gguf`](Self::from_gguf) for a GGUF file already open (e.g. the model's own).
    pub fn from_gguf_file(file: &GgufFile) -> Result<Self> {
        let path = file.path().to_path_buf();
        let meta = Meta {
            file,
            path: path.clone(),
        };
        let model = meta.string("tokenizer.ggml.model")?.unwrap_or_default();
        if model != "gpt2" {
            return Err(meta.invalid(
                "tokenizer.ggml.model",
                format!(
                    "is {model:?}; jing reads byte-level BPE (\"gpt2\") vocabularies from GGUF, \
                     which every DeepSeek, Qwen2 and Llama-3 file has"
                ),
            ));
        }
        let pre = meta.string("tokenizer.ggml.pre")?.unwrap_or("default");
        let Some((pre_tokenizer, ignore_merges)) = pre_tokenizer(pre) else {
            let known: Vec<String> = GGUF_PRE_TOKENIZERS
                .iter()
                .map(|(n, f)| format!("{n} ({f})"))
                .collect();
            return Err(meta.invalid(
                "tokenizer.ggml.pre",
                format!(
                    "is {pre:?}, a pre-tokenizer jing does not know; known: {}",
                    known.join(", ")
                ),
            ));
        };

        let tokens = meta
            .strings("tokenizer.ggml.tokens")?
            .ok_or_else(|| meta.invalid("tokenizer.ggml.tokens", "is missing (the vocabulary)"))?;
        let types = match meta.ints("tokenizer.ggml.token_type")? {
            Some(t) if t.len() == tokens.len() => t,
            Some(t) => {
                return Err(meta.invalid(
                    "tokenizer.ggml.token_type",
                    format!("has {} entries for {} tokens", t.len(), tokens.len()),
                ))
            }
            None => vec![TOKEN_NORMAL; tokens.len()],
        };
        let merges = meta.strings("tokenizer.ggml.merges")?.unwrap_or(&[]);

        // The BPE vocabulary (first id wins for a repeated text) and the added tokens.
        let mut vocab = Map::new();
        let mut added = Vec::new();
        for (id, (text, &ty)) in tokens.iter().zip(&types).enumerate() {
            if ty == TOKEN_UNUSED {
                continue;
            }
            if !vocab.contains_key(text) {
                vocab.insert(text.clone(), json!(id));
            }
            if ty == TOKEN_CONTROL || ty == TOKEN_USER_DEFINED {
                added.push(json!({
                    "id": id, "content": text, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": ty == TOKEN_CONTROL,
                }));
            }
        }
        let mut merge_pairs = Vec::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            let Some((a, b)) = m.split_once(' ') else {
                return Err(meta.invalid(
                    "tokenizer.ggml.merges",
                    format!("item {i} ({m:?}) is not two tokens separated by a space"),
                ));
            };
            merge_pairs.push(json!([a, b]));
        }

        let token_at = |key: &'static str, id: u64| -> Result<String> {
            usize::try_from(id)
                .ok()
                .and_then(|i| tokens.get(i))
                .cloned()
                .ok_or_else(|| TokenizerError::UnknownSpecialToken {
                    path: path.clone(),
                    field: key,
                    token: format!("id {id}"),
                    vocab_size: tokens.len(),
                })
        };
        let bos_id = meta.uint("tokenizer.ggml.bos_token_id")?;
        let eos_id = meta.uint("tokenizer.ggml.eos_token_id")?;
        let eot_id = meta.uint("tokenizer.ggml.eot_token_id")?;
        let bos_text = bos_id
            .map(|i| token_at("tokenizer.ggml.bos_token_id", i))
            .transpose()?;
        let eos_text = eos_id
            .map(|i| token_at("tokenizer.ggml.eos_token_id", i))
            .transpose()?;
        if let Some(i) = eot_id {
            token_at("tokenizer.ggml.eot_token_id", i)?;
        }
        let add_bos = meta
            .boolean("tokenizer.ggml.add_bos_token")?
            .unwrap_or(false);
        let add_eos = meta
            .boolean("tokenizer.ggml.add_eos_token")?
            .unwrap_or(false);

        let post_processor = post_processor(
            add_bos.then(|| bos_text.clone().zip(bos_id)).flatten(),
            add_eos.then(|| eos_text.clone().zip(eos_id)).flatten(),
        );
        let definition = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null,
                "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignore_merges,
                "vocab": vocab, "merges": merge_pairs,
            },
        });
        let bytes = serde_json::to_vec(&definition).expect("a JSON value serializes");
        let hf = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
            meta.invalid(
                "tokenizer.ggml.tokens",
                format!("does not make a valid BPE tokenizer with its merges: {e}"),
            )
        })?;

        let tok_cfg = TokenizerConfig {
            bos_token: bos_text,
            eos_token: eos_text,
            add_bos_token: Some(add_bos),
            chat_template: meta.chat_template()?,
        };
        let mut eos_ids = Vec::new();
        for id in [eos_id, eot_id].into_iter().flatten() {
            let id = u32::try_from(id).expect("checked against the token list");
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        let gen_cfg = GenerationConfig {
            bos_token_id: bos_id.map(|i| u32::try_from(i).expect("checked against the token list")),
            eos_token_ids: eos_ids,
        };
        Self::build(hf, Some((path.clone(), tok_cfg)), Some((path, gen_cfg)))
    }
}

/// BOS (and EOS) around every sequence when the file asks for them; otherwise a no-op.
fn post_processor(bos: Option<(String, u64)>, eos: Option<(String, u64)>) -> Value {
    if bos.is_none() && eos.is_none() {
        return json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true});
    }
    let special =
        |text: &str, type_id: u32| json!({"SpecialToken": {"id": text, "type_id": type_id}});
    let seq = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut specials = Map::new();
    if let Some((t, id)) = &bos {
        single.push(special(t, 0));
        specials.insert(t.clone(), json!({"id": t, "ids": [id], "tokens": [t]}));
    }
    single.push(seq("A", 0));
    if let Some((t, id)) = &eos {
        single.push(special(t, 0));
        specials.insert(t.clone(), json!({"id": t, "ids": [id], "tokens": [t]}));
    }
    for (s, type_id) in [("A", 0), ("B", 1)] {
        if let Some((t, _)) = &bos {
            pair.push(special(t, type_id));
        }
        pair.push(seq(s, type_id));
        if let Some((t, _)) = &eos {
            pair.push(special(t, type_id));
        }
    }
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials})
}

/// Typed metadata reads whose errors name the file and key.
struct Meta<'a> {
    file: &'a GgufFile,
    path: PathBuf,
}

impl Meta<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> TokenizerError {
        TokenizerError::InvalidConfig {
            path: self.path.clone(),
            field: key.to_string(),
            message: message.into(),
        }
    }

    fn wrap<T>(
        &self,
        key: &str,
        r: std::result::Result<T, jing_formats::FormatError>,
    ) -> Result<T> {
        r.map_err(|e| match e {
            jing_formats::FormatError::GgufKey { problem, .. } => self.invalid(key, problem),
            other => self.invalid(key, other.to_string()),
        })
    }

    fn string(&self, key: &str) -> Result<Option<&str>> {
        self.wrap(key, self.file.opt_str(key))
    }

    fn strings(&self, key: &str) -> Result<Option<&[String]>> {
        self.wrap(key, self.file.opt_strings(key))
    }

    fn ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        self.wrap(key, self.file.opt_i64s(key))
    }

    fn uint(&self, key: &str) -> Result<Option<u64>> {
        self.wrap(key, self.file.opt_u64(key))
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>> {
        self.wrap(key, self.file.opt_bool(key))
    }

    /// `tokenizer.chat_template`, plus the named templates listed by `tokenizer.chat_templates`
    /// as `tokenizer_config.json`'s list form.
    fn chat_template(&self) -> Result<Option<Value>> {
        let default = self.string("tokenizer.chat_template")?;
        let names = self.strings("tokenizer.chat_templates")?.unwrap_or(&[]);
        if names.is_empty() {
            return Ok(default.map(|t| Value::String(t.to_string())));
        }
        let mut list = Vec::new();
        let mut seen = HashSet::new();
        if let Some(t) = default {
            list.push(json!({"name": "default", "template": t}));
            seen.insert("default");
        }
        for name in names {
            if !seen.insert(name.as_str()) {
                continue;
            }
            let key = format!("tokenizer.chat_template.{name}");
            let Some(t) = self.string(&key)? else {
                return Err(self.invalid(&key, "is missing, but tokenizer.chat_templates names it"));
            };
            list.push(json!({"name": name, "template": t}));
        }
        Ok(Some(Value::Array(list)))
    }
}
