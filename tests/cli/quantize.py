#!/usr/bin/env python3
"""`tfx quantize` end to end: tinystories-656k written as int8 and int4 GPTQ folders, then read
back by `tfx perplexity` and compared with llama.cpp's own Q8_0 / Q4_0 files of the same model
(same scale choice, groups of 32, so within 1%: each engine quantizes activations its own way;
tfx keeps the tied output projection in f32, llama.cpp in Q8_0). A wrong --method is an error
naming it, and leaves no folder.
usage: quantize.py TFX. Exit 77 when the data is absent."""
import json, os, subprocess, sys, tempfile

tfx = sys.argv[1]
root = os.environ.get("TFX_TEST_DATA", "")
if not root or not os.path.exists(os.path.join(root, "quant/ppl/ppl-dev.json")):
    print("skipped: TFX_TEST_DATA does not point at the shared data with quant/ppl")
    sys.exit(77)
refs = json.load(open(os.path.join(root, "quant/ppl/ppl-dev.json")))["results"]
model = os.path.join(root, "models/tinystories-656k")
failed = False
with tempfile.TemporaryDirectory() as tmp:
    for method, gguf in (("int8", "q8_0"), ("int4", "q4_0")):
        out = os.path.join(tmp, method)
        subprocess.run([tfx, "quantize", "--model", model, "--out", out, "--method", method], check=True)
        ref = next(r for r in refs if r["name"] == f"tinystories-656k-{gguf}.gguf" and r["engine"].startswith("llama.cpp"))
        run = subprocess.run([tfx, "perplexity", "--model", out, "--ids-file",
                              os.path.join(root, "quant/ppl/stream-dev.json"), "--ctx", str(ref["ctx"]), "--json"],
                             check=True, capture_output=True, text=True)
        ppl = json.loads(run.stdout.strip().splitlines()[-1])["ppl"]
        off = abs(ppl - ref["ppl"]) / ref["ppl"]
        print(f"{method}: tfx {ppl:.4f} vs llama.cpp {gguf} {ref['ppl']:.4f} (relative {off:.2e}, allowed 0.01)")
        failed |= off > 0.01
    bad = subprocess.run([tfx, "quantize", "--model", model, "--out", os.path.join(tmp, "bad"), "--method", "int3"],
                         capture_output=True, text=True)
    if bad.returncode == 0 or "--method: expected int8 or int4, got 'int3'" not in bad.stderr:
        print(f"--method int3: exit {bad.returncode}, stderr {bad.stderr!r}")
        failed = True
    if os.path.exists(os.path.join(tmp, "bad")):
        print("--method int3 left a folder behind")
        failed = True
sys.exit(1 if failed else 0)
