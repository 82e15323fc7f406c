//! Parsing of the two optional side files of a Hugging Face model directory:
//! `tokenizer_config.json` and `generation_config.json`.
//!
//! Only the fields this crate needs are read; everything else is ignored. The
//! files are parsed into [`serde_json::Value`] first and the fields picked out
//! by hand, so that an error can name the exact field that has the wrong shape.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Result, TokenizerError};

/// The fields of `tokenizer_config.json` that this crate uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TokenizerConfig {
    /// `bos_token`, as text (from either the string or the `{"content": ...}` form).
    pub bos_token: Option<String>,
    /// `eos_token`, as text.
    pub eos_token: Option<String>,
    /// `add_bos_token`, if present.
    pub add_bos_token: Option<bool>,
    /// `chat_template`, kept raw: usually a string, sometimes a list of
    /// `{"name": ..., "template": ...}` objects.
    pub chat_template: Option<Value>,
}

/// The fields of `generation_config.json` that this crate uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GenerationConfig {
    /// `bos_token_id`, if present and not null.
    pub bos_token_id: Option<u32>,
    /// `eos_token_id`, which the file may give as one id or a list of ids.
    pub eos_token_ids: Vec<u32>,
}

/// Reads a file, telling a missing file apart from an unreadable one.
///
/// Returns `Ok(None)` when the file does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses `bytes` as a JSON object, or says what is wrong with `path`.
fn parse_object(path: &Path, bytes: &[u8]) -> Result<Map<String, Value>> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|source| TokenizerError::InvalidJson {
            path: path.to_path_buf(),
            source,
        })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(invalid(
            path,
            "<root>",
            format!("expected a JSON object, found {}", kind(&other)),
        )),
    }
}

/// Parses the contents of a `tokenizer_config.json`.
pub(crate) fn parse_tokenizer_config(path: &Path, bytes: &[u8]) -> Result<TokenizerConfig> {
    let map = parse_object(path, bytes)?;
    let add_bos_token = match map.get("add_bos_token") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(invalid(
                path,
                "add_bos_token",
                format!("expected true or false, found {}", kind(other)),
            ))
        }
    };
    let chat_template = match map.get("chat_template") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
    };
    Ok(TokenizerConfig {
        bos_token: token_text(path, "bos_token", map.get("bos_token"))?,
        eos_token: token_text(path, "eos_token", map.get("eos_token"))?,
        add_bos_token,
        chat_template,
    })
}

/// Parses the contents of a `generation_config.json`.
pub(crate) fn parse_generation_config(path: &Path, bytes: &[u8]) -> Result<GenerationConfig> {
    let map = parse_object(path, bytes)?;
    let bos_token_id = match map.get("bos_token_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(token_id(path, "bos_token_id", v)?),
    };
    let eos_token_ids = match map.get("eos_token_id") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| token_id(path, "eos_token_id", v))
            .collect::<Result<Vec<u32>>>()?,
        Some(v) => vec![token_id(path, "eos_token_id", v)?],
    };
    Ok(GenerationConfig {
        bos_token_id,
        eos_token_ids,
    })
}

/// A special token given either as `"text"` or as `{"content": "text", ...}`
/// (the serialized `AddedToken` form). `null` and absence both mean "none".
fn token_text(path: &Path, field: &str, value: Option<&Value>) -> Result<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Object(obj)) => match obj.get("content") {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(
                path,
                &format!("{field}.content"),
                format!("expected a string, found {}", kind(other)),
            )),
            None => Err(invalid(
                path,
                field,
                "expected a string or an object with a \"content\" string, found an object \
                 without \"content\"",
            )),
        },
        Some(other) => Err(invalid(
            path,
            field,
            format!(
                "expected a string or an object with a \"content\" string, found {}",
                kind(other)
            ),
        )),
    }
}

/// A token id: a JSON integer that fits in `u32`.
fn token_id(path: &Path, field: &str, value: &Value) -> Result<u32> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            invalid(
                path,
                field,
                format!(
                    "expected a token id (a non-negative integer below 2^32) or a list of them, \
                     found {}",
                    describe(value)
                ),
            )
        })
}

