//! Tests of the streaming reasoning splitter against a plain one-shot
//! reference written from the documented rules.

mod common;

use common::cut;
use jing_tokenizer::reasoning::{
    Delta, Phase, ReasoningConfig, ReasoningMode, ReasoningSplitter, Whitespace,
};
use proptest::prelude::*;

/// The documented rules, written with `str::find` on the whole text.
fn reference(config: &ReasoningConfig, text: &str) -> (String, String) {
    let trim = config.whitespace == Whitespace::Trim;
    let (start, end) = (config.start_tag.as_str(), config.end_tag.as_str());
    let after_blank = text.trim_start();
    let opened = !start.is_empty() && after_blank.starts_with(start);
    let body = match config.mode {
        ReasoningMode::Disabled => return (String::new(), text.to_owned()),
        _ if opened => &after_blank[start.len()..],
        ReasoningMode::Forced => text,
        ReasoningMode::Optional => return (String::new(), text.to_owned()),
    };
    let closed = if end.is_empty() { None } else { body.find(end) };
    let (mut reasoning, answer) = match closed {
        Some(at) => (&body[..at], Some(&body[at + end.len()..])),
        None => (body, None),
    };
    if trim {
        reasoning = reasoning.strip_prefix('\n').unwrap_or(reasoning);
        if answer.is_some() {
            reasoning = reasoning.strip_suffix('\n').unwrap_or(reasoning);
        }
    }
    let answer = match answer {
        Some(answer) if trim => answer.trim_start_matches('\n'),
        Some(answer) => answer,
        None => "",
    };
    (reasoning.to_owned(), answer.to_owned())
}

/// Streams `pieces`, checking per delta that no reasoning follows answer.
fn stream(config: &ReasoningConfig, pieces: &[&str]) -> (String, String) {
    let mut splitter = ReasoningSplitter::new(config.clone());
    let mut all = Delta::default();
    let check = |delta: Delta, all: &mut Delta| {
        assert!(
            all.answer.is_empty() || delta.reasoning.is_empty(),
            "reasoning {:?} after answer {:?}",
            delta.reasoning,
            all.answer
        );
        all.append(delta);
    };
    for piece in pieces {
        let delta = splitter.push(piece);
        check(delta, &mut all);
    }
    let delta = splitter.finish();
    check(delta, &mut all);
    (all.reasoning, all.answer)
}

fn r1() -> ReasoningConfig {
    ReasoningConfig::deepseek_r1()
}

fn pair(reasoning: &str, answer: &str) -> (String, String) {
    (reasoning.to_owned(), answer.to_owned())
}

#[test]
fn r1_output_trims_separator_newlines() {
    let text = "Okay, 9.11 vs 9.8.\n\nSo 9.8.\n</think>\n\n9.8 is larger.";
    assert_eq!(
        r1().split(text),
        pair("Okay, 9.11 vs 9.8.\n\nSo 9.8.", "9.8 is larger.")
    );
}

#[test]
fn keep_policy_is_byte_exact_like_vllm() {
    let config = r1().with_whitespace(Whitespace::Keep);
    let text = "\nthought\n</think>\n\nanswer\n";
    assert_eq!(config.split(text), pair("\nthought\n", "\n\nanswer\n"));
}

#[test]
fn trim_removes_only_one_newline_each_side_of_reasoning() {
    assert_eq!(r1().split("\n\nx\n\n</think>a"), pair("\nx\n", "a"));
    assert_eq!(r1().split("\n</think>\n\n\nA\n"), pair("", "A\n"));
    assert_eq!(r1().split("\n\n</think>"), pair("", ""));
}

#[test]
fn forced_mode_drops_a_model_emitted_start_tag() {
    // R1-0528 writes "<think>\n" itself.
    let text = "<think>\nreason\n</think>\n\nanswer";
    assert_eq!(r1().split(text), pair("reason", "answer"));
    assert_eq!(r1().split("  \n<think>r</think>a"), pair("r", "a"));
    // Only at the very start; later it is reasoning text.
    assert_eq!(r1().split("x<think>y</think>z"), pair("x<think>y", "z"));
}

