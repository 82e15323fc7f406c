//! Small tokenizers built in code, so that the tests need no downloaded files.
//!
//! - [`byte_level_json`]: a DeepSeek-like byte-level BPE with a few merges
//!   that deliberately split CJK characters and an emoji across tokens, and
//!   DeepSeek's special tokens.
//! - [`metaspace_json`]: a Llama-2-like SentencePiece BPE with byte fallback,
//!   whose decoder strips the leading space of the first token.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use jing_tokenizer::Tokenizer;
use serde_json::{json, Value};

pub const BOS: &str = "<｜begin▁of▁sentence｜>";
pub const EOS: &str = "<｜end▁of▁sentence｜>";

/// The fixtures directory shared by the workspace.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizer")
}

/// GPT-2's reversible byte → printable char mapping that byte-level BPE uses.
pub fn byte_to_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    if printable(b) {
        char::from(b)
    } else {
        let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
        char::from_u32(256 + rank).expect("valid char")
    }
}

/// The byte-level spelling of a byte string.
pub fn bl(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

fn added(id: u32, content: &str, special: bool) -> Value {
    json!({
        "id": id, "content": content, "single_word": false, "lstrip": false,
        "rstrip": false, "normalized": !special, "special": special
    })
}

/// Token texts whose merges the byte-level tokenizer has, in merge order:
/// ASCII words plus pieces that cross UTF-8 character boundaries.
fn byte_level_merges() -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = vec![
        b" t",
        b"he",
        b" the",
        b"ll",
        b"llo",
        b"he", /* dup ignored */
        b" w",
        b"or",
        b" wor",
        b"ld",
        b" world",
        b"in",
        b"ing",
        b" th",
        b"in", /* dup */
        // 中 = E4 B8 AD, 文 = E6 96 87: [E4 B8] [AD E6] [96 87]
        &[0xAD, 0xE6],
        &[0xE4, 0xB8],
        &[0x96, 0x87],
        // 😀 = F0 9F 98 80: [F0] [9F 98] [80]
        &[0x9F, 0x98],
        // 你 = E4 BD A0, 好 = E5 A5 BD: [E4 BD A0 E5] [A5 BD]
        &[0xE4, 0xBD],
        &[0xE4, 0xBD, 0xA0],
        &[0xE4, 0xBD, 0xA0, 0xE5],
        &[0xA5, 0xBD],
    ];
    let mut out: Vec<Vec<u8>> = Vec::new();
    for p in pieces {
        if !out.iter().any(|q| q == p) {
            out.push(p.to_vec());
        }
    }
    out
}

/// Splits a merged piece into the two parts its merge joins: the longest
/// known prefix (a single byte or an earlier merge) and the rest.
fn split_merge(piece: &[u8], known: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    for cut in (1..piece.len()).rev() {
        let (a, b) = piece.split_at(cut);
        let ok = |x: &[u8]| x.len() == 1 || known.iter().any(|k| k == x);
        if ok(a) && ok(b) {
            return (a.to_vec(), b.to_vec());
        }
    }
    panic!("test tokenizer: no merge for {piece:?}");
}

/// A DeepSeek-like byte-level BPE `tokenizer.json`:
/// `<｜begin▁of▁sentence｜>` = 0, `<｜end▁of▁sentence｜>` = 1, `<｜▁pad▁｜>` = 2
/// (special), the 256 bytes, merges, then `<think>`, `</think>`, `<｜User｜>`,
/// `<｜Assistant｜>` (not special) and `<|EOT|>` (special).
pub fn byte_level_json() -> String {
    let mut vocab = serde_json::Map::new();
    let mut next = 0u32;
    let mut add = |vocab: &mut serde_json::Map<String, Value>, text: String| {
        if !vocab.contains_key(&text) {
            vocab.insert(text, json!(next));
            next += 1;
        }
    };
    for s in [BOS, EOS, "<｜▁pad▁｜>"] {
        add(&mut vocab, s.to_string());
    }
    for b in 0..=255u8 {
        add(&mut vocab, bl(&[b]));
    }
    let mut merges = Vec::new();
    let mut known: Vec<Vec<u8>> = Vec::new();
    for piece in byte_level_merges() {
        let (a, b) = split_merge(&piece, &known);
        merges.push(json!([bl(&a), bl(&b)]));
        add(&mut vocab, bl(&piece));
        known.push(piece);
    }
    let base = vocab.len() as u32;
    let added_tokens = vec![
        added(0, BOS, true),
        added(1, EOS, true),
        added(2, "<｜▁pad▁｜>", true),
        added(base, "<think>", false),
        added(base + 1, "</think>", false),
        added(base + 2, "<｜User｜>", false),
        added(base + 3, "<｜Assistant｜>", false),
        added(base + 4, "<|EOT|>", true),
    ];
    let byte_level = json!({
        "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true
    });
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges
        }
    })
    .to_string()
}

