//! The minijinja environment set up the way transformers sets up jinja2 for
//! chat templates, and the mapping of minijinja's errors onto
//! [`TemplateError`].
//!
//! transformers compiles templates with `ImmutableSandboxedEnvironment(
//! trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])`, default
//! `Undefined` (prints as nothing, is falsy, iterates as empty; attribute
//! access on it fails), its own `tojson`, and the globals `raise_exception`,
//! `strftime_now`, `dict` and `namespace`. Here the same is done with
//! minijinja plus:
//!
//! * Python's string methods (`strip`, `split`, `startswith`, `items`, ...)
//!   through `minijinja_contrib::pycompat`, with `strip`/`lstrip`/`rstrip`/
//!   `split`/`rsplit` reimplemented for Python's exact whitespace and
//!   `maxsplit` semantics;
//! * `{{ value }}` printing as Python's `str()` does (`None`, `True`, `1.0`,
//!   `['a']`) rather than minijinja's `none`/`true`;
//! * no auto-escaping, whatever the template name;
//! * the `trim` and `string` filters with Python semantics, and `pprint` as
//!   Python's `repr`;
//! * fuel, a recursion limit and an output cap against hostile templates
//!   (with minijinja patched to charge its own walks over values, see
//!   `vendor/minijinja/JING_PATCH.md`).

use std::io;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{from_args, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

use super::error::TemplateError;
use super::pyfmt::{py_split, py_split_count, py_str_bounded, py_strip};
use super::{clock, pyjson, RenderLimits};

/// How deeply nested a value minijinja prints, compares or hashes
/// (`MAX_NESTING` in vendor/minijinja/src/vm/walk.rs).
pub(crate) const VALUE_NESTING_LIMIT: usize = 256;

/// The name every template is compiled under in its own environment.
pub(crate) const TEMPLATE_NAME: &str = "chat_template";

/// The error `raise_exception` returns, recognised again in [`map_error`].
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

/// Compiles one template into an environment of its own (no loader, so
/// `{% include %}` and `{% import %}` find nothing, as with transformers'
/// `env.from_string`).
pub(crate) fn compile(
    name: &str,
    source: String,
    limits: &RenderLimits,
) -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    let mut syntax = SyntaxConfig::builder();
    syntax
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(false);
    let syntax = syntax.build().map_err(|e| TemplateError::Syntax {
        name: name.to_string(),
        message: e.to_string(),
    })?;
    env.set_syntax(syntax);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    let cap = limits.max_output_bytes;
    env.set_formatter(move |out, state, value| {
        if let Some(s) = value.as_str() {
            out.write_str(s)?;
        } else if !value.is_undefined() {
            // Anything longer than the output cap could not be written anyway.
            let text = str_of(state, value, cap).map_err(|e| {
                if e.kind() == ErrorKind::OutOfFuel {
                    e
                } else {
                    Error::new(ErrorKind::WriteFailure, "rendered prompt too large")
                        .with_source(OutputCapped)
                }
            })?;
            out.write_str(&text)?;
        }
        Ok(())
    });
    env.set_unknown_method_callback(py_methods);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(limits.recursion_limit);

    env.add_filter("tojson", pyjson::tojson);
    env.add_filter(
        "trim",
        |state: &State, value: &Value, chars: Option<String>| -> Result<Value, Error> {
            // As `strip`: sorting `chars` costs more than a copy.
            state.consume_fuel(chars.as_ref().map_or(0, |c| c.len() as u64 / 4))?;
            let s = str_of(state, value, usize::MAX)?;
            Ok(Value::from(py_strip(&s, chars.as_deref(), true, true)))
        },
    );
    env.add_filter(
        "string",
        |state: &State, value: &Value| -> Result<Value, Error> {
            if value.kind() == ValueKind::String {
                Ok(value.clone())
            } else {
                Ok(Value::from(str_of(state, value, usize::MAX)?))
            }
        },
    );
    // jinja2's `pprint` is Python's `pprint.pformat`. minijinja's pretty
    // printer indents every level, which takes time in the square of the
    // nesting depth; Python's repr (pformat without line wrapping) is closer
    // to jinja2 and bounded like `string`.
    env.add_filter(
        "pprint",
        |state: &State, value: &Value| -> Result<Value, Error> {
            Ok(Value::from(text_of(state, value, usize::MAX, true)?))
        },
    );
    env.add_filter("float", |value: &Value, default: Option<Value>| -> Value {
        py_float(value)
            .map(Value::from)
            .unwrap_or_else(|| default.unwrap_or(Value::from(0.0)))
    });
    env.add_filter("int", |value: &Value, default: Option<Value>| -> Value {
        py_int(value)
            .map(Value::from)
            .unwrap_or_else(|| default.unwrap_or(Value::from(0)))
    });
    env.add_filter(
        "wordcount",
        |state: &State, value: &Value| -> Result<usize, Error> {
            Ok(str_of(state, value, usize::MAX)?
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .count())
        },
    );
    // jinja2's `sequence` test is "has a length and supports indexing":
    // strings and dicts pass too.
    env.add_test("sequence", |value: &Value| -> bool {
        matches!(
            value.kind(),
            ValueKind::Undefined
                | ValueKind::String
                | ValueKind::Seq
                | ValueKind::Map
                | ValueKind::Bytes
        )
    });
    env.add_function(
        "raise_exception",
        |state: &State, message: Value| -> Result<Value, Error> {
            let message = str_of(state, &message, usize::MAX)?;
            Err(Error::new(ErrorKind::InvalidOperation, message.clone())
                .with_source(Raised(message)))
        },
    );
    env.add_function(
        "strftime_now",
        |state: &State, format: String| -> Result<String, Error> {
            // Each two-byte directive can print a few dozen bytes: pay for
            // them before they are made.
            state.consume_fuel(format.len() as u64 / 4)?;
            Ok(clock::strftime_now(&format))
        },
    );

    // A bug in the compiler that panics on some source must fail this
    // template, not the thread that loads it.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        env.add_template_owned(TEMPLATE_NAME, source)
    }))
    .map_err(|panic| TemplateError::Syntax {
        name: name.to_string(),
        message: format!("the template compiler failed: {}", panic_message(&*panic)),
    })?
    .map_err(|e| TemplateError::Syntax {
        name: name.to_string(),
        message: describe(&e),
    })?;
    Ok(env)
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic")
}

