//! [`ModelDir`]: an HF model folder: `config.json`, the optional `generation_config.json`, and
//! the weights as a [`TensorStore`] set up with the config's FP8 block size; or a GGUF file (or
//! split set) seen the same way through its [`HfView`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::error::FormatError;
use crate::gguf::{is_gguf_path, GgufFile, HfView};
use crate::quantize::{LoadPlan, LoadQuant, MlaDims};
use crate::store::TensorStore;

/// Name of the model config file.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the optional sampling-defaults file.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// An opened HF model folder, or a GGUF model presented as one.
#[derive(Debug)]
pub struct ModelDir {
    /// The folder (for GGUF: the file, or the first file of a split set).
    pub dir: PathBuf,
    /// `config.json`.
    pub config: Config,
    /// `generation_config.json`, when present.
    pub generation_config: Option<Config>,
    /// The weights, with the block size of `quantization_config.weight_block_size` (default
    /// 128x128).
    pub store: TensorStore,
    /// The GGUF model, when `dir` is a GGUF file (its metadata holds the tokenizer and chat
    /// template too).
    pub gguf: Option<Arc<GgufFile>>,
}

impl ModelDir {
    /// Open `dir`: read `config.json` (required) and `generation_config.json` (optional), open
    /// the weights (headers only) and set their FP8 block size from the config. A `.gguf` file
    /// (or any part of a split set) is opened with [`ModelDir::open_gguf`].
    pub fn open(dir: &Path) -> Result<ModelDir, FormatError> {
        if dir.is_file() && is_gguf_path(dir) {
            return Self::open_gguf(dir);
        }
        if dir.is_file() {
            return Err(FormatError::NotAFolder(dir.to_path_buf()));
        }
        if !dir.is_dir() {
            return Err(FormatError::MissingFile {
                path: dir.to_path_buf(),
                what: "model folder".into(),
                hint: "check the path".into(),
            });
        }
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(FormatError::MissingFile {
                path: config_path,
                what: "model config".into(),
                hint: "download config.json from the model's repository into this folder".into(),
            });
        }
        let config = Config::from_file(&config_path)?;
        let gen_path = dir.join(GENERATION_CONFIG_FILE);
        let generation_config = if gen_path.is_file() {
            Some(Config::from_file(&gen_path)?)
        } else {
            None
        };
        let mut store = TensorStore::open_dir(dir)?;
        if let Some(block) = fp8_block_size(&config)? {
            store.set_block_size(block)?;
        }
        Ok(ModelDir {
            dir: dir.to_path_buf(),
            config,
            generation_config,
            store,
            gguf: None,
        })
    }

    /// Open a GGUF file (or split set): `config` and `generation_config` are what its metadata
    /// implies, `store` holds its tensors under HF names (see [`HfView`]).
    pub fn open_gguf(path: &Path) -> Result<ModelDir, FormatError> {
        let file = Arc::new(GgufFile::open(path)?);
        let view = Arc::new(HfView::new(file.clone())?);
        let config = Config::from_value(file.path(), view.config().clone())?;
        let generation_config = view
            .generation_config()
            .map(|g| Config::from_value(file.path(), g.clone()))
            .transpose()?;
        Ok(ModelDir {
            dir: file.path().to_path_buf(),
            config,
            generation_config,
            store: TensorStore::from_gguf(view),
            gguf: Some(file),
        })
    }

    /// Convert the float matmul weights to `quant.target`'s types as the model reads them
    /// (see [`LoadQuant`]); returns how many tensors will be converted. Calls
    /// `quant.progress` with [`QuantEvent::Start`](crate::quantize::QuantEvent::Start) before
    /// returning.
    pub fn quantize_on_load(&mut self, quant: LoadQuant) -> Result<usize, FormatError> {
        let model_type = self.config.str_or("model_type", "")?;
        let arch = crate::gguf::from_hf::gguf_arch(model_type)
            .unwrap_or(model_type)
            .to_string();
        let n_head = self.config.usize_or("num_attention_heads", 0)?;
        let n_head_kv = self.config.usize_or("num_key_value_heads", n_head)?;
        // A safetensors kv_b_proj is quantized as the GGUF file's two MLA parts (a GGUF
        // model's is already in its file's form).
        let mla = match (arch.as_str(), self.gguf.is_some()) {
            ("deepseek2", false) => Some(MlaDims {
                nope: self.config.usize("qk_nope_head_dim")?,
                v_head: self.config.usize("v_head_dim")?,
            }),
            _ => None,
        };
        let plan = LoadPlan::new(&self.store, &arch, n_head, n_head_kv, mla, quant)?;
        let n = plan.len();
        self.store.set_load_plan(plan);
        Ok(n)
    }

    /// `dir/name` if that file exists (e.g. `"tokenizer.json"`).
    pub fn file(&self, name: &str) -> Option<PathBuf> {
        let p = self.dir.join(name);
        p.is_file().then_some(p)
    }
}

/// `quantization_config.weight_block_size` as `[rows, cols]`, if the config has one. It must be
/// two positive integers.
pub fn fp8_block_size(config: &Config) -> Result<Option<[usize; 2]>, FormatError> {
    let field = "quantization_config.weight_block_size";
    let Some(list) = config.opt_usize_list(field)? else {
        return Ok(None);
    };
    match list.as_slice() {
        &[r, c] if r > 0 && c > 0 => Ok(Some([r, c])),
        _ => Err(FormatError::ConfigType {
            path: config.path().to_path_buf(),
            field: field.into(),
            expected: "two positive integers [rows, cols]",
            found: format!("{list:?}"),
        }),
    }
}
