"""The Python package against the goldens, through its transformers-shaped API: tinystories'
greedy tokens (generate, pipeline), streaming, BERT's hidden states, chat templates, numpy in
and out, and clean exceptions for bad input. Data from $TFX_TEST_DATA (skipped without it)."""
import json
import os
import shutil
import threading

import numpy as np
import pytest

import tfx

DATA = os.environ.get("TFX_TEST_DATA", "")


def data(relative):
    path = os.path.join(DATA, relative)
    if not DATA or not os.path.exists(path):
        pytest.skip(f"TFX_TEST_DATA does not hold {relative}")
    return path


@pytest.fixture(scope="module")
def stories():
    return data("models/tinystories-656k")


@pytest.fixture(scope="module")
def golden():
    with open(data("golden/tinystories-656k.json")) as f:
        return json.load(f)["prompts"]


def test_generate_reproduces_the_golden_greedy_tokens(stories, golden):
    model = tfx.AutoModelForCausalLM.from_pretrained(stories)
    for prompt in golden:
        want = prompt["greedy"]["new_tokens"]
        out = model.generate(prompt["input_ids"], max_new_tokens=len(want), do_sample=False, eos_token_id=None)
        assert out[0] == prompt["input_ids"] + want, prompt["name"]


def test_numpy_in_numpy_out_and_logits(stories, golden):
    model = tfx.AutoModelForCausalLM.from_pretrained(stories)
    prompt = golden[0]
    out = model.generate(np.array([prompt["input_ids"]]), max_new_tokens=4, eos_token_id=None)
    assert isinstance(out, np.ndarray) and out.shape == (1, len(prompt["input_ids"]) + 4)
    logits = model(prompt["input_ids"])["logits"]
    assert logits.shape == (1, len(prompt["input_ids"]), 2048)
    assert list(logits[0].argmax(axis=-1)) == prompt["argmax_per_position"]
    assert np.allclose(logits[0, -1], prompt["last_logits"], atol=1e-4)


def test_lora_adapters_at_run_time_merged_and_switched(stories):
    lora = data("lora/tinystories-656k")

    def golden_of(name):
        with open(os.path.join(lora, "golden", name)) as f:
            return json.load(f)["prompts"]

    def check(model, prompts):
        for prompt in prompts:
            want = prompt["greedy"]["new_tokens"]
            out = model.generate(prompt["input_ids"], max_new_tokens=len(want), do_sample=False, eos_token_id=None)
            assert out[0] == prompt["input_ids"] + want, prompt["name"]
            assert np.allclose(model(prompt["input_ids"])["logits"][0, -1], prompt["last_logits"], atol=1e-4)

    a1, a2 = os.path.join(lora, "adapters", "a1"), os.path.join(lora, "adapters", "a2")
    check(tfx.AutoModelForCausalLM.from_pretrained(stories, lora=[a1], merge_lora=True), golden_of("a1-merged.json"))
    both = tfx.AutoModelForCausalLM.from_pretrained(stories, lora=[a1, a2])
    both.set_adapter("a2")
    check(both, golden_of("switch-1-a2.json"))
    both.set_adapter(["a1"])
    check(both, golden_of("switch-2-a1.json"))
    both.set_adapter(None)
    check(both, golden_of("switch-3-disabled.json"))
    with pytest.raises(tfx.TfxError, match="no LoRA adapter named 'a3'"):
        both.set_adapter("a3")


def test_forward_outputs_come_through_dlpack_without_a_copy(stories, golden):
    model = tfx.AutoModelForCausalLM.from_pretrained(stories)
    prompt = golden[0]
    tensor = model._model.forward(prompt["input_ids"], True)
    assert tensor.__dlpack_device__() == (1, 0)
    logits = np.from_dlpack(tensor)
    assert not logits.flags.owndata  # a view of the engine's buffer
    assert logits.shape == (len(prompt["input_ids"]), 2048)
    assert np.allclose(logits[-1], prompt["last_logits"], atol=1e-4)
    with pytest.raises(RuntimeError, match="already handed"):
        tensor.__dlpack__()
    del logits  # the consumer frees the buffer through the tensor's deleter


