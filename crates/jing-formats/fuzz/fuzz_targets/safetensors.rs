//! Any bytes: the safetensors header parser returns an error or a header whose tensors lie
//! inside the file.
#![no_main]

use std::path::Path;

use jing_formats::safetensors::parse_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = parse_header(Path::new("fuzz.safetensors"), data) {
        for t in &h.tensors {
            assert!(t.range.end <= data.len());
        }
    }
});
