//! [`Grammars`]: the per-model factory of constraints, and the grammars it writes.

use std::fmt;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use jing_engine::TokenConstraint;
use jing_tokenizer::tool_calls::{
    ToolCallFormat, CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, MAX_HEADER_BYTES, SEP,
};
use jing_tokenizer::Tokenizer;
use llguidance::api::{GrammarWithLexer, TopLevelGrammar};
use llguidance::toktrie::{TokEnv, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Map, Value};

use crate::constraint::GrammarConstraint;
use crate::vocab::Vocab;
use crate::{first_line, GrammarError};

/// Default for [`JsonWhitespace::Flexible`]: enough for a newline and the indentation of
/// pretty-printed JSON some levels deep, not enough for a model to spin on whitespace.
pub const DEFAULT_MAX_WHITESPACE: u16 = 32;

/// Most whitespace bytes allowed between the reasoning's end tag and the constrained answer
/// (R1 writes `"\n\n"` there).
const MAX_GAP_AFTER_REASONING: usize = 8;

/// Longest accepted [`GrammarOptions::reasoning_end`], in bytes.
const MAX_REASONING_END_BYTES: usize = 64;

/// Longest error message passed on from the grammar compiler, in bytes: its messages quote
/// the schema, which may be large.
const MAX_MESSAGE_BYTES: usize = 600;

/// The whitespace a JSON value may contain between its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonWhitespace {
    /// Any JSON whitespace (space, tab, `\n`, `\r`) between tokens, at most `max_per_gap`
    /// bytes in one place. The bound keeps a model from emitting whitespace until
    /// `max_tokens` (a known failure of unbounded JSON whitespace). `0` means none, as
    /// [`Compact`](Self::Compact).
    Flexible {
        /// Most whitespace bytes between two JSON tokens.
        max_per_gap: u16,
    },
    /// `{"a": 1, "b": [2, 3]}`: exactly `", "` and `": "` as separators and no other
    /// whitespace (Python's `json.dumps` default, which is how DeepSeek models write tool
    /// arguments).
    SingleLine,
    /// `{"a":1,"b":[2,3]}`: no whitespace at all.
    Compact,
}

impl Default for JsonWhitespace {
    fn default() -> Self {
        Self::Flexible {
            max_per_gap: DEFAULT_MAX_WHITESPACE,
        }
    }
}

/// Per-request settings shared by every kind of constraint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GrammarOptions {
    /// `Some(tag)`: the output first has free reasoning text ending with `tag` (`"</think>"`
    /// for R1-style models whose chat template already opened `<think>`), and only then the
    /// constrained part, optionally after a few whitespace characters. The reasoning may not
    /// contain `tag` itself or any special token. When `tag` is a single token the model must
    /// end the reasoning with that token (as the real models do), never spell it out.
    ///
    /// `None`: the constraint applies from the first generated token.
    pub reasoning_end: Option<String>,
    /// Whitespace inside JSON values (the answer of JSON modes, tool-call arguments).
    pub json_whitespace: JsonWhitespace,
}

impl GrammarOptions {
    /// The default options with free reasoning up to and including `tag` first.
    pub fn with_reasoning_end(mut self, tag: impl Into<String>) -> Self {
        self.reasoning_end = Some(tag.into());
        self
    }

    /// The options with `whitespace` inside JSON values.
    pub fn with_json_whitespace(mut self, whitespace: JsonWhitespace) -> Self {
        self.json_whitespace = whitespace;
        self
    }
}

/// Which tool calls a [`Grammars::tool_calls`] constraint forces (OpenAI's `tool_choice`;
/// `"auto"` and `"none"` need no constraint).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ToolChoice {
    /// `"required"`: one or more calls, each of any of the tools.
    Required,
    /// `{"type": "function", "function": {"name": ...}}`: exactly one call, of this tool.
    Named(String),
}

/// Makes constraints for one model: JSON mode, JSON schemas and forced DeepSeek tool calls.
///
/// Building one walks the whole vocabulary (about 0.8 s for DeepSeek-V3's 128k tokens), so a
/// server builds it once at startup; cloning is cheap (an [`Arc`]) and the type is
/// `Send + Sync`. Each constraint is compiled per request (1-2 ms for a small schema; bounded
/// by llguidance's default grammar-size and lexer-fuel limits, so a hostile schema fails
/// instead of hanging) and is used from one thread; a mask over DeepSeek-V3's vocabulary
/// takes about a quarter of a millisecond.
#[derive(Clone)]
pub struct Grammars {
    inner: Arc<Inner>,
}

