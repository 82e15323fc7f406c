//! Where chat template sources come from: `tokenizer_config.json`'s
//! `chat_template` value, a template file, or a model directory's
//! `chat_template.jinja` and `additional_chat_templates/`; and the two
//! source rewrites jinja2 compatibility needs.

use std::path::Path;

use serde_json::Value as Json;

use super::error::TemplateError;

/// A template's name and source text.
pub(crate) type NamedSource = (String, String);

/// The name of the template used when no other is chosen.
pub(crate) const DEFAULT: &str = "default";

/// File that transformers (>= 4.43) saves a model's default template to.
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";

/// Folder of further named templates, one `NAME.jinja` each.
pub const ADDITIONAL_TEMPLATES_DIR: &str = "additional_chat_templates";

/// The templates in a raw `chat_template` value: a string (the default
/// template), a list of `{"name": ..., "template": ...}` objects, or an
/// object mapping names to templates.
pub(crate) fn from_config_value(
    raw: &Json,
    origin: &str,
) -> Result<Vec<NamedSource>, TemplateError> {
    let invalid = |message: String| TemplateError::InvalidConfig {
        origin: origin.to_string(),
        message,
    };
    let mut out: Vec<NamedSource> = Vec::new();
    let mut add = |name: &str, source: String| {
        // A repeated name replaces the earlier template, as a Python dict does.
        out.retain(|(n, _)| n != name);
        out.push((name.to_string(), source));
    };
    match raw {
        Json::String(s) => add(DEFAULT, s.clone()),
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = item.get("name").and_then(Json::as_str);
                let template = item.get("template").and_then(Json::as_str);
                match (name, template) {
                    (Some(name), Some(template)) => add(name, template.to_string()),
                    _ => {
                        return Err(invalid(format!(
                            "chat_template[{i}] must be an object with string fields \"name\" and \
                             \"template\""
                        )))
                    }
                }
            }
        }
        Json::Object(map) => {
            for (name, template) in map {
                let Some(template) = template.as_str() else {
                    return Err(invalid(format!("chat_template[{name:?}] must be a string")));
                };
                add(name, template.to_string());
            }
        }
        _ => {
            return Err(invalid(
                "chat_template must be a string, a list of {\"name\", \"template\"} objects or \
                 an object of named templates"
                    .to_string(),
            ))
        }
    }
    if out.is_empty() {
        return Err(invalid("chat_template lists no templates".to_string()));
    }
    Ok(out)
}

/// Reads a template file given by the operator (`--chat-template FILE`).
///
/// A `.json` file is taken as JSON: an object with a `chat_template` field
/// (a `tokenizer_config.json` or a processor's `chat_template.json`), or a
/// bare `chat_template` value. Any other file is the Jinja source itself.
pub(crate) fn read_file(path: &Path, max_bytes: usize) -> Result<Vec<NamedSource>, TemplateError> {
    let text = read_text(path, max_bytes)?;
    let origin = path.display().to_string();
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if !is_json {
        return Ok(vec![(DEFAULT.to_string(), text)]);
    }
    let value: Json = serde_json::from_str(&text).map_err(|e| TemplateError::InvalidConfig {
        origin: origin.clone(),
        message: format!("not valid JSON: {e}"),
    })?;
    match value.get("chat_template") {
        Some(inner) => from_config_value(inner, &origin),
        None => from_config_value(&value, &origin),
    }
}

