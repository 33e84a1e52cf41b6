#!/usr/bin/env python3
"""`tfx zero-shot-classification` end to end: an NLI model (the shared tiny BERT sequence
classifier's config at bert-base-uncased's vocabulary with labels contradiction, neutral,
entailment; random weights) with the real bert-base-uncased tokenizer. Each candidate's pair is
[CLS] text [SEP] hypothesis [SEP] with token types 0 then 1, as `tfx forward` is given it here;
single-label scores are the softmax of the candidates' entailment logits, multi-label ones each
candidate's entailment against contradiction, labels best first; a template without {} and a
model that is not a sequence classifier are refused.
usage: zero_shot_classification.py TFX. Exit 77 when the data is absent."""
import json, math, os, shutil, subprocess, sys, tempfile

tfx = sys.argv[1]
root = os.environ.get("TFX_TEST_DATA", "")
if not root or not os.path.isdir(os.path.join(root, "tiny", "bert_cls")):
    print("skipped: TFX_TEST_DATA does not point at the shared data with tiny/bert_cls")
    sys.exit(77)

TEXT = "The match went to extra time before the home side scored."
LABELS = ["sports", "politics", "cooking"]
TEMPLATE = "This text is about {}."
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


def softmax(values):
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


with tempfile.TemporaryDirectory() as tmp:
    config = json.load(open(os.path.join(root, "tiny", "bert_cls", "config.json")))
    config["vocab_size"] = 30522
    config["id2label"] = {"0": "contradiction", "1": "neutral", "2": "entailment"}
    config["label2id"] = {"contradiction": 0, "neutral": 1, "entailment": 2}
    json.dump(config, open(os.path.join(tmp, "config.json"), "w"))
    model = os.path.join(tmp, "model")
    run("init-model", "--config", os.path.join(tmp, "config.json"), "--out", model)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(root, "tokenizers", "bert-base-uncased", name), model)

    def tokens(text):
        return json.loads(run("tokenize", "--tokenizer", model, "--no-special", "--text", text))["ids"]

    premise = tokens(TEXT)
    logits = []
    for label in LABELS:
        hypothesis = tokens(TEMPLATE.replace("{}", label))
        ids = [101] + premise + [102] + hypothesis + [102]
        types = [0] * (len(premise) + 2) + [1] * (len(hypothesis) + 1)
        out = json.loads(run("forward", "--model", model, "--input-ids", ",".join(map(str, ids)), "--token-type-ids",
                             ",".join(map(str, types)), "--json"))
        logits.append(out["logits"][0] if isinstance(out["logits"][0], list) else out["logits"])
    single = dict(zip(LABELS, softmax([row[2] for row in logits])))
    multi = dict(zip(LABELS, [softmax([row[0], row[2]])[1] for row in logits]))

    for flags, want in (([], single), (["--multi-label"], multi)):
        got = json.loads(run("zero-shot-classification", "--model", model, "--labels", " , ".join(LABELS),
                             "--hypothesis-template", TEMPLATE, *flags, TEXT))
        if got["sequence"] != TEXT or sorted(got["labels"]) != sorted(LABELS):
            fail(f"{flags}: {got}")
        if got["scores"] != sorted(got["scores"], reverse=True):
            fail(f"{flags}: labels are not best first: {got}")
        for label, score in zip(got["labels"], got["scores"]):
            if abs(score - want[label]) > 1e-5:
                fail(f"{flags}: {label} scored {score}, expected {want[label]}")
        print(f"{'multi-label' if flags else 'single-label'}: {got['labels']} {['%.4f' % s for s in got['scores']]}")

    bad = subprocess.run([tfx, "zero-shot-classification", "--model", model, "--labels", "a,b",
                          "--hypothesis-template", "About", TEXT], capture_output=True, text=True)
    if bad.returncode == 0 or "{}" not in bad.stderr:
        fail(f"a template without {{}}: {bad.returncode} {bad.stderr.strip()}")
    tagger = os.path.join(tmp, "tagger")
    config = json.load(open(os.path.join(root, "tiny", "bert_token_cls", "config.json")))
    config["vocab_size"] = 30522
    json.dump(config, open(os.path.join(tmp, "config.json"), "w"))
    run("init-model", "--config", os.path.join(tmp, "config.json"), "--out", tagger)
    shutil.copy(os.path.join(root, "tokenizers", "bert-base-uncased", "tokenizer.json"), tagger)
    wrong = subprocess.run([tfx, "zero-shot-classification", "--model", tagger, "--labels", "a,b", TEXT],
                           capture_output=True, text=True)
    if wrong.returncode == 0 or "not a sequence classifier" not in wrong.stderr:
        fail(f"a token classifier: {wrong.returncode} {wrong.stderr.strip()}")

sys.exit(1 if failed else 0)
