//! [`TensorStore`]: every tensor of a checkpoint (one safetensors file, or shards listed by
//! `model.safetensors.index.json`), by name, as zero-copy [`Weight`]s with FP8 block scales
//! attached.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use jing_tensor::{Bytes, DType, Weight};
use serde_json::Value;

use crate::error::{short_json, summarise_files, FormatError};
use crate::gguf::{gguf_name_for, HfView, ViewInfo};
use crate::quantize::LoadPlan;
use crate::safetensors::{SafetensorsFile, TensorEntry};

/// File name of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// File name of the shard index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// FP8 block size used when the config does not give one (DeepSeek-V3's 128x128).
pub const DEFAULT_BLOCK: [usize; 2] = [128, 128];

/// What [`TensorStore::info`] tells about a tensor without touching its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// Element type as stored.
    pub dtype: DType,
    /// Dimensions, outermost first (`[out, in]` for a linear weight).
    pub shape: &'a [usize],
    /// The file that holds it.
    pub file: &'a Path,
    /// Bytes of data (excluding any scale tensor).
    pub byte_len: usize,
}

/// Number and size of the tensors of one dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DTypeCount {
    /// The dtype.
    pub dtype: DType,
    /// How many tensors have it.
    pub tensors: usize,
    /// Their total data bytes.
    pub bytes: u64,
}

/// An FP8 tensor whose `_scale_inv` companion is absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingScale {
    /// The FP8 tensor.
    pub tensor: String,
    /// The scale name expected for it (`<tensor>_scale_inv`).
    pub scale: String,
}

/// A shard named by the index that is not on disk (see [`TensorStore::open_lenient`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbsentShard {
    /// The file name as the index writes it.
    pub shard: String,
    /// Where it was expected.
    pub path: PathBuf,
    /// How many tensors the index puts in it.
    pub tensors: usize,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    file: usize,
    entry: usize,
}

/// All tensors of a checkpoint, memory-mapped. Opening reads only the headers; data pages are
/// loaded by the OS when a [`Weight`] is read. `Send + Sync`: share it behind an `Arc` or a
/// reference across threads.
///
/// A store is either safetensors files or a GGUF model seen through its [`HfView`] (HF tensor
/// names; see [`TensorStore::from_gguf`]); callers read both the same way.
pub struct TensorStore {
    /// The GGUF model, when the store is one (then the safetensors fields are empty).
    gguf: Option<Arc<HfView>>,
    root: PathBuf,
    index: Option<PathBuf>,
    files: Vec<SafetensorsFile>,
    tensors: BTreeMap<String, Slot>,
    /// `weight_map` of the index (tensor → shard file index), when there is one.
    index_map: BTreeMap<String, usize>,
    /// Shard paths named by the index, including absent ones (for error messages).
    index_files: Vec<PathBuf>,
    block: [usize; 2],
    /// Weights converted as they are read (`--quant`), when set.
    load_plan: Option<Arc<LoadPlan>>,
}

impl std::fmt::Debug for TensorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorStore")
            .field("root", &self.root)
            .field("index", &self.index)
            .field("files", &self.files.len())
            .field("tensors", &self.tensors.len())
            .field("block", &self.block)
            .finish()
    }
}

impl TensorStore {
    /// The memory-mapped files the weights this store hands out are views of (see
    /// [`crate::prefault`]). Empty when weights are converted as they are read (`--quant`):
    /// those are in memory, and the conversion has read the files already.
    pub fn maps(&self) -> Vec<Bytes> {
        if self.load_plan.is_some() {
            return Vec::new();
        }
        match &self.gguf {
            Some(view) => view.file().maps(),
            None => self.files.iter().map(|f| f.data().clone()).collect(),
        }
    }

    /// Open a folder (see [`TensorStore::open_dir`]) or a single `.safetensors` file.
    pub fn open(path: &Path) -> Result<TensorStore, FormatError> {
        if path.is_dir() {
            Self::open_dir(path)
        } else {
            Self::open_file(path)
        }
    }

    /// Open one safetensors file.
    pub fn open_file(path: &Path) -> Result<TensorStore, FormatError> {
        if !path.exists() {
            return Err(FormatError::MissingFile {
                path: path.to_path_buf(),
                what: "safetensors file".into(),
                hint: "check the path".into(),
            });
        }
        let file = SafetensorsFile::open(path)?;
        let mut store = TensorStore::empty(path);
        store.add_files(vec![file], None)?;
        Ok(store)
    }

