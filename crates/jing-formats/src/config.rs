//! [`Config`]: a JSON config file (HF `config.json`, `generation_config.json`) with typed field
//! accessors whose errors name the file, the field and the expected type.
//!
//! ```no_run
//! # fn f(cfg: &jing_formats::Config) -> Result<(), jing_formats::FormatError> {
//! let hidden = cfg.usize("hidden_size")?;                 // required
//! let q_lora = cfg.opt_usize("q_lora_rank")?;             // absent or null -> None
//! let eps = cfg.f64_or("rms_norm_eps", 1e-6)?;            // absent or null -> default
//! let factor = cfg.opt_f64("rope_scaling.factor")?;       // dotted paths reach into objects
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{short_json, FormatError};

/// A parsed JSON config. Cheap to clone for small configs; [`Config::section`] gives a view of a
/// nested object whose errors still name the full field path.
#[derive(Clone, Debug)]
pub struct Config {
    path: PathBuf,
    /// Field path of this section inside the file ("" at the top, else "rope_scaling.").
    prefix: String,
    value: Value,
}

const UINT: &str = "a non-negative integer";
const INT: &str = "an integer";
const NUM: &str = "a number";
const BOOL: &str = "true or false";
const STR: &str = "a string";
const UINT_LIST: &str = "a list of non-negative integers";
const OBJ: &str = "an object";

