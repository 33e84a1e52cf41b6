/* The tfx host API in plain C: what programs in any language call to load a model and run it
 * (libtfx exports it). Versioned and laid out under the same rules as the plugin ABI: structs
 * open with struct_size, fields are only ever appended, layouts are pinned below, and every
 * call reports failure as a status code plus a message in a tfx_error.
 *
 * Variable-length results are written through a tfx_sink (the caller's storage). Token ids
 * are int32, logits f32, texts UTF-8 (not NUL-terminated in sinks).
 *
 * Threads: a model may be used from any thread, by one thread at a time (calls on one model
 * must not overlap; calls on different models may). tfx_api_version may be called any time. */
#ifndef TFX_HOST_API_H
#define TFX_HOST_API_H

#include "tfx/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TFX_HOST_API_VERSION 2

/* The TFX_HOST_API_VERSION libtfx was built with: a program compiled against a newer header
 * checks it before calling functions the library may lack. */
uint32_t tfx_api_version(void);

typedef struct tfx_api_model tfx_api_model;         /* a loaded model (and its tokenizer) */
typedef struct tfx_api_tokenizer tfx_api_tokenizer; /* a tokenizer (with its chat template) */

typedef struct tfx_api_open_options {
    uint32_t struct_size;     /* sizeof(tfx_api_open_options) */
    int32_t num_threads;      /* 0: the backend's default (all cores) */
    const char* device;       /* NULL: the best backend that can run the model; "cpu", "torch", "cuda" */
    const char* quantize;     /* NULL: weights as stored; "int8" or "int4" (q8_0 / q4_0 at load) */
    const char* kv_dtype;     /* NULL: "f32"; "bf16" or "f16" */
    const char* revision;     /* NULL: "main" (a Hub id's branch, tag or commit) */
    const char* plugin_paths; /* NULL: the default search; else folders separated by ':' */
    int32_t offline;          /* 1: never download (a Hub id must be cached) */
    int32_t reserved;
    /* API 2. PEFT LoRA adapters, one per line, each "DIR[=NAME][:SCALE]" (NULL: none): applied
     * at run time beside the weights (all active; tfx_api_set_lora chooses), or merged into them
     * at load with merge_lora = 1. */
    const char* lora;
    int32_t merge_lora;
    int32_t reserved2;
} tfx_api_open_options;

/* Opens a model folder, a GGUF file or a Hub id (downloaded unless cached). `options` may be
 * NULL. TFX_ERR_NOT_FOUND for a missing model, TFX_ERR_FORMAT for a bad config or weights,
 * TFX_ERR_UNSUPPORTED for an architecture no plugin runs. Release with tfx_api_close. */
int32_t tfx_api_open(const char* model, const tfx_api_open_options* options, tfx_api_model** out, tfx_error* error);
void tfx_api_close(tfx_api_model* model);

/* API 2. The run-time LoRA adapters forward and generate apply from now on, by name, one per
 * line ("" or NULL: none, the bare model), as PEFT's set_adapter. */
int32_t tfx_api_set_lora(tfx_api_model* model, const char* names, tfx_error* error);

/* The model's shape: output kind and size, vocabulary, layers, context length, images. Set
 * info->struct_size to sizeof(tfx_model_info) (0 is read as this header's size): a host built
 * against older headers gets the fields its struct holds. */
int32_t tfx_api_info(const tfx_api_model* model, tfx_model_info* info, tfx_error* error);

/* A model's tokenizer alone (tokenizer.json and tokenizer_config.json, or a GGUF file's
 * vocabulary), without loading weights; `options` may be NULL (plugin_paths, revision and
 * offline apply). Release with tfx_api_close_tokenizer. */
int32_t tfx_api_open_tokenizer(const char* model, const tfx_api_open_options* options, tfx_api_tokenizer** out,
                               tfx_error* error);
void tfx_api_close_tokenizer(tfx_api_tokenizer* tokenizer);
/* The tokenizer an open model holds (valid while the model is open; NULL when it has none). */
const tfx_api_tokenizer* tfx_api_model_tokenizer(const tfx_api_model* model);

/* Text -> token ids (int32 written to `ids`), as transformers' tokenizer(text) with
 * add_special_tokens. */
int32_t tfx_api_encode(const tfx_api_tokenizer* tokenizer, const char* text, size_t size, int32_t add_special_tokens,
                       tfx_sink ids, tfx_error* error);