/// The error the formatter returns for a value too large to print,
/// recognised again in [`map_error`].
#[derive(Debug)]
struct OutputCapped;

impl std::fmt::Display for OutputCapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rendered prompt too large")
    }
}

impl std::error::Error for OutputCapped {}

/// Python's `str(value)`, built only as far as `cap` bytes and the
/// remaining fuel allow: one unit per list item or dict entry visited and
/// about one per 64 bytes. Fails with `OutOfFuel` when the fuel runs out,
/// and with `WriteFailure` when `cap` is reached.
fn str_of(state: &State, value: &Value, cap: usize) -> Result<String, Error> {
    if let Some(s) = value.as_str() {
        return Ok(s.to_string());
    }
    text_of(state, value, cap, false)
}

/// [`str_of`], or Python's `repr(value)` when `repr` is set.
fn text_of(state: &State, value: &Value, cap: usize, repr: bool) -> Result<String, Error> {
    let by_fuel = match state.fuel_levels() {
        Some((_, remaining)) => usize::try_from(remaining.saturating_mul(64)).unwrap_or(usize::MAX),
        None => usize::MAX,
    };
    let mut out_of_fuel = false;
    let mut per_item = || {
        let ok = state.consume_fuel(1).is_ok();
        out_of_fuel |= !ok;
        ok
    };
    match py_str_bounded(value, cap.min(by_fuel), repr, &mut per_item) {
        Some(s) => Ok(s),
        None if out_of_fuel || by_fuel <= cap => Err(Error::new(
            ErrorKind::OutOfFuel,
            "value too large to turn into a string",
        )),
        None => Err(Error::new(
            ErrorKind::WriteFailure,
            "value too large to print",
        )),
    }
}

/// jinja2's `float` filter conversion: numbers, booleans and numeric
/// strings (surrounding whitespace allowed); `None` when Python's `float()`
/// would fail.
fn py_float(value: &Value) -> Option<f64> {
    match value.kind() {
        ValueKind::Number | ValueKind::Bool => f64::try_from(value.clone())
            .ok()
            .or_else(|| Some(if value.is_true() { 1.0 } else { 0.0 })),
        ValueKind::String => {
            let s = py_strip(value.as_str()?, None, true, true).replace('_', "");
            s.parse::<f64>().ok()
        }
        _ => None,
    }
}

/// jinja2's `int` filter conversion: integers, floats (truncated), booleans
/// and strings holding an integer or a float.
fn py_int(value: &Value) -> Option<i64> {
    match value.kind() {
        ValueKind::Number if value.is_integer() => value.as_i64(),
        ValueKind::Number => f64::try_from(value.clone()).ok().and_then(float_to_int),
        ValueKind::Bool => Some(i64::from(value.is_true())),
        ValueKind::String => {
            let s = py_strip(value.as_str()?, None, true, true).replace('_', "");
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(float_to_int))
        }
        _ => None,
    }
}