/// The templates a model directory keeps in files, which take priority over
/// `tokenizer_config.json` in transformers: `chat_template.jinja` (the
/// default) and `additional_chat_templates/NAME.jinja`. `None` when there
/// are none.
pub(crate) fn read_model_dir(
    dir: &Path,
    max_bytes: usize,
) -> Result<Option<Vec<NamedSource>>, TemplateError> {
    let mut out = Vec::new();
    let main = dir.join(CHAT_TEMPLATE_FILE);
    if main.is_file() {
        out.push((DEFAULT.to_string(), read_text(&main, max_bytes)?));
    }
    let extra = dir.join(ADDITIONAL_TEMPLATES_DIR);
    if extra.is_dir() {
        let entries = std::fs::read_dir(&extra).map_err(|source| TemplateError::Io {
            path: extra.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| TemplateError::Io {
                path: extra.clone(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "jinja") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let name = name.to_string();
            let text = read_text(&path, max_bytes)?;
            out.retain(|(n, _)| *n != name);
            out.push((name, text));
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

fn read_text(path: &Path, max_bytes: usize) -> Result<String, TemplateError> {
    let io_err = |source| TemplateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io_err)?.len();
    if len > max_bytes as u64 {
        return Err(TemplateError::SourceTooLarge {
            name: path.display().to_string(),
            size: usize::try_from(len).unwrap_or(usize::MAX),
            limit: max_bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(io_err)?;
    String::from_utf8(bytes).map_err(|e| TemplateError::InvalidConfig {
        origin: path.display().to_string(),
        message: format!("not UTF-8 text ({e})"),
    })
}

/// What jinja2 does to a source before lexing that minijinja does not:
/// every `\r\n` and `\r` becomes `\n`. Also turns transformers'
/// `{% generation %}...{% endgeneration %}` (which only marks assistant
/// tokens for training masks) into an always-true `if` block, keeping the
/// tags' whitespace control.
pub(crate) fn normalize(source: &str) -> String {
    let source = if source.contains('\r') {
        source.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        source.to_string()
    };
    if !source.contains("generation") {
        return source;
    }
    let mut out = String::with_capacity(source.len());
    let mut rest = source.as_str();
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        match rewrite_generation_tag(tag) {
            Some((replacement, used)) => {
                out.push_str(&replacement);
                rest = &tag[used..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// If `tag` starts with `{%[-+]? (end)?generation [-+]?%}`, the replacement
/// and the length of the original tag.
fn rewrite_generation_tag(tag: &str) -> Option<(String, usize)> {
    let inner_and_rest = tag.strip_prefix("{%")?;
    let end = inner_and_rest.find("%}")? + 2;
    let inner = &tag[2..end];
    let (open, inner) = match inner.strip_prefix(['-', '+']) {
        Some(stripped) => (&inner[..1], stripped),
        None => ("", inner),
    };
    let (inner, close) = match inner.strip_suffix(['-', '+']) {
        Some(stripped) => (stripped, &inner[inner.len() - 1..]),
        None => (inner, ""),
    };
    let body = match inner.trim() {
        "generation" => "if true",
        "endgeneration" => "endif",
        _ => return None,
    };
    Some((format!("{{%{open} {body} {close}%}}"), end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_newlines_and_generation_tags() {
        assert_eq!(normalize("a\r\nb\rc"), "a\nb\nc");
        for odd in [
            "{%}generation",
            "generation{%",
            "{%-%}generation{%+",
            "{% generation",
            "x{%%}y generation",
        ] {
            assert_eq!(normalize(odd), odd);
        }
        assert_eq!(
            normalize("{%- generation %}x{% endgeneration -%}{% if generation %}"),
            "{%- if true %}x{% endif -%}{% if generation %}"
        );
    }

    #[test]
    fn config_value_shapes() {
        let list = serde_json::json!([
            {"name": "default", "template": "A"},
            {"name": "tool_use", "template": "B"}
        ]);
        let got = from_config_value(&list, "t").unwrap();
        assert_eq!(
            got,
            [
                ("default".into(), "A".into()),
                ("tool_use".into(), "B".into())
            ]
        );
        assert!(from_config_value(&serde_json::json!(3), "t").is_err());
        assert!(from_config_value(&serde_json::json!([]), "t").is_err());
        assert!(from_config_value(&serde_json::json!([{"name": 1}]), "t").is_err());
    }
}
