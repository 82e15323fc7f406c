//! Errors and limits over real HTTP: every failure is OpenAI's envelope with all four keys and
//! the right status, decided before any response head; keys, body size, header size and time,
//! JSON depth and admission are enforced.

mod common;

use std::time::Duration;

use common::*;
use jing_engine::ServeConfig;
use jing_server::{Limits, OverloadStatus, Server, ServerConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn invalid_input_is_400_naming_the_field_and_is_not_retried() {
    let server = TestServer::start(Setup::default()).await;
    let cases = [
        (chat_body("x", json!({"temperature": 3})), "temperature"),
        (chat_body("x", json!({"n": 17})), "n"),
        (
            chat_body("x", json!({"top_logprobs": 30, "logprobs": true})),
            "top_logprobs",
        ),
        (
            chat_body("x", json!({"logit_bias": {"512": 5}})),
            "logit_bias",
        ),
        (chat_body("x", json!({"stop": vec!["s"; 17]})), "stop"),
        (
            chat_body("x", json!({"stream": true, "max_tokens": -1})),
            "max_tokens",
        ),
        (json!({"model": MODEL}), "messages"),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
            "messages[0].content[0]",
        ),
    ];
    for (body, param) in cases {
        let r = server.post("/v1/chat/completions", &body).await;
        let e = r.assert_error(400);
        assert_eq!(e["type"], "invalid_request_error");
        assert_eq!(e["param"], param, "{body}");
        assert_eq!(r.header("x-should-retry"), Some("false"));
    }
}

#[tokio::test]
async fn prompts_longer_than_the_context_are_refused_before_any_work() {
    let server = TestServer::start(Setup::default()).await;
    // The context is 512 tokens.
    let r = server
        .post(
            "/v1/chat/completions",
            &chat_body("hi", json!({"max_tokens": 510})),
        )
        .await;
    let e = r.assert_error(400);
    assert_eq!(e["code"], "context_length_exceeded");
    assert_eq!(e["param"], "max_tokens");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("maximum context length is 512"));
    let long = "word ".repeat(2000);
    let e = server
        .post(
            "/v1/chat/completions",
            &chat_body(&long, json!({"max_tokens": null})),
        )
        .await
        .assert_error(400);
    assert_eq!(e["code"], "context_length_exceeded");
    // A stream refused before it starts is a plain 400, not an SSE error.
    let r = server
        .post(
            "/v1/chat/completions",
            &chat_body(&long, json!({"stream": true})),
        )
        .await;
    r.assert_error(400);
    let stats = server.engine.stats();
    assert_eq!(
        stats.prompt_tokens_total, 0,
        "no request reached the engine"
    );
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_or_too_deep_are_400() {
    let server = TestServer::start(Setup::default()).await;
    let deep = format!(
        "{{\"model\":\"{MODEL}\",\"x\":{}{}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    for body in [
        "{",
        "[1]",
        "",
        "\"text\"",
        "{\"model\": \"tiny\",}",
        deep.as_str(),
    ] {
        let r = send(
            server.addr,
            "POST",
            "/v1/chat/completions",
            &[],
            Some(body.into()),
        )
        .await;
        let e = r.assert_error(400);
        assert_eq!(e["code"], "invalid_json", "{body}");
    }
}

#[tokio::test]
async fn unknown_models_routes_and_methods_are_404_and_405() {
    let server = TestServer::start(Setup::default()).await;
    let e = server
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-9", "messages": []}),
        )
        .await
        .assert_error(404);
    assert_eq!(e["code"], "model_not_found");
    assert_eq!(e["param"], "model");
    let e = server
        .post("/v1/completions", &json!({"model": "gpt-9", "prompt": "x"}))
        .await
        .assert_error(404);
    assert_eq!(e["code"], "model_not_found");
    server.get("/v1/models/gpt-9").await.assert_error(404);
    let e = server
        .post("/v1/nothing", &json!({}))
        .await
        .assert_error(404);
    assert_eq!(e["code"], "unknown_url");
    let e = server.get("/v1/chat/completions").await.assert_error(405);
    assert_eq!(e["code"], "method_not_allowed");
    let models = server.get("/v1/models").await.json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], MODEL);
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(models["data"][0]["max_model_len"], 512);
    assert!(models["data"][0]["created"].is_u64());
    assert_eq!(server.get("/models/tiny").await.json()["id"], MODEL);
}