struct Inner {
    factory: ParserFactory,
    /// The same object as the factory's `TokEnv`, with its concrete type.
    vocab: Arc<Vocab>,
    tokenizer: Tokenizer,
    /// The tokenizer's vocabulary size (the trie's), which the model's may exceed.
    vocab_size: usize,
    eos_ids: Vec<u32>,
}

/// A grammar jing wrote, with the JSON schemas it refers to by name.
struct Program {
    lark: String,
    /// `(name, schema with compile options, where the schema came from in the request)`.
    schemas: Vec<(String, Value, String)>,
}

impl Grammars {
    /// Builds the token trie of `tokenizer`; `eos_ids` are the ids that end generation
    /// (usually [`Tokenizer::eos_ids`]). A constraint allows them exactly where its output
    /// may end.
    ///
    /// # Errors
    ///
    /// [`GrammarError::InvalidEos`] for an empty or out-of-vocabulary `eos_ids`,
    /// [`GrammarError::UnsupportedTokenizer`] for a tokenizer that is not byte-level BPE.
    pub fn new(tokenizer: &Tokenizer, eos_ids: &[u32]) -> Result<Self, GrammarError> {
        let vocab = Arc::new(Vocab::new(tokenizer, eos_ids)?);
        let vocab_size = vocab.tok_trie().vocab_size();
        let tok_env: TokEnv = vocab.clone();
        let mut factory = llguidance::panic_utils::catch_unwind(AssertUnwindSafe(|| {
            ParserFactory::new_simple(&tok_env)
        }))
        .map_err(|e| GrammarError::UnsupportedTokenizer {
            reason: format!(
                "preparing the grammar engine failed: {}",
                first_line(&e.to_string())
            ),
        })?;
        // No logging to stderr; errors come back as values. Short errors: the full parser
        // state (tokens so far, the grammar) is not for API clients.
        factory.quiet();
        factory.limits_mut().verbose_errors = false;
        Ok(Self {
            inner: Arc::new(Inner {
                factory,
                vocab,
                tokenizer: tokenizer.clone(),
                vocab_size,
                eos_ids: eos_ids.to_vec(),
            }),
        })
    }

    /// Any JSON object: OpenAI's `response_format: {"type": "json_object"}`.
    ///
    /// # Errors
    ///
    /// [`GrammarError::InvalidOptions`] for bad `opts`.
    pub fn json_object(
        &self,
        opts: &GrammarOptions,
    ) -> Result<Box<dyn TokenConstraint>, GrammarError> {
        self.json_schema_at(
            &json!({"type": "object"}),
            opts,
            "response_format".to_owned(),
        )
    }

    /// A JSON value valid against `schema`: OpenAI's `response_format: {"type":
    /// "json_schema", "json_schema": {"schema": ...}}`.
    ///
    /// Supported: `type`, `properties`, `required`, `additionalProperties`,
    /// `patternProperties`, `items`, `prefixItems`, `enum`, `const`, `anyOf`, `allOf`,
    /// `oneOf` (treated as `anyOf`: branches that overlap are not made exclusive), `$ref` to
    /// `#/...` (`$defs`, `definitions`), string `minLength`/`maxLength`/`pattern`/`format`,
    /// number bounds and `multipleOf`, `minItems`/`maxItems`, `minProperties`/
    /// `maxProperties`, and the annotations (`title`, `description`, `default`, ...).
    /// Anything else that constrains values (`uniqueItems`, `not`, `if`/`then`/`else`,
    /// `contains`, `dependentRequired`, remote `$ref`s, unknown `format`s, ...) is an error
    /// naming the keyword. A top-level `x-guidance` key is ignored.
    ///
    /// # Errors
    ///
    /// [`GrammarError::Schema`] (a request error) for an invalid or unsupported schema,
    /// [`GrammarError::InvalidOptions`] for bad `opts`.
    pub fn json_schema(
        &self,
        schema: &Value,
        opts: &GrammarOptions,
    ) -> Result<Box<dyn TokenConstraint>, GrammarError> {
        self.json_schema_at(
            schema,
            opts,
            "response_format.json_schema.schema".to_owned(),
        )
    }

