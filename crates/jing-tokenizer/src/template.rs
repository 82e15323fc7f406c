//! Chat templates: rendering `tokenizer_config.json` templates the way Python `apply_chat_template` does.
//!
//! A [`ChatTemplate`] holds a model's Jinja chat template(s) compiled with
//! [minijinja], set up to behave like the jinja2 environment of Hugging Face
//! transformers (5.x) so that real model templates render byte for byte as
//! `tokenizer.apply_chat_template(messages, tokenize=False, ...)` renders them
//! (checked against goldens from transformers 5.23 for DeepSeek-V2, V3, R1,
//! V3.1, the R1 distills, Qwen2.5 and Llama-3.3).
//!
//! What transformers does, and this module copies:
//!
//! * jinja2 with `trim_blocks` and `lstrip_blocks`, loop controls, lenient
//!   undefined values, no auto-escaping; `tojson` is Python's `json.dumps`
//!   (with `ensure_ascii=False`), `raise_exception(msg)` aborts with `msg`
//!   ([`TemplateError::Raised`]), `strftime_now(fmt)` formats the current
//!   time, `namespace` and `dict` exist, and Python string/dict methods work
//!   (`content.split('</think>')[-1]`, `message.get('x')`, `.items()`).
//! * Message keys whose value is `null` are **dropped** before rendering
//!   (transformers >= 5). Every DeepSeek template tests `message['content']
//!   is none` for tool-call turns, which is then false, so such turns fail to
//!   render exactly as they do in transformers 5; set
//!   [`RenderOptions::keep_null_fields`] for the behaviour of transformers 4
//!   and vLLM, under which they render.
//! * Reasoning given as `reasoning_content`, `thinking` or `reasoning` is
//!   visible to the template under both `thinking` and `reasoning_content`.
//! * The template sees `messages`, `tools` (`None` unless given),
//!   `documents`, `add_generation_prompt`, the special tokens
//!   ([`SpecialTokens`]: `bos_token`, `eos_token`, ...) and any extra
//!   variables ([`RenderOptions::variables`], e.g. DeepSeek-V3.1's
//!   `thinking`).
//!
//! **BOS is never doubled**: DeepSeek's templates (like most) write
//! `bos_token` themselves, so the rendered prompt must be tokenized with
//! `add_special_tokens = false`, which is what transformers does and what
//! [`ChatTemplate::render_ids`] does.
//!
//! Rendering is bounded ([`RenderLimits`]): fuel (instructions and data
//! created), a recursion limit and an output-size cap, so a hostile or
//! broken template returns an error instead of hanging or exhausting memory.
//! minijinja is patched (`vendor/minijinja/JING_PATCH.md`) so that its work
//! outside instructions (printing, comparing, hashing and iterating values,
//! lazy ones included) pays fuel too, and values nest only 256 levels deep.
//!
//! ```
//! use jing_tokenizer::template::{ChatTemplate, RenderOptions, SpecialTokens};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), jing_tokenizer::template::TemplateError> {
//! let source = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}\
//!               {% if add_generation_prompt %}<assistant>{% endif %}";
//! let template = ChatTemplate::new(source, SpecialTokens::new().with("bos_token", "<s>"))?;
//! let messages = [json!({"role": "user", "content": "Hi"})];
//! let prompt = template.render(&messages, &RenderOptions::default().with_generation_prompt(true))?;
//! assert_eq!(prompt, "<s><user>Hi<assistant>");
//! # Ok(())
//! # }
//! ```

mod clock;
mod engine;
mod error;
mod input;
mod pyfmt;
mod pyjson;
mod source;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use minijinja::{Environment, Value};
use serde_json::{Map, Value as Json};

pub use error::TemplateError;
pub use source::{ADDITIONAL_TEMPLATES_DIR, CHAT_TEMPLATE_FILE};

use crate::Tokenizer;

/// Bounds on the work one render may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderLimits {
    /// minijinja fuel per render: about one unit per instruction executed,
    /// per 64 bytes of data created or of long strings compared, searched or
    /// passed to a filter, and per two list items walked. The default,
    /// 2 000 000, is about thirty times what the DeepSeek templates use for
    /// an 800 KB, 400-message conversation (45 000 to 75 000) and bounds a
    /// render to well under a second of CPU and about 128 MiB of allocation.
    pub fuel: u64,
    /// Nesting limit for macros, includes and recursive loops (minijinja
    /// caps it at 500). Default 200.
    pub recursion_limit: usize,
    /// Largest rendered prompt, in bytes. Default 4 MiB.
    pub max_output_bytes: usize,
    /// Largest template source, in bytes. Default 2 MiB.
    pub max_source_bytes: usize,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            fuel: 2_000_000,
            recursion_limit: 200,
            max_output_bytes: 4 << 20,
            max_source_bytes: 2 << 20,
        }
    }
}

