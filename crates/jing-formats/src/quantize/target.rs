//! [`QuantTarget`]: what `jing quantize --type T` and `--quant T` ask for: one GGML type for
//! every weight (`q8_0`, `q4_k`, `f16`, ...), or one of llama.cpp's mixes (`q4_k_m`, `q5_k_m`)
//! that give some tensors more bits.

use jing_tensor::DType;

/// A mix of types chosen per tensor by llama.cpp's rules (`llama_tensor_get_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// `Q4_K_M`: Q4_K, with Q6_K for the output, half the `attn_v` and `ffn_down` tensors.
    Q4KM,
    /// `Q5_K_M`: Q5_K, with Q6_K for the output, half the `attn_v` and `ffn_down` tensors.
    Q5KM,
}

/// The type (or mix) weights are converted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantTarget {
    /// The lower-case name (`q4_k_m`).
    pub name: &'static str,
    /// The type of every quantizable tensor that no rule changes (llama.cpp's default type of
    /// the file type).
    pub base: DType,
    /// `None`: every quantizable tensor gets `base` (like `llama-quantize --pure`), except
    /// where a row is not whole blocks of it (then llama.cpp's fallback type).
    pub mix: Option<Mix>,
    /// `general.file_type` (llama.cpp's `llama_ftype`).
    pub file_type: u32,
}

/// Every target, by name.
const TARGETS: &[QuantTarget] = &[
    t("f32", DType::F32, None, 0),
    t("f16", DType::F16, None, 1),
    t("bf16", DType::BF16, None, 32),
    t("q8_0", DType::Q8_0, None, 7),
    t("q4_0", DType::Q4_0, None, 2),
    t("q4_1", DType::Q4_1, None, 3),
    t("q5_0", DType::Q5_0, None, 8),
    t("q5_1", DType::Q5_1, None, 9),
    t("q2_k", DType::Q2K, None, 10),
    // The pure K types carry the file type of llama.cpp's "small" mix of the same base type,
    // the closest it has (the file type is informational; every tensor says its own type).
    t("q3_k", DType::Q3K, None, 11),
    t("q4_k", DType::Q4K, None, 14),
    t("q5_k", DType::Q5K, None, 16),
    t("q6_k", DType::Q6K, None, 18),
    t("q4_k_m", DType::Q4K, Some(Mix::Q4KM), 15),
    t("q5_k_m", DType::Q5K, Some(Mix::Q5KM), 17),
];

const fn t(name: &'static str, base: DType, mix: Option<Mix>, file_type: u32) -> QuantTarget {
    QuantTarget {
        name,
        base,
        mix,
        file_type,
    }
}

impl QuantTarget {
    /// The target named `name` (case-insensitive; `Q4_K_M` and `q4_k_m` alike), or an error
    /// listing the names.
    pub fn parse(name: &str) -> Result<QuantTarget, String> {
        if let Some(iq) = DType::IQUANTS
            .iter()
            .find(|d| d.name().eq_ignore_ascii_case(name))
        {
            return Err(format!(
                "`{name}` ({iq}) is one of llama.cpp's importance-matrix types: jing reads and \
                 runs files that use it but does not write it; jing writes {}",
                QuantTarget::names().join(", ")
            ));
        }
        TARGETS
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .copied()
            .ok_or_else(|| {
                format!(
                    "unknown quantization type `{name}`; jing writes {}",
                    QuantTarget::names().join(", ")
                )
            })
    }

    /// Every target name.
    pub fn names() -> Vec<&'static str> {
        TARGETS.iter().map(|t| t.name).collect()
    }

    /// Whether the base type is a block type (not f32/f16/bf16).
    pub fn is_quantized(&self) -> bool {
        self.base.is_quantized()
    }
}

impl std::fmt::Display for QuantTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl std::str::FromStr for QuantTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<QuantTarget, String> {
        QuantTarget::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jing_tensor::quant;

    /// The float types, and the block types jing's reference quantizers produce.
    fn can_write(dtype: DType) -> bool {
        matches!(dtype, DType::F32 | DType::F16 | DType::BF16) || quant::can_quantize(dtype)
    }

    #[test]
    fn every_target_is_writable_and_parses_back() {
        for t in TARGETS {
            assert!(can_write(t.base), "{}", t.name);
            assert_eq!(QuantTarget::parse(&t.name.to_uppercase()).unwrap(), *t);
        }
        let err = QuantTarget::parse("q3_k_xl").unwrap_err();
        assert!(err.contains("q3_k_xl") && err.contains("q4_k_m"), "{err}");
        for d in DType::IQUANTS {
            let err = QuantTarget::parse(&d.name().to_uppercase()).unwrap_err();
            assert!(
                err.contains("importance-matrix") && err.contains("q8_0"),
                "{err}"
            );
        }
    }
}
