#!/usr/bin/env python3
"""`tfx zero-shot-classification` end to end: an NLI model (the shared tiny BERT sequence
classifier's config at bert-base-uncased's vocabulary with labels contradiction, neutral,
entailment; random weights) with the real bert-base-uncased tokenizer. Each candidate's pair is
[CLS] text [SEP] hypothesis [SEP] with token types 0 then 1, as `tfx forward` is given it here;
single-label scores are the softmax of the candidates' entailment logits, multi-label ones each
candidate's entailment against contradiction, labels best first; a template without {} and a
model that is not a sequence classifier are refused.
usage: zero_shot_classification.py TFX. Exit 77 when the data is absent."""
import json, os, tempfile

from pipeline_test import PipelineTest, softmax

t = PipelineTest("bert_cls", "bert_token_cls")
TEXT = "The match went to extra time before the home side scored."
LABELS = ["sports", "politics", "cooking"]
TEMPLATE = "This text is about {}."


with tempfile.TemporaryDirectory() as tmp:
    model = os.path.join(tmp, "model")
    t.bert_model(model, "bert_cls", id2label=["contradiction", "neutral", "entailment"])

    def tokens(text):
        return json.loads(t.run("tokenize", "--tokenizer", model, "--no-special", "--text", text))["ids"]

    premise = tokens(TEXT)
    logits = []
    for label in LABELS:
        hypothesis = tokens(TEMPLATE.replace("{}", label))
        ids = [101] + premise + [102] + hypothesis + [102]
        types = [0] * (len(premise) + 2) + [1] * (len(hypothesis) + 1)
        out = json.loads(t.run("forward", "--model", model, "--input-ids", ",".join(map(str, ids)), "--token-type-ids",
                             ",".join(map(str, types)), "--json"))
        logits.append(out["logits"][0] if isinstance(out["logits"][0], list) else out["logits"])
    single = dict(zip(LABELS, softmax([row[2] for row in logits])))
    multi = dict(zip(LABELS, [softmax([row[0], row[2]])[1] for row in logits]))

    for flags, want in (([], single), (["--multi-label"], multi)):
        got = json.loads(t.run("zero-shot-classification", "--model", model, "--labels", " , ".join(LABELS),
                             "--hypothesis-template", TEMPLATE, *flags, TEXT))
        if got["sequence"] != TEXT or sorted(got["labels"]) != sorted(LABELS):
            t.fail(f"{flags}: {got}")
        if got["scores"] != sorted(got["scores"], reverse=True):
            t.fail(f"{flags}: labels are not best first: {got}")
        for label, score in zip(got["labels"], got["scores"]):
            if abs(score - want[label]) > 1e-5:
                t.fail(f"{flags}: {label} scored {score}, expected {want[label]}")
        print(f"{'multi-label' if flags else 'single-label'}: {got['labels']} {['%.4f' % s for s in got['scores']]}")

    bad = t.attempt("zero-shot-classification", "--model", model, "--labels", "a,b", "--hypothesis-template", "About",
                    TEXT)
    if bad.returncode == 0 or "{}" not in bad.stderr:
        t.fail(f"a template without {{}}: {bad.returncode} {bad.stderr.strip()}")
    tagger = os.path.join(tmp, "tagger")
    t.bert_model(tagger, "bert_token_cls", tokenizer_config=False)
    wrong = t.attempt("zero-shot-classification", "--model", tagger, "--labels", "a,b", TEXT)
    if wrong.returncode == 0 or "not a sequence classifier" not in wrong.stderr:
        t.fail(f"a token classifier: {wrong.returncode} {wrong.stderr.strip()}")

t.finish()
