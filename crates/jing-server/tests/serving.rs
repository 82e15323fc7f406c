//! The server under load and at its edges: many concurrent streams that must each equal the
//! same request run alone, a client that goes away (its slot is freed, as `/metrics` shows),
//! `/metrics` itself, and graceful shutdown (drain, then in-band errors, then exit).

mod common;

use std::time::Duration;

use common::*;
use http_body_util::BodyExt;
use jing_engine::ServeConfig;
use serde_json::{json, Value};

const RUNNING: &str = "vllm:num_requests_running{model_name=\"tiny\"}";
const CANCELLED: &str = "jing:requests_cancelled_total{model_name=\"tiny\"}";

fn streaming(i: usize) -> Value {
    chat_body(
        &format!("Request number {i}: say something"),
        json!({"stream": true, "max_tokens": 12 + i % 5, "ignore_eos": i.is_multiple_of(2),
               "stream_options": {"include_usage": true}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_streams_each_equal_the_request_run_alone() {
    let server = TestServer::start(Setup::default()).await;
    // Alone, one after the other.
    let mut alone = Vec::new();
    for i in 0..32 {
        let chunks = stream(&server, "/v1/chat/completions", &streaming(i))
            .await
            .chunks();
        alone.push((
            assemble_chat(&chunks, 1).remove(0),
            chunks.last().unwrap()["usage"]["completion_tokens"].clone(),
        ));
    }
    // All at once (8 run, the rest queue).
    let server = std::sync::Arc::new(server);
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(
                async move { stream(&server, "/v1/chat/completions", &streaming(i)).await },
            )
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let sse = t.await.unwrap();
        let chunks = sse.chunks();
        for c in &chunks {
            // No chunk of another request in this stream.
            assert_eq!(c["id"], chunks[0]["id"]);
        }
        assert!(ids.insert(chunks[0]["id"].as_str().unwrap().to_string()));
        let together = assemble_chat(&chunks, 1).remove(0);
        assert_eq!(together, alone[i].0, "request {i}");
        assert_eq!(
            chunks.last().unwrap()["usage"]["completion_tokens"],
            alone[i].1
        );
    }
    server.wait_metric(RUNNING, |v| v == 0.0).await;
}

/// The client hangs up after two frames of a request that would run for 2500 tokens. Its
/// cancellation races the generation; an attempt whose request finished first (a very slow
/// client) proves nothing and is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_frees_its_slot() {
    let server = TestServer::start(Setup {
        max_model_len: 2560,
        ..Setup::default()
    })
    .await;
    let body = chat_body(
        "go on forever",
        json!({"stream": true, "max_tokens": 2500, "ignore_eos": true}),
    );
    for _attempt in 0..5 {
        let cancelled = server.metric(CANCELLED).await;
        let res = server.open("/v1/chat/completions", &body).await;
        assert_eq!(res.status(), 200);
        let mut stream_body = res.into_body();
        let mut frames = 0;
        while frames < 2 {
            let f = stream_body.frame().await.expect("frames").unwrap();
            if f.is_data() {
                frames += 1;
            }
        }
        // Hang up: the body and the connection go.
        drop(stream_body);
        server.wait_metric(RUNNING, |v| v == 0.0).await;
        if server.metric(CANCELLED).await == cancelled + 1.0 {
            server
                .wait_metric(
                    "vllm:request_success_total{model_name=\"tiny\",finished_reason=\"abort\"}",
                    |v| v >= 1.0,
                )
                .await;
            return;
        }
    }
    panic!("in five attempts the request always finished before the hang-up was seen");
}

#[tokio::test]
async fn metrics_use_vllm_names() {
    let server = TestServer::start(Setup::default()).await;
    let r = server
        .post(
            "/v1/chat/completions",
            &chat_body("hi", json!({"max_tokens": 5, "ignore_eos": true})),
        )
        .await;
    assert_eq!(r.status, 200);
    let m = server.get("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    for name in [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:request_queue_time_seconds_bucket",
    ] {
        assert!(
            m.text.contains(&format!("\n{name}{{model_name=\"tiny\"")),
            "{name} missing:\n{}",
            m.text
        );
    }
    assert_eq!(
        metric_value(&m.text, "vllm:generation_tokens_total{model_name=\"tiny\"}"),
        Some(5.0)
    );
    assert_eq!(
        metric_value(
            &m.text,
            "vllm:request_success_total{model_name=\"tiny\",finished_reason=\"length\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &m.text,
            "vllm:time_to_first_token_seconds_count{model_name=\"tiny\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &m.text,
            "vllm:inter_token_latency_seconds_count{model_name=\"tiny\"}"
        ),
        Some(4.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_streams_finish_and_refuses_new_work() {
    let mut server = TestServer::start(Setup::default()).await;
    let body = chat_body(
        "finish me",
        json!({"stream": true, "max_tokens": 40, "ignore_eos": true}),
    );
    let res = server.open("/v1/chat/completions", &body).await;
    let mut stream_body = res.into_body();
    // The stream is running (its first frame arrived) when the signal comes.
    stream_body.frame().await.unwrap().unwrap();
    let served = server.signal_shutdown();
    let rest = tokio::time::timeout(DEADLINE, stream_body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let rest = String::from_utf8(rest.to_vec()).unwrap();
    assert!(rest.contains("\"finish_reason\":\"length\""), "{rest}");
    assert!(rest.ends_with("data: [DONE]\n\n"));
    tokio::time::timeout(DEADLINE, served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The listener is closed.
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
    assert!(!server.engine.is_accepting());
}

/// With no drain time, a stream still running at shutdown ends with an in-band error, then
/// `[DONE]`. Whether it is still running when the engine is told races its 2500 tokens; an
/// attempt whose stream finished first proves nothing and is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_still_running_when_the_drain_time_is_over_end_with_an_in_band_error() {
    for _attempt in 0..5 {
        let mut setup = Setup {
            max_model_len: 2560,
            ..Setup::default()
        };
        setup.config.drain_timeout = Duration::ZERO;
        let mut server = TestServer::start(setup).await;
        let body = chat_body(
            "never ends",
            json!({"stream": true, "max_tokens": 2500, "ignore_eos": true}),
        );
        let res = server.open("/v1/chat/completions", &body).await;
        let mut stream_body = res.into_body();
        stream_body.frame().await.unwrap().unwrap();
        let served = server.signal_shutdown();
        let rest = tokio::time::timeout(DEADLINE, stream_body.collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        tokio::time::timeout(DEADLINE, served)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let rest = String::from_utf8(rest.to_vec()).unwrap();
        let tail: Vec<&str> = rest.trim_end().rsplit("\n\n").take(2).collect();
        assert_eq!(tail[0], "data: [DONE]");
        if tail[1].contains("\"finish_reason\":\"length\"") {
            continue;
        }
        let err: Value = serde_json::from_str(tail[1].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(err["error"]["type"], "server_error");
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"));
        return;
    }
    panic!("in five attempts the stream always finished before the shutdown reached it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_in_the_queue_are_answered_in_turn() {
    // One running sequence at a time: the others wait in the engine's queue.
    let server = std::sync::Arc::new(
        TestServer::start(Setup {
            engine: ServeConfig {
                max_num_seqs: 1,
                ..ServeConfig::default()
            },
            ..Setup::default()
        })
        .await,
    );
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move {
                server
                    .post(
                        "/v1/completions",
                        &json!({"model": MODEL, "prompt": format!("queued {i}"),
                        "max_tokens": 6, "temperature": 0, "ignore_eos": true}),
                    )
                    .await
            })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["usage"]["completion_tokens"], 6);
    }
}
