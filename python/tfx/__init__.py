"""tfx from Python, shaped like transformers: AutoTokenizer, AutoModelForCausalLM (generate with
transformers' generation kwargs), AutoModel (hidden states), TextStreamer /
TextIteratorStreamer, and pipeline("text-generation" | "feature-extraction").

Everything runs in the tfx engine through its C host API (tfx/host_api.h); engine errors are
raised as tfx.errors.TfxError subclasses (a missing model is also a FileNotFoundError, a bad
argument a ValueError).

    import tfx
    tok = tfx.AutoTokenizer.from_pretrained("path/to/model")
    model = tfx.AutoModelForCausalLM.from_pretrained("path/to/model")
    out = model.generate(tok("Once upon a time")["input_ids"], max_new_tokens=20)
    print(tok.decode(out[0]))
"""
from __future__ import annotations

import json
import queue
import threading
import weakref
from typing import Any, Iterable, Iterator, Sequence

from . import _tfx
from .errors import FormatError, InvalidArgumentError, NotFoundError, TfxError, UnsupportedError

__all__ = [
    "AutoModel", "AutoModelForCausalLM", "AutoTokenizer", "CausalLM", "FormatError", "InvalidArgumentError",
    "Model", "NotFoundError", "TextIteratorStreamer", "TextStreamer", "TfxError", "Tokenizer", "UnsupportedError",
    "pipeline",
]

# One engine model per folder and options: AutoTokenizer and AutoModel* on the same folder share it.
_open_models: "weakref.WeakValueDictionary[tuple, _tfx.Model]" = weakref.WeakValueDictionary()


def _open(path: str, num_threads: int = 0, device: str | None = None, quantize: str | None = None,
          kv_dtype: str | None = None, revision: str | None = None, offline: bool = False,
          lora: Sequence[str] = (), merge_lora: bool = False) -> _tfx.Model:
    lora = [str(spec) for spec in lora]
    if lora and not merge_lora:
        # Run-time adapters carry a choice (set_adapter) each handle makes on its own.
        return _tfx.Model(str(path), num_threads, device, quantize, kv_dtype, revision, offline, lora, merge_lora)
    key = (str(path), num_threads, device, quantize, kv_dtype, revision, offline, tuple(lora), merge_lora)
    model = _open_models.get(key)
    if model is None:
        model = _tfx.Model(str(path), num_threads, device, quantize, kv_dtype, revision, offline, lora, merge_lora)
        _open_models[key] = model
    return model


def _id_rows(input_ids: Any, attention_mask: Any = None) -> tuple[list[list[int]], bool]:
    """Token ids as a list of rows (pads, where attention_mask is 0, left out); and whether
    they came as a single row."""
    if hasattr(input_ids, "tolist"):
        input_ids = input_ids.tolist()
    if attention_mask is not None and hasattr(attention_mask, "tolist"):
        attention_mask = attention_mask.tolist()
    single = len(input_ids) > 0 and not isinstance(input_ids[0], (list, tuple))
    rows = [list(input_ids)] if single else [list(r) for r in input_ids]
    if attention_mask is not None:
        masks = [list(attention_mask)] if single else [list(m) for m in attention_mask]
        rows = [[t for t, m in zip(r, mk) if m] for r, mk in zip(rows, masks)]
    for r in rows:
        if not all(isinstance(t, int) for t in r):
            raise InvalidArgumentError(1, "input_ids must hold integer token ids")
    return rows, single


