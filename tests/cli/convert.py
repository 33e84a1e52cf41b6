#!/usr/bin/env python3
"""`tfx convert` against what save_pretrained(safe_serialization=True) writes, on tinystories-656k:
- f32 sharded (--max-shard-size 300KB): model-0000i-of-0000N.safetensors + model.safetensors.index.json
  whose weight_map lists every tensor once and whose metadata.total_size is the tensors' bytes;
  {"format": "pt"} in every header; every tensor's bytes equal to the source's; the folder reloads
  and `tfx forward` prints exactly the source's logits.
- bf16 and f16 (one file): every float tensor equal to a round-to-nearest-even cast of the source
  (computed here), config.json's torch_dtype updated and nothing else changed.
- a checkpoint storing an LM head tied to its embeddings: the head is written once (dropped).
- a conversion killed with SIGKILL mid-write leaves nothing (its watchdog removes the scratch
  folder), and one left by any other means is removed by the next conversion; bad arguments name
  the option and leave nothing.
usage: convert.py TFX. Exit 77 when the data is absent."""
import json, os, struct, subprocess, sys, tempfile, time

tfx = sys.argv[1]
root = os.environ.get("TFX_TEST_DATA", "")
model = os.path.join(root, "models/tinystories-656k")
if not root or not os.path.isdir(model):
    print("skipped: TFX_TEST_DATA does not point at the shared data")
    sys.exit(77)
failed = False


def fail(message):
    global failed
    print("FAIL " + message)
    failed = True


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    tensors = {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}
    return meta, tensors


def write_safetensors(path, tensors):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def bf16(data):
    out = bytearray()
    for (u,) in struct.iter_unpack("<I", data):
        if (u & 0x7FFFFFFF) > 0x7F800000:
            out += struct.pack("<H", (u >> 16) | 0x40)
        else:
            out += struct.pack("<H", ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF)
    return bytes(out)


def f16(data):
    return b"".join(struct.pack("<e", v) for (v,) in struct.iter_unpack("<f", data))


def forward(folder):
    run = subprocess.run([tfx, "forward", "--model", folder, "--input-ids", "1,450,1996,17", "--json"],
                         capture_output=True, text=True, check=True)
    return run.stdout.strip().splitlines()[-1]


