//! Shared helpers for the HTTP tests: a server on 127.0.0.1:0 over the tiny fixture model
//! (random weights: noise, but deterministic at temperature 0), an HTTP/1.1 client, SSE parsing,
//! and waiting for a metric with a deadline (never a sleep standing in for synchronization).

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jing_engine::{Engine, EngineHandle, ServeConfig};
use jing_server::{ServedModel, Server, ServerConfig};
use jing_tokenizer::template::{ChatTemplate, SpecialTokens};
use jing_tokenizer::Tokenizer;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The name the test servers serve the model under.
pub const MODEL: &str = "tiny";

/// A condition not met within this long fails the test (generous: the machine may be busy).
pub const DEADLINE: Duration = Duration::from_secs(120);

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

/// Which chat template the server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// The fixture's own (R1-style: the prompt ends with `<think>\n`, so the output reasons).
    Fixture,
    /// DeepSeek-V3's (no forced reasoning: the output is answer text).
    V3,
    /// DeepSeek-R1's real template.
    R1,
    /// DeepSeek-V3.1's (its own tool-call syntax).
    V31,
}

/// How to build a test server.
pub struct Setup {
    pub template: Template,
    pub config: ServerConfig,
    pub engine: ServeConfig,
    pub max_model_len: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            template: Template::V3,
            config: ServerConfig {
                served_model_names: vec![MODEL.into()],
                ..ServerConfig::default()
            },
            engine: ServeConfig {
                max_num_seqs: 8,
                ..ServeConfig::default()
            },
            max_model_len: 512,
        }
    }
}

/// A running test server; dropping it triggers its shutdown.
pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: EngineHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(setup: Setup) -> TestServer {
        let dir = fixture("deepseek-v3-tiny");
        let engine = Engine::load(&dir, Some(1), Some(setup.max_model_len)).expect("fixture loads");
        let tokenizer = Tokenizer::from_model_dir(&dir).expect("fixture tokenizer");
        let file = match setup.template {
            Template::Fixture => None,
            Template::V3 => Some("templates/deepseek-v3.jinja"),
            Template::R1 => Some("templates/deepseek-r1.jinja"),
            Template::V31 => Some("templates/deepseek-v3.1.jinja"),
        };
        let template = match file {
            None => ChatTemplate::for_model(&dir, &tokenizer).expect("fixture template"),
            Some(f) => {
                ChatTemplate::from_file(&fixture(f), SpecialTokens::from_tokenizer(&tokenizer))
                    .expect("template file")
            }
        };
        let handle = EngineHandle::start(engine, setup.engine);
        let server = Server::new(setup.config);
        server.install(ServedModel::new(handle.clone(), tokenizer, Some(template)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
        });
        TestServer {
            addr,
            engine: handle,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Signal shutdown and wait for `serve` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("the server stops")
                .unwrap()
                .unwrap();
        }
    }

    /// Signal shutdown without waiting.
    pub fn signal_shutdown(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("running")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        send(self.addr, "POST", path, &[], Some(body.to_string())).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(self.addr, "GET", path, &[], None).await
    }

    /// A streaming request: the response head, and its body to read frame by frame.
    pub async fn open(&self, path: &str, body: &Value) -> Response<Incoming> {
        request(self.addr, "POST", path, &[], Some(body.to_string())).await
    }

    /// The value of a metric line (`name{labels...} value`), exact name and label match.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").await.text;
        metric_value(&text, series)
            .unwrap_or_else(|| panic!("no metric series `{series}` in:\n{text}"))
    }

    /// Poll `/metrics` until `series` satisfies `ok` (fails after [`DEADLINE`]).
    pub async fn wait_metric(&self, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let start = Instant::now();
        loop {
            let v = self.metric(series).await;
            if ok(v) {
                return v;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "`{series}` stayed at {v}:\n{}",
                self.get("/metrics").await.text
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OpenAI error envelope with all four keys and this status; returns the
    /// `error` object.
    pub fn assert_error(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        let v = self.json();
        let e = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("no error object: {v}"));
        assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
        let keys: Vec<&str> = e.keys().map(String::as_str).collect();
        for k in ["message", "type", "param", "code"] {
            assert!(keys.contains(&k), "`{k}` missing from {v}");
        }
        assert_eq!(e.len(), 4, "{v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["type"].is_string(), "{v}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.text
        );
        Value::Object(e.clone())
    }
}

/// Send one request on a fresh connection and return the response head (the body streams).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    sender.send_request(req).await.unwrap()
}

