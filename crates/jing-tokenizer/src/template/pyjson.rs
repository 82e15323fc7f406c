//! The `tojson` filter exactly as Hugging Face defines it for chat templates:
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None,
//! sort_keys=False)`, byte for byte.
//!
//! Python's output differs from `serde_json`'s in the separators (`", "` and
//! `": "` without an indent, `","` and `": "` with one), in float formatting
//! (`1e+16`, `1.0`), in `NaN`/`Infinity`, and in what `ensure_ascii` escapes,
//! so the serializer is written out here.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, State, Value};

use super::pyfmt::py_float_repr;

/// Deepest nesting `tojson` follows; deeper (or self-containing) values are
/// an error, as Python's "Circular reference detected" is.
const MAX_DEPTH: usize = 128;

/// Bytes of output between two fuel charges.
const CHARGE_EVERY: usize = 4096;

/// The `json.dumps` options the filter accepts.
#[derive(Debug, Clone)]
struct Options {
    ensure_ascii: bool,
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
    sort_keys: bool,
}

/// The filter: `value | tojson(ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`. `ensure_ascii` and `indent` may also
/// be given by position; `separators` and `sort_keys` only by keyword
/// (minijinja functions take at most five parameters).
pub(crate) fn tojson(
    state: &State,
    value: &Value,
    ensure_ascii: Option<Value>,
    indent: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let pick = |positional: Option<Value>, name: &str| -> Result<Option<Value>, Error> {
        let keyword: Option<Value> = kwargs.get(name)?;
        match (positional, keyword) {
            (Some(_), Some(_)) => Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("tojson() got multiple values for argument '{name}'"),
            )),
            (p, k) => Ok(p.or(k).filter(|v| !v.is_none() && !v.is_undefined())),
        }
    };
    let ensure_ascii = pick(ensure_ascii, "ensure_ascii")?.is_some_and(|v| v.is_true());
    let indent = match pick(indent, "indent")? {
        None => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or("").to_string()),
        Some(v) => match v.as_i64() {
            Some(n) => Some(" ".repeat(usize::try_from(n).unwrap_or(0).min(64))),
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson(): indent must be an integer or a string",
                ))
            }
        },
    };
    let (item_separator, key_separator) = match pick(None, "separators")? {
        Some(v) => separators_of(&v)?,
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let sort_keys = pick(None, "sort_keys")?.is_some_and(|v| v.is_true());
    kwargs.assert_all_used()?;

    let opts = Options {
        ensure_ascii,
        indent,
        item_separator,
        key_separator,
        sort_keys,
    };
    let mut w = Writer {
        state,
        out: String::new(),
        charged: 0,
    };
    w.value(value, &opts, 0)?;
    Ok(Value::from(w.out))
}

fn separators_of(v: &Value) -> Result<(String, String), Error> {
    let items: Vec<Value> = v.try_iter().map(|i| i.collect()).unwrap_or_default();
    match items.as_slice() {
        [a, b] if a.as_str().is_some() && b.as_str().is_some() => Ok((
            a.as_str().unwrap_or_default().to_string(),
            b.as_str().unwrap_or_default().to_string(),
        )),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson(): separators must be a pair of strings",
        )),
    }
}

struct Writer<'a, 'b, 'c> {
    state: &'a State<'b, 'c>,
    out: String,
    charged: usize,
}

