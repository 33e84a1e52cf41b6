/* The host's service table, handed to every plugin instance at create(). Services a host
 * does not offer to a given instance are NULL (e.g. weights for a tokenizer). */
#ifndef TFX_HOST_H
#define TFX_HOST_H

#include "tfx/attention.h"
#include "tfx/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tfx_log_level {
    TFX_LOG_TRACE = 0,
    TFX_LOG_DEBUG = 1,
    TFX_LOG_INFO = 2,
    TFX_LOG_WARN = 3,
    TFX_LOG_ERROR = 4
} tfx_log_level;

typedef struct tfx_host_services {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    void* host; /* first argument of every service below */

    void (*log)(void* host, int32_t level, const char* message);

    /* Model session services. */
    const char* (*config_json)(void* host); /* config.json text */
    /* A checkpoint tensor as stored (dtype as on disk), on the backend's device (read-only;
     * the host maps it through the backend's map_host once). TFX_ERR_NOT_FOUND when absent.
     * The view stays valid for the session. */
    int32_t (*get_weight)(void* host, const char* name, tfx_tensor* out, tfx_error* error);
    /* The same tensor converted to f32 on the device (norms, biases and other small vectors). */
    int32_t (*get_weight_f32)(void* host, const char* name, tfx_tensor* out, tfx_error* error);
    int32_t (*has_weight)(void* host, const char* name);

    /* Compute: the host's forwarding tables (validate, trace, then call the backend or
     * attention plugin chosen for this session). */
    const tfx_backend_ops* ops;
    void* ops_self;
    const tfx_attention_table* attention;
    void* attention_self;

    /* Session options by name ("num_threads", "device", "task_head": the head the model
     * manifest maps config.json's architecture to, "weight_format": the format to pack
     * linear weights into, "matmul_precision": "highest" (f32 matmul inputs) or "medium"
     * (a backend may round activations to bf16 for bf16 weights), ...); NULL when not set. */
    const char* (*option)(void* host, const char* key);

    /* The session backend's device: every tensor a model plugin hands to ops is on it (weights
     * from get_weight, memory from ops->alloc). */
    tfx_device device;

    /* ABI 2.1. The stored linear weight `name`, packed by the backend into the session's weight
     * format (the "weight_format" option; none: its stored dtype) as ops->pack_weight packs
     * get_weight's view, without handing its values to the plugin: weights stored in blocks
     * the backend computes on (GGUF's q4_0, ...) are packed as they are, never widened, and a
     * copy the host must make (rows put back in order, values decoded) lives only for the call.
     * `shape` (`ndim` dims) is the shape the plugin expects: another stored shape is
     * TFX_ERR_FORMAT, an absent tensor TFX_ERR_NOT_FOUND. Release with ops->release_weight.
     * NULL from a 2.0 host: get_weight then ops->pack_weight. */
    int32_t (*pack_stored_weight)(void* host, const char* name, const int64_t* shape, int32_t ndim, tfx_weight** out,
                                  tfx_error* error);

    /* ABI 2.2. How the tensor `name` is stored: "f32", "bf16", "f16", a block format ("q8_0",
     * "q4_k", ...: get_weight then hands out a decoded f32 copy the host keeps), "gptq", "awq"
     * or "fp8" (decoded likewise); NULL when absent. Valid for the session's life. Lets a model
     * read a quantized embedding table from its packed weight (ops->embedding_packed) instead
     * of the decoded copy. NULL from an older host. */
    const char* (*weight_storage)(void* host, const char* name);
    /* ABI 2.11. Tensor parallelism (session options "tp_rank" and "tp_size", set when the host
     * runs as one of tp_size ranks of a job): `tensor` (f32, compact, on the device) becomes its
     * sum over the ranks, the same values on every rank. A plugin that shards its layers calls it
     * after each layer whose input features are split (attention's output projection, the MLP's
     * down projection). Under tensor parallelism pack_stored_weight also takes a `shape` that is
     * the stored shape with one dim divided by tp_size: rank tp_rank's slice along that dim
     * (rows: output features split; columns: input features). NULL from an older host. */
    int32_t (*all_reduce_sum)(void* host, tfx_tensor* tensor, tfx_error* error);
} tfx_host_services;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(offsetof(tfx_host_services, host) == 8, "tfx_host_services layout");
TFX_STATIC_ASSERT(offsetof(tfx_host_services, attention_self) == 80, "tfx_host_services layout");
TFX_STATIC_ASSERT(offsetof(tfx_host_services, option) == 88, "tfx_host_services layout");
TFX_STATIC_ASSERT(offsetof(tfx_host_services, device) == 96, "tfx_host_services layout");
TFX_STATIC_ASSERT(offsetof(tfx_host_services, pack_stored_weight) == 104, "tfx_host_services layout");
TFX_STATIC_ASSERT(offsetof(tfx_host_services, weight_storage) == 112, "tfx_host_services layout");
TFX_STATIC_ASSERT(offsetof(tfx_host_services, all_reduce_sum) == 120, "tfx_host_services layout");

#endif /* TFX_HOST_H */
