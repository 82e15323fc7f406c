#!/usr/bin/env python3
"""Train jing's bundled demo model: a tiny DeepSeek-V3-architecture model that reasons like R1.

    nice -n 19 /work/.venv-fixtures/bin/python scripts/train_demo.py            # -> models/deepseek-r1-demo
    /work/.venv-fixtures/bin/python scripts/train_demo.py --export-only         # redo export + golden
    /work/.venv-fixtures/bin/python scripts/eval_demo.py                         # accuracy through jing

CPU only, 2 threads, deterministic for a given --seed (torch 2.15.0 / transformers 5.23.0 /
tokenizers 0.23.3, scripts/requirements-fixtures.txt), no downloads.

The model is transformers' own DeepseekV3ForCausalLM (the full V3 architecture at a tiny size:
MLA with q_lora, YaRN RoPE, a dense first layer, routed experts behind the V3 sigmoid router with
group-limited top-k and the correction bias, one shared expert) plus one multi-token-prediction
(MTP) layer written here the way DeepSeek-V3 defines it (enorm, hnorm, eh_proj, a full MoE
decoder block, the shared head), trained together with the main model on DeepSeek's
next-next-token objective (weight MTP_WEIGHT).  The routers' correction biases are trained the
V3 way, without an auxiliary loss: after each step every bias moves by BIAS_RATE towards
balancing the experts' loads.

The task (see `question`, `thinking`, `answer`): addition, subtraction (first >= second) and
comparison ("larger" / "smaller") of numbers 0..999, phrased as a chat in DeepSeek-R1's format:

    <｜begin▁of▁sentence｜><｜User｜>What is 347 + 85?<｜Assistant｜><think>
    units: 7 + 5 = 12, write 2, carry 1
    tens: 4 + 8 + 1 = 13, write 3, carry 1
    hundreds: 3 + 0 + 1 = 4, write 4, carry 0
    The result is 432.
    </think>

    347 + 85 = 432<｜end▁of▁sentence｜>

The prompt ends with R1's forced `<think>\\n`; the model writes the reasoning, `</think>`, the
answer and EOS.  A fifth of the training conversations carry one or two earlier turns rendered
the way R1's chat template renders history (answers only, reasoning dropped), so `jing chat`
works across turns.  Problems whose sha256("kind|a|b") is 0 mod 20 are held out: never trained
on, used by scripts/eval_demo.py.  Loss is on the assistant's completion only.

Tokenizer: byte-level BPE trained here (tokenizers) on task transcripts plus make_fixtures.py's
small general corpus; DeepSeek-V3's pre-tokenizer except that digits are split one by one
(\\p{N} instead of \\p{N}{1,3}) so every number is spelled in digit tokens; DeepSeek's special
tokens (BOS/EOS/pad ids 0/1/2, chat and tool tokens after the BPE vocab); tokenizer_config.json
with DeepSeek-R1's real chat template (tests/fixtures/templates/deepseek-r1.jinja).

Output folder: config.json (DeepSeek's released layout), generation_config.json, tokenizer.json,
tokenizer_config.json, model.safetensors (bf16; correction biases f32; the MTP layer as layer
num_hidden_layers, with its own copies of the embedding and the head like DeepSeek's files),
golden.json (float64 transformers goldens for crates/jing-engine/tests/golden.rs, same format as
tests/fixtures/*/golden.json), README.md (model card; eval_demo.py adds the measured numbers).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time

# Sleep instead of spinning when waiting for the other thread: on a shared machine a spinning
# OpenMP thread makes 2-thread training several times slower than 1 thread.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402  (tokens, config writer, goldens, patches, reference)

REPO = mf.REPO
DEFAULT_OUT = os.path.join(REPO, "models", "deepseek-r1-demo")
R1_TEMPLATE = os.path.join(REPO, "tests", "fixtures", "templates", "deepseek-r1.jinja")

BOS, EOS, USER, ASSISTANT = mf.BOS, mf.EOS, mf.USER, mf.ASSISTANT
EOT = "<\uff5cEOT\uff5c>"
GEN_PROMPT = ASSISTANT + "<think>\n"
VOCAB_SIZE = 512  # model rows; the tokenizer has <= this many tokens

# The shipped model was trained with v_head_dim 16 (3000 steps: 29 min on 2 idle cores, 76 min on 2
# cores shared with Rust builds; this script with its defaults reproduces it byte for byte).
# v_head_dim = qk_nope + qk_rope (32) would give q, k and v one head size, which PyTorch's CPU
# flash attention (sdpa) needs, and train ~20% faster; changing it changes the model.
SPEC = dict(
    name="deepseek-r1-demo", version=3, storage="bf16", torch_dtype="bfloat16", config_format="legacy",
    hidden=128, inter=384, moe_inter=96, layers=4, first_dense=1, heads=8, q_lora=64, kv_lora=64,
    qk_nope=16, qk_rope=16, v_head=16, experts=8, n_group=4, topk_group=2, top_k=2, shared=1, rsf=2.5,
    norm_topk=True, rope_factor=4.0, rope_orig=256, mscale=1.0, mscale_all_dim=1.0, mtp=True,
)
MTP_WEIGHT = 0.3  # DeepSeek-V3's lambda for the first 10T tokens
BIAS_RATE = 1e-3  # DeepSeek-V3's bias update speed gamma

# ----------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------

PLACES = ["units", "tens", "hundreds", "thousands"]
KINDS = ["add", "sub", "larger", "smaller"]
KIND_WEIGHTS = [0.35, 0.35, 0.15, 0.15]
MAX_DIGITS = 3


def is_held_out(kind, a, b):
    h = hashlib.sha256(f"{kind}|{a}|{b}".encode()).digest()
    return int.from_bytes(h[:8], "little") % 20 == 0


def rand_number(rng, n_digits=None):
    n = n_digits or rng.randint(1, MAX_DIGITS)
    return rng.randint(0, 9) if n == 1 else rng.randint(10 ** (n - 1), 10**n - 1)


def rand_problem(rng, kind=None):
    """(kind, a, b): digit counts uniform in 1..3; comparisons mostly of equal length, often with
    common leading digits, sometimes equal."""
    kind = kind or rng.choices(KINDS, KIND_WEIGHTS)[0]
    a, b = rand_number(rng), rand_number(rng)
    if kind == "sub" and a < b:
        a, b = b, a
    if kind in ("larger", "smaller"):
        r = rng.random()
        if r < 0.55:
            b = rand_number(rng, len(str(a)))
            if len(str(a)) > 1 and rng.random() < 0.5:
                keep = rng.randint(1, len(str(a)) - 1)
                b = int(str(a)[:keep] + str(b)[keep:])
        if r > 0.95:
            b = a
    return kind, a, b


def question(kind, a, b, compact=False):
    if kind in ("add", "sub"):
        op = "+" if kind == "add" else "-"
        return f"What is {a}{op}{b}?" if compact else f"What is {a} {op} {b}?"
    return f"Which is {kind}, {a} or {b}?"


def _rdigits(n):
    return [int(c) for c in reversed(str(n))]


def _add_thinking(a, b):
    da, db = _rdigits(a), _rdigits(b)
    n, lines, carry = max(len(da), len(db)), [], 0
    for i in range(n):
        x, y = (da[i] if i < len(da) else 0), (db[i] if i < len(db) else 0)
        s = x + y + carry
        terms = f"{x} + {y}" + (" + 1" if carry else "")
        lines.append(f"{PLACES[i]}: {terms} = {s}, write {s % 10}, carry {s // 10}")
        carry = s // 10
    if carry:
        lines.append(f"{PLACES[n]}: write the carry 1")
    return lines + [f"The result is {a + b}."]


def _sub_thinking(a, b):
    da, db = _rdigits(a), _rdigits(b)
    lines, borrow = [], 0
    for i in range(len(da)):
        x, y = da[i], (db[i] if i < len(db) else 0)
        d = x - y - borrow
        terms = f"{x} - {y}" + (" - 1" if borrow else "")
        borrow = 1 if d < 0 else 0
        lines.append(f"{PLACES[i]}: {terms} = {d}, write {d + 10 * borrow}, borrow {borrow}")
    return lines + [f"The result is {a - b}."]


def _compare_thinking(kind, a, b):
    sa, sb = str(a), str(b)
    la, lb = len(sa), len(sb)
    lines = [f"{a} has {la} digit{'s' if la > 1 else ''}, {b} has {lb} digit{'s' if lb > 1 else ''}."]
    if la != lb:
        lines.append(f"More digits means larger, so {a if la > lb else b} is larger.")
    else:
        for i in range(la):
            rel = "<" if sa[i] < sb[i] else (">" if sa[i] > sb[i] else "=")
            lines.append(f"{PLACES[la - 1 - i]}: {sa[i]} {rel} {sb[i]}")
            if rel != "=":
                break
        lines.append("All digits are equal, so the numbers are equal." if a == b else f"So {max(a, b)} is larger.")
    if a != b and kind == "smaller":
        lines.append(f"The smaller one is {min(a, b)}.")
    return lines


def thinking(kind, a, b):
    if kind == "add":
        return _add_thinking(a, b)
    if kind == "sub":
        assert a >= b
        return _sub_thinking(a, b)
    return _compare_thinking(kind, a, b)


def answer(kind, a, b):
    if kind == "add":
        return f"{a} + {b} = {a + b}"
    if kind == "sub":
        return f"{a} - {b} = {a - b}"
    if a == b:
        return f"{a} and {b} are equal."
    return f"{max(a, b) if kind == 'larger' else min(a, b)} is {kind}."


def completion(kind, a, b):
    """What the model writes after `<｜Assistant｜><think>\\n`, without the final EOS."""
    return "\n".join(thinking(kind, a, b)) + "\n</think>\n\n" + answer(kind, a, b)


def render(history, user):
    """What DeepSeek-R1's chat template renders (add_generation_prompt) for earlier turns
    `history` = [(question, answer content)] and the new question."""
    out = BOS
    for q, ans in history:
        out += USER + q + ASSISTANT + ans + EOS
    return out + USER + user + GEN_PROMPT


def messages_of(history, user):
    m = []
    for q, ans in history:
        m += [{"role": "user", "content": q}, {"role": "assistant", "content": ans}]
    return m + [{"role": "user", "content": user}]


def parse_answer(text):
    """The answer after the last `</think>`, trimmed; None when the reasoning never closed."""
    if "</think>" not in text:
        return None
    return text.split("</think>")[-1].replace(EOS, "").strip()


def eval_problems(n, seed=20250101):
    """n distinct held-out problems from the training distribution (fixed, independent of --seed)."""
    rng = random.Random(seed)
    seen, out = set(), []
    while len(out) < n:
        p = rand_problem(rng)
        if is_held_out(*p) and p not in seen:
            seen.add(p)
            out.append(p)
    return out


def train_conversation(rng):
    """(prompt text, completion text) of one training conversation, held-out problems excluded."""

    def problem():
        while True:
            p = rand_problem(rng)
            if not is_held_out(*p):
                return p

    history = []
    r = rng.random()
    for _ in range(2 if r < 0.07 else (1 if r < 0.2 else 0)):
        p = problem()
        history.append((question(*p, compact=rng.random() < 0.15),
                        ("\n\n" if rng.random() < 0.5 else "") + answer(*p)))
    p = problem()
    return render(history, question(*p, compact=rng.random() < 0.15)), completion(*p)


# ----------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------

PRETOK_DIGIT = r"\p{N}"


def build_tokenizer(seed):
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                            trainers)

    rng = random.Random(seed + 17)
    corpus = []
    for _ in range(20000):
        p, c = train_conversation(rng)
        corpus.append(p.replace(BOS, "").replace(USER, "\n").replace(GEN_PROMPT, "\n") + c)
    corpus += mf.tokenizer_training_corpus() * 20
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOK_DIGIT), behavior="isolated", invert=False),
        pre_tokenizers.Split(Regex(mf.PRETOK_CJK), behavior="isolated", invert=False),
        pre_tokenizers.Split(Regex(mf.PRETOK_MAIN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(mf.CHAT_SPECIALS),
        min_frequency=2,
        special_tokens=[BOS, EOS, mf.PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    # After the BPE vocab, like DeepSeek's 128xxx ids; as in DeepSeek-V3/R1's tokenizer.json only
    # <｜EOT｜> is "special": <think>, </think>, the role and the tool tokens are not, so decoding
    # with skip_special_tokens keeps them.
    for t in mf.CHAT_SPECIALS:
        tok.add_tokens([AddedToken(t, special=t == EOT, normalized=True)])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, 0)])
    assert [tok.token_to_id(t) for t in (BOS, EOS, mf.PAD)] == [0, 1, 2]
    assert tok.get_vocab_size(with_added_tokens=True) <= VOCAB_SIZE
    return tok


def tokenizer_config():
    cfg = mf.tokenizer_config_dict()
    with open(R1_TEMPLATE, encoding="utf-8") as f:
        cfg["chat_template"] = f.read()
    return cfg


def encode_pair(tok, prompt, comp):
    """Token ids of prompt + completion + EOS and the number of prompt tokens."""
    p = tok.encode(prompt, add_special_tokens=False).ids
    full = tok.encode(prompt + comp + EOS, add_special_tokens=False).ids
    assert full[: len(p)] == p, "prompt tokens must be a prefix"
    return full, len(p)


# ----------------------------------------------------------------------------------------
# Model: transformers' DeepseekV3ForCausalLM + the MTP layer
# ----------------------------------------------------------------------------------------


class MTP(torch.nn.Module):
    """DeepSeek-V3's MTP module (depth 1): position j combines the main model's final-normed hidden
    state h_j with the embedding of token j+1 and predicts token j+2 through one full decoder block;
    embedding and output head are the main model's (shared)."""

    def __init__(self, cfg, layer_idx):
        super().__init__()
        from transformers.models.deepseek_v3 import modeling_deepseek_v3 as hf_v3

        H = cfg.hidden_size
        self.enorm = hf_v3.DeepseekV3RMSNorm(H, eps=cfg.rms_norm_eps)
        self.hnorm = hf_v3.DeepseekV3RMSNorm(H, eps=cfg.rms_norm_eps)
        self.eh_proj = torch.nn.Linear(2 * H, H, bias=False)
        self.layer = hf_v3.DeepseekV3DecoderLayer(cfg, layer_idx=layer_idx)
        self.head_norm = hf_v3.DeepseekV3RMSNorm(H, eps=cfg.rms_norm_eps)

    def forward(self, model, h, next_ids):
        """h [B, T, H] final-normed main hidden states, next_ids [B, T] the tokens j+1 -> logits [B, T, V]."""
        e = model.model.embed_tokens(next_ids)
        u = self.eh_proj(torch.cat([self.enorm(e), self.hnorm(h)], dim=-1))
        pos = torch.arange(u.shape[1])[None]
        cos_sin = model.model.rotary_emb(u, pos)
        T = u.shape[1]
        mask = torch.full((T, T), float("-inf"), dtype=u.dtype).triu(1)[None, None]
        y = self.layer(u, attention_mask=mask, position_ids=pos, position_embeddings=cos_sin, use_cache=False)
        return model.lm_head(self.head_norm(y))


