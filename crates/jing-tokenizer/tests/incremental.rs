//! Streaming detokenization with [`IncrementalDecoder`].

mod common;

use common::{bl, byte_level, metaspace};
use jing_tokenizer::{IncrementalDecoder, Tokenizer, MAX_PENDING_TOKENS};
use proptest::prelude::*;

const REPLACEMENT: char = '\u{FFFD}';

/// Pushes every id and returns each push's output, then the flush.
fn stream(tok: &Tokenizer, ids: &[u32], skip_special: bool) -> (Vec<Option<String>>, String) {
    let mut dec = tok.incremental_decoder(skip_special);
    let pushes = ids.iter().map(|&id| dec.push(id).unwrap()).collect();
    let rest = dec.flush().unwrap();
    (pushes, rest)
}

fn concat(pushes: &[Option<String>], rest: &str) -> String {
    pushes
        .iter()
        .flatten()
        .map(String::as_str)
        .chain([rest])
        .collect()
}

fn ids_of(tok: &Tokenizer, pieces: &[&[u8]]) -> Vec<u32> {
    pieces
        .iter()
        .map(|p| {
            tok.token_to_id(&bl(p))
                .unwrap_or_else(|| panic!("no token {p:?}"))
        })
        .collect()
}

#[test]
fn cjk_split_across_tokens_waits_for_complete_chars() {
    let tok = byte_level();
    // 中文 = [E4 B8] [AD E6] [96 87]
    let ids = ids_of(&tok, &[&[0xE4, 0xB8], &[0xAD, 0xE6], &[0x96, 0x87]]);
    assert_eq!(tok.encode("中文", false).unwrap(), ids);
    let (pushes, rest) = stream(&tok, &ids, false);
    // The middle token completes 中 but starts 文: held back until 文 is done,
    // since the decoder works at token granularity.
    assert_eq!(pushes, vec![None, None, Some("中文".to_string())]);
    assert_eq!(rest, "");
}

#[test]
fn emoji_split_across_tokens() {
    let tok = byte_level();
    let ids = tok.encode("a😀b", false).unwrap();
    let (pushes, rest) = stream(&tok, &ids, false);
    assert_eq!(concat(&pushes, &rest), "a😀b");
    for chunk in pushes.iter().flatten() {
        assert!(!chunk.contains('\u{FFFD}'), "{chunk:?}");
    }
    assert_eq!(pushes.first().unwrap().as_deref(), Some("a"));
    assert_eq!(pushes.iter().flatten().count(), 3, "{pushes:?}");
}

#[test]
fn ascii_is_emitted_token_by_token() {
    let tok = byte_level();
    let ids = tok.encode("hello the world", false).unwrap();
    let (pushes, rest) = stream(&tok, &ids, false);
    assert!(pushes.iter().all(Option::is_some), "{pushes:?}");
    assert_eq!(concat(&pushes, &rest), "hello the world");
}

#[test]
fn flush_returns_an_incomplete_tail_as_replacement() {
    let tok = byte_level();
    let ids = ids_of(&tok, &[b"a", &[0xE4, 0xB8]]);
    let mut dec = IncrementalDecoder::new(&tok, false);
    assert_eq!(dec.push(ids[0]).unwrap().as_deref(), Some("a"));
    assert_eq!(dec.push(ids[1]).unwrap(), None);
    assert_eq!(dec.pending_tokens(), 1);
    assert_eq!(dec.flush().unwrap(), "\u{FFFD}");
    assert_eq!(dec.pending_tokens(), 0);
    assert_eq!(dec.flush().unwrap(), "");
}

#[test]
fn metaspace_keeps_spaces_between_words() {
    let tok = metaspace();
    let ids = tok.encode("Hello world! a", true).unwrap();
    let (pushes, rest) = stream(&tok, &ids, true);
    let chunks: Vec<&str> = pushes.iter().flatten().map(String::as_str).collect();
    assert_eq!(chunks, vec!["Hello", " world", "!", " a"]);
    assert_eq!(rest, "");
    // Decoding token by token would have glued the words together.
    let naive: String = ids
        .iter()
        .map(|&id| tok.decode(&[id], true).unwrap())
        .collect();
    assert_eq!(naive, "Helloworld!a");
}