    /// Open a model folder: `model.safetensors.index.json` (sharded) if present, else
    /// `model.safetensors`, else every `*.safetensors` file in it (which must not repeat names).
    /// A shard named by the index but absent is an error ([`FormatError::MissingShard`]).
    pub fn open_dir(dir: &Path) -> Result<TensorStore, FormatError> {
        let (store, absent) = Self::open_dir_inner(dir, true)?;
        debug_assert!(absent.is_empty());
        Ok(store)
    }

    /// Like [`TensorStore::open`], but shards named by the index and absent from the folder are
    /// skipped and returned instead of failing (for `jing inspect`). Any other problem is still
    /// an error.
    pub fn open_lenient(path: &Path) -> Result<(TensorStore, Vec<AbsentShard>), FormatError> {
        if path.is_dir() {
            Self::open_dir_inner(path, false)
        } else {
            Ok((Self::open_file(path)?, Vec::new()))
        }
    }

    /// A store over a GGUF model's HF view: HF tensor names, zero-copy weights (see
    /// [`HfView`]).
    pub fn from_gguf(view: Arc<HfView>) -> TensorStore {
        let mut store = TensorStore::empty(view.file().path());
        store.gguf = Some(view);
        store
    }

    /// The GGUF model's view, when this store is one.
    pub fn gguf(&self) -> Option<&Arc<HfView>> {
        self.gguf.as_ref()
    }

    fn empty(root: &Path) -> TensorStore {
        TensorStore {
            gguf: None,
            root: root.to_path_buf(),
            index: None,
            files: Vec::new(),
            tensors: BTreeMap::new(),
            index_map: BTreeMap::new(),
            index_files: Vec::new(),
            block: DEFAULT_BLOCK,
            load_plan: None,
        }
    }

    fn open_dir_inner(
        dir: &Path,
        strict: bool,
    ) -> Result<(TensorStore, Vec<AbsentShard>), FormatError> {
        if !dir.is_dir() {
            return Err(FormatError::MissingFile {
                path: dir.to_path_buf(),
                what: "model folder".into(),
                hint: "check the path".into(),
            });
        }
        let mut store = TensorStore::empty(dir);
        if let Some(index) = find_index(dir)? {
            let absent = store.open_index(&index, strict)?;
            return Ok((store, absent));
        }
        let single = dir.join(SINGLE_FILE);
        let paths = if single.is_file() {
            vec![single]
        } else {
            list_safetensors(dir)?
        };
        if paths.is_empty() {
            return Err(FormatError::NoWeights {
                dir: dir.to_path_buf(),
            });
        }
        let files = paths
            .iter()
            .map(|p| SafetensorsFile::open(p))
            .collect::<Result<Vec<_>, _>>()?;
        store.add_files(files, None)?;
        Ok((store, Vec::new()))
    }

    fn open_index(&mut self, index: &Path, strict: bool) -> Result<Vec<AbsentShard>, FormatError> {
        let dir = index.parent().unwrap_or(Path::new("."));
        let weight_map = read_index(index)?;
        // Shard names in sorted order, each opened once.
        let mut shard_names: Vec<&str> = weight_map.values().map(String::as_str).collect();
        shard_names.sort_unstable();
        shard_names.dedup();
        let mut absent = Vec::new();
        let mut files = Vec::new();
        let mut shard_to_file: BTreeMap<&str, usize> = BTreeMap::new();
        for &shard in &shard_names {
            let path = dir.join(shard);
            self.index_files.push(path.clone());
            if !path.is_file() {
                let count = weight_map.values().filter(|s| *s == shard).count();
                absent.push(AbsentShard {
                    shard: shard.to_string(),
                    path,
                    tensors: count,
                });
                continue;
            }
            shard_to_file.insert(shard, files.len());
            files.push(SafetensorsFile::open(&path)?);
        }
        if strict {
            if let Some(first) = absent.first() {
                let example = weight_map
                    .iter()
                    .find(|(_, s)| **s == first.shard)
                    .map(|(t, _)| t.clone())
                    .unwrap_or_default();
                return Err(FormatError::MissingShard {
                    index: index.to_path_buf(),
                    shard: first.shard.clone(),
                    tensors: first.tensors,
                    example,
                    others: if absent.len() > 1 {
                        format!(" (and {} more shards are missing)", absent.len() - 1)
                    } else {
                        String::new()
                    },
                });
            }
        }
        let index_map: BTreeMap<String, usize> = weight_map
            .iter()
            .filter_map(|(t, s)| shard_to_file.get(s.as_str()).map(|&f| (t.clone(), f)))
            .collect();
        self.index = Some(index.to_path_buf());
        self.add_files(files, Some(index_map))?;
        Ok(absent)
    }

