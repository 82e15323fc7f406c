#!/usr/bin/env python3
"""Fixtures for jing's IQ block types (crates/jing-tensor/tests/quant_fixtures.rs).

Writes tests/fixtures/quant/iq/:
  <type>.rand.q         random block bytes (the f16 scale kept finite), ROWS x row_bytes
  <type>.rand.deq.f32   <type>.rand.q dequantized by the `gguf` package (gguf.quants)
  manifest.json         rows, cols, gguf version, ggml type ids

IQ types need an importance matrix to quantize and jing only reads them, so random bytes stand
in for quantizer output: every grid index, sign pattern and scale is a valid encoding.

    python3 -m venv /tmp/venv-iq && /tmp/venv-iq/bin/pip install gguf==0.19.0
    /tmp/venv-iq/bin/python scripts/make_iq_fixtures.py
"""

import json
import os
from importlib.metadata import version

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "quant",
                   "iq")
ROWS, COLS = 8, 512

TYPES = {
    "iq2_xxs": T.IQ2_XXS,
    "iq2_xs": T.IQ2_XS,
    "iq2_s": T.IQ2_S,
    "iq3_xxs": T.IQ3_XXS,
    "iq3_s": T.IQ3_S,
    "iq1_s": T.IQ1_S,
    "iq1_m": T.IQ1_M,
    "iq4_nl": T.IQ4_NL,
    "iq4_xs": T.IQ4_XS,
}


def random_blocks(name, rng):
    bs, ts = gguf.GGML_QUANT_SIZES[TYPES[name]]
    nb = ROWS * COLS // bs
    b = rng.integers(0, 256, (nb, ts), dtype=np.uint8)
    d = (rng.standard_normal(nb) * 0.01).astype(np.float16)
    d[0] = 0.0                                   # a zero scale
    d[1] = np.float16(-3e-6)                     # an f16 subnormal
    bits = d.view(np.uint16)
    if name == "iq1_m":
        # d's 16 bits are the top nibbles of the four u16 scale words at 48..56.
        sc = b[:, 48:56].copy().view(np.uint16)
        for i in range(4):
            sc[:, i] = (sc[:, i] & 0x0FFF) | (((bits >> (4 * i)) & 0xF) << 12)
        b[:, 48:56] = sc.view(np.uint8)
    else:
        b[:, 0:2] = bits.view(np.uint8).reshape(nb, 2)
    return b.reshape(ROWS, -1)


def main():
    rng = np.random.default_rng(20261128)
    os.makedirs(OUT, exist_ok=True)
    manifest = {"rows": ROWS, "cols": COLS, "gguf": version("gguf"), "types": {}}
    for name, qt in TYPES.items():
        r = random_blocks(name, rng)
        r.tofile(os.path.join(OUT, f"{name}.rand.q"))
        deq = dequantize(r, qt).astype(np.float32)
        assert np.all(np.isfinite(deq)), name
        deq.tofile(os.path.join(OUT, f"{name}.rand.deq.f32"))
        manifest["types"][name] = {"ggml_type": int(qt)}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
