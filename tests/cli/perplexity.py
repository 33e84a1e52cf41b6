#!/usr/bin/env python3
"""`tfx perplexity` against the shared perplexity references ($TFX_TEST_DATA/quant/ppl/ppl-dev.json).
usage: perplexity.py TFX MODEL_RELATIVE REFERENCE_NAME ENGINE_PREFIX REL_TOL [tfx options...]
Exit 77 when the data is absent."""
import json, os, subprocess, sys

tfx, model, name, engine, tol = sys.argv[1:6]
extra = sys.argv[6:]
root = os.environ.get("TFX_TEST_DATA", "")
refs_path = os.path.join(root, "quant/ppl/ppl-dev.json")
if not root or not os.path.exists(refs_path):
    print("skipped: TFX_TEST_DATA does not point at the shared data with quant/ppl")
    sys.exit(77)
refs = [r for r in json.load(open(refs_path))["results"] if r["name"] == name and r["engine"].startswith(engine)]
if not refs:
    sys.exit(f"no reference named {name} from {engine}")
ref = refs[0]
cmd = [tfx, "perplexity", "--model", os.path.join(root, model), "--ids-file",
       os.path.join(root, "quant/ppl/stream-dev.json"), "--ctx", str(ref["ctx"]), "--json"] + extra
out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
assert out["n_scored"] == ref["n_scored"] and out["n_windows"] == ref["n_windows"], (out, ref)
off = abs(out["ppl"] - ref["ppl"]) / ref["ppl"]
print(f"{name}: tfx {out['ppl']:.5f} vs {ref['engine']} {ref['ppl']:.5f} (relative {off:.2e}, allowed {tol})")
sys.exit(0 if off <= float(tol) else 1)
