#!/usr/bin/env bash
# Under --tp every rank samples, so what only rank 0 has must reach them all: a prompt on stdin
# (mpirun hands stdin to rank 0 alone) and a freshly drawn seed (each rank would draw its own).
# The 2-rank job must print exactly what one process prints with rank 0's seed.
# Environment: TFX_TEST_DATA, MPIEXEC, TFX_TP_BIN (as mpirun_tp.sh).
set -euo pipefail
[ -n "${TFX_TEST_DATA:-}" ] || { echo "skipped: TFX_TEST_DATA is not set"; exit 77; }
model=$TFX_TEST_DATA/models/tinystories-656k
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
args=(generate --model "$model" --prompt-file - --max-new-tokens 40 --temperature 0.9)
echo "Once upon a time" | "$MPIEXEC" --oversubscribe --bind-to none -np 2 "$TFX_TP_BIN" "${args[@]}" --tp 2 \
    >"$work/job" 2>"$work/job.err"
# Both ranks print their seed (their stderr may interleave even mid-line): two, and the same.
seeds=$(grep -o 'seed: *[0-9]*' "$work/job.err" | grep -o '[0-9]*$' | sort -u)
seed=$(grep -o 'seed: *[0-9]*' "$work/job.err" | head -1 | grep -o '[0-9]*$' || true)
if [ -z "$seed" ] || [ "$seeds" != "$seed" ] || [ "$(grep -o 'seed:' "$work/job.err" | wc -l)" != 2 ]; then
    echo "the ranks did not sample with one seed:"
    cat "$work/job.err"
    exit 1
fi
echo "Once upon a time" | "$TFX_TP_BIN" "${args[@]}" --seed "$seed" >"$work/one" 2>/dev/null
[ -s "$work/one" ] || { echo "one process printed nothing"; exit 1; }
if ! cmp -s "$work/one" "$work/job"; then
    echo "2 ranks printed:"; cat "$work/job"; echo; echo "one process printed:"; cat "$work/one"
    exit 1
fi
echo "ok: seed $seed, $(wc -c <"$work/job") bytes the same"
