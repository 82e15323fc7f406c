//! Loading, encoding and decoding with [`Tokenizer`], and the errors for bad
//! model directories.

mod common;

use common::{bl, byte_level, metaspace, model_dir, temp_dir, BOS, EOS};
use jing_tokenizer::{Tokenizer, TokenizerError};

#[test]
fn byte_level_round_trips_text() {
    let tok = byte_level();
    for text in [
        "",
        "hello the world",
        " leading and trailing spaces ",
        "中文 and 你好",
        "emoji 😀 and 🦀🦀",
        "tabs\tand\nnewlines\r\n",
        "mixed: 中😀文",
    ] {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "ids {ids:?}");
    }
}

#[test]
fn merges_split_characters_across_tokens() {
    let tok = byte_level();
    let ids = tok.encode("中文", false).unwrap();
    let expected: Vec<u32> = [&[0xE4, 0xB8][..], &[0xAD, 0xE6], &[0x96, 0x87]]
        .iter()
        .map(|piece| tok.token_to_id(&bl(piece)).unwrap())
        .collect();
    assert_eq!(ids, expected);
    // Each piece alone is not valid UTF-8.
    for id in &ids {
        assert!(tok.decode(&[*id], false).unwrap().contains('\u{FFFD}'));
    }
}

#[test]
fn special_tokens_are_recognised_in_text() {
    let tok = byte_level();
    let think = tok.token_to_id("<think>").unwrap();
    let user = tok.token_to_id("<｜User｜>").unwrap();
    let ids = tok
        .encode(&format!("{BOS}<｜User｜>hi<think>"), true)
        .unwrap();
    assert_eq!(ids[0], 0);
    assert_eq!(ids[1], user);
    assert_eq!(*ids.last().unwrap(), think);
    assert_eq!(
        tok.decode(&ids, false).unwrap(),
        format!("{BOS}<｜User｜>hi<think>")
    );
    // Only tokens flagged `special` are skipped: <think> and <｜User｜> are not.
    assert_eq!(tok.decode(&ids, true).unwrap(), "<｜User｜>hi<think>");
}

#[test]
fn is_special_follows_the_special_flag() {
    let tok = byte_level();
    assert!(tok.is_special(0));
    assert!(tok.is_special(1));
    assert!(tok.is_special(tok.token_to_id("<|EOT|>").unwrap()));
    assert!(!tok.is_special(tok.token_to_id("<think>").unwrap()));
    assert!(!tok.is_special(tok.token_to_id("<｜Assistant｜>").unwrap()));
    assert!(!tok.is_special(tok.token_to_id(&bl(b"a")).unwrap()));
    assert!(!tok.is_special(u32::MAX));
}

#[test]
fn vocab_lookups() {
    let tok = byte_level();
    // 3 specials + 256 bytes + merges + 5 added tokens.
    let think = tok.token_to_id("<think>").unwrap();
    assert_eq!(tok.vocab_size(), think as usize + 5);
    assert_eq!(tok.id_to_token(0).as_deref(), Some(BOS));
    assert_eq!(tok.id_to_token(think).as_deref(), Some("<think>"));
    assert_eq!(tok.token_to_id("Ġthe"), tok.token_to_id(&bl(b" the")));
    assert!(tok.token_to_id("Ġthe").is_some());
    assert_eq!(tok.token_to_id("no such token"), None);
    assert_eq!(tok.id_to_token(tok.vocab_size() as u32), None);
}

#[test]
fn out_of_vocab_ids_decode_to_nothing() {
    let tok = byte_level();
    let mut ids = tok.encode("hello", false).unwrap();
    ids.insert(1, 1_000_000);
    ids.push(u32::MAX);
    assert_eq!(tok.decode(&ids, false).unwrap(), "hello");
    assert_eq!(tok.decode(&[], true).unwrap(), "");
}

#[test]
fn bare_tokenizer_has_no_bos_or_eos() {
    let tok = byte_level();
    assert_eq!(tok.bos_id(), None);
    assert!(tok.eos_ids().is_empty());
    assert!(!tok.is_eos(1));
    assert_eq!(tok.chat_template(), None);
    assert!(!tok.add_bos_token());
}

