//! The repository's tiny real checkpoints (tests/fixtures/*, made by the fixture script with HF
//! transformers) open cleanly: every F8_E4M3 tensor has its block scale, and `inspect` reports
//! nothing missing. Skipped (with a note) while no fixture exists.

use std::path::PathBuf;

use jing_formats::{inspect, DType, ModelDir};

fn fixture_dirs() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let Ok(rd) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.json").is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn fixtures_open_and_fp8_scales_pair() {
    let dirs = fixture_dirs();
    if dirs.is_empty() {
        eprintln!("no fixtures under tests/fixtures yet; skipping");
        return;
    }
    for dir in dirs {
        let m = ModelDir::open(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(!m.store.is_empty(), "{}", dir.display());
        assert!(
            m.store.missing_scales().is_empty(),
            "{}: {:?}",
            dir.display(),
            m.store.missing_scales()
        );
        let mut fp8 = 0;
        for name in m.store.names() {
            let w = m
                .store
                .get(name)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            if w.dtype == DType::F8E4M3 {
                fp8 += 1;
                let s = w.scale.as_ref().expect("FP8 weight has a scale");
                assert_eq!(s.block, m.store.block_size());
                // Touch the data: dequantized values are finite.
                assert!(w.to_f32_vec().iter().all(|v| v.is_finite()), "{name}");
            }
        }
        let is_fp8_fixture = dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("fp8"));
        if is_fp8_fixture {
            assert!(fp8 > 0, "{}: no F8_E4M3 tensor", dir.display());
        }
        let r = inspect(&dir).unwrap();
        assert!(
            r.missing.is_empty(),
            "{}: missing {:?}",
            dir.display(),
            r.missing
        );
        assert!(
            r.problems.is_empty(),
            "{}: problems {:?}",
            dir.display(),
            r.problems
        );
    }
}
