//! `/v1/chat/completions` over real HTTP against the tiny fixture model: response shape, stream
//! framing byte for byte, the reasoning split, stop strings, `n`, seeds, logprobs and prefix
//! completion.

mod common;

use common::*;
use serde_json::{json, Value};

/// The exact bytes of one chunk as the server must write it, from its parts.
fn frame(head: &str, choices: &str, usage: &str) -> String {
    format!("data: {{{head},\"choices\":[{choices}],\"usage\":{usage}}}\n\n")
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[tokio::test]
async fn a_non_streamed_answer_has_openai_and_deepseek_fields() {
    let server = TestServer::start(Setup::default()).await;
    let reply = server
        .post("/v1/chat/completions", &chat_body("Hello 世界", json!({})))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let v = reply.json();
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"), "{v}");
    assert_eq!(reply.header("x-request-id"), Some(id));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], MODEL);
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert!(v["system_fingerprint"].as_str().unwrap().starts_with("fp_"));
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"].is_string(), "{v}");
    // DeepSeek-V3's template does not force reasoning, and this output does not open any.
    assert!(choice["message"].get("reasoning_content").is_none(), "{v}");
    assert!(choice["logprobs"].is_null());
    assert_eq!(choice["finish_reason"], "length");
    let u = &v["usage"];
    assert_eq!(u["completion_tokens"], 16);
    let (p, hit, miss) = (
        u["prompt_tokens"].as_u64().unwrap(),
        u["prompt_cache_hit_tokens"].as_u64().unwrap(),
        u["prompt_cache_miss_tokens"].as_u64().unwrap(),
    );
    assert_eq!(hit + miss, p);
    assert_eq!(
        u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap(),
        hit
    );
    assert_eq!(u["total_tokens"].as_u64().unwrap(), p + 16);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);

    // The same request again: the prompt comes from the prefix cache (all but its last token).
    let again = server
        .post("/chat/completions", &chat_body("Hello 世界", json!({})))
        .await
        .json();
    assert_eq!(again["choices"][0]["message"], choice["message"]);
    assert_eq!(
        again["usage"]["prompt_cache_hit_tokens"].as_u64().unwrap(),
        p - 1
    );
}

#[tokio::test]
async fn a_stream_is_framed_byte_for_byte_as_openai_does() {
    let mut setup = Setup::default();
    setup.config.keep_alive_interval = std::time::Duration::from_secs(3600);
    let server = TestServer::start(setup).await;
    let body = chat_body(
        "Count: one two three",
        json!({"stream": true, "stream_options": {"include_usage": true}, "max_tokens": 12}),
    );
    let sse = stream(&server, "/v1/chat/completions", &body).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["cache-control"], "no-cache");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    let chunks = sse.chunks();
    let first = &chunks[0];
    let id = first["id"].as_str().unwrap();
    assert_eq!(sse.headers["x-request-id"], id);
    let head = format!(
        "\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":\"{MODEL}\",\"system_fingerprint\":{}",
        q(id),
        first["created"],
        q(first["system_fingerprint"].as_str().unwrap())
    );
    // Rebuild the whole body from the chunks' parts in the order the contract fixes.
    let mut expected = frame(
        &head,
        r#"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}"#,
        "null",
    );
    let n = chunks.len();
    assert!(n >= 3, "{}", sse.raw);
    for c in &chunks[1..n - 2] {
        let text = c["choices"][0]["delta"]["content"].as_str().unwrap();
        assert!(!text.is_empty(), "an empty content delta: {c}");
        expected += &frame(
            &head,
            &format!(
                r#"{{"index":0,"delta":{{"content":{}}},"logprobs":null,"finish_reason":null}}"#,
                q(text)
            ),
            "null",
        );
    }
    expected += &frame(
        &head,
        r#"{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}"#,
        "null",
    );
    let u = &chunks[n - 1]["usage"];
    let (p, hit) = (
        u["prompt_tokens"].as_u64().unwrap(),
        u["prompt_cache_hit_tokens"].as_u64().unwrap(),
    );
    expected += &format!(
        "data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":{p},\"completion_tokens\":12,\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{hit}}},\"completion_tokens_details\":{{\"reasoning_tokens\":0}},\"prompt_cache_hit_tokens\":{hit},\"prompt_cache_miss_tokens\":{}}}}}\n\n",
        p + 12,
        p - hit
    );
    expected += "data: [DONE]\n\n";
    assert_eq!(sse.raw, expected);

    // The stream says what the whole answer says.
    let mut whole_body = body.clone();
    whole_body["stream"] = json!(false);
    whole_body.as_object_mut().unwrap().remove("stream_options");
    let whole = server
        .post("/v1/chat/completions", &whole_body)
        .await
        .json();
    let streamed = assemble_chat(&chunks, 1);
    assert_eq!(
        json!(streamed[0].content),
        whole["choices"][0]["message"]["content"]
    );
    assert_eq!(streamed[0].finish_reason.as_deref(), Some("length"));
    assert_eq!(whole["usage"]["prompt_tokens"].as_u64().unwrap(), p);
}