#[test]
fn missing_end_tag_is_all_reasoning() {
    let text = "I was cut by max_tokens\n";
    assert_eq!(r1().split(text), pair("I was cut by max_tokens\n", ""));
    let mut splitter = ReasoningSplitter::new(r1());
    let pushed = splitter.push("cut mid tag</thi");
    assert_eq!(pushed.reasoning, "cut mid tag");
    assert_eq!(
        splitter.finish(),
        Delta {
            reasoning: "</thi".to_owned(),
            answer: String::new(),
        }
    );
}

#[test]
fn only_the_first_end_tag_counts() {
    assert_eq!(r1().split("r</think>a</think>b"), pair("r", "a</think>b"));
}

#[test]
fn empty_reasoning_v31_thinking_prompt() {
    // V3.1 prompt ends with "<think>"; a model that skips thinking emits
    // "</think>" at once.
    assert_eq!(r1().split("</think>Hello"), pair("", "Hello"));
}

#[test]
fn optional_mode_needs_the_tag_first() {
    let config = ReasoningConfig::new(ReasoningMode::Optional);
    assert_eq!(
        config.split("\n<think>\nhmm\n</think>\n\nok"),
        pair("hmm", "ok")
    );
    // Text before the tag: no reasoning, everything verbatim.
    assert_eq!(
        config.split("\nSure. <think>x</think>\n\ny"),
        pair("", "\nSure. <think>x</think>\n\ny")
    );
    assert_eq!(config.split("no tags"), pair("", "no tags"));
    assert_eq!(config.split("</think>x"), pair("", "</think>x"));
    assert_eq!(config.split("<thi"), pair("", "<thi"));
    assert_eq!(config.split("  "), pair("", "  "));
}

#[test]
fn disabled_mode_is_all_answer_verbatim() {
    let config = ReasoningConfig::disabled();
    let text = "<think>\nnot special\n</think>\n\nhere";
    assert_eq!(config.split(text), pair("", text));
    let mut splitter = ReasoningSplitter::new(config);
    assert_eq!(splitter.phase(), Phase::Answer);
    assert_eq!(splitter.push("<th").answer, "<th");
}

#[test]
fn custom_and_empty_tags() {
    let config = ReasoningConfig {
        start_tag: "◁think▷".to_owned(),
        end_tag: "◁/think▷".to_owned(),
        mode: ReasoningMode::Optional,
        whitespace: Whitespace::Keep,
    };
    assert_eq!(config.split("◁think▷r◁/think▷a"), pair("r", "a"));
    let pieces = ["◁th", "ink▷r◁", "/th", "ink▷a"];
    assert_eq!(stream(&config, &pieces), pair("r", "a"));

    let no_end = ReasoningConfig {
        end_tag: String::new(),
        ..r1()
    };
    assert_eq!(no_end.split("a</think>b"), pair("a</think>b", ""));
    let no_start = ReasoningConfig {
        start_tag: String::new(),
        ..ReasoningConfig::new(ReasoningMode::Optional)
    };
    assert_eq!(no_start.split("r</think>a"), pair("", "r</think>a"));
}

#[test]
fn streaming_releases_as_soon_as_decided() {
    let mut splitter = ReasoningSplitter::new(r1());
    assert_eq!(splitter.phase(), Phase::Undecided);
    // A "<" might begin "<think>": held.
    assert!(splitter.push("<").is_empty());
    // "</" cannot: now reasoning, but "</" might begin "</think>": held.
    assert!(splitter.push("/").is_empty());
    assert_eq!(splitter.phase(), Phase::Reasoning);
    assert_eq!(splitter.push("x").reasoning, "</x");
    // A trailing newline waits to see whether "</think>" follows.
    assert_eq!(splitter.push(" y\n").reasoning, " y");
    assert_eq!(splitter.push("z").reasoning, "\nz");
    let delta = splitter.push("\n</think>\n");
    assert_eq!(delta, Delta::default());
    assert_eq!(splitter.phase(), Phase::Answer);
    assert_eq!(splitter.push("\n").answer, "");
    assert_eq!(splitter.push("A\n").answer, "A\n");
    assert_eq!(splitter.push("\nB").answer, "\nB");
    assert!(splitter.finish().is_empty());
}

