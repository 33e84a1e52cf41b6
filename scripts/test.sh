#!/usr/bin/env bash
# The whole test suite: format and layering checks, build (warnings are errors), ctest,
# then a short run of every fuzz target under ASan/UBSan. Test data comes from $TFX_TEST_DATA (the shared folder); tests
# that need it say so and skip when it is unset.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TFX_TEST_DATA:-}" ]; then
    echo "warning: TFX_TEST_DATA is not set; tests that need reference data will be skipped" >&2
fi
jobs=$(nproc)

# Cheap structural checks first: formatting and the direction of the layers.
scripts/format.sh --check
scripts/check-layers.sh

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTFX_WERROR=ON
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

# The installed SDK: examples built against an install prefix alone; a moved install.
if [ -n "${TFX_TEST_DATA:-}" ]; then
    scripts/check-install.sh
else
    echo "skipped: install check (needs TFX_TEST_DATA for its model)" >&2
fi

# Fuzz smoke run: up to a fixed number of executions or seconds per target, long enough to
# catch regressions in the parsers of untrusted input, short enough for CI.
fuzz_runs=${TFX_FUZZ_RUNS:-100000}
fuzz_seconds=${TFX_FUZZ_SECONDS:-45}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTFX_BUILD_FUZZERS=ON -DTFX_BUILD_TESTS=OFF -DTFX_BUILD_BENCHMARKS=OFF >/dev/null
fuzzers=$(cmake --build build-fuzz --target help | sed -n 's/^\(fuzz_[a-z_]*\): .*/\1/p' | sort -u)
cmake --build build-fuzz -j "$jobs" --target $fuzzers
# Seeds: the GGUF parser starts from the heads of the shared GGUF files (random bytes rarely
# get past the magic number), the quantized-checkpoint decoders from small GPTQ / AWQ / fp8
# files, the request parser from the inputs that once crashed it (tests/fuzz/seeds; copied, as
# libFuzzer adds to its first corpus folder). A new crash input is written under build-fuzz/.
gguf_seeds=$(mktemp -d)
quantized_seeds=$(mktemp -d)
request_seeds=$(mktemp -d)
image_seeds=$(mktemp -d)
audio_seeds=$(mktemp -d)
trap 'rm -rf "$gguf_seeds" "$quantized_seeds" "$request_seeds" "$image_seeds" "$audio_seeds"' EXIT
for g in "${TFX_TEST_DATA:-/nonexistent}"/quant/gguf/*.gguf; do
    [ -f "$g" ] && head -c 65536 "$g" > "$gguf_seeds/$(basename "$g")"
done
cp tests/fuzz/seeds/quantized_checkpoint/* "$quantized_seeds/"
cp tests/fuzz/seeds/openai_request/* "$request_seeds/"
cp tests/fuzz/seeds/image/* "$image_seeds/"
cp tests/fuzz/seeds/audio/* "$audio_seeds/"
for f in $fuzzers; do
    echo "== $f: up to $fuzz_runs runs or $fuzz_seconds s"
    corpus=()
    [ "$f" = fuzz_gguf ] && corpus=("$gguf_seeds")
    [ "$f" = fuzz_quantized_checkpoint ] && corpus=("$quantized_seeds")
    [ "$f" = fuzz_openai_request ] && corpus=("$request_seeds")
    [ "$f" = fuzz_image ] && corpus=("$image_seeds")
    [ "$f" = fuzz_audio ] && corpus=("$audio_seeds")
    "build-fuzz/bin/$f" -runs="$fuzz_runs" -max_total_time="$fuzz_seconds" -max_len=65536 -artifact_prefix=build-fuzz/ -print_final_stats=1 "${corpus[@]}" 2>&1 | grep -E "^(stat::number_of_executed_units|Done|==[0-9]+==ERROR)" 
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "$f found a crash" >&2; exit 1; }
done
echo "All tests passed."
