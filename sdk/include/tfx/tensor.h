/* Tensor views that cross the ABI. Layout-compatible with DLPack's DLTensor (v0.8+), so a
 * view can be handed to any DLPack consumer by a cast. Views never own their data. Since ABI
 * 2.0 the data of every tensor a model or attention plugin sees is memory of the session's
 * backend (its device): only that backend's ops, and kernels it runs (run_kernel), touch it. */
#ifndef TFX_TENSOR_H
#define TFX_TENSOR_H

#include "tfx/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Same values as DLDeviceType. TFX_DEVICE_EXT (DLPack's kDLExtDev) is memory of a backend that
 * no one else may address directly (tests' guarded backend). */
typedef enum tfx_device_type { TFX_DEVICE_CPU = 1, TFX_DEVICE_CUDA = 2, TFX_DEVICE_EXT = 12 } tfx_device_type;

typedef struct tfx_device {
    int32_t device_type; /* tfx_device_type, same values as DLDeviceType */
    int32_t device_id;
} tfx_device;

/* Same codes as DLDataTypeCode. */
typedef enum tfx_dtype_code {
    TFX_DTYPE_INT = 0,
    TFX_DTYPE_UINT = 1,
    TFX_DTYPE_FLOAT = 2,
    TFX_DTYPE_BFLOAT = 4,
    TFX_DTYPE_BOOL = 6,
    TFX_DTYPE_FLOAT8_E4M3FN = 10,
    TFX_DTYPE_FLOAT8_E5M2 = 12
} tfx_dtype_code;

typedef struct tfx_dtype {
    uint8_t code; /* tfx_dtype_code */
    uint8_t bits;
    uint16_t lanes; /* always 1 here */
} tfx_dtype;

typedef struct tfx_tensor {
    void* data;
    tfx_device device;
    int32_t ndim;
    tfx_dtype dtype;
    int64_t* shape;
    int64_t* strides; /* in elements; NULL = compact row-major */
    uint64_t byte_offset;
} tfx_tensor;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(sizeof(tfx_dtype) == 4, "tfx_dtype matches DLDataType");
TFX_STATIC_ASSERT(sizeof(tfx_tensor) == 48, "tfx_tensor matches DLTensor");
TFX_STATIC_ASSERT(offsetof(tfx_tensor, shape) == 24, "tfx_tensor matches DLTensor");
TFX_STATIC_ASSERT(offsetof(tfx_tensor, byte_offset) == 40, "tfx_tensor matches DLTensor");

#endif /* TFX_TENSOR_H */