#[test]
fn cjk_and_emoji_pieces() {
    let text = "思考一下🤔\n</think>\n\n答案：４２";
    let expected = pair("思考一下🤔", "答案：４２");
    assert_eq!(r1().split(text), expected);
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
    assert_eq!(stream(&r1(), &pieces), expected);
}

fn count_tokens(config: ReasoningConfig, tokens: &[&str]) -> (u64, u64, String, String) {
    let mut splitter = ReasoningSplitter::new(config);
    let mut all = Delta::default();
    for token in tokens {
        all.append(splitter.push_token(token));
    }
    all.append(splitter.finish());
    (
        splitter.tokens(),
        splitter.reasoning_tokens(),
        all.reasoning,
        all.answer,
    )
}

#[test]
fn reasoning_tokens_include_the_end_tag_token() {
    let tokens = ["Let", " me", " see", "\n", "</think>", "\n\n", "Yes", "."];
    let (total, reasoning, r, a) = count_tokens(r1(), &tokens);
    assert_eq!((total, reasoning), (8, 5));
    assert_eq!((r.as_str(), a.as_str()), ("Let me see", "Yes."));
}

#[test]
fn reasoning_tokens_when_the_tag_is_split_or_merged() {
    // "</" "think" ">\n\n" "A": the token holding the tag's end starts in
    // the reasoning region; the answer token does not.
    let (total, reasoning, ..) = count_tokens(r1(), &["r", "</", "think", ">\n\n", "A"]);
    assert_eq!((total, reasoning), (5, 4));
    // A token carrying the tag and answer text starts in the region.
    let (total, reasoning, ..) = count_tokens(r1(), &["r", "</think>A", "B"]);
    assert_eq!((total, reasoning), (3, 2));
    // Empty tokens count by where they fall.
    let (total, reasoning, ..) = count_tokens(r1(), &["", "r", "</think>", "", "A"]);
    assert_eq!((total, reasoning), (5, 3));
}

#[test]
fn reasoning_tokens_in_optional_and_disabled_modes() {
    let optional = ReasoningConfig::new(ReasoningMode::Optional);
    let (total, reasoning, ..) = count_tokens(
        optional.clone(),
        &["\n", "<", "think", ">", "r", "</think>", "a"],
    );
    assert_eq!((total, reasoning), (7, 6));
    let (total, reasoning, ..) = count_tokens(optional.clone(), &["\n", "<", "b", ">"]);
    assert_eq!((total, reasoning), (4, 0));
    // Still undecided at the end: settled by finish.
    let (total, reasoning, ..) = count_tokens(optional, &[" ", "<thi"]);
    assert_eq!((total, reasoning), (2, 0));
    let (total, reasoning, ..) = count_tokens(ReasoningConfig::disabled(), &["a", "</think>"]);
    assert_eq!((total, reasoning), (2, 0));
    // Truncated reasoning: every token is reasoning.
    let (total, reasoning, ..) = count_tokens(r1(), &["a", "b", "</thi"]);
    assert_eq!((total, reasoning), (3, 3));
}

#[test]
fn reference_agrees_on_fixed_cases() {
    let configs = all_configs();
    let texts = [
        "",
        "\n",
        "<think>",
        "</think>",
        "\n<think>\n\n</think>\n\n",
        "a\n</think>\n\nb</think>c",
        "  <thin",
        "<think>x",
        "x\n",
        "\n\n\n",
    ];
    for config in &configs {
        for text in texts {
            assert_eq!(
                config.split(text),
                reference(config, text),
                "{config:?} {text:?}"
            );
        }
    }
}

