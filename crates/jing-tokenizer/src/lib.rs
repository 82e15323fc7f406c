//! Text tokenization for jing.
//!
//! This crate confines the Hugging Face `tokenizers` library to one place and
//! gives the rest of the engine what it needs from it:
//!
//! - [`Tokenizer`]: loads a model directory's `tokenizer.json` together with
//!   the special-token facts of `tokenizer_config.json` and
//!   `generation_config.json` (BOS, EOS, the raw chat template), and encodes
//!   and decodes text.
//! - [`IncrementalDecoder`]: turns generated ids into text chunks as they
//!   arrive, never splitting a multi-byte character.
//! - [`TokenizerError`]: every failure, naming the file involved and what to
//!   do about it. Nothing here panics on bad input.
//!
//! ```no_run
//! use jing_tokenizer::Tokenizer;
//!
//! # fn main() -> Result<(), jing_tokenizer::TokenizerError> {
//! let tokenizer = Tokenizer::from_model_dir("models/DeepSeek-V3".as_ref())?;
//! let ids = tokenizer.encode("你好, world", false)?;
//! assert_eq!(tokenizer.decode(&ids, false)?, "你好, world");
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod gguf;
mod gguf_export;
mod incremental;
pub mod reasoning;
pub mod template;
mod tokenizer;
pub mod tool_calls;

pub use error::{Result, TokenizerError};
pub use gguf::GGUF_PRE_TOKENIZERS;
pub use incremental::{IncrementalDecoder, MAX_PENDING_TOKENS};
pub use tokenizer::{Tokenizer, GENERATION_CONFIG_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE};
