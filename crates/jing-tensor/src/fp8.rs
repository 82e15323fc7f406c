//! `float8_e4m3fn` decoding. The format has 256 codes, so a table is exact and fast.

/// Decode one e4m3fn code (1 sign, 4 exponent bits with bias 7, 3 mantissa bits).
/// `S.1111.111` is NaN; there are no infinities; exponent 0 encodes subnormals.
pub const fn f8e4m3_to_f32_const(code: u8) -> f32 {
    let sign = if code & 0x80 != 0 { -1.0f32 } else { 1.0f32 };
    let exp = ((code >> 3) & 0x0f) as i32;
    let man = (code & 0x07) as f32;
    if exp == 0x0f && (code & 0x07) == 0x07 {
        return f32::NAN;
    }
    if exp == 0 {
        // subnormal: man/8 * 2^(1-7)
        return sign * man * (1.0 / 8.0) * (1.0 / 64.0);
    }
    // normal: (1 + man/8) * 2^(exp-7); const fn cannot call powi, so build 2^(exp-7) from bits.
    let pow2 = f32::from_bits(((exp - 7 + 127) as u32) << 23);
    sign * (1.0 + man / 8.0) * pow2
}

/// All 256 e4m3fn codes decoded to f32.
pub static F8E4M3_TO_F32: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = f8e4m3_to_f32_const(i as u8);
        i += 1;
    }
    t
};

/// Decode one e4m3fn code through the table.
#[inline(always)]
pub fn f8e4m3_to_f32(code: u8) -> f32 {
    F8E4M3_TO_F32[code as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        assert_eq!(f8e4m3_to_f32(0x00), 0.0);
        assert_eq!(f8e4m3_to_f32(0x38), 1.0); // exp 7, man 0
        assert_eq!(f8e4m3_to_f32(0xb8), -1.0);
        assert_eq!(f8e4m3_to_f32(0x7e), 448.0); // largest finite
        assert_eq!(f8e4m3_to_f32(0x01), 2f32.powi(-9)); // smallest subnormal
        assert_eq!(f8e4m3_to_f32(0x08), 2f32.powi(-6)); // smallest normal
        assert!(f8e4m3_to_f32(0x7f).is_nan());
        assert!(f8e4m3_to_f32(0xff).is_nan());
    }

    #[test]
    fn monotonic_over_positive_codes() {
        for c in 1u8..0x7e {
            assert!(f8e4m3_to_f32(c) < f8e4m3_to_f32(c + 1), "code {c:#x}");
        }
    }
}