#[test]
fn metaspace_byte_fallback_waits_for_complete_chars() {
    let tok = metaspace();
    let ids = tok.encode("a 中", false).unwrap();
    let (pushes, rest) = stream(&tok, &ids, false);
    assert_eq!(concat(&pushes, &rest), "a 中");
    assert_eq!(pushes.iter().flatten().count(), 3, "{pushes:?}");
}

#[test]
fn special_tokens_skipped_or_kept() {
    let tok = byte_level();
    let text = "<｜begin▁of▁sentence｜>hi<think>中<｜end▁of▁sentence｜>";
    let ids = tok.encode(text, false).unwrap();
    let (pushes, rest) = stream(&tok, &ids, true);
    assert_eq!(pushes[0], None, "BOS is skipped");
    assert_eq!(*pushes.last().unwrap(), None, "EOS is skipped");
    assert_eq!(concat(&pushes, &rest), "hi<think>中");
    let (pushes, rest) = stream(&tok, &ids, false);
    assert_eq!(concat(&pushes, &rest), text);
}

#[test]
fn window_stays_small_on_long_streams() {
    let tok = byte_level();
    let text = "中文 hello 😀 你好 the world ".repeat(200);
    let ids = tok.encode(&text, false).unwrap();
    let mut dec = tok.incremental_decoder(false);
    let mut out = String::new();
    for &id in &ids {
        if let Some(chunk) = dec.push(id).unwrap() {
            out.push_str(&chunk);
        }
        assert!(dec.pending_tokens() <= 3);
    }
    out.push_str(&dec.flush().unwrap());
    assert_eq!(out, text);
}

#[test]
fn invalid_bytes_do_not_stall_forever() {
    let tok = byte_level();
    // A lone continuation byte never becomes valid UTF-8.
    let cont = tok.token_to_id(&bl(&[0x80])).unwrap();
    let ids = vec![cont; MAX_PENDING_TOKENS * 3];
    let mut dec = tok.incremental_decoder(false);
    let mut emitted = 0;
    for &id in &ids {
        if dec.push(id).unwrap().is_some() {
            emitted += 1;
        }
        assert!(dec.pending_tokens() < MAX_PENDING_TOKENS);
    }
    assert!(emitted >= 2);
}

#[test]
fn reset_starts_a_new_stream() {
    let tok = byte_level();
    let mut dec = tok.incremental_decoder(false);
    let partial = tok.token_to_id(&bl(&[0xE4, 0xB8])).unwrap();
    assert_eq!(dec.push(partial).unwrap(), None);
    dec.reset();
    let a = tok.token_to_id("a").unwrap();
    assert_eq!(dec.push(a).unwrap().as_deref(), Some("a"));
    assert_eq!(dec.flush().unwrap(), "");
}

#[test]
fn decoder_continues_after_flush() {
    let tok = byte_level();
    let ids = tok.encode("hello the world", false).unwrap();
    let mut dec = tok.incremental_decoder(false);
    let mut out = String::new();
    for (i, &id) in ids.iter().enumerate() {
        out.extend(dec.push(id).unwrap());
        if i % 2 == 0 {
            out.push_str(&dec.flush().unwrap());
        }
    }
    out.push_str(&dec.flush().unwrap());
    assert_eq!(out, "hello the world");
}

/// Checks the streaming property for one id sequence: when the full decode
/// has no U+FFFD, the stream reproduces it exactly and no chunk contains one.
fn check_stream(tok: &Tokenizer, ids: &[u32], skip: bool) -> Result<(), TestCaseError> {
    let full = tok.decode(ids, skip).unwrap();
    let (pushes, rest) = stream(tok, ids, skip);
    let streamed = concat(&pushes, &rest);
    if full.contains('\u{FFFD}') {
        return Ok(());
    }
    prop_assert_eq!(&streamed, &full);
    for chunk in pushes.iter().flatten() {
        prop_assert!(!chunk.is_empty());
        prop_assert!(!chunk.contains(REPLACEMENT), "chunk {:?}", chunk);
    }
    Ok(())
}

