/* Backend ops: the compute interface every model plugin speaks (through the host, which
 * validates and forwards to the chosen backend). Ops write into outputs the caller provides;
 * they never allocate per call. Activations are f32, row-major, on the backend's device.
 * Weights are handed over once at load (pack_weight) and may be repacked into an opaque
 * handle (layout, dtype) that only this backend understands. */
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

/* All ops: self is the backend instance; return a tfx_status and fill error on failure.
 * Shapes: "rows" means the product of all dims but the last. */
typedef struct tfx_backend_ops {
    uint32_t struct_size;
    /* w: [out_features, in_features] in f32, bf16 or f16, read during the call only. Any
     * strides: a checkpoint stored [in, out] (GPT-2's Conv1D) is passed as a transposed view. */
    int32_t (*pack_weight)(void* self, const tfx_tensor* w, tfx_weight** out, tfx_error* error);
    void (*release_weight)(void* self, tfx_weight* w);
    /* y[rows, out] = x[rows, in] · wᵀ (+ bias[out] when bias is non-NULL). */
    int32_t (*linear)(void* self, const tfx_tensor* x, const tfx_weight* w, const tfx_tensor* bias, tfx_tensor* y,
                      tfx_error* error);
    /* y[n, dim] = table[ids[n]] with table [vocab, dim] in any float dtype; ids int32. */
    int32_t (*embedding)(void* self, const tfx_tensor* table, const tfx_tensor* ids, tfx_tensor* y, tfx_error* error);
    /* y = x / rms(x) * (weight_offset + w), per row; w f32 [dim]. */
    int32_t (*rms_norm)(void* self, const tfx_tensor* x, const tfx_tensor* w, float eps, float weight_offset,
                        tfx_tensor* y, tfx_error* error);
    /* y = (x - mean) / sqrt(var + eps) * w + b, per row; w, b f32 [dim] (b may be NULL). */
    int32_t (*layer_norm)(void* self, const tfx_tensor* x, const tfx_tensor* w, const tfx_tensor* b, float eps,
                          tfx_tensor* y, tfx_error* error);
    /* In place on x [tokens, heads, head_dim]: rotate the first 2*half dims of every head by
     * the angles whose cos/sin are given per token, cos/sin [tokens, half] ("rotate_half"
     * pairing: element i with element i + half). */
    int32_t (*rope)(void* self, tfx_tensor* x, const tfx_tensor* cos, const tfx_tensor* sin, tfx_error* error);
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
} tfx_backend_ops;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(offsetof(tfx_backend_ops, pack_weight) == 8, "tfx_backend_ops layout");
TFX_STATIC_ASSERT(offsetof(tfx_backend_ops, copy) == 8 + 14 * sizeof(void*), "tfx_backend_ops layout: append only");

#endif /* TFX_BACKEND_H */