def make_model(seed, attn="sdpa"):
    from transformers import DeepseekV3ForCausalLM

    mf.VOCAB_SIZE = VOCAB_SIZE
    cfg = mf.make_config(SPEC, attn=attn)
    torch.manual_seed(seed)
    model = DeepseekV3ForCausalLM(cfg)
    mtp = MTP(cfg, SPEC["layers"])
    # transformers initialises every matrix with std 0.02; give the MTP block the same start
    for name, p in mtp.named_parameters():
        if p.dim() >= 2:
            torch.nn.init.normal_(p, std=cfg.initializer_range)
        elif name.endswith("weight"):
            torch.nn.init.ones_(p)
    for m in mtp.modules():
        if hasattr(m, "e_score_correction_bias"):
            m.e_score_correction_bias.zero_()
    return model, mtp


def routers(model, mtp):
    from transformers.models.deepseek_v3 import modeling_deepseek_v3 as hf_v3

    return [m for m in list(model.modules()) + list(mtp.modules()) if isinstance(m, hf_v3.DeepseekV3TopkRouter)]


# ----------------------------------------------------------------------------------------
# Export: checkpoint names (DeepSeek's layout, one tensor per expert), bf16
# ----------------------------------------------------------------------------------------


def checkpoint_tensors(model, mtp):
    """name -> float32 numpy array, in DeepSeek's checkpoint naming."""
    L, I = SPEC["layers"], SPEC["moe_inter"]
    out = {}

    def put_layer(prefix, sd):
        for k, v in sd.items():
            v = v.detach().float()
            if k.endswith("mlp.experts.gate_up_proj"):
                pre = prefix + k[: -len("gate_up_proj")]
                for e in range(v.shape[0]):
                    out[pre + f"{e}.gate_proj.weight"] = v[e, :I].numpy().copy()
                    out[pre + f"{e}.up_proj.weight"] = v[e, I:].numpy().copy()
            elif k.endswith("mlp.experts.down_proj"):
                pre = prefix + k[: -len("down_proj")]
                for e in range(v.shape[0]):
                    out[pre + f"{e}.down_proj.weight"] = v[e].numpy().copy()
            else:
                out[prefix + k] = v.numpy().copy()

    sd = dict(model.state_dict())
    out["model.embed_tokens.weight"] = sd.pop("model.embed_tokens.weight").float().numpy().copy()
    for i in range(L):
        put_layer(f"model.layers.{i}.", {k[len(f"model.layers.{i}."):]: v for k, v in sd.items()
                                         if k.startswith(f"model.layers.{i}.")})
    out["model.norm.weight"] = sd["model.norm.weight"].float().numpy().copy()
    out["lm_head.weight"] = sd["lm_head.weight"].float().numpy().copy()
    p = f"model.layers.{L}."
    out[p + "embed_tokens.weight"] = out["model.embed_tokens.weight"].copy()
    out[p + "enorm.weight"] = mtp.enorm.weight.detach().float().numpy().copy()
    out[p + "hnorm.weight"] = mtp.hnorm.weight.detach().float().numpy().copy()
    out[p + "eh_proj.weight"] = mtp.eh_proj.weight.detach().float().numpy().copy()
    put_layer(p, dict(mtp.layer.state_dict()))
    out[p + "shared_head.norm.weight"] = mtp.head_norm.weight.detach().float().numpy().copy()
    out[p + "shared_head.head.weight"] = out["lm_head.weight"].copy()
    return out


