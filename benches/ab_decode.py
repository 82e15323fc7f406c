#!/usr/bin/env python3
"""Two jing builds against each other on one GGUF file: decode tokens/s in adjacent pairs.

On a shared machine the memory bandwidth drifts from minute to minute (the read loop of
docs/benchmarks.md gave anything from 33 to 78 GB/s), so two figures from different minutes
say little. This runs the builds back to back as pairs of short `jing bench --json` decodes,
A then B, then B then A in the next pair (so neither always goes first), and reports the
median of the per-pair ratios B/A with their range.

Run it once with the same build on both sides (`A A`) to see the noise floor of the minute:
on the 2-core machine of docs/benchmarks.md eight such pairs gave 0.979, ranging 0.94-1.09, so
a median a few percent from 1 is no measurable difference there.

    cp target/release/jing /tmp/jing-before     # build the change, then:
    python3 benches/ab_decode.py /tmp/jing-before target/release/jing \
        /tmp/bench/qwen15-q4_k_m.gguf --pairs 10
"""

import argparse
import json
import statistics
import subprocess
import sys


def decode_tok_s(jing, a):
    cmd = [jing, "bench", "--model", a.model, "-p", "1", "-n", str(a.n), "-t", str(a.t),
           "--reps", str(a.reps), "--json"] + ([] if a.mmap else ["--no-mmap"])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["decode_tok_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="the jing binary to compare against (A)")
    ap.add_argument("b", help="the jing binary being measured (B)")
    ap.add_argument("model", help="a GGUF file (or anything `jing bench --model` takes)")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("-n", type=int, default=48, help="tokens decoded per command")
    ap.add_argument("-t", type=int, default=2, help="threads")
    ap.add_argument("--reps", type=int, default=2, help="repetitions inside each command")
    ap.add_argument("--mmap", action="store_true",
                    help="map the file instead of copying it into 2 MiB pages (--no-mmap)")
    a = ap.parse_args()
    if a.pairs < 1:
        sys.exit("--pairs must be at least 1")
    ratios = []
    for i in range(a.pairs):
        if i % 2 == 0:
            ta = decode_tok_s(a.a, a)
            tb = decode_tok_s(a.b, a)
        else:
            tb = decode_tok_s(a.b, a)
            ta = decode_tok_s(a.a, a)
        ratios.append(tb / ta)
        print(f"pair {i + 1}/{a.pairs}: A {ta:.2f} tok/s, B {tb:.2f} tok/s, B/A {tb / ta:.3f}",
              flush=True)
    print(f"B/A: median {statistics.median(ratios):.3f} of {len(ratios)} pairs "
          f"(range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
