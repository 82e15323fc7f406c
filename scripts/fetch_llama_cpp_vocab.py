#!/usr/bin/env python3
"""Fetch llama.cpp's tokenizer test vectors for real vocabularies into a folder.

llama.cpp ships vocab-only GGUF files of real models with test inputs and the token ids
Hugging Face's `tokenizers` gives for them (`models/ggml-vocab-<name>.gguf{,.inp,.out}`).
PyPI's `llama-cpp-python` source distribution carries llama.cpp's source, so this takes them
from there (standard library only; the archive's sha256 is checked against PyPI's record):

    python3 scripts/fetch_llama_cpp_vocab.py DIR
    JING_LLAMA_CPP_VOCAB_DIR=DIR cargo test -p jing-tokenizer --test llama_cpp_vocab -- --ignored
"""

import hashlib
import json
import os
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request

PACKAGE, VERSION = "llama-cpp-python", "0.3.36"
NAMES = ["qwen2", "llama-bpe", "deepseek-llm"]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    meta_url = f"https://pypi.org/pypi/{PACKAGE}/json"
    with urllib.request.urlopen(meta_url, timeout=120) as r:
        meta = json.load(r)
    files = meta.get("releases", {}).get(VERSION)
    if files is None and meta["info"]["version"] == VERSION:
        files = meta["urls"]
    if not files:
        sys.exit(f"{PACKAGE} {VERSION} is not listed at {meta_url}")
    sdist = next(u for u in files if u["packagetype"] == "sdist")
    url = urllib.parse.urljoin(meta_url, sdist["url"])
    want = sdist["digests"]["sha256"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sdist.tar.gz")
        h = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=600) as r, open(path, "wb") as f:
            while chunk := r.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
        if h.hexdigest() != want:
            sys.exit(f"{url}: sha256 {h.hexdigest()} is not PyPI's {want}")
        wanted = {f"ggml-vocab-{n}.gguf{ext}" for n in NAMES for ext in ("", ".inp", ".out")}
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                base = os.path.basename(m.name)
                if m.isfile() and "/vendor/llama.cpp/models/" in m.name and base in wanted:
                    with tar.extractfile(m) as src, open(os.path.join(out, base), "wb") as dst:
                        dst.write(src.read())
                    wanted.discard(base)
        if wanted:
            sys.exit(f"not in {PACKAGE} {VERSION}: {sorted(wanted)}")
    print(f"wrote {3 * len(NAMES)} files to {out}")


if __name__ == "__main__":
    main()
