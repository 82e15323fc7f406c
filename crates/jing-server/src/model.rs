//! The model being served: the running engine, the tokenizer, the chat template, the ids that
//! end a generation, and what the server derives from them once at startup (each token's
//! bytes for `logprobs`, the marker tokens the reasoning and tool-call parsers need, FIM
//! tokens, the token trie of constrained decoding).

use std::collections::HashSet;

use jing_engine::EngineHandle;
use jing_tokenizer::reasoning::{THINK_END, THINK_START};
use jing_tokenizer::template::ChatTemplate;
use jing_tokenizer::tool_calls::{
    ToolCallFormat, CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP,
};
use jing_tokenizer::Tokenizer;

use crate::config::SamplingDefaults;

/// What [`crate::Server::install`] serves.
pub struct ServedModel {
    /// The engine, already started ([`EngineHandle::start`]); compute runs on its thread.
    pub engine: EngineHandle,
    pub tokenizer: Tokenizer,
    /// `None`: the chat routes answer 400 and only `/v1/completions` works.
    pub template: Option<ChatTemplate>,
    /// Ids that end a generation: the tokenizer's EOS and `generation_config.json`'s
    /// `eos_token_id` list ([`Tokenizer::eos_ids`] has both).
    pub stop_ids: Vec<u32>,
    /// The syntax the model writes tool calls in.
    pub tool_call_format: ToolCallFormat,
    /// Sampling for parameters a request leaves out.
    pub sampling: SamplingDefaults,
}

impl ServedModel {
    /// A model with the tokenizer's EOS ids as stop ids, the tool-call syntax its template
    /// writes (see [`tool_call_format`]) and OpenAI's sampling defaults.
    pub fn new(engine: EngineHandle, tokenizer: Tokenizer, template: Option<ChatTemplate>) -> Self {
        let tool_call_format = template
            .as_ref()
            .map(tool_call_format)
            .unwrap_or(ToolCallFormat::V3);
        ServedModel {
            engine,
            stop_ids: tokenizer.eos_ids(),
            tokenizer,
            template,
            tool_call_format,
            sampling: SamplingDefaults::default(),
        }
    }
}

/// The tool-call syntax a template renders earlier calls in: V3 and R1 templates write the
/// type before the separator and the name after it
/// (`<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json…`), V3.1 writes the name before it
/// and the arguments after it (`<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS`). The model answers in
/// the syntax it was trained on, which is the one its template writes.
pub fn tool_call_format(template: &ChatTemplate) -> ToolCallFormat {
    let v31 = format!("{SEP}'+tool['function']['arguments']");
    let writes_v31 = template
        .names()
        .into_iter()
        .filter_map(|n| template.source(n))
        .any(|s| s.split_whitespace().collect::<String>().contains(&v31));
    if writes_v31 {
        ToolCallFormat::V31
    } else {
        ToolCallFormat::V3
    }
}

/// A served model with what the server derives from it.
pub struct Model {
    pub engine: EngineHandle,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub stop_ids: Vec<u32>,
    pub tool_call_format: ToolCallFormat,
    pub sampling: SamplingDefaults,
    /// Ids of `<think>` and `</think>`.
    pub think_ids: HashSet<u32>,
    /// Ids of the tool-call markers.
    pub tool_ids: HashSet<u32>,
    /// `<｜fim▁begin｜>`, `<｜fim▁hole｜>`, `<｜fim▁end｜>` when the vocabulary has them.
    pub fim: Option<[String; 3]>,
    /// Each token's bytes and display text, by id (for `logprobs`).
    pub tokens: TokenTable,
    /// Output constraints for this model's tokenizer, or why it cannot have them.
    pub grammars: crate::grammar::ModelGrammars,
}

