#!/usr/bin/env python3
"""Build tiny random DeepSeek (and R1-Distill Qwen2 / Llama) checkpoints and goldens for jing's tests.

Run (deterministic, ~1 min on 2 CPU cores, no network, no downloads):

    /work/.venv-fixtures/bin/python scripts/make_fixtures.py            # writes tests/fixtures/
    /work/.venv-fixtures/bin/python scripts/make_fixtures.py --shape v2-lite --out /tmp/v2l --layers 2
    /work/.venv-fixtures/bin/python scripts/make_fixtures.py --shape v3 --out /tmp/v3 --layers 4 --experts 16 --fp8
    /work/.venv-fixtures/bin/python scripts/make_fixtures.py --gguf-only    # only the GGUF files

Pinned environment: scripts/requirements-fixtures.txt (torch 2.15.0, transformers 5.23.0,
safetensors 0.8.0, tokenizers 0.23.3, numpy).  Goldens are produced by transformers' own
DeepseekV3ForCausalLM / DeepseekV2ForCausalLM (and Qwen2ForCausalLM / LlamaForCausalLM) classes
(eager attention, eager experts), loaded
with exactly the values the stored tensors represent (bf16/f16 upcast, FP8 dequantized as
f32(code) * scale_inv), run once in float64 (the golden) and once in float32 (to calibrate
tolerances).

Outputs
-------
tests/fixtures/tokenizer/           tokenizer.json, tokenizer_config.json, golden.json
tests/fixtures/deepseek-v3-tiny/    bf16, single model.safetensors, V3 (noaux_tc) + MTP layer
tests/fixtures/deepseek-v3-fp8-tiny/ DeepSeek block-FP8 (e4m3 + 128x128 scale_inv), 2 shards + index
tests/fixtures/deepseek-v2-lite-tiny/ f32, V2-Lite style (plain q_proj, softmax greedy)
tests/fixtures/deepseek-v2-tiny/    f16, V2 style (q_lora, softmax group_limited_greedy, x16)
tests/fixtures/qwen2-tiny/          bf16, Qwen2ForCausalLM like DeepSeek-R1-Distill-Qwen-1.5B (q/k/v
                                    biases, GQA 4/2, untied, use_sliding_window false)
tests/fixtures/qwen2-tied-tiny/     f16, Qwen2ForCausalLM with tie_word_embeddings (no lm_head.weight)
tests/fixtures/llama-tiny/          bf16, LlamaForCausalLM like DeepSeek-R1-Distill-Llama-8B (GQA 8/2,
                                    rope_theta 500000, llama3 rope_scaling, no biases)

GGUF (see the GGUF section below; `--gguf-only` rewrites just these from the committed folders):
deepseek-v3-tiny/model-f16.gguf       MLA split attn_k_b/attn_v_b, MTP nextn layer, yarn_attn_factor
deepseek-v3-tiny/model-q8_0.gguf      Q8_0 (F16 where rows are not whole 32-blocks), no MTP
deepseek-v2-lite-tiny/model-f32-0000{1,2}-of-00002.gguf  legacy attn_kv_b, a 2-file split set
deepseek-v2-tiny/model-f16.gguf       group-limited softmax routing (expert_group_count)
qwen2-tiny/model-{f16,q8_0}.gguf, qwen2-tied-tiny/model-f16.gguf (no output.weight)
llama-tiny/model-{f16,q8_0}.gguf      q/k rows permuted as llama.cpp does, rope_freqs (llama3)
and golden-gguf.json per folder (float64 logits of the model each file stores).

Every model folder holds config.json, generation_config.json, tokenizer.json,
tokenizer_config.json, weights and golden.json.  golden.json fields:
  prompt_ids, argmax (per prompt position), last_logits (f64, last prompt position),
  first_logits (f64, position 0), all_logits_f64_max_abs, f32_vs_f64_max_abs_diff (over all
  positions of prompt + greedy continuation), greedy_ids (24 tokens, f64, full recompute),
  min_margin (min top1-top2 over every prompt position and greedy step), routing (per MoE
  layer: selected experts per prompt position, sorted ascending, with their combine weights),
  min_router_margin, router_alternatives (how many (layer, position) routing decisions a
  *wrong* router implementation would change -- shows the fixture discriminates), mtp_golden
  (V3 only), derived (softmax scale, rope inv_freq, rope cos/sin factor), text_prompt(_ids),
  notes.  The dense fixtures (qwen2-*, llama-tiny) have the same fields minus routing /
  router_* / mtp_golden, plus `architecture` and `alternatives` (how many argmax decisions a
  wrong implementation would change: interleaved rope, GQA head mapping h % n_kv, dropped q/k/v
  biases, ignored llama3 scaling, sliding window honoured although disabled), and derived
  holds head_dim, kv_head_of_query_head, rope_style, inv_freq (f64 and HF's f32; for llama3 also
  the unscaled values and the branch taken per frequency).

config.json: the V3, V3-FP8 and V2-Lite fixtures use DeepSeek's released layout (rope_theta +
rope_scaling {type: yarn, ...}, scoring_func, topk_method, torch_dtype; no head_dim).  The
deepseek-v2-tiny fixture keeps exactly what transformers 5.23 save_pretrained writes:
rope_parameters {rope_theta, rope_type, ...} instead of rope_scaling, plus HF-derived
`head_dim` (== qk_rope_head_dim, NOT the attention head size) and `qk_head_dim`.  Both load in
transformers (checked via from_pretrained, except the FP8 folder).

Tokenizer: byte-level BPE trained here with `tokenizers` on a small built-in corpus, with
DeepSeek-V3's exact pre-tokenizer (Split digits{1,3} / CJK runs / main regex, then ByteLevel
without regex), byte-level decoder, TemplateProcessing post-processor adding BOS (id 0).
BOS/EOS/pad are ids 0/1/2, the chat/tool special tokens follow the BPE vocab (ids 480..493);
494 tokens in total, model vocab_size 512 (rows 494..511 are never produced by the tokenizer
but are valid model outputs, as in the real 129280-row V3 embedding).  tokenizer_config.json:
LlamaTokenizerFast, add_bos_token, R1-style chat_template written from scratch.

Semantics (checked against transformers 5.23.0 source; "HF" below)
---------------------------------------------------------------------
* Router, V3 (topk_method noaux_tc, sigmoid):  s = sigmoid(W_g x) in fp32 (f64 in the f64
  run); s_b = s + e_score_correction_bias; group score = sum of the top-2 s_b per group; keep
  topk_group groups; non-kept experts are masked with -inf; top-k by s_b; combine weights are
  the UNBIASED s of the chosen experts, normalised (sum + 1e-20) and multiplied by
  routed_scaling_factor.  HF 5.23 already masks with -inf
  (modeling_deepseek_v3.py DeepseekV3TopkRouter.forward:
  `scores_for_choice.masked_fill(~score_mask.bool(), float("-inf"))`), so there is nothing
  to fix; older HF and the hub remote code used 0.0.  The fp8 fixture is built so that the
  0.0-mask would pick different experts for some tokens (see router_alternatives).
* Router, V2 (softmax): p = softmax(W_g x); greedy = top-k of p; group_limited_greedy: group
  score = max p in the group, keep topk_group groups, top-k among them; weights = p * rsf, no
  renormalisation (HF's V2 router ignores norm_topk_prob; all V2 fixtures use false).
  HF masks non-kept groups with 0.0 (`scores.masked_fill(~score_mask.bool(), 0.0)`);
  PATCH 1: we mask with -inf.  Result-identical here (probabilities are > 0 and
  topk_group * group_size >= top_k), done for consistency with DeepSeek's reference.
* Softmax scale = (qk_nope + qk_rope)^-0.5 * m^2, m = 0.1 * mscale_all_dim * ln(factor) + 1
  (only when factor > 1 and mscale_all_dim is non-zero).  HF 5.23 applies this in BOTH the V3
  and the V2 class (`self.scaling = yarn_apply_mscale(config.rope_parameters,
  self.qk_head_dim ** (-0.5))`), so no patch is needed (older HF V2 omitted it).  The script
  asserts the value.
* RoPE: adjacent-pair (interleaved) rotation on the raw checkpoint layout of q_pe / k_pe.
  HF V3 (`rope_interleave=True`) uses `apply_rotary_pos_emb_interleave` (rotates
  (x[2j], x[2j+1]) and writes the result de-interleaved; dot products are identical).  HF V2
  uses `torch.view_as_complex` on adjacent pairs (`apply_rotary_emb`) -- also adjacent pairs
  on the raw layout.  YaRN inverse frequencies: HF `_compute_yarn_parameters` (floor/ceil
  correction range, clamp to [0, dim-1], linear ramp over dim/2 pairs) == DeepSeek's
  reference.  cos and sin are BOTH multiplied by attention_factor =
  mscale(factor, mscale) / mscale(factor, mscale_all_dim) (HF `self.attention_scaling`, same
  as DeepSeek's hub remote code and vLLM; DeepSeek's inference/model.py demo never scales
  cos/sin, which only matters when mscale != mscale_all_dim -- no released config does that).
  The V3 tiny fixture deliberately uses mscale 1.0 / mscale_all_dim 0.707 so this factor is
  1.0857 and an engine must implement it to pass.
* MoE: shared experts (one MLP of width n_shared * moe_intermediate) added unscaled; dense
  layers for layer < first_k_dense_replace.
* f64 precision patches (PATCH 2-6).  HF hard-codes float32 in a few places, which would
  silently round the "float64" golden to f32.  For float64 inputs only, we compute in f64:
  PATCH 2 RMSNorm (`hidden_states.to(torch.float32)`), PATCH 3 eager attention softmax
  (`softmax(..., dtype=torch.float32)`), PATCH 4 routers (`hidden_states.type(torch.float32)`,
  weight `.type(torch.float32)`), PATCH 5 rotary embedding (inv_freq is computed in f32 by
  `_compute_yarn_parameters` and positions*inv_freq in f32; we recompute inv_freq with the
  same formula in f64), PATCH 6 V2 `apply_rotary_emb` (`xq.float()` -> view_as_complex) keeps
  f64.  For float32 inputs every patched function does exactly what HF does; the script checks
  this by running the f32 model with and without the patches (diff must be 0, PATCH 1 being
  result-identical) and by loading the written folder with `from_pretrained`.
* MTP (V3 fixtures): layer index num_hidden_layers holds embed_tokens (copy of the main
  embedding), enorm, hnorm, eh_proj [H, 2H], shared_head.norm, shared_head.head (copy of
  lm_head) and a full MoE decoder layer.  transformers ignores it; mtp_golden is computed here
  per deepseek-architecture.md 5.2: for j = 0..T-1, u_j = eh_proj(cat(enorm(E[t_{j+1}]),
  hnorm(h_j))) where h_j is the main model's FINAL-NORMED hidden state and t_T is the main
  model's greedy token; y = decoder_layer(u, positions 0..T-1, causal, own KV); logits =
  shared_head.head(shared_head.norm(y)).  No zeroing of the embedding at position 0.
* FP8 (DeepSeek format): per 128x128 block of [out, in] (edge blocks partial),
  scale = amax(|block|)/448, code = e4m3(w / scale) (round-to-nearest-even), stored
  `<name>_scale_inv` = scale (a multiplier); real weight = f32(code) * scale_inv.  Golden uses
  those dequantized values exactly (f64).
* Robustness: seeds are searched (deterministically) until every argmax (prompt positions and
  greedy steps) has a top1-top2 margin >= 1e-3 and every router decision (group and expert
  cut-off) has a margin >= 1e-4 in float64, the f32 run reproduces every argmax and every
  expert choice, every MoE layer routes prompt tokens to >= 3 different expert sets, the greedy
  continuation is not degenerate (>= 12 distinct ids, no run longer than 3), the last logits
  have std > 0.1, and the fixture-specific router_alternatives are non-zero.
* Dense R1-Distill models (Qwen2ForCausalLM / LlamaForCausalLM, HF 5.23): pre-norm layers,
  RMSNorm, SwiGLU MLP, GQA attention with scale head_dim^-0.5 where query head h uses kv head
  h // (n_heads / n_kv_heads) (repeat_kv), NeoX / rotate_half RoPE on halves (pair (x[j],
  x[j+d/2])), cos/sin factor 1.  Qwen2: q/k/v biases (always; no attention_bias key), added before
  RoPE; o_proj/MLP without bias; use_sliding_window false -> sliding_window/max_window_layers
  ignored.  Llama-3.1: rope_scaling rope_type llama3 remaps inv_freq (kept / smoothed / divided by
  factor by wavelength).  config.json is written in the released 4.x layout (rope_theta +
  rope_scaling, torch_dtype) and loaded back with from_pretrained (logits must be identical).
  PATCH 2/3 cover their RMSNorm and eager softmax; PATCH 7 computes their inv_freq (default and
  llama3), positions*inv_freq and cos/sin in float64 for float64 inputs.  Seeds are searched with
  the same margin / f32 / repetition / std rules, no BOS/EOS/pad id among greedy_ids, and every
  listed `alternatives` count must be non-zero.  An independent float64 reference (ref_dense_forward) must match HF to < 1e-9 both
  during the seed search and on the written folder.
* Cross-check: after writing a folder, a from-scratch float64 implementation in this file
  (ref_* functions; no transformers code) re-reads config.json and the safetensors files
  (shards, FP8 + scale_inv pairing across shards), implements deepseek-architecture.md 2-5
  directly (adjacent-pair RoPE on the raw layout, naive MLA, routers, MTP) and must reproduce
  argmax, greedy_ids, first/last logits and mtp_golden to < 1e-9 (observed ~1e-14; recorded in
  golden.json checks.independent_reference_max_abs_diff).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import time
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import transformers
from transformers import (
    DeepseekV2Config,
    DeepseekV2ForCausalLM,
    DeepseekV3Config,
    DeepseekV3ForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.models.deepseek_v2 import modeling_deepseek_v2 as hf_v2
from transformers.models.deepseek_v3 import modeling_deepseek_v3 as hf_v3
from transformers.models.llama import modeling_llama as hf_llama
from transformers.models.qwen2 import modeling_qwen2 as hf_qwen2

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")

VOCAB_SIZE = 512  # model vocab (embedding rows) for every fixture; >= tokenizer size
N_GREEDY = 24
MIN_MARGIN = 1e-3
MIN_ROUTER_MARGIN = 1e-4
PROMPT_IDS = [0, 101, 57, 302, 101, 88, 250, 57, 57, 413, 19, 160, 302, 7, 270, 88]
TEXT_PROMPT = "Hello 世界 123"

# ----------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------

# DeepSeek special tokens (U+FF5C FULLWIDTH VERTICAL LINE, U+2581 LOWER ONE EIGHTH BLOCK).
BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
PAD = "<\uff5c\u2581pad\u2581\uff5c>"
USER = "<\uff5cUser\uff5c>"
ASSISTANT = "<\uff5cAssistant\uff5c>"
CHAT_SPECIALS = [
    USER,
    ASSISTANT,
    "<think>",
    "</think>",
    "<\uff5ctool\u2581calls\u2581begin\uff5c>",
    "<\uff5ctool\u2581calls\u2581end\uff5c>",
    "<\uff5ctool\u2581call\u2581begin\uff5c>",
    "<\uff5ctool\u2581call\u2581end\uff5c>",
    "<\uff5ctool\u2581sep\uff5c>",
    "<\uff5ctool\u2581outputs\u2581begin\uff5c>",
    "<\uff5ctool\u2581outputs\u2581end\uff5c>",
    "<\uff5ctool\u2581output\u2581begin\uff5c>",
    "<\uff5ctool\u2581output\u2581end\uff5c>",
    "<\uff5cEOT\uff5c>",
]

# DeepSeek-V3's pre-tokenizer (tokenizer.json of deepseek-ai/DeepSeek-V3), verbatim.
PRETOK_DIGITS = r"\p{N}{1,3}"
PRETOK_CJK = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
PRETOK_MAIN = (
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
    "|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*"
    "|\\s*[\r\n]+"
    "|\\s+(?!\\S)"
    "|\\s+"
)

TOKENIZER_CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun.",
    "Hello world! Hello there, how are you today? I am fine, thank you.",
    "Large language models predict the next token given the previous tokens.",
    "DeepSeek uses multi-head latent attention and a mixture of experts.",
    "In the beginning the model reads the prompt, then it generates an answer.",
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "fn main() {\n    let x: u32 = 42;\n    println!(\"{}\", x + 1);\n}\n",
    "def forward(self, x):\n    return self.proj(x) * 2.0\n",
    "for i in range(10):\n    print(i, i * i)\n",
    "impl Tokenizer {\n    pub fn encode(&self, text: &str) -> Vec<u32> { todo!() }\n}\n",
    "if (a < b && c >= d) { return a + b; } else { return c - d; }",
    "import torch\nimport numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\n",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 100 123 2024 2025 31415926 1234567890",
    "The price is $12.50, up 3.5% from 2023; call 555-0199 at 10:30.",
    "我们今天学习人工智能。人工智能是计算机科学的一个分支。",
    "你好，世界！这是一个测试。模型会生成中文文本。",
    "深度求索发布了新的语言模型，模型的参数很多。",
    "こんにちは、世界。今日はいい天気ですね。",
    "カタカナとひらがなと漢字を使います。テストです。",
    "Emoji: 😀 😃 🎉 👍 🚀 ❤️ 🇯🇵 👨‍👩‍👧 ✨ 🔥",
    "   indented line\n\n\ttabbed line\r\nwindows line end\n",
    "user: what is 2 + 2?\nassistant: 2 + 2 = 4.\n",
    "<html><body><p class=\"x\">Hi</p></body></html>",
    "The the the and and of of to to in in is is it it that that",
    "Mixture-of-experts routes each token to a few experts; shared experts see all tokens.",
]


def tokenizer_training_corpus():
    # Repeat so that common pairs reach min_frequency; fixed order -> deterministic training.
    return TOKENIZER_CORPUS * 3


def build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOK_DIGITS), behavior="isolated", invert=False),
            pre_tokenizers.Split(Regex(PRETOK_CJK), behavior="isolated", invert=False),
            pre_tokenizers.Split(Regex(PRETOK_MAIN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(CHAT_SPECIALS) - 18,
        min_frequency=2,
        special_tokens=[BOS, EOS, PAD],  # ids 0, 1, 2 like DeepSeek
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_training_corpus(), trainer=trainer)
    # Chat / tool special tokens get the ids after the BPE vocab (like DeepSeek's 128xxx ids).
    tok.add_special_tokens(CHAT_SPECIALS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0",
        pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1",
        special_tokens=[(BOS, 0)],
    )
    assert tok.token_to_id(BOS) == 0 and tok.token_to_id(EOS) == 1 and tok.token_to_id(PAD) == 2
    assert tok.get_vocab_size(with_added_tokens=True) <= VOCAB_SIZE
    return tok


# R1-style chat template, written from scratch (semantics of DeepSeek-R1's template without
# tool calls): BOS + system prompts joined by "\n\n"; user turns "<｜User｜>"+content; assistant
# turns "<｜Assistant｜>" + content with everything up to the last "</think>" removed + EOS;
# generation prompt "<｜Assistant｜><think>\n".
CHAT_TEMPLATE = (
    "{%- if add_generation_prompt is not defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{%- set ns = namespace(system_prompt='', seen_system=false) %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}"
    "{%- if ns.seen_system %}{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}"
    "{%- else %}{% set ns.system_prompt = message['content'] %}{% set ns.seen_system = true %}{% endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{{- bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}"
    "{{- '" + USER + "' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{%- set content = message['content'] %}"
    "{%- if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{- '" + ASSISTANT + "' + content + '" + EOS + "' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '" + ASSISTANT + "<think>\\n' }}{% endif %}"
)

TOKENIZER_TEST_STRINGS = [
    "Hello world",
    "Hello, world! How are you?",
    "",
    " leading space",
    "trailing spaces   ",
    "multiple   spaces\tand\ttabs",
    "line one\nline two\n\n\nline five\r\nend",
    "fn main() { println!(\"hi\"); }",
    "    let mut v: Vec<u8> = Vec::new();",
    "1234567890 3.14159 -42 1e-5",
    "我们今天学习人工智能。",
    "你好世界龍鬱",
    "こんにちは、カタカナ、漢字。",
    "mixed 中文 and English 123 テスト",
    "emoji 😀🎉👍",
    "ZWJ family 👨‍👩‍👧‍👦 and flag 🇯🇵 and heart ❤️",
    BOS + "inline bos",
    USER + "What is 2+2?" + ASSISTANT + "<think>\nsimple</think>4" + EOS,
    "<\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>function<\uff5ctool\u2581sep\uff5c>get_weather",
    "special-looking but not: <|User|> <think > </ think>",
    "Ünïcödé àccents ñ ß ø",
]

CHAT_TESTS = [
    {
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi!"},
        ],
        "add_generation_prompt": True,
    },
    {
        "messages": [
            {"role": "system", "content": "Sys A."},
            {"role": "system", "content": "Sys B."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "<think>\nThe user asks a sum.\n</think>\n\n2+2 = 4."},
            {"role": "user", "content": "And 3+3?"},
        ],
        "add_generation_prompt": True,
    },
    {
        "messages": [
            {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "你好！😀"},
        ],
        "add_generation_prompt": False,
    },
]


def tokenizer_config_dict():
    def added(content):
        return {
            "__type": "AddedToken",
            "content": content,
            "lstrip": False,
            "normalized": True,
            "rstrip": False,
            "single_word": False,
        }

    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": added(BOS),  # dict form, like DeepSeek's file
        "eos_token": added(EOS),
        "pad_token": EOS,  # plain-string form on purpose (both forms occur in the wild)
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": 16384,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }


def write_tokenizer(tok, folder):
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"), pretty=True)
    write_json(os.path.join(folder, "tokenizer_config.json"), tokenizer_config_dict())


def render_chat(messages, add_generation_prompt):
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[messages],
        chat_template=CHAT_TEMPLATE,
        add_generation_prompt=add_generation_prompt,
        bos_token=BOS,
        eos_token=EOS,
    )
    return rendered[0]


def tokenizer_golden(tok):
    cases = []
    for s in TOKENIZER_TEST_STRINGS:
        with_sp = tok.encode(s, add_special_tokens=True).ids
        without = tok.encode(s, add_special_tokens=False).ids
        cases.append(
            {
                "text": s,
                "ids": with_sp,
                "ids_no_special": without,
                "decoded": tok.decode(with_sp, skip_special_tokens=False),
                "decoded_no_special": tok.decode(without, skip_special_tokens=False),
                "tokens": tok.encode(s, add_special_tokens=False).tokens,
            }
        )
    chats = []
    for c in CHAT_TESTS:
        rendered = render_chat(c["messages"], c["add_generation_prompt"])
        chats.append(
            {
                "messages": c["messages"],
                "add_generation_prompt": c["add_generation_prompt"],
                "rendered": rendered,
                "ids": tok.encode(rendered, add_special_tokens=False).ids,
            }
        )
    specials = {t: tok.token_to_id(t) for t in [BOS, EOS, PAD] + CHAT_SPECIALS}
    return {
        "vocab_size_with_added": tok.get_vocab_size(with_added_tokens=True),
        "vocab_size_without_added": tok.get_vocab_size(with_added_tokens=False),
        "special_token_ids": specials,
        "cases": cases,
        "chat": chats,
        "notes": [
            "ids: tokenizers.Tokenizer.encode(text, add_special_tokens=True).ids (post-processor "
            "prepends BOS id 0); ids_no_special: add_special_tokens=False.",
            "decoded / decoded_no_special: decode(ids, skip_special_tokens=False).",
            "Pre-tokenizer = DeepSeek-V3's Sequence[Split digits{1,3}, Split CJK runs, Split main "
            "regex, ByteLevel(use_regex=false)], byte-level BPE, byte-level decoder, empty "
            "normalizer Sequence.",
            "Added special tokens (all special=true): BOS/EOS/pad at ids 0/1/2, chat/tool tokens "
            "after the BPE vocab.  Model vocab_size is %d >= tokenizer size." % VOCAB_SIZE,
            "chat: rendered with transformers.utils.chat_template_utils.render_jinja_template "
            "(jinja2 sandbox, same settings as apply_chat_template) with bos_token/eos_token; ids "
            "= encode(rendered, add_special_tokens=False) (the template already has BOS).",
        ],
    }


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def log(*a):
    print(*a, flush=True)


def flist(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def top2_margin(logits):
    """logits [..., V] -> (argmax [...], top1 - top2 [...])"""
    v, i = torch.topk(logits, 2, dim=-1)
    return i[..., 0], v[..., 0] - v[..., 1]


# ----------------------------------------------------------------------------------------
# Patches (see module docstring).  Active for the whole run; `unpatched()` restores HF.
# ----------------------------------------------------------------------------------------

ROUTER_LOG: list | None = None  # when a list, patched routers append per-call diagnostics
_ORIG = {}


def _compute_dtype(t):
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def patched_rmsnorm_forward(self, hidden_states):  # PATCH 2
    input_dtype = hidden_states.dtype
    h = hidden_states.to(_compute_dtype(hidden_states))
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + self.variance_epsilon)
    return self.weight * h.to(input_dtype)


def make_patched_eager(orig_module):  # PATCH 3
    repeat_kv = orig_module.repeat_kv

    def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        key_states = repeat_kv(key, module.num_key_value_groups)
        value_states = repeat_kv(value, module.num_key_value_groups)
        attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = F.softmax(attn_weights, dim=-1, dtype=_compute_dtype(query)).to(query.dtype)
        attn_output = torch.matmul(attn_weights, value_states)
        attn_output = attn_output.transpose(1, 2).contiguous()
        return attn_output, attn_weights

    return eager_attention_forward


def yarn_inv_freq_f64(config):
    """HF `_compute_yarn_parameters` re-done in float64 (PATCH 5); returns (inv_freq, attention_factor)."""
    rp = config.rope_parameters
    base = rp["rope_theta"]
    dim = config.qk_rope_head_dim
    factor = rp["factor"]
    mscale, mscale_all_dim = rp.get("mscale"), rp.get("mscale_all_dim")
    orig = rp["original_max_position_embeddings"]

    def get_mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if mscale and mscale_all_dim:
        attention_factor = get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
    else:
        attention_factor = get_mscale(factor)
    beta_fast = rp.get("beta_fast") or 32
    beta_slow = rp.get("beta_slow") or 1

    def corr_dim(nrot):
        return (dim * math.log(orig / (nrot * 2 * math.pi))) / (2 * math.log(base))

    low = max(math.floor(corr_dim(beta_fast)), 0)
    high = min(math.ceil(corr_dim(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    j = torch.arange(dim // 2, dtype=torch.float64)
    ramp = torch.clamp((j - low) / (high - low), 0, 1)
    extra_factor = 1 - ramp
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    inv_extra = 1.0 / pos_freqs
    inv_inter = 1.0 / (factor * pos_freqs)
    inv = inv_inter * (1 - extra_factor) + inv_extra * extra_factor
    return inv, attention_factor


def _f64_freqs(self, x, position_ids):
    if getattr(self, "_inv_freq_f64", None) is None:
        self._inv_freq_f64, af = yarn_inv_freq_f64(self.config)
        assert abs(af - self.attention_scaling) < 1e-12
        assert torch.allclose(self._inv_freq_f64, self.inv_freq.double(), rtol=1e-6, atol=0)
    return position_ids[..., None].double() * self._inv_freq_f64.to(x.device)


def patched_v3_rotary_forward(self, x, position_ids):  # PATCH 5 (V3)
    if x.dtype != torch.float64:
        return _ORIG["v3_rotary"](self, x, position_ids)
    freqs = _f64_freqs(self, x, position_ids)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling


def patched_v2_rotary_forward(self, x, position_ids):  # PATCH 5 (V2)
    if x.dtype != torch.float64:
        return _ORIG["v2_rotary"](self, x, position_ids)
    freqs = _f64_freqs(self, x, position_ids)
    return torch.polar(torch.ones_like(freqs), freqs) * self.attention_scaling


def patched_v2_apply_rotary_emb(xq, xk, freqs_cis):  # PATCH 6
    if xq.dtype != torch.float64:
        return _ORIG["v2_apply_rotary_emb"](xq, xk, freqs_cis)
    xq_ = torch.view_as_complex(xq.reshape(*xq.shape[:-1], -1, 2).contiguous())
    xk_ = torch.view_as_complex(xk.reshape(*xk.shape[:-1], -1, 2).contiguous())
    freqs_cis = freqs_cis.unsqueeze(1).to(torch.complex128)
    xq_out = torch.view_as_real(xq_ * freqs_cis).flatten(3)
    xk_out = torch.view_as_real(xk_ * freqs_cis).flatten(3)
    return xq_out, xk_out


def dense_inv_freq_f64(config):
    """Inverse RoPE frequencies of the dense (Qwen2 / Llama) models in float64 (PATCH 7):
    HF's default `1 / theta^(2j/d)` and, for rope_type llama3, HF `_compute_llama3_parameters`
    (== Meta's `apply_scaling`), re-done in float64.  Returns (inv_freq, unscaled, branches)."""
    rp = config.rope_parameters
    base = float(rp["rope_theta"])
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    plain = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    if rp["rope_type"] == "default":
        return plain, plain, ["unscaled"] * (dim // 2)
    assert rp["rope_type"] == "llama3", rp
    factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
    old = rp["original_max_position_embeddings"]
    out, branches = [], []
    for f in plain.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < old / hi:
            out.append(f)
            branches.append("high_freq_kept")
        elif wavelen > old / lo:
            out.append(f / factor)
            branches.append("low_freq_divided_by_factor")
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append((1 - smooth) * f / factor + smooth * f)
            branches.append("medium_smoothed")
    return torch.tensor(out, dtype=torch.float64), plain, branches


def make_patched_dense_rotary(key):  # PATCH 7 (Qwen2 / Llama rotary embedding)
    def forward(self, x, position_ids):
        if x.dtype != torch.float64:
            return _ORIG[key](self, x, position_ids)
        if getattr(self, "_inv_freq_f64", None) is None:
            self._inv_freq_f64 = dense_inv_freq_f64(self.config)[0]
            assert self.attention_scaling == 1.0
            assert torch.allclose(self._inv_freq_f64, self.inv_freq.double(), rtol=1e-6, atol=0)
        freqs = position_ids[..., None].double() * self._inv_freq_f64.to(x.device)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling

    return forward


def _gap(sorted_desc, k):
    """sorted_desc [N, M]: margin between the k-th and (k+1)-th largest (k is 1-based count)."""
    if sorted_desc.shape[-1] <= k:
        return torch.full(sorted_desc.shape[:-1], float("inf"), dtype=sorted_desc.dtype)
    return sorted_desc[:, k - 1] - sorted_desc[:, k]


def _select(scores_for_choice, group_scores, n_group, topk_group, top_k, fill):
    n_exp = scores_for_choice.shape[-1]
    # sorted=False exactly like HF, so that f32 results are bit-identical to HF's router
    group_idx = torch.topk(group_scores, k=topk_group, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores)
    group_mask.scatter_(1, group_idx, 1)
    score_mask = group_mask.unsqueeze(-1).expand(-1, n_group, n_exp // n_group).reshape(-1, n_exp)
    masked = scores_for_choice.masked_fill(~score_mask.bool(), fill)
    return torch.topk(masked, k=top_k, dim=-1, sorted=False)[1], masked


def _sets(idx):
    return [tuple(sorted(r)) for r in idx.tolist()]


def patched_v3_router_forward(self, hidden_states):  # PATCH 4 (+ diagnostics)
    hidden_states = hidden_states.view(-1, self.hidden_dim)
    ct = _compute_dtype(hidden_states)
    router_logits = F.linear(hidden_states.to(ct), self.weight.to(ct))
    scores = router_logits.sigmoid()
    sfc = scores + self.e_score_correction_bias.to(ct)
    G, per = self.num_group, self.num_experts // self.num_group
    group_scores = sfc.view(-1, G, per).topk(2, dim=-1)[0].sum(dim=-1)
    topk_indices, masked = _select(sfc, group_scores, G, self.topk_group, self.top_k, float("-inf"))
    topk_weights = scores.gather(1, topk_indices)
    if self.norm_topk_prob:
        topk_weights = topk_weights / (topk_weights.sum(dim=-1, keepdim=True) + 1e-20)
    topk_weights = topk_weights * self.routed_scaling_factor
    if ROUTER_LOG is not None:
        with torch.no_grad():
            gsorted = group_scores.sort(dim=-1, descending=True)[0]
            esorted = masked.sort(dim=-1, descending=True)[0]
            margin = torch.minimum(_gap(gsorted, self.topk_group), _gap(esorted, self.top_k))
            main = _sets(topk_indices)
            alts = {
                "mask_fill_0.0_instead_of_-inf": _select(sfc, group_scores, G, self.topk_group, self.top_k, 0.0)[0],
                "group_score_max": _select(sfc, sfc.view(-1, G, per).max(-1)[0], G, self.topk_group, self.top_k, float("-inf"))[0],
                "group_score_sum_all": _select(sfc, sfc.view(-1, G, per).sum(-1), G, self.topk_group, self.top_k, float("-inf"))[0],
                "no_group_limit": torch.topk(sfc, self.top_k, dim=-1)[1],
                "select_by_unbiased_scores": _select(
                    scores, scores.view(-1, G, per).topk(2, dim=-1)[0].sum(-1), G, self.topk_group, self.top_k, float("-inf")
                )[0],
            }
            ROUTER_LOG.append(
                {
                    "layer": self._layer_idx,
                    "experts": main,
                    "idx": topk_indices,
                    "weights": topk_weights,
                    "margin": margin,
                    "alts": {k: [a != b for a, b in zip(main, _sets(v))] for k, v in alts.items()},
                }
            )
    return router_logits, topk_weights, topk_indices


def patched_v2_router_forward(self, hidden_states):  # PATCH 1 + PATCH 4 (+ diagnostics)
    hidden_states = hidden_states.view(-1, self.hidden_dim)
    ct = _compute_dtype(hidden_states)
    router_logits = F.linear(hidden_states.to(ct), self.weight.to(ct))
    scores = router_logits.softmax(dim=-1, dtype=ct)
    G = self.num_group
    if self.topk_method == "greedy":
        topk_weights, topk_indices = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        masked = scores
        gmargin = torch.full(scores.shape[:1], float("inf"), dtype=ct)
    elif self.topk_method == "group_limited_greedy":
        per = self.num_experts // G
        group_scores = scores.view(-1, G, per).max(dim=-1).values
        topk_indices, masked = _select(scores, group_scores, G, self.topk_group, self.top_k, float("-inf"))
        topk_weights = scores.gather(1, topk_indices)
        gmargin = _gap(group_scores.sort(dim=-1, descending=True)[0], self.topk_group)
    else:
        raise ValueError(self.topk_method)
    topk_weights = topk_weights * self.routed_scaling_factor
    if ROUTER_LOG is not None:
        with torch.no_grad():
            esorted = masked.sort(dim=-1, descending=True)[0]
            margin = torch.minimum(gmargin, _gap(esorted, self.top_k))
            main = _sets(topk_indices)
            alts = {}
            if self.topk_method == "group_limited_greedy":
                per = self.num_experts // G
                alts["no_group_limit"] = torch.topk(scores, self.top_k, dim=-1)[1]
                alts["group_score_top2_sum"] = _select(
                    scores, scores.view(-1, G, per).topk(2, dim=-1)[0].sum(-1), G, self.topk_group, self.top_k, float("-inf")
                )[0]
            ROUTER_LOG.append(
                {
                    "layer": self._layer_idx,
                    "experts": main,
                    "idx": topk_indices,
                    "weights": topk_weights,
                    "margin": margin,
                    "alts": {k: [a != b for a, b in zip(main, _sets(v))] for k, v in alts.items()},
                }
            )
    return router_logits, topk_weights, topk_indices


def install_patches():
    _ORIG.update(
        v3_norm=hf_v3.DeepseekV3RMSNorm.forward,
        v2_norm=hf_v2.DeepseekV2RMSNorm.forward,
        v3_eager=hf_v3.eager_attention_forward,
        v2_eager=hf_v2.eager_attention_forward,
        v3_router=hf_v3.DeepseekV3TopkRouter.forward,
        v2_router=hf_v2.DeepseekV2TopkRouter.forward,
        v3_rotary=hf_v3.DeepseekV3RotaryEmbedding.forward,
        v2_rotary=hf_v2.DeepseekV2RotaryEmbedding.forward,
        v2_apply_rotary_emb=hf_v2.apply_rotary_emb,
        qwen2_norm=hf_qwen2.Qwen2RMSNorm.forward,
        llama_norm=hf_llama.LlamaRMSNorm.forward,
        qwen2_eager=hf_qwen2.eager_attention_forward,
        llama_eager=hf_llama.eager_attention_forward,
        qwen2_rotary=hf_qwen2.Qwen2RotaryEmbedding.forward,
        llama_rotary=hf_llama.LlamaRotaryEmbedding.forward,
    )
    _set_patches(True)


def _set_patches(on):
    hf_v3.DeepseekV3RMSNorm.forward = patched_rmsnorm_forward if on else _ORIG["v3_norm"]
    hf_v2.DeepseekV2RMSNorm.forward = patched_rmsnorm_forward if on else _ORIG["v2_norm"]
    hf_v3.eager_attention_forward = make_patched_eager(hf_v3) if on else _ORIG["v3_eager"]
    hf_v2.eager_attention_forward = make_patched_eager(hf_v2) if on else _ORIG["v2_eager"]
    hf_v3.DeepseekV3TopkRouter.forward = patched_v3_router_forward if on else _ORIG["v3_router"]
    hf_v2.DeepseekV2TopkRouter.forward = patched_v2_router_forward if on else _ORIG["v2_router"]
    hf_v3.DeepseekV3RotaryEmbedding.forward = patched_v3_rotary_forward if on else _ORIG["v3_rotary"]
    hf_v2.DeepseekV2RotaryEmbedding.forward = patched_v2_rotary_forward if on else _ORIG["v2_rotary"]
    hf_v2.apply_rotary_emb = patched_v2_apply_rotary_emb if on else _ORIG["v2_apply_rotary_emb"]
    # dense R1-Distill architectures (PATCH 2, 3, 7)
    hf_qwen2.Qwen2RMSNorm.forward = patched_rmsnorm_forward if on else _ORIG["qwen2_norm"]
    hf_llama.LlamaRMSNorm.forward = patched_rmsnorm_forward if on else _ORIG["llama_norm"]
    hf_qwen2.eager_attention_forward = make_patched_eager(hf_qwen2) if on else _ORIG["qwen2_eager"]
    hf_llama.eager_attention_forward = make_patched_eager(hf_llama) if on else _ORIG["llama_eager"]
    hf_qwen2.Qwen2RotaryEmbedding.forward = make_patched_dense_rotary("qwen2_rotary") if on else _ORIG["qwen2_rotary"]
    hf_llama.LlamaRotaryEmbedding.forward = make_patched_dense_rotary("llama_rotary") if on else _ORIG["llama_rotary"]


@contextmanager
def unpatched():
    _set_patches(False)
    try:
        yield
    finally:
        _set_patches(True)


@contextmanager
def router_log():
    global ROUTER_LOG
    ROUTER_LOG = []
    try:
        yield ROUTER_LOG
    finally:
        ROUTER_LOG = None


# ----------------------------------------------------------------------------------------
# Random checkpoint tensors (checkpoint naming, float32 masters)
# ----------------------------------------------------------------------------------------


class WeightGen:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def linear(self, out_f, in_f, gain=1.0):
        return (self.rng.standard_normal((out_f, in_f)) * (gain / math.sqrt(in_f))).astype(np.float32)

    def norm(self, n, noise=0.1):
        return (1.0 + noise * self.rng.standard_normal(n)).astype(np.float32)

    def normal(self, shape, std):
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def uniform(self, shape, lo, hi):
        return self.rng.uniform(lo, hi, shape).astype(np.float32)


def attn_tensors(g, p, s):
    H, nh = s["hidden"], s["heads"]
    qk = s["qk_nope"] + s["qk_rope"]
    t = {}
    if s["q_lora"]:
        t[p + "self_attn.q_a_proj.weight"] = g.linear(s["q_lora"], H)
        t[p + "self_attn.q_a_layernorm.weight"] = g.norm(s["q_lora"])
        t[p + "self_attn.q_b_proj.weight"] = g.linear(nh * qk, s["q_lora"])
    else:
        t[p + "self_attn.q_proj.weight"] = g.linear(nh * qk, H)
    t[p + "self_attn.kv_a_proj_with_mqa.weight"] = g.linear(s["kv_lora"] + s["qk_rope"], H)
    t[p + "self_attn.kv_a_layernorm.weight"] = g.norm(s["kv_lora"])
    t[p + "self_attn.kv_b_proj.weight"] = g.linear(nh * (s["qk_nope"] + s["v_head"]), s["kv_lora"])
    t[p + "self_attn.o_proj.weight"] = g.linear(H, nh * s["v_head"], gain=s["o_gain"])
    return t


def mlp_tensors(g, p, H, inter, down_gain):
    return {
        p + "gate_proj.weight": g.linear(inter, H),
        p + "up_proj.weight": g.linear(inter, H),
        p + "down_proj.weight": g.linear(H, inter, gain=down_gain),
    }


def layer_tensors(g, i, s):
    p = f"model.layers.{i}."
    H = s["hidden"]
    t = {p + "input_layernorm.weight": g.norm(H)}
    t.update(attn_tensors(g, p, s))
    t[p + "post_attention_layernorm.weight"] = g.norm(H)
    if i < s["first_dense"]:
        t.update(mlp_tensors(g, p + "mlp.", H, s["inter"], s["dense_down_gain"]))
    else:
        E = s["experts"]
        t[p + "mlp.gate.weight"] = g.linear(E, H, gain=s["router_gain"])
        if s["version"] == 3:
            t[p + "mlp.gate.e_score_correction_bias"] = g.uniform(E, *s["bias_range"])
        for e in range(E):
            t.update(mlp_tensors(g, p + f"mlp.experts.{e}.", H, s["moe_inter"], s["expert_down_gain"]))
        t.update(mlp_tensors(g, p + "mlp.shared_experts.", H, s["moe_inter"] * s["shared"], s["shared_down_gain"]))
    return t


def checkpoint_tensors(seed, s):
    """All tensors of the checkpoint (float32 masters, checkpoint names, insertion order)."""
    g = WeightGen(seed)
    H, V = s["hidden"], VOCAB_SIZE
    t = {"model.embed_tokens.weight": g.normal((V, H), 1.0)}
    for i in range(s["layers"]):
        t.update(layer_tensors(g, i, s))
    t["model.norm.weight"] = g.norm(H)
    t["lm_head.weight"] = g.linear(V, H, gain=s["lm_head_gain"])
    if s.get("mtp"):
        L = s["layers"]
        p = f"model.layers.{L}."
        t[p + "embed_tokens.weight"] = t["model.embed_tokens.weight"].copy()
        t[p + "enorm.weight"] = g.norm(H)
        t[p + "hnorm.weight"] = g.norm(H)
        t[p + "eh_proj.weight"] = g.linear(H, 2 * H)
        t.update(layer_tensors(g, L, dict(s, first_dense=0)))
        t[p + "shared_head.norm.weight"] = g.norm(H)
        t[p + "shared_head.head.weight"] = t["lm_head.weight"].copy()
    return t


FP8_LINEAR_SUFFIXES = (
    "self_attn.q_a_proj.weight",
    "self_attn.q_b_proj.weight",
    "self_attn.q_proj.weight",
    "self_attn.kv_a_proj_with_mqa.weight",
    "self_attn.kv_b_proj.weight",
    "self_attn.o_proj.weight",
    "gate_proj.weight",
    "up_proj.weight",
    "down_proj.weight",
)


def fp8_quantize(w):
    """DeepSeek block FP8: returns (code e4m3 [o,i], scale_inv f32 [ceil(o/128), ceil(i/128)])."""
    w = torch.from_numpy(w).to(torch.float32)
    o, i = w.shape
    bo, bi = -(-o // 128), -(-i // 128)
    padded = torch.zeros(bo * 128, bi * 128, dtype=torch.float32)
    padded[:o, :i] = w
    blocks = padded.view(bo, 128, bi, 128)
    amax = blocks.abs().amax(dim=(1, 3))  # zero padding does not change amax
    scale = (amax / 448.0).clamp(min=1e-12).to(torch.float32)
    q = (blocks / scale[:, None, :, None]).to(torch.float8_e4m3fn)
    code = q.view(bo * 128, bi * 128)[:o, :i].contiguous()
    return code, scale


def fp8_dequant_f64(code, scale_inv):
    o, i = code.shape
    s = scale_inv.to(torch.float64).repeat_interleave(128, 0).repeat_interleave(128, 1)[:o, :i]
    return code.to(torch.float64) * s


def store(tensors, storage):
    """-> (stored: name -> torch tensor as written, effective: name -> float64 value it represents)."""
    stored, effective = {}, {}
    for name, w in tensors.items():
        if name.endswith("e_score_correction_bias"):
            stored[name] = torch.from_numpy(w).to(torch.float32)
            effective[name] = stored[name].double()
            continue
        if storage == "fp8" and name.endswith(FP8_LINEAR_SUFFIXES):
            code, scale_inv = fp8_quantize(w)
            stored[name] = code
            stored[name + "_scale_inv"] = scale_inv
            effective[name] = fp8_dequant_f64(code, scale_inv)
            continue
        dt = {"bf16": torch.bfloat16, "fp8": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[storage]
        stored[name] = torch.from_numpy(w).to(dt)
        effective[name] = stored[name].double()
    return stored, effective


def hf_state_dict(effective, num_layers, dtype):
    """Checkpoint names -> transformers 5.x parameter names (experts fused), MTP dropped."""
    sd, experts = {}, {}
    for name, v in effective.items():
        parts = name.split(".")
        if parts[1] == "layers" and int(parts[2]) >= num_layers:
            continue
        if ".mlp.experts." in name:
            pre, rest = name.split(".mlp.experts.")
            e, proj = rest.split(".")[:2]
            experts.setdefault(pre, {}).setdefault(int(e), {})[proj] = v
            continue
        sd[name] = v.to(dtype)
    for pre, ex in experts.items():
        ids = sorted(ex)
        sd[pre + ".mlp.experts.gate_up_proj"] = torch.stack(
            [torch.cat([ex[e]["gate_proj"], ex[e]["up_proj"]], 0) for e in ids]
        ).to(dtype)
        sd[pre + ".mlp.experts.down_proj"] = torch.stack([ex[e]["down_proj"] for e in ids]).to(dtype)
    return sd


# ----------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------


def rope_scaling_dict(s):
    return {
        "type": "yarn",
        "factor": s["rope_factor"],
        "original_max_position_embeddings": s["rope_orig"],
        "beta_fast": 32,
        "beta_slow": 1,
        "mscale": s["mscale"],
        "mscale_all_dim": s["mscale_all_dim"],
    }


def make_config(s, attn="eager"):
    common = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=s["hidden"],
        intermediate_size=s["inter"],
        moe_intermediate_size=s["moe_inter"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["heads"],
        n_shared_experts=s["shared"],
        n_routed_experts=s["experts"],
        routed_scaling_factor=s["rsf"],
        kv_lora_rank=s["kv_lora"],
        q_lora_rank=s["q_lora"],
        qk_rope_head_dim=s["qk_rope"],
        qk_nope_head_dim=s["qk_nope"],
        v_head_dim=s["v_head"],
        n_group=s["n_group"],
        topk_group=s["topk_group"],
        num_experts_per_tok=s["top_k"],
        first_k_dense_replace=s["first_dense"],
        norm_topk_prob=s["norm_topk"],
        hidden_act="silu",
        max_position_embeddings=int(s["rope_factor"] * s["rope_orig"]),
        rms_norm_eps=1e-6,
        bos_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
        rope_theta=10000.0,
        rope_scaling=rope_scaling_dict(s),
        attention_bias=False,
        attn_implementation=attn,
        experts_implementation="eager",
    )
    if s["version"] == 3:
        cfg = DeepseekV3Config(architectures=["DeepseekV3ForCausalLM"], num_nextn_predict_layers=1 if s.get("mtp") else 0, **common)
    else:
        cfg = DeepseekV2Config(architectures=["DeepseekV2ForCausalLM"], topk_method=s["topk_method"], **common)
    return cfg


def config_json(cfg, s):
    """config.json content.  legacy: DeepSeek's released format (rope_theta + rope_scaling, no
    HF-derived head_dim/qk_head_dim); hf5: exactly what transformers 5.23 save_pretrained writes."""
    d = json.loads(cfg.to_json_string())  # what save_pretrained writes
    for k in list(d):
        if k.startswith("_") or k in ("attn_implementation", "experts_implementation"):
            d.pop(k)
    if s["config_format"] == "legacy":
        rp = d.pop("rope_parameters")
        d["rope_theta"] = rp["rope_theta"]
        d["rope_scaling"] = rope_scaling_dict(s)
        for k in ("head_dim", "qk_head_dim", "rope_interleave"):
            d.pop(k, None)
        d["torch_dtype"] = s["torch_dtype"]
        # fields DeepSeek's released config.json files carry but transformers 5 does not write
        d["scoring_func"] = "sigmoid" if s["version"] == 3 else "softmax"
        d["topk_method"] = "noaux_tc" if s["version"] == 3 else s["topk_method"]
        d["moe_layer_freq"] = 1
        d["ep_size"] = 1
        d["aux_loss_alpha"] = 0.001
        d["seq_aux"] = True
    else:
        d["dtype"] = s["torch_dtype"]
    if s.get("fp8"):
        d["quantization_config"] = {
            "activation_scheme": "dynamic",
            "fmt": "e4m3",
            "quant_method": "fp8",
            "weight_block_size": [128, 128],
        }
    return dict(sorted(d.items()))


# ----------------------------------------------------------------------------------------
# Running the HF model
# ----------------------------------------------------------------------------------------


def build_model(s, effective, dtype):
    cfg = make_config(s)
    cls = DeepseekV3ForCausalLM if s["version"] == 3 else DeepseekV2ForCausalLM
    torch.manual_seed(0)
    model = cls(cfg).to(dtype).eval()
    model.load_state_dict(hf_state_dict(effective, s["layers"], dtype), strict=True)
    for i, layer in enumerate(model.model.layers):
        if hasattr(layer.mlp, "gate"):
            layer.mlp.gate._layer_idx = i
    return model


@torch.no_grad()
def logits_of(model, ids):
    return model(torch.tensor([ids]), use_cache=False).logits[0]


@torch.no_grad()
def greedy(model, prompt, n):
    seq = list(prompt)
    for _ in range(n):
        seq.append(int(logits_of(model, seq)[-1].argmax()))
    return seq[len(prompt):]


class MTPModule(torch.nn.Module):
    """deepseek-architecture.md 5.2, built from HF building blocks."""

    def __init__(self, s, cfg, effective, dtype):
        super().__init__()
        L, H = s["layers"], s["hidden"]
        p = f"model.layers.{L}."
        norm_cls = hf_v3.DeepseekV3RMSNorm
        self.embed = effective[p + "embed_tokens.weight"].to(dtype)
        self.enorm = norm_cls(H, eps=cfg.rms_norm_eps)
        self.hnorm = norm_cls(H, eps=cfg.rms_norm_eps)
        self.head_norm = norm_cls(H, eps=cfg.rms_norm_eps)
        self.eh_proj = effective[p + "eh_proj.weight"].to(dtype)
        self.head = effective[p + "shared_head.head.weight"].to(dtype)
        self.enorm.weight.data = effective[p + "enorm.weight"].to(dtype)
        self.hnorm.weight.data = effective[p + "hnorm.weight"].to(dtype)
        self.head_norm.weight.data = effective[p + "shared_head.norm.weight"].to(dtype)
        self.layer = hf_v3.DeepseekV3DecoderLayer(cfg, layer_idx=L).to(dtype).eval()
        # load the decoder-layer part: rename model.layers.L.* -> model.layers.0.*, fuse experts
        sub = {}
        for k, v in effective.items():
            if k.startswith(p) and not k[len(p):].startswith(("embed_tokens", "enorm", "hnorm", "eh_proj", "shared_head")):
                sub["model.layers.0." + k[len(p):]] = v
        sd = hf_state_dict(sub, 1, dtype)
        self.layer.load_state_dict({k[len("model.layers.0."):]: v for k, v in sd.items()}, strict=True)
        self.layer.mlp.gate._layer_idx = L
        self.dtype = dtype

    @torch.no_grad()
    def forward(self, main_model, ids, next_token):
        h = main_model.model(torch.tensor([ids]), use_cache=False).last_hidden_state  # final-normed
        shifted = torch.tensor([ids[1:] + [next_token]])
        e = self.embed[shifted]
        u = F.linear(torch.cat([self.enorm(e), self.hnorm(h)], dim=-1), self.eh_proj)
        T = len(ids)
        pos = torch.arange(T)[None]
        cos_sin = main_model.model.rotary_emb(u, pos)
        mask = torch.full((T, T), float("-inf"), dtype=self.dtype).triu(1)[None, None]
        y = self.layer(u, attention_mask=mask, position_ids=pos, position_embeddings=cos_sin, use_cache=False)
        return F.linear(self.head_norm(y), self.head)[0], shifted[0].tolist()


def summarize_routing(log, n_positions):
    """Router log of ONE forward -> per-layer routing for the first n_positions positions."""
    out = []
    for rec in log:
        experts, weights = [], []
        for r in range(n_positions):
            idx = rec["idx"][r].tolist()
            w = rec["weights"][r].tolist()
            order = sorted(range(len(idx)), key=lambda j: idx[j])
            experts.append([idx[j] for j in order])
            weights.append([float(w[j]) for j in order])
        out.append({"layer": rec["layer"], "experts": experts, "weights": weights})
    return out


def evaluate(s, effective, check_alts):
    """Build f64 + f32 models, greedy-decode, compute all robustness metrics.
    Returns (ok, reasons, result dict)."""
    reasons = []
    m64 = build_model(s, effective, torch.float64)
    m32 = build_model(s, effective, torch.float32)
    prompt = PROMPT_IDS
    T = len(prompt)
    greedy_ids = greedy(m64, prompt, N_GREEDY)
    full = prompt + greedy_ids[:-1]  # every position whose argmax matters
    with router_log() as log64:
        l64 = logits_of(m64, full)
    with router_log() as log32:
        l32 = logits_of(m32, full).double()
    am, margins = top2_margin(l64)
    assert am[T - 1:].tolist() == greedy_ids
    min_margin = float(margins.min())
    if min_margin < MIN_MARGIN:
        reasons.append(f"logit margin {min_margin:.2e}")
    if l32.argmax(-1).tolist() != am.tolist():
        reasons.append("f32 argmax differs")
    diff = float((l32 - l64).abs().max())
    min_router_margin = math.inf
    alt_counts = {}
    for r64, r32 in zip(log64, log32):
        min_router_margin = min(min_router_margin, float(r64["margin"].min()))
        if r64["experts"] != r32["experts"]:
            reasons.append(f"f32 routing differs in layer {r64['layer']}")
        for k, v in r64["alts"].items():
            alt_counts[k] = alt_counts.get(k, 0) + sum(v)
    if min_router_margin < MIN_ROUTER_MARGIN:
        reasons.append(f"router margin {min_router_margin:.2e}")
    routing = summarize_routing(log64, T)
    for rt in routing:
        if len({tuple(e) for e in rt["experts"]}) < 3:
            reasons.append(f"layer {rt['layer']} routes too uniformly")
    for k in check_alts:
        if alt_counts.get(k, 0) == 0:
            reasons.append(f"alternative '{k}' never differs")
    longest_run = max(sum(1 for _ in grp) for _, grp in itertools.groupby(greedy_ids))
    if len(set(greedy_ids)) < 12 or longest_run > 3:
        reasons.append(f"greedy continuation too repetitive ({len(set(greedy_ids))} distinct, run {longest_run})")
    std = float(l64[T - 1].std())
    if std < 0.1:
        reasons.append(f"last logits std {std}")
    res = dict(
        m64=m64, m32=m32, l64=l64, l32=l32, greedy_ids=greedy_ids, argmax=am[:T].tolist(), min_margin=min_margin,
        diff=diff, min_router_margin=min_router_margin, alt_counts=alt_counts, routing=routing, std=std,
    )
    return not reasons, reasons, res


def search_seed(s, base_seed, check_alts=(), max_tries=60):
    for attempt in range(max_tries):
        seed = base_seed + attempt
        tensors = checkpoint_tensors(seed, s)
        stored, effective = store(tensors, s["storage"])
        ok, reasons, res = evaluate(s, effective, check_alts)
        if ok:
            log(f"  seed {seed} ok (after {attempt} rejected)")
            return seed, stored, effective, res
        log(f"  seed {seed} rejected: {'; '.join(reasons)}")
    raise RuntimeError(f"no acceptable seed for {s['name']}")


# ----------------------------------------------------------------------------------------
# Independent float64 reference (no transformers code): reads the WRITTEN folder (config.json,
# safetensors shards / index, FP8 pairing) and implements deepseek-architecture.md 2-5 directly,
# the way the Rust engine has to.  Used only as a cross-check of the HF goldens.
# ----------------------------------------------------------------------------------------


def ref_load_folder(folder):
    from safetensors import safe_open

    cfg = json.load(open(os.path.join(folder, "config.json")))
    idx_path = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(idx_path):
        files = sorted(set(json.load(open(idx_path))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    raw = {}
    for fn in files:
        with safe_open(os.path.join(folder, fn), framework="pt") as f:
            for k in f.keys():
                raw[k] = f.get_tensor(k)
    W = {}
    for k, t in raw.items():
        if k.endswith("_scale_inv"):
            continue
        if t.dtype == torch.float8_e4m3fn:
            si = raw[k + "_scale_inv"].to(torch.float64)
            o, i = t.shape
            assert si.shape == (-(-o // 128), -(-i // 128))
            W[k] = t.to(torch.float64) * si.repeat_interleave(128, 0)[:o].repeat_interleave(128, 1)[:, :i]
        else:
            W[k] = t.to(torch.float64)
    return cfg, W


def ref_rope_params(cfg):
    rs = cfg.get("rope_scaling") or cfg.get("rope_parameters")
    theta = cfg.get("rope_theta", rs.get("rope_theta"))
    dim = cfg["qk_rope_head_dim"]
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    factor, orig = rs["factor"], rs["original_max_position_embeddings"]

    def corr(nrot):
        return dim * math.log(orig / (nrot * 2 * math.pi)) / (2 * math.log(theta))

    low, high = max(math.floor(corr(rs["beta_fast"])), 0), min(math.ceil(corr(rs["beta_slow"])), dim - 1)
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low if high > low else 0.001)).clamp(0, 1)
    smooth = 1 - ramp
    freqs = freqs / factor * (1 - smooth) + freqs * smooth

    def mscale(x):
        return 0.1 * x * math.log(factor) + 1.0 if factor > 1 else 1.0

    m = mscale(rs["mscale_all_dim"])
    scale = (cfg["qk_nope_head_dim"] + dim) ** -0.5 * m * m
    return freqs, mscale(rs["mscale"]) / m, scale


def ref_rms(x, w, eps):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def ref_rope(x, pos, freqs, factor):
    """x [T, ..., d] raw layout: rotate adjacent pairs (x[2j], x[2j+1]) by pos*freqs[j]."""
    ang = pos[:, None].to(torch.float64) * freqs[None]  # [T, d/2]
    shape = [x.shape[0]] + [1] * (x.dim() - 2) + [freqs.shape[0]]
    c, s_ = (torch.cos(ang) * factor).view(shape), (torch.sin(ang) * factor).view(shape)
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * c - b * s_
    out[..., 1::2] = a * s_ + b * c
    return out


def ref_mlp(W, p, x):
    g, u = x @ W[p + "gate_proj.weight"].T, x @ W[p + "up_proj.weight"].T
    return (g * torch.sigmoid(g) * u) @ W[p + "down_proj.weight"].T


def ref_moe(cfg, W, p, x):
    E, k = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    G, TG = cfg.get("n_group") or 1, cfg.get("topk_group") or 1
    logits = x @ W[p + "gate.weight"].T
    out = ref_mlp(W, p + "shared_experts.", x)
    v3 = cfg["model_type"] == "deepseek_v3"
    for t in range(x.shape[0]):
        if v3:
            sc = torch.sigmoid(logits[t])
            sb = sc + W[p + "gate.e_score_correction_bias"]
            gs = [sorted(sb[g * E // G:(g + 1) * E // G].tolist(), reverse=True)[:2] for g in range(G)]
            gs = torch.tensor([sum(v) for v in gs])
        else:
            sc = torch.softmax(logits[t], -1)
            sb = sc
            gs = sb.view(G, -1).max(-1).values
        keep = set(torch.topk(gs, TG).indices.tolist())
        if not v3 and cfg.get("topk_method", "greedy") == "greedy":
            keep = set(range(G))
        cand = torch.tensor([sb[e] if e // (E // G) in keep else -math.inf for e in range(E)], dtype=torch.float64)
        sel = torch.topk(cand, k).indices.tolist()
        w = sc[sel]
        if v3 and cfg.get("norm_topk_prob"):
            w = w / (w.sum() + 1e-20)
        w = w * cfg["routed_scaling_factor"]
        for wi, e in zip(w, sel):
            out[t] += wi * ref_mlp(W, p + f"experts.{e}.", x[t:t + 1])[0]
    return out


def ref_layer(cfg, W, p, x, rope, dense):
    freqs, factor, scale = rope
    T = x.shape[0]
    eps = cfg["rms_norm_eps"]
    nh, dn, dr, dv, dc = (cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"],
                          cfg["v_head_dim"], cfg["kv_lora_rank"])
    pos = torch.arange(T)
    a = ref_rms(x, W[p + "input_layernorm.weight"], eps)
    if cfg.get("q_lora_rank"):
        q = ref_rms(a @ W[p + "self_attn.q_a_proj.weight"].T, W[p + "self_attn.q_a_layernorm.weight"], eps)
        q = q @ W[p + "self_attn.q_b_proj.weight"].T
    else:
        q = a @ W[p + "self_attn.q_proj.weight"].T
    q = q.view(T, nh, dn + dr)
    q_nope, q_pe = q[..., :dn], ref_rope(q[..., dn:], pos, freqs, factor)
    kv = a @ W[p + "self_attn.kv_a_proj_with_mqa.weight"].T
    c = ref_rms(kv[:, :dc], W[p + "self_attn.kv_a_layernorm.weight"], eps)
    k_pe = ref_rope(kv[:, dc:], pos, freqs, factor)  # [T, dr], shared by all heads
    kvb = (c @ W[p + "self_attn.kv_b_proj.weight"].T).view(T, nh, dn + dv)
    k_nope, v = kvb[..., :dn], kvb[..., dn:]
    scores = (torch.einsum("thd,shd->hts", q_nope, k_nope) + torch.einsum("thd,sd->hts", q_pe, k_pe)) * scale
    scores = scores + torch.full((T, T), -math.inf, dtype=torch.float64).triu(1)
    o = torch.einsum("hts,shd->thd", torch.softmax(scores, -1), v).reshape(T, nh * dv)
    x = x + o @ W[p + "self_attn.o_proj.weight"].T
    f = ref_rms(x, W[p + "post_attention_layernorm.weight"], eps)
    return x + (ref_mlp(W, p + "mlp.", f) if dense else ref_moe(cfg, W, p + "mlp.", f))


def ref_forward(cfg, W, ids):
    rope = ref_rope_params(cfg)
    x = W["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        x = ref_layer(cfg, W, f"model.layers.{l}.", x, rope, l < cfg["first_k_dense_replace"])
    h = ref_rms(x, W["model.norm.weight"], cfg["rms_norm_eps"])
    return h @ W["lm_head.weight"].T, h


def ref_mtp(cfg, W, ids, next_token, h):
    L = cfg["num_hidden_layers"]
    p = f"model.layers.{L}."
    eps = cfg["rms_norm_eps"]
    e = W[p + "embed_tokens.weight"][ids[1:] + [next_token]]
    u = torch.cat([ref_rms(e, W[p + "enorm.weight"], eps), ref_rms(h, W[p + "hnorm.weight"], eps)], -1)
    u = u @ W[p + "eh_proj.weight"].T
    y = ref_layer(cfg, W, p, u, ref_rope_params(cfg), dense=False)
    return ref_rms(y, W[p + "shared_head.norm.weight"], eps) @ W[p + "shared_head.head.weight"].T


def reference_check(folder, golden):
    cfg, W = ref_load_folder(folder)
    seq = golden["prompt_ids"] + golden["greedy_ids"][:-1]
    T = len(golden["prompt_ids"])
    logits, h = ref_forward(cfg, W, seq)
    assert logits.argmax(-1)[:T].tolist() == golden["argmax"]
    assert logits.argmax(-1)[T - 1:].tolist() == golden["greedy_ids"]
    d = float((logits[T - 1] - torch.tensor(golden["last_logits"], dtype=torch.float64)).abs().max())
    d = max(d, float((logits[0] - torch.tensor(golden["first_logits"], dtype=torch.float64)).abs().max()))
    if "mtp_golden" in golden:
        mg = golden["mtp_golden"]
        ml = ref_mtp(cfg, W, golden["prompt_ids"], golden["greedy_ids"][0], h[:T])
        assert ml.argmax(-1).tolist() == mg["argmax"]
        d = max(d, float((ml[-1] - torch.tensor(mg["last_logits"], dtype=torch.float64)).abs().max()))
    return d


# ----------------------------------------------------------------------------------------
# Writing a fixture
# ----------------------------------------------------------------------------------------


def write_weights(folder, stored, s):
    if not s.get("shards"):
        save_file(stored, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        return ["model.safetensors"]
    assign = s["shards"](list(stored))
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map, total = {}, 0
    for k, fname in enumerate(names):
        part = {n: t for n, t in stored.items() if assign[n] == k}
        save_file(part, os.path.join(folder, fname), metadata={"format": "pt"})
        for n, t in part.items():
            weight_map[n] = fname
            total += t.numel() * t.element_size()
    write_json(
        os.path.join(folder, "model.safetensors.index.json"),
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
    )
    return names + ["model.safetensors.index.json"]


def print_routing(routing):
    for rt in routing:
        log(f"  layer {rt['layer']} experts per position: " + " ".join("".join(f"{e:x}" for e in ex) for ex in rt["experts"]))


def derived_info(model, s):
    att = model.model.layers[0].self_attn
    inv, af = yarn_inv_freq_f64(model.config)
    m = 0.1 * s["mscale_all_dim"] * math.log(s["rope_factor"]) + 1.0 if s["rope_factor"] > 1 else 1.0
    expected_scale = (s["qk_nope"] + s["qk_rope"]) ** -0.5 * m * m
    assert abs(att.scaling - expected_scale) < 1e-12, (att.scaling, expected_scale)
    return {
        "softmax_scale": att.scaling,
        "softmax_scale_formula": "(qk_nope_head_dim + qk_rope_head_dim)^-0.5 * m^2, m = 0.1*mscale_all_dim*ln(factor)+1",
        "rope_cos_sin_factor": af,
        "rope_cos_sin_factor_formula": "mscale(factor, mscale) / mscale(factor, mscale_all_dim), mscale(f, x) = 0.1*x*ln(f)+1",
        "rope_inv_freq": flist(inv),
        "rope_inv_freq_hf_f32": flist(model.model.rotary_emb.inv_freq.double()),
    }


def common_notes(s):
    n = [
        "Reference = transformers %s %s, eager attention, eager experts, float64 (model.double()) with "
        "the exact values of the stored tensors; the f32 run uses the same values cast to float32."
        % (transformers.__version__, "DeepseekV3ForCausalLM" if s["version"] == 3 else "DeepseekV2ForCausalLM"),
        "f64 precision patches: RMSNorm, eager softmax, router and RoPE (inv_freq, cos/sin, V2 "
        "complex rotation) run in float64 for float64 inputs (HF hard-codes float32 there); for "
        "float32 inputs they are HF's code unchanged (verified: patched vs unpatched f32 logits "
        "max diff recorded in checks.patched_vs_unpatched_f32).",
        "Softmax scale = (qk_nope+qk_rope)^-0.5 * m^2 with m = 0.1*mscale_all_dim*ln(factor)+1 "
        "(HF 5.23 applies it in both V2 and V3 classes; no patch needed). See derived.softmax_scale.",
        "RoPE: adjacent pairs (x[2j], x[2j+1]) of the raw checkpoint q_pe / k_pe rotated by angle "
        "pos*inv_freq[j]; YaRN inv_freq blended as in DeepSeek/HF (derived.rope_inv_freq); cos and "
        "sin are BOTH multiplied by derived.rope_cos_sin_factor (HF attention_scaling = "
        "mscale(factor,mscale)/mscale(factor,mscale_all_dim)).",
        "Positions are 0-based absolute token indices; BOS is at position 0.",
        "argmax: f64 argmax per prompt position; greedy_ids: %d greedy tokens (f64, full recompute "
        "without KV cache each step); min_margin: min top1-top2 (f64) over all prompt positions and "
        "greedy steps; f32_vs_f64_max_abs_diff: over all positions of prompt+greedy[:-1]." % N_GREEDY,
        "routing: per MoE layer, experts chosen at each prompt position (f64), sorted ascending, "
        "weights aligned (final combine weights incl. routed_scaling_factor); min_router_margin: "
        "min over layers/positions of the gap at the group cut-off and at the expert cut-off.",
        "router_alternatives: number of (layer, position) decisions over prompt+greedy where a "
        "wrong router variant would choose a different expert set (0 = fixture cannot detect it).",
    ]
    if s["version"] == 3:
        n.append(
            "V3 router: sigmoid(W_g x) + e_score_correction_bias for selection only; group score = "
            "sum of top-2 biased scores; non-selected groups masked with -inf (HF 5.23 already uses "
            "-inf, no patch); weights = unbiased sigmoid of chosen experts / (sum + 1e-20) * "
            "routed_scaling_factor."
        )
    else:
        n.append(
            "V2 router: softmax(W_g x) over all routed experts; %s; weights = p * routed_scaling_factor "
            "(no renormalisation).%s"
            % (
                s["topk_method"],
                " group score = max prob in the group; HF masks dropped groups with 0.0, we patch to "
                "-inf (result-identical since probs > 0 and kept candidates >= top_k)."
                if s["topk_method"] == "group_limited_greedy"
                else "",
            )
        )
    if s["config_format"] == "legacy":
        n.append("config.json uses DeepSeek's released layout (rope_theta + rope_scaling{type: yarn,...}, "
                 "scoring_func, topk_method, moe_layer_freq, ep_size, aux_loss_alpha, seq_aux; no head_dim); "
                 "transformers 5.23 loads it (checked except for the fp8 fixture).")
    else:
        n.append("config.json is exactly what transformers 5.23 save_pretrained writes: rope_parameters "
                 "(with rope_theta, rope_type and legacy type) instead of rope_scaling, and the HF-derived "
                 "fields head_dim (= qk_rope_head_dim!) and qk_head_dim.")
    return n


def make_fixture(s, tok, base_seed, check_alts=()):
    t0 = time.time()
    log(f"== {s['name']}")
    folder = os.path.join(FIXTURES, s["name"])
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    seed, stored, effective, res = search_seed(s, base_seed, check_alts)
    m64, m32 = res["m64"], res["m32"]
    T = len(PROMPT_IDS)
    print_routing(res["routing"])
    notes = common_notes(s) + s.get("notes", [])

    # files
    cfg = make_config(s)
    write_json(os.path.join(folder, "config.json"), config_json(cfg, s))
    write_json(
        os.path.join(folder, "generation_config.json"),
        {"_from_model_config": True, "bos_token_id": 0, "eos_token_id": 1, "do_sample": True,
         "temperature": 0.6, "top_p": 0.95, "transformers_version": transformers.__version__},
    )
    write_tokenizer(tok, folder)
    weight_files = write_weights(folder, stored, s)

    checks = {}
    # patched vs unpatched HF (f32): must be identical
    with unpatched():
        lu = logits_of(m32, PROMPT_IDS + res["greedy_ids"][:-1]).double()
    checks["patched_vs_unpatched_f32"] = float((lu - res["l32"]).abs().max())
    assert checks["patched_vs_unpatched_f32"] == 0.0, checks
    # the written folder loads in transformers and gives the same f32 logits
    if not s.get("fp8"):
        cls = DeepseekV3ForCausalLM if s["version"] == 3 else DeepseekV2ForCausalLM
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        hf = cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager").eval()
        for i, layer in enumerate(hf.model.layers):
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate._layer_idx = i
        lf = logits_of(hf, PROMPT_IDS + res["greedy_ids"][:-1]).double()
        checks["from_pretrained_vs_manual_f32"] = float((lf - res["l32"]).abs().max())
        assert checks["from_pretrained_vs_manual_f32"] == 0.0, checks
        assert hf.config.rope_parameters["factor"] == s["rope_factor"]
    text_ids = tok.encode(TEXT_PROMPT, add_special_tokens=True).ids

    golden = {
        "name": s["name"],
        "seed": seed,
        "storage_dtype": s["storage"],
        "weight_files": weight_files,
        "tokenizer_size": tok.get_vocab_size(with_added_tokens=True),
        "prompt_ids": PROMPT_IDS,
        "argmax": res["argmax"],
        "last_logits": flist(res["l64"][T - 1]),
        "first_logits": flist(res["l64"][0]),
        "last_logits_std": res["std"],
        "all_logits_f64_max_abs": float(res["l64"].abs().max()),
        "f32_vs_f64_max_abs_diff": res["diff"],
        "greedy_ids": res["greedy_ids"],
        "min_margin": res["min_margin"],
        "routing": res["routing"],
        "min_router_margin": res["min_router_margin"],
        "router_alternatives": res["alt_counts"],
        "text_prompt": TEXT_PROMPT,
        "text_prompt_ids": text_ids,
        "derived": derived_info(m64, s),
        "checks": checks,
    }
    if s.get("mtp"):
        golden["mtp_golden"] = mtp_golden(s, m64, m32, effective, res["greedy_ids"][0])
        notes.append(
            "mtp_golden: MTP layer %d applied to the prompt: position j gets h_j (main model final-normed "
            "hidden, f64) and token t_{j+1} (input_token_ids; the last one is greedy_ids[0]); logits "
            "= shared_head.head(shared_head.norm(layer(eh_proj(cat(enorm(E[t]), hnorm(h)))))); last_logits "
            "is position T-1 (drafts the token after greedy_ids[0])." % s["layers"]
        )
    golden["notes"] = notes
    # independent float64 re-implementation reading the written folder
    checks["independent_reference_max_abs_diff"] = reference_check(folder, golden)
    assert checks["independent_reference_max_abs_diff"] < 1e-9, checks
    notes.append(
        "checks.independent_reference_max_abs_diff: a from-scratch float64 implementation in "
        "make_fixtures.py (no transformers code; reads config.json and the safetensors files, pairs "
        "FP8 weights with their scale_inv, rotates adjacent rope pairs on the raw layout) reproduces "
        "argmax, greedy_ids, last/first logits and mtp_golden to this max abs difference."
    )
    write_json(os.path.join(folder, "golden.json"), golden)
    log(
        f"  seed={seed} min_margin={res['min_margin']:.4g} f32_vs_f64={res['diff']:.3g} "
        f"router_margin={res['min_router_margin']:.3g} std={res['std']:.3g} alts={res['alt_counts']} "
        f"greedy={res['greedy_ids']} ({time.time() - t0:.1f}s)"
    )
    return golden


def mtp_golden(s, m64, m32, effective, next_token):
    cfg64, cfg32 = m64.config, m32.config
    mtp64 = MTPModule(s, cfg64, effective, torch.float64)
    mtp32 = MTPModule(s, cfg32, effective, torch.float32)
    with router_log() as lg:
        l64, toks = mtp64(m64, PROMPT_IDS, next_token)
    l32, _ = mtp32(m32, PROMPT_IDS, next_token)
    am, margin = top2_margin(l64)
    return {
        "input_token_ids": toks,
        "positions": list(range(len(PROMPT_IDS))),
        "argmax": am.tolist(),
        "last_logits": flist(l64[-1]),
        "last_margin": float(margin[-1]),
        "min_margin": float(margin.min()),
        "f32_vs_f64_max_abs_diff": float((l32.double() - l64).abs().max()),
        "routing": summarize_routing([r for r in lg if r["layer"] == s["layers"]], len(PROMPT_IDS)),
        "min_router_margin": float(min(r["margin"].min() for r in lg if r["layer"] == s["layers"])),
    }


# ----------------------------------------------------------------------------------------
# Fixture specs
# ----------------------------------------------------------------------------------------

BASE = dict(
    first_dense=1, o_gain=0.7, dense_down_gain=0.7, expert_down_gain=0.7, shared_down_gain=0.7,
    router_gain=2.0, lm_head_gain=2.0, bias_range=(-0.5, 0.2),
)


def spec_v3_tiny():
    return dict(
        BASE, name="deepseek-v3-tiny", version=3, storage="bf16", torch_dtype="bfloat16", config_format="legacy",
        hidden=64, inter=128, moe_inter=32, layers=3, heads=4, q_lora=48, kv_lora=32, qk_nope=16, qk_rope=8,
        v_head=16, experts=16, n_group=4, topk_group=2, top_k=3, shared=1, rsf=2.5, norm_topk=True,
        rope_factor=40.0, rope_orig=64, mscale=1.0, mscale_all_dim=0.707, mtp=True,
        notes=[
            "16 routed experts in 4 groups of 4, so 'sum of top-2 per group' differs from max / sum-of-all "
            "(router_alternatives counts it).",
            "mscale 1.0 != mscale_all_dim 0.707 on purpose: rope cos/sin factor 1.0857 and softmax m^2 = "
            "(0.0707*ln 40 + 1)^2 are both non-trivial.",
            "Weights bf16 except mlp.gate.e_score_correction_bias (float32), single model.safetensors.",
        ],
    )


def fp8_shards(names):
    """Two shards; several weights are split from their scale_inv on purpose."""
    assign = {}
    for n in names:
        parts = n.split(".")
        layer = int(parts[2]) if parts[1] == "layers" else None
        k = 0 if (layer == 0 or n.startswith("model.embed_tokens")) else 1
        if layer == 0 and n.endswith("_scale_inv") and "self_attn" in n:
            k = 1  # layer-0 attention: weights in shard 1, scales in shard 2
        if layer == 1 and ".experts.0." in n and n.endswith("_scale_inv"):
            k = 0  # layer-1 expert 0: weights in shard 2, scales in shard 1
        assign[n] = k
    return assign


def spec_v3_fp8_tiny():
    return dict(
        BASE, name="deepseek-v3-fp8-tiny", version=3, storage="fp8", fp8=True, torch_dtype="bfloat16",
        config_format="legacy", hidden=200, inter=300, moe_inter=160, layers=2, heads=4, q_lora=192, kv_lora=144,
        qk_nope=32, qk_rope=16, v_head=40, experts=8, n_group=4, topk_group=2, top_k=3, shared=1, rsf=2.5,
        norm_topk=True, rope_factor=40.0, rope_orig=64, mscale=1.0, mscale_all_dim=1.0, mtp=True,
        bias_range=(-0.9, 0.1), shards=fp8_shards,
        notes=[
            "FP8: every q_a/q_b/kv_a/kv_b/o projection, dense MLP, routed and shared expert weight (also in "
            "the MTP layer) is F8_E4M3 with a float32 <name>_scale_inv [ceil(out/128), ceil(in/128)]; "
            "real = f32(code) * scale_inv per 128x128 block; scale = amax(block)/448. Embeddings, lm_head, "
            "norms, router weight, eh_proj, shared_head stay bf16; e_score_correction_bias float32.",
            "Shapes give full and partial 128-blocks in both directions (hidden 200, intermediate 300, "
            "moe_intermediate 160, q_lora 192, kv_lora 144 (kv_a out 160), kv_b out 288, o_proj in 160).",
            "Golden computed from the dequantized values (exact in f64); config for the golden has no "
            "quantization_config. The f32 run uses the dequantized values rounded to float32.",
            "Sharded: layer-0 attention weights are in shard 1 but their scale_inv in shard 2; layer-1 "
            "expert 0 weights are in shard 2, their scale_inv in shard 1.",
            "8 experts in 4 groups of 2 with strongly negative correction biases: masking dropped groups "
            "with 0.0 instead of -inf changes the chosen experts for some tokens (router_alternatives).",
        ],
    )


def spec_v2_lite_tiny():
    return dict(
        BASE, name="deepseek-v2-lite-tiny", version=2, storage="f32", torch_dtype="float32", config_format="legacy",
        hidden=64, inter=128, moe_inter=32, layers=3, heads=4, q_lora=None, kv_lora=32, qk_nope=16, qk_rope=8,
        v_head=16, experts=8, n_group=1, topk_group=1, top_k=3, shared=2, rsf=1.0, norm_topk=False,
        topk_method="greedy", rope_factor=40.0, rope_orig=64, mscale=0.707, mscale_all_dim=0.707,
        notes=["V2-Lite layout: q_lora_rank null -> self_attn.q_proj; mscale = mscale_all_dim = 0.707 -> rope "
               "cos/sin factor 1.0, softmax m^2 = (0.0707*ln 40 + 1)^2. float32 weights."],
    )


def spec_v2_tiny():
    return dict(
        BASE, name="deepseek-v2-tiny", version=2, storage="f16", torch_dtype="float16", config_format="hf5",
        hidden=64, inter=128, moe_inter=32, layers=3, heads=4, q_lora=48, kv_lora=32, qk_nope=16, qk_rope=8,
        v_head=16, experts=16, n_group=4, topk_group=2, top_k=3, shared=2, rsf=16.0, norm_topk=False,
        topk_method="group_limited_greedy", rope_factor=16.0, rope_orig=64, mscale=1.0, mscale_all_dim=1.0,
        expert_down_gain=0.7 / 16 * 4,
        notes=["float16 weights; routed expert down_proj scaled down (gain 0.175) because routed_scaling_factor "
               "is 16; no activation exceeds a few units so f16 compute is safe.",
               "16 experts in 4 groups of 4, top-2 groups, top-3 experts: group limiting changes the choice for "
               "some tokens (router_alternatives.no_group_limit)."],
    )


# ----------------------------------------------------------------------------------------
# Dense R1-Distill architectures: Qwen2 (DeepSeek-R1-Distill-Qwen-*) and Llama-3.1
# (DeepSeek-R1-Distill-Llama-*).  Same golden fields and robustness rules as the DeepSeek
# fixtures, minus routing; "alternatives" counts how many argmax decisions a *wrong*
# implementation (interleaved rope, wrong GQA mapping, dropped biases, ...) would change.
# ----------------------------------------------------------------------------------------

DENSE_CLASSES = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}


def dense_head_dim(s):
    assert s["hidden"] % s["heads"] == 0 and s["hidden"] // s["heads"] == s["head_dim"], s
    return s["head_dim"]


def dense_checkpoint_tensors(seed, s):
    """All tensors of a dense checkpoint (float32 masters, HF checkpoint names, module order)."""
    g = WeightGen(seed)
    H, V, nh, nkv, hd = s["hidden"], VOCAB_SIZE, s["heads"], s["kv_heads"], dense_head_dim(s)
    t = {"model.embed_tokens.weight": g.normal((V, H), s["embed_std"])}
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = g.norm(H)
        for proj, out_f, bias_std in (("q", nh * hd, s["q_bias_std"]), ("k", nkv * hd, s["k_bias_std"]),
                                      ("v", nkv * hd, s["v_bias_std"])):
            t[p + f"self_attn.{proj}_proj.weight"] = g.linear(out_f, H, gain=s["qk_gain"] if proj != "v" else 1.0)
            if s["qkv_bias"]:
                t[p + f"self_attn.{proj}_proj.bias"] = g.normal(out_f, bias_std)
        t[p + "self_attn.o_proj.weight"] = g.linear(H, nh * hd, gain=s["o_gain"])
        t[p + "post_attention_layernorm.weight"] = g.norm(H)
        t.update(mlp_tensors(g, p + "mlp.", H, s["inter"], s["down_gain"]))
    t["model.norm.weight"] = g.norm(H)
    if not s["tied"]:
        t["lm_head.weight"] = g.linear(V, H, gain=s["lm_head_gain"])
    return t


def dense_config_json(s):
    """config.json in the layout of the released R1-Distill checkpoints (transformers 4.x:
    rope_theta + rope_scaling, torch_dtype; no rope_parameters / layer_types / head_dim)."""
    d = dict(
        architectures=[DENSE_CLASSES[s["arch"]][1].__name__],
        attention_dropout=0.0,
        bos_token_id=0,
        eos_token_id=1,
        hidden_act="silu",
        hidden_size=s["hidden"],
        initializer_range=0.02,
        intermediate_size=s["inter"],
        model_type=s["arch"],
        num_attention_heads=s["heads"],
        num_hidden_layers=s["layers"],
        num_key_value_heads=s["kv_heads"],
        rms_norm_eps=s["rms_eps"],
        tie_word_embeddings=s["tied"],
        torch_dtype=s["torch_dtype"],
        transformers_version=transformers.__version__,
        use_cache=True,
        vocab_size=VOCAB_SIZE,
    )
    if s["arch"] == "llama":
        d.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
    d.update(s["config_extra"])
    return dict(sorted(d.items()))


def dense_hf_config(cfg_json):
    cfg_cls = DENSE_CLASSES[cfg_json["model_type"]][0]
    return cfg_cls.from_dict(json.loads(json.dumps(cfg_json)), attn_implementation="eager")


def build_dense_model(s, cfg_json, effective, dtype):
    cls = DENSE_CLASSES[s["arch"]][1]
    torch.manual_seed(0)
    model = cls(dense_hf_config(cfg_json)).to(dtype).eval()
    sd = {k: v.to(dtype) for k, v in effective.items()}
    if s["tied"]:
        assert "lm_head.weight" not in sd
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    model.load_state_dict(sd, strict=True)
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tied == s["tied"], (tied, s["tied"])
    return model


# --- independent float64 reference for the dense models (no transformers code) -----------


def ref_dense_inv_freq(cfg, variant=()):
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    theta = float(cfg["rope_theta"])
    freqs = [theta ** (-(2 * j) / hd) for j in range(hd // 2)]
    rs = cfg.get("rope_scaling")
    if rs and "no_llama3_scaling" not in variant:
        assert rs["rope_type"] == "llama3", rs
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        scaled = []
        for f in freqs:  # Meta llama-models apply_scaling
            wavelen = 2 * math.pi / f
            if wavelen < old / hi:
                scaled.append(f)
            elif wavelen > old / lo:
                scaled.append(f / factor)
            else:
                smooth = (old / wavelen - lo) / (hi - lo)
                scaled.append((1 - smooth) * f / factor + smooth * f)
        freqs = scaled
    return torch.tensor(freqs, dtype=torch.float64)


def ref_rope_half(x, pos, freqs, interleaved=False):
    """x [T, heads, hd]; NeoX / rotate_half: pair (x[j], x[j + hd/2]) rotated by pos*freqs[j].
    interleaved=True is the WRONG variant for these models (pairs (x[2j], x[2j+1]))."""
    if interleaved:
        return ref_rope(x, pos, freqs, 1.0)
    ang = pos[:, None].to(torch.float64) * freqs[None]  # [T, hd/2]
    c, s_ = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * c - x2 * s_, x2 * c + x1 * s_], dim=-1)


def ref_dense_forward(cfg, W, ids, variant=()):
    """float64 logits [T, V] of a Qwen2 / Llama checkpoint (config.json dict + tensors)."""
    T = len(ids)
    nh, nkv, eps = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["rms_norm_eps"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // nh
    group = nh // nkv
    kv_of = [(h % nkv) if "gqa_modulo_mapping" in variant else h // group for h in range(nh)]
    freqs = ref_dense_inv_freq(cfg, variant)
    pos = torch.arange(T)
    causal = torch.full((T, T), -math.inf, dtype=torch.float64).triu(1)
    window = cfg.get("sliding_window")
    x = W["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        a = ref_rms(x, W[p + "input_layernorm.weight"], eps)

        def proj(name, inp):
            y = inp @ W[p + name + ".weight"].T
            if p + name + ".bias" in W and "no_qkv_bias" not in variant:
                y = y + W[p + name + ".bias"]
            return y

        q = proj("self_attn.q_proj", a).view(T, nh, hd)
        k = proj("self_attn.k_proj", a).view(T, nkv, hd)
        v = proj("self_attn.v_proj", a).view(T, nkv, hd)
        q = ref_rope_half(q, pos, freqs, "interleaved_rope" in variant)
        k = ref_rope_half(k, pos, freqs, "interleaved_rope" in variant)
        mask = causal
        if "sliding_window_applied" in variant and l >= cfg.get("max_window_layers", 0):
            # what an engine that ignores use_sliding_window=false would do (HF semantics when
            # enabled: key s visible from query t iff t - window < s <= t)
            far = pos[:, None] - pos[None, :] >= window
            mask = causal.masked_fill(far, -math.inf)
        heads = []
        for h in range(nh):
            sc = (q[:, h] @ k[:, kv_of[h]].T) * hd ** -0.5 + mask
            heads.append(torch.softmax(sc, -1) @ v[:, kv_of[h]])
        o = torch.cat(heads, dim=-1)  # [T, nh*hd], head-major
        x = x + proj("self_attn.o_proj", o)
        f = ref_rms(x, W[p + "post_attention_layernorm.weight"], eps)
        x = x + ref_mlp(W, p + "mlp.", f)
    h = ref_rms(x, W["model.norm.weight"], eps)
    if cfg.get("tie_word_embeddings"):
        assert "lm_head.weight" not in W or torch.equal(W["lm_head.weight"], W["model.embed_tokens.weight"])
        return h @ W["model.embed_tokens.weight"].T
    return h @ W["lm_head.weight"].T


def dense_alternatives(s, cfg_json, W, seq, argmax):
    """How many argmax decisions over `seq` each wrong implementation variant changes."""
    out = {}
    for alt in s["alternatives"]:
        am = ref_dense_forward(cfg_json, W, seq, variant=(alt,)).argmax(-1)
        out[alt] = int((am != argmax).sum())
    return out


# --- seed search, fixture writing --------------------------------------------------------


def evaluate_dense(s, cfg_json, effective):
    reasons = []
    m64 = build_dense_model(s, cfg_json, effective, torch.float64)
    m32 = build_dense_model(s, cfg_json, effective, torch.float32)
    prompt = PROMPT_IDS
    T = len(prompt)
    greedy_ids = greedy(m64, prompt, N_GREEDY)
    full = prompt + greedy_ids[:-1]
    l64 = logits_of(m64, full)
    l32 = logits_of(m32, full).double()
    am, margins = top2_margin(l64)
    assert am[T - 1:].tolist() == greedy_ids
    ref = ref_dense_forward(cfg_json, effective, full)
    ref_diff = float((ref - l64).abs().max())
    assert ref_diff < 1e-9, ref_diff
    min_margin = float(margins.min())
    if min_margin < MIN_MARGIN:
        reasons.append(f"logit margin {min_margin:.2e}")
    if l32.argmax(-1).tolist() != am.tolist():
        reasons.append("f32 argmax differs")
    diff = float((l32 - l64).abs().max())
    alts = dense_alternatives(s, cfg_json, effective, full, am)
    for k, n in alts.items():
        if n == 0:
            reasons.append(f"alternative '{k}' never differs")
    longest_run = max(sum(1 for _ in grp) for _, grp in itertools.groupby(greedy_ids))
    if len(set(greedy_ids)) < 12 or longest_run > 3:
        reasons.append(f"greedy continuation too repetitive ({len(set(greedy_ids))} distinct, run {longest_run})")
    if set(greedy_ids) & {0, 1, 2}:
        # like the DeepSeek fixtures (by luck there): no BOS/EOS/pad in the continuation, so a
        # run that stops at EOS still produces all greedy_ids
        reasons.append("greedy continuation contains a special id (BOS/EOS/pad)")
    std = float(l64[T - 1].std())
    if std < 0.1:
        reasons.append(f"last logits std {std}")
    res = dict(
        m64=m64, m32=m32, l64=l64, l32=l32, greedy_ids=greedy_ids, argmax=am[:T].tolist(), min_margin=min_margin,
        diff=diff, alt_counts=alts, std=std, ref_diff=ref_diff,
    )
    return not reasons, reasons, res


def search_seed_dense(s, cfg_json, base_seed, max_tries=60):
    for attempt in range(max_tries):
        seed = base_seed + attempt
        stored, effective = store(dense_checkpoint_tensors(seed, s), s["storage"])
        ok, reasons, res = evaluate_dense(s, cfg_json, effective)
        if ok:
            log(f"  seed {seed} ok (after {attempt} rejected)")
            return seed, stored, effective, res
        log(f"  seed {seed} rejected: {'; '.join(reasons)}")
    raise RuntimeError(f"no acceptable seed for {s['name']}")


def dense_derived_info(s, m64, m32):
    att = m64.model.layers[0].self_attn
    nh, nkv, hd = s["heads"], s["kv_heads"], dense_head_dim(s)
    assert att.head_dim == hd and att.num_key_value_groups == nh // nkv
    assert att.scaling == hd ** -0.5, att.scaling
    assert m64.model.rotary_emb.attention_scaling == 1.0
    inv, plain, branches = dense_inv_freq_f64(m64.config)
    hf32 = m32.model.rotary_emb.inv_freq
    assert hf32.dtype == torch.float32
    assert torch.allclose(inv, hf32.double(), rtol=1e-6, atol=0)
    d = {
        "head_dim": hd,
        "num_key_value_groups": nh // nkv,
        "kv_head_of_query_head": [h // (nh // nkv) for h in range(nh)],
        "softmax_scale": att.scaling,
        "softmax_scale_formula": "head_dim^-0.5",
        "rope_style": "neox_rotate_half",
        "rope_rotated_pairs": [[j, j + hd // 2] for j in range(hd // 2)],
        "rope_cos_sin_factor": 1.0,
        "rope_inv_freq": flist(inv),
        "rope_inv_freq_hf_f32": flist(hf32.double()),
    }
    if m64.config.rope_parameters["rope_type"] == "llama3":
        plain32 = 1.0 / (float(m64.config.rope_parameters["rope_theta"]) ** (torch.arange(0, hd, 2, dtype=torch.float) / hd))
        changed = [j for j in range(hd // 2) if float(hf32[j]) != float(plain32[j])]
        assert changed, "llama3 remapping changes no inv_freq"
        assert set(branches) == {"high_freq_kept", "medium_smoothed", "low_freq_divided_by_factor"}, branches
        d.update(
            rope_inv_freq_unscaled=flist(plain),
            rope_inv_freq_unscaled_hf_f32=flist(plain32.double()),
            rope_wavelen_unscaled=[2 * math.pi / f for f in plain.tolist()],
            rope_llama3_branch=branches,
            rope_llama3_changed_indices=changed,
            rope_llama3_formula=(
                "wavelen = 2*pi/f; high_freq_wavelen = orig/high_freq_factor; low_freq_wavelen = "
                "orig/low_freq_factor; wavelen < high_freq_wavelen: f; wavelen > low_freq_wavelen: "
                "f/factor; else smooth = (orig/wavelen - low_freq_factor)/(high_freq_factor - "
                "low_freq_factor), (1-smooth)*f/factor + smooth*f  (orig = "
                "original_max_position_embeddings)"
            ),
        )
    return d


DENSE_ALT_DESCRIPTIONS = {
    "interleaved_rope": "interleaved_rope = adjacent pairs (x[2j], x[2j+1]) rotated instead of halves",
    "gqa_modulo_mapping": "gqa_modulo_mapping = query head h uses kv head h % num_key_value_heads",
    "no_qkv_bias": "no_qkv_bias = q/k/v biases dropped",
    "no_llama3_scaling": "no_llama3_scaling = plain rope_theta^(-2j/d) inv_freq (rope_scaling ignored)",
    "sliding_window_applied": "sliding_window_applied = sliding_window honoured on layers >= max_window_layers "
    "although use_sliding_window is false",
}


def dense_notes(s, cfg_json):
    nh, nkv, hd = s["heads"], s["kv_heads"], dense_head_dim(s)
    cls = DENSE_CLASSES[s["arch"]][1].__name__
    n = [
        "Reference = transformers %s %s, eager attention, float64 (model.double()) with the exact "
        "values of the stored tensors; the f32 run uses the same values cast to float32." % (transformers.__version__, cls),
        "f64 precision patches: RMSNorm, eager softmax and RoPE (inv_freq, positions*inv_freq, cos/sin) "
        "run in float64 for float64 inputs (HF hard-codes float32 there); for float32 inputs they are "
        "HF's code unchanged (checks.patched_vs_unpatched_f32 == 0).",
        "Layer: x += o_proj(attn(rms(x) * input_layernorm.weight)); x += down_proj(silu(gate_proj(h)) * "
        "up_proj(h)), h = rms(x) * post_attention_layernorm.weight; logits = lm_head(rms(x) * "
        "model.norm.weight).  rms(x) = x / sqrt(mean(x^2) + rms_norm_eps) (rms_norm_eps = %g)." % s["rms_eps"],
        "Attention: q = x Wq^T%s -> %d heads, k/v = x Wk^T%s / x Wv^T%s -> %d kv heads, head_dim "
        "%d = hidden_size/num_attention_heads; head h occupies rows h*head_dim..(h+1)*head_dim of the "
        "projection.  GQA: query head h uses kv head h // (num_attention_heads / num_key_value_heads) "
        "= h // %d (HF repeat_kv == repeat_interleave: contiguous blocks of query heads share a kv "
        "head; derived.kv_head_of_query_head).  scores = q.k * head_dim^-0.5 (= %.6g), causal, softmax, "
        "heads concatenated in head order -> o_proj (no bias)."
        % ((" + bq" if s["qkv_bias"] else ""), nh, (" + bk" if s["qkv_bias"] else ""),
           (" + bv" if s["qkv_bias"] else ""), nkv, hd, nh // nkv, hd ** -0.5),
        "RoPE: NeoX / rotate_half style (HF Qwen2/Llama apply_rotary_pos_emb): within each q and k head "
        "the pair (x[j], x[j + head_dim/2]) is rotated by angle pos*inv_freq[j], j < head_dim/2: "
        "out[j] = x[j] cos - x[j+d/2] sin, out[j+d/2] = x[j+d/2] cos + x[j] sin.  NOT adjacent pairs "
        "(that is DeepSeek's MLA layout; alternatives.interleaved_rope).  cos/sin factor 1.  "
        "inv_freq[j] = rope_theta^(-2j/head_dim) (derived.rope_inv_freq; HF computes it in float32: "
        "derived.rope_inv_freq_hf_f32).  v is not rotated.",
        "Positions are 0-based absolute token indices; BOS is at position 0.",
        "argmax: f64 argmax per prompt position; greedy_ids: %d greedy tokens (f64, full recompute "
        "without KV cache each step); min_margin: min top1-top2 (f64) over all prompt positions and "
        "greedy steps; f32_vs_f64_max_abs_diff: over all positions of prompt+greedy[:-1].  Seeds whose "
        "greedy_ids contain BOS/EOS/pad (ids 0/1/2) are rejected, so stopping at EOS cannot cut the "
        "continuation short." % N_GREEDY,
        "alternatives: number of positions of prompt+greedy[:-1] whose argmax a WRONG implementation "
        "variant changes (independent float64 reference run with the variant): "
        + "; ".join(DENSE_ALT_DESCRIPTIONS[a] for a in s["alternatives"]) + ".",
        "config.json uses the released R1-Distill layout (transformers 4.x: rope_theta%s, torch_dtype; "
        "no rope_parameters / layer_types / head_dim); transformers 5.23 loads it (checked via "
        "from_pretrained, logits identical)." % (" + rope_scaling" if "rope_scaling" in cfg_json else ""),
    ]
    if s["qkv_bias"]:
        n.append(
            "Biases (Qwen2): q_proj, k_proj and v_proj have a bias (HF Qwen2Attention hard-codes bias=True; "
            "there is no attention_bias key in a Qwen2 config.json), o_proj and the MLP have none.  Biases are "
            "added BEFORE RoPE (the rotation is applied to x Wq^T + bq and x Wk^T + bk).  Stored in the "
            "checkpoint dtype like the weights."
        )
    else:
        n.append("No biases anywhere (attention_bias false, mlp_bias false).")
    if s["arch"] == "qwen2":
        n.append(
            "Sliding window: use_sliding_window is false, so sliding_window (%d) and max_window_layers (%d) "
            "must be ignored: every layer attends to all previous tokens (HF 5.23 sets config.sliding_window "
            "= None and layer_types all 'full_attention')." % (cfg_json["sliding_window"], cfg_json["max_window_layers"])
        )
    if s["tied"]:
        n.append(
            "tie_word_embeddings true: the safetensors file has NO lm_head.weight; logits = h @ "
            "model.embed_tokens.weight^T (HF ties lm_head to the embedding; checked)."
        )
    else:
        n.append("tie_word_embeddings false: separate lm_head.weight [vocab, hidden].")
    n.append(
        "generation_config.json like R1-Distill (do_sample true, temperature 0.6, top_p 0.95) with the "
        "tiny tokenizer's BOS/EOS ids 0/1."
    )
    return n


def make_dense_fixture(s, tok, base_seed):
    t0 = time.time()
    log(f"== {s['name']}")
    folder = os.path.join(FIXTURES, s["name"])
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    cfg_json = dense_config_json(s)
    seed, stored, effective, res = search_seed_dense(s, cfg_json, base_seed)
    m64, m32 = res["m64"], res["m32"]
    T = len(PROMPT_IDS)
    notes = dense_notes(s, cfg_json) + s.get("notes", [])

    write_json(os.path.join(folder, "config.json"), cfg_json)
    write_json(
        os.path.join(folder, "generation_config.json"),
        {"_from_model_config": True, "bos_token_id": 0, "eos_token_id": 1, "do_sample": True,
         "temperature": 0.6, "top_p": 0.95, "transformers_version": transformers.__version__},
    )
    write_tokenizer(tok, folder)
    weight_files = write_weights(folder, stored, s)
    if s["tied"]:
        assert "lm_head.weight" not in stored

    checks = {"hf_vs_independent_reference_f64_during_search": res["ref_diff"]}
    full = PROMPT_IDS + res["greedy_ids"][:-1]
    with unpatched():
        lu = logits_of(m32, full).double()
    checks["patched_vs_unpatched_f32"] = float((lu - res["l32"]).abs().max())
    assert checks["patched_vs_unpatched_f32"] == 0.0, checks
    # the written folder loads in transformers (4.x-style config.json) and gives the same f32 logits
    cls = DENSE_CLASSES[s["arch"]][1]
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    hf, info = cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    hf.eval()
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")), info
    lf = logits_of(hf, full).double()
    checks["from_pretrained_vs_manual_f32"] = float((lf - res["l32"]).abs().max())
    assert checks["from_pretrained_vs_manual_f32"] == 0.0, checks
    hc = hf.config
    assert (hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()) == s["tied"]
    assert hc.rope_parameters["rope_theta"] == cfg_json["rope_theta"]
    if "rope_scaling" in cfg_json:
        assert hc.rope_parameters["rope_type"] == "llama3"
        for k, v in cfg_json["rope_scaling"].items():
            assert hc.rope_parameters[k] == v, (k, hc.rope_parameters)
    else:
        assert hc.rope_parameters["rope_type"] == "default"
    if s["arch"] == "qwen2":
        assert hc.sliding_window is None and set(hc.layer_types) == {"full_attention"}, (hc.sliding_window, hc.layer_types)
    checks["from_pretrained_config"] = {
        "rope_parameters": dict(hc.rope_parameters),
        "layer_types": list(getattr(hc, "layer_types", None) or []),
        "sliding_window": getattr(hc, "sliding_window", None),
        "lm_head_tied_to_embed_tokens": s["tied"],
    }
    if "sliding_window_applied" in s["alternatives"]:
        # the reference's sliding-window variant == HF with use_sliding_window switched on
        on = dict(cfg_json, use_sliding_window=True)
        msw = build_dense_model(s, on, effective, torch.float64)
        assert set(msw.config.layer_types) == {"full_attention", "sliding_attention"}, msw.config.layer_types
        lsw = logits_of(msw, full)
        checks["sliding_window_variant_hf_vs_reference"] = float(
            (lsw - ref_dense_forward(cfg_json, effective, full, variant=("sliding_window_applied",))).abs().max())
        assert checks["sliding_window_variant_hf_vs_reference"] < 1e-9, checks
    text_ids = tok.encode(TEXT_PROMPT, add_special_tokens=True).ids

    golden = {
        "name": s["name"],
        "architecture": cls.__name__,
        "seed": seed,
        "storage_dtype": s["storage"],
        "weight_files": weight_files,
        "tokenizer_size": tok.get_vocab_size(with_added_tokens=True),
        "prompt_ids": PROMPT_IDS,
        "argmax": res["argmax"],
        "last_logits": flist(res["l64"][T - 1]),
        "first_logits": flist(res["l64"][0]),
        "last_logits_std": res["std"],
        "all_logits_f64_max_abs": float(res["l64"].abs().max()),
        "f32_vs_f64_max_abs_diff": res["diff"],
        "greedy_ids": res["greedy_ids"],
        "min_margin": res["min_margin"],
        "alternatives": res["alt_counts"],
        "text_prompt": TEXT_PROMPT,
        "text_prompt_ids": text_ids,
        "derived": dense_derived_info(s, m64, m32),
        "checks": checks,
    }
    # independent float64 re-implementation reading the written folder
    cfg_r, W = ref_load_folder(folder)
    logits = ref_dense_forward(cfg_r, W, full)
    assert logits.argmax(-1)[:T].tolist() == golden["argmax"]
    assert logits.argmax(-1)[T - 1:].tolist() == golden["greedy_ids"]
    d = float((logits[T - 1] - torch.tensor(golden["last_logits"], dtype=torch.float64)).abs().max())
    d = max(d, float((logits[0] - torch.tensor(golden["first_logits"], dtype=torch.float64)).abs().max()))
    checks["independent_reference_max_abs_diff"] = d
    assert d < 1e-9, checks
    notes.append(
        "checks.independent_reference_max_abs_diff: a from-scratch float64 implementation in "
        "make_fixtures.py (ref_dense_forward; no transformers code; reads config.json and the "
        "safetensors file, NeoX rope on halves, GQA h // group, biases before RoPE, tied head) "
        "reproduces argmax, greedy_ids and last/first logits to this max abs difference."
    )
    golden["notes"] = notes
    write_json(os.path.join(folder, "golden.json"), golden)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    assert size < 600_000, (s["name"], size)
    log(
        f"  seed={seed} min_margin={res['min_margin']:.4g} f32_vs_f64={res['diff']:.3g} std={res['std']:.3g} "
        f"alts={res['alt_counts']} greedy={res['greedy_ids']} size={size} ({time.time() - t0:.1f}s)"
    )
    return golden


DENSE_BASE = dict(
    hidden=64, layers=3, embed_std=1.0, qk_gain=1.0, o_gain=0.7, down_gain=0.7, lm_head_gain=2.0,
    q_bias_std=0.0, k_bias_std=0.0, v_bias_std=0.0,
)


def spec_qwen2_tiny():
    """DeepSeek-R1-Distill-Qwen-1.5B / -7B style (Qwen2.5-Math base): untied, rope_theta 10000,
    sliding_window 4096 with use_sliding_window false, max_window_layers 21, 131072 positions."""
    return dict(
        DENSE_BASE, name="qwen2-tiny", arch="qwen2", storage="bf16", torch_dtype="bfloat16",
        inter=128, heads=4, kv_heads=2, head_dim=16, rms_eps=1e-6, qkv_bias=True, tied=False,
        q_bias_std=0.5, k_bias_std=0.5, v_bias_std=0.3,
        config_extra=dict(rope_theta=10000, sliding_window=4096, max_window_layers=21, max_position_embeddings=131072,
                          use_sliding_window=False, use_mrope=False),
        alternatives=("interleaved_rope", "gqa_modulo_mapping", "no_qkv_bias"),
        notes=[
            "Mirrors deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B's config.json fields (rope_theta 10000 as a JSON "
            "integer, sliding_window 4096, max_window_layers 21, use_sliding_window false, use_mrope false, "
            "max_position_embeddings 131072, tie_word_embeddings false, torch_dtype bfloat16); sizes shrunk: "
            "hidden 64, 4 query heads, 2 kv heads, head_dim 16, 3 layers, intermediate 128.  bf16 weights and "
            "biases, single model.safetensors.",
            "q/k/v biases are random N(0, 0.5/0.5/0.3): dropping them changes argmaxes (alternatives.no_qkv_bias).",
        ],
    )


def spec_qwen2_tied_tiny():
    """Qwen2.5-0.5B/1.5B/3B style: tie_word_embeddings true and no lm_head.weight tensor."""
    return dict(
        DENSE_BASE, name="qwen2-tied-tiny", arch="qwen2", storage="f16", torch_dtype="float16",
        inter=128, heads=4, kv_heads=2, head_dim=16, rms_eps=1e-6, qkv_bias=True, tied=True,
        q_bias_std=0.5, k_bias_std=0.5, v_bias_std=0.3, embed_std=0.1, qk_gain=2.0, o_gain=1.0, down_gain=1.0,
        config_extra=dict(rope_theta=1000000.0, sliding_window=8, max_window_layers=1, max_position_embeddings=32768,
                          use_sliding_window=False),
        alternatives=("interleaved_rope", "gqa_modulo_mapping", "no_qkv_bias", "sliding_window_applied"),
        notes=[
            "Tied-embedding layout of Qwen2.5-0.5B/1.5B/3B(-Instruct) (tie_word_embeddings true, rope_theta "
            "1000000.0, max_position_embeddings 32768): model.safetensors has no lm_head.weight.  (The released "
            "DeepSeek-R1-Distill-Qwen-1.5B itself is UNTIED: tie_word_embeddings false, separate lm_head.)",
            "float16 weights and biases.  sliding_window is deliberately tiny (8) with max_window_layers 1 and "
            "use_sliding_window false (real files: 32768 / 21): an engine that honours sliding_window anyway "
            "changes argmaxes (alternatives.sliding_window_applied).",
        ],
    )


def spec_llama_tiny():
    """DeepSeek-R1-Distill-Llama-8B / -70B style (Llama-3.1): GQA, rope_theta 500000, llama3 rope
    scaling, no biases, untied."""
    return dict(
        DENSE_BASE, name="llama-tiny", arch="llama", storage="bf16", torch_dtype="bfloat16",
        inter=224, heads=8, kv_heads=2, head_dim=8, rms_eps=1e-5, qkv_bias=False, tied=False,
        config_extra=dict(
            rope_theta=500000.0, max_position_embeddings=2048,
            rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 256, "rope_type": "llama3"},
        ),
        alternatives=("interleaved_rope", "gqa_modulo_mapping", "no_llama3_scaling"),
        notes=[
            "Mirrors deepseek-ai/DeepSeek-R1-Distill-Llama-8B's config.json fields (LlamaForCausalLM, "
            "attention_bias false, mlp_bias false, pretraining_tp 1, rms_norm_eps 1e-05, rope_theta 500000.0, "
            "rope_scaling {factor 8.0, low_freq_factor 1.0, high_freq_factor 4.0, "
            "original_max_position_embeddings, rope_type llama3}, tie_word_embeddings false, torch_dtype "
            "bfloat16); sizes shrunk: hidden 64, 8 query heads, 2 kv heads, head_dim 8, 3 layers, intermediate "
            "224 (3.5x like 14336/4096).  original_max_position_embeddings is 256 (real: 8192) so that with "
            "head_dim 8 the llama3 remapping hits all three branches: inv_freq[0] kept (wavelen 6.3 < 64), "
            "inv_freq[1] smoothed (64 <= wavelen 167 <= 256), inv_freq[2..3] divided by 8 "
            "(derived.rope_llama3_branch); max_position_embeddings 2048 = 8 * 256.",
            "The llama3 remapping is applied to inv_freq once; no attention/cos-sin scaling (factor 1.0).",
        ],
    )


DENSE_JOBS = ((spec_qwen2_tiny, 5000), (spec_qwen2_tied_tiny, 6000), (spec_llama_tiny, 7000))


# ----------------------------------------------------------------------------------------
# GGUF: the fixtures as llama.cpp's converter (convert_hf_to_gguf.py, gguf-py) writes them
# ----------------------------------------------------------------------------------------
#
# Each committed fixture folder is also written as GGUF, from its own config.json,
# safetensors and tokenizer files, with the tensor names, metadata keys and layouts of
# llama.cpp's converter (conversion/deepseek.py, llama.py, qwen.py, base.py; gguf-py 0.19
# constants): experts stacked per layer ([experts, rows, cols]), DeepSeek kv_b_proj either split
# into attn_k_b (per head, transposed) + attn_v_b (the MLA layout of current files) or kept as
# attn_kv_b (the layout of GGUFs converted before llama.cpp's MLA support), llama q/k rows
# permuted for adjacent-pair RoPE, llama3 scaling as the rope_freqs tensor, 1-D tensors, norms,
# biases and the MoE router in F32, Q8_0 falling back to F16 for rows that are not whole
# 32-element blocks.  Where this differs from what the converter would do, on purpose:
#   * tokenizer.ggml.pre is "deepseek-v3" for every fixture: the fixtures share one tokenizer
#     whose pre-tokenizer is DeepSeek-V3's, and the converter (which names the pre-tokenizer by
#     hashing its output on a probe text) would not know this tiny vocabulary.
#   * deepseek-v3-tiny has mscale 1.0 != mscale_all_dim 0.707, which GGUF cannot say (llama.cpp
#     assumes equal values, true of every released DeepSeek config): its files add
#     rope.scaling.yarn_attn_factor = mscale(factor, 1.0) / mscale(factor, 0.707).
#   * The MTP layer of deepseek-v3-tiny is kept in model-f16.gguf as llama.cpp writes it for the
#     architectures it runs MTP for (block_count includes it, nextn_predict_layers = 1,
#     blk.N.nextn.{eh_proj,embed_tokens,enorm,hnorm,shared_head_head,shared_head_norm}); the
#     converter drops it for deepseek2 today, as model-q8_0.gguf does.
#   * llama3: the converter reads original_max_position_embeddings from the top level of the
#     config (default 8192, the real Llama-3 value); the fixture's is inside rope_scaling (256),
#     which is used here so that the factors match the HF model.
# golden-gguf.json holds, per GGUF file, float64 logits of the model the file stores (every
# tensor read back from the written file with gguf-py, dequantized, renamed to HF names by an
# independent inverse of the mapping, run through this script's ref_* float64 forward): the
# quantized files' own goldens, and the measured distance to the unquantized golden.json.

GGUF_VARIANTS = {
    "deepseek-v3-tiny": [
        dict(file="model-f16.gguf", qtype="F16", mla_split=True, mtp=True),
        dict(file="model-q8_0.gguf", qtype="Q8_0", mla_split=True, mtp=False),
    ],
    "deepseek-v2-lite-tiny": [
        dict(file="model-f32.gguf", qtype="F32", mla_split=False, mtp=False, split_parts=2),
    ],
    "deepseek-v2-tiny": [dict(file="model-f16.gguf", qtype="F16", mla_split=True, mtp=False)],
    "qwen2-tiny": [dict(file="model-f16.gguf", qtype="F16"), dict(file="model-q8_0.gguf", qtype="Q8_0")],
    "qwen2-tied-tiny": [dict(file="model-f16.gguf", qtype="F16")],
    "llama-tiny": [dict(file="model-f16.gguf", qtype="F16"), dict(file="model-q8_0.gguf", qtype="Q8_0")],
}

GGUF_BLOCK_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_a_proj.weight": "attn_q_a.weight",
    "self_attn.q_a_layernorm.weight": "attn_q_a_norm.weight",
    "self_attn.q_b_proj.weight": "attn_q_b.weight",
    "self_attn.kv_a_proj_with_mqa.weight": "attn_kv_a_mqa.weight",
    "self_attn.kv_a_layernorm.weight": "attn_kv_a_norm.weight",
    "self_attn.kv_b_proj.weight": "attn_kv_b.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "mlp.gate.weight": "ffn_gate_inp.weight",
    "mlp.gate.e_score_correction_bias": "exp_probs_b.bias",
    "mlp.shared_experts.gate_proj.weight": "ffn_gate_shexp.weight",
    "mlp.shared_experts.up_proj.weight": "ffn_up_shexp.weight",
    "mlp.shared_experts.down_proj.weight": "ffn_down_shexp.weight",
    "eh_proj.weight": "nextn.eh_proj.weight",
    "embed_tokens.weight": "nextn.embed_tokens.weight",
    "enorm.weight": "nextn.enorm.weight",
    "hnorm.weight": "nextn.hnorm.weight",
    "shared_head.head.weight": "nextn.shared_head_head.weight",
    "shared_head.norm.weight": "nextn.shared_head_norm.weight",
}
GGUF_TOP_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
GGUF_EXPERT_PROJ = {"gate_proj": "ffn_gate_exps.weight", "up_proj": "ffn_up_exps.weight",
                    "down_proj": "ffn_down_exps.weight"}


def yarn_mscale(factor, m):
    return 0.1 * m * math.log(factor) + 1.0 if factor > 1 else 1.0


def llama_permute(w, n_head):
    """llama.cpp's q/k row permutation: per head, rows (j, j + d/2) become adjacent."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(cfg):
    rs = cfg["rope_scaling"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    base = float(cfg["rope_theta"])
    freqs = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    out = []
    for f in freqs.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < old / hi:
            out.append(1.0)
        elif wavelen > old / lo:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def gguf_token_lists(folder, vocab_size):
    """tokens / token types as the converter's get_vocab_base writes them (gpt2 BPE)."""
    import gguf
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    vocab = tok.get_vocab(with_added_tokens=True)
    added = tok.get_added_tokens_decoder()
    rev = {i: t for t, i in vocab.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in rev:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        t = rev[i]
        if i in added:
            looks = (t.startswith("<|") and t.endswith("|>")) or (t.startswith("<\uff5c") and t.endswith("\uff5c>"))
            if added[i].special or looks:
                types.append(gguf.TokenType.CONTROL)
            else:
                t = t.replace("\u2581", " ")
                types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(t)
    return tokens, types


def gguf_qtype_for(gname, arr, want):
    import gguf

    Q = gguf.GGMLQuantizationType
    if arr.ndim <= 1 or gname.endswith("_norm.weight") or not gname.endswith(".weight"):
        return Q.F32
    if gname.endswith("ffn_gate_inp.weight"):
        return Q.F32
    if want == "F32":
        return Q.F32
    if want == "F16":
        return Q.F16
    if want == "Q8_0":
        return Q.Q8_0 if arr.shape[-1] % 32 == 0 else Q.F16
    raise ValueError(want)


def gguf_tensors(cfg, W, v):
    """(gguf name, float32 array in GGUF layout) in converter order, from HF-named float tensors."""
    arch = cfg["model_type"]
    out = []
    L = cfg["num_hidden_layers"]
    n_layers = L + (1 if v.get("mtp") else 0)
    if arch in ("llama",) and cfg.get("rope_scaling", {}).get("rope_type") == "llama3":
        out.append(("rope_freqs.weight", llama3_rope_factors(cfg)))
    for name, t in W.items():
        a = t.to(torch.float32).numpy()
        if name in GGUF_TOP_NAMES:
            if name == "lm_head.weight" and cfg.get("tie_word_embeddings"):
                continue
            out.append((GGUF_TOP_NAMES[name], a))
            continue
        assert name.startswith("model.layers."), name
        bid, rest = name[len("model.layers."):].split(".", 1)
        bid = int(bid)
        if bid >= n_layers:
            continue
        if rest.startswith("mlp.experts."):
            continue  # stacked below
        if bid >= L and rest in ("embed_tokens.weight",):
            out.append((f"blk.{bid}.nextn.embed_tokens.weight", a))
            continue
        if rest == "self_attn.kv_b_proj.weight" and v.get("mla_split"):
            nh, dn, dv = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"]
            kvb = a.reshape(nh, dn + dv, a.shape[-1])
            out.append((f"blk.{bid}.attn_k_b.weight", np.ascontiguousarray(kvb[:, :dn, :].transpose(0, 2, 1))))
            out.append((f"blk.{bid}.attn_v_b.weight", np.ascontiguousarray(kvb[:, dn:, :])))
            continue
        if arch == "llama" and rest in ("self_attn.q_proj.weight", "self_attn.q_proj.bias"):
            a = llama_permute(a, cfg["num_attention_heads"])
        if arch == "llama" and rest in ("self_attn.k_proj.weight", "self_attn.k_proj.bias"):
            a = llama_permute(a, cfg["num_key_value_heads"])
        out.append((f"blk.{bid}.{GGUF_BLOCK_NAMES[rest]}", a))
    for bid in range(n_layers):
        E = cfg.get("n_routed_experts") or 0
        p = f"model.layers.{bid}.mlp.experts."
        if E == 0 or p + "0.gate_proj.weight" not in W:
            continue
        for proj, gname in GGUF_EXPERT_PROJ.items():
            stacked = np.stack([W[f"{p}{x}.{proj}.weight"].to(torch.float32).numpy() for x in range(E)])
            out.append((f"blk.{bid}.{gname}", stacked))
    return out


def write_gguf(folder, v):
    """Write one GGUF variant of the fixture in `folder`; returns the written paths."""
    import gguf

    cfg, W64 = ref_load_folder(folder)
    from safetensors import safe_open

    W = {}
    for fn in sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")):
        with safe_open(os.path.join(folder, fn), framework="pt") as f:
            for k in f.keys():
                W[k] = f.get_tensor(k)
    arch_hf = cfg["model_type"]
    arch = {"deepseek_v3": "deepseek2", "deepseek_v2": "deepseek2", "qwen2": "qwen2", "llama": "llama"}[arch_hf]
    Q = gguf.GGMLQuantizationType
    ftype = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
             "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[v["qtype"]]
    tensors = gguf_tensors(cfg, W, v)
    parts = v.get("split_parts", 1)
    path = os.path.join(folder, v["file"])
    stem = path[: -len(".gguf")]
    for old in os.listdir(folder):
        if old.startswith(os.path.basename(stem)) and old.endswith(".gguf"):
            os.remove(os.path.join(folder, old))
    w = gguf.GGUFWriter(path, arch, split_max_tensors=-(-len(tensors) // parts) if parts > 1 else 0)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(os.path.basename(folder))
    L = cfg["num_hidden_layers"]
    mtp = 1 if v.get("mtp") else 0
    w.add_block_count(L + mtp)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    theta = cfg.get("rope_theta", rs.get("rope_theta"))
    if arch == "deepseek2":
        mla = v.get("mla_split")
        w.add_head_count_kv(1 if mla else cfg["num_attention_heads"])
        w.add_rope_freq_base(theta)
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_expert_count(cfg["n_routed_experts"])
        w.add_expert_used_count(cfg["num_experts_per_tok"])
        if cfg.get("n_group") is not None:
            w.add_expert_group_count(cfg["n_group"])
        if cfg.get("topk_group") is not None:
            w.add_expert_group_used_count(cfg["topk_group"])
        if cfg.get("scoring_func") == "sigmoid":
            w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
        elif cfg.get("scoring_func") == "softmax":
            w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
        w.add_file_type(ftype)
        w.add_leading_dense_block_count(cfg["first_k_dense_replace"])
        w.add_vocab_size(cfg["vocab_size"])
        if cfg.get("q_lora_rank") is not None:
            w.add_q_lora_rank(cfg["q_lora_rank"])
        w.add_kv_lora_rank(cfg["kv_lora_rank"])
        if mla:
            w.add_key_length(cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"])
            w.add_value_length(cfg["kv_lora_rank"])
            w.add_key_length_mla(cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"])
            w.add_value_length_mla(cfg["v_head_dim"])
        else:
            w.add_key_length(cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"])
            w.add_value_length(cfg["v_head_dim"])
        w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
        w.add_expert_shared_count(cfg.get("n_shared_experts", 0))
        if cfg.get("routed_scaling_factor") is not None:
            w.add_expert_weights_scale(cfg["routed_scaling_factor"])
        if cfg.get("norm_topk_prob"):
            w.add_expert_weights_norm(True)
        w.add_rope_dimension_count(cfg["qk_rope_head_dim"])
        if rs.get("rope_type", rs.get("type")) == "yarn":
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(rs["factor"])
            w.add_rope_scaling_orig_ctx_len(rs["original_max_position_embeddings"])
            if rs.get("beta_fast") is not None:
                w.add_rope_scaling_yarn_beta_fast(rs["beta_fast"])
            if rs.get("beta_slow") is not None:
                w.add_rope_scaling_yarn_beta_slow(rs["beta_slow"])
            if rs.get("mscale_all_dim") is not None:
                w.add_rope_scaling_yarn_log_mul(0.1 * rs["mscale_all_dim"])
                if rs.get("mscale") is not None and rs["mscale"] != rs["mscale_all_dim"]:
                    w.add_rope_scaling_yarn_attn_factor(
                        yarn_mscale(rs["factor"], rs["mscale"]) / yarn_mscale(rs["factor"], rs["mscale_all_dim"]))
        if mtp:
            w.add_nextn_predict_layers(mtp)
    else:
        w.add_head_count_kv(cfg["num_key_value_heads"])
        w.add_rope_freq_base(theta)
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_file_type(ftype)
        if arch == "llama":
            w.add_vocab_size(cfg["vocab_size"])
            w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    # Tokenizer (gpt2 BPE) and chat template.
    tokens, types = gguf_token_lists(folder, cfg["vocab_size"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("deepseek-v3")
    w.add_token_list(tokens)
    w.add_token_types(types)
    gguf.SpecialVocab(folder, load_merges=True).add_to_gguf(w, quiet=True)
    for gname, a in tensors:
        qt = gguf_qtype_for(gname, a, v["qtype"])
        if qt == Q.F32:
            w.add_tensor(gname, a.astype(np.float32))
        elif qt == Q.F16:
            w.add_tensor(gname, a.astype(np.float16))
        else:
            w.add_tensor(gname, gguf.quants.quantize(a, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if parts > 1:
        return [f"{stem}-{i:05d}-of-{parts:05d}.gguf" for i in range(1, parts + 1)]
    return [path]


def gguf_read_back(paths, cfg):
    """HF-named float64 tensors of the model stored in `paths` (gguf-py reader, dequantized;
    an independent inverse of gguf_tensors)."""
    import gguf

    G = {}
    for p in paths:
        for t in gguf.GGUFReader(p).tensors:
            a = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = [int(d) for d in reversed(t.shape.tolist())]
            G[t.name] = torch.tensor(np.array(a, dtype=np.float64).reshape(shape))
    inv_block = {g: h for h, g in GGUF_BLOCK_NAMES.items()}
    inv_top = {g: h for h, g in GGUF_TOP_NAMES.items()}
    W = {}
    for g, a in G.items():
        if g in inv_top:
            W[inv_top[g]] = a
            continue
        if g == "rope_freqs.weight":
            continue
        bid, rest = g[len("blk."):].split(".", 1)
        p = f"model.layers.{bid}."
        if rest in ("attn_k_b.weight", "attn_v_b.weight"):
            if rest == "attn_k_b.weight":
                k_b, v_b = a, G[f"blk.{bid}.attn_v_b.weight"]
                W[p + "self_attn.kv_b_proj.weight"] = torch.cat([k_b.transpose(1, 2), v_b], dim=1).reshape(-1, a.shape[1])
            continue
        if rest in GGUF_EXPERT_PROJ.values():
            proj = [k for k, val in GGUF_EXPERT_PROJ.items() if val == rest][0]
            for x in range(a.shape[0]):
                W[f"{p}mlp.experts.{x}.{proj}.weight"] = a[x]
            continue
        h = inv_block[rest]
        if cfg["model_type"] == "llama" and h.startswith("self_attn.q_proj"):
            a = llama_unpermute(a, cfg["num_attention_heads"])
        if cfg["model_type"] == "llama" and h.startswith("self_attn.k_proj"):
            a = llama_unpermute(a, cfg["num_key_value_heads"])
        W[p + h] = a
    return W


def gguf_golden(folder, paths, v, golden):
    """float64 logits of the model stored in `paths` and their distance to golden.json."""
    cfg, W_orig = ref_load_folder(folder)
    W = gguf_read_back(paths, cfg)
    if cfg.get("tie_word_embeddings") and "lm_head.weight" not in W and cfg["model_type"].startswith("deepseek"):
        W["lm_head.weight"] = W["model.embed_tokens.weight"]
    dense = cfg["model_type"] in ("qwen2", "llama")
    for k in W_orig:
        if not (k.startswith(f"model.layers.{cfg['num_hidden_layers']}.") and not v.get("mtp")):
            assert k in W, f"{v['file']}: {k} not read back"

    def fwd(weights, ids):
        if dense:
            return ref_dense_forward(cfg, weights, ids)
        return ref_forward(cfg, weights, ids)[0]

    prompt = golden["prompt_ids"]
    T = len(prompt)
    seq = list(prompt)
    margins = []
    for _ in range(N_GREEDY):
        lg = fwd(W, seq)
        margins.append(float(top2_margin(lg[-1])[1]))
        seq.append(int(lg[-1].argmax()))
    logits = fwd(W, seq[:-1])
    margins.append(float(top2_margin(logits[:T])[1].min()))
    orig = fwd(W_orig, prompt + golden["greedy_ids"][:-1])
    diff = float((logits[:T] - orig[:T]).abs().max())
    weights_diff = max(float((W[k] - W_orig[k]).abs().max()) for k in W if k in W_orig)
    g = dict(
        files=[os.path.basename(p) for p in paths],
        qtype=v["qtype"],
        prompt_ids=prompt,
        argmax=logits[:T].argmax(-1).tolist(),
        first_logits=flist(logits[0]),
        last_logits=flist(logits[T - 1]),
        greedy_ids=seq[T:],
        min_margin=min(margins),
        max_abs_weight_diff_vs_safetensors=weights_diff,
        prompt_logits_max_abs_diff_vs_golden=diff,
        argmax_equal_golden=logits[:T].argmax(-1).tolist() == golden["argmax"],
        greedy_equal_golden=seq[T:] == golden["greedy_ids"],
    )
    if v.get("mtp") and "mtp_golden" in golden:
        mg = golden["mtp_golden"]
        _, h = ref_forward(cfg, W, prompt)
        ml = ref_mtp(cfg, W, prompt, golden["greedy_ids"][0], h)
        g["mtp_last_logits_max_abs_diff_vs_golden"] = float(
            (ml[-1] - torch.tensor(mg["last_logits"], dtype=torch.float64)).abs().max())
    return g


def write_gguf_fixtures(only=None):
    for name, variants in GGUF_VARIANTS.items():
        if only and name not in only:
            continue
        folder = os.path.join(FIXTURES, name)
        golden = json.load(open(os.path.join(folder, "golden.json")))
        out = {}
        for v in variants:
            paths = write_gguf(folder, v)
            g = gguf_golden(folder, paths, v, golden)
            out[v["file"]] = g
            log(f"{name}/{v['file']}: {sum(os.path.getsize(p) for p in paths)} bytes in {len(paths)} file(s), "
                f"weights vs safetensors {g['max_abs_weight_diff_vs_safetensors']:.2e}, prompt logits vs golden "
                f"{g['prompt_logits_max_abs_diff_vs_golden']:.2e}, greedy equal {g['greedy_equal_golden']}, "
                f"min margin {g['min_margin']:.2e}")
        write_json(os.path.join(folder, "golden-gguf.json"), out)


# ----------------------------------------------------------------------------------------
# Benchmark-shape writer (not committed)
# ----------------------------------------------------------------------------------------

V2_LITE_SHAPE = dict(
    hidden=2048, inter=10944, moe_inter=1408, layers=27, heads=16, q_lora=None, kv_lora=512, qk_nope=128,
    qk_rope=64, v_head=128, experts=64, top_k=6, shared=2, vocab=102400, first_dense=1,
)


V3_SHAPE = dict(
    hidden=7168, inter=18432, moe_inter=2048, layers=61, heads=128, q_lora=1536, kv_lora=512, qk_nope=128,
    qk_rope=64, v_head=128, experts=256, top_k=8, shared=1, vocab=129280, first_dense=3, n_group=8,
    topk_group=4, version=3,
)


def write_v2_lite_shape(out, n_layers, layers_per_shard=2, seed=1234, fp8=False, shape=None, experts=None):
    """Random checkpoint with DeepSeek-V2-Lite's real shapes (or `shape`, e.g. V3_SHAPE), streamed
    layer by layer: bf16, or with fp8=True the projection and expert weights in DeepSeek's block
    FP8 (e4m3 codes plus a `weight_scale_inv` per 128x128 block; embeddings, norms, router and
    lm_head stay bf16). `experts` overrides the routed expert count (DeepSeek-V3's 256 take 11
    GiB a layer in FP8: fewer keep a few MoE layers within a small machine's memory, with every
    row and column length as in the real model)."""
    s = dict(shape or V2_LITE_SHAPE, layers=n_layers)
    if experts:
        s["experts"] = experts
    v3 = s.get("version") == 3
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    H, V = s["hidden"], s["vocab"]

    def lin(o, i, gain=1.0):
        return (torch.randn(o, i, generator=gen, dtype=torch.float32) * (gain / math.sqrt(i))).to(torch.bfloat16)

    def norm(n):
        return (1.0 + 0.1 * torch.randn(n, generator=gen)).to(torch.bfloat16)

    def proj(name, w):
        """A projection weight as stored: bf16, or FP8 codes plus their block scales."""
        if not fp8:
            return {name: w}
        code, scale = fp8_quantize(w.to(torch.float32).numpy())
        return {name: code, name + "_scale_inv": scale}

    def mlp(p, inter):
        t = proj(p + "gate_proj.weight", lin(inter, H))
        t.update(proj(p + "up_proj.weight", lin(inter, H)))
        t.update(proj(p + "down_proj.weight", lin(H, inter, 0.7)))
        return t

    def layer(i):
        p = f"model.layers.{i}."
        qk = s["qk_nope"] + s["qk_rope"]
        t = {p + "input_layernorm.weight": norm(H),
             p + "self_attn.kv_a_layernorm.weight": norm(s["kv_lora"]),
             p + "post_attention_layernorm.weight": norm(H)}
        if s["q_lora"]:
            t[p + "self_attn.q_a_layernorm.weight"] = norm(s["q_lora"])
            t.update(proj(p + "self_attn.q_a_proj.weight", lin(s["q_lora"], H)))
            t.update(proj(p + "self_attn.q_b_proj.weight", lin(s["heads"] * qk, s["q_lora"])))
        else:
            t.update(proj(p + "self_attn.q_proj.weight", lin(s["heads"] * qk, H)))
        t.update(proj(p + "self_attn.kv_a_proj_with_mqa.weight", lin(s["kv_lora"] + s["qk_rope"], H)))
        t.update(proj(p + "self_attn.kv_b_proj.weight",
                      lin(s["heads"] * (s["qk_nope"] + s["v_head"]), s["kv_lora"])))
        t.update(proj(p + "self_attn.o_proj.weight", lin(H, s["heads"] * s["v_head"], 0.7)))
        if i < s["first_dense"]:
            t.update(mlp(p + "mlp.", s["inter"]))
        else:
            t[p + "mlp.gate.weight"] = lin(s["experts"], H, 2.0)
            if v3:
                bias = 0.01 * torch.randn(s["experts"], generator=gen, dtype=torch.float32)
                t[p + "mlp.gate.e_score_correction_bias"] = bias
            for e in range(s["experts"]):
                t.update(mlp(p + f"mlp.experts.{e}.", s["moe_inter"]))
            t.update(mlp(p + "mlp.shared_experts.", s["moe_inter"] * s["shared"]))
        return t

    groups = [list(range(a, min(a + layers_per_shard, n_layers))) for a in range(0, n_layers, layers_per_shard)]
    n_shards = len(groups) + 2  # embeddings, layer groups, final norm + lm_head
    fname = lambda k: f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors"  # noqa: E731
    weight_map, total = {}, 0

    def flush(k, tensors):
        nonlocal total
        save_file(tensors, os.path.join(out, fname(k)), metadata={"format": "pt"})
        for n, t in tensors.items():
            weight_map[n] = fname(k)
            total += t.numel() * t.element_size()
        log(f"  wrote {fname(k)} ({sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20:.0f} MiB)")

    flush(0, {"model.embed_tokens.weight": (torch.randn(V, H, generator=gen)).to(torch.bfloat16)})
    for k, grp in enumerate(groups, start=1):
        t = {}
        for i in grp:
            t.update(layer(i))
        flush(k, t)
        del t
    flush(n_shards - 1, {"model.norm.weight": norm(H), "lm_head.weight": lin(V, H, 2.0)})
    write_json(os.path.join(out, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    cfg = {
        "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "vocab_size": V,
        "hidden_size": H, "intermediate_size": s["inter"], "moe_intermediate_size": s["moe_inter"],
        "num_hidden_layers": n_layers, "num_attention_heads": s["heads"], "num_key_value_heads": s["heads"],
        "n_shared_experts": s["shared"], "n_routed_experts": s["experts"], "routed_scaling_factor": 1.0,
        "kv_lora_rank": s["kv_lora"], "q_lora_rank": None, "qk_rope_head_dim": s["qk_rope"],
        "qk_nope_head_dim": s["qk_nope"], "v_head_dim": s["v_head"], "topk_method": "greedy", "n_group": 1,
        "topk_group": 1, "num_experts_per_tok": s["top_k"], "moe_layer_freq": 1, "first_k_dense_replace": 1,
        "norm_topk_prob": False, "scoring_func": "softmax", "hidden_act": "silu", "max_position_embeddings": 163840,
        "rms_norm_eps": 1e-6, "rope_theta": 10000, "tie_word_embeddings": False, "attention_bias": False,
        "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                         "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
        "bos_token_id": 0, "eos_token_id": 1, "torch_dtype": "bfloat16", "use_cache": True,
    }
    if v3:
        cfg.update({
            "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "q_lora_rank": s["q_lora"],
            "first_k_dense_replace": s["first_dense"], "topk_method": "noaux_tc", "scoring_func": "sigmoid",
            "n_group": s["n_group"], "topk_group": s["topk_group"], "norm_topk_prob": True,
            "routed_scaling_factor": 2.5, "num_nextn_predict_layers": 0,
            "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                             "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
        })
    if fp8:
        cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                      "weight_block_size": [128, 128]}
    write_json(os.path.join(out, "config.json"), cfg)
    write_json(os.path.join(out, "generation_config.json"), {"bos_token_id": 0, "eos_token_id": 1})
    write_tokenizer(build_tokenizer(), out)
    log(f"wrote {out}: {n_layers} layers, {total / 2**30:.2f} GiB")


QWEN25_15B_SHAPE = dict(hidden=1536, layers=28, heads=12, kv_heads=2, inter=8960, vocab=151936)


def write_qwen25_15b_shape(out, n_layers, seed=4321):
    """Random bf16 checkpoint with Qwen2.5-1.5B's (= R1-Distill-Qwen-1.5B's) shapes: GQA 12/2 heads
    of 128, q/k/v biases, tied embeddings (no lm_head tensor), streamed into one shard per layer
    group. For benchmarks; not committed."""
    s = dict(QWEN25_15B_SHAPE, layers=n_layers)
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    H, V, hd = s["hidden"], s["vocab"], s["hidden"] // s["heads"]

    def lin(o, i, gain=1.0):
        return (torch.randn(o, i, generator=gen) * (gain / math.sqrt(i))).to(torch.bfloat16)

    def vec(n, mean=0.0, std=0.02):
        return (mean + std * torch.randn(n, generator=gen)).to(torch.bfloat16)

    weight_map, total, shards = {}, 0, []

    def flush(tensors):
        nonlocal total
        name = f"part-{len(shards):03d}.safetensors"
        save_file(tensors, os.path.join(out, name), metadata={"format": "pt"})
        shards.append(name)
        for n, t in tensors.items():
            weight_map[n] = name
            total += t.numel() * t.element_size()

    flush({"model.embed_tokens.weight": (0.02 * torch.randn(V, H, generator=gen)).to(torch.bfloat16),
           "model.norm.weight": vec(H, 1.0, 0.1)})
    for i in range(n_layers):
        p = f"model.layers.{i}."
        flush({p + "input_layernorm.weight": vec(H, 1.0, 0.1),
               p + "post_attention_layernorm.weight": vec(H, 1.0, 0.1),
               p + "self_attn.q_proj.weight": lin(s["heads"] * hd, H), p + "self_attn.q_proj.bias": vec(s["heads"] * hd),
               p + "self_attn.k_proj.weight": lin(s["kv_heads"] * hd, H),
               p + "self_attn.k_proj.bias": vec(s["kv_heads"] * hd),
               p + "self_attn.v_proj.weight": lin(s["kv_heads"] * hd, H),
               p + "self_attn.v_proj.bias": vec(s["kv_heads"] * hd),
               p + "self_attn.o_proj.weight": lin(H, s["heads"] * hd, 0.7),
               p + "mlp.gate_proj.weight": lin(s["inter"], H), p + "mlp.up_proj.weight": lin(s["inter"], H),
               p + "mlp.down_proj.weight": lin(H, s["inter"], 0.7)})
    write_json(os.path.join(out, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    write_json(os.path.join(out, "config.json"), {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": V, "hidden_size": H,
        "intermediate_size": s["inter"], "num_hidden_layers": n_layers, "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"], "hidden_act": "silu", "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6, "rope_theta": 10000, "tie_word_embeddings": True, "use_sliding_window": False,
        "sliding_window": 4096, "max_window_layers": 21, "torch_dtype": "bfloat16", "bos_token_id": 0,
        "eos_token_id": 1})
    write_json(os.path.join(out, "generation_config.json"), {"bos_token_id": 0, "eos_token_id": 1})
    write_tokenizer(build_tokenizer(), out)
    log(f"wrote {out}: {n_layers} layers, {total / 2**30:.2f} GiB")


# ----------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=["v2-lite", "v3", "qwen2.5-1.5b"],
                    help="write a benchmark-shape random checkpoint instead")
    ap.add_argument("--out", help="output directory for --shape")
    ap.add_argument("--layers", type=int, default=None, help="number of layers for --shape (default: real)")
    ap.add_argument("--fp8", action="store_true", help="with --shape: store projections in DeepSeek block FP8")
    ap.add_argument("--experts", type=int, default=None,
                    help="with --shape v2-lite or v3: routed experts per MoE layer (default: real)")
    ap.add_argument("--only", nargs="*", help="only these fixtures (names), tokenizer always written")
    ap.add_argument("--gguf-only", action="store_true",
                    help="only (re)write the GGUF files and golden-gguf.json of the committed fixture folders")
    args = ap.parse_args()

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if args.shape:
        if not args.out:
            ap.error("--shape needs --out DIR")
        if args.shape == "qwen2.5-1.5b":
            write_qwen25_15b_shape(args.out, args.layers or QWEN25_15B_SHAPE["layers"])
        elif args.shape == "v3":
            write_v2_lite_shape(args.out, args.layers or V3_SHAPE["layers"], fp8=args.fp8, shape=V3_SHAPE,
                                experts=args.experts)
        else:
            write_v2_lite_shape(args.out, args.layers or V2_LITE_SHAPE["layers"], fp8=args.fp8,
                                experts=args.experts)
        return

    t0 = time.time()
    if args.gguf_only:
        write_gguf_fixtures(args.only)
        log(f"done in {time.time() - t0:.1f}s")
        return
    install_patches()
    os.makedirs(FIXTURES, exist_ok=True)
    tok = build_tokenizer()
    tdir = os.path.join(FIXTURES, "tokenizer")
    write_tokenizer(tok, tdir)
    write_json(os.path.join(tdir, "golden.json"), tokenizer_golden(tok))
    log(f"tokenizer: {tok.get_vocab_size(with_added_tokens=True)} tokens")

    jobs = [
        (spec_v3_tiny(), 1000, ("group_score_max", "group_score_sum_all", "no_group_limit")),
        (spec_v3_fp8_tiny(), 2000, ("mask_fill_0.0_instead_of_-inf",)),
        (spec_v2_lite_tiny(), 3000, ()),
        (spec_v2_tiny(), 4000, ("no_group_limit",)),
    ]
    for s, seed, alts in jobs:
        if args.only and s["name"] not in args.only:
            continue
        make_fixture(s, tok, seed, alts)
    for spec, seed in DENSE_JOBS:
        s = spec()
        if args.only and s["name"] not in args.only:
            continue
        make_dense_fixture(s, tok, seed)
    write_gguf_fixtures(args.only)
    log(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
