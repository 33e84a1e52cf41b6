#!/usr/bin/env python3
"""`tfx question-answering` end to end: a BERT question-answering model (the shared tiny model's
config at bert-base-uncased's vocabulary, random weights) with the real bert-base-uncased
tokenizer. The pair is [CLS] question [SEP] context [SEP] with token types 0 then 1, as `tfx
forward` is given it here; the answers' scores are the best spans of its start and end logits
as transformers scores them (softmax over [CLS] and the context, start <= end < start +
max_answer_len), each answer is the context's text between its character offsets and starts
and ends on word boundaries; the empty answer competes with [CLS]'s score when asked.
usage: question_answering.py TFX. Exit 77 when the data is absent."""
import json, math, os, shutil, subprocess, sys, tempfile

tfx = sys.argv[1]
root = os.environ.get("TFX_TEST_DATA", "")
if not root or not os.path.isdir(os.path.join(root, "tiny", "bert_qa")):
    print("skipped: TFX_TEST_DATA does not point at the shared data with tiny/bert_qa")
    sys.exit(77)

QUESTION = "Where does John Smithson live?"
CONTEXT = "John Smithson lives in Zürich, unbelievably near the Hugging Face headquarters by the lake."
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
    total = sum(exps)
    return [e / total for e in exps]


def answers(model, *extra):
    out = run("question-answering", "--model", model, "--question", QUESTION, "--context", CONTEXT, *extra)
    return [json.loads(line) for line in out.splitlines()]


with tempfile.TemporaryDirectory() as tmp:
    config = json.load(open(os.path.join(root, "tiny", "bert_qa", "config.json")))
    config["vocab_size"] = 30522
    json.dump(config, open(os.path.join(tmp, "config.json"), "w"))
    model = os.path.join(tmp, "model")
    run("init-model", "--config", os.path.join(tmp, "config.json"), "--out", model)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(root, "tokenizers", "bert-base-uncased", name), model)

    question = json.loads(run("tokenize", "--tokenizer", model, "--no-special", "--text", QUESTION))["ids"]
    context = json.loads(run("tokenize", "--tokenizer", model, "--no-special", "--text", CONTEXT))["ids"]
    ids = [101] + question + [102] + context + [102]
    types = [0] * (len(question) + 2) + [1] * (len(context) + 1)
    out = json.loads(run("forward", "--model", model, "--input-ids", ",".join(map(str, ids)), "--token-type-ids",
                         ",".join(map(str, types)), "--json"))
    allowed = [i == 0 or len(question) + 2 <= i < len(ids) - 1 for i in range(len(ids))]
    start = softmax([v if ok else -10000.0 for v, ok in zip(out["start_logits"], allowed)])
    end = softmax([v if ok else -10000.0 for v, ok in zip(out["end_logits"], allowed)])
    null_score = start[0] * end[0]
    start[0] = end[0] = 0.0
    spans = sorted(((start[i] * end[j], i, j) for i in range(len(ids)) for j in range(i, min(len(ids), i + 15))
                    if allowed[i] and allowed[j]), reverse=True)

    best = answers(model, "--top-k", "3")
    if len(best) != 3:
        fail(f"--top-k 3 gave {len(best)} answers")
    for got, (score, _, _) in zip(best, spans):
        if abs(got["score"] - score) > 1e-6:
            fail(f"score {got['score']}, expected {score}")
    for a in best:
        if CONTEXT[a["start"]:a["end"]] != a["answer"] or not a["answer"]:
            fail(f"'{a['answer']}' is not the context's text at {a['start']}-{a['end']}")
        if (a["start"] > 0 and CONTEXT[a["start"] - 1].isalnum()) or (
                a["end"] < len(CONTEXT) and CONTEXT[a["end"]].isalnum()):
            fail(f"'{a['answer']}' cuts a word")
    print(f"top 3: {[a['answer'] for a in best]}, scores as the logits give them")

    one_token = answers(model, "--top-k", "5", "--max-answer-len", "1")
    if any(" " in a["answer"] for a in one_token):
        fail(f"--max-answer-len 1 gave several words: {[a['answer'] for a in one_token]}")
    everything = answers(model, "--top-k", "2000", "--handle-impossible-answer")
    empty = [a for a in everything if a["answer"] == ""]
    if len(empty) != 1 or abs(empty[0]["score"] - null_score) > 1e-6 or empty[0]["start"] != 0:
        fail(f"the empty answer: {empty}, expected score {null_score}")
    if [a["score"] for a in everything] != sorted((a["score"] for a in everything), reverse=True):
        fail("answers are not best first")
    print(f"empty answer at [CLS]'s score {null_score:.3g}; one-token answers are single words")

    for args, words in ((["--top-k", "0"], "--top-k"), (["--max-answer-len", "0"], "--max-answer-len")):
        bad = subprocess.run([tfx, "question-answering", "--model", model, "--question", QUESTION, "--context",
                              CONTEXT, *args], capture_output=True, text=True)
        if bad.returncode == 0 or words not in bad.stderr:
            fail(f"{args}: {bad.returncode} {bad.stderr.strip()}")
    token_model = os.path.join(tmp, "tokens")
    config = json.load(open(os.path.join(root, "tiny", "bert_token_cls", "config.json")))
    config["vocab_size"] = 30522
    json.dump(config, open(os.path.join(tmp, "config.json"), "w"))
    run("init-model", "--config", os.path.join(tmp, "config.json"), "--out", token_model)
    shutil.copy(os.path.join(root, "tokenizers", "bert-base-uncased", "tokenizer.json"), token_model)
    wrong = subprocess.run([tfx, "question-answering", "--model", token_model, "--question", QUESTION, "--context",
                            CONTEXT], capture_output=True, text=True)
    if wrong.returncode == 0 or "not an extractive question-answering model" not in wrong.stderr:
        fail(f"a token classifier: {wrong.returncode} {wrong.stderr.strip()}")

sys.exit(1 if failed else 0)