/* Token ids -> text (UTF-8), as tokenizer.decode(ids, skip_special_tokens). */
int32_t tfx_api_decode(const tfx_api_tokenizer* tokenizer, const int32_t* ids, size_t count,
                       int32_t skip_special_tokens, tfx_sink text, tfx_error* error);
/* A JSON list of {"role", "content"} messages -> the prompt text the chat template renders
 * (tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt)). */
int32_t tfx_api_apply_chat_template(const tfx_api_tokenizer* tokenizer, const char* messages_json,
                                    int32_t add_generation_prompt, tfx_sink text, tfx_error* error);
/* The id of a special token the tokenizer's settings name ("bos_token", "eos_token",
 * "pad_token", "unk_token", ...); TFX_ERR_NOT_FOUND when it has none. */
int32_t tfx_api_special_token_id(const tfx_api_tokenizer* tokenizer, const char* name, int32_t* id, tfx_error* error);

/* One forward pass over `count` ids: the outputs (f32, info.output_size per row) of the last
 * position, or of every position when `all_positions` is 1. */
int32_t tfx_api_forward(tfx_api_model* model, const int32_t* ids, size_t count, int32_t all_positions, tfx_sink output,
                        tfx_error* error);

/* API 2. A tensor in DLPack's exchange layout: each struct is layout-identical to DLPack's
 * (unversioned, v0.8) DLDevice, DLDataType, DLTensor and DLManagedTensor, so a pointer to a
 * tfx_dlpack_managed_tensor is what numpy.from_dlpack, torch.from_dlpack or any DLPack consumer
 * takes (in Python, inside a "dltensor" capsule). The consumer calls `deleter` once done. */
typedef struct tfx_dlpack_device {
    int32_t device_type; /* 1: kDLCPU */
    int32_t device_id;
} tfx_dlpack_device;
typedef struct tfx_dlpack_dtype {
    uint8_t code; /* 2: kDLFloat */
    uint8_t bits;
    uint16_t lanes;
} tfx_dlpack_dtype;
typedef struct tfx_dlpack_tensor {
    void* data;
    tfx_dlpack_device device;
    int32_t ndim;
    tfx_dlpack_dtype dtype;
    int64_t* shape;
    int64_t* strides; /* NULL: compact row-major */
    uint64_t byte_offset;
} tfx_dlpack_tensor;
typedef struct tfx_dlpack_managed_tensor {
    tfx_dlpack_tensor dl_tensor;
    void* manager_ctx;
    void (*deleter)(struct tfx_dlpack_managed_tensor* self);
} tfx_dlpack_managed_tensor;

/* API 2. tfx_api_forward's outputs as a tensor the caller owns, f32 [rows, info.output_size] in
 * host memory (rows: 1, or `count` with all_positions): a DLPack consumer wraps it without a
 * copy. Release it with its deleter (a consumer does). */
int32_t tfx_api_forward_dlpack(tfx_api_model* model, const int32_t* ids, size_t count, int32_t all_positions,
                               tfx_dlpack_managed_tensor** out, tfx_error* error);

/* Called with each new token of each sequence as it is chosen (beam search: when it ends).
 * Return 0 to go on, anything else to stop that sequence (cancellation). */
typedef int32_t (*tfx_api_token_callback)(void* user, size_t sequence, int32_t token);

/* generate(): `num_prompts` prompts (ids and lengths), decoded as transformers'
 * generate(**kwargs): the model's own generation_config.json updated with the fields of
 * `generation_config_json` (a JSON object in generation_config.json's names; NULL: none).
 * tfx's fields beside transformers': "seed" (sampling) and "ignore_eos". `on_token` may be
 * NULL. The result is JSON written to `result`:
 * {"sequences": [[new ids], ...], "sequences_scores": [...] (beam search)}, num_return_sequences
 * rows per prompt. */
int32_t tfx_api_generate(tfx_api_model* model, const int32_t* const* prompts, const size_t* lengths, size_t num_prompts,
                         const char* generation_config_json, tfx_api_token_callback on_token, void* user,
                         tfx_sink result, tfx_error* error);

/* transformers.pipeline(task, model) for "feature-extraction", "text-classification",
 * "fill-mask", "text-generation", "token-classification" (or "ner"), "question-answering",
 * "zero-shot-classification", "image-classification", "zero-shot-image-classification",
 * "image-feature-extraction", "text2text-generation", "summarization", "translation" (or "translation_XX_to_YY") and
 * "automatic-speech-recognition": a model and its tokenizer (or image processor, or feature
 * extractor) behind one call per input. */