class BatchEncoding(dict):
    """What a tokenizer call returns: input_ids and attention_mask, also as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


class Tokenizer:
    """A model's tokenizer (tokenizer.json with tokenizer_config.json), as transformers' fast
    tokenizers encode, pad, decode and render chat templates."""

    def __init__(self, tokenizer: _tfx.Tokenizer):
        self._tokenizer = tokenizer
        self.padding_side = "right"
        self.pad_token_id = tokenizer.special_token_id("pad_token")
        self.eos_token_id = tokenizer.special_token_id("eos_token")
        self.bos_token_id = tokenizer.special_token_id("bos_token")

    def __call__(self, text: str | Sequence[str], add_special_tokens: bool = True, padding: bool | str = False,
                 truncation: bool = False, max_length: int | None = None,
                 return_tensors: str | None = None) -> BatchEncoding:
        """input_ids and attention_mask of one text (lists) or several (a list per text).
        truncation with max_length cuts each text's ids; padding=True / "longest" pads to the
        longest, "max_length" to max_length, with pad_token_id on padding_side.
        return_tensors="np" gives numpy arrays (the rows must then have equal lengths)."""
        single = isinstance(text, str)
        ids = [self._tokenizer.encode(t, add_special_tokens) for t in ([text] if single else text)]
        if truncation and max_length is not None:
            ids = [r[:max_length] for r in ids]
        masks = [[1] * len(r) for r in ids]
        if padding:
            if self.pad_token_id is None:
                raise InvalidArgumentError(1, "Asking to pad but the tokenizer does not have a padding token "
                                              "(set tokenizer.pad_token_id, e.g. to tokenizer.eos_token_id)")
            if padding == "max_length" and max_length is None:
                raise InvalidArgumentError(1, "padding='max_length' needs max_length")
            width = max_length if padding == "max_length" else max(len(r) for r in ids)
            pad = lambda row, fill: ([fill] * (width - len(row)) + row if self.padding_side == "left"
                                     else row + [fill] * (width - len(row)))
            ids = [pad(r, self.pad_token_id) for r in ids]
            masks = [pad(m, 0) for m in masks]
        if return_tensors == "np":
            import numpy as np
            if len({len(r) for r in ids}) > 1:
                raise InvalidArgumentError(1, "return_tensors='np' needs rows of equal length (use padding=True)")
            return BatchEncoding(input_ids=np.array(ids, dtype=np.int64), attention_mask=np.array(masks, dtype=np.int64))
        if return_tensors is not None:
            raise InvalidArgumentError(1, f"return_tensors={return_tensors!r}: only 'np' (or None) is supported")
        return BatchEncoding(input_ids=ids[0] if single else ids, attention_mask=masks[0] if single else masks)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens)

    def decode(self, token_ids: Any, skip_special_tokens: bool = False) -> str:
        if hasattr(token_ids, "tolist"):
            token_ids = token_ids.tolist()
        return self._tokenizer.decode([int(t) for t in token_ids], skip_special_tokens)

    def batch_decode(self, sequences: Iterable[Any], skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(s, skip_special_tokens) for s in sequences]

    def apply_chat_template(self, conversation: list[dict], tokenize: bool = True,
                            add_generation_prompt: bool = False) -> list[int] | str:
        """The chat template rendered over the messages: its text, or (tokenize=True) its ids
        without adding special tokens again."""
        text = self._tokenizer.apply_chat_template(json.dumps(conversation), add_generation_prompt)
        return self._tokenizer.encode(text, False) if tokenize else text


class AutoTokenizer:
    @staticmethod
    def from_pretrained(path: str, revision: str | None = None, offline: bool = False, **options: Any) -> Tokenizer:
        """The tokenizer of a model folder, GGUF file or Hub id, without loading its weights
        (or the one a model already open on the same folder holds)."""
        for key, model in list(_open_models.items()):
            if key[0] == str(path) and (tokenizer := model.tokenizer()) is not None:
                return Tokenizer(tokenizer)
        return Tokenizer(_tfx.Tokenizer(str(path), revision, offline))


class Model:
    """A model's forward pass: AutoModel.from_pretrained(...)(input_ids) -> its outputs."""

    def __init__(self, model: _tfx.Model):
        self._model = model
        self.config = model.info()

    def set_adapter(self, names: str | Sequence[str] | None) -> None:
        """The LoRA adapters (opened with lora=[...]) that apply from now on, by name; None for
        the bare model (PEFT's set_adapter / disable_adapter)."""
        self._model.set_lora([] if names is None else [names] if isinstance(names, str) else list(names))

    def __call__(self, input_ids: Any) -> dict:
        """Every position's outputs for one sequence: {"logits" or "last_hidden_state": array
        [1, tokens, output_size]} (numpy)."""
        import numpy as np
        rows, _ = _id_rows(input_ids)
        if len(rows) != 1:
            raise InvalidArgumentError(1, "the forward pass takes one sequence")
        out = np.from_dlpack(self._model.forward(rows[0], True))[None]  # no copy: the engine's buffer
        name = "logits" if self.config["output_kind"] == "logits" else "last_hidden_state"
        return {name: out}


