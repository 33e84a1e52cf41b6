/* Backend ops: the compute interface every model plugin speaks (through the host, which
 * validates and forwards to the chosen backend).
 *
 * Memory belongs to the backend (ABI 2.0). Every activation, KV-cache and weight buffer is
 * allocated by the backend on its device (alloc), and only the backend's ops read or write
 * it; data crosses to and from the host only through upload and download. Ops write into
 * outputs the caller provides and never allocate per call. Activations are f32, row-major.
 * Index tensors (ids, positions, rows, expert choices) are i32 on the device.
 *
 * Weights are packed once at load (pack_weight) into a named weight format the backend's
 * manifest declares ("weight_formats": "f32", "bf16", "f16"; quantized formats come from
 * quantizer plugins, see quantizer.h), as an opaque handle only this backend understands. */
#ifndef TFX_BACKEND_H
#define TFX_BACKEND_H

#include "tfx/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tfx_weight tfx_weight; /* opaque, owned by the backend that packed it */

typedef enum tfx_activation {
    TFX_ACT_SILU = 1,
    TFX_ACT_GELU = 2,      /* exact, erf */
    TFX_ACT_GELU_TANH = 3, /* tanh approximation ("gelu_new", "gelu_pytorch_tanh") */
    TFX_ACT_RELU = 4,
    TFX_ACT_TANH = 5
} tfx_activation;

/* A kernel from another plugin (an attention plugin) run in the backend's execution context. */
typedef int32_t (*tfx_kernel_fn)(void* ctx, tfx_error* error);

/* All ops: self is the backend instance; return a tfx_status and fill error on failure.
 * Shapes: "rows" means the product of all dims but the last. */
