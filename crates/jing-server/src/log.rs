//! The server's log: one line per event on stderr, prefixed with the UTC time. Request and
//! response text appear only with `--log-requests` (prompts are private by default).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// `HH:MM:SS.mmm` (UTC) of now.
fn clock() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Write one log line.
pub fn line(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{} {msg}", clock());
}