/// The named special tokens a template sees as variables (transformers'
/// `special_tokens_map`: `bos_token`, `eos_token`, `pad_token`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    tokens: BTreeMap<String, String>,
}

impl SpecialTokens {
    /// No special tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// `bos_token` and `eos_token` from the tokenizer's `tokenizer_config.json`
    /// (those it has).
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Self {
        let mut out = Self::new();
        if let Some(bos) = tokenizer.bos_token() {
            out = out.with("bos_token", bos);
        }
        if let Some(eos) = tokenizer.eos_token() {
            out = out.with("eos_token", eos);
        }
        out
    }

    /// Adds or replaces one token, e.g. `("pad_token", "<pad>")`.
    pub fn with(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.tokens.insert(name.into(), text.into());
        self
    }

    /// The text of the named token.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.tokens.get(name).map(String::as_str)
    }

    /// All tokens, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tokens.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// How to render one conversation.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RenderOptions {
    /// Append the opening of an assistant turn (`<｜Assistant｜>`, plus
    /// `<think>\n` for R1).
    pub add_generation_prompt: bool,
    /// Tool definitions (OpenAI `tools` objects), the template's `tools`;
    /// `None` renders `tools` as `None`. With tools, a template set that has
    /// a `tool_use` template uses it, as transformers does.
    pub tools: Option<Vec<Json>>,
    /// Documents for retrieval templates (the template's `documents`).
    pub documents: Option<Vec<Json>>,
    /// Extra template variables, e.g. `{"thinking": true}` for DeepSeek-V3.1.
    /// They override special tokens of the same name; `messages`, `tools`,
    /// `documents` and `add_generation_prompt` cannot be set here.
    pub variables: Map<String, Json>,
    /// Use this named template instead of the automatic choice.
    pub template_name: Option<String>,
    /// Keep message keys whose value is `null` (transformers < 5, vLLM)
    /// instead of dropping them (transformers >= 5, the default).
    pub keep_null_fields: bool,
    /// The time `strftime_now` reports, as Unix seconds (UTC); the current
    /// time when `None`.
    pub now: Option<i64>,
}

impl RenderOptions {
    /// Sets [`add_generation_prompt`](Self::add_generation_prompt).
    pub fn with_generation_prompt(mut self, yes: bool) -> Self {
        self.add_generation_prompt = yes;
        self
    }

    /// Sets [`tools`](Self::tools).
    pub fn with_tools(mut self, tools: Vec<Json>) -> Self {
        self.tools = Some(tools);
        self
    }

    /// Adds one extra template variable.
    pub fn with_variable(mut self, name: impl Into<String>, value: Json) -> Self {
        self.variables.insert(name.into(), value);
        self
    }

    /// Sets [`keep_null_fields`](Self::keep_null_fields).
    pub fn with_keep_null_fields(mut self, yes: bool) -> Self {
        self.keep_null_fields = yes;
        self
    }

    /// Sets [`template_name`](Self::template_name).
    pub fn with_template_name(mut self, name: impl Into<String>) -> Self {
        self.template_name = Some(name.into());
        self
    }
}

/// A model's chat template(s), compiled and ready to render. Cheap to clone;
/// `Send + Sync`.
#[derive(Clone)]
pub struct ChatTemplate {
    inner: Arc<Inner>,
}

struct Inner {
    templates: Vec<Compiled>,
    special_tokens: SpecialTokens,
    limits: RenderLimits,
}

struct Compiled {
    name: String,
    source: String,
    env: Environment<'static>,
}

impl ChatTemplate {
    /// One template from its Jinja source (named `default`).
    ///
    /// # Errors
    ///
    /// [`TemplateError::Syntax`] or [`TemplateError::SourceTooLarge`].
    pub fn new(source: &str, special_tokens: SpecialTokens) -> Result<Self, TemplateError> {
        Self::build(
            vec![(source::DEFAULT.to_string(), source.to_string())],
            special_tokens,
            RenderLimits::default(),
        )
    }

    /// The templates of a raw `chat_template` value from
    /// `tokenizer_config.json` ([`Tokenizer::chat_template`]): a string, or a
    /// list of `{"name", "template"}` objects.
    ///
    /// # Errors
    ///
    /// A value of another shape, or a template that does not compile.
    pub fn from_config_value(
        raw: &Json,
        special_tokens: SpecialTokens,
    ) -> Result<Self, TemplateError> {
        let sources = source::from_config_value(raw, "tokenizer_config.json chat_template")?;
        Self::build(sources, special_tokens, RenderLimits::default())
    }

