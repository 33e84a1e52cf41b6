#!/usr/bin/env bash
# Load time and peak memory of `tfx tokenize` beside Hugging Face's Rust tokenizer (the npm
# package @anush008/tokenizers, run by node) in the same run: one process per measurement,
# wall time and max RSS from GNU time, median of R runs, interleaved so drift hits all alike.
#   tests/bench/tokenizer_vs_hf.sh TOKENIZER_DIR TEXT_FILE HF_NODE_DIR TFX [TFX ...]
# HF_NODE_DIR holds node_modules/@anush008/tokenizers (npm install @anush008/tokenizers).
set -euo pipefail
dir=$1 text=$2 hf=$3
shift 3
runs=${R:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -c 'import json,sys; print(json.dumps({"text": open(sys.argv[1]).read()}))' "$text" >"$work/text.jsonl"
cat >"$work/encode.js" <<'JS'
const { Tokenizer } = require(process.argv[2] + '/node_modules/@anush008/tokenizers');
const tok = Tokenizer.fromFile(process.argv[3]);
const text = process.argv[4] === '--file' ? require('fs').readFileSync(process.argv[5], 'utf8') : process.argv[4];
tok.encode(text).then(e => console.log(e.getIds().length));
JS
measure() {  # label, command...: appends "label seconds kib" to the results
    local label=$1
    shift
    /usr/bin/time -f "$label %e %M" -a -o "$work/results" "$@" >/dev/null
}
for ((i = 0; i < runs; ++i)); do
    measure "hf:hello" node "$work/encode.js" "$hf" "$dir/tokenizer.json" "hello world"
    measure "hf:file" node "$work/encode.js" "$hf" "$dir/tokenizer.json" --file "$text"
    for tfx in "$@"; do
        measure "$tfx:hello" "$tfx" tokenize --tokenizer "$dir" --text "hello world"
        measure "$tfx:file" "$tfx" tokenize --tokenizer "$dir" --jsonl "$work/text.jsonl"
    done
done
python3 - "$work/results" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, seconds, kib = line.split()
    rows[label].append((float(seconds), int(kib)))
print(f"{'what':70} {'median s':>9} {'median MB':>10}")
for label, values in rows.items():
    print(f"{label:70} {statistics.median(v[0] for v in values):9.2f} {statistics.median(v[1] for v in values) / 1024:10.0f}")
PY