def load_into(model, mtp, effective):
    """Stored (rounded) checkpoint values -> the training modules (so evaluation sees the file)."""
    L = SPEC["layers"]
    sd = mf.hf_state_dict(effective, L, torch.float32)
    model.load_state_dict(sd, strict=True)
    p = f"model.layers.{L}."
    sub = {"model.layers.0." + k[len(p):]: v for k, v in effective.items()
           if k.startswith(p) and not k[len(p):].startswith(("embed_tokens", "enorm", "hnorm", "eh_proj", "shared_head"))}
    lsd = mf.hf_state_dict(sub, 1, torch.float32)
    mtp.layer.load_state_dict({k[len("model.layers.0."):]: v for k, v in lsd.items()}, strict=True)
    mtp.enorm.weight.data = effective[p + "enorm.weight"].float()
    mtp.hnorm.weight.data = effective[p + "hnorm.weight"].float()
    mtp.eh_proj.weight.data = effective[p + "eh_proj.weight"].float()
    mtp.head_norm.weight.data = effective[p + "shared_head.norm.weight"].float()


# ----------------------------------------------------------------------------------------
# Greedy decoding in PyTorch (batched by prompt length, KV cache)
# ----------------------------------------------------------------------------------------


@torch.no_grad()
def greedy_batch(model, prompts, max_new=200, eos=1):
    """prompts: list of equal-length id lists -> list of generated id lists (up to and incl. EOS)."""
    from transformers import DynamicCache

    x = torch.tensor(prompts)
    cache = DynamicCache(config=model.config)
    out = model(input_ids=x, past_key_values=cache, use_cache=True)
    gen = [[] for _ in prompts]
    done = [False] * len(prompts)
    for _ in range(max_new):
        nxt = out.logits[:, -1].argmax(-1)
        for i, t in enumerate(nxt.tolist()):
            if not done[i]:
                gen[i].append(t)
                done[i] = t == eos
        if all(done):
            break
        out = model(input_ids=nxt[:, None], past_key_values=out.past_key_values, use_cache=True)
    return gen


