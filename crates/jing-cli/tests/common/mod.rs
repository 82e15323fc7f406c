//! Shared helpers for the `jing` binary's integration tests: run the binary with a timeout,
//! read fixtures and goldens, make scratch copies of fixtures, and edit safetensors files.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// A child running longer than this is killed and the test fails (the models are tiny: every
/// command finishes in well under a second when it works).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A finished `jing` run.
pub struct Run {
    /// The command line, for failure messages.
    pub cmd: String,
    /// Exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics (with the whole output) unless the run exited 0.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "`{}` failed\nstdout:\n{}\nstderr:\n{}",
            self.cmd,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Stdout parsed as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!("`{}`: stdout is not JSON ({e}):\n{}", self.cmd, self.stdout)
        })
    }

    /// Asserts a clean failure: a non-zero exit code (not a signal, not a panic's 101), no
    /// panic message, and an `error: ...` line on stderr that contains every one of `needles`.
    /// Returns the error message (the stderr lines from `error:` on).
    pub fn assert_clean_error(&self, needles: &[&str]) -> String {
        let ctx = format!(
            "`{}`\nstdout:\n{}\nstderr:\n{}",
            self.cmd, self.stdout, self.stderr
        );
        let code = self
            .code
            .unwrap_or_else(|| panic!("killed by a signal: {ctx}"));
        assert_ne!(code, 0, "expected a failure: {ctx}");
        assert_ne!(code, 101, "exit code 101 is a Rust panic: {ctx}");
        assert!(!self.stderr.contains("panicked"), "panicked: {ctx}");
        assert!(!self.stderr.contains("RUST_BACKTRACE"), "panicked: {ctx}");
        let start = self
            .stderr
            .find("error: ")
            .unwrap_or_else(|| panic!("no `error: ` message on stderr: {ctx}"));
        let msg = self.stderr[start..].trim_end().to_string();
        for n in needles {
            assert!(
                msg.contains(n),
                "the error message does not mention `{n}`: {ctx}"
            );
        }
        // Shown with `cargo test -- --nocapture`: the exact messages users see.
        eprintln!("{} ->\n  {msg}", self.cmd);
        msg
    }
}

/// Run the `jing` binary with `args`, killing it after [`TIMEOUT`].
pub fn jing(args: &[&str]) -> Run {
    run_program(env!("CARGO_BIN_EXE_jing"), args, None)
}

/// Run `program args`, feeding `input` on stdin (or none), killed after [`TIMEOUT`].
pub fn run_program(program: &str, args: &[&str], input: Option<&str>) -> Run {
    let cmd = std::iter::once(program.to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_BACKTRACE")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    if let Some(text) = input {
        child
            .stdin
            .take()
            .expect("stdin piped")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
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
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{cmd}` did not finish in {TIMEOUT:?} (hang); killed it");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&out_t.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().expect("stderr reader")).into_owned();
    Run {
        cmd,
        code: status.code(),
        stdout,
        stderr,
    }
}

/// The fixture folder `tests/fixtures/<name>` at the workspace root.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// The 4 model fixtures.
pub const MODELS: [&str; 4] = [
    "deepseek-v3-tiny",
    "deepseek-v3-fp8-tiny",
    "deepseek-v2-lite-tiny",
    "deepseek-v2-tiny",
];

/// `golden.json` of a fixture.
pub fn golden(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("golden.json")).expect("golden.json");
    serde_json::from_str(&text).expect("valid golden.json")
}

/// A JSON array of integers.
pub fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, found {v}"))
        .iter()
        .map(|x| {
            x.as_u64()
                .unwrap_or_else(|| panic!("expected an id, found {x}"))
        })
        .collect()
}

/// A JSON array of numbers.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, found {v}"))
        .iter()
        .map(|x| {
            x.as_f64()
                .unwrap_or_else(|| panic!("expected a number, found {x}"))
        })
        .collect()
}

/// Ids as the `--prompt-ids` argument writes them: `0,5,7`.
pub fn id_list(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// A scratch folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// An empty folder `jing-cli-test-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("jing-cli-test-{}-{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// A folder holding a copy of every file of fixture `name`.
    pub fn copy_of(name: &str, label: &str) -> TempDir {
        let t = TempDir::new(label);
        for entry in std::fs::read_dir(fixture(name)).expect("fixture folder") {
            let entry = entry.expect("dir entry");
            if entry.file_type().expect("file type").is_file() {
                std::fs::copy(entry.path(), t.0.join(entry.file_name()))
                    .expect("copy fixture file");
            }
        }
        t
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    /// Edit `config.json` (or any JSON file) in place.
    pub fn edit_json(&self, file: &str, f: impl FnOnce(&mut Map<String, Value>)) {
        let path = self.join(file);
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read json"))
                .expect("json");
        f(v.as_object_mut().expect("a JSON object"));
        std::fs::write(&path, serde_json::to_string_pretty(&v).expect("serialize"))
            .expect("write json");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One tensor of a safetensors file, as read by [`read_safetensors`].
pub struct RawTensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

/// A whole safetensors file: `__metadata__` (if any) and the tensors in data order. Written
/// by hand (8-byte LE header length, JSON header, data) so the tests do not depend on the
/// reader they test.
pub struct RawSafetensors {
    pub metadata: Option<Value>,
    pub tensors: Vec<RawTensor>,
}

impl RawSafetensors {
    /// Remove the tensor `name` (which must exist).
    pub fn remove(&mut self, name: &str) -> RawTensor {
        let i = self
            .tensors
            .iter()
            .position(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"));
        self.tensors.remove(i)
    }

    pub fn get_mut(&mut self, name: &str) -> &mut RawTensor {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }
}

pub fn read_safetensors(path: &Path) -> RawSafetensors {
    let bytes = std::fs::read(path).expect("read safetensors");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).expect("header JSON");
    let data = &bytes[8 + n..];
    let mut metadata = None;
    let mut tensors = Vec::new();
    for (name, e) in header {
        if name == "__metadata__" {
            metadata = Some(e);
            continue;
        }
        let off = ids(&e["data_offsets"]);
        tensors.push(RawTensor {
            name,
            dtype: e["dtype"].as_str().expect("dtype").to_string(),
            shape: ids(&e["shape"]),
            data: data[off[0] as usize..off[1] as usize].to_vec(),
        });
    }
    RawSafetensors { metadata, tensors }
}

pub fn write_safetensors(path: &Path, st: &RawSafetensors) {
    let mut header = Map::new();
    if let Some(m) = &st.metadata {
        header.insert("__metadata__".into(), m.clone());
    }
    let mut data = Vec::new();
    for t in &st.tensors {
        let begin = data.len();
        data.extend_from_slice(&t.data);
        header.insert(
            t.name.clone(),
            serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let mut h = Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    std::fs::write(path, out).expect("write safetensors");
}