class CausalLM(Model):
    """A causal language model: forward (logits) and generate()."""

    def generate(self, input_ids: Any, generation_config: dict | None = None, streamer: Any = None,
                 attention_mask: Any = None, **kwargs: Any) -> list[list[int]] | Any:
        """transformers' generate(): the model's generation_config.json updated with
        `generation_config` (a dict of its fields) and kwargs. Returns each prompt's sequences
        (num_return_sequences per prompt), prompt included; numpy when input_ids was numpy and
        the rows have equal lengths. eos_token_id=None disables stopping at EOS; seed=N makes
        sampling repeatable. `streamer` gets put(prompt ids), then put([token]) per new token,
        then end(), as transformers' streamers do (one prompt)."""
        numpy_in = hasattr(input_ids, "tolist")
        rows, _ = _id_rows(input_ids, attention_mask)
        fields = dict(generation_config or {})
        fields.update(kwargs)
        if "eos_token_id" in fields and fields["eos_token_id"] is None:
            del fields["eos_token_id"]
            fields["ignore_eos"] = True
        if streamer is not None:
            if len(rows) != 1:
                raise InvalidArgumentError(1, "a streamer takes one prompt")
            streamer.put(list(rows[0]))
        def on_token(sequence: int, token: int) -> bool:
            streamer.put([token])
            return False  # go on

        try:
            result = json.loads(self._model.generate(rows, json.dumps(fields), on_token if streamer else None))
        finally:
            if streamer is not None:
                streamer.end()
        per_prompt = len(result["sequences"]) // max(len(rows), 1)
        sequences = [rows[i // per_prompt] + new for i, new in enumerate(result["sequences"])]
        if numpy_in and len({len(s) for s in sequences}) == 1:
            import numpy as np
            return np.array(sequences, dtype=np.int64)
        return sequences


class AutoModel:
    @staticmethod
    def from_pretrained(path: str, **options: Any) -> Model:
        """A model folder, GGUF file or Hub id. Options: num_threads, device ("cpu", "torch",
        "cuda"), quantize ("int8", "int4"), kv_dtype, revision, offline, lora (PEFT adapter
        folders, "DIR[=NAME][:SCALE]" each; all active until set_adapter), merge_lora."""
        return Model(_open(path, **options))


class AutoModelForCausalLM:
    @staticmethod
    def from_pretrained(path: str, **options: Any) -> CausalLM:
        """As AutoModel.from_pretrained, for a model with a language-model head."""
        model = CausalLM(_open(path, **options))
        if model.config["output_kind"] != "logits":
            raise UnsupportedError(3, f"{path} has no language-model head ({model.config['output_kind']} outputs)")
        return model


class TextStreamer:
    """Prints the new text as it is generated (transformers' TextStreamer). skip_prompt leaves
    the prompt out; text is written once its characters are complete."""

    def __init__(self, tokenizer: Tokenizer, skip_prompt: bool = False, skip_special_tokens: bool = True):
        self.tokenizer, self.skip_prompt, self.skip_special_tokens = tokenizer, skip_prompt, skip_special_tokens
        self._tokens: list[int] = []
        self._shown = 0
        self._prompt_pending = True

    def put(self, value: Sequence[int]) -> None:
        if self._prompt_pending:
            self._prompt_pending = False
            if self.skip_prompt:
                return
        self._tokens.extend(int(t) for t in value)
        text = self.tokenizer.decode(self._tokens, self.skip_special_tokens)
        if text.endswith("\ufffd"):  # a character still being spelt in bytes
            return
        self.on_text(text[self._shown:])
        self._shown = len(text)

    def end(self) -> None:
        text = self.tokenizer.decode(self._tokens, self.skip_special_tokens)
        self.on_text(text[self._shown:], stream_end=True)
        self._tokens, self._shown, self._prompt_pending = [], 0, True

    def on_text(self, text: str, stream_end: bool = False) -> None:
        print(text, end="" if not stream_end else "\n", flush=True)


class TextIteratorStreamer(TextStreamer):
    """The new text as an iterator (transformers' TextIteratorStreamer): run generate() in
    another thread and iterate here."""

    def __init__(self, tokenizer: Tokenizer, skip_prompt: bool = False, timeout: float | None = None,
                 skip_special_tokens: bool = True):
        super().__init__(tokenizer, skip_prompt, skip_special_tokens)
        self._queue: queue.Queue = queue.Queue()
        self._timeout = timeout

    def on_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self._queue.put(text)
        if stream_end:
            self._queue.put(None)

    def __iter__(self) -> Iterator[str]:
        while (text := self._queue.get(timeout=self._timeout)) is not None:
            yield text


class _TextGenerationPipeline:
    def __init__(self, model: CausalLM, tokenizer: Tokenizer):
        self.model, self.tokenizer = model, tokenizer

    def __call__(self, text: str | list[str], return_full_text: bool = True, **generate_kwargs: Any) -> list:
        """[{"generated_text": ...}] per text (a list of such lists for several texts)."""
        texts = [text] if isinstance(text, str) else text
        outputs = []
        for t in texts:
            ids = self.tokenizer.encode(t)
            rows = self.model.generate(ids, **generate_kwargs)
            outputs.append([{"generated_text": (t if return_full_text else "") +
                             self.tokenizer.decode(r[len(ids):], skip_special_tokens=True)} for r in rows])
        return outputs[0] if isinstance(text, str) else outputs


class _FeatureExtractionPipeline:
    def __init__(self, model: Model, tokenizer: Tokenizer):
        self.model, self.tokenizer = model, tokenizer

    def __call__(self, text: str | list[str]) -> list:
        """Every token's hidden state, [1][tokens][hidden] per text, as transformers returns them."""
        texts = [text] if isinstance(text, str) else text
        out = [self.model(self.tokenizer.encode(t))["last_hidden_state"].tolist() for t in texts]
        return out[0] if isinstance(text, str) else out


class _EnginePipeline:
    """A pipeline the engine runs whole (tfx_api_pipeline_run)."""

    def __init__(self, task: str, model: str, num_threads: int = 0, device: str | None = None):
        self.task = task
        self._pipeline = _tfx.Pipeline(task, str(model), num_threads, device)

    def _run(self, text: str | list[str], **fields: Any) -> Any:
        return json.loads(self._pipeline.run(json.dumps({"text": text, **fields})))


class _TextClassificationPipeline(_EnginePipeline):
    def __call__(self, text: str | list[str], top_k: int | None = 1) -> list:
        """[{"label", "score"}] per text, best first: the top_k labels (None: all), as
        transformers' text-classification pipeline returns them."""
        texts = [text] if isinstance(text, str) else list(text)
        out = [o[:top_k] if top_k is not None else o for o in self._run(texts)]  # one engine call for all
        return out[0] if isinstance(text, str) and top_k is None else [o[0] if top_k == 1 else o for o in out]


class _FillMaskPipeline(_EnginePipeline):
    def __call__(self, text: str, top_k: int = 5) -> list[dict]:
        """The top_k fillers of the text's one mask token: [{"score", "token", "token_str", "sequence"}]."""
        return self._run(text, top_k=top_k)


class _TokenClassificationPipeline(_EnginePipeline):
    def __call__(self, text: str | list[str], aggregation_strategy: str = "none",
                 ignore_labels: list[str] | None = None) -> list:
        """The entities of a text (a list per text for a list), as transformers'
        token-classification pipeline returns them: [{"entity", "score", "index", "word", "start",
        "end"}] per token, or [{"entity_group", "score", "word", "start", "end"}] with an
        aggregation_strategy of "simple", "first", "average" or "max"."""
        fields = {"aggregation_strategy": aggregation_strategy,
                  "ignore_labels": ["O"] if ignore_labels is None else list(ignore_labels)}
        if isinstance(text, str):
            return self._run(text, **fields)
        return self._run(list(text), **fields)  # one engine call: the texts run together


class _QuestionAnsweringPipeline(_EnginePipeline):
    def __call__(self, question: str, context: str, top_k: int = 1, max_answer_len: int = 15,
                 handle_impossible_answer: bool = False, max_seq_len: int | None = None,
                 doc_stride: int | None = None) -> dict | list[dict]:
        """The best answers to the question in the context, {"score", "start", "end", "answer"}
        (one dict for top_k 1, else a list, best first), as transformers' question-answering
        pipeline returns them; a context longer than max_seq_len tokens (question and special
        tokens included) is read in windows overlapping by doc_stride tokens."""
        fields = {"question": question, "context": context, "top_k": top_k, "max_answer_len": max_answer_len,
                  "handle_impossible_answer": handle_impossible_answer}
        if max_seq_len is not None:
            fields["max_seq_len"] = max_seq_len
        if doc_stride is not None:
            fields["doc_stride"] = doc_stride
        answers = json.loads(self._pipeline.run(json.dumps(fields)))
        return answers[0] if top_k == 1 and len(answers) == 1 else answers


class _ZeroShotClassificationPipeline(_EnginePipeline):
    def __call__(self, sequences: str | list[str], candidate_labels: str | list[str],
                 hypothesis_template: str = "This example is {}.", multi_label: bool = False) -> dict | list[dict]:
        """{"sequence", "labels", "scores"} (labels best first) per text, as transformers'
        zero-shot-classification pipeline returns them."""
        fields = {"candidate_labels": candidate_labels, "hypothesis_template": hypothesis_template,
                  "multi_label": multi_label}
        if isinstance(sequences, str):
            return self._run(sequences, **fields)
        return [self._run(s, **fields) for s in sequences]


class _ImageClassificationPipeline(_EnginePipeline):
    def __call__(self, images: str | list[str], top_k: int = 5) -> list:
        """[{"label", "score"}] (best first, top_k of them) for an image file (PNG or JPEG), a list
        of those for a list of files, as transformers' image-classification pipeline returns them."""
        return json.loads(self._pipeline.run(json.dumps({"image": images if isinstance(images, str) else list(images),
                                                         "top_k": top_k})))


class _ZeroShotImageClassificationPipeline(_EnginePipeline):
    def __call__(self, image: str, candidate_labels: str | list[str],
                 hypothesis_template: str = "This is a photo of {}.") -> list[dict]:
        """[{"score", "label"}] for an image file (PNG or JPEG), best first, as transformers'
        zero-shot-image-classification pipeline returns them (CLIP)."""
        return json.loads(self._pipeline.run(json.dumps({"image": image, "candidate_labels": candidate_labels,
                                                         "hypothesis_template": hypothesis_template})))


class _Text2TextGenerationPipeline(_EnginePipeline):
    def __call__(self, text: str | list[str], **generate_kwargs: Any) -> list:
        """[{"generated_text" | "summary_text" | "translation_text": ...}] per returned sequence
        (a list of those for a list of texts), as transformers' text2text-generation,
        summarization and translation pipelines return them; keyword arguments are generation
        config fields over the model's task_specific_params."""
        fields = dict(generate_kwargs)
        fields["text"] = text if isinstance(text, str) else list(text)
        return json.loads(self._pipeline.run(json.dumps(fields)))


class _ImageFeatureExtractionPipeline(_EnginePipeline):
    def __call__(self, image: str | list[str], pooling: str = "mean", normalize: bool = False) -> list | list[list]:
        """One vector per image file (a list of them for a list of files): a vision base model's
        last hidden state pooled ("mean": the average; "cls": the class token's raw state), or
        CLIP's image embedding (image_embeds). This differs from transformers' pipeline, which
        returns every token's state, or with pool=True the model's pooler output."""
        out = json.loads(self._pipeline.run(json.dumps({"image": image if isinstance(image, str) else list(image),
                                                        "pooling": pooling, "normalize": normalize})))
        return out["embedding"] if isinstance(out, dict) else [o["embedding"] for o in out]


class _AutomaticSpeechRecognitionPipeline(_EnginePipeline):
    def __call__(self, audio: str | list[str], **generate_kwargs: Any) -> dict | list:
        """{"text": ...} for a sound file (a list of those for a list of files), as transformers'
        automatic-speech-recognition pipeline returns it for Whisper; keyword arguments are
        "language", "task" ("transcribe" or "translate") and generation config fields."""
        fields = dict(generate_kwargs)
        fields["audio"] = audio if isinstance(audio, str) else list(audio)
        return json.loads(self._pipeline.run(json.dumps(fields)))


_ENGINE_PIPELINES = {"text-classification": _TextClassificationPipeline, "fill-mask": _FillMaskPipeline,
                     "token-classification": _TokenClassificationPipeline, "ner": _TokenClassificationPipeline,
                     "question-answering": _QuestionAnsweringPipeline,
                     "zero-shot-classification": _ZeroShotClassificationPipeline,
                     "image-classification": _ImageClassificationPipeline,
                     "zero-shot-image-classification": _ZeroShotImageClassificationPipeline,
                     "text2text-generation": _Text2TextGenerationPipeline,
                     "summarization": _Text2TextGenerationPipeline,
                     "automatic-speech-recognition": _AutomaticSpeechRecognitionPipeline,
                     "image-feature-extraction": _ImageFeatureExtractionPipeline}


def pipeline(task: str, model: str, **options: Any):
    """transformers.pipeline(task, model=...) for "text-generation", "feature-extraction",
    "text-classification", "fill-mask", "token-classification" (or "ner"), "question-answering",
    "zero-shot-classification", "image-classification", "zero-shot-image-classification",
    "image-feature-extraction", "text2text-generation", "summarization", "translation" (or
    "translation_XX_to_YY") and
    "automatic-speech-recognition" on a model folder, GGUF file or Hub id (options as
    AutoModel.from_pretrained's)."""
    if task in _ENGINE_PIPELINES or task.startswith("translation"):
        kind = _ENGINE_PIPELINES.get(task, _Text2TextGenerationPipeline)
        return kind(task, model, options.get("num_threads", 0), options.get("device"))
    tokenizer = AutoTokenizer.from_pretrained(model, **options)
    if task == "text-generation":
        return _TextGenerationPipeline(AutoModelForCausalLM.from_pretrained(model, **options), tokenizer)
    if task == "feature-extraction":
        return _FeatureExtractionPipeline(AutoModel.from_pretrained(model, **options), tokenizer)
    raise UnsupportedError(3, f"pipeline task {task!r}: expected text-generation, feature-extraction, "
                              "text-classification, fill-mask, token-classification, question-answering, "
                              "zero-shot-classification, image-classification, zero-shot-image-classification, "
                              "image-feature-extraction, text2text-generation, summarization, translation or "
                              "automatic-speech-recognition")