    fn add_files(
        &mut self,
        files: Vec<SafetensorsFile>,
        index_map: Option<BTreeMap<String, usize>>,
    ) -> Result<(), FormatError> {
        let index_map = index_map.unwrap_or_default();
        for (fi, file) in files.iter().enumerate() {
            for (ei, entry) in file.tensors().iter().enumerate() {
                let slot = Slot {
                    file: fi,
                    entry: ei,
                };
                match self.tensors.get(&entry.name) {
                    None => {
                        self.tensors.insert(entry.name.clone(), slot);
                    }
                    Some(prev) => match index_map.get(&entry.name) {
                        // The index decides between duplicates.
                        Some(&want) if want == fi => {
                            self.tensors.insert(entry.name.clone(), slot);
                        }
                        Some(&want) if want == prev.file => {}
                        _ => {
                            return Err(FormatError::DuplicateTensor {
                                tensor: entry.name.clone(),
                                first: files[prev.file].path().to_path_buf(),
                                second: file.path().to_path_buf(),
                            })
                        }
                    },
                }
            }
        }
        self.files = files;
        self.index_map = index_map;
        Ok(())
    }

    /// The folder or file this store was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The shard index, for a sharded checkpoint.
    pub fn index_path(&self) -> Option<&Path> {
        self.index.as_deref()
    }

    /// The safetensors files opened, in order.
    pub fn files(&self) -> Vec<&Path> {
        if let Some(g) = &self.gguf {
            return g.file().paths();
        }
        self.files.iter().map(|f| f.path()).collect()
    }

    /// Number of files opened (safetensors files, or GGUF parts).
    pub fn file_count(&self) -> usize {
        if let Some(g) = &self.gguf {
            return g.file().paths().len();
        }
        self.files.len()
    }

    /// The `__metadata__` map of each file, in [`files`](TensorStore::files) order.
    pub fn file_metadata(&self) -> Vec<&BTreeMap<String, String>> {
        self.files.iter().map(|f| f.metadata()).collect()
    }

    /// FP8 block size over `[rows, cols]` used to pair `_scale_inv` tensors (default 128x128).
    pub fn block_size(&self) -> [usize; 2] {
        self.block
    }

    /// Set the FP8 block size (from `quantization_config.weight_block_size`). Zero is an error.
    pub fn set_block_size(&mut self, block: [usize; 2]) -> Result<(), FormatError> {
        if block[0] == 0 || block[1] == 0 {
            return Err(FormatError::Setting(format!(
                "FP8 block size {block:?} must be positive"
            )));
        }
        self.block = block;
        Ok(())
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        if let Some(g) = &self.gguf {
            return g.len();
        }
        self.tensors.len()
    }