impl Config {
    /// Read and parse a JSON file. A missing file is [`FormatError::MissingFile`]; bad JSON is
    /// [`FormatError::BadJson`]; a top level that is not an object is [`FormatError::ConfigType`].
    pub fn from_file(path: &Path) -> Result<Config, FormatError> {
        if !path.is_file() {
            return Err(FormatError::MissingFile {
                path: path.to_path_buf(),
                what: "JSON config".into(),
                hint: "copy it from the model's repository".into(),
            });
        }
        let text = std::fs::read(path).map_err(|e| FormatError::io(path, "read", e))?;
        let value: Value = serde_json::from_slice(&text).map_err(|e| FormatError::BadJson {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Config::from_value(path, value)
    }

    /// Parse JSON text; `path` names it in errors.
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<Config, FormatError> {
        let path = path.into();
        let value: Value = serde_json::from_str(text).map_err(|e| FormatError::BadJson {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Config::from_value(path, value)
    }

    /// Wrap a JSON value (must be an object); `path` names it in errors.
    pub fn from_value(path: impl Into<PathBuf>, value: Value) -> Result<Config, FormatError> {
        let path = path.into();
        if !value.is_object() {
            return Err(FormatError::ConfigType {
                path,
                field: "(top level)".into(),
                expected: OBJ,
                found: short_json(&value),
            });
        }
        Ok(Config {
            path,
            prefix: String::new(),
            value,
        })
    }

    /// The file this config came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole JSON value (of this section).
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The raw value of `field` (a dotted path such as `"rope_scaling.factor"` reaches into
    /// nested objects); `None` when absent or null.
    pub fn get(&self, field: &str) -> Option<&Value> {
        let mut v = &self.value;
        for part in field.split('.') {
            v = v.as_object()?.get(part)?;
        }
        (!v.is_null()).then_some(v)
    }

    /// Whether `field` is present and not null.
    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    fn full(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    fn missing(&self, field: &str, expected: &'static str) -> FormatError {
        FormatError::ConfigMissing {
            path: self.path.clone(),
            field: self.full(field),
            expected,
        }
    }

    fn wrong(&self, field: &str, expected: &'static str, v: &Value) -> FormatError {
        FormatError::ConfigType {
            path: self.path.clone(),
            field: self.full(field),
            expected,
            found: short_json(v),
        }
    }

    /// Typed optional read: absent/null -> None, present -> convert or a type error.
    fn opt<T>(
        &self,
        field: &str,
        expected: &'static str,
        conv: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<T>, FormatError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => conv(v)
                .map(Some)
                .ok_or_else(|| self.wrong(field, expected, v)),
        }
    }

    // ---- unsigned integers ----

    /// A required non-negative integer (integral floats such as `4096.0` are accepted).
    pub fn usize(&self, field: &str) -> Result<usize, FormatError> {
        self.opt_usize(field)?
            .ok_or_else(|| self.missing(field, UINT))
    }

    /// An optional non-negative integer: absent or null -> `None`.
    pub fn opt_usize(&self, field: &str) -> Result<Option<usize>, FormatError> {
        self.opt(field, UINT, as_usize)
    }

    /// A non-negative integer, `default` when absent or null.
    pub fn usize_or(&self, field: &str, default: usize) -> Result<usize, FormatError> {
        Ok(self.opt_usize(field)?.unwrap_or(default))
    }

    // ---- signed integers ----

    /// A required integer.
    pub fn i64(&self, field: &str) -> Result<i64, FormatError> {
        self.opt_i64(field)?.ok_or_else(|| self.missing(field, INT))
    }

    /// An optional integer: absent or null -> `None`.
    pub fn opt_i64(&self, field: &str) -> Result<Option<i64>, FormatError> {
        self.opt(field, INT, as_i64)
    }

    /// An integer, `default` when absent or null.
    pub fn i64_or(&self, field: &str, default: i64) -> Result<i64, FormatError> {
        Ok(self.opt_i64(field)?.unwrap_or(default))
    }

    // ---- floats ----

    /// A required number (integers are accepted).
    pub fn f64(&self, field: &str) -> Result<f64, FormatError> {
        self.opt_f64(field)?.ok_or_else(|| self.missing(field, NUM))
    }

    /// An optional number: absent or null -> `None`.
    pub fn opt_f64(&self, field: &str) -> Result<Option<f64>, FormatError> {
        self.opt(field, NUM, Value::as_f64)
    }

    /// A number, `default` when absent or null.
    pub fn f64_or(&self, field: &str, default: f64) -> Result<f64, FormatError> {
        Ok(self.opt_f64(field)?.unwrap_or(default))
    }

    // ---- booleans ----

    /// A required boolean.
    pub fn bool(&self, field: &str) -> Result<bool, FormatError> {
        self.opt_bool(field)?
            .ok_or_else(|| self.missing(field, BOOL))
    }

    /// An optional boolean: absent or null -> `None`.
    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>, FormatError> {
        self.opt(field, BOOL, Value::as_bool)
    }

    /// A boolean, `default` when absent or null.
    pub fn bool_or(&self, field: &str, default: bool) -> Result<bool, FormatError> {
        Ok(self.opt_bool(field)?.unwrap_or(default))
    }

    // ---- strings ----

    /// A required string.
    pub fn str(&self, field: &str) -> Result<&str, FormatError> {
        self.opt_str(field)?.ok_or_else(|| self.missing(field, STR))
    }

    /// An optional string: absent or null -> `None`.
    pub fn opt_str(&self, field: &str) -> Result<Option<&str>, FormatError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong(field, STR, v)),
        }
    }

    /// A string, `default` when absent or null.
    pub fn str_or<'a>(&'a self, field: &str, default: &'a str) -> Result<&'a str, FormatError> {
        Ok(self.opt_str(field)?.unwrap_or(default))
    }

    // ---- lists ----

    /// A required list of non-negative integers.
    pub fn usize_list(&self, field: &str) -> Result<Vec<usize>, FormatError> {
        self.opt_usize_list(field)?
            .ok_or_else(|| self.missing(field, UINT_LIST))
    }

    /// An optional list of non-negative integers: absent or null -> `None`. A single integer is
    /// read as a one-element list (HF writes `eos_token_id` either way).
    pub fn opt_usize_list(&self, field: &str) -> Result<Option<Vec<usize>>, FormatError> {
        self.opt(field, UINT_LIST, |v| match v {
            Value::Array(a) => a.iter().map(as_usize).collect(),
            other => as_usize(other).map(|x| vec![x]),
        })
    }

    // ---- nested objects ----

    /// A required nested object (e.g. `"rope_scaling"`) as a `Config` whose errors name
    /// `rope_scaling.<field>`.
    pub fn section(&self, field: &str) -> Result<Config, FormatError> {
        self.opt_section(field)?
            .ok_or_else(|| self.missing(field, OBJ))
    }

    /// An optional nested object: absent or null -> `None`; not an object -> error.
    pub fn opt_section(&self, field: &str) -> Result<Option<Config>, FormatError> {
        match self.get(field) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(Config {
                path: self.path.clone(),
                prefix: format!("{}{field}.", self.prefix),
                value: v.clone(),
            })),
            Some(v) => Err(self.wrong(field, OBJ, v)),
        }
    }
}