impl Model {
    pub fn new(m: ServedModel) -> Model {
        let ids = |texts: &[&str]| -> HashSet<u32> {
            texts
                .iter()
                .filter_map(|t| m.tokenizer.token_to_id(t))
                .collect()
        };
        let think_ids = ids(&[THINK_START, THINK_END]);
        let tool_ids = ids(&[CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP]);
        let fim_texts = ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"];
        let fim = fim_texts
            .iter()
            .all(|t| m.tokenizer.token_to_id(t).is_some())
            .then(|| fim_texts.map(str::to_string));
        let tokens = TokenTable::new(&m.tokenizer, m.engine.vocab_size());
        let grammars = crate::grammar::build(&m.tokenizer, &m.stop_ids);
        Model {
            engine: m.engine,
            tokenizer: m.tokenizer,
            template: m.template,
            stop_ids: m.stop_ids,
            tool_call_format: m.tool_call_format,
            sampling: m.sampling,
            think_ids,
            tool_ids,
            fim,
            tokens,
            grammars,
        }
    }

    /// The vocabulary size of the model (its embedding rows, which may exceed the tokenizer's).
    pub fn vocab(&self) -> usize {
        self.engine.vocab_size()
    }
}

/// Each token's bytes, for `logprobs` (`bytes` and `token`). Byte-level BPE tokens (DeepSeek,
/// Qwen, Llama 3) are spelled in GPT-2's byte alphabet, which maps back to their exact bytes
/// even when they are half of a UTF-8 character; other tokens are decoded.
pub struct TokenTable {
    bytes: Vec<Box<[u8]>>,
}

/// GPT-2's `bytes_to_unicode`, inverted: the byte each alphabet character stands for.
fn byte_alphabet() -> std::collections::HashMap<char, u8> {
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, 33..=126 | 161..=172 | 174..=255);
        let c = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + extra).unwrap_or('\u{FFFD}');
            extra += 1;
            c
        };
        map.insert(c, b);
    }
    map
}

impl TokenTable {
    pub fn new(tokenizer: &Tokenizer, vocab: usize) -> TokenTable {
        let alphabet = byte_alphabet();
        let bytes = (0..vocab as u32)
            .map(|id| {
                let Some(spelling) = tokenizer.id_to_token(id) else {
                    return Box::default();
                };
                let mapped: Option<Vec<u8>> = spelling
                    .chars()
                    .map(|c| alphabet.get(&c).copied())
                    .collect();
                match mapped {
                    Some(b) if !tokenizer.is_special(id) => b.into_boxed_slice(),
                    _ => tokenizer
                        .decode(&[id], false)
                        .map(|t| t.into_bytes().into_boxed_slice())
                        .unwrap_or_default(),
                }
            })
            .collect();
        TokenTable { bytes }
    }

    /// The token's bytes (empty for ids the tokenizer does not know).
    pub fn bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map(|b| &b[..]).unwrap_or(&[])
    }

    /// The token as text; a token that is not whole UTF-8 is shown as `bytes:\xe4\xb8` (the
    /// convention of vLLM), its `bytes` carrying the exact value.
    pub fn text(&self, id: u32) -> String {
        let b = self.bytes(id);
        match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => {
                let mut out = String::from("bytes:");
                for x in b {
                    out.push_str(&format!("\\x{x:02x}"));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_call_syntax_is_the_one_the_template_writes() {
        use jing_tokenizer::template::SpecialTokens;
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/templates");
        for (file, format) in [
            ("deepseek-v3.jinja", ToolCallFormat::V3),
            ("deepseek-v3-pypi.jinja", ToolCallFormat::V3),
            ("deepseek-r1.jinja", ToolCallFormat::V3),
            ("deepseek-v3.1.jinja", ToolCallFormat::V31),
            ("qwen2.5.jinja", ToolCallFormat::V3),
        ] {
            let t = ChatTemplate::from_file(&dir.join(file), SpecialTokens::new()).unwrap();
            assert_eq!(tool_call_format(&t), format, "{file}");
        }
    }

    #[test]
    fn the_byte_alphabet_covers_every_byte_once() {
        let a = byte_alphabet();
        assert_eq!(a.len(), 256);
        assert_eq!(a[&'Ġ'], b' ');
        assert_eq!(a[&'A'], b'A');
        assert_eq!(a[&'Ċ'], b'\n');
    }
}