/// A Llama-2-like SentencePiece BPE `tokenizer.json` with byte fallback:
/// `<unk>` = 0, `<s>` = 1 (special), `</s>` = 2 (special), `<0x00>`..`<0xFF>`,
/// then pieces. Its decoder strips one leading space, and a post-processor
/// prepends `<s>` when `add_special_tokens` is set.
pub fn metaspace_json() -> String {
    let mut vocab = serde_json::Map::new();
    for (i, s) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
        vocab.insert(s.to_string(), json!(i));
    }
    for b in 0..=255u32 {
        vocab.insert(format!("<0x{b:02X}>"), json!(3 + b));
    }
    let singles = ["▁", "H", "e", "l", "o", "w", "r", "d", "!", "a", "b"];
    let merged = [
        ("l", "l", "ll"),
        ("ll", "o", "llo"),
        ("e", "llo", "ello"),
        ("H", "ello", "Hello"),
        ("▁", "Hello", "▁Hello"),
        ("o", "r", "or"),
        ("w", "or", "wor"),
        ("wor", "l", "worl"),
        ("worl", "d", "world"),
        ("▁", "world", "▁world"),
        ("▁", "a", "▁a"),
    ];
    let mut next = 259u32;
    for s in singles {
        vocab.insert(s.to_string(), json!(next));
        next += 1;
    }
    let mut merges = Vec::new();
    for (a, b, ab) in merged {
        vocab.insert(ab.to_string(), json!(next));
        next += 1;
        merges.push(json!([a, b]));
    }
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": merges
        }
    })
    .to_string()
}

/// The [`byte_level_json`] tokenizer, built once per test binary.
pub fn byte_level() -> Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| {
            Tokenizer::from_bytes(byte_level_json().as_bytes()).expect("byte-level test tokenizer")
        })
        .clone()
}

/// The [`metaspace_json`] tokenizer, built once per test binary.
pub fn metaspace() -> Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| {
            Tokenizer::from_bytes(metaspace_json().as_bytes()).expect("metaspace test tokenizer")
        })
        .clone()
}

/// A fresh, empty directory under the system temp dir, unique to this
/// process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "jing-tokenizer-test-{}-{tag}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A model directory holding the byte-level tokenizer plus the given config
/// files (`None` leaves a file out).
pub fn model_dir(
    tag: &str,
    tokenizer_config: Option<&str>,
    generation_config: Option<&str>,
) -> PathBuf {
    let dir = temp_dir(tag);
    std::fs::write(dir.join("tokenizer.json"), byte_level_json()).expect("write");
    if let Some(text) = tokenizer_config {
        std::fs::write(dir.join("tokenizer_config.json"), text).expect("write");
    }
    if let Some(text) = generation_config {
        std::fs::write(dir.join("generation_config.json"), text).expect("write");
    }
    dir
}

/// Cut `text` at the given fractions of its length, each moved down to a char boundary: the
/// pieces a streaming parser is fed in the property tests.
pub fn cut(text: &str, fractions: &[f64]) -> Vec<String> {
    let mut points: Vec<usize> = fractions
        .iter()
        .map(|f| {
            let mut at = ((text.len() as f64) * f) as usize;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        })
        .collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for at in points {
        pieces.push(text[from..at].to_owned());
        from = at;
    }
    pieces.push(text[from..].to_owned());
    pieces
}
