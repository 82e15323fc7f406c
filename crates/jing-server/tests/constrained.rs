//! Output constraints over real HTTP: even a model of random weights answers in the required
//! form when `response_format` or `tool_choice` asks for it, because decoding is constrained.

mod common;

use common::*;
use serde_json::{json, Value};

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Tokyo"]}},
                       "required": ["city"], "additionalProperties": false}}}])
}

#[tokio::test]
async fn a_json_schema_answer_is_valid_against_the_schema() {
    let server = TestServer::start(Setup::default()).await;
    let schema = json!({"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}},
                        "required": ["answer"], "additionalProperties": false});
    let body = chat_body(
        "Answer in JSON",
        json!({"max_tokens": 64, "response_format": {"type": "json_schema",
               "json_schema": {"name": "yn", "schema": schema, "strict": true}}}),
    );
    let r = server.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    let answer: Value =
        serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: {content:?}"));
    assert!(
        answer == json!({"answer": "yes"}) || answer == json!({"answer": "no"}),
        "{answer}"
    );

    // JSON mode: any object.
    let body = chat_body(
        "JSON please",
        json!({"max_tokens": 200, "response_format": {"type": "json_object"}, "stream": true}),
    );
    let chunks = stream(&server, "/v1/chat/completions", &body)
        .await
        .chunks();
    let a = &assemble_chat(&chunks, 1)[0];
    assert!(a.content.trim_start().starts_with('{'), "{:?}", a.content);
    if a.finish_reason.as_deref() == Some("stop") {
        let v: Value = serde_json::from_str(&a.content).unwrap();
        assert!(v.is_object());
    }
}

/// A named function with V3's tool-call syntax, `required` with V3.1's.
#[tokio::test]
async fn a_forced_tool_call_comes_back_as_tool_calls_whole_and_streamed() {
    for (template, choice) in [
        (
            Template::V3,
            json!({"type": "function", "function": {"name": "get_weather"}}),
        ),
        (Template::V31, json!("required")),
    ] {
        forced_tool_call(template, choice).await;
    }
}

async fn forced_tool_call(template: Template, choice: Value) {
    let server = TestServer::start(Setup {
        template,
        ..Setup::default()
    })
    .await;
    let body = chat_body(
        "Weather?",
        json!({"max_tokens": 64, "tools": weather_tool(), "tool_choice": choice}),
    );
    let r = server.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert!(choice["message"]["content"].is_null(), "{v}");
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(
        args == json!({"city": "Paris"}) || args == json!({"city": "Tokyo"}),
        "{args}"
    );

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let chunks = stream(&server, "/v1/chat/completions", &sbody)
        .await
        .chunks();
    let a = &assemble_chat(&chunks, 1)[0];
    assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
    // The first delta of the call has id, type and name; later ones argument fragments.
    assert_eq!(a.tool_calls[0]["index"], 0);
    assert_eq!(a.tool_calls[0]["function"]["name"], "get_weather");
    let streamed_args: String = a
        .tool_calls
        .iter()
        .filter(|d| d["index"] == 0)
        .map(|d| d["function"]["arguments"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(json!(streamed_args), call["function"]["arguments"]);
}

#[tokio::test]
async fn an_r1_model_reasons_before_its_constrained_answer() {
    let server = TestServer::start(Setup {
        template: Template::Fixture,
        ..Setup::default()
    })
    .await;
    // A small push towards `</think>` makes this noise close its reasoning early.
    let body = chat_body(
        "Hello",
        json!({"max_tokens": 120, "logit_bias": {"483": 3},
               "response_format": {"type": "json_schema", "json_schema": {"name": "n",
                 "schema": {"type": "object", "properties": {"n": {"enum": [1, 2, 3]}},
                            "required": ["n"], "additionalProperties": false}}}}),
    );
    let r = server.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let msg = &v["choices"][0]["message"];
    assert!(
        !msg["reasoning_content"].as_str().unwrap().is_empty(),
        "{v}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    let answer: Value = serde_json::from_str(msg["content"].as_str().unwrap().trim()).unwrap();
    assert!(
        [1, 2, 3].iter().any(|n| answer == json!({"n": n})),
        "{answer}"
    );
}

#[tokio::test]
async fn unsupported_schemas_and_tool_choices_are_400() {
    let server = TestServer::start(Setup::default()).await;
    let e = server
        .post(
            "/v1/chat/completions",
            &chat_body(
                "x",
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "u",
                       "schema": {"type": "array", "uniqueItems": true}}}}),
            ),
        )
        .await
        .assert_error(400);
    assert_eq!(e["param"], "response_format.json_schema.schema", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("uniqueItems"),
        "{e}"
    );
    let e = server
        .post(
            "/v1/chat/completions",
            &chat_body(
                "x",
                json!({"tools": weather_tool(), "tool_choice": "required",
                                    "response_format": {"type": "json_object"}}),
            ),
        )
        .await
        .assert_error(400);
    assert_eq!(e["param"], "response_format");
}