fn all_configs() -> Vec<ReasoningConfig> {
    let mut configs = Vec::new();
    for mode in [
        ReasoningMode::Disabled,
        ReasoningMode::Forced,
        ReasoningMode::Optional,
    ] {
        for whitespace in [Whitespace::Keep, Whitespace::Trim] {
            configs.push(ReasoningConfig::new(mode).with_whitespace(whitespace));
        }
    }
    configs
}

/// Text built from fragments that exercise tags, partial tags, newlines,
/// whitespace and multi-byte characters.
fn text_strategy() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("<think>".to_owned()),
        Just("</think>".to_owned()),
        Just("<".to_owned()),
        Just("</".to_owned()),
        Just("</thi".to_owned()),
        Just("<think".to_owned()),
        Just(">".to_owned()),
        Just("\n".to_owned()),
        Just("\n\n".to_owned()),
        Just(" ".to_owned()),
        Just("\t".to_owned()),
        Just("é".to_owned()),
        Just("思考".to_owned()),
        Just("🤔".to_owned()),
        "[a-z]{1,4}",
    ];
    prop::collection::vec(fragment, 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn streaming_equals_one_shot_and_reference(
        text in text_strategy(),
        fractions in prop::collection::vec(0.0f64..=1.0, 0..12),
        config_index in 0usize..6,
    ) {
        let config = &all_configs()[config_index];
        let pieces = cut(&text, &fractions);
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let one_shot = config.split(&text);
        prop_assert_eq!(&one_shot, &reference(config, &text));
        prop_assert_eq!(stream(config, &refs), one_shot);
    }

    #[test]
    fn token_counts_do_not_depend_on_pieces_only_on_token_starts(
        text in text_strategy(),
        fractions in prop::collection::vec(0.0f64..=1.0, 0..12),
        config_index in 0usize..6,
    ) {
        // Rule: a token counts iff it starts before the end of the reasoning
        // region (the end of the first end tag, or the whole text when
        // unclosed); a token's start is the total length pushed before it.
        let config = &all_configs()[config_index];
        let pieces = cut(&text, &fractions);
        let mut splitter = ReasoningSplitter::new(config.clone());
        let mut starts = Vec::new();
        let mut offset = 0;
        for piece in &pieces {
            starts.push(offset);
            offset += piece.len();
            splitter.push_token(piece);
        }
        splitter.finish();
        let region_end = reasoning_region_end(config, &text);
        let expected = starts
            .iter()
            .zip(&pieces)
            .filter(|&(&start, piece)| match region_end {
                None => false,
                Some(end) => start < end || (start == end && piece.is_empty() && end_open(config, &text)),
            })
            .count() as u64;
        prop_assert_eq!(splitter.tokens(), pieces.len() as u64);
        prop_assert_eq!(splitter.reasoning_tokens(), expected);
    }
}

/// End of the reasoning region in bytes, `None` if the text has no
/// reasoning.
fn reasoning_region_end(config: &ReasoningConfig, text: &str) -> Option<usize> {
    let after_blank = text.trim_start();
    let opened = after_blank.starts_with(config.start_tag.as_str()) && !config.start_tag.is_empty();
    let body_start = match config.mode {
        ReasoningMode::Disabled => return None,
        _ if opened => text.len() - after_blank.len() + config.start_tag.len(),
        ReasoningMode::Forced => 0,
        ReasoningMode::Optional => return None,
    };
    match text[body_start..].find(config.end_tag.as_str()) {
        Some(at) => Some(body_start + at + config.end_tag.len()),
        None => Some(text.len()),
    }
}

/// Whether the reasoning is still open at the end of the text (no end
/// tag), in which case empty tokens at the very end still count.
fn end_open(config: &ReasoningConfig, text: &str) -> bool {
    reasoning_region_end(config, text) == Some(text.len())
        && !text.ends_with(config.end_tag.as_str())
}
