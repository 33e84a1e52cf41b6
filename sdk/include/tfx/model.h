/* Model plugins: one model family per plugin. The host creates the instance with a model
 * session's services (config, weights, ops, attention), then calls load() once with the
 * architecture (task head) that config.json names, then forward() as often as needed. */
#ifndef TFX_MODEL_H
#define TFX_MODEL_H

#include "tfx/attention.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tfx_model_output {
    TFX_OUTPUT_LOGITS = 1,       /* causal / masked LM: [rows, vocab] */
    TFX_OUTPUT_HIDDEN_STATE = 2, /* base model: [rows, hidden] */
    TFX_OUTPUT_CLASS_LOGITS = 3, /* sequence classification: [num_seqs, num_labels] */
    TFX_OUTPUT_EMBEDDING = 4     /* ABI 2.8: one L2-normalised vector per sequence: [num_seqs, output_size]
                                    (CLIP's image and text embeddings) */
} tfx_model_output;

typedef struct tfx_model_info {
    uint32_t struct_size;
    int32_t output_kind; /* tfx_model_output */
    int32_t vocab_size;
    int32_t hidden_size;
    int32_t output_size; /* last dim of the output: vocab, hidden or num_labels */
    int32_t num_layers;  /* KV cache layers the host must provide (0: the model keeps no cache) */
    int32_t num_kv_heads;
    int32_t head_dim;
    int64_t max_positions;
    int32_t has_pooler; /* 1: forward fills pooled_output when given one */
    /* ABI 2.5, encoder-decoder models: cross-attention cache layers the host provides as
     * cross_cache (same block size, kv heads and head_dim as the self-attention cache); 0 for a
     * decoder-only or encoder-only model (older plugins leave it 0). */
    int32_t num_cross_layers;
    /* ABI 2.8, vision models (all 0 for text models): each sequence of a forward is one image,
     * whose pixel values (the image processor's pixel_values) are f32 [image_channels,
     * image_height, image_width]; the model makes image_tokens tokens of it, so the sequence
     * holds that many positions (0, 1, ...) and its input_ids are not read. A vision model with
     * a vocabulary (vocab_size > 0, CLIP) also takes texts: a call is all images or all texts. */
    int32_t image_channels;
    int32_t image_height;
    int32_t image_width;
    int32_t image_tokens;
    /* ABI 2.8, TFX_OUTPUT_EMBEDDING: what turns two embeddings' dot product into a logit
     * (CLIP's exp(logit_scale)); 0 when the model has none. */
    float embedding_scale;
    /* ABI 2.9, encoder-decoder models whose encoder reads features instead of token ids
     * (Whisper's log-mel spectrogram; all 0 otherwise): each encoder sequence's input is f32
     * [input_feature_bins, input_feature_frames] (tfx_forward_args.input_features), of which the
     * encoder makes input_feature_tokens positions (0, 1, ...); encoder_input_ids are not read. */
    int32_t input_feature_bins;
    int32_t input_feature_frames;
    int32_t input_feature_tokens;
} tfx_model_info;

/* One forward pass over a ragged batch. Every tensor is on the backend's device. */
typedef struct tfx_forward_args {
    uint32_t struct_size;
    int32_t num_output_rows;          /* rows of output for token outputs */
    const tfx_batch* batch;           /* the sequences, positions and cache addressing */
    const tfx_tensor* input_ids;      /* i32 [num_tokens] */
    const tfx_tensor* token_type_ids; /* i32 [num_tokens] segment ids, or NULL (all 0) */
    const tfx_kv_layer* cache;        /* num_layers entries, or NULL for a cache-less pass */
    /* i32 [num_output_rows]: the tokens whose output is wanted (each sequence's last one when
     * generating), or NULL for every token. */
    const tfx_tensor* output_rows;
    tfx_tensor* output;        /* f32 [num_output_rows, output_size]; [num_seqs, num_labels] for
                                  sequence classification (from each sequence's first token) */
    tfx_tensor* pooled_output; /* f32 [num_seqs, hidden] for models with a pooler, or NULL */
    /* ABI 2.5, encoder-decoder models (num_cross_layers > 0). `batch` and `input_ids` are the
     * decoder's tokens; encoder_batch has one sequence per decoder sequence, addressing the
     * cross cache. On the call that encodes, encoder_batch's new tokens are the encoder's input
     * (context_len 0): the model runs the encoder over them (bidirectional, no cache), and each
     * decoder layer writes its keys and values of the encoder's states to the cross cache
     * through its cross-attention call (tfx_attention_args.kv_batch). Later calls bring no
     * encoder tokens, with context_len the encoded length: cross-attention reads the cache.
     * A call never mixes the two. With cross_cache NULL (and cache NULL) every call encodes. */
    const tfx_batch* encoder_batch;
    const tfx_tensor* encoder_input_ids; /* i32 [encoder_batch->num_tokens] */
    const tfx_kv_layer* cross_cache;     /* num_cross_layers entries, or NULL */
    tfx_tensor* encoder_output;          /* f32 [encoder_batch->num_tokens, hidden]: the encoder's
                                            last hidden state, when given and the call encodes */
    /* ABI 2.8, vision models (image_tokens > 0): f32 [num_seqs, image_channels, image_height,
     * image_width], sequence s's image; NULL for text models. */
    const tfx_tensor* pixel_values;
    /* ABI 2.9, models with input_feature_tokens > 0, on a call that encodes: f32
     * [encoder sequences, input_feature_bins, input_feature_frames]; NULL otherwise. */
    const tfx_tensor* input_features;
} tfx_forward_args;

typedef struct tfx_model_table {
    uint32_t struct_size;
    int32_t (*load)(void* self, const char* architecture, tfx_error* error);
    int32_t (*get_info)(void* self, tfx_model_info* info, tfx_error* error);
    int32_t (*forward)(void* self, const tfx_forward_args* args, tfx_error* error);
    /* The tensors load() would read for this architecture, as a JSON array of
     * {"name", "shape": [...], "init": "normal" | "ones" | "zeros"}, with "linear": true on the
     * [out, in] weights of linear layers (what a weight quantizer may quantize), and also
     * "layout": "in_out" on those stored [in, out] (GPT-2's Conv1D); needs only the config. Lets the host write a model
     * with random weights for any config (tfx init-model) and a quantized checkpoint of a model (tfx quantize). */
    int32_t (*weight_specs)(void* self, const char* architecture, tfx_sink json, tfx_error* error);
} tfx_model_table;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(offsetof(tfx_model_info, num_cross_layers) == 44, "tfx_model_info layout");
TFX_STATIC_ASSERT(offsetof(tfx_model_info, embedding_scale) == 64, "tfx_model_info layout");
TFX_STATIC_ASSERT(offsetof(tfx_model_info, input_feature_bins) == 68, "tfx_model_info layout");
TFX_STATIC_ASSERT(sizeof(tfx_model_info) == 80, "tfx_model_info layout");
TFX_STATIC_ASSERT(offsetof(tfx_forward_args, input_ids) == 16, "tfx_forward_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_forward_args, output) == 48, "tfx_forward_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_forward_args, pooled_output) == 56, "tfx_forward_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_forward_args, encoder_batch) == 64, "tfx_forward_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_forward_args, encoder_output) == 88, "tfx_forward_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_forward_args, pixel_values) == 96, "tfx_forward_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_forward_args, input_features) == 104, "tfx_forward_args layout");

#endif /* TFX_MODEL_H */
