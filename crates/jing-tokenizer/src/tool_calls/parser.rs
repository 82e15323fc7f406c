//! The streaming tool-call parser: a state machine over the held-back text.

use super::scan::{
    check_arguments, find_first, is_argument_tail, is_marker_prefix, is_valid_name,
    marker_at_start, partial_marker_len, ARGUMENT_ENDS, FENCE, MARKERS,
};
use super::{
    ParsedOutput, ToolCall, ToolCallDelta, ToolCallError, ToolCallErrorKind, ToolCallFormat,
    ToolCallIds, CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, MAX_HEADER_BYTES, SEP,
};

/// Streaming parser of DeepSeek tool calls; see the
/// [module documentation](super) for the rules.
///
/// Push the answer text as it is generated with [`push`](Self::push), call
/// [`finish`](Self::finish) once at the end, and read the result with
/// [`output`](Self::output) or [`into_output`](Self::into_output).
///
/// ```
/// use jing_tokenizer::tool_calls::{ToolCallDelta, ToolCallFormat, ToolCallParser};
///
/// let mut parser = ToolCallParser::new(ToolCallFormat::V3, 1);
/// let mut deltas = parser.push("Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function");
/// deltas.extend(parser.push("<｜tool▁sep｜>get_time\n```json\n{\"tz\":"));
/// deltas.extend(parser.push(" \"UTC\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"));
/// deltas.extend(parser.finish());
/// assert_eq!(deltas[0], ToolCallDelta::Content("Checking.".into()));
/// assert!(matches!(&deltas[1], ToolCallDelta::Start { index: 0, name, .. } if name == "get_time"));
/// let arguments: String = deltas[2..]
///     .iter()
///     .map(|d| match d {
///         ToolCallDelta::Arguments { fragment, .. } => fragment.as_str(),
///         _ => "",
///     })
///     .collect();
/// assert_eq!(arguments, "{\"tz\": \"UTC\"}");
/// assert_eq!(parser.output().tool_calls[0].arguments, arguments);
/// ```
#[derive(Debug, Clone)]
pub struct ToolCallParser {
    format: ToolCallFormat,
    ids: ToolCallIds,
    next_index: usize,
    /// Pushed text not yet consumed by the state machine.
    held: String,
    state: State,
    output: ParsedOutput,
    finished: bool,
}

/// Where the parser is. Text already consumed into a state's fields is no
/// longer in `held`.
#[derive(Debug, Clone)]
enum State {
    /// Outside any section.
    Content,
    /// Inside a section, between calls.
    Section,
    /// After `<｜tool▁call▁begin｜>`, before `<｜tool▁sep｜>`; `raw` holds the
    /// call's text so far, marker included.
    Head { raw: String },
    /// V3, after `<｜tool▁sep｜>`, reading the name line.
    NameLine { raw: String, name: String },
    /// An invalid call that was never announced: its text streams as content
    /// up to its end.
    Skip,
    /// An announced call, before its arguments (whitespace, fence).
    Lead(OpenCall),
    /// An announced call, inside the opening fence line.
    Fence(OpenCall),
    /// An announced call, in its arguments.
    Args(OpenCall),
}

/// An announced call.
#[derive(Debug, Clone)]
struct OpenCall {
    index: usize,
    id: String,
    name: String,
    /// The call's text so far, from `<｜tool▁call▁begin｜>`.
    raw: String,
    /// Argument text so far, leading whitespace skipped.
    args: String,
    /// How much of `args` went out as fragments.
    emitted: usize,
}

/// A state's answer to "what now": the next state, and whether to run again.
type Step = (State, bool);

impl ToolCallParser {
    /// A parser for `format` whose call ids come from
    /// [`ToolCallIds::new`]`(id_seed)`.
    pub fn new(format: ToolCallFormat, id_seed: u64) -> Self {
        Self {
            format,
            ids: ToolCallIds::new(id_seed),
            next_index: 0,
            held: String::new(),
            state: State::Content,
            output: ParsedOutput::default(),
            finished: false,
        }
    }

    /// The format this parser reads.
    pub fn format(&self) -> ToolCallFormat {
        self.format
    }

    /// Pushes the next piece of answer text and returns the deltas it
    /// releases (adjacent content merged). After [`finish`](Self::finish),
    /// text is ignored.
    pub fn push(&mut self, text: &str) -> Vec<ToolCallDelta> {
        let mut out = Vec::new();
        if !self.finished {
            self.held.push_str(text);
            self.run(&mut out, false);
        }
        out
    }