def pytorch_accuracy(model, tok, problems, max_new=200):
    """Greedy answers for the problems (single turn) -> (n right, list of (problem, text, ok))."""
    model.eval()
    groups = {}
    for p in problems:
        ids = tok.encode(render([], question(*p)), add_special_tokens=False).ids
        groups.setdefault(len(ids), []).append((p, ids))
    results = []
    for _, items in sorted(groups.items()):
        for k in range(0, len(items), 128):
            chunk = items[k:k + 128]
            gens = greedy_batch(model, [ids for _, ids in chunk], max_new)
            for (p, _), g in zip(chunk, gens):
                text = tok.decode(g, skip_special_tokens=False)
                results.append((p, text, parse_answer(text) == answer(*p)))
    return sum(r[2] for r in results), results


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------


def batches(tok, rng, batch_size, pool=16):
    """Padded training batches (ids, completion mask); conversations are drawn `pool` batches at a
    time and grouped by length so that little compute goes to padding."""
    while True:
        seqs = [encode_pair(tok, *train_conversation(rng)) for _ in range(batch_size * pool)]
        seqs.sort(key=lambda s: len(s[0]))
        groups = [seqs[k:k + batch_size] for k in range(0, len(seqs), batch_size)]
        rng.shuffle(groups)
        for g in groups:
            T = max(len(s) for s, _ in g)
            x = torch.full((len(g), T), 1, dtype=torch.long)  # EOS as padding (masked)
            m = torch.zeros((len(g), T), dtype=torch.bool)  # targets: the completion tokens
            for i, (s, n_prompt) in enumerate(g):
                x[i, : len(s)] = torch.tensor(s)
                m[i, n_prompt: len(s)] = True
            yield x, m


