//! What goes back on the wire. Structs (not `json!` maps) so that keys come out in OpenAI's order
//! and every response of one kind has the same shape; all of it is compact JSON, one object per
//! SSE `data:` line.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

/// The fields every completion object and chunk starts with.
#[derive(Clone, Debug, Serialize)]
pub struct Head {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: String,
}

/// Token counts, OpenAI's and DeepSeek's: `prompt_cache_hit_tokens + prompt_cache_miss_tokens
/// == prompt_tokens`, `reasoning_tokens` is part of `completion_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
    pub completion_tokens_details: CompletionTokensDetails,
    pub prompt_cache_hit_tokens: usize,
    pub prompt_cache_miss_tokens: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PromptTokensDetails {
    pub cached_tokens: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CompletionTokensDetails {
    pub reasoning_tokens: usize,
}

impl Usage {
    pub fn new(prompt: usize, cached: usize, completion: usize, reasoning: usize) -> Usage {
        let cached = cached.min(prompt);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: cached,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: reasoning,
            },
            prompt_cache_hit_tokens: cached,
            prompt_cache_miss_tokens: prompt - cached,
        }
    }
}

/// A token with its log-probability, as chat `logprobs.content[]` entries list it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// One generated token's entry: the token, its log-probability and the best alternatives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogprobEntry {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

/// Chat `choices[].logprobs`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatLogprobs {
    pub content: Vec<LogprobEntry>,
    pub refusal: Option<Vec<LogprobEntry>>,
}

/// A delta field that may be left out, `null`, or text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Field {
    #[default]
    Omit,
    Null,
    Text(String),
}

impl Field {
    pub fn is_omit(&self) -> bool {
        matches!(self, Field::Omit)
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Omit | Field::Null => s.serialize_none(),
            Field::Text(t) => s.serialize_str(t),
        }
    }
}

/// A streamed chat delta.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Field::is_omit")]
    pub content: Field,
    #[serde(skip_serializing_if = "Field::is_omit")]
    pub reasoning_content: Field,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChunkChoice {
    pub index: usize,
    pub delta: Delta,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: Option<&'static str>,
}

/// `chat.completion.chunk`. `usage` is left out unless the client asked for usage; then it is
/// `null` on every chunk but the last.
#[derive(Clone, Debug, Serialize)]
pub struct ChatChunk<'a> {
    #[serde(flatten)]
    pub head: &'a Head,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

/// The assistant message of a non-streamed choice.
#[derive(Clone, Debug, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    /// `null` only when there are tool calls and no text.
    pub content: Option<String>,
    /// Present for models that reason (DeepSeek's field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChatChoice {
    pub index: usize,
    pub message: ChatMessage,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: &'static str,
}

/// `chat.completion`.
#[derive(Clone, Debug, Serialize)]
pub struct ChatCompletion<'a> {
    #[serde(flatten)]
    pub head: &'a Head,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
}

/// Legacy completion `logprobs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TextLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    pub top_logprobs: Vec<OrderedMap>,
    pub text_offset: Vec<usize>,
}

/// A JSON object that keeps its insertion order (legacy `top_logprobs` entries, most likely
/// first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderedMap(pub Vec<(String, f32)>);

impl Serialize for OrderedMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TextChoice {
    pub index: usize,
    pub text: String,
    pub logprobs: Option<TextLogprobs>,
    pub finish_reason: Option<&'static str>,
}

/// `text_completion`, whole or as a stream chunk (the same object, as OpenAI streams it).
#[derive(Clone, Debug, Serialize)]
pub struct TextCompletion<'a> {
    #[serde(flatten)]
    pub head: &'a Head,
    pub choices: Vec<TextChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

/// One entry of `/v1/models`.
#[derive(Clone, Debug, Serialize)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
    /// The context length (vLLM's field; clients read it to size prompts).
    pub max_model_len: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_serialize_in_openai_key_order() {
        let head = Head {
            id: "c1".into(),
            object: "chat.completion.chunk",
            created: 1,
            model: "m".into(),
            system_fingerprint: "fp".into(),
        };
        let chunk = ChatChunk {
            head: &head,
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta {
                    role: Some("assistant"),
                    content: Field::Text(String::new()),
                    reasoning_content: Field::Null,
                    tool_calls: Vec::new(),
                },
                logprobs: None,
                finish_reason: None,
            }],
            usage: Some(None),
        };
        assert_eq!(
            serde_json::to_string(&chunk).unwrap(),
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning_content":null},"logprobs":null,"finish_reason":null}],"usage":null}"#
        );
        let u = Usage::new(11, 6, 8, 5);
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#"{"prompt_tokens":11,"completion_tokens":8,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":5},"prompt_cache_hit_tokens":6,"prompt_cache_miss_tokens":5}"#
        );
    }
}