    fn json_schema_at(
        &self,
        schema: &Value,
        opts: &GrammarOptions,
        location: String,
    ) -> Result<Box<dyn TokenConstraint>, GrammarError> {
        let schema = with_compile_options(schema, opts.json_whitespace, &location)?;
        let mut lark = self.start_rule(opts)?;
        lark.push_str("answer: @answer_json\n");
        self.compile(Program {
            lark,
            schemas: vec![("answer_json".to_owned(), schema, location)],
        })
    }

    /// DeepSeek tool calls that jing-tokenizer's [`parse`](jing_tokenizer::tool_calls::parse)
    /// reads back in `format`: `<｜tool▁calls▁begin｜>`, then one or more calls
    /// ([`ToolChoice::Required`], any of `tools`) or exactly one call of the named tool
    /// ([`ToolChoice::Named`]), each with arguments valid against the tool's `parameters`
    /// schema, then `<｜tool▁calls▁end｜>`, where the constraint is finished. V3 calls are
    /// ``<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>``
    /// separated by `"\n"`, V3.1 calls `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>`
    /// back to back, as the models' chat templates write them.
    ///
    /// `tools` are OpenAI `tools` entries: `{"type": "function", "function": {"name",
    /// "parameters"?, ...}}`. A missing `parameters` means any JSON object; a schema without
    /// `type` is taken as an object schema. The grammar compiles every tool's schema, so a
    /// request with many large schemas costs accordingly.
    ///
    /// # Errors
    ///
    /// [`GrammarError::InvalidTools`] for a malformed or empty `tools`, a bad or duplicate
    /// name or a `Named` choice not among them; [`GrammarError::Schema`] for a `parameters`
    /// schema that is invalid, unsupported or not an object schema;
    /// [`GrammarError::MissingToken`] when the tokenizer lacks the tool-call tokens;
    /// [`GrammarError::InvalidOptions`] for bad `opts`.
    pub fn tool_calls(
        &self,
        tools: &[Value],
        choice: &ToolChoice,
        format: ToolCallFormat,
        opts: &GrammarOptions,
    ) -> Result<Box<dyn TokenConstraint>, GrammarError> {
        let tools = parse_tools(tools, opts.json_whitespace)?;
        let chosen: Vec<usize> = match choice {
            ToolChoice::Required => (0..tools.len()).collect(),
            ToolChoice::Named(name) => match tools.iter().position(|t| &t.name == name) {
                Some(index) => vec![index],
                None => {
                    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
                    return Err(GrammarError::InvalidTools(format!(
                        "tool_choice names the function {name:?}, which is not in tools \
                         ({names:?})"
                    )));
                }
            },
        };
        let marker = |text: &str| self.marker(text);
        let (calls_begin, calls_end) = (marker(CALLS_BEGIN)?, marker(CALLS_END)?);
        let (call_begin, call_end, sep) = (marker(CALL_BEGIN)?, marker(CALL_END)?, marker(SEP)?);

        let mut lark = self.start_rule(opts)?;
        let calls = match (choice, format) {
            (ToolChoice::Named(_), _) => "call",
            (ToolChoice::Required, ToolCallFormat::V3) => "call (\"\\n\" call)*",
            (ToolChoice::Required, ToolCallFormat::V31) => "call+",
        };
        // Infallible: `fmt::Write` for `String`.
        let _ = writeln!(lark, "answer: {calls_begin} {calls} {calls_end}");
        let _ = match format {
            ToolCallFormat::V3 => writeln!(lark, "call: {call_begin} \"function\" {sep} function"),
            ToolCallFormat::V31 => writeln!(lark, "call: {call_begin} function"),
        };
        let alternatives: Vec<String> = chosen.iter().map(|i| format!("function_{i}")).collect();
        let _ = writeln!(lark, "function: {}", alternatives.join(" | "));
        let mut schemas = Vec::with_capacity(chosen.len());
        for &i in &chosen {
            let tool = &tools[i];
            let _ = match format {
                ToolCallFormat::V3 => writeln!(
                    lark,
                    "function_{i}: {} @arguments_{i} \"\\n```\" {call_end}",
                    lark_string(&format!("{}\n```json\n", tool.name)),
                ),
                ToolCallFormat::V31 => writeln!(
                    lark,
                    "function_{i}: {} {sep} @arguments_{i} {call_end}",
                    lark_string(&tool.name),
                ),
            };
            schemas.push((
                format!("arguments_{i}"),
                tool.parameters.clone(),
                tool.location.clone(),
            ));
        }
        self.compile(Program { lark, schemas })
    }