typedef struct tfx_backend_ops {
    uint32_t struct_size;

    /* ---- memory and transfers ---- */
    /* *data = a new device allocation of `bytes` (aligned to 64 bytes), uninitialized. */
    int32_t (*alloc)(void* self, uint64_t bytes, void** data, tfx_error* error);
    /* Frees an allocation from alloc or map_host; NULL is a no-op. */
    void (*release)(void* self, void* data);
    /* *data = a device copy of read-only host memory that stays valid until release (for a
     * memory-mapped checkpoint tensor). A backend whose device is host memory may return
     * `host` itself instead of copying. */
    int32_t (*map_host)(void* self, const void* host, uint64_t bytes, void** data, tfx_error* error);
    /* dst (compact, device) = the bytes at host; and back. Synchronous: on return the copy is done. */
    int32_t (*upload)(void* self, const void* host, tfx_tensor* dst, tfx_error* error);
    int32_t (*download)(void* self, const tfx_tensor* src, void* host, tfx_error* error);
    /* Runs kernel(ctx) where this backend's memory may be addressed directly: the device and
     * stream current, the thread pool ready. Attention plugins run through it. */
    int32_t (*run_kernel)(void* self, tfx_kernel_fn kernel, void* ctx, tfx_error* error);

    /* ---- weights ---- */
    /* w: [out_features, in_features] on the device (from the host's get_weight), in f32, bf16
     * or f16, any strides (GPT-2's Conv1D [in, out] is passed as a transposed view); read
     * during the call only. format: a weight format of the manifest ("f32", "bf16", "f16"),
     * or NULL for w's own dtype. */
    int32_t (*pack_weight)(void* self, const tfx_tensor* w, const char* format, tfx_weight** out, tfx_error* error);
    void (*release_weight)(void* self, tfx_weight* w);

    /* ---- compute ---- */
    /* y[rows, out] = x[rows, in] · wᵀ (+ bias[out] when bias is non-NULL). */
    int32_t (*linear)(void* self, const tfx_tensor* x, const tfx_weight* w, const tfx_tensor* bias, tfx_tensor* y,
                      tfx_error* error);
    /* y[n, dim] = table[ids[n]] with table [vocab, dim] in any float dtype; ids i32 [n]. */
    int32_t (*embedding)(void* self, const tfx_tensor* table, const tfx_tensor* ids, tfx_tensor* y, tfx_error* error);
    /* y = x / rms(x) * (weight_offset + w), per row; w f32 [dim]. */
    int32_t (*rms_norm)(void* self, const tfx_tensor* x, const tfx_tensor* w, float eps, float weight_offset,
                        tfx_tensor* y, tfx_error* error);
    /* y = (x - mean) / sqrt(var + eps) * w + b, per row; w, b f32 [dim] (b may be NULL). */
    int32_t (*layer_norm)(void* self, const tfx_tensor* x, const tfx_tensor* w, const tfx_tensor* b, float eps,
                          tfx_tensor* y, tfx_error* error);
    /* In place on x [tokens, heads, head_dim]: rotate the first 2*half dims of every head of
     * token t by the angles positions[t] * inv_freq[i] (computed in f32, cos and sin scaled
     * by attention_scaling), "rotate_half" pairing element i with element i + half.
     * positions i32 [tokens], inv_freq f32 [half]. */
    int32_t (*rope)(void* self, tfx_tensor* x, const tfx_tensor* positions, const tfx_tensor* inv_freq,
                    float attention_scaling, tfx_error* error);
    int32_t (*activation)(void* self, int32_t act, const tfx_tensor* x, tfx_tensor* y, tfx_error* error);
    /* y = act(gate) * up, all the same shape. */
    int32_t (*gated_activation)(void* self, int32_t act, const tfx_tensor* gate, const tfx_tensor* up, tfx_tensor* y,
                                tfx_error* error);
    /* y = a + b, y = a * b; b is the same shape as a or a vector broadcast over rows. */
    int32_t (*add)(void* self, const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y, tfx_error* error);
    int32_t (*mul)(void* self, const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y, tfx_error* error);
    /* y = x * factor */
    int32_t (*scale)(void* self, const tfx_tensor* x, float factor, tfx_tensor* y, tfx_error* error);
    /* softmax over the last dim, computed in f32 */
    int32_t (*softmax)(void* self, const tfx_tensor* x, tfx_tensor* y, tfx_error* error);
    /* y = cap * tanh(x / cap) */
    int32_t (*softcap)(void* self, const tfx_tensor* x, float cap, tfx_tensor* y, tfx_error* error);
    /* Element-wise copy between two views of the same shape and dtype, any strides: covers
     * reshape, transpose, slice and concat (copy into a slice of the destination). */
    int32_t (*copy)(void* self, const tfx_tensor* src, tfx_tensor* dst, tfx_error* error);
    /* y[r, dim] = x[rows[r], dim]; rows i32 [r] (each sequence's last token, a pooler's first). */
    int32_t (*gather_rows)(void* self, const tfx_tensor* x, const tfx_tensor* rows, tfx_tensor* y, tfx_error* error);
    /* Mixture-of-experts routing over probabilities x [n, experts]: ids i32 [n, k] = the k
     * largest per row, highest first (ties: lower index first), weights f32 [n, k] = their
     * values, divided by their sum when normalize is 1. */
    int32_t (*top_k)(void* self, const tfx_tensor* x, int32_t k, int32_t normalize, tfx_tensor* ids,
                     tfx_tensor* weights, tfx_error* error);
    /* y[t, s] = x[t, s or 0] · experts[ids[t, s]]ᵀ: each token through its chosen experts.
     * x [n, k or 1, in], ids i32 [n, k], y [n, k, out]; experts: `count` packed weights. */
    int32_t (*linear_experts)(void* self, const tfx_tensor* x, const tfx_weight* const* experts, int32_t count,
                              const tfx_tensor* ids, tfx_tensor* y, tfx_error* error);
    /* y[t] = sum over s of weights[t, s] * x[t, s], in order of s; x [n, k, dim], weights [n, k]. */
    int32_t (*weighted_sum)(void* self, const tfx_tensor* x, const tfx_tensor* weights, tfx_tensor* y,
                            tfx_error* error);
    /* ABI 2.2. y[n, dim] = row ids[n] of a packed weight [vocab, dim] as f32: the values linear
     * computes with (a quantized row dequantized), so one packed table serves an embedding and
     * the LM head tied to it. ids i32 [n], each in [0, vocab). NULL (or past struct_size) when
     * the backend cannot: models then use embedding on get_weight's table. */
    int32_t (*embedding_packed)(void* self, const tfx_weight* table, const tfx_tensor* ids, tfx_tensor* y,
                                tfx_error* error);
    /* ABI 2.2. ys[i][rows, out_i] = x[rows, in] · ws[i]ᵀ (+ biases[i][out_i]) for `count` weights
     * of one input (q, k and v; gate and up), as `count` linear calls compute them; the backend
     * may share the work (read x once, one dispatch). biases may be NULL, or hold NULLs. NULL
     * when the backend lacks it: models call linear per weight. */
    int32_t (*linear_many)(void* self, const tfx_tensor* x, const tfx_weight* const* ws,
                           const tfx_tensor* const* biases, int32_t count, tfx_tensor* const* ys, tfx_error* error);
} tfx_backend_ops;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(offsetof(tfx_backend_ops, alloc) == 8, "tfx_backend_ops layout");
TFX_STATIC_ASSERT(offsetof(tfx_backend_ops, weighted_sum) == 8 + 24 * sizeof(void*),
                  "tfx_backend_ops layout: append only");

#endif /* TFX_BACKEND_H */
