#!/usr/bin/env python3
"""`tfx image-classification` end to end on tiny/vit and the golden's PNG: the labels are the
golden's top 5 in its order, the scores the softmax of its logits (best first), --top-k bounds
the list, and a file that is not an image or a model that does not classify images is refused
with a message naming it. `tfx zero-shot-image-classification` on tiny/clip (with a WordLevel
tokenizer for its 384 ids, so "w382 {} w383" around a label gives the golden texts' ids): the
softmax of the golden's logits_per_image, best first; `tfx embed` gives its text_embeds and
(with --image) its image_embeds.
usage: image_classification.py TFX. Exit 77 when the data is absent."""
import json, os, shutil, tempfile

from pipeline_test import PipelineTest, softmax

t = PipelineTest("vit", "bert", "clip")
vit = os.path.join(t.root, "tiny", "vit")
golden = json.load(open(os.path.join(t.root, "golden", "tiny", "vit.json")))
prompt = golden["prompts"][0]
image = os.path.join(vit, prompt["image"]["file"])

lines = [json.loads(l) for l in t.run("image-classification", "--model", vit, image, image).splitlines()]
if len(lines) != 2:
    t.fail(f"expected a line per image, got {len(lines)}")
want = softmax(prompt["logits"])
for line in lines:
    labels = [l["label"] for l in line["labels"]]
    expected = [golden["id2label"][str(i)] for i in prompt["top5"]["ids"]]
    if labels != expected:
        t.fail(f"labels {labels}, expected {expected}")
    for entry, i in zip(line["labels"], prompt["top5"]["ids"]):
        if abs(entry["score"] - want[i]) > 1e-4:
            t.fail(f"{entry['label']}: score {entry['score']}, expected {want[i]}")
    if line["image"] != image:
        t.fail(f"image {line['image']}, expected {image}")
top2 = json.loads(t.run("image-classification", "--model", vit, "--top-k", "2", image))
if len(top2["labels"]) != 2:
    t.fail(f"--top-k 2 printed {len(top2['labels'])} labels")

with tempfile.TemporaryDirectory() as tmp:
    notes = os.path.join(tmp, "notes.png")
    open(notes, "w").write("not an image")
    out = t.attempt("image-classification", "--model", vit, notes)
    if out.returncode == 0 or "notes.png" not in out.stderr:
        t.fail(f"a text file should be refused naming it: {out.returncode} {out.stderr.strip()}")
out = t.attempt("image-classification", "--model", os.path.join(t.root, "tiny", "bert"), image)
if out.returncode == 0 or "image classifier" not in out.stderr:
    t.fail(f"a text model should be refused: {out.returncode} {out.stderr.strip()}")

clip_golden = json.load(open(os.path.join(t.root, "golden", "tiny", "clip.json")))
with tempfile.TemporaryDirectory() as tmp:
    clip = os.path.join(tmp, "clip")
    shutil.copytree(os.path.join(t.root, "tiny", "clip"), clip)
    json.dump({"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": {"type": "Whitespace"},
               "post_processor": None, "decoder": None,
               "model": {"type": "WordLevel", "vocab": {f"w{i}": i for i in range(384)}, "unk_token": "w0"}},
              open(os.path.join(clip, "tokenizer.json"), "w"))
    prompt = clip_golden["prompts"][0]
    labels = [" ".join(f"w{i}" for i in text["input_ids"][1:-1]) for text in prompt["texts"]]
    line = json.loads(t.run("zero-shot-image-classification", "--model", clip, "--labels", ", ".join(labels),
                            "--hypothesis-template", "w382 {} w383", os.path.join(clip, prompt["image"]["file"])))
    want = softmax(prompt["logits_per_image"])
    order = sorted(range(len(labels)), key=lambda i: -want[i])
    if [entry["label"] for entry in line["labels"]] != [labels[i] for i in order]:
        t.fail(f"zero-shot labels {[e['label'] for e in line['labels']]}, expected {[labels[i] for i in order]}")
    for entry in line["labels"]:
        if abs(entry["score"] - want[labels.index(entry["label"])]) > 1e-4:
            t.fail(f"zero-shot {entry['label']}: score {entry['score']}, expected {want[labels.index(entry['label'])]}")
    # `tfx embed` on CLIP: a text's text_embeds, an image's image_embeds.
    text = prompt["texts"][0]
    got = json.loads(t.run("embed", "--model", clip, " ".join(f"w{i}" for i in text["input_ids"])))["embedding"]
    if max(abs(a - b) for a, b in zip(got, text["text_embeds"])) > 1e-4 or len(got) != len(text["text_embeds"]):
        t.fail(f"embed text: {got[:4]}..., expected text_embeds {text['text_embeds'][:4]}...")
    got = json.loads(t.run("embed", "--model", clip, "--image", os.path.join(clip, prompt["image"]["file"])))
    if max(abs(a - b) for a, b in zip(got["embedding"], prompt["image_embeds"])) > 1e-4:
        t.fail(f"embed --image: {got['embedding'][:4]}..., expected image_embeds {prompt['image_embeds'][:4]}...")
    mixed = t.attempt("embed", "--model", clip, "w1", "--image", os.path.join(clip, prompt["image"]["file"]))
    if mixed.returncode == 0 or "not both" not in mixed.stderr:
        t.fail(f"texts and images together should be refused: {mixed.stderr.strip()}")
t.finish()