impl Writer<'_, '_, '_> {
    /// Pays fuel for the output as it grows, so that a huge serialization
    /// stops when the budget is spent instead of after it was built.
    fn charge(&mut self) -> Result<(), Error> {
        if self.out.len() - self.charged >= CHARGE_EVERY {
            let units = (self.out.len() - self.charged) / 64;
            self.charged = self.out.len();
            self.state.consume_fuel(units as u64)?;
        }
        Ok(())
    }

    fn value(&mut self, v: &Value, o: &Options, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "tojson(): nesting too deep (or circular reference)",
            ));
        }
        match v.kind() {
            ValueKind::None => self.out.push_str("null"),
            ValueKind::Bool => self
                .out
                .push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number => self.number(v),
            ValueKind::String => self.string(v.as_str().unwrap_or_default(), o),
            ValueKind::Seq | ValueKind::Iterable => self.seq(v, o, depth)?,
            ValueKind::Map => self.map(v, o, depth)?,
            ValueKind::Undefined => {
                return Err(Error::new(
                    ErrorKind::UndefinedError,
                    "tojson(): Object of type Undefined is not JSON serializable",
                ))
            }
            kind => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson(): Object of type {kind} is not JSON serializable"),
                ))
            }
        }
        self.charge()
    }

    fn number(&mut self, v: &Value) {
        if v.is_integer() {
            self.out.push_str(&v.to_string());
            return;
        }
        match f64::try_from(v.clone()) {
            Ok(f) if f.is_nan() => self.out.push_str("NaN"),
            Ok(f) if f.is_infinite() => {
                self.out
                    .push_str(if f > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Ok(f) => self.out.push_str(&py_float_repr(f)),
            Err(_) => self.out.push_str(&v.to_string()),
        }
    }

    fn string(&mut self, s: &str, o: &Options) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                c if (c as u32) < 0x20 => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                c if o.ensure_ascii && (c as u32) > 0x7e => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        self.out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn newline(&mut self, o: &Options, depth: usize) {
        if let Some(indent) = &o.indent {
            self.out.push('\n');
            for _ in 0..depth {
                self.out.push_str(indent);
            }
        }
    }

    fn seq(&mut self, v: &Value, o: &Options, depth: usize) -> Result<(), Error> {
        // Walk lazily, paying for every item: a lazily concatenated list can
        // stand for billions of items.
        let mut empty = true;
        self.out.push('[');
        for item in v.try_iter()? {
            self.state.consume_fuel(1)?;
            if !empty {
                self.out.push_str(&o.item_separator);
            }
            empty = false;
            self.newline(o, depth + 1);
            self.value(&item, o, depth + 1)?;
        }
        if empty {
            self.out.push(']');
            return Ok(());
        }
        self.newline(o, depth);
        self.out.push(']');
        Ok(())
    }

    fn map(&mut self, v: &Value, o: &Options, depth: usize) -> Result<(), Error> {
        let mut entries = Vec::new();
        for key in v.try_iter()? {
            self.state.consume_fuel(1)?;
            let item = v.get_item(&key)?;
            entries.push((self.key(&key, o)?, item));
        }
        if o.sort_keys {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
        if entries.is_empty() {
            self.out.push_str("{}");
            return Ok(());
        }
        self.out.push('{');
        for (i, (key, item)) in entries.iter().enumerate() {
            if i > 0 {
                self.out.push_str(&o.item_separator);
            }
            self.newline(o, depth + 1);
            self.string(key, o);
            self.out.push_str(&o.key_separator);
            self.value(item, o, depth + 1)?;
        }
        self.newline(o, depth);
        self.out.push('}');
        Ok(())
    }

    /// A dict key as Python's json turns it into a string.
    fn key(&self, key: &Value, _o: &Options) -> Result<String, Error> {
        Ok(match key.kind() {
            ValueKind::String => key.as_str().unwrap_or_default().to_string(),
            ValueKind::None => "null".to_string(),
            ValueKind::Bool => if key.is_true() { "true" } else { "false" }.to_string(),
            ValueKind::Number if key.is_integer() => key.to_string(),
            ValueKind::Number => match f64::try_from(key.clone()) {
                Ok(f) if f.is_nan() => "NaN".to_string(),
                Ok(f) if f.is_infinite() => {
                    if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
                }
                Ok(f) => py_float_repr(f),
                Err(_) => key.to_string(),
            },
            kind => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson(): keys must be str, int, float, bool or None, not {kind}"),
                ))
            }
        })
    }
}