    /// The bytes token `id` adds to the text (for a special token, its text), or `None` for
    /// an id without a token: what an OpenAI `logprobs` entry calls `bytes`. A token may hold
    /// part of a UTF-8 character.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.inner.vocab.text_bytes(id)
    }

    /// The tokenizer's vocabulary size. Ids from there up to the model's vocabulary size are
    /// always masked.
    pub fn vocab_size(&self) -> usize {
        self.inner.vocab_size
    }

    /// The ids that end generation, as given to [`new`](Self::new).
    pub fn eos_ids(&self) -> &[u32] {
        &self.inner.eos_ids
    }

    /// `<[id]>`: the grammar's reference to the single token `text`.
    fn marker(&self, text: &str) -> Result<String, GrammarError> {
        self.single_token(text)
            .map(|id| format!("<[{id}]>"))
            .ok_or_else(|| GrammarError::MissingToken {
                token: text.to_owned(),
                needed_for: "a DeepSeek tool call",
            })
    }

    /// The id of the one token whose text is `text`, if there is one.
    fn single_token(&self, text: &str) -> Option<u32> {
        let id = self.inner.tokenizer.token_to_id(text)?;
        (self.token_bytes(id)? == text.as_bytes()).then_some(id)
    }

    /// The `start` rule: optional reasoning, then the rule `answer` (written by the caller).
    fn start_rule(&self, opts: &GrammarOptions) -> Result<String, GrammarError> {
        let Some(end) = &opts.reasoning_end else {
            return Ok("start: answer\n".to_owned());
        };
        if end.is_empty() || end.len() > MAX_REASONING_END_BYTES {
            return Err(GrammarError::InvalidOptions(format!(
                "reasoning_end must be 1 to {MAX_REASONING_END_BYTES} bytes, got {}",
                end.len()
            )));
        }
        let gap = format!("GAP: /[\\x20\\x0A\\x0D\\x09]{{1,{MAX_GAP_AFTER_REASONING}}}/\n");
        let end_rx = regex_literal(end);
        Ok(match self.single_token(end) {
            // Free text that never contains the tag, then the tag's token. Special tokens
            // cannot occur in the text: their trie bytes are not UTF-8.
            Some(id) => format!(
                "start: REASONING <[{id}]> GAP? answer\n\
                 REASONING: /(?s:.*)/ & ~/(?s:.*){end_rx}(?s:.*)/\n{gap}"
            ),
            // No such token: the shortest text that ends with the tag.
            None => format!(
                "start: reasoning GAP? answer\n\
                 reasoning[lazy]: /(?s:.*){end_rx}/\n{gap}"
            ),
        })
    }

    /// Compiles `program` into a constraint. A failure is blamed on the request's schema that
    /// fails to compile on its own, or else on jing.
    fn compile(&self, program: Program) -> Result<Box<dyn TokenConstraint>, GrammarError> {
        let mut grammars = vec![GrammarWithLexer::from_lark(program.lark.clone())];
        for (name, schema, _) in &program.schemas {
            grammars.push(GrammarWithLexer {
                name: Some(name.clone()),
                json_schema: Some(schema.clone()),
                ..GrammarWithLexer::default()
            });
        }
        let grammar = TopLevelGrammar {
            grammars,
            max_tokens: None,
        };
        let matcher = match self.matcher(grammar) {
            Ok(matcher) => matcher,
            Err(message) => {
                for (_, schema, location) in &program.schemas {
                    let alone = TopLevelGrammar::from_json_schema(schema.clone());
                    if let Err(message) = self.matcher(alone) {
                        return Err(GrammarError::Schema {
                            location: location.clone(),
                            message: schema_message(&message),
                        });
                    }
                }
                return Err(GrammarError::Internal(format!(
                    "{}; grammar:\n{}",
                    clip(&message),
                    program.lark
                )));
            }
        };
        Ok(Box::new(GrammarConstraint::new(
            matcher,
            self.inner.vocab_size,
            self.inner.eos_ids.clone(),
        )))
    }

    fn matcher(&self, grammar: TopLevelGrammar) -> Result<Matcher, String> {
        let parser = llguidance::panic_utils::catch_unwind(AssertUnwindSafe(|| {
            self.inner.factory.create_parser(grammar)
        }))
        .map_err(|e| e.to_string())?;
        let matcher = Matcher::new(Ok(parser));
        match matcher.get_error() {
            Some(error) => Err(error),
            None => Ok(matcher),
        }
    }
}

