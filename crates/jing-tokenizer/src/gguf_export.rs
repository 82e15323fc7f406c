//! [`Tokenizer::gguf_metadata`]: a model folder's tokenizer as the `tokenizer.*` GGUF metadata
//! llama.cpp's converter writes for byte-level BPE models (the inverse of
//! [`Tokenizer::from_gguf`]), for `jing quantize` of an HF folder.
//!
//! - `tokenizer.ggml.model` `gpt2`, and `tokenizer.ggml.pre`: the name llama.cpp knows the
//!   pre-tokenizer by, found by comparing `tokenizer.json`'s pre-tokenizer with the ones jing
//!   rebuilds from each name (llama.cpp hashes a tokenization instead; the names agree);
//! - `tokens` and `token_type` for every id below the model's `vocab_size`: added tokens that
//!   are special (or look like `<|...|>`) are control tokens, other added tokens user-defined
//!   (`▁` spelled as a space), ids the tokenizer lacks `[PADn]` unused padding;
//! - `merges` as `"a b"`; BOS/EOS/padding ids, `add_bos_token` / `add_eos_token` where
//!   `tokenizer_config.json` sets them; the chat template (`tokenizer_config.json`, else
//!   `chat_template.jinja`), named templates as `tokenizer.chat_template.NAME`.

use std::path::Path;

use jing_formats::gguf::{GgufArray, GgufValue};
use serde_json::Value;

use crate::config::read_optional;
use crate::error::{Result, TokenizerError};
use crate::gguf::{pre_tokenizer, GGUF_PRE_TOKENIZERS};
use crate::tokenizer::{Tokenizer, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE};

/// llama.cpp token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// What a pre-tokenizer does, field by field that matters (Split regexes, digit splitting,
/// byte-level with or without its own regex), ignoring fields that do not change the splits.
fn pre_signature(v: &Value, out: &mut Vec<String>) {
    match v.get("type").and_then(Value::as_str).unwrap_or("") {
        "Sequence" => {
            for p in v
                .get("pretokenizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                pre_signature(p, out);
            }
        }
        "Split" => {
            let pattern = v.get("pattern");
            let regex = pattern
                .and_then(|p| p.get("Regex").or_else(|| p.get("String")))
                .and_then(Value::as_str)
                .unwrap_or("");
            out.push(format!("split {regex}"));
        }
        "Digits" => out.push(format!(
            "digits {}",
            v.get("individual_digits")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        )),
        "ByteLevel" => out.push(format!(
            "bytelevel {}",
            v.get("use_regex").and_then(Value::as_bool).unwrap_or(true)
        )),
        other => out.push(other.to_string()),
    }
}

/// The `tokenizer.ggml.pre` name of a `tokenizer.json` pre-tokenizer, if jing knows it.
fn pre_name(pre: &Value) -> Option<&'static str> {
    let mut want = Vec::new();
    pre_signature(pre, &mut want);
    GGUF_PRE_TOKENIZERS.iter().map(|(n, _)| *n).find(|name| {
        pre_tokenizer(name).is_some_and(|(v, _)| {
            let mut have = Vec::new();
            pre_signature(&v, &mut have);
            have == want
        })
    })
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| TokenizerError::InvalidJson {
            path: path.to_path_buf(),
            source,
        })
}

/// A special token's text from `tokenizer_config.json` (a string or `{"content": ...}`).
fn token_text(v: Option<&Value>) -> Option<&str> {
    match v? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("content")?.as_str(),
        _ => None,
    }
}

