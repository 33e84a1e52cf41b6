#!/usr/bin/env bash
# Assisted decoding against plain decoding on the same model, same run: wall time of
# `tfx generate` for N new tokens (the median of R runs) less the time to load and produce one
# token, so the figure is decode time; tokens are checked identical. Greedy by default; other
# decoding options follow (e.g. --temperature 0.8 --seed 1 samples).
# usage: scripts/bench-assisted.sh TARGET_DIR DRAFT_DIR [N=256] [R=5] [generate options...]
set -euo pipefail
tfx=${TFX:-build/bin/tfx}
target=$1 draft=$2 n=${3:-256} reps=${4:-5}
shift $(($# < 4 ? $# : 4))
decoding=("$@")
[ ${#decoding[@]} -eq 0 ] && decoding=(--greedy)
prompt="Once upon a time there was a little girl who loved to play in the garden with her dog."
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() {  # prints "seconds tokens-md5 stderr-summary"
    local start end
    start=$(date +%s.%N)
    "$tfx" generate --model "$target" "$prompt" "${decoding[@]}" --ignore-eos --json "$@" 2>/tmp/bench-assisted.err |
        tail -1 | python3 -c "import json,sys; print(json.loads(sys.stdin.read())['new_tokens'])" >/tmp/bench-assisted.out
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc) $(md5sum </tmp/bench-assisted.out | cut -c1-8) $(grep -o '[0-9]* forward.*' /tmp/bench-assisted.err || true)"
}
declare -A label=([plain]="" [draft]="--assistant-model $draft" [lookup]="--prompt-lookup-num-tokens 10")
base=$(for _ in $(seq "$reps"); do run --max-new-tokens 1 | cut -d' ' -f1; done | median)
echo "load + 1 token: ${base}s (median of $reps)"
declare -A decode
for mode in plain draft lookup; do
    # shellcheck disable=SC2086
    times=$(for _ in $(seq "$reps"); do run --max-new-tokens "$n" ${label[$mode]}; done)
    t=$(echo "$times" | cut -d' ' -f1 | median)
    decode[$mode]=$(echo "$t - $base" | bc)
    echo "$mode: decode ${decode[$mode]}s for $n tokens; tokens $(echo "$times" | cut -d' ' -f2 | sort -u | tr '\n' ' ')| $(echo "$times" | head -1 | cut -d' ' -f3-)"
done
for mode in draft lookup; do
    echo "speed-up $mode: $(echo "scale=2; ${decode[plain]} / ${decode[$mode]}" | bc)x over plain decoding (${decoding[*]})"
done
