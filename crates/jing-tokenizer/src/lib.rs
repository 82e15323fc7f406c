//! jing-tokenizer
