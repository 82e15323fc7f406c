#!/usr/bin/env bash
# CI: the coverage-guided fuzz targets for the GGUF and safetensors readers
# (crates/jing-formats/fuzz), time-boxed. Built on the stable toolchain without cargo-fuzz: the
# sanitizer-coverage instrumentation libFuzzer needs is a stable codegen pass (`sancov-module`);
# only AddressSanitizer would need nightly, and the readers are safe Rust, where an
# out-of-bounds access is already a panic, which libFuzzer reports as a crash.
#
#   .ci/fuzz.sh [SECONDS_FOR_GGUF] [SECONDS_FOR_SAFETENSORS]     (default 60 and 20)
#
# A crash fails the step and leaves the input under $JING_FUZZ_ARTIFACTS (a temporary folder
# unless set), to be replayed with `<target dir>/x86_64-unknown-linux-gnu/release/gguf FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
gguf_secs=${1:-60}
st_secs=${2:-20}

# The instrumentation flags apply to the fuzzed code only: with an explicit --target, cargo
# keeps RUSTFLAGS away from build scripts (which would not link against libFuzzer).
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  -Cdebug-assertions -Coverflow-checks"
target_dir=${CARGO_TARGET_DIR:-$PWD/target}/fuzz
cargo build --locked --release --manifest-path crates/jing-formats/fuzz/Cargo.toml \
  --target "$triple" --target-dir "$target_dir" --bins
bin="$target_dir/$triple/release"

work=$(mktemp -d)
artifacts=${JING_FUZZ_ARTIFACTS:-$work/artifacts}
mkdir -p "$work/gguf" "$work/safetensors" "$artifacts"
# Seeds: the committed tiny models (every GGUF metadata kind, tensor types, split layout).
for f in tests/fixtures/*/*.gguf; do
  cp "$f" "$work/gguf/$(echo "$f" | tr / _)"
done
for f in tests/fixtures/*/*.safetensors; do
  # The header is what the target parses; the first 64 KiB hold it for every fixture.
  head -c 65536 "$f" > "$work/safetensors/$(echo "$f" | tr / _)"
done

run() { # name seconds max_len
  echo "fuzzing $1 for $2 s"
  "$bin/$1" -max_total_time="$2" -max_len="$3" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work/$1" 2>&1 | grep -E '^(stat::number_of_executed_units|INFO: seed corpus|==|SUMMARY|#[0-9]+ +DONE)' || true
  if ls "$artifacts" | grep -q .; then
    echo "fuzz target $1 found a failing input: $(ls "$artifacts")" >&2
    exit 1
  fi
}
run gguf "$gguf_secs" 1200000
run safetensors "$st_secs" 65536
rm -rf "$work"