def test_tokenizer_and_text_generation_pipeline(stories):
    tok = tfx.AutoTokenizer.from_pretrained(stories)
    enc = tok("Once upon a time")
    assert enc.input_ids == enc["input_ids"] and enc.attention_mask == [1] * len(enc.input_ids)
    assert tok.decode(enc.input_ids, skip_special_tokens=True) == "Once upon a time"
    model = tfx.AutoModelForCausalLM.from_pretrained(stories)
    new = model.generate(enc.input_ids, max_new_tokens=8, do_sample=False)[0][len(enc.input_ids):]
    with pytest.raises(tfx.TfxError, match="unknown field 'max_new_tokenz'"):
        model.generate(enc.input_ids, max_new_tokenz=8)
    generator = tfx.pipeline("text-generation", model=stories)
    out = generator("Once upon a time", max_new_tokens=8, do_sample=False)
    assert out == [{"generated_text": "Once upon a time" + tok.decode(new, skip_special_tokens=True)}]


def test_tokenizer_pads_and_truncates_as_transformers(stories):
    tok = tfx.AutoTokenizer.from_pretrained(stories)
    assert tok.eos_token_id == 2 and tok.bos_token_id == 1
    texts = ["Once upon a time", "The dog found his ball. He was happy again."]
    plain = tok(texts).input_ids
    tok.pad_token_id = None
    with pytest.raises(ValueError, match="padding token"):
        tok(texts, padding=True)
    tok.pad_token_id = tok.eos_token_id
    batch = tok(texts, padding=True, return_tensors="np")
    width = max(len(r) for r in plain)
    assert batch.input_ids.shape == (2, width)
    assert batch.input_ids[0].tolist() == plain[0] + [2] * (width - len(plain[0]))
    assert batch.attention_mask[0].tolist() == [1] * len(plain[0]) + [0] * (width - len(plain[0]))
    tok.padding_side = "left"
    left = tok(texts, padding="max_length", truncation=True, max_length=8)
    assert left.input_ids[0] == [2] * (8 - len(plain[0])) + plain[0] and left.input_ids[1] == plain[1][:8]
    assert left.attention_mask[1] == [1] * 8


def test_streamed_text_is_the_whole_text(stories):
    tok = tfx.AutoTokenizer.from_pretrained(stories)
    model = tfx.AutoModelForCausalLM.from_pretrained(stories)
    ids = tok("Once upon a time").input_ids
    streamer = tfx.TextIteratorStreamer(tok, skip_prompt=True, timeout=60)
    result = {}
    thread = threading.Thread(target=lambda: result.update(out=model.generate(ids, max_new_tokens=24, streamer=streamer)))
    thread.start()
    chunks = list(streamer)
    thread.join()
    assert len(chunks) > 5
    assert "".join(chunks) == tok.decode(result["out"][0][len(ids):], skip_special_tokens=True)


def test_sampling_repeats_with_a_seed_and_beams_return_several(stories):
    model = tfx.AutoModelForCausalLM.from_pretrained(stories)
    ids = [1, 80, 147, 201, 282, 57]
    a = model.generate(ids, max_new_tokens=12, do_sample=True, seed=11, top_k=0)
    assert a == model.generate(ids, max_new_tokens=12, do_sample=True, seed=11, top_k=0)
    assert len(model.generate(ids, max_new_tokens=6, num_beams=3, num_return_sequences=2)) == 2


