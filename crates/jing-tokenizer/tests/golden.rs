//! The committed fixture `tests/fixtures/tokenizer/`: a tiny byte-level BPE
//! built like DeepSeek-V3's tokenizer, with golden ids and texts produced by
//! the Python `tokenizers` library (see `golden.json`'s `notes`).

mod common;

use jing_tokenizer::Tokenizer;
use serde_json::Value;

fn golden() -> Value {
    let path = common::fixtures_dir().join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture() -> Tokenizer {
    Tokenizer::from_model_dir(&common::fixtures_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("a list of ids")
        .iter()
        .map(|v| u32::try_from(v.as_u64().expect("an id")).expect("a u32 id"))
        .collect()
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {value}"))
}

/// Streams `ids` through an incremental decoder and returns the text.
fn streamed(tok: &Tokenizer, ids: &[u32], skip: bool) -> String {
    let mut dec = tok.incremental_decoder(skip);
    let mut out = String::new();
    for &id in ids {
        if let Some(chunk) = dec.push(id).unwrap() {
            assert!(!chunk.contains('\u{FFFD}'), "chunk {chunk:?} of {ids:?}");
            out.push_str(&chunk);
        }
    }
    out.push_str(&dec.flush().unwrap());
    out
}

#[test]
fn vocabulary_and_special_tokens() {
    let tok = fixture();
    let golden = golden();
    assert_eq!(
        tok.vocab_size() as u64,
        golden["vocab_size_with_added"].as_u64().unwrap()
    );
    let specials = golden["special_token_ids"].as_object().unwrap();
    assert!(!specials.is_empty());
    for (text, id) in specials {
        let id = id.as_u64().unwrap() as u32;
        assert_eq!(tok.token_to_id(text), Some(id), "{text}");
        assert_eq!(tok.id_to_token(id).as_deref(), Some(text.as_str()));
        assert!(tok.is_special(id), "{text}");
    }
}

#[test]
fn config_files_are_read() {
    let tok = fixture();
    assert_eq!(tok.bos_id(), Some(0));
    assert_eq!(tok.eos_ids(), vec![1]);
    assert_eq!(tok.bos_token(), Some("<｜begin▁of▁sentence｜>"));
    assert_eq!(tok.eos_token(), Some("<｜end▁of▁sentence｜>"));
    assert!(tok.add_bos_token());
    let template = tok.chat_template().and_then(Value::as_str).unwrap();
    assert!(template.contains("bos_token"), "{template}");
}

#[test]
fn encode_and_decode_match_golden() {
    let tok = fixture();
    let golden = golden();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let text = str_of(case, "text");
        let with_special = ids(&case["ids"]);
        let without = ids(&case["ids_no_special"]);
        assert_eq!(tok.encode(text, true).unwrap(), with_special, "{text:?}");
        assert_eq!(tok.encode(text, false).unwrap(), without, "{text:?}");
        assert_eq!(
            tok.decode(&with_special, false).unwrap(),
            str_of(case, "decoded"),
            "{text:?}"
        );
        assert_eq!(
            tok.decode(&without, false).unwrap(),
            str_of(case, "decoded_no_special"),
            "{text:?}"
        );
        let tokens: Vec<String> = without
            .iter()
            .map(|&id| tok.id_to_token(id).unwrap())
            .collect();
        let expected: Vec<&str> = case["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(tokens, expected, "{text:?}");
    }
}

#[test]
fn bare_tokenizer_json_encodes_the_same() {
    let tok = Tokenizer::from_file(&common::fixtures_dir().join("tokenizer.json")).unwrap();
    let golden = golden();
    for case in golden["cases"].as_array().unwrap() {
        let text = str_of(case, "text");
        assert_eq!(
            tok.encode(text, true).unwrap(),
            ids(&case["ids"]),
            "{text:?}"
        );
    }
    assert_eq!(tok.bos_id(), None);
}

#[test]
fn streaming_matches_full_decode() {
    let tok = fixture();
    let golden = golden();
    let chats = golden["chat"].as_array().unwrap();
    let all_ids = golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| ids(&case["ids"]))
        .chain(chats.iter().map(|chat| ids(&chat["ids"])));
    for ids in all_ids {
        for skip in [false, true] {
            assert_eq!(
                streamed(&tok, &ids, skip),
                tok.decode(&ids, skip).unwrap(),
                "ids {ids:?}, skip_special_tokens {skip}"
            );
        }
    }
}

#[test]
fn rendered_chats_encode_to_golden_ids() {
    let tok = fixture();
    let golden = golden();
    for chat in golden["chat"].as_array().unwrap() {
        let rendered = str_of(chat, "rendered");
        let expected = ids(&chat["ids"]);
        // The template writes BOS itself, so encode without special tokens.
        assert_eq!(
            tok.encode(rendered, false).unwrap(),
            expected,
            "{rendered:?}"
        );
        assert_eq!(expected.first().copied(), tok.bos_id());
        assert_eq!(tok.decode(&expected, false).unwrap(), rendered);
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn shared() -> Tokenizer {
        static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
        TOKENIZER.get_or_init(fixture).clone()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Text made of characters the fixture mostly has to split into
        /// byte tokens comes back exactly, from both decode and the stream.
        #[test]
        fn text_round_trips_through_the_stream(
            text in "([a-zA-Z0-9 ,.!?]|\\n|我|们|龍|鬱|こ|テ|😀|🎉|👨\u{200d}👩|é|ß|<think>|<｜User｜>){0,40}",
        ) {
            let tok = shared();
            let ids = tok.encode(&text, false).unwrap();
            prop_assert_eq!(tok.decode(&ids, false).unwrap(), text.clone());
            prop_assert_eq!(streamed(&tok, &ids, false), text);
        }

        /// Id sequences that are not what encoding the whole text would give
        /// (pieces encoded separately, with stray ids from anywhere in the
        /// vocabulary or past it mixed in) stream to the full decode whenever
        /// that is valid UTF-8.
        #[test]
        fn odd_id_sequences_stream_like_full_decode(
            pieces in proptest::collection::vec(
                prop_oneof![
                    6 => "([a-z ]|\\n|我|龍|テ|😀|🎉|é|<think>|<｜end▁of▁sentence｜>){1,4}"
                        .prop_map(Ok),
                    1 => (0u32..500).prop_map(Err),
                ],
                0..16,
            ),
            skip in any::<bool>(),
        ) {
            let tok = shared();
            let mut ids = Vec::new();
            for piece in pieces {
                match piece {
                    Ok(text) => ids.extend(tok.encode(&text, false).unwrap()),
                    Err(id) => ids.push(id),
                }
            }
            let full = tok.decode(&ids, skip).unwrap();
            if !full.contains('\u{FFFD}') {
                prop_assert_eq!(streamed(&tok, &ids, skip), full);
            }
        }
    }
}
