//! Python's string behaviour where it differs from Rust's: `str()` and
//! `repr()` of template values, float `repr`, `str.isspace`, and the
//! `strip`/`split` family.

use minijinja::value::ValueKind;
use minijinja::Value;

/// How deep `str()` of nested lists and dicts goes before printing `...`
/// (also what stops a namespace that contains itself).
const MAX_REPR_DEPTH: usize = 64;

/// Python's `str.isspace` for one character: Rust's `char::is_whitespace`
/// plus the four ASCII separators U+001C..U+001F, which Python also counts.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str(value)` as Python prints it: `None`, `True`, `1.0`, `['a', 1]`,
/// `{'k': 'v'}`; undefined prints as nothing (jinja2's `Undefined`).
#[cfg(test)]
pub(crate) fn py_str(value: &Value) -> String {
    py_str_bounded(value, usize::MAX, false, &mut || true).unwrap_or_default()
}

/// [`py_str`] (or, with `repr`, Python's `repr`) that gives up (`None`) once
/// the text would exceed `limit` bytes: a lazily concatenated list can stand
/// for billions of items.
///
/// `per_item` is called for every list item and dict entry visited and stops
/// the walk when it returns false (the caller charges fuel there).
pub(crate) fn py_str_bounded(
    value: &Value,
    limit: usize,
    repr: bool,
    per_item: &mut dyn FnMut() -> bool,
) -> Option<String> {
    let mut out = Out {
        s: String::new(),
        limit,
        per_item,
    };
    write_value(&mut out, value, repr, 0).then_some(out.s)
}

/// `repr(value)` as Python prints it (strings quoted).
#[cfg(test)]
pub(crate) fn py_repr(value: &Value) -> String {
    let mut out = Out {
        s: String::new(),
        limit: usize::MAX,
        per_item: &mut || true,
    };
    write_value(&mut out, value, true, 0);
    out.s
}

/// A string that refuses to grow past `limit` bytes.
struct Out<'a> {
    s: String,
    limit: usize,
    per_item: &'a mut dyn FnMut() -> bool,
}

impl Out<'_> {
    /// Appends `text`; false once over the limit.
    fn push_str(&mut self, text: &str) -> bool {
        if self.s.len().saturating_add(text.len()) > self.limit {
            return false;
        }
        self.s.push_str(text);
        true
    }

    fn push(&mut self, c: char) -> bool {
        self.push_str(c.encode_utf8(&mut [0; 4]))
    }
}

/// Writes `value`; false when the output limit was reached.
fn write_value(out: &mut Out, value: &Value, repr: bool, depth: usize) -> bool {
    match value.kind() {
        ValueKind::Undefined => true,
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&number_str(value)),
        ValueKind::String => match value.as_str() {
            Some(s) if repr => {
                let mut quoted = String::new();
                write_str_repr(&mut quoted, s);
                out.push_str(&quoted)
            }
            Some(s) => out.push_str(s),
            None => out.push_str(&value.to_string()),
        },
        ValueKind::Seq | ValueKind::Iterable => write_seq(out, value, depth),
        ValueKind::Map if value.as_object().is_some() && is_plain_map(value) => {
            write_map(out, value, depth)
        }
        _ => out.push_str(&value.to_string()),
    }
}

/// Maps that Python would print as a `dict` (namespaces and other objects
/// that render themselves keep their own form).
fn is_plain_map(value: &Value) -> bool {
    value.try_iter().is_ok()
}

fn write_seq(out: &mut Out, value: &Value, depth: usize) -> bool {
    if depth >= MAX_REPR_DEPTH {
        return out.push_str("[...]");
    }
    if !out.push('[') {
        return false;
    }
    if let Ok(iter) = value.try_iter() {
        for (i, item) in iter.enumerate() {
            if !(out.per_item)()
                || (i > 0 && !out.push_str(", "))
                || !write_value(out, &item, true, depth + 1)
            {
                return false;
            }
        }
    }
    out.push(']')
}

