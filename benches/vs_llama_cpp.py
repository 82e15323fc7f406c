#!/usr/bin/env python3
"""jing against llama.cpp on the same GGUF files, same threads, in one run.

For every file, the two engines take turns (jing, llama.cpp, jing, llama.cpp, ...) for
--rounds rounds, so a slow minute on a shared machine hits both. Each jing round is two
`jing bench --json` commands, `-p P -n 1` for prefill and `-p 1 -n N` for decode (each the
median of --reps repetitions, with the machine's read bandwidth measured in the same command),
so that decode starts from an empty context as `llama-bench`'s tg test does; each llama.cpp
round is one `llama-bench -o json` with the same -p, -n, -t and -r. The table reports the
medians over rounds and their ratio.

With --fresh-cache, each file is first dropped from the page cache (`posix_fadvise`
DONTNEED, which an unprivileged user may do for a file nothing maps) and read in again, so that
both engines map it in the pages a fresh read gives (2 MiB ones where the kernel and file system
have them) rather than in whatever state earlier runs left it: after a large file has filled
memory, a smaller one read back in can sit in 4 KiB pages, and a mixture of experts' decode in
jing then slowed by a third (llama.cpp's by a few percent) on the machine of docs/benchmarks.md.

    python3 benches/vs_llama_cpp.py --jing target/release/jing \
        --llama-bench /path/to/llama.cpp/build/bin/llama-bench -t 2 -p 512 -n 128 \
        /tmp/bench/v2lite4-q8_0.gguf /tmp/bench/v2lite4-q4_k_m.gguf
"""

import argparse
import json
import os
import statistics
import subprocess
import sys


def jing_bench(jing, path, p, n, a):
    cmd = [jing, "bench", "--model", path, "-p", str(p), "-n", str(n), "-t", str(a.t),
           "--reps", str(a.reps), "--json"] + (["--no-mmap"] if a.no_mmap else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run_jing(jing, path, a):
    """Prefill from `-p P -n 1`, decode (and the roofline figures) from `-p 1 -n N`."""
    pp = jing_bench(jing, path, a.p, 1, a)
    tg = jing_bench(jing, path, 1, a.n, a)
    return dict(tg, prefill_tok_s=pp["prefill_tok_s"], prefill_run=pp)


def no_mmap_args(bench, env):
    """llama-bench's flag for reading the weights into its own buffer: `--load-mode none` in
    builds that have it (0c1e570 has), `-mmp 0` in older ones."""
    help_text = subprocess.run([bench, "--help"], capture_output=True, text=True, env=env)
    return ["-lm", "none"] if "--load-mode" in help_text.stdout + help_text.stderr else ["-mmp", "0"]


def run_llama(bench, path, a):
    env = dict(os.environ)
    lib = os.path.dirname(os.path.abspath(bench))
    env["LD_LIBRARY_PATH"] = lib + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    cmd = [bench, "-m", path, "-p", str(a.p), "-n", str(a.n), "-t", str(a.t), "-r", str(a.reps), "-o", "json"]
    if a.no_mmap:
        cmd += no_mmap_args(bench, env)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    rows = json.loads(out)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
    return {"pp": pp, "tg": tg, "build": rows[0].get("build_commit", "?"), "cpu": rows[0].get("cpu_info", "?")}


def refresh_cache(path):
    """Drop `path` from the page cache and read it in again (see --fresh-cache)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while os.read(fd, 64 << 20):
            pass
    finally:
        os.close(fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", help="GGUF files")
    ap.add_argument("--jing", default="target/release/jing")
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-t", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--reps", type=int, default=3, help="repetitions inside each engine's command")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per file")
    ap.add_argument("--no-mmap", action="store_true",
                    help="both engines copy the weights into their own memory (jing --no-mmap, "
                         "llama-bench --load-mode none or -mmp 0) instead of mapping the file")
    ap.add_argument("--fresh-cache", action="store_true",
                    help="before each file, drop it from the page cache and read it in again")
    ap.add_argument("--json", help="also write all raw results here")
    a = ap.parse_args()

    results, raw = [], []
    for path in a.files:
        if a.fresh_cache:
            print(f"[{os.path.basename(path)}] dropping it from the page cache and reading it again",
                  file=sys.stderr, flush=True)
            refresh_cache(path)
        J, L = [], []
        for r in range(a.rounds):
            print(f"[{os.path.basename(path)}] round {r + 1}/{a.rounds}: jing", file=sys.stderr, flush=True)
            J.append(run_jing(a.jing, path, a))
            print(f"[{os.path.basename(path)}] round {r + 1}/{a.rounds}: llama.cpp", file=sys.stderr, flush=True)
            L.append(run_llama(a.llama_bench, path, a))
        raw.append({"file": path, "jing": J, "llama_cpp": L})
        med = statistics.median
        row = {
            "file": os.path.basename(path),
            "size_gb": J[0]["total_weight_bytes"] / 1e9,
            "active_gb": J[0]["active_bytes_per_token"] / 1e9,
            "bw": med(j["read_bandwidth_gb_s"] for j in J),
            "j_pp": med(j["prefill_tok_s"] for j in J),
            "l_pp": med(x["pp"] for x in L),
            "j_tg": med(j["decode_tok_s"] for j in J),
            "l_tg": med(x["tg"] for x in L),
            "roof": med(j["decode_fraction_of_roofline"] for j in J),
            "build": L[0]["build"],
        }
        results.append(row)

    loading = "weights copied into memory (jing --no-mmap, llama-bench without mmap)" if a.no_mmap else "weights memory-mapped"
    if a.fresh_cache:
        loading += ", each file read fresh into the page cache first"
    print(f"\n{a.t} threads, pp{a.p} / tg{a.n}, medians of {a.rounds} alternating rounds "
          f"(each the mean/median of {a.reps} repetitions); {loading}; "
          f"llama.cpp build {results[0]['build']}\n")
    print("| file | weights GB | active GB/token | read BW GB/s | pp jing | pp llama.cpp | pp ratio "
          "| tg jing | tg llama.cpp | tg ratio | jing tg % of roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['file']} | {r['size_gb']:.2f} | {r['active_gb']:.3f} | {r['bw']:.1f} "
              f"| {r['j_pp']:.1f} | {r['l_pp']:.1f} | {r['j_pp'] / r['l_pp']:.2f}x "
              f"| {r['j_tg']:.2f} | {r['l_tg']:.2f} | {r['j_tg'] / r['l_tg']:.2f}x | {100 * r['roof']:.0f}% |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