def with_word_tokenizer(model_dir, tmp_path):
    """A copy of a tiny model with a WordLevel tokenizer for its 384 ids: "w1 w17" is [1, 17]."""
    for f in os.listdir(model_dir):
        shutil.copy(os.path.join(model_dir, f), tmp_path)
    vocab = {f"w{i}": i for i in range(384)}
    (tmp_path / "tokenizer.json").write_text(json.dumps({
        "version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None, "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    return str(tmp_path)


def test_text_classification_scores_are_the_softmax_of_the_golden_logits(tmp_path):
    model = with_word_tokenizer(data("tiny/bert_cls"), tmp_path)
    classifier = tfx.pipeline("text-classification", model=model)
    for prompt in json.load(open(data("golden/tiny/bert_cls.json")))["prompts"]:
        text = " ".join(f"w{i}" for i in prompt["input_ids"])
        logits = np.array(prompt["logits"], dtype=np.float64).reshape(-1)
        want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        scores = classifier(text, top_k=None)
        assert len(scores) == len(want) and scores[0]["score"] == max(s["score"] for s in scores)
        for s in scores:
            assert abs(s["score"] - want[int(s["label"].split("_")[-1])]) < 1e-5, prompt["name"]
        assert classifier(text) == [scores[0]]
    # Every prompt in one call (the engine runs them together): each as the golden gives it.
    prompts = json.load(open(data("golden/tiny/bert_cls.json")))["prompts"]
    together = classifier([" ".join(f"w{i}" for i in p["input_ids"]) for p in prompts], top_k=None)
    assert len(together) == len(prompts)
    for scores, prompt in zip(together, prompts):
        logits = np.array(prompt["logits"], dtype=np.float64).reshape(-1)
        want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        for s in scores:
            assert abs(s["score"] - want[int(s["label"].split("_")[-1])]) < 1e-5, prompt["name"]


def test_token_classification_labels_tokens_by_the_golden_logits(tmp_path):
    tagger = tfx.pipeline("token-classification", model=with_word_tokenizer(data("tiny/bert_token_cls"), tmp_path))
    labels = json.load(open(data("tiny/bert_token_cls/config.json")))["id2label"]
    for prompt in json.load(open(data("golden/tiny/bert_token_cls.json")))["prompts"]:
        words = [f"w{i}" for i in prompt["input_ids"]]
        text = " ".join(words)
        entities = tagger(text, ignore_labels=[])
        assert [e["index"] for e in entities] == list(range(len(words))), prompt["name"]
        for e, logits in zip(entities, prompt["logits"]):
            probs = np.exp(np.array(logits) - max(logits))
            probs /= probs.sum()
            assert e["entity"] == labels[str(int(probs.argmax()))] and abs(e["score"] - probs.max()) < 1e-4
            assert text[e["start"]:e["end"]] == e["word"] == words[e["index"]]
        groups = tagger(text, aggregation_strategy="simple", ignore_labels=[])
        assert " ".join(g["word"] for g in groups) == text  # every token, in order, in some group
        assert all(g["entity_group"] == entities[0]["entity"].split("-")[-1] for g in groups[:1])
        # Two texts run together (a ragged batch): each as alone, scores to float rounding.
        together = tagger([text, text], ignore_labels=[])
        assert len(together) == 2
        for got in together:
            assert [{k: v for k, v in e.items() if k != "score"} for e in got] == \
                   [{k: v for k, v in e.items() if k != "score"} for e in entities]
            assert all(abs(g["score"] - e["score"]) < 1e-5 for g, e in zip(got, entities))


def test_question_answering_picks_the_best_span_of_the_golden_logits(tmp_path):
    model = with_word_tokenizer(data("tiny/bert_qa"), tmp_path)
    tokenizer = json.load(open(os.path.join(model, "tokenizer.json")))
    tokenizer["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                 {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
        "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [101], "tokens": ["w101"]},
                           "[SEP]": {"id": "[SEP]", "ids": [102], "tokens": ["w102"]}}}
    json.dump(tokenizer, open(os.path.join(model, "tokenizer.json"), "w"))
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "cls_token": "w101"},
              open(os.path.join(model, "tokenizer_config.json"), "w"))
    answerer = tfx.pipeline("question-answering", model=model)
    for prompt in json.load(open(data("golden/tiny/bert_qa.json")))["prompts"]:
        ids, types = prompt["input_ids"], prompt["token_type_ids"]
        first_context = types.index(1)
        question, context = ids[1:first_context - 1], ids[first_context:-1]
        assert ids == [101] + question + [102] + context + [102], prompt["name"]
        allowed = np.array([i == 0 or first_context <= i < len(ids) - 1 for i in range(len(ids))])

        def masked_softmax(logits):
            x = np.where(allowed, np.array(logits, dtype=np.float64), -10000.0)
            e = np.exp(x - x.max())
            return e / e.sum()

        start, end = masked_softmax(prompt["start_logits"]), masked_softmax(prompt["end_logits"])
        start[0] = end[0] = 0.0
        scores = np.tril(np.triu(np.outer(start, end)), 14)
        scores[~allowed, :] = 0.0
        scores[:, ~allowed] = 0.0
        i, j = np.unravel_index(scores.argmax(), scores.shape)
        context_text = " ".join(f"w{t}" for t in context)
        answer = answerer(question=" ".join(f"w{t}" for t in question), context=context_text)
        want = " ".join(f"w{t}" for t in ids[i:j + 1])
        assert answer["answer"] == want == context_text[answer["start"]:answer["end"]], prompt["name"]
        assert abs(answer["score"] - scores[i, j]) < 1e-4, prompt["name"]
        assert len(answerer(question="w5", context=context_text, top_k=3)) == 3
        # A window holds the question, 3 special tokens and 2 context tokens: the context in windows.
        windowed = answerer(question=" ".join(f"w{t}" for t in question), context=context_text,
                            max_seq_len=len(question) + 5, doc_stride=1, top_k=50)
        assert all(len(a["answer"].split()) <= 2 for a in windowed), prompt["name"]
        with pytest.raises(tfx.InvalidArgumentError, match="doc_stride"):
            answerer(question="w5", context=context_text, max_seq_len=6, doc_stride=2)