fn write_map(out: &mut Out, value: &Value, depth: usize) -> bool {
    if depth >= MAX_REPR_DEPTH {
        return out.push_str("{...}");
    }
    if !out.push('{') {
        return false;
    }
    if let Ok(iter) = value.try_iter() {
        for (i, key) in iter.enumerate() {
            if !(out.per_item)() {
                return false;
            }
            let item = value.get_item(&key).unwrap_or_default();
            if (i > 0 && !out.push_str(", "))
                || !write_value(out, &key, true, depth + 1)
                || !out.push_str(": ")
                || !write_value(out, &item, true, depth + 1)
            {
                return false;
            }
        }
    }
    out.push('}')
}

fn number_str(value: &Value) -> String {
    if value.is_integer() {
        value.to_string()
    } else {
        match f64::try_from(value.clone()) {
            Ok(f) => py_float_repr(f),
            Err(_) => value.to_string(),
        }
    }
}

/// Python's `repr(float)` (equal to `str(float)`): the shortest digits that
/// round-trip, in fixed notation when the decimal exponent is in -4..16 and
/// in scientific notation (`1e+16`, `1.5e-05`) otherwise; `nan`, `inf`.
pub(crate) fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-5".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let ndigits = digits.len() as i32;
    // Position of the decimal point relative to the digits: 0.DIGITS x 10^decpt.
    let decpt = exp + 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if decpt > -4 && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else if decpt < ndigits {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        } else {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (decpt - ndigits) as usize));
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..1]);
        if ndigits > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", e.unsigned_abs()));
    }
    out
}

/// `repr(str)`: single quotes unless the text has `'` and no `"`; escapes
/// backslash, the quote, `\t` `\n` `\r` and non-printable characters.
fn write_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// An approximation of Python's `str.isprintable` for one character: false
/// for control and format characters, separators other than the space, and
/// private-use characters (the categories Python escapes in `repr`).
fn is_printable(c: char) -> bool {
    let n = c as u32;
    !(n < 0x20
        || (0x7f..=0xa0).contains(&n)
        || n == 0xad
        || n == 0x061c
        || n == 0x1680
        || n == 0x180e
        || (0x2000..=0x200f).contains(&n)
        || (0x2028..=0x202f).contains(&n)
        || (0x205f..=0x206f).contains(&n)
        || n == 0x3000
        || (0xe000..=0xf8ff).contains(&n)
        || n == 0xfeff
        || (0xfff9..=0xfffb).contains(&n)
        || n >= 0xf0000)
}

/// Python's `str.strip(chars)` family: `chars` of `None` means whitespace.
pub(crate) fn py_strip<'a>(s: &'a str, chars: Option<&str>, left: bool, right: bool) -> &'a str {
    // Sorted, so that a long `chars` costs a binary search per character
    // instead of a scan (a hostile template can pass megabytes of both).
    let set: Option<Vec<char>> = chars.map(|c| {
        let mut set: Vec<char> = c.chars().collect();
        set.sort_unstable();
        set.dedup();
        set
    });
    let matches = |c: char| match &set {
        Some(set) => set.binary_search(&c).is_ok(),
        None => is_py_space(c),
    };
    let mut out = s;
    if left {
        out = out.trim_start_matches(matches);
    }
    if right {
        out = out.trim_end_matches(matches);
    }
    out
}

/// Python's `str.split(sep, maxsplit)` (`reverse` for `str.rsplit`).
///
/// # Errors
///
/// An empty separator (Python's `ValueError: empty separator`).
pub(crate) fn py_split(
    s: &str,
    sep: Option<&str>,
    maxsplit: i64,
    reverse: bool,
) -> Result<Vec<String>, &'static str> {
    let limit = usize::try_from(maxsplit).ok();
    match sep {
        Some("") => Err("empty separator"),
        Some(sep) => Ok(match (limit, reverse) {
            (None, _) => s.split(sep).map(str::to_string).collect(),
            (Some(n), false) => s.splitn(n + 1, sep).map(str::to_string).collect(),
            (Some(n), true) => {
                let mut parts: Vec<String> = s.rsplitn(n + 1, sep).map(str::to_string).collect();
                parts.reverse();
                parts
            }
        }),
        None if reverse => {
            let rev: String = s.chars().rev().collect();
            let mut parts = split_whitespace(&rev, limit);
            parts.reverse();
            Ok(parts
                .into_iter()
                .map(|p| p.chars().rev().collect())
                .collect())
        }
        None => Ok(split_whitespace(s, limit)),
    }
}