#[tokio::test]
async fn every_route_but_health_needs_the_key_and_all_refusals_look_alike() {
    let mut setup = Setup::default();
    setup.config.api_keys = vec!["sk-test-one".into(), "sk-test-two".into()];
    let server = TestServer::start(setup).await;
    let body = chat_body("x", json!({"max_tokens": 1})).to_string();
    let mut refusals = Vec::new();
    for auth in [
        None,
        Some("Bearer sk-wrong"),
        Some("Bearer sk-test-on"),
        Some("sk-test-one"),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = send(
            server.addr,
            "POST",
            "/v1/chat/completions",
            &headers,
            Some(body.clone()),
        )
        .await;
        let e = r.assert_error(401);
        assert_eq!(e["code"], "invalid_api_key");
        refusals.push(r.text);
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]));
    for path in ["/metrics", "/v1/models", "/nothing"] {
        send(server.addr, "GET", path, &[], None)
            .await
            .assert_error(401);
    }
    let ok = send(
        server.addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-test-two")],
        Some(body),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let health = server.get("/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let mut setup = Setup::default();
    setup.config.limits = Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    };
    let server = TestServer::start(setup).await;
    let e = server
        .post(
            "/v1/chat/completions",
            &chat_body(&"x".repeat(2000), json!({})),
        )
        .await
        .assert_error(413);
    assert_eq!(e["code"], "request_too_large");
}

#[tokio::test]
async fn a_full_queue_is_429_with_retry_after_or_503_when_configured() {
    for (status, overload) in [
        (429, OverloadStatus::TooManyRequests),
        (503, OverloadStatus::ServiceUnavailable),
    ] {
        let mut setup = Setup {
            engine: ServeConfig {
                max_waiting: 0,
                ..ServeConfig::default()
            },
            ..Setup::default()
        };
        setup.config.overload_status = overload;
        let server = TestServer::start(setup).await;
        let r = server
            .post("/v1/chat/completions", &chat_body("x", json!({})))
            .await;
        let e = r.assert_error(status);
        assert!(e["message"].as_str().unwrap().contains("busy"), "{e}");
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.header("x-should-retry"), None);
        server
            .wait_metric(
                "jing:request_rejected_total{model_name=\"tiny\",reason=\"queue_full\"}",
                |v| v == 1.0,
            )
            .await;
    }
}

#[tokio::test]
async fn while_the_model_loads_health_and_inference_answer_503() {
    let server = Server::new(ServerConfig {
        served_model_names: vec![MODEL.into()],
        ..ServerConfig::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
    });
    let e = send(addr, "GET", "/health", &[], None)
        .await
        .assert_error(503);
    assert_eq!(e["type"], "unavailable_error");
    let r = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[],
        Some(chat_body("x", json!({})).to_string()),
    )
    .await;
    r.assert_error(503);
    assert!(r.header("retry-after").is_some());
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// A client that never finishes its headers is cut off (slowloris); one whose headers are too
/// large is refused with 431.
#[tokio::test]
async fn slow_and_oversize_request_heads_are_cut_off() {
    let mut setup = Setup::default();
    setup.config.limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        max_header_bytes: 8192,
        ..Limits::default()
    };
    let server = TestServer::start(setup).await;
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(DEADLINE, slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept a half-sent request open");

    // A connection that never sends anything is closed too.
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(DEADLINE, idle.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept an idle connection open");

    // So is a kept-alive connection that sends no next request.
    let mut kept = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(DEADLINE, kept.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server kept an idle keep-alive connection open"
    );
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));

    let mut big = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    // The server may answer and close before the whole head is written.
    let _ = big.write_all(head.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, big.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}
