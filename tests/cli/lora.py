#!/usr/bin/env python3
"""`tfx merge-lora` against PEFT's merge_and_unload (shared/lora): each adapter of each base model
merged and written, then the written folder checked by the shared parity checker against the
`<adapter>-merged.json` golden (logits within 1e-4, argmax per position and greedy tokens equal).
The folder must hold what save_pretrained writes for the merge: the base's tensor names, its
config.json and generation_config.json byte for byte. A base that does not fit the adapter is an
error naming the tensor, and leaves no folder.
usage: lora.py TFX. Exit 77 when the data is absent."""
import json, os, struct, subprocess, sys, tempfile

tfx = sys.argv[1]
root = os.environ.get("TFX_TEST_DATA", "")
if not root or not os.path.isdir(os.path.join(root, "lora")):
    print("skipped: TFX_TEST_DATA does not point at the shared data with lora/")
    sys.exit(77)
BASES = {"tinystories-656k": "models/tinystories-656k", "qwen2": "tiny/qwen2", "gpt2": "tiny/gpt2"}


def tensor_names(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return sorted(header)


failed = False
with tempfile.TemporaryDirectory() as tmp:
    for model, base_rel in BASES.items():
        base = os.path.join(root, base_rel)
        for adapter in ("a1", "a2"):
            out = os.path.join(tmp, f"{model}-{adapter}")
            subprocess.run([tfx, "merge-lora", "--model", base, "--lora",
                            os.path.join(root, "lora", model, "adapters", adapter), "--out", out], check=True,
                           capture_output=True)
            golden = os.path.join(root, "lora", model, "golden", f"{adapter}-merged.json")
            check = subprocess.run([sys.executable, os.path.join(root, "tools", "parity.py"), tfx, out, golden],
                                   capture_output=True, text=True)
            last = check.stdout.strip().splitlines()[-1] if check.stdout.strip() else check.stderr
            print(f"{model}/{adapter} merged: {last}")
            failed |= check.returncode != 0
            if tensor_names(os.path.join(out, "model.safetensors")) != tensor_names(
                    os.path.join(base, "model.safetensors")):
                print(f"{model}/{adapter}: the merged checkpoint's tensor names differ from the base's")
                failed = True
            for name in ("config.json", "generation_config.json"):
                if open(os.path.join(out, name), "rb").read() != open(os.path.join(base, name), "rb").read():
                    print(f"{model}/{adapter}: {name} is not the base's")
                    failed = True
    # An adapter for another base: refused, naming the tensor, and nothing written.
    out = os.path.join(tmp, "mismatch")
    bad = subprocess.run([tfx, "merge-lora", "--model", os.path.join(root, "tiny/qwen2"), "--lora",
                          os.path.join(root, "lora/tinystories-656k/adapters/a1"), "--out", out],
                         capture_output=True, text=True)
    if bad.returncode == 0 or "lora_A.weight" not in bad.stderr or "another base model" not in bad.stderr:
        print(f"mismatched base: exit {bad.returncode}, stderr {bad.stderr!r}")
        failed = True
    if os.path.exists(out) or any(name.startswith(".mismatch") for name in os.listdir(tmp)):
        print("mismatched base left a folder behind")
        failed = True
sys.exit(1 if failed else 0)