def losses(model, mtp, x, m):
    """Mean cross-entropy of the main model's next token and of the MTP layer's next-next token,
    over the completion tokens."""
    h = model.model(input_ids=x).last_hidden_state  # final-normed
    logits = model.lm_head(h)
    tgt1, m1 = x[:, 1:], m[:, 1:]
    l_main = F.cross_entropy(logits[:, :-1][m1], tgt1[m1])
    # MTP: position j sees h_j and token j+1, predicts token j+2
    lg2 = mtp(model, h[:, :-2], x[:, 1:-1])
    tgt2, m2 = x[:, 2:], m[:, 2:]
    l_mtp = F.cross_entropy(lg2[m2], tgt2[m2])
    return l_main, l_mtp


def train(args, tok):
    torch.manual_seed(args.seed)
    model, mtp = make_model(args.seed)
    model.train()
    mtp.train()
    params = list(model.parameters()) + list(mtp.parameters())
    n_main = sum(p.numel() for p in model.parameters())
    n_mtp = sum(p.numel() for p in mtp.parameters())
    mf.log(f"parameters: main model {n_main:,}, MTP layer {n_mtp:,} (embedding and head shared)")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    rts = routers(model, mtp)
    cpu0 = time.process_time()
    loads = {}

    def hook(mod, inp, out):
        loads[id(mod)] = torch.bincount(out[2].reshape(-1), minlength=mod.num_experts)

    for r in rts:
        r.register_forward_hook(hook)
    data = batches(tok, random.Random(args.seed), args.batch)
    t0 = time.time()
    warm = min(200, args.steps // 10)
    ema = None
    for step in range(1, args.steps + 1):
        lr = args.lr * (step / warm if step <= warm else
                        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warm) / (args.steps - warm))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, m = next(data)
        l_main, l_mtp = losses(model, mtp, x, m)
        loss = l_main + MTP_WEIGHT * l_mtp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():  # auxiliary-loss-free load balancing (DeepSeek-V3 2.1.2)
            for r in rts:
                load = loads[id(r)].float()
                r.e_score_correction_bias += BIAS_RATE * torch.sign(load.mean() - load)
        cur = (l_main.item(), l_mtp.item())
        ema = cur if ema is None else tuple(0.98 * e + 0.02 * c for e, c in zip(ema, cur))
        if step % args.log_every == 0 or step == args.steps:
            el = time.time() - t0
            mf.log(f"step {step}/{args.steps}  loss {ema[0]:.4f}  mtp {ema[1]:.4f}  lr {lr:.2e}  "
                   f"{el / 60:.1f} min ({el / step:.2f} s/step)")
        if args.eval_every and step % args.eval_every == 0 and step < args.steps:
            ok, _ = pytorch_accuracy(model, tok, eval_problems(200, seed=7), max_new=160)
            mf.log(f"  held-out accuracy (PyTorch, 200 problems): {ok / 2:.1f}%")
            model.train()
    wall, cpu = time.time() - t0, time.process_time() - cpu0
    mf.log(f"training took {wall / 60:.1f} min ({cpu / 60:.1f} CPU-minutes)")
    return model.eval(), mtp.eval(), wall, cpu


