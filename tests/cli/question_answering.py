#!/usr/bin/env python3
"""`tfx question-answering` end to end: a BERT question-answering model (the shared tiny model's
config at bert-base-uncased's vocabulary, random weights) with the real bert-base-uncased
tokenizer. The pair is [CLS] question [SEP] context [SEP] with token types 0 then 1, as `tfx
forward` is given it here; the answers' scores are the best spans of its start and end logits
as transformers scores them (softmax over [CLS] and the context, start <= end < start +
max_answer_len), each answer is the context's text between its character offsets and starts
and ends on word boundaries; the empty answer competes with [CLS]'s score when asked. A context
longer than --max-seq-len is read in windows overlapping by --doc-stride context tokens (a
tokenizer's overflowing encodings: truncation only_second with a stride), each scored on its
own, the answers of all windows best first, the empty answer at the lowest [CLS] score.
usage: question_answering.py TFX. Exit 77 when the data is absent."""
import json, os, tempfile

from pipeline_test import PipelineTest, softmax

t = PipelineTest("bert_qa", "bert_token_cls")
QUESTION = "Where does John Smithson live?"
CONTEXT = "John Smithson lives in Zürich, unbelievably near the Hugging Face headquarters by the lake."


def answers(model, *extra, context=CONTEXT):
    out = t.run("question-answering", "--model", model, "--question", QUESTION, "--context", context, *extra)
    return [json.loads(line) for line in out.splitlines()]


def scored_spans(model, question, context, top_k):
    """[CLS] question [SEP] context [SEP] through `tfx forward`: the window's best spans as
    (score, first, last) in context tokens, and its empty-answer score."""
    ids = [101] + question + [102] + context + [102]
    types = [0] * (len(question) + 2) + [1] * (len(context) + 1)
    out = json.loads(t.run("forward", "--model", model, "--input-ids", ",".join(map(str, ids)), "--token-type-ids",
                           ",".join(map(str, types)), "--json"))
    allowed = [i == 0 or len(question) + 2 <= i < len(ids) - 1 for i in range(len(ids))]
    start = softmax([v if ok else -10000.0 for v, ok in zip(out["start_logits"], allowed)])
    end = softmax([v if ok else -10000.0 for v, ok in zip(out["end_logits"], allowed)])
    null_score = start[0] * end[0]
    start[0] = end[0] = 0.0
    spans = sorted(((start[i] * end[j], i, j) for i in range(len(ids)) for j in range(i, min(len(ids), i + 15))
                    if 0 < i and allowed[i] and allowed[j]), reverse=True)[:top_k]
    offset = len(question) + 2
    return [(score, i - offset, j - offset) for score, i, j in spans], null_score