def test_zero_shot_classification_ranks_candidates_by_entailment(tmp_path):
    model = with_word_tokenizer(data("tiny/bert_cls"), tmp_path)
    config = json.load(open(os.path.join(model, "config.json")))
    config["id2label"] = {"0": "contradiction", "1": "neutral", "2": "entailment"}
    json.dump(config, open(os.path.join(model, "config.json"), "w"))
    classifier = tfx.pipeline("zero-shot-classification", model=model)
    text = "w5 w17 w250 w31"
    single = classifier(text, candidate_labels=["w7", "w8", "w9"], hypothesis_template="w2 {} w3")
    assert single["sequence"] == text and sorted(single["labels"]) == ["w7", "w8", "w9"]
    assert abs(sum(single["scores"]) - 1.0) < 1e-5 and single["scores"] == sorted(single["scores"], reverse=True)
    multi = classifier([text, text], candidate_labels="w7, w8", hypothesis_template="w2 {} w3", multi_label=True)
    assert len(multi) == 2 and multi[0] == multi[1] and all(0.0 < s < 1.0 for s in multi[0]["scores"])
    with pytest.raises(tfx.TfxError, match="hypothesis_template"):
        classifier(text, candidate_labels=["w7"], hypothesis_template="no slot")


def test_image_classification_gives_transformers_labels_for_the_png(tmp_path):
    golden = json.load(open(data("golden/tiny/vit.json")))
    model = data("tiny/vit")
    classifier = tfx.pipeline("image-classification", model=model)
    prompt = golden["prompts"][0]
    image = os.path.join(model, prompt["image"]["file"])
    labels = classifier(image)
    assert [l["label"] for l in labels] == [golden["id2label"][str(i)] for i in prompt["top5"]["ids"]]
    logits = np.array(prompt["logits"])
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert abs(labels[0]["score"] - probs.max()) < 1e-4
    both = classifier([image, image], top_k=2)
    assert len(both) == 2 and both[0] == both[1] and len(both[0]) == 2
    # A field the engine's pipeline does not read is refused, not ignored.
    with pytest.raises(tfx.TfxError, match="unknown field 'topk' for image-classification"):
        classifier._pipeline.run(json.dumps({"image": image, "topk": 2}))
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(tfx.TfxError, match="notes.png"):
        classifier(str(bad))


def test_zero_shot_image_classification_is_the_softmax_of_clips_logits(tmp_path):
    golden = json.load(open(data("golden/tiny/clip.json")))
    model = with_word_tokenizer(data("tiny/clip"), tmp_path)
    classifier = tfx.pipeline("zero-shot-image-classification", model=model)
    prompt = golden["prompts"][0]
    # "w382 {} w383" around a label of the golden's inner ids gives its text's ids exactly.
    labels = [" ".join(f"w{i}" for i in t["input_ids"][1:-1]) for t in prompt["texts"]]
    got = classifier(os.path.join(model, prompt["image"]["file"]), candidate_labels=labels,
                     hypothesis_template="w382 {} w383")
    logits = np.array(prompt["logits_per_image"], dtype=np.float64)
    want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert [g["label"] for g in got] == [labels[i] for i in np.argsort(-want, kind="stable")]
    for g in got:
        assert abs(g["score"] - want[labels.index(g["label"])]) < 1e-4


def test_text2text_pipelines_decode_t5_generations_with_the_tasks_params(tmp_path):
    model = with_word_tokenizer(data("tiny/t5"), tmp_path)
    golden = json.load(open(data("golden/tiny/t5.json")))
    texts = [" ".join(f"w{i}" for i in p["input_ids"]) for p in golden["prompts"]]
    generator = tfx.pipeline("text2text-generation", model=model)
    out = generator(texts, max_new_tokens=16)
    for prompt, o in zip(golden["prompts"], out):
        assert o == {"generated_text": " ".join(f"w{t}" for t in prompt["greedy"]["new_tokens"])}, prompt["name"]
    assert generator(texts[0], max_new_tokens=16) == [out[0]]
    # config.json's task_specific_params: the prefix goes before the text, the rest into the
    # generation config (max_length counts decoder_start_token_id).
    config = json.load(open(os.path.join(model, "config.json")))
    config["task_specific_params"] = {"summarization": {"prefix": "w7 ", "num_beams": 2, "max_length": 6}}
    json.dump(config, open(os.path.join(model, "config.json"), "w"))
    summary = tfx.pipeline("summarization", model=model)(texts[0])
    assert len(summary) == 1 and len(summary[0]["summary_text"].split()) == 5
    assert summary == [{"summary_text": generator("w7 " + texts[0], num_beams=2, max_length=6)[0]["generated_text"]}]
    bert = tmp_path / "bert"
    bert.mkdir()
    with pytest.raises(tfx.TfxError, match="encoder-decoder"):
        tfx.pipeline("summarization", model=with_word_tokenizer(data("tiny/bert"), bert))