    /// The template(s) in a file (`--chat-template FILE`): Jinja source, or,
    /// for a `.json` file, a `tokenizer_config.json`-like object with a
    /// `chat_template` field or a bare `chat_template` value.
    ///
    /// # Errors
    ///
    /// An unreadable, oversized or malformed file, or a template that does
    /// not compile.
    pub fn from_file(path: &Path, special_tokens: SpecialTokens) -> Result<Self, TemplateError> {
        let limits = RenderLimits::default();
        let sources = source::read_file(path, limits.max_source_bytes)?;
        Self::build(sources, special_tokens, limits)
    }

    /// The template in the tokenizer's `tokenizer_config.json`, with its BOS
    /// and EOS tokens.
    ///
    /// # Errors
    ///
    /// [`TemplateError::Missing`] when the tokenizer has no template;
    /// otherwise as [`from_config_value`](Self::from_config_value).
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Result<Self, TemplateError> {
        match tokenizer.chat_template() {
            Some(raw) => Self::from_config_value(raw, SpecialTokens::from_tokenizer(tokenizer)),
            None => Err(TemplateError::Missing { dir: None }),
        }
    }

    /// A model directory's template, looked up as transformers does:
    /// `chat_template.jinja` and `additional_chat_templates/*.jinja` first,
    /// then the tokenizer's `tokenizer_config.json` `chat_template`.
    ///
    /// # Errors
    ///
    /// [`TemplateError::Missing`] (naming the directory and `--chat-template
    /// FILE`) when there is none; otherwise as
    /// [`from_file`](Self::from_file).
    pub fn for_model(dir: &Path, tokenizer: &Tokenizer) -> Result<Self, TemplateError> {
        let limits = RenderLimits::default();
        let specials = SpecialTokens::from_tokenizer(tokenizer);
        if let Some(sources) = source::read_model_dir(dir, limits.max_source_bytes)? {
            return Self::build(sources, specials, limits);
        }
        match tokenizer.chat_template() {
            Some(raw) => Self::from_config_value(raw, specials),
            None => Err(TemplateError::Missing {
                dir: Some(dir.to_path_buf()),
            }),
        }
    }

    /// The same templates under other limits (recompiled).
    ///
    /// # Errors
    ///
    /// [`TemplateError::SourceTooLarge`] if a source exceeds the new
    /// `max_source_bytes`.
    pub fn with_limits(self, limits: RenderLimits) -> Result<Self, TemplateError> {
        let sources = self
            .inner
            .templates
            .iter()
            .map(|t| (t.name.clone(), t.source.clone()))
            .collect();
        Self::build(sources, self.inner.special_tokens.clone(), limits)
    }

    /// The same templates with other special tokens.
    ///
    /// # Errors
    ///
    /// None in practice (the sources compiled before).
    pub fn with_special_tokens(self, special_tokens: SpecialTokens) -> Result<Self, TemplateError> {
        let sources = self
            .inner
            .templates
            .iter()
            .map(|t| (t.name.clone(), t.source.clone()))
            .collect();
        Self::build(sources, special_tokens, self.inner.limits.clone())
    }

    fn build(
        sources: Vec<(String, String)>,
        special_tokens: SpecialTokens,
        limits: RenderLimits,
    ) -> Result<Self, TemplateError> {
        let mut templates = Vec::with_capacity(sources.len());
        for (name, text) in sources {
            if text.len() > limits.max_source_bytes {
                return Err(TemplateError::SourceTooLarge {
                    name,
                    size: text.len(),
                    limit: limits.max_source_bytes,
                });
            }
            let env = engine::compile(&name, source::normalize(&text), &limits)?;
            templates.push(Compiled {
                name,
                source: text,
                env,
            });
        }
        Ok(ChatTemplate {
            inner: Arc::new(Inner {
                templates,
                special_tokens,
                limits,
            }),
        })
    }

    /// The template names, in load order (`default` for a single template).
    pub fn names(&self) -> Vec<&str> {
        self.inner
            .templates
            .iter()
            .map(|t| t.name.as_str())
            .collect()
    }

    /// The source of a named template, as given.
    pub fn source(&self, name: &str) -> Option<&str> {
        self.find(name).map(|t| t.source.as_str())
    }

