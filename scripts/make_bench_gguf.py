#!/usr/bin/env python3
"""Write a benchmark-shape GGUF file with random weights, streamed tensor by tensor.

The shapes are the real ones of DeepSeek-V2-Lite (arch `deepseek2`, the MLA split
`attn_k_b`/`attn_v_b` layout current llama.cpp converters write) and of Qwen2.5-1.5B
(= DeepSeek-R1-Distill-Qwen-1.5B, arch `qwen2`, tied embeddings). The file loads in both jing
and llama.cpp, so the two engines can be timed on the same bytes (docs/benchmarks.md).

The types gguf-py can quantize are written from the random values (F32, F16, BF16, Q8_0, Q4_0);
the K-quant mixes (Q4_K_M, Q2_K, Q3_K_M) come from a quantizer, e.g. `llama-quantize
--allow-requantize IN OUT Q4_K_M` (random weights, so requantizing from Q8_0 loses nothing that
matters to a speed test). The i-quants IQ2_XXS and IQ3_XXS, which `llama-quantize` makes only
with an importance matrix, are written as random blocks instead (any byte pattern is a valid
block once its scale is set), with the f16 scale chosen so the weights have about the
intended spread; rows that are not whole 256-blocks fall back to IQ4_NL (random blocks too),
as llama.cpp's quantizer does.

Peak memory is one tensor (the largest, a 64-expert stack, is 0.7 GiB in f32): the header
is written from shapes alone, then each tensor is generated, quantized and appended.

    /work/.venv-fixtures/bin/python scripts/make_bench_gguf.py --shape v2-lite --layers 4 \
        --type Q8_0 --out /tmp/bench/v2lite4-q8_0.gguf
"""

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402  (tokenizer helpers and the shape tables)


def v2_lite_tensors(s):
    """(gguf name, numpy shape outermost first, init) for DeepSeek-V2-Lite's layout.

    init is ("lin", fan_in, gain) for projections, ("norm",) for RMSNorm weights and
    ("embed",) for the embedding table."""
    H, V = s["hidden"], s["vocab"]
    nh, dn, dr, dv, kvr = s["heads"], s["qk_nope"], s["qk_rope"], s["v_head"], s["kv_lora"]
    E, fe, fi = s["experts"], s["moe_inter"], s["inter"]
    out = [("token_embd.weight", (V, H), ("embed",))]
    for i in range(s["layers"]):
        p = f"blk.{i}."
        out += [
            (p + "attn_norm.weight", (H,), ("norm",)),
            (p + "attn_q.weight", (nh * (dn + dr), H), ("lin", H, 1.0)),
            (p + "attn_kv_a_mqa.weight", (kvr + dr, H), ("lin", H, 1.0)),
            (p + "attn_kv_a_norm.weight", (kvr,), ("norm",)),
            # kv_b split per head: k_b [heads, kv_lora, nope] (absorbed into q), v_b [heads, v, kv_lora].
            (p + "attn_k_b.weight", (nh, kvr, dn), ("lin", kvr, 1.0)),
            (p + "attn_v_b.weight", (nh, dv, kvr), ("lin", kvr, 1.0)),
            (p + "attn_output.weight", (H, nh * dv), ("lin", nh * dv, 0.7)),
            (p + "ffn_norm.weight", (H,), ("norm",)),
        ]
        if i < s["first_dense"]:
            out += [
                (p + "ffn_gate.weight", (fi, H), ("lin", H, 1.0)),
                (p + "ffn_up.weight", (fi, H), ("lin", H, 1.0)),
                (p + "ffn_down.weight", (H, fi), ("lin", fi, 0.7)),
            ]
        else:
            fs = fe * s["shared"]
            out += [
                (p + "ffn_gate_inp.weight", (E, H), ("lin", H, 2.0)),
                (p + "ffn_gate_exps.weight", (E, fe, H), ("lin", H, 1.0)),
                (p + "ffn_up_exps.weight", (E, fe, H), ("lin", H, 1.0)),
                (p + "ffn_down_exps.weight", (E, H, fe), ("lin", fe, 0.7)),
                (p + "ffn_gate_shexp.weight", (fs, H), ("lin", H, 1.0)),
                (p + "ffn_up_shexp.weight", (fs, H), ("lin", H, 1.0)),
                (p + "ffn_down_shexp.weight", (H, fs), ("lin", fs, 0.7)),
            ]
    out += [("output_norm.weight", (H,), ("norm",)), ("output.weight", (V, H), ("lin", H, 2.0))]
    return out