def test_feature_extraction_matches_bert_hidden_states(tmp_path):
    golden = data("golden/tiny/bert.json")
    extractor = tfx.pipeline("feature-extraction", model=with_word_tokenizer(data("tiny/bert"), tmp_path))
    for prompt in json.load(open(golden))["prompts"]:
        features = np.array(extractor(" ".join(f"w{i}" for i in prompt["input_ids"])))
        assert features.shape == (1, len(prompt["input_ids"]), prompt["hidden_size"])
        assert np.allclose(features[0].mean(axis=0), prompt["mean_pooled"], atol=1e-4), prompt["name"]


def test_chat_template_renders_messages(stories, tmp_path):
    template = data("chat_templates/qwen2_5/tokenizer_config.json")
    for f in os.listdir(stories):
        shutil.copy(os.path.join(stories, f), tmp_path)
    config = json.load(open(tmp_path / "tokenizer_config.json"))
    config["chat_template"] = json.load(open(template))["chat_template"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tok = tfx.AutoTokenizer.from_pretrained(str(tmp_path))
    messages = [{"role": "user", "content": "Tell me a story"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>user\nTell me a story<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    assert tok.apply_chat_template(messages, add_generation_prompt=True) == tok.encode(text, add_special_tokens=False)


def test_bad_input_raises_clean_python_exceptions(stories, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such local folder"):
        tfx.AutoModelForCausalLM.from_pretrained(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": ')
    with pytest.raises(tfx.TfxError, match="config.json"):
        tfx.AutoModelForCausalLM.from_pretrained(str(tmp_path))
    model = tfx.AutoModelForCausalLM.from_pretrained(stories)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.generate([1, 5000], max_new_tokens=2)
    with pytest.raises(ValueError, match="top_p"):
        model.generate([1, 80], max_new_tokens=2, do_sample=True, top_p=7)
    with pytest.raises(ValueError, match="integer token ids"):
        model.generate([[1, "a"]], max_new_tokens=2)
    tok = tfx.AutoTokenizer.from_pretrained(stories)
    with pytest.raises(FileNotFoundError, match="chat_template"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])


def test_speech_recognition_transcribes_whisper_with_its_english_prompt(tmp_path):
    golden = json.load(open(data("golden/tiny/whisper.json")))["prompts"][0]
    for f in os.listdir(data("tiny/whisper")):
        shutil.copy(os.path.join(data("tiny/whisper"), f), tmp_path)
    specials = ["<|de|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>", "<|endoftext|>"]
    added = [{"id": 378 + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(specials)]
    (tmp_path / "tokenizer.json").write_text(json.dumps({
        "version": "1.0", "added_tokens": added, "normalizer": None, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {f"w{i}": i for i in range(378)}, "unk_token": "w0"}}))
    generation = json.load(open(tmp_path / "generation_config.json"))
    generation.update({"lang_to_id": {"<|de|>": 378, "<|en|>": 380}, "task_to_id": {"transcribe": 381},
                       "no_timestamps_token_id": 382})
    (tmp_path / "generation_config.json").write_text(json.dumps(generation))
    asr = tfx.pipeline("automatic-speech-recognition", model=str(tmp_path))
    wav = os.path.join(data("tiny/whisper"), golden["audio"]["file"])
    n = len(golden["greedy"]["new_tokens"])
    want = {"text": " ".join(f"w{i}" for i in golden["greedy"]["new_tokens"] if i < 378)}
    assert asr(wav, language="en", max_new_tokens=n) == want
    assert asr([wav], language="en", max_new_tokens=n) == [want]
    with pytest.raises(tfx.TfxError, match="<\\|xx\\|>"):
        asr(wav, language="xx")


def test_image_feature_extraction_gives_clips_image_embeds():
    golden = json.load(open(data("golden/tiny/clip.json")))["prompts"][0]
    embedder = tfx.pipeline("image-feature-extraction", model=data("tiny/clip"))
    image = os.path.join(data("tiny/clip"), golden["image"]["file"])
    assert np.allclose(embedder(image), golden["image_embeds"], atol=1e-4)
    both = embedder([image, image])
    assert len(both) == 2 and np.allclose(both[1], golden["image_embeds"], atol=1e-4)