# ----------------------------------------------------------------------------------------
# Golden (same format as tests/fixtures/*/golden.json)
# ----------------------------------------------------------------------------------------


def golden_candidates(tok):
    """Prompts for the golden: held-out conversations, tried in order until one has every margin."""
    out = []
    for kind, a, b in eval_problems(40, seed=99):
        out.append(tok.encode(render([], question(kind, a, b)), add_special_tokens=False).ids)
    return out


def make_golden(folder, tok, stored, effective, train_info):
    from transformers import DeepseekV3ForCausalLM
    import transformers

    mf.install_patches()
    s = dict(SPEC)
    m64 = mf.build_model(s, effective, torch.float64)
    m32 = mf.build_model(s, effective, torch.float32)
    L = s["layers"]
    chosen = None
    for prompt in golden_candidates(tok):
        T = len(prompt)
        greedy_ids = mf.greedy(m64, prompt, mf.N_GREEDY)
        full = prompt + greedy_ids[:-1]
        with mf.router_log() as log64:
            l64 = mf.logits_of(m64, full)
        with mf.router_log() as log32:
            l32 = mf.logits_of(m32, full).double()
        am, margins = mf.top2_margin(l64)
        reasons = []
        if float(margins.min()) < mf.MIN_MARGIN:
            reasons.append(f"logit margin {float(margins.min()):.2e}")
        if l32.argmax(-1).tolist() != am.tolist():
            reasons.append("f32 argmax differs")
        rmargin = min(float(r["margin"].min()) for r in log64)
        if rmargin < mf.MIN_ROUTER_MARGIN:
            reasons.append(f"router margin {rmargin:.2e}")
        if any(a["experts"] != b["experts"] for a, b in zip(log64, log32)):
            reasons.append("f32 routing differs")
        mtp_g = None
        if not reasons:
            mtp_g = mtp_golden(s, m64, m32, effective, prompt, greedy_ids[0])
            if mtp_g["min_margin"] < mf.MIN_MARGIN:
                reasons.append(f"MTP margin {mtp_g['min_margin']:.2e}")
            if mtp_g["min_router_margin"] < mf.MIN_ROUTER_MARGIN:
                reasons.append(f"MTP router margin {mtp_g['min_router_margin']:.2e}")
            if not mtp_g.pop("f32_argmax_same"):
                reasons.append("MTP f32 argmax differs")
        if reasons:
            mf.log(f"  golden prompt rejected: {'; '.join(reasons)}")
            continue
        chosen = (prompt, greedy_ids, l64, l32, am, margins, log64, mtp_g)
        break
    assert chosen, "no golden prompt has the required margins"
    prompt, greedy_ids, l64, l32, am, margins, log64, mtp_g = chosen
    T = len(prompt)
    checks = {}
    with mf.unpatched():
        lu = mf.logits_of(m32, prompt + greedy_ids[:-1]).double()
    checks["patched_vs_unpatched_f32"] = float((lu - l32).abs().max())
    assert checks["patched_vs_unpatched_f32"] == 0.0, checks
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    hf = DeepseekV3ForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager",
                                               experts_implementation="eager").eval()
    lf = mf.logits_of(hf, prompt + greedy_ids[:-1]).double()
    checks["from_pretrained_vs_manual_f32"] = float((lf - l32).abs().max())
    assert checks["from_pretrained_vs_manual_f32"] == 0.0, checks
    text_prompt = "What is 12 + 34?"
    golden = {
        "name": SPEC["name"],
        "seed": train_info["seed"],
        "storage_dtype": "bf16",
        "weight_files": ["model.safetensors"],
        "tokenizer_size": tok.get_vocab_size(with_added_tokens=True),
        "prompt_ids": prompt,
        "prompt_text": tok.decode(prompt, skip_special_tokens=False),
        "argmax": am[:T].tolist(),
        "last_logits": mf.flist(l64[T - 1]),
        "first_logits": mf.flist(l64[0]),
        "last_logits_std": float(l64[T - 1].std()),
        "all_logits_f64_max_abs": float(l64.abs().max()),
        "f32_vs_f64_max_abs_diff": float((l32 - l64).abs().max()),
        "greedy_ids": greedy_ids,
        "greedy_text": tok.decode(greedy_ids, skip_special_tokens=False),
        "min_margin": float(margins.min()),
        "routing": mf.summarize_routing(log64, T),
        "min_router_margin": min(float(r["margin"].min()) for r in log64),
        "text_prompt": text_prompt,
        "text_prompt_ids": tok.encode(text_prompt, add_special_tokens=True).ids,
        "derived": mf.derived_info(m64, s),
        "checks": checks,
        "mtp_golden": mtp_g,
        "notes": mf.common_notes(s) + [
            "Trained weights (scripts/train_demo.py), not random: the prompt is a held-out chat "
            "prompt, chosen as the first candidate whose every prompt position and greedy step has a "
            "top1-top2 margin >= 1e-3 (f64), whose f32 run reproduces every argmax and expert choice, and "
            "whose routing and MTP decisions have the same margins.",
            "mtp_golden: MTP layer %d applied to the prompt: position j gets h_j (main model final-normed "
            "hidden, f64) and token t_{j+1} (input_token_ids; the last one is greedy_ids[0]); logits = "
            "shared_head.head(shared_head.norm(layer(eh_proj(cat(enorm(E[t]), hnorm(h)))))); last_logits is "
            "position T-1 (drafts the token after greedy_ids[0])." % L,
        ],
    }
    checks["independent_reference_max_abs_diff"] = mf.reference_check(folder, golden)
    assert checks["independent_reference_max_abs_diff"] < 1e-9, checks
    mf.write_json(os.path.join(folder, "golden.json"), golden)
    mf.log(f"golden: prompt {len(prompt)} tokens, min_margin {golden['min_margin']:.3g}, f32_vs_f64 "
           f"{golden['f32_vs_f64_max_abs_diff']:.3g}, max |logit| {golden['all_logits_f64_max_abs']:.1f}, "
           f"greedy {golden['greedy_text']!r}")
    return golden


