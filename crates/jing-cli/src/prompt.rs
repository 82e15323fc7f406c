use anyhow::{bail, Result};
use jing_tokenizer::Tokenizer;

use crate::PromptArgs;

/// The prompt's token ids: given ids as they are, or the text encoded with the tokenizer's
/// special tokens (BOS), adding BOS if the tokenizer config asks for it and the tokenizer's
/// post-processor did not.
pub fn prompt_ids(args: &PromptArgs, tok: &Tokenizer) -> Result<Vec<u32>> {
    let ids = match (&args.prompt, &args.prompt_ids) {
        (_, Some(ids)) => ids.clone(),
        (Some(text), None) => {
            let mut ids = tok.encode(text, true)?;
            if let Some(bos) = tok.bos_id() {
                if tok.add_bos_token() && ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
            ids
        }
        (None, None) => bail!("give --prompt TEXT or --prompt-ids LIST"),
    };
    if ids.is_empty() {
        bail!("the prompt is empty: give at least one token");
    }
    Ok(ids)
}