typedef struct tfx_api_pipeline tfx_api_pipeline;
int32_t tfx_api_pipeline_open(const char* task, const char* model, const tfx_api_open_options* options,
                              tfx_api_pipeline** out, tfx_error* error);
void tfx_api_pipeline_close(tfx_api_pipeline* pipeline);
/* One input, as a JSON object, to JSON written to `output`:
 *   feature-extraction: {"text", "pooling": "mean" | "cls" (default: the folder's
 *     sentence-transformers pooling, else mean), "normalize": false} -> {"embedding": [...]}
 *     (CLIP: its text_embeds)
 *   image-feature-extraction: {"image": a PNG or JPEG file or a list of them, "pooling": "mean" |
 *     "cls", "normalize": false} -> {"embedding": [...]} (a list for a list of files): a vision
 *     base model's pooled last hidden state, or CLIP's image_embeds
 *   text-classification: {"text"} -> [{"label", "score"}, ...], best first
 *   fill-mask: {"text", "top_k": 5} -> [{"token", "token_str", "score", "sequence"}, ...]
 *   text-generation: {"text", any generation_config field} -> {"generated_text": text + new text}
 *   token-classification: {"text", "aggregation_strategy": "none" | "simple" | "first" |
 *     "average" | "max", "ignore_labels": ["O"]} -> [{"entity" | "entity_group", "score",
 *     "index" (none), "word", "start", "end"}, ...] (characters of the text)
 *   question-answering: {"question", "context", "top_k": 1, "max_answer_len": 15,
 *     "handle_impossible_answer": false, "max_seq_len": 0 (the least of 384, the tokenizer's
 *     model_max_length and the model's positions), "doc_stride": -1 (min(max_seq_len / 2, 128))}
 *     -> [{"score", "start", "end", "answer"}, ...], best first; a context longer than a window
 *     is read in windows overlapping by doc_stride tokens
 *   zero-shot-classification: {"text", "candidate_labels": [...] or "a, b", "hypothesis_template":
 *     "This example is {}.", "multi_label": false} -> {"sequence", "labels", "scores"}, best first
 *   image-classification: {"image": a PNG or JPEG file or a list of them, "top_k": 5} ->
 *     [{"label", "score"}, ...] best first (a list of those for a list of files)
 *   zero-shot-image-classification: {"image": a PNG or JPEG file, "candidate_labels": [...] or
 *     "a, b", "hypothesis_template": "This is a photo of {}."} -> [{"score", "label"}, ...], best first
 *   text2text-generation, summarization, translation: {"text": a string or a list, any
 *     generation_config field (over config.json's task_specific_params for the task)} ->
 *     [{"generated_text" | "summary_text" | "translation_text"}] per returned sequence; for a
 *     list of texts, a list of those (of the dicts themselves with one sequence each)
 *   automatic-speech-recognition: {"audio": a sound file (WAV, FLAC, Ogg) or a list of them,
 *     "language" (a multilingual Whisper's; default: detected), "task": "transcribe" |
 *     "translate", any generation_config field} -> {"text"} (a list of those for a list of files)
 * feature-extraction, text-classification and token-classification also take "text" as a list
 * of strings, run in ragged forward calls together, and give a list of the results. */
int32_t tfx_api_pipeline_run(tfx_api_pipeline* pipeline, const char* input_json, tfx_sink output, tfx_error* error);

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(sizeof(tfx_api_open_options) == 72, "tfx_api_open_options layout");
/* DLPack's own layout (DLTensor 48 bytes, DLManagedTensor 64), which consumers rely on. */
TFX_STATIC_ASSERT(sizeof(tfx_dlpack_dtype) == 4, "DLDataType layout");
TFX_STATIC_ASSERT(offsetof(tfx_dlpack_tensor, ndim) == 16, "DLTensor layout");
TFX_STATIC_ASSERT(offsetof(tfx_dlpack_tensor, shape) == 24, "DLTensor layout");
TFX_STATIC_ASSERT(sizeof(tfx_dlpack_tensor) == 48, "DLTensor layout");
TFX_STATIC_ASSERT(offsetof(tfx_dlpack_managed_tensor, deleter) == 56, "DLManagedTensor layout");
TFX_STATIC_ASSERT(offsetof(tfx_api_open_options, lora) == 56, "tfx_api_open_options layout");
TFX_STATIC_ASSERT(offsetof(tfx_api_open_options, device) == 8, "tfx_api_open_options layout");
TFX_STATIC_ASSERT(offsetof(tfx_api_open_options, offline) == 48, "tfx_api_open_options layout");

#endif /* TFX_HOST_API_H */