/// Send one request and read the whole response.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Reply {
    let res = request(addr, method, path, headers, body).await;
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = tokio::time::timeout(DEADLINE, res.into_body().collect())
        .await
        .expect("the response ends")
        .unwrap()
        .to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
    }
}

/// A streamed response read to its end: the raw body and its events.
pub struct Sse {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub raw: String,
}

impl Sse {
    /// The `data:` payloads, `[DONE]` included, in order. Checks the framing: every event is
    /// `data: <one line>` or a `:` comment, each followed by a blank line, nothing else.
    pub fn events(&self) -> Vec<String> {
        assert!(
            self.raw.ends_with("\n\n"),
            "unterminated stream: {:?}",
            self.raw
        );
        let mut out = Vec::new();
        for block in self.raw[..self.raw.len() - 2].split("\n\n") {
            assert!(!block.contains('\n'), "multi-line event {block:?}");
            if block.starts_with(':') {
                continue;
            }
            let data = block
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data line: {block:?}"));
            out.push(data.to_string());
        }
        out
    }

    /// The JSON chunks (everything before `[DONE]`, which must be last and only once).
    pub fn chunks(&self) -> Vec<Value> {
        let events = self.events();
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{}",
            self.raw
        );
        assert_eq!(events.iter().filter(|e| *e == "[DONE]").count(), 1);
        events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{err}: {e}")))
            .collect()
    }
}

/// Stream a request to its end.
pub async fn stream(server: &TestServer, path: &str, body: &Value) -> Sse {
    let res = server.open(path, body).await;
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = tokio::time::timeout(DEADLINE, res.into_body().collect())
        .await
        .expect("the stream ends")
        .unwrap()
        .to_bytes();
    Sse {
        status,
        headers,
        raw: String::from_utf8(bytes.to_vec()).expect("UTF-8 stream"),
    }
}

/// A chat request body with greedy sampling.
pub fn chat_body(content: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": 16,
    });
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body
}

/// What a streamed chat choice adds up to.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Assembled {
    pub content: String,
    pub reasoning: String,
    pub finish_reason: Option<String>,
    pub tool_calls: Vec<Value>,
}

/// Accumulate the deltas of a chat stream, per choice index.
pub fn assemble_chat(chunks: &[Value], n: usize) -> Vec<Assembled> {
    let mut out = vec![Assembled::default(); n];
    for c in chunks {
        for choice in c["choices"].as_array().unwrap() {
            let i = choice["index"].as_u64().unwrap() as usize;
            let d = &choice["delta"];
            if let Some(t) = d["content"].as_str() {
                out[i].content.push_str(t);
            }
            if let Some(t) = d["reasoning_content"].as_str() {
                out[i].reasoning.push_str(t);
            }
            if let Some(r) = choice["finish_reason"].as_str() {
                assert!(
                    out[i].finish_reason.is_none(),
                    "two finish reasons for choice {i}"
                );
                out[i].finish_reason = Some(r.to_string());
            }
            if let Some(calls) = d["tool_calls"].as_array() {
                out[i].tool_calls.extend(calls.iter().cloned());
            }
        }
    }
    out
}

/// A `logit_bias` that keeps the fixture's special tokens (BOS, pad, role and tool markers,
/// `<think>`, `</think>`) out of the output; EOS stays possible.
pub fn no_special_tokens() -> Value {
    let mut bias = serde_json::Map::new();
    for id in [
        0, 2, 480, 481, 482, 483, 484, 485, 486, 487, 488, 489, 490, 491, 492, 493,
    ] {
        bias.insert(id.to_string(), json!(-100));
    }
    Value::Object(bias)
}