/// At least as many parts as [`py_split`] makes, counted without making
/// them (an empty separator counts as one part).
pub(crate) fn py_split_count(s: &str, sep: Option<&str>, maxsplit: i64) -> usize {
    let splits = match sep {
        Some("") => 0,
        Some(sep) => s.matches(sep).count(),
        None => s.split(is_py_space).filter(|w| !w.is_empty()).count(),
    };
    match usize::try_from(maxsplit) {
        Ok(limit) => splits.min(limit),
        Err(_) => splits,
    }
    .saturating_add(1)
}

/// `str.split()` without a separator: runs of whitespace separate, leading
/// and trailing whitespace is dropped; after `limit` splits the rest is kept
/// whole (with its trailing whitespace).
fn split_whitespace(s: &str, limit: Option<usize>) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = s.trim_start_matches(is_py_space);
    while !rest.is_empty() {
        if limit.is_some_and(|n| parts.len() >= n) {
            parts.push(rest.to_string());
            break;
        }
        let end = rest.find(is_py_space).unwrap_or(rest.len());
        parts.push(rest[..end].to_string());
        rest = rest[end..].trim_start_matches(is_py_space);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (-12.5, "-12.5"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e100, "1.2345e+100"),
            (123456789.125, "123456789.125"),
            (f64::INFINITY, "inf"),
        ];
        for (f, want) in cases {
            assert_eq!(py_float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn str_and_repr() {
        assert_eq!(py_str(&Value::from(())), "None");
        assert_eq!(py_str(&Value::from(true)), "True");
        assert_eq!(py_str(&Value::UNDEFINED), "");
        let v = super::super::input::json_value(
            &serde_json::json!(["a", 1, null, false, 2.5, {"k": "it's"}]),
        )
        .unwrap();
        assert_eq!(py_str(&v), "['a', 1, None, False, 2.5, {'k': \"it's\"}]");
        assert_eq!(py_repr(&Value::from("a\nb\\\u{7}")), "'a\\nb\\\\\\x07'");
    }

    #[test]
    fn split_like_python() {
        let s = "  a b  c  ";
        assert_eq!(py_split(s, None, -1, false).unwrap(), ["a", "b", "c"]);
        assert_eq!(py_split(s, None, 1, false).unwrap(), ["a", "b  c  "]);
        assert_eq!(py_split(s, None, 1, true).unwrap(), ["  a b", "c"]);
        assert_eq!(
            py_split("a</t>b</t>c", Some("</t>"), 1, false).unwrap(),
            ["a", "b</t>c"]
        );
        assert_eq!(
            py_split("a</t>b</t>c", Some("</t>"), 1, true).unwrap(),
            ["a</t>b", "c"]
        );
        assert_eq!(py_split("", Some(","), -1, false).unwrap(), [""]);
        assert!(py_split("x", Some(""), -1, false).is_err());
        for (s, sep, maxsplit) in [
            ("  a b  c  ", None, -1),
            ("  a b  c  ", None, 1),
            ("a</t>b</t>c", Some("</t>"), -1),
            ("a</t>b</t>c", Some("</t>"), 1),
            ("", Some(","), -1),
            ("", None, -1),
        ] {
            let parts = py_split(s, sep, maxsplit, false).unwrap();
            assert!(py_split_count(s, sep, maxsplit) >= parts.len(), "{s:?}");
        }
        assert_eq!(py_strip("\u{1f} x \n", None, true, true), "x");
        assert_eq!(py_strip("xxaxx", Some("x"), false, true), "xxa");
    }
}