fn float_to_int(f: f64) -> Option<i64> {
    (f.is_finite() && f.abs() < 9.2e18).then_some(f.trunc() as i64)
}

/// Python's methods on strings, dicts and lists: the ones whose Rust
/// counterparts differ here, then `minijinja_contrib::pycompat` for the rest.
fn py_methods(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        match method {
            "strip" | "lstrip" | "rstrip" => {
                let (chars,): (Option<Value>,) = from_args(args)?;
                let chars = chars.filter(|c| !c.is_none());
                let chars = chars.as_ref().map(|c| c.as_str().map(str::to_string));
                let chars = match chars {
                    Some(None) => {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            format!("{method} arg must be None or str"),
                        ))
                    }
                    Some(Some(c)) => Some(c),
                    None => None,
                };
                // Matching against a sorted `chars` costs more than the one
                // byte a string argument pays for.
                state.consume_fuel(chars.as_ref().map_or(0, |c| c.len() as u64 / 4))?;
                let (l, r) = match method {
                    "strip" => (true, true),
                    "lstrip" => (true, false),
                    _ => (false, true),
                };
                return Ok(Value::from(py_strip(s, chars.as_deref(), l, r)));
            }
            "split" | "rsplit" => {
                let (sep, maxsplit): (Option<Value>, Option<i64>) = from_args(args)?;
                let sep = match &sep {
                    Some(v) if v.is_none() => None,
                    Some(v) => Some(v.as_str().ok_or_else(|| {
                        Error::new(ErrorKind::InvalidOperation, "must be str or None")
                    })?),
                    None => None,
                };
                let maxsplit = maxsplit.unwrap_or(-1);
                // Pay for the parts before making them: a short string can
                // split into millions of them.
                state.consume_fuel(py_split_count(s, sep, maxsplit) as u64)?;
                let parts = py_split(s, sep, maxsplit, method == "rsplit")
                    .map_err(|m| Error::new(ErrorKind::InvalidOperation, m))?;
                return Ok(Value::from(parts));
            }
            "splitlines" => {
                // pycompat's, paid for ahead like `split`.
                state.consume_fuel(s.bytes().filter(|&b| b == b'\n').count() as u64 + 1)?;
            }
            _ => {}
        }
    }
    if matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable) && method == "count" {
        // pycompat's count walks the list without paying fuel.
        let (what,): (&Value,) = from_args(args)?;
        let mut n = 0usize;
        for item in value.try_iter()? {
            state.consume_fuel(1)?;
            n += usize::from(item == *what);
        }
        return Ok(Value::from(n));
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// An `io::Write` that keeps at most `limit` bytes and fails past them.
pub(crate) struct CappedSink {
    /// What was written.
    pub(crate) buf: Vec<u8>,
    limit: usize,
    /// Whether a write went past the limit.
    pub(crate) exceeded: bool,
}

impl CappedSink {
    pub(crate) fn new(limit: usize) -> Self {
        CappedSink {
            buf: Vec::new(),
            limit,
            exceeded: false,
        }
    }
}

impl io::Write for CappedSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("rendered prompt too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Turns a rendering error into a [`TemplateError`].
pub(crate) fn map_error(
    err: &Error,
    limits: &RenderLimits,
    output_exceeded: bool,
) -> TemplateError {
    if output_exceeded {
        return TemplateError::OutputTooLarge {
            limit: limits.max_output_bytes,
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<OutputCapped>().is_some() {
            return TemplateError::OutputTooLarge {
                limit: limits.max_output_bytes,
            };
        }
        if let Some(raised) = e.downcast_ref::<Raised>() {
            return TemplateError::Raised {
                message: raised.0.clone(),
            };
        }
        source = e.source();
    }
    match err.kind() {
        ErrorKind::OutOfFuel => TemplateError::OutOfFuel { fuel: limits.fuel },
        // The patched minijinja's limit on walking nested values
        // (vendor/minijinja/src/vm/walk.rs).
        ErrorKind::InvalidOperation
            if err
                .detail()
                .is_some_and(|d| d.contains("value is nested too deeply")) =>
        {
            TemplateError::RecursionLimit {
                limit: VALUE_NESTING_LIMIT,
            }
        }
        ErrorKind::InvalidOperation
            if err
                .detail()
                .is_some_and(|d| d.contains("recursion limit exceeded")) =>
        {
            TemplateError::RecursionLimit {
                limit: limits.recursion_limit,
            }
        }
        _ => TemplateError::Render {
            message: describe(err),
        },
    }
}

/// One line: the error and where in the template it happened.
fn describe(err: &Error) -> String {
    match err.line() {
        Some(line) => format!("{err} (line {line})"),
        None => err.to_string(),
    }
}
