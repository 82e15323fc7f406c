//! jing's GGUF tokenizers against llama.cpp's tokenizer test vectors for real vocabularies.
//!
//! llama.cpp ships vocab-only GGUF files of real models (`models/ggml-vocab-<name>.gguf`) with
//! inputs (`.inp`, separated by `\n__ggml_vocab_test__\n`) and the token ids Hugging Face's
//! `tokenizers` gives for them (`.out`, one line per input; written by its
//! `convert_hf_to_gguf_update.py`). Each file names its pre-tokenizer in `tokenizer.ggml.pre`,
//! so these check that jing's pre-tokenizer for that name splits like the real tokenizer:
//! `qwen2` (Qwen2.5, the R1-Distill-Qwen models), `llama-bpe` (Llama 3, R1-Distill-Llama),
//! `deepseek-llm` (DeepSeek V2) and `deepseek-coder`.
//!
//! The files come with llama.cpp's source, for example in PyPI's `llama-cpp-python` sdist
//! (`vendor/llama.cpp/models`); point `JING_LLAMA_CPP_VOCAB_DIR` at that folder.

use std::path::PathBuf;

use jing_tokenizer::Tokenizer;

const SEP: &str = "\n__ggml_vocab_test__\n";

fn check(name: &str) {
    let dir = PathBuf::from(
        std::env::var_os("JING_LLAMA_CPP_VOCAB_DIR")
            .expect("set JING_LLAMA_CPP_VOCAB_DIR to llama.cpp's models/ folder"),
    );
    let path = dir.join(format!("ggml-vocab-{name}.gguf"));
    let tok = Tokenizer::from_gguf(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp")))
        .expect("the .inp file");
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out")))
        .expect("the .out file");
    // Split as llama.cpp's test-tokenizer-0 does: a separator at the very end closes the last
    // input instead of opening an empty one.
    let inputs: Vec<&str> = inp.strip_suffix(SEP).unwrap_or(&inp).split(SEP).collect();
    let outputs: Vec<&str> = out.lines().collect();
    assert_eq!(inputs.len(), outputs.len(), "{name}: inputs and outputs");
    let mut checked = 0;
    for (text, ids) in inputs.iter().zip(&outputs) {
        let want: Vec<u32> = ids
            .split_whitespace()
            .map(|t| t.parse().expect("a token id"))
            .collect();
        let got = tok
            .encode(text, false)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}: {text:?}");
        checked += 1;
    }
    assert!(checked >= 30, "{name}: only {checked} cases");
}

#[test]
#[ignore = "needs llama.cpp's models/ folder via JING_LLAMA_CPP_VOCAB_DIR"]
fn qwen2_pre_tokenizer_matches_the_real_tokenizer() {
    check("qwen2");
}

#[test]
#[ignore = "needs llama.cpp's models/ folder via JING_LLAMA_CPP_VOCAB_DIR"]
fn llama_bpe_pre_tokenizer_matches_the_real_tokenizer() {
    check("llama-bpe");
}

#[test]
#[ignore = "needs llama.cpp's models/ folder via JING_LLAMA_CPP_VOCAB_DIR"]
fn deepseek_llm_pre_tokenizer_matches_the_real_tokenizer() {
    check("deepseek-llm");
}