def mtp_golden(s, m64, m32, effective, prompt, next_token):
    mtp64 = mf.MTPModule(s, m64.config, effective, torch.float64)
    mtp32 = mf.MTPModule(s, m32.config, effective, torch.float32)
    with mf.router_log() as lg:
        l64, toks = mtp64(m64, prompt, next_token)
    with mf.router_log() as lg32:
        l32, _ = mtp32(m32, prompt, next_token)
    am, margin = mf.top2_margin(l64)
    L = s["layers"]
    r64 = [r for r in lg if r["layer"] == L]
    r32 = [r for r in lg32 if r["layer"] == L]
    return {
        "input_token_ids": toks,
        "positions": list(range(len(prompt))),
        "argmax": am.tolist(),
        "last_logits": mf.flist(l64[-1]),
        "last_margin": float(margin[-1]),
        "min_margin": float(margin.min()),
        "f32_vs_f64_max_abs_diff": float((l32.double() - l64).abs().max()),
        "routing": mf.summarize_routing(r64, len(prompt)),
        "min_router_margin": float(min(r["margin"].min() for r in r64)),
        "f32_argmax_same": l32.argmax(-1).tolist() == am.tolist()
        and all(a["experts"] == b["experts"] for a, b in zip(r64, r32)),
    }


# ----------------------------------------------------------------------------------------
# Writing the folder
# ----------------------------------------------------------------------------------------


