//! [`IncrementalDecoder`]: turns a stream of generated token ids into a stream
//! of text chunks, never cutting a character in half.

use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// The Unicode replacement character, which a decoder produces for bytes that
/// are not (yet) a complete UTF-8 sequence.
const REPLACEMENT: char = '\u{FFFD}';

/// How many pushed tokens may wait for their text to complete before the
/// decoder stops waiting and emits what it has, replacement characters and
/// all. A UTF-8 character is at most 4 bytes and every byte-level token
/// carries at least one byte, so valid text never gets near this; only an
/// invalid byte sequence does, and the cap keeps the work per token bounded
/// then too.
pub const MAX_PENDING_TOKENS: usize = 32;

/// Streaming detokenizer for generated tokens.
///
/// Decoding tokens one at a time and concatenating the results is wrong in
/// two ways: with byte-level BPE a CJK character or an emoji is often split
/// over several tokens, each of which alone decodes to U+FFFD; and decoders
/// such as SentencePiece's strip the leading space of the *first* token they
/// see, which would glue words together.
///
/// This decoder uses the prefix-offset / read-offset technique: it keeps a
/// small window of ids, starting one emitted chunk back, decodes the window,
/// and emits only the part beyond the text of the already-emitted tokens —
/// and only once it does not end in U+FFFD. After each emission the window
/// is cut down to the latest chunk's tokens, so each push decodes a handful
/// of tokens whatever the length of the stream: O(1) amortized per token.
///
/// For any id sequence whose full [`Tokenizer::decode`] contains no U+FFFD,
/// the concatenation of everything [`push`](Self::push) returned and of
/// [`flush`](Self::flush) equals that full decode (with the same
/// `skip_special_tokens`). Ids outside the vocabulary decode to nothing, as in
/// [`Tokenizer::decode`].
///
/// ```no_run
/// # fn main() -> Result<(), jing_tokenizer::TokenizerError> {
/// # let tokenizer = jing_tokenizer::Tokenizer::from_model_dir("model".as_ref())?;
/// # let generated: Vec<u32> = Vec::new();
/// let mut stream = tokenizer.incremental_decoder(true);
/// for id in generated {
///     if let Some(text) = stream.push(id)? {
///         print!("{text}");
///     }
/// }
/// print!("{}", stream.flush()?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct IncrementalDecoder {
    tokenizer: Tokenizer,
    skip_special_tokens: bool,
    /// The window: `ids[..read_offset]` are tokens whose text was emitted
    /// (kept as left context), `ids[read_offset..]` are pending tokens.
    ids: Vec<u32>,
    /// Start of the pending tokens within `ids`.
    read_offset: usize,
    /// `decode(ids[..read_offset])`: the text to cut off the front of the
    /// window's decode.
    prefix_text: String,
}

impl IncrementalDecoder {
    /// A decoder for `tokenizer`; with `skip_special_tokens`, special tokens
    /// (see [`Tokenizer::is_special`]) produce no text.
    pub fn new(tokenizer: &Tokenizer, skip_special_tokens: bool) -> Self {
        Self {
            tokenizer: tokenizer.clone(),
            skip_special_tokens,
            ids: Vec::new(),
            read_offset: 0,
            prefix_text: String::new(),
        }
    }

    /// Whether special tokens are left out of the text.
    pub fn skip_special_tokens(&self) -> bool {
        self.skip_special_tokens
    }

    /// The number of pushed tokens whose text has not been returned yet
    /// (because it ends in an incomplete character).
    pub fn pending_tokens(&self) -> usize {
        self.ids.len() - self.read_offset
    }

    /// Adds the next generated id and returns the text that it completes, or
    /// `None` when there is no new complete text yet (for instance after the
    /// first byte of a multi-byte character, or after a skipped special
    /// token). Never returns `Some("")`.
    ///
    /// # Errors
    ///
    /// Only if the underlying decoder fails.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        if self.skip_special_tokens && self.tokenizer.is_special(id) {
            // `decode` filters these out before its decoder runs, so leaving
            // them out of the window gives the same text.
            return Ok(None);
        }
        self.ids.push(id);
        let text = self.decode(&self.ids)?;
        let complete = !text.ends_with(REPLACEMENT);
        let grew = text.len() > self.prefix_text.len();
        if complete && grew {
            let chunk = new_suffix(&self.prefix_text, &text).to_owned();
            self.advance()?;
            Ok(non_empty(chunk))
        } else if self.pending_tokens() >= MAX_PENDING_TOKENS {
            // Only an invalid byte sequence gets here: give up waiting so that
            // the window, and the work per push, stays bounded.
            let chunk = if grew {
                new_suffix(&self.prefix_text, &text).to_owned()
            } else {
                String::new()
            };
            self.advance()?;
            Ok(non_empty(chunk))
        } else {
            Ok(None)
        }
    }

    /// Returns the text of all pending tokens, even if it ends in an
    /// incomplete character (which then comes out as U+FFFD), or an empty
    /// string when nothing is pending. Call it when the stream ends.
    ///
    /// The decoder stays usable: later pushes continue the same text.
    ///
    /// # Errors
    ///
    /// Only if the underlying decoder fails.
    pub fn flush(&mut self) -> Result<String> {
        if self.pending_tokens() == 0 {
            return Ok(String::new());
        }
        let text = self.decode(&self.ids)?;
        let chunk = new_suffix(&self.prefix_text, &text).to_owned();
        self.advance()?;
        Ok(chunk)
    }

    /// Forgets all state, to start a new, unrelated stream.
    pub fn reset(&mut self) {
        self.ids.clear();
        self.read_offset = 0;
        self.prefix_text.clear();
    }

    /// Marks all pending tokens emitted: they become the window's left
    /// context, and the older context is dropped.
    fn advance(&mut self) -> Result<()> {
        let prefix_text = self.decode(&self.ids[self.read_offset..])?;
        self.ids.drain(..self.read_offset);
        self.read_offset = self.ids.len();
        self.prefix_text = prefix_text;
        Ok(())
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, self.skip_special_tokens)
    }
}

/// The part of `text` after `prefix`.
///
/// `text` starts with `prefix` for every decoder that maps tokens to text
/// locally (byte-level, SentencePiece/Metaspace, WordPiece). Should a decoder
/// rewrite earlier text in the light of a later token, the text after the
/// longest common prefix is returned: the stream then differs from a full
/// decode, but never panics.
fn new_suffix<'a>(prefix: &str, text: &'a str) -> &'a str {
    if let Some(rest) = text.strip_prefix(prefix) {
        return rest;
    }
    let common = prefix
        .char_indices()
        .zip(text.chars())
        .find(|((_, a), b)| a != b)
        .map_or(prefix.len().min(text.len()), |((i, _), _)| i);
    // `common` is a char boundary of `prefix`, and `text` has the same chars
    // up to there, so it is one of `text` too.
    text.get(common..).unwrap_or("")
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}
