//! Stop strings matched across token boundaries: generated text passes through a
//! [`StopMatcher`], which holds back any tail that could still become a stop string and never
//! emits the stop string itself.

/// Streaming stop-string matcher.
#[derive(Clone, Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet released (a possible start of a stop string).
    held: String,
    stopped: bool,
}

/// What one push releases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StopOutput {
    /// Text safe to emit.
    pub text: String,
    /// The stop string that ended generation, if one completed in this push.
    pub stopped_by: Option<String>,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> StopMatcher {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
            stopped: false,
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Feed newly generated text.
    pub fn push(&mut self, text: &str) -> StopOutput {
        if self.stopped {
            return StopOutput::default();
        }
        self.held.push_str(text);
        // The earliest complete stop string ends the output there.
        let first = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|at| (at, s)))
            .min_by_key(|&(at, s)| (at, std::cmp::Reverse(s.len())));
        if let Some((at, s)) = first {
            let out = StopOutput {
                text: self.held[..at].to_string(),
                stopped_by: Some(s.clone()),
            };
            self.held.clear();
            self.stopped = true;
            return out;
        }
        // Hold back the longest tail that is a proper prefix of some stop string.
        let keep = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.held.len());
        let text = self.held[..keep].to_string();
        self.held.drain(..keep);
        StopOutput {
            text,
            stopped_by: None,
        }
    }

    /// The end of generation: release what was held (it never completed a stop string).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<String>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let o = m.push(p);
            out.push_str(&o.text);
            if o.stopped_by.is_some() {
                return (out, o.stopped_by);
            }
        }
        out.push_str(&m.finish());
        (out, None)
    }

    #[test]
    fn stop_strings_split_across_tokens_are_caught_and_never_emitted() {
        assert_eq!(
            run(&["END"], &["abc E", "N", "D tail"]),
            ("abc ".into(), Some("END".into()))
        );
        assert_eq!(run(&["END"], &["abc E", "Nx"]), ("abc ENx".into(), None));
        assert_eq!(
            run(&["\n\n"], &["a\n", "\nb"]),
            ("a".into(), Some("\n\n".into()))
        );
        // The earliest match wins; at the same place, the longer one.
        assert_eq!(
            run(&["cd", "bcd"], &["abcde"]),
            ("a".into(), Some("bcd".into()))
        );
        // Multi-byte text is held back on character boundaries.
        assert_eq!(
            run(&["世界"], &["你好世", "界!"]),
            ("你好".into(), Some("世界".into()))
        );
        assert_eq!(run(&[], &["x"]), ("x".into(), None));
    }

    #[test]
    fn every_cutting_of_the_text_gives_the_same_result() {
        let text = "The answer is 42.\n\nUser: next";
        let stops = ["\n\nUser:", "42!"];
        let whole = run(&stops, &[text]);
        assert_eq!(
            whole,
            ("The answer is 42.".into(), Some("\n\nUser:".into()))
        );
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        for a in 0..chars.len() {
            for b in a..chars.len() {
                let (i, j) = (chars[a].0, chars[b].0);
                assert_eq!(
                    run(&stops, &[&text[..i], &text[i..j], &text[j..]]),
                    whole,
                    "cuts {i} {j}"
                );
            }
        }
    }
}