impl Tokenizer {
    /// The `tokenizer.*` GGUF metadata for the model folder `dir` whose embedding has
    /// `vocab_size` rows, as llama.cpp's converter writes it (see the module docs).
    ///
    /// # Errors
    ///
    /// The folder's tokenizer cannot be loaded, is not byte-level BPE, has a pre-tokenizer
    /// llama.cpp has no name for, or has ids beyond `vocab_size`.
    pub fn gguf_metadata(dir: &Path, vocab_size: usize) -> Result<Vec<(String, GgufValue)>> {
        let tok = Tokenizer::from_model_dir(dir)?;
        let path = dir.join(TOKENIZER_FILE);
        let json = read_json(&path)?.unwrap_or(Value::Null);
        let bad = |message: String| TokenizerError::InvalidTokenizer {
            path: path.clone(),
            message,
        };
        let model = &json["model"];
        if model["type"].as_str() != Some("BPE") {
            return Err(bad(format!(
                "the model is {}, not byte-level BPE; jing writes GGUF tokenizers for BPE models only",
                model["type"]
            )));
        }
        let pre = pre_name(&json["pre_tokenizer"]).ok_or_else(|| {
            let known: Vec<&str> = GGUF_PRE_TOKENIZERS.iter().map(|(n, _)| *n).collect();
            bad(format!(
                "its pre-tokenizer is none llama.cpp knows by name (jing matches {})",
                known.join(", ")
            ))
        })?;
        if tok.vocab_size() > vocab_size {
            return Err(bad(format!(
                "it has {} tokens but the model's vocab_size is {vocab_size}",
                tok.vocab_size()
            )));
        }

        let added = tok.added_tokens();
        let mut tokens = Vec::with_capacity(vocab_size);
        let mut types = Vec::with_capacity(vocab_size);
        for id in 0..vocab_size as u32 {
            let Some(text) = tok.id_to_token(id) else {
                tokens.push(format!("[PAD{id}]"));
                types.push(UNUSED);
                continue;
            };
            match added.iter().find(|(i, _, _)| *i == id) {
                Some((_, content, special)) => {
                    let looks_control = (content.starts_with("<|") && content.ends_with("|>"))
                        || (content.starts_with("<\u{ff5c}") && content.ends_with("\u{ff5c}>"));
                    if *special || looks_control {
                        tokens.push(text);
                        types.push(CONTROL);
                    } else {
                        tokens.push(text.replace('\u{2581}', " "));
                        types.push(USER_DEFINED);
                    }
                }
                None => {
                    tokens.push(text);
                    types.push(NORMAL);
                }
            }
        }
        let merges: Vec<String> = model["merges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| match m {
                Value::String(s) => Some(s.clone()),
                Value::Array(pair) => match pair.as_slice() {
                    [Value::String(a), Value::String(b)] => Some(format!("{a} {b}")),
                    _ => None,
                },
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| bad("`model.merges` must be strings \"a b\" or pairs".into()))?;

        let mut kv: Vec<(String, GgufValue)> = vec![
            (
                "tokenizer.ggml.model".into(),
                GgufValue::String("gpt2".into()),
            ),
            ("tokenizer.ggml.pre".into(), GgufValue::String(pre.into())),
            (
                "tokenizer.ggml.tokens".into(),
                GgufValue::Array(GgufArray::String(tokens)),
            ),
            (
                "tokenizer.ggml.token_type".into(),
                GgufValue::Array(GgufArray::I32(types)),
            ),
            (
                "tokenizer.ggml.merges".into(),
                GgufValue::Array(GgufArray::String(merges)),
            ),
        ];
        if let Some(b) = tok.bos_id() {
            kv.push(("tokenizer.ggml.bos_token_id".into(), GgufValue::U32(b)));
        }
        if let Some(&e) = tok.eos_ids().first() {
            kv.push(("tokenizer.ggml.eos_token_id".into(), GgufValue::U32(e)));
        }
        let cfg = read_json(&dir.join(TOKENIZER_CONFIG_FILE))?.unwrap_or(Value::Null);
        if let Some(pad) = token_text(cfg.get("pad_token")).and_then(|t| tok.token_to_id(t)) {
            kv.push((
                "tokenizer.ggml.padding_token_id".into(),
                GgufValue::U32(pad),
            ));
        }
        for key in ["add_bos_token", "add_eos_token"] {
            if let Some(b) = cfg.get(key).and_then(Value::as_bool) {
                kv.push((format!("tokenizer.ggml.{key}"), GgufValue::Bool(b)));
            }
        }
        let jinja = dir.join("chat_template.jinja");
        match tok.chat_template() {
            Some(Value::String(t)) => {
                kv.push((
                    "tokenizer.chat_template".into(),
                    GgufValue::String(t.clone()),
                ));
            }
            Some(Value::Array(named)) => {
                let mut names = Vec::new();
                for entry in named {
                    let (Some(name), Some(t)) = (
                        entry.get("name").and_then(Value::as_str),
                        entry.get("template").and_then(Value::as_str),
                    ) else {
                        continue;
                    };
                    let key = if name == "default" {
                        "tokenizer.chat_template".to_string()
                    } else {
                        names.push(name.to_string());
                        format!("tokenizer.chat_template.{name}")
                    };
                    kv.push((key, GgufValue::String(t.into())));
                }
                if !names.is_empty() {
                    kv.push((
                        "tokenizer.chat_templates".into(),
                        GgufValue::Array(GgufArray::String(names)),
                    ));
                }
            }
            _ => {
                if let Some(bytes) = read_optional(&jinja)? {
                    let t = String::from_utf8_lossy(&bytes).into_owned();
                    kv.push(("tokenizer.chat_template".into(), GgufValue::String(t)));
                }
            }
        }
        Ok(kv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_pre_tokenizer_is_recognised_by_its_own_json() {
        for (name, _) in GGUF_PRE_TOKENIZERS {
            let (json, _) = pre_tokenizer(name).expect("known");
            let found = pre_name(&json).expect("recognised");
            // Aliases share a pre-tokenizer; the first name wins.
            let (first, _) = pre_tokenizer(found).unwrap();
            assert_eq!(first, json, "{name} -> {found}");
        }
        assert_eq!(pre_name(&serde_json::json!({"type": "Whitespace"})), None);
    }
}