fn as_usize(v: &Value) -> Option<usize> {
    if let Some(u) = v.as_u64() {
        return usize::try_from(u).ok();
    }
    let f = v.as_f64()?;
    (f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_992.0).then_some(f as usize)
}

fn as_i64(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(
            "config.json",
            r#"{"hidden_size": 7168, "q_lora_rank": null, "rms_norm_eps": 1e-6, "rope_theta": 10000,
                "max_position_embeddings": 4096.0, "tie_word_embeddings": false, "model_type": "deepseek_v3",
                "rope_scaling": {"type": "yarn", "factor": 40, "mscale": "x"}, "eos_token_id": 1,
                "neg": -3, "quantization_config": {"weight_block_size": [128, 128]}}"#,
        )
        .unwrap()
    }

    #[test]
    fn typed_reads() {
        let c = cfg();
        assert_eq!(c.usize("hidden_size").unwrap(), 7168);
        assert_eq!(c.usize("max_position_embeddings").unwrap(), 4096);
        assert_eq!(c.opt_usize("q_lora_rank").unwrap(), None);
        assert_eq!(c.opt_usize("absent").unwrap(), None);
        assert_eq!(c.usize_or("absent", 3).unwrap(), 3);
        assert_eq!(c.f64("rope_theta").unwrap(), 10000.0);
        assert_eq!(c.f64_or("rms_norm_eps", 1e-5).unwrap(), 1e-6);
        assert!(!c.bool("tie_word_embeddings").unwrap());
        assert_eq!(c.str("model_type").unwrap(), "deepseek_v3");
        assert_eq!(c.f64("rope_scaling.factor").unwrap(), 40.0);
        assert_eq!(c.i64("neg").unwrap(), -3);
        assert_eq!(c.usize_list("eos_token_id").unwrap(), vec![1]);
        assert_eq!(
            c.usize_list("quantization_config.weight_block_size")
                .unwrap(),
            vec![128, 128]
        );
        let rs = c.section("rope_scaling").unwrap();
        assert_eq!(rs.str("type").unwrap(), "yarn");
        let e = rs.f64("mscale").unwrap_err().to_string();
        assert!(
            e.contains("rope_scaling.mscale") && e.contains("config.json"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_file_field_and_type() {
        let c = cfg();
        let e = c.usize("model_type").unwrap_err();
        assert!(matches!(e, FormatError::ConfigType { .. }));
        let s = e.to_string();
        assert!(
            s.contains("config.json")
                && s.contains("`model_type`")
                && s.contains("non-negative integer"),
            "{s}"
        );
        let e = c.usize("num_hidden_layers").unwrap_err();
        assert!(matches!(e, FormatError::ConfigMissing { .. }), "{e}");
        assert!(e.to_string().contains("num_hidden_layers"));
        assert!(matches!(
            c.usize("neg"),
            Err(FormatError::ConfigType { .. })
        ));
        assert!(matches!(
            c.usize("q_lora_rank"),
            Err(FormatError::ConfigMissing { .. })
        ));
        assert!(matches!(
            c.section("hidden_size"),
            Err(FormatError::ConfigType { .. })
        ));
        assert!(matches!(
            c.bool("hidden_size"),
            Err(FormatError::ConfigType { .. })
        ));
        assert!(matches!(
            Config::parse("x.json", "[1]"),
            Err(FormatError::ConfigType { .. })
        ));
        assert!(matches!(
            Config::parse("x.json", "{"),
            Err(FormatError::BadJson { .. })
        ));
    }
}