#[test]
fn metaspace_strips_the_leading_space_and_adds_bos() {
    let tok = metaspace();
    let ids = tok.encode("Hello world!", true).unwrap();
    assert_eq!(ids[0], 1, "post-processor prepends <s>");
    assert_eq!(tok.decode(&ids, true).unwrap(), "Hello world!");
    assert_eq!(tok.decode(&ids, false).unwrap(), "<s> Hello world!");
    let ids = tok.encode("中", false).unwrap();
    assert_eq!(ids.len(), 4, "▁ plus three byte-fallback tokens: {ids:?}");
    assert_eq!(tok.decode(&ids, false).unwrap(), "中");
}

#[test]
fn truncation_in_tokenizer_json_is_ignored() {
    let mut json: serde_json::Value = serde_json::from_str(&common::byte_level_json()).unwrap();
    json["truncation"] = serde_json::json!({
        "direction": "Right", "max_length": 2, "strategy": "LongestFirst", "stride": 0
    });
    let tok = Tokenizer::from_bytes(json.to_string().as_bytes()).unwrap();
    assert!(tok.encode("a b c d e f", false).unwrap().len() > 2);
}

#[test]
fn model_dir_reads_both_config_files() {
    let dir = model_dir(
        "both",
        Some(&format!(
            r#"{{"bos_token": {{"__type": "AddedToken", "content": "{BOS}"}},
                "eos_token": "{EOS}", "add_bos_token": true,
                "chat_template": "{{{{ bos_token }}}}{{% for m in messages %}}{{{{ m.content }}}}{{% endfor %}}",
                "model_max_length": 131072}}"#
        )),
        Some(r#"{"bos_token_id": 0, "eos_token_id": [1, 2], "temperature": 0.6}"#),
    );
    let tok = Tokenizer::from_model_dir(&dir).unwrap();
    assert_eq!(tok.bos_id(), Some(0));
    assert_eq!(tok.eos_ids(), vec![1, 2]);
    assert!(tok.is_eos(2) && !tok.is_eos(0));
    assert_eq!(tok.bos_token(), Some(BOS));
    assert_eq!(tok.eos_token(), Some(EOS));
    assert!(tok.add_bos_token());
    let template = tok.chat_template().and_then(|t| t.as_str()).unwrap();
    assert!(template.starts_with("{{ bos_token }}"), "{template}");
    // add_bos_token is informational: the post-processor decides.
    assert_eq!(
        tok.encode("hi", true).unwrap(),
        tok.encode("hi", false).unwrap()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn model_dir_with_only_generation_config() {
    let dir = model_dir(
        "gen",
        None,
        Some(r#"{"bos_token_id": 0, "eos_token_id": 1}"#),
    );
    let tok = Tokenizer::from_model_dir(&dir).unwrap();
    assert_eq!(tok.bos_id(), Some(0));
    assert_eq!(tok.eos_ids(), vec![1]);
    assert_eq!(tok.bos_token(), None);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn eos_ids_are_the_union_without_duplicates() {
    let eot = byte_level().token_to_id("<|EOT|>").unwrap();
    let dir = model_dir(
        "union",
        Some(r#"{"eos_token": "<|EOT|>", "bos_token": null}"#),
        Some(&format!(r#"{{"eos_token_id": [1, {eot}, 1]}}"#)),
    );
    let tok = Tokenizer::from_model_dir(&dir).unwrap();
    assert_eq!(tok.eos_ids(), vec![eot, 1]);
    assert_eq!(tok.bos_id(), None);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn model_dir_without_configs() {
    let dir = model_dir("none", None, None);
    let tok = Tokenizer::from_model_dir(&dir).unwrap();
    assert_eq!(tok.bos_id(), None);
    assert!(tok.eos_ids().is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

fn err_text(result: Result<Tokenizer, TokenizerError>) -> (TokenizerError, String) {
    let err = result.expect_err("loading should fail");
    let text = err.to_string();
    (err, text)
}

#[test]
fn missing_dir_and_missing_files() {
    let dir = temp_dir("missing");
    let (err, text) = err_text(Tokenizer::from_model_dir(&dir.join("nope")));
    assert!(matches!(err, TokenizerError::MissingFile { .. }), "{text}");
    assert!(text.contains("nope"), "{text}");

    let (err, text) = err_text(Tokenizer::from_model_dir(&dir));
    assert!(matches!(err, TokenizerError::MissingFile { .. }), "{text}");
    assert!(
        text.contains("tokenizer.json") && text.contains("download"),
        "{text}"
    );

    std::fs::write(dir.join("tokenizer.model"), b"spm").unwrap();
    let (_, text) = err_text(Tokenizer::from_model_dir(&dir));
    assert!(text.contains("SentencePiece"), "{text}");

    let (_, text) = err_text(Tokenizer::from_model_dir(&dir.join("tokenizer.model")));
    assert!(text.contains("from_file"), "{text}");

    let (err, text) = err_text(Tokenizer::from_file(&dir.join("tokenizer.json")));
    assert!(matches!(err, TokenizerError::MissingFile { .. }), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn invalid_json_and_non_tokenizer_json() {
    let dir = temp_dir("invalid");
    let path = dir.join("tokenizer.json");

    let json = common::byte_level_json();
    std::fs::write(&path, &json[..json.len() / 2]).unwrap();
    let (err, text) = err_text(Tokenizer::from_file(&path));
    assert!(matches!(err, TokenizerError::InvalidJson { .. }), "{text}");
    assert!(
        text.contains("tokenizer.json") && text.contains("download it again"),
        "{text}"
    );

    std::fs::write(
        &path,
        "version https://git-lfs.github.com/spec/v1\noid sha256:00\n",
    )
    .unwrap();
    let (err, text) = err_text(Tokenizer::from_model_dir(&dir));
    assert!(matches!(err, TokenizerError::InvalidJson { .. }), "{text}");

    std::fs::write(&path, r#"{"model": {"type": "NoSuchModel"}}"#).unwrap();
    let (err, text) = err_text(Tokenizer::from_file(&path));
    assert!(
        matches!(err, TokenizerError::InvalidTokenizer { .. }),
        "{text}"
    );
    assert!(text.contains("tokenizer.json"), "{text}");

    let (err, _) = err_text(Tokenizer::from_bytes(b"[]"));
    assert!(matches!(err, TokenizerError::InvalidTokenizer { .. }));
    let (err, _) = err_text(Tokenizer::from_bytes(b""));
    assert!(matches!(err, TokenizerError::InvalidJson { .. }));
    let (err, _) = err_text(Tokenizer::from_bytes(&[0xFF, 0xFE, 0x00]));
    assert!(matches!(err, TokenizerError::InvalidJson { .. }));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_config_files_are_named() {
    let dir = model_dir("badcfg", Some("{not json"), None);
    let (err, text) = err_text(Tokenizer::from_model_dir(&dir));
    assert!(matches!(err, TokenizerError::InvalidJson { .. }), "{text}");
    assert!(text.contains("tokenizer_config.json"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();

    let dir = model_dir("badgen", None, Some(r#"{"eos_token_id": "1"}"#));
    let (err, text) = err_text(Tokenizer::from_model_dir(&dir));
    assert!(
        matches!(err, TokenizerError::InvalidConfig { .. }),
        "{text}"
    );
    assert!(
        text.contains("generation_config.json") && text.contains("`eos_token_id`"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn special_tokens_missing_from_the_vocab_are_reported() {
    let dir = model_dir("unknown-text", Some(r#"{"eos_token": "</s>"}"#), None);
    let (err, text) = err_text(Tokenizer::from_model_dir(&dir));
    assert!(
        matches!(err, TokenizerError::UnknownSpecialToken { .. }),
        "{text}"
    );
    assert!(
        text.contains("tokenizer_config.json") && text.contains("\"</s>\""),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();

    let dir = model_dir("unknown-id", None, Some(r#"{"eos_token_id": [1, 129279]}"#));
    let (_, text) = err_text(Tokenizer::from_model_dir(&dir));
    assert!(
        text.contains("generation_config.json") && text.contains("id 129279"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn tokenizer_is_cheap_to_share() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Tokenizer>();
    let tok = byte_level();
    let copy = tok.clone();
    let handle = std::thread::spawn(move || copy.encode("hello the world", false).unwrap());
    assert_eq!(
        handle.join().unwrap(),
        tok.encode("hello the world", false).unwrap()
    );
    assert!(format!("{tok:?}").contains("vocab_size"));
}