fn invalid(path: &Path, field: &str, message: impl Into<String>) -> TokenizerError {
    TokenizerError::InvalidConfig {
        path: PathBuf::from(path),
        field: field.to_string(),
        message: message.into(),
    }
}

/// The JSON kind of a value, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A short description of a value for error messages: numbers and short
/// strings are shown, everything else by kind.
fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        other => kind(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("dir/tokenizer_config.json")
    }

    #[test]
    fn special_tokens_as_strings_objects_and_null() {
        let cfg = parse_tokenizer_config(
            p(),
            br#"{"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
                "eos_token": "</s>", "add_bos_token": true, "chat_template": "{{ x }}"}"#,
        )
        .unwrap();
        assert_eq!(cfg.bos_token.as_deref(), Some("<s>"));
        assert_eq!(cfg.eos_token.as_deref(), Some("</s>"));
        assert_eq!(cfg.add_bos_token, Some(true));
        assert_eq!(cfg.chat_template, Some(Value::String("{{ x }}".into())));

        let cfg =
            parse_tokenizer_config(p(), br#"{"bos_token": null, "unk_token": null}"#).unwrap();
        assert_eq!(cfg, TokenizerConfig::default());
    }

    #[test]
    fn chat_template_list_is_kept_raw() {
        let cfg = parse_tokenizer_config(
            p(),
            br#"{"chat_template": [{"name": "default", "template": "a"}]}"#,
        )
        .unwrap();
        assert!(cfg.chat_template.unwrap().is_array());
    }

    #[test]
    fn bad_shapes_name_the_file_and_field() {
        let err = parse_tokenizer_config(p(), br#"{"bos_token": 5}"#).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("tokenizer_config.json"), "{msg}");
        assert!(msg.contains("`bos_token`"), "{msg}");
        assert!(msg.contains("a number"), "{msg}");

        let err = parse_tokenizer_config(p(), br#"{"eos_token": {"content": 1}}"#).unwrap_err();
        assert!(err.to_string().contains("`eos_token.content`"), "{err}");

        let err = parse_tokenizer_config(p(), br#"{"add_bos_token": "yes"}"#).unwrap_err();
        assert!(err.to_string().contains("`add_bos_token`"), "{err}");

        let err = parse_tokenizer_config(p(), b"[1, 2]").unwrap_err();
        assert!(err.to_string().contains("expected a JSON object"), "{err}");

        let err = parse_tokenizer_config(p(), b"{\"bos_token\": ").unwrap_err();
        assert!(matches!(err, TokenizerError::InvalidJson { .. }), "{err}");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn eos_token_id_int_list_or_null() {
        let g = Path::new("generation_config.json");
        let cfg = parse_generation_config(g, br#"{"bos_token_id": 0, "eos_token_id": 1}"#).unwrap();
        assert_eq!(cfg.bos_token_id, Some(0));
        assert_eq!(cfg.eos_token_ids, vec![1]);

        let cfg = parse_generation_config(g, br#"{"eos_token_id": [1, 7, 9]}"#).unwrap();
        assert_eq!(cfg.bos_token_id, None);
        assert_eq!(cfg.eos_token_ids, vec![1, 7, 9]);

        let cfg =
            parse_generation_config(g, br#"{"eos_token_id": null, "do_sample": true}"#).unwrap();
        assert_eq!(cfg, GenerationConfig::default());

        for bad in [
            &br#"{"eos_token_id": -1}"#[..],
            br#"{"eos_token_id": 1.5}"#,
            br#"{"eos_token_id": [1, "2"]}"#,
            br#"{"bos_token_id": 4294967296}"#,
        ] {
            let err = parse_generation_config(g, bad).unwrap_err();
            assert!(matches!(err, TokenizerError::InvalidConfig { .. }), "{err}");
            assert!(err.to_string().contains("generation_config.json"), "{err}");
        }
    }

    #[test]
    fn missing_optional_file_is_none() {
        let got = read_optional(Path::new("/definitely/not/here/tokenizer_config.json")).unwrap();
        assert!(got.is_none());
    }
}
