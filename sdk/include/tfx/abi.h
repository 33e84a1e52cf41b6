/* tfx plugin ABI: versions, status codes, errors and the plugin descriptor.
 *
 * Rules (docs in DESIGN.md): every struct that crosses the boundary starts with its size;
 * structs and tables only grow by appending; a field is used only when struct_size covers
 * it and (for function pointers) it is non-NULL. A host refuses a plugin whose ABI major
 * differs from its own. Nothing but C types crosses the boundary. */
#ifndef TFX_ABI_H
#define TFX_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TFX_ABI_MAJOR 2
#define TFX_ABI_MINOR 11

/* "TFXPLUG1" — first field of every descriptor; anything else is not a tfx plugin. */
#define TFX_PLUGIN_MAGIC 0x31475558504c4654ULL

/* The one symbol a plugin exports: a function returning its static descriptor. */
#define TFX_PLUGIN_ENTRY_SYMBOL "tfx_plugin_entry"

#ifdef __cplusplus
#define TFX_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define TFX_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* True when a struct whose first member is struct_size covers `field`. */
#define TFX_HAS_FIELD(ptr, type, field) \
    ((ptr) != NULL && (ptr)->struct_size >= offsetof(type, field) + sizeof((ptr)->field))

typedef enum tfx_status {
    TFX_OK = 0,
    TFX_ERR_INVALID_ARGUMENT = 1,
    TFX_ERR_NOT_FOUND = 2,
    TFX_ERR_UNSUPPORTED = 3,
    TFX_ERR_OUT_OF_MEMORY = 4,
    TFX_ERR_IO = 5,
    TFX_ERR_FORMAT = 6,
    TFX_ERR_ABI = 7,
    TFX_ERR_INTERNAL = 8
} tfx_status;

/* Caller-owned error: the callee writes a NUL-terminated message on failure. */
#define TFX_ERROR_MESSAGE_SIZE 1024
typedef struct tfx_error {
    uint32_t struct_size;
    int32_t code; /* a tfx_status */
    char message[TFX_ERROR_MESSAGE_SIZE];
} tfx_error;

typedef enum tfx_plugin_kind {
    TFX_KIND_MODEL = 1,
    TFX_KIND_BACKEND = 2,
    TFX_KIND_TOKENIZER = 3,
    TFX_KIND_ATTENTION = 4,
    TFX_KIND_QUANTIZER = 5
} tfx_plugin_kind;

struct tfx_host_services;

typedef struct tfx_plugin_descriptor {
    uint64_t magic; /* TFX_PLUGIN_MAGIC */
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    int32_t kind; /* tfx_plugin_kind */
    const char* name;
    const char* version;
    const char* manifest_json; /* the same JSON as the sidecar beside the .so */
    /* How well this plugin fits this machine: 0 = unusable here, higher = preferred.
     * Cheap and side-effect free (e.g. CPUID and OS support checks). */
    int32_t (*score)(void);
    /* Creates an instance bound to the host's services (valid for the instance's life). */
    int32_t (*create)(const struct tfx_host_services* host, void** instance, tfx_error* error);
    void (*destroy)(void* instance);
    /* The kind's function table (tfx_model_table, tfx_backend_ops, ...); static storage. */
    const void* (*get_table)(void);
    /* ABI 2.10: why score() returns 0 here, as a short phrase the host shows after "unavailable
     * here: " ("no CUDA driver: ..."); NULL, or NULL / "" returned, when there is nothing to
     * say. Cheap and side-effect free like score(); the string stays valid until the plugin's
     * next call. Descriptors of older plugins end before it (struct_size). */
    const char* (*unavailable_reason)(void);
} tfx_plugin_descriptor;

typedef const tfx_plugin_descriptor* (*tfx_plugin_entry_fn)(void);

/* Output sink: the callee appends bytes; the caller owns the storage behind ctx. */
typedef struct tfx_sink {
    void* ctx;
    void (*write)(void* ctx, const void* data, size_t bytes);
} tfx_sink;

#ifdef __cplusplus
} /* extern "C" */
#endif

TFX_STATIC_ASSERT(sizeof(tfx_error) == 8 + TFX_ERROR_MESSAGE_SIZE, "tfx_error layout");
TFX_STATIC_ASSERT(offsetof(tfx_plugin_descriptor, kind) == 16, "descriptor layout");
TFX_STATIC_ASSERT(offsetof(tfx_plugin_descriptor, name) == 24, "descriptor layout");
TFX_STATIC_ASSERT(offsetof(tfx_plugin_descriptor, get_table) == 72, "descriptor layout");
TFX_STATIC_ASSERT(offsetof(tfx_plugin_descriptor, unavailable_reason) == 80, "descriptor layout");
TFX_STATIC_ASSERT(sizeof(tfx_plugin_descriptor) == 88, "descriptor layout");
TFX_STATIC_ASSERT(sizeof(tfx_sink) == 16, "tfx_sink layout");

#endif /* TFX_ABI_H */
