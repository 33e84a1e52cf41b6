// The ops and attention tables the host hands to model plugins. Each entry checks that the
// chosen plugin offers the call (table size and pointer), validates the tensor operands,
// traces the call (TFX_LOG_LEVEL=trace), then forwards it: one place to validate and trace.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/weight_store.h"
#include "tfx/attention.h"
#include "tfx/backend.h"
#include "tfx/quantizer.h"

namespace tfx {

struct PluginInstance;
class LoraRuntime;

// Quantization at load: a pack_weight asking for `format` gets the weight encoded by the
// quantizer on the host first, and the backend packs the encoded bytes. A weight whose rows
// the format cannot hold (not a multiple of its block) is packed as stored instead.
struct QuantizeAtPack {
    const tfx_quantizer_table* table = nullptr;
    void* self = nullptr;
    const PluginInstance* plugin = nullptr;  // the quantizer, named if it crashes
    std::string format;
    // Weights of `output_rows` rows (the vocabulary: the output projection) go to `output_format`
    // instead when it is set: llama.cpp keeps the output projection finer than 4 bits, as it is
    // the most sensitive matrix.
    std::string output_format;
    int64_t output_rows = 0;
    int64_t quantized = 0, kept = 0;  // weights packed in `format`, and kept as stored
    int64_t output_quantized = 0;     // weights packed in `output_format`
    uint64_t encoded_bytes = 0;       // the quantized weights' size in `format`
    uint64_t source_bytes = 0;        // and their size as stored
};

struct OpsTarget {
    const tfx_backend_ops* backend = nullptr;
    void* backend_self = nullptr;
    tfx_device device{TFX_DEVICE_CPU, 0};  // every tensor operand must be on it
    QuantizeAtPack* quantize = nullptr;    // set when the session quantizes at load
    // Checkpoint tensors stored block-quantized (GGUF): a pack_weight of one of them packs its
    // bytes as they are when the backend computes on their format.
    const WeightStore* stored = nullptr;
    std::vector<std::string> backend_formats;
    int64_t packed_as_stored = 0;
    // Float weights packed into another float width (--weight-format bf16 on an f32
    // checkpoint): their bytes as handed to pack_weight, and as packed.
    uint64_t refloat_source_bytes = 0, refloat_packed_bytes = 0;
    // LoRA adapters applied at run time: attached to weights as they are packed, added to the
    // output of every linear over an adapted weight.
    LoraRuntime* lora = nullptr;
    // Multiply-adds of the weights packed for linear ops (rows x columns), by their rows: what
    // prefill's GFLOP/s counts (the session tells the output projection apart by its rows).
    std::map<int64_t, uint64_t> linear_elements_by_rows;
};
// The table to pass as host services' ops, with a pointer to an OpsTarget as ops_self.
const tfx_backend_ops* forwarding_ops();
// The same for one backend: optional ops it does not offer are NULL, so a model plugin sees
// what it may call (embedding_packed).
tfx_backend_ops forwarding_ops_for(const tfx_backend_ops& backend);
// Whether the backend packs `stored`'s blocks as they are for a pack asking for `format`
// (nullptr: no format asked): it computes on their format, and no other is asked.
bool packs_as_stored(const OpsTarget& target, const WeightStore::Encoded& stored, const char* format);
// Adds a packed linear weight of rows x cols to target's linear_elements_by_rows.
void count_linear(OpsTarget& target, int64_t rows, int64_t cols);
// The stored blocks packed as they are (a u8 tensor [rows, row bytes] to pack_weight).
int32_t pack_as_stored(OpsTarget& target, const WeightStore::Encoded& stored, tfx_weight** out, tfx_error* error);

// The attention plugin, and the backend whose run_kernel runs it (where device memory is addressable).
struct AttentionTarget {
    const tfx_attention_table* table = nullptr;
    void* self = nullptr;
    const tfx_backend_ops* backend = nullptr;
    void* backend_self = nullptr;
    tfx_device device{TFX_DEVICE_CPU, 0};    // where q, k, v and out must be
    const PluginInstance* plugin = nullptr;  // the attention plugin, named if it crashes
};
// The table to pass as host services' attention, with an AttentionTarget as attention_self.
const tfx_attention_table* forwarding_attention();

}  // namespace tfx
