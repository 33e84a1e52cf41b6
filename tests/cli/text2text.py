#!/usr/bin/env python3
"""`tfx text2text-generation`, `tfx summarization` and `tfx translation` end to end on tiny/t5 with
a WordLevel tokenizer for its 384 ids ("w1 w17" is [1, 17]): greedy outputs decode to the golden's
greedy tokens; config.json's task_specific_params give the prefix and the generation fields
(max_length counts decoder_start_token_id); a model with several translation directions needs
--task; a decoder-only or encoder model is refused.
usage: text2text.py TFX. Exit 77 when the data is absent."""
import json, os, shutil, tempfile

from pipeline_test import PipelineTest

t = PipelineTest("t5", "bert")
golden = json.load(open(os.path.join(t.root, "golden", "tiny", "t5.json")))


def word_model(folder, family):
    shutil.copytree(os.path.join(t.root, "tiny", family), folder)
    json.dump({"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": {"type": "Whitespace"},
               "post_processor": None, "decoder": None,
               "model": {"type": "WordLevel", "vocab": {f"w{i}": i for i in range(384)}, "unk_token": "w0"}},
              open(os.path.join(folder, "tokenizer.json"), "w"))
    return folder


def words(ids):
    return " ".join(f"w{i}" for i in ids)


with tempfile.TemporaryDirectory() as tmp:
    model = word_model(os.path.join(tmp, "t5"), "t5")
    texts = [words(p["input_ids"]) for p in golden["prompts"]]
    out = t.run("text2text-generation", "--model", model, "--max-new-tokens", "16", *texts).splitlines()
    for prompt, line in zip(golden["prompts"], out):
        want = {"generated_text": words(prompt["greedy"]["new_tokens"])}
        if json.loads(line) != want:
            t.fail(f"{prompt['name']}: {line}, expected {want}")
    if len(out) != len(texts):
        t.fail(f"expected {len(texts)} lines, got {len(out)}")

    config_path = os.path.join(model, "config.json")
    config = json.load(open(config_path))
    config["task_specific_params"] = {
        "summarization": {"prefix": "w7 ", "num_beams": 2, "max_length": 6},
        "translation_en_to_de": {"prefix": "w8 ", "max_length": 4},
        "translation_en_to_fr": {"prefix": "w9 ", "max_length": 4}}
    json.dump(config, open(config_path, "w"))
    summary = json.loads(t.run("summarization", "--model", model, texts[0]))
    six = os.path.join(tmp, "six.json")
    json.dump({"max_length": 6}, open(six, "w"))
    direct = json.loads(t.run("text2text-generation", "--model", model, "--num-beams", "2",
                              "--generation-config", six, "w7 " + texts[0]))
    if summary != {"summary_text": direct["generated_text"]} or len(summary["summary_text"].split()) != 5:
        t.fail(f"summarization {summary}, expected the prefixed text's 5 beam tokens {direct}")
    both = t.attempt("translation", "--model", model, texts[0])
    if both.returncode == 0 or "translation_en_to_de" not in both.stderr:
        t.fail(f"two directions without --task should be refused naming them: {both.stderr.strip()}")
    german = json.loads(t.run("translation", "--model", model, "--task", "translation_en_to_de", texts[0]))
    if list(german) != ["translation_text"] or len(german["translation_text"].split()) != 3:
        t.fail(f"translation_en_to_de: {german}")
    bert = word_model(os.path.join(tmp, "bert"), "bert")
    out = t.attempt("summarization", "--model", bert, texts[0])
    if out.returncode == 0 or "encoder-decoder" not in out.stderr:
        t.fail(f"an encoder should be refused: {out.stderr.strip()}")
t.finish()