    /// The special tokens the templates see.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.inner.special_tokens
    }

    /// The render limits.
    pub fn limits(&self) -> &RenderLimits {
        &self.inner.limits
    }

    fn find(&self, name: &str) -> Option<&Compiled> {
        self.inner.templates.iter().find(|t| t.name == name)
    }

    fn available(&self) -> String {
        self.names().join(", ")
    }

    /// The template [`render`](Self::render) uses for `opts`: the named one
    /// if [`RenderOptions::template_name`] is set; else `tool_use` when tools
    /// are given and it exists; else `default`; a single template whatever
    /// its name.
    ///
    /// # Errors
    ///
    /// [`TemplateError::UnknownName`] or [`TemplateError::NoDefault`].
    pub fn select(&self, opts: &RenderOptions) -> Result<&str, TemplateError> {
        if let Some(name) = &opts.template_name {
            return self.find(name).map(|t| t.name.as_str()).ok_or_else(|| {
                TemplateError::UnknownName {
                    name: name.clone(),
                    available: self.available(),
                }
            });
        }
        if let [only] = self.inner.templates.as_slice() {
            return Ok(&only.name);
        }
        if opts.tools.is_some() {
            if let Some(t) = self.find("tool_use") {
                return Ok(&t.name);
            }
        }
        self.find(source::DEFAULT)
            .map(|t| t.name.as_str())
            .ok_or_else(|| TemplateError::NoDefault {
                available: self.available(),
            })
    }

    /// Renders a conversation into the prompt text.
    ///
    /// `messages` are OpenAI/DeepSeek chat messages as JSON objects (`role`,
    /// `content`, `tool_calls`, `tool_call_id`, `reasoning_content`,
    /// `prefix`, ...); they are handed to the template as they are, apart
    /// from the transformers adjustments described in the
    /// [module docs](self). Tokenize the result with
    /// `add_special_tokens = false` (see [`render_ids`](Self::render_ids)).
    ///
    /// # Errors
    ///
    /// [`TemplateError::InvalidInput`] for an empty conversation, a message
    /// that is not an object or a reserved variable name;
    /// [`TemplateError::Raised`] when the template rejects the conversation;
    /// [`TemplateError::OutOfFuel`], [`TemplateError::RecursionLimit`] or
    /// [`TemplateError::OutputTooLarge`] when a limit is hit;
    /// [`TemplateError::Render`] for any other failure.
    pub fn render(&self, messages: &[Json], opts: &RenderOptions) -> Result<String, TemplateError> {
        input::check_variables(opts)?;
        let name = self.select(opts)?;
        let compiled = self.find(name).ok_or_else(|| TemplateError::UnknownName {
            name: name.to_string(),
            available: self.available(),
        })?;

        let mut ctx: Vec<(String, Value)> = Vec::new();
        for (k, v) in self.inner.special_tokens.iter() {
            ctx.push((k.to_string(), Value::from(v)));
        }
        for (k, v) in &opts.variables {
            ctx.push((k.clone(), input::json_value(v)?));
        }
        ctx.push(("messages".to_string(), input::messages(messages, opts)?));
        ctx.push(("tools".to_string(), input::list(opts.tools.as_ref())?));
        ctx.push((
            "documents".to_string(),
            input::list(opts.documents.as_ref())?,
        ));
        ctx.push((
            "add_generation_prompt".to_string(),
            Value::from(opts.add_generation_prompt),
        ));
        let ctx = Value::from_pairs(ctx);

        let limits = &self.inner.limits;
        let template = compiled
            .env
            .get_template(engine::TEMPLATE_NAME)
            .map_err(|e| engine::map_error(&e, limits, false))?;
        let _now = clock::NowGuard::set(opts.now);
        let mut sink = engine::CappedSink::new(limits.max_output_bytes);
        // A bug in the engine that panics on some template must fail this
        // render, not the thread that renders (say, a server worker).
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            template.render_captured_to(ctx, &mut sink).map(drop)
        }))
        .map_err(|panic| TemplateError::Render {
            message: format!(
                "the template engine failed: {}",
                engine::panic_message(&*panic)
            ),
        })?;
        if let Err(err) = result {
            return Err(engine::map_error(&err, limits, sink.exceeded));
        }
        String::from_utf8(sink.buf).map_err(|e| TemplateError::Render {
            message: format!("the rendered prompt is not UTF-8: {e}"),
        })
    }

    /// Renders and tokenizes a conversation, as transformers'
    /// `apply_chat_template(..., tokenize=True)` does: the prompt is encoded
    /// with `add_special_tokens = false`, so the BOS the template writes is
    /// the only one.
    ///
    /// # Errors
    ///
    /// As [`render`](Self::render), or [`TemplateError::Tokenizer`].
    pub fn render_ids(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Json],
        opts: &RenderOptions,
    ) -> Result<Vec<u32>, TemplateError> {
        let text = self.render(messages, opts)?;
        Ok(tokenizer.encode(&text, false)?)
    }
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("names", &self.names())
            .field("special_tokens", &self.inner.special_tokens)
            .field("limits", &self.inner.limits)
            .finish()
    }
}
