//! `jing serve` as a user runs it: it binds, loads, prints the URL and a curl example, answers
//! over HTTP, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(120);

/// Kills the server if the test fails before it stopped it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_answers_over_http_and_stops_on_sigterm() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/deepseek-v3-tiny");
    let child = Command::new(env!("CARGO_BIN_EXE_jing"))
        .args([
            "serve",
            "--port",
            "0",
            "--threads",
            "1",
            "--served-model-name",
            "tiny",
            "--model",
        ])
        .arg(&model)
        .env_remove("JING_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let mut stdout = BufReader::new(guard.0.stdout.take().unwrap());
    let mut banner = String::new();
    stdout.read_line(&mut banner).unwrap();
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|r| r.split("/v1").next())
        .unwrap_or_else(|| panic!("no URL in {banner:?}"))
        .to_string();
    let mut example = String::new();
    for _ in 0..3 {
        stdout.read_line(&mut example).unwrap();
    }
    assert!(
        example.contains(&format!("curl http://{addr}/v1/chat/completions")),
        "{example}"
    );
    assert!(example.contains("\"model\": \"tiny\""), "{example}");

    let health = http(
        &addr,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let body = r#"{"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0}"#;
    let reply = http(
        &addr,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"object\":\"chat.completion\""), "{reply}");

    let pid = guard.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "jing serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {status:?}\n{stderr}");
    // One access-log line per request, and no prompt text without --log-requests.
    assert!(stderr.contains("POST /v1/chat/completions 200"), "{stderr}");
    assert!(!stderr.contains("\"Hi\""), "{stderr}");
}
