//! `jing chat`: a scripted two-turn conversation from a pipe, and the same through a
//! pseudo-terminal (util-linux `script`), where the prompt and the dimmed reasoning appear.

mod common;

use common::run_program;

const CONVERSATION: &str =
    "What is 2+2?\n/system Be brief.\nAnd 3+3?\n/reset\nHello again\n/exit\nnever read\n";

#[test]
fn two_turns_from_a_pipe() {
    let exe = env!("CARGO_BIN_EXE_jing");
    let run = run_program(
        exe,
        &["chat", "--max-tokens", "8", "--temperature", "0"],
        Some(CONVERSATION),
    );
    let (code, stderr) = (run.code, run.stderr);
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
    let run = run_program(
        "script",
        &["-q", "-e", "-c", &command, "/dev/null"],
        Some("What is 2+2?\nAnd 3+3?\n/exit\n"),
    );
    let (code, stdout, stderr) = (run.code, run.stdout, run.stderr);
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("/reset clears the history"), "{stdout}");
    assert!(stdout.matches("> ").count() >= 3, "{stdout}");
    // The demo model reasons first (8 tokens do not reach its `</think>`): shown dimmed.
    assert!(stdout.contains("\x1b[2m"), "{stdout}");
    assert_eq!(stdout.matches(" tokens, ").count(), 2, "{stdout}");
}