impl fmt::Debug for Grammars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grammars")
            .field("vocab_size", &self.inner.vocab_size)
            .field("eos_ids", &self.inner.eos_ids)
            .finish_non_exhaustive()
    }
}

/// One entry of the request's `tools`, checked.
struct Tool {
    name: String,
    /// The `parameters` schema, as an object schema with compile options.
    parameters: Value,
    /// `tools[i].function.parameters`, for errors.
    location: String,
}

fn parse_tools(tools: &[Value], whitespace: JsonWhitespace) -> Result<Vec<Tool>, GrammarError> {
    if tools.is_empty() {
        return Err(GrammarError::InvalidTools(
            "tools is empty; a tool call needs at least one tool".into(),
        ));
    }
    let mut parsed: Vec<Tool> = Vec::with_capacity(tools.len());
    for (i, entry) in tools.iter().enumerate() {
        let bad = |what: &str| GrammarError::InvalidTools(format!("tools[{i}]: {what}"));
        let entry = entry.as_object().ok_or_else(|| bad("must be an object"))?;
        match entry.get("type") {
            None => {}
            Some(Value::String(t)) if t == "function" => {}
            Some(_) => return Err(bad("\"type\" must be \"function\"")),
        }
        let function = entry
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("needs a \"function\" object"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("function.name must be a string"))?;
        check_name(name).map_err(|why| bad(&format!("function.name {name:?} {why}")))?;
        if parsed.iter().any(|t| t.name == name) {
            return Err(bad(&format!(
                "function.name {name:?} appears twice; tool names must be unique"
            )));
        }
        let location = format!("tools[{i}].function.parameters");
        let parameters = object_schema(function.get("parameters"), &location)?;
        let parameters = with_compile_options(&parameters, whitespace, &location)?;
        parsed.push(Tool {
            name: name.to_owned(),
            parameters,
            location,
        });
    }
    Ok(parsed)
}

/// Whether the tool-call parser reads `name` back as written: its rules (non-empty, at most
/// [`MAX_HEADER_BYTES`], no whitespace or control characters), plus no markup inside.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > MAX_HEADER_BYTES {
        return Err("is too long (256 bytes at most)");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters");
    }
    if [CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP]
        .iter()
        .any(|marker| name.contains(marker))
    {
        return Err("contains tool-call markup");
    }
    Ok(())
}

/// A tool's `parameters` as a schema that only admits objects (the tool-call parser rejects
/// arguments that are not a JSON object). `type` is set to `"object"` where it is missing
/// (the schema's own keywords still apply) and must otherwise be or include `"object"`.
fn object_schema(parameters: Option<&Value>, location: &str) -> Result<Value, GrammarError> {
    let not_object = |what: String| GrammarError::Schema {
        location: location.to_owned(),
        message: format!("{what}; tool arguments are a JSON object, so use \"type\": \"object\""),
    };
    let mut schema = match parameters {
        None | Some(Value::Bool(true)) | Some(Value::Null) => Map::new(),
        Some(Value::Object(schema)) => schema.clone(),
        Some(other) => {
            return Err(not_object(format!(
                "must be a JSON schema object, got {other}"
            )))
        }
    };
    match schema.get("type") {
        None => {}
        Some(Value::String(t)) if t == "object" => {}
        Some(Value::Array(types)) if types.iter().any(|t| t == "object") => {}
        Some(other) => return Err(not_object(format!("\"type\" is {other}"))),
    }
    schema.insert("type".into(), json!("object"));
    Ok(Value::Object(schema))
}

