//! A decode step allocates nothing that grows with the model: once a step of the same shape
//! has run, the CPU backend's node buffers, schedule, per-thread scratch (activation
//! quantization, MoE routing and gathering, attention, the FP8 `x` layout) and expert routing
//! are all reused. What is left is the step's fixed bookkeeping and its outputs (their names,
//! shapes and buffers, handed to the caller), a few allocations whatever the model's size.
//!
//! Counted with a global allocator over every thread (the pool's workers included), on every
//! SIMD kernel table, for
//! DeepSeek-V3-shaped models (MLA from GGUF's split `attn_k_b`/`attn_v_b`, MoE with a shared
//! expert, Q8_0 / F16 weights) and a Qwen2-shaped one (GQA).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use jing_cpu::kernels::{Fp8Activations, KernelTable};
use jing_cpu::CpuBackend;
use jing_graph::{Backend, Batch, KvCache};
use jing_models::{load_model, LogitRows};

mod common;
use common::fixture;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations of each of the decode steps at positions `4..4 + steps` (after a 4-token
/// prompt and one warm-up decode of the same shape), graphs built outside the count.
fn decode_allocations(path: &std::path::Path, kernels: KernelTable, steps: usize) -> Vec<usize> {
    let model = load_model(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let info = model.info();
    let backend = CpuBackend::with_kernels(Some(2), kernels);
    // Cache rows reserved for the whole run up front: the cache's growth is the cache's
    // business (it is sized per request), not the step's.
    let mut cache = KvCache::new(info.cache_layers, info.cache_width, 64);
    let slot = cache.alloc_slot();
    let prompt = [1u32, 2, 3, 4];
    let batch = Batch::sequence(slot, 0, &prompt);
    let graph = model.build_step(&batch, &LogitRows::All);
    backend.execute(&graph, &batch, &mut cache).expect("prompt");
    let mut counts = Vec::new();
    for pos in 4..4 + 1 + steps {
        let batch = Batch::sequence(slot, pos, &[5]);
        let graph = model.build_step(&batch, &LogitRows::last_of_each_sequence(&batch));
        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        let out = backend.execute(&graph, &batch, &mut cache);
        COUNTING.store(false, Ordering::Relaxed);
        let n = ALLOCATIONS.load(Ordering::Relaxed);
        let out = out.expect("decode");
        assert!(out.get("logits").is_some());
        if pos > 4 {
            counts.push(n);
        }
    }
    counts
}

#[test]
fn a_decode_step_allocates_only_for_its_outputs() {
    for (name, file, fp8) in [
        ("deepseek-v3-tiny", "model-q8_0.gguf", Fp8Activations::F32),
        ("deepseek-v3-tiny", "model-f16.gguf", Fp8Activations::F32),
        ("qwen2-tiny", "model-q8_0.gguf", Fp8Activations::F32),
        // The checkpoint folder, its matmuls FP8 against bf16 activations.
        ("deepseek-v3-fp8-tiny", "", Fp8Activations::Bf16),
    ] {
        // The SIMD tables (what runs); the generic oracle decodes each float row into a fresh
        // buffer, kept plain on purpose.
        for kernels in KernelTable::available()
            .into_iter()
            .filter(|k| k.name != "generic")
            .map(|k| k.with_fp8_activations(fp8))
        {
            let counts = decode_allocations(&fixture(name).join(file), kernels, 3);
            // Outputs `logits` and `hidden`: a name, a shape and a buffer each, the list of
            // them, and the executor's table of node cells.
            let bound = 3 * 2 + 2;
            assert!(
                counts.iter().all(|&n| n <= bound),
                "{name}/{file} on {}: allocations per decode step {counts:?}, expected at most {bound}",
                kernels.name
            );
        }
    }
}
