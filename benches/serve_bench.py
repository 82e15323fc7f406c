#!/usr/bin/env python3
"""Serving benchmark for `jing serve` (or any OpenAI-compatible server).

Runs streaming chat completions at several concurrency levels and reports, per level:
requests/s, output tokens/s, time to first token (TTFT) and inter-token latency (ITL), p50
and p99, and end-to-end latency. Every stream asks for exactly `--max-tokens` tokens
(`ignore_eos`, a vLLM extension jing also accepts) so that levels are comparable.

Standard library only, so it runs anywhere Python 3.8+ does:

    jing serve --model /models/v2-lite-shaped --max-num-seqs 64 &
    python3 benches/serve_bench.py --url http://127.0.0.1:8000 --concurrency 1,4,16,64

Definitions (as vLLM's benchmark_serving uses them):
- TTFT: from sending the request to the first chunk that carries generated text.
- ITL: the gap between consecutive chunks that carry generated text (one token each).
- output tokens/s: completion tokens of all requests of a level / wall time of the level.
"""

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def one_request(url, headers, body, result):
    """POST a streaming request and record chunk arrival times."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
    start = time.perf_counter()
    times = []
    usage = None
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            result["error"] = f"HTTP {resp.status}: {resp.read()[:300]!r}"
            return
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            data = line[len(b"data: "):]
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                result["error"] = chunk["error"].get("message")
                return
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                if delta.get("content") or delta.get("reasoning_content"):
                    times.append(time.perf_counter())
    except Exception as e:  # a failed request is reported, not fatal
        result["error"] = repr(e)
        return
    finally:
        conn.close()
    result["start"] = start
    result["end"] = time.perf_counter()
    result["times"] = times
    result["usage"] = usage


def run_level(args, model, concurrency, n_requests):
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    lock = threading.Lock()
    queue = list(range(n_requests))
    results = []

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                i = queue.pop()
            body = json.dumps(
                {
                    "model": model,
                    "messages": [
                        {
                            "role": "user",
                            "content": f"{args.prompt} (request {i})",
                        }
                    ],
                    "max_tokens": args.max_tokens,
                    "temperature": 0,
                    "ignore_eos": True,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
            )
            r = {}
            one_request(args.url, headers, body, r)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0

    ok = [r for r in results if "error" not in r]
    errors = [r["error"] for r in results if "error" in r]
    ttft = [r["times"][0] - r["start"] for r in ok if r["times"]]
    itl = [b - a for r in ok for a, b in zip(r["times"], r["times"][1:])]
    e2e = [r["end"] - r["start"] for r in ok]
    out_tokens = sum(
        (r["usage"] or {}).get("completion_tokens", len(r["times"])) for r in ok
    )
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "failed": len(errors),
        "first_error": errors[0] if errors else None,
        "wall_s": wall,
        "requests_per_s": len(ok) / wall,
        "output_tokens_per_s": out_tokens / wall,
        "ttft_p50_ms": 1e3 * percentile(ttft, 50),
        "ttft_p99_ms": 1e3 * percentile(ttft, 99),
        "itl_p50_ms": 1e3 * percentile(itl, 50),
        "itl_p99_ms": 1e3 * percentile(itl, 99),
        "e2e_p50_s": percentile(e2e, 50),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--model", help="model name (default: the first of /v1/models)")
    ap.add_argument("--api-key")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument(
        "--requests",
        type=int,
        help="requests per level (default: 2 x concurrency, at least 4)",
    )
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument(
        "--prompt",
        default="Explain, step by step, how a binary search finds a number in a sorted list.",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object per level")
    args = ap.parse_args()

    model = args.model
    if model is None:
        u = urllib.parse.urlsplit(args.url)
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        conn.request("GET", "/v1/models", headers=headers)
        model = json.loads(conn.getresponse().read())["data"][0]["id"]

    levels = [int(c) for c in args.concurrency.split(",")]
    rows = []
    for c in levels:
        n = args.requests or max(2 * c, 4)
        print(f"concurrency {c}: {n} requests of {args.max_tokens} tokens...", file=sys.stderr)
        row = run_level(args, model, c, n)
        rows.append(row)
        if args.json:
            print(json.dumps(row))
    if not args.json:
        print(
            f"{'streams':>7} {'req/s':>7} {'out tok/s':>10} {'TTFT p50':>9} {'TTFT p99':>9}"
            f" {'ITL p50':>8} {'ITL p99':>8} {'failed':>6}"
        )
        for r in rows:
            print(
                f"{r['concurrency']:>7} {r['requests_per_s']:>7.2f} {r['output_tokens_per_s']:>10.1f}"
                f" {r['ttft_p50_ms']:>7.0f}ms {r['ttft_p99_ms']:>7.0f}ms"
                f" {r['itl_p50_ms']:>6.0f}ms {r['itl_p99_ms']:>6.0f}ms {r['failed']:>6}"
            )
        base = rows[0]["output_tokens_per_s"]
        for r in rows[1:]:
            print(
                f"aggregate output at {r['concurrency']} streams: "
                f"{r['output_tokens_per_s'] / base:.1f}x the {rows[0]['concurrency']}-stream figure"
            )
    if any(r["failed"] for r in rows):
        print(f"some requests failed: {[r['first_error'] for r in rows if r['failed']]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
