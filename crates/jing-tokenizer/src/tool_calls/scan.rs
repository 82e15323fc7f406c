//! Finding markers in text, and the checks on names and arguments.

use serde_json::Value;

use super::{ToolCallErrorKind, CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP};

/// Every marker the parser knows.
pub(super) const MARKERS: [&str; 5] = [CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP];

/// The markers that end a call's arguments.
pub(super) const ARGUMENT_ENDS: [&str; 4] = [CALL_END, CALLS_END, CALL_BEGIN, CALLS_BEGIN];

/// The code fence some models put around arguments.
pub(super) const FENCE: &str = "```";

/// The first marker of `markers` in `text`: its byte offset and spelling.
pub(super) fn find_first(text: &str, markers: &[&'static str]) -> Option<(usize, &'static str)> {
    text.match_indices('<').find_map(|(at, _)| {
        markers
            .iter()
            .find(|marker| text[at..].starts_with(**marker))
            .map(|marker| (at, *marker))
    })
}

/// The marker `text` starts with, if any.
pub(super) fn marker_at_start(text: &str, markers: &[&'static str]) -> Option<&'static str> {
    markers
        .iter()
        .copied()
        .find(|marker| text.starts_with(marker))
}

/// Whether `text` is a proper prefix of one of `markers`.
pub(super) fn is_marker_prefix(text: &str, markers: &[&str]) -> bool {
    markers
        .iter()
        .any(|marker| marker.len() > text.len() && marker.starts_with(text))
}

/// Length of the longest tail of `text` that is a proper prefix of one of
/// `markers` and so may still become a marker.
pub(super) fn partial_marker_len(text: &str, markers: &[&str]) -> usize {
    let longest = markers.iter().map(|m| m.len()).max().unwrap_or(0);
    let floor = text.len().saturating_sub(longest.saturating_sub(1));
    text.char_indices()
        .rev()
        .take_while(|&(at, _)| at >= floor)
        .filter(|&(at, _)| is_marker_prefix(&text[at..], markers))
        .map(|(at, _)| text.len() - at)
        .last()
        .unwrap_or(0)
}

/// Characters trimmed off the end of arguments: whitespace and the closing
/// fence's backticks (a JSON text never ends with either).
pub(super) fn is_argument_tail(c: char) -> bool {
    c.is_whitespace() || c == '`'
}

/// Whether `name` is acceptable as a function name.
pub(super) fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Checks trimmed argument text: a JSON object.
pub(super) fn check_arguments(arguments: &str) -> Result<(), ToolCallErrorKind> {
    if arguments.is_empty() {
        return Err(ToolCallErrorKind::MissingArguments);
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(_)) => Ok(()),
        Ok(_) => Err(ToolCallErrorKind::ArgumentsNotObject),
        Err(error) => Err(ToolCallErrorKind::InvalidJson(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_earliest_marker() {
        let text = format!("a<b{CALL_END}c{CALLS_BEGIN}");
        assert_eq!(find_first(&text, &MARKERS), Some((3, CALL_END)));
        assert_eq!(find_first("a<b", &MARKERS), None);
        assert_eq!(marker_at_start(SEP, &MARKERS), Some(SEP));
    }

    #[test]
    fn partial_markers_on_char_boundaries() {
        assert_eq!(partial_marker_len("abc<", &MARKERS), 1);
        assert_eq!(
            partial_marker_len("abc<｜tool▁call", &MARKERS),
            "<｜tool▁call".len()
        );
        assert_eq!(partial_marker_len("abc<｜x", &MARKERS), 0);
        assert_eq!(partial_marker_len(CALL_END, &MARKERS), 0);
        assert_eq!(partial_marker_len("", &MARKERS), 0);
        assert_eq!(partial_marker_len("<<", &MARKERS), 1);
    }

    #[test]
    fn argument_checks() {
        assert_eq!(check_arguments("{}"), Ok(()));
        assert_eq!(
            check_arguments(""),
            Err(ToolCallErrorKind::MissingArguments)
        );
        assert_eq!(
            check_arguments("[1]"),
            Err(ToolCallErrorKind::ArgumentsNotObject)
        );
        assert!(matches!(
            check_arguments("{"),
            Err(ToolCallErrorKind::InvalidJson(_))
        ));
        assert!(is_valid_name("get_weather"));
        assert!(is_valid_name("天气.查询"));
        assert!(!is_valid_name("get weather"));
        assert!(!is_valid_name(""));
    }
}