_, source = read_safetensors(os.path.join(model, "model.safetensors"))
source_config = json.load(open(os.path.join(model, "config.json")))
with tempfile.TemporaryDirectory() as tmp:
    # f32, sharded.
    out = os.path.join(tmp, "f32-sharded")
    subprocess.run([tfx, "convert", "--model", model, "--out", out, "--max-shard-size", "300KB"], check=True,
                   capture_output=True)
    index = json.load(open(os.path.join(out, "model.safetensors.index.json")))
    files = sorted(set(index["weight_map"].values()))
    if len(files) < 2 or any(f != f"model-{i + 1:05d}-of-{len(files):05d}.safetensors" for i, f in enumerate(files)):
        fail(f"shard names: {files}")
    written = {}
    for f in files:
        meta, tensors = read_safetensors(os.path.join(out, f))
        if meta != {"format": "pt"}:
            fail(f"{f}: metadata {meta}")
        for name, t in tensors.items():
            if name in written:
                fail(f"{name} written twice")
            if index["weight_map"].get(name) != f:
                fail(f"index puts {name} in {index['weight_map'].get(name)}, it is in {f}")
            written[name] = t
    if sorted(written) != sorted(index["weight_map"]) or sorted(written) != sorted(source):
        fail("the shards, the index and the source hold different tensor names")
    if index["metadata"]["total_size"] != sum(len(t[2]) for t in written.values()):
        fail(f"total_size {index['metadata']['total_size']}")
    for name, t in source.items():
        if written.get(name) != t:
            fail(f"{name}: not bit-identical to the source")
    if forward(out) != forward(model):
        fail("the sharded f32 copy does not reload to the source's logits")
    print(f"f32 in {len(files)} shards: {len(written)} tensors bit-identical, reload identical")

    # bf16 and f16 casts.
    for dtype, cast, torch_name in (("bf16", bf16, "bfloat16"), ("f16", f16, "float16")):
        out = os.path.join(tmp, dtype)
        subprocess.run([tfx, "convert", "--model", model, "--out", out, "--dtype", dtype], check=True,
                       capture_output=True)
        _, tensors = read_safetensors(os.path.join(out, "model.safetensors"))
        wrong = [n for n, (dt, shape, data) in source.items()
                 if tensors.get(n) != ({"bf16": "BF16", "f16": "F16"}[dtype], shape, cast(data))]
        if wrong:
            fail(f"{dtype}: {len(wrong)} tensors differ from the cast, e.g. {wrong[0]}")
        config = json.load(open(os.path.join(out, "config.json")))
        if config.pop("torch_dtype", None) != torch_name or {k: v for k, v in source_config.items()
                                                             if k != "torch_dtype"} != config:
            fail(f"{dtype}: config.json changed beyond torch_dtype")
        forward(out)  # it loads and runs
        print(f"{dtype}: {len(source) - len(wrong)}/{len(source)} tensors equal to the cast")

    # An LM head stored beside the embeddings it is tied to is written once.
    tied = os.path.join(tmp, "tied-source")
    os.mkdir(tied)
    config = dict(source_config, tie_word_embeddings=True)
    json.dump(config, open(os.path.join(tied, "config.json"), "w"))
    tensors = dict(source)
    tensors["model.embed_tokens.weight"] = tensors["lm_head.weight"]  # the source stores one side of the tie
    write_safetensors(os.path.join(tied, "model.safetensors"), tensors)
    out = os.path.join(tmp, "tied")
    subprocess.run([tfx, "convert", "--model", tied, "--out", out], check=True, capture_output=True)
    _, tensors = read_safetensors(os.path.join(out, "model.safetensors"))
    if "lm_head.weight" in tensors or "model.embed_tokens.weight" not in tensors:
        fail(f"tied head: written tensors {sorted(tensors)[:3]}...")
    elif tensors["model.embed_tokens.weight"] != source["lm_head.weight"]:
        fail("tied head: the embeddings were not written as stored")
    if forward(out) != forward(tied):
        fail("tied head: the copy without lm_head.weight does not reload to the same logits")
    print("tied LM head written once")

    # SIGKILL in the middle of a conversion (a 187 MB model written as bf16 shards): the output
    # never appears and the scratch folder goes with the process.
    config = dict(json.load(open(os.path.join(model, "config.json"))), vocab_size=32000, hidden_size=576,
                  intermediate_size=1536, num_hidden_layers=8, num_attention_heads=9, num_key_value_heads=3)
    json.dump(config, open(os.path.join(tmp, "mid.json"), "w"))
    mid = os.path.join(tmp, "mid-model")
    subprocess.run([tfx, "init-model", "--config", os.path.join(tmp, "mid.json"), "--out", mid], check=True,
                   capture_output=True)
    killed_parent = os.path.join(tmp, "killed")
    os.mkdir(killed_parent)
    run = subprocess.Popen([tfx, "convert", "--model", mid, "--out", os.path.join(killed_parent, "out"), "--dtype",
                            "bf16", "--max-shard-size", "10MB"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while not os.listdir(killed_parent) and run.poll() is None and time.time() < deadline:
        time.sleep(0.001)
    seen = os.listdir(killed_parent)
    run.kill()
    run.wait()
    deadline = time.time() + 10
    while os.listdir(killed_parent) and time.time() < deadline:
        time.sleep(0.01)
    if not seen or not seen[0].startswith(".out.tmp-"):
        fail(f"SIGKILL: no scratch folder was seen mid-conversion ({seen})")
    if os.listdir(killed_parent):
        fail(f"SIGKILL mid-conversion left {os.listdir(killed_parent)}")
    else:
        print(f"SIGKILL mid-conversion (scratch {seen[0]} seen): nothing left")

    # A scratch folder left by a writer that is gone is removed by the next conversion.
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = os.path.join(tmp, f".again.tmp-{gone.pid}")
    os.makedirs(os.path.join(stale, "junk"))
    subprocess.run([tfx, "convert", "--model", model, "--out", os.path.join(tmp, "again")], check=True,
                   capture_output=True)
    if os.path.exists(stale):
        fail("a dead writer's scratch folder was left")

    # Bad arguments: named, nothing written.
    for args, expected in ((["--max-shard-size", "5XB"], "--max-shard-size"), (["--dtype", "f8"], "--dtype")):
        bad = subprocess.run([tfx, "convert", "--model", model, "--out", os.path.join(tmp, "bad")] + args,
                             capture_output=True, text=True)
        if bad.returncode == 0 or expected not in bad.stderr:
            fail(f"{args}: exit {bad.returncode}, stderr {bad.stderr!r}")
    out_again = subprocess.run([tfx, "convert", "--model", model, "--out", os.path.join(tmp, "bf16")],
                               capture_output=True, text=True)
    if out_again.returncode == 0 or "already exists" not in out_again.stderr:
        fail(f"an existing --out: exit {out_again.returncode}, stderr {out_again.stderr!r}")
    leftovers = [n for n in os.listdir(tmp) if n.startswith(".") or n == "bad"]
    if leftovers:
        fail(f"left behind: {leftovers}")
sys.exit(1 if failed else 0)
