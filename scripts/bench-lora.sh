#!/usr/bin/env bash
# The run-time cost of a LoRA adapter: `tfx bench` on MODEL bare, with a random PEFT adapter
# of rank R on all seven projections applied at run time, and with it merged at load (which
# must cost nothing), in one run on one machine. The adapter is written by this script
# (numpy; PEFT's layout and names) into a temporary folder.
# usage: scripts/bench-lora.sh MODEL_DIR [R=16] [N=64] [REPS=5] [THREADS=1,2]
set -euo pipefail
tfx=${TFX:-build/bin/tfx}
model=$1 rank=${2:-16} n=${3:-64} reps=${4:-5} threads=${5:-1,2}
adapter=$(mktemp -d)
trap 'rm -rf "$adapter"' EXIT
/usr/bin/python3 - "$model" "$adapter" "$rank" <<'PY'
import json, struct, sys
import numpy as np
model, out, r = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = json.load(open(f"{model}/config.json"))
h, inter, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
hd = c.get("head_dim", h // c["num_attention_heads"])
q, kv = c["num_attention_heads"] * hd, c.get("num_key_value_heads", c["num_attention_heads"]) * hd
shapes = {"self_attn.q_proj": (h, q), "self_attn.k_proj": (h, kv), "self_attn.v_proj": (h, kv),
          "self_attn.o_proj": (q, h), "mlp.gate_proj": (h, inter), "mlp.up_proj": (h, inter), "mlp.down_proj": (inter, h)}
rng = np.random.default_rng(0)
header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
for layer in range(layers):
    for module, (fan_in, fan_out) in shapes.items():
        for part, shape in (("lora_A", (r, fan_in)), ("lora_B", (fan_out, r))):
            data = (rng.standard_normal(shape) * 0.01).astype("<f4").tobytes()
            header[f"base_model.model.model.layers.{layer}.{module}.{part}.weight"] = {
                "dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
            blobs.append(data)
            offset += len(data)
text = json.dumps(header).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(f"{out}/adapter_model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
json.dump({"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": [m.split(".")[1] for m in shapes],
           "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "use_dora": False},
          open(f"{out}/adapter_config.json", "w"))
PY
bench() { "$tfx" bench --model "$model" -p 128 -n "$n" -t "$threads" -r "$reps" "$@" 2>/dev/null; }
echo "== bare"; bench
echo "== LoRA r=$rank at run time"; bench --lora "$adapter"
echo "== LoRA r=$rank merged at load"; bench --lora "$adapter" --merge-lora