#[tokio::test]
async fn without_include_usage_no_chunk_has_a_usage_key_or_empty_choices() {
    let server = TestServer::start(Setup::default()).await;
    let sse = stream(
        &server,
        "/v1/chat/completions",
        &chat_body("hi", json!({"stream": true, "max_tokens": 4})),
    )
    .await;
    for c in sse.chunks() {
        assert!(c.get("usage").is_none(), "{c}");
        assert_eq!(c["choices"].as_array().unwrap().len(), 1, "{c}");
    }
}

/// The fixture's own template is R1-style: the prompt ends with `<think>\n`, so the output is
/// reasoning until `</think>`. A small bias on `</think>` (and none of the other special tokens)
/// makes this output close its reasoning after a few tokens.
fn reasoning_body(stream: bool) -> Value {
    let mut bias = no_special_tokens();
    bias["483"] = json!(2);
    chat_body(
        "Hello",
        json!({"stream": stream, "max_tokens": 24, "logit_bias": bias, "logprobs": true,
               "stream_options": {"include_usage": true}}),
    )
}

#[tokio::test]
async fn reasoning_comes_apart_from_the_answer_in_streams_and_whole_answers() {
    let server = TestServer::start(Setup {
        template: Template::Fixture,
        ..Setup::default()
    })
    .await;
    let whole = server
        .post("/v1/chat/completions", &reasoning_body(false))
        .await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    let whole = whole.json();
    let msg = &whole["choices"][0]["message"];
    let reasoning = msg["reasoning_content"].as_str().unwrap();
    let content = msg["content"].as_str().unwrap();
    assert!(!reasoning.is_empty() && !content.is_empty(), "{whole}");
    assert!(!reasoning.contains("think>"), "{whole}");
    let r_tokens = whole["usage"]["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap() as usize;
    // The reasoning tokens are the ones up to and including `</think>`.
    let tokens: Vec<&str> = whole["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens.len(), 24);
    assert_eq!(
        tokens.iter().position(|t| *t == "</think>"),
        Some(r_tokens - 1)
    );

    let sse = stream(&server, "/v1/chat/completions", &reasoning_body(true)).await;
    let chunks = sse.chunks();
    let mut seen_content = false;
    for c in &chunks[..chunks.len() - 1] {
        let d = &c["choices"][0]["delta"];
        // Both keys on every delta of a reasoning stream; reasoning never after content.
        assert!(
            d.get("content").is_some() && d.get("reasoning_content").is_some(),
            "{c}"
        );
        if d["content"].as_str().is_some_and(|s| !s.is_empty()) {
            seen_content = true;
        }
        if d["reasoning_content"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
        {
            assert!(!seen_content, "reasoning after content: {c}");
        }
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "reasoning_content": ""})
    );
    let a = &assemble_chat(&chunks, 1)[0];
    assert_eq!(a.reasoning, reasoning);
    assert_eq!(a.content, content);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        usage["completion_tokens_details"]["reasoning_tokens"],
        r_tokens
    );
}

#[tokio::test]
async fn stop_strings_end_the_answer_and_never_leak_into_a_stream() {
    let server = TestServer::start(Setup::default()).await;
    let free = server
        .post(
            "/v1/chat/completions",
            &chat_body("The list:", json!({"max_tokens": 40, "ignore_eos": true})),
        )
        .await
        .json();
    let text = free["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    // A stop string taken from the middle of the free answer (whole characters).
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() > 12, "{text:?}");
    let stop: String = chars[8..11].iter().collect();
    let expected = &text[..text.find(&stop).unwrap()];

    let body = chat_body(
        "The list:",
        json!({"max_tokens": 40, "ignore_eos": true, "stop": ["never matches", stop]}),
    );
    let v = server.post("/v1/chat/completions", &body).await.json();
    assert_eq!(v["choices"][0]["message"]["content"], expected);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // Usage counts the tokens up to the match, not the 40 the request allowed.
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() < 40);

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let sse = stream(&server, "/v1/chat/completions", &sbody).await;
    let chunks = sse.chunks();
    let a = &assemble_chat(&chunks, 1)[0];
    assert_eq!(a.content, expected);
    assert_eq!(a.finish_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn stop_strings_apply_to_the_answer_not_the_reasoning() {
    let server = TestServer::start(Setup {
        template: Template::Fixture,
        ..Setup::default()
    })
    .await;
    let free = server
        .post("/v1/chat/completions", &reasoning_body(false))
        .await
        .json();
    let msg = &free["choices"][0]["message"];
    let (reasoning, content) = (
        msg["reasoning_content"].as_str().unwrap(),
        msg["content"].as_str().unwrap(),
    );
    // A stop string from the reasoning: the reasoning is untouched, the answer is cut only if
    // the string occurs in it.
    let chars: Vec<char> = reasoning.chars().collect();
    let stop: String = chars[1..3].iter().collect();
    let mut body = reasoning_body(false);
    body["stop"] = json!(stop);
    let v = server.post("/v1/chat/completions", &body).await.json();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["reasoning_content"], reasoning);
    match content.find(&stop) {
        Some(at) => {
            assert_eq!(msg["content"], content[..at]);
            assert_eq!(v["choices"][0]["finish_reason"], "stop");
        }
        None => assert_eq!(msg["content"], content),
    }
}

