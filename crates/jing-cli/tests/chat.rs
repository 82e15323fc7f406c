//! `jing chat`: a scripted two-turn conversation from a pipe, and the same through a
//! pseudo-terminal (util-linux `script`), where the prompt and the dimmed reasoning appear.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `program args` with `input` on stdin; (exit code, stdout, stderr), killed after 60 s.
fn run_with_input(program: &str, args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(input.as_bytes())
        .expect("write the conversation");
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{program} {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&out_t.join().expect("reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().expect("reader")).into_owned();
    (status.code(), stdout, stderr)
}

const CONVERSATION: &str =
    "What is 2+2?\n/system Be brief.\nAnd 3+3?\n/reset\nHello again\n/exit\nnever read\n";

#[test]
fn two_turns_from_a_pipe() {
    let exe = env!("CARGO_BIN_EXE_jing");
    let (code, _stdout, stderr) = run_with_input(
        exe,
        &["chat", "--max-tokens", "8", "--temperature", "0"],
        CONVERSATION,
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    // Three answers (one per user line before /exit), each followed by its statistics.
    assert_eq!(stderr.matches(" tokens, ").count(), 3, "stderr: {stderr}");
    assert!(
        stderr.contains("(system prompt set; history cleared)"),
        "{stderr}"
    );
    assert!(stderr.contains("(history cleared)"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn interactive_in_a_terminal() {
    let exe = env!("CARGO_BIN_EXE_jing");
    let command = format!("{exe} chat --max-tokens 8 --temperature 0");
    // `script` gives the child a pseudo-terminal, so jing runs its interactive mode.
    let (code, stdout, stderr) = run_with_input(
        "script",
        &["-q", "-e", "-c", &command, "/dev/null"],
        "What is 2+2?\nAnd 3+3?\n/exit\n",
    );
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("/reset clears the history"), "{stdout}");
    assert!(stdout.matches("> ").count() >= 3, "{stdout}");
    // The demo model never closes its reasoning: it is shown dimmed.
    assert!(stdout.contains("\x1b[2m"), "{stdout}");
    assert_eq!(stdout.matches(" tokens, ").count(), 2, "{stdout}");
}