    /// Ends the text: releases what is held back and settles an open call
    /// (valid if its arguments are complete, otherwise
    /// [`Unterminated`](ToolCallErrorKind::Unterminated)). Calling it again
    /// returns nothing.
    pub fn finish(&mut self) -> Vec<ToolCallDelta> {
        let mut out = Vec::new();
        if !self.finished {
            self.run(&mut out, true);
            self.held.clear();
            self.state = State::Content;
            self.finished = true;
        }
        out
    }

    /// Whether [`finish`](Self::finish) was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether the parser is inside a tool-call section (text is being held
    /// for calls rather than passed on as content).
    pub fn in_tool_calls(&self) -> bool {
        !matches!(self.state, State::Content | State::Skip)
    }

    /// The result so far; complete after [`finish`](Self::finish).
    pub fn output(&self) -> &ParsedOutput {
        &self.output
    }

    /// The result, taking the parser.
    pub fn into_output(self) -> ParsedOutput {
        self.output
    }

    fn run(&mut self, out: &mut Vec<ToolCallDelta>, at_end: bool) {
        loop {
            let state = std::mem::replace(&mut self.state, State::Content);
            let (next, again) = match state {
                State::Content => self.step_content(out, at_end),
                State::Section => self.step_section(at_end),
                State::Head { raw } => self.step_head(raw, out, at_end),
                State::NameLine { raw, name } => self.step_name_line(raw, name, out, at_end),
                State::Skip => self.step_skip(out, at_end),
                State::Lead(call) => self.step_lead(call, out, at_end),
                State::Fence(call) => self.step_fence(call, out, at_end),
                State::Args(call) => self.step_args(call, out, at_end),
            };
            self.state = next;
            if !again {
                return;
            }
        }
    }

    /// Removes and returns the first `len` bytes of `held`.
    fn take(&mut self, len: usize) -> String {
        self.held.drain(..len).collect()
    }

    /// How much of `held` may be consumed now, keeping a partial marker.
    fn releasable(&self, at_end: bool) -> usize {
        if at_end {
            self.held.len()
        } else {
            self.held.len() - partial_marker_len(&self.held, &MARKERS)
        }
    }

    fn emit_content(&mut self, out: &mut Vec<ToolCallDelta>, text: &str) {
        if text.is_empty() {
            return;
        }
        self.output.content.push_str(text);
        if let Some(ToolCallDelta::Content(last)) = out.last_mut() {
            last.push_str(text);
        } else {
            out.push(ToolCallDelta::Content(text.to_owned()));
        }
    }

    /// Records a call that failed before it was announced and releases its
    /// text as content.
    fn reject(
        &mut self,
        out: &mut Vec<ToolCallDelta>,
        raw: &str,
        name: Option<String>,
        kind: ToolCallErrorKind,
    ) {
        self.output.errors.push(ToolCallError {
            index: None,
            name,
            kind,
        });
        self.emit_content(out, raw);
    }

    fn step_content(&mut self, out: &mut Vec<ToolCallDelta>, at_end: bool) -> Step {
        match find_first(&self.held, &MARKERS) {
            Some((at, marker)) => {
                let before = self.take(at);
                self.emit_content(out, &before);
                self.take(marker.len());
                let next = match marker {
                    CALLS_BEGIN => State::Section,
                    CALL_BEGIN => State::Head {
                        raw: CALL_BEGIN.to_owned(),
                    },
                    // A stray closer or separator: dropped.
                    _ => State::Content,
                };
                (next, true)
            }
            None => {
                let text = self.take(self.releasable(at_end));
                self.emit_content(out, &text);
                (State::Content, false)
            }
        }
    }

    fn step_section(&mut self, at_end: bool) -> Step {
        let blank = self.held.len() - self.held.trim_start().len();
        self.take(blank);
        if self.held.is_empty() {
            return (State::Section, false);
        }
        if let Some(marker) = marker_at_start(&self.held, &MARKERS) {
            self.take(marker.len());
            let next = match marker {
                CALL_BEGIN => State::Head {
                    raw: CALL_BEGIN.to_owned(),
                },
                CALLS_END => State::Content,
                _ => State::Section,
            };
            return (next, true);
        }
        if !at_end && is_marker_prefix(&self.held, &MARKERS) {
            return (State::Section, false);
        }
        self.output.errors.push(ToolCallError {
            index: None,
            name: None,
            kind: ToolCallErrorKind::UnexpectedText,
        });
        (State::Content, true)
    }

