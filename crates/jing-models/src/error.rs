use jing_formats::FormatError;

/// Why a model could not be loaded. Every message names the file, field or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("config.json: `{field}` {problem}")]
    Config { field: String, problem: String },
    #[error("tensor `{tensor}` has shape {found:?}, but config.json implies {expected:?} ({why}): the weights and config.json do not belong to the same model; check that both come from the same repository")]
    Shape {
        tensor: String,
        found: Vec<usize>,
        expected: Vec<usize>,
        why: String,
    },
    #[error("tensor `{tensor}` is stored as {dtype}, which jing cannot use for {what}")]
    Dtype {
        tensor: String,
        dtype: jing_tensor::DType,
        what: String,
    },
    #[error("{0}")]
    Unsupported(String),
}

impl ModelError {
    pub(crate) fn config(field: &str, problem: impl Into<String>) -> ModelError {
        ModelError::Config {
            field: field.to_string(),
            problem: problem.into(),
        }
    }
}
