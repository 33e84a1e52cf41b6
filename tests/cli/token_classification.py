#!/usr/bin/env python3
"""`tfx token-classification` end to end: a BERT token classifier (the shared tiny model's config
at bert-base-uncased's vocabulary, random weights) with the real bert-base-uncased tokenizer.
With --aggregation-strategy none and nothing ignored, every non-special token comes back once,
at its index in the model's input, labelled with the argmax of the softmax of `tfx forward`'s
logits row for the same ids, with that probability as its score, and with character offsets
that cover its text (an accented character counts once). The word strategies give whole words
of the text, in order; bad strategies are refused naming the choices.
usage: token_classification.py TFX. Exit 77 when the data is absent."""
import json, math, os, shutil, subprocess, sys, tempfile

tfx = sys.argv[1]
root = os.environ.get("TFX_TEST_DATA", "")
if not root or not os.path.isdir(os.path.join(root, "tiny", "bert_token_cls")):
    print("skipped: TFX_TEST_DATA does not point at the shared data with tiny/bert_token_cls")
    sys.exit(77)

TEXT = "John Smithson lives in Zürich, unbelievably near Hugging Face."
failed = False


def fail(message):
    global failed
    failed = True
    print("FAIL", message)


def run(*args):
    out = subprocess.run([tfx, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed: {out.stderr.strip()}")
    return out.stdout


with tempfile.TemporaryDirectory() as tmp:
    config = json.load(open(os.path.join(root, "tiny", "bert_token_cls", "config.json")))
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    config["vocab_size"] = 30522
    json.dump(config, open(os.path.join(tmp, "config.json"), "w"))
    model = os.path.join(tmp, "model")
    run("init-model", "--config", os.path.join(tmp, "config.json"), "--out", model)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(root, "tokenizers", "bert-base-uncased", name), model)

    ids = json.loads(run("tokenize", "--tokenizer", model, "--text", TEXT))["ids"]
    logits = json.loads(run("forward", "--model", model, "--input-ids", ",".join(map(str, ids)), "--json"))["logits"]
    entities = json.loads(run("token-classification", "--model", model, "--ignore-labels", "", TEXT))
    if [e["index"] for e in entities] != list(range(1, len(ids) - 1)):
        fail(f"indices {[e['index'] for e in entities]}: expected every token between [CLS] and [SEP]")
    for e in entities:
        row = logits[e["index"]]
        top = max(range(len(row)), key=lambda i: row[i])
        total = sum(math.exp(v - row[top]) for v in row)
        if e["entity"] != labels[top] or abs(e["score"] - 1.0 / total) > 1e-5:
            fail(f"token {e['index']}: {e['entity']} {e['score']}, expected {labels[top]} {1.0 / total}")
        span = TEXT[e["start"]:e["end"]]
        if span.isascii() and span.lower() != e["word"].removeprefix("##"):
            fail(f"token {e['index']} '{e['word']}': offsets {e['start']}-{e['end']} cover '{span}'")
    # A continuation starts where the token before it ends, in characters (after "ü" too).
    for before, e in zip(entities, entities[1:]):
        if e["word"].startswith("##") and e["start"] != before["end"]:
            fail(f"'{e['word']}' starts at {e['start']}, '{before['word']}' ends at {before['end']}")
    if not any(e["start"] == TEXT.index("Zürich") for e in entities):
        fail("no token starts at Zürich")
    print(f"none: {len(entities)} tokens, labels and scores as the logits give them, offsets in characters")

    for strategy in ("first", "average", "max"):
        words = []
        for group in json.loads(run("token-classification", "--model", model, "--ignore-labels", "",
                                    "--aggregation-strategy", strategy, TEXT)):
            if "index" in group or group["entity_group"] not in {l.split("-", 1)[-1] for l in labels}:
                fail(f"{strategy}: {group}")
            words.append((group["start"], group["end"], group["word"]))
        if words != sorted(words) or any(a[1] > b[0] for a, b in zip(words, words[1:])):
            fail(f"{strategy}: groups overlap or are out of order: {words}")
        for start, end, word in words:
            span = TEXT[start:end]
            if span.isascii() and span.lower().replace(" ", "") != word.replace(" ", ""):
                fail(f"{strategy}: '{word}' does not read as the text it covers, '{span}'")
        print(f"{strategy}: {len(words)} groups of whole words, in order")

    bad = subprocess.run([tfx, "token-classification", "--model", model, "--aggregation-strategy", "mean", TEXT],
                         capture_output=True, text=True)
    if bad.returncode == 0 or "none" not in bad.stderr or "max" not in bad.stderr:
        fail(f"--aggregation-strategy mean: {bad.returncode} {bad.stderr.strip()}")
    config = json.load(open(os.path.join(root, "tiny", "bert_cls", "config.json")))
    config["vocab_size"] = 30522
    json.dump(config, open(os.path.join(tmp, "config.json"), "w"))
    sequence_model = os.path.join(tmp, "sequence")
    run("init-model", "--config", os.path.join(tmp, "config.json"), "--out", sequence_model)
    shutil.copy(os.path.join(root, "tokenizers", "bert-base-uncased", "tokenizer.json"), sequence_model)
    classifier = subprocess.run([tfx, "token-classification", "--model", sequence_model, TEXT], capture_output=True,
                                text=True)
    if classifier.returncode == 0 or "not a token classifier" not in classifier.stderr:
        fail(f"a sequence classifier: {classifier.returncode} {classifier.stderr.strip()}")

sys.exit(1 if failed else 0)
