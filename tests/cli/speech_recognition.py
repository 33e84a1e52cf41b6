#!/usr/bin/env python3
"""`tfx automatic-speech-recognition` end to end on tiny/whisper with a WordLevel tokenizer for its
ids ("w91" is 91) whose ids 378..383 are Whisper's special tokens (<|de|>, <|startoftranscript|>,
<|en|>, <|transcribe|>, <|notimestamps|>, <|endoftext|>), and a generation_config.json that lists
the languages and tasks as Whisper folders do: with --language en the prompt is the golden's
decoder prompt, so the text is the golden's greedy tokens without the special ones; a detected
language is one of the listed; an English-only model refuses --language; a text model is refused.
usage: speech_recognition.py TFX. Exit 77 when the data is absent."""
import json, os, shutil, tempfile

from pipeline_test import PipelineTest

t = PipelineTest("whisper")
golden = json.load(open(os.path.join(t.root, "golden", "tiny", "whisper.json")))
prompt = golden["prompts"][0]
wav = os.path.join(t.root, "tiny", "whisper", prompt["audio"]["file"])
SPECIALS = ["<|de|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>", "<|endoftext|>"]


def whisper_model(folder, multilingual=True):
    shutil.copytree(os.path.join(t.root, "tiny", "whisper"), folder)
    added = [{"id": 378 + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
    json.dump({"version": "1.0", "added_tokens": added, "normalizer": None, "pre_tokenizer": {"type": "Whitespace"},
               "post_processor": None, "decoder": None,
               "model": {"type": "WordLevel", "vocab": {f"w{i}": i for i in range(378)}, "unk_token": "w0"}},
              open(os.path.join(folder, "tokenizer.json"), "w"))
    generation = json.load(open(os.path.join(folder, "generation_config.json")))
    generation.update({"is_multilingual": multilingual, "lang_to_id": {"<|de|>": 378, "<|en|>": 380},
                       "task_to_id": {"transcribe": 381, "translate": 377}, "no_timestamps_token_id": 382})
    json.dump(generation, open(os.path.join(folder, "generation_config.json"), "w"))
    return folder


with tempfile.TemporaryDirectory() as tmp:
    model = whisper_model(os.path.join(tmp, "whisper"))
    if prompt["decoder_prompt_ids"] != [379, 380, 381, 382]:
        t.fail(f"the golden's prompt is {prompt['decoder_prompt_ids']}; this test expects Whisper's English one")
    n = str(len(prompt["greedy"]["new_tokens"]))
    out = json.loads(t.run("automatic-speech-recognition", "--model", model, "--language", "en",
                           "--max-new-tokens", n, wav))
    want = " ".join(f"w{i}" for i in prompt["greedy"]["new_tokens"] if i < 378)
    if out["text"] != want or out["language"] != "<|en|>" or out["tokens"] != prompt["greedy"]["new_tokens"]:
        t.fail(f"--language en: {out}, expected text {want!r}")
    detected = json.loads(t.run("automatic-speech-recognition", "--model", model, "--max-new-tokens", "2", wav))
    if detected["language"] not in ("<|en|>", "<|de|>"):
        t.fail(f"detected language {detected['language']}, expected one of lang_to_id's")
    bad = t.attempt("automatic-speech-recognition", "--model", model, "--language", "xx", wav)
    if bad.returncode == 0 or "<|xx|>" not in bad.stderr:
        t.fail(f"an unknown language should be refused naming it: {bad.stderr.strip()}")
    english = whisper_model(os.path.join(tmp, "english"), multilingual=False)
    refused = t.attempt("automatic-speech-recognition", "--model", english, "--language", "de", wav)
    if refused.returncode == 0 or "English-only" not in refused.stderr:
        t.fail(f"an English-only model should refuse --language: {refused.stderr.strip()}")
    text_model = t.attempt("automatic-speech-recognition", "--model", os.path.join(t.root, "models", "tinystories-656k"),
                           wav)
    if text_model.returncode == 0 or "speech model" not in text_model.stderr:
        t.fail(f"a text model should be refused: {text_model.stderr.strip()}")
t.finish()