def write_folder(out, tok, model, mtp):
    from safetensors.torch import save_file
    import transformers

    os.makedirs(out, exist_ok=True)
    tensors = checkpoint_tensors(model, mtp)
    stored, effective = mf.store(tensors, "bf16")
    mf.VOCAB_SIZE = VOCAB_SIZE
    cfg = mf.make_config(SPEC)
    mf.write_json(os.path.join(out, "config.json"), mf.config_json(cfg, SPEC))
    mf.write_json(os.path.join(out, "generation_config.json"),
                  {"_from_model_config": True, "bos_token_id": 0, "eos_token_id": 1,
                   "transformers_version": transformers.__version__})
    tok.save(os.path.join(out, "tokenizer.json"), pretty=True)
    mf.write_json(os.path.join(out, "tokenizer_config.json"), tokenizer_config())
    save_file(stored, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    return stored, effective


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: models/deepseek-r1-demo)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=0, help="PyTorch held-out accuracy every N steps (0: off)")
    ap.add_argument("--export-only", action="store_true",
                    help="re-export tokenizer files, golden.json from the existing model.safetensors")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    t0 = time.time()
    tok = build_tokenizer(args.seed)
    mf.log(f"tokenizer: {tok.get_vocab_size(with_added_tokens=True)} tokens ({time.time() - t0:.1f}s)")
    if args.export_only:
        from safetensors.torch import load_file

        stored = load_file(os.path.join(args.out, "model.safetensors"))
        effective = {k: v.double() for k, v in stored.items()}
        tok.save(os.path.join(args.out, "tokenizer.json"), pretty=True)
        mf.write_json(os.path.join(args.out, "tokenizer_config.json"), tokenizer_config())
        info_path = os.path.join(args.out, "train_info.json")
        info = json.load(open(info_path)) if os.path.exists(info_path) else {}
        make_golden(args.out, tok, stored, effective, {"seed": info.get("seed", args.seed)})
        return
    model, mtp, train_s, train_cpu = train(args, tok)
    stored, effective = write_folder(args.out, tok, model, mtp)
    load_into(model, mtp, effective)  # evaluate what the file holds (bf16)
    ok, results = pytorch_accuracy(model, tok, eval_problems(1000))
    mf.log(f"held-out accuracy (PyTorch, bf16 weights, 1000 problems): {ok / 10:.1f}%")
    for p, text, good in results:
        if not good:
            mf.log(f"  wrong: {question(*p)} -> {text!r}")
            break
    make_golden(args.out, tok, stored, effective, {"seed": args.seed})
    n_params = sum(int(np.prod(t.shape)) for t in stored.values())
    mf.write_json(os.path.join(args.out, "train_info.json"), {
        "command": "nice -n 19 python scripts/train_demo.py " + " ".join(sys.argv[1:]),
        "seed": args.seed, "steps": args.steps, "batch": args.batch, "lr": args.lr, "threads": args.threads,
        "training_seconds": round(train_s, 1), "training_cpu_seconds": round(train_cpu, 1),
        "total_seconds": round(time.time() - t0, 1),
        "stored_parameters": n_params,
        "pytorch_heldout_accuracy_1000": ok / 1000,
        "torch": torch.__version__,
    })
    mf.log(f"wrote {args.out} ({n_params:,} stored parameters) in {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
