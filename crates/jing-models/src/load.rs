use std::path::Path;

use jing_formats::quantize::LoadQuant;
use jing_formats::ModelDir;

use crate::deepseek::DeepSeek;
use crate::dense::Dense;
use crate::{CausalLm, ModelError, PrepareLinear};

/// Architectures jing runs, by `model_type`.
const SUPPORTED: &[&str] = &["deepseek_v3", "deepseek_v2", "qwen2", "llama"];

/// Open the model at `path` and load the model its config names: a Hugging Face folder
/// (`config.json` + safetensors), or a GGUF file or any part of a split set (`general.architecture`
/// `deepseek2`, `qwen2` or `llama`; its metadata stands in for `config.json` and its tensors are
/// read under HF names, see [`jing_formats::gguf::HfView`]).
pub fn load_model(path: &Path) -> Result<Box<dyn CausalLm>, ModelError> {
    load_model_with(path, None)
}

/// [`load_model`], with the float matmul weights quantized as they load when `quant` is given
/// (`--quant`; see [`LoadQuant`]): the model then runs on GGUF block weights exactly as if it
/// had been loaded from a file `jing quantize` wrote.
pub fn load_model_with(
    path: &Path,
    quant: Option<&LoadQuant>,
) -> Result<Box<dyn CausalLm>, ModelError> {
    load_model_prepared(path, quant, None)
}

/// [`load_model_with`], every matmul weight passed through `prepare` as it loads (the layout a
/// backend's kernels want, see [`PrepareLinear`]).
pub fn load_model_prepared(
    path: &Path,
    quant: Option<&LoadQuant>,
    prepare: Option<&PrepareLinear>,
) -> Result<Box<dyn CausalLm>, ModelError> {
    load_model_dir(ModelDir::open(path)?, quant, prepare)
}

/// [`load_model_prepared`] of a model already opened (a caller that looks at the weights
/// before they load, as the engine does to decide whether to rearrange them).
pub fn load_model_dir(
    mut dir: ModelDir,
    quant: Option<&LoadQuant>,
    prepare: Option<&PrepareLinear>,
) -> Result<Box<dyn CausalLm>, ModelError> {
    let path = dir.dir.clone();
    if let Some(q) = quant {
        dir.quantize_on_load(q.clone())?;
    }
    let model_type = dir.config.opt_str("model_type")?.unwrap_or("").to_string();
    match model_type.as_str() {
        "deepseek_v3" | "deepseek_v2" => Ok(Box::new(DeepSeek::load(&dir, prepare)?)),
        "qwen2" | "llama" => Ok(Box::new(Dense::load(&dir, prepare)?)),
        "" => Err(ModelError::Config {
            field: "model_type".into(),
            problem: format!("is missing in {}/config.json", path.display()),
        }),
        other => Err(ModelError::Unsupported(format!(
            "{}/config.json: model_type `{other}` is not supported; jing runs {}",
            path.display(),
            SUPPORTED.join(", ")
        ))),
    }
}
