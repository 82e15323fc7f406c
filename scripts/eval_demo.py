#!/usr/bin/env python3
"""Measure the demo model (models/deepseek-r1-demo) through jing, and its MTP layer in PyTorch.

    cargo build --release -p jing-cli
    /work/.venv-fixtures/bin/python scripts/eval_demo.py [--model DIR] [--n 1000]

1. Accuracy: the n held-out problems of scripts/train_demo.py (`eval_problems`, disjoint from
   training by construction) go through the release binary, one process each:
   `jing run --model DIR --prompt-ids <R1 chat prompt> --temperature 0 --json`; an answer counts
   when the text after `</think>` is exactly the expected answer line.
2. MTP agreement, in PyTorch (transformers' DeepseekV3ForCausalLM loaded with from_pretrained, the
   MTP layer as make_fixtures.MTPModule builds it from the file): on each of jing's greedy
   sequences, at every step where the main model has just produced token t_{j+1}, the MTP layer's
   top-1 draft for t_{j+2} (from h_j and t_{j+1}) is compared with the main model's greedy t_{j+2}.
   That is the acceptance rate of one-token speculative decoding at temperature 0.
   Also reported: how often PyTorch's own greedy token equals jing's (teacher-forced, f32).
3. For crates/jing-cli/tests/demo.rs: per kind, the longest right solutions whose top-1 minus
   top-2 logit gap is at least PICK_MARGIN at every generated token (teacher-forced, f32).

Writes DIR/eval.json and the numbers into DIR/README.md (the model card).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402
import train_demo as td  # noqa: E402


PICK_MARGIN = 3.0


def run_jing(jing, model, ids, max_tokens, threads):
    cmd = [jing, "run", "--model", model, "--prompt-ids", ",".join(map(str, ids)), "--temperature", "0",
           "--max-tokens", str(max_tokens), "--threads", str(threads), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return json.loads(r.stdout)


def load_torch(folder):
    from safetensors.torch import load_file
    from transformers import DeepseekV3ForCausalLM
    import transformers

    transformers.logging.set_verbosity_error()
    model = DeepseekV3ForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager",
                                                  experts_implementation="eager").eval()
    effective = {k: v.double() for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    cfg = json.load(open(os.path.join(folder, "config.json")))
    s = {"layers": cfg["num_hidden_layers"], "hidden": cfg["hidden_size"]}
    mtp = mf.MTPModule(s, model.config, effective, torch.float32)
    return model, mtp


@torch.no_grad()
def teacher_forced(model, mtp, seq, n_prompt):
    """Main logits and MTP logits over seq (prompt + jing's generated ids)."""
    x = torch.tensor([seq])
    h = model.model(x, use_cache=False).last_hidden_state
    logits = model.lm_head(h)[0]
    # MTP position j: h_j and token j+1 -> token j+2 (mf.MTPModule.forward, batched over the sequence)
    e = mtp.embed[torch.tensor([seq[1:]])]
    u = torch.nn.functional.linear(torch.cat([mtp.enorm(e), mtp.hnorm(h[:, :-1])], dim=-1), mtp.eh_proj)
    T = u.shape[1]
    pos = torch.arange(T)[None]
    cos_sin = model.model.rotary_emb(u, pos)
    mask = torch.full((T, T), float("-inf")).triu(1)[None, None]
    y = mtp.layer(u, attention_mask=mask, position_ids=pos, position_embeddings=cos_sin, use_cache=False)
    mtp_logits = torch.nn.functional.linear(mtp.head_norm(y), mtp.head)[0]
    return logits, mtp_logits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=td.DEFAULT_OUT)
    ap.add_argument("--jing", default=os.path.join(td.REPO, "target", "release", "jing"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2, help="jing processes at a time")
    ap.add_argument("--no-card", action="store_true", help="do not write eval.json / README.md")
    args = ap.parse_args()
    torch.set_num_threads(2)

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    problems = td.eval_problems(args.n)
    prompts = [tok.encode(td.render([], td.question(*p)), add_special_tokens=False).ids for p in problems]

    t0 = time.time()
    with ThreadPoolExecutor(args.workers) as ex:
        outs = list(ex.map(lambda ids: run_jing(args.jing, args.model, ids, args.max_tokens, 1), prompts))
    jing_s = time.time() - t0
    by_kind, wrong = {}, []
    results = []
    for p, o in zip(problems, outs):
        got = td.parse_answer(o["text"])
        ok = got == td.answer(*p)
        by_kind.setdefault(p[0], [0, 0])
        by_kind[p[0]][0] += ok
        by_kind[p[0]][1] += 1
        results.append(ok)
        if not ok:
            wrong.append((td.question(*p), o["text"]))
    n_ok = sum(results)
    print(f"accuracy through jing (temperature 0, {args.n} held-out problems): {n_ok}/{args.n} = "
          f"{100 * n_ok / args.n:.1f}%  ({jing_s:.0f}s)")
    for k, (a, n) in sorted(by_kind.items()):
        print(f"  {k}: {a}/{n}")
    for q, text in wrong[:20]:
        print(f"  wrong: {q} -> {text!r}")

    # MTP agreement and the margins, in PyTorch
    model, mtp = load_torch(args.model)
    agree = total = same_greedy = n_greedy = 0
    best = {}
    t1 = time.time()
    for p, ids, o, ok in zip(problems, prompts, outs, results):
        gen = o["generated_ids"]
        seq = ids + gen
        logits, mtp_logits = teacher_forced(model, mtp, seq, len(ids))
        T = len(ids)
        main_next = logits.argmax(-1)  # position j predicts seq[j+1]
        for j in range(T - 1, len(seq) - 1):
            n_greedy += 1
            same_greedy += int(main_next[j]) == seq[j + 1]
        # drafts: at position j (T-1 <= j <= len-3) MTP predicts seq[j+2] from h_j and seq[j+1]
        for j in range(T - 1, len(seq) - 2):
            total += 1
            agree += int(mtp_logits[j].argmax()) == seq[j + 2]
        if ok:
            top2 = logits[T - 1: len(seq) - 1].topk(2, dim=-1).values
            margin = float((top2[:, 0] - top2[:, 1]).min())
            key = p[0]
            best.setdefault(key, []).append((len(gen), margin, p))
    print(f"MTP top-1 agreement with the main model's next-next greedy token: {agree}/{total} = "
          f"{100 * agree / total:.1f}%  ({time.time() - t1:.0f}s)")
    print(f"PyTorch f32 greedy token == jing's: {same_greedy}/{n_greedy} = {100 * same_greedy / n_greedy:.2f}%")
    picks = []
    for kind in td.KINDS:
        # the longest worked solutions among those with a wide margin at every token
        cands = sorted((c for c in best.get(kind, []) if c[1] >= PICK_MARGIN), key=lambda c: (c[0], c[1]),
                       reverse=True)[:3]
        for n_tokens, margin, p in cands:
            picks.append({"question": td.question(*p), "answer": td.answer(*p), "min_margin": round(margin, 3),
                          "tokens": n_tokens})
    print(f"reliable held-out problems (right, top-1 minus top-2 logit >= {PICK_MARGIN} at every generated "
          f"token; the longest solutions):")
    for pk in picks:
        print(f"  {pk}")

    if args.no_card:
        return
    folder = args.model
    train_info = {}
    if os.path.exists(os.path.join(folder, "train_info.json")):
        train_info = json.load(open(os.path.join(folder, "train_info.json")))
    size = os.path.getsize(os.path.join(folder, "model.safetensors"))
    from safetensors import safe_open

    with safe_open(os.path.join(folder, "model.safetensors"), framework="pt") as f:
        n_params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    ev = {
        "heldout_problems": args.n,
        "jing_accuracy": n_ok / args.n,
        "jing_accuracy_by_kind": {k: v[0] / v[1] for k, v in by_kind.items()},
        "mtp_top1_agreement": agree / total,
        "mtp_drafts": total,
        "pytorch_f32_greedy_equals_jing": same_greedy / n_greedy,
        "stored_parameters": n_params,
        "model_safetensors_bytes": size,
        "reliable_problems": picks,
        "wrong_examples": [{"question": q, "text": t} for q, t in wrong[:20]],
    }
    mf.write_json(os.path.join(folder, "eval.json"), ev)
    write_card(folder, ev, train_info)
    print(f"wrote {folder}/eval.json and README.md")


def write_card(folder, ev, ti):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    mins = ti.get("training_seconds", 0) / 60
    text = f"""# deepseek-r1-demo

jing's bundled demo model: a tiny model with the full DeepSeek-V3 architecture, trained from
scratch by `scripts/train_demo.py` to answer arithmetic questions in DeepSeek-R1's format. It
thinks inside `<think>...</think>`, working digit by digit, then answers.

```text
<｜User｜>What is 347 + 85?<｜Assistant｜><think>
units: 7 + 5 = 12, write 2, carry 1
tens: 4 + 8 + 1 = 13, write 3, carry 1
hundreds: 3 + 0 + 1 = 4, write 4, carry 0
The result is 432.
</think>

347 + 85 = 432
```

It knows `What is A + B?`, `What is A - B?` (A >= B), `Which is larger, A or B?` and
`Which is smaller, A or B?` for whole numbers from 0 to 999, and nothing else.

| | |
|---|---|
| architecture | `DeepseekV3ForCausalLM`: {cfg['num_hidden_layers']} layers (first dense), hidden {cfg['hidden_size']}, MLA ({cfg['num_attention_heads']} heads, q_lora {cfg['q_lora_rank']}, kv_lora {cfg['kv_lora_rank']}), YaRN (factor {cfg['rope_scaling']['factor']}), {cfg['n_routed_experts']} routed experts in {cfg['n_group']} groups (top-{cfg['num_experts_per_tok']}, V3 sigmoid router with correction bias) + {cfg['n_shared_experts']} shared, 1 MTP layer |
| parameters | {ev['stored_parameters']:,} stored (including the MTP layer and its copies of the embedding and head) |
| file | `model.safetensors`, {ev['model_safetensors_bytes'] / 1e6:.1f} MB (bf16; router correction biases f32) |
| tokenizer | byte-level BPE, {json.load(open(os.path.join(folder, 'golden.json')))['tokenizer_size']} tokens, DeepSeek's special tokens, R1's chat template |
| training | `{ti.get('command', 'scripts/train_demo.py')}`: {ti.get('steps', '?')} steps of {ti.get('batch', '?')} conversations, seed {ti.get('seed', '?')}, {mins:.0f} min on {ti.get('threads', 2)} CPU threads |
| accuracy | **{100 * ev['jing_accuracy']:.1f}%** of {ev['heldout_problems']:,} held-out problems, through `jing run` at temperature 0 (held out by hash, never trained on) |
| MTP | top-1 agreement of the MTP draft with the main model's next-next greedy token: **{100 * ev['mtp_top1_agreement']:.1f}%** |

Measured by `scripts/eval_demo.py` (numbers in `eval.json`); `golden.json` holds float64
transformers goldens that `crates/jing-engine/tests/golden.rs` checks jing against.
"""
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