#[tokio::test]
async fn n_choices_are_merged_with_their_indexes_and_seeds_reproduce() {
    let server = TestServer::start(Setup::default()).await;
    let body = chat_body(
        "Pick a word",
        json!({"n": 3, "temperature": 1.0, "seed": 42, "max_tokens": 10, "ignore_eos": true}),
    );
    let a = server.post("/v1/chat/completions", &body).await.json();
    let b = server.post("/v1/chat/completions", &body).await.json();
    let choices = a["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["finish_reason"], "length");
    }
    // Same seed, same answers; the choices themselves differ (seed + index each).
    assert_eq!(a["choices"], b["choices"]);
    assert_ne!(choices[0]["message"], choices[1]["message"]);
    assert_eq!(a["usage"]["completion_tokens"], 30);

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let chunks = stream(&server, "/v1/chat/completions", &sbody)
        .await
        .chunks();
    let streamed = assemble_chat(&chunks, 3);
    for (i, s) in streamed.iter().enumerate() {
        assert_eq!(json!(s.content), choices[i]["message"]["content"]);
        assert_eq!(s.finish_reason.as_deref(), Some("length"));
    }
    // One role delta per choice, first.
    let roles: Vec<u64> = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"].get("role").is_some())
        .map(|c| c["choices"][0]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(roles, vec![0, 1, 2]);
}

#[tokio::test]
async fn logprobs_list_every_token_with_its_best_alternatives() {
    let server = TestServer::start(Setup::default()).await;
    let v = server
        .post(
            "/v1/chat/completions",
            &chat_body(
                "Hi",
                json!({"logprobs": true, "top_logprobs": 3, "max_tokens": 6, "ignore_eos": true,
                       "logit_bias": no_special_tokens()}),
            ),
        )
        .await
        .json();
    let entries = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    let mut bytes = Vec::new();
    for e in entries {
        let top = e["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        // Greedy: the chosen token is the best alternative.
        assert_eq!(top[0]["token"], e["token"]);
        assert_eq!(top[0]["logprob"], e["logprob"]);
        assert!(top
            .windows(2)
            .all(|w| w[0]["logprob"].as_f64() >= w[1]["logprob"].as_f64()));
        assert!(e["logprob"].as_f64().unwrap() <= 0.0);
        bytes.extend(
            e["bytes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8),
        );
    }
    // The tokens' bytes are the answer's bytes (compared where the noise is whole UTF-8).
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    if !content.contains('\u{FFFD}') {
        assert_eq!(String::from_utf8_lossy(&bytes), content);
    }
}

#[tokio::test]
async fn a_prefix_message_is_continued_not_answered() {
    let server = TestServer::start(Setup::default()).await;
    let body = json!({
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "Write code"},
            {"role": "assistant", "content": "```python\n", "prefix": true},
        ],
        "temperature": 0, "max_tokens": 8, "ignore_eos": true,
    });
    let v = server.post("/beta/chat/completions", &body).await;
    assert_eq!(v.status, 200, "{}", v.text);
    let content = v.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    // The continuation is what a text completion of the cut prompt gives.
    // (The tokenizer adds BOS to a text prompt.)
    let prompt = "<｜User｜>Write code<｜Assistant｜>```python\n";
    let c = server
        .post(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": prompt, "temperature": 0, "max_tokens": 8, "ignore_eos": true}),
        )
        .await
        .json();
    assert_eq!(json!(content), c["choices"][0]["text"]);
}

fn tool_conversation(secret: &str) -> Value {
    json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "reasoning_content": secret,
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "assistant", "content": format!("<think>{secret}</think>It is sunny."),
             "reasoning_content": secret},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "temperature": 0, "max_tokens": 4,
    })
}

#[tokio::test]
async fn earlier_reasoning_is_accepted_and_never_reaches_the_model() {
    let server = TestServer::start(Setup {
        template: Template::R1,
        ..Setup::default()
    })
    .await;
    let reply = server
        .post("/v1/chat/completions", &tool_conversation("SECRET"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let v = reply.json();
    // R1's template forces reasoning: the field is there.
    assert!(
        v["choices"][0]["message"]["reasoning_content"].is_string(),
        "{v}"
    );
    assert_ne!(v["choices"][0]["finish_reason"], "tool_calls");
    // A much longer secret changes nothing in the prompt: it was dropped.
    let long = server
        .post(
            "/v1/chat/completions",
            &tool_conversation(&"a much longer secret word ".repeat(20)),
        )
        .await
        .json();
    assert_eq!(long["usage"]["prompt_tokens"], v["usage"]["prompt_tokens"]);
}
