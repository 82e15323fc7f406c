//! Whether the backend may rearrange the matmul weights as they load, and what loading reports
//! while it does.
//!
//! A rearranged weight (the CPU backend's: in 2 MiB pages, its rows interleaved by 16 where the
//! kernels read them so) is a copy in this process's memory, not a view of the file mapping: the
//! system cannot drop it under pressure as it drops file pages, only swap it. So a model whose
//! weights do not fit in the available memory keeps its mapped weights as stored, and the system
//! pages them in and out as they are used (the weights quantized at load are in memory already, and
//! are still rearranged). Rearranging reads every such weight from the file during the load, so
//! loading reports it.

use std::sync::Arc;

use jing_formats::ModelDir;
use jing_models::PrepareLinear;
use jing_tensor::Weight;

/// What loading reports about the rearranged weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadEvent {
    /// About `bytes` of stored weights will be rearranged (the stored matrices; embeddings and
    /// weights read by rows, MLA's W_UK, among them stay as stored).
    Rearranging { bytes: u64 },
    /// One weight of `bytes` was rearranged.
    Rearranged { bytes: u64 },
}

/// Receives [`LoadEvent`]s, from the loading threads.
pub type LoadObserver = Arc<dyn Fn(LoadEvent) + Send + Sync>;

/// The backend's `prepare` for the model in `dir`, limited as the module docs say, with
/// `available` bytes of memory (`None`: unknown, taken as enough) and events to `observer`.
pub(crate) fn limit_prepare(
    prepare: Option<PrepareLinear>,
    dir: &ModelDir,
    available: Option<u64>,
    observer: Option<LoadObserver>,
) -> Option<PrepareLinear> {
    let prepare = prepare?;
    let stored = dir.store.total_bytes();
    let fits = available.is_none_or(|a| stored <= a);
    let candidates: u64 = dir
        .store
        .iter()
        .filter(|t| t.shape.len() == 2)
        .map(|t| t.byte_len as u64)
        .sum();
    if let Some(o) = observer.as_ref().filter(|_| fits && candidates > 0) {
        o(LoadEvent::Rearranging { bytes: candidates });
    }
    Some(Arc::new(move |w: &Weight| {
        if !fits && w.data.is_mapped() {
            return None;
        }
        let rearranged = prepare(w)?;
        if let Some(o) = &observer {
            o(LoadEvent::Rearranged {
                bytes: w.data.len() as u64,
            });
        }
        Some(rearranged)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jing_formats::quantize::{LoadQuant, QuantTarget};
    use jing_models::load_model_dir;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(rel)
    }

    /// The events of loading `path` with every linear weight interleaved where it can be, and
    /// `available` bytes of memory.
    fn events(path: &Path, available: Option<u64>, quant: Option<&LoadQuant>) -> Vec<LoadEvent> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let observer: LoadObserver = Arc::new(move |e| log.lock().unwrap().push(e));
        let interleave: PrepareLinear = Arc::new(|w: &Weight| w.interleave_rows16());
        let dir = ModelDir::open(path).unwrap();
        let prepare = limit_prepare(Some(interleave), &dir, available, Some(observer));
        load_model_dir(dir, quant, prepare.as_ref()).unwrap();
        let events = seen.lock().unwrap().clone();
        events
    }

    fn rearranged(events: &[LoadEvent]) -> usize {
        events
            .iter()
            .filter(|e| matches!(e, LoadEvent::Rearranged { .. }))
            .count()
    }

    #[test]
    fn only_a_model_that_fits_is_rearranged() {
        let gguf = fixture("qwen2-tiny/model-q8_0.gguf");
        let fits = events(&gguf, None, None);
        assert!(
            matches!(fits[0], LoadEvent::Rearranging { bytes } if bytes > 0),
            "{fits:?}"
        );
        assert!(rearranged(&fits) > 0, "{fits:?}");
        // Larger than the memory: the mapped weights stay as stored.
        assert_eq!(events(&gguf, Some(1024), None), vec![]);
        // Weights quantized at load are in memory already: rearranged whatever the memory, with
        // no bar announced for the stored (f32) weights.
        let q = LoadQuant::new(QuantTarget::parse("q8_0").unwrap(), 1);
        let quantized = events(&fixture("qwen2-tiny"), Some(1024), Some(&q));
        assert!(rearranged(&quantized) > 0, "{quantized:?}");
        assert_eq!(rearranged(&quantized), quantized.len(), "{quantized:?}");
    }
}