    fn step_head(&mut self, mut raw: String, out: &mut Vec<ToolCallDelta>, at_end: bool) -> Step {
        let header_len = raw.len() - CALL_BEGIN.len();
        let found = find_first(&self.held, &MARKERS);
        let (len, marker) = match found {
            Some((at, marker)) => (at, Some(marker)),
            None => (self.releasable(at_end), None),
        };
        raw.push_str(&self.take(len));
        if header_len + len > MAX_HEADER_BYTES {
            self.reject(out, &raw, None, ToolCallErrorKind::HeaderTooLong);
            return (State::Skip, true);
        }
        match marker {
            Some(SEP) => {
                raw.push_str(&self.take(SEP.len()));
                let header = raw[CALL_BEGIN.len()..raw.len() - SEP.len()]
                    .trim()
                    .to_owned();
                match self.format {
                    ToolCallFormat::V3 if header == "function" => (
                        State::NameLine {
                            raw,
                            name: String::new(),
                        },
                        true,
                    ),
                    ToolCallFormat::V3 => {
                        let kind = ToolCallErrorKind::UnknownCallType(header);
                        self.reject(out, &raw, None, kind);
                        (State::Skip, true)
                    }
                    ToolCallFormat::V31 => self.name_read(raw, header, out),
                }
            }
            Some(marker) => {
                if marker == CALL_END {
                    raw.push_str(&self.take(CALL_END.len()));
                }
                self.reject(out, &raw, None, ToolCallErrorKind::MissingSeparator);
                (State::Section, true)
            }
            None if at_end => {
                self.reject(out, &raw, None, ToolCallErrorKind::Unterminated);
                (State::Content, false)
            }
            None => (State::Head { raw }, false),
        }
    }

    /// V3: the name runs to the end of the line.
    fn step_name_line(
        &mut self,
        mut raw: String,
        mut name: String,
        out: &mut Vec<ToolCallDelta>,
        at_end: bool,
    ) -> Step {
        let newline = self.held.find('\n');
        let marker = find_first(&self.held, &MARKERS);
        let (len, end) = match (newline, marker) {
            (Some(nl), Some((at, _))) if nl < at => (nl, Some(None)),
            (Some(nl), None) => (nl, Some(None)),
            (_, Some((at, marker))) => (at, Some(Some(marker))),
            (None, None) => (self.releasable(at_end), None),
        };
        let piece = self.take(len);
        raw.push_str(&piece);
        name.push_str(&piece);
        if name.len() > MAX_HEADER_BYTES {
            self.reject(out, &raw, None, ToolCallErrorKind::HeaderTooLong);
            return (State::Skip, true);
        }
        let trimmed = name.trim().to_owned();
        match end {
            Some(None) => {
                raw.push_str(&self.take(1));
                self.name_read(raw, trimmed, out)
            }
            Some(Some(marker)) => {
                if marker == CALL_END {
                    raw.push_str(&self.take(CALL_END.len()));
                }
                let kind = ToolCallErrorKind::MissingArguments;
                self.reject(out, &raw, Some(trimmed), kind);
                (State::Section, true)
            }
            None if at_end => {
                let kind = ToolCallErrorKind::Unterminated;
                self.reject(out, &raw, Some(trimmed), kind);
                (State::Content, false)
            }
            None => (State::NameLine { raw, name }, false),
        }
    }

    /// The name is complete: announce the call or reject it.
    fn name_read(&mut self, raw: String, name: String, out: &mut Vec<ToolCallDelta>) -> Step {
        if !is_valid_name(&name) {
            let kind = ToolCallErrorKind::InvalidName(name);
            self.reject(out, &raw, None, kind);
            return (State::Skip, true);
        }
        let index = self.next_index;
        self.next_index += 1;
        let id = self.ids.next_id();
        out.push(ToolCallDelta::Start {
            index,
            id: id.clone(),
            name: name.clone(),
        });
        let call = OpenCall {
            index,
            id,
            name,
            raw,
            args: String::new(),
            emitted: 0,
        };
        (State::Lead(call), true)
    }

    fn step_skip(&mut self, out: &mut Vec<ToolCallDelta>, at_end: bool) -> Step {
        match find_first(&self.held, &ARGUMENT_ENDS) {
            Some((at, marker)) => {
                let len = if marker == CALL_END {
                    at + marker.len()
                } else {
                    at
                };
                let text = self.take(len);
                self.emit_content(out, &text);
                (State::Section, true)
            }
            None => {
                let text = self.take(self.releasable(at_end));
                self.emit_content(out, &text);
                (State::Skip, false)
            }
        }
    }

