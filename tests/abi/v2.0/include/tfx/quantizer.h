/* Quantizer plugins turn weights into a weight format that backends compute on, as ggml's
 * type traits do: the quantizer owns the format's encoding (block layout, scales), a backend
 * that lists the format in its manifest's "weight_formats" owns the kernels that multiply by
 * it. A quantizer never computes a forward pass, and a backend never quantizes: the host
 * quantizes a checkpoint tensor on the host side (host memory in and out), then hands the
 * encoded bytes to the backend's pack_weight with the format's name.
 *
 * A quantizer's manifest lists the formats it produces: {"provides": {"weight_formats":
 * ["q8_0", ...]}}. The host refuses a requested format that no installed quantizer produces
 * or that the session's backend does not list, naming which part is missing. */
#ifndef TFX_QUANTIZER_H
#define TFX_QUANTIZER_H

#include "tfx/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tfx_quantizer_table {
    uint32_t struct_size;
    /* Bytes one row of `cols` values takes in `format`; 0 when the format is not this
     * plugin's or cols does not fit it (e.g. not a multiple of the block). */
    uint64_t (*row_bytes)(void* self, const char* format, int64_t cols);
    /* dst (host, rows * row_bytes bytes) = src [rows, cols] (host, f32/bf16/f16, compact)
     * encoded in `format`. pack_weight then receives it as a u8 tensor [rows, row_bytes]. */
    int32_t (*quantize)(void* self, const char* format, const tfx_tensor* src, void* dst, uint64_t dst_bytes,
                        tfx_error* error);
    /* dst f32 [rows, cols] (host) = the values encoded in src: the format's reference decoding,
     * which backends' kernels must match. */
    int32_t (*dequantize)(void* self, const char* format, const void* src, int64_t rows, int64_t cols, float* dst,
                          tfx_error* error);
} tfx_quantizer_table;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(offsetof(tfx_quantizer_table, row_bytes) == 8, "tfx_quantizer_table layout");

#endif /* TFX_QUANTIZER_H */