    /// Whether the store holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        if let Some(g) = &self.gguf {
            return g.contains(name);
        }
        self.tensors.contains_key(name)
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        if let Some(g) = &self.gguf {
            return g.names().collect();
        }
        self.tensors.keys().map(String::as_str).collect()
    }

    /// Tensor names starting with `prefix`, sorted (e.g. `"model.layers.61."`).
    pub fn names_with_prefix<'a>(&'a self, prefix: &'a str) -> Vec<&'a str> {
        if let Some(g) = &self.gguf {
            return g.names_with_prefix(prefix);
        }
        self.tensors
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix))
            .collect()
    }

    /// Every tensor's info, sorted by name. In a GGUF store, tensors of a GGML type jing cannot
    /// compute with are left out (their [`info`](TensorStore::info) is an error).
    pub fn iter(&self) -> Box<dyn Iterator<Item = TensorInfo<'_>> + '_> {
        if let Some(g) = &self.gguf {
            return Box::new(g.iter().filter_map(view_info));
        }
        Box::new(
            self.tensors
                .iter()
                .map(|(name, &slot)| self.make_info(name, slot)),
        )
    }

    fn make_info<'a>(&'a self, name: &'a str, slot: Slot) -> TensorInfo<'a> {
        let (file, entry) = self.resolve(slot);
        TensorInfo {
            name,
            dtype: entry.dtype,
            shape: &entry.shape,
            file: file.path(),
            byte_len: entry.byte_len(),
        }
    }

    fn resolve(&self, slot: Slot) -> (&SafetensorsFile, &TensorEntry) {
        let file = &self.files[slot.file];
        (file, &file.tensors()[slot.entry])
    }

    /// Dtype, shape and file of a tensor, without touching its data.
    pub fn info(&self, name: &str) -> Result<TensorInfo<'_>, FormatError> {
        if let Some(g) = &self.gguf {
            return match g.info(name) {
                Some(i) => match view_info(i) {
                    Some(info) => Ok(info),
                    None => Err(g
                        .get(name)
                        .and_then(Result::err)
                        .unwrap_or_else(|| self.missing(name))),
                },
                None => Err(self.missing(name)),
            };
        }
        match self.tensors.get_key_value(name) {
            Some((k, &slot)) => Ok(self.make_info(k, slot)),
            None => Err(self.missing(name)),
        }
    }

    /// Total data bytes of all tensors (headers excluded).
    pub fn total_bytes(&self) -> u64 {
        self.iter().map(|t| t.byte_len as u64).sum()
    }

    /// Tensor count and bytes per dtype, largest byte total first.
    pub fn dtype_counts(&self) -> Vec<DTypeCount> {
        let mut counts: Vec<DTypeCount> = Vec::new();
        for t in self.iter() {
            match counts.iter_mut().find(|c| c.dtype == t.dtype) {
                Some(c) => {
                    c.tensors += 1;
                    c.bytes += t.byte_len as u64;
                }
                None => counts.push(DTypeCount {
                    dtype: t.dtype,
                    tensors: 1,
                    bytes: t.byte_len as u64,
                }),
            }
        }
        counts.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then(a.dtype.safetensors_name().cmp(b.dtype.safetensors_name()))
        });
        counts
    }

    /// FP8 tensors that have no scale companion (see [`scale_names`]).
    pub fn missing_scales(&self) -> Vec<MissingScale> {
        self.iter()
            .filter(|t| t.dtype == DType::F8E4M3)
            .filter(|t| !scale_names(t.name).iter().any(|s| self.contains(s)))
            .map(|t| MissingScale {
                tensor: t.name.to_string(),
                scale: scale_names(t.name)[0].clone(),
            })
            .collect()
    }

    /// The tensor as a zero-copy [`Weight`]. An F8E4M3 tensor comes with its block scale
    /// attached: `<name>_scale_inv` (HF; the DeepSeek demo's `X.scale` for `X.weight` is also
    /// accepted), f32 (bf16/f16 scales are converted), shape `ceil(rows/b0) x ceil(cols/b1)` for
    /// the [`block_size`](TensorStore::block_size).
    ///
    /// With a load plan ([`ModelDir::quantize_on_load`](crate::ModelDir::quantize_on_load)),
    /// the float weights it names come back converted (owned, no longer zero-copy).
    pub fn get(&self, name: &str) -> Result<Weight, FormatError> {
        let stored = self.get_stored(name)?;
        match &self.load_plan {
            Some(plan) => plan.apply(name, stored),
            None => Ok(stored),
        }
    }

    /// DeepSeek MLA's `kv_b_proj` (`name`) as GGUF's two parts, `attn_k_b` `[H, kv_lora,
    /// nope]` (W_UK transposed per head) and `attn_v_b` `[H, v, kv_lora]`, when that is how the
    /// weights are (a GGUF file with the split layout) or will be (a load plan that quantizes
    /// `kv_b_proj` as those parts): each keeps its own type, where one `kv_b_proj` would need
    /// f32 to hold both. `None` when the checkpoint's `kv_b_proj` is the tensor to use.
    pub fn mla_parts(&self, name: &str) -> Result<Option<(Weight, Weight)>, FormatError> {
        if let Some(plan) = &self.load_plan {
            if let Some(parts) = plan.mla_parts(name, || self.get_stored(name)) {
                return parts.map(Some);
            }
        }
        match &self.gguf {
            Some(view) => view.mla_parts(name).transpose(),
            None => Ok(None),
        }
    }

    /// Convert weights as they are read, as `plan` says.
    pub(crate) fn set_load_plan(&mut self, plan: LoadPlan) {
        self.load_plan = Some(Arc::new(plan));
    }

    /// The tensor as stored.
    fn get_stored(&self, name: &str) -> Result<Weight, FormatError> {
        if let Some(g) = &self.gguf {
            return g.get(name).unwrap_or_else(|| Err(self.missing(name)));
        }
        let Some(&slot) = self.tensors.get(name) else {
            return Err(self.missing(name));
        };
        let (file, entry) = self.resolve(slot);
        let weight = Weight::new(name, entry.dtype, entry.shape.clone(), file.bytes(entry))
            .map_err(|source| FormatError::Weight {
                path: file.path().to_path_buf(),
                source: Box::new(source),
            })?;
        if entry.dtype != DType::F8E4M3 {
            return Ok(weight);
        }
        let candidates = scale_names(name);
        let Some((scale_name, &sslot)) = candidates
            .iter()
            .find_map(|s| self.tensors.get_key_value(s.as_str()))
        else {
            return Err(FormatError::MissingScale {
                name: name.to_string(),
                scale_name: candidates[0].clone(),
                path: file.path().to_path_buf(),
                searched: self.searched_for(&candidates[0]),
            });
        };
        let (sfile, sentry) = self.resolve(sslot);
        let sbytes = sfile.bytes(sentry);
        let scale_data = match sentry.dtype {
            DType::F32 => sbytes,
            DType::BF16 | DType::F16 => {
                let tmp = Weight::new(
                    scale_name.as_str(),
                    sentry.dtype,
                    vec![sentry.byte_len() / 2],
                    sbytes,
                )
                .map_err(|source| FormatError::Weight {
                    path: sfile.path().to_path_buf(),
                    source: Box::new(source),
                })?;
                Bytes::from_f32(&tmp.to_f32_vec())
            }
            other => {
                return Err(FormatError::BadTensor {
                    path: sfile.path().to_path_buf(),
                    tensor: scale_name.clone(),
                    reason: format!(
                        "block scale of `{name}` must be f32 (or bf16/f16), found {other}"
                    ),
                })
            }
        };
        weight
            .with_block_scale(scale_name, &sentry.shape, scale_data, self.block)
            .map_err(|source| FormatError::Weight {
                path: sfile.path().to_path_buf(),
                source: Box::new(source),
            })
    }

    /// [`get`](TensorStore::get), but `Ok(None)` when the tensor does not exist.
    pub fn get_opt(&self, name: &str) -> Result<Option<Weight>, FormatError> {
        if self.contains(name) {
            self.get(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Which files were (or would have been) searched for `name`, for error messages.
    fn searched_for(&self, name: &str) -> String {
        if let Some(g) = &self.gguf {
            let files = summarise_files(g.file().paths());
            return match gguf_name_for(name) {
                Some(n) => format!("{files} for GGUF tensor `{n}`"),
                None => files,
            };
        }
        if let Some(&f) = self.index_map.get(name) {
            let shard = self.files[f].path();
            return format!(
                "{}, which the index {} names for it",
                shard.display(),
                self.index
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
        let mut s = summarise_files(self.files.iter().map(|f| f.path()));
        if let Some(index) = &self.index {
            let absent: Vec<&Path> = self
                .index_files
                .iter()
                .filter(|p| !self.files.iter().any(|f| f.path() == p.as_path()))
                .map(PathBuf::as_path)
                .collect();
            s = format!("{s}; not in the weight_map of {}", index.display());
            if !absent.is_empty() {
                s = format!(
                    "{s}; absent shards not searched: {}",
                    summarise_files(absent)
                );
            }
        }
        s
    }

    fn missing(&self, name: &str) -> FormatError {
        FormatError::MissingTensor {
            name: name.to_string(),
            searched: self.searched_for(name),
            hint: self
                .did_you_mean(name)
                .map(|n| format!(", did you mean `{n}`?"))
                .unwrap_or_default(),
        }
    }

    /// A close existing name: the same with/without a `model.` prefix, or the sorted neighbour
    /// sharing the longest prefix (at least half of `name`).
    fn did_you_mean(&self, name: &str) -> Option<&str> {
        if self.gguf.is_some() {
            return None;
        }
        let alt = match name.strip_prefix("model.") {
            Some(rest) => rest.to_string(),
            None => format!("model.{name}"),
        };
        if let Some((k, _)) = self.tensors.get_key_value(&alt) {
            return Some(k);
        }
        let common = |a: &str| {
            a.bytes()
                .zip(name.bytes())
                .take_while(|(x, y)| x == y)
                .count()
        };
        let after = self
            .tensors
            .range::<str, _>((std::ops::Bound::Excluded(name), std::ops::Bound::Unbounded))
            .next();
        let before = self
            .tensors
            .range::<str, _>((std::ops::Bound::Unbounded, std::ops::Bound::Excluded(name)))
            .next_back();
        [before, after]
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .max_by_key(|k| common(k))
            .filter(|k| common(k) * 2 >= name.len() && common(k) > 0)
    }
}

/// A GGUF view entry as a [`TensorInfo`] (`None` for GGML types jing cannot compute with).
fn view_info(i: ViewInfo<'_>) -> Option<TensorInfo<'_>> {
    Some(TensorInfo {
        name: i.name,
        dtype: i.dtype?,
        shape: i.shape,
        file: i.file,
        byte_len: i.byte_len,
    })
}

/// Names under which the block scale of FP8 tensor `name` may be stored, preferred first:
/// `<name>_scale_inv` (HF), and for `X.weight` the DeepSeek demo's `X.scale`.
pub fn scale_names(name: &str) -> Vec<String> {
    let mut v = vec![format!("{name}_scale_inv")];
    if let Some(stem) = name.strip_suffix(".weight") {
        v.push(format!("{stem}.scale"));
    }
    v
}

fn find_index(dir: &Path) -> Result<Option<PathBuf>, FormatError> {
    let std_index = dir.join(INDEX_FILE);
    if std_index.is_file() {
        return Ok(Some(std_index));
    }
    // Some repositories use another prefix (e.g. `consolidated.safetensors.index.json`); use one
    // only when it is the only candidate.
    let mut found: Vec<PathBuf> = read_dir_sorted(dir)?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".safetensors.index.json"))
        })
        .collect();
    Ok(if found.len() == 1 { found.pop() } else { None })
}

fn list_safetensors(dir: &Path) -> Result<Vec<PathBuf>, FormatError> {
    Ok(read_dir_sorted(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors") && p.is_file())
        .collect())
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, FormatError> {
    let rd = std::fs::read_dir(dir).map_err(|e| FormatError::io(dir, "list", e))?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| FormatError::io(dir, "list", e))?;
        v.push(e.path());
    }
    v.sort();
    Ok(v)
}

/// Read `weight_map` (tensor → shard file) of an index, checking shard names are plain relative
/// paths inside the folder.
pub(crate) fn read_index(index: &Path) -> Result<BTreeMap<String, String>, FormatError> {
    let text = std::fs::read(index).map_err(|e| FormatError::io(index, "read", e))?;
    let value: Value = serde_json::from_slice(&text).map_err(|e| FormatError::BadJson {
        path: index.to_path_buf(),
        reason: e.to_string(),
    })?;
    let bad = |reason: String| FormatError::BadIndex {
        path: index.to_path_buf(),
        reason,
    };
    let Some(map) = value.get("weight_map") else {
        return Err(bad("no `weight_map` field".into()));
    };
    let Value::Object(map) = map else {
        return Err(bad(format!(
            "`weight_map` must be an object, found {}",
            short_json(map)
        )));
    };
    let mut out = BTreeMap::new();
    let mut checked: HashSet<&str> = HashSet::new();
    for (tensor, shard) in map {
        let Value::String(shard) = shard else {
            return Err(bad(format!(
                "`weight_map[\"{tensor}\"]` must be a file name, found {}",
                short_json(shard)
            )));
        };
        if checked.insert(shard.as_str()) {
            let p = Path::new(shard);
            let plain =
                !shard.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
            if !plain {
                return Err(bad(format!(
                    "shard name `{shard}` (for `{tensor}`) must be a file name inside the folder"
                )));
            }
        }
        out.insert(tensor.clone(), shard.clone());
    }
    Ok(out)
}
