/* Quantizers: a weight format (int8 per channel, int4 groups, ...) and its linear kernel.
 * Packed weights are opaque handles tagged with a format id, interpreted only by the
 * quantizer that made them. */
#ifndef TFX_QUANTIZER_H
#define TFX_QUANTIZER_H

#include "tfx/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tfx_quantizer_table {
    uint32_t struct_size;
    /* Quantizes (or adopts an already quantized checkpoint tensor set of) one linear
     * weight. config_json: the model's quantization_config, or "{}" for --quantize. */
    int32_t (*quantize)(void* self, const tfx_tensor* w, const char* config_json,
                        tfx_weight** out, tfx_error* error);
    void (*release)(void* self, tfx_weight* w);
    /* Same contract as tfx_backend_ops.linear. */
    int32_t (*linear)(void* self, const tfx_tensor* x, const tfx_weight* w, const tfx_tensor* bias,
                      tfx_tensor* y, tfx_error* error);
    /* Bytes of the packed weight, for memory reports. */
    int64_t (*packed_bytes)(void* self, const tfx_weight* w);
} tfx_quantizer_table;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(offsetof(tfx_quantizer_table, quantize) == 8, "tfx_quantizer_table layout");

#endif /* TFX_QUANTIZER_H */
