/* Attention kernels: eager (reference), flash, paged, ... all implement this table with
 * the same semantics. The KV cache layout is fixed by the ABI: per layer, keys and values
 * in f32 [batch, kv_heads, capacity, head_dim]. */
#ifndef TFX_ATTENTION_H
#define TFX_ATTENTION_H

#include "tfx/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tfx_kv_layer {
    float* k;
    float* v;
    int64_t capacity; /* positions allocated per sequence */
    int32_t batch;
    int32_t kv_heads;
    int32_t head_dim;
    int32_t reserved;
} tfx_kv_layer;

typedef struct tfx_attention_args {
    uint32_t struct_size;
    int32_t causal;          /* 1: query t attends to cache positions <= past_len + t */
    const tfx_tensor* q;     /* [batch, tokens, heads, head_dim] f32, rotary applied */
    const tfx_tensor* k;     /* [batch, tokens, kv_heads, head_dim] new keys */
    const tfx_tensor* v;     /* [batch, tokens, kv_heads, head_dim] new values */
    tfx_tensor* out;         /* [batch, tokens, heads, head_dim] */
    tfx_kv_layer* cache;     /* NULL: attend to k/v only; else append at past_len, then read */
    int64_t past_len;        /* positions already in the cache (same for all sequences) */
    const uint8_t* key_mask; /* [batch, past_len + tokens], 1 = real token; NULL = all real */
    float scale;             /* multiplies q·k */
    float softcap;           /* > 0: scores = softcap * tanh(scores / softcap) */
    int32_t sliding_window;  /* > 0: a query sees only the last sliding_window positions */
    int32_t reserved;
} tfx_attention_args;

typedef struct tfx_attention_table {
    uint32_t struct_size;
    int32_t (*attend)(void* self, const tfx_attention_args* args, tfx_error* error);
} tfx_attention_table;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(sizeof(tfx_kv_layer) == 40, "tfx_kv_layer layout");
TFX_STATIC_ASSERT(offsetof(tfx_attention_args, q) == 8, "tfx_attention_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_attention_args, sliding_window) == 72, "tfx_attention_args layout");

#endif /* TFX_ATTENTION_H */