def qwen_tensors(s):
    H, V, nh, nkv, fi = s["hidden"], s["vocab"], s["heads"], s["kv_heads"], s["inter"]
    hd = H // nh
    out = [("token_embd.weight", (V, H), ("embed",))]
    for i in range(s["layers"]):
        p = f"blk.{i}."
        out += [
            (p + "attn_norm.weight", (H,), ("norm",)),
            (p + "attn_q.weight", (nh * hd, H), ("lin", H, 1.0)),
            (p + "attn_q.bias", (nh * hd,), ("bias",)),
            (p + "attn_k.weight", (nkv * hd, H), ("lin", H, 1.0)),
            (p + "attn_k.bias", (nkv * hd,), ("bias",)),
            (p + "attn_v.weight", (nkv * hd, H), ("lin", H, 1.0)),
            (p + "attn_v.bias", (nkv * hd,), ("bias",)),
            (p + "attn_output.weight", (H, nh * hd), ("lin", nh * hd, 0.7)),
            (p + "ffn_norm.weight", (H,), ("norm",)),
            (p + "ffn_gate.weight", (fi, H), ("lin", H, 1.0)),
            (p + "ffn_up.weight", (fi, H), ("lin", H, 1.0)),
            (p + "ffn_down.weight", (H, fi), ("lin", fi, 0.7)),
        ]
    out.append(("output_norm.weight", (H,), ("norm",)))  # tied: no output.weight
    return out


def stored_type(name, shape, want):
    """The GGML type a tensor is stored in: norms, biases and the router stay F32 (as the
    llama.cpp converter keeps them); rows that are not whole 32-blocks fall back to F16."""
    import gguf

    Q = gguf.GGMLQuantizationType
    if len(shape) == 1 or name.endswith("ffn_gate_inp.weight"):
        return Q.F32
    want = Q[want]
    if want in (Q.Q8_0, Q.Q4_0, Q.IQ4_NL) and shape[-1] % 32 != 0:
        return Q.F16
    if shape[-1] % gguf.GGML_QUANT_SIZES[want][0] != 0:
        # llama.cpp's fallback for the 256-element i-quants (`llama_tensor_get_type`): IQ4_NL
        # (DeepSeek's attn_k_b rows of 128, V2-Lite's expert ffn_down rows of 1408).
        return stored_type(name, shape, "IQ4_NL")
    return want


# The i-quants written as random blocks: the scale `d` (f16 at byte 0 of each block) that gives
# weights of standard deviation 1 for random codes and scales (IQ2_XXS: |w| ~ d/8 * 16 * 25;
# IQ3_XXS: |w| ~ d/4 * 16 * 30; IQ4_NL: |w| ~ d * 67, the rms of its 16 values), by type name.
RANDOM_BLOCKS = {"IQ2_XXS": 1 / 50, "IQ3_XXS": 1 / 120, "IQ4_NL": 1 / 67}


