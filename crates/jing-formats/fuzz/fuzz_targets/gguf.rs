//! Any bytes: the GGUF reader returns an error or a file whose every view stays in bounds, and
//! the HF view built on it reads every tensor without panicking.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use jing_formats::gguf::{GgufFile, HfView};
use jing_formats::{Bytes, TensorStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = GgufFile::from_bytes(Path::new("fuzz.gguf"), Bytes::from_vec(data.to_vec())) else {
        return;
    };
    for t in f.tensors() {
        assert_eq!(f.bytes(&t.info.name).unwrap().len(), t.info.range.len());
        if let Ok(w) = f.weight(&t.info.name) {
            if w.numel() <= 1 << 16 {
                let _ = w.to_f32_vec();
            }
        }
    }
    if let Ok(view) = HfView::new(Arc::new(f)) {
        let store = TensorStore::from_gguf(Arc::new(view));
        for name in store.names() {
            if let Ok(w) = store.get(name) {
                if w.numel() <= 1 << 16 {
                    let _ = w.to_f32_vec();
                }
            }
        }
    }
});