/// `schema` with llguidance's compile options (`x-guidance`) for `whitespace`, replacing any
/// the request carried (they could turn off checks or set a costly whitespace regex).
fn with_compile_options(
    schema: &Value,
    whitespace: JsonWhitespace,
    location: &str,
) -> Result<Value, GrammarError> {
    let mut schema = match schema {
        Value::Object(schema) => schema.clone(),
        Value::Bool(true) => Map::new(),
        Value::Bool(false) => {
            return Err(GrammarError::Schema {
                location: location.to_owned(),
                message: "the schema `false` admits no value".into(),
            })
        }
        other => {
            return Err(GrammarError::Schema {
                location: location.to_owned(),
                message: format!("a JSON schema must be an object or a boolean, got {other}"),
            })
        }
    };
    // Unlike the defaults, `oneOf` is accepted (as `anyOf`): tool schemas use it for unions
    // whose branches rarely overlap, and refusing it would refuse many real tool lists.
    let options = match whitespace {
        JsonWhitespace::Flexible { max_per_gap: 0 } | JsonWhitespace::Compact => json!({
            "whitespace_flexible": false,
            "coerce_one_of": true,
        }),
        JsonWhitespace::Flexible { max_per_gap } => json!({
            "whitespace_flexible": true,
            "whitespace_pattern": format!("[\\x20\\x0A\\x0D\\x09]{{1,{max_per_gap}}}"),
            "coerce_one_of": true,
        }),
        JsonWhitespace::SingleLine => json!({
            "whitespace_flexible": false,
            "item_separator": ", ",
            "key_separator": ": ",
            "coerce_one_of": true,
        }),
    };
    schema.insert("x-guidance".into(), options);
    Ok(Value::Object(schema))
}

/// A lark string literal (lark strings use JSON string syntax).
fn lark_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// A regex matching exactly `text`, safe inside lark's `/.../`: letters and digits as they
/// are, every other character as `\x{..}`.
fn regex_literal(text: &str) -> String {
    let mut rx = String::with_capacity(text.len() * 4);
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            rx.push(c);
        } else {
            let _ = write!(rx, "\\x{{{:X}}}", u32::from(c));
        }
    }
    rx
}

/// The compiler's message about a schema, without its wrapping, clipped.
fn schema_message(message: &str) -> String {
    let message = message
        .trim()
        .trim_start_matches("failed to compile JSON schema: ")
        .trim()
        .replace(
            "Only absolute $ref's (#/...) are supported without 'referencing' feature;",
            "only $refs within the schema (\"#/...\", e.g. \"#/$defs/Name\") are supported, not",
        );
    let message = message.as_str();
    let hint = if message.contains("Unimplemented keys") || message.contains("Unknown format") {
        "; constrained decoding does not support it: remove it from the schema or relax it"
    } else {
        ""
    };
    format!(
        "invalid or unsupported JSON schema: {}{hint}",
        clip(message)
    )
}

/// At most [`MAX_MESSAGE_BYTES`] of `message`, cut at a character boundary.
fn clip(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_literals_escape_everything_but_alphanumerics() {
        assert_eq!(regex_literal("</think>"), "\\x{3C}\\x{2F}think\\x{3E}");
        assert_eq!(regex_literal("｜a"), "\\x{FF5C}a");
    }

    #[test]
    fn names_the_parser_would_misread_are_refused() {
        assert!(check_name("get_weather").is_ok());
        assert!(check_name("天气.查询").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("get weather").is_err());
        assert!(check_name(&"x".repeat(257)).is_err());
        assert!(check_name(&format!("a{SEP}b")).is_err());
    }

    #[test]
    fn parameters_become_object_schemas() {
        let loc = "tools[0].function.parameters";
        assert_eq!(object_schema(None, loc).unwrap(), json!({"type": "object"}));
        assert_eq!(
            object_schema(Some(&json!({"properties": {}})), loc).unwrap(),
            json!({"properties": {}, "type": "object"})
        );
        assert_eq!(
            object_schema(Some(&json!({"type": ["object", "null"]})), loc).unwrap(),
            json!({"type": "object"})
        );
        let err = object_schema(Some(&json!({"type": "array"})), loc).unwrap_err();
        assert!(err.to_string().contains("\"type\" is \"array\""), "{err}");
        assert!(err.is_request_error());
    }

    #[test]
    fn long_messages_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_MESSAGE_BYTES + 3);
        assert!(clipped.ends_with("..."));
    }
}
