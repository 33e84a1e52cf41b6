#!/usr/bin/env python3
"""`tfx token-classification` end to end: a BERT token classifier (the shared tiny model's config
at bert-base-uncased's vocabulary, random weights) with the real bert-base-uncased tokenizer.
With --aggregation-strategy none and nothing ignored, every non-special token comes back once,
at its index in the model's input, labelled with the argmax of the softmax of `tfx forward`'s
logits row for the same ids, with that probability as its score, and with character offsets
that cover its text (an accented character counts once). The word strategies give whole words
of the text, in order; bad strategies are refused naming the choices.
usage: token_classification.py TFX. Exit 77 when the data is absent."""
import json, math, os, tempfile

from pipeline_test import PipelineTest

t = PipelineTest("bert_token_cls", "bert_cls")
TEXT = "John Smithson lives in Zürich, unbelievably near Hugging Face."

with tempfile.TemporaryDirectory() as tmp:
    model = os.path.join(tmp, "model")
    config = t.bert_model(model, "bert_token_cls")
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]

    ids = json.loads(t.run("tokenize", "--tokenizer", model, "--text", TEXT))["ids"]
    logits = json.loads(t.run("forward", "--model", model, "--input-ids", ",".join(map(str, ids)), "--json"))["logits"]
    entities = json.loads(t.run("token-classification", "--model", model, "--ignore-labels", "", TEXT))
    if [e["index"] for e in entities] != list(range(1, len(ids) - 1)):
        t.fail(f"indices {[e['index'] for e in entities]}: expected every token between [CLS] and [SEP]")
    for e in entities:
        row = logits[e["index"]]
        top = max(range(len(row)), key=lambda i: row[i])
        total = sum(math.exp(v - row[top]) for v in row)
        if e["entity"] != labels[top] or abs(e["score"] - 1.0 / total) > 1e-5:
            t.fail(f"token {e['index']}: {e['entity']} {e['score']}, expected {labels[top]} {1.0 / total}")
        span = TEXT[e["start"]:e["end"]]
        if span.isascii() and span.lower() != e["word"].removeprefix("##"):
            t.fail(f"token {e['index']} '{e['word']}': offsets {e['start']}-{e['end']} cover '{span}'")
    # A continuation starts where the token before it ends, in characters (after "ü" too).
    for before, e in zip(entities, entities[1:]):
        if e["word"].startswith("##") and e["start"] != before["end"]:
            t.fail(f"'{e['word']}' starts at {e['start']}, '{before['word']}' ends at {before['end']}")
    if not any(e["start"] == TEXT.index("Zürich") for e in entities):
        t.fail("no token starts at Zürich")
    print(f"none: {len(entities)} tokens, labels and scores as the logits give them, offsets in characters")

    for strategy in ("first", "average", "max"):
        words = []
        for group in json.loads(t.run("token-classification", "--model", model, "--ignore-labels", "",
                                    "--aggregation-strategy", strategy, TEXT)):
            if "index" in group or group["entity_group"] not in {l.split("-", 1)[-1] for l in labels}:
                t.fail(f"{strategy}: {group}")
            words.append((group["start"], group["end"], group["word"]))
        if words != sorted(words) or any(a[1] > b[0] for a, b in zip(words, words[1:])):
            t.fail(f"{strategy}: groups overlap or are out of order: {words}")
        for start, end, word in words:
            span = TEXT[start:end]
            if span.isascii() and span.lower().replace(" ", "") != word.replace(" ", ""):
                t.fail(f"{strategy}: '{word}' does not read as the text it covers, '{span}'")
        print(f"{strategy}: {len(words)} groups of whole words, in order")

    # Several texts run together (a ragged batch): each line as the text gives alone.
    other = "Sarah Jones flew from Paris to Oslo."
    together = t.run("token-classification", "--model", model, "--ignore-labels", "", TEXT, other).splitlines()
    for line, text in zip(together, (TEXT, other)):
        alone = json.loads(t.run("token-classification", "--model", model, "--ignore-labels", "", text))
        got = json.loads(line)
        if len(got) != len(alone) or any(
                g["word"] != a["word"] or g["entity"] != a["entity"] or abs(g["score"] - a["score"]) > 1e-5
                for g, a in zip(got, alone)):
            t.fail(f"'{text}' with another text gives {got[:3]}..., alone {alone[:3]}...")
    if len(together) != 2:
        t.fail(f"two texts gave {len(together)} lines")
    print("two texts together: each line as the text alone")

    bad = t.attempt("token-classification", "--model", model, "--aggregation-strategy", "mean", TEXT)
    if bad.returncode == 0 or "none" not in bad.stderr or "max" not in bad.stderr:
        t.fail(f"--aggregation-strategy mean: {bad.returncode} {bad.stderr.strip()}")
    sequence_model = os.path.join(tmp, "sequence")
    t.bert_model(sequence_model, "bert_cls", tokenizer_config=False)
    classifier = t.attempt("token-classification", "--model", sequence_model, TEXT)
    if classifier.returncode == 0 or "not a token classifier" not in classifier.stderr:
        t.fail(f"a sequence classifier: {classifier.returncode} {classifier.stderr.strip()}")

t.finish()
