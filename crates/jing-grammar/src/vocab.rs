//! The bytes of every token, as llguidance's token trie needs them, built from jing's
//! [`Tokenizer`] (not from `toktrie_hf_tokenizers`, which pins another `tokenizers` version).

use std::collections::HashMap;

use jing_tokenizer::Tokenizer;
use llguidance::toktrie::{TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::{first_line, GrammarError};

/// The token trie plus the tokenizer, for llguidance: the trie says which tokens may extend
/// the text, the tokenizer gives the canonical tokens of text the grammar forces.
pub(crate) struct Vocab {
    tokenizer: Tokenizer,
    trie: TokTrie,
    /// Which ids are llguidance special tokens (their trie bytes are the marker byte and their
    /// text). Kept apart because a byte-level model token for the byte 0xFF starts with the
    /// marker byte too.
    special: Vec<bool>,
}

impl Vocab {
    /// Builds the trie over ids `0..tokenizer.vocab_size()`. `eos_ids` must be non-empty and
    /// inside the vocabulary.
    pub(crate) fn new(tokenizer: &Tokenizer, eos_ids: &[u32]) -> Result<Self, GrammarError> {
        let (words, special) = token_bytes(tokenizer)?;
        let vocab_size =
            u32::try_from(words.len()).map_err(|_| GrammarError::UnsupportedTokenizer {
                reason: format!("{} tokens do not fit 32-bit ids", words.len()),
            })?;
        let Some(&first_eos) = eos_ids.first() else {
            return Err(GrammarError::InvalidEos {
                reason: "none given; pass the tokenizer's eos_ids() (from the model's \
                         generation_config.json or tokenizer_config.json)"
                    .into(),
            });
        };
        if let Some(&bad) = eos_ids.iter().find(|&&id| id >= vocab_size) {
            return Err(GrammarError::InvalidEos {
                reason: format!(
                    "id {bad} is outside the tokenizer's {vocab_size} tokens; check the EOS ids \
                     against this tokenizer"
                ),
            });
        }
        let info = TokRxInfo::new(vocab_size, first_eos);
        // Both constructors assert what was checked above (sizes, non-empty, in range); the
        // guard turns anything else they might assert on an odd vocabulary into an error.
        let trie = llguidance::panic_utils::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Ok(TokTrie::from(&info, &words).with_eos_tokens(eos_ids))
        }))
        .map_err(|e| GrammarError::UnsupportedTokenizer {
            reason: format!(
                "building the token trie failed: {}",
                first_line(&e.to_string())
            ),
        })?;
        Ok(Self {
            tokenizer: tokenizer.clone(),
            trie,
            special,
        })
    }

    /// The bytes token `id` adds to the text (a special token's text), `None` for an id
    /// without a token.
    pub(crate) fn text_bytes(&self, id: u32) -> Option<&[u8]> {
        let special = *self.special.get(id as usize)?;
        let bytes = self.trie.token(id);
        if bytes.is_empty() {
            None
        } else if special {
            bytes.get(1..)
        } else {
            Some(bytes)
        }
    }

    /// Canonical tokens for `text`: the tokenizer's own encoding, unless it spells some of the
    /// text with a special token (the text `<think>` encodes to the `<think>` token, whose
    /// trie bytes are not that text), in which case the trie's greedy tokenization, which
    /// never produces special tokens.
    fn encode_plain(&self, text: &str) -> Vec<TokenId> {
        match self.tokenizer.encode(text, false) {
            Ok(ids) if self.trie.decode_raw(&ids) == text.as_bytes() => ids,
            _ => self.trie.greedy_tokenize(text.as_bytes()),
        }
    }
}

impl TokenizerEnv for Vocab {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie
            .tokenize_with_greedy_fallback(s, |text| self.encode_plain(text))
    }
}

