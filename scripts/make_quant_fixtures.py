#!/usr/bin/env python3
"""Fixtures for jing's GGUF block types (crates/jing-tensor/tests/quant_fixtures.rs).

Writes tests/fixtures/quant/:
  x.f32                   rows x cols input values (little-endian f32), shared by every type
  <type>.q                x quantized by the reference quantizer, rows x row_bytes
  <type>.deq.f32          <type>.q dequantized by the `gguf` package
  <type>.rand.q           random block bytes (scales kept finite), rand_rows x row_bytes
  <type>.rand.deq.f32     <type>.rand.q dequantized by the `gguf` package
  manifest.json           rows, cols, and for each type where its .q bytes come from

The .q bytes come from `gguf.quants.quantize` for the types the `gguf` package quantizes
(q4_0, q4_1, q5_0, q5_1, q8_0), and from ggml's own reference quantizers
(`quantize_row_<type>_ref`, which `llama-quantize` runs when given no importance matrix) in the `ggml-python` package for the K-quants; where both
exist they are checked to agree. Dequantized values come from `gguf` (q8_K, which `gguf` lacks: `d · q` in numpy).

    .venv-fixtures/bin/pip install -r scripts/requirements-fixtures.txt
    .venv-fixtures/bin/python scripts/make_quant_fixtures.py
"""

import ctypes
import json
import os
import sys

from importlib.metadata import version

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "quant")
ROWS, COLS = 10, 512
RAND_ROWS = 4

TYPES = {
    "q4_0": T.Q4_0,
    "q4_1": T.Q4_1,
    "q5_0": T.Q5_0,
    "q5_1": T.Q5_1,
    "q8_0": T.Q8_0,
    "q2_K": T.Q2_K,
    "q3_K": T.Q3_K,
    "q4_K": T.Q4_K,
    "q5_K": T.Q5_K,
    "q6_K": T.Q6_K,
    "q8_K": T.Q8_K,
}
GGUF_QUANTIZES = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0"}
# Byte offsets of the f16 (or, for q8_K, f32) scale fields in a block, to keep random blocks
# finite.
F16_FIELDS = {
    "q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2], "q8_0": [0],
    "q2_K": [80, 82], "q3_K": [108], "q4_K": [0, 2], "q5_K": [0, 2], "q6_K": [208],
}


def inputs(rng):
    x = np.zeros((ROWS, COLS), dtype=np.float32)
    x[0] = rng.standard_normal(COLS)
    x[1] = rng.standard_normal(COLS) * 0.02                      # weight-like
    x[2] = rng.standard_normal(COLS) * 0.02
    x[2, rng.integers(0, COLS, 12)] *= 40.0                      # outliers
    x[3, rng.integers(0, COLS, 20)] = rng.standard_normal(20)    # mostly zero
    x[4] = rng.uniform(0.5, 2.0, COLS)                           # all positive (min > 0)
    x[5] = -rng.uniform(0.5, 2.0, COLS)                          # all negative
    x[6] = 0.37                                                  # constant
    x[7] = 0.0                                                   # zero
    x[8] = rng.standard_normal(COLS) * 1e-6                      # f16-subnormal scales
    x[9] = rng.laplace(0, 1, COLS) * np.repeat(rng.uniform(0.01, 3, COLS // 16), 16)
    return x.astype(np.float32)


def ggml_reference(name, x):
    """Quantize with ggml's reference quantizer `quantize_row_<name>_ref` (what llama-quantize
    runs without an importance matrix), from ggml-python's libggml-base."""
    import ggml
    lib = ctypes.CDLL(os.path.join(os.path.dirname(ggml.__file__), "lib", "libggml-base.so"))
    f = getattr(lib, f"quantize_row_{name}_ref")
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    f.restype = None
    qt = TYPES[name]
    bs, ts = gguf.GGML_QUANT_SIZES[qt]
    rows, cols = x.shape
    out = np.zeros((rows, cols // bs * ts), dtype=np.uint8)
    for r in range(rows):
        src = np.ascontiguousarray(x[r], dtype=np.float32)
        f(src.ctypes.data, out[r].ctypes.data, cols)
    return out


def random_blocks(name, rng):
    qt = TYPES[name]
    bs, ts = gguf.GGML_QUANT_SIZES[qt]
    nb = RAND_ROWS * COLS // bs
    b = rng.integers(0, 256, (nb, ts), dtype=np.uint8)
    if name == "q8_K":
        b[:, 0:4] = np.frombuffer(rng.uniform(-0.1, 0.1, nb).astype(np.float32).tobytes(),
                                  dtype=np.uint8).reshape(nb, 4)
    else:
        for off in F16_FIELDS[name]:
            v = (rng.standard_normal(nb) * 0.01).astype(np.float16)
            b[:, off:off + 2] = np.frombuffer(v.tobytes(), dtype=np.uint8).reshape(nb, 2)
    return b.reshape(RAND_ROWS, -1)


def dequant(q, name):
    if name == "q8_K":
        # gguf has no q8_K; it is d (f32) times the codes.
        b = q.reshape(-1, 292)
        d = b[:, 0:4].copy().view(np.float32)
        qs = b[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * qs).astype(np.float32)
    return dequantize(q, TYPES[name]).astype(np.float32)


def main():
    global OUT, ROWS
    # `--stress N DIR`: N x 10 rows (not committed) for the ignored stress test:
    #   JING_QUANT_FIXTURES=DIR cargo test -p jing-tensor --test quant_fixtures -- --ignored
    stress = len(sys.argv) == 4 and sys.argv[1] == "--stress"
    if stress:
        OUT = sys.argv[3]
    rng = np.random.default_rng(20240611)
    os.makedirs(OUT, exist_ok=True)
    x = inputs(rng)
    if stress:
        x = np.concatenate([x] + [inputs(rng) * np.float32(rng.uniform(1e-3, 1e3))
                                  for _ in range(int(sys.argv[2]) - 1)])
        ROWS = x.shape[0]
    x.tofile(os.path.join(OUT, "x.f32"))
    manifest = {"rows": ROWS, "rand_rows": RAND_ROWS, "cols": COLS, "gguf": version("gguf"),
                "ggml-python": version("ggml-python"), "types": {}}
    for name, qt in TYPES.items():
        ref = ggml_reference(name, x)
        if name in GGUF_QUANTIZES:
            q = quantize(x, qt)
            if not np.array_equal(q, ref):
                sys.exit(f"{name}: gguf and ggml reference quantizers disagree")
            source = "gguf.quants.quantize (equal to ggml's reference)"
        else:
            q = ref
            source = "ggml quantize_row_%s_ref (ggml-python)" % name
        q.tofile(os.path.join(OUT, f"{name}.q"))
        dequant(q, name).tofile(os.path.join(OUT, f"{name}.deq.f32"))
        r = random_blocks(name, rng)
        r.tofile(os.path.join(OUT, f"{name}.rand.q"))
        dequant(r, name).tofile(os.path.join(OUT, f"{name}.rand.deq.f32"))
        manifest["types"][name] = {"ggml_type": int(qt), "quantized_by": source}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