def generate(rng, shape, init):
    """float32 values for one tensor (one 2-D slice at a time for 3-D stacks)."""
    kind = init[0]
    if kind == "norm":
        return (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    if kind == "bias":
        return 0.02 * rng.standard_normal(shape, dtype=np.float32)
    if kind == "embed":
        return rng.standard_normal(shape, dtype=np.float32)
    _, fan_in, gain = init
    a = rng.standard_normal(shape, dtype=np.float32)
    a *= np.float32(gain / math.sqrt(fan_in))
    return a


def encode(a, qt, rng):
    import gguf

    Q = gguf.GGMLQuantizationType
    if qt == Q.F32:
        return a.astype(np.float32)
    if qt == Q.F16:
        return a.astype(np.float16)
    if qt.name in RANDOM_BLOCKS:
        # Random blocks whose scale gives the values' spread (see RANDOM_BLOCKS).
        block, size = gguf.GGML_QUANT_SIZES[qt]
        blocks = rng.integers(0, 256, size=(a.size // block, size), dtype=np.uint8)
        d = np.float16(float(a.std()) * RANDOM_BLOCKS[qt.name])
        blocks[:, 0:2] = np.frombuffer(d.tobytes(), dtype=np.uint8)
        return blocks.reshape(-1)
    return gguf.quants.quantize(a, qt)


def add_metadata(w, shape_name, s, want):
    import gguf

    ftype = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
             "BF16": gguf.LlamaFileType.MOSTLY_BF16, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
             "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "IQ2_XXS": gguf.LlamaFileType.MOSTLY_IQ2_XXS,
             "IQ3_XXS": gguf.LlamaFileType.MOSTLY_IQ3_XXS,
             "IQ4_NL": gguf.LlamaFileType.MOSTLY_IQ4_NL}[want]
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(f"{shape_name}-{s['layers']}L-random")
    w.add_block_count(s["layers"])
    w.add_embedding_length(s["hidden"])
    w.add_head_count(s["heads"])
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(ftype)
    if shape_name == "v2-lite":
        w.add_context_length(163840)
        w.add_feed_forward_length(s["inter"])
        w.add_head_count_kv(1)  # MLA: one shared latent "head"
        w.add_rope_freq_base(10000.0)
        w.add_expert_count(s["experts"])
        w.add_expert_used_count(s["top_k"])
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
        w.add_leading_dense_block_count(s["first_dense"])
        w.add_vocab_size(s["vocab"])
        # V2-Lite has no q LoRA. llama.cpp infers "lite" from 26/27 layers only, so other
        # layer counts need the rank written out as 0 (jing reads 0 as none too).
        w.add_q_lora_rank(0)
        w.add_kv_lora_rank(s["kv_lora"])
        w.add_key_length(s["kv_lora"] + s["qk_rope"])
        w.add_value_length(s["kv_lora"])
        w.add_key_length_mla(s["qk_nope"] + s["qk_rope"])
        w.add_value_length_mla(s["v_head"])
        w.add_expert_feed_forward_length(s["moe_inter"])
        w.add_expert_shared_count(s["shared"])
        w.add_expert_weights_scale(1.0)
        w.add_rope_dimension_count(s["qk_rope"])
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(40.0)
        w.add_rope_scaling_orig_ctx_len(4096)
        w.add_rope_scaling_yarn_log_mul(0.1 * 0.707)
        pre = "deepseek-llm"
    else:
        w.add_context_length(131072)
        w.add_feed_forward_length(s["inter"])
        w.add_head_count_kv(s["kv_heads"])
        w.add_rope_freq_base(10000.0)
        pre = "qwen2"
    # The repo's small byte-level BPE tokenizer, padded to the shape's vocabulary the way the
    # converter pads (unused [PADn] tokens): the benchmarks feed random token ids anyway.
    with tempfile.TemporaryDirectory() as tok_dir:
        mf.write_tokenizer(mf.build_tokenizer(), tok_dir)
        tokens, types = mf.gguf_token_lists(tok_dir, s["vocab"])
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        gguf.SpecialVocab(tok_dir, load_merges=True).add_to_gguf(w, quiet=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", required=True, choices=["v2-lite", "qwen2.5-1.5b"])
    ap.add_argument("--layers", type=int, default=None, help="number of layers (default: the real count)")
    ap.add_argument("--type", default="Q8_0",
                    choices=["F32", "F16", "BF16", "Q8_0", "Q4_0", *RANDOM_BLOCKS])
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", required=True, help="output .gguf path")
    args = ap.parse_args()

    import gguf

    if args.shape == "v2-lite":
        s = dict(mf.V2_LITE_SHAPE)
        arch, make = "deepseek2", v2_lite_tensors
    else:
        s = dict(mf.QWEN25_15B_SHAPE)
        arch, make = "qwen2", qwen_tensors
    if args.layers is not None:
        s["layers"] = args.layers
    tensors = make(s)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    w = gguf.GGUFWriter(args.out, arch)
    add_metadata(w, args.shape, s, args.type)
    # Header first, from shapes alone: every tensor's type and byte size is known up front.
    plan = []
    for name, shape, init in tensors:
        qt = stored_type(name, shape, args.type)
        nbytes = gguf.quant_shape_to_byte_shape(shape, qt)[-1] * int(np.prod(shape[:-1]))
        if qt in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            dt = np.float32 if qt == gguf.GGMLQuantizationType.F32 else np.float16
            w.add_tensor_info(name, shape, np.dtype(dt), nbytes)
        else:
            byte_shape = gguf.quant_shape_to_byte_shape(shape, qt)
            w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=qt)
        plan.append((name, shape, init, qt, nbytes))
    total = sum(p[-1] for p in plan)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    t0, done = time.time(), 0
    for k, (name, shape, init, qt, nbytes) in enumerate(plan):
        rng = np.random.default_rng([args.seed, k])  # one stream per tensor: reproducible
        if len(shape) == 3:
            # Expert and per-head stacks: one 2-D slice at a time keeps memory to one slice.
            data = np.concatenate([encode(generate(rng, shape[1:], init), qt, rng).reshape(-1)
                                   for _ in range(shape[0])])
        else:
            data = encode(generate(rng, shape, init), qt, rng).reshape(-1)
        data = data.view(np.uint8) if data.dtype != np.uint8 else data
        assert data.nbytes == nbytes, (name, data.nbytes, nbytes)
        w.write_tensor_data(data)
        done += nbytes
        if k % 16 == 0 or k == len(plan) - 1:
            rate = done / max(time.time() - t0, 1e-9) / 2**20
            print(f"\r  {done / 2**30:6.2f} / {total / 2**30:.2f} GiB  ({rate:.0f} MiB/s)  {name:<40}",
                  end="", file=sys.stderr, flush=True)
    w.close()
    print(f"\nwrote {args.out}: {args.shape}, {s['layers']} layers, {args.type}, {total / 2**30:.2f} GiB",
          file=sys.stderr)


if __name__ == "__main__":
    main()