with tempfile.TemporaryDirectory() as tmp:
    model = os.path.join(tmp, "model")
    t.bert_model(model, "bert_qa")

    def tokens(text):
        return json.loads(t.run("tokenize", "--tokenizer", model, "--no-special", "--text", text))["ids"]

    question, context = tokens(QUESTION), tokens(CONTEXT)
    spans, null_score = scored_spans(model, question, context, 2000)

    best = answers(model, "--top-k", "3")
    if len(best) != 3:
        t.fail(f"--top-k 3 gave {len(best)} answers")
    for got, (score, _, _) in zip(best, spans):
        if abs(got["score"] - score) > 1e-6:
            t.fail(f"score {got['score']}, expected {score}")
    for a in best:
        if CONTEXT[a["start"]:a["end"]] != a["answer"] or not a["answer"]:
            t.fail(f"'{a['answer']}' is not the context's text at {a['start']}-{a['end']}")
        if (a["start"] > 0 and CONTEXT[a["start"] - 1].isalnum()) or (
                a["end"] < len(CONTEXT) and CONTEXT[a["end"]].isalnum()):
            t.fail(f"'{a['answer']}' cuts a word")
    print(f"top 3: {[a['answer'] for a in best]}, scores as the logits give them")

    one_token = answers(model, "--top-k", "5", "--max-answer-len", "1")
    if any(" " in a["answer"] for a in one_token):
        t.fail(f"--max-answer-len 1 gave several words: {[a['answer'] for a in one_token]}")
    everything = answers(model, "--top-k", "2000", "--handle-impossible-answer")
    empty = [a for a in everything if a["answer"] == ""]
    if len(empty) != 1 or abs(empty[0]["score"] - null_score) > 1e-6 or empty[0]["start"] != 0:
        t.fail(f"the empty answer: {empty}, expected score {null_score}")
    if [a["score"] for a in everything] != sorted((a["score"] for a in everything), reverse=True):
        t.fail("answers are not best first")
    print(f"empty answer at [CLS]'s score {null_score:.3g}; one-token answers are single words")

    # Three times the context in windows of 40 tokens sharing 6: each window's best spans,
    # together with the lowest empty-answer score, best first.
    long_context = " ".join([CONTEXT] * 3)
    long_tokens = tokens(long_context)
    room, stride = 40 - len(question) - 3, 6
    windows, begin = [], 0
    while True:
        windows.append((begin, min(begin + room, len(long_tokens))))
        if windows[-1][1] == len(long_tokens):
            break
        begin += room - stride
    candidates, lowest_null = [], 1e6
    for begin, end in windows:
        window_spans, window_null = scored_spans(model, question, long_tokens[begin:end], 2000)
        candidates += [score for score, _, _ in window_spans]
        lowest_null = min(lowest_null, window_null)
    for top_k in (5, 2000):
        expected = sorted(candidates + [lowest_null], reverse=True)[:top_k]
        got = answers(model, "--top-k", str(top_k), "--max-seq-len", "40", "--doc-stride", "6",
                      "--handle-impossible-answer", context=long_context)
        if len(windows) < 3 or len(got) != len(expected) or any(
                abs(a["score"] - score) > 1e-6 for a, score in zip(got, expected)):
            t.fail(f"{len(windows)} windows, top {top_k}: scores {[a['score'] for a in got][:8]}..., "
                   f"expected {expected[:8]}...")
        for a in got:
            if long_context[a["start"]:a["end"]] != a["answer"]:
                t.fail(f"'{a['answer']}' is not the long context's text at {a['start']}-{a['end']}")
        empty = [a["score"] for a in got if a["answer"] == ""]
        if top_k == 2000 and (len(empty) != 1 or abs(empty[0] - lowest_null) > 1e-9):
            t.fail(f"top {top_k}: the empty answer {empty}, expected the lowest [CLS] score {lowest_null}")
    print(f"{len(windows)} windows of 40 tokens: their answers best first, as each window scores them")

    for args, words in ((["--max-seq-len", "40", "--doc-stride", str(room)], "doc_stride"),
                        (["--max-seq-len", str(len(question) + 3)], "the question takes"),
                        (["--max-seq-len", "257"], "max_seq_len")):
        bad = t.attempt("question-answering", "--model", model, "--question", QUESTION, "--context", long_context,
                        *args)
        if bad.returncode == 0 or words not in bad.stderr:
            t.fail(f"{args}: {bad.returncode} {bad.stderr.strip()}")

    for args, words in ((["--top-k", "0"], "--top-k"), (["--max-answer-len", "0"], "--max-answer-len")):
        bad = t.attempt("question-answering", "--model", model, "--question", QUESTION, "--context", CONTEXT, *args)
        if bad.returncode == 0 or words not in bad.stderr:
            t.fail(f"{args}: {bad.returncode} {bad.stderr.strip()}")
    token_model = os.path.join(tmp, "tokens")
    t.bert_model(token_model, "bert_token_cls", tokenizer_config=False)
    wrong = t.attempt("question-answering", "--model", token_model, "--question", QUESTION, "--context", CONTEXT)
    if wrong.returncode == 0 or "not an extractive question-answering model" not in wrong.stderr:
        t.fail(f"a token classifier: {wrong.returncode} {wrong.stderr.strip()}")

t.finish()