    fn step_lead(
        &mut self,
        mut call: OpenCall,
        out: &mut Vec<ToolCallDelta>,
        at_end: bool,
    ) -> Step {
        let blank = self.held.len() - self.held.trim_start().len();
        call.raw.push_str(&self.take(blank));
        if self.held.starts_with(FENCE) {
            call.raw.push_str(&self.take(FENCE.len()));
            return (State::Fence(call), true);
        }
        let may_be_fence = self.held.is_empty() || FENCE.starts_with(self.held.as_str());
        if may_be_fence && !at_end {
            return (State::Lead(call), false);
        }
        if self.held.is_empty() {
            self.settle(call, false, out);
            return (State::Content, false);
        }
        (State::Args(call), true)
    }

    fn step_fence(
        &mut self,
        mut call: OpenCall,
        out: &mut Vec<ToolCallDelta>,
        at_end: bool,
    ) -> Step {
        let newline = self.held.find('\n');
        let marker = find_first(&self.held, &ARGUMENT_ENDS).map(|(at, _)| at);
        match (newline, marker) {
            (Some(nl), Some(at)) if nl < at => {
                call.raw.push_str(&self.take(nl + 1));
                (State::Args(call), true)
            }
            (Some(nl), None) => {
                call.raw.push_str(&self.take(nl + 1));
                (State::Args(call), true)
            }
            // A marker before the end of the fence line: the line so far is fence info (as
            // it is when it arrived in an earlier piece), and the arguments are empty.
            (_, Some(at)) => {
                call.raw.push_str(&self.take(at));
                (State::Args(call), true)
            }
            (None, None) if at_end => {
                call.raw.push_str(&self.take(self.held.len()));
                self.settle(call, false, out);
                (State::Content, false)
            }
            (None, None) => {
                call.raw.push_str(&self.take(self.releasable(false)));
                (State::Fence(call), false)
            }
        }
    }

    fn step_args(
        &mut self,
        mut call: OpenCall,
        out: &mut Vec<ToolCallDelta>,
        at_end: bool,
    ) -> Step {
        if call.args.is_empty() {
            let blank = self.held.len() - self.held.trim_start().len();
            call.raw.push_str(&self.take(blank));
        }
        match find_first(&self.held, &ARGUMENT_ENDS) {
            Some((at, marker)) => {
                let piece = self.take(at);
                call.raw.push_str(&piece);
                call.args.push_str(&piece);
                if marker == CALL_END {
                    call.raw.push_str(&self.take(CALL_END.len()));
                }
                self.settle(call, true, out);
                (State::Section, true)
            }
            None => {
                let piece = self.take(self.releasable(at_end));
                call.raw.push_str(&piece);
                call.args.push_str(&piece);
                if at_end {
                    self.settle(call, false, out);
                    return (State::Content, false);
                }
                let stable = call.args.trim_end_matches(is_argument_tail).len();
                if stable > call.emitted {
                    out.push(ToolCallDelta::Arguments {
                        index: call.index,
                        fragment: call.args[call.emitted..stable].to_owned(),
                    });
                    call.emitted = stable;
                }
                (State::Args(call), false)
            }
        }
    }

    /// The call ended (at a marker when `closed`, else at the end of the
    /// text): keep it if its arguments are a JSON object, else invalidate it.
    fn settle(&mut self, call: OpenCall, closed: bool, out: &mut Vec<ToolCallDelta>) {
        let arguments = call.args.trim_end_matches(is_argument_tail);
        match check_arguments(arguments) {
            Ok(()) => {
                if arguments.len() > call.emitted {
                    out.push(ToolCallDelta::Arguments {
                        index: call.index,
                        fragment: arguments[call.emitted..].to_owned(),
                    });
                }
                self.output.tool_calls.push(ToolCall {
                    index: call.index,
                    id: call.id,
                    name: call.name,
                    arguments: arguments.to_owned(),
                });
            }
            Err(kind) => {
                let kind = if closed {
                    kind
                } else {
                    ToolCallErrorKind::Unterminated
                };
                out.push(ToolCallDelta::Invalid {
                    index: call.index,
                    error: kind.clone(),
                });
                self.output.errors.push(ToolCallError {
                    index: Some(call.index),
                    name: Some(call.name),
                    kind,
                });
                self.emit_content(out, &call.raw);
            }
        }
    }
}