/// A strategy for id sequences built from "units": short runs of ids that
/// together decode to valid text (ASCII tokens, CJK characters and an emoji
/// split across tokens in several ways, special tokens), mixed with the odd
/// arbitrary id from anywhere in the vocabulary or beyond it, so that the
/// sequences stress splitting without being mostly invalid UTF-8.
fn id_sequences(tok: &Tokenizer, units: Vec<Vec<u32>>) -> impl Strategy<Value = Vec<u32>> {
    let beyond = tok.vocab_size() as u32 + 5;
    let unit = prop_oneof![
        9 => proptest::sample::select(units),
        1 => (0..beyond).prop_map(|id| vec![id]),
    ];
    proptest::collection::vec(unit, 0..24).prop_map(|units| units.concat())
}

fn byte_level_units(tok: &Tokenizer) -> Vec<Vec<u32>> {
    let pieces: &[&[&[u8]]] = &[
        &[b"a"],
        &[b" "],
        &[b"!"],
        &[b"\n"],
        &[b" the"],
        &[b"he"],
        &[b"llo"],
        &[b" world"],
        // 中文, 中, 😀, 你好, 你, 好: characters split across tokens.
        &[&[0xE4, 0xB8], &[0xAD, 0xE6], &[0x96, 0x87]],
        &[&[0xE4, 0xB8], &[0xAD]],
        &[&[0xE4], &[0xB8], &[0xAD]],
        &[&[0xF0], &[0x9F, 0x98], &[0x80]],
        &[&[0xE4, 0xBD, 0xA0, 0xE5], &[0xA5, 0xBD]],
        &[&[0xE4, 0xBD, 0xA0]],
        &[&[0xE5], &[0xA5, 0xBD]],
    ];
    let mut units: Vec<Vec<u32>> = pieces.iter().map(|unit| ids_of(tok, unit)).collect();
    for special in [
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        "<think>",
        "</think>",
        "<｜User｜>",
        "<|EOT|>",
    ] {
        units.push(vec![tok.token_to_id(special).unwrap()]);
    }
    units
}

fn metaspace_units(tok: &Tokenizer) -> Vec<Vec<u32>> {
    let units: &[&[&str]] = &[
        &["▁"],
        &["▁Hello"],
        &["▁world"],
        &["!"],
        &["▁a"],
        &["b"],
        &["<0xE4>", "<0xB8>", "<0xAD>"],
        &["<0x20>"],
        &["<unk>"],
        &["<s>"],
        &["</s>"],
    ];
    units
        .iter()
        .map(|unit| unit.iter().map(|t| tok.token_to_id(t).unwrap()).collect())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn byte_level_stream_equals_full_decode(
        ids in id_sequences(&byte_level(), byte_level_units(&byte_level())),
        skip in any::<bool>(),
    ) {
        check_stream(&byte_level(), &ids, skip)?;
    }

    #[test]
    fn metaspace_stream_equals_full_decode(
        ids in id_sequences(&metaspace(), metaspace_units(&metaspace())),
        skip in any::<bool>(),
    ) {
        check_stream(&metaspace(), &ids, skip)?;
    }

    #[test]
    fn encoded_text_streams_back_exactly(
        text in "([a-z ]|中|文|你|好|😀|🦀|é|\\n|<think>|<｜User｜>){0,40}",
    ) {
        let tok = byte_level();
        let ids = tok.encode(&text, false).unwrap();
        let (pushes, rest) = stream(&tok, &ids, false);
        prop_assert_eq!(concat(&pushes, &rest), text);
        prop_assert_eq!(rest, "");
        for chunk in pushes.iter().flatten() {
            prop_assert!(!chunk.contains(REPLACEMENT), "chunk {:?}", chunk);
        }
    }
}