/// The bytes of each id in `0..tokenizer.vocab_size()`, for the trie.
///
/// - Added tokens shaped `<...>` and added tokens flagged special become llguidance special
///   tokens: [`TokTrie::SPECIAL_TOKEN_MARKER`] followed by their text. The marker byte is
///   never valid UTF-8, so no text rule of a grammar can produce them; only a grammar naming
///   them (`<[id]>`) can. That keeps `<think>` and the tool-call markers out of JSON strings
///   and free text. (DeepSeek-V3 flags only BOS/EOS/pad special, not `<think>` or the tool
///   markers, hence the shape rule, which is also `toktrie_hf_tokenizers`' rule.)
/// - Other added tokens are their literal text.
/// - Model tokens are byte-level BPE: each character of the vocabulary text stands for one
///   byte (GPT-2's `bytes_to_unicode`). A vocabulary that is not byte-level (SentencePiece
///   with `▁` and `<0x..>` byte fallback) is refused rather than guessed at.
/// - Ids without a token (holes) get no bytes, so no grammar ever allows them.
///
/// Returns the bytes and which ids are special.
fn token_bytes(tokenizer: &Tokenizer) -> Result<(Vec<Vec<u8>>, Vec<bool>), GrammarError> {
    let vocab_size = tokenizer.vocab_size();
    let mut words: Vec<Vec<u8>> = vec![Vec::new(); vocab_size];
    let mut added = vec![false; vocab_size];
    let mut special_ids = vec![false; vocab_size];
    for (id, text, special) in tokenizer.added_tokens() {
        let Some(slot) = words.get_mut(id as usize) else {
            return Err(GrammarError::UnsupportedTokenizer {
                reason: format!(
                    "added token {text:?} has id {id}, past the vocabulary size {vocab_size}"
                ),
            });
        };
        *slot = if special || (text.len() > 2 && text.starts_with('<') && text.ends_with('>')) {
            special_ids[id as usize] = true;
            let mut bytes = Vec::with_capacity(text.len() + 1);
            bytes.push(TokTrie::SPECIAL_TOKEN_MARKER);
            bytes.extend_from_slice(text.as_bytes());
            bytes
        } else {
            text.into_bytes()
        };
        added[id as usize] = true;
    }

    let char_to_byte = byte_level_chars();
    for (id, slot) in words.iter_mut().enumerate() {
        if added[id] {
            continue;
        }
        let Some(text) = u32::try_from(id)
            .ok()
            .and_then(|id| tokenizer.id_to_token(id))
        else {
            continue;
        };
        let bytes: Option<Vec<u8>> = text
            .chars()
            .map(|c| char_to_byte.get(&c).copied())
            .collect();
        match bytes {
            Some(bytes) => *slot = bytes,
            None => {
                return Err(GrammarError::UnsupportedTokenizer {
                    reason: format!(
                        "token {id} ({text:?}) is not byte-level BPE; constrained decoding \
                         needs a byte-level BPE tokenizer (DeepSeek, Qwen2, Llama 3)"
                    ),
                })
            }
        }
    }
    Ok((words, special_ids))
}

/// GPT-2's byte-to-character table, inverted: the printable Latin-1 bytes stand for
/// themselves, the other 68 bytes for U+0100 onwards, in byte order.
fn byte_level_chars() -> HashMap<char, u8> {
    let stands_for_itself = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 0x100u32;
    (0..=255u8)
        .map(|b| {
            if stands_for_itself(b) {
                (char::from(b), b)
            } else {
                let c = char::from_u32(next).unwrap_or(char::REPLACEMENT_CHARACTER);
                next += 1;
                (c, b)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_is_gpt2s() {
        let table = byte_level_chars();
        assert_eq!(table.len(), 256);
        assert_eq!(table[&'Ġ'], b' ');
        assert_eq!(table[&'Ċ'], b'\n');
        assert_eq!(table[&'ĉ'], b'\t');
        assert_eq!(table[&'a'], b'a');
        assert_eq!(table[&'Ã'], 0xC3);
        assert_eq!(table[&'\u{0100}'], 0);
    }
}
