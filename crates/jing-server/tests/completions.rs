//! `/v1/completions` over real HTTP: text and token-id prompts, several prompts with `n`, echo,
//! legacy logprobs, streams, and FIM refused cleanly by a model without FIM tokens.

mod common;

use common::*;
use serde_json::json;

fn body(prompt: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut b = json!({"model": MODEL, "prompt": prompt, "temperature": 0, "max_tokens": 8, "ignore_eos": true});
    if let serde_json::Value::Object(e) = extra {
        b.as_object_mut().unwrap().extend(e);
    }
    b
}

#[tokio::test]
async fn text_and_token_prompts_give_the_same_completion() {
    let server = TestServer::start(Setup::default()).await;
    let text = server
        .post("/v1/completions", &body(json!("Once upon"), json!({})))
        .await;
    assert_eq!(text.status, 200, "{}", text.text);
    let text = text.json();
    assert_eq!(text["object"], "text_completion");
    assert!(text["id"].as_str().unwrap().starts_with("cmpl-"));
    let c = &text["choices"][0];
    assert_eq!(c["index"], 0);
    assert_eq!(c["finish_reason"], "length");
    assert!(c["logprobs"].is_null());
    assert_eq!(text["usage"]["completion_tokens"], 8);
    let prompt_tokens = text["usage"]["prompt_tokens"].as_u64().unwrap();

    // The same prompt as ids (BOS first, as the tokenizer adds it).
    let tok = jing_tokenizer::Tokenizer::from_model_dir(&fixture("deepseek-v3-tiny")).unwrap();
    let ids = tok.encode("Once upon", true).unwrap();
    assert_eq!(ids.len() as u64, prompt_tokens);
    let by_ids = server
        .post("/completions", &body(json!(ids), json!({})))
        .await
        .json();
    assert_eq!(by_ids["choices"][0]["text"], c["text"]);

    // Echo puts the prompt in front.
    let echo = server
        .post(
            "/v1/completions",
            &body(json!("Once upon"), json!({"echo": true})),
        )
        .await
        .json();
    assert_eq!(
        echo["choices"][0]["text"].as_str().unwrap(),
        format!("Once upon{}", c["text"].as_str().unwrap())
    );
}

#[tokio::test]
async fn several_prompts_times_n_choices_are_indexed_prompt_major() {
    let server = TestServer::start(Setup::default()).await;
    let single_a = server
        .post("/v1/completions", &body(json!("alpha"), json!({})))
        .await
        .json();
    let single_b = server
        .post("/v1/completions", &body(json!("beta"), json!({})))
        .await
        .json();
    let both = server
        .post(
            "/v1/completions",
            &body(json!(["alpha", "beta"]), json!({"n": 2})),
        )
        .await
        .json();
    let choices = both["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        let single = if i < 2 { &single_a } else { &single_b };
        assert_eq!(c["text"], single["choices"][0]["text"], "choice {i}");
    }
    assert_eq!(both["usage"]["completion_tokens"], 32);
}

#[tokio::test]
async fn streams_and_legacy_logprobs() {
    let server = TestServer::start(Setup::default()).await;
    let whole = server
        .post(
            "/v1/completions",
            &body(json!("Stream me"), json!({"logprobs": 2})),
        )
        .await
        .json();
    let lp = &whole["choices"][0]["logprobs"];
    assert_eq!(lp["tokens"].as_array().unwrap().len(), 8);
    assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), 8);
    assert_eq!(lp["text_offset"][0], 0);
    for top in lp["top_logprobs"].as_array().unwrap() {
        assert_eq!(
            top.as_object().unwrap().len().min(2),
            top.as_object().unwrap().len()
        );
    }
    let sse = stream(
        &server,
        "/v1/completions",
        &body(
            json!("Stream me"),
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ),
    )
    .await;
    let chunks = sse.chunks();
    let mut text = String::new();
    let mut finishes = 0;
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c["object"], "text_completion");
        assert!(c["usage"].is_null());
        text.push_str(c["choices"][0]["text"].as_str().unwrap());
        if c["choices"][0]["finish_reason"].is_string() {
            finishes += 1;
        }
    }
    assert_eq!(finishes, 1);
    assert_eq!(json!(text), whole["choices"][0]["text"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 8);
}

#[tokio::test]
async fn fim_without_fim_tokens_and_bad_prompts_are_400() {
    let server = TestServer::start(Setup::default()).await;
    let e = server
        .post(
            "/beta/completions",
            &body(json!("def f("), json!({"suffix": "return x"})),
        )
        .await
        .assert_error(400);
    assert_eq!(e["param"], "suffix");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("fill-in-the-middle"));
    let e = server
        .post("/v1/completions", &body(json!([1, 99999]), json!({})))
        .await
        .assert_error(400);
    assert_eq!(e["param"], "prompt[1]");
    let e = server
        .post("/v1/completions", &body(json!("x"), json!({"logprobs": 9})))
        .await
        .assert_error(400);
    assert_eq!(e["param"], "logprobs");
}
