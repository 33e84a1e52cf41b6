/* Attention kernels: eager (reference), flash, paged, ... all implement this table with the
 * same semantics, over a ragged batch and a paged KV cache (ABI 2.0).
 *
 * A ragged batch (tfx_batch) holds the new tokens of several sequences back to back: sequence
 * s owns tokens [seq_start[s], seq_start[s + 1]), and has context_len[s] positions already in
 * the cache, so its token i sits at cache position context_len[s] + i. Some sequences may be
 * prefilling while others decode one token, in the same call.
 *
 * The KV cache is paged: per layer, keys and values are pools of fixed-size blocks on the
 * backend's device, [num_blocks, block_size, kv_heads, head_dim] in the session's KV dtype
 * (f32, bf16 or f16). Sequence s's cache position p lives in block block_table[s, p /
 * block_size] at row p % block_size. The host's cache manager owns the blocks (allocation,
 * sharing between sequences, copy on write); kernels only read them through the block table
 * and write each new token's key and value to its slot (slot_mapping). */
#ifndef TFX_ATTENTION_H
#define TFX_ATTENTION_H

#include "tfx/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The sequences of one forward call. Host arrays are metadata a plugin may read (for shapes,
 * loops and checks); the tensors are the same data on the backend's device, for kernels. */
typedef struct tfx_batch {
    uint32_t struct_size;
    int32_t num_tokens;
    int32_t num_seqs;
    int32_t block_size;                /* cache positions per block; 0 without a cache */
    int32_t max_blocks_per_seq;        /* columns of block_table */
    int32_t max_context_len;           /* max over s of context_len[s] + new tokens of s */
    const int32_t* seq_start;          /* host [num_seqs + 1]; seq_start[num_seqs] = num_tokens */
    const int32_t* context_len;        /* host [num_seqs] */
    const int32_t* positions;          /* host [num_tokens] position ids (rotary, learned tables) */
    const tfx_tensor* seq_start_dev;   /* i32 [num_seqs + 1] */
    const tfx_tensor* context_len_dev; /* i32 [num_seqs] */
    const tfx_tensor* positions_dev;   /* i32 [num_tokens] */
    const tfx_tensor* block_table;     /* i32 [num_seqs, max_blocks_per_seq]; NULL without a cache */
    const tfx_tensor* slot_mapping;    /* i32 [num_tokens]: block * block_size + row of each new token */
} tfx_batch;

/* One layer of the paged cache: key and value block pools of the same shape and dtype. */
typedef struct tfx_kv_layer {
    tfx_tensor* k; /* [num_blocks, block_size, kv_heads, head_dim] */
    tfx_tensor* v;
} tfx_kv_layer;

typedef struct tfx_attention_args {
    uint32_t struct_size;
    int32_t causal;         /* 1: a token at cache position p attends to positions <= p */
    const tfx_tensor* q;    /* [num_tokens, heads, head_dim] f32, rotary applied */
    const tfx_tensor* k;    /* [num_tokens, kv_heads, head_dim] f32 new keys */
    const tfx_tensor* v;    /* [num_tokens, kv_heads, head_dim] f32 new values */
    tfx_tensor* out;        /* [num_tokens, heads, head_dim] f32 */
    const tfx_batch* batch; /* the sequences */
    /* NULL: each sequence attends to its own new tokens only (context_len must be 0); else
     * the new keys and values are written to their slots first, then read with the context. */
    const tfx_kv_layer* cache;
    float scale;            /* multiplies q·k */
    float softcap;          /* > 0: scores = softcap * tanh(scores / softcap) */
    int32_t sliding_window; /* > 0: position p sees only positions > p - sliding_window */
    /* ABI 2.3, non-causal attention only (0 when causal): > 0: position p sees only positions
     * < p + window_ahead, so with sliding_window a window on both sides (ModernBERT's local
     * attention); 0: no bound ahead. The host refuses it to attention plugins of ABI 2.2 and
     * older, which read the field as reserved. */
    int32_t window_ahead;
    /* ABI 2.4: NULL, or cross-attention (encoder-decoder models): the keys and values are
     * another ragged batch's, the encoder's. k and v are [kv_batch->num_tokens, kv_heads,
     * head_dim]: kv_batch's new tokens, written first to their slots (kv_batch's slot_mapping)
     * when there is a cache; query sequence s (of batch) attends to all of kv_batch's sequence
     * s: its context_len[s] cached positions (through kv_batch's block table) and its new
     * tokens, with no mask (causal, sliding_window and window_ahead 0). The two batches have
     * the same num_seqs. A decoder step after the first passes kv_batch with no new tokens and
     * the encoder's length as context, so the cross keys are computed once. The host refuses it
     * to attention plugins of ABI 2.3 and older, which do not read the field. */
    const tfx_batch* kv_batch;
    /* ABI 2.6: NULL, or an additive bias by relative position (T5's bucketed position bias):
     * f32 [2 * relative_span + 1, heads], contiguous. Head h's score of the key at cache
     * position j, for the query at cache position i, gains relative_bias[clamp(j - i,
     * -relative_span, relative_span) + relative_span, h], after scale and softcap. Self-attention
     * only (kv_batch NULL). The host refuses it to attention plugins of ABI 2.5 and older. */
    const tfx_tensor* relative_bias;
    int32_t relative_span;
    /* ABI 2.7: NULL, or disentangled relative attention (DeBERTa's content-to-position and
     * position-to-content terms): keys and queries of relative positions, f32 [relative rows,
     * heads, head_dim] contiguous each (either may be NULL), and relative_columns, i32
     * [2 * relative_span + 1], the row c of each clamped distance: c = relative_columns[clamp(j
     * - i, -relative_span, relative_span) + relative_span] for the key at position j and the
     * query at position i. Head h's q·k of that pair gains q_i·relative_k[c, h] +
     * k_j·relative_q[c, h] before scale, softcap and relative_bias. Cache-less self-attention
     * only (cache and kv_batch NULL), as encoders run. The host refuses it to attention plugins
     * of ABI 2.6 and older. */
    const tfx_tensor* relative_k;
    const tfx_tensor* relative_q;
    const tfx_tensor* relative_columns;
} tfx_attention_args;

/* An attention plugin's kernel runs inside the backend's run_kernel, so it may address the
 * backend's memory directly; the host arranges that. */
typedef struct tfx_attention_table {
    uint32_t struct_size;
    int32_t (*attend)(void* self, const tfx_attention_args* args, tfx_error* error);
} tfx_attention_table;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(sizeof(tfx_kv_layer) == 16, "tfx_kv_layer layout");
TFX_STATIC_ASSERT(offsetof(tfx_batch, seq_start) == 24, "tfx_batch layout");
TFX_STATIC_ASSERT(offsetof(tfx_batch, slot_mapping) == 80, "tfx_batch layout");
TFX_STATIC_ASSERT(offsetof(tfx_attention_args, q) == 8, "tfx_attention_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_attention_args, scale) == 56, "tfx_attention_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_attention_args, kv_batch) == 72, "tfx_attention_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_attention_args, relative_bias) == 80, "tfx_attention_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_attention_args, relative_span) == 88, "tfx_attention_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_attention_args, relative_k) == 96, "tfx_attention_args layout");
TFX_STATIC_ASSERT(offsetof(tfx_attention_args, relative_columns) == 112, "tfx_attention_args layout");

#endif /* TFX_ATTENTION_H */
